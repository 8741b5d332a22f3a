//! Subscriptions that bill: starting one (its first invoice paid at once with the saved card),
//! changing, canceling and resuming it, and renewing due ones — one invoice per period.
//!
//! Periods are counted from the billing cycle anchor (`kassa_domain::billing`), statuses move
//! only through `kassa_domain::lifecycle::subscription`, and paying goes through
//! `services::invoices`.
//!
//! Proration (`proration_behavior=create_prorations`, the default): an upgrade (a larger
//! price × quantity) takes effect at once and is invoiced and charged right away for the rest
//! of the period, to the second: `prorate(new, r, p) − prorate(old, r, p)` where `r` is the
//! time left and `p` the period's length (`kassa_domain::billing::proration`, rounded half
//! away from zero per line). A downgrade takes effect at the period end, billing nothing now.
//! `none` switches at once without a proration invoice.

use crate::error::{ApiError, ApiResult};
use crate::objects::billing::{Invoice, InvoiceLine, LinePeriod};
use crate::objects::customer::Subscription;
use crate::services::audit::{self, AuditRecord};
use crate::services::invoices::{
    self, REASON_CREATE, REASON_CYCLE, REASON_UPDATE, apply_invoice, apply_subscription, apply_subscription_unwritten,
    customer_now, filter_id,
};
use crate::services::{invoice_pages, payment_methods, validate};
use crate::state::AppState;
use kassa_domain::billing::{Interval, boundary_after, cycle_boundary, proration};
use kassa_domain::ids::IdKind;
use kassa_domain::lifecycle::invoice::{InvoiceInput, InvoiceStatus};
use kassa_domain::lifecycle::subscription::{
    INCOMPLETE_EXPIRES_AFTER_SECS, SubscriptionEffect, SubscriptionInput, SubscriptionStatus,
};
use kassa_store::billing::{self as db, InvoiceRow};
use kassa_store::catalog::{self, PriceRow};
use kassa_store::customers::{CustomerRow, SubscriptionRow};
use kassa_store::sql::{Listed, Page};
use kassa_store::{Tx, events};
use rand::seq::SliceRandom;
use serde::Deserialize;
use utoipa::ToSchema;

/// The most units one subscription item may have.
pub const MAX_QUANTITY: i64 = 1_000_000;
/// The longest trial (Stripe's limit is two years).
pub const MAX_TRIAL_DAYS: i64 = 730;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemInput {
    /// A recurring price.
    pub price: String,
    /// 1 to 1,000,000; default 1.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub quantity: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSubscriptionInput {
    pub customer: String,
    /// Exactly one item for now.
    pub items: Vec<ItemInput>,
    /// Days of free trial before the first charge (0 to 730).
    #[schema(minimum = 0, maximum = 730)]
    pub trial_period_days: Option<i64>,
    /// A payment method saved with the customer; default: the customer's default.
    pub default_payment_method: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProrationBehavior {
    #[default]
    CreateProrations,
    None,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSubscriptionInput {
    /// The new price and quantity of its one item.
    pub items: Option<Vec<ItemInput>>,
    pub proration_behavior: Option<ProrationBehavior>,
    /// Another payment method saved with the customer.
    pub default_payment_method: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelInput {
    /// Cancel at the end of the current period instead of now.
    pub at_period_end: Option<bool>,
}

/// The statuses whose periods renew. Migration 0021's partial index `subscriptions_renewing_due` lists
/// the same ones (the due query uses it): change both together.
const RENEWING: [SubscriptionStatus; 3] =
    [SubscriptionStatus::Trialing, SubscriptionStatus::Active, SubscriptionStatus::PastDue];

fn renewing() -> Vec<&'static str> {
    RENEWING.iter().map(|s| s.as_str()).collect()
}

/// Whether a subscription with this stored status has ended for good (canceled, or expired
/// before its first payment): nothing changes it any more.
pub fn has_ended(status: &str) -> bool {
    SubscriptionStatus::parse(status).is_some_and(kassa_domain::lifecycle::subscription::ended)
}

/// A price a subscription can bill: recurring and active.
pub(crate) struct Billable {
    pub(crate) price: PriceRow,
    pub(crate) interval: Interval,
    pub(crate) count: u32,
    pub(crate) quantity: i64,
    /// price × quantity, minor units.
    pub(crate) total: i64,
}

/// Checks items naming one recurring, active price and a quantity in bounds (400 naming
/// `items[0].price` / `items[0].quantity` otherwise).
pub(crate) async fn billable(state: &AppState, items: &[ItemInput]) -> ApiResult<Billable> {
    let item = match items {
        [] => return Err(ApiError::invalid("items", "items must hold one item (a recurring price).")),
        [one] => one,
        _ => return Err(ApiError::invalid("items", "A subscription has one item for now.")),
    };
    let param = "items[0].price";
    let price = if IdKind::Price.matches(&item.price) {
        catalog::get_price(state.store.reader(), &item.price).await?
    } else {
        None
    };
    let Some(price) = price else {
        return Err(ApiError::invalid(param, format!("No such price: '{}'", item.price)));
    };
    let interval = price.recurring_interval.as_deref().and_then(Interval::parse);
    let Some(interval) = interval else {
        return Err(ApiError::invalid(param, "The price is not recurring: subscriptions take recurring prices."));
    };
    if !price.active {
        return Err(ApiError::invalid(param, "The price is archived (not active)."));
    }
    let quantity = validate::int_in("items[0].quantity", item.quantity.unwrap_or(1), 1..=MAX_QUANTITY)?;
    let max = state.settings.checkout.max_amount;
    let total = price.unit_amount.checked_mul(quantity).filter(|t| *t <= max).ok_or_else(|| {
        ApiError::invalid("items[0].quantity", format!("price × quantity may be at most {max} (minor units)."))
    })?;
    let count = u32::try_from(price.recurring_interval_count.unwrap_or(1).max(1)).unwrap_or(1);
    Ok(Billable { price, interval, count, quantity, total })
}

async fn customer(state: &AppState, param: &str, id: &str) -> ApiResult<CustomerRow> {
    let found =
        if IdKind::Customer.matches(id) { kassa_store::customers::get(state.store.reader(), id).await? } else { None };
    found.ok_or_else(|| ApiError::invalid(param, format!("No such customer: '{id}'")))
}

fn describe(price: &PriceRow, quantity: i64) -> String {
    let name = price.nickname.clone().unwrap_or_else(|| price.id.clone());
    format!("{quantity} × {name}")
}

fn line(
    description: String,
    price: &str,
    quantity: i64,
    amount: i64,
    proration: bool,
    start: i64,
    end: i64,
) -> InvoiceLine {
    InvoiceLine {
        object: "line_item".into(),
        description,
        price: price.to_string(),
        quantity,
        amount,
        proration,
        period: LinePeriod { start, end },
    }
}

struct NewInvoice<'a> {
    /// Kassa's public URL, the base of the hosted invoice page.
    public_url: &'a str,
    sub: &'a SubscriptionRow,
    reason: &'static str,
    currency: &'a str,
    lines: Vec<InvoiceLine>,
    credits: i64,
    start: i64,
    end: i64,
}

/// Inserts an open invoice, due at once, with its `invoice.created` event; `None` when the
/// subscription has its invoice for that period already. With `claimed_until`, the caller
/// holds its first payment attempt until then (server time).
async fn open_invoice(
    tx: &mut Tx,
    n: NewInvoice<'_>,
    now: i64,
    claimed_until: Option<i64>,
) -> ApiResult<Option<InvoiceRow>> {
    let amount_due = n.lines.iter().try_fold(0i64, |a, l| a.checked_add(l.amount)).unwrap_or(i64::MAX).max(0);
    let id = IdKind::Invoice.new_id();
    let hosted_invoice_url = Some(invoice_pages::url_of(n.public_url, &id));
    let row = InvoiceRow {
        hosted_invoice_url,
        id,
        customer: n.sub.customer.clone(),
        subscription: Some(n.sub.id.clone()),
        status: InvoiceStatus::Open.as_str().into(),
        billing_reason: n.reason.into(),
        currency: n.currency.into(),
        amount_due,
        amount_paid: 0,
        attempt_count: 0,
        next_payment_attempt: Some(now),
        period_start: n.start,
        period_end: n.end,
        lines: serde_json::to_string(&n.lines).map_err(anyhow::Error::from)?,
        credits: n.credits,
        payment_method: None,
        payment_intent: None,
        last_payment_error: None,
        lease_until: claimed_until,
        paid_at: None,
        created: now,
        updated: now,
    };
    if !db::insert_invoice(tx, &row).await? {
        return Ok(None);
    }
    events::record(tx, "invoice.created", &row.id, &Invoice::from(row.clone()), now).await?;
    Ok(Some(row))
}

/// A zero invoice is paid when it is made (no processor call), in the same transaction.
async fn settle_if_free(tx: &mut Tx, inv: &mut InvoiceRow, sub: &mut SubscriptionRow, now: i64) -> ApiResult<()> {
    if inv.amount_due == 0 {
        apply_invoice(tx, inv, InvoiceInput::Paid, now).await?;
        apply_subscription(tx, sub, SubscriptionInput::InvoicePaid, now).await?;
    }
    Ok(())
}

/// `POST /admin/subscriptions`: starts a subscription and pays its first invoice at once,
/// off-session with the saved card (a trial's first invoice is zero). Bad input changes
/// nothing. A declined first payment leaves it `incomplete` with its invoice open.
pub async fn create(state: &AppState, input: CreateSubscriptionInput) -> ApiResult<Subscription> {
    let c = customer(state, "customer", &input.customer).await?;
    let b = billable(state, &input.items).await?;
    let trial_days = validate::int_in("trial_period_days", input.trial_period_days.unwrap_or(0), 0..=MAX_TRIAL_DAYS)?;
    let pm = input.default_payment_method.clone().or(c.default_payment_method.clone());
    match &pm {
        Some(pm) => {
            let param = if input.default_payment_method.is_some() { "default_payment_method" } else { "customer" };
            payment_methods::ensure_saved(state, &c, param, pm).await?;
        }
        None if b.total > 0 && trial_days == 0 => {
            return Err(ApiError::invalid(
                "default_payment_method",
                "The customer has no saved payment method: attach one first (POST /admin/customers/{id}/payment-methods).",
            ));
        }
        None => {}
    }
    let mut tx = state.store.begin().await?;
    let now = customer_now(state, &mut tx, &c.id).await?;
    let (status, anchor, end, trial_end) = if trial_days > 0 {
        let end = now + trial_days * 86_400;
        (SubscriptionStatus::Trialing, end, end, Some(end))
    } else {
        let end = cycle_boundary(now, b.interval, b.count, 1)
            .ok_or_else(|| ApiError::invalid("items[0].price", "The period would end past the year 9999."))?;
        (SubscriptionStatus::Incomplete, now, end, None)
    };
    let mut sub = SubscriptionRow {
        id: IdKind::Subscription.new_id(),
        customer: c.id.clone(),
        price: b.price.id.clone(),
        status: status.as_str().into(),
        current_period_start: now,
        current_period_end: end,
        created: now,
        updated: now,
        quantity: b.quantity,
        billing_cycle_anchor: Some(anchor),
        cancel_at_period_end: false,
        canceled_at: None,
        trial_end,
        default_payment_method: input.default_payment_method.clone(),
        latest_invoice: None,
        pending_price: None,
        pending_quantity: None,
    };
    kassa_store::customers::insert_subscription(&mut tx, &sub).await?;
    events::record(&mut tx, "subscription.created", &sub.id, &Subscription::from(sub.clone()), now).await?;
    let (amount, credits, description) = if trial_end.is_some() {
        (0, 0, format!("Trial period for {}", describe(&b.price, b.quantity)))
    } else {
        (b.total, b.price.credits_per_period.saturating_mul(b.quantity), describe(&b.price, b.quantity))
    };
    let lines = vec![line(description, &b.price.id, b.quantity, amount, false, now, end)];
    let new = NewInvoice {
        public_url: &state.public_url,
        sub: &sub,
        reason: REASON_CREATE,
        currency: &b.price.currency,
        lines,
        credits,
        start: now,
        end,
    };
    let mut inv = open_invoice(&mut tx, new, now, Some(state.clock.now() + invoices::ATTEMPT_LEASE_SECS))
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a new subscription's first invoice exists already")))?;
    sub.latest_invoice = Some(inv.id.clone());
    db::update_subscription(&mut tx, &sub).await?;
    settle_if_free(&mut tx, &mut inv, &mut sub, now).await?;
    tx.commit().await?;
    if inv.amount_due > 0
        && let Err(e) = invoices::pay_claimed(state, &inv).await
    {
        // The attempt had no outcome (the processor unreachable): the renewal job makes it
        // again with the same key. The subscription exists; answering an error here would
        // make a client retry create a second one.
        tracing::warn!(subscription = %sub.id, error = %e, "first invoice not paid yet; the job retries it");
    }
    get(state, &sub.id).await
}

pub async fn get(state: &AppState, id: &str) -> ApiResult<Subscription> {
    validate::id(IdKind::Subscription, "subscription", id)?;
    let row =
        db::get_subscription(state.store.reader(), id).await?.ok_or_else(|| ApiError::not_found("subscription", id))?;
    Ok(row.into())
}

pub async fn list(
    state: &AppState,
    customer: Option<&str>,
    status: Option<&str>,
    page: &Page,
) -> ApiResult<Listed<Subscription>> {
    let mut filters = Vec::new();
    if let Some(c) = customer {
        filter_id(IdKind::Customer, "customer", c)?;
        filters.push(("customer", c));
    }
    if let Some(s) = status {
        let known = SubscriptionStatus::parse(s)
            .ok_or_else(|| ApiError::invalid("status", format!("No subscription status '{s}'.")))?;
        filters.push(("status", known.as_str()));
    }
    Ok(db::list_subscriptions(state.store.reader(), &filters, page).await?.map(Subscription::from))
}

async fn locked(tx: &mut Tx, id: &str) -> ApiResult<SubscriptionRow> {
    validate::id(IdKind::Subscription, "subscription", id)?;
    db::lock_subscription(tx, id).await?.ok_or_else(|| ApiError::not_found("subscription", id))
}

/// Voids what is still open of a subscription that stopped billing — except an invoice whose
/// payment attempt was claimed and has no outcome yet (`lease_until` set): its charge may be
/// under way (or done, by a server that died before writing it). Voiding it would lose a
/// charge that succeeds. It stays open, due at once, so that the attempt is finished with the
/// same processor key (the same charge, never a second) and its outcome written: paid, or
/// voided then (`services::invoices`, a canceled subscription's failed attempt is not retried).
async fn void_open_invoices(tx: &mut Tx, sub: &SubscriptionRow, now: i64) -> ApiResult<()> {
    let page = Page { limit: 100, starting_after: None, ending_before: None };
    let open = InvoiceStatus::Open.as_str();
    let listed = db::list_invoices(tx.conn(), &[("subscription", sub.id.as_str()), ("status", open)], &page).await?;
    for row in listed.data {
        let Some(mut inv) = db::lock_invoice(tx, &row.id).await? else { continue };
        if inv.status != open {
            continue;
        }
        if inv.lease_until.is_some() {
            db::set_next_payment_attempt(tx, &inv.id, now).await?;
            continue;
        }
        apply_invoice(tx, &mut inv, InvoiceInput::Void, now).await?;
    }
    Ok(())
}

async fn carry_out(
    tx: &mut Tx,
    public_url: &str,
    sub: &mut SubscriptionRow,
    effects: Vec<SubscriptionEffect>,
    now: i64,
) -> ApiResult<()> {
    for effect in effects {
        match effect {
            SubscriptionEffect::StopBilling => void_open_invoices(tx, sub, now).await?,
            SubscriptionEffect::Renew => renew(tx, public_url, sub, now).await?,
            SubscriptionEffect::Record(_) => {}
        }
    }
    Ok(())
}

/// Cancel now (open invoices are voided) or at the period end. `audit` (a person's action from
/// the dashboard) commits with the change.
pub async fn cancel(
    state: &AppState,
    id: &str,
    input: CancelInput,
    audit: Option<&AuditRecord>,
) -> ApiResult<Subscription> {
    let mut tx = state.store.begin().await?;
    let mut sub = locked(&mut tx, id).await?;
    let now = customer_now(state, &mut tx, &sub.customer).await?;
    let at_period_end = input.at_period_end.unwrap_or(false);
    let effects = apply_subscription(&mut tx, &mut sub, SubscriptionInput::Cancel { at_period_end }, now).await?;
    carry_out(&mut tx, &state.public_url, &mut sub, effects, now).await?;
    audit::write(audit, &mut tx, now).await?;
    tx.commit().await?;
    Ok(sub.into())
}

/// Undo a cancel at the period end. `audit` as for [`cancel`].
pub async fn resume(state: &AppState, id: &str, audit: Option<&AuditRecord>) -> ApiResult<Subscription> {
    let mut tx = state.store.begin().await?;
    let mut sub = locked(&mut tx, id).await?;
    let now = customer_now(state, &mut tx, &sub.customer).await?;
    apply_subscription(&mut tx, &mut sub, SubscriptionInput::Resume, now).await?;
    audit::write(audit, &mut tx, now).await?;
    tx.commit().await?;
    Ok(sub.into())
}

/// Change the price or quantity (upgrade now with proration, downgrade at the period end) or
/// the payment method.
pub async fn update(state: &AppState, id: &str, input: UpdateSubscriptionInput) -> ApiResult<Subscription> {
    validate::id(IdKind::Subscription, "subscription", id)?;
    let current =
        db::get_subscription(state.store.reader(), id).await?.ok_or_else(|| ApiError::not_found("subscription", id))?;
    let next = match &input.items {
        Some(items) => Some(billable(state, items).await?),
        None => None,
    };
    if let Some(pm) = &input.default_payment_method {
        let c = customer(state, "customer", &current.customer).await?;
        payment_methods::ensure_saved(state, &c, "default_payment_method", pm).await?;
    }
    let behavior = input.proration_behavior.unwrap_or_default();
    let mut tx = state.store.begin().await?;
    let mut sub = locked(&mut tx, id).await?;
    let now = customer_now(state, &mut tx, &sub.customer).await?;
    apply_subscription(&mut tx, &mut sub, SubscriptionInput::Updated, now).await.map(|_| ())?;
    if let Some(pm) = input.default_payment_method {
        sub.default_payment_method = Some(pm);
    }
    let mut to_pay = None;
    if let Some(b) = next {
        let old = catalog::get_price(tx.conn(), &sub.price)
            .await?
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("subscription {} has no price", sub.id)))?;
        let same_cycle = old.currency == b.price.currency
            && old.recurring_interval == b.price.recurring_interval
            && old.recurring_interval_count == b.price.recurring_interval_count;
        if !same_cycle {
            return Err(ApiError::invalid(
                "items[0].price",
                "The new price must have the current price's currency and billing interval.",
            ));
        }
        let old_total = old.unit_amount.saturating_mul(sub.quantity);
        if b.price.id == sub.price && b.quantity == sub.quantity {
            // What it is already: a change waiting for the period end is dropped.
            sub.pending_price = None;
            sub.pending_quantity = None;
        } else if b.total > old_total && behavior == ProrationBehavior::CreateProrations {
            let (credit, charge) = proration(old_total, b.total, sub.current_period_start, sub.current_period_end, now);
            let (start, end) = (now.clamp(sub.current_period_start, sub.current_period_end), sub.current_period_end);
            let lines = vec![
                line(
                    format!("Unused time on {}", describe(&old, sub.quantity)),
                    &old.id,
                    sub.quantity,
                    credit,
                    true,
                    start,
                    end,
                ),
                line(
                    format!("Remaining time on {}", describe(&b.price, b.quantity)),
                    &b.price.id,
                    b.quantity,
                    charge,
                    true,
                    start,
                    end,
                ),
            ];
            sub.price = b.price.id.clone();
            sub.quantity = b.quantity;
            sub.pending_price = None;
            sub.pending_quantity = None;
            let new = NewInvoice {
                public_url: &state.public_url,
                sub: &sub,
                reason: REASON_UPDATE,
                currency: &b.price.currency,
                lines,
                credits: 0,
                start,
                end,
            };
            if let Some(mut inv) =
                open_invoice(&mut tx, new, now, Some(state.clock.now() + invoices::ATTEMPT_LEASE_SECS)).await?
            {
                sub.latest_invoice = Some(inv.id.clone());
                settle_if_free(&mut tx, &mut inv, &mut sub, now).await?;
                if inv.amount_due > 0 {
                    to_pay = Some(inv);
                }
            }
        } else if b.total > old_total || behavior == ProrationBehavior::None {
            sub.price = b.price.id.clone();
            sub.quantity = b.quantity;
            sub.pending_price = None;
            sub.pending_quantity = None;
        } else {
            // A downgrade: the customer keeps what they paid for until the period ends.
            sub.pending_price = Some(b.price.id.clone());
            sub.pending_quantity = Some(b.quantity);
        }
    }
    db::update_subscription(&mut tx, &sub).await?;
    tx.commit().await?;
    if let Some(inv) = to_pay
        && let Err(e) = invoices::pay_claimed(state, &inv).await
    {
        tracing::warn!(subscription = %sub.id, error = %e, "proration invoice not paid yet; the job retries it");
    }
    get(state, &sub.id).await
}

/// The next period's invoice of a subscription whose period ended, and the period advanced
/// (Stripe's order: the invoice bills the period that starts now).
async fn renew(tx: &mut Tx, public_url: &str, sub: &mut SubscriptionRow, now: i64) -> ApiResult<()> {
    if let Some(p) = sub.pending_price.take() {
        sub.price = p;
        sub.quantity = sub.pending_quantity.take().unwrap_or(sub.quantity);
    }
    let price = catalog::get_price(tx.conn(), &sub.price)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("subscription {} has no price", sub.id)))?;
    let interval = price
        .recurring_interval
        .as_deref()
        .and_then(Interval::parse)
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("price {} is not recurring", price.id)))?;
    let count = u32::try_from(price.recurring_interval_count.unwrap_or(1).max(1)).unwrap_or(1);
    let anchor = sub.billing_cycle_anchor.unwrap_or(sub.current_period_start);
    let start = sub.current_period_end;
    let (_, end) = boundary_after(anchor, interval, count, start)
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("subscription {}: no period after {start}", sub.id)))?;
    let total = price.unit_amount.saturating_mul(sub.quantity);
    let credits = price.credits_per_period.saturating_mul(sub.quantity);
    let lines = vec![line(describe(&price, sub.quantity), &price.id, sub.quantity, total, false, start, end)];
    sub.current_period_start = start;
    sub.current_period_end = end;
    let new =
        NewInvoice { public_url, sub, reason: REASON_CYCLE, currency: &price.currency, lines, credits, start, end };
    let created = open_invoice(tx, new, start, None).await?;
    if let Some(inv) = &created {
        sub.latest_invoice = Some(inv.id.clone());
    }
    sub.updated = now;
    db::update_subscription(tx, sub).await?;
    events::record(tx, "subscription.updated", &sub.id, &Subscription::from(sub.clone()), now).await?;
    if let Some(mut inv) = created {
        settle_if_free(tx, &mut inv, sub, now).await?;
    }
    Ok(())
}

/// Renews up to `limit` subscriptions whose period ended (of the customers on `clock` only,
/// when given): each locked (skipped when another server holds it), its period advanced and
/// its invoice made, or it ends when it was to be canceled at the period end. Returns how many
/// were renewed or ended.
///
/// One read finds candidates (a few batches' worth), then one statement locks a batch of them
/// with `SKIP LOCKED` — two servers given the same candidates take different ones — and the
/// batch is renewed in one transaction (one commit for all; a subscription another server
/// renewed meanwhile is no longer due and is left alone). Should the batch fail as a whole,
/// its subscriptions are renewed one transaction each, so that one that cannot be renewed
/// does not hold back the others.
pub async fn renew_due(state: &AppState, clock: Option<&str>, limit: i64) -> ApiResult<usize> {
    let statuses = renewing();
    let candidates = limit.saturating_mul(CANDIDATES_PER_BATCH);
    let mut ids = db::due_subscriptions(state.store.reader(), &statuses, state.clock.now(), clock, candidates).await?;
    if ids.is_empty() {
        return Ok(0);
    }
    ids.shuffle(&mut rand::thread_rng());
    match renew_together(state, &ids, limit, &statuses).await {
        Ok(done) => Ok(done),
        Err(e) => {
            tracing::warn!(error = %e, "renewing a batch in one transaction failed; renewing one by one");
            let mut done = 0;
            for id in ids.iter().take(usize::try_from(limit).unwrap_or(usize::MAX)) {
                let mut tx = state.store.begin().await?;
                let renewed = match db::lock_due_subscriptions(&mut tx, std::slice::from_ref(id), 1).await?.pop() {
                    Some(at) => renew_locked(state, &mut tx, at, &statuses).await?,
                    None => false,
                };
                if renewed {
                    tx.commit().await?;
                    done += 1;
                } else {
                    tx.rollback().await?;
                }
            }
            Ok(done)
        }
    }
}

/// Candidates read per batch renewed: enough for two servers locking different ones.
const CANDIDATES_PER_BATCH: i64 = 3;

async fn renew_together(state: &AppState, ids: &[String], limit: i64, statuses: &[&str]) -> ApiResult<usize> {
    let mut tx = state.store.begin().await?;
    let locked = db::lock_due_subscriptions(&mut tx, ids, limit).await?;
    let mut done = 0;
    for at in locked {
        if renew_locked(state, &mut tx, at, statuses).await? {
            done += 1;
        }
    }
    tx.commit().await?;
    Ok(done)
}

/// Renews one locked subscription if it is still due by its customer's time; `false` (nothing
/// written) when it is not.
async fn renew_locked(state: &AppState, tx: &mut Tx, at: db::SubscriptionAt, statuses: &[&str]) -> ApiResult<bool> {
    let db::SubscriptionAt { row: mut sub, customer_time } = at;
    let now = customer_time.unwrap_or_else(|| state.clock.now());
    if sub.current_period_end > now || !statuses.contains(&sub.status.as_str()) {
        return Ok(false);
    }
    let ended = sub.current_period_end;
    let effects = apply_subscription_unwritten(tx, &mut sub, SubscriptionInput::PeriodEnded, ended).await?;
    // A renewal writes the row with its new period; anything else is written here.
    let renews = effects.contains(&SubscriptionEffect::Renew);
    carry_out(tx, &state.public_url, &mut sub, effects, now).await?;
    if !renews {
        db::update_subscription(tx, &sub).await?;
    }
    Ok(true)
}

/// The earliest moment billing work falls due for the customers on `clock`: a period end, a
/// payment attempt, or an `incomplete` subscription's expiry.
pub async fn next_due_on_clock(state: &AppState, clock: &str) -> ApiResult<Option<i64>> {
    let aging = (SubscriptionStatus::Incomplete.as_str(), INCOMPLETE_EXPIRES_AFTER_SECS);
    Ok(db::next_due_on_clock(state.store.reader(), clock, &renewing(), InvoiceStatus::Open.as_str(), aging).await?)
}

/// Ends up to `limit` `incomplete` subscriptions whose first invoice was not paid within
/// [`INCOMPLETE_EXPIRES_AFTER_SECS`] of their creation, by their customer's time (its test
/// clock's, else the server's); of the customers on `clock` only, when given. Each becomes
/// `incomplete_expired` (`subscription.deleted`) and its open invoice is voided — unless a
/// payment attempt of it is under way, which keeps it open for its outcome as a cancel does
/// ([`void_open_invoices`]). Returns how many ended.
///
/// Exactly once, on several servers: candidates are read, then locked in one statement with
/// `SKIP LOCKED` (as the renewals), and each is checked under its lock to be still
/// `incomplete` and old enough (one paid or expired by another server meanwhile is left
/// alone; the transition from any other status is a no-op anyway). One transaction per batch;
/// should it fail as a whole, one per subscription.
pub async fn expire_incomplete(state: &AppState, clock: Option<&str>, limit: i64) -> ApiResult<usize> {
    let incomplete = SubscriptionStatus::Incomplete.as_str();
    let candidates = limit.saturating_mul(CANDIDATES_PER_BATCH);
    let age = INCOMPLETE_EXPIRES_AFTER_SECS;
    let mut ids =
        db::aged_subscriptions(state.store.reader(), incomplete, age, state.clock.now(), clock, candidates).await?;
    if ids.is_empty() {
        return Ok(0);
    }
    ids.shuffle(&mut rand::thread_rng());
    let together = async {
        let mut tx = state.store.begin().await?;
        let mut done = 0;
        for at in db::lock_due_subscriptions(&mut tx, &ids, limit).await? {
            if expire_locked(state, &mut tx, at).await? {
                done += 1;
            }
        }
        tx.commit().await?;
        ApiResult::Ok(done)
    };
    match together.await {
        Ok(done) => Ok(done),
        Err(e) => {
            tracing::warn!(error = %e, "expiring a batch in one transaction failed; expiring one by one");
            let mut done = 0;
            for id in ids.iter().take(usize::try_from(limit).unwrap_or(usize::MAX)) {
                let mut tx = state.store.begin().await?;
                let expired = match db::lock_due_subscriptions(&mut tx, std::slice::from_ref(id), 1).await?.pop() {
                    Some(at) => expire_locked(state, &mut tx, at).await?,
                    None => false,
                };
                if expired {
                    tx.commit().await?;
                    done += 1;
                } else {
                    tx.rollback().await?;
                }
            }
            Ok(done)
        }
    }
}

/// Expires one locked subscription if it is still `incomplete` and old enough by its
/// customer's time; `false` (nothing written) when it is not.
async fn expire_locked(state: &AppState, tx: &mut Tx, at: db::SubscriptionAt) -> ApiResult<bool> {
    let db::SubscriptionAt { row: mut sub, customer_time } = at;
    let now = customer_time.unwrap_or_else(|| state.clock.now());
    let expires = sub.created.saturating_add(INCOMPLETE_EXPIRES_AFTER_SECS);
    if sub.status != SubscriptionStatus::Incomplete.as_str() || expires > now {
        return Ok(false);
    }
    let effects = apply_subscription(tx, &mut sub, SubscriptionInput::FirstInvoiceExpired, now).await?;
    carry_out(tx, &state.public_url, &mut sub, effects, now).await?;
    Ok(true)
}

// ---------------------------------------------------------------- started by a hosted checkout

/// What a paid subscription checkout starts (`services::subscription_checkout`).
pub(crate) struct PaidCheckout<'a> {
    pub customer: &'a CustomerRow,
    pub price: &'a str,
    pub quantity: i64,
    /// The card the checkout saved: the subscription's payment method for its renewals.
    pub payment_method: Option<String>,
    /// The checkout's PaymentIntent, which paid the first invoice.
    pub payment_intent: &'a str,
    /// What it paid (minor units): the first invoice's amount, whatever the price says now.
    pub amount: i64,
}

/// Starts the subscription a hosted checkout paid for, in the caller's transaction (the one
/// that holds the checkout session's lock, so that it runs once per session): `active` from
/// `now` with its first invoice (`subscription_create`) paid by the checkout's PaymentIntent —
/// no second charge —, the credits of the period, the events (`subscription.created`,
/// `invoice.created`, `invoice.paid`, `subscription.updated`). The customer's free
/// subscriptions (a free default plan) end: the paid plan replaces them.
pub(crate) async fn start_paid_by_checkout(
    tx: &mut Tx,
    public_url: &str,
    paid: PaidCheckout<'_>,
    now: i64,
) -> ApiResult<SubscriptionRow> {
    let price = catalog::get_price(tx.conn(), paid.price)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("checkout price {} is missing", paid.price)))?;
    // Checked when the session was made; the money came in for it, so a price archived since
    // still starts the subscription.
    let interval = price
        .recurring_interval
        .as_deref()
        .and_then(Interval::parse)
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("checkout price {} is not recurring", price.id)))?;
    let count = u32::try_from(price.recurring_interval_count.unwrap_or(1).max(1)).unwrap_or(1);
    let end = cycle_boundary(now, interval, count, 1)
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no period after {now} for price {}", price.id)))?;
    let mut sub = SubscriptionRow {
        id: IdKind::Subscription.new_id(),
        customer: paid.customer.id.clone(),
        price: price.id.clone(),
        status: SubscriptionStatus::Incomplete.as_str().into(),
        current_period_start: now,
        current_period_end: end,
        created: now,
        updated: now,
        quantity: paid.quantity,
        billing_cycle_anchor: Some(now),
        cancel_at_period_end: false,
        canceled_at: None,
        trial_end: None,
        default_payment_method: paid.payment_method.clone(),
        latest_invoice: None,
        pending_price: None,
        pending_quantity: None,
    };
    kassa_store::customers::insert_subscription(tx, &sub).await?;
    events::record(tx, "subscription.created", &sub.id, &Subscription::from(sub.clone()), now).await?;
    let lines = vec![line(describe(&price, paid.quantity), &price.id, paid.quantity, paid.amount, false, now, end)];
    let new = NewInvoice {
        public_url,
        sub: &sub,
        reason: REASON_CREATE,
        currency: &price.currency,
        lines,
        credits: price.credits_per_period.saturating_mul(paid.quantity),
        start: now,
        end,
    };
    let mut inv = open_invoice(tx, new, now, None)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a new subscription's first invoice exists already")))?;
    inv.payment_intent = Some(paid.payment_intent.to_string());
    inv.payment_method = paid.payment_method.clone();
    apply_invoice(tx, &mut inv, InvoiceInput::Paid, now).await?;
    sub.latest_invoice = Some(inv.id.clone());
    db::update_subscription(tx, &sub).await?;
    apply_subscription(tx, &mut sub, SubscriptionInput::InvoicePaid, now).await?;
    end_free_subscriptions(tx, public_url, &paid.customer.id, &sub.id, now).await?;
    Ok(sub)
}

/// Cancels the customer's free subscriptions that still bill (the default plan a new
/// customer gets), other than `keep`: a paid plan started through checkout replaces them.
async fn end_free_subscriptions(tx: &mut Tx, public_url: &str, customer: &str, keep: &str, now: i64) -> ApiResult<()> {
    let page = Page { limit: 100, starting_after: None, ending_before: None };
    let listed = kassa_store::customers::subscriptions_of(tx.conn(), customer, &page).await?;
    for row in listed.data {
        let billing = SubscriptionStatus::parse(&row.status).is_some_and(kassa_domain::lifecycle::subscription::bills);
        if row.id == keep || !billing {
            continue;
        }
        let free = catalog::get_price(tx.conn(), &row.price).await?.is_some_and(|p| p.unit_amount == 0);
        if !free {
            continue;
        }
        let mut sub = locked(tx, &row.id).await?;
        let effects = apply_subscription(tx, &mut sub, SubscriptionInput::Cancel { at_period_end: false }, now).await?;
        carry_out(tx, public_url, &mut sub, effects, now).await?;
    }
    Ok(())
}
