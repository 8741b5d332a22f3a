//! Invoices: listing them, and paying them off-session with the saved card, exactly once per
//! attempt.
//!
//! An attempt is claimed with a lease (`lease_until`) so that one server makes it; the
//! processor call carries a key derived from the invoice and its attempt number
//! ([`processor_keys::pay_invoice`]), so an attempt repeated after a crash (the lease ran out
//! before its outcome was written) is the same charge, never a second one. The outcome is
//! written only while the invoice is still open at that attempt number, in one transaction
//! with the subscription's transition, the credits of the paid period and the events.

use crate::config::AfterLastRetrySetting;
use crate::error::{ApiError, ApiResult};
use crate::objects::billing::{Invoice, InvoicePaymentError};
use crate::objects::credits::CreditEntry;
use crate::objects::customer::Subscription;
use crate::services::{customers, processor_keys, validate};
use crate::state::AppState;
use kassa_domain::billing::RetrySchedule;
use kassa_domain::ids::IdKind;
use kassa_domain::lifecycle::invoice::{self as machine, InvoiceEffect, InvoiceInput, InvoiceState, InvoiceStatus};
use kassa_domain::lifecycle::subscription::{
    self as sub_machine, AfterLastRetry, SubscriptionEffect, SubscriptionInput, SubscriptionState, SubscriptionStatus,
};
use kassa_processors::{
    CaptureMethod, CreatePaymentIntent, Metadata, PaymentIntentStatus, PaymentSource, ProcessorError,
};
use kassa_store::billing::{self as db, InvoiceRow};
use kassa_store::credits::{self as ledger, Added, NewEntry};
use kassa_store::customers::SubscriptionRow;
use kassa_store::sql::{Listed, Page};
use kassa_store::{Tx, events};

/// How long one server may hold an invoice's payment attempt before another may take over.
pub const ATTEMPT_LEASE_SECS: i64 = 60;
/// Payment attempts one round makes at once.
const ATTEMPTS_AT_ONCE: usize = 16;

/// `billing_reason` values (Stripe's).
pub const REASON_CREATE: &str = "subscription_create";
pub const REASON_CYCLE: &str = "subscription_cycle";
pub const REASON_UPDATE: &str = "subscription_update";

pub async fn get(state: &AppState, id: &str) -> ApiResult<Invoice> {
    validate::id(IdKind::Invoice, "invoice", id)?;
    let row = db::get_invoice(state.store.reader(), id).await?.ok_or_else(|| ApiError::not_found("invoice", id))?;
    Ok(row.into())
}

/// A list filter naming an object: 400 naming the parameter when it is no id of that kind.
pub fn filter_id(kind: IdKind, param: &str, value: &str) -> ApiResult<()> {
    if kind.matches(value) { Ok(()) } else { Err(ApiError::invalid(param, format!("'{value}' is no {kind} id."))) }
}

/// Invoices, newest first, optionally of one subscription, customer or status.
pub async fn list(
    state: &AppState,
    subscription: Option<&str>,
    customer: Option<&str>,
    status: Option<&str>,
    page: &Page,
) -> ApiResult<Listed<Invoice>> {
    let mut filters = Vec::new();
    if let Some(s) = subscription {
        filter_id(IdKind::Subscription, "subscription", s)?;
        filters.push(("subscription", s));
    }
    if let Some(c) = customer {
        filter_id(IdKind::Customer, "customer", c)?;
        filters.push(("customer", c));
    }
    if let Some(s) = status {
        let known =
            InvoiceStatus::parse(s).ok_or_else(|| ApiError::invalid("status", format!("No invoice status '{s}'.")))?;
        filters.push(("status", known.as_str()));
    }
    Ok(db::list_invoices(state.store.reader(), &filters, page).await?.map(Invoice::from))
}

/// The time a customer lives at: its test clock's, else the server's.
pub async fn customer_now(state: &AppState, tx: &mut Tx, customer: &str) -> ApiResult<i64> {
    Ok(db::customer_time(tx.conn(), customer).await?.unwrap_or_else(|| state.clock.now()))
}

/// What a payment attempt came to.
#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    Paid { payment_intent: Option<String>, payment_method: Option<String> },
    Failed { error: InvoicePaymentError, action_required: bool, payment_intent: Option<String> },
}

/// Claims and pays up to `limit` due invoices (of the customers on `clock` only, when given).
/// Returns (claimed, failed to reach an outcome).
pub async fn collect_due(state: &AppState, clock: Option<&str>, limit: i64) -> ApiResult<(usize, usize)> {
    let now = state.clock.now();
    let open = InvoiceStatus::Open.as_str();
    let claimed = db::claim_due_invoices(&state.store, open, now, now + ATTEMPT_LEASE_SECS, clock, limit).await?;
    // Attempts of different invoices are independent: several at once, bounded.
    // Their outcomes are written together, one transaction per chunk.
    let mut failed = 0;
    for chunk in claimed.chunks(ATTEMPTS_AT_ONCE) {
        let outcomes = futures::future::join_all(chunk.iter().map(|inv| charge_or_release(state, inv))).await;
        let mut reached = Vec::with_capacity(chunk.len());
        for (inv, outcome) in chunk.iter().zip(outcomes) {
            match outcome {
                Ok(o) => reached.push((inv, o)),
                Err(e) => {
                    tracing::warn!(invoice = %inv.id, error = %e, "invoice payment attempt without outcome; retried later");
                    failed += 1;
                }
            }
        }
        record_all(state, reached).await?;
    }
    Ok((claimed.len(), failed))
}

/// Pays an invoice the caller claimed when it made it (a new subscription's first, a
/// proration): its lease keeps the job off it while this request pays, and hands it to the job
/// should this request die.
pub async fn pay_claimed(state: &AppState, inv: &InvoiceRow) -> ApiResult<()> {
    attempt(state, inv).await
}

/// One payment attempt of a claimed invoice: the processor call, then its outcome.
async fn attempt(state: &AppState, inv: &InvoiceRow) -> ApiResult<()> {
    let outcome = charge_or_release(state, inv).await?;
    record(state, inv, outcome, false).await
}

/// The processor call of a claimed invoice's attempt. Without an outcome (the processor
/// unreachable) the claim is given back; the same attempt (same key) is made again later.
async fn charge_or_release(state: &AppState, inv: &InvoiceRow) -> ApiResult<Outcome> {
    match charge(state, inv).await {
        Ok(o) => Ok(o),
        Err(e) => {
            db::release_invoice(state.store.writer(), &inv.id, inv.attempt_count).await?;
            Err(e)
        }
    }
}

fn failure(code: &str, decline_code: Option<String>, message: String) -> InvoicePaymentError {
    InvoicePaymentError { code: code.to_string(), decline_code, message }
}

async fn charge(state: &AppState, inv: &InvoiceRow) -> ApiResult<Outcome> {
    if inv.amount_due == 0 {
        return Ok(Outcome::Paid { payment_intent: None, payment_method: None });
    }
    if let Some(paid) = earlier_intent_paid(state, inv).await? {
        return Ok(paid);
    }
    // The customer, its processor customer and the payment methods in one read.
    let payer = db::invoice_payer(state.store.reader(), &inv.customer, inv.subscription.as_deref())
        .await?
        .ok_or_else(|| ApiError::not_found("customer", &inv.customer))?;
    let Some(pm) = payer.subscription_payment_method.or(payer.customer_payment_method) else {
        return Ok(Outcome::Failed {
            error: failure("invoice_no_payment_method", None, "The customer has no saved payment method.".into()),
            action_required: false,
            payment_intent: None,
        });
    };
    let processor_customer = match payer.processor_customer {
        Some(pc) => pc,
        None => customers::create_lacking_processor_customer(state, &inv.customer).await?,
    };
    let mut metadata = Metadata::new();
    metadata.insert("kassa_invoice".into(), inv.id.clone());
    metadata.insert("kassa_customer_id".into(), inv.customer.clone());
    if let Some(s) = &inv.subscription {
        metadata.insert("kassa_subscription".into(), s.clone());
    }
    let req = CreatePaymentIntent {
        amount: inv.amount_due,
        currency: inv.currency.clone(),
        customer: processor_customer,
        metadata,
        capture_method: CaptureMethod::Automatic,
        setup_future_usage: false,
        confirm: Some(PaymentSource::PaymentMethod(pm.clone())),
        off_session: true,
        return_url: None,
    };
    let key = processor_keys::pay_invoice(&inv.id, inv.attempt_count);
    Ok(match state.processor.create_payment_intent(&req, &key).await {
        Ok(pi) if pi.status.is_paid_or_authorized() => {
            Outcome::Paid { payment_intent: Some(pi.id), payment_method: Some(pm) }
        }
        Ok(pi) => {
            let action_required = pi.status == PaymentIntentStatus::RequiresAction;
            let error = match pi.last_payment_error {
                Some(e) => failure(&e.code, e.decline_code, e.message),
                None if action_required => failure(
                    "authentication_required",
                    Some("authentication_required".into()),
                    "The card requires the customer's authentication.".into(),
                ),
                None => failure("payment_intent_incomplete", None, "The payment did not complete.".into()),
            };
            Outcome::Failed { error, action_required, payment_intent: Some(pi.id) }
        }
        Err(ProcessorError::Payment { error, payment_intent }) => Outcome::Failed {
            action_required: error.code == "authentication_required",
            error: failure(&error.code, error.decline_code, error.message),
            payment_intent: payment_intent.map(|p| p.id),
        },
        Err(ProcessorError::InvalidRequest { code, message, .. }) => Outcome::Failed {
            error: failure(code.as_deref().unwrap_or("payment_method_invalid"), None, message),
            action_required: false,
            payment_intent: None,
        },
        Err(e) => return Err(e.into()),
    })
}

/// The invoice's earlier PaymentIntent (one the customer may still authenticate on the
/// hosted invoice page, or one the page wrote before confirming it and whose outcome was never
/// written — its server died, or its claim ran out): succeeded → that is the outcome, no new
/// charge; not yet succeeded but able to (waiting for authentication, for confirmation, or
/// made and not yet confirmed) → canceled first, so that it cannot succeed besides a new
/// charge (should it succeed meanwhile, the cancel is refused and it is the outcome).
pub(crate) async fn earlier_intent_paid(state: &AppState, inv: &InvoiceRow) -> ApiResult<Option<Outcome>> {
    let Some(id) = &inv.payment_intent else { return Ok(None) };
    let paid = |pi: kassa_processors::PaymentIntent| {
        Some(Outcome::Paid { payment_intent: Some(pi.id), payment_method: pi.payment_method })
    };
    let pi = state.processor.retrieve_payment_intent(id).await?;
    match pi.status {
        s if s.is_paid_or_authorized() => Ok(paid(pi)),
        PaymentIntentStatus::RequiresAction
        | PaymentIntentStatus::RequiresConfirmation
        | PaymentIntentStatus::RequiresPaymentMethod => {
            match state.processor.cancel_payment_intent(id, &processor_keys::cancel_invoice_intent(id)).await {
                Ok(_) => Ok(None),
                Err(e) => {
                    let pi = state.processor.retrieve_payment_intent(id).await?;
                    if pi.status.is_paid_or_authorized() { Ok(paid(pi)) } else { Err(e.into()) }
                }
            }
        }
        PaymentIntentStatus::Processing => {
            Err(ApiError::Internal(anyhow::anyhow!("invoice {}: payment {id} still processing", inv.id)))
        }
        _ => Ok(None),
    }
}

/// The invoice's earlier PaymentIntent, if it has succeeded since (read only).
pub(crate) async fn earlier_intent_paid_if_done(state: &AppState, inv: &InvoiceRow) -> ApiResult<Option<Outcome>> {
    let Some(id) = &inv.payment_intent else { return Ok(None) };
    let pi = state.processor.retrieve_payment_intent(id).await?;
    Ok(pi
        .status
        .is_paid_or_authorized()
        .then_some(Outcome::Paid { payment_intent: Some(pi.id), payment_method: pi.payment_method }))
}

fn invoice_state(inv: &InvoiceRow) -> ApiResult<InvoiceState> {
    let status = InvoiceStatus::parse(&inv.status)
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("invoice {} has status {:?}", inv.id, inv.status)))?;
    Ok(InvoiceState {
        status,
        amount_due: inv.amount_due,
        amount_paid: inv.amount_paid,
        attempt_count: inv.attempt_count,
    })
}

pub fn subscription_state(s: &SubscriptionRow) -> ApiResult<SubscriptionState> {
    let status = SubscriptionStatus::parse(&s.status)
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("subscription {} has status {:?}", s.id, s.status)))?;
    Ok(SubscriptionState { status, cancel_at_period_end: s.cancel_at_period_end })
}

fn after_last(state: &AppState) -> AfterLastRetry {
    match state.settings.billing.after_last_retry {
        AfterLastRetrySetting::Cancel => AfterLastRetry::Cancel,
        AfterLastRetrySetting::Unpaid => AfterLastRetry::MarkUnpaid,
    }
}

/// Applies an invoice transition: the next state onto the row, then its effects (credits,
/// events) in `tx`.
pub async fn apply_invoice(tx: &mut Tx, inv: &mut InvoiceRow, input: InvoiceInput, now: i64) -> ApiResult<()> {
    let t = machine::transition(&invoice_state(inv)?, &input)?;
    inv.status = t.next.status.as_str().to_string();
    inv.amount_paid = t.next.amount_paid;
    inv.attempt_count = t.next.attempt_count;
    inv.updated = now;
    if t.next.status == InvoiceStatus::Paid && inv.paid_at.is_none() {
        inv.paid_at = Some(now);
    }
    if t.next.status != InvoiceStatus::Open {
        inv.next_payment_attempt = None;
    }
    db::update_invoice(tx, inv).await?;
    for effect in t.effects {
        match effect {
            InvoiceEffect::Fulfil => grant_credits(tx, inv, now).await?,
            InvoiceEffect::Record(kind) => {
                events::record(tx, kind, &inv.id, &Invoice::from(inv.clone()), now).await?;
            }
        }
    }
    Ok(())
}

/// The credits a paid invoice carries, once: the ledger entry's source is the invoice.
async fn grant_credits(tx: &mut Tx, inv: &InvoiceRow, now: i64) -> ApiResult<()> {
    if inv.credits <= 0 {
        return Ok(());
    }
    let entry = NewEntry {
        customer: inv.customer.clone(),
        amount: inv.credits,
        kind: "subscription",
        source: format!("invoice:{}", inv.id),
        reason: Some(format!("Credits of the period paid by invoice {}", inv.id)),
        ..Default::default()
    };
    match ledger::add_entry(tx, entry, now).await? {
        Added::Entry(e) => {
            let e = CreditEntry::from(e);
            events::record(tx, "credits.added", &e.id, &e, now).await?;
        }
        Added::Duplicate(_) => {}
        // A full balance keeps the invoice paid; the credits that do not fit are not added
        // (logged, the merchant can adjust by hand).
        Added::OverLimit | Added::Insufficient => {
            tracing::warn!(invoice = %inv.id, "credits of a paid period not added: the balance is at its limit");
        }
    }
    Ok(())
}

/// Applies a subscription transition: the next state onto the row, then its effects.
pub async fn apply_subscription(
    tx: &mut Tx,
    sub: &mut SubscriptionRow,
    input: SubscriptionInput,
    now: i64,
) -> ApiResult<Vec<SubscriptionEffect>> {
    transition_subscription(tx, sub, input, now, WriteRow::Always).await
}

/// [`apply_subscription`] leaving the row's write to the caller, who changes it further in the
/// same transaction and writes it once (a renewal: one UPDATE instead of two).
pub async fn apply_subscription_unwritten(
    tx: &mut Tx,
    sub: &mut SubscriptionRow,
    input: SubscriptionInput,
    now: i64,
) -> ApiResult<Vec<SubscriptionEffect>> {
    transition_subscription(tx, sub, input, now, WriteRow::Never).await
}

/// Whether a transition writes the subscription row.
#[derive(Clone, Copy, PartialEq, Eq)]
enum WriteRow {
    Always,
    /// The caller writes it.
    Never,
    /// Only when the transition changed the state or has effects: for a caller that changed
    /// nothing else on the row (a renewal paid while active: no UPDATE at all).
    IfChanged,
}

async fn transition_subscription(
    tx: &mut Tx,
    sub: &mut SubscriptionRow,
    input: SubscriptionInput,
    now: i64,
    write: WriteRow,
) -> ApiResult<Vec<SubscriptionEffect>> {
    let current = subscription_state(sub)?;
    let t = sub_machine::transition(&current, &input)?;
    if write == WriteRow::IfChanged && t.next == current && t.effects.is_empty() {
        return Ok(Vec::new());
    }
    sub.status = t.next.status.as_str().to_string();
    sub.cancel_at_period_end = t.next.cancel_at_period_end;
    sub.updated = now;
    let mut rest = Vec::new();
    for effect in &t.effects {
        if *effect == SubscriptionEffect::StopBilling {
            sub.canceled_at.get_or_insert(now);
            sub.pending_price = None;
            sub.pending_quantity = None;
        }
    }
    if write != WriteRow::Never {
        db::update_subscription(tx, sub).await?;
    }
    for effect in t.effects {
        match effect {
            SubscriptionEffect::Record(kind) => {
                events::record(tx, kind, &sub.id, &Subscription::from(sub.clone()), now).await?;
            }
            other => rest.push(other),
        }
    }
    Ok(rest)
}

/// Writes an attempt's outcome, if the claim is still current. A failure of the customer's
/// own attempt on the invoice page (`on_page`) does not count in dunning: the schedule of
/// the job's retries and the subscription's status stay as they were.
pub(crate) async fn record(state: &AppState, claimed: &InvoiceRow, outcome: Outcome, on_page: bool) -> ApiResult<()> {
    let mut tx = state.store.begin().await?;
    record_in(state, &mut tx, claimed, outcome, on_page).await?;
    tx.commit().await?;
    Ok(())
}

/// Writes the outcomes of several attempts in one transaction (one commit for the lot, in
/// invoice order); should that fail as a whole (a deadlock with another server's batch), each
/// is written in its own.
async fn record_all(state: &AppState, mut outcomes: Vec<(&InvoiceRow, Outcome)>) -> ApiResult<()> {
    if outcomes.is_empty() {
        return Ok(());
    }
    outcomes.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    let together = async {
        let mut tx = state.store.begin().await?;
        for (inv, outcome) in &outcomes {
            record_in(state, &mut tx, inv, outcome.clone(), false).await?;
        }
        tx.commit().await?;
        ApiResult::Ok(())
    };
    if let Err(e) = together.await {
        tracing::warn!(error = %e, "writing payment outcomes in one transaction failed; writing them one by one");
        for (inv, outcome) in outcomes {
            if let Err(e) = record(state, inv, outcome, false).await {
                // Its claim runs out and the same attempt (same key) is made and written again.
                tracing::warn!(invoice = %inv.id, error = %e, "payment outcome not written; the attempt is repeated later");
            }
        }
    }
    Ok(())
}

/// [`record`] in the caller's transaction: writes nothing when the claim is no longer current.
async fn record_in(
    state: &AppState,
    tx: &mut Tx,
    claimed: &InvoiceRow,
    outcome: Outcome,
    on_page: bool,
) -> ApiResult<()> {
    let Some(db::InvoiceAt { row: mut inv, customer_time }) = db::lock_invoice_at(tx, &claimed.id).await? else {
        return Ok(());
    };
    // A page's claim must still be its own: once it ran out, the job holds the invoice (and
    // settles the page's payment, written to the invoice before it was confirmed, itself);
    // writing here would end the job's claim while its charge may be under way. The job's
    // own attempts are fenced by the attempt number (a repeat is the same charge, same key).
    let lost_page_claim = on_page && inv.lease_until != claimed.lease_until;
    if inv.status != InvoiceStatus::Open.as_str() || inv.attempt_count != claimed.attempt_count || lost_page_claim {
        // Another claim (after this one's lease ran out) wrote the outcome already, or holds it.
        return Ok(());
    }
    let now = customer_time.unwrap_or_else(|| state.clock.now());
    let mut sub = match &inv.subscription {
        Some(s) => db::lock_subscription(tx, s).await?,
        None => None,
    };
    match outcome {
        Outcome::Paid { payment_intent, payment_method } => {
            inv.payment_intent = payment_intent.or(inv.payment_intent.take());
            inv.payment_method = payment_method.or(inv.payment_method.take());
            inv.last_payment_error = None;
            apply_invoice(tx, &mut inv, InvoiceInput::Paid, now).await?;
            if let Some(sub) = sub.as_mut() {
                transition_subscription(tx, sub, SubscriptionInput::InvoicePaid, now, WriteRow::IfChanged).await?;
            }
        }
        Outcome::Failed { error, action_required, payment_intent } => {
            inv.payment_intent = payment_intent.or(inv.payment_intent.take());
            inv.last_payment_error = Some(serde_json::to_string(&error).map_err(anyhow::Error::from)?);
            if on_page {
                // No transition: the status, the attempt count (the job's keys) and the retry
                // schedule stay; the page's payment is remembered for the job to settle first.
                inv.updated = now;
                db::update_invoice(tx, &inv).await?;
                return Ok(());
            }
            let first = inv.billing_reason == REASON_CREATE;
            let attempts = u32::try_from(inv.attempt_count + 1).unwrap_or(u32::MAX);
            let schedule = RetrySchedule { days_after_previous: state.settings.billing.retry_days.clone() };
            // A new subscription's first invoice is not retried: the subscription stays
            // `incomplete` until a payment method that works is given.
            let next = if first { None } else { schedule.next_attempt(attempts, now) };
            inv.next_payment_attempt = next;
            apply_invoice(tx, &mut inv, InvoiceInput::AttemptFailed { action_required }, now).await?;
            let ended = |s: &SubscriptionRow| SubscriptionStatus::parse(&s.status).is_some_and(sub_machine::ended);
            if sub.as_ref().is_some_and(ended) {
                // Canceled (or expired incomplete) while this attempt was under way (the end
                // left the invoice open for its outcome): nothing more is collected.
                apply_invoice(tx, &mut inv, InvoiceInput::Void, now).await?;
                return Ok(());
            }
            if next.is_none() && !first {
                apply_invoice(tx, &mut inv, InvoiceInput::GiveUp, now).await?;
            }
            if let Some(sub) = sub.as_mut() {
                let input = SubscriptionInput::InvoiceFailed {
                    retries_left: next.is_some() || first,
                    after_last: after_last(state),
                };
                apply_subscription(tx, sub, input, now).await?;
            }
        }
    }
    Ok(())
}
