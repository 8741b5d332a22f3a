//! Orders: the list (filters, search by id or email, cursor pagination) and the order page
//! (lines, totals, addresses, the payment's timeline, and the actions capture, refund, cancel
//! and fulfil — each confirmed with a checkbox and done once per form).

use crate::dashboard::acted::{self, FormKey};
use crate::dashboard::error_page;
use crate::dashboard::layout::{self, Area, badge, csrf, form_key, money, pager, query, sides, time};
use crate::dashboard::session::{Posted, Signed};
use crate::error::{ApiError, ApiResult};
use crate::objects::commerce::Address;
use crate::services::dashboard::actions::{self, Done};
use crate::services::dashboard::pages::{self, OrderDetail, OrderQuery};
use crate::services::dashboard::{Permission, SignedIn};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kassa_domain::lifecycle::Status;
use kassa_domain::lifecycle::order::{OrderPaymentStatus, OrderStatus};
use maud::{Markup, html};
use serde::Deserialize;

pub async fn list(State(app): State<AppState>, Signed(user): Signed, Query(q): Query<OrderQuery>) -> Response {
    let listed = match pages::orders(&app, &q).await {
        Ok(l) => l,
        Err(e) => return error_page(e, Some(&user)),
    };
    let selected = |v: &Option<String>, s: &str| v.as_deref() == Some(s);
    let base = query(&[
        ("q", q.q.as_deref()),
        ("status", q.status.as_deref()),
        ("payment_status", q.payment_status.as_deref()),
        ("from", q.from.as_deref()),
        ("to", q.to.as_deref()),
    ]);
    let (newer, older) = sides(&q.starting_after, &q.ending_before, listed.has_more);
    let body = html! {
        h1 { "Orders" }
        section.card {
            form.filters method="get" action="/dashboard/orders" role="search" aria-label="Find orders" {
                div { label for="q" { "Order id or email" } input #q type="search" name="q" value=[q.q.as_deref()]; }
                div {
                    label for="status" { "Status" }
                    select #status name="status" {
                        option value="" { "Any" }
                        @for s in OrderStatus::ALL { option value=(s.as_str()) selected[selected(&q.status, s.as_str())] { (s.as_str()) } }
                    }
                }
                div {
                    label for="payment_status" { "Payment status" }
                    select #payment_status name="payment_status" {
                        option value="" { "Any" }
                        @for s in OrderPaymentStatus::ALL {
                            option value=(s.as_str()) selected[selected(&q.payment_status, s.as_str())] { (s.as_str().replace('_', " ")) }
                        }
                    }
                }
                div { label for="from" { "Created from" } input #from type="date" name="from" value=[q.from.as_deref()]; }
                div { label for="to" { "Created to" } input #to type="date" name="to" value=[q.to.as_deref()]; }
                div { button type="submit" { "Filter" } }
            }
        }
        section.card aria-labelledby="orders-heading" {
            h2 #orders-heading { "Results" }
            @if listed.data.is_empty() { p { "No orders match." } } @else {
                div.table-wrap {
                    table.responsive #orders {
                        thead { tr { th scope="col" { "Order" } th scope="col" { "Email" } th scope="col" { "Status" } th scope="col" { "Payment" } th.num scope="col" { "Total" } th scope="col" { "Created" } } }
                        tbody {
                            @for o in &listed.data {
                                tr {
                                    td data-label="Order" { a.id href=(format!("/dashboard/orders/{}", o.id)) { (o.id) } }
                                    td data-label="Email" { (o.email.as_deref().unwrap_or("—")) }
                                    td data-label="Status" { (badge(&o.status)) }
                                    td data-label="Payment" { (badge(&o.payment_status)) }
                                    td.num data-label="Total" { (money(o.total, &o.currency)) }
                                    td data-label="Created" { (time(o.created)) }
                                }
                            }
                        }
                    }
                }
            }
            (pager("/dashboard/orders", &base, listed.data.first().map(|o| o.id.as_str()), listed.data.last().map(|o| o.id.as_str()), newer, older))
        }
    };
    layout::page("Orders", Some(&user), Area::Orders, body).into_response()
}

#[derive(Deserialize, Default)]
pub struct Notice {
    done: Option<String>,
}

/// What the page says after an action (a fixed text per action, never the query's text).
fn notice_text(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "capture" => "The payment was captured.",
        "refund" => "The refund was made.",
        "cancel" => "The order was canceled.",
        "fulfill" => "The order was marked fulfilled.",
        "repeat" => "That form was already submitted; it was done once.",
        _ => return None,
    })
}

pub async fn detail(
    State(app): State<AppState>,
    Signed(user): Signed,
    Path(id): Path<String>,
    Query(n): Query<Notice>,
) -> Response {
    render(&app, &user, &id, StatusCode::OK, notice_text(n.done.as_deref()), None).await
}

async fn render(
    app: &AppState,
    user: &SignedIn,
    id: &str,
    status: StatusCode,
    notice: Option<&str>,
    error: Option<&str>,
) -> Response {
    match pages::order(app, id).await {
        Ok(d) => (
            status,
            layout::page(
                &format!("Order {}", d.order.id),
                Some(user),
                Area::Orders,
                order_page(user, &d, notice, error),
            ),
        )
            .into_response(),
        Err(e) => error_page(e, Some(user)),
    }
}

fn address(a: &Option<Address>) -> Markup {
    html! {
        @match a {
            Some(a) => {
                address {
                    @if let Some(n) = &a.name { (n) br; }
                    (a.line1) br;
                    @if let Some(l) = &a.line2 { (l) br; }
                    (a.postal_code.as_deref().unwrap_or("")) " " (a.city) br;
                    @if let Some(s) = &a.state { (s) " " }
                    (a.country)
                }
            }
            None => { p.muted { "None" } }
        }
    }
}

fn order_page(user: &SignedIn, d: &OrderDetail, notice: Option<&str>, error: Option<&str>) -> Markup {
    let o = &d.order;
    let refundable = o.amount_captured - o.amount_refunded;
    let capturable = o.payment_status == OrderPaymentStatus::Authorized.as_str();
    let open = o.status == OrderStatus::Open.as_str();
    html! {
        p { a href="/dashboard/orders" { "← Orders" } }
        h1 { "Order " span.id { (o.id) } }
        @if let Some(n) = notice { div.notice role="status" { (n) } }
        @if let Some(e) = error { div.error role="alert" #action-error { (e) } }
        div.grid {
            section.card aria-labelledby="summary-h" {
                h2 #summary-h { "Summary" }
                dl.facts {
                    dt { "Status" } dd #order-status { (badge(&o.status)) }
                    dt { "Payment" } dd #payment-status { (badge(&o.payment_status)) }
                    dt { "Fulfilment" } dd { (badge(&o.fulfillment_status)) }
                    dt { "Email" } dd { (o.email.as_deref().unwrap_or("—")) }
                    dt { "Customer" } dd { a.id href=(format!("/dashboard/customers/{}", o.customer)) { (o.customer) } }
                    dt { "Created" } dd { (time(o.created)) }
                }
            }
            section.card aria-labelledby="money-h" {
                h2 #money-h { "Money" }
                dl.facts {
                    dt { "Authorized" } dd { (money(o.amount_authorized, &o.currency)) }
                    dt { "Captured" } dd #amount-captured { (money(o.amount_captured, &o.currency)) }
                    dt { "Refunded" } dd #amount-refunded { (money(o.amount_refunded, &o.currency)) }
                    dt { "Refundable" } dd { (money(refundable, &o.currency)) }
                }
            }
        }
        section.card aria-labelledby="lines-h" {
            h2 #lines-h { "Lines" }
            div.table-wrap {
                table {
                    thead { tr { th scope="col" { "Item" } th.num scope="col" { "Quantity" } th.num scope="col" { "Unit price" } th.num scope="col" { "Amount" } } }
                    tbody {
                        @for l in &o.items {
                            tr { td { (l.name) } td.num { (l.quantity) } td.num { (money(l.unit_amount, &o.currency)) } td.num { (money(l.amount, &o.currency)) } }
                        }
                    }
                    tfoot {
                        tr { th scope="row" colspan="3" { "Subtotal" } td.num { (money(o.subtotal, &o.currency)) } }
                        @if o.discount_total != 0 { tr { th scope="row" colspan="3" { "Discount" } td.num { (money(-o.discount_total, &o.currency)) } } }
                        tr { th scope="row" colspan="3" { "Shipping" } td.num { (money(o.shipping_total, &o.currency)) } }
                        tr { th scope="row" colspan="3" { "Tax" } td.num { (money(o.tax_total, &o.currency)) } }
                        tr { th scope="row" colspan="3" { "Total" } td.num #order-total { (money(o.total, &o.currency)) } }
                    }
                }
            }
        }
        div.grid {
            section.card aria-labelledby="ship-h" { h2 #ship-h { "Shipping address" } (address(&o.shipping_address)) }
            section.card aria-labelledby="bill-h" { h2 #bill-h { "Billing address" } (address(&o.billing_address)) }
        }
        @if user.role.allows(Permission::ManageOrders) {
            section.card aria-labelledby="actions-h" {
                h2 #actions-h { "Actions" }
                div.actions {
                    @if capturable {
                        form method="post" action=(format!("/dashboard/orders/{}/capture", o.id)) aria-labelledby="capture-h" {
                            h3 #capture-h { "Capture" }
                            (csrf(user)) (form_key())
                            label for="capture-amount" { "Amount (" (o.currency.to_uppercase()) "), empty for all" }
                            input #capture-amount name="amount" inputmode="decimal";
                            (confirm("capture-confirm", "I confirm the capture"))
                            button type="submit" { "Capture" }
                        }
                    }
                    @if refundable > 0 {
                        form method="post" action=(format!("/dashboard/orders/{}/refund", o.id)) aria-labelledby="refund-h" {
                            h3 #refund-h { "Refund" }
                            (csrf(user)) (form_key())
                            label for="refund-amount" { "Amount (" (o.currency.to_uppercase()) "), up to " (money(refundable, &o.currency)) "; empty for all" }
                            input #refund-amount name="amount" inputmode="decimal";
                            label for="refund-reason" { "Reason (optional)" }
                            input #refund-reason name="reason" maxlength="500";
                            (confirm("refund-confirm", "I confirm the refund"))
                            button.danger type="submit" #refund-button { "Refund" }
                        }
                    }
                    @if open && o.fulfillment_status != "fulfilled" {
                        form method="post" action=(format!("/dashboard/orders/{}/fulfill", o.id)) aria-labelledby="fulfill-h" {
                            h3 #fulfill-h { "Fulfil" }
                            (csrf(user)) (form_key())
                            (confirm("fulfill-confirm", "I confirm the order was shipped"))
                            button type="submit" { "Mark fulfilled" }
                        }
                        form method="post" action=(format!("/dashboard/orders/{}/cancel", o.id)) aria-labelledby="cancel-h" {
                            h3 #cancel-h { "Cancel" }
                            (csrf(user)) (form_key())
                            p.muted { "Releases the authorization or refunds what was captured, and restocks." }
                            (confirm("cancel-confirm", "I confirm the cancellation"))
                            button.danger type="submit" { "Cancel order" }
                        }
                    }
                }
            }
        }
        section.card aria-labelledby="payment-h" {
            h2 #payment-h { "Payment" }
            @if let Some(p) = &d.payment {
                dl.facts {
                    dt { "Payment" } dd.id { (p.id) }
                    dt { "Status" } dd { (badge(&p.status)) }
                    dt { "Processor" } dd { (p.processor) " " span.id { (p.processor_payment_intent.as_deref().unwrap_or("")) } }
                    @if let Some(code) = &p.failure_code { dt { "Failure" } dd { (code) " " (p.decline_code.as_deref().unwrap_or("")) } }
                }
            }
            h3 { "Refunds" }
            @if d.refunds.is_empty() { p.muted { "No refunds." } } @else {
                ul #refunds { @for r in &d.refunds { li { span.id { (r.id) } " " (money(r.amount, &r.currency)) " " (badge(&r.status)) " " (time(r.created)) @if let Some(why) = &r.reason { " — " (why) } } } }
            }
        }
        section.card aria-labelledby="timeline-h" {
            h2 #timeline-h { "Timeline" }
            ol.timeline #timeline {
                @for e in &d.timeline {
                    li {
                        strong { (e.kind) }
                        @if let Some(who) = e.data.object.pointer("/user/email").and_then(|v| v.as_str()) { " by " (who) }
                        " " span.muted { (time(e.created)) }
                        br; span.id { (e.id) }
                    }
                }
            }
        }
    }
}

/// The checkbox an action needs ticked: the confirmation, without script.
fn confirm(id: &str, label: &str) -> Markup {
    html! { div.confirm { input id=(id) type="checkbox" name="confirm" value="yes" required; label for=(id) { (label) } } }
}

#[derive(Deserialize)]
pub struct ActionForm {
    #[serde(flatten)]
    key: FormKey,
    amount: Option<String>,
    reason: Option<String>,
}

/// After an action: [`acted::answer`], on the order's page.
async fn after<T>(app: &AppState, user: &SignedIn, id: &str, done: &str, result: ApiResult<Done<T>>) -> Response {
    let again = |e: ApiError| async move { render(app, user, id, e.status(), None, Some(&e.to_string())).await };
    acted::answer(user, &format!("/dashboard/orders/{id}"), done, result, again).await
}

pub async fn capture(State(app): State<AppState>, Path(id): Path<String>, p: Posted<ActionForm>) -> Response {
    let (user, f) = (p.user, p.form);
    let result = actions::capture_order(&app, &user, &id, f.amount.as_deref(), f.key.submitted()).await;
    after(&app, &user, &id, "capture", result).await
}

pub async fn refund(State(app): State<AppState>, Path(id): Path<String>, p: Posted<ActionForm>) -> Response {
    let (user, f) = (p.user, p.form);
    let (amount, reason) = (f.amount.as_deref(), f.reason.as_deref());
    let result = actions::refund_order(&app, &user, &id, amount, reason, f.key.submitted()).await;
    after(&app, &user, &id, "refund", result).await
}

pub async fn cancel(State(app): State<AppState>, Path(id): Path<String>, p: Posted<ActionForm>) -> Response {
    let (user, f) = (p.user, p.form);
    let result = actions::cancel_order(&app, &user, &id, f.key.submitted()).await;
    after(&app, &user, &id, "cancel", result).await
}

pub async fn fulfill(State(app): State<AppState>, Path(id): Path<String>, p: Posted<ActionForm>) -> Response {
    let (user, f) = (p.user, p.form);
    let result = actions::fulfill_order(&app, &user, &id, f.key.submitted()).await;
    after(&app, &user, &id, "fulfill", result).await
}
