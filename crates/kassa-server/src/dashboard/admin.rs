//! The owner's pages: API keys (a new key's secret is shown once) and dashboard users.

use crate::dashboard::error_page;
use crate::dashboard::layout::{self, Area, badge, csrf, form_key, time};
use crate::dashboard::session::{Posted, Signed};
use crate::error::ApiError;
use crate::services::dashboard::actions::{self, Done, Submitted};
use crate::services::dashboard::{Role, SignedIn, pages};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

async fn keys_page(app: &AppState, user: &SignedIn, status: StatusCode, shown: Option<(&str, &str)>) -> Response {
    let keys = match pages::api_keys(app, user).await {
        Ok(k) => k,
        Err(e) => return error_page(e, Some(user)),
    };
    let body = html! {
        h1 { "API keys" }
        @if let Some((id, secret)) = shown {
            div.secret role="status" {
                "New key " span.id { (id) } ". Copy its secret now — it is not shown again:" br;
                code #new-secret { (secret) }
            }
        }
        section.card aria-labelledby="create-h" {
            h2 #create-h { "Create a key" }
            form method="post" action="/dashboard/api-keys" {
                (csrf(user)) (form_key())
                label for="kind" { "Kind" }
                select #kind name="kind" { option value="secret" { "Secret (admin API)" } option value="publishable" { "Publishable (store API)" } }
                label for="name" { "Name" }
                input #name name="name" maxlength="200";
                p { button type="submit" { "Create key" } }
            }
        }
        section.card aria-labelledby="keys-h" {
            h2 #keys-h { "Keys" }
            div.table-wrap {
                table.responsive {
                    thead { tr { th scope="col" { "Key" } th scope="col" { "Kind" } th scope="col" { "Name" } th scope="col" { "Status" } th scope="col" { "Created" } th scope="col" { "Action" } } }
                    tbody {
                        @for k in &keys {
                            tr {
                                td.id data-label="Key" { (k.id) " …" (k.last4) }
                                td data-label="Kind" { (k.kind) }
                                td data-label="Name" { (k.name.as_deref().unwrap_or("")) }
                                td data-label="Status" { (badge(if k.revoked_at.is_some() { "revoked" } else { "active" })) }
                                td data-label="Created" { (time(k.created)) }
                                td data-label="Action" {
                                    @if k.revoked_at.is_none() {
                                        form method="post" action=(format!("/dashboard/api-keys/{}/revoke", k.id)) {
                                            (csrf(user)) (form_key())
                                            div.confirm {
                                                input id=(format!("revoke-{}", k.id)) type="checkbox" name="confirm" value="yes" required;
                                                label for=(format!("revoke-{}", k.id)) { "Confirm" }
                                            }
                                            button.danger type="submit" aria-label=(format!("Revoke {}", k.id)) { "Revoke" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    (status, layout::page("API keys", Some(user), Area::ApiKeys, body)).into_response()
}

pub async fn api_keys(State(app): State<AppState>, Signed(user): Signed) -> Response {
    keys_page(&app, &user, StatusCode::OK, None).await
}

#[derive(Deserialize)]
pub struct KeyForm {
    #[serde(default)]
    idempotency_key: String,
    #[serde(default)]
    kind: String,
    name: Option<String>,
    confirm: Option<String>,
}

pub async fn create_api_key(State(app): State<AppState>, p: Posted<KeyForm>) -> Response {
    let (user, f) = (p.user, p.form);
    let sub = Submitted { key: &f.idempotency_key, confirmed: true };
    match actions::create_api_key(&app, &user, &f.kind, f.name.as_deref(), sub).await {
        Ok(Done::Now(k)) => keys_page(&app, &user, StatusCode::OK, Some((&k.id, &k.secret))).await,
        Ok(Done::Before) => Redirect::to("/dashboard/api-keys").into_response(),
        Err(e) => error_page(e, Some(&user)),
    }
}

pub async fn revoke_api_key(State(app): State<AppState>, Path(id): Path<String>, p: Posted<KeyForm>) -> Response {
    let (user, f) = (p.user, p.form);
    let sub = Submitted { key: &f.idempotency_key, confirmed: f.confirm.as_deref() == Some("yes") };
    match actions::revoke_api_key(&app, &user, &id, sub).await {
        Ok(_) => Redirect::to("/dashboard/api-keys").into_response(),
        Err(e) => error_page(e, Some(&user)),
    }
}

fn users_body(user: &SignedIn, users: &[crate::services::dashboard::users::User], error: Option<&str>) -> Markup {
    html! {
        h1 { "Users" }
        @if let Some(e) = error { div.error role="alert" { (e) } }
        section.card aria-labelledby="users-h" {
            h2 #users-h { "People who can sign in" }
            div.table-wrap {
                table.responsive {
                    thead { tr { th scope="col" { "Email" } th scope="col" { "Role" } th scope="col" { "Created" } } }
                    tbody { @for u in users { tr { td data-label="Email" { (u.email) } td data-label="Role" { (u.role) } td data-label="Created" { (time(u.created)) } } } }
                }
            }
        }
        section.card aria-labelledby="new-user-h" {
            h2 #new-user-h { "Add a user" }
            form method="post" action="/dashboard/users" {
                (csrf(user)) (form_key())
                label for="new-email" { "Email" }
                input #new-email type="email" name="email" required autocomplete="off";
                label for="new-role" { "Role" }
                select #new-role name="role" { @for r in Role::ALL { option value=(r.as_str()) selected[r == Role::Staff] { (r.as_str()) } } }
                label for="new-password" { "Password (at least 10 characters)" }
                input #new-password type="password" name="password" required minlength="10" autocomplete="new-password";
                p { button type="submit" { "Add user" } }
            }
        }
    }
}

async fn users_page(app: &AppState, user: &SignedIn, status: StatusCode, error: Option<&str>) -> Response {
    match pages::users(app, user).await {
        Ok(list) => {
            (status, layout::page("Users", Some(user), Area::Users, users_body(user, &list, error))).into_response()
        }
        Err(e) => error_page(e, Some(user)),
    }
}

pub async fn users(State(app): State<AppState>, Signed(user): Signed) -> Response {
    users_page(&app, &user, StatusCode::OK, None).await
}

#[derive(Deserialize)]
pub struct UserForm {
    #[serde(default)]
    idempotency_key: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: String,
}

pub async fn create_user(State(app): State<AppState>, p: Posted<UserForm>) -> Response {
    let (user, f) = (p.user, p.form);
    let sub = Submitted { key: &f.idempotency_key, confirmed: true };
    match actions::create_user(&app, &user, &f.email, &f.role, &f.password, sub).await {
        Ok(_) => Redirect::to("/dashboard/users").into_response(),
        Err(e @ (ApiError::InvalidRequest { .. } | ApiError::Conflict { .. })) => {
            users_page(&app, &user, e.status(), Some(&e.to_string())).await
        }
        Err(e) => error_page(e, Some(&user)),
    }
}
