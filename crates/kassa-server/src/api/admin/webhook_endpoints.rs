//! Admin webhook endpoints, the delivery log and resending events (SPEC §9).

use crate::api::auth::Admin;
use crate::api::extract::{ApiJson, ApiQuery};
use crate::api::pagination::{List, ListParams, to_page};
use crate::error::{ApiResult, ErrorBody};
use crate::objects::webhook_endpoint::{DeletedWebhookEndpoint, EventResent, WebhookDeliveryAttempt, WebhookEndpoint};
use crate::services::webhook_endpoints::{
    self as service, CreateEndpointInput, ResendInput, RollSecretInput, UpdateEndpointInput,
};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook_endpoint, list_webhook_endpoints))
        .routes(routes!(get_webhook_endpoint, update_webhook_endpoint, delete_webhook_endpoint))
        .routes(routes!(roll_webhook_endpoint_secret))
        .routes(routes!(list_webhook_endpoint_deliveries))
        .routes(routes!(list_event_deliveries))
        .routes(routes!(resend_event))
}

/// Create a webhook endpoint. The answer holds its signing `secret` (`whsec_…`), shown this
/// once. URLs on private or loopback addresses are refused unless `webhooks.allow_private_urls`.
#[utoipa::path(post, path = "/admin/webhook-endpoints", tag = "Webhook endpoints", request_body = CreateEndpointInput,
    security(("secret_key" = [])), responses((status = 200, body = WebhookEndpoint), (status = "4XX", body = ErrorBody)))]
async fn create_webhook_endpoint(
    State(app): State<AppState>,
    _: Admin,
    ApiJson(input): ApiJson<CreateEndpointInput>,
) -> ApiResult<Json<WebhookEndpoint>> {
    Ok(Json(service::create(&app, input).await?))
}

/// List webhook endpoints, newest first.
#[utoipa::path(get, path = "/admin/webhook-endpoints", tag = "Webhook endpoints", params(ListParams),
    security(("secret_key" = [])), responses((status = 200, body = List<WebhookEndpoint>), (status = "4XX", body = ErrorBody)))]
async fn list_webhook_endpoints(
    State(app): State<AppState>,
    _: Admin,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<List<WebhookEndpoint>>> {
    let listed = service::list(&app, &q.page()?).await?;
    Ok(Json(List::new("/admin/webhook-endpoints", listed)))
}

/// Retrieve a webhook endpoint (without its secret).
#[utoipa::path(get, path = "/admin/webhook-endpoints/{id}", tag = "Webhook endpoints", params(("id" = String, Path)),
    security(("secret_key" = [])), responses((status = 200, body = WebhookEndpoint), (status = "4XX", body = ErrorBody)))]
async fn get_webhook_endpoint(
    State(app): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookEndpoint>> {
    Ok(Json(service::get(&app, &id).await?))
}

/// Update a webhook endpoint; `disabled` turns it off and on.
#[utoipa::path(post, path = "/admin/webhook-endpoints/{id}", tag = "Webhook endpoints", params(("id" = String, Path)),
    request_body = UpdateEndpointInput, security(("secret_key" = [])),
    responses((status = 200, body = WebhookEndpoint), (status = "4XX", body = ErrorBody)))]
async fn update_webhook_endpoint(
    State(app): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<UpdateEndpointInput>,
) -> ApiResult<Json<WebhookEndpoint>> {
    Ok(Json(service::update(&app, &id, input).await?))
}

/// Delete a webhook endpoint with its deliveries and their log.
#[utoipa::path(delete, path = "/admin/webhook-endpoints/{id}", tag = "Webhook endpoints", params(("id" = String, Path)),
    security(("secret_key" = [])), responses((status = 200, body = DeletedWebhookEndpoint), (status = "4XX", body = ErrorBody)))]
async fn delete_webhook_endpoint(
    State(app): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<DeletedWebhookEndpoint>> {
    Ok(Json(service::delete(&app, &id).await?))
}

/// Roll the signing secret: the answer holds the new `secret`, shown this once; the previous
/// one keeps signing beside it (a second `v1` in `Stripe-Signature`) for `expires_in` seconds.
#[utoipa::path(post, path = "/admin/webhook-endpoints/{id}/roll-secret", tag = "Webhook endpoints",
    params(("id" = String, Path)), request_body = RollSecretInput, security(("secret_key" = [])),
    responses((status = 200, body = WebhookEndpoint), (status = "4XX", body = ErrorBody)))]
async fn roll_webhook_endpoint_secret(
    State(app): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<RollSecretInput>,
) -> ApiResult<Json<WebhookEndpoint>> {
    Ok(Json(service::roll_secret(&app, &id, input).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DeliveryListParams {
    /// `true`: only failed attempts.
    failed: Option<bool>,
    /// 1 to 100, default 10.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    starting_after: Option<String>,
    ending_before: Option<String>,
}

/// The delivery log of an endpoint: every attempt, newest first.
#[utoipa::path(get, path = "/admin/webhook-endpoints/{id}/deliveries", tag = "Webhook endpoints",
    params(("id" = String, Path), DeliveryListParams), security(("secret_key" = [])),
    responses((status = 200, body = List<WebhookDeliveryAttempt>), (status = "4XX", body = ErrorBody)))]
async fn list_webhook_endpoint_deliveries(
    State(app): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DeliveryListParams>,
) -> ApiResult<Json<List<WebhookDeliveryAttempt>>> {
    let page = to_page(q.limit, &q.starting_after, &q.ending_before)?;
    let listed = service::endpoint_attempts(&app, &id, q.failed.unwrap_or(false), &page).await?;
    Ok(Json(List::new(format!("/admin/webhook-endpoints/{id}/deliveries"), listed)))
}

/// The delivery log of an event: every attempt to every endpoint, newest first.
#[utoipa::path(get, path = "/admin/events/{id}/deliveries", tag = "Events", params(("id" = String, Path), ListParams),
    security(("secret_key" = [])),
    responses((status = 200, body = List<WebhookDeliveryAttempt>), (status = "4XX", body = ErrorBody)))]
async fn list_event_deliveries(
    State(app): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<List<WebhookDeliveryAttempt>>> {
    let listed = service::event_attempts(&app, &id, &q.page()?).await?;
    Ok(Json(List::new(format!("/admin/events/{id}/deliveries"), listed)))
}

/// Send an event again: to one endpoint, or to every enabled endpoint subscribed to its type.
#[utoipa::path(post, path = "/admin/events/{id}/resend", tag = "Events", params(("id" = String, Path)),
    request_body = ResendInput, security(("secret_key" = [])),
    responses((status = 200, body = EventResent), (status = "4XX", body = ErrorBody)))]
async fn resend_event(
    State(app): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<ResendInput>,
) -> ApiResult<Json<EventResent>> {
    Ok(Json(service::resend(&app, &id, input).await?))
}
