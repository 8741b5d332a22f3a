//! The dedupe record of processor events: inserted in the transaction of the event's
//! effects, so an event's effects happen at most once however often it is delivered.

use crate::Result;
use crate::sql;
use sqlx::{Any, Executor};

/// Records a delivery of the event, in one statement: inserted on its first delivery, its
/// `deliveries` counted up on any later one. Returns whether this was the first.
///
/// Run it in the transaction of the event's effects, so the record and the effects commit
/// together (a repeat then finds the record and does nothing), or on its own for an event
/// without effects.
pub async fn record<'e, E: Executor<'e, Database = Any>>(db: E, id: &str, kind: &str, now: i64) -> Result<bool> {
    let deliveries: i64 = sql::query_scalar(
        "INSERT INTO processor_events (id, type, received) VALUES ($1, $2, $3) \
         ON CONFLICT (id) DO UPDATE SET deliveries = processor_events.deliveries + 1 RETURNING deliveries",
    )
    .bind(id)
    .bind(kind)
    .bind(now)
    .fetch_one(db)
    .await?;
    Ok(deliveries == 1)
}

/// Whether the event was recorded (its effects are done): a read, to skip the processor
/// calls a repeat would make before [`record`] decides in the effects' transaction.
pub async fn seen<'e, E: Executor<'e, Database = Any>>(db: E, id: &str) -> Result<bool> {
    let found: Option<String> =
        sql::query_scalar("SELECT id FROM processor_events WHERE id = $1").bind(id).fetch_optional(db).await?;
    Ok(found.is_some())
}

/// Records a delivery of the event in one statement, but only when there is nothing to do
/// for it: it was recorded before (a repeat, counted as one more delivery), or the payment of
/// `payment_intent` is in `settled_status` already (what the event reports was recorded by the
/// pay call or an earlier event). Returns whether this was the first delivery when it recorded
/// it, `None` when neither holds (the caller applies the event, recording it with its
/// effects).
pub async fn record_if_nothing_to_do<'e, E: Executor<'e, Database = Any>>(
    db: E,
    id: &str,
    kind: &str,
    now: i64,
    payment_intent: &str,
    settled_status: Option<&str>,
) -> Result<Option<bool>> {
    let deliveries: Option<i64> = sql::query_scalar(
        "INSERT INTO processor_events (id, type, received) SELECT $1, $2, $3 \
         WHERE EXISTS (SELECT 1 FROM processor_events WHERE id = $1) \
         OR EXISTS (SELECT 1 FROM payments WHERE processor_payment_intent = $4 AND status = $5) \
         ON CONFLICT (id) DO UPDATE SET deliveries = processor_events.deliveries + 1 RETURNING deliveries",
    )
    .bind(id)
    .bind(kind)
    .bind(now)
    .bind(payment_intent)
    .bind(settled_status)
    .fetch_optional(db)
    .await?;
    Ok(deliveries.map(|d| d == 1))
}
