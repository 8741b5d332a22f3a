//! Background work, all of it on one runner ([`runner`]). Every job is safe to run on several
//! servers sharing one database: it claims rows (`FOR UPDATE SKIP LOCKED` on PostgreSQL;
//! SQLite has one writer), changes them in the claiming transaction, and works in bounded
//! batches.

pub mod backlog;
pub mod commerce;
mod idempotency_cleanup;
pub mod processor_customers;
pub mod runner;
mod sandbox;
pub mod webhook_deliveries;

use crate::state::AppState;
use runner::{Job, Round, job};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Every job this server runs.
pub fn all(state: &AppState) -> Vec<Arc<dyn Job>> {
    let every = Duration::from_millis(state.settings.jobs.interval_ms.max(1));
    let mut jobs = vec![
        job("idempotency_cleanup", every * 60, |s| {
            Box::pin(async move { idempotency_cleanup::run(s).await.map(|()| Round::default()) })
        }),
        job("cart_expiry", every, |s| Box::pin(async move { done(commerce::expire_carts(s).await) })),
        job("payment_voids", every, |s| {
            Box::pin(async move { Ok(Round { done: commerce::give_back_voided(s).await? as u64, ..Round::default() }) })
        }),
        job("refund_retries", every, |s| Box::pin(async move { done(commerce::retry_refunds(s).await) })),
        job("session_expiry", every, |s| Box::pin(async move { done(commerce::expire_sessions(s).await) })),
        job("payment_reconcile", every, |s| Box::pin(async move { done(commerce::reconcile_open_payments(s).await) })),
        job(processor_customers::NAME, every, |s| Box::pin(processor_customers::round(s))),
        Arc::new(webhook_deliveries::WebhookDeliveries::new(state)),
        job("webhook_log_cleanup", every * 60, |s| Box::pin(webhook_deliveries::cleanup(s))),
    ];
    if let Some(tp) = &state.test_processor {
        jobs.extend(sandbox::jobs(state, tp));
    }
    jobs
}

/// A round of a job that does not count its items yet.
fn done(r: anyhow::Result<()>) -> anyhow::Result<Round> {
    r.map(|()| Round::default())
}

/// Starts every job; they stop when `shutdown` turns true.
pub fn spawn_all(state: &AppState, shutdown: watch::Receiver<bool>) -> JoinSet<()> {
    runner::spawn(state, all(state), shutdown)
}
