//! The dashboard's stylesheet, compiled into the binary and linked with a hash of its content
//! (`?v=…`), so it is cached for good and still changes with a new Kassa.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

const STYLESHEET: &str = include_str!("assets/dashboard.css");

static STYLESHEET_HREF: LazyLock<String> = LazyLock::new(|| {
    let hash = hex::encode(&Sha256::digest(STYLESHEET.as_bytes())[..6]);
    format!("/dashboard/assets/dashboard.css?v={hash}")
});

/// Where pages link the stylesheet.
pub fn stylesheet_href() -> &'static str {
    &STYLESHEET_HREF
}

pub async fn serve(Path(name): Path<String>) -> Response {
    if name != "dashboard.css" {
        return StatusCode::NOT_FOUND.into_response();
    }
    let mut res = STYLESHEET.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    res
}
