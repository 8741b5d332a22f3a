//! The built-in test processor's own background work: delivering its webhook events (to
//! `/webhooks/stripe` of this server unless configured otherwise) and its housekeeping
//! (expiring checkout sessions, forgetting old idempotency keys and events).

use crate::state::AppState;
use anyhow::Context;
use kassa_processors::test::TestProcessor;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Rounds of delivery one tick may run while full batches keep coming.
const MAX_ROUNDS_PER_TICK: usize = 10;

pub fn spawn(set: &mut JoinSet<()>, state: &AppState, tp: &Arc<TestProcessor>, shutdown: watch::Receiver<bool>) {
    let every = Duration::from_millis(state.settings.processor.test.delivery_interval_ms.max(1));
    let http = reqwest::Client::new();
    let (deliver_state, deliver_tp) = (state.clone(), tp.clone());
    set.spawn(super::periodic("test_processor_delivery", every, shutdown.clone(), move || {
        let (state, tp, http) = (deliver_state.clone(), deliver_tp.clone(), http.clone());
        async move { deliver(&state, &tp, &http).await }
    }));
    let tp = tp.clone();
    let every = Duration::from_millis(state.settings.jobs.interval_ms.max(1));
    set.spawn(super::periodic("test_processor_housekeeping", every, shutdown, move || {
        let tp = tp.clone();
        async move {
            tp.housekeeping().await?;
            Ok(())
        }
    }));
}

async fn deliver(state: &AppState, tp: &TestProcessor, http: &reqwest::Client) -> anyhow::Result<()> {
    let settings = &state.settings.processor.test;
    let url = settings.webhook_url.as_deref().context("the test processor's webhook URL is resolved at start")?;
    for _ in 0..MAX_ROUNDS_PER_TICK {
        let stats = tp.deliver_due(http, url, settings.chaos).await?;
        if (stats.claimed as i64) < tp.config().delivery_batch {
            break;
        }
    }
    Ok(())
}
