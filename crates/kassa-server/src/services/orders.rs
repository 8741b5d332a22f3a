//! Orders after checkout: capture, cancel, refund, fulfil. Every change records an event.

use crate::error::{ApiError, ApiResult};
use crate::objects::commerce::{Order, Refund};
use crate::services::access::Caller;
use crate::services::validate;
use crate::state::AppState;
use kassa_domain::ids::IdKind;
use kassa_processors::{CreateRefund, IdempotencyKey, Metadata, ProcessorError};
use kassa_store::orders::{self as db, OrderRow, RefundRow};
use kassa_store::sql::{Listed, Page};
use kassa_store::{Store, Tx, carts, events, payments};
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

async fn record(tx: &mut Tx, kind: &str, order: &OrderRow, now: i64) -> ApiResult<Order> {
    let lines = db::lines(tx.conn(), &order.id).await?;
    let o = Order::from_rows(order.clone(), lines);
    events::record(tx, kind, &o.id, &o, now).await?;
    Ok(o)
}

fn intent_of(p: &kassa_store::payments::PaymentRow) -> ApiResult<String> {
    p.processor_payment_intent
        .clone()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("payment {} has no PaymentIntent", p.id)))
}

/// Captures an authorized order (fully, or partially releasing the rest).
pub async fn capture(state: &AppState, id: &str, input: CaptureInput) -> ApiResult<Order> {
    let order = load(&state.store, id).await?;
    if order.status == "canceled" || order.payment_status != "authorized" {
        return Err(ApiError::conflict(
            "order_not_capturable",
            format!("Only authorized orders can be captured; this one is {}.", order.payment_status),
        ));
    }
    let amount = input.amount.unwrap_or(order.amount_authorized);
    if amount <= 0 || amount > order.amount_authorized {
        return Err(ApiError::invalid("amount", format!("amount must be between 1 and {}.", order.amount_authorized)));
    }
    let payment = payments::get(state.store.reader(), &order.payment)
        .await?
        .ok_or_else(|| ApiError::not_found("payment", &order.payment))?;
    // One capture per PaymentIntent, as at the processor: the key is the payment's.
    let key = IdempotencyKey::new(format!("kassa_capture_{}", payment.id));
    let pi =
        state.processor.capture_payment_intent(&intent_of(&payment)?, Some(amount), &key).await.map_err(
            |e| match e {
                ProcessorError::InvalidRequest { message, .. } => ApiError::conflict("order_not_capturable", message),
                other => other.into(),
            },
        )?;
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    let mut o = db::lock(&mut tx, id).await?.ok_or_else(|| ApiError::not_found("order", id))?;
    if o.payment_status == "authorized" {
        o.payment_status = "captured".into();
        o.amount_captured = pi.amount_received;
        o.updated = now;
        db::save(&mut tx, &o).await?;
        if let Some(mut p) = payments::lock(&mut tx, &payment.id).await? {
            p.status = "succeeded".into();
            p.amount_captured = pi.amount_received;
            p.amount_capturable = 0;
            p.updated = now;
            payments::save(&mut tx, &p).await?;
        }
        let result = record(&mut tx, "order.captured", &o, now).await?;
        tx.commit().await?;
        return Ok(result);
    }
    tx.commit().await?;
    load(&state.store, id).await
}

/// Cancels an unfulfilled order: releases the authorization (or refunds what was captured)
/// and puts its stock back.
pub async fn cancel(state: &AppState, id: &str) -> ApiResult<Order> {
    let order = load(&state.store, id).await?;
    if order.status == "canceled" {
        return Ok(order);
    }
    if order.fulfillment_status == "fulfilled" {
        return Err(ApiError::conflict("order_fulfilled", "A fulfilled order cannot be canceled; refund it instead."));
    }
    let payment = payments::get(state.store.reader(), &order.payment)
        .await?
        .ok_or_else(|| ApiError::not_found("payment", &order.payment))?;
    if order.payment_status == "authorized" {
        let key = IdempotencyKey::new(format!("kassa_cancel_{}", payment.id));
        state.processor.cancel_payment_intent(&intent_of(&payment)?, &key).await.map_err(|e| match e {
            ProcessorError::InvalidRequest { message, .. } => ApiError::conflict("order_not_cancelable", message),
            other => other.into(),
        })?;
    } else if order.amount_captured > order.amount_refunded {
        let r = refund(state, id, RefundInput { amount: None, reason: Some("order canceled".into()) }).await?;
        if r.status != "succeeded" {
            return Err(ApiError::ProcessorUnavailable("the refund is pending; cancel again once it succeeded".into()));
        }
    }
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    let result = record_canceled(&mut tx, id, now).await?;
    tx.commit().await?;
    match result {
        Some(order) => Ok(order),
        None => load(&state.store, id).await,
    }
}

/// Records an order as canceled (its authorization released or its charge refunded before):
/// payment status, stock back, `order.canceled`. Used by the admin cancel and by the
/// processor telling that an authorization ended (a webhook, e.g. after Stripe let an
/// uncaptured payment expire). Returns `None` when it was canceled already.
pub async fn record_canceled(tx: &mut Tx, id: &str, now: i64) -> ApiResult<Option<Order>> {
    let mut o = db::lock(tx, id).await?.ok_or_else(|| ApiError::not_found("order", id))?;
    if o.status == "canceled" {
        return Ok(None);
    }
    o.status = "canceled".into();
    if o.payment_status == "authorized" {
        o.payment_status = "canceled".into();
        if let Some(mut p) = payments::lock(tx, &o.payment).await? {
            p.status = "canceled".into();
            p.amount_capturable = 0;
            p.updated = now;
            payments::save(tx, &p).await?;
        }
    }
    o.updated = now;
    db::save(tx, &o).await?;
    for line in db::lines(tx.conn(), id).await?.into_iter().filter(|l| l.stocked > 0) {
        carts::restock(tx, &line.product, line.stocked, now).await?;
    }
    Ok(Some(record(tx, "order.canceled", &o, now).await?))
}

/// Refunds part or all of what was captured. The amount is set aside atomically before the
/// processor call, so concurrent refunds never add up to more than was captured; the
/// processor call's idempotency key is the refund's id, so retrying a pending refund (the
/// refund job does) never refunds twice.
pub async fn refund(state: &AppState, id: &str, input: RefundInput) -> ApiResult<Refund> {
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
        status: "pending".into(),
        reason,
        processor_refund: None,
        failure_message: None,
        created: now,
        updated: now,
    };
    let mut tx = state.store.begin().await?;
    if !db::reserve_refund(&mut tx, id, amount, now).await? {
        return Err(ApiError::invalid(
            "amount",
            format!(
                "amount exceeds what can be refunded ({} captured, {} refunded).",
                order.amount_captured, order.amount_refunded
            ),
        ));
    }
    db::insert_refund(&mut tx, &refund).await?;
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
    let key = IdempotencyKey::new(format!("kassa_refund_{}", refund.id));
    let outcome = state.processor.create_refund(&req, &key).await;
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    let result = match outcome {
        Ok(r) => {
            if db::settle_refund(&mut tx, &refund.id, "succeeded", Some(&r.id), None, now).await?
                && let Some(order_id) = &refund.order_id
                && let Some(mut o) = db::lock(&mut tx, order_id).await?
            {
                o.payment_status =
                    if o.amount_refunded >= o.amount_captured { "refunded" } else { "partially_refunded" }.into();
                o.updated = now;
                db::save(&mut tx, &o).await?;
                if let Some(mut p) = payments::lock(&mut tx, &payment.id).await? {
                    p.amount_refunded += refund.amount;
                    p.updated = now;
                    payments::save(&mut tx, &p).await?;
                }
                record(&mut tx, "order.refunded", &o, now).await?;
            }
            Ok(())
        }
        Err(ProcessorError::Unavailable(m)) => {
            tracing::warn!(refund = %refund.id, error = %m, "refund pending: the processor is unavailable; the refund job retries");
            Ok(())
        }
        Err(e) => {
            let message = e.to_string();
            if db::settle_refund(&mut tx, &refund.id, "failed", None, Some(&message), now).await?
                && let Some(order_id) = &refund.order_id
            {
                db::unreserve_refund(&mut tx, order_id, refund.amount, now).await?;
            }
            Err(ApiError::conflict("refund_failed", format!("The processor refused the refund: {message}")))
        }
    };
    let stored = db::refunds_of(tx.conn(), refund.order_id.as_deref().unwrap_or_default())
        .await?
        .into_iter()
        .find(|r| r.id == refund.id);
    if let Some(r) = &stored {
        events::record(&mut tx, &format!("refund.{}", r.status), &r.id, &Refund::from(r.clone()), now).await?;
    }
    tx.commit().await?;
    result?;
    Ok(stored.map(Refund::from).unwrap_or_else(|| Refund::from(refund.clone())))
}

pub async fn fulfill(tx: &mut Tx, now: i64, id: &str) -> ApiResult<Order> {
    validate::id(IdKind::Order, "order", id)?;
    let mut o = db::lock(tx, id).await?.ok_or_else(|| ApiError::not_found("order", id))?;
    if o.status == "canceled" {
        return Err(ApiError::conflict("order_canceled", "A canceled order cannot be fulfilled."));
    }
    if o.fulfillment_status == "fulfilled" {
        return Err(ApiError::conflict("order_fulfilled", "The order is fulfilled already."));
    }
    o.fulfillment_status = "fulfilled".into();
    if o.payment_status != "authorized" {
        o.status = "completed".into();
    }
    o.updated = now;
    db::save(tx, &o).await?;
    record(tx, "order.fulfilled", &o, now).await
}

pub async fn refunds(store: &Store, id: &str) -> ApiResult<Vec<Refund>> {
    load(store, id).await?;
    Ok(db::refunds_of(store.reader(), id).await?.into_iter().map(Refund::from).collect())
}
