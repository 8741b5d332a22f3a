//! `X-Request-Id`: every request gets one — the caller's (a proxy's) when it sent a sensible
//! one, else a new `req_…` — carried by every log line of the request (the `request` span)
//! and returned in the response, so a user's report and the server's lines meet.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The id this request goes by (the header's value once [`assign`] ran).
pub fn of(req: &Request) -> &str {
    req.headers().get(HEADER).and_then(|v| v.to_str().ok()).unwrap_or("-")
}

/// Keeps a well-formed `X-Request-Id` or replaces it with a new one, and answers with it.
pub async fn assign(mut req: Request, next: Next) -> Response {
    let value = req
        .headers()
        .get(HEADER)
        .filter(|v| acceptable(v.as_bytes()))
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_str(&generate()).expect("an ASCII id is a header value"));
    req.headers_mut().insert(HEADER, value.clone());
    let mut res = next.run(req).await;
    res.headers_mut().insert(HEADER, value);
    res
}

/// 1 to 128 characters a log line can hold as they are (letters, digits, `-_.:/+=@`): what
/// proxies generate (UUIDs, `Root=1-…` trace ids); anything else is replaced, so a client
/// cannot write into the logs.
fn acceptable(v: &[u8]) -> bool {
    (1..=128).contains(&v.len()) && v.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=@".contains(b))
}

fn generate() -> String {
    use rand::Rng;
    use rand::distributions::Alphanumeric;
    let random: String = rand::thread_rng().sample_iter(&Alphanumeric).take(20).map(char::from).collect();
    format!("req_{random}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_plain_ids_are_kept() {
        assert!(super::acceptable(b"3f1c2a9e-8d7b-4c6a-9f0e-1b2c3d4e5f60"));
        assert!(!super::acceptable(b"a b"));
        assert!(!super::acceptable(b"x\ny"));
        assert!(!super::acceptable(&[b'a'; 129]));
        assert!(super::generate().starts_with("req_"));
    }
}
