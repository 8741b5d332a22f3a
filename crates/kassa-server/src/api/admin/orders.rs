//! Admin orders and payments.

use crate::api::IdempotencyKeyHeader;
use crate::api::auth::Admin;
use crate::api::extract::ApiQuery;
use crate::api::idempotency::Idempotent;
use crate::api::pagination::{List, to_page};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::objects::commerce::{Order, Payment, Refund};
use crate::services::orders::{self, CaptureInput, RefundInput};
use crate::services::payments;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_orders))
        .routes(routes!(get_order))
        .routes(routes!(capture_order))
        .routes(routes!(cancel_order))
        .routes(routes!(refund_order, list_refunds))
        .routes(routes!(fulfill_order))
        .routes(routes!(list_payments))
        .routes(routes!(get_payment))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct OrderListParams {
    /// Only this customer's orders.
    customer: Option<String>,
    /// 1 to 100, default 10.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    starting_after: Option<String>,
    ending_before: Option<String>,
}

/// List orders, newest first.
#[utoipa::path(get, path = "/admin/orders", tag = "Orders", params(OrderListParams), security(("secret_key" = [])),
    responses((status = 200, body = List<Order>), (status = "4XX", body = ErrorBody)))]
async fn list_orders(
    State(app): State<AppState>,
    _: Admin,
    ApiQuery(q): ApiQuery<OrderListParams>,
) -> ApiResult<Json<List<Order>>> {
    let page = to_page(q.limit, &q.starting_after, &q.ending_before)?;
    Ok(Json(List::new("/admin/orders", orders::list(&app.store, q.customer.as_deref(), &page).await?)))
}

/// Retrieve an order.
#[utoipa::path(get, path = "/admin/orders/{id}", tag = "Orders", params(("id" = String, Path)), security(("secret_key" = [])),
    responses((status = 200, body = Order), (status = "4XX", body = ErrorBody)))]
async fn get_order(State(app): State<AppState>, _: Admin, Path(id): Path<String>) -> ApiResult<Json<Order>> {
    Ok(Json(orders::load(&app.store, &id).await?))
}

/// Capture an authorized order, fully or partially (the rest of the authorization is
/// released).
#[utoipa::path(post, path = "/admin/orders/{id}/capture", tag = "Orders", request_body = CaptureInput,
    params(("id" = String, Path), IdempotencyKeyHeader), security(("secret_key" = [])),
    responses((status = 200, body = Order), (status = "4XX", body = ErrorBody)))]
async fn capture_order(
    State(app): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    req: Idempotent<CaptureInput>,
) -> ApiResult<Response> {
    let body = req.body;
    let work = async { orders::capture(&app, &id, body, None).await };
    req.request.staged(&app, &admin.idempotency_scope(), work).await
}

/// Cancel an unfulfilled order: release the authorization (or refund what was captured) and
/// put its stock back.
#[utoipa::path(post, path = "/admin/orders/{id}/cancel", tag = "Orders",
    params(("id" = String, Path), IdempotencyKeyHeader), security(("secret_key" = [])),
    responses((status = 200, body = Order), (status = "4XX", body = ErrorBody)))]
async fn cancel_order(
    State(app): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    req: Idempotent<serde_json::Value>,
) -> ApiResult<Response> {
    if req.body.as_object().is_some_and(|o| !o.is_empty()) {
        return Err(ApiError::invalid("body", "cancel takes no parameters."));
    }
    let work = async { orders::cancel(&app, &id, None).await };
    req.request.staged(&app, &admin.idempotency_scope(), work).await
}

/// Refund part or all of what was captured (never more).
#[utoipa::path(post, path = "/admin/orders/{id}/refunds", tag = "Orders", request_body = RefundInput,
    params(("id" = String, Path), IdempotencyKeyHeader), security(("secret_key" = [])),
    responses((status = 200, body = Refund), (status = "4XX", body = ErrorBody)))]
async fn refund_order(
    State(app): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    req: Idempotent<RefundInput>,
) -> ApiResult<Response> {
    let body = req.body;
    let work = async { orders::refund(&app, &id, body, None).await };
    req.request.staged(&app, &admin.idempotency_scope(), work).await
}

/// An order's refunds.
#[utoipa::path(get, path = "/admin/orders/{id}/refunds", tag = "Orders", params(("id" = String, Path)), security(("secret_key" = [])),
    responses((status = 200, body = Vec<Refund>), (status = "4XX", body = ErrorBody)))]
async fn list_refunds(State(app): State<AppState>, _: Admin, Path(id): Path<String>) -> ApiResult<Json<Vec<Refund>>> {
    Ok(Json(orders::refunds(&app.store, &id).await?))
}

/// Mark an order fulfilled (shipped).
#[utoipa::path(post, path = "/admin/orders/{id}/fulfill", tag = "Orders",
    params(("id" = String, Path), IdempotencyKeyHeader), security(("secret_key" = [])),
    responses((status = 200, body = Order), (status = "4XX", body = ErrorBody)))]
async fn fulfill_order(
    State(app): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    req: Idempotent<serde_json::Value>,
) -> ApiResult<Response> {
    let now = app.clock.now();
    req.request
        .local(&app, &admin.idempotency_scope(), move |tx| Box::pin(async move { orders::fulfill(tx, now, &id).await }))
        .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct PaymentListParams {
    customer: Option<String>,
    /// `succeeded`, `failed`, `void_pending`, …
    status: Option<String>,
    /// 1 to 100, default 10.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    starting_after: Option<String>,
    ending_before: Option<String>,
}

/// List payments (every attempt), newest first.
#[utoipa::path(get, path = "/admin/payments", tag = "Orders", params(PaymentListParams), security(("secret_key" = [])),
    responses((status = 200, body = List<Payment>), (status = "4XX", body = ErrorBody)))]
async fn list_payments(
    State(app): State<AppState>,
    _: Admin,
    ApiQuery(q): ApiQuery<PaymentListParams>,
) -> ApiResult<Json<List<Payment>>> {
    let page = to_page(q.limit, &q.starting_after, &q.ending_before)?;
    let listed = payments::list(&app, q.customer.as_deref(), q.status.as_deref(), &page).await?;
    Ok(Json(List::new("/admin/payments", listed)))
}

/// Retrieve a payment.
#[utoipa::path(get, path = "/admin/payments/{id}", tag = "Orders", params(("id" = String, Path)), security(("secret_key" = [])),
    responses((status = 200, body = Payment), (status = "4XX", body = ErrorBody)))]
async fn get_payment(State(app): State<AppState>, _: Admin, Path(id): Path<String>) -> ApiResult<Json<Payment>> {
    Ok(Json(payments::get(&app, &id).await?))
}
