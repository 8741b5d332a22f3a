//! CORS: browsers on the storefront's origin may call the store API; no browser origin may call
//! the admin API unless a dashboard's origin is configured.

use crate::helpers::*;
use reqwest::Method;
use reqwest::header::HeaderMap;

/// A browser's preflight before a cross-origin request with custom headers.
async fn preflight(app: &TestApp, path: &str, origin: &str, method: &str, headers: &str) -> HeaderMap {
    let res = app
        .http
        .request(Method::OPTIONS, format!("{}{path}", app.address))
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", headers)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    res.headers().clone()
}

fn allowed_origin(headers: &HeaderMap) -> Option<&str> {
    headers.get("access-control-allow-origin").and_then(|v| v.to_str().ok())
}

fn listed(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(','))
        .map(|h| h.trim().to_ascii_lowercase())
        .collect()
}

#[tokio::test]
async fn the_admin_api_answers_no_browser_origin_by_default() {
    let app = spawn_app().await;
    for path in ["/admin/products", "/admin/orders/ord_1/refund", "/test-processor/v1/control"] {
        let h = preflight(&app, path, "https://shop.example", "POST", "authorization,content-type").await;
        assert_eq!(allowed_origin(&h), None, "{path} allows a browser origin");
    }
    // Nor does a plain cross-origin request get the header (the browser hides the answer).
    let res = app
        .http
        .get(format!("{}/admin/products", app.address))
        .bearer_auth(&app.secret_key)
        .header("origin", "https://shop.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(allowed_origin(res.headers()), None);
    // Webhooks and hosted pages are no browser API either.
    let h = preflight(&app, "/webhooks/stripe", "https://shop.example", "POST", "content-type").await;
    assert_eq!(allowed_origin(&h), None);

    // By default any storefront origin may call the store API, with the headers it needs.
    let h = preflight(
        &app,
        "/store/carts",
        "http://localhost:3000",
        "POST",
        "kassa-publishable-key,kassa-client-secret,idempotency-key,content-type,authorization",
    )
    .await;
    assert!(matches!(allowed_origin(&h), Some("*" | "http://localhost:3000")), "{h:?}");
    let allowed = listed(&h, "access-control-allow-headers");
    for header in ["kassa-publishable-key", "kassa-client-secret", "idempotency-key", "content-type", "authorization"] {
        assert!(allowed.contains(&header.to_string()), "{header} not allowed: {allowed:?}");
    }
    assert!(listed(&h, "access-control-allow-methods").contains(&"post".to_string()));
    assert!(h.contains_key("access-control-max-age"));
    // A script can read when to retry after a 429.
    let res = app
        .http
        .get(format!("{}/store/products", app.address))
        .header("kassa-publishable-key", &app.publishable_key)
        .header("origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    assert!(allowed_origin(res.headers()).is_some());
    assert!(listed(res.headers(), "access-control-expose-headers").contains(&"retry-after".to_string()));
    assert!(listed(res.headers(), "access-control-expose-headers").contains(&"x-request-id".to_string()));
}

#[tokio::test]
async fn configured_origins_are_the_only_ones_allowed() {
    let app = spawn_app_with(|s| {
        s.server.cors_origins = vec!["https://shop.example".into()];
        s.server.admin_cors_origins = vec!["https://dashboard.example".into()];
    })
    .await;
    let store = preflight(&app, "/store/carts", "https://shop.example", "POST", "kassa-publishable-key").await;
    assert_eq!(allowed_origin(&store), Some("https://shop.example"));
    let tokens = preflight(
        &app,
        "/test-processor/v1/confirmation_tokens",
        "https://shop.example",
        "POST",
        "kassa-publishable-key",
    )
    .await;
    assert_eq!(allowed_origin(&tokens), Some("https://shop.example"));
    for (path, origin) in [
        ("/store/carts", "https://evil.example"),
        ("/store/carts", "http://shop.example"),
        ("/store/carts", "https://dashboard.example"),
        ("/admin/products", "https://shop.example"),
        ("/admin/products", "https://evil.example"),
    ] {
        let h = preflight(&app, path, origin, "POST", "authorization").await;
        assert_eq!(allowed_origin(&h), None, "{origin} may call {path}");
    }
    let admin = preflight(&app, "/admin/products", "https://dashboard.example", "POST", "authorization").await;
    assert_eq!(allowed_origin(&admin), Some("https://dashboard.example"));
}
