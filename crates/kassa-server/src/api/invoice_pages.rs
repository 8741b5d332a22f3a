//! The hosted invoice page (`hosted_invoice_url`): the customer pays an open invoice with a
//! card, 3-D Secure included. The secret in the URL is the only credential; forms post to the
//! same URL (a cross-site form cannot know it). See `services::invoice_pages`.

use crate::api::extract::{parse_form, read_body};
use crate::api::security_headers::{self, FormTargets};
use crate::api::test_processor::pages::{CheckoutForm, card_input, filled};
use crate::error::{ApiResult, ErrorBody};
use crate::objects::billing::Invoice;
use crate::services::invoice_pages::{self, Paying};
use crate::state::AppState;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use kassa_sandbox::pages::views::{Typed, card_fields, error_box, layout, money};
use maud::{Markup, html};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(invoice_page, pay_invoice_page))
        .route_layer(axum::middleware::from_fn(security_headers::hosted_page))
}

fn render(app: &AppState, status: StatusCode, inv: &Invoice, token: &str, error: Option<&str>) -> Response {
    let markup = view(inv, token, error, app.test_processor.is_some());
    let mut res = (status, Html(markup.into_string())).into_response();
    // Paying may go on to the 3-D Secure challenge, at Kassa's own URL.
    res.extensions_mut().insert(FormTargets::of([&*app.public_url]));
    res
}

fn view(inv: &Invoice, token: &str, error: Option<&str>, can_pay: bool) -> Markup {
    let due = money(inv.amount_remaining, &inv.currency);
    let action = format!("/invoice-pages/{token}");
    // This page's refusal, else why the last charge failed.
    let shown_error = error.or(inv.last_payment_error.as_ref().map(|e| e.message.as_str()));
    layout(
        "Invoice",
        html! {
            h1 { "Invoice" }
            p.due { span { "Amount due" } " " strong #amount-due { (due) } }
            table {
                caption.visually-hidden { "Invoice lines" }
                @for line in &inv.lines.data {
                    tr { th scope="row" { (line.description) } td.amount { (money(line.amount, &inv.currency)) } }
                }
            }
            p #invoice-status { "Status: " strong { (inv.status) } }
            @if inv.status == "open" && can_pay {
                h2 { "Pay with card" }
                (error_box(shown_error))
                form method="post" action=(action) {
                    (card_fields(&Typed::default(), shown_error))
                    button type="submit" { "Pay " (due) }
                }
                p.hint { "Test cards: 4242 4242 4242 4242 succeeds, 4000 0000 0000 3220 asks for 3-D Secure." }
            } @else if inv.status == "paid" {
                p { "This invoice is paid. Thank you." }
            } @else if inv.status != "open" {
                p { "This invoice is not payable (" (inv.status) ")." }
            }
        },
    )
}

/// The hosted page of an invoice.
#[utoipa::path(get, path = "/invoice-pages/{token}", tag = "Invoices",
    params(("token" = String, Path, description = "The secret of `hosted_invoice_url` (`in_…_secret_…`)")),
    responses((status = 200, description = "The invoice, and a card form while it is open", content_type = "text/html", body = String),
        (status = 404, body = ErrorBody)))]
async fn invoice_page(State(app): State<AppState>, Path(token): Path<String>) -> ApiResult<Response> {
    let inv = invoice_pages::show(&app, &token).await?;
    Ok(render(&app, StatusCode::OK, &inv.into(), &token, None))
}

/// Pay the invoice with a card (`number`, `exp`, `cvc`; test processor).
#[utoipa::path(post, path = "/invoice-pages/{token}", tag = "Invoices",
    params(("token" = String, Path, description = "The secret of `hosted_invoice_url`")),
    request_body(content = CheckoutForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Paid: back to the page; or to the 3-D Secure challenge"),
        (status = 400, description = "The page again, with what is wrong with the card", content_type = "text/html", body = String),
        (status = 402, description = "The page again, with the decline", content_type = "text/html", body = String),
        (status = 409, description = "Another payment of the invoice is under way", content_type = "text/html", body = String),
        (status = 404, body = ErrorBody)))]
async fn pay_invoice_page(State(app): State<AppState>, Path(token): Path<String>, req: Request) -> ApiResult<Response> {
    let inv = invoice_pages::find(&app, &token).await?;
    let body = read_body(req, &()).await?;
    let form: CheckoutForm = parse_form(&body).unwrap_or_default();
    let card = match card_input(&form) {
        Ok(c) if filled(&form.number).is_some() => c,
        Ok(_) => {
            return Ok(render(&app, StatusCode::BAD_REQUEST, &inv.into(), &token, Some("Enter your card number.")));
        }
        Err(m) => return Ok(render(&app, StatusCode::BAD_REQUEST, &inv.into(), &token, Some(m))),
    };
    let back = |url: &str| match HeaderValue::from_str(url) {
        Ok(location) => (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let page = format!("/invoice-pages/{token}");
    match invoice_pages::pay(&app, &token, card).await? {
        Paying::Paid | Paying::NotOpen => Ok(back(&page)),
        Paying::Authenticate(url) => Ok(back(&url)),
        Paying::Refused(message) => {
            let inv = invoice_pages::find(&app, &token).await?;
            Ok(render(&app, StatusCode::PAYMENT_REQUIRED, &inv.into(), &token, Some(&message)))
        }
        Paying::Invalid(message) => {
            let inv = invoice_pages::find(&app, &token).await?;
            Ok(render(&app, StatusCode::BAD_REQUEST, &inv.into(), &token, Some(&message)))
        }
        Paying::Busy => {
            let message = "A payment of this invoice is under way. Reload the page in a moment.";
            Ok(render(&app, StatusCode::CONFLICT, &inv.into(), &token, Some(message)))
        }
    }
}
