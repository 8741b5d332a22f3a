//! Subscriptions and their invoices, for the merchant's backend.

use crate::api::IdempotencyKeyHeader;
use crate::api::auth::Admin;
use crate::api::extract::ApiQuery;
use crate::api::idempotency::Idempotent;
use crate::api::pagination::{List, to_page};
use crate::error::{ApiResult, ErrorBody};
use crate::objects::billing::Invoice;
use crate::objects::customer::Subscription;
use crate::services::invoices;
use crate::services::subscriptions::{self, CancelInput, CreateSubscriptionInput, UpdateSubscriptionInput};
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
        .routes(routes!(create_subscription, list_subscriptions))
        .routes(routes!(get_subscription, update_subscription))
        .routes(routes!(cancel_subscription))
        .routes(routes!(resume_subscription))
        .routes(routes!(list_invoices))
        .routes(routes!(get_invoice))
}

/// Start a subscription for a customer with a saved payment method: its first invoice is
/// paid at once, off-session (a trial's first invoice is zero). A declined first payment
/// leaves it `incomplete` with the invoice open.
#[utoipa::path(post, path = "/admin/subscriptions", tag = "Subscriptions", request_body = CreateSubscriptionInput,
    params(IdempotencyKeyHeader), security(("secret_key" = [])),
    responses((status = 200, body = Subscription), (status = "4XX", body = ErrorBody)))]
async fn create_subscription(
    State(app): State<AppState>,
    admin: Admin,
    req: Idempotent<CreateSubscriptionInput>,
) -> ApiResult<Response> {
    let body = req.body;
    let work = async { subscriptions::create(&app, body).await };
    req.request.staged(&app, &admin.idempotency_scope(), work).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct SubscriptionListParams {
    customer: Option<String>,
    /// `incomplete`, `trialing`, `active`, `past_due`, `canceled`, `unpaid` or `incomplete_expired`.
    status: Option<String>,
    /// 1 to 100, default 10.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    starting_after: Option<String>,
    ending_before: Option<String>,
}

/// List subscriptions, newest first.
#[utoipa::path(get, path = "/admin/subscriptions", tag = "Subscriptions", params(SubscriptionListParams),
    security(("secret_key" = [])), responses((status = 200, body = List<Subscription>), (status = "4XX", body = ErrorBody)))]
async fn list_subscriptions(
    State(app): State<AppState>,
    _: Admin,
    ApiQuery(q): ApiQuery<SubscriptionListParams>,
) -> ApiResult<Json<List<Subscription>>> {
    let page = to_page(q.limit, &q.starting_after, &q.ending_before)?;
    let listed = subscriptions::list(&app, q.customer.as_deref(), q.status.as_deref(), &page).await?;
    Ok(Json(List::new("/admin/subscriptions", listed)))
}

/// Retrieve a subscription.
#[utoipa::path(get, path = "/admin/subscriptions/{id}", tag = "Subscriptions", security(("secret_key" = [])),
    params(("id" = String, Path)), responses((status = 200, body = Subscription), (status = "4XX", body = ErrorBody)))]
async fn get_subscription(
    State(app): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<Subscription>> {
    Ok(Json(subscriptions::get(&app, &id).await?))
}

/// Change the price or quantity — an upgrade at once with a proration invoice charged right
/// away (`proration_behavior=create_prorations`, the default), a downgrade at the period end —
/// or the payment method.
#[utoipa::path(post, path = "/admin/subscriptions/{id}", tag = "Subscriptions", request_body = UpdateSubscriptionInput,
    params(("id" = String, Path), IdempotencyKeyHeader), security(("secret_key" = [])),
    responses((status = 200, body = Subscription), (status = "4XX", body = ErrorBody)))]
async fn update_subscription(
    State(app): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    req: Idempotent<UpdateSubscriptionInput>,
) -> ApiResult<Response> {
    let body = req.body;
    let work = async { subscriptions::update(&app, &id, body).await };
    req.request.staged(&app, &admin.idempotency_scope(), work).await
}

/// Cancel now (open invoices are voided), or at the period end with `at_period_end`.
#[utoipa::path(post, path = "/admin/subscriptions/{id}/cancel", tag = "Subscriptions", request_body = CancelInput,
    params(("id" = String, Path), IdempotencyKeyHeader), security(("secret_key" = [])),
    responses((status = 200, body = Subscription), (status = "4XX", body = ErrorBody)))]
async fn cancel_subscription(
    State(app): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    req: Idempotent<CancelInput>,
) -> ApiResult<Response> {
    let body = req.body;
    let work = async { subscriptions::cancel(&app, &id, body, None).await };
    req.request.staged(&app, &admin.idempotency_scope(), work).await
}

/// Undo a cancel at the period end.
#[utoipa::path(post, path = "/admin/subscriptions/{id}/resume", tag = "Subscriptions",
    params(("id" = String, Path), IdempotencyKeyHeader), security(("secret_key" = [])),
    responses((status = 200, body = Subscription), (status = "4XX", body = ErrorBody)))]
async fn resume_subscription(
    State(app): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    req: Idempotent<serde_json::Value>,
) -> ApiResult<Response> {
    if req.body.as_object().is_some_and(|o| !o.is_empty()) {
        return Err(crate::error::ApiError::invalid("body", "resume takes no parameters."));
    }
    let work = async { subscriptions::resume(&app, &id, None).await };
    req.request.staged(&app, &admin.idempotency_scope(), work).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct InvoiceListParams {
    subscription: Option<String>,
    customer: Option<String>,
    /// `draft`, `open`, `paid`, `void` or `uncollectible`.
    status: Option<String>,
    /// 1 to 100, default 10.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    starting_after: Option<String>,
    ending_before: Option<String>,
}

/// List invoices, newest first.
#[utoipa::path(get, path = "/admin/invoices", tag = "Subscriptions", params(InvoiceListParams),
    security(("secret_key" = [])), responses((status = 200, body = List<Invoice>), (status = "4XX", body = ErrorBody)))]
async fn list_invoices(
    State(app): State<AppState>,
    _: Admin,
    ApiQuery(q): ApiQuery<InvoiceListParams>,
) -> ApiResult<Json<List<Invoice>>> {
    let page = to_page(q.limit, &q.starting_after, &q.ending_before)?;
    let listed =
        invoices::list(&app, q.subscription.as_deref(), q.customer.as_deref(), q.status.as_deref(), &page).await?;
    Ok(Json(List::new("/admin/invoices", listed)))
}

/// Retrieve an invoice.
#[utoipa::path(get, path = "/admin/invoices/{id}", tag = "Subscriptions", security(("secret_key" = [])),
    params(("id" = String, Path)), responses((status = 200, body = Invoice), (status = "4XX", body = ErrorBody)))]
async fn get_invoice(State(app): State<AppState>, _: Admin, Path(id): Path<String>) -> ApiResult<Json<Invoice>> {
    Ok(Json(invoices::get(&app, &id).await?))
}
