//! Subscriptions and invoices: the lists (by status and customer, cursor pagination), a
//! subscription's page (item, period, status, latest invoice, its invoices, and the actions
//! cancel now, cancel at the period end and resume — each confirmed and done once per form),
//! and an invoice's page (lines, amounts, attempts, the next attempt).

use crate::dashboard::acted::{self, FormKey};
use crate::dashboard::error_page;
use crate::dashboard::layout::{self, Area, badge, csrf, form_key, money, pager, query, sides, time};
use crate::dashboard::session::{Posted, Signed};
use crate::error::{ApiError, ApiResult};
use crate::objects::billing::Invoice;
use crate::services::dashboard::actions::{self, Done};
use crate::services::dashboard::pages::{self, BillingQuery, SubscriptionDetail};
use crate::services::dashboard::{Permission, SignedIn};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kassa_domain::lifecycle::Status;
use kassa_domain::lifecycle::invoice::InvoiceStatus;
use kassa_domain::lifecycle::subscription::SubscriptionStatus;
use maud::{Markup, html};
use serde::Deserialize;

/// The filter form of both lists: a status (one of `statuses`) and a customer id.
fn filters(action: &str, label: &str, statuses: &[&str], q: &BillingQuery) -> Markup {
    html! {
        section.card {
            form.filters method="get" action=(action) role="search" aria-label=(label) {
                div {
                    label for="status" { "Status" }
                    select #status name="status" {
                        option value="" { "Any" }
                        @for s in statuses { option value=(s) selected[q.status.as_deref() == Some(*s)] { (s.replace('_', " ")) } }
                    }
                }
                div { label for="customer" { "Customer id" } input #customer type="search" name="customer" value=[q.customer.as_deref()]; }
                div { button type="submit" { "Filter" } }
            }
        }
    }
}

fn base(q: &BillingQuery) -> String {
    query(&[("status", q.status.as_deref()), ("customer", q.customer.as_deref())])
}

pub async fn list(State(app): State<AppState>, Signed(user): Signed, Query(q): Query<BillingQuery>) -> Response {
    let listed = match pages::subscriptions(&app, &q).await {
        Ok(l) => l,
        Err(e) => return error_page(e, Some(&user)),
    };
    let statuses: Vec<&str> = SubscriptionStatus::ALL.iter().map(|s| s.as_str()).collect();
    let (newer, older) = sides(&q.starting_after, &q.ending_before, listed.has_more);
    let body = html! {
        h1 { "Subscriptions" }
        (filters("/dashboard/subscriptions", "Find subscriptions", &statuses, &q))
        section.card aria-labelledby="subscriptions-h" {
            h2 #subscriptions-h { "Results" }
            @if listed.data.is_empty() { p { "No subscriptions match." } } @else {
                div.table-wrap {
                    table.responsive #subscriptions {
                        thead { tr { th scope="col" { "Subscription" } th scope="col" { "Customer" } th scope="col" { "Price" } th.num scope="col" { "Quantity" } th scope="col" { "Status" } th scope="col" { "Period ends" } } }
                        tbody {
                            @for s in &listed.data {
                                tr {
                                    td data-label="Subscription" { a.id href=(format!("/dashboard/subscriptions/{}", s.id)) { (s.id) } }
                                    td data-label="Customer" { a.id href=(format!("/dashboard/customers/{}", s.customer)) { (s.customer) } }
                                    td.id data-label="Price" { (s.price) }
                                    td.num data-label="Quantity" { (s.quantity) }
                                    td data-label="Status" { (badge(&s.status)) @if s.cancel_at_period_end { " " span.muted { "cancels at period end" } } }
                                    td data-label="Period ends" { (time(s.current_period_end)) }
                                }
                            }
                        }
                    }
                }
            }
            (pager("/dashboard/subscriptions", &base(&q), listed.data.first().map(|s| s.id.as_str()), listed.data.last().map(|s| s.id.as_str()), newer, older))
        }
    };
    layout::page("Subscriptions", Some(&user), Area::Subscriptions, body).into_response()
}

/// A table of invoices (the list page and a subscription's page).
fn invoice_table(invoices: &[Invoice]) -> Markup {
    html! {
        div.table-wrap {
            table.responsive #invoices {
                thead { tr { th scope="col" { "Invoice" } th scope="col" { "Customer" } th scope="col" { "Status" } th.num scope="col" { "Due" } th.num scope="col" { "Paid" } th.num scope="col" { "Attempts" } th scope="col" { "Created" } } }
                tbody {
                    @for i in invoices {
                        tr {
                            td data-label="Invoice" { a.id href=(format!("/dashboard/invoices/{}", i.id)) { (i.id) } }
                            td data-label="Customer" { a.id href=(format!("/dashboard/customers/{}", i.customer)) { (i.customer) } }
                            td data-label="Status" { (badge(&i.status)) }
                            td.num data-label="Due" { (money(i.amount_due, &i.currency)) }
                            td.num data-label="Paid" { (money(i.amount_paid, &i.currency)) }
                            td.num data-label="Attempts" { (i.attempt_count) }
                            td data-label="Created" { (time(i.created)) }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize, Default)]
pub struct DetailQuery {
    done: Option<String>,
    starting_after: Option<String>,
    ending_before: Option<String>,
}

/// What the page says after an action (a fixed text per action, never the query's text).
fn notice_text(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "cancel" => "The subscription was canceled.",
        "cancel_at_period_end" => "The subscription will be canceled at the end of its period.",
        "resume" => "The subscription was resumed.",
        "repeat" => "That form was already submitted; it was done once.",
        _ => return None,
    })
}

pub async fn detail(
    State(app): State<AppState>,
    Signed(user): Signed,
    Path(id): Path<String>,
    Query(q): Query<DetailQuery>,
) -> Response {
    let notice = notice_text(q.done.as_deref());
    render(&app, &user, &id, &q, StatusCode::OK, notice, None).await
}

async fn render(
    app: &AppState,
    user: &SignedIn,
    id: &str,
    q: &DetailQuery,
    status: StatusCode,
    notice: Option<&str>,
    error: Option<&str>,
) -> Response {
    match pages::subscription(app, id, &q.starting_after, &q.ending_before).await {
        Ok(d) => {
            let (newer, older) = sides(&q.starting_after, &q.ending_before, d.invoices.has_more);
            let title = format!("Subscription {}", d.subscription.id);
            let body = subscription_page(user, &d, notice, error, newer, older);
            (status, layout::page(&title, Some(user), Area::Subscriptions, body)).into_response()
        }
        Err(e) => error_page(e, Some(user)),
    }
}

/// The checkbox an action needs ticked: the confirmation, without script.
fn confirm(id: &str, label: &str) -> Markup {
    html! { div.confirm { input id=(id) type="checkbox" name="confirm" value="yes" required; label for=(id) { (label) } } }
}

fn subscription_page(
    user: &SignedIn,
    d: &SubscriptionDetail,
    notice: Option<&str>,
    error: Option<&str>,
    newer: bool,
    older: bool,
) -> Markup {
    let s = &d.subscription;
    let ended = crate::services::subscriptions::has_ended(&s.status);
    html! {
        p { a href="/dashboard/subscriptions" { "← Subscriptions" } }
        h1 { "Subscription " span.id { (s.id) } }
        @if let Some(n) = notice { div.notice role="status" { (n) } }
        @if let Some(e) = error { div.error role="alert" #action-error { (e) } }
        div.grid {
            section.card aria-labelledby="summary-h" {
                h2 #summary-h { "Summary" }
                dl.facts {
                    dt { "Status" } dd #subscription-status { (badge(&s.status)) }
                    dt { "Cancels at period end" } dd #cancel-at-period-end { (if s.cancel_at_period_end { "yes" } else { "no" }) }
                    dt { "Customer" } dd { a.id href=(format!("/dashboard/customers/{}", s.customer)) { (s.customer) } }
                    dt { "Current period" } dd #current-period { (time(s.current_period_start)) " – " (time(s.current_period_end)) }
                    @if let Some(t) = s.trial_end { dt { "Trial ends" } dd { (time(t)) } }
                    @if let Some(t) = s.canceled_at { dt { "Canceled at" } dd #canceled-at { (time(t)) } }
                    dt { "Payment method" } dd.id { (s.default_payment_method.as_deref().unwrap_or("—")) }
                    dt { "Created" } dd { (time(s.created)) }
                }
            }
            section.card aria-labelledby="latest-h" {
                h2 #latest-h { "Latest invoice" }
                @match &d.latest_invoice {
                    Some(i) => {
                        dl.facts {
                            dt { "Invoice" } dd { a.id #latest-invoice href=(format!("/dashboard/invoices/{}", i.id)) { (i.id) } }
                            dt { "Status" } dd { (badge(&i.status)) }
                            dt { "Due" } dd { (money(i.amount_due, &i.currency)) }
                            dt { "Paid" } dd { (money(i.amount_paid, &i.currency)) }
                            @if let Some(t) = i.next_payment_attempt { dt { "Next attempt" } dd { (time(t)) } }
                        }
                    }
                    None => { p.muted { "None yet." } }
                }
            }
        }
        section.card aria-labelledby="items-h" {
            h2 #items-h { "Items" }
            div.table-wrap {
                table {
                    thead { tr { th scope="col" { "Price" } th.num scope="col" { "Quantity" } } }
                    tbody { @for it in &s.items.data { tr { td.id { (it.price) } td.num { (it.quantity) } } } }
                }
            }
            @if let Some(p) = &s.pending_update {
                p { "At the period end: " span.id { (p.price) } " × " (p.quantity) }
            }
        }
        section.card aria-labelledby="sub-invoices-h" {
            h2 #sub-invoices-h { "Invoices" }
            @if d.invoices.data.is_empty() { p.muted { "No invoices." } } @else { (invoice_table(&d.invoices.data)) }
            (pager(&format!("/dashboard/subscriptions/{}", s.id), "", d.invoices.data.first().map(|i| i.id.as_str()), d.invoices.data.last().map(|i| i.id.as_str()), newer, older))
        }
        @if user.role.allows(Permission::ManageSubscriptions) && !ended {
            section.card aria-labelledby="actions-h" {
                h2 #actions-h { "Actions" }
                div.actions {
                    @if s.cancel_at_period_end {
                        form method="post" action=(format!("/dashboard/subscriptions/{}/resume", s.id)) aria-labelledby="resume-h" {
                            h3 #resume-h { "Resume" }
                            (csrf(user)) (form_key())
                            p { "Keep billing after the current period." }
                            (confirm("resume-confirm", "I confirm the subscription continues"))
                            button type="submit" { "Resume" }
                        }
                    } @else {
                        form method="post" action=(format!("/dashboard/subscriptions/{}/cancel", s.id)) aria-labelledby="cancel-end-h" {
                            h3 #cancel-end-h { "Cancel at period end" }
                            (csrf(user)) (form_key())
                            input type="hidden" name="at_period_end" value="true";
                            p { "Billing stops on " (time(s.current_period_end)) "." }
                            (confirm("cancel-end-confirm", "I confirm the cancellation at the period end"))
                            button type="submit" { "Cancel at period end" }
                        }
                    }
                    form method="post" action=(format!("/dashboard/subscriptions/{}/cancel", s.id)) aria-labelledby="cancel-now-h" {
                        h3 #cancel-now-h { "Cancel now" }
                        (csrf(user)) (form_key())
                        input type="hidden" name="at_period_end" value="false";
                        p { "Ends the subscription now; its open invoices are voided." }
                        (confirm("cancel-now-confirm", "I confirm the cancellation now"))
                        button.danger type="submit" { "Cancel now" }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct ActionForm {
    #[serde(flatten)]
    key: FormKey,
    at_period_end: Option<String>,
}

/// After an action: [`acted::answer`], on the subscription's page.
async fn after<T>(app: &AppState, user: &SignedIn, id: &str, done: &str, result: ApiResult<Done<T>>) -> Response {
    let again = |e: ApiError| async move {
        render(app, user, id, &DetailQuery::default(), e.status(), None, Some(&e.to_string())).await
    };
    acted::answer(user, &format!("/dashboard/subscriptions/{id}"), done, result, again).await
}

pub async fn cancel(State(app): State<AppState>, Path(id): Path<String>, p: Posted<ActionForm>) -> Response {
    let (user, f) = (p.user, p.form);
    let at_period_end = match f.at_period_end.as_deref() {
        Some("true") => true,
        Some("false") | None => false,
        Some(_) => {
            let e = ApiError::invalid("at_period_end", "at_period_end must be true or false.");
            return render(&app, &user, &id, &DetailQuery::default(), e.status(), None, Some(&e.to_string())).await;
        }
    };
    let result = actions::cancel_subscription(&app, &user, &id, at_period_end, f.key.submitted()).await;
    let done = if at_period_end { "cancel_at_period_end" } else { "cancel" };
    after(&app, &user, &id, done, result).await
}

pub async fn resume(State(app): State<AppState>, Path(id): Path<String>, p: Posted<ActionForm>) -> Response {
    let (user, f) = (p.user, p.form);
    let result = actions::resume_subscription(&app, &user, &id, f.key.submitted()).await;
    after(&app, &user, &id, "resume", result).await
}

pub async fn invoices(State(app): State<AppState>, Signed(user): Signed, Query(q): Query<BillingQuery>) -> Response {
    let listed = match pages::invoices(&app, &q).await {
        Ok(l) => l,
        Err(e) => return error_page(e, Some(&user)),
    };
    let statuses: Vec<&str> = InvoiceStatus::ALL.iter().map(|s| s.as_str()).collect();
    let (newer, older) = sides(&q.starting_after, &q.ending_before, listed.has_more);
    let body = html! {
        h1 { "Invoices" }
        (filters("/dashboard/invoices", "Find invoices", &statuses, &q))
        section.card aria-labelledby="invoices-h" {
            h2 #invoices-h { "Results" }
            @if listed.data.is_empty() { p { "No invoices match." } } @else { (invoice_table(&listed.data)) }
            (pager("/dashboard/invoices", &base(&q), listed.data.first().map(|i| i.id.as_str()), listed.data.last().map(|i| i.id.as_str()), newer, older))
        }
    };
    layout::page("Invoices", Some(&user), Area::Invoices, body).into_response()
}

pub async fn invoice(State(app): State<AppState>, Signed(user): Signed, Path(id): Path<String>) -> Response {
    let i = match pages::invoice(&app, &id).await {
        Ok(i) => i,
        Err(e) => return error_page(e, Some(&user)),
    };
    let body = html! {
        p { a href="/dashboard/invoices" { "← Invoices" } }
        h1 { "Invoice " span.id { (i.id) } }
        div.grid {
            section.card aria-labelledby="summary-h" {
                h2 #summary-h { "Summary" }
                dl.facts {
                    dt { "Status" } dd #invoice-status { (badge(&i.status)) }
                    dt { "Reason" } dd { (i.billing_reason.replace('_', " ")) }
                    dt { "Customer" } dd { a.id href=(format!("/dashboard/customers/{}", i.customer)) { (i.customer) } }
                    @if let Some(s) = &i.subscription { dt { "Subscription" } dd { a.id href=(format!("/dashboard/subscriptions/{s}")) { (s) } } }
                    dt { "Period" } dd { (time(i.period_start)) " – " (time(i.period_end)) }
                    dt { "Created" } dd { (time(i.created)) }
                }
            }
            section.card aria-labelledby="money-h" {
                h2 #money-h { "Amounts and attempts" }
                dl.facts {
                    dt { "Due" } dd #amount-due { (money(i.amount_due, &i.currency)) }
                    dt { "Paid" } dd #amount-paid { (money(i.amount_paid, &i.currency)) }
                    dt { "Remaining" } dd { (money(i.amount_remaining, &i.currency)) }
                    @if i.credits != 0 { dt { "Credits" } dd { (i.credits) } }
                    dt { "Attempts" } dd #attempt-count { (i.attempt_count) }
                    dt { "Next attempt" } dd #next-attempt { @match i.next_payment_attempt { Some(t) => (time(t)), None => "none scheduled" } }
                    @if let Some(err) = &i.last_payment_error {
                        dt { "Last failure" } dd { code { (err.code) } @if let Some(d) = &err.decline_code { " " code.decline { (d) } } br; span.muted { (err.message) } }
                    }
                    dt { "Payment" } dd.id { (i.payment_intent.as_deref().unwrap_or("—")) }
                }
            }
        }
        section.card aria-labelledby="lines-h" {
            h2 #lines-h { "Lines" }
            div.table-wrap {
                table #invoice-lines {
                    thead { tr { th scope="col" { "Description" } th scope="col" { "Period" } th.num scope="col" { "Quantity" } th.num scope="col" { "Amount" } } }
                    tbody {
                        @for l in &i.lines.data {
                            tr {
                                td { (l.description) @if l.proration { " " span.muted { "(proration)" } } }
                                td { (time(l.period.start)) " – " (time(l.period.end)) }
                                td.num { (l.quantity) }
                                td.num { (money(l.amount, &i.currency)) }
                            }
                        }
                    }
                    tfoot { tr { th scope="row" colspan="3" { "Total due" } td.num { (money(i.amount_due, &i.currency)) } } }
                }
            }
        }
    };
    layout::page(&format!("Invoice {}", i.id), Some(&user), Area::Invoices, body).into_response()
}
