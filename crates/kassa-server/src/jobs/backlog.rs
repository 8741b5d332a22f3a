//! Each job's backlog on `/metrics`, sampled while the server runs:
//! `kassa_job_backlog{job}` (items due now, counted up to `kassa_store::backlog::COUNT_CAP`)
//! and `kassa_job_oldest_due_seconds{job}` (how long the earliest of them has been due; 0
//! when none is). Each job's due rows are the ones its round claims (same table, same
//! filter), read here without claiming them.
//!
//! The rows live in the shared database, so every server reports the same backlog: aggregate
//! with `max`, not `sum`. Sampled also when `jobs.enabled` is off, so a server that serves
//! only requests still shows work piling up. The test processor's own jobs keep their work in
//! the sandbox's tables and are not measured.

use crate::services::webhook_endpoints::{DELIVERY_JOB, now_ms};
use crate::state::AppState;
use kassa_domain::lifecycle::cart::CartStatus;
use kassa_domain::lifecycle::checkout_session::SessionStatus;
use kassa_domain::lifecycle::payment::PaymentStatus;
use kassa_domain::lifecycle::refund::RefundStatus;
use kassa_store::backlog::{Backlog, Bind, DueRows, measure};
use std::time::Duration;

/// One job's backlog: its due items and the earliest moment one fell due (Unix ms).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobBacklog {
    pub items: i64,
    pub earliest_due_ms: Option<i64>,
}

impl JobBacklog {
    /// From due rows whose due column is in seconds, falling due `offset` seconds after it.
    fn secs(b: Backlog, offset: i64) -> JobBacklog {
        JobBacklog { items: b.items, earliest_due_ms: b.earliest.map(|t| (t + offset) * 1000) }
    }

    fn and(self, other: JobBacklog) -> JobBacklog {
        let earliest_due_ms = match (self.earliest_due_ms, other.earliest_due_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        JobBacklog { items: self.items + other.items, earliest_due_ms }
    }
}

/// The backlog of every job that keeps its work in Kassa's own tables.
pub async fn measure_all(state: &AppState) -> anyhow::Result<Vec<(&'static str, JobBacklog)>> {
    let db = state.store.reader();
    let now = state.clock.now();
    let cart_ttl = state.settings.checkout.cart_ttl_days as i64 * 86_400;
    let keys_kept = state.settings.jobs.idempotency_retention_hours as i64 * 3600;
    let log_kept = state.settings.webhooks.retention_days as i64 * 86_400;
    let rows = |table, due, filter| DueRows { table, due, filter };
    let mut out = Vec::new();

    let carts = measure(
        db,
        rows("carts", "last_activity", "status = $1 AND last_activity < $2"),
        &[Bind::Text(CartStatus::Open.as_str()), Bind::Int(now - cart_ttl)],
    )
    .await?;
    out.push(("cart_expiry", JobBacklog::secs(carts, cart_ttl)));

    let voids = measure(
        db,
        rows("payments", "updated", "status = $1 AND (lease_until IS NULL OR lease_until <= $2)"),
        &[Bind::Text(PaymentStatus::VoidPending.as_str()), Bind::Int(now)],
    )
    .await?;
    out.push(("payment_voids", JobBacklog::secs(voids, 0)));

    let refunds = measure(
        db,
        rows("refunds", "updated", "status = $1 AND updated < $2"),
        &[Bind::Text(RefundStatus::Pending.as_str()), Bind::Int(now - 30)],
    )
    .await?;
    out.push(("refund_retries", JobBacklog::secs(refunds, 30)));

    let sessions = measure(
        db,
        rows("checkout_sessions", "expires_at", "status = $1 AND expires_at < $2"),
        &[Bind::Text(SessionStatus::Open.as_str()), Bind::Int(now)],
    )
    .await?;
    out.push(("session_expiry", JobBacklog::secs(sessions, 0)));

    let open_payments = measure(
        db,
        rows("payments", "updated", "status IN ($1, $2) AND updated < $3"),
        &[
            Bind::Text(PaymentStatus::RequiresAction.as_str()),
            Bind::Text(PaymentStatus::Processing.as_str()),
            Bind::Int(now - 60),
        ],
    )
    .await?;
    out.push(("payment_reconcile", JobBacklog::secs(open_payments, 60)));

    let customers = measure(
        db,
        rows(
            "customers",
            "created",
            "processor_customer IS NULL AND (processor_claim_until IS NULL OR processor_claim_until < $1) \
             AND (processor_retry_after IS NULL OR processor_retry_after < $1)",
        ),
        &[Bind::Int(now)],
    )
    .await?;
    out.push((super::processor_customers::NAME, JobBacklog::secs(customers, 0)));

    let keys = measure(
        db,
        rows("idempotency_keys", "created", "created < $1 AND locked_until IS NULL"),
        &[Bind::Int(now - keys_kept)],
    )
    .await?;
    out.push(("idempotency_cleanup", JobBacklog::secs(keys, keys_kept)));

    // Deliveries: events not fanned out yet, and deliveries due (their time is in ms).
    let unfanned = measure(db, rows("events", "created", "webhooks_fanned_out_at IS NULL"), &[]).await?;
    let due = measure(
        db,
        rows("webhook_deliveries", "next_attempt_ms", "status = 'pending' AND next_attempt_ms <= $1"),
        &[Bind::Int(now_ms(state))],
    )
    .await?;
    let deliveries = JobBacklog { items: due.items, earliest_due_ms: due.earliest };
    out.push((DELIVERY_JOB, JobBacklog::secs(unfanned, 0).and(deliveries)));

    let log = measure(db, rows("webhook_attempts", "created", "created < $1"), &[Bind::Int(now - log_kept)]).await?;
    out.push(("webhook_log_cleanup", JobBacklog::secs(log, log_kept)));
    Ok(out)
}

/// Samples every job's backlog into the gauges, every `every`, while the server runs.
pub async fn sample(state: AppState, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match measure_all(&state).await {
            Ok(all) => {
                let now = now_ms(&state);
                for (job, b) in all {
                    let age = b.earliest_due_ms.map(|t| (now - t).max(0) as f64 / 1000.0).unwrap_or(0.0);
                    metrics::gauge!("kassa_job_backlog", "job" => job).set(b.items as f64);
                    metrics::gauge!("kassa_job_oldest_due_seconds", "job" => job).set(age);
                }
            }
            Err(e) => tracing::warn!(error = format!("{e:#}"), "measuring the jobs' backlog failed"),
        }
    }
}

/// How often [`sample`] runs: ten job intervals, between 100 ms and 5 s.
pub fn sampling_interval(state: &AppState) -> Duration {
    Duration::from_millis((state.settings.jobs.interval_ms * 10).clamp(100, 5_000))
}
