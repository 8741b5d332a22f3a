//! The merchant's dashboard (`/dashboard`): server-rendered pages (maud) for people signed in
//! with an email and a password. HTTP only, like `api/`: a handler reads the request, calls
//! one function of `services::dashboard` (which calls the same services as the admin API, so
//! the dashboard can do nothing the API forbids) and renders. No JavaScript; styles come
//! from Kassa itself (`/dashboard/assets/…`), so the pages' Content-Security-Policy allows no
//! inline script or style at all.
//!
//! - `session`: the session cookie, the signed-in extractor and the CSRF-checked form.
//! - `layout`: the page shell, navigation and the small formatting helpers.
//! - one module per area: `login`, `overview`, `orders`, `customers`, `lists` (payments,
//!   events, catalog), `subscriptions` (subscriptions and invoices), `webhooks` (endpoints, delivery log, resend), `admin` (API keys, users).

mod acted;
mod admin;
mod assets;
mod customers;
mod layout;
mod lists;
mod login;
mod orders;
mod overview;
mod session;
mod subscriptions;
mod webhooks;

use crate::error::ApiError;
use crate::state::AppState;
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

/// The dashboard's routes (not part of the OpenAPI document: pages, not API).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(overview::page))
        .route("/dashboard/", get(overview::page))
        .route("/dashboard/login", get(login::page).post(login::submit))
        .route("/dashboard/logout", post(login::sign_out))
        .route("/dashboard/logout-everywhere", post(login::sign_out_everywhere))
        .route("/dashboard/orders", get(orders::list))
        .route("/dashboard/orders/{id}", get(orders::detail))
        .route("/dashboard/orders/{id}/capture", post(orders::capture))
        .route("/dashboard/orders/{id}/refund", post(orders::refund))
        .route("/dashboard/orders/{id}/cancel", post(orders::cancel))
        .route("/dashboard/orders/{id}/fulfill", post(orders::fulfill))
        .route("/dashboard/customers", get(customers::list))
        .route("/dashboard/customers/{id}", get(customers::detail))
        .route("/dashboard/customers/{id}/credits", post(customers::adjust_credits))
        .route("/dashboard/subscriptions", get(subscriptions::list))
        .route("/dashboard/subscriptions/{id}", get(subscriptions::detail))
        .route("/dashboard/subscriptions/{id}/cancel", post(subscriptions::cancel))
        .route("/dashboard/subscriptions/{id}/resume", post(subscriptions::resume))
        .route("/dashboard/invoices", get(subscriptions::invoices))
        .route("/dashboard/invoices/{id}", get(subscriptions::invoice))
        .route("/dashboard/payments", get(lists::payments))
        .route("/dashboard/events", get(lists::events))
        .route("/dashboard/catalog", get(lists::catalog))
        .route("/dashboard/api-keys", get(admin::api_keys).post(admin::create_api_key))
        .route("/dashboard/api-keys/{id}/revoke", post(admin::revoke_api_key))
        .route("/dashboard/users", get(admin::users).post(admin::create_user))
        .route("/dashboard/webhook-endpoints", get(webhooks::list))
        .route("/dashboard/webhook-endpoints/{id}", get(webhooks::detail))
        .route("/dashboard/webhook-endpoints/{id}/resend", post(webhooks::resend))
        .route("/dashboard/assets/{name}", get(assets::serve))
        .route_layer(axum::middleware::from_fn(page_headers))
}

/// Every dashboard answer: no inline script or style, forms post only here, no framing, no
/// referrer, no caching (pages show customers' data).
async fn page_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; \
             frame-ancestors 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    res
}

/// A failure as a page: its status, and its message (a 5xx says only that it was logged).
pub(crate) fn error_page(e: ApiError, user: Option<&crate::services::dashboard::SignedIn>) -> Response {
    if let ApiError::Internal(cause) = &e {
        tracing::error!(error = %format!("{cause:#}"), "dashboard page failed");
    }
    let status = e.status();
    let message = e.body().error.message;
    let title = match status {
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::NOT_FOUND => "Not found",
        s if s.is_server_error() => "Something went wrong",
        _ => "That did not work",
    };
    let body = maud::html! {
        h1 { (title) }
        div.error role="alert" { (message) }
        p { a href="/dashboard" { "Back to the overview" } }
    };
    (status, layout::page(title, user, layout::Area::None, body)).into_response()
}
