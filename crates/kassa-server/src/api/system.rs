//! Liveness, readiness, metrics and the API's own documentation.

use crate::state::AppState;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde::Serialize;
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
        .routes(routes!(metrics))
        .routes(routes!(openapi_json))
}

#[derive(Serialize, ToSchema)]
pub struct Status {
    /// `ok`, or `unavailable` when the database does not answer.
    pub status: &'static str,
}

/// Alive: the process answers HTTP.
#[utoipa::path(get, path = "/health", tag = "System", responses((status = 200, body = Status)))]
async fn health() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// Ready: the database answers too.
#[utoipa::path(get, path = "/ready", tag = "System",
    responses((status = 200, body = Status), (status = 503, body = Status)))]
async fn ready(State(app): State<AppState>) -> impl IntoResponse {
    match app.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(Status { status: "ok" })),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, Json(Status { status: "unavailable" }))
        }
    }
}

/// Prometheus text format: `http_requests_total` and `http_request_duration_seconds` by
/// route, and the SQL statements and transactions this process has run.
#[utoipa::path(get, path = "/metrics", tag = "System",
    responses((status = 200, content_type = "text/plain", body = String)))]
async fn metrics() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], crate::metrics::render())
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "System", responses((status = 200, body = Object)))]
async fn openapi_json(Extension(doc): Extension<Arc<utoipa::openapi::OpenApi>>) -> impl IntoResponse {
    Json(doc.as_ref().clone())
}
