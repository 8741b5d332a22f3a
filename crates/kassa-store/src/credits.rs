//! The credit ledger. Exactly-once is the shape of [`add_entry`]: the entry, unique by its
//! source, is inserted first (`ON CONFLICT DO NOTHING`); only if it was new does the balance
//! move, by one guarded delta update in the same transaction. No read-modify-write of a
//! balance anywhere.

use crate::sql::{self, Listed, Page};
use crate::{Result, Tx};
use kassa_domain::credits::MAX_CREDITS;
use kassa_domain::ids::IdKind;
use sqlx::{Any, Executor};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct EntryRow {
    pub id: String,
    pub customer: String,
    pub amount: i64,
    pub kind: String,
    pub source: String,
    pub balance_after: i64,
    pub reason: Option<String>,
    pub shortfall: i64,
    pub payment: Option<String>,
    pub checkout_session: Option<String>,
    pub created: i64,
}

const COLUMNS: &str =
    "id, customer, amount, kind, source, balance_after, reason, shortfall, payment, checkout_session, created";

/// A ledger entry to add.
#[derive(Clone, Debug, Default)]
pub struct NewEntry {
    pub customer: String,
    pub amount: i64,
    pub kind: &'static str,
    pub source: String,
    pub reason: Option<String>,
    pub shortfall: i64,
    pub payment: Option<String>,
    pub checkout_session: Option<String>,
}

pub enum Added {
    Entry(EntryRow),
    /// This source was applied before; nothing changed.
    Duplicate(EntryRow),
    /// The balance would go below zero; nothing may be committed (the caller rolls back).
    Insufficient,
    /// The balance would go above [`MAX_CREDITS`]; nothing may be committed (the caller rolls
    /// back).
    OverLimit,
}

pub async fn add_entry(tx: &mut Tx, e: NewEntry, now: i64) -> Result<Added> {
    let id = IdKind::CreditEntry.new_id();
    let inserted = sql::query(
        "INSERT INTO credit_entries (id, customer, amount, kind, source, balance_after, reason, shortfall, payment, \
            checkout_session, created) VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
    )
    .bind(&id)
    .bind(&e.customer)
    .bind(e.amount)
    .bind(e.kind)
    .bind(&e.source)
    .bind(&e.reason)
    .bind(e.shortfall)
    .bind(&e.payment)
    .bind(&e.checkout_session)
    .bind(now)
    .execute(tx.conn())
    .await?;
    if inserted.rows_affected() == 0 {
        let existing = by_source(tx.conn(), &e.source)
            .await?
            .ok_or_else(|| crate::StoreError::Corrupt("credit entry vanished".into()))?;
        return Ok(Added::Duplicate(existing));
    }
    // Both bounds in the guard: with the balance and the delta within MAX_CREDITS, the sum
    // cannot overflow a BIGINT (PostgreSQL would fail, SQLite would turn it into a REAL).
    let balance: Option<i64> = sql::query_scalar(
        "UPDATE customers SET credit_balance = credit_balance + $2 \
         WHERE id = $1 AND credit_balance + $2 >= 0 AND credit_balance + $2 <= $3 RETURNING credit_balance",
    )
    .bind(&e.customer)
    .bind(e.amount)
    .bind(MAX_CREDITS)
    .fetch_optional(tx.conn())
    .await?;
    let Some(balance) = balance else {
        return Ok(if e.amount < 0 { Added::Insufficient } else { Added::OverLimit });
    };
    sql::query("UPDATE credit_entries SET balance_after = $2 WHERE id = $1")
        .bind(&id)
        .bind(balance)
        .execute(tx.conn())
        .await?;
    Ok(Added::Entry(EntryRow {
        id,
        customer: e.customer,
        amount: e.amount,
        kind: e.kind.into(),
        source: e.source,
        balance_after: balance,
        reason: e.reason,
        shortfall: e.shortfall,
        payment: e.payment,
        checkout_session: e.checkout_session,
        created: now,
    }))
}

pub async fn by_source<'e, E: Executor<'e, Database = Any>>(db: E, source: &str) -> Result<Option<EntryRow>> {
    Ok(sql::query_as(&format!("SELECT {COLUMNS} FROM credit_entries WHERE source = $1"))
        .bind(source)
        .fetch_optional(db)
        .await?)
}

pub async fn list<'e, E: Executor<'e, Database = Any>>(db: E, customer: &str, page: &Page) -> Result<Listed<EntryRow>> {
    sql::list_page(db, &format!("SELECT {COLUMNS} FROM credit_entries"), &[("customer", customer)], page).await
}

/// The sum of a customer's entries (what the balance must always equal).
pub async fn ledger_sum<'e, E: Executor<'e, Database = Any>>(db: E, customer: &str) -> Result<i64> {
    Ok(sql::query_scalar("SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM credit_entries WHERE customer = $1")
        .bind(customer)
        .fetch_one(db)
        .await?)
}

/// Entries of one checkout session (a top-up and its reversals).
pub async fn of_session<'e, E: Executor<'e, Database = Any>>(db: E, session: &str) -> Result<Vec<EntryRow>> {
    Ok(sql::query_as(&format!("SELECT {COLUMNS} FROM credit_entries WHERE checkout_session = $1 ORDER BY id"))
        .bind(session)
        .fetch_all(db)
        .await?)
}

/// The balance, locked for the caller's transaction (a refund reversal takes back at most
/// what is left, so it must see a stable balance; the update itself is still a delta).
pub async fn lock_balance(tx: &mut Tx, customer: &str) -> Result<Option<i64>> {
    let sql = format!("SELECT credit_balance FROM customers WHERE id = $1{}", tx.for_update());
    Ok(sql::query_scalar(&sql).bind(customer).fetch_optional(tx.conn()).await?)
}
