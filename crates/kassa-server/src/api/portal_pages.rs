//! The hosted billing portal (`billing_portal.session` `url`): the customer's subscriptions,
//! invoices and card, with forms to update the card and to cancel at the period end (or take
//! that back). The secret in the URL opens it; every form also carries a nonce and a token
//! bound to the session, and acts once. See `services::portal_sessions`.

use crate::api::extract::{parse_form, read_body};
use crate::api::security_headers::{self, FormTargets};
use crate::api::test_processor::pages::{CheckoutForm, card_input};
use crate::error::{ApiError, ApiResult};
use crate::services::portal_sessions::{self, Acted, FormProof, Portal};
use crate::state::AppState;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use kassa_sandbox::pages::views::{Typed, card_fields, error_box, layout, money};
use maud::{Markup, html};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(billing_portal_page))
        .routes(routes!(billing_portal_update_card))
        .routes(routes!(billing_portal_cancel_subscription))
        .routes(routes!(billing_portal_resume_subscription))
        .route_layer(axum::middleware::from_fn(security_headers::hosted_page))
}

/// A portal form: its nonce and token (and, for the card, the card).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct PortalForm {
    /// The form's nonce, as the page wrote it.
    nonce: Option<String>,
    /// The form's token, as the page wrote it.
    csrf_token: Option<String>,
    /// The card number (card update); spaces allowed.
    number: Option<String>,
    /// `MM/YY` (card update).
    exp: Option<String>,
    cvc: Option<String>,
}

impl PortalForm {
    fn proof(&self) -> FormProof {
        FormProof { nonce: self.nonce.clone().unwrap_or_default(), token: self.csrf_token.clone().unwrap_or_default() }
    }
}

/// The same page for an unknown, wrong and expired link: nothing tells them apart.
fn gone() -> Response {
    let markup = layout(
        "Billing portal",
        html! {
            h1 { "Billing portal" }
            p #portal-gone { "This link to the billing portal has expired or is not valid. Ask for a new one." }
        },
    );
    (StatusCode::NOT_FOUND, Html(markup.into_string())).into_response()
}

/// An answer, with a 404 of the service shown as [`gone`].
fn or_gone(r: ApiResult<Response>) -> ApiResult<Response> {
    match r {
        Err(ApiError::NotFound { .. }) => Ok(gone()),
        other => other,
    }
}

fn render(
    app: &AppState,
    status: StatusCode,
    portal: &Portal,
    token: &str,
    message: Option<&str>,
    error: Option<&str>,
) -> Response {
    let markup = view(portal, token, message, error);
    let mut res = (status, Html(markup.into_string())).into_response();
    // The card update may go on to the 3-D Secure challenge, at Kassa's own URL.
    res.extensions_mut().insert(FormTargets::of([&*app.public_url]));
    res
}

/// `2027-03-31` (UTC) of Unix seconds.
fn date(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0).map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_default()
}

/// `per month`, `every 3 months`.
fn interval(p: &kassa_store::catalog::PriceRow) -> String {
    let unit = p.recurring_interval.as_deref().unwrap_or("period");
    match p.recurring_interval_count {
        Some(n) if n > 1 => format!("every {n} {unit}s"),
        _ => format!("per {unit}"),
    }
}

fn hidden(proof: &FormProof) -> Markup {
    html! {
        input type="hidden" name="nonce" value=(proof.nonce);
        input type="hidden" name="csrf_token" value=(proof.token);
    }
}

fn view(portal: &Portal, token: &str, message: Option<&str>, error: Option<&str>) -> Markup {
    let base = format!("/billing-portal/{token}");
    layout(
        "Billing portal",
        html! {
            h1 { "Billing portal" }
            @if let Some(m) = message { p #portal-message role="status" { (m) } }
            (error_box(error))
            h2 { "Subscriptions" }
            @if portal.subscriptions.is_empty() { p { "No subscriptions." } }
            @for s in &portal.subscriptions {
                @let sub = &s.subscription;
                section.subscription id=(format!("subscription-{}", sub.id)) {
                    @if let Some(p) = &s.price {
                        @let every = interval(p);
                        p.plan {
                            strong { (p.nickname.clone().unwrap_or_else(|| p.id.clone())) }
                            " — " span.amount { (money(p.unit_amount.saturating_mul(sub.quantity), &p.currency)) } " " (every)
                            @if sub.quantity > 1 { " (" (sub.quantity) " × " (money(p.unit_amount, &p.currency)) ")" }
                        }
                    }
                    p { "Status: " strong.status { (sub.status) } }
                    @if !crate::services::subscriptions::has_ended(&sub.status) {
                        @if sub.cancel_at_period_end {
                            p.cancel-note { "Cancels on " (date(sub.current_period_end)) "." }
                            form method="post" action=(format!("{base}/subscriptions/{}/resume", sub.id)) {
                                (hidden(&portal.forms.form()))
                                button type="submit" { "Don't cancel" }
                            }
                        } @else {
                            p.renews { "Current period ends " (date(sub.current_period_end)) "." }
                            form method="post" action=(format!("{base}/subscriptions/{}/cancel", sub.id)) {
                                (hidden(&portal.forms.form()))
                                button.danger type="submit" { "Cancel at period end" }
                            }
                        }
                    }
                }
            }
            h2 { "Payment method" }
            @match &portal.card {
                Some(pm) => {
                    @let card = pm.card.as_ref();
                    p #card { (card.map(|c| c.brand.clone()).unwrap_or_else(|| "Card".into())) " ending in "
                        (card.map(|c| c.last4.clone()).unwrap_or_default()) }
                }
                None => { p #card { "No card on file." } }
            }
            @if portal.can_update_card {
                form #update-card method="post" action=(format!("{base}/card")) {
                    (hidden(&portal.forms.form()))
                    (card_fields(&Typed::default(), error))
                    button type="submit" { "Update card" }
                }
                p.hint { "Your bank may ask you to confirm the card; a small check of the card is released at once. "
                    "Test cards: 4242 4242 4242 4242, 4000 0025 0000 3155 (3-D Secure)." }
            }
            h2 { "Invoices" }
            @if portal.invoices.is_empty() { p { "No invoices." } }
            @else {
                table #invoices {
                    caption.visually-hidden { "Invoices" }
                    tr { th scope="col" { "Date" } th scope="col" { "Amount" } th scope="col" { "Status" } th scope="col" { "" } }
                    @for inv in &portal.invoices {
                        tr id=(format!("invoice-{}", inv.id)) {
                            td { (date(inv.created)) }
                            td.amount { (money(inv.amount_due, &inv.currency)) }
                            td.status { (inv.status) }
                            td { @if inv.status == "open" { @if let Some(u) = &inv.hosted_invoice_url { a href=(u) { "Pay" } } } }
                        }
                    }
                }
            }
            @if let Some(u) = &portal.session.return_url { p { a #return href=(u) { "Return" } } }
        },
    )
}

/// The billing portal of a session.
#[utoipa::path(get, path = "/billing-portal/{token}", tag = "Customers",
    params(("token" = String, Path, description = "The secret of the session's `url` (`bps_…_secret_…`)")),
    responses((status = 200, description = "The portal", content_type = "text/html", body = String),
        (status = 404, description = "An unknown, wrong or expired link (one page for all)", content_type = "text/html", body = String)))]
async fn billing_portal_page(State(app): State<AppState>, Path(token): Path<String>) -> ApiResult<Response> {
    or_gone(show_page(&app, &token).await)
}

async fn show_page(app: &AppState, token: &str) -> ApiResult<Response> {
    let (portal, message) = portal_sessions::show(app, token).await?;
    Ok(render(app, StatusCode::OK, &portal, token, message.as_deref(), None))
}

fn back(url: &str) -> Response {
    match HeaderValue::from_str(url) {
        Ok(location) => (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The page after an action: back to the page (303), to the challenge, or the page with why.
async fn after(app: &AppState, token: &str, acted: Acted, status: StatusCode) -> ApiResult<Response> {
    match acted {
        Acted::Done => Ok(back(&format!("/billing-portal/{token}"))),
        Acted::Authenticate(url) => Ok(back(&url)),
        Acted::Refused(message) => {
            let (portal, _) = portal_sessions::show(app, token).await?;
            Ok(render(app, status, &portal, token, None, Some(&message)))
        }
        Acted::Invalid(message) => {
            let (portal, _) = portal_sessions::show(app, token).await?;
            Ok(render(app, StatusCode::BAD_REQUEST, &portal, token, None, Some(&message)))
        }
    }
}

async fn form_of(req: Request) -> ApiResult<PortalForm> {
    let body = read_body(req, &()).await?;
    Ok(parse_form(&body).unwrap_or_default())
}

/// Update the customer's card (test processor): `number`, `exp`, `cvc`, with the form's
/// `nonce` and `csrf_token`. Verified (3-D Secure when asked), then made the default of the
/// customer and of their subscriptions.
#[utoipa::path(post, path = "/billing-portal/{token}/card", tag = "Customers",
    params(("token" = String, Path, description = "The secret of the session's `url`")),
    request_body(content = PortalForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Updated (or a repeated form): back to the page; or to the 3-D Secure challenge"),
        (status = 400, description = "The page again, with what is wrong with the card", content_type = "text/html", body = String),
        (status = 402, description = "The page again, with the decline", content_type = "text/html", body = String),
        (status = 403, description = "The form is not of this session"),
        (status = 404, description = "An unknown, wrong or expired link", content_type = "text/html", body = String)))]
async fn billing_portal_update_card(
    State(app): State<AppState>,
    Path(token): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    or_gone(card_posted(&app, &token, req).await)
}

async fn card_posted(app: &AppState, token: &str, req: Request) -> ApiResult<Response> {
    portal_sessions::find(app, token).await?;
    let form = form_of(req).await?;
    let typed = CheckoutForm {
        method: None,
        number: form.number.clone(),
        exp: form.exp.clone(),
        cvc: form.cvc.clone(),
        consent: None,
    };
    let card = match card_input(&typed) {
        Ok(c) => c,
        Err(m) => return after(app, token, Acted::Invalid(m.into()), StatusCode::BAD_REQUEST).await,
    };
    let acted = portal_sessions::update_card(app, token, &form.proof(), card).await?;
    after(app, token, acted, StatusCode::PAYMENT_REQUIRED).await
}

/// Cancel the subscription at the end of its period (with the form's `nonce` and `csrf_token`).
#[utoipa::path(post, path = "/billing-portal/{token}/subscriptions/{subscription}/cancel", tag = "Customers",
    params(("token" = String, Path, description = "The secret of the session's `url`"), ("subscription" = String, Path)),
    request_body(content = PortalForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Done (or a repeated form): back to the page"),
        (status = 409, description = "The page again: the subscription cannot be canceled", content_type = "text/html", body = String),
        (status = 403, description = "The form is not of this session"),
        (status = 404, description = "An unknown, wrong or expired link, or no subscription of this customer", content_type = "text/html", body = String)))]
async fn billing_portal_cancel_subscription(
    State(app): State<AppState>,
    Path((token, subscription)): Path<(String, String)>,
    req: Request,
) -> ApiResult<Response> {
    or_gone(cancel_posted(&app, &token, &subscription, req, true).await)
}

/// Take back a cancel at the period end (with the form's `nonce` and `csrf_token`).
#[utoipa::path(post, path = "/billing-portal/{token}/subscriptions/{subscription}/resume", tag = "Customers",
    params(("token" = String, Path, description = "The secret of the session's `url`"), ("subscription" = String, Path)),
    request_body(content = PortalForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Done (or a repeated form): back to the page"),
        (status = 409, description = "The page again: the subscription cannot be resumed", content_type = "text/html", body = String),
        (status = 403, description = "The form is not of this session"),
        (status = 404, description = "An unknown, wrong or expired link, or no subscription of this customer", content_type = "text/html", body = String)))]
async fn billing_portal_resume_subscription(
    State(app): State<AppState>,
    Path((token, subscription)): Path<(String, String)>,
    req: Request,
) -> ApiResult<Response> {
    or_gone(cancel_posted(&app, &token, &subscription, req, false).await)
}

async fn cancel_posted(
    app: &AppState,
    token: &str,
    subscription: &str,
    req: Request,
    cancel: bool,
) -> ApiResult<Response> {
    let form = form_of(req).await?;
    let acted = portal_sessions::cancel_at_period_end(app, token, &form.proof(), subscription, cancel).await?;
    after(app, token, acted, StatusCode::CONFLICT).await
}
