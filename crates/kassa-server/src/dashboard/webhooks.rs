//! Webhook endpoints (read-only here: created through the admin API or `kassa listen`) and
//! each endpoint's delivery log, with "resend" for owners.

use crate::dashboard::error_page;
use crate::dashboard::layout::{self, Area, badge, csrf, form_key, pager, query, sides, time};
use crate::dashboard::session::{Posted, Signed};
use crate::services::dashboard::actions::{self, Done, Submitted};
use crate::services::dashboard::{Permission, pages};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

pub async fn list(State(app): State<AppState>, Signed(user): Signed) -> Response {
    let listed = match pages::webhook_endpoints(&app).await {
        Ok(l) => l,
        Err(e) => return error_page(e, Some(&user)),
    };
    let body = html! {
        h1 { "Webhook endpoints" }
        section.card aria-labelledby="endpoints-h" {
            h2 #endpoints-h { "Endpoints" }
            p.muted { "Create and change endpoints with the admin API (" code { "POST /admin/webhook-endpoints" } ") or " code { "kassa listen" } "." }
            @if listed.data.is_empty() { p { "No webhook endpoints." } } @else {
                div.table-wrap {
                    table.responsive {
                        thead { tr { th scope="col" { "Endpoint" } th scope="col" { "URL" } th scope="col" { "Events" } th scope="col" { "Status" } } }
                        tbody {
                            @for e in &listed.data {
                                tr {
                                    td data-label="Endpoint" { a.id href=(format!("/dashboard/webhook-endpoints/{}", e.id)) { (e.id) } }
                                    td.id data-label="URL" { (e.url) }
                                    td data-label="Events" { (e.enabled_events.join(", ")) }
                                    td data-label="Status" { (badge(&e.status)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout::page("Webhook endpoints", Some(&user), Area::Webhooks, body).into_response()
}

#[derive(Deserialize, Default)]
pub struct LogQuery {
    failed: Option<String>,
    done: Option<String>,
    starting_after: Option<String>,
    ending_before: Option<String>,
}

pub async fn detail(
    State(app): State<AppState>,
    Signed(user): Signed,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
) -> Response {
    let failed_only = q.failed.as_deref() == Some("1");
    let (endpoint, attempts) =
        match pages::webhook_endpoint(&app, &id, failed_only, &q.starting_after, &q.ending_before).await {
            Ok(found) => found,
            Err(e) => return error_page(e, Some(&user)),
        };
    let (newer, older) = sides(&q.starting_after, &q.ending_before, attempts.has_more);
    let base = query(&[("failed", q.failed.as_deref())]);
    let may_resend = user.role.allows(Permission::ManageWebhooks);
    let path = format!("/dashboard/webhook-endpoints/{}", endpoint.id);
    let body = html! {
        p { a href="/dashboard/webhook-endpoints" { "← Webhook endpoints" } }
        h1 { "Endpoint " span.id { (endpoint.id) } }
        @if q.done.as_deref() == Some("resend") { div.notice role="status" { "The event is being sent again." } }
        section.card aria-labelledby="endpoint-h" {
            h2 #endpoint-h { "Details" }
            dl.facts {
                dt { "URL" } dd.id { (endpoint.url) }
                dt { "Status" } dd { (badge(&endpoint.status)) @if let Some(r) = &endpoint.disabled_reason { " (" (r) ")" } }
                dt { "Events" } dd { (endpoint.enabled_events.join(", ")) }
                dt { "Description" } dd { (endpoint.description.as_deref().unwrap_or("—")) }
            }
        }
        section.card aria-labelledby="log-h" {
            h2 #log-h { "Delivery log" }
            p {
                @if failed_only { a href=(path) { "Show every attempt" } } @else { a href=(format!("{path}?failed=1")) { "Show failed attempts only" } }
            }
            @if attempts.data.is_empty() { p { "No attempts." } } @else {
                div.table-wrap {
                    table.responsive {
                        thead { tr { th scope="col" { "Event" } th scope="col" { "Result" } th.num scope="col" { "Status code" } th.num scope="col" { "Time (ms)" } th scope="col" { "When" } @if may_resend { th scope="col" { "Action" } } } }
                        tbody {
                            @for a in &attempts.data {
                                tr {
                                    td data-label="Event" { span.id { (a.event) } }
                                    td data-label="Result" { (badge(if a.succeeded { "succeeded" } else { "failed" })) @if let Some(err) = &a.error { br; span.muted { (err) } } }
                                    td.num data-label="Status code" { (a.status_code.map(|c| c.to_string()).unwrap_or_else(|| "—".into())) }
                                    td.num data-label="Time (ms)" { (a.latency_ms) }
                                    td data-label="When" { (time(a.created)) }
                                    @if may_resend {
                                        td data-label="Action" {
                                            form method="post" action=(format!("{path}/resend")) {
                                                (csrf(&user)) (form_key())
                                                input type="hidden" name="event" value=(a.event);
                                                button.secondary type="submit" aria-label=(format!("Resend {}", a.event)) { "Resend" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            (pager(&path, &base, attempts.data.first().map(|a| a.id.as_str()), attempts.data.last().map(|a| a.id.as_str()), newer, older))
        }
    };
    layout::page("Webhook endpoint", Some(&user), Area::Webhooks, body).into_response()
}

#[derive(Deserialize)]
pub struct ResendForm {
    #[serde(default)]
    idempotency_key: String,
    #[serde(default)]
    event: String,
}

pub async fn resend(State(app): State<AppState>, Path(id): Path<String>, p: Posted<ResendForm>) -> Response {
    let (user, f) = (p.user, p.form);
    let sub = Submitted { key: &f.idempotency_key, confirmed: true };
    match actions::resend_event(&app, &user, &f.event, &id, sub).await {
        Ok(Done::Now(_) | Done::Before) => {
            Redirect::to(&format!("/dashboard/webhook-endpoints/{id}?done=resend")).into_response()
        }
        Err(e) => error_page(e, Some(&user)),
    }
}
