//! The event outbox: every state change appends its event in the transaction of the change.

use crate::sql::{self, Listed, Page};
use crate::{Result, Tx};
use kassa_domain::ids::IdKind;

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct EventRow {
    pub id: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub object_id: String,
    /// JSON of the object after the change.
    pub data: String,
    pub created: i64,
}

/// Appends an event; `data` is the object as the API shows it after the change.
pub async fn record<T: serde::Serialize>(
    tx: &mut Tx,
    kind: &str,
    object_id: &str,
    data: &T,
    now: i64,
) -> Result<String> {
    let id = IdKind::Event.new_id();
    sql::query("INSERT INTO events (id, type, object_id, data, created) VALUES ($1, $2, $3, $4, $5)")
        .bind(&id)
        .bind(kind)
        .bind(object_id)
        .bind(sql::to_json(data))
        .bind(now)
        .execute(tx.conn())
        .await?;
    Ok(id)
}

pub async fn get<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(db: E, id: &str) -> Result<Option<EventRow>> {
    Ok(sql::query_as("SELECT id, type, object_id, data, created FROM events WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?)
}

pub async fn list<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    db: E,
    kind: Option<&str>,
    object_id: Option<&str>,
    page: &Page,
) -> Result<Listed<EventRow>> {
    let mut filters = Vec::new();
    if let Some(k) = kind {
        filters.push(("type", k));
    }
    if let Some(o) = object_id {
        filters.push(("object_id", o));
    }
    sql::list_page(db, "SELECT id, type, object_id, data, created FROM events", &filters, page).await
}
