//! The HTTP API. Handlers extract, call one service function, and serialize; every route is
//! registered through `utoipa_axum::routes!`, so it cannot exist without its OpenAPI entry.

pub mod admin;
pub mod auth;
pub mod cors;
pub mod extract;
pub mod idempotency;
pub mod invoice_pages;
pub mod keep_alive;
pub mod limits;
pub mod nul;
pub mod pagination;
pub mod portal_pages;
pub mod processor_webhooks;
pub mod rate_limit;
pub mod request_id;
pub mod security_headers;
pub mod store;
pub mod system;
pub mod test_processor;

use crate::error::ApiError;
use crate::state::AppState;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use std::sync::Arc;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Kassa",
        description = "Self-hostable checkout and payments server. Admin API: `Authorization: Bearer sk_…`. \
                       Store API: `Kassa-Publishable-Key: pk_…`, and for a signed-in customer \
                       `Authorization: Bearer <customer JWT>`. What a guest owns (a cart, a checkout \
                       session, the order paid from a cart) opens with its `client_secret` as well, sent \
                       as `Kassa-Client-Secret` (or `client_secret` in a link). Money is integer minor \
                       units. Mutating requests accept `Idempotency-Key`. Over a key's rate limit the \
                       answer is 429 `rate_limit_error` with `Retry-After` (seconds)."
    ),
    modifiers(&SecuritySchemes),
    components(schemas(crate::error::ErrorBody))
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "secret_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("sk_…").build()),
        );
        components.add_security_scheme(
            "publishable_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new(auth::PUBLISHABLE_KEY_HEADER))),
        );
        components.add_security_scheme(
            "customer_jwt",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

/// All routes with their documentation, before state is attached.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(system::routes())
        .merge(admin::routes())
        .merge(store::routes())
        .merge(test_processor::routes())
        .merge(processor_webhooks::routes())
        .merge(invoice_pages::routes())
        // The billing portal's pages (issue 15).
        .merge(portal_pages::routes())
}

/// The OpenAPI document of the whole API, with the default settings' bounds.
pub fn openapi() -> utoipa::openapi::OpenApi {
    document(routes().split_for_parts().1, &crate::config::Settings::default())
}

/// Finishes the generated document: operation ids made unique (handlers of the admin and the
/// store API share names such as `list_orders`), and the bounds the settings configure.
fn document(mut doc: utoipa::openapi::OpenApi, settings: &crate::config::Settings) -> utoipa::openapi::OpenApi {
    use std::collections::HashMap;
    let operations =
        || doc.paths.paths.iter().flat_map(|(path, item)| [&item.get, &item.post, &item.delete].map(|op| (path, op)));
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (_, op) in operations() {
        if let Some(id) = op.as_ref().and_then(|o| o.operation_id.clone()) {
            *seen.entry(id).or_default() += 1;
        }
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        let area = path.trim_start_matches('/').split('/').next().unwrap_or_default().replace('-', "_");
        for op in [&mut item.get, &mut item.post, &mut item.delete].into_iter().flatten() {
            if let Some(id) = &op.operation_id
                && seen.get(id).copied().unwrap_or(0) > 1
            {
                op.operation_id = Some(format!("{area}_{id}"));
            }
        }
    }
    admin::document_webhooks(&mut doc);
    limits::document(doc, settings)
}

/// The application: routes, documentation, middleware.
pub fn router(state: AppState) -> Router {
    // Install the recorder before the first request is counted.
    crate::metrics::handle();
    let (router, openapi) = routes().split_for_parts();
    // The merchant's dashboard: pages, not API (no OpenAPI entries), under the same layers.
    let router = router.merge(crate::dashboard::routes());
    let openapi = document(openapi, &state.settings);
    let cors = cors::layer(&state.settings.server);
    let router = if crate::failpoint::is_enabled("api.internal_error") {
        router.route_layer(axum::middleware::from_fn(crate::failpoint::internal_errors))
    } else {
        router
    };
    router
        .route_layer(axum::middleware::from_fn(nul::reject_in_uri))
        .route_layer(axum::middleware::from_fn(crate::metrics::track))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::jobs::webhook_deliveries::wake_after_write,
        ))
        .fallback(route_not_found)
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::Extension(Arc::new(openapi)))
        .layer(DefaultBodyLimit::max(state.settings.server.body_limit))
        .layer(axum::Extension(extract::BodyLimit(state.settings.server.body_limit)))
        .layer(axum::middleware::from_fn(keep_alive::close_if_body_unread))
        .layer(cors)
        .layer(axum::middleware::from_fn(security_headers::every_response))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(axum::middleware::from_fn(request_id::assign))
        .with_state(state)
}

/// The span of a request, on every line logged while serving it: method, path and request id,
/// never the query (links carry `client_secret`) nor other headers (keys, tokens, client
/// secrets).
fn request_span(req: &Request) -> tracing::Span {
    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %request_id::of(req))
}

async fn route_not_found(req: Request) -> ApiError {
    ApiError::RouteNotFound { method: req.method().to_string(), path: req.uri().path().to_string() }
}

/// Documents the optional `Idempotency-Key` header of a mutating route.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct IdempotencyKeyHeader {
    /// 1 to 255 printable ASCII characters; the same key with the same request replays the
    /// first answer.
    #[param(rename = "Idempotency-Key", min_length = 1, max_length = 255, pattern = "^[!-~]([ -~]{0,253}[!-~])?$")]
    idempotency_key: Option<String>,
}
