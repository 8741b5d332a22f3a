//! The stylesheet and script of the hosted pages, served by Kassa so that the pages'
//! Content-Security-Policy allows neither inline style nor inline script. The pages link them
//! with a hash of their content (`?v=…`), so they can be cached for good and still change with
//! a new Kassa.

use super::test_processor;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
    /// Where pages link it: its path with the content's hash.
    href: String,
}

impl Asset {
    fn new(name: &'static str, content_type: &'static str, body: &'static str) -> Asset {
        let hash = hex::encode(&Sha256::digest(body.as_bytes())[..6]);
        Asset { name, content_type, body, href: format!("/test-processor/assets/{name}?v={hash}") }
    }
}

static STYLESHEET: LazyLock<Asset> =
    LazyLock::new(|| Asset::new("hosted.css", "text/css; charset=utf-8", include_str!("assets/hosted.css")));
static SCRIPT: LazyLock<Asset> =
    LazyLock::new(|| Asset::new("hosted.js", "text/javascript; charset=utf-8", include_str!("assets/hosted.js")));

/// Where the pages link their stylesheet.
pub fn stylesheet_href() -> &'static str {
    &STYLESHEET.href
}

/// Where the pages link their script.
pub fn script_href() -> &'static str {
    &SCRIPT.href
}

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
    let asset = [&*STYLESHEET, &*SCRIPT]
        .into_iter()
        .find(|a| a.name == name)
        .ok_or_else(|| ApiError::not_found("asset", name))?;
    Ok((
        [(header::CONTENT_TYPE, asset.content_type), (header::CACHE_CONTROL, "public, max-age=31536000, immutable")],
        asset.body,
    )
        .into_response())
}
