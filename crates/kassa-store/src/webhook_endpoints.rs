//! Webhook endpoints of the merchant. Secrets arrive sealed (the server crate seals them with
//! the configured key); this module only stores text.

use crate::sql::{self, Listed, Page};
use crate::{Result, Tx};
use sqlx::{Any, Executor};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct EndpointRow {
    pub id: String,
    pub url: String,
    pub description: Option<String>,
    /// JSON array of event types, or `["*"]`.
    pub enabled_events: String,
    pub api_version: Option<String>,
    pub status: String,
    pub disabled_reason: Option<String>,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_expires: Option<i64>,
    pub metadata: String,
    pub created: i64,
    pub updated: i64,
}

const COLUMNS: &str = "id, url, description, enabled_events, api_version, status, disabled_reason, secret, \
                       previous_secret, previous_secret_expires, metadata, created, updated";

/// Bumps `webhook_endpoints_version` (migration 0013) in the transaction of an endpoint's
/// change: servers' in-memory subscriptions read at an older version stop being used.
async fn bump_version(tx: &mut Tx) -> Result<()> {
    sql::query("UPDATE webhook_endpoints_version SET version = version + 1 WHERE id = 1").execute(tx.conn()).await?;
    Ok(())
}

/// The current `webhook_endpoints_version`.
pub async fn version<'e, E: Executor<'e, Database = Any>>(db: E) -> Result<i64> {
    Ok(sql::query_scalar("SELECT version FROM webhook_endpoints_version WHERE id = 1").fetch_one(db).await?)
}

pub async fn insert(tx: &mut Tx, e: &EndpointRow) -> Result<()> {
    bump_version(tx).await?;
    sql::query(&format!(
        "INSERT INTO webhook_endpoints ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    ))
    .bind(&e.id)
    .bind(&e.url)
    .bind(&e.description)
    .bind(&e.enabled_events)
    .bind(&e.api_version)
    .bind(&e.status)
    .bind(&e.disabled_reason)
    .bind(&e.secret)
    .bind(&e.previous_secret)
    .bind(e.previous_secret_expires)
    .bind(&e.metadata)
    .bind(e.created)
    .bind(e.updated)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Writes every column but `id` and `created`.
pub async fn update(tx: &mut Tx, e: &EndpointRow) -> Result<()> {
    bump_version(tx).await?;
    sql::query(
        "UPDATE webhook_endpoints SET url = $2, description = $3, enabled_events = $4, api_version = $5, \
         status = $6, disabled_reason = $7, secret = $8, previous_secret = $9, previous_secret_expires = $10, \
         metadata = $11, updated = $12 WHERE id = $1",
    )
    .bind(&e.id)
    .bind(&e.url)
    .bind(&e.description)
    .bind(&e.enabled_events)
    .bind(&e.api_version)
    .bind(&e.status)
    .bind(&e.disabled_reason)
    .bind(&e.secret)
    .bind(&e.previous_secret)
    .bind(e.previous_secret_expires)
    .bind(&e.metadata)
    .bind(e.updated)
    .execute(tx.conn())
    .await?;
    Ok(())
}

pub async fn get<'e, E: Executor<'e, Database = Any>>(db: E, id: &str) -> Result<Option<EndpointRow>> {
    Ok(sql::query_as(&format!("SELECT {COLUMNS} FROM webhook_endpoints WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?)
}

/// The endpoint, locked for the rest of the transaction (PostgreSQL; SQLite has one writer).
pub async fn get_for_update(tx: &mut Tx, id: &str) -> Result<Option<EndpointRow>> {
    let sql = format!("SELECT {COLUMNS} FROM webhook_endpoints WHERE id = $1{}", tx.for_update());
    Ok(sql::query_as(&sql).bind(id).fetch_optional(tx.conn()).await?)
}

/// Endpoints by id (any status).
pub async fn get_many<'e, E: Executor<'e, Database = Any>>(db: E, ids: &[String]) -> Result<Vec<EndpointRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT {COLUMNS} FROM webhook_endpoints WHERE id IN ({})", sql::placeholders(1, ids.len()));
    let mut q = sql::query_as(&sql);
    for id in ids {
        q = q.bind(id);
    }
    Ok(q.fetch_all(db).await?)
}

/// Every enabled endpoint (a merchant has a handful; Stripe allows 16).
pub async fn enabled<'e, E: Executor<'e, Database = Any>>(db: E) -> Result<Vec<EndpointRow>> {
    Ok(sql::query_as(&format!("SELECT {COLUMNS} FROM webhook_endpoints WHERE status = 'enabled' ORDER BY id"))
        .fetch_all(db)
        .await?)
}

pub async fn count<'e, E: Executor<'e, Database = Any>>(db: E) -> Result<i64> {
    Ok(sql::query_scalar("SELECT COUNT(*) FROM webhook_endpoints").fetch_one(db).await?)
}

pub async fn list<'e, E: Executor<'e, Database = Any>>(db: E, page: &Page) -> Result<Listed<EndpointRow>> {
    sql::list_page(db, &format!("SELECT {COLUMNS} FROM webhook_endpoints"), &[], page).await
}

/// Deletes the endpoint with its deliveries and their log.
pub async fn delete(tx: &mut Tx, id: &str) -> Result<bool> {
    bump_version(tx).await?;
    sql::query("DELETE FROM webhook_attempts WHERE endpoint = $1").bind(id).execute(tx.conn()).await?;
    sql::query("DELETE FROM webhook_deliveries WHERE endpoint = $1").bind(id).execute(tx.conn()).await?;
    let done = sql::query("DELETE FROM webhook_endpoints WHERE id = $1").bind(id).execute(tx.conn()).await?;
    Ok(done.rows_affected() > 0)
}
