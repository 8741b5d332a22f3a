//! Security headers. Every answer says `X-Content-Type-Options: nosniff`. The hosted pages
//! (the test processor's checkout page — also the credits top-up — and its 3-D Secure
//! challenge) are where a buyer types a card, so they also get:
//! - a `Content-Security-Policy` without inline script or style: scripts and styles only from
//!   Kassa itself (`/test-processor/assets/…`), forms posting only to Kassa and to the
//!   merchant URLs the page redirects to after a post (Chromium applies `form-action` to the
//!   redirects after a form submission too, so the merchant's success URL must be listed);
//! - `frame-ancestors 'none'` and, for browsers older than CSP 2, `X-Frame-Options: DENY`:
//!   no other site may frame a payment page (clickjacking);
//! - `Referrer-Policy: no-referrer`: the page's URL (a checkout session id) never reaches the
//!   merchant's or anyone's server in `Referer`;
//! - `Cache-Control: no-store`: a page of a payment in progress is not kept by caches.

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

/// Layer of the whole application.
pub async fn every_response(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    res.headers_mut().entry(header::X_CONTENT_TYPE_OPTIONS).or_insert(HeaderValue::from_static("nosniff"));
    res
}

/// Other origins a hosted page's forms may end at: the merchant URLs its posts redirect to.
/// A page handler puts it in the response's extensions; [`hosted_page`] turns it into
/// `form-action`.
#[derive(Clone, Debug, Default)]
pub struct FormTargets(Vec<String>);

impl FormTargets {
    /// The origins of these URLs (those that are not http(s) URLs are left out: a browser
    /// cannot be redirected there by a 303 anyway).
    pub fn of<'a>(urls: impl IntoIterator<Item = &'a str>) -> FormTargets {
        let mut origins: Vec<String> = urls
            .into_iter()
            .filter_map(|u| url::Url::parse(u).ok())
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .map(|u| u.origin().ascii_serialization())
            .collect();
        origins.sort();
        origins.dedup();
        FormTargets(origins)
    }
}

/// The policy of a hosted page whose forms may also end at `targets`.
fn content_security_policy(targets: &FormTargets) -> String {
    // An ASCII-serialized origin has no space, quote, comma or semicolon: it cannot break out
    // of the directive.
    let mut form_action = String::from("'self'");
    for origin in &targets.0 {
        form_action.push(' ');
        form_action.push_str(origin);
    }
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'; \
         base-uri 'none'; form-action {form_action}; frame-ancestors 'none'"
    )
}

/// Route layer of the hosted pages and their assets.
pub async fn hosted_page(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let targets = res.extensions_mut().remove::<FormTargets>().unwrap_or_default();
    let headers = res.headers_mut();
    if let Ok(csp) = HeaderValue::from_str(&content_security_policy(&targets)) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_action_lists_the_origins_of_the_redirects() {
        let targets = FormTargets::of([
            "https://shop.example/thanks?session={CHECKOUT_SESSION_ID}",
            "https://shop.example/cart",
            "http://localhost:3000/done",
            "javascript:alert(1)",
            "not a url",
        ]);
        let csp = content_security_policy(&targets);
        assert!(csp.contains("form-action 'self' http://localhost:3000 https://shop.example;"), "{csp}");
        assert!(csp.contains("script-src 'self';") && !csp.contains("unsafe-inline"), "{csp}");
        assert!(csp.ends_with("frame-ancestors 'none'"), "{csp}");
        let odd = FormTargets::of(["https://xn--bcher-kva.example/ok", "https://bücher.example/ok"]);
        assert_eq!(odd.0, vec!["https://xn--bcher-kva.example".to_string()]);
    }
}
