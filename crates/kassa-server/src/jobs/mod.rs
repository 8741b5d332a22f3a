//! Background work. Every job is safe to run on several servers sharing one database: it
//! claims rows (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite has one writer), changes them
//! in the claiming transaction, and works in bounded batches.

pub mod commerce;
mod idempotency_cleanup;
mod test_processor;

use crate::state::AppState;
use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Starts every job; they stop when `shutdown` turns true.
pub fn spawn_all(state: &AppState, shutdown: watch::Receiver<bool>) -> JoinSet<()> {
    let mut set = JoinSet::new();
    let every = Duration::from_millis(state.settings.jobs.interval_ms);
    {
        let state = state.clone();
        set.spawn(periodic("idempotency_cleanup", every * 60, shutdown.clone(), move || {
            let state = state.clone();
            async move { idempotency_cleanup::run(&state).await }
        }));
    }
    let commerce_jobs: [(&'static str, Job); 5] = [
        ("cart_expiry", |s| Box::pin(async move { commerce::expire_carts(&s).await })),
        ("payment_voids", |s| Box::pin(async move { commerce::give_back_voided(&s).await.map(drop) })),
        ("refund_retries", |s| Box::pin(async move { commerce::retry_refunds(&s).await })),
        ("session_expiry", |s| Box::pin(async move { commerce::expire_sessions(&s).await })),
        ("payment_reconcile", |s| Box::pin(async move { commerce::reconcile_open_payments(&s).await })),
    ];
    for (name, job) in commerce_jobs {
        let state = state.clone();
        set.spawn(periodic(name, every, shutdown.clone(), move || job(state.clone())));
    }
    if let Some(tp) = &state.test_processor {
        test_processor::spawn(&mut set, state, tp, shutdown.clone());
    }
    set
}

type Job = fn(AppState) -> futures::future::BoxFuture<'static, anyhow::Result<()>>;

/// Runs `round` every `every` until shutdown; a failed round is logged and retried next time.
pub(crate) async fn periodic<F, Fut>(
    name: &'static str,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
    mut round: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if let Err(e) = round().await {
                    tracing::warn!(job = name, error = %e, "job round failed");
                }
            }
            _ = shutdown.changed() => break,
        }
        if *shutdown.borrow() {
            break;
        }
    }
}
