//! Periodic commerce work: expire idle carts (releasing their stock), give back payments
//! that could not become orders and duplicate charges, retry refunds the processor did not
//! confirm, expire hosted sessions, and reconcile payments whose outcome is still open.
//!
//! Each round claims a bounded batch (`FOR UPDATE SKIP LOCKED` on PostgreSQL, the single
//! writer on SQLite) and moves the rows' `updated` forward before any processor call, so
//! servers running the same job at once never work on the same row.

use crate::objects::commerce::Cart;
use crate::services::{checkout_sessions, orders, payments, processor_keys, settlement};
use crate::state::AppState;
use kassa_domain::lifecycle::Status;
use kassa_domain::lifecycle::cart::{self, CartEffect, CartInput, CartStatus};
use kassa_domain::lifecycle::checkout_session::SessionStatus;
use kassa_domain::lifecycle::payment::{self as payment_machine, PaymentInput, PaymentStatus};
use kassa_domain::lifecycle::refund::RefundStatus;
use kassa_processors::{CreateRefund, Metadata, PaymentIntentStatus, ProcessorError};
use kassa_store::payments::PaymentRow;
use kassa_store::{carts, checkout_sessions as sessions, events, orders as order_db, payments as payment_db};

const BATCH: i64 = 100;
/// Giving a payment back takes two processor calls: reading its PaymentIntent, then the
/// cancel or the refund. Its lease covers both.
const GIVE_BACK_CALLS: i64 = 2;

/// Open carts idle for longer than the TTL become `expired`; their reservations go back.
pub async fn expire_carts(state: &AppState) -> anyhow::Result<()> {
    let now = state.clock.now();
    let ttl = state.settings.checkout.cart_ttl_days as i64 * 86_400;
    let mut tx = state.store.begin().await?;
    let idle = carts::claim_idle(&mut tx, &state.store, CartStatus::Open, now - ttl, BATCH).await?;
    // The batch's reservations go back together at the end, in product id order like every
    // stock move (see `carts::by_product`), so expiring carts never deadlocks with a checkout.
    let mut released: Vec<(String, i64)> = Vec::new();
    for mut row in idle {
        let t = cart::transition(row.status, CartInput::Expire)?;
        let lines = carts::lines(tx.conn(), &row.id).await?;
        if t.effects.contains(&CartEffect::ReleaseReservedStock) {
            for l in lines.iter().filter(|l| l.reserved > 0) {
                released.push((l.product.clone(), l.reserved));
                carts::update_line(&mut tx, &l.id, l.quantity, 0, now).await?;
            }
        }
        row.status = t.next;
        row.updated = now;
        carts::save(&mut tx, &row).await?;
        let shown = Cart::from_rows(row, lines, None, ttl);
        for effect in &t.effects {
            if let CartEffect::Record(kind) = effect {
                events::record(&mut tx, kind, &shown.id, &shown, now).await?;
            }
        }
    }
    for (product, units) in carts::by_product(released.iter().map(|(p, u)| (p.as_str(), *u))) {
        carts::release(&mut tx, product, units, now).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Claims a batch of payments in `status` untouched for `idle` seconds, pushing their
/// `updated` forward so no other round takes them meanwhile.
async fn claim(state: &AppState, status: PaymentStatus, idle: i64) -> anyhow::Result<Vec<payment_db::PaymentRow>> {
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    let claimed = payment_db::claim_in_status(&mut tx, &state.store, status, now - idle, BATCH).await?;
    for p in &claimed {
        payment_db::touch(tx.conn(), &p.id, now).await?;
    }
    tx.commit().await?;
    Ok(claimed)
}

/// Payments Kassa does not keep — secured for a cart that changed or was paid already, or a
/// duplicate charge of a payment — are given back: the authorization canceled, or the charge
/// refunded; then they are `voided`. Returns how many were given back in this round.
///
/// Exactly once, also against a processor that ignores idempotency keys: each payment is
/// leased for the call (a round never works on a payment another round holds), the processor's
/// current state is read before acting (a refund that went through before a crash is not made
/// again), and the call's idempotency key is derived from the PaymentIntent's id.
pub async fn give_back_voided(state: &AppState) -> anyhow::Result<usize> {
    let now = state.clock.now();
    let claimed = payment_db::claim_leased(
        &state.store,
        PaymentStatus::VoidPending,
        now,
        payments::lease_until(state, now, GIVE_BACK_CALLS),
        BATCH,
    )
    .await?;
    let mut given_back = 0;
    for p in claimed {
        // The round's later payments wait for the earlier ones' calls: take each lease afresh
        // right before its call, unless another round took the payment over meanwhile.
        let now = state.clock.now();
        let held = p.lease_until.unwrap_or_default();
        if !payment_db::renew_lease(
            state.store.writer(),
            &p.id,
            held,
            payments::lease_until(state, now, GIVE_BACK_CALLS),
        )
        .await?
        {
            continue;
        }
        let Some(pi) = &p.processor_payment_intent else { continue };
        match give_back(state, &p, pi).await {
            Ok(()) => {
                let now = state.clock.now();
                let mut tx = state.store.begin().await?;
                // A payment no longer `void_pending` (the machine refuses) is left as it is.
                if let Some(mut row) = payment_db::lock(&mut tx, &p.id).await?
                    && let Ok(t) = payment_machine::transition(&row.state(), &PaymentInput::GivenBack)
                    && t.next != row.state()
                {
                    row.set_state(&t.next);
                    row.lease_until = None;
                    row.updated = now;
                    payment_db::save(&mut tx, &row).await?;
                    settlement::record_payment_events(&mut tx, &row, &t.effects, now).await?;
                    given_back += 1;
                }
                tx.commit().await?;
            }
            // The lease stays: the next try waits for it to run out.
            Err(e) => {
                tracing::warn!(payment = %p.id, error = %e, "giving back a voided payment failed; retrying later")
            }
        }
    }
    Ok(given_back)
}

/// Cancels the authorization of `pi`, or refunds what is left of its charge, as the
/// processor's current state asks.
async fn give_back(state: &AppState, p: &payment_db::PaymentRow, pi: &str) -> Result<(), ProcessorError> {
    let key = processor_keys::give_back(pi);
    let current = state.processor.retrieve_payment_intent(pi).await?;
    match current.status {
        PaymentIntentStatus::RequiresCapture => state.processor.cancel_payment_intent(pi, &key).await.map(|_| ()),
        PaymentIntentStatus::Succeeded if current.amount_refunded < current.amount_received => {
            let mut metadata = Metadata::new();
            metadata.insert("kassa_payment_id".into(), p.id.clone());
            metadata.insert("kassa_void_reason".into(), p.void_reason.clone().unwrap_or_default());
            if let Some(of) = &p.duplicate_of {
                metadata.insert("kassa_duplicate_of".into(), of.clone());
            }
            let req = CreateRefund { payment_intent: pi.to_string(), amount: None, metadata };
            state.processor.create_refund(&req, &key).await.map(|_| ())
        }
        _ => Ok(()),
    }
}

/// Refunds whose processor call failed or whose outcome is unknown are repeated with the
/// same idempotency key.
pub async fn retry_refunds(state: &AppState) -> anyhow::Result<()> {
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    let pending = order_db::claim_refunds(&mut tx, &state.store, RefundStatus::Pending, now - 30, BATCH).await?;
    for r in &pending {
        order_db::touch_refund(tx.conn(), &r.id, now).await?;
    }
    tx.commit().await?;
    for r in pending {
        if let Err(e) = orders::execute_refund(state, &r).await {
            tracing::warn!(refund = %r.id, error = %e, "refund retry failed");
        }
    }
    Ok(())
}

/// Open hosted sessions past their expiry: expire them at the processor (unless paid
/// meanwhile, which the sync then records).
pub async fn expire_sessions(state: &AppState) -> anyhow::Result<()> {
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    let due = sessions::claim_expired(&mut tx, &state.store, SessionStatus::Open, now, BATCH).await?;
    tx.commit().await?;
    for s in due {
        if let Some(ps) = &s.processor_session {
            let key = processor_keys::expire_session(&s.id);
            match state.processor.expire_checkout_session(ps, &key).await {
                Ok(_) | Err(ProcessorError::InvalidRequest { .. }) => {}
                Err(e) => {
                    tracing::warn!(session = %s.id, error = %e, "expiring a session failed; retrying later");
                    continue;
                }
            }
        }
        if let Err(e) = checkout_sessions::sync(state, &s, None).await {
            tracing::warn!(session = %s.id, error = %e, "session sync failed");
        }
    }
    Ok(())
}

/// Payments waiting for 3-D Secure or an asynchronous method: ask the processor, in case a
/// webhook was lost.
pub async fn reconcile_open_payments(state: &AppState) -> anyhow::Result<()> {
    for status in [PaymentStatus::RequiresAction, PaymentStatus::Processing] {
        for p in claim(state, status, 60).await? {
            let Some(pi) = &p.processor_payment_intent else { continue };
            match state.processor.retrieve_payment_intent(pi).await {
                Ok(current) => {
                    payments::apply_intent(state, &p.id, &current, None).await?;
                }
                Err(e) => tracing::warn!(payment = %p.id, error = %e, "reconciling a payment failed"),
            }
        }
    }
    Ok(())
}

/// What `kassa reconcile` found and did.
#[derive(Debug, Default)]
pub struct Reconciled {
    /// Open payments asked about, and how many of them changed.
    pub checked: usize,
    pub changed: usize,
    /// Pending payments without a PaymentIntent at the processor: their call never arrived
    /// (or has not yet).
    pub unknown: Vec<String>,
    /// PaymentIntents at the processor from the window that were looked at.
    pub intents_scanned: usize,
    /// Pending payments whose PaymentIntent was found at the processor (a lost webhook after
    /// a call that passed its deadline).
    pub found_outcome: usize,
    /// Duplicate charges this run noticed first.
    pub duplicates_found: usize,
    /// Every duplicate charge noticed in the window (by whichever path), as it stands now.
    pub duplicates: Vec<PaymentRow>,
    /// Payments given back in this run.
    pub given_back: usize,
    /// Payments still to be given back (the processor refused or was unreachable, or another
    /// server is giving them back right now).
    pub left_to_give_back: Vec<PaymentRow>,
    pub refunds_retried: usize,
    /// When the run ended (Unix seconds).
    pub finished: i64,
}

/// How far back `kassa reconcile` looks at the processor's PaymentIntents by default.
pub const RECONCILE_DAYS: u32 = 7;

/// [`reconcile`] over the default window.
pub async fn reconcile_all(state: &AppState) -> anyhow::Result<Reconciled> {
    reconcile(state, RECONCILE_DAYS).await
}

/// Makes Kassa's view of its payments agree with the processor's and repairs what differs:
/// - the processor's PaymentIntents created in the last `days` days that carry a
///   `kassa_payment_id` of this database are applied to their payment: a pending payment
///   learns its outcome; a charge that is not the one its payment keeps is recorded as a
///   duplicate charge, to be given back;
/// - every payment whose outcome is open is compared with the processor; those still
///   `pending` without a PaymentIntent are listed (Kassa never repeats a charge on its own;
///   the cart's next pay call resolves them);
/// - payments Kassa does not keep are given back, pending refunds retried.
pub async fn reconcile(state: &AppState, days: u32) -> anyhow::Result<Reconciled> {
    let mut report = Reconciled::default();
    let since = state.clock.now() - i64::from(days) * 86_400;
    scan_processor(state, since, &mut report).await?;

    let unsettled: Vec<PaymentStatus> = PaymentStatus::ALL.iter().copied().filter(|s| s.is_unsettled()).collect();
    let open = payment_db::in_statuses(state.store.reader(), &unsettled, 10_000).await?;
    for p in open {
        report.checked += 1;
        let Some(pi) = &p.processor_payment_intent else {
            report.unknown.push(p.id.clone());
            continue;
        };
        let current = state.processor.retrieve_payment_intent(pi).await?;
        if let Some(after) = payments::apply_intent(state, &p.id, &current, None).await?
            && after.status != p.status
        {
            report.changed += 1;
        }
    }
    loop {
        let n = give_back_voided(state).await?;
        if n == 0 {
            break;
        }
        report.given_back += n;
    }
    let mut tx = state.store.begin().await?;
    let pending = order_db::claim_refunds(&mut tx, &state.store, RefundStatus::Pending, i64::MAX, 10_000).await?;
    tx.commit().await?;
    for r in pending {
        report.refunds_retried += 1;
        orders::execute_refund(state, &r).await?;
    }
    report.duplicates = payment_db::duplicates_since(state.store.reader(), since).await?;
    report.left_to_give_back =
        payment_db::in_statuses(state.store.reader(), &[PaymentStatus::VoidPending], 10_000).await?;
    report.finished = state.clock.now();
    Ok(report)
}

/// Pages through the processor's PaymentIntents, newest first, back to `since`, and applies
/// each that carries the id of one of this database's payments and is not recorded yet.
/// A `kassa_payment_id` this database does not know belongs to someone else sharing the
/// processor account (another installation): it is left alone.
async fn scan_processor(state: &AppState, since: i64, report: &mut Reconciled) -> anyhow::Result<()> {
    // Bounded, in case a processor keeps answering `has_more` without moving on.
    const MAX_PAGES: usize = 10_000;
    let mut starting_after: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let page = state.processor.list_payment_intents(starting_after.as_deref(), 100).await?;
        for pi in &page.data {
            report.intents_scanned += 1;
            let Some(payment_id) = pi.metadata.get("kassa_payment_id") else { continue };
            if pi.created < since || payment_db::by_intent(state.store.reader(), &pi.id).await?.is_some() {
                continue;
            }
            let Some(p) = payment_db::get(state.store.reader(), payment_id).await? else { continue };
            payments::apply_intent(state, &p.id, pi, None).await?;
            match payment_db::by_intent(state.store.reader(), &pi.id).await? {
                Some(d) if d.duplicate_of.is_some() => report.duplicates_found += 1,
                Some(_) => report.found_outcome += 1,
                None => {}
            }
        }
        match page.data.last() {
            Some(last) if page.has_more && last.created >= since && starting_after.as_deref() != Some(&last.id) => {
                starting_after = Some(last.id.clone());
            }
            _ => break,
        }
    }
    Ok(())
}
