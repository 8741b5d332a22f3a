//! Idempotency keys (Stripe semantics): a row per (scope, key) with the request's
//! fingerprint, a lock while the first request runs, and the stored response afterwards.

use crate::db::{Backend, skip_locked};
use crate::{Result, Store, Tx, sql};
use sqlx::{Any, Executor};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct IdempotencyRow {
    pub scope: String,
    pub key: String,
    pub fingerprint: String,
    /// Set while a request holds the key; NULL once its response is stored.
    pub locked_until: Option<i64>,
    pub response_status: Option<i64>,
    pub response_body: Option<String>,
    pub created: i64,
}

pub enum Claim {
    /// This request holds the key and must run.
    Claimed,
    /// The key was there already.
    Existing(IdempotencyRow),
}

const COLUMNS: &str = "scope, key, fingerprint, locked_until, response_status, response_body, created";

/// Inserts the key locked until `locked_until`, or returns the row that is there.
pub async fn claim(
    tx: &mut Tx,
    scope: &str,
    key: &str,
    fingerprint: &str,
    now: i64,
    locked_until: i64,
) -> Result<Claim> {
    let inserted = sql::query(
        "INSERT INTO idempotency_keys (scope, key, fingerprint, locked_until, created) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scope, key) DO NOTHING",
    )
    .bind(scope)
    .bind(key)
    .bind(fingerprint)
    .bind(locked_until)
    .bind(now)
    .execute(tx.conn())
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(Claim::Claimed);
    }
    let row = sql::query_as(&format!("SELECT {COLUMNS} FROM idempotency_keys WHERE scope = $1 AND key = $2"))
        .bind(scope)
        .bind(key)
        .fetch_one(tx.conn())
        .await?;
    Ok(Claim::Existing(row))
}

/// Takes over a key whose holder died (its lock expired before it stored a response).
/// Returns whether this call now holds it.
pub async fn take_over(tx: &mut Tx, scope: &str, key: &str, now: i64, locked_until: i64) -> Result<bool> {
    let done = sql::query(
        "UPDATE idempotency_keys SET locked_until = $3 \
         WHERE scope = $1 AND key = $2 AND response_status IS NULL AND locked_until < $4",
    )
    .bind(scope)
    .bind(key)
    .bind(locked_until)
    .bind(now)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Stores the response of the request that holds the key.
pub async fn complete<'e, E: Executor<'e, Database = Any>>(
    db: E,
    scope: &str,
    key: &str,
    status: u16,
    body: &str,
) -> Result<()> {
    sql::query(
        "UPDATE idempotency_keys SET response_status = $3, response_body = $4, locked_until = NULL \
         WHERE scope = $1 AND key = $2",
    )
    .bind(scope)
    .bind(key)
    .bind(status as i64)
    .bind(body)
    .execute(db)
    .await?;
    Ok(())
}

/// Forgets a key whose request did nothing (rolled back), so that a retry runs afresh.
pub async fn release<'e, E: Executor<'e, Database = Any>>(db: E, scope: &str, key: &str) -> Result<()> {
    sql::query("DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND response_status IS NULL")
        .bind(scope)
        .bind(key)
        .execute(db)
        .await?;
    Ok(())
}

/// Deletes up to `limit` keys created before `before`; safe to run on several servers at once
/// (each batch skips rows another server is deleting). Returns how many it deleted.
pub async fn delete_expired(store: &Store, before: i64, limit: i64) -> Result<u64> {
    let sql = match store.backend() {
        Backend::Postgres => format!(
            "DELETE FROM idempotency_keys WHERE (scope, key) IN (\
               SELECT scope, key FROM idempotency_keys WHERE (created < $1 AND locked_until IS NULL) \
               OR created < $1 - 86400 LIMIT $2{})",
            skip_locked(Backend::Postgres)
        ),
        Backend::Sqlite => "DELETE FROM idempotency_keys WHERE rowid IN (\
               SELECT rowid FROM idempotency_keys WHERE (created < $1 AND locked_until IS NULL) \
               OR created < $1 - 86400 LIMIT $2)"
            .to_string(),
    };
    let done = sql::query(&sql).bind(before).bind(limit).execute(store.writer()).await?;
    Ok(done.rows_affected())
}
