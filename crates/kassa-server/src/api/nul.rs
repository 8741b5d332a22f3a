//! U+0000 (NUL) in string input, refused in one place for every door a string comes through.
//!
//! PostgreSQL refuses NUL in text (`invalid byte sequence for encoding "UTF8": 0x00`), SQLite
//! stores it, and anything that treats strings as C strings cuts them there. So Kassa refuses it
//! on both databases alike, before any handler runs, with a 400 naming the parameter:
//! - JSON bodies: [`json_body`], called by `extract::parse_json`, which every JSON body of the
//!   API goes through (`ApiJson`, `Idempotent`);
//! - form bodies (the hosted pages): [`form_body`], called by `extract::parse_form`;
//! - query strings (filters, list cursors) and path parameters (ids): [`reject_in_uri`], a
//!   middleware on every route.
//!
//! Bodies are on the hot path, so they are only scanned (memchr) for the bytes a NUL must be
//! written as — the JSON escape `\u0000` (its hex digits have no case), or `%00` or a raw 0 byte
//! in a form — and only a body that has one is parsed again to name the parameter.
//!
//! Nothing else PostgreSQL refuses in text can arrive: serde_json refuses invalid UTF-8 and lone
//! surrogates (`"\ud800"`) as syntax errors, query strings decode invalid UTF-8 lossily (to
//! U+FFFD), and path parameters are checked here to decode to UTF-8.

use crate::error::ApiError;
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// A NUL at `param` (`None`: the body itself is a string with one).
fn refuse(param: Option<String>) -> ApiError {
    let message = match &param {
        Some(p) => format!("{p} must not contain U+0000 (NUL)."),
        None => "Strings in the request must not contain U+0000 (NUL).".to_string(),
    };
    ApiError::InvalidRequest { code: "parameter_invalid", message, param }
}

/// A parameter name as it can be shown: a NUL in a key is written as its JSON escape.
fn printable(key: &str) -> String {
    key.replace('\0', "\\u0000")
}

/// Refuses a JSON body with a NUL in any string or object key, naming its path the way
/// `serde_path_to_error` names parameters (`items[0].price`, `metadata.key`).
pub fn json_body(bytes: &[u8]) -> Result<(), ApiError> {
    if memchr::memmem::find(bytes, b"\\u0000").is_none() {
        return Ok(());
    }
    // Most likely a NUL; possibly an escaped backslash before "u0000". Not JSON at all: the
    // parser that follows says so.
    let Ok(value) = serde_json::from_slice::<Value>(bytes) else { return Ok(()) };
    match find_in_json(&value, "") {
        Some(path) => Err(refuse((!path.is_empty()).then_some(path))),
        None => Ok(()),
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_string() } else { format!("{parent}.{key}") }
}

fn find_in_json(value: &Value, path: &str) -> Option<String> {
    match value {
        Value::String(s) if s.contains('\0') => Some(path.to_string()),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| find_in_json(v, &format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') { Some(join(path, &printable(k))) } else { find_in_json(v, &join(path, k)) }
        }),
        _ => None,
    }
}

/// Refuses an `application/x-www-form-urlencoded` body with a NUL in a name or value.
pub fn form_body(bytes: &[u8]) -> Result<(), ApiError> {
    if memchr::memchr(0, bytes).is_none() && memchr::memmem::find(bytes, b"%00").is_none() {
        return Ok(());
    }
    find_in_pairs(bytes)
}

/// Refuses a query string with a NUL in a name or value (`?email=a%00b`).
pub fn query(query: &str) -> Result<(), ApiError> {
    if !query.contains("%00") {
        return Ok(());
    }
    find_in_pairs(query.as_bytes())
}

fn find_in_pairs(bytes: &[u8]) -> Result<(), ApiError> {
    for (name, value) in url::form_urlencoded::parse(bytes) {
        if name.contains('\0') || value.contains('\0') {
            return Err(refuse(Some(printable(&name))));
        }
    }
    Ok(())
}

/// Refuses path parameters (`{id}` of the matched route) that decode to a NUL or to bytes that
/// are not UTF-8 (axum would answer those in plain text; the API answers JSON).
pub fn path(template: &str, path: &str) -> Result<(), ApiError> {
    if !path.contains('%') {
        return Ok(());
    }
    for (pattern, segment) in template.split('/').zip(path.split('/')) {
        let Some(name) = pattern.strip_prefix('{').and_then(|p| p.strip_suffix('}')) else { continue };
        let name = name.trim_start_matches('*');
        match percent_encoding::percent_decode_str(segment).decode_utf8() {
            Ok(decoded) if decoded.contains('\0') => return Err(refuse(Some(name.to_string()))),
            Ok(_) => {}
            Err(_) => return Err(ApiError::invalid(name, format!("{name} must be UTF-8."))),
        }
    }
    Ok(())
}

/// The middleware: checks the query string and the path parameters of every routed request.
pub async fn reject_in_uri(req: Request, next: Next) -> Response {
    let checked =
        query(req.uri().query().unwrap_or_default()).and_then(|()| match req.extensions().get::<MatchedPath>() {
            Some(template) => path(template.as_str(), req.uri().path()),
            None => Ok(()),
        });
    match checked {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(r: Result<(), ApiError>) -> Option<String> {
        match r.unwrap_err() {
            ApiError::InvalidRequest { param, .. } => param,
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn json_bodies_name_the_string() {
        assert!(json_body(br#"{"name": "Mug"}"#).is_ok());
        assert_eq!(param(json_body(br#"{"name": "a\u0000b"}"#)), Some("name".into()));
        assert_eq!(
            param(json_body(br#"{"items": [{"price": "p"}, {"price": "x\u0000"}]}"#)),
            Some("items[1].price".into())
        );
        assert_eq!(param(json_body(br#"{"metadata": {"k": "\u0000"}}"#)), Some("metadata.k".into()));
        assert_eq!(param(json_body(br#"{"metadata": {"a\u0000b": "v"}}"#)), Some("metadata.a\\u0000b".into()));
        assert_eq!(param(json_body(br#""\u0000""#)), None);
        // An escaped backslash followed by the text u0000 is no NUL.
        assert!(json_body(br#"{"name": "C:\\u0000"}"#).is_ok());
        // Not JSON: left to the parser's syntax error.
        assert!(json_body(br#"{"name": "\u0000"#).is_ok());
    }

    #[test]
    fn serde_json_refuses_what_postgresql_would() {
        for bad in [&br#"{"name": "\ud800"}"#[..], br#"{"name": "\udc00x"}"#, b"{\"name\": \"\xff\"}"] {
            let e = serde_json::from_slice::<Value>(bad).unwrap_err();
            assert!(e.is_syntax(), "{e}");
        }
    }

    #[test]
    fn forms_and_queries_name_the_field() {
        assert!(form_body(b"number=4242&exp=12%2F34").is_ok());
        assert_eq!(param(form_body(b"number=42%0042&exp=1")), Some("number".into()));
        assert_eq!(param(form_body(b"cvc=1\x002")), Some("cvc".into()));
        assert_eq!(param(query("limit=3&starting_after=%00x")), Some("starting_after".into()));
        assert_eq!(param(query("email=a%00b%40example.com")), Some("email".into()));
        assert_eq!(param(query("a%00=1")), Some("a\\u0000".into()));
        assert!(query("email=a%2500b").is_ok());
    }

    #[test]
    fn path_parameters_are_named_by_the_route() {
        let t = "/store/carts/{id}/line-items/{line}";
        assert!(path(t, "/store/carts/cart_1/line-items/li_1").is_ok());
        assert_eq!(param(path(t, "/store/carts/cart_1/line-items/li%00")), Some("line".into()));
        assert_eq!(param(path(t, "/store/carts/%00/line-items/li_1")), Some("id".into()));
        assert_eq!(param(path(t, "/store/carts/%ff/line-items/li_1")), Some("id".into()));
        assert!(path(t, "/store/carts/a%20b/line-items/li_1").is_ok());
    }
}
