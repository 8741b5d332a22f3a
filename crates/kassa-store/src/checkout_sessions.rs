//! Hosted checkout sessions (Kassa's own, each backed by one at the processor).

use crate::db::skip_locked;
use crate::sql;
use crate::{Result, Store, Tx};
use kassa_domain::lifecycle::checkout_session::{SessionPaymentStatus, SessionPurpose, SessionState, SessionStatus};
use sqlx::{Any, Executor};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct SessionRow {
    pub id: String,
    #[sqlx(try_from = "String")]
    pub purpose: SessionPurpose,
    pub cart: Option<String>,
    pub cart_version: Option<i64>,
    pub customer: String,
    pub credits: Option<i64>,
    pub currency: String,
    pub amount_total: i64,
    /// JSON array of `{name, unit_amount, quantity}`.
    pub lines: String,
    #[sqlx(try_from = "String")]
    pub status: SessionStatus,
    #[sqlx(try_from = "String")]
    pub payment_status: SessionPaymentStatus,
    pub success_url: String,
    pub cancel_url: Option<String>,
    pub processor_session: Option<String>,
    pub url: Option<String>,
    pub payment: Option<String>,
    pub order_id: Option<String>,
    pub expires_at: i64,
    pub created: i64,
    pub updated: i64,
    /// SHA-256 (hex) of the session's client secret; set once at creation.
    pub client_secret_hash: Option<String>,
    /// A subscription session: the recurring price and quantity it starts.
    pub price: Option<String>,
    pub quantity: Option<i64>,
    /// A subscription session: the subscription its payment started (set once).
    pub subscription: Option<String>,
}

impl SessionRow {
    /// The part of the session its state machine decides.
    pub fn state(&self) -> SessionState {
        SessionState { status: self.status, payment_status: self.payment_status }
    }

    /// Takes over what the state machine decided (to be written with [`save`]).
    pub fn set_state(&mut self, s: SessionState) {
        self.status = s.status;
        self.payment_status = s.payment_status;
    }
}

/// A session with the capability hash of the cart it pays: the cart's secret opens it too.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct SessionWithCartSecret {
    #[sqlx(flatten)]
    pub session: SessionRow,
    pub cart_secret_hash: Option<String>,
}

const COLUMNS: &str = "id, purpose, cart, cart_version, customer, credits, currency, amount_total, lines, status, \
    payment_status, success_url, cancel_url, processor_session, url, payment, order_id, expires_at, created, updated, \
    client_secret_hash, price, quantity, subscription";

pub async fn insert(tx: &mut Tx, s: &SessionRow) -> Result<()> {
    sql::query(&format!(
        "INSERT INTO checkout_sessions ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
         $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)"
    ))
    .bind(&s.id)
    .bind(s.purpose.as_str())
    .bind(&s.cart)
    .bind(s.cart_version)
    .bind(&s.customer)
    .bind(s.credits)
    .bind(&s.currency)
    .bind(s.amount_total)
    .bind(&s.lines)
    .bind(s.status.as_str())
    .bind(s.payment_status.as_str())
    .bind(&s.success_url)
    .bind(&s.cancel_url)
    .bind(&s.processor_session)
    .bind(&s.url)
    .bind(&s.payment)
    .bind(&s.order_id)
    .bind(s.expires_at)
    .bind(s.created)
    .bind(s.updated)
    .bind(&s.client_secret_hash)
    .bind(&s.price)
    .bind(s.quantity)
    .bind(&s.subscription)
    .execute(tx.conn())
    .await?;
    Ok(())
}

pub async fn get<'e, E: Executor<'e, Database = Any>>(db: E, id: &str) -> Result<Option<SessionRow>> {
    Ok(sql::query_as(&format!("SELECT {COLUMNS} FROM checkout_sessions WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?)
}

/// The session and its cart's capability hash, in one statement (the store API's access check).
pub async fn get_with_cart_secret<'e, E: Executor<'e, Database = Any>>(
    db: E,
    id: &str,
) -> Result<Option<SessionWithCartSecret>> {
    let columns = sql::qualified("s", COLUMNS);
    Ok(sql::query_as(&format!(
        "SELECT {columns}, c.client_secret_hash AS cart_secret_hash FROM checkout_sessions s \
         LEFT JOIN carts c ON c.id = s.cart WHERE s.id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await?)
}

pub async fn by_processor_session<'e, E: Executor<'e, Database = Any>>(db: E, id: &str) -> Result<Option<SessionRow>> {
    Ok(sql::query_as(&format!("SELECT {COLUMNS} FROM checkout_sessions WHERE processor_session = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?)
}

pub async fn lock(tx: &mut Tx, id: &str) -> Result<Option<SessionRow>> {
    let sql = format!("SELECT {COLUMNS} FROM checkout_sessions WHERE id = $1{}", tx.for_update());
    Ok(sql::query_as(&sql).bind(id).fetch_optional(tx.conn()).await?)
}

pub async fn save(tx: &mut Tx, s: &SessionRow) -> Result<()> {
    sql::query(
        "UPDATE checkout_sessions SET status = $2, payment_status = $3, processor_session = $4, url = $5, \
            payment = $6, order_id = $7, updated = $8, subscription = $9 WHERE id = $1",
    )
    .bind(&s.id)
    .bind(s.status.as_str())
    .bind(s.payment_status.as_str())
    .bind(&s.processor_session)
    .bind(&s.url)
    .bind(&s.payment)
    .bind(&s.order_id)
    .bind(s.updated)
    .bind(&s.subscription)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Sessions in `status` past their expiry, claimed for a job round.
pub async fn claim_expired(
    tx: &mut Tx,
    store: &Store,
    status: SessionStatus,
    now: i64,
    limit: i64,
) -> Result<Vec<SessionRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM checkout_sessions WHERE status = $3 AND expires_at < $1 ORDER BY expires_at LIMIT $2{}",
        skip_locked(store.backend())
    );
    Ok(sql::query_as(&sql).bind(now).bind(limit).bind(status.as_str()).fetch_all(tx.conn()).await?)
}
