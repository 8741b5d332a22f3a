//! Small named values the server keeps for itself (for example the test processor's
//! webhook secret), created once and shared by every server on the database.

use crate::{Result, sql};
use sqlx::{Any, Executor};

pub async fn get<'e, E: Executor<'e, Database = Any>>(db: E, name: &str) -> Result<Option<String>> {
    Ok(sql::query_scalar("SELECT value FROM settings WHERE name = $1").bind(name).fetch_optional(db).await?)
}

/// Stores `value` under `name` unless a value is there; returns whether this call stored it.
pub async fn insert_if_absent<'e, E: Executor<'e, Database = Any>>(db: E, name: &str, value: &str) -> Result<bool> {
    let done = sql::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .bind(value)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}
