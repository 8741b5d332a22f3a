//! Periodic commerce work: expire idle carts (releasing their stock), give back payments
//! that could not become orders, retry refunds the processor did not confirm, expire hosted
//! sessions, and reconcile payments whose outcome is still open.
//!
//! Each round claims a bounded batch (`FOR UPDATE SKIP LOCKED` on PostgreSQL, the single
//! writer on SQLite) and moves the rows' `updated` forward before any processor call, so
//! servers running the same job at once never work on the same row.

use crate::objects::commerce::{Cart, Payment};
use crate::services::{checkout_sessions, orders, payments};
use crate::state::AppState;
use kassa_processors::{CreateRefund, IdempotencyKey, Metadata, PaymentIntentStatus, ProcessorError};
use kassa_store::{carts, checkout_sessions as sessions, events, orders as order_db, payments as payment_db};

const BATCH: i64 = 100;

/// Open carts idle for longer than the TTL become `expired`; their reservations go back.
pub async fn expire_carts(state: &AppState) -> anyhow::Result<()> {
    let now = state.clock.now();
    let ttl = state.settings.checkout.cart_ttl_days as i64 * 86_400;
    let mut tx = state.store.begin().await?;
    let idle = carts::claim_idle(&mut tx, &state.store, now - ttl, BATCH).await?;
    for mut cart in idle {
        let lines = carts::lines(tx.conn(), &cart.id).await?;
        for l in lines.iter().filter(|l| l.reserved > 0) {
            carts::release(&mut tx, &l.product, l.reserved, now).await?;
            carts::update_line(&mut tx, &l.id, l.quantity, 0, now).await?;
        }
        cart.status = "expired".into();
        cart.updated = now;
        carts::save(&mut tx, &cart).await?;
        let shown = Cart::from_rows(cart, lines, None, ttl);
        events::record(&mut tx, "cart.expired", &shown.id, &shown, now).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Claims a batch of payments in `status` untouched for `idle` seconds, pushing their
/// `updated` forward so no other round takes them meanwhile.
async fn claim(state: &AppState, status: &str, idle: i64) -> anyhow::Result<Vec<payment_db::PaymentRow>> {
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    let claimed = payment_db::claim_in_status(&mut tx, &state.store, status, now - idle, BATCH).await?;
    for p in &claimed {
        payment_db::touch(tx.conn(), &p.id, now).await?;
    }
    tx.commit().await?;
    Ok(claimed)
}

/// Payments secured for a cart that changed or was paid already: cancel the authorization,
/// or refund the charge, then mark them `voided`.
pub async fn give_back_voided(state: &AppState) -> anyhow::Result<()> {
    for p in claim(state, "void_pending", 0).await? {
        let Some(pi) = &p.processor_payment_intent else { continue };
        let key = IdempotencyKey::new(format!("kassa_void_{}", p.id));
        let current = state.processor.retrieve_payment_intent(pi).await?;
        let outcome = match current.status {
            PaymentIntentStatus::RequiresCapture => state.processor.cancel_payment_intent(pi, &key).await.map(|_| ()),
            PaymentIntentStatus::Succeeded if current.amount_refunded < current.amount_received => {
                let mut metadata = Metadata::new();
                metadata.insert("kassa_payment_id".into(), p.id.clone());
                metadata.insert("kassa_void_reason".into(), p.void_reason.clone().unwrap_or_default());
                let req = CreateRefund { payment_intent: pi.clone(), amount: None, metadata };
                state.processor.create_refund(&req, &key).await.map(|_| ())
            }
            _ => Ok(()),
        };
        match outcome {
            Ok(()) => {
                let now = state.clock.now();
                let mut tx = state.store.begin().await?;
                if let Some(mut row) = payment_db::lock(&mut tx, &p.id).await?
                    && row.status == "void_pending"
                {
                    row.status = "voided".into();
                    row.amount_refunded = row.amount_captured;
                    row.updated = now;
                    payment_db::save(&mut tx, &row).await?;
                    events::record(&mut tx, "payment.voided", &row.id, &Payment::from(row.clone()), now).await?;
                }
                tx.commit().await?;
            }
            Err(e) => {
                tracing::warn!(payment = %p.id, error = %e, "giving back a voided payment failed; retrying later")
            }
        }
    }
    Ok(())
}

/// Refunds whose processor call failed or whose outcome is unknown are repeated with the
/// same idempotency key.
pub async fn retry_refunds(state: &AppState) -> anyhow::Result<()> {
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    let pending = order_db::claim_pending_refunds(&mut tx, &state.store, now - 30, BATCH).await?;
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
    let due = sessions::claim_expired(&mut tx, &state.store, now, BATCH).await?;
    tx.commit().await?;
    for s in due {
        if let Some(ps) = &s.processor_session {
            let key = IdempotencyKey::new(format!("kassa_expire_{}", s.id));
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
    for status in ["requires_action", "processing"] {
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
    pub checked: usize,
    pub changed: usize,
    pub unknown: Vec<String>,
    pub refunds_retried: usize,
}

/// Compares every payment whose outcome is open (or whose money must go back) with the
/// processor and applies what the processor says; gives back voided payments; retries
/// pending refunds. Payments still `pending` without a PaymentIntent id are listed: Kassa
/// cannot tell whether their processor call ever arrived (it never repeats a charge on its
/// own), and the cart's next pay call resolves them.
pub async fn reconcile_all(state: &AppState) -> anyhow::Result<Reconciled> {
    let mut report = Reconciled::default();
    let open =
        payment_db::in_statuses(state.store.reader(), &["pending", "requires_action", "processing"], 10_000).await?;
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
    give_back_voided(state).await?;
    let mut tx = state.store.begin().await?;
    let pending = order_db::claim_pending_refunds(&mut tx, &state.store, i64::MAX, 10_000).await?;
    tx.commit().await?;
    for r in pending {
        report.refunds_retried += 1;
        orders::execute_refund(state, &r).await?;
    }
    Ok(report)
}
