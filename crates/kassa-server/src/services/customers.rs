//! Customers: the one creation path, signed-in and guest identities, and the processor
//! customer every payment is attached to.

use crate::error::{ApiError, ApiResult};
use crate::objects::customer::{Customer, Subscription};
use crate::objects::{Metadata, metadata_json};
use crate::services::identity::CustomerClaims;
use crate::services::validate;
use crate::state::AppState;
use kassa_domain::billing::{Interval, period_end};
use kassa_domain::ids::IdKind;
use kassa_domain::lifecycle::subscription::SubscriptionStatus;
use kassa_processors::CreateCustomer;
use kassa_store::catalog::PricingModelRow;
pub use kassa_store::customers::CustomerRow;
use kassa_store::customers::{self as db, CustomerDraft, CustomerPatch, SubscriptionRow};
use kassa_store::sql::{Listed, Page};
use kassa_store::{Tx, catalog, events};
use serde::Deserialize;
use std::time::Duration;
use utoipa::ToSchema;

/// How long one request may hold the right to create a processor customer before another
/// may take over (it died, or the processor hung).
const PROCESSOR_CLAIM_SECS: i64 = 30;
/// How long the background job waits before it tries a failed creation again.
const PROCESSOR_RETRY_SECS: i64 = 60;

/// Creates a customer — THE way customers come to exist, for the admin API, the first sight
/// of a signed-in customer and guest checkout alike. In the caller's transaction: the row with
/// its pricing model (the given one, else the default), the free default subscription when
/// the model has one, and the `customer.created` / `subscription.created` events. Returns the
/// existing customer when the external id or guest email is taken (`created` false), and then
/// nothing else happens. After commit, call [`after_commit`].
pub async fn create(tx: &mut Tx, now: i64, draft: CustomerDraft) -> ApiResult<(CustomerRow, bool)> {
    let model = match &draft.pricing_model {
        Some(id) => catalog::get_pricing_model(tx.conn(), id).await?,
        None => catalog::default_pricing_model_cached(tx).await?,
    };
    let id = IdKind::Customer.new_id();
    let Some(customer) = db::insert(tx, &id, &draft, model.as_ref().map(|m| m.id.as_str()), now).await? else {
        return Ok((db::holder_of(tx, &draft).await?, false));
    };
    events::record(tx, "customer.created", &customer.id, &Customer::from(customer.clone()), now).await?;
    if let Some(model) = &model
        && let Some(subscription) = free_default_subscription(tx, &customer, model, now).await?
    {
        db::insert_subscription(tx, &subscription).await?;
        let shown = Subscription::from(subscription);
        events::record(tx, "subscription.created", &shown.id, &shown, now).await?;
    }
    Ok((customer, true))
}

/// The subscription to the model's default price a new customer starts with — if that price
/// is free (0), active and recurring; a paid default price waits for a checkout.
async fn free_default_subscription(
    tx: &mut Tx,
    customer: &CustomerRow,
    model: &PricingModelRow,
    now: i64,
) -> ApiResult<Option<SubscriptionRow>> {
    let Some(price_id) = &model.default_price else { return Ok(None) };
    let Some(price) = catalog::get_price(tx.conn(), price_id).await? else { return Ok(None) };
    let interval = price.recurring_interval.as_deref().and_then(Interval::parse);
    let (Some(interval), true, 0) = (interval, price.active, price.unit_amount) else { return Ok(None) };
    let count = price.recurring_interval_count.unwrap_or(1).clamp(1, 365) as u32;
    let end = period_end(now, interval, count).unwrap_or(now);
    Ok(Some(SubscriptionRow {
        id: IdKind::Subscription.new_id(),
        customer: customer.id.clone(),
        price: price.id,
        status: SubscriptionStatus::Active.as_str().into(),
        current_period_start: now,
        current_period_end: end,
        created: now,
        updated: now,
        quantity: 1,
        billing_cycle_anchor: Some(now),
        cancel_at_period_end: false,
        canceled_at: None,
        trial_end: None,
        default_payment_method: None,
        latest_invoice: None,
        pending_price: None,
        pending_quantity: None,
    }))
}

/// After a creation committed: wake the processor-customer job, so the processor customer
/// is usually there before the first payment asks for it. Creating a customer never waits
/// for (or fails with) the processor; the customer row is the durable work item, so a crash
/// right after the commit only delays it. Payments call [`ensure_processor_customer`].
pub fn after_commit(state: &AppState, _customer_id: &str) {
    state.jobs.wake(crate::wakeups::PROCESSOR_CUSTOMERS);
}

/// The customer's processor customer, created exactly once: one request at a time holds a
/// lease to create it (racing requests wait for its result), the processor call carries an
/// idempotency key derived from the Kassa customer id, and the id is stored only if none is.
///
/// Within one process, concurrent callers for the same customer share one attempt (the
/// background creation after sign-up and the first payment typically race), so the payment
/// waits exactly as long as the creation takes instead of polling.
pub async fn ensure_processor_customer(state: &AppState, customer_id: &str) -> ApiResult<String> {
    if let Some(pc) = db::get(state.store.reader(), customer_id).await?.and_then(|c| c.processor_customer) {
        return Ok(pc);
    }
    create_lacking_processor_customer(state, customer_id).await
}

/// [`ensure_processor_customer`] for a caller that just read that the customer lacks one (the
/// payment's first read, the job's scan): goes straight to the lease.
pub async fn create_lacking_processor_customer(state: &AppState, customer_id: &str) -> ApiResult<String> {
    let result = state
        .processor_customers
        .run(customer_id, || {
            let (state, id) = (state.clone(), customer_id.to_string());
            async move { ensure_once(&state, &id).await.map_err(|e| e.to_string()) }
        })
        .await;
    // The error crossed a shared future as text; the processor being unreachable is the
    // one failure callers act on.
    result.map_err(ApiError::ProcessorUnavailable)
}

/// Claims (takes the leases of) up to `limit` customers lacking a processor customer.
pub async fn claim_lacking_processor_customers(state: &AppState, limit: i64) -> ApiResult<Vec<CustomerRow>> {
    let now = state.clock.now();
    Ok(db::claim_lacking_processor_customers(&state.store, now, now + PROCESSOR_CLAIM_SECS, limit).await?)
}

/// Creates the processor customer of a customer whose lease the caller took. Not through
/// the in-process attempt that payments share: a payment that asked first is polling for this
/// very lease inside that attempt, and joining it would wait for the lease to run out (30 s).
/// The payment sees the stored id on its next poll instead.
pub async fn create_claimed_processor_customer(state: &AppState, customer: CustomerRow) -> ApiResult<String> {
    create_processor_customer(state, &customer).await
}

async fn ensure_once(state: &AppState, customer_id: &str) -> ApiResult<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(PROCESSOR_CLAIM_SECS as u64 + 5);
    loop {
        let now = state.clock.now();
        // The lease first: in the common case (nobody else creating it) that is the one read.
        if let Some(customer) =
            db::claim_processor_customer(state.store.writer(), customer_id, now, now + PROCESSOR_CLAIM_SECS).await?
        {
            return create_processor_customer(state, &customer).await;
        }
        let customer = db::get(state.store.reader(), customer_id)
            .await?
            .ok_or_else(|| ApiError::not_found("customer", customer_id))?;
        if let Some(pc) = customer.processor_customer {
            return Ok(pc);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(ApiError::ProcessorUnavailable("the processor customer is still being created".into()));
        }
        // Another server holds the lease: poll until it stored the id (or its lease ends).
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn create_processor_customer(state: &AppState, customer: &CustomerRow) -> ApiResult<String> {
    let mut metadata = Metadata::new();
    metadata.insert("kassa_customer_id".into(), customer.id.clone());
    let req = CreateCustomer { email: customer.email.clone(), name: customer.name.clone(), metadata };
    let key = crate::services::processor_keys::customer(&customer.id);
    match state.processor.create_customer(&req, &key).await {
        Ok(pc) => {
            let stored = db::set_processor_customer(state.store.writer(), &customer.id, &pc.id).await?;
            stored.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("processor customer not stored")))
        }
        Err(e) => {
            let retry_after = state.clock.now() + PROCESSOR_RETRY_SECS;
            db::release_processor_claim(state.store.writer(), &customer.id, retry_after).await?;
            Err(e.into())
        }
    }
}

// ---------------------------------------------------------------- admin

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCustomerInput {
    #[schema(format = Email)]
    pub email: Option<String>,
    pub name: Option<String>,
    /// The customer's id in the merchant's auth system (the JWT `sub`).
    pub external_id: Option<String>,
    /// Defaults to the default pricing model.
    pub pricing_model: Option<String>,
    #[serde(default)]
    pub metadata: Metadata,
    /// A test clock (test processor only): the customer lives at its frozen time, and its
    /// subscriptions renew when the clock is advanced.
    pub test_clock: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCustomerInput {
    #[schema(format = Email)]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "crate::services::catalog::double_option")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    pub pricing_model: Option<String>,
    pub metadata: Option<Metadata>,
}

pub fn email(param: &str, value: &str) -> ApiResult<String> {
    let v = value.trim();
    let valid = v.len() <= 254
        && !v.chars().any(char::is_whitespace)
        && v.split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.') && !domain.starts_with('.'));
    if valid { Ok(v.to_string()) } else { Err(ApiError::invalid(param, format!("{param} must be an email address."))) }
}

async fn check_pricing_model(tx: &mut Tx, id: &Option<String>) -> ApiResult<()> {
    if let Some(m) = id
        && (!IdKind::PricingModel.matches(m) || catalog::get_pricing_model(tx.conn(), m).await?.is_none())
    {
        return Err(ApiError::invalid("pricing_model", format!("No such pricing model: '{m}'")));
    }
    Ok(())
}

/// `POST /admin/customers`.
pub async fn create_from_admin(tx: &mut Tx, now: i64, input: CreateCustomerInput) -> ApiResult<Customer> {
    let email = input.email.as_deref().map(|e| email("email", e)).transpose()?;
    let name = validate::optional_text("name", input.name.as_deref(), 250)?;
    let external_id = validate::optional_text("external_id", input.external_id.as_deref(), 255)?;
    validate::metadata(&input.metadata)?;
    check_pricing_model(tx, &input.pricing_model).await?;
    let clock = match &input.test_clock {
        Some(id) => Some((id.clone(), test_clock_time(tx, id).await?)),
        None => None,
    };
    // A customer on a test clock is created at the clock's time (its first periods start there).
    let now = clock.as_ref().map_or(now, |(_, t)| *t);
    let draft = CustomerDraft {
        email,
        name,
        external_id: external_id.clone(),
        guest: false,
        email_verified: false,
        pricing_model: input.pricing_model,
        metadata: metadata_json(&input.metadata),
    };
    let (mut row, created) = create(tx, now, draft).await?;
    if !created {
        return Err(ApiError::conflict(
            "customer_exists",
            format!("Customer {} already has external_id '{}'.", row.id, external_id.unwrap_or_default()),
        ));
    }
    if let Some((clock, _)) = clock {
        kassa_store::billing::set_customer_test_clock(tx, &row.id, &clock).await?;
        row.test_clock = Some(clock);
    }
    Ok(row.into())
}

/// The frozen time of the test clock a new customer is put on; 400 naming `test_clock` when
/// there is no such clock.
async fn test_clock_time(tx: &mut Tx, id: &str) -> ApiResult<i64> {
    let row =
        if IdKind::TestClock.matches(id) { kassa_store::billing::get_test_clock(tx.conn(), id).await? } else { None };
    row.map(|r| r.frozen_time).ok_or_else(|| ApiError::invalid("test_clock", format!("No such test clock: '{id}'")))
}

pub async fn update_from_admin(tx: &mut Tx, now: i64, id: &str, input: UpdateCustomerInput) -> ApiResult<Customer> {
    validate::id(IdKind::Customer, "customer", id)?;
    check_pricing_model(tx, &input.pricing_model).await?;
    let mut patch = CustomerPatch {
        email: input.email.as_deref().map(|e| email("email", e)).transpose()?,
        name: match input.name {
            Some(n) => Some(validate::optional_text("name", n.as_deref(), 250)?),
            None => None,
        },
        pricing_model: input.pricing_model,
        metadata: None,
    };
    if let Some(m) = &input.metadata {
        validate::metadata(m)?;
        patch.metadata = Some(metadata_json(m));
    }
    let row = db::update(tx, id, &patch, now).await?.ok_or_else(|| ApiError::not_found("customer", id))?;
    let customer = Customer::from(row);
    events::record(tx, "customer.updated", &customer.id, &customer, now).await?;
    Ok(customer)
}

pub async fn get(state: &AppState, id: &str) -> ApiResult<Customer> {
    validate::id(IdKind::Customer, "customer", id)?;
    db::get(state.store.reader(), id).await?.map(Customer::from).ok_or_else(|| ApiError::not_found("customer", id))
}

/// `GET /admin/customers`, newest first, optionally by email (case-insensitive).
pub async fn list(state: &AppState, email: Option<&str>, page: &Page) -> ApiResult<Listed<Customer>> {
    Ok(db::list(state.store.reader(), email, page).await?.map(Customer::from))
}

/// A customer's subscriptions, newest first; 404 for an unknown customer.
pub async fn subscriptions(state: &AppState, id: &str, page: &Page) -> ApiResult<Listed<Subscription>> {
    get(state, id).await?;
    Ok(db::subscriptions_of(state.store.reader(), id, page).await?.map(Subscription::from))
}

// ---------------------------------------------------------------- store identities

/// The customer behind a verified token: found by `sub`; else, at first sight, a guest with
/// the same verified email becomes this customer; else created through [`create`].
pub async fn signed_in(state: &AppState, claims: &CustomerClaims) -> ApiResult<CustomerRow> {
    if let Some(c) = db::get_by_external_id(state.store.reader(), &claims.sub).await? {
        return Ok(c);
    }
    let now = state.clock.now();
    let email = claims.email.as_deref().and_then(|e| email("email", e).ok());
    let mut tx = state.store.begin().await?;
    if let (Some(email), true) = (&email, claims.email_verified)
        && let Some(guest) = db::find_guest(tx.conn(), email).await?
        && let Some(linked) = db::link_guest(&mut tx, &guest.id, &claims.sub, now).await?
    {
        let customer = Customer::from(linked.clone());
        events::record(&mut tx, "customer.updated", &customer.id, &customer, now).await?;
        tx.commit().await?;
        return Ok(linked);
    }
    let draft = CustomerDraft {
        email,
        name: claims.name.as_deref().and_then(|n| validate::optional_text("name", Some(n), 250).ok().flatten()),
        external_id: Some(claims.sub.clone()),
        guest: false,
        email_verified: claims.email_verified,
        pricing_model: None,
        metadata: "{}".into(),
    };
    let (row, created) = create(&mut tx, now, draft).await?;
    tx.commit().await?;
    if created {
        after_commit(state, &row.id);
    }
    Ok(row)
}

/// The guest customer for `email`, found or created (one per email).
pub async fn guest(tx: &mut Tx, now: i64, email_address: &str) -> ApiResult<(CustomerRow, bool)> {
    let email = email("email", email_address)?;
    // No lookup first: the insert does nothing when the email's guest exists (the unique index
    // `customers_one_guest_per_email`), and `create` then reads that guest. A new guest costs
    // one statement instead of two; a returning one two instead of one.
    let draft = CustomerDraft {
        email: Some(email),
        name: None,
        external_id: None,
        guest: true,
        email_verified: false,
        pricing_model: None,
        metadata: "{}".into(),
    };
    create(tx, now, draft).await
}
