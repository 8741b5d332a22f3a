//! A customer's saved payment methods (kept at the processor).

use crate::api::IdempotencyKeyHeader;
use crate::api::auth::Admin;
use crate::api::idempotency::{self, Idempotent};
use crate::api::pagination::List;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::objects::billing::PaymentMethod;
use crate::services::Listed;
use crate::services::payment_methods::{self, AttachInput};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use kassa_domain::ids::new_id;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(attach, list)).routes(routes!(detach)).routes(routes!(make_default))
}

fn no_body(body: &serde_json::Value) -> ApiResult<()> {
    if body.as_object().is_some_and(|o| !o.is_empty()) {
        return Err(ApiError::invalid("body", "This request takes no parameters."));
    }
    Ok(())
}

/// Save a payment method with the customer (under the test processor, a test card shortcut
/// such as `pm_card_visa` makes a fresh one). The first one saved becomes the default.
#[utoipa::path(post, path = "/admin/customers/{id}/payment-methods", tag = "Customers", request_body = AttachInput,
    params(("id" = String, Path), IdempotencyKeyHeader), security(("secret_key" = [])),
    responses((status = 200, body = PaymentMethod), (status = "4XX", body = ErrorBody)))]
async fn attach(
    State(app): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    headers: HeaderMap,
    req: Idempotent<AttachInput>,
) -> ApiResult<Response> {
    // The processor key of this attach: the client's idempotency key when it sent one.
    let request = match headers.get(idempotency::HEADER).and_then(|v| v.to_str().ok()) {
        Some(key) => key.to_string(),
        None => new_id("req"),
    };
    let body = req.body;
    let work = async { payment_methods::attach(&app, &id, &request, body).await };
    req.request.staged(&app, &admin.idempotency_scope(), work).await
}

/// The customer's saved payment methods.
#[utoipa::path(get, path = "/admin/customers/{id}/payment-methods", tag = "Customers", security(("secret_key" = [])),
    params(("id" = String, Path)), responses((status = 200, body = List<PaymentMethod>), (status = "4XX", body = ErrorBody)))]
async fn list(State(app): State<AppState>, _: Admin, Path(id): Path<String>) -> ApiResult<Json<List<PaymentMethod>>> {
    let data = payment_methods::list(&app, &id).await?;
    Ok(Json(List::new(format!("/admin/customers/{id}/payment-methods"), Listed { data, has_more: false })))
}

/// Forget a saved payment method (it can pay nothing any more).
#[utoipa::path(post, path = "/admin/customers/{id}/payment-methods/{payment_method}/detach", tag = "Customers",
    params(("id" = String, Path), ("payment_method" = String, Path), IdempotencyKeyHeader), security(("secret_key" = [])),
    responses((status = 200, body = PaymentMethod), (status = "4XX", body = ErrorBody)))]
async fn detach(
    State(app): State<AppState>,
    admin: Admin,
    Path((id, pm)): Path<(String, String)>,
    req: Idempotent<serde_json::Value>,
) -> ApiResult<Response> {
    no_body(&req.body)?;
    let work = async { payment_methods::detach(&app, &id, &pm).await };
    req.request.staged(&app, &admin.idempotency_scope(), work).await
}

/// Make a saved payment method the customer's default (what subscriptions charge).
#[utoipa::path(post, path = "/admin/customers/{id}/payment-methods/{payment_method}/default", tag = "Customers",
    params(("id" = String, Path), ("payment_method" = String, Path), IdempotencyKeyHeader), security(("secret_key" = [])),
    responses((status = 200, body = PaymentMethod), (status = "4XX", body = ErrorBody)))]
async fn make_default(
    State(app): State<AppState>,
    admin: Admin,
    Path((id, pm)): Path<(String, String)>,
    req: Idempotent<serde_json::Value>,
) -> ApiResult<Response> {
    no_body(&req.body)?;
    let work = async { payment_methods::set_default(&app, &id, &pm).await };
    req.request.staged(&app, &admin.idempotency_scope(), work).await
}
