//! The built-in test processor's tables (`tp_*`): its objects, its idempotency keys and its
//! webhook events with their delivery state.
//!
//! Writes come in as few statements as possible, because the single-shot pay path (one
//! PaymentIntent created and confirmed) runs through here on every checkout: one multi-row
//! upsert for every object a call changed, one multi-row insert for its events.

use kassa_store::db::{Backend, skip_locked};
use kassa_store::sql::{self, placeholders};
use kassa_store::{Result, Store, StoreError, Tx};
use sqlx::{Any, Executor};

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ObjectRow {
    pub id: String,
    /// `payment_intent`, `charge`, `refund`, `customer`, `payment_method`,
    /// `confirmation_token`, `checkout_session`.
    pub kind: String,
    pub customer: Option<String>,
    pub parent: Option<String>,
    /// The object as Stripe's JSON.
    pub data: String,
    pub created: i64,
    pub updated: i64,
    pub due_at: Option<i64>,
}

const OBJECT_COLUMNS: &str = "id, kind, customer, parent, data, created, updated, due_at";

/// Loads the objects with these ids and, with `children`, the objects hanging off them
/// (`parent` in `ids`), ordered by id. With `lock` the rows are locked for the rest of the
/// transaction (in id order, so two transactions never wait for each other crosswise).
pub async fn load(tx: &mut Tx, ids: &[&str], children: bool, lock: bool) -> Result<Vec<ObjectRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let list = placeholders(1, ids.len());
    let mut sql = format!("SELECT {OBJECT_COLUMNS} FROM tp_objects WHERE id IN ({list})");
    if children {
        sql.push_str(&format!(" OR parent IN ({list})"));
    }
    sql.push_str(" ORDER BY id");
    if lock {
        sql.push_str(tx.for_update());
    }
    let mut q = sql::query_as::<ObjectRow>(&sql);
    for id in ids {
        q = q.bind(*id);
    }
    Ok(q.fetch_all(tx.conn()).await?)
}

/// Reads an object and its children without a transaction.
pub async fn read_with_children<'e, E: Executor<'e, Database = Any>>(db: E, id: &str) -> Result<Vec<ObjectRow>> {
    Ok(sql::query_as(&format!("SELECT {OBJECT_COLUMNS} FROM tp_objects WHERE id = $1 OR parent = $1 ORDER BY id"))
        .bind(id)
        .fetch_all(db)
        .await?)
}

/// The objects of one kind that belong to a customer, oldest first.
pub async fn list_by_customer<'e, E: Executor<'e, Database = Any>>(
    db: E,
    customer: &str,
    kind: &str,
) -> Result<Vec<ObjectRow>> {
    Ok(sql::query_as(&format!("SELECT {OBJECT_COLUMNS} FROM tp_objects WHERE customer = $1 AND kind = $2 ORDER BY id"))
        .bind(customer)
        .bind(kind)
        .fetch_all(db)
        .await?)
}

/// Up to `limit` objects of `kind`, newest first (ids are time-ordered), after the id
/// `starting_after` when given; then, in a second statement, their children.
pub async fn list_newest_with_children(
    store: &Store,
    kind: &str,
    starting_after: Option<&str>,
    limit: i64,
) -> Result<(Vec<ObjectRow>, Vec<ObjectRow>)> {
    let db = store.reader();
    let rows: Vec<ObjectRow> = match starting_after {
        Some(after) => {
            sql::query_as(&format!(
                "SELECT {OBJECT_COLUMNS} FROM tp_objects WHERE kind = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
            ))
            .bind(kind)
            .bind(after)
            .bind(limit)
            .fetch_all(db)
            .await?
        }
        None => {
            sql::query_as(&format!("SELECT {OBJECT_COLUMNS} FROM tp_objects WHERE kind = $1 ORDER BY id DESC LIMIT $2"))
                .bind(kind)
                .bind(limit)
                .fetch_all(db)
                .await?
        }
    };
    if rows.is_empty() {
        return Ok((rows, Vec::new()));
    }
    let sql = format!(
        "SELECT {OBJECT_COLUMNS} FROM tp_objects WHERE parent IN ({}) ORDER BY id",
        placeholders(1, rows.len())
    );
    let mut q = sql::query_as::<ObjectRow>(&sql);
    for r in &rows {
        q = q.bind(&r.id);
    }
    let children = q.fetch_all(db).await?;
    Ok((rows, children))
}

/// Inserts or replaces objects, all in one statement. `created` of an existing row stays.
pub async fn upsert<'e, E: Executor<'e, Database = Any>>(db: E, rows: &[ObjectRow]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let values: Vec<String> = (0..rows.len()).map(|i| format!("({})", placeholders(i * 8 + 1, 8))).collect();
    let sql = format!(
        "INSERT INTO tp_objects ({OBJECT_COLUMNS}) VALUES {} ON CONFLICT (id) DO UPDATE SET \
         customer = excluded.customer, parent = excluded.parent, data = excluded.data, \
         updated = excluded.updated, due_at = excluded.due_at",
        values.join(", ")
    );
    let mut q = sql::query(&sql);
    for r in rows {
        q = q
            .bind(&r.id)
            .bind(&r.kind)
            .bind(&r.customer)
            .bind(&r.parent)
            .bind(&r.data)
            .bind(r.created)
            .bind(r.updated)
            .bind(r.due_at);
    }
    q.execute(db).await?;
    Ok(())
}

/// Whether any object of `kind` is due: a plain read, so that a sweep with nothing to do
/// never opens a write transaction.
pub async fn any_due<'e, E: Executor<'e, Database = Any>>(db: E, kind: &str, now: i64) -> Result<bool> {
    let found: Option<String> =
        sql::query_scalar("SELECT id FROM tp_objects WHERE kind = $1 AND due_at IS NOT NULL AND due_at <= $2 LIMIT 1")
            .bind(kind)
            .bind(now)
            .fetch_optional(db)
            .await?;
    Ok(found.is_some())
}

/// Up to `limit` ids of objects of `kind` whose `due_at` has come, skipping rows another
/// server holds (PostgreSQL); the caller locks and handles each in its own transaction.
pub async fn due(tx: &mut Tx, kind: &str, now: i64, limit: i64) -> Result<Vec<String>> {
    let sql = format!(
        "SELECT id FROM tp_objects WHERE kind = $1 AND due_at IS NOT NULL AND due_at <= $2 \
         ORDER BY due_at LIMIT $3{}",
        skip_locked(tx.backend())
    );
    Ok(sql::query_scalar(&sql).bind(kind).bind(now).bind(limit).fetch_all(tx.conn()).await?)
}

// ---------------------------------------------------------------- idempotency

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct IdempotencyRow {
    pub key: String,
    pub fingerprint: String,
    /// The stored result, JSON.
    pub response: String,
    pub created: i64,
}

pub async fn get_idempotency<'e, E: Executor<'e, Database = Any>>(db: E, key: &str) -> Result<Option<IdempotencyRow>> {
    Ok(sql::query_as("SELECT key, fingerprint, response, created FROM tp_idempotency WHERE key = $1")
        .bind(key)
        .fetch_optional(db)
        .await?)
}

/// Stores a key's result. A key that is there already (a concurrent call with the same key
/// committed first) is [`StoreError::Constraint`].
pub async fn insert_idempotency(tx: &mut Tx, key: &str, fingerprint: &str, response: &str, now: i64) -> Result<()> {
    sql::query("INSERT INTO tp_idempotency (key, fingerprint, response, created) VALUES ($1, $2, $3, $4)")
        .bind(key)
        .bind(fingerprint)
        .bind(response)
        .bind(now)
        .execute(tx.conn())
        .await
        .map_err(StoreError::from_sqlx)?;
    Ok(())
}

/// Forgets up to `limit` keys created before `before` (Stripe keeps keys 24 hours).
pub async fn delete_idempotency_before(store: &Store, before: i64, limit: i64) -> Result<u64> {
    let sql = match store.backend() {
        Backend::Postgres => format!(
            "DELETE FROM tp_idempotency WHERE key IN (SELECT key FROM tp_idempotency WHERE created < $1 LIMIT $2{})",
            skip_locked(Backend::Postgres)
        ),
        Backend::Sqlite => "DELETE FROM tp_idempotency WHERE key IN \
                            (SELECT key FROM tp_idempotency WHERE created < $1 LIMIT $2)"
            .to_string(),
    };
    Ok(sql::query(&sql).bind(before).bind(limit).execute(store.writer()).await?.rows_affected())
}

// ---------------------------------------------------------------- events

#[derive(Clone, Debug)]
pub struct NewEvent {
    pub id: String,
    pub kind: String,
    /// The body to deliver.
    pub data: String,
    pub created: i64,
    /// Milliseconds; the first delivery is due then.
    pub next_attempt_at: i64,
}

/// Records events, all in one statement.
pub async fn insert_events(tx: &mut Tx, events: &[NewEvent]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let values: Vec<String> = (0..events.len()).map(|i| format!("({})", placeholders(i * 5 + 1, 5))).collect();
    let sql = format!("INSERT INTO tp_events (id, type, data, created, next_attempt_at) VALUES {}", values.join(", "));
    let mut q = sql::query(&sql);
    for e in events {
        q = q.bind(&e.id).bind(&e.kind).bind(&e.data).bind(e.created).bind(e.next_attempt_at);
    }
    q.execute(tx.conn()).await?;
    Ok(())
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct EventRow {
    pub id: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub data: String,
    pub created: i64,
    pub delivered_at: Option<i64>,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub claimed_until: Option<i64>,
}

const EVENT_COLUMNS: &str = "id, type, data, created, delivered_at, attempts, next_attempt_at, claimed_until";

/// Every event, oldest first (for tests and inspection).
pub async fn list_events<'e, E: Executor<'e, Database = Any>>(db: E) -> Result<Vec<EventRow>> {
    Ok(sql::query_as(&format!("SELECT {EVENT_COLUMNS} FROM tp_events ORDER BY id")).fetch_all(db).await?)
}

/// Claims up to `limit` undelivered events that are due at `now_ms` and not held by another
/// server, holding them until `lease_until_ms`, in one statement. Several servers may call
/// this at once: PostgreSQL skips rows another claim has locked, SQLite has one writer.
pub async fn claim_due_events(store: &Store, now_ms: i64, lease_until_ms: i64, limit: i64) -> Result<Vec<EventRow>> {
    let sql = format!(
        "UPDATE tp_events SET claimed_until = $2, attempts = attempts + 1 WHERE id IN (\
            SELECT id FROM tp_events WHERE delivered_at IS NULL AND next_attempt_at <= $1 \
            AND (claimed_until IS NULL OR claimed_until <= $1) \
            ORDER BY next_attempt_at, id LIMIT $3{}) \
         RETURNING {EVENT_COLUMNS}",
        skip_locked(store.backend())
    );
    let mut rows: Vec<EventRow> =
        sql::query_as(&sql).bind(now_ms).bind(lease_until_ms).bind(limit).fetch_all(store.writer()).await?;
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(rows)
}

/// Marks acknowledged events delivered and lets go of their claim.
pub async fn mark_delivered(store: &Store, ids: &[&str], now: i64) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "UPDATE tp_events SET delivered_at = $1, claimed_until = NULL WHERE id IN ({})",
        placeholders(2, ids.len())
    );
    let mut q = sql::query(&sql).bind(now);
    for id in ids {
        q = q.bind(*id);
    }
    q.execute(store.writer()).await?;
    Ok(())
}

/// Lets go of an event that was not acknowledged; it is due again at `next_attempt_at_ms`.
/// `counted` false takes back the attempt its claim counted (the event was held back on
/// purpose, not tried).
pub async fn reschedule(store: &Store, id: &str, next_attempt_at_ms: i64, counted: bool) -> Result<()> {
    sql::query(
        "UPDATE tp_events SET claimed_until = NULL, next_attempt_at = $2, \
         attempts = attempts - CASE WHEN $3 THEN 0 ELSE 1 END \
         WHERE id = $1 AND delivered_at IS NULL",
    )
    .bind(id)
    .bind(next_attempt_at_ms)
    .bind(counted)
    .execute(store.writer())
    .await?;
    Ok(())
}

/// Forgets up to `limit` events delivered before `before`.
pub async fn delete_delivered_before(store: &Store, before: i64, limit: i64) -> Result<u64> {
    let sql = format!(
        "DELETE FROM tp_events WHERE id IN (SELECT id FROM tp_events WHERE delivered_at IS NOT NULL \
         AND delivered_at < $1 LIMIT $2{})",
        skip_locked(store.backend())
    );
    Ok(sql::query(&sql).bind(before).bind(limit).execute(store.writer()).await?.rows_affected())
}
