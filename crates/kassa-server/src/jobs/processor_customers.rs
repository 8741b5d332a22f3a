//! Creates the processor customer of every Kassa customer that lacks one. The customer row
//! itself is the durable work item (`processor_customer IS NULL`), written in the customer's
//! creation transaction, so a crash right after that commit cannot leave it undone; the
//! committing request wakes this job so the processor customer usually exists before the
//! first payment asks for it. Payments that get there first wait for the same attempt
//! ([`customers::ensure_processor_customer`]).

use super::runner::Round;
use crate::services::customers;
use crate::state::AppState;

pub const NAME: &str = crate::wakeups::PROCESSOR_CUSTOMERS;
const BATCH: i64 = 50;

pub async fn round(state: &AppState) -> anyhow::Result<Round> {
    // The scan takes the leases (one statement); each claimed customer then costs the
    // processor call and the statement storing its id.
    let claimed = customers::claim_lacking_processor_customers(state, BATCH).await?;
    let ids: Vec<String> = claimed.iter().map(|c| c.id.clone()).collect();
    let attempts = claimed.into_iter().map(|c| customers::create_claimed_processor_customer(state, c));
    let failed = futures::future::join_all(attempts)
        .await
        .into_iter()
        .zip(&ids)
        .filter_map(|(r, id)| {
            r.err().map(|e| tracing::warn!(customer = %id, error = %e, "processor customer not created yet; retrying"))
        })
        .count();
    Ok(Round::of_batch(ids.len(), failed, BATCH))
}
