//! The session cookie, who is signed in, and forms checked against CSRF.
//!
//! The cookie `kassa_dashboard` holds the session's random token: `HttpOnly` (no script reads
//! it), `SameSite=Strict` (no other site's page sends it), `Path=/dashboard`, and `Secure`
//! when the browser reaches Kassa over HTTPS (`public_url` is `https://…`, or a proxy says
//! `X-Forwarded-Proto: https`). Every form carries the session's CSRF token; a POST without
//! it (or with another) is answered 403 before anything runs.

use crate::dashboard::error_page;
use crate::error::ApiError;
use crate::services::dashboard::SignedIn;
use crate::services::dashboard::users;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;

pub const COOKIE: &str = "kassa_dashboard";
/// The CSRF token of the sign-in form, before there is a session (double-submit cookie).
pub const LOGIN_COOKIE: &str = "kassa_dashboard_login";
/// The largest form the dashboard reads.
const FORM_LIMIT: usize = 64 * 1024;

/// The value of cookie `name`, if the request sent it.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Whether the browser reached Kassa over HTTPS.
pub fn is_https(state: &AppState, headers: &HeaderMap) -> bool {
    state.public_url.starts_with("https://")
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value; `None` as the value clears the cookie.
pub fn set_cookie(name: &str, value: Option<&str>, secure: bool, max_age: i64) -> HeaderValue {
    let (value, max_age) = match value {
        Some(v) => (v, max_age),
        None => ("", 0),
    };
    let secure = if secure { "; Secure" } else { "" };
    let text = format!("{name}={value}; Path=/dashboard; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}");
    HeaderValue::from_str(&text).expect("cookie values are hex")
}

async fn signed_in(parts: &Parts, state: &AppState) -> Result<Option<SignedIn>, ApiError> {
    match cookie(&parts.headers, COOKIE) {
        Some(token) => users::session(state, &token).await,
        None => Ok(None),
    }
}

/// A page for a signed-in user; anyone else is sent to the sign-in page.
pub struct Signed(pub SignedIn);

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match signed_in(parts, state).await {
            Ok(Some(user)) => Ok(Signed(user)),
            Ok(None) => Err(Redirect::to("/dashboard/login").into_response()),
            Err(e) => Err(error_page(e, None)),
        }
    }
}

#[derive(Deserialize)]
struct CsrfField {
    csrf_token: Option<String>,
}

/// A form body: parsed, with U+0000 refused (no column may hold it).
pub async fn read_form<T: DeserializeOwned>(body: axum::body::Body) -> Result<T, ApiError> {
    let bytes =
        axum::body::to_bytes(body, FORM_LIMIT).await.map_err(|_| ApiError::PayloadTooLarge { limit: FORM_LIMIT })?;
    parse_form(&bytes)
}

fn parse_form<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    let nul = bytes.contains(&0) || bytes.windows(3).any(|w| w.eq_ignore_ascii_case(b"%00"));
    if nul {
        return Err(ApiError::invalid("form", "The form holds a NUL character (U+0000)."));
    }
    serde_urlencoded::from_bytes(bytes).map_err(|e| ApiError::InvalidRequest {
        code: "form_invalid",
        message: format!("The form is invalid: {e}"),
        param: None,
    })
}

/// A form posted by a signed-in user with the session's CSRF token. Without a session, or
/// without the right token, the answer is 403 and nothing runs.
pub struct Posted<T> {
    pub user: SignedIn,
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<AppState> for Posted<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (parts, body) = req.into_parts();
        let user = match signed_in(&parts, state).await {
            Ok(Some(u)) => u,
            Ok(None) => {
                let e =
                    ApiError::PermissionDenied("You are not signed in (or your session ended); sign in again.".into());
                return Err(error_page(e, None));
            }
            Err(e) => return Err(error_page(e, None)),
        };
        let bytes = axum::body::to_bytes(body, FORM_LIMIT)
            .await
            .map_err(|_| error_page(ApiError::PayloadTooLarge { limit: FORM_LIMIT }, Some(&user)))?;
        let csrf: CsrfField = parse_form(&bytes).unwrap_or(CsrfField { csrf_token: None });
        if let Err(e) = user.require_csrf(csrf.csrf_token.as_deref()) {
            return Err(error_page(e, Some(&user)));
        }
        match parse_form(&bytes) {
            Ok(form) => Ok(Posted { user, form }),
            Err(e) => Err(error_page(e, Some(&user))),
        }
    }
}
