//! Which browser origins may call which API (CORS).
//!
//! The store API is what storefronts call from the buyer's browser: the origins of
//! `server.cors_origins` (any, by default) may call it, with the headers a storefront sends.
//! The admin API takes secret keys, which never belong in a browser: no origin may call it
//! unless `server.admin_cors_origins` lists one (a dashboard served from another origin).
//! Nothing else (webhooks, hosted pages, system routes) answers cross-origin calls.

use crate::api::auth::CLIENT_SECRET_HEADER;
use crate::api::{auth, idempotency};
use crate::config::{ServerSettings, normalize_origin};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, Method, header};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may reuse a preflight's answer (Chromium caps it at 2 hours).
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// Which API a path belongs to, as far as browsers are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Surface {
    /// Publishable keys: `/store/*`, and the test processor's ConfirmationTokens (its
    /// Stripe.js, which storefronts call from the browser).
    Store,
    /// Secret keys: `/admin/*` and the test processor's controls.
    Admin,
}

fn surface(path: &str) -> Option<Surface> {
    if path.starts_with("/store/") || path == "/test-processor/v1/confirmation_tokens" {
        Some(Surface::Store)
    } else if path.starts_with("/admin/") || path.starts_with("/test-processor/v1/") {
        Some(Surface::Admin)
    } else {
        None
    }
}

/// Allowed origins of one API, as browsers send them in `Origin`.
#[derive(Default)]
struct Origins {
    any: bool,
    listed: HashSet<String>,
}

impl Origins {
    /// Origins that do not parse were refused by `Settings::validate`; here they are skipped.
    fn new(configured: &[String]) -> Origins {
        Origins {
            any: configured.iter().any(|o| o == "*"),
            listed: configured.iter().filter_map(|o| normalize_origin(o).ok()).collect(),
        }
    }

    fn allows(&self, origin: &HeaderValue) -> bool {
        self.any || origin.to_str().is_ok_and(|o| self.listed.contains(o))
    }
}

/// The CORS layer of the whole application.
pub fn layer(server: &ServerSettings) -> CorsLayer {
    let store = Origins::new(&server.cors_origins);
    let admin = Origins::new(&server.admin_cors_origins);
    let rules = Arc::new((store, admin));
    let allow = AllowOrigin::predicate(move |origin: &HeaderValue, parts: &Parts| match surface(parts.uri.path()) {
        Some(Surface::Store) => rules.0.allows(origin),
        Some(Surface::Admin) => rules.1.allows(origin),
        None => false,
    });
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static(auth::PUBLISHABLE_KEY_HEADER),
            HeaderName::from_static(CLIENT_SECRET_HEADER),
            HeaderName::from_static(idempotency::HEADER),
        ])
        // What a script may read besides the safelisted headers: when to retry after a 429,
        // whether an answer is a replay of an idempotent request, and the request id to quote
        // in a report.
        .expose_headers([
            header::RETRY_AFTER,
            HeaderName::from_static("idempotent-replayed"),
            super::request_id::HEADER,
        ])
        .max_age(PREFLIGHT_MAX_AGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_belong_to_the_api_their_keys_do() {
        assert_eq!(surface("/store/carts"), Some(Surface::Store));
        assert_eq!(surface("/test-processor/v1/confirmation_tokens"), Some(Surface::Store));
        assert_eq!(surface("/admin/products"), Some(Surface::Admin));
        assert_eq!(surface("/test-processor/v1/control"), Some(Surface::Admin));
        assert_eq!(surface("/webhooks/stripe"), None);
        assert_eq!(surface("/test-processor/checkout/cs_1"), None);
        assert_eq!(surface("/storefront"), None);
    }

    #[test]
    fn listed_origins_match_as_browsers_send_them() {
        let o = Origins::new(&["https://Shop.Example/".into(), "http://localhost:3000".into()]);
        assert!(o.allows(&HeaderValue::from_static("https://shop.example")));
        assert!(o.allows(&HeaderValue::from_static("http://localhost:3000")));
        assert!(!o.allows(&HeaderValue::from_static("https://evil.example")));
        assert!(!o.allows(&HeaderValue::from_static("http://shop.example")));
        assert!(!Origins::new(&[]).allows(&HeaderValue::from_static("https://shop.example")));
        assert!(Origins::new(&["*".into()]).allows(&HeaderValue::from_static("https://any.example")));
    }
}
