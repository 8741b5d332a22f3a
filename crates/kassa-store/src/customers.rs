//! Customers and their subscriptions: data access only. Who gets which pricing model and the
//! free default subscription, and which events are recorded, is decided by the server's
//! customer service (`kassa_server::services::customers::create`), the one path that
//! inserts customers.

use crate::sql::{self, DbBool, Listed, Page};
use crate::{Result, Tx};
use sqlx::{Any, Executor};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct CustomerRow {
    pub id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub external_id: Option<String>,
    #[sqlx(try_from = "DbBool")]
    pub guest: bool,
    #[sqlx(try_from = "DbBool")]
    pub email_verified: bool,
    pub pricing_model: Option<String>,
    pub processor_customer: Option<String>,
    pub credit_balance: i64,
    pub metadata: String,
    pub created: i64,
    pub updated: i64,
    /// The test clock the customer lives on (test processor only).
    pub test_clock: Option<String>,
    /// The saved payment method (processor `pm_…`) new subscriptions charge by default.
    pub default_payment_method: Option<String>,
}

const COLUMNS: &str = "id, email, name, external_id, guest, email_verified, pricing_model, \
    processor_customer, credit_balance, metadata, created, updated, test_clock, default_payment_method";

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct SubscriptionRow {
    pub id: String,
    pub customer: String,
    pub price: String,
    pub status: String,
    pub current_period_start: i64,
    pub current_period_end: i64,
    pub created: i64,
    pub updated: i64,
    pub quantity: i64,
    /// Every period boundary is counted from it; `None` for subscriptions stored before
    /// billing (their first period start stands in).
    pub billing_cycle_anchor: Option<i64>,
    #[sqlx(try_from = "DbBool")]
    pub cancel_at_period_end: bool,
    pub canceled_at: Option<i64>,
    pub trial_end: Option<i64>,
    pub default_payment_method: Option<String>,
    pub latest_invoice: Option<String>,
    /// A change of price (a downgrade) that takes effect at the period end.
    pub pending_price: Option<String>,
    pub pending_quantity: Option<i64>,
}

pub(crate) const SUBSCRIPTION_COLUMNS: &str = "id, customer, price, status, current_period_start, current_period_end, created, updated, quantity, \
     billing_cycle_anchor, cancel_at_period_end, canceled_at, trial_end, default_payment_method, latest_invoice, \
     pending_price, pending_quantity";

/// What a new customer is made of.
#[derive(Clone, Debug, Default)]
pub struct CustomerDraft {
    pub email: Option<String>,
    pub name: Option<String>,
    /// The `sub` of the merchant's JWT; unique.
    pub external_id: Option<String>,
    /// A guest is found or created by email: one guest customer per email.
    pub guest: bool,
    pub email_verified: bool,
    /// `None` assigns the default pricing model.
    pub pricing_model: Option<String>,
    pub metadata: String,
}

/// Inserts a customer with `pricing_model`, unless its external id or guest email is taken
/// (`None` then: the insert is `ON CONFLICT DO NOTHING` against the unique indexes, so of many
/// concurrent first sights exactly one inserts; see [`holder_of`] for the others).
pub async fn insert(
    tx: &mut Tx,
    id: &str,
    draft: &CustomerDraft,
    pricing_model: Option<&str>,
    now: i64,
) -> Result<Option<CustomerRow>> {
    Ok(sql::query_as(&format!(
        "INSERT INTO customers (id, email, email_lower, name, external_id, guest, email_verified, pricing_model, \
            metadata, created, updated) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) ON CONFLICT DO NOTHING RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(&draft.email)
    .bind(draft.email.as_ref().map(|e| e.to_lowercase()))
    .bind(&draft.name)
    .bind(&draft.external_id)
    .bind(draft.guest)
    .bind(draft.email_verified)
    .bind(pricing_model)
    .bind(&draft.metadata)
    .bind(now)
    .fetch_optional(tx.conn())
    .await?)
}

/// The customer holding the external id or guest email that made [`insert`] of `draft` do
/// nothing.
pub async fn holder_of(tx: &mut Tx, draft: &CustomerDraft) -> Result<CustomerRow> {
    let existing = match (&draft.external_id, draft.guest, &draft.email) {
        (Some(sub), _, _) => get_by_external_id(tx.conn(), sub).await?,
        (None, true, Some(email)) => find_guest(tx.conn(), email).await?,
        _ => None,
    };
    existing.ok_or_else(|| crate::StoreError::Corrupt("customer insert conflicted on its id".into()))
}

pub async fn insert_subscription(tx: &mut Tx, row: &SubscriptionRow) -> Result<()> {
    sql::query(&format!(
        "INSERT INTO subscriptions ({SUBSCRIPTION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
         $13, $14, $15, $16, $17)"
    ))
    .bind(&row.id)
    .bind(&row.customer)
    .bind(&row.price)
    .bind(&row.status)
    .bind(row.current_period_start)
    .bind(row.current_period_end)
    .bind(row.created)
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

/// Turns a guest customer into the signed-in customer `external_id` (same row: their carts,
/// orders and credits stay theirs). Only a guest not yet linked can be linked.
pub async fn link_guest(tx: &mut Tx, guest_id: &str, external_id: &str, now: i64) -> Result<Option<CustomerRow>> {
    Ok(sql::query_as(&format!(
        "UPDATE customers SET external_id = $2, guest = FALSE, email_verified = TRUE, updated = $3 \
         WHERE id = $1 AND guest = TRUE AND external_id IS NULL RETURNING {COLUMNS}"
    ))
    .bind(guest_id)
    .bind(external_id)
    .bind(now)
    .fetch_optional(tx.conn())
    .await?)
}

pub async fn get<'e, E: Executor<'e, Database = Any>>(db: E, id: &str) -> Result<Option<CustomerRow>> {
    Ok(sql::query_as(&format!("SELECT {COLUMNS} FROM customers WHERE id = $1")).bind(id).fetch_optional(db).await?)
}

pub async fn get_by_external_id<'e, E: Executor<'e, Database = Any>>(db: E, sub: &str) -> Result<Option<CustomerRow>> {
    Ok(sql::query_as(&format!("SELECT {COLUMNS} FROM customers WHERE external_id = $1"))
        .bind(sub)
        .fetch_optional(db)
        .await?)
}

pub async fn find_guest<'e, E: Executor<'e, Database = Any>>(db: E, email: &str) -> Result<Option<CustomerRow>> {
    Ok(sql::query_as(&format!("SELECT {COLUMNS} FROM customers WHERE email_lower = $1 AND guest = TRUE"))
        .bind(email.to_lowercase())
        .fetch_optional(db)
        .await?)
}

pub async fn list<'e, E: Executor<'e, Database = Any>>(
    db: E,
    email: Option<&str>,
    page: &Page,
) -> Result<Listed<CustomerRow>> {
    let lower = email.map(str::to_lowercase);
    let filters: Vec<(&str, &str)> = lower.as_deref().map(|e| ("email_lower", e)).into_iter().collect();
    sql::list_page(db, &format!("SELECT {COLUMNS} FROM customers"), &filters, page).await
}

/// Changes to a customer; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct CustomerPatch {
    pub email: Option<String>,
    pub name: Option<Option<String>>,
    pub pricing_model: Option<String>,
    pub metadata: Option<String>,
}

pub async fn update(tx: &mut Tx, id: &str, patch: &CustomerPatch, now: i64) -> Result<Option<CustomerRow>> {
    let (name_set, name) = match &patch.name {
        Some(n) => (true, n.clone()),
        None => (false, None),
    };
    Ok(sql::query_as(&format!(
        "UPDATE customers SET email = COALESCE($2, email), email_lower = COALESCE($3, email_lower), \
            name = CASE WHEN $4 THEN $5 ELSE name END, pricing_model = COALESCE($6, pricing_model), \
            metadata = COALESCE($7, metadata), updated = $8 \
         WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(&patch.email)
    .bind(patch.email.as_ref().map(|e| e.to_lowercase()))
    .bind(name_set)
    .bind(name)
    .bind(&patch.pricing_model)
    .bind(&patch.metadata)
    .bind(now)
    .fetch_optional(tx.conn())
    .await?)
}

/// Takes the lease to create the processor customer, unless it exists or another request
/// holds a live lease. Returns the customer when this caller holds it (one statement: the
/// holder needs the row for the processor call).
pub async fn claim_processor_customer<'e, E: Executor<'e, Database = Any>>(
    db: E,
    id: &str,
    now: i64,
    until: i64,
) -> Result<Option<CustomerRow>> {
    Ok(sql::query_as(&format!(
        "UPDATE customers SET processor_claim_until = $3 WHERE id = $1 AND processor_customer IS NULL \
         AND (processor_claim_until IS NULL OR processor_claim_until < $2) RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(now)
    .bind(until)
    .fetch_optional(db)
    .await?)
}

/// Takes the leases of up to `limit` customers without a processor customer whose creation
/// nobody holds a live lease for (and whose retry time passed), oldest first, and returns them:
/// the processor-customer job's scan and claims in one statement. Rows another server is
/// claiming are skipped (PostgreSQL); the outer condition re-checks each row once locked.
pub async fn claim_lacking_processor_customers(
    store: &crate::Store,
    now: i64,
    until: i64,
    limit: i64,
) -> Result<Vec<CustomerRow>> {
    let sql = format!(
        "UPDATE customers SET processor_claim_until = $3 WHERE id IN (SELECT id FROM customers \
         WHERE processor_customer IS NULL AND (processor_claim_until IS NULL OR processor_claim_until < $1) \
         AND (processor_retry_after IS NULL OR processor_retry_after < $1) ORDER BY created, id LIMIT $2{}) \
         AND processor_customer IS NULL AND (processor_claim_until IS NULL OR processor_claim_until < $1) \
         RETURNING {COLUMNS}",
        crate::db::skip_locked(store.backend())
    );
    Ok(sql::query_as(&sql).bind(now).bind(limit).bind(until).fetch_all(store.writer()).await?)
}

/// Stores the processor customer id (once); returns the id that is stored.
pub async fn set_processor_customer<'e, E: Executor<'e, Database = Any>>(
    db: E,
    id: &str,
    processor_customer: &str,
) -> Result<Option<String>> {
    // One statement: keeps an id stored before (and its lease column as it is), else stores
    // this one; answers the id that is stored now.
    Ok(sql::query_scalar::<Option<String>>(
        "UPDATE customers SET processor_customer = COALESCE(processor_customer, $2), \
            processor_claim_until = CASE WHEN processor_customer IS NULL THEN NULL ELSE processor_claim_until END \
         WHERE id = $1 RETURNING processor_customer",
    )
    .bind(id)
    .bind(processor_customer)
    .fetch_optional(db)
    .await?
    .flatten())
}

/// Gives up a lease after a failed processor call, so the next payment retries at once; the
/// background job waits until `retry_after`.
pub async fn release_processor_claim<'e, E: Executor<'e, Database = Any>>(
    db: E,
    id: &str,
    retry_after: i64,
) -> Result<()> {
    sql::query(
        "UPDATE customers SET processor_claim_until = NULL, processor_retry_after = $2 \
         WHERE id = $1 AND processor_customer IS NULL",
    )
    .bind(id)
    .bind(retry_after)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn subscriptions_of<'e, E: Executor<'e, Database = Any>>(
    db: E,
    customer: &str,
    page: &Page,
) -> Result<Listed<SubscriptionRow>> {
    sql::list_page(db, &format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions"), &[("customer", customer)], page)
        .await
}
