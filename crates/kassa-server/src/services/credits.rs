//! Prepaid credits: top-ups through hosted checkout with the processor's fee grossed up,
//! an exactly-once ledger, atomic spending.
//!
//! Refund rule: refunding a top-up takes back the credits it bought in proportion to the
//! refunded share of the charge (rounded up, never more than the top-up added); if some were
//! spent already, it takes what is left and records the rest as the entry's `shortfall`. The
//! balance never goes below zero.

use crate::error::{ApiError, ApiResult};
use crate::objects::credits::CreditEntry;
use kassa_domain::tax::div_ceil;
use kassa_store::credits::{self as ledger, Added, NewEntry};
use kassa_store::payments::PaymentRow;
use kassa_store::{Tx, checkout_sessions, events};

/// A top-up's payment is secured: add its credits, once per checkout session.
pub async fn top_up_paid(tx: &mut Tx, p: &PaymentRow, now: i64) -> ApiResult<()> {
    let session_id = p
        .checkout_session
        .as_deref()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("top-up {} has no session", p.id)))?;
    let session = checkout_sessions::get(tx.conn(), session_id)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("top-up session {session_id} is missing")))?;
    let credits = session.credits.unwrap_or(0);
    if credits <= 0 {
        return Ok(());
    }
    let entry = NewEntry {
        customer: p.customer.clone(),
        amount: credits,
        kind: "top_up",
        source: format!("top_up:{session_id}"),
        reason: None,
        shortfall: 0,
        payment: Some(p.id.clone()),
        checkout_session: Some(session_id.to_string()),
    };
    if let Added::Entry(e) = ledger::add_entry(tx, entry, now).await? {
        let e = CreditEntry::from(e);
        events::record(tx, "credits.added", &e.id, &e, now).await?;
    }
    Ok(())
}

/// The top-up's charge was (further) refunded: take back the credits of the refunded share.
pub async fn reverse_refunded_top_up(tx: &mut Tx, p: &PaymentRow, now: i64) -> ApiResult<()> {
    let Some(session_id) = &p.checkout_session else { return Ok(()) };
    let Some(session) = checkout_sessions::get(tx.conn(), session_id).await? else { return Ok(()) };
    let credits = session.credits.unwrap_or(0);
    if credits <= 0 || p.amount <= 0 {
        return Ok(());
    }
    let refunded = p.amount_refunded.min(p.amount);
    let due_total = div_ceil(credits as i128 * refunded as i128, p.amount as i128).min(credits as i128) as i64;
    let entries = ledger::of_session(tx.conn(), session_id).await?;
    if !entries.iter().any(|e| e.kind == "top_up") {
        return Ok(());
    }
    let settled: i64 = entries.iter().filter(|e| e.kind == "refund_reversal").map(|e| -e.amount + e.shortfall).sum();
    let due = due_total - settled;
    if due <= 0 {
        return Ok(());
    }
    let balance = ledger::lock_balance(tx, &p.customer).await?.unwrap_or(0);
    let taken = due.min(balance);
    let entry = NewEntry {
        customer: p.customer.clone(),
        amount: -taken,
        kind: "refund_reversal",
        // One reversal per refunded level of the charge.
        source: format!("refund_reversal:{}:{refunded}", p.id),
        reason: Some(format!("{refunded} of {} refunded", p.amount)),
        shortfall: due - taken,
        payment: Some(p.id.clone()),
        checkout_session: Some(session_id.clone()),
    };
    match ledger::add_entry(tx, entry, now).await? {
        Added::Entry(e) => {
            let e = CreditEntry::from(e);
            events::record(tx, "credits.reversed", &e.id, &e, now).await?;
            Ok(())
        }
        Added::Duplicate(_) => Ok(()),
        Added::Insufficient => {
            Err(ApiError::Internal(anyhow::anyhow!("a reversal bounded by the locked balance overdrew it")))
        }
    }
}
