//! Controls of the test processor for tests and demos (secret key): the failure, idempotency
//! and stall switches, and settling a checkout session's bank debit.

use super::{api_error, test_processor};
use crate::api::IdempotencyKeyHeader;
use crate::api::auth::Admin;
use crate::api::idempotency::Idempotent;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(control)).routes(routes!(settle))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ControlRequest {
    /// `false` makes every processor call fail as if Stripe were down; `true` restores it.
    available: Option<bool>,
    /// `true` makes the processor ignore `Idempotency-Key`s, as localstripe does (and as Stripe
    /// does once a key expired): a repeated call makes a second charge.
    ignore_idempotency_keys: Option<bool>,
    /// `true` stalls every processor call (like a processor stopped with `SIGSTOP`): calls wait
    /// and run once it is set back to `false`, even if their caller gave up meanwhile.
    stalled: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct ControlState {
    /// Always `test_processor.control`.
    object: &'static str,
    available: bool,
    ignore_idempotency_keys: bool,
    stalled: bool,
}

/// Switch the test processor's misbehaviours on or off: an outage, ignoring idempotency keys,
/// a stall. Fields left out keep their state. Applies to this server process.
#[utoipa::path(post, path = "/test-processor/v1/control", tag = "Test processor", request_body = ControlRequest,
    params(IdempotencyKeyHeader), security(("secret_key" = [])),
    responses((status = 200, body = ControlState), (status = "4XX", body = ErrorBody)))]
async fn control(State(app): State<AppState>, admin: Admin, req: Idempotent<ControlRequest>) -> ApiResult<Response> {
    let tp = test_processor(&app)?;
    let ControlRequest { available, ignore_idempotency_keys, stalled } = req.body;
    if available.is_none() && ignore_idempotency_keys.is_none() && stalled.is_none() {
        return Err(ApiError::InvalidRequest {
            code: "parameter_missing",
            message: "Pass at least one switch: available, ignore_idempotency_keys or stalled.".into(),
            param: Some("available".into()),
        });
    }
    req.request
        .staged(&app, &admin.idempotency_scope(), async move {
            if let Some(available) = available {
                tp.set_available(available);
            }
            if let Some(ignore) = ignore_idempotency_keys {
                tp.set_ignore_idempotency_keys(ignore);
            }
            if let Some(stalled) = stalled {
                tp.set_stalled(stalled);
            }
            Ok(ControlState {
                object: "test_processor.control",
                available: tp.is_available(),
                ignore_idempotency_keys: tp.ignores_idempotency_keys(),
                stalled: tp.is_stalled(),
            })
        })
        .await
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    Failed,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettleRequest {
    outcome: Outcome,
}

/// Settle a checkout session's bank debit: `succeeded` pays it
/// (`checkout.session.async_payment_succeeded`), `failed` fails it
/// (`checkout.session.async_payment_failed`).
#[utoipa::path(post, path = "/test-processor/v1/checkout/sessions/{id}/settle", tag = "Test processor",
    request_body = SettleRequest, params(("id" = String, Path), IdempotencyKeyHeader), security(("secret_key" = [])),
    responses((status = 200, description = "The Stripe-shaped `checkout.session`", body = Object),
        (status = "4XX", body = ErrorBody)))]
async fn settle(
    State(app): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    req: Idempotent<SettleRequest>,
) -> ApiResult<Response> {
    let tp = test_processor(&app)?;
    let succeeded = matches!(req.body.outcome, Outcome::Succeeded);
    req.request
        .staged(
            &app,
            &admin.idempotency_scope(),
            async move { tp.settle_async(&id, succeeded).await.map_err(api_error) },
        )
        .await
}
