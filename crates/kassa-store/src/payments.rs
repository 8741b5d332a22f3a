//! Payments: one row per attempt to take money for a cart (or a credit top-up).

use crate::db::skip_locked;
use crate::sql::{self, Listed, Page};
use crate::{Result, Store, Tx};
use kassa_domain::lifecycle::payment::{Failure, PaymentState, PaymentStatus, Purpose, VoidReason};
use sqlx::{Any, Executor};

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct PaymentRow {
    pub id: String,
    #[sqlx(try_from = "String")]
    pub purpose: Purpose,
    pub cart: Option<String>,
    pub cart_version: Option<i64>,
    pub attempt: i64,
    pub checkout_session: Option<String>,
    pub customer: String,
    pub amount: i64,
    pub currency: String,
    pub processor: String,
    pub processor_payment_intent: Option<String>,
    pub source: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: PaymentStatus,
    pub amount_capturable: i64,
    pub amount_captured: i64,
    pub amount_refunded: i64,
    pub failure_code: Option<String>,
    pub decline_code: Option<String>,
    pub failure_message: Option<String>,
    pub next_action_url: Option<String>,
    pub void_reason: Option<String>,
    /// A processor call about this payment is in flight until then (Unix seconds).
    pub lease_until: Option<i64>,
    /// For a duplicate charge (`void_reason` `duplicate_charge`): the payment whose
    /// `kassa_payment_id` it carries.
    pub duplicate_of: Option<String>,
    pub created: i64,
    pub updated: i64,
}

impl PaymentRow {
    /// A new payment whose outcome is not known yet.
    pub fn pending(
        purpose: Purpose,
        customer: &str,
        amount: i64,
        currency: &str,
        processor: &str,
        now: i64,
    ) -> PaymentRow {
        PaymentRow {
            id: kassa_domain::ids::IdKind::Payment.new_id(),
            purpose,
            cart: None,
            cart_version: None,
            attempt: 1,
            checkout_session: None,
            customer: customer.into(),
            amount,
            currency: currency.into(),
            processor: processor.into(),
            processor_payment_intent: None,
            source: None,
            status: PaymentStatus::Pending,
            amount_capturable: 0,
            amount_captured: 0,
            amount_refunded: 0,
            failure_code: None,
            decline_code: None,
            failure_message: None,
            next_action_url: None,
            void_reason: None,
            lease_until: None,
            duplicate_of: None,
            created: now,
            updated: now,
        }
    }
}

impl PaymentRow {
    /// The part of the payment its state machine decides.
    pub fn state(&self) -> PaymentState {
        PaymentState {
            status: self.status,
            amount_capturable: self.amount_capturable,
            amount_captured: self.amount_captured,
            amount_refunded: self.amount_refunded,
            failure: self.failure_code.as_ref().map(|code| Failure {
                code: code.clone(),
                decline_code: self.decline_code.clone(),
                message: self.failure_message.clone(),
            }),
            next_action_url: self.next_action_url.clone(),
            void_reason: self.void_reason.as_deref().and_then(VoidReason::parse),
        }
    }

    /// Takes over what the state machine decided (to be written with [`save`]).
    pub fn set_state(&mut self, s: &PaymentState) {
        self.status = s.status;
        self.amount_capturable = s.amount_capturable;
        self.amount_captured = s.amount_captured;
        self.amount_refunded = s.amount_refunded;
        self.failure_code = s.failure.as_ref().map(|f| f.code.clone());
        self.decline_code = s.failure.as_ref().and_then(|f| f.decline_code.clone());
        self.failure_message = s.failure.as_ref().and_then(|f| f.message.clone());
        self.next_action_url = s.next_action_url.clone();
        // A reason no version of the machine knows is kept as written.
        if let Some(r) = s.void_reason {
            self.void_reason = Some(r.as_str().to_string());
        }
    }
}

const COLUMNS: &str = "id, purpose, cart, cart_version, attempt, checkout_session, customer, amount, currency, \
    processor, processor_payment_intent, source, status, amount_capturable, amount_captured, amount_refunded, \
    failure_code, decline_code, failure_message, next_action_url, void_reason, lease_until, duplicate_of, created, \
    updated";

pub async fn insert(tx: &mut Tx, p: &PaymentRow) -> Result<()> {
    bind_all(sql::query(&format!("INSERT INTO payments ({COLUMNS}) VALUES ({})", sql::placeholders(1, 25))), p)
        .execute(tx.conn())
        .await
        .map_err(crate::StoreError::from_sqlx)?;
    Ok(())
}

/// Inserts the payment of a cart attempt if the cart is still `open_status` at `cart_version`,
/// in one statement outside any transaction; returns whether it did. On PostgreSQL the cart's
/// row is locked for the statement (`FOR UPDATE` re-checks a cart changed concurrently against
/// its newest version); on SQLite the statement runs under the database's write lock. Either
/// way this is what locking the cart, checking it and inserting in one transaction did.
pub async fn insert_for_cart_at(
    store: &crate::Store,
    p: &PaymentRow,
    cart_version: i64,
    open_status: &str,
) -> Result<bool> {
    let values = sql::placeholders(1, 25);
    let statement = match store.backend() {
        crate::Backend::Postgres => format!(
            "WITH c AS (SELECT id FROM carts WHERE id = $26 AND version = $27 AND status = $28 FOR UPDATE) \
             INSERT INTO payments ({COLUMNS}) SELECT {values} FROM c"
        ),
        crate::Backend::Sqlite => format!(
            "INSERT INTO payments ({COLUMNS}) SELECT {values} \
             WHERE EXISTS (SELECT 1 FROM carts WHERE id = $26 AND version = $27 AND status = $28)"
        ),
    };
    let done = bind_all(sql::query(&statement), p)
        .bind(&p.cart)
        .bind(cart_version)
        .bind(open_status)
        .execute(store.writer())
        .await
        .map_err(crate::StoreError::from_sqlx)?;
    Ok(done.rows_affected() == 1)
}

/// Inserts a payment for a PaymentIntent no payment holds yet; returns whether it did (the
/// unique PaymentIntent id makes this exactly-once under concurrent noticing).
pub async fn insert_for_new_intent(tx: &mut Tx, p: &PaymentRow) -> Result<bool> {
    let sql = format!(
        "INSERT INTO payments ({COLUMNS}) VALUES ({}) ON CONFLICT (processor_payment_intent) DO NOTHING",
        sql::placeholders(1, 25)
    );
    Ok(bind_all(sql::query(&sql), p).execute(tx.conn()).await?.rows_affected() == 1)
}

type Statement<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>;

fn bind_all<'q>(q: Statement<'q>, p: &'q PaymentRow) -> Statement<'q> {
    q.bind(&p.id)
        .bind(p.purpose.as_str())
        .bind(&p.cart)
        .bind(p.cart_version)
        .bind(p.attempt)
        .bind(&p.checkout_session)
        .bind(&p.customer)
        .bind(p.amount)
        .bind(&p.currency)
        .bind(&p.processor)
        .bind(&p.processor_payment_intent)
        .bind(&p.source)
        .bind(p.status.as_str())
        .bind(p.amount_capturable)
        .bind(p.amount_captured)
        .bind(p.amount_refunded)
        .bind(&p.failure_code)
        .bind(&p.decline_code)
        .bind(&p.failure_message)
        .bind(&p.next_action_url)
        .bind(&p.void_reason)
        .bind(p.lease_until)
        .bind(&p.duplicate_of)
        .bind(p.created)
        .bind(p.updated)
}

pub async fn get<'e, E: Executor<'e, Database = Any>>(db: E, id: &str) -> Result<Option<PaymentRow>> {
    Ok(sql::query_as(&format!("SELECT {COLUMNS} FROM payments WHERE id = $1")).bind(id).fetch_optional(db).await?)
}

pub async fn lock(tx: &mut Tx, id: &str) -> Result<Option<PaymentRow>> {
    let sql = format!("SELECT {COLUMNS} FROM payments WHERE id = $1{}", tx.for_update());
    Ok(sql::query_as(&sql).bind(id).fetch_optional(tx.conn()).await?)
}

pub async fn by_intent<'e, E: Executor<'e, Database = Any>>(db: E, intent: &str) -> Result<Option<PaymentRow>> {
    Ok(sql::query_as(&format!("SELECT {COLUMNS} FROM payments WHERE processor_payment_intent = $1"))
        .bind(intent)
        .fetch_optional(db)
        .await?)
}

/// The last attempt to pay this version of the cart.
pub async fn latest_for_cart<'e, E: Executor<'e, Database = Any>>(db: E, cart: &str) -> Result<Option<PaymentRow>> {
    Ok(sql::query_as(&format!(
        "SELECT {COLUMNS} FROM payments WHERE cart = $1 ORDER BY cart_version DESC, attempt DESC LIMIT 1"
    ))
    .bind(cart)
    .fetch_optional(db)
    .await?)
}

/// The update of [`save`], `$1…$14` (also the last part of `orders::insert_completing`).
pub(crate) const SAVE: &str = "UPDATE payments SET processor_payment_intent = $2, status = $3, amount_capturable = $4, \
    amount_captured = $5, amount_refunded = $6, failure_code = $7, decline_code = $8, \
    failure_message = $9, next_action_url = $10, void_reason = $11, updated = $12, \
    checkout_session = $13, lease_until = $14 \
    WHERE id = $1";

/// Binds `$1…$14` of [`SAVE`].
pub(crate) fn bind_save<'q>(q: Statement<'q>, p: &'q PaymentRow) -> Statement<'q> {
    q.bind(&p.id)
        .bind(&p.processor_payment_intent)
        .bind(p.status.as_str())
        .bind(p.amount_capturable)
        .bind(p.amount_captured)
        .bind(p.amount_refunded)
        .bind(&p.failure_code)
        .bind(&p.decline_code)
        .bind(&p.failure_message)
        .bind(&p.next_action_url)
        .bind(&p.void_reason)
        .bind(p.updated)
        .bind(&p.checkout_session)
        .bind(p.lease_until)
}

/// Writes a payment's mutable fields back (the caller holds its lock).
pub async fn save(tx: &mut Tx, p: &PaymentRow) -> Result<()> {
    bind_save(sql::query(SAVE), p).execute(tx.conn()).await?;
    Ok(())
}

/// The payment columns, each as `{alias}.{column} AS {prefix}{column}`, for a join that
/// reads a payment beside another table's columns of the same names.
pub(crate) fn prefixed_columns(alias: &str, prefix: &str) -> String {
    COLUMNS.split(", ").map(|c| format!("{alias}.{c} AS {prefix}{c}")).collect::<Vec<_>>().join(", ")
}

/// Reads a payment selected with [`prefixed_columns`].
pub(crate) fn from_prefixed_row(row: &sqlx::any::AnyRow, prefix: &str) -> Result<PaymentRow> {
    use sqlx::Row;
    let name = |column: &str| format!("{prefix}{column}");
    let decode = |e: kassa_domain::lifecycle::UnknownStatus| crate::StoreError::from(sqlx::Error::Decode(Box::new(e)));
    let purpose: String = row.try_get(name("purpose").as_str())?;
    let status: String = row.try_get(name("status").as_str())?;
    Ok(PaymentRow {
        id: row.try_get(name("id").as_str())?,
        purpose: Purpose::try_from(purpose).map_err(decode)?,
        cart: row.try_get(name("cart").as_str())?,
        cart_version: row.try_get(name("cart_version").as_str())?,
        attempt: row.try_get(name("attempt").as_str())?,
        checkout_session: row.try_get(name("checkout_session").as_str())?,
        customer: row.try_get(name("customer").as_str())?,
        amount: row.try_get(name("amount").as_str())?,
        currency: row.try_get(name("currency").as_str())?,
        processor: row.try_get(name("processor").as_str())?,
        processor_payment_intent: row.try_get(name("processor_payment_intent").as_str())?,
        source: row.try_get(name("source").as_str())?,
        status: PaymentStatus::try_from(status).map_err(decode)?,
        amount_capturable: row.try_get(name("amount_capturable").as_str())?,
        amount_captured: row.try_get(name("amount_captured").as_str())?,
        amount_refunded: row.try_get(name("amount_refunded").as_str())?,
        failure_code: row.try_get(name("failure_code").as_str())?,
        decline_code: row.try_get(name("decline_code").as_str())?,
        failure_message: row.try_get(name("failure_message").as_str())?,
        next_action_url: row.try_get(name("next_action_url").as_str())?,
        void_reason: row.try_get(name("void_reason").as_str())?,
        lease_until: row.try_get(name("lease_until").as_str())?,
        duplicate_of: row.try_get(name("duplicate_of").as_str())?,
        created: row.try_get(name("created").as_str())?,
        updated: row.try_get(name("updated").as_str())?,
    })
}

/// Takes the lease on a pending payment's processor call, unless another request holds a
/// live one (or the payment is no longer pending). Returns whether this caller holds it.
pub async fn claim_pending<'e, E: Executor<'e, Database = Any>>(db: E, id: &str, now: i64, until: i64) -> Result<bool> {
    let done = sql::query(
        "UPDATE payments SET lease_until = $3 WHERE id = $1 AND status = $4 \
         AND (lease_until IS NULL OR lease_until <= $2)",
    )
    .bind(id)
    .bind(now)
    .bind(until)
    .bind(PaymentStatus::Pending.as_str())
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Extends a lease this caller holds (`held` is the end it set), unless another caller has
/// taken the payment over since. Returns whether this caller still holds it.
pub async fn renew_lease<'e, E: Executor<'e, Database = Any>>(db: E, id: &str, held: i64, until: i64) -> Result<bool> {
    let done = sql::query("UPDATE payments SET lease_until = $3 WHERE id = $1 AND lease_until = $2")
        .bind(id)
        .bind(held)
        .bind(until)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Claims up to `limit` payments in `status` whose lease has run out, leasing them until
/// `until`, in one statement: rows another server holds (locked, or leased) are skipped, so a
/// processor call about a payment is never made by two job rounds at once.
pub async fn claim_leased(
    store: &Store,
    status: PaymentStatus,
    now: i64,
    until: i64,
    limit: i64,
) -> Result<Vec<PaymentRow>> {
    let sql = format!(
        "UPDATE payments SET lease_until = $3 WHERE id IN (\
            SELECT id FROM payments WHERE status = $1 AND (lease_until IS NULL OR lease_until <= $2) \
            ORDER BY updated, id LIMIT $4{}) \
         RETURNING {COLUMNS}",
        skip_locked(store.backend())
    );
    let mut rows: Vec<PaymentRow> =
        sql::query_as(&sql).bind(status.as_str()).bind(now).bind(until).bind(limit).fetch_all(store.writer()).await?;
    rows.sort_by(|a, b| (a.updated, &a.id).cmp(&(b.updated, &b.id)));
    Ok(rows)
}

/// The duplicate charges noticed since `since`, oldest first.
pub async fn duplicates_since<'e, E: Executor<'e, Database = Any>>(db: E, since: i64) -> Result<Vec<PaymentRow>> {
    Ok(sql::query_as(&format!(
        "SELECT {COLUMNS} FROM payments WHERE duplicate_of IS NOT NULL AND created >= $1 ORDER BY created, id"
    ))
    .bind(since)
    .fetch_all(db)
    .await?)
}

/// Claims payments in `status` last changed before `before`, for a job round.
pub async fn claim_in_status(
    tx: &mut Tx,
    store: &Store,
    status: PaymentStatus,
    before: i64,
    limit: i64,
) -> Result<Vec<PaymentRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM payments WHERE status = $1 AND updated < $2 ORDER BY updated LIMIT $3{}",
        skip_locked(store.backend())
    );
    Ok(sql::query_as(&sql).bind(status.as_str()).bind(before).bind(limit).fetch_all(tx.conn()).await?)
}

/// Moves the claimed payment's `updated` forward so other rounds leave it alone for a while.
pub async fn touch<'e, E: Executor<'e, Database = Any>>(db: E, id: &str, now: i64) -> Result<()> {
    sql::query("UPDATE payments SET updated = $2 WHERE id = $1").bind(id).bind(now).execute(db).await?;
    Ok(())
}

pub async fn list<'e, E: Executor<'e, Database = Any>>(
    db: E,
    customer: Option<&str>,
    status: Option<&str>,
    page: &Page,
) -> Result<Listed<PaymentRow>> {
    let mut filters = Vec::new();
    if let Some(c) = customer {
        filters.push(("customer", c));
    }
    if let Some(s) = status {
        filters.push(("status", s));
    }
    sql::list_page(db, &format!("SELECT {COLUMNS} FROM payments"), &filters, page).await
}

/// Every payment in one of `statuses` (for reconciliation), oldest first.
pub async fn in_statuses<'e, E: Executor<'e, Database = Any>>(
    db: E,
    statuses: &[PaymentStatus],
    limit: i64,
) -> Result<Vec<PaymentRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM payments WHERE status IN ({}) ORDER BY updated LIMIT {limit}",
        sql::placeholders(1, statuses.len())
    );
    let mut q = sql::query_as(&sql);
    for s in statuses {
        q = q.bind(s.as_str());
    }
    Ok(q.fetch_all(db).await?)
}
