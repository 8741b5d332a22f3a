//! The test processor's hosted pages (what Stripe Checkout and a bank's 3-D Secure page are
//! to Stripe): the checkout page of a session, and the 3-D Secure challenge. Forms post back
//! to the page; success answers 303 to where the browser goes next, a problem re-renders the
//! page with the message in place. A post repeated after it succeeded (a second click on Pay,
//! a reload) goes where the first one went, without paying again. Every page carries the
//! hosted pages' security headers ([`security_headers::hosted_page`]).

use super::{api_error, test_processor};
use crate::api::extract::{parse_form, read_body};
use crate::api::security_headers::{self, FormTargets};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::services::checkout_sessions;
use crate::state::AppState;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use kassa_processors::ProcessorError;
use kassa_processors::types::{CheckoutSessionStatus, PaymentIntentStatus};
use kassa_sandbox::pages::views;
use kassa_sandbox::{CardInput, CheckoutPayment, TestProcessor};
use maud::Markup;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(checkout_page, submit_checkout))
        .routes(routes!(authentication_page, submit_authentication))
        .route_layer(axum::middleware::from_fn(security_headers::hosted_page))
}

/// A page whose forms post to Kassa and may be redirected to `targets` afterwards.
fn page_to(status: StatusCode, markup: Markup, targets: FormTargets) -> Response {
    let mut res = (status, Html(markup.into_string())).into_response();
    res.extensions_mut().insert(targets);
    res
}

/// A page without forms.
fn page(status: StatusCode, markup: Markup) -> Response {
    page_to(status, markup, FormTargets::default())
}

/// 303 to `url`; a URL that cannot be a header (the merchant's own) gets a page with a link.
fn see_other(url: &str) -> Response {
    match HeaderValue::from_str(url) {
        Ok(location) => (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(),
        Err(_) => page(StatusCode::OK, views::continue_to(url)),
    }
}

/// Whether the processor refused because the object is past the state the call needs (a
/// session already complete, a challenge already answered).
fn is_state_conflict(e: &ProcessorError) -> bool {
    matches!(e, ProcessorError::InvalidRequest { code: Some(c), .. } if c.ends_with("_unexpected_state"))
}

/// How a refused payment shows on a page: status and message. A missing object stays a 404.
fn page_error(e: ProcessorError) -> Result<(StatusCode, String), ApiError> {
    Ok(match e {
        ProcessorError::Payment { error, .. } => (StatusCode::PAYMENT_REQUIRED, error.message),
        ProcessorError::InvalidRequest { code, message, .. } => {
            let state = code.as_deref().is_some_and(|c| c.ends_with("_unexpected_state"));
            (if state { StatusCode::CONFLICT } else { StatusCode::BAD_REQUEST }, message)
        }
        ProcessorError::Unavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The payment processor is unavailable at the moment. Please try again shortly.".to_string(),
        ),
        other => return Err(api_error(other)),
    })
}

/// The checkout form. Everything is optional so that a bad form re-renders the page instead of
/// failing as a request.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CheckoutForm {
    /// `card` (default) or `bank_debit`.
    pub(crate) method: Option<String>,
    /// The card number; spaces allowed.
    pub(crate) number: Option<String>,
    /// `MM/YY` or `MM/YYYY`.
    pub(crate) exp: Option<String>,
    pub(crate) cvc: Option<String>,
    /// The consent checkbox of a checkout that saves the card for future payments (a
    /// subscription): `yes` when ticked. Without it such a checkout charges nothing.
    pub(crate) consent: Option<String>,
}

pub(crate) fn filled(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// `MM/YY`, `MM / YYYY` → (month, year); the card checks judge the values.
fn parse_expiry(exp: &str) -> Option<(i64, i64)> {
    let compact: String = exp.chars().filter(|c| !c.is_whitespace()).collect();
    let (month, year) = compact.split_once('/')?;
    let digits = |s: &str, lens: &[usize]| lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(month, &[1, 2]) || !digits(year, &[2, 4]) {
        return None;
    }
    Some((month.parse().ok()?, year.parse().ok()?))
}

pub(crate) fn card_input(form: &CheckoutForm) -> Result<CardInput, &'static str> {
    let number = filled(&form.number).ok_or("Enter your card number.")?;
    let exp = filled(&form.exp).ok_or("Enter the card's expiry date as MM/YY.")?;
    let (exp_month, exp_year) = parse_expiry(exp).ok_or("Enter the card's expiry date as MM/YY.")?;
    Ok(CardInput { number: number.to_string(), exp_month, exp_year, cvc: filled(&form.cvc).map(str::to_string) })
}

/// Kassa's side of the page in the sandbox's terms.
fn page_summary(s: checkout_sessions::PageSummary) -> views::PageSummary {
    views::PageSummary {
        merchant_name: s.merchant_name,
        credits: s.credits,
        email: s.email,
        shipping_address: s.shipping_address.map(|a| views::ShipTo {
            name: a.name,
            line1: a.line1,
            line2: a.line2,
            city: a.city,
            postal_code: a.postal_code,
            state: a.state,
            country: a.country,
        }),
    }
}

/// The session's page as it stands, with `error` in place.
async fn render_checkout(
    app: &AppState,
    tp: &TestProcessor,
    id: &str,
    status: StatusCode,
    typed: &views::Typed,
    error: Option<&str>,
) -> ApiResult<Response> {
    let mut session = tp.checkout_session(id).await.map_err(api_error)?;
    let summary = page_summary(checkout_sessions::page_summary(app, &session.id).await?);
    if session.status == CheckoutSessionStatus::Open && session.expires_at <= app.clock.now() {
        // Past its time; the expiry job has not marked it yet.
        session.status = CheckoutSessionStatus::Expired;
    }
    let last_error = match (error, session.status) {
        (None, CheckoutSessionStatus::Open) => tp.checkout_last_error(&session).await.map_err(api_error)?,
        _ => None,
    };
    // Paying redirects to the success URL, or to the 3-D Secure page at Kassa's public URL.
    let targets = FormTargets::of([session.success_redirect().as_str(), &app.public_url]);
    Ok(page_to(status, views::checkout(&session, &summary, typed, error.or(last_error.as_deref())), targets))
}

/// The hosted checkout page of a session (test processor).
#[utoipa::path(get, path = "/test-processor/checkout/{id}", tag = "Test processor",
    params(("id" = String, Path, description = "The checkout session (`cs_…`)")),
    responses((status = 200, description = "The page: order summary, card form, bank debit, cancel link",
            content_type = "text/html", body = String),
        (status = 404, body = ErrorBody)))]
async fn checkout_page(State(app): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let tp = test_processor(&app)?;
    render_checkout(&app, &tp, &id, StatusCode::OK, &views::Typed::default(), None).await
}

/// Pay a checkout session from its page: by card (`method=card`, `number`, `exp`, `cvc`) or by
/// a bank debit that settles later (`method=bank_debit`). A checkout that saves the card for
/// a subscription's future payments takes a card only, and only with `consent=yes` (the
/// page's checkbox); without it nothing is charged and the page says why (400).
#[utoipa::path(post, path = "/test-processor/checkout/{id}", tag = "Test processor",
    params(("id" = String, Path, description = "The checkout session (`cs_…`)")),
    request_body(content = CheckoutForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Paid: to the session's success_url; or to the 3-D Secure page"),
        (status = 400, description = "The page again, with what is wrong with the card", content_type = "text/html", body = String),
        (status = 402, description = "The page again, with the decline", content_type = "text/html", body = String),
        (status = 409, description = "The session is complete or expired", content_type = "text/html", body = String),
        (status = 404, body = ErrorBody)))]
async fn submit_checkout(State(app): State<AppState>, Path(id): Path<String>, req: Request) -> ApiResult<Response> {
    let tp = test_processor(&app)?;
    let body = read_body(req, &()).await?;
    let form: CheckoutForm = match parse_form(&body) {
        Ok(form) => form,
        Err(e) => {
            let typed = views::Typed::default();
            return render_checkout(&app, &tp, &id, StatusCode::BAD_REQUEST, &typed, Some(&e.to_string())).await;
        }
    };
    // After a decline or a mistake the page comes back with the number and expiry in place.
    let typed =
        views::Typed { number: filled(&form.number).map(str::to_string), exp: filled(&form.exp).map(str::to_string) };
    let paid = if form.method.as_deref() == Some("bank_debit") {
        tp.pay_checkout_session_by_bank_debit(&id).await
    } else {
        match card_input(&form) {
            Ok(card) => {
                let consent = matches!(filled(&form.consent), Some("yes" | "on" | "true"));
                tp.pay_checkout_session_consenting(&id, &card, consent).await
            }
            Err(message) => {
                return render_checkout(&app, &tp, &id, StatusCode::BAD_REQUEST, &typed, Some(message)).await;
            }
        }
    };
    match paid {
        Ok(CheckoutPayment::Completed { redirect_url } | CheckoutPayment::RequiresAction { redirect_url }) => {
            Ok(see_other(&redirect_url))
        }
        Err(e) if is_state_conflict(&e) => {
            // A repeated post (a second click, concurrent with the first or after it) finds the
            // session complete: it goes where the first went, and nothing is charged again.
            let session = tp.checkout_session(&id).await.map_err(api_error)?;
            if session.status == CheckoutSessionStatus::Complete {
                return Ok(see_other(&session.success_redirect()));
            }
            let (status, message) = page_error(e)?;
            render_checkout(&app, &tp, &id, status, &typed, Some(&message)).await
        }
        Err(e) => {
            let (status, message) = page_error(e)?;
            render_checkout(&app, &tp, &id, status, &typed, Some(&message)).await
        }
    }
}

/// The 3-D Secure challenge of a PaymentIntent (test processor).
#[utoipa::path(get, path = "/test-processor/authenticate/{id}", tag = "Test processor",
    params(("id" = String, Path, description = "The PaymentIntent (`pi_…`)")),
    responses((status = 200, description = "The challenge, with Complete and Fail buttons", content_type = "text/html", body = String),
        (status = 404, body = ErrorBody)))]
async fn authentication_page(State(app): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let tp = test_processor(&app)?;
    let pi = tp.payment_intent_for_page(&id).await.map_err(api_error)?;
    if pi.status != PaymentIntentStatus::RequiresAction {
        return Ok(page(
            StatusCode::OK,
            views::message("Nothing to authenticate", "This payment does not wait for authentication."),
        ));
    }
    let redirects = tp.authentication_redirects(&id).await.map_err(api_error)?;
    let targets = FormTargets::of(redirects.iter().map(String::as_str).chain([&*app.public_url]));
    Ok(page_to(StatusCode::OK, views::authenticate(&pi, None), targets))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct AuthenticationForm {
    /// `complete` or `fail`.
    outcome: Option<String>,
}

/// Complete or fail a 3-D Secure challenge; the browser goes back to the PaymentIntent's
/// `return_url` (or the checkout session's success URL or page).
#[utoipa::path(post, path = "/test-processor/authenticate/{id}", tag = "Test processor",
    params(("id" = String, Path, description = "The PaymentIntent (`pi_…`)")),
    request_body(content = AuthenticationForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "To the return_url, the session's success_url, or back to its checkout page"),
        (status = 200, description = "Done, with nowhere to return to", content_type = "text/html", body = String),
        (status = 400, description = "No outcome chosen", content_type = "text/html", body = String),
        (status = 409, description = "The payment does not wait for authentication", content_type = "text/html", body = String),
        (status = 404, body = ErrorBody)))]
async fn submit_authentication(
    State(app): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let tp = test_processor(&app)?;
    let body = read_body(req, &()).await?;
    let (form, problem) = match parse_form::<AuthenticationForm>(&body) {
        Ok(form) => (form, None),
        Err(e) => (AuthenticationForm::default(), Some(e.to_string())),
    };
    let approve = match form.outcome.as_deref() {
        Some("complete") => true,
        Some("fail") => false,
        _ => {
            let pi = tp.payment_intent_for_page(&id).await.map_err(api_error)?;
            let redirects = tp.authentication_redirects(&id).await.map_err(api_error)?;
            let targets = FormTargets::of(redirects.iter().map(String::as_str).chain([&*app.public_url]));
            let problem = problem.as_deref().unwrap_or("Choose Complete or Fail.");
            let markup = views::authenticate(&pi, Some(problem));
            return Ok(page_to(StatusCode::BAD_REQUEST, markup, targets));
        }
    };
    match tp.complete_authentication(&id, approve).await {
        Ok(done) => Ok(match done.redirect_url {
            Some(url) => see_other(&url),
            None if approve => page(StatusCode::OK, views::message("Authenticated", "You can close this window.")),
            None => page(StatusCode::OK, views::message("Authentication failed", "You can close this window.")),
        }),
        Err(e) if is_state_conflict(&e) => match tp.after_authentication(&id).await.map_err(api_error)? {
            // A repeated answer to a challenge of a checkout session goes where the first went.
            Some(url) => Ok(see_other(&url)),
            None => {
                let (status, message) = page_error(e)?;
                Ok(page(status, views::message("Authentication", &message)))
            }
        },
        Err(e) => {
            let (status, message) = page_error(e)?;
            Ok(page(status, views::message("Authentication", &message)))
        }
    }
}
