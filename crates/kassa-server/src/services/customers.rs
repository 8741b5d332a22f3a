//! Customers: the one creation path, signed-in and guest identities, and the processor
//! customer every payment is attached to.

use crate::error::{ApiError, ApiResult};
use crate::objects::customer::{Customer, Shapes};
use crate::objects::{Metadata, metadata_json};
use crate::services::validate;
use crate::state::AppState;
use kassa_domain::ids::IdKind;
use kassa_processors::CreateCustomer;
use kassa_store::customers::{self as db, CustomerDraft, CustomerPatch, CustomerRow};
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
/// of a signed-in customer and guest checkout alike. In the caller's transaction: the row, the
/// default pricing model, the free default subscription, the events (see
/// `kassa_store::customers::create`). Returns the existing customer when the external id or
/// guest email is taken (`created` false). After commit, call [`after_commit`].
pub async fn create(tx: &mut Tx, now: i64, draft: CustomerDraft) -> ApiResult<(CustomerRow, bool)> {
    let created = db::create(tx, draft, now, &Shapes).await?;
    Ok((created.customer, created.created))
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
    use futures::FutureExt;
    type Shared = futures::future::Shared<futures::future::BoxFuture<'static, Result<String, String>>>;
    static IN_FLIGHT: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<String, Shared>>> =
        std::sync::LazyLock::new(Default::default);

    if let Some(pc) = db::get(state.store.reader(), customer_id).await?.and_then(|c| c.processor_customer) {
        return Ok(pc);
    }
    let shared = {
        let mut map = IN_FLIGHT.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(customer_id.to_string())
            .or_insert_with(|| {
                let (state, id) = (state.clone(), customer_id.to_string());
                async move {
                    let result = ensure_once(&state, &id).await;
                    IN_FLIGHT.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                    result.map_err(|e| e.to_string())
                }
                .boxed()
                .shared()
            })
            .clone()
    };
    // The error crossed a shared future as text; the processor being unreachable is the
    // one failure callers act on.
    shared.await.map_err(ApiError::ProcessorUnavailable)
}

async fn ensure_once(state: &AppState, customer_id: &str) -> ApiResult<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(PROCESSOR_CLAIM_SECS as u64 + 5);
    loop {
        let customer = db::get(state.store.reader(), customer_id)
            .await?
            .ok_or_else(|| ApiError::not_found("customer", customer_id))?;
        if let Some(pc) = customer.processor_customer {
            return Ok(pc);
        }
        let now = state.clock.now();
        if db::claim_processor_customer(state.store.writer(), customer_id, now, now + PROCESSOR_CLAIM_SECS).await? {
            return create_processor_customer(state, &customer).await;
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
            let mut tx = state.store.begin().await?;
            let stored = db::set_processor_customer(&mut tx, &customer.id, &pc.id).await?;
            tx.commit().await?;
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

#[derive(Debug, Deserialize, ToSchema)]
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
}

#[derive(Debug, Deserialize, ToSchema)]
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
    let draft = CustomerDraft {
        email,
        name,
        external_id: external_id.clone(),
        guest: false,
        email_verified: false,
        pricing_model: input.pricing_model,
        metadata: metadata_json(&input.metadata),
    };
    let (row, created) = create(tx, now, draft).await?;
    if !created {
        return Err(ApiError::conflict(
            "customer_exists",
            format!("Customer {} already has external_id '{}'.", row.id, external_id.unwrap_or_default()),
        ));
    }
    Ok(row.into())
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

// ---------------------------------------------------------------- store identities

/// Claims of the merchant's customer JWT that Kassa reads.
#[derive(Debug, Clone, Deserialize)]
pub struct CustomerClaims {
    pub sub: String,
    pub email: Option<String>,
    #[serde(default)]
    pub email_verified: bool,
    pub name: Option<String>,
}

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
    if let Some(c) = db::find_guest(tx.conn(), &email).await? {
        return Ok((c, false));
    }
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
