//! The stylesheet and script of the hosted pages, served by Kassa so that the pages'
//! Content-Security-Policy allows neither inline style nor inline script. The pages link them
//! with a hash of their content (`?v=…`), so they can be cached for good and still change with
//! a new Kassa.

use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// One file the pages link.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
    /// Where pages link it: its path with the content's hash.
    pub href: String,
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

/// The asset of this name (`hosted.css`, `hosted.js`).
pub fn find(name: &str) -> Option<&'static Asset> {
    [&*STYLESHEET, &*SCRIPT].into_iter().find(|a| a.name == name)
}
