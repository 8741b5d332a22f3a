//! Subscriptions that bill, their invoices and test clocks: data access only. What is billed,
//! when, and which status follows is decided by the server's subscription service with the
//! lifecycles of `kassa_domain::lifecycle::{subscription, invoice}`.
//!
//! Exactly-once shapes: one first/renewal invoice per (subscription, period) by a unique index
//! (`insert_invoice` is `ON CONFLICT DO NOTHING`); due subscriptions are taken with
//! `FOR UPDATE SKIP LOCKED` on PostgreSQL; a payment attempt is claimed with a lease and its
//! outcome written only by the claim whose `attempt_count` is still current.

use crate::customers::{SUBSCRIPTION_COLUMNS, SubscriptionRow};
use crate::db::{Backend, Store};
use crate::sql::{self, Listed, Page};
use crate::{Result, Tx};
use sqlx::{Any, Executor};

/// A customer's time: its test clock's frozen time, or `now`.
const CLOCK_OF_CUSTOMER: &str = "(SELECT k.frozen_time FROM customers c JOIN test_clocks k ON k.id = c.test_clock \
     WHERE c.id = {customer})";

fn clock_of(customer_column: &str) -> String {
    CLOCK_OF_CUSTOMER.replace("{customer}", customer_column)
}

fn lock_rows(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    }
}

// ------------------------------------------------------------------ subscriptions

pub async fn get_subscription<'e, E: Executor<'e, Database = Any>>(db: E, id: &str) -> Result<Option<SubscriptionRow>> {
    Ok(sql::query_as(&format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?)
}

pub async fn lock_subscription(tx: &mut Tx, id: &str) -> Result<Option<SubscriptionRow>> {
    let sql = format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE id = $1{}", tx.for_update());
    Ok(sql::query_as(&sql).bind(id).fetch_optional(tx.conn()).await?)
}

pub async fn list_subscriptions<'e, E: Executor<'e, Database = Any>>(
    db: E,
    filters: &[(&str, &str)],
    page: &Page,
) -> Result<Listed<SubscriptionRow>> {
    sql::list_page(db, &format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions"), filters, page).await
}

/// Writes every mutable field of a subscription.
pub async fn update_subscription(tx: &mut Tx, row: &SubscriptionRow) -> Result<()> {
    sql::query(
        "UPDATE subscriptions SET price = $2, status = $3, current_period_start = $4, current_period_end = $5, \
         updated = $6, quantity = $7, billing_cycle_anchor = $8, cancel_at_period_end = $9, canceled_at = $10, \
         trial_end = $11, default_payment_method = $12, latest_invoice = $13, pending_price = $14, \
         pending_quantity = $15 WHERE id = $1",
    )
    .bind(&row.id)
    .bind(&row.price)
    .bind(&row.status)
    .bind(row.current_period_start)
    .bind(row.current_period_end)
    .bind(row.updated)
    .bind(row.quantity)
    .bind(row.billing_cycle_anchor)
    .bind(row.cancel_at_period_end)
    .bind(row.canceled_at)
    .bind(row.trial_end)
    .bind(&row.default_payment_method)
    .bind(&row.latest_invoice)
    .bind(&row.pending_price)
    .bind(row.pending_quantity)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// The two ways a row falls due by its customer's time, as `UNION ALL` branches each able to
/// use an index: customers without a test clock against `now` (a range of the due index), and
/// customers on a test clock against the clock's frozen time (few, found through the clock).
/// A correlated `COALESCE((SELECT frozen_time …), now)` instead would have to be evaluated
/// for every row, so the due index could not bound the scan (see docs/benchmarks.md,
/// "Renewals"). `due` is the condition on table alias `t` being due by `{time}`; each branch
/// is limited to `limit` rows ordered by `order`.
fn due_branches(table: &str, due: &str, order: &str, limit: &str, clock: Option<&str>) -> String {
    let on_clock = format!(
        "SELECT t.id, t.{order} AS due_at FROM test_clocks k JOIN customers c ON c.test_clock = k.id \
         JOIN {table} t ON t.customer = c.id WHERE {}{} ORDER BY t.{order} LIMIT {limit}",
        due.replace("{time}", "k.frozen_time"),
        clock.map(|p| format!(" AND k.id = {p}")).unwrap_or_default()
    );
    let real_time = format!(
        "SELECT t.id, t.{order} AS due_at FROM {table} t WHERE {} AND NOT EXISTS \
         (SELECT 1 FROM customers c WHERE c.id = t.customer AND c.test_clock IS NOT NULL) \
         ORDER BY t.{order} LIMIT {limit}",
        due.replace("{time}", "$1")
    );
    match clock {
        Some(_) => format!("SELECT id, due_at FROM ({on_clock}) AS on_clock"),
        None => format!(
            "SELECT id, due_at FROM ({real_time}) AS real_time UNION ALL SELECT id, due_at FROM ({on_clock}) AS on_clock"
        ),
    }
}

/// Up to `limit` subscriptions in one of `statuses` whose period has ended by their
/// customer's time (its test clock's, else `now`), earliest first; with `clock`, only the
/// customers on that test clock. Not locked: a caller locks them with
/// [`lock_due_subscriptions`] and checks each is still due.
///
/// The statuses are written into the statement as literals (they are the names of a status
/// enum, never input; anything but `[a-z_]` is left out), so that PostgreSQL and SQLite can
/// use the partial index `subscriptions_renewing_due` of migration 0021, which holds only the
/// subscriptions in the renewing statuses: a parameter would hide that the condition implies
/// the index's. Without it the due range would also walk every canceled subscription, whose
/// period end stays in the past for ever (docs/benchmarks.md, "Renewals").
pub async fn due_subscriptions<'e, E: Executor<'e, Database = Any>>(
    db: E,
    statuses: &[&str],
    now: i64,
    clock: Option<&str>,
    limit: i64,
) -> Result<Vec<String>> {
    let literals: Vec<String> = statuses
        .iter()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        .map(|s| format!("'{s}'"))
        .collect();
    debug_assert_eq!(literals.len(), statuses.len(), "status names are [a-z_]");
    let due = format!("t.status IN ({}) AND t.current_period_end <= {{time}}", literals.join(", "));
    let branches = due_branches("subscriptions", &due, "current_period_end", "$2", clock.map(|_| "$3"));
    let sql = format!("SELECT id FROM ({branches}) AS due ORDER BY due_at LIMIT $2");
    let mut q = sql::query_scalar::<String>(&sql).bind(now).bind(limit);
    if let Some(c) = clock {
        q = q.bind(c);
    }
    Ok(q.fetch_all(db).await?)
}

/// Up to `limit` subscriptions in `status` created at least `age` seconds before their
/// customer's time (its test clock's, else `now`), oldest first; with `clock`, only the
/// customers on that test clock. Not locked: a caller locks them with
/// [`lock_due_subscriptions`] and checks each is still in `status` and old enough. (The
/// expiry of `incomplete` subscriptions: few rows in that status at any time.)
pub async fn aged_subscriptions<'e, E: Executor<'e, Database = Any>>(
    db: E,
    status: &str,
    age: i64,
    now: i64,
    clock: Option<&str>,
    limit: i64,
) -> Result<Vec<String>> {
    // The status as a literal, as in `due_subscriptions`, for the partial index of migration
    // 0022 (`status = 'incomplete'`): it is an enum's name, never input.
    let literal = if status.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') { status } else { "" };
    debug_assert_eq!(literal, status, "status names are [a-z_]");
    let due = format!("t.status = '{literal}' AND t.created <= {{time}} - $3");
    let branches = due_branches("subscriptions", &due, "created", "$2", clock.map(|_| "$4"));
    let sql = format!("SELECT id FROM ({branches}) AS due ORDER BY due_at LIMIT $2");
    let mut q = sql::query_scalar::<String>(&sql).bind(now).bind(limit).bind(age);
    if let Some(c) = clock {
        q = q.bind(c);
    }
    Ok(q.fetch_all(db).await?)
}

/// A locked row with its customer's time (its test clock's frozen time; `None`: real time),
/// read in the same statement (one round trip less per renewal and per payment outcome).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct SubscriptionAt {
    #[sqlx(flatten)]
    pub row: SubscriptionRow,
    pub customer_time: Option<i64>,
}

/// Locks up to `limit` of the subscriptions `ids` for this transaction in one statement, each
/// with its customer's time, skipping those another server holds (`SKIP LOCKED` on PostgreSQL,
/// so two servers given the same candidates take different ones; SQLite has one writer).
/// The caller checks each is still due: another server may have renewed it meanwhile.
pub async fn lock_due_subscriptions(tx: &mut Tx, ids: &[String], limit: i64) -> Result<Vec<SubscriptionAt>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {SUBSCRIPTION_COLUMNS}, {} AS customer_time FROM subscriptions WHERE id IN ({}) \
         ORDER BY id LIMIT ${}{}",
        clock_of("subscriptions.customer"),
        sql::placeholders(1, ids.len()),
        ids.len() + 1,
        lock_rows(tx.backend())
    );
    let mut q = sql::query_as(&sql);
    for id in ids {
        q = q.bind(id);
    }
    Ok(q.bind(limit).fetch_all(tx.conn()).await?)
}

// ------------------------------------------------------------------ invoices

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct InvoiceRow {
    pub id: String,
    pub customer: String,
    pub subscription: Option<String>,
    pub status: String,
    pub billing_reason: String,
    pub currency: String,
    pub amount_due: i64,
    pub amount_paid: i64,
    pub attempt_count: i64,
    pub next_payment_attempt: Option<i64>,
    pub period_start: i64,
    pub period_end: i64,
    /// JSON array.
    pub lines: String,
    /// Credits granted when paid.
    pub credits: i64,
    pub payment_method: Option<String>,
    pub payment_intent: Option<String>,
    /// JSON of the last failure.
    pub last_payment_error: Option<String>,
    pub lease_until: Option<i64>,
    /// The hosted invoice page (with its secret); none on invoices made before it existed.
    pub hosted_invoice_url: Option<String>,
    pub paid_at: Option<i64>,
    pub created: i64,
    pub updated: i64,
}

const INVOICE_COLUMNS: &str = "id, customer, subscription, status, billing_reason, currency, amount_due, amount_paid, \
    attempt_count, next_payment_attempt, period_start, period_end, lines, credits, payment_method, payment_intent, \
    last_payment_error, lease_until, paid_at, created, updated, hosted_invoice_url";

/// Inserts an invoice; `false` when the subscription has its invoice for that period already.
pub async fn insert_invoice(tx: &mut Tx, r: &InvoiceRow) -> Result<bool> {
    let done = sql::query(&format!(
        "INSERT INTO invoices ({INVOICE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
         $14, $15, $16, $17, $18, $19, $20, $21, $22) ON CONFLICT DO NOTHING"
    ))
    .bind(&r.id)
    .bind(&r.customer)
    .bind(&r.subscription)
    .bind(&r.status)
    .bind(&r.billing_reason)
    .bind(&r.currency)
    .bind(r.amount_due)
    .bind(r.amount_paid)
    .bind(r.attempt_count)
    .bind(r.next_payment_attempt)
    .bind(r.period_start)
    .bind(r.period_end)
    .bind(&r.lines)
    .bind(r.credits)
    .bind(&r.payment_method)
    .bind(&r.payment_intent)
    .bind(&r.last_payment_error)
    .bind(r.lease_until)
    .bind(r.paid_at)
    .bind(r.created)
    .bind(r.updated)
    .bind(&r.hosted_invoice_url)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn get_invoice<'e, E: Executor<'e, Database = Any>>(db: E, id: &str) -> Result<Option<InvoiceRow>> {
    Ok(sql::query_as(&format!("SELECT {INVOICE_COLUMNS} FROM invoices WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?)
}

pub async fn lock_invoice(tx: &mut Tx, id: &str) -> Result<Option<InvoiceRow>> {
    let sql = format!("SELECT {INVOICE_COLUMNS} FROM invoices WHERE id = $1{}", tx.for_update());
    Ok(sql::query_as(&sql).bind(id).fetch_optional(tx.conn()).await?)
}

/// An invoice locked with its customer's time (see [`SubscriptionAt`]).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct InvoiceAt {
    #[sqlx(flatten)]
    pub row: InvoiceRow,
    pub customer_time: Option<i64>,
}

pub async fn lock_invoice_at(tx: &mut Tx, id: &str) -> Result<Option<InvoiceAt>> {
    let sql = format!(
        "SELECT {INVOICE_COLUMNS}, {} AS customer_time FROM invoices WHERE id = $1{}",
        clock_of("invoices.customer"),
        tx.for_update()
    );
    Ok(sql::query_as(&sql).bind(id).fetch_optional(tx.conn()).await?)
}

/// Who pays an invoice off-session, in one read: the customer's processor customer (if made)
/// and the saved payment methods to charge — the subscription's default, else the customer's.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct InvoicePayer {
    pub processor_customer: Option<String>,
    pub subscription_payment_method: Option<String>,
    pub customer_payment_method: Option<String>,
}

/// `None` when the customer does not exist.
pub async fn invoice_payer<'e, E: Executor<'e, Database = Any>>(
    db: E,
    customer: &str,
    subscription: Option<&str>,
) -> Result<Option<InvoicePayer>> {
    Ok(sql::query_as(
        "SELECT c.processor_customer, s.default_payment_method AS subscription_payment_method, \
         c.default_payment_method AS customer_payment_method \
         FROM customers c LEFT JOIN subscriptions s ON s.id = $2 AND s.customer = c.id WHERE c.id = $1",
    )
    .bind(customer)
    .bind(subscription)
    .fetch_optional(db)
    .await?)
}

pub async fn list_invoices<'e, E: Executor<'e, Database = Any>>(
    db: E,
    filters: &[(&str, &str)],
    page: &Page,
) -> Result<Listed<InvoiceRow>> {
    sql::list_page(db, &format!("SELECT {INVOICE_COLUMNS} FROM invoices"), filters, page).await
}

/// Writes every mutable field of an invoice and ends its claim.
pub async fn update_invoice(tx: &mut Tx, r: &InvoiceRow) -> Result<()> {
    sql::query(
        "UPDATE invoices SET status = $2, amount_paid = $3, attempt_count = $4, next_payment_attempt = $5, \
         payment_method = $6, payment_intent = $7, last_payment_error = $8, lease_until = NULL, paid_at = $9, \
         updated = $10 WHERE id = $1",
    )
    .bind(&r.id)
    .bind(&r.status)
    .bind(r.amount_paid)
    .bind(r.attempt_count)
    .bind(r.next_payment_attempt)
    .bind(&r.payment_method)
    .bind(&r.payment_intent)
    .bind(&r.last_payment_error)
    .bind(r.paid_at)
    .bind(r.updated)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Claims up to `limit` invoices in `status` whose next attempt is due by their customer's
/// time (test clock, else `now`) and that no live claim holds, holding them until
/// `lease_until` (both leases in the server's time `now`). With `clock`, only its customers.
pub async fn claim_due_invoices(
    store: &Store,
    status: &str,
    now: i64,
    lease_until: i64,
    clock: Option<&str>,
    limit: i64,
) -> Result<Vec<InvoiceRow>> {
    let due = "t.status = $3 AND t.next_payment_attempt <= {time} AND (t.lease_until IS NULL OR t.lease_until < $1)";
    let branches = due_branches("invoices", due, "next_payment_attempt", "$4", clock.map(|_| "$5"));
    // The lease condition again where the rows are locked: PostgreSQL re-checks it there on
    // a row another server claimed and committed meanwhile.
    let sql = format!(
        "UPDATE invoices SET lease_until = $2 WHERE id IN (\
            SELECT id FROM invoices WHERE id IN (SELECT id FROM ({branches}) AS due) \
            AND (lease_until IS NULL OR lease_until < $1) ORDER BY next_payment_attempt LIMIT $4{}) \
         RETURNING {INVOICE_COLUMNS}",
        lock_rows(store.backend())
    );
    let mut q = sql::query_as(&sql).bind(now).bind(lease_until).bind(status).bind(limit);
    if let Some(c) = clock {
        q = q.bind(c);
    }
    Ok(q.fetch_all(store.writer()).await?)
}

/// Claims one open invoice's payment attempt (the customer paying on its page) until
/// `lease_until`, unless a claim holds it or one ended without an outcome (`lease_until` set:
/// only the job finishes that attempt, with its key). `None` when not claimable.
pub async fn claim_invoice(store: &Store, id: &str, status: &str, lease_until: i64) -> Result<Option<InvoiceRow>> {
    let sql = format!(
        "UPDATE invoices SET lease_until = $2 WHERE id = $1 AND status = $3 AND lease_until IS NULL \
         RETURNING {INVOICE_COLUMNS}"
    );
    Ok(sql::query_as(&sql).bind(id).bind(lease_until).bind(status).fetch_optional(store.writer()).await?)
}

/// Writes the PaymentIntent a claimed attempt is about to confirm, before it is confirmed, so
/// that a crash after the charge leaves it findable. Only while the claim (`lease_until`) and
/// its attempt are current and the invoice in `status` (open); `false` when the claim was lost.
pub async fn set_attempt_payment_intent<'e, E: Executor<'e, Database = Any>>(
    db: E,
    id: &str,
    attempt_count: i64,
    lease_until: i64,
    status: &str,
    payment_intent: &str,
) -> Result<bool> {
    let done = sql::query(
        "UPDATE invoices SET payment_intent = $5 WHERE id = $1 AND attempt_count = $2 AND lease_until = $3 \
         AND status = $4",
    )
    .bind(id)
    .bind(attempt_count)
    .bind(lease_until)
    .bind(status)
    .bind(payment_intent)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// When an open invoice's next payment attempt is due (its claim, if any, is kept).
pub async fn set_next_payment_attempt(tx: &mut Tx, id: &str, at: i64) -> Result<()> {
    sql::query("UPDATE invoices SET next_payment_attempt = $2 WHERE id = $1")
        .bind(id)
        .bind(at)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// Gives a claim back without an outcome (the processor could not be reached).
pub async fn release_invoice<'e, E: Executor<'e, Database = Any>>(db: E, id: &str, attempt_count: i64) -> Result<()> {
    sql::query("UPDATE invoices SET lease_until = NULL WHERE id = $1 AND attempt_count = $2")
        .bind(id)
        .bind(attempt_count)
        .execute(db)
        .await?;
    Ok(())
}

// ------------------------------------------------------------------ test clocks

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct TestClockRow {
    pub id: String,
    pub name: Option<String>,
    pub frozen_time: i64,
    pub status: String,
    pub created: i64,
    pub updated: i64,
}

const CLOCK_COLUMNS: &str = "id, name, frozen_time, status, created, updated";

pub async fn insert_test_clock(tx: &mut Tx, r: &TestClockRow) -> Result<()> {
    sql::query(&format!("INSERT INTO test_clocks ({CLOCK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"))
        .bind(&r.id)
        .bind(&r.name)
        .bind(r.frozen_time)
        .bind(&r.status)
        .bind(r.created)
        .bind(r.updated)
        .execute(tx.conn())
        .await?;
    Ok(())
}

pub async fn get_test_clock<'e, E: Executor<'e, Database = Any>>(db: E, id: &str) -> Result<Option<TestClockRow>> {
    Ok(sql::query_as(&format!("SELECT {CLOCK_COLUMNS} FROM test_clocks WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?)
}

pub async fn lock_test_clock(tx: &mut Tx, id: &str) -> Result<Option<TestClockRow>> {
    let sql = format!("SELECT {CLOCK_COLUMNS} FROM test_clocks WHERE id = $1{}", tx.for_update());
    Ok(sql::query_as(&sql).bind(id).fetch_optional(tx.conn()).await?)
}

pub async fn update_test_clock(tx: &mut Tx, r: &TestClockRow) -> Result<()> {
    sql::query("UPDATE test_clocks SET frozen_time = $2, status = $3, updated = $4 WHERE id = $1")
        .bind(&r.id)
        .bind(r.frozen_time)
        .bind(&r.status)
        .bind(r.updated)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// The time a customer lives at: its test clock's frozen time, else `None` (real time).
pub async fn customer_time<'e, E: Executor<'e, Database = Any>>(db: E, customer: &str) -> Result<Option<i64>> {
    Ok(sql::query_scalar::<Option<i64>>(&format!("SELECT {}", clock_of("$1"))).bind(customer).fetch_one(db).await?)
}

pub async fn set_customer_test_clock(tx: &mut Tx, customer: &str, clock: &str) -> Result<()> {
    sql::query("UPDATE customers SET test_clock = $2 WHERE id = $1")
        .bind(customer)
        .bind(clock)
        .execute(tx.conn())
        .await?;
    Ok(())
}

pub async fn set_default_payment_method(tx: &mut Tx, customer: &str, pm: Option<&str>, now: i64) -> Result<()> {
    sql::query("UPDATE customers SET default_payment_method = $2, updated = $3 WHERE id = $1")
        .bind(customer)
        .bind(pm)
        .bind(now)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// Credits a paid period grants, by price.
pub async fn credits_per_period<'e, E: Executor<'e, Database = Any>>(db: E, price: &str) -> Result<i64> {
    Ok(sql::query_scalar::<i64>("SELECT credits_per_period FROM prices WHERE id = $1")
        .bind(price)
        .fetch_optional(db)
        .await?
        .unwrap_or(0))
}

/// The earliest moment work falls due for the customers on `clock`: a period end of a
/// subscription in one of `statuses`, the next attempt of an invoice in `invoice_status`, or
/// the moment a subscription in `aging.0` becomes `aging.1` seconds old (see
/// [`aged_subscriptions`]).
pub async fn next_due_on_clock<'e, E: Executor<'e, Database = Any>>(
    db: E,
    clock: &str,
    statuses: &[&str],
    invoice_status: &str,
    aging: (&str, i64),
) -> Result<Option<i64>> {
    let status_list = sql::placeholders(5, statuses.len());
    let sql = format!(
        "SELECT MIN(t) FROM (\
            SELECT MIN(current_period_end) AS t FROM subscriptions WHERE status IN ({status_list}) \
              AND customer IN (SELECT id FROM customers WHERE test_clock = $1) \
            UNION ALL \
            SELECT MIN(next_payment_attempt) AS t FROM invoices WHERE status = $2 \
              AND next_payment_attempt IS NOT NULL \
              AND customer IN (SELECT id FROM customers WHERE test_clock = $1) \
            UNION ALL \
            SELECT MIN(created) + $4 AS t FROM subscriptions WHERE status = $3 \
              AND customer IN (SELECT id FROM customers WHERE test_clock = $1)) AS due"
    );
    let mut q = sql::query_scalar::<Option<i64>>(&sql).bind(clock).bind(invoice_status).bind(aging.0).bind(aging.1);
    for s in statuses {
        q = q.bind(*s);
    }
    Ok(q.fetch_one(db).await?)
}
