//! Admin webhook endpoints, the delivery log and resending events (SPEC §9).

use crate::api::IdempotencyKeyHeader;
use crate::api::auth::Admin;
use crate::api::extract::{ApiJson, ApiQuery};
use crate::api::idempotency::Idempotent;
use crate::api::pagination::{List, ListParams, to_page};
use crate::error::{ApiResult, ErrorBody};
use crate::objects::webhook_endpoint::{DeletedWebhookEndpoint, EventResent, WebhookDeliveryAttempt, WebhookEndpoint};
use crate::services::webhook_endpoints::{
    self as service, CreateEndpointInput, ResendInput, RollSecretInput, UpdateEndpointInput,
};
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
        .routes(routes!(create_webhook_endpoint, list_webhook_endpoints))
        .routes(routes!(get_webhook_endpoint, update_webhook_endpoint, delete_webhook_endpoint))
        .routes(routes!(roll_webhook_endpoint_secret))
        .routes(routes!(send_test_event))
        .routes(routes!(list_webhook_endpoint_deliveries))
        .routes(routes!(list_event_deliveries))
        .routes(routes!(resend_event))
}

/// Create a webhook endpoint. The answer holds its signing `secret` (`whsec_…`), shown this
/// once (and again to a replay of the same `Idempotency-Key`). URLs on private or loopback
/// addresses are refused unless `webhooks.allow_private_urls`.
#[utoipa::path(post, path = "/admin/webhook-endpoints", tag = "Webhook endpoints", request_body = CreateEndpointInput,
    params(IdempotencyKeyHeader), security(("secret_key" = [])),
    responses((status = 200, body = WebhookEndpoint), (status = "4XX", body = ErrorBody)))]
async fn create_webhook_endpoint(
    State(app): State<AppState>,
    admin: Admin,
    req: Idempotent<CreateEndpointInput>,
) -> ApiResult<Response> {
    let new = service::prepare_create(&app, req.body).await?;
    let answers = service::SealedSecretAnswer::new(&app);
    req.request
        .local_storing(&app, &admin.idempotency_scope(), &answers, move |tx| Box::pin(service::create_in(tx, new)))
        .await
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
/// A replay of the same `Idempotency-Key` shows the same new secret and rolls nothing.
#[utoipa::path(post, path = "/admin/webhook-endpoints/{id}/roll-secret", tag = "Webhook endpoints",
    params(("id" = String, Path), IdempotencyKeyHeader), request_body = RollSecretInput, security(("secret_key" = [])),
    responses((status = 200, body = WebhookEndpoint), (status = "4XX", body = ErrorBody)))]
async fn roll_webhook_endpoint_secret(
    State(app): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    req: Idempotent<RollSecretInput>,
) -> ApiResult<Response> {
    let roll = service::prepare_roll(&app, &id, req.body)?;
    let answers = service::SealedSecretAnswer::new(&app);
    req.request
        .local_storing(&app, &admin.idempotency_scope(), &answers, move |tx| {
            Box::pin(service::roll_secret_in(tx, roll))
        })
        .await
}

/// Send a signed `webhook_endpoint.test` event to this endpoint only (whatever it subscribed
/// to), delivered and retried like any event; its attempts are in
/// `GET /admin/events/{id}/deliveries`. `kassa webhooks test <endpoint>` calls this and prints
/// the outcome.
#[utoipa::path(post, path = "/admin/webhook-endpoints/{id}/test", tag = "Webhook endpoints",
    params(("id" = String, Path)), security(("secret_key" = [])),
    responses((status = 200, body = EventResent), (status = "4XX", body = ErrorBody)))]
async fn send_test_event(
    State(app): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<EventResent>> {
    Ok(Json(service::send_test(&app, &id).await?))
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

/// Adds the event catalogue as OpenAPI 3.1 `webhooks`: one entry per event type Kassa sends,
/// with the event envelope and the schema of its `data.object`.
///
/// utoipa 5 has no field for `webhooks`; its top-level extensions serialize flattened into the
/// document, so the catalogue goes there under the key `webhooks`.
pub fn document_webhooks(doc: &mut utoipa::openapi::OpenApi) {
    use crate::services::webhook_endpoints::EVENT_TYPES;
    use serde_json::json;
    let known: Vec<String> = doc.components.as_ref().map(|c| c.schemas.keys().cloned().collect()).unwrap_or_default();
    let mut hooks = serde_json::Map::new();
    for (kind, schema) in EVENT_TYPES {
        let object = if known.iter().any(|k| k == schema) {
            json!({"$ref": format!("#/components/schemas/{schema}")})
        } else {
            json!({"type": "object", "description": format!("A {schema} as the admin API shows it.")})
        };
        let envelope = json!({
            "type": "object",
            "required": ["id", "object", "type", "created", "api_version", "data", "livemode", "pending_webhooks"],
            "properties": {
                "id": {"type": "string", "description": "The event's id (`evt_…`), as at `GET /admin/events/{id}`."},
                "object": {"type": "string", "enum": ["event"]},
                "type": {"type": "string", "enum": [kind]},
                "created": {"type": "integer", "description": "Unix seconds."},
                "api_version": {"type": "string"},
                "livemode": {"type": "boolean"},
                "pending_webhooks": {"type": "integer", "description": "Deliveries of this event not yet acknowledged."},
                "data": {"type": "object", "required": ["object"], "properties": {"object": object}},
            }
        });
        hooks.insert(
            (*kind).to_string(),
            json!({"post": {
                "operationId": format!("webhook_{}", kind.replace('.', "_")),
                "summary": format!("`{kind}`: sent to endpoints subscribed to it (or to `*`)"),
                "description": "Signed with `Stripe-Signature` (`t=…,v1=…`; a second `v1` during a secret roll): \
                                verify with the endpoint's `whsec_…` secret and an official Stripe library \
                                (`stripe.Webhook.construct_event`). Answer 2xx within `webhooks.timeout_ms`; \
                                anything else is retried with backoff for about three days.",
                "parameters": [{"name": "Stripe-Signature", "in": "header", "required": true, "schema": {"type": "string"}}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": envelope}}},
                "responses": {"2XX": {"description": "Acknowledged."}}
            }}),
        );
    }
    doc.extensions.get_or_insert_with(Default::default).insert("webhooks".into(), serde_json::Value::Object(hooks));
}
