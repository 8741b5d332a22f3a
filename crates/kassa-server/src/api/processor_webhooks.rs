//! `POST /webhooks/stripe`: events from the payment processor (Stripe, or the built-in
//! test processor, which signs and delivers exactly like Stripe).

use crate::error::{ApiError, ErrorBody};
use crate::services::processor_webhooks;
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stripe_webhook))
}

#[derive(Serialize, ToSchema)]
pub struct Received {
    pub received: bool,
}

/// Receive a processor event. 200 once handled (or for types Kassa does not use), 400 for a
/// bad signature, 5xx when handling failed (the processor retries).
#[utoipa::path(post, path = "/webhooks/stripe", tag = "Processor webhooks",
    params(("Stripe-Signature" = String, Header, description = "t=…,v1=… (HMAC-SHA256 of t.body)")),
    request_body(content = Object, content_type = "application/json"),
    responses((status = 200, body = Received), (status = 400, body = ErrorBody), (status = 500, body = ErrorBody)))]
async fn stripe_webhook(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Received>, ApiError> {
    let signature = headers.get("stripe-signature").and_then(|v| v.to_str().ok());
    match processor_webhooks::receive(&app, &body, signature).await {
        Ok(()) => Ok(Json(Received { received: true })),
        Err(e) if e.status().is_client_error() && !matches!(e, ApiError::NotFound { .. }) => Err(e),
        Err(e) => {
            tracing::warn!(error = %e, "processor event handling failed; the processor will retry");
            // Whatever went wrong, the processor must retry: never answer 4xx for our faults.
            Err(match e {
                ApiError::Internal(_) | ApiError::ProcessorUnavailable(_) => e,
                other => ApiError::Internal(anyhow::anyhow!("{other}")),
            })
        }
    }
}
