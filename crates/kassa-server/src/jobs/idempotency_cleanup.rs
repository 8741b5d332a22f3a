//! Deletes idempotency keys older than the retention (24 h by default), in batches.

use crate::state::AppState;
use kassa_store::idempotency;

const BATCH: i64 = 1000;

pub async fn run(state: &AppState) -> anyhow::Result<()> {
    let cutoff = state.clock.now() - state.settings.jobs.idempotency_retention_hours as i64 * 3600;
    loop {
        let deleted = idempotency::delete_expired(&state.store, cutoff, BATCH).await?;
        if deleted < BATCH as u64 {
            return Ok(());
        }
    }
}
