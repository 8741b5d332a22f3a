//! The built-in test processor's tables (`tp_*`): its objects, its idempotency keys and its
//! webhook events with their delivery state.
//!
//! Round trips are what a checkout pays for here (the single-shot pay path, one PaymentIntent
//! created and confirmed, runs through this on every checkout), so a processor call costs at
//! most one read per step of its logic and then ONE write statement, no `BEGIN`/`COMMIT`:
//! [`load`] reads the objects (and, the first time, the call's idempotency key) without a
//! lock, and [`apply`] writes everything the call did — its stored result under the key, the
//! objects it changed and the events it recorded (the delivery outbox) — only if none of the
//! objects it read changed meanwhile (each row's `version`). When one did, nothing is written
//! and the call runs again on fresh reads: optimistic concurrency, as safe as the row locks it
//! replaces, and one statement on both dialects — a data-modifying CTE on PostgreSQL, an
//! `INSERT` into a view whose `INSTEAD OF` trigger does the writes on SQLite (which has no
//! data-modifying CTEs). Either way the statement is atomic: all of it or none.

use kassa_store::db::{Backend, skip_locked};
use kassa_store::sql::{self, placeholders};
use kassa_store::{Result, Store};
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
    /// Counted up by every write of the row: what [`apply`] checks a read row against.
    pub version: i64,
}

const OBJECT_COLUMNS: &str = "id, kind, customer, parent, data, created, updated, due_at, version";

/// The `kind` of the row [`load`] returns for the stored result of an idempotency key (no
/// object is of this kind).
const IDEMPOTENCY_ROW: &str = "_idempotency";

/// Loads the objects with these ids and, with `children`, the objects hanging off them
/// (`parent` in `ids`), ordered by id; with `idempotency_key`, in the same statement, the
/// stored result of that key. A plain read: [`apply`] checks later that nothing read changed.
pub async fn load(
    store: &Store,
    ids: &[&str],
    children: bool,
    idempotency_key: Option<&str>,
) -> Result<(Vec<ObjectRow>, Option<IdempotencyRow>)> {
    if ids.is_empty() && idempotency_key.is_none() {
        return Ok((Vec::new(), None));
    }
    let list = placeholders(1, ids.len().max(1));
    let mut sql = format!("SELECT {OBJECT_COLUMNS} FROM tp_objects WHERE id IN ({list})");
    if children {
        sql.push_str(&format!(" OR parent IN ({list})"));
    }
    if idempotency_key.is_some() {
        // The key's row shaped as an object row: key, fingerprint and response in id,
        // customer and data.
        sql.push_str(&format!(
            " UNION ALL SELECT key, '{IDEMPOTENCY_ROW}', fingerprint, NULL, response, created, created, NULL, 0 \
             FROM tp_idempotency WHERE key = ${}",
            ids.len().max(1) + 1
        ));
    }
    sql.push_str(" ORDER BY id");
    let mut q = sql::query_as::<ObjectRow>(&sql);
    if ids.is_empty() {
        // `IN ()` is no SQL: an id no object has.
        q = q.bind("");
    }
    for id in ids {
        q = q.bind(*id);
    }
    if let Some(key) = idempotency_key {
        q = q.bind(key);
    }
    let mut rows: Vec<ObjectRow> = q.fetch_all(store.reader()).await?;
    let kept = rows.iter().position(|r| r.kind == IDEMPOTENCY_ROW).map(|i| rows.remove(i)).map(|r| IdempotencyRow {
        key: r.id,
        fingerprint: r.customer.unwrap_or_default(),
        response: r.data,
        created: r.created,
    });
    Ok((rows, kept))
}

/// An object row as [`apply`] writes it.
#[derive(serde::Serialize)]
pub struct WriteRow<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub customer: Option<&'a str>,
    pub parent: Option<&'a str>,
    pub data: &'a str,
    pub created: i64,
    pub updated: i64,
    pub due_at: Option<i64>,
}

impl<'a> From<&'a ObjectRow> for WriteRow<'a> {
    fn from(r: &'a ObjectRow) -> Self {
        WriteRow {
            id: &r.id,
            kind: &r.kind,
            customer: r.customer.as_deref(),
            parent: r.parent.as_deref(),
            data: &r.data,
            created: r.created,
            updated: r.updated,
            due_at: r.due_at,
        }
    }
}

/// An object a call read, at the version it read.
#[derive(serde::Serialize)]
pub struct Guard<'a> {
    pub id: &'a str,
    pub version: i64,
}

/// A key's stored result.
#[derive(serde::Serialize)]
pub struct KeptRow<'a> {
    pub key: &'a str,
    pub fingerprint: &'a str,
    pub response: &'a str,
    pub created: i64,
}

/// Everything one processor call writes, as the single JSON parameter of [`apply`].
#[derive(serde::Serialize)]
pub struct Writes<'a> {
    /// Written only if every one of these objects is still at this version.
    pub guards: Vec<Guard<'a>>,
    /// Zero or one stored result (an array, so that both dialects iterate it the same way).
    pub idempotency: Vec<KeptRow<'a>>,
    pub objects: Vec<WriteRow<'a>>,
    pub events: &'a [NewEvent],
}

/// What [`apply`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Everything is written.
    Written,
    /// An object read was changed by another call since: nothing is written.
    Conflict,
    /// Another call stored a result under the key first: nothing is written.
    KeyTaken,
}

/// The SQLite trigger's messages (see the migration `1010`), which abort its statement.
const SQLITE_CONFLICT: &str = "tp_conflict";
const SQLITE_KEY_TAKEN: &str = "tp_idempotency_taken";

/// The PostgreSQL statement of [`apply`]: locks the guarded rows (in id order), checks their
/// versions, stores the key's result unless another call did, and only if both hold upserts
/// the objects (counting their versions up) and inserts the events.
const APPLY_POSTGRES: &str = "\
WITH doc AS (SELECT $1::jsonb AS d),
guard AS (SELECT g->>'id' AS id, (g->>'version')::bigint AS version FROM doc, jsonb_array_elements(d->'guards') g),
locked AS (
    SELECT id, version FROM tp_objects WHERE id = ANY (ARRAY(SELECT id FROM guard)) ORDER BY id FOR UPDATE
),
ok AS (SELECT (SELECT count(*) FROM locked JOIN guard USING (id, version)) = (SELECT count(*) FROM guard) AS ok),
kept AS (
    INSERT INTO tp_idempotency (key, fingerprint, response, created)
    SELECT i->>'key', i->>'fingerprint', i->>'response', (i->>'created')::bigint
    FROM doc, jsonb_array_elements(d->'idempotency') i WHERE (SELECT ok FROM ok)
    ON CONFLICT (key) DO NOTHING RETURNING key
),
go AS (
    SELECT (SELECT ok FROM ok)
       AND (SELECT count(*) FROM kept) = (SELECT jsonb_array_length(d->'idempotency') FROM doc) AS go
),
objects AS (
    INSERT INTO tp_objects (id, kind, customer, parent, data, created, updated, due_at)
    SELECT r.id, r.kind, r.customer, r.parent, r.data, r.created, r.updated, r.due_at
    FROM doc, jsonb_to_recordset(d->'objects')
        AS r(id text, kind text, customer text, parent text, data text, created bigint, updated bigint, due_at bigint)
    WHERE (SELECT go FROM go)
    ON CONFLICT (id) DO UPDATE SET customer = excluded.customer, parent = excluded.parent, data = excluded.data,
        updated = excluded.updated, due_at = excluded.due_at, version = tp_objects.version + 1
    RETURNING id
),
events AS (
    INSERT INTO tp_events (id, type, data, created, next_attempt_at)
    SELECT e.id, e.kind, e.data, e.created, e.next_attempt_at
    FROM doc, jsonb_to_recordset(d->'events') AS e(id text, kind text, data text, created bigint, next_attempt_at bigint)
    WHERE (SELECT go FROM go)
    RETURNING id
)
SELECT CASE WHEN NOT (SELECT ok FROM ok) THEN 'conflict' WHEN NOT (SELECT go FROM go) THEN 'key_taken'
    ELSE 'written' END";

/// Writes what one processor call did, in one statement (see the module's documentation).
pub async fn apply(store: &Store, writes: &Writes<'_>) -> Result<Applied> {
    let doc = serde_json::to_string(writes)?;
    match store.backend() {
        Backend::Postgres => {
            let outcome: String = sql::query_scalar(APPLY_POSTGRES).bind(doc).fetch_one(store.writer()).await?;
            Ok(match outcome.as_str() {
                "conflict" => Applied::Conflict,
                "key_taken" => Applied::KeyTaken,
                _ => Applied::Written,
            })
        }
        Backend::Sqlite => {
            match sql::query("INSERT INTO tp_writes (doc) VALUES ($1)").bind(doc).execute(store.writer()).await {
                Ok(_) => Ok(Applied::Written),
                Err(sqlx::Error::Database(e)) if e.message().contains(SQLITE_CONFLICT) => Ok(Applied::Conflict),
                Err(sqlx::Error::Database(e)) if e.message().contains(SQLITE_KEY_TAKEN) => Ok(Applied::KeyTaken),
                Err(e) => Err(e.into()),
            }
        }
    }
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

/// Inserts new objects, all in one statement (without a transaction: nothing else changes).
pub async fn insert<'e, E: Executor<'e, Database = Any>>(db: E, rows: &[ObjectRow]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let values: Vec<String> = (0..rows.len()).map(|i| format!("({})", placeholders(i * 8 + 1, 8))).collect();
    let sql = format!(
        "INSERT INTO tp_objects (id, kind, customer, parent, data, created, updated, due_at) VALUES {}",
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

/// Up to `limit` ids of objects of `kind` whose `due_at` has come, the most overdue first. A
/// plain read: the caller's write checks that each is still as read (another server may be
/// handling the same ones).
pub async fn due<'e, E: Executor<'e, Database = Any>>(db: E, kind: &str, now: i64, limit: i64) -> Result<Vec<String>> {
    Ok(sql::query_scalar(
        "SELECT id FROM tp_objects WHERE kind = $1 AND due_at IS NOT NULL AND due_at <= $2 ORDER BY due_at LIMIT $3",
    )
    .bind(kind)
    .bind(now)
    .bind(limit)
    .fetch_all(db)
    .await?)
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

#[derive(Clone, Debug, serde::Serialize)]
pub struct NewEvent {
    pub id: String,
    pub kind: String,
    /// The body to deliver.
    pub data: String,
    pub created: i64,
    /// Milliseconds; the first delivery is due then.
    pub next_attempt_at: i64,
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

/// What became of a claimed event in a delivery round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    /// Acknowledged: delivered now.
    Delivered,
    /// Not acknowledged: due again then (milliseconds); its attempt counts.
    Retry { at_ms: i64 },
    /// Held back on purpose (chaos) until then, not tried: its claim's attempt is taken back.
    Deferred { at_ms: i64 },
}

/// Ends a delivery round in one statement: lets go of the claims of `events`, marking each
/// delivered or due again. An event some other round marked delivered meanwhile stays as it is.
pub async fn settle(store: &Store, events: &[(&str, Settled)], now: i64) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    // (id, delivered, next attempt, attempts to take back); VALUES columns are `column1`… on
    // both dialects.
    let values: Vec<String> = (0..events.len()).map(|i| format!("({})", placeholders(i * 4 + 2, 4))).collect();
    let sql = format!(
        "UPDATE tp_events SET claimed_until = NULL, \
         delivered_at = CASE WHEN v.column2 = 1 THEN $1 ELSE NULL END, \
         next_attempt_at = CASE WHEN v.column2 = 1 THEN tp_events.next_attempt_at ELSE v.column3 END, \
         attempts = tp_events.attempts - v.column4 \
         FROM (VALUES {}) AS v WHERE tp_events.id = v.column1 AND tp_events.delivered_at IS NULL",
        values.join(", ")
    );
    let mut q = sql::query(&sql).bind(now);
    for (id, settled) in events {
        let (delivered, next, undo): (i64, i64, i64) = match *settled {
            Settled::Delivered => (1, 0, 0),
            Settled::Retry { at_ms } => (0, at_ms, 0),
            Settled::Deferred { at_ms } => (0, at_ms, 1),
        };
        q = q.bind(*id).bind(delivered).bind(next).bind(undo);
    }
    q.execute(store.writer()).await?;
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
