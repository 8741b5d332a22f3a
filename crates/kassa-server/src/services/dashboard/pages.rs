//! The read models of the dashboard's pages: one function per page, composed of the same
//! reads the admin API makes, so the page shows what `GET /admin/…` answers.

use crate::error::{ApiError, ApiResult};
use crate::objects::billing::Invoice;
use crate::objects::catalog::Product;
use crate::objects::commerce::{Order, Payment, Refund};
use crate::objects::credits::CreditBalance;
use crate::objects::customer::{Customer, Subscription};
use crate::objects::event::Event;
use crate::objects::webhook_endpoint::{WebhookDeliveryAttempt, WebhookEndpoint};
use crate::services::dashboard::users::{self, User};
use crate::services::dashboard::{Permission, SignedIn};
use crate::services::{
    Listed, Page, catalog, credits, customers, events, invoices, orders, payments, webhook_endpoints,
};
use crate::state::AppState;
use kassa_domain::ids::IdKind;
use kassa_domain::lifecycle::order::{OrderPaymentStatus, OrderStatus};
use kassa_domain::lifecycle::payment::{PaymentStatus, Purpose};
use kassa_store::dashboard::{self as db, OrderFilter};

pub const DAY: i64 = 86_400;

/// Days since 1970-01-01 of a civil date (proleptic Gregorian), after Howard Hinnant's
/// `days_from_civil`.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month, day) of a day since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

/// `YYYY-MM-DD` (a date input's value) → the Unix second its day starts (UTC).
pub fn parse_date(param: &str, s: &str) -> ApiResult<i64> {
    let bad = || ApiError::invalid(param, format!("{param} must be a date, YYYY-MM-DD."));
    let parts: Vec<&str> = s.trim().split('-').collect();
    let [y, m, d] = parts.as_slice() else { return Err(bad()) };
    let num = |t: &str, len: usize| -> Option<i64> {
        (t.len() == len && t.bytes().all(|b| b.is_ascii_digit())).then(|| t.parse().ok()).flatten()
    };
    let (y, m, d) = (num(y, 4).ok_or_else(bad)?, num(m, 2).ok_or_else(bad)?, num(d, 2).ok_or_else(bad)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || civil_from_days(days_from_civil(y, m, d)) != (y, m, d) {
        return Err(bad());
    }
    Ok(days_from_civil(y, m, d) * DAY)
}

/// The order list's filters, as typed in its form (all optional).
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct OrderQuery {
    /// An order id or an email.
    pub q: Option<String>,
    pub status: Option<String>,
    pub payment_status: Option<String>,
    /// `YYYY-MM-DD`, from the start of the day.
    pub from: Option<String>,
    /// `YYYY-MM-DD`, to the end of the day.
    pub to: Option<String>,
    pub starting_after: Option<String>,
    pub ending_before: Option<String>,
}

fn filled(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The page size of the dashboard's lists.
pub const PAGE_SIZE: i64 = 25;

fn page(starting_after: &Option<String>, ending_before: &Option<String>) -> Page {
    Page {
        limit: PAGE_SIZE,
        starting_after: filled(starting_after).map(str::to_string),
        ending_before: if filled(starting_after).is_some() { None } else { filled(ending_before).map(str::to_string) },
    }
}

/// Orders matching the query, newest first, a page at a time.
pub async fn orders(state: &AppState, q: &OrderQuery) -> ApiResult<Listed<Order>> {
    let mut f = OrderFilter::default();
    if let Some(text) = filled(&q.q) {
        if text.contains('@') {
            f.email = Some(text.to_lowercase());
        } else {
            f.id = Some(text.to_string());
        }
    }
    if let Some(s) = filled(&q.status) {
        OrderStatus::parse(s).ok_or_else(|| ApiError::invalid("status", "No such order status."))?;
        f.status = Some(s.into());
    }
    if let Some(s) = filled(&q.payment_status) {
        OrderPaymentStatus::parse(s).ok_or_else(|| ApiError::invalid("payment_status", "No such payment status."))?;
        f.payment_status = Some(s.into());
    }
    f.created_from = filled(&q.from).map(|d| parse_date("from", d)).transpose()?;
    f.created_until = filled(&q.to).map(|d| parse_date("to", d).map(|t| t + DAY)).transpose()?;
    let listed = db::search_orders(state.store.reader(), &f, &page(&q.starting_after, &q.ending_before)).await?;
    let ids: Vec<String> = listed.data.iter().map(|o| o.id.clone()).collect();
    let mut lines = kassa_store::orders::lines_of(state.store.reader(), &ids).await?;
    Ok(listed.map(|o| {
        let (mine, rest): (Vec<_>, Vec<_>) = lines.drain(..).partition(|l| l.order_id == o.id);
        lines = rest;
        Order::from_rows(o, mine)
    }))
}

/// Everything the order page shows.
pub struct OrderDetail {
    pub order: Order,
    pub payment: Option<Payment>,
    pub refunds: Vec<Refund>,
    /// The order's, its payment's and its refunds' events, oldest first.
    pub timeline: Vec<Event>,
}

/// How many events of one object the timeline shows.
const TIMELINE_LIMIT: i64 = 100;

async fn events_of(state: &AppState, object: &str) -> ApiResult<Vec<Event>> {
    let page = Page { limit: TIMELINE_LIMIT, starting_after: None, ending_before: None };
    Ok(events::list(&state.store, None, Some(object), &page).await?.data)
}

pub async fn order(state: &AppState, id: &str) -> ApiResult<OrderDetail> {
    let order = orders::load(&state.store, id).await?;
    let payment = payments::get(state, &order.payment).await.ok();
    let refunds = orders::refunds(&state.store, id).await?;
    let mut timeline = events_of(state, &order.id).await?;
    timeline.extend(events_of(state, &order.payment).await?);
    for r in &refunds {
        timeline.extend(events_of(state, &r.id).await?);
    }
    timeline.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(OrderDetail { order, payment, refunds, timeline })
}

/// Figures of one period.
pub struct Period {
    pub label: &'static str,
    pub days: i64,
    /// Per currency: (currency, orders, revenue).
    pub orders: Vec<(String, i64, i64)>,
    pub failed_payments: i64,
    /// Money taken for credit top-ups, in the credits' currency.
    pub credits_sold: i64,
}

pub struct Overview {
    pub periods: Vec<Period>,
    pub credits_currency: String,
    /// The chart's currency (the one with most orders in 30 days) and its revenue per day,
    /// every one of the last 30 days (zero when nothing was sold).
    pub chart: Option<(String, Vec<(i64, i64)>)>,
}

pub async fn overview(state: &AppState) -> ApiResult<Overview> {
    let now = state.clock.now();
    let today = now.div_euclid(DAY) * DAY;
    let mut periods = Vec::new();
    for (label, days) in [("Today", 1), ("Last 7 days", 7), ("Last 30 days", 30)] {
        let since = today - (days - 1) * DAY;
        let reader = state.store.reader();
        let orders = db::order_totals_since(reader, since).await?;
        periods.push(Period {
            label,
            days,
            orders: orders.into_iter().map(|t| (t.currency, t.orders, t.revenue)).collect(),
            failed_payments: db::payments_in_status_since(reader, PaymentStatus::Failed.as_str(), since).await?,
            credits_sold: db::payments_amount_since(
                reader,
                Purpose::Credits.as_str(),
                PaymentStatus::Succeeded.as_str(),
                since,
            )
            .await?,
        });
    }
    let since = today - 29 * DAY;
    let chart = match periods.last().and_then(|p| p.orders.iter().max_by_key(|o| o.1)).map(|o| o.0.clone()) {
        Some(currency) => {
            let per_day = db::revenue_per_day(state.store.reader(), &currency, since).await?;
            let first = since / DAY;
            let days = (0..30)
                .map(|i| (first + i, per_day.iter().find(|d| d.day == first + i).map(|d| d.revenue).unwrap_or(0)))
                .collect();
            Some((currency, days))
        }
        None => None,
    };
    Ok(Overview { periods, credits_currency: state.settings.credits.currency.to_lowercase(), chart })
}

/// Customers, newest first, or those with an email.
pub async fn customers(
    state: &AppState,
    email: Option<&str>,
    starting_after: &Option<String>,
    ending_before: &Option<String>,
) -> ApiResult<Listed<Customer>> {
    let email = email.map(str::trim).filter(|e| !e.is_empty());
    customers::list(state, email, &page(starting_after, ending_before)).await
}

pub struct CustomerDetail {
    pub customer: Customer,
    pub orders: Listed<Order>,
    pub payments: Listed<Payment>,
    pub credits: CreditBalance,
    pub subscriptions: Listed<Subscription>,
}

pub async fn customer(state: &AppState, id: &str) -> ApiResult<CustomerDetail> {
    crate::services::validate::id(IdKind::Customer, "customer", id)?;
    let customer = customers::get(state, id).await?;
    let first = Page { limit: PAGE_SIZE, starting_after: None, ending_before: None };
    Ok(CustomerDetail {
        orders: orders::list(&state.store, Some(id), &first).await?,
        payments: payments::list(state, Some(id), None, &first).await?,
        credits: credits::balance(state, id, &first).await?,
        subscriptions: customers::subscriptions(state, id, &first).await?,
        customer,
    })
}

pub async fn payments(
    state: &AppState,
    status: Option<&str>,
    starting_after: &Option<String>,
    ending_before: &Option<String>,
) -> ApiResult<Listed<Payment>> {
    let status = status.map(str::trim).filter(|s| !s.is_empty());
    if let Some(s) = status {
        PaymentStatus::parse(s).ok_or_else(|| ApiError::invalid("status", "No such payment status."))?;
    }
    payments::list(state, None, status, &page(starting_after, ending_before)).await
}

pub async fn events(
    state: &AppState,
    kind: Option<&str>,
    object: Option<&str>,
    starting_after: &Option<String>,
    ending_before: &Option<String>,
) -> ApiResult<Listed<Event>> {
    let kind = kind.map(str::trim).filter(|s| !s.is_empty());
    let object = object.map(str::trim).filter(|s| !s.is_empty());
    events::list(&state.store, kind, object, &page(starting_after, ending_before)).await
}

/// API keys (never their secrets).
pub struct ApiKey {
    pub id: String,
    pub kind: String,
    pub last4: String,
    pub name: Option<String>,
    pub created: i64,
    pub revoked_at: Option<i64>,
}

/// The owner's list of API keys.
pub async fn api_keys(state: &AppState, user: &SignedIn) -> ApiResult<Vec<ApiKey>> {
    user.role.require(Permission::ManageApiKeys)?;
    Ok(kassa_store::api_keys::list(state.store.reader())
        .await?
        .into_iter()
        .map(|k| ApiKey {
            id: k.id,
            kind: k.kind,
            last4: k.last4,
            name: k.name,
            created: k.created,
            revoked_at: k.revoked_at,
        })
        .collect())
}

pub async fn products(
    state: &AppState,
    starting_after: &Option<String>,
    ending_before: &Option<String>,
) -> ApiResult<Vec<(Product, Vec<crate::objects::catalog::Price>)>> {
    let listed = catalog::list_products(&state.store, &page(starting_after, ending_before), false).await?;
    let mut out = Vec::new();
    for p in listed.data {
        let prices = catalog::list_prices(&state.store, Some(&p.id), None, &Page { limit: 20, ..Default::default() })
            .await
            .map(|l| l.data)
            .unwrap_or_default();
        out.push((p, prices));
    }
    Ok(out)
}

/// The subscription and invoice lists' filters, as typed in their forms (all optional).
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct BillingQuery {
    pub status: Option<String>,
    pub customer: Option<String>,
    pub starting_after: Option<String>,
    pub ending_before: Option<String>,
}

/// Subscriptions, newest first, by status and customer (the admin API's list).
pub async fn subscriptions(state: &AppState, q: &BillingQuery) -> ApiResult<Listed<Subscription>> {
    let page = page(&q.starting_after, &q.ending_before);
    crate::services::subscriptions::list(state, filled(&q.customer), filled(&q.status), &page).await
}

/// Everything a subscription's page shows: it, its latest invoice and its invoices.
pub struct SubscriptionDetail {
    pub subscription: Subscription,
    pub latest_invoice: Option<Invoice>,
    pub invoices: Listed<Invoice>,
}

pub async fn subscription(
    state: &AppState,
    id: &str,
    starting_after: &Option<String>,
    ending_before: &Option<String>,
) -> ApiResult<SubscriptionDetail> {
    let subscription = crate::services::subscriptions::get(state, id).await?;
    let latest_invoice = match &subscription.latest_invoice {
        Some(inv) => Some(invoices::get(state, inv).await?),
        None => None,
    };
    let invoices = invoices::list(state, Some(id), None, None, &page(starting_after, ending_before)).await?;
    Ok(SubscriptionDetail { subscription, latest_invoice, invoices })
}

/// Invoices, newest first, by status and customer (the admin API's list).
pub async fn invoices(state: &AppState, q: &BillingQuery) -> ApiResult<Listed<Invoice>> {
    let page = page(&q.starting_after, &q.ending_before);
    invoices::list(state, None, filled(&q.customer), filled(&q.status), &page).await
}

/// One invoice (lines, amounts, attempts, the next attempt).
pub async fn invoice(state: &AppState, id: &str) -> ApiResult<Invoice> {
    invoices::get(state, id).await
}

/// The owner's list of dashboard users.
pub async fn users(state: &AppState, user: &SignedIn) -> ApiResult<Vec<User>> {
    user.role.require(Permission::ManageUsers)?;
    users::list(&state.store).await
}

/// Webhook endpoints, newest first.
pub async fn webhook_endpoints(state: &AppState) -> ApiResult<Listed<WebhookEndpoint>> {
    webhook_endpoints::list(state, &Page { limit: 100, ..Default::default() }).await
}

/// An endpoint and its delivery log (every attempt, or the failed ones), newest first.
pub async fn webhook_endpoint(
    state: &AppState,
    id: &str,
    failed_only: bool,
    starting_after: &Option<String>,
    ending_before: &Option<String>,
) -> ApiResult<(WebhookEndpoint, Listed<WebhookDeliveryAttempt>)> {
    let endpoint = webhook_endpoints::get(state, id).await?;
    let attempts =
        webhook_endpoints::endpoint_attempts(state, id, failed_only, &page(starting_after, ending_before)).await?;
    Ok((endpoint, attempts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_and_bad_ones_are_refused() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(parse_date("from", "2026-12-02").unwrap() / DAY, days_from_civil(2026, 12, 2));
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        for bad in ["2026-02-30", "2026-13-01", "26-01-01", "2026-1-1", "", "2026-01-01T00"] {
            assert!(parse_date("from", bad).is_err(), "{bad}");
        }
    }
}
