//! Deliveries of events to webhook endpoints: the fan-out of new events, claims of due
//! deliveries, their outcomes and the log of attempts.
//!
//! Several servers may run the delivery job on one database: claims take rows with
//! `FOR UPDATE SKIP LOCKED` on PostgreSQL (SQLite has one writer) and push them past a lease
//! in the claiming statement; an outcome is written only by the claim that is still current
//! (`claims` fences a late one).

use crate::db::skip_locked;
use crate::sql::{self, Listed, Page};
use crate::{Result, Store, Tx};
use kassa_domain::ids::IdKind;
use sqlx::{Any, Executor};

/// An event not yet fanned out to deliveries.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct PendingEvent {
    pub id: String,
    #[sqlx(rename = "type")]
    pub kind: String,
}

/// Up to `limit` events recorded since the last fan-out, locked until the transaction ends
/// (skipped by another server's fan-out on PostgreSQL).
pub async fn pending_events(tx: &mut Tx, limit: i64) -> Result<Vec<PendingEvent>> {
    let sql = format!(
        "SELECT id, type FROM events WHERE webhooks_fanned_out_at IS NULL ORDER BY id LIMIT $1{}",
        skip_locked(tx.backend())
    );
    Ok(sql::query_as(&sql).bind(limit).fetch_all(tx.conn()).await?)
}

/// Whether any event awaits its fan-out.
pub async fn any_pending_event<'e, E: Executor<'e, Database = Any>>(db: E) -> Result<bool> {
    let id: Option<String> = sql::query_scalar("SELECT id FROM events WHERE webhooks_fanned_out_at IS NULL LIMIT 1")
        .fetch_optional(db)
        .await?;
    Ok(id.is_some())
}

/// Marks events fanned out.
pub async fn mark_fanned_out(tx: &mut Tx, ids: &[String], now: i64) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let sql =
        format!("UPDATE events SET webhooks_fanned_out_at = $1 WHERE id IN ({})", sql::placeholders(2, ids.len()));
    let mut q = sql::query(&sql).bind(now);
    for id in ids {
        q = q.bind(id);
    }
    q.execute(tx.conn()).await?;
    Ok(())
}

/// Creates the deliveries of `(event, endpoint)` pairs, due at `due_ms`; a pair that already
/// has its delivery keeps it.
pub async fn insert(tx: &mut Tx, pairs: &[(String, String)], now: i64, due_ms: i64) -> Result<()> {
    for chunk in pairs.chunks(100) {
        let mut sql = String::from(
            "INSERT INTO webhook_deliveries (id, event, endpoint, status, claims, step, next_attempt_ms, created, updated) VALUES ",
        );
        for i in 0..chunk.len() {
            let b = 3 + i * 3;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("(${b}, ${}, ${}, 'pending', 0, 0, $1, $2, $2)", b + 1, b + 2));
        }
        sql.push_str(" ON CONFLICT (event, endpoint) DO NOTHING");
        let mut q = sql::query(&sql).bind(due_ms).bind(now);
        for (event, endpoint) in chunk {
            q = q.bind(IdKind::WebhookDelivery.new_id()).bind(event.clone()).bind(endpoint.clone());
        }
        q.execute(tx.conn()).await?;
    }
    Ok(())
}

/// Makes the delivery of `event` to `endpoint` due now from the start of the schedule, creating
/// it if needed (a resend).
pub async fn resend(tx: &mut Tx, event: &str, endpoint: &str, now: i64, now_ms: i64) -> Result<()> {
    sql::query(
        "INSERT INTO webhook_deliveries (id, event, endpoint, status, claims, step, next_attempt_ms, created, updated) \
         VALUES ($1, $2, $3, 'pending', 0, 0, $4, $5, $5) ON CONFLICT (event, endpoint) DO UPDATE \
         SET status = 'pending', step = 0, next_attempt_ms = $4, updated = $5",
    )
    .bind(IdKind::WebhookDelivery.new_id())
    .bind(event)
    .bind(endpoint)
    .bind(now_ms)
    .bind(now)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// A delivery claimed for one attempt.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Claimed {
    pub id: String,
    pub event: String,
    pub endpoint: String,
    /// The claim's number: the outcome is written only while it is still the latest.
    pub claims: i64,
    /// Failed attempts since the schedule started (0 on the first attempt).
    pub step: i64,
}

/// Claims up to `limit` deliveries due at `now_ms`, none to the endpoints in `busy`, holding
/// them until `lease_until_ms`, in one statement.
pub async fn claim_due(
    store: &Store,
    now_ms: i64,
    lease_until_ms: i64,
    limit: i64,
    busy: &[String],
) -> Result<Vec<Claimed>> {
    let exclude = if busy.is_empty() {
        String::new()
    } else {
        format!(" AND endpoint NOT IN ({})", sql::placeholders(4, busy.len()))
    };
    let sql = format!(
        "UPDATE webhook_deliveries SET next_attempt_ms = $2, claims = claims + 1 WHERE id IN (\
            SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_ms <= $1{exclude} \
            ORDER BY next_attempt_ms LIMIT $3{}) \
         RETURNING id, event, endpoint, claims, step",
        skip_locked(store.backend())
    );
    let mut q = sql::query_as(&sql).bind(now_ms).bind(lease_until_ms).bind(limit);
    for b in busy {
        q = q.bind(b);
    }
    Ok(q.fetch_all(store.writer()).await?)
}

/// Gives claims back unattempted: due again at `now_ms`, for this server's next round or
/// another's. A claim a later one took over meanwhile is left alone (`claims` fences it).
pub async fn release(store: &Store, claims: &[(String, i64)], now_ms: i64) -> Result<()> {
    let pairs: Vec<String> =
        (0..claims.len()).map(|i| format!("(id = ${} AND claims = ${})", 2 * i + 2, 2 * i + 3)).collect();
    let sql = format!(
        "UPDATE webhook_deliveries SET next_attempt_ms = $1 WHERE status = 'pending' AND ({})",
        pairs.join(" OR ")
    );
    let mut q = sql::query(&sql).bind(now_ms);
    for (id, n) in claims {
        q = q.bind(id).bind(*n);
    }
    q.execute(store.writer()).await?;
    Ok(())
}

/// What became of an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// Failed; try again at this time (Unix milliseconds).
    RetryAt(i64),
    /// Failed, and the schedule is over.
    GaveUp,
}

/// Writes the outcome of claim `claims` of the delivery; false when a later claim took it over
/// (a lease that ran out) or a resend restarted it, and nothing was written.
pub async fn finish(tx: &mut Tx, id: &str, claims: i64, outcome: Outcome, now: i64) -> Result<bool> {
    let (status, next, step) = match outcome {
        Outcome::Succeeded => ("succeeded", None, "step"),
        Outcome::RetryAt(ms) => ("pending", Some(ms), "step + 1"),
        Outcome::GaveUp => ("failed", None, "step + 1"),
    };
    let done = sql::query(&format!(
        "UPDATE webhook_deliveries SET status = $3, next_attempt_ms = $4, step = {step}, updated = $5 \
         WHERE id = $1 AND claims = $2 AND status = 'pending'"
    ))
    .bind(id)
    .bind(claims)
    .bind(status)
    .bind(next)
    .bind(now)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deliveries of each of `events` still pending (the `pending_webhooks` of an event).
pub async fn pending_counts<'e, E: Executor<'e, Database = Any>>(
    db: E,
    events: &[String],
) -> Result<Vec<(String, i64)>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT event, COUNT(*) FROM webhook_deliveries WHERE status = 'pending' AND event IN ({}) GROUP BY event",
        sql::placeholders(1, events.len())
    );
    let mut q = sql::query_as(&sql);
    for e in events {
        q = q.bind(e);
    }
    Ok(q.fetch_all(db).await?)
}

/// Unix milliseconds of the oldest pending delivery's due time, if any (queue depth).
pub async fn oldest_pending_ms<'e, E: Executor<'e, Database = Any>>(db: E) -> Result<Option<i64>> {
    Ok(sql::query_scalar("SELECT MIN(next_attempt_ms) FROM webhook_deliveries WHERE status = 'pending'")
        .fetch_one(db)
        .await?)
}

/// One attempt, as the delivery log keeps it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct AttemptRow {
    pub id: String,
    pub delivery: String,
    pub event: String,
    pub endpoint: String,
    pub url: String,
    pub succeeded: i64,
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    pub error: Option<String>,
    pub response_body: Option<String>,
    pub created: i64,
}

const ATTEMPT_COLUMNS: &str =
    "id, delivery, event, endpoint, url, succeeded, status_code, latency_ms, error, response_body, created";

pub async fn record_attempt(tx: &mut Tx, a: &AttemptRow) -> Result<()> {
    sql::query(&format!(
        "INSERT INTO webhook_attempts ({ATTEMPT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ))
    .bind(&a.id)
    .bind(&a.delivery)
    .bind(&a.event)
    .bind(&a.endpoint)
    .bind(&a.url)
    .bind(a.succeeded)
    .bind(a.status_code)
    .bind(a.latency_ms)
    .bind(&a.error)
    .bind(&a.response_body)
    .bind(a.created)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Whether any attempt to `endpoint` succeeded at or after `since` (Unix seconds).
pub async fn succeeded_since(tx: &mut Tx, endpoint: &str, since: i64) -> Result<bool> {
    let n: i64 = sql::query_scalar(
        "SELECT COUNT(*) FROM webhook_attempts WHERE endpoint = $1 AND succeeded = 1 AND created >= $2",
    )
    .bind(endpoint)
    .bind(since)
    .fetch_one(tx.conn())
    .await?;
    Ok(n > 0)
}

/// When the delivery was created (Unix seconds).
pub async fn created_of(tx: &mut Tx, id: &str) -> Result<Option<i64>> {
    Ok(sql::query_scalar("SELECT created FROM webhook_deliveries WHERE id = $1")
        .bind(id)
        .fetch_optional(tx.conn())
        .await?)
}

/// The log of attempts, newest first: of one event or one endpoint, optionally failed ones only.
pub async fn list_attempts<'e, E: Executor<'e, Database = Any>>(
    db: E,
    event: Option<&str>,
    endpoint: Option<&str>,
    failed_only: bool,
    page: &Page,
) -> Result<Listed<AttemptRow>> {
    let mut select = format!("SELECT {ATTEMPT_COLUMNS} FROM webhook_attempts");
    if failed_only {
        select.push_str(" WHERE succeeded = 0");
    }
    let mut filters = Vec::new();
    if let Some(e) = event {
        filters.push(("event", e));
    }
    if let Some(e) = endpoint {
        filters.push(("endpoint", e));
    }
    sql::list_page(db, &select, &filters, page).await
}

/// Deletes attempts older than `before`, and finished deliveries last changed before it.
pub async fn delete_older_than(store: &Store, before: i64) -> Result<u64> {
    let a = sql::query("DELETE FROM webhook_attempts WHERE created < $1").bind(before).execute(store.writer()).await?;
    sql::query("DELETE FROM webhook_deliveries WHERE status <> 'pending' AND updated < $1")
        .bind(before)
        .execute(store.writer())
        .await?;
    Ok(a.rows_affected())
}

/// The stored events with these ids (for delivery bodies).
pub async fn events<'e, E: Executor<'e, Database = Any>>(
    db: E,
    ids: &[String],
) -> Result<Vec<crate::events::EventRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT id, type, object_id, data, created FROM events WHERE id IN ({})",
        sql::placeholders(1, ids.len())
    );
    let mut q = sql::query_as(&sql);
    for id in ids {
        q = q.bind(id);
    }
    Ok(q.fetch_all(db).await?)
}
