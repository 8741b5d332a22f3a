//! The one runner every background job uses: a schedule, rounds of bounded batches, retry
//! with backoff after a failed round, wake-ups after a commit, per-job metrics and a clean
//! shutdown.
//!
//! A job is written once as a [`Job`]: one `round` claims a bounded batch of due work, does
//! it and says how much it did. Claiming is the job's own business because the work lives in
//! the job's own rows (due carts, payments to give back, deliveries): it takes them with
//! `FOR UPDATE SKIP LOCKED` on PostgreSQL (or the single writer on SQLite) and moves them out
//! of reach (a lease, a status) in the claiming transaction, so several servers running the
//! same job never do the same item twice by a race. Work that must follow a commit is a row
//! written in that commit, which a job finds; never a spawned task.
//!
//! Why not a crate: the job queues known to the Rust ecosystem (apalis, the registry
//! server's worker) keep work in a queue table of their own and hold a transaction open while a
//! job runs. Kassa's work is already durable in its domain rows, runs on SQLite's single writer
//! (a transaction held across a processor call would stop every other writer), and must
//! run on PostgreSQL-compatible distributed databases (no LISTEN/NOTIFY, no advisory locks).

use crate::state::AppState;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

/// What one round did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Round {
    /// Items done.
    pub done: u64,
    /// Items that failed and stay due (retried on a later round).
    pub failed: u64,
    /// The batch was full: more may be due now, so the next round starts at once.
    pub more: bool,
}

impl Round {
    /// A round over `claimed` items of a batch of `batch`, `failed` of which failed.
    pub fn of_batch(claimed: usize, failed: usize, batch: i64) -> Round {
        Round { done: (claimed - failed) as u64, failed: failed as u64, more: claimed as i64 >= batch }
    }
}

pub type RoundFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<Round>> + Send + 'a>>;

/// A kind of background work.
pub trait Job: Send + Sync + 'static {
    /// Stable name, for logs, metrics and wake-ups.
    fn name(&self) -> &'static str;

    /// The pause between rounds when the last round found nothing more to do.
    fn interval(&self) -> Duration;

    /// One round: claim a bounded batch of due work and do it.
    fn round<'a>(&'a self, state: &'a AppState) -> RoundFuture<'a>;
}

/// How long to wait after `failures` failed rounds in a row: doubling from the interval,
/// at most a minute, with jitter so servers that failed together do not retry together.
pub fn backoff(interval: Duration, failures: u32) -> Duration {
    use rand::Rng;
    let base = interval.max(Duration::from_millis(100));
    let doubled = base.saturating_mul(1u32 << failures.min(10)).min(Duration::from_secs(60));
    let jitter = rand::thread_rng().gen_range(0.5..1.0);
    doubled.mul_f64(jitter)
}

/// Starts one task per job; each stops after its current round once `shutdown` turns true.
pub fn spawn(state: &AppState, jobs: Vec<Arc<dyn Job>>, shutdown: watch::Receiver<bool>) -> JoinSet<()> {
    let mut set = JoinSet::new();
    for job in jobs {
        let state = state.clone();
        let wake = state.jobs.notify_of(job.name());
        set.spawn(run(job, state, wake, shutdown.clone()));
    }
    set
}

async fn run(job: Arc<dyn Job>, state: AppState, wake: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
    let name = job.name();
    let mut failures: u32 = 0;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let started = Instant::now();
        let outcome = job.round(&state).await;
        metrics::histogram!("kassa_job_round_seconds", "job" => name).record(started.elapsed().as_secs_f64());
        let more = match outcome {
            Ok(round) => {
                metrics::counter!("kassa_job_rounds_total", "job" => name, "outcome" => "ok").increment(1);
                metrics::counter!("kassa_job_items_total", "job" => name, "outcome" => "done").increment(round.done);
                metrics::counter!("kassa_job_items_total", "job" => name, "outcome" => "failed")
                    .increment(round.failed);
                if round.done > 0 || round.failed > 0 {
                    tracing::info!(job = name, done = round.done, failed = round.failed, "job round");
                }
                failures = if round.failed > 0 && round.done == 0 { failures.saturating_add(1) } else { 0 };
                round.more && failures == 0
            }
            Err(e) => {
                metrics::counter!("kassa_job_rounds_total", "job" => name, "outcome" => "error").increment(1);
                failures = failures.saturating_add(1);
                tracing::warn!(
                    job = name,
                    error = format!("{e:#}"),
                    failures,
                    "job round failed; retrying with backoff"
                );
                false
            }
        };
        if more {
            // A full batch: go on at once, but let other tasks in first.
            tokio::task::yield_now().await;
            continue;
        }
        let pause = if failures > 0 { backoff(job.interval(), failures) } else { job.interval() };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = wake.notified() => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// A job that is a name, an interval and a round function.
struct FnJob<F> {
    name: &'static str,
    interval: Duration,
    round: F,
}

/// A [`Job`] from a name, an interval and a round function.
pub fn job<F>(name: &'static str, interval: Duration, round: F) -> Arc<dyn Job>
where
    F: for<'a> Fn(&'a AppState) -> RoundFuture<'a> + Send + Sync + 'static,
{
    Arc::new(FnJob { name, interval, round })
}

impl<F> Job for FnJob<F>
where
    F: for<'a> Fn(&'a AppState) -> RoundFuture<'a> + Send + Sync + 'static,
{
    fn name(&self) -> &'static str {
        self.name
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn round<'a>(&'a self, state: &'a AppState) -> RoundFuture<'a> {
        (self.round)(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_minute_with_jitter() {
        let i = Duration::from_secs(1);
        for failures in 1..20 {
            let b = backoff(i, failures);
            let full = i.saturating_mul(1 << failures.min(10)).min(Duration::from_secs(60));
            assert!(b <= full && b >= full / 2, "{failures}: {b:?} vs {full:?}");
        }
    }

    #[test]
    fn a_full_batch_asks_for_more() {
        assert_eq!(Round::of_batch(100, 0, 100), Round { done: 100, failed: 0, more: true });
        assert_eq!(Round::of_batch(7, 2, 100), Round { done: 5, failed: 2, more: false });
    }
}
