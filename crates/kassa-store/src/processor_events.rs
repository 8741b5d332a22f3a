//! The dedupe record of processor events: inserted in the transaction of the event's
//! effects, so an event's effects happen at most once however often it is delivered.

use crate::sql;
use crate::{Result, Tx};
use sqlx::{Any, Executor};

/// Records the event; false when it was recorded before (its effects are done).
pub async fn record(tx: &mut Tx, id: &str, kind: &str, now: i64) -> Result<bool> {
    let done =
        sql::query("INSERT INTO processor_events (id, type, received) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(id)
            .bind(kind)
            .bind(now)
            .execute(tx.conn())
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Records an event without effects, outside any transaction; a repeat counts a delivery.
pub async fn remember<'e, E: Executor<'e, Database = Any>>(db: E, id: &str, kind: &str, now: i64) -> Result<()> {
    sql::query(
        "INSERT INTO processor_events (id, type, received) VALUES ($1, $2, $3) \
         ON CONFLICT (id) DO UPDATE SET deliveries = processor_events.deliveries + 1",
    )
    .bind(id)
    .bind(kind)
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn seen<'e, E: Executor<'e, Database = Any>>(db: E, id: &str) -> Result<bool> {
    let found: Option<String> =
        sql::query_scalar("SELECT id FROM processor_events WHERE id = $1").bind(id).fetch_optional(db).await?;
    Ok(found.is_some())
}

/// Counts another delivery of an event that was handled already.
pub async fn count_duplicate<'e, E: Executor<'e, Database = Any>>(db: E, id: &str) -> Result<()> {
    sql::query("UPDATE processor_events SET deliveries = deliveries + 1 WHERE id = $1").bind(id).execute(db).await?;
    Ok(())
}
