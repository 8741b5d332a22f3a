//! `kassa bench --webhooks`: Kassa's webhook deliveries under the bench's load. A receiver on
//! a loopback port of the bench's machine is registered as an endpoint for every event (the
//! server must accept loopback URLs: `webhooks.allow_private_urls`, on with `--demo`), answers
//! each delivery 200 at once and notes when each object's event arrived. The report:
//! deliveries per second during the measured window, and the delay from commit to delivery of
//! each operation's event (`order.created` of a checkout, `product.created` of `events`),
//! measured from the moment the client had the committing request's answer, which is just
//! after the commit, to the moment the receiver got the event.

use anyhow::{Context, bail};
use axum::body::Bytes;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the receiver saw.
#[derive(Default)]
struct Seen {
    /// When each delivery arrived (all of them, retries included).
    arrivals: Vec<Instant>,
    /// The first arrival of the event of each object, by the event's type and object id.
    first: HashMap<(String, String), Instant>,
}

pub struct Receiver {
    seen: Arc<Mutex<Seen>>,
    endpoint: String,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Starts the receiver and registers it at the server.
    pub async fn start(http: &reqwest::Client, url: &str, secret_key: &str) -> anyhow::Result<Receiver> {
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let noted = seen.clone();
        let app = axum::Router::new().fallback(move |body: Bytes| {
            let noted = noted.clone();
            async move {
                let at = Instant::now();
                let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let mut seen = noted.lock().unwrap_or_else(|e| e.into_inner());
                seen.arrivals.push(at);
                if let (Some(kind), Some(id)) = (event["type"].as_str(), event["data"]["object"]["id"].as_str()) {
                    seen.first.entry((kind.to_string(), id.to_string())).or_insert(at);
                }
                "ok"
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let own = format!("http://{}/bench-hooks", listener.local_addr()?);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let res = http
            .post(format!("{url}/admin/webhook-endpoints"))
            .bearer_auth(secret_key)
            .json(&json!({"url": own, "enabled_events": ["*"], "description": "kassa bench --webhooks"}))
            .send()
            .await
            .context("registering the bench's webhook receiver")?;
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            server.abort();
            bail!(
                "the server refused the bench's webhook endpoint ({status}): {} (it must accept loopback URLs: \
                 webhooks.allow_private_urls, on with --demo)",
                body["error"]["message"].as_str().unwrap_or("?")
            );
        }
        let endpoint = body["id"].as_str().unwrap_or_default().to_string();
        Ok(Receiver { seen, endpoint, server })
    }

    /// Waits (at most `drain`) for the events of `committed` — `(event type, object id, when
    /// the client had the answer)` — and prints deliveries per second in `[from, to)` and the
    /// delays; then deletes the endpoint.
    pub async fn report(
        self,
        http: &reqwest::Client,
        url: &str,
        secret_key: &str,
        committed: &[(String, String, Instant)],
        (from, to): (Instant, Instant),
        drain: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + drain;
        loop {
            let missing = {
                let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
                committed.iter().filter(|(k, id, _)| !seen.first.contains_key(&(k.clone(), id.clone()))).count()
            };
            if missing == 0 || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = http
            .delete(format!("{url}/admin/webhook-endpoints/{}", self.endpoint))
            .bearer_auth(secret_key)
            .send()
            .await;
        self.server.abort();
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let in_window = seen.arrivals.iter().filter(|t| **t >= from && **t < to).count();
        let secs = (to - from).as_secs_f64().max(0.001);
        let mut delays = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
        let mut missing = 0;
        for (kind, id, at) in committed {
            match seen.first.get(&(kind.clone(), id.clone())) {
                Some(arrived) => {
                    let _ = delays.record(arrived.saturating_duration_since(*at).as_micros().max(1) as u64);
                }
                None => missing += 1,
            }
        }
        println!(
            "webhooks      {} deliveries in the window: {:.1} deliveries/s ({} in all)",
            in_window,
            in_window as f64 / secs,
            seen.arrivals.len()
        );
        if !delays.is_empty() {
            println!(
                "              commit to delivery of {} operations' events: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                delays.len(),
                delays.value_at_quantile(0.50) as f64 / 1000.0,
                delays.value_at_quantile(0.99) as f64 / 1000.0,
                delays.max() as f64 / 1000.0
            );
        }
        if missing > 0 {
            println!(
                "              {missing} operations' events not delivered within {} s after the run",
                drain.as_secs()
            );
        }
        Ok(())
    }
}
