//! Orders after checkout: capture, cancel, refund, fulfil. Every change records an event.

use crate::error::{ApiError, ApiResult};
use crate::objects::commerce::{Order, Refund};
use crate::services::access::Caller;
use crate::services::audit::{self, AuditRecord};
use crate::services::settlement::{self, Release};
use crate::services::{processor_keys, validate};
use crate::state::AppState;
use kassa_domain::ids::IdKind;
use kassa_domain::lifecycle::order::{self as machine, CancelPlan, OrderInput, OrderStatus};
use kassa_domain::lifecycle::refund::{self as refund_machine, RefundEffect, RefundOutcome, RefundStatus};
use kassa_processors::{CreateRefund, Metadata, ProcessorError};
use kassa_store::orders::{self as db, OrderRow, RefundRow};
use kassa_store::sql::{Listed, Page};
use kassa_store::{Store, Tx, events, payments};
use serde::Deserialize;
use utoipa::ToSchema;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureInput {
    /// Up to the authorized amount; less is a partial capture (the rest is released).
    #[schema(minimum = 1, maximum = 99_999_999)]
    pub amount: Option<i64>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundInput {
    /// Default: everything captured and not yet refunded; never more.
    #[schema(minimum = 1, maximum = 99_999_999)]
    pub amount: Option<i64>,
    pub reason: Option<String>,
}

pub async fn load(store: &Store, id: &str) -> ApiResult<Order> {
    validate::id(IdKind::Order, "order", id)?;
    let order = db::get(store.reader(), id).await?.ok_or_else(|| ApiError::not_found("order", id))?;
    let lines = db::lines(store.reader(), id).await?;
    Ok(Order::from_rows(order, lines))
}

/// An order the store API may show: its customer's, signed in, or to whoever presents the
/// client secret of the cart it was paid from (see `services::access`). An order has no
/// secret of its own: orders are also made off-request (webhooks, hosted pages, 3-D Secure),
/// where no answer could hand a new secret to the guest, and the guest already holds the
/// cart's.
pub async fn load_for_shopper(state: &AppState, caller: Caller<'_>, id: &str) -> ApiResult<Order> {
    validate::id(IdKind::Order, "order", id)?;
    let found = db::get_with_cart_secret(state.store.reader(), id)
        .await?
        .filter(|f| caller.may_reach(Some(&f.order.customer), &[f.cart_secret_hash.as_deref()]))
        .ok_or_else(|| ApiError::not_found("order", id))?;
    let lines = db::lines(state.store.reader(), id).await?;
    Ok(Order::from_rows(found.order, lines))
}

pub async fn list(store: &Store, customer: Option<&str>, page: &Page) -> ApiResult<Listed<Order>> {
    let listed = db::list(store.reader(), customer, page).await?;
    let ids: Vec<String> = listed.data.iter().map(|o| o.id.clone()).collect();
    let mut lines = db::lines_of(store.reader(), &ids).await?;
    Ok(listed.map(|o| {
        let (mine, rest): (Vec<_>, Vec<_>) = lines.drain(..).partition(|l| l.order_id == o.id);
        lines = rest;
        Order::from_rows(o, mine)
    }))
}

/// The order's row (the state its machine reads).
async fn row(store: &Store, id: &str) -> ApiResult<OrderRow> {
    validate::id(IdKind::Order, "order", id)?;
    db::get(store.reader(), id).await?.ok_or_else(|| ApiError::not_found("order", id))
}

fn intent_of(p: &kassa_store::payments::PaymentRow) -> ApiResult<String> {
    p.processor_payment_intent
        .clone()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("payment {} has no PaymentIntent", p.id)))
}

/// Captures an authorized order (fully, or partially releasing the rest). `audit` (who asked,
/// from the dashboard) commits with the captured order.
pub async fn capture(state: &AppState, id: &str, input: CaptureInput, audit: Option<&AuditRecord>) -> ApiResult<Order> {
    let order = row(&state.store, id).await?;
    let amount = machine::capture_amount(&order.state(), input.amount).map_err(|r| match r.code {
        "amount_invalid" => ApiError::invalid("amount", r.message),
        _ => r.into(),
    })?;
    let payment = payments::get(state.store.reader(), &order.payment)
        .await?
        .ok_or_else(|| ApiError::not_found("payment", &order.payment))?;
    let pi = state
        .processor
        .capture_payment_intent(&intent_of(&payment)?, Some(amount), &processor_keys::capture(&payment.id))
        .await
        .map_err(|e| match e {
            ProcessorError::InvalidRequest { message, .. } => ApiError::conflict("order_not_capturable", message),
            other => other.into(),
        })?;
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    let mut o = db::lock(&mut tx, id).await?.ok_or_else(|| ApiError::not_found("order", id))?;
    let t = machine::transition(&o.state(), &OrderInput::Captured { amount_captured: pi.amount_received })?;
    audit::write(audit, &mut tx, now).await?;
    if t.next == o.state() {
        tx.commit().await?;
        return load(&state.store, id).await;
    }
    o.set_state(&t.next);
    o.updated = now;
    db::save(&mut tx, &o).await?;
    settlement::payment_captured(&mut tx, &payment.id, pi.amount_received, now).await?;
    let result = settlement::order_effects(&mut tx, &o, &t.effects, now).await?;
    tx.commit().await?;
    match result {
        Some(order) => Ok(order),
        None => load(&state.store, id).await,
    }
}

/// Cancels an unfulfilled order: releases the authorization (or refunds what was captured)
/// and puts its stock back. `audit` commits with the first change (the refund's reservation,
/// or the cancellation).
pub async fn cancel(state: &AppState, id: &str, audit: Option<&AuditRecord>) -> ApiResult<Order> {
    let order = row(&state.store, id).await?;
    let plan = machine::cancel_plan(&order.state())?;
    let payment = match plan {
        CancelPlan::AlreadyCanceled => return load(&state.store, id).await,
        _ => payments::get(state.store.reader(), &order.payment)
            .await?
            .ok_or_else(|| ApiError::not_found("payment", &order.payment))?,
    };
    match plan {
        CancelPlan::ReleaseAuthorization => {
            let key = processor_keys::cancel(&payment.id);
            state.processor.cancel_payment_intent(&intent_of(&payment)?, &key).await.map_err(|e| match e {
                ProcessorError::InvalidRequest { message, .. } => ApiError::conflict("order_not_cancelable", message),
                other => other.into(),
            })?;
        }
        CancelPlan::RefundRemaining => {
            let input = RefundInput { amount: None, reason: Some("order canceled".into()) };
            let r = refund(state, id, input, audit).await?;
            if r.status != RefundStatus::Succeeded.as_str() {
                return Err(ApiError::ProcessorUnavailable(
                    "the refund is pending; cancel again once it succeeded".into(),
                ));
            }
        }
        CancelPlan::AlreadyCanceled | CancelPlan::CancelOnly => {}
    }
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    let result = settlement::cancel_order(&mut tx, id, Release::Here, now).await?;
    audit::write(audit, &mut tx, now).await?;
    tx.commit().await?;
    match result {
        Some(order) => Ok(order),
        None => load(&state.store, id).await,
    }
}

/// Refunds part or all of what was captured. The amount is set aside atomically before the
/// processor call, so concurrent refunds never add up to more than was captured; the
/// processor call's idempotency key is the refund's id, so retrying a pending refund (the
/// refund job does) never refunds twice. `audit` commits with the reservation: from then on
/// the refund happens (the refund job finishes it), so that is when it is recorded.
pub async fn refund(state: &AppState, id: &str, input: RefundInput, audit: Option<&AuditRecord>) -> ApiResult<Refund> {
    let order = load(&state.store, id).await?;
    let reason = validate::optional_text("reason", input.reason.as_deref(), 500)?;
    if let Some(a) = input.amount {
        validate::int_in("amount", a, 1..=state.settings.checkout.max_amount)?;
    }
    let refundable = order.amount_captured - order.amount_refunded;
    let amount = input.amount.unwrap_or(refundable);
    if amount <= 0 {
        return Err(ApiError::invalid("amount", "Nothing to refund: amount must be positive and the order captured."));
    }
    let now = state.clock.now();
    let refund = RefundRow {
        id: IdKind::Refund.new_id(),
        order_id: Some(order.id.clone()),
        payment: order.payment.clone(),
        amount,
        currency: order.currency.clone(),
        status: RefundStatus::Pending,
        reason,
        processor_refund: None,
        failure_message: None,
        created: now,
        updated: now,
    };
    let mut tx = state.store.begin().await?;
    if !db::reserve_refund(&mut tx, id, amount, OrderStatus::Canceled, now).await? {
        return Err(ApiError::invalid(
            "amount",
            format!(
                "amount exceeds what can be refunded ({} captured, {} refunded).",
                order.amount_captured, order.amount_refunded
            ),
        ));
    }
    db::insert_refund(&mut tx, &refund).await?;
    audit::write(audit, &mut tx, now).await?;
    tx.commit().await?;
    execute_refund(state, &refund).await
}

/// Makes (or repeats) the processor call of a pending refund and settles it.
pub async fn execute_refund(state: &AppState, refund: &RefundRow) -> ApiResult<Refund> {
    let payment = payments::get(state.store.reader(), &refund.payment)
        .await?
        .ok_or_else(|| ApiError::not_found("payment", &refund.payment))?;
    let mut metadata = Metadata::new();
    metadata.insert("kassa_refund_id".into(), refund.id.clone());
    let req = CreateRefund { payment_intent: intent_of(&payment)?, amount: Some(refund.amount), metadata };
    let outcome = state.processor.create_refund(&req, &processor_keys::refund(&refund.id)).await;
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    let (result, settled, processor_refund, failure) = match outcome {
        Ok(r) => (Ok(()), RefundOutcome::Succeeded, Some(r.id), None),
        Err(ProcessorError::Unavailable(m)) => {
            tracing::warn!(refund = %refund.id, error = %m, "refund pending: the processor is unavailable; the refund job retries");
            (Ok(()), RefundOutcome::Unknown, None, None)
        }
        Err(e) => {
            let message = e.to_string();
            let refused = ApiError::conflict("refund_failed", format!("The processor refused the refund: {message}"));
            (Err(refused), RefundOutcome::Refused, None, Some(message))
        }
    };
    // Settled once, whoever gets here first (the request or the refund job).
    if let Some((to, effect)) = refund_machine::settle(RefundStatus::Pending, settled)
        && db::settle_refund(
            &mut tx,
            &refund.id,
            RefundStatus::Pending,
            to,
            processor_refund.as_deref(),
            failure.as_deref(),
            now,
        )
        .await?
        && let Some(order_id) = &refund.order_id
    {
        match effect {
            RefundEffect::SettleOrder => {
                if let Some(mut o) = db::lock(&mut tx, order_id).await? {
                    let settled = OrderInput::RefundSettled { amount_refunded: o.amount_refunded };
                    let t = machine::transition(&o.state(), &settled)?;
                    o.set_state(&t.next);
                    o.updated = now;
                    db::save(&mut tx, &o).await?;
                    settlement::payment_refunded(&mut tx, &payment.id, refund.amount, now).await?;
                    settlement::order_effects(&mut tx, &o, &t.effects, now).await?;
                }
            }
            RefundEffect::ReleaseReservation => db::unreserve_refund(&mut tx, order_id, refund.amount, now).await?,
        }
    }
    let stored = db::refunds_of(tx.conn(), refund.order_id.as_deref().unwrap_or_default())
        .await?
        .into_iter()
        .find(|r| r.id == refund.id);
    if let Some(r) = &stored {
        events::record(&mut tx, r.status.event_kind(), &r.id, &Refund::from(r.clone()), now).await?;
    }
    tx.commit().await?;
    result?;
    Ok(stored.map(Refund::from).unwrap_or_else(|| Refund::from(refund.clone())))
}

pub async fn fulfill(tx: &mut Tx, now: i64, id: &str) -> ApiResult<Order> {
    validate::id(IdKind::Order, "order", id)?;
    let mut o = db::lock(tx, id).await?.ok_or_else(|| ApiError::not_found("order", id))?;
    let t = machine::transition(&o.state(), &OrderInput::Fulfilled)?;
    o.set_state(&t.next);
    o.updated = now;
    db::save(tx, &o).await?;
    match settlement::order_effects(tx, &o, &t.effects, now).await? {
        Some(order) => Ok(order),
        None => Ok(Order::from_rows(o, db::lines(tx.conn(), id).await?)),
    }
}

pub async fn refunds(store: &Store, id: &str) -> ApiResult<Vec<Refund>> {
    load(store, id).await?;
    Ok(db::refunds_of(store.reader(), id).await?.into_iter().map(Refund::from).collect())
}
