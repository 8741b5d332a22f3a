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

/// Appends an event; `data` is the object as the API shows it after the change. It is written
/// when the transaction commits, with the transaction's other events.
pub async fn record<T: serde::Serialize>(
    tx: &mut Tx,
    kind: &str,
    object_id: &str,
    data: &T,
    now: i64,
) -> Result<String> {
    defer(tx, kind, object_id, data, now, false)
}

/// Appends an event that the webhook fan-out skips (inserted already marked fanned out): for
/// an event whose deliveries the caller makes itself, in the same transaction.
pub async fn record_fanned_out<T: serde::Serialize>(
    tx: &mut Tx,
    kind: &str,
    object_id: &str,
    data: &T,
    now: i64,
) -> Result<String> {
    defer(tx, kind, object_id, data, now, true)
}

fn defer<T: serde::Serialize>(
    tx: &mut Tx,
    kind: &str,
    object_id: &str,
    data: &T,
    now: i64,
    fanned_out: bool,
) -> Result<String> {
    let id = IdKind::Event.new_id();
    let data = serde_json::to_value(data)?;
    tx.record_outcome(Outcome::of(&id, kind, object_id, &data));
    tx.defer_event(Pending {
        id: id.clone(),
        kind: kind.into(),
        object_id: object_id.into(),
        data: sql::to_json(&data),
        created: now,
        fanned_out,
    });
    Ok(id)
}

/// An event recorded in a transaction and not inserted yet (see [`insert_all`]).
pub(crate) struct Pending {
    id: String,
    kind: String,
    object_id: String,
    data: String,
    created: i64,
    /// Inserted already marked fanned out (see [`record_fanned_out`]).
    fanned_out: bool,
}

impl Pending {
    pub(crate) fn kind(&self) -> &str {
        &self.kind
    }

    /// Whether the webhook fan-out is to consider this event.
    pub(crate) fn for_fan_out(&self) -> bool {
        !self.fanned_out
    }
}

/// Inserts the events a transaction recorded, in one statement, just before it commits.
/// Returns whether any of them awaits the webhook fan-out.
///
/// `unwanted_at`: the `webhook_endpoints_version` at which this server's copy of the
/// subscriptions says no enabled endpoint wants these events. The statement then marks them
/// fanned out if the counter, read in it (`FOR SHARE` on PostgreSQL), still has that value —
/// see `webhook_subscriptions` for why no endpoint is missed. `share_lock`: the clause that
/// locks the counter's row (` FOR SHARE` on PostgreSQL, nothing on SQLite).
pub(crate) async fn insert_all(
    conn: &mut sqlx::AnyConnection,
    share_lock: &str,
    events: &[Pending],
    unwanted_at: Option<i64>,
) -> Result<bool> {
    if events.is_empty() {
        return Ok(false);
    }
    if unwanted_at.is_none() && !events.iter().any(|e| e.fanned_out) {
        let values: Vec<String> = (0..events.len()).map(|i| format!("({})", sql::placeholders(i * 5 + 1, 5))).collect();
        let statement = format!("INSERT INTO events (id, type, object_id, data, created) VALUES {}", values.join(", "));
        let mut q = sql::query(&statement);
        for e in events {
            q = q.bind(&e.id).bind(&e.kind).bind(&e.object_id).bind(&e.data).bind(e.created);
        }
        q.execute(conn).await?;
        return Ok(true);
    }
    // `$1` is the version when there is one; each event's five values follow.
    let first = if unwanted_at.is_some() { 2 } else { 1 };
    let values: Vec<String> = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let b = first + i * 5;
            let fanned_out = match (e.fanned_out, unwanted_at) {
                (true, _) => format!("${}", b + 4),
                (false, Some(_)) => format!("CASE WHEN (SELECT version FROM v) = $1 THEN ${} END", b + 4),
                (false, None) => "NULL".into(),
            };
            format!("({}, {fanned_out})", sql::placeholders(b, 5))
        })
        .collect();
    let with = match unwanted_at {
        Some(_) => format!("WITH v AS (SELECT version FROM webhook_endpoints_version WHERE id = 1{share_lock}) "),
        None => String::new(),
    };
    let statement = format!(
        "{with}INSERT INTO events (id, type, object_id, data, created, webhooks_fanned_out_at) VALUES {} \
         RETURNING webhooks_fanned_out_at",
        values.join(", ")
    );
    let mut q = sql::query_scalar::<Option<i64>>(&statement);
    if let Some(version) = unwanted_at {
        q = q.bind(version);
    }
    for e in events {
        q = q.bind(&e.id).bind(&e.kind).bind(&e.object_id).bind(&e.data).bind(e.created);
    }
    let marked = q.fetch_all(conn).await?;
    Ok(marked.iter().any(Option::is_none))
}

/// What the log says about a committed event: its type, object and the few fields an
/// operator looks for (amount, currency, status, decline code). Named fields only, so no
/// secret, email or card data of the object can reach the log.
#[derive(Clone, Debug)]
pub struct Outcome {
    event: String,
    kind: String,
    object: String,
    amount: Option<i64>,
    currency: Option<String>,
    status: Option<String>,
    failure_code: Option<String>,
    decline_code: Option<String>,
}

impl Outcome {
    fn of(event: &str, kind: &str, object: &str, data: &serde_json::Value) -> Outcome {
        let text = |field: &str| data.get(field).and_then(|v| v.as_str()).map(str::to_owned);
        let amount = ["total", "amount", "credits"].iter().find_map(|f| data.get(*f).and_then(|v| v.as_i64()));
        Outcome {
            event: event.into(),
            kind: kind.into(),
            object: object.into(),
            amount,
            currency: text("currency"),
            status: text("status"),
            failure_code: text("failure_code"),
            decline_code: text("decline_code"),
        }
    }

    /// Logs the outcome and counts it: every event by type, and payments by outcome and
    /// decline code (`kassa_payments_total{status="failed", decline_code="insufficient_funds"}`).
    pub(crate) fn log(&self) {
        metrics::counter!("kassa_events_total", "type" => self.kind.clone()).increment(1);
        if let Some(status) = self.kind.strip_prefix("payment.") {
            let decline = self.decline_code.clone().unwrap_or_default();
            metrics::counter!("kassa_payments_total", "status" => status.to_string(), "decline_code" => decline)
                .increment(1);
        }
        tracing::info!(
            target: "kassa::outcome",
            event = %self.event,
            object = %self.object,
            amount = self.amount,
            currency = self.currency.as_deref(),
            status = self.status.as_deref(),
            failure_code = self.failure_code.as_deref(),
            decline_code = self.decline_code.as_deref(),
            "{} {}",
            self.kind,
            self.object
        );
    }
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
