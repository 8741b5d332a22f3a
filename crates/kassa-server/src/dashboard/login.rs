//! Sign in, sign out, sign out everywhere.

use crate::dashboard::error_page;
use crate::dashboard::layout::{self, Area};
use crate::dashboard::session::{self, COOKIE, LOGIN_COOKIE, Posted, cookie, is_https, set_cookie};
use crate::error::ApiError;
use crate::services::dashboard::users;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use subtle::ConstantTimeEq;

/// How long the sign-in form's CSRF cookie lives.
const LOGIN_FORM_SECS: i64 = 3600;

fn login_page(state: &AppState, headers: &HeaderMap, status: StatusCode, email: &str, error: Option<&str>) -> Response {
    // The form's CSRF token: the one already in the browser's cookie, or a new one.
    let token = cookie(headers, LOGIN_COOKIE)
        .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(users::random_token);
    let body = html! {
        div.login {
            h1 { "Sign in to Kassa" }
            @if let Some(e) = error { div.error role="alert" #login-error { (e) } }
            section.card {
                form method="post" action="/dashboard/login" {
                    input type="hidden" name="csrf_token" value=(token);
                    label for="email" { "Email" }
                    input #email type="email" name="email" value=(email) autocomplete="username" required autofocus;
                    label for="password" { "Password" }
                    input #password type="password" name="password" autocomplete="current-password" required;
                    button type="submit" { "Sign in" }
                }
            }
        }
    };
    let mut res = (status, layout::page("Sign in", None, Area::None, body)).into_response();
    res.headers_mut()
        .append(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, Some(&token), is_https(state, headers), LOGIN_FORM_SECS));
    res
}

pub async fn page(State(app): State<AppState>, headers: HeaderMap) -> Response {
    login_page(&app, &headers, StatusCode::OK, "", None)
}

#[derive(Deserialize, Default)]
pub struct LoginForm {
    csrf_token: Option<String>,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

pub async fn submit(State(app): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let headers = parts.headers.clone();
    let client = app.rate_limits.client_address(&parts).to_string();
    let form: LoginForm = match session::read_form(body).await {
        Ok(f) => f,
        Err(e) => return error_page(e, None),
    };
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    let presented = form.csrf_token.unwrap_or_default();
    if expected.is_empty() || !bool::from(expected.as_bytes().ct_eq(presented.as_bytes())) {
        let e = ApiError::PermissionDenied("The sign-in form expired; reload the page and sign in again.".into());
        return error_page(e, None);
    }
    match users::sign_in(&app, &form.email, &form.password, &client).await {
        Ok(opened) => {
            let mut res = Redirect::to("/dashboard").into_response();
            let secure = is_https(&app, &headers);
            let h = res.headers_mut();
            h.append(header::SET_COOKIE, set_cookie(COOKIE, Some(&opened.token), secure, users::SESSION_SECS));
            h.append(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, None, secure, 0));
            res
        }
        Err(e @ (ApiError::Authentication(_) | ApiError::RateLimited { .. })) => {
            let status = e.status();
            login_page(&app, &headers, status, &form.email, Some(&e.to_string()))
        }
        Err(e) => error_page(e, None),
    }
}

#[derive(Deserialize)]
pub struct Empty {}

fn signed_out(app: &AppState, headers: &HeaderMap) -> Response {
    let mut res = Redirect::to("/dashboard/login").into_response();
    res.headers_mut().append(header::SET_COOKIE, set_cookie(COOKIE, None, is_https(app, headers), 0));
    res
}

pub async fn sign_out(State(app): State<AppState>, headers: HeaderMap, posted: Posted<Empty>) -> Response {
    match users::sign_out(&app, &posted.user, false).await {
        Ok(()) => signed_out(&app, &headers),
        Err(e) => error_page(e, Some(&posted.user)),
    }
}

pub async fn sign_out_everywhere(State(app): State<AppState>, headers: HeaderMap, posted: Posted<Empty>) -> Response {
    match users::sign_out(&app, &posted.user, true).await {
        Ok(()) => signed_out(&app, &headers),
        Err(e) => error_page(e, Some(&posted.user)),
    }
}
