//! Billing portal sessions (issue 15): a customer's short-lived link to the hosted portal,
//! stored by the SHA-256 of its secret, and the forms of a session already acted on (so a
//! double submit acts once). No business rule here: `services::portal_sessions` decides.

use crate::{Result, sql};
use sqlx::{Any, Executor};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct PortalSessionRow {
    pub id: String,
    pub customer: String,
    pub secret_hash: String,
    pub return_url: Option<String>,
    pub created: i64,
    pub expires_at: i64,
    pub pending_payment_intent: Option<String>,
}

const COLUMNS: &str = "id, customer, secret_hash, return_url, created, expires_at, pending_payment_intent";

pub async fn insert<'e, E: Executor<'e, Database = Any>>(db: E, r: &PortalSessionRow) -> Result<()> {
    sql::query(&format!("INSERT INTO billing_portal_sessions ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"))
        .bind(&r.id)
        .bind(&r.customer)
        .bind(&r.secret_hash)
        .bind(&r.return_url)
        .bind(r.created)
        .bind(r.expires_at)
        .bind(&r.pending_payment_intent)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn get<'e, E: Executor<'e, Database = Any>>(db: E, id: &str) -> Result<Option<PortalSessionRow>> {
    Ok(sql::query_as(&format!("SELECT {COLUMNS} FROM billing_portal_sessions WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?)
}

/// Records that the form `nonce` of `session` is acted on; false when it was already (a
/// double submit).
pub async fn claim_form<'e, E: Executor<'e, Database = Any>>(
    db: E,
    session: &str,
    nonce: &str,
    action: &str,
    now: i64,
) -> Result<bool> {
    let done = sql::query(
        "INSERT INTO billing_portal_actions (session, nonce, action, created) VALUES ($1, $2, $3, $4) \
         ON CONFLICT DO NOTHING",
    )
    .bind(session)
    .bind(nonce)
    .bind(action)
    .bind(now)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Sets the card update waiting for 3-D Secure.
pub async fn set_pending<'e, E: Executor<'e, Database = Any>>(db: E, id: &str, payment_intent: &str) -> Result<()> {
    sql::query("UPDATE billing_portal_sessions SET pending_payment_intent = $2 WHERE id = $1")
        .bind(id)
        .bind(payment_intent)
        .execute(db)
        .await?;
    Ok(())
}

/// Takes the waiting card update off the session if it is still `payment_intent`; true for
/// the one caller that took it (two page loads racing finish it once).
pub async fn take_pending<'e, E: Executor<'e, Database = Any>>(db: E, id: &str, payment_intent: &str) -> Result<bool> {
    let done = sql::query(
        "UPDATE billing_portal_sessions SET pending_payment_intent = NULL \
         WHERE id = $1 AND pending_payment_intent = $2",
    )
    .bind(id)
    .bind(payment_intent)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Puts a taken card update back (finishing it failed; the next page load tries again).
pub async fn restore_pending<'e, E: Executor<'e, Database = Any>>(db: E, id: &str, payment_intent: &str) -> Result<()> {
    sql::query(
        "UPDATE billing_portal_sessions SET pending_payment_intent = $2 \
         WHERE id = $1 AND pending_payment_intent IS NULL",
    )
    .bind(id)
    .bind(payment_intent)
    .execute(db)
    .await?;
    Ok(())
}
