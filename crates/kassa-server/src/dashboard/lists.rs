//! Read-only lists: payments (failed ones with their decline codes), events (by type or
//! object), the catalog (products, prices, stock).

use crate::dashboard::error_page;
use crate::dashboard::layout::{self, Area, badge, money, pager, query, sides, time};
use crate::dashboard::session::Signed;
use crate::services::dashboard::pages;
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use kassa_domain::lifecycle::Status;
use kassa_domain::lifecycle::payment::PaymentStatus;
use maud::html;
use serde::Deserialize;

#[derive(Deserialize, Default)]
pub struct ListQuery {
    status: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    object: Option<String>,
    starting_after: Option<String>,
    ending_before: Option<String>,
}

pub async fn payments(State(app): State<AppState>, Signed(user): Signed, Query(q): Query<ListQuery>) -> Response {
    let listed = match pages::payments(&app, q.status.as_deref(), &q.starting_after, &q.ending_before).await {
        Ok(l) => l,
        Err(e) => return error_page(e, Some(&user)),
    };
    let (newer, older) = sides(&q.starting_after, &q.ending_before, listed.has_more);
    let base = query(&[("status", q.status.as_deref())]);
    let body = html! {
        h1 { "Payments" }
        section.card {
            form.filters method="get" action="/dashboard/payments" aria-label="Filter payments" {
                div {
                    label for="status" { "Status" }
                    select #status name="status" {
                        option value="" { "Any" }
                        @for s in PaymentStatus::ALL { option value=(s.as_str()) selected[q.status.as_deref() == Some(s.as_str())] { (s.as_str().replace('_', " ")) } }
                    }
                }
                div { button type="submit" { "Filter" } }
            }
        }
        section.card aria-labelledby="payments-h" {
            h2 #payments-h { "Results" }
            @if listed.data.is_empty() { p { "No payments match." } } @else {
                div.table-wrap {
                    table.responsive #payments {
                        thead { tr { th scope="col" { "Payment" } th scope="col" { "Purpose" } th scope="col" { "Status" } th.num scope="col" { "Amount" } th scope="col" { "Failure" } th scope="col" { "Customer" } th scope="col" { "Created" } } }
                        tbody {
                            @for p in &listed.data {
                                tr {
                                    td.id data-label="Payment" { (p.id) }
                                    td data-label="Purpose" { (p.purpose) }
                                    td data-label="Status" { (badge(&p.status)) }
                                    td.num data-label="Amount" { (money(p.amount, &p.currency)) }
                                    td data-label="Failure" {
                                        @if let Some(code) = &p.failure_code { code { (code) } }
                                        @if let Some(decline) = &p.decline_code { " " code.decline { (decline) } }
                                        @if let Some(m) = &p.failure_message { br; span.muted { (m) } }
                                    }
                                    td data-label="Customer" { a.id href=(format!("/dashboard/customers/{}", p.customer)) { (p.customer) } }
                                    td data-label="Created" { (time(p.created)) }
                                }
                            }
                        }
                    }
                }
            }
            (pager("/dashboard/payments", &base, listed.data.first().map(|p| p.id.as_str()), listed.data.last().map(|p| p.id.as_str()), newer, older))
        }
    };
    layout::page("Payments", Some(&user), Area::Payments, body).into_response()
}

pub async fn events(State(app): State<AppState>, Signed(user): Signed, Query(q): Query<ListQuery>) -> Response {
    let listed =
        match pages::events(&app, q.kind.as_deref(), q.object.as_deref(), &q.starting_after, &q.ending_before).await {
            Ok(l) => l,
            Err(e) => return error_page(e, Some(&user)),
        };
    let (newer, older) = sides(&q.starting_after, &q.ending_before, listed.has_more);
    let base = query(&[("type", q.kind.as_deref()), ("object", q.object.as_deref())]);
    let body = html! {
        h1 { "Events" }
        section.card {
            form.filters method="get" action="/dashboard/events" aria-label="Filter events" {
                div { label for="type" { "Type (e.g. order.created, dashboard.order.refund)" } input #type name="type" value=[q.kind.as_deref()]; }
                div { label for="object" { "Object id" } input #object name="object" value=[q.object.as_deref()]; }
                div { button type="submit" { "Filter" } }
            }
        }
        section.card aria-labelledby="events-h" {
            h2 #events-h { "Results" }
            @if listed.data.is_empty() { p { "No events match." } } @else {
                div.table-wrap {
                    table.responsive #events {
                        thead { tr { th scope="col" { "Event" } th scope="col" { "Type" } th scope="col" { "Object" } th scope="col" { "By" } th scope="col" { "Created" } } }
                        tbody {
                            @for e in &listed.data {
                                tr {
                                    td.id data-label="Event" { (e.id) }
                                    td data-label="Type" { a href=(format!("/dashboard/events?{}", query(&[("type", Some(&e.kind))]))) { (e.kind) } }
                                    td data-label="Object" { @if let Some(id) = e.data.object.get("id").or_else(|| e.data.object.get("target")).and_then(|v| v.as_str()) { a.id href=(format!("/dashboard/events?{}", query(&[("object", Some(id))]))) { (id) } } }
                                    td data-label="By" { (e.data.object.pointer("/user/email").and_then(|v| v.as_str()).unwrap_or("")) }
                                    td data-label="Created" { (time(e.created)) }
                                }
                            }
                        }
                    }
                }
            }
            (pager("/dashboard/events", &base, listed.data.first().map(|e| e.id.as_str()), listed.data.last().map(|e| e.id.as_str()), newer, older))
        }
    };
    layout::page("Events", Some(&user), Area::Events, body).into_response()
}

pub async fn catalog(State(app): State<AppState>, Signed(user): Signed, Query(q): Query<ListQuery>) -> Response {
    let products = match pages::products(&app, &q.starting_after, &q.ending_before).await {
        Ok(p) => p,
        Err(e) => return error_page(e, Some(&user)),
    };
    let body = html! {
        h1 { "Catalog" }
        section.card aria-labelledby="products-h" {
            h2 #products-h { "Products" }
            @if products.is_empty() { p { "No products yet." } } @else {
                div.table-wrap {
                    table.responsive #products {
                        thead { tr { th scope="col" { "Product" } th scope="col" { "Status" } th scope="col" { "Prices" } th.num scope="col" { "In stock" } th.num scope="col" { "Available" } } }
                        tbody {
                            @for (p, prices) in &products {
                                tr {
                                    td data-label="Product" { (p.name) br; span.id { (p.id) } }
                                    td data-label="Status" { (badge(if p.active { "active" } else { "inactive" })) }
                                    td data-label="Prices" { @for pr in prices { (money(pr.unit_amount, &pr.currency)) @if pr.kind != "one_time" { " (" (pr.kind) ")" } " " } }
                                    @match &p.inventory {
                                        Some(i) => { td.num data-label="In stock" { (i.quantity) } td.num data-label="Available" { (i.available) } }
                                        None => { td.num data-label="In stock" { "not tracked" } td.num data-label="Available" { "—" } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout::page("Catalog", Some(&user), Area::Catalog, body).into_response()
}
