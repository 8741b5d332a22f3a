//! Customers: search by email, and the customer's page (orders, payments, credits balance and
//! ledger with an adjustment form, the processor's customer id, links to its subscriptions
//! and invoices).

use crate::dashboard::acted::{self, FormKey};
use crate::dashboard::error_page;
use crate::dashboard::layout::{self, Area, badge, csrf, form_key, money, pager, query, sides, time};
use crate::dashboard::session::{Posted, Signed};
use crate::services::dashboard::actions;
use crate::services::dashboard::{Permission, pages};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

#[derive(Deserialize, Default)]
pub struct CustomerQuery {
    email: Option<String>,
    starting_after: Option<String>,
    ending_before: Option<String>,
}

pub async fn list(State(app): State<AppState>, Signed(user): Signed, Query(q): Query<CustomerQuery>) -> Response {
    let listed = match pages::customers(&app, q.email.as_deref(), &q.starting_after, &q.ending_before).await {
        Ok(l) => l,
        Err(e) => return error_page(e, Some(&user)),
    };
    let (newer, older) = sides(&q.starting_after, &q.ending_before, listed.has_more);
    let base = query(&[("email", q.email.as_deref())]);
    let body = html! {
        h1 { "Customers" }
        section.card {
            form.filters method="get" action="/dashboard/customers" role="search" aria-label="Find customers" {
                div { label for="email" { "Email" } input #email type="search" name="email" value=[q.email.as_deref()]; }
                div { button type="submit" { "Search" } }
            }
        }
        section.card aria-labelledby="customers-h" {
            h2 #customers-h { "Results" }
            @if listed.data.is_empty() { p { "No customers match." } } @else {
                div.table-wrap {
                    table.responsive #customers {
                        thead { tr { th scope="col" { "Customer" } th scope="col" { "Name" } th scope="col" { "Email" } th.num scope="col" { "Credits" } th scope="col" { "Created" } } }
                        tbody {
                            @for c in &listed.data {
                                tr {
                                    td data-label="Customer" { a.id href=(format!("/dashboard/customers/{}", c.id)) { (c.id) } }
                                    td data-label="Name" { (c.name.as_deref().unwrap_or("—")) }
                                    td data-label="Email" { (c.email.as_deref().unwrap_or("—")) }
                                    td.num data-label="Credits" { (c.credit_balance) }
                                    td data-label="Created" { (time(c.created)) }
                                }
                            }
                        }
                    }
                }
            }
            (pager("/dashboard/customers", &base, listed.data.first().map(|c| c.id.as_str()), listed.data.last().map(|c| c.id.as_str()), newer, older))
        }
    };
    layout::page("Customers", Some(&user), Area::Customers, body).into_response()
}

#[derive(Deserialize, Default)]
pub struct Notice {
    done: Option<String>,
}

pub async fn detail(
    State(app): State<AppState>,
    Signed(user): Signed,
    Path(id): Path<String>,
    Query(n): Query<Notice>,
) -> Response {
    let d = match pages::customer(&app, &id).await {
        Ok(d) => d,
        Err(e) => return error_page(e, Some(&user)),
    };
    let c = &d.customer;
    let notice = match n.done.as_deref() {
        Some("credits") => Some("The credits were adjusted."),
        Some("repeat") => Some("That form was already submitted; it was done once."),
        _ => None,
    };
    let title = c.name.clone().or_else(|| c.email.clone()).unwrap_or_else(|| c.id.clone());
    let body = html! {
        p { a href="/dashboard/customers" { "← Customers" } }
        h1 { "Customer " (title) }
        @if let Some(n) = notice { div.notice role="status" { (n) } }
        section.card aria-labelledby="facts-h" {
            h2 #facts-h { "Details" }
            dl.facts {
                dt { "Id" } dd.id { (c.id) }
                dt { "Name" } dd #customer-name { (c.name.as_deref().unwrap_or("—")) }
                dt { "Email" } dd { (c.email.as_deref().unwrap_or("—")) }
                dt { "Guest" } dd { (if c.guest { "yes" } else { "no" }) }
                dt { "Processor customer" } dd.id { (c.processor_customer.as_deref().unwrap_or("not created yet")) }
                dt { "Created" } dd { (time(c.created)) }
            }
        }
        section.card aria-labelledby="orders-h" {
            h2 #orders-h { "Orders" }
            @if d.orders.data.is_empty() { p.muted { "No orders." } } @else {
                ul { @for o in &d.orders.data { li { a.id href=(format!("/dashboard/orders/{}", o.id)) { (o.id) } " " (money(o.total, &o.currency)) " " (badge(&o.payment_status)) " " (time(o.created)) } } }
            }
        }
        section.card aria-labelledby="payments-h" {
            h2 #payments-h { "Payments" }
            @if d.payments.data.is_empty() { p.muted { "No payments." } } @else {
                ul { @for p in &d.payments.data { li { span.id { (p.id) } " " (money(p.amount, &p.currency)) " " (badge(&p.status)) @if let Some(code) = &p.decline_code { " " (code) } " " (time(p.created)) } } }
            }
        }
        section.card aria-labelledby="subscriptions-h" {
            h2 #subscriptions-h { "Subscriptions" }
            @if d.subscriptions.data.is_empty() { p.muted { "No subscriptions." } } @else {
                ul { @for s in &d.subscriptions.data { li { a.id href=(format!("/dashboard/subscriptions/{}", s.id)) { (s.id) } " " span.id { (s.price) } " " (badge(&s.status)) " until " (time(s.current_period_end)) } } }
            }
            p {
                a href=(format!("/dashboard/subscriptions?{}", query(&[("customer", Some(&c.id))]))) { "All subscriptions of this customer" }
                " · "
                a href=(format!("/dashboard/invoices?{}", query(&[("customer", Some(&c.id))]))) { "Invoices of this customer" }
            }
        }
        section.card aria-labelledby="credits-h" {
            h2 #credits-h { "Credits" }
            p { "Balance: " strong #credit-balance { (d.credits.balance) } " credits (one is worth " (money(d.credits.unit_amount, &d.credits.currency)) ")" }
            @if d.credits.entries.is_empty() { p.muted { "No ledger entries." } } @else {
                div.table-wrap {
                    table {
                        thead { tr { th scope="col" { "Entry" } th scope="col" { "Kind" } th.num scope="col" { "Amount" } th.num scope="col" { "Balance after" } th scope="col" { "Reason" } } }
                        tbody { @for e in &d.credits.entries { tr { td.id { (e.id) } td { (e.kind) } td.num { (e.amount) } td.num { (e.balance_after) } td { (e.reason.as_deref().unwrap_or("")) } } } }
                    }
                }
            }
            @if user.role.allows(Permission::AdjustCredits) {
                h3 { "Adjust credits" }
                form method="post" action=(format!("/dashboard/customers/{}/credits", c.id)) {
                    (csrf(&user)) (form_key())
                    label for="credit-amount" { "Credits to add (negative to remove)" }
                    input #credit-amount name="amount" inputmode="numeric" required;
                    label for="credit-reason" { "Reason" }
                    input #credit-reason name="reason" required maxlength="500";
                    div.confirm { input #credit-confirm type="checkbox" name="confirm" value="yes" required; label for="credit-confirm" { "I confirm the adjustment" } }
                    button type="submit" { "Adjust" }
                }
            }
        }
    };
    layout::page(&format!("Customer {}", c.id), Some(&user), Area::Customers, body).into_response()
}

#[derive(Deserialize)]
pub struct CreditsForm {
    #[serde(flatten)]
    key: FormKey,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    reason: String,
}

pub async fn adjust_credits(State(app): State<AppState>, Path(id): Path<String>, p: Posted<CreditsForm>) -> Response {
    let (user, f) = (p.user, p.form);
    let result = actions::adjust_credits(&app, &user, &id, &f.amount, &f.reason, f.key.submitted()).await;
    let again = |e| async { error_page(e, Some(&user)) };
    acted::answer(&user, &format!("/dashboard/customers/{id}"), "credits", result, again).await
}
