//! Request extractors whose failures are API errors (axum's own answer in plain text).

use crate::api::nul;
use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// A JSON body. Errors name the offending parameter (`param`) when there is one.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = read_body(req, state).await?;
        Ok(ApiJson(parse_json(&bytes)?))
    }
}

pub(crate) async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    let limit = req.extensions().get::<BodyLimit>().map_or(0, |l| l.0);
    Bytes::from_request(req, state).await.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(inner) if is_length_limit(&inner) => ApiError::PayloadTooLarge { limit },
        other => ApiError::InvalidRequest { code: "body_invalid", message: other.body_text(), param: None },
    })
}

fn is_length_limit(e: &axum::extract::rejection::FailedToBufferBody) -> bool {
    e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE
}

/// The configured body limit (`server.body_limit`), for the message of a 413. The router puts
/// it on every request (an extension), so that extractors of any state type can name it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BodyLimit(pub usize);

/// Parses a JSON body (an empty body reads as `{}`), mapping serde's errors to `param`s.
/// Every JSON body of the API comes through here, so this is where U+0000 is refused.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { bytes };
    nul::json_body(bytes)?;
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::InvalidRequest {
                code: "body_invalid",
                message: format!("The request body is not valid JSON: {inner}"),
                param: None,
            };
        }
        serde_error(path, &inner.to_string())
    })
}

/// A form body of the hosted pages. U+0000 is refused as everywhere; a form that does not
/// parse otherwise reads as empty, so that the page re-renders saying what is missing.
pub fn parse_form<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    nul::form_body(bytes)?;
    Ok(serde_urlencoded::from_bytes(bytes).unwrap_or_default())
}

/// Turns a serde message at `path` into a 400 naming the parameter.
fn serde_error(path: String, message: &str) -> ApiError {
    let parent = if path == "." { String::new() } else { path };
    // serde_path_to_error's path ends at the unknown field itself, at its parent otherwise.
    let join = |field: &str| {
        if parent.is_empty() {
            field.to_string()
        } else if parent == field || parent.ends_with(&format!(".{field}")) {
            parent.clone()
        } else {
            format!("{parent}.{field}")
        }
    };
    // serde's messages put the field in backticks: "unknown field `x`", "missing field `x`".
    let field = message.split('`').nth(1).unwrap_or_default();
    let message = strip_position(message);
    if message.starts_with("unknown field") {
        return ApiError::InvalidRequest {
            code: "parameter_unknown",
            message: format!("Received unknown parameter: {}", join(field)),
            param: Some(join(field)),
        };
    }
    if message.starts_with("missing field") {
        return ApiError::InvalidRequest {
            code: "parameter_missing",
            message: format!("Missing required param: {}.", join(field)),
            param: Some(join(field)),
        };
    }
    let param = if parent.is_empty() { None } else { Some(parent.clone()) };
    let message = match &param {
        Some(p) => format!("Invalid value for {p}: {message}"),
        None => format!("Invalid request: {message}"),
    };
    ApiError::InvalidRequest { code: "parameter_invalid", message, param }
}

/// serde_json appends " at line 1 column 17"; the client knows where its own body is.
fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// Query-string parameters, with the same error shape as [`ApiJson`].
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(query));
        serde_path_to_error::deserialize(de).map(ApiQuery).map_err(|e| {
            let path = e.path().to_string();
            let msg = e.into_inner().to_string();
            // Query parameters are flat: the field is the param.
            let field = msg.split('`').nth(1).map(str::to_string);
            match serde_error(path, &msg) {
                ApiError::InvalidRequest { code, message, param } => {
                    ApiError::InvalidRequest { code, message, param: param.or(field) }
                }
                other => other,
            }
        })
    }
}

fn form_urlencoded_parse(query: &str) -> url::form_urlencoded::Parse<'_> {
    url::form_urlencoded::parse(query.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        lines: Vec<Line>,
    }
    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Line {
        quantity: i64,
    }

    fn param(r: Result<Body, ApiError>) -> (String, Option<String>) {
        match r.unwrap_err() {
            ApiError::InvalidRequest { code, param, .. } => (code.to_string(), param),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn names_the_parameter() {
        assert_eq!(
            param(parse_json(br#"{"name":"a","lines":[{"quantity":"x"}]}"#)),
            ("parameter_invalid".into(), Some("lines[0].quantity".into()))
        );
        assert_eq!(
            param(parse_json(br#"{"name":"a","lines":[{"quantity":1,"x":1}]}"#)),
            ("parameter_unknown".into(), Some("lines[0].x".into()))
        );
        assert_eq!(param(parse_json(br#"{"lines":[]}"#)), ("parameter_missing".into(), Some("name".into())));
        assert_eq!(param(parse_json(br#"{"name": "#)), ("body_invalid".into(), None));
        assert_eq!(
            param(parse_json(br#"{"name":"a","lines":[{"quantity":1e40}]}"#)),
            ("parameter_invalid".into(), Some("lines[0].quantity".into()))
        );
    }
}
