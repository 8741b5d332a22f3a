//! Admin customers.

use crate::api::IdempotencyKeyHeader;
use crate::api::auth::Admin;
use crate::api::extract::ApiQuery;
use crate::api::idempotency::Idempotent;
use crate::api::pagination::{List, ListParams, to_page};
use crate::error::{ApiResult, ErrorBody};
use crate::objects::customer::{Customer, Subscription};
use crate::services::customers::{self, CreateCustomerInput, UpdateCustomerInput};
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
        .routes(routes!(create_customer, list_customers))
        .routes(routes!(get_customer, update_customer))
        .routes(routes!(list_customer_subscriptions))
}

/// Create a customer: with the default pricing model (unless given), its free default
/// subscription, `customer.created` and `subscription.created` events, and — right after —
/// the processor customer.
#[utoipa::path(post, path = "/admin/customers", tag = "Customers", request_body = CreateCustomerInput,
    params(IdempotencyKeyHeader), security(("secret_key" = [])),
    responses((status = 200, body = Customer), (status = "4XX", body = ErrorBody)))]
async fn create_customer(
    State(app): State<AppState>,
    admin: Admin,
    req: Idempotent<CreateCustomerInput>,
) -> ApiResult<Response> {
    let now = app.clock.now();
    let body = req.body;
    let (response, created) = req
        .request
        .local_returning(&app, &admin.idempotency_scope(), move |tx| {
            Box::pin(customers::create_from_admin(tx, now, body))
        })
        .await?;
    if let Some(c) = created {
        customers::after_commit(&app, &c.id);
    }
    Ok(response)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct CustomerListParams {
    /// Only customers with this email (any case).
    email: Option<String>,
    /// 1 to 100, default 10.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    starting_after: Option<String>,
    ending_before: Option<String>,
}

/// List customers, newest first.
#[utoipa::path(get, path = "/admin/customers", tag = "Customers", params(CustomerListParams), security(("secret_key" = [])),
    responses((status = 200, body = List<Customer>), (status = "4XX", body = ErrorBody)))]
async fn list_customers(
    State(app): State<AppState>,
    _: Admin,
    ApiQuery(q): ApiQuery<CustomerListParams>,
) -> ApiResult<Json<List<Customer>>> {
    let page = to_page(q.limit, &q.starting_after, &q.ending_before)?;
    let listed = customers::list(&app, q.email.as_deref(), &page).await?;
    Ok(Json(List::new("/admin/customers", listed)))
}

/// Retrieve a customer.
#[utoipa::path(get, path = "/admin/customers/{id}", tag = "Customers", security(("secret_key" = [])),
    params(("id" = String, Path)), responses((status = 200, body = Customer), (status = "4XX", body = ErrorBody)))]
async fn get_customer(State(app): State<AppState>, _: Admin, Path(id): Path<String>) -> ApiResult<Json<Customer>> {
    Ok(Json(customers::get(&app, &id).await?))
}

/// Update a customer.
#[utoipa::path(post, path = "/admin/customers/{id}", tag = "Customers", request_body = UpdateCustomerInput,
    params(("id" = String, Path), IdempotencyKeyHeader), security(("secret_key" = [])),
    responses((status = 200, body = Customer), (status = "4XX", body = ErrorBody)))]
async fn update_customer(
    State(app): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    req: Idempotent<UpdateCustomerInput>,
) -> ApiResult<Response> {
    let now = app.clock.now();
    let body = req.body;
    req.request
        .local(&app, &admin.idempotency_scope(), move |tx| {
            Box::pin(async move { customers::update_from_admin(tx, now, &id, body).await })
        })
        .await
}

/// A customer's subscriptions, newest first.
#[utoipa::path(get, path = "/admin/customers/{id}/subscriptions", tag = "Customers", security(("secret_key" = [])),
    params(("id" = String, Path), ListParams),
    responses((status = 200, body = List<Subscription>), (status = "4XX", body = ErrorBody)))]
async fn list_customer_subscriptions(
    State(app): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<List<Subscription>>> {
    let listed = customers::subscriptions(&app, &id, &q.page()?).await?;
    Ok(Json(List::new(format!("/admin/customers/{id}/subscriptions"), listed)))
}
