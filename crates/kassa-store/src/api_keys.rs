//! API keys, stored as SHA-256 hashes of the key (the key itself is shown once, at creation).

use crate::{Result, sql};
use sqlx::{Any, Executor};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub id: String,
    /// `secret` or `publishable`.
    pub kind: String,
    pub secret_hash: String,
    pub last4: String,
    pub name: Option<String>,
    pub created: i64,
    pub revoked_at: Option<i64>,
}

const COLUMNS: &str = "id, kind, secret_hash, last4, name, created, revoked_at";

pub async fn insert<'e, E: Executor<'e, Database = Any>>(db: E, key: &ApiKeyRow) -> Result<()> {
    sql::query(
        "INSERT INTO api_keys (id, kind, secret_hash, last4, name, created, revoked_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&key.id)
    .bind(&key.kind)
    .bind(&key.secret_hash)
    .bind(&key.last4)
    .bind(&key.name)
    .bind(key.created)
    .bind(key.revoked_at)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn find_by_hash<'e, E: Executor<'e, Database = Any>>(db: E, secret_hash: &str) -> Result<Option<ApiKeyRow>> {
    Ok(sql::query_as(&format!("SELECT {COLUMNS} FROM api_keys WHERE secret_hash = $1"))
        .bind(secret_hash)
        .fetch_optional(db)
        .await?)
}

pub async fn list<'e, E: Executor<'e, Database = Any>>(db: E) -> Result<Vec<ApiKeyRow>> {
    Ok(sql::query_as(&format!("SELECT {COLUMNS} FROM api_keys ORDER BY id")).fetch_all(db).await?)
}

/// Revokes a key; returns false when no such key is active.
pub async fn revoke<'e, E: Executor<'e, Database = Any>>(db: E, id: &str, now: i64) -> Result<bool> {
    let done = sql::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
        .bind(id)
        .bind(now)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}
