//! `POST /test-processor/v1/confirmation_tokens`: what Stripe.js does in the browser, turning
//! the card a customer typed into a ConfirmationToken for `pay` calls.

use super::{api_error, test_processor};
use crate::api::IdempotencyKeyHeader;
use crate::api::auth::Storefront;
use crate::api::idempotency::Idempotent;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;
use axum::extract::State;
use axum::response::Response;
use kassa_sandbox::{CardInput, TokenSource};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_confirmation_token))
}

/// A card or a test PaymentMethod shortcut, exactly one of them.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConfirmationToken {
    /// Card details as typed (test cards only: `4242 4242 4242 4242` succeeds,
    /// `4000 0000 0000 0002` is declined, `4000 0027 6000 3184` asks for 3-D Secure, …).
    card: Option<CardParams>,
    /// Instead of a card: a test shortcut such as `pm_card_visa` or `pm_card_chargeDeclined`.
    #[schema(example = "pm_card_visa")]
    payment_method: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardParams {
    /// Digits, spaces allowed.
    #[schema(example = "4242 4242 4242 4242")]
    number: String,
    #[schema(example = 12, minimum = 1, maximum = 12)]
    exp_month: i64,
    /// Four digits, or two (at most 50 years ahead).
    #[schema(example = 2034, minimum = 0, maximum = 9999)]
    exp_year: i64,
    #[schema(example = "123")]
    cvc: Option<String>,
}

/// Create a ConfirmationToken (test processor): the browser's half of a card payment, as
/// Stripe.js makes it. Pass its `id` to a pay call as the confirmation token.
#[utoipa::path(post, path = "/test-processor/v1/confirmation_tokens", tag = "Test processor",
    request_body = CreateConfirmationToken, params(IdempotencyKeyHeader), security(("publishable_key" = [])),
    responses((status = 200, description = "A Stripe-shaped `confirmation_token` object", body = Object),
        (status = "4XX", body = ErrorBody)))]
async fn create_confirmation_token(
    State(app): State<AppState>,
    _: Storefront,
    req: Idempotent<CreateConfirmationToken>,
) -> ApiResult<Response> {
    let tp = test_processor(&app)?;
    let source = match req.body {
        CreateConfirmationToken { card: Some(c), payment_method: None } => {
            TokenSource::Card(CardInput { number: c.number, exp_month: c.exp_month, exp_year: c.exp_year, cvc: c.cvc })
        }
        CreateConfirmationToken { card: None, payment_method: Some(pm) } => TokenSource::PaymentMethod(pm),
        CreateConfirmationToken { card: Some(_), payment_method: Some(_) } => {
            return Err(ApiError::invalid("payment_method", "Pass either card or payment_method, not both."));
        }
        CreateConfirmationToken { card: None, payment_method: None } => return Err(ApiError::missing("card")),
    };
    req.request
        .staged(&app, "store", async move { tp.create_confirmation_token(&source).await.map_err(api_error) })
        .await
}
