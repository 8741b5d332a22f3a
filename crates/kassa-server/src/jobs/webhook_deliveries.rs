//! Delivers events to the merchant's webhook endpoints (SPEC §9), on the job runner.
//!
//! A round (1) fans new events out to one delivery per (event, subscribed endpoint), taking the
//! events with `FOR UPDATE SKIP LOCKED`, and (2) claims due deliveries (pushing each past a
//! lease in the claiming statement) and starts each attempt as its own task. The round does
//! not wait for the attempts: a slow or dead endpoint holds only its own tasks (at most
//! `webhooks.max_in_flight_per_endpoint`, each bounded by `webhooks.timeout_ms`), never the
//! deliveries to other endpoints. A finished attempt wakes the job, so freed room is used at
//! once. A server that dies mid-attempt leaves the delivery claimed until its lease runs out;
//! then any server delivers it again (at least once).
//!
//! The body is a Stripe-shaped event signed with `Stripe-Signature` (`t=…,v1=…`, a second
//! `v1` from the previous secret during a roll), so the official Stripe libraries verify it.
//! 2xx is success; anything else, a timeout or a refused connection is retried after the
//! next wait of `webhooks.retry_schedule_ms` (±20 % jitter). A delivery that fails the whole
//! schedule gives up; if its endpoint had no success since the delivery began, the endpoint
//! is disabled and `webhook_endpoint.disabled` is recorded.

use crate::jobs::runner::{Job, Round, RoundFuture};
use crate::objects::webhook_endpoint::WebhookEndpoint;
use crate::services::webhook_endpoints::{DELIVERY_JOB, SecretBox, is_private, now_ms, status_of, wants};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use kassa_domain::ids::IdKind;
use kassa_domain::lifecycle::webhook_endpoint::{
    DISABLED_EVENT, EndpointInput, WebhookDeliveryStatus, WebhookEndpointStatus, transition,
};
use kassa_processors::signature;
use kassa_store::events::{self, EventRow};
use kassa_store::webhook_deliveries::{self as db, AttemptRow, Claimed, Outcome};
use kassa_store::webhook_endpoints::{self as endpoints, EndpointRow};
use kassa_store::webhook_subscriptions::Subscriptions;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Events fanned out per round.
const FAN_OUT_BATCH: i64 = 500;
/// Deliveries claimed per round at most.
const CLAIM_BATCH: i64 = 200;
/// The answer's body kept in the log.
const RESPONSE_BODY_LIMIT: usize = 1024;
/// Lease beyond the attempt's timeout: time to write the outcome.
const LEASE_MARGIN_MS: i64 = 5_000;
/// The least time between two fan-outs of this server.
const FAN_OUT_SPACING: Duration = Duration::from_millis(10);

/// The delivery job.
pub struct WebhookDeliveries {
    http: reqwest::Client,
    /// The sealing key, read from the configuration once.
    secrets: SecretBox,
    interval: Duration,
    /// When this server last fanned events out: rounds woken by every write are spaced by
    /// [`FAN_OUT_SPACING`], so a busy shop pays one fan-out transaction per few milliseconds,
    /// not one per request.
    last_fan_out: Mutex<Option<Instant>>,
    /// Attempts in flight in this process, per endpoint.
    in_flight: Arc<Mutex<HashMap<String, usize>>>,
}

impl WebhookDeliveries {
    pub fn new(state: &AppState) -> WebhookDeliveries {
        let w = &state.settings.webhooks;
        let secrets = SecretBox::from_settings(&state.settings);
        if !secrets.is_sealing() {
            tracing::warn!(
                "webhooks.secret_key is not set: webhook signing secrets are stored unsealed in the database"
            );
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_millis(w.timeout_ms))
            .connect_timeout(Duration::from_millis(w.timeout_ms))
            .user_agent(concat!("Kassa/", env!("CARGO_PKG_VERSION"), " (+webhooks)"))
            .dns_resolver(Arc::new(GuardedResolver { allow_private: w.allow_private_urls }))
            .pool_max_idle_per_host(w.max_in_flight_per_endpoint)
            .build()
            .expect("the webhook HTTP client builds (TLS roots are compiled in)");
        let interval = Duration::from_millis(state.settings.jobs.interval_ms.max(1));
        WebhookDeliveries { http, secrets, interval, last_fan_out: Mutex::new(None), in_flight: Arc::default() }
    }
}

impl Job for WebhookDeliveries {
    fn name(&self) -> &'static str {
        DELIVERY_JOB
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn round<'a>(&'a self, state: &'a AppState) -> RoundFuture<'a> {
        Box::pin(self.run_round(state))
    }
}

impl WebhookDeliveries {
    async fn run_round(&self, state: &AppState) -> anyhow::Result<Round> {
        let since = self.last_fan_out.lock().unwrap_or_else(|e| e.into_inner()).map(|t| t.elapsed());
        if let Some(wait) = since.and_then(|s| FAN_OUT_SPACING.checked_sub(s)) {
            tokio::time::sleep(wait).await;
        }
        *self.last_fan_out.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        let fanned = fan_out(state).await?;
        let w = &state.settings.webhooks;
        let (room, busy) = {
            let map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            let total: usize = map.values().sum();
            let busy: Vec<String> =
                map.iter().filter(|(_, n)| **n >= w.max_in_flight_per_endpoint).map(|(k, _)| k.clone()).collect();
            (w.max_in_flight.saturating_sub(total) as i64, busy)
        };
        let limit = room.min(CLAIM_BATCH);
        let mut claimed = Vec::new();
        if limit > 0 {
            let now = now_ms(state);
            // The attempt is over after `timeout_ms`; its outcome is written right after.
            let lease = now + 2 * w.timeout_ms as i64 + LEASE_MARGIN_MS;
            claimed = db::claim_due(&state.store, now, lease, limit, &busy).await?;
        }
        let n = claimed.len();
        let claimed = self.within_endpoint_room(state, claimed).await?;
        if !claimed.is_empty() {
            self.start(state, claimed).await?;
        }
        Ok(Round {
            done: (fanned + n) as u64,
            failed: 0,
            more: fanned as i64 >= FAN_OUT_BATCH || n as i64 >= limit.max(1),
        })
    }

    /// Keeps what each endpoint has room for (`webhooks.max_in_flight_per_endpoint`, counting
    /// its attempts already running) and gives the other claims back at once: one claim can
    /// take many deliveries of one endpoint, and a slow endpoint must not hold more than its
    /// share of connections (nor a killed server more leases than it could run).
    async fn within_endpoint_room(&self, state: &AppState, claimed: Vec<Claimed>) -> anyhow::Result<Vec<Claimed>> {
        let cap = state.settings.webhooks.max_in_flight_per_endpoint;
        let mut taken: HashMap<String, usize> = self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let (mut keep, mut give_back) = (Vec::new(), Vec::new());
        for c in claimed {
            let n = taken.entry(c.endpoint.clone()).or_default();
            if *n < cap {
                *n += 1;
                keep.push(c);
            } else {
                give_back.push((c.id, c.claims));
            }
        }
        if !give_back.is_empty() {
            db::release(&state.store, &give_back, now_ms(state)).await?;
        }
        Ok(keep)
    }

    /// Starts one task per claimed delivery.
    async fn start(&self, state: &AppState, claimed: Vec<Claimed>) -> anyhow::Result<()> {
        let mut event_ids: Vec<String> = claimed.iter().map(|c| c.event.clone()).collect();
        event_ids.sort();
        event_ids.dedup();
        let mut endpoint_ids: Vec<String> = claimed.iter().map(|c| c.endpoint.clone()).collect();
        endpoint_ids.sort();
        endpoint_ids.dedup();
        let reader = state.store.reader();
        let events: HashMap<String, Arc<EventRow>> =
            db::events(reader, &event_ids).await?.into_iter().map(|e| (e.id.clone(), Arc::new(e))).collect();
        let endpoints: HashMap<String, Arc<EndpointRow>> = endpoints::get_many(reader, &endpoint_ids)
            .await?
            .into_iter()
            .map(|e| (e.id.clone(), Arc::new(e)))
            .collect();
        let pending: HashMap<String, i64> = db::pending_counts(reader, &event_ids).await?.into_iter().collect();
        for c in claimed {
            let (Some(event), Some(endpoint)) = (events.get(&c.event), endpoints.get(&c.endpoint)) else {
                // The endpoint was deleted (or the event is gone): nothing to deliver.
                let mut tx = state.store.begin().await?;
                db::finish(&mut tx, &c.id, c.claims, Outcome::GaveUp, state.clock.now()).await?;
                tx.commit().await?;
                continue;
            };
            if status_of(endpoint) != WebhookEndpointStatus::Enabled {
                let mut tx = state.store.begin().await?;
                db::finish(&mut tx, &c.id, c.claims, Outcome::GaveUp, state.clock.now()).await?;
                tx.commit().await?;
                continue;
            }
            *self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).entry(c.endpoint.clone()).or_default() += 1;
            let attempt = Attempt {
                state: state.clone(),
                http: self.http.clone(),
                secrets: self.secrets.clone(),
                in_flight: self.in_flight.clone(),
                event: event.clone(),
                endpoint: endpoint.clone(),
                pending: pending.get(&c.event).copied().unwrap_or(1),
                claim: c,
            };
            tokio::spawn(attempt.run());
        }
        Ok(())
    }
}

/// Makes the deliveries of events recorded since the last fan-out. Returns the events done.
async fn fan_out(state: &AppState) -> anyhow::Result<usize> {
    // A read first: a write transaction only when there is something to fan out.
    if !db::any_pending_event(state.store.reader()).await? {
        return Ok(0);
    }
    let mut tx = state.store.begin().await?;
    let pending = db::pending_events(&mut tx, FAN_OUT_BATCH).await?;
    if pending.is_empty() {
        tx.rollback().await?;
        return Ok(0);
    }
    // The version first: the endpoints read after it are at least as new as their label.
    let version = endpoints::version(tx.conn()).await?;
    let subscribed = endpoints::enabled(tx.conn()).await?;
    state.store.webhook_subscriptions().store(Subscriptions {
        version,
        enabled_events: subscribed
            .iter()
            .map(|e| serde_json::from_str::<Vec<String>>(&e.enabled_events).unwrap_or_default())
            .collect(),
    });
    let mut pairs = Vec::new();
    for e in &pending {
        for endpoint in &subscribed {
            if wants(&endpoint.enabled_events, &e.kind) {
                pairs.push((e.id.clone(), endpoint.id.clone()));
            }
        }
    }
    let now = state.clock.now();
    db::insert(&mut tx, &pairs, now, now_ms(state)).await?;
    let ids: Vec<String> = pending.into_iter().map(|e| e.id).collect();
    db::mark_fanned_out(&mut tx, &ids, now).await?;
    tx.commit().await?;
    metrics::counter!("kassa_webhook_deliveries_created_total").increment(pairs.len() as u64);
    Ok(ids.len())
}

/// One attempt of one delivery, run as its own task.
struct Attempt {
    state: AppState,
    http: reqwest::Client,
    secrets: SecretBox,
    in_flight: Arc<Mutex<HashMap<String, usize>>>,
    event: Arc<EventRow>,
    endpoint: Arc<EndpointRow>,
    pending: i64,
    claim: Claimed,
}

/// What the endpoint answered.
struct Answer {
    status: Option<u16>,
    error: Option<String>,
    body: Option<String>,
}

impl Attempt {
    async fn run(self) {
        let started = Instant::now();
        let answer = self.send().await;
        let latency = started.elapsed().as_millis() as i64;
        if let Err(e) = self.record(answer, latency).await {
            // The lease runs out and the delivery is tried again.
            tracing::warn!(delivery = %self.claim.id, error = format!("{e:#}"), "recording a webhook attempt failed");
        }
        let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.endpoint.id) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.endpoint.id);
            }
        }
        drop(map);
        self.state.jobs.wake(DELIVERY_JOB);
    }

    async fn send(&self) -> Answer {
        let failed = |error: String| Answer { status: None, error: Some(error), body: None };
        let secrets = &self.secrets;
        let secret = match secrets.open(&self.endpoint.secret, &self.endpoint.id) {
            Ok(s) => s,
            Err(e) => return failed(e),
        };
        let now = self.state.clock.now();
        let previous = match (&self.endpoint.previous_secret, self.endpoint.previous_secret_expires) {
            (Some(p), Some(until)) if until > now => secrets.open(p, &self.endpoint.id).ok(),
            _ => None,
        };
        let body = event_body(&self.state, &self.event, &self.endpoint, self.pending);
        let mut header = signature::sign(&secret, now, &body);
        if let Some(p) = previous {
            let other = signature::sign(&p, now, &body);
            header.push_str(other.trim_start_matches(&format!("t={now}")));
        }
        if !self.state.settings.webhooks.allow_private_urls
            && let Ok(url) = url::Url::parse(&self.endpoint.url)
        {
            let literal = match url.host() {
                Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
                Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
                _ => None,
            };
            if literal.is_some_and(is_private) {
                return failed("refused: the URL is a private address (webhooks.allow_private_urls)".into());
            }
        }
        let timeout = Duration::from_millis(self.state.settings.webhooks.timeout_ms);
        let exchange = async {
            let res = self
                .http
                .post(&self.endpoint.url)
                .header("content-type", "application/json; charset=utf-8")
                .header("stripe-signature", header)
                .body(body)
                .send()
                .await?;
            let status = res.status().as_u16();
            let mut res = res;
            let mut kept: Vec<u8> = Vec::new();
            while kept.len() < RESPONSE_BODY_LIMIT {
                match res.chunk().await? {
                    Some(chunk) => kept.extend_from_slice(&chunk[..chunk.len().min(RESPONSE_BODY_LIMIT - kept.len())]),
                    None => break,
                }
            }
            Ok::<_, reqwest::Error>((status, kept))
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok((status, kept))) => Answer {
                status: Some(status),
                error: (!(200..300).contains(&status)).then(|| format!("the endpoint answered {status}")),
                body: Some(String::from_utf8_lossy(&kept).replace('\0', "")),
            },
            Ok(Err(e)) => failed(describe(&e)),
            Err(_) => failed(format!("timed out after {} ms", timeout.as_millis())),
        }
    }

    async fn record(&self, answer: Answer, latency_ms: i64) -> anyhow::Result<()> {
        let state = &self.state;
        let succeeded = answer.status.is_some_and(|s| (200..300).contains(&s));
        let now = state.clock.now();
        let schedule = &state.settings.webhooks.retry_schedule_ms;
        let outcome = if succeeded {
            Outcome::Succeeded
        } else if let Some(wait) = schedule.get(self.claim.step as usize) {
            use rand::Rng;
            let jittered = (*wait as f64 * rand::thread_rng().gen_range(0.8..1.2)) as i64;
            Outcome::RetryAt(now_ms(state) + jittered)
        } else {
            Outcome::GaveUp
        };
        let label = match outcome {
            Outcome::Succeeded => WebhookDeliveryStatus::Succeeded.as_str(),
            Outcome::RetryAt(_) => "retrying",
            Outcome::GaveUp => "gave_up",
        };
        metrics::counter!("kassa_webhook_attempts_total", "outcome" => label).increment(1);
        if !succeeded {
            metrics::counter!("kassa_webhook_endpoint_failures_total", "endpoint" => self.endpoint.id.clone())
                .increment(1);
        }
        let mut tx = state.store.begin().await?;
        db::record_attempt(
            &mut tx,
            &AttemptRow {
                id: IdKind::WebhookAttempt.new_id(),
                delivery: self.claim.id.clone(),
                event: self.event.id.clone(),
                endpoint: self.endpoint.id.clone(),
                url: self.endpoint.url.clone(),
                succeeded: succeeded as i64,
                status_code: answer.status.map(i64::from),
                latency_ms,
                error: answer.error,
                response_body: answer.body,
                created: now,
            },
        )
        .await?;
        let current = db::finish(&mut tx, &self.claim.id, self.claim.claims, outcome, now).await?;
        if current && outcome == Outcome::GaveUp {
            let began = db::created_of(&mut tx, &self.claim.id).await?.unwrap_or(now);
            if !db::succeeded_since(&mut tx, &self.endpoint.id, began).await? {
                disable_failing(&mut tx, &self.endpoint.id, now).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Disables an endpoint that failed for the whole schedule and records the event.
async fn disable_failing(tx: &mut kassa_store::Tx, id: &str, now: i64) -> anyhow::Result<()> {
    let Some(mut row) = endpoints::get_for_update(tx, id).await? else { return Ok(()) };
    let Some((status, reason)) = transition(status_of(&row), EndpointInput::FailedWholeSchedule) else {
        return Ok(());
    };
    row.status = status.as_str().into();
    row.disabled_reason = reason.map(|r| r.as_str().into());
    row.updated = now;
    endpoints::update(tx, &row).await?;
    events::record(tx, DISABLED_EVENT, &row.id, &WebhookEndpoint::from_row(&row), now).await?;
    tracing::warn!(endpoint = %row.id, "webhook endpoint disabled: deliveries failed for the whole retry schedule");
    Ok(())
}

/// The delivered body: a Stripe-shaped event.
pub fn event_body(state: &AppState, event: &EventRow, endpoint: &EndpointRow, pending: i64) -> Vec<u8> {
    let data: serde_json::Value = serde_json::from_str(&event.data).unwrap_or(serde_json::Value::Null);
    let livemode = state.settings.processor.kind == crate::config::ProcessorKind::Stripe
        && state.settings.processor.stripe.secret_key.as_ref().is_some_and(|k| {
            use secrecy::ExposeSecret;
            k.expose_secret().contains("_live_")
        });
    let body = serde_json::json!({
        "id": event.id,
        "object": "event",
        "api_version": endpoint.api_version.clone().unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string()),
        "created": event.created,
        "type": event.kind,
        "data": { "object": data },
        "livemode": livemode,
        "pending_webhooks": pending,
        "request": { "id": null, "idempotency_key": null },
    });
    serde_json::to_vec(&body).expect("JSON values serialize")
}

/// A transport error, without the URL's query (it may carry a token of the merchant).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_redirect() {
        "redirected (redirects are not followed)"
    } else if e.is_body() || e.is_decode() {
        "the answer broke off"
    } else {
        "the request failed"
    };
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() { kind.to_string() } else { format!("{kind}: {detail}") }
}

/// Resolves names for deliveries and refuses private addresses (unless allowed), at connect
/// time: a name that resolved to a public address when the endpoint was saved and to an
/// internal one now does not reach the internal network.
struct GuardedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = addrs.into_iter().filter(|a| allow_private || !is_private(a.ip())).collect();
            if allowed.is_empty() {
                return Err("the host resolves to no public address (webhooks.allow_private_urls)".into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Middleware: a request that recorded events awaiting the fan-out (a transaction with such
/// events committed while it ran, counted by the store) wakes this server's dispatcher, so its
/// events go out at once; one that recorded none — or only events no enabled endpoint wants,
/// inserted already fanned out — costs the dispatcher no round. Other servers find them on their next
/// round.
pub async fn wake_after_write(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let write = req.method() != axum::http::Method::GET && req.method() != axum::http::Method::HEAD;
    let before = state.store.events_committed();
    let res = next.run(req).await;
    if write && state.store.events_committed() != before {
        state.jobs.wake(DELIVERY_JOB);
    }
    res
}

/// Deletes the delivery log past `webhooks.retention_days`, and reports the queue's depth.
pub async fn cleanup(state: &AppState) -> anyhow::Result<Round> {
    let now = state.clock.now();
    let before = now - state.settings.webhooks.retention_days as i64 * 86_400;
    let deleted = db::delete_older_than(&state.store, before).await?;
    if let Some(oldest) = db::oldest_pending_ms(state.store.reader()).await? {
        metrics::gauge!("kassa_webhook_oldest_pending_seconds").set(((now_ms(state) - oldest).max(0) as f64) / 1000.0);
    } else {
        metrics::gauge!("kassa_webhook_oldest_pending_seconds").set(0.0);
    }
    Ok(Round { done: deleted, ..Round::default() })
}
