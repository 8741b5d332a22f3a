//! The built-in test processor's own endpoints (`/test-processor/*`): what Stripe.js, Stripe's
//! hosted pages and Stripe's dashboard are to Stripe's test mode. They exist only while the
//! `test` processor is configured; otherwise they answer 404.
//!
//! The processor and what its pages show are the `kassa-sandbox` crate's; these handlers add
//! what every Kassa endpoint has (its keys, idempotency, error objects, security headers), which
//! is the server's.

mod assets;
mod control;
pub(crate) mod pages;
mod tokens;

use crate::error::ApiError;
use crate::state::AppState;
use kassa_processors::ProcessorError;
use kassa_sandbox::TestProcessor;
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().merge(tokens::routes()).merge(pages::routes()).merge(assets::routes()).merge(control::routes())
}

/// The test processor, or 404 when Kassa runs with another one.
fn test_processor(app: &AppState) -> Result<Arc<TestProcessor>, ApiError> {
    app.test_processor.clone().ok_or_else(|| {
        ApiError::not_found("test processor", "the test processor is not configured (processor.kind is not test)")
    })
}

/// The codes the test processor refuses requests with, as the API's static codes.
const CODES: &[&str] = &[
    "incorrect_number",
    "invalid_number",
    "invalid_expiry_month",
    "invalid_expiry_year",
    "invalid_cvc",
    "expired_card",
    "resource_missing",
    "parameter_missing",
    "parameter_invalid",
    "parameter_invalid_integer",
    "url_invalid",
    "amount_too_large",
    "payment_method_unavailable",
];

/// The test processor's answer as an API error: refusals are 4xx with their code and
/// parameter, wrong states 409, declines 402, an outage 502.
fn api_error(e: ProcessorError) -> ApiError {
    match e {
        ProcessorError::InvalidRequest { code, message, param } => {
            let code = code.unwrap_or_default();
            if code.ends_with("_unexpected_state") {
                return ApiError::Conflict { code: "state_conflict", message };
            }
            let code = CODES.iter().find(|c| **c == code).copied().unwrap_or("parameter_invalid");
            ApiError::InvalidRequest { code, message, param }
        }
        ProcessorError::NotFound(id) => ApiError::not_found("object", id),
        other => ApiError::from(other),
    }
}
