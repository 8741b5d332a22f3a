//! Subscription billing on the runner: renews subscriptions whose period ended (one invoice
//! per period), ends `incomplete` subscriptions whose first invoice was not paid within 23
//! hours (`incomplete_expired`, the invoice voided), and pays due invoices (first attempts and
//! retries on the dunning schedule).
//! Safe on several servers: renewals lock due subscriptions with `FOR UPDATE SKIP LOCKED`
//! (SQLite has one writer) and the invoice's unique (subscription, period) makes a second
//! invoice impossible; payment attempts are claimed with a lease and carry a processor key
//! derived from the invoice and attempt (see `services::invoices`).

use super::runner::Round;
use crate::services::{invoices, subscriptions};
use crate::state::AppState;

pub const NAME: &str = "subscription_billing";
const BATCH: i64 = 100;

pub async fn round(state: &AppState) -> anyhow::Result<Round> {
    let renewed = subscriptions::renew_due(state, None, BATCH).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let expired = subscriptions::expire_incomplete(state, None, BATCH).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let (claimed, failed) = invoices::collect_due(state, None, BATCH).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Round {
        done: (renewed + expired + claimed - failed) as u64,
        failed: failed as u64,
        // Renewing and expiring always make progress (a renewed period moves on, an expired
        // subscription is no longer incomplete), so go on while there is any; payment
        // attempts go on at once only after a full batch.
        more: renewed > 0 || expired > 0 || claimed as i64 >= BATCH,
    })
}
