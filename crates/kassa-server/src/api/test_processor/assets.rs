//! Serves the hosted pages' stylesheet and script (`kassa_sandbox::pages::assets`), cached
//! for good: their links carry a hash of their content.

use super::test_processor;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use kassa_sandbox::pages::assets;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(asset))
}

/// The hosted pages' stylesheet (`hosted.css`) and script (`hosted.js`).
#[utoipa::path(get, path = "/test-processor/assets/{name}", tag = "Test processor",
    params(("name" = String, Path, description = "`hosted.css` or `hosted.js`")),
    responses((status = 200, description = "The file", content_type = "text/css", body = String),
        (status = 404, body = ErrorBody)))]
async fn asset(State(app): State<AppState>, Path(name): Path<String>) -> ApiResult<Response> {
    test_processor(&app)?;
    let asset = assets::find(&name).ok_or_else(|| ApiError::not_found("asset", name))?;
    Ok((
        [(header::CONTENT_TYPE, asset.content_type), (header::CACHE_CONTROL, "public, max-age=31536000, immutable")],
        asset.body,
    )
        .into_response())
}
