//! Webhook delivery, as Stripe does it: each event POSTed with a `Stripe-Signature`, retried
//! with exponential backoff until the endpoint answers 2xx — at least once, never lost.
//!
//! Several servers may deliver at once: each round claims a bounded batch of due events with a
//! lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL, the single writer on SQLite), so an event is
//! in one server's hands at a time; a server that dies mid-round leaves its claims to expire
//! and be taken again. Chaos mode imitates a real network's worst manners: events out of
//! order, twice, or late.

use crate::TestProcessor;
use crate::db::{self as db, EventRow, Settled};
use crate::work::db_failed;
use futures::StreamExt;
use kassa_processors::ProcessorError;
use kassa_processors::signature;
use rand::Rng;
use rand::seq::SliceRandom;
use std::time::Duration;

/// How long a claim holds an event before another server may take it.
const LEASE_MS: i64 = 120_000;
/// Each delivery attempt gives up after this long (and counts as failed).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What one round did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryStats {
    /// Events claimed in this round.
    pub claimed: usize,
    /// Events acknowledged (2xx) and marked delivered.
    pub delivered: usize,
    /// Events not acknowledged, rescheduled with backoff.
    pub failed: usize,
    /// Extra copies sent (chaos).
    pub duplicates: usize,
    /// Events held back for a later round (chaos).
    pub deferred: usize,
}

/// How one claimed event is handled this round.
struct Planned {
    event: EventRow,
    /// Copies to send (more than one in chaos mode).
    sends: usize,
    /// Sleep before sending (chaos).
    delay: Duration,
    /// Hold back until then (milliseconds) instead of sending (chaos).
    defer_until_ms: Option<i64>,
}

fn plain(events: Vec<EventRow>) -> Vec<Planned> {
    events.into_iter().map(|event| Planned { event, sends: 1, delay: Duration::ZERO, defer_until_ms: None }).collect()
}

/// Shuffles the round, duplicates some events, delays or defers others. Every round that sends
/// two or more events sends them out of creation order, and every round that sends anything
/// sends something twice, so a test of chaos never passes by luck.
fn chaos(events: Vec<EventRow>, now_ms: i64) -> Vec<Planned> {
    let mut rng = rand::thread_rng();
    let mut plan = plain(events);
    plan.shuffle(&mut rng);
    for p in &mut plan {
        let roll: f64 = rng.r#gen();
        if roll < 0.2 {
            p.defer_until_ms = Some(now_ms + rng.gen_range(50..400));
        } else if roll < 0.5 {
            p.sends = 2;
        }
        if rng.gen_bool(0.25) {
            p.delay = Duration::from_millis(rng.gen_range(1..30));
        }
    }
    let sent: Vec<usize> = (0..plan.len()).filter(|&i| plan[i].defer_until_ms.is_none()).collect();
    if let Some(&first) = sent.first()
        && sent.iter().all(|&i| plan[i].sends == 1)
    {
        plan[first].sends = 2;
    }
    if sent.len() >= 2 && sent.windows(2).all(|w| plan[w[0]].event.id < plan[w[1]].event.id) {
        plan.swap(sent[0], sent[1]);
    }
    plan
}

impl TestProcessor {
    /// Whether a round claimed a full batch, so that more events may be due at once: the
    /// server's job runner then asks for the next round without waiting.
    pub fn batch_was_full(&self, stats: &DeliveryStats) -> bool {
        stats.claimed as i64 >= self.config.delivery_batch
    }

    /// The delay before retry number `attempts` (1 = the first retry).
    fn backoff_ms(&self, attempts: i64) -> i64 {
        let exponent = (attempts - 1).clamp(0, 40) as u32;
        let delay = self.config.retry_base_ms.saturating_mul(2u64.saturating_pow(exponent));
        delay.min(self.config.max_retry_delay_ms) as i64
    }

    /// Delivers the events that are due to `url` (one round, a bounded batch): acknowledged
    /// ones are marked delivered, the others retried later with backoff.
    pub async fn deliver_due(
        &self,
        http: &reqwest::Client,
        url: &str,
        chaos_mode: bool,
    ) -> Result<DeliveryStats, ProcessorError> {
        let now_ms = self.now_ms();
        let events = db::claim_due_events(&self.store, now_ms, now_ms + LEASE_MS, self.config.delivery_batch)
            .await
            .map_err(db_failed)?;
        let mut stats = DeliveryStats { claimed: events.len(), ..Default::default() };
        let plan = if chaos_mode { chaos(events, now_ms) } else { plain(events) };
        // Held back events keep their claim until the round ends: let go of with the others.
        let (deferred, sendable): (Vec<Planned>, Vec<Planned>) =
            plan.into_iter().partition(|p| p.defer_until_ms.is_some());
        stats.deferred = deferred.len();
        // Plain rounds send side by side (the receiver handles each event on its own); chaos
        // rounds keep their shuffled order, one after the other.
        let parallel = if chaos_mode { 1 } else { 8 };
        let outcomes: Vec<(Planned, bool)> = futures::stream::iter(sendable)
            .map(|p| async move {
                if !p.delay.is_zero() {
                    tokio::time::sleep(p.delay).await;
                }
                let mut acknowledged = false;
                for _ in 0..p.sends {
                    acknowledged |= self.post(http, url, &p.event).await;
                }
                (p, acknowledged)
            })
            .buffered(parallel)
            .collect()
            .await;
        let mut settled: Vec<(&str, Settled)> = deferred
            .iter()
            .map(|p| (p.event.id.as_str(), Settled::Deferred { at_ms: p.defer_until_ms.unwrap_or(now_ms) }))
            .collect();
        for (p, acknowledged) in &outcomes {
            stats.duplicates += p.sends - 1;
            if *acknowledged {
                stats.delivered += 1;
                settled.push((p.event.id.as_str(), Settled::Delivered));
            } else {
                stats.failed += 1;
                let at_ms = self.now_ms() + self.backoff_ms(p.event.attempts);
                settled.push((p.event.id.as_str(), Settled::Retry { at_ms }));
            }
        }
        // One statement for the whole round.
        db::settle(&self.store, &settled, self.now()).await.map_err(db_failed)?;
        Ok(stats)
    }

    /// One signed POST; whether the endpoint acknowledged it.
    async fn post(&self, http: &reqwest::Client, url: &str, event: &EventRow) -> bool {
        let header = signature::sign(&self.config.webhook_secret, self.now(), event.data.as_bytes());
        let sent = http
            .post(url)
            .header("Stripe-Signature", header)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .timeout(REQUEST_TIMEOUT)
            .body(event.data.clone())
            .send()
            .await;
        match sent {
            Ok(res) if res.status().is_success() => true,
            Ok(res) => {
                tracing::warn!(event = %event.id, kind = %event.kind, status = %res.status(), "webhook not acknowledged; retrying");
                false
            }
            Err(e) => {
                tracing::warn!(event = %event.id, kind = %event.kind, error = %e, "webhook delivery failed; retrying");
                false
            }
        }
    }
}
