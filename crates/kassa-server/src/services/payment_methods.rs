//! A customer's saved payment methods: kept at the processor (attached to the processor
//! customer), listed from there; Kassa stores only which one is the default.

use crate::error::{ApiError, ApiResult};
use crate::objects::billing::PaymentMethod;
use crate::services::{customers, processor_keys, validate};
use crate::state::AppState;
use kassa_domain::ids::IdKind;
use kassa_processors::ProcessorError;
use kassa_store::billing as db;
use kassa_store::customers::CustomerRow;
use serde::Deserialize;
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachInput {
    /// A processor payment method (`pm_…`), or under the test processor one of its test card
    /// shortcuts (`pm_card_visa`, `pm_card_chargeCustomerFail`, …).
    pub payment_method: String,
    /// Make it the customer's default (what subscriptions charge). The first saved one becomes
    /// the default anyway.
    pub default: Option<bool>,
}

async fn customer(state: &AppState, id: &str) -> ApiResult<CustomerRow> {
    validate::id(IdKind::Customer, "customer", id)?;
    kassa_store::customers::get(state.store.reader(), id).await?.ok_or_else(|| ApiError::not_found("customer", id))
}

/// A payment method id as the processor spells them: `pm_` and letters, digits, `_`.
fn payment_method_id(param: &str, id: &str) -> ApiResult<()> {
    let ok = id.starts_with("pm_") && id.len() <= 255 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok { Ok(()) } else { Err(ApiError::invalid(param, format!("'{id}' is no payment method id (pm_…)."))) }
}

fn refused(param: &str, e: ProcessorError) -> ApiError {
    match e {
        ProcessorError::InvalidRequest { message, .. } => ApiError::invalid(param, message),
        ProcessorError::NotFound(id) => ApiError::invalid(param, format!("No such payment method: '{id}'")),
        other => other.into(),
    }
}

/// Saves a payment method with the customer at the processor.
pub async fn attach(
    state: &AppState,
    customer_id: &str,
    request: &str,
    input: AttachInput,
) -> ApiResult<PaymentMethod> {
    let c = customer(state, customer_id).await?;
    payment_method_id("payment_method", &input.payment_method)?;
    let pc = customers::ensure_processor_customer(state, &c.id).await?;
    let key = processor_keys::attach_payment_method(&c.id, request);
    let pm = state
        .processor
        .attach_payment_method(&input.payment_method, &pc, &key)
        .await
        .map_err(|e| refused("payment_method", e))?;
    let mut default = c.default_payment_method.clone();
    if input.default.unwrap_or(false) || default.is_none() {
        let mut tx = state.store.begin().await?;
        db::set_default_payment_method(&mut tx, &c.id, Some(&pm.id), state.clock.now()).await?;
        tx.commit().await?;
        default = Some(pm.id.clone());
    }
    Ok(PaymentMethod::of(pm, Some(&c.id), default.as_deref()))
}

/// The customer's saved payment methods.
pub async fn list(state: &AppState, customer_id: &str) -> ApiResult<Vec<PaymentMethod>> {
    let c = customer(state, customer_id).await?;
    let Some(pc) = c.processor_customer.clone() else { return Ok(Vec::new()) };
    let methods = state.processor.list_payment_methods(&pc).await?;
    Ok(methods.into_iter().map(|pm| PaymentMethod::of(pm, Some(&c.id), c.default_payment_method.as_deref())).collect())
}

/// Checks that `pm` is saved with the customer (400 naming `param` otherwise).
pub async fn ensure_saved(state: &AppState, c: &CustomerRow, param: &str, pm: &str) -> ApiResult<()> {
    payment_method_id(param, pm)?;
    let Some(pc) = c.processor_customer.clone() else {
        return Err(ApiError::invalid(param, format!("The payment method '{pm}' is not saved with this customer.")));
    };
    let methods = state.processor.list_payment_methods(&pc).await?;
    if methods.iter().any(|m| m.id == pm) {
        Ok(())
    } else {
        Err(ApiError::invalid(param, format!("The payment method '{pm}' is not saved with this customer.")))
    }
}

/// Forgets a saved payment method (and the default when it was).
pub async fn detach(state: &AppState, customer_id: &str, pm: &str) -> ApiResult<PaymentMethod> {
    let c = customer(state, customer_id).await?;
    ensure_saved(state, &c, "payment_method", pm).await?;
    let detached = state
        .processor
        .detach_payment_method(pm, &processor_keys::detach_payment_method(pm))
        .await
        .map_err(|e| refused("payment_method", e))?;
    if c.default_payment_method.as_deref() == Some(pm) {
        let mut tx = state.store.begin().await?;
        db::set_default_payment_method(&mut tx, &c.id, None, state.clock.now()).await?;
        tx.commit().await?;
    }
    Ok(PaymentMethod::of(detached, None, None))
}

/// Makes a saved payment method the customer's default.
pub async fn set_default(state: &AppState, customer_id: &str, pm: &str) -> ApiResult<PaymentMethod> {
    let c = customer(state, customer_id).await?;
    ensure_saved(state, &c, "payment_method", pm).await?;
    let mut tx = state.store.begin().await?;
    db::set_default_payment_method(&mut tx, &c.id, Some(pm), state.clock.now()).await?;
    tx.commit().await?;
    let methods = state.processor.list_payment_methods(c.processor_customer.as_deref().unwrap_or_default()).await?;
    let found = methods.into_iter().find(|m| m.id == pm).ok_or_else(|| ApiError::not_found("payment_method", pm))?;
    Ok(PaymentMethod::of(found, Some(&c.id), Some(pm)))
}
