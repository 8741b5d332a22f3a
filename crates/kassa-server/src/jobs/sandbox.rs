//! The built-in test processor's (`kassa-sandbox`) background work on this server's job runner:
//! delivering its webhook events (to `/webhooks/stripe` of this server unless configured
//! otherwise) and its housekeeping (expiring checkout sessions, forgetting old idempotency keys
//! and events). The rounds are the sandbox's ([`TestProcessor::deliver_due`],
//! [`TestProcessor::housekeeping`]); this module only schedules them.

use super::runner::{Job, Round, job};
use crate::state::AppState;
use anyhow::Context;
use kassa_sandbox::TestProcessor;
use std::sync::Arc;
use std::time::Duration;

pub fn jobs(state: &AppState, tp: &Arc<TestProcessor>) -> Vec<Arc<dyn Job>> {
    let every = Duration::from_millis(state.settings.processor.test.delivery_interval_ms.max(1));
    let http = reqwest::Client::new();
    let deliver_tp = tp.clone();
    let delivery = job("test_processor_delivery", every, move |state| {
        let (tp, http) = (deliver_tp.clone(), http.clone());
        Box::pin(async move { deliver(state, &tp, &http).await })
    });
    let tp = tp.clone();
    let every = Duration::from_millis(state.settings.jobs.interval_ms.max(1));
    let housekeeping = job("test_processor_housekeeping", every, move |_| {
        let tp = tp.clone();
        Box::pin(async move {
            tp.housekeeping().await?;
            Ok(Round::default())
        })
    });
    vec![delivery, housekeeping]
}

/// One batch of due deliveries; the runner asks for the next at once while batches are full.
async fn deliver(state: &AppState, tp: &TestProcessor, http: &reqwest::Client) -> anyhow::Result<Round> {
    let settings = &state.settings.processor.test;
    let url = settings.webhook_url.as_deref().context("the test processor's webhook URL is resolved at start")?;
    let stats = tp.deliver_due(http, url, settings.chaos).await?;
    Ok(Round { done: stats.delivered as u64, failed: stats.failed as u64, more: tp.batch_was_full(&stats) })
}
