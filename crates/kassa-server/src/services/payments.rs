//! The exactly-once core: applying the processor's current view of a PaymentIntent to its
//! Kassa payment. The single-shot pay call, inbound webhooks, hosted checkout completion and
//! reconciliation all end here, as often as they like, in any order: every transition is
//! guarded by the payment's current status under its row lock, and the order is created in
//! the same transaction that completes the cart, decrements stock and records the events
//! (and, for a webhook, the event's dedupe record).
//!
//! A payment keeps one PaymentIntent: the first one recorded for it. Any other PaymentIntent
//! carrying its `kassa_payment_id` that holds money — a repeated processor call the processor
//! did not deduplicate (localstripe never does; Stripe no longer does once the key expired),
//! or anything else made with Kassa's metadata — is a duplicate charge: noticed here, in the
//! transaction that applies it, as a payment row of its own (`void_pending`, reason
//! `duplicate_charge`), which the void job gives back like any payment that cannot become an
//! order. Whoever notices it first — the pay call, a webhook, `kassa reconcile` — records
//! it; the PaymentIntent id is unique, so it is recorded (and given back) once.

use crate::error::{ApiError, ApiResult};
use crate::objects::commerce::{Order, Payment};
use crate::state::AppState;
use kassa_domain::ids::IdKind;
use kassa_processors::{Event, PaymentIntent, PaymentIntentStatus};
use kassa_store::carts::{self, CartRow};
use kassa_store::orders::{self, OrderLineRow, OrderRow};
use kassa_store::payments::{self, PaymentRow};
use kassa_store::{Tx, events, processor_events};

/// `GET /admin/payments`: every attempt, newest first, optionally of one customer or status.
pub async fn list(
    state: &AppState,
    customer: Option<&str>,
    status: Option<&str>,
    page: &kassa_store::sql::Page,
) -> ApiResult<kassa_store::sql::Listed<Payment>> {
    Ok(kassa_store::payments::list(state.store.reader(), customer, status, page).await?.map(Payment::from))
}

/// `GET /admin/payments/{id}`.
pub async fn get(state: &AppState, id: &str) -> ApiResult<Payment> {
    crate::services::validate::id(IdKind::Payment, "payment", id)?;
    let row = kassa_store::payments::get(state.store.reader(), id).await?;
    row.map(Payment::from).ok_or_else(|| ApiError::not_found("payment", id))
}

/// Statuses that mean the money is secured (or being given back).
pub fn is_secured(status: &str) -> bool {
    matches!(status, "succeeded" | "authorized" | "void_pending" | "voided")
}

/// Whether the payment's outcome is still open.
pub fn is_unsettled(status: &str) -> bool {
    matches!(status, "pending" | "requires_action" | "processing")
}

/// What a request holding a payment's processor call needs besides the call's deadline: time
/// to record the outcome.
const LEASE_GRACE_SECS: i64 = 5;

/// Until when a request that starts `calls` processor calls about a payment now holds it:
/// past their deadlines (its caller has given up waiting by then) plus the time to record what
/// they answered. Another request may repeat them only after that.
pub fn lease_until(state: &AppState, now: i64, calls: i64) -> i64 {
    now + calls * state.settings.processor.call_deadline_secs as i64 + LEASE_GRACE_SECS
}

/// Applies `pi` (the processor's current state) to the payment. With `event`, records the
/// event's dedupe row in the same transaction and does nothing if it was recorded before;
/// returns `None` then.
pub async fn apply_intent(
    state: &AppState,
    payment_id: &str,
    pi: &PaymentIntent,
    event: Option<&Event>,
) -> ApiResult<Option<PaymentRow>> {
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    if let Some(ev) = event
        && !processor_events::record(&mut tx, &ev.id, &ev.kind, now).await?
    {
        return Ok(None);
    }
    let p = apply_in(&mut tx, payment_id, pi, now).await?;
    tx.commit().await?;
    Ok(Some(p))
}

/// [`apply_intent`] inside the caller's transaction (which commits it with its own work).
pub async fn apply_in(tx: &mut Tx, payment_id: &str, pi: &PaymentIntent, now: i64) -> ApiResult<PaymentRow> {
    Ok(apply(tx, payment_id, pi, now).await?.0)
}

/// [`apply_intent`] for the pay call, which answers with the order it created (without
/// reading it back).
pub async fn apply_returning_order(
    state: &AppState,
    payment_id: &str,
    pi: &PaymentIntent,
) -> ApiResult<(PaymentRow, Option<Order>)> {
    let mut tx = state.store.begin().await?;
    let applied = apply(&mut tx, payment_id, pi, state.clock.now()).await?;
    tx.commit().await?;
    Ok(applied)
}

async fn apply(tx: &mut Tx, payment_id: &str, pi: &PaymentIntent, now: i64) -> ApiResult<(PaymentRow, Option<Order>)> {
    let tx = &mut *tx;
    let mut created = None;
    // Lock order everywhere: cart, then payment, then order.
    let unlocked =
        payments::get(tx.conn(), payment_id).await?.ok_or_else(|| ApiError::not_found("payment", payment_id))?;
    let mut cart = match &unlocked.cart {
        Some(id) => carts::lock(tx, id).await?,
        None => None,
    };
    let mut p = payments::lock(tx, payment_id).await?.ok_or_else(|| ApiError::not_found("payment", payment_id))?;
    if let Some(kept) = &p.processor_payment_intent
        && *kept != pi.id
    {
        record_duplicate(tx, &p, pi, now).await?;
        return Ok((p, None));
    }
    let unchanged = p.clone();
    let before = p.status.clone();
    if p.processor_payment_intent.is_none() {
        p.processor_payment_intent = Some(pi.id.clone());
    }
    use PaymentIntentStatus::*;
    match pi.status {
        Succeeded | RequiresCapture => {
            let secured = if pi.status == Succeeded { "succeeded" } else { "authorized" };
            p.amount_capturable = pi.amount_capturable;
            p.amount_captured = pi.amount_received;
            if p.status == "authorized" && pi.status == Succeeded {
                // Captured outside Kassa (the processor's dashboard).
                p.status = "succeeded".into();
                if let Some(mut order) = orders::by_payment(tx.conn(), &p.id).await? {
                    order.amount_captured = pi.amount_received;
                    order.payment_status = "captured".into();
                    order.updated = now;
                    orders::save(tx, &order).await?;
                }
            } else if !is_secured(&p.status) {
                p.status = secured.into();
                p.next_action_url = None;
                p.failure_code = None;
                p.decline_code = None;
                p.failure_message = None;
                match (p.purpose.as_str(), cart.as_mut()) {
                    ("order", Some(cart)) => created = secure_order(tx, cart, &mut p, pi, now).await?,
                    ("credits", _) => crate::services::credits::top_up_paid(tx, &p, now).await?,
                    _ => return Err(ApiError::Internal(anyhow::anyhow!("payment {} has no cart", p.id))),
                }
            }
        }
        RequiresAction => {
            if is_unsettled(&p.status) {
                p.status = "requires_action".into();
                p.next_action_url = pi.next_action.as_ref().map(|a| a.redirect_url.clone());
            }
        }
        Processing => {
            if matches!(p.status.as_str(), "pending" | "requires_action") {
                p.status = "processing".into();
                p.next_action_url = None;
            }
        }
        RequiresPaymentMethod | RequiresConfirmation => {
            if is_unsettled(&p.status) {
                p.status = "failed".into();
                p.next_action_url = None;
                let e = pi.last_payment_error.clone();
                p.failure_code = Some(e.as_ref().map(|e| e.code.clone()).unwrap_or_else(|| "payment_failed".into()));
                p.decline_code = e.as_ref().and_then(|e| e.decline_code.clone());
                p.failure_message = e.map(|e| e.message);
            }
        }
        Canceled => {
            if is_unsettled(&p.status) || p.status == "failed" {
                p.status = "canceled".into();
                p.next_action_url = None;
            } else if p.status == "authorized" {
                // The authorization ended at the processor (canceled there, or expired
                // uncaptured): the order is canceled as if the merchant had done it.
                if let Some(order) = orders::by_payment(tx.conn(), &p.id).await? {
                    crate::services::orders::record_canceled(tx, &order.id, now).await?;
                }
                p.status = "canceled".into();
                p.amount_capturable = 0;
            }
        }
    }
    sync_refunded(tx, &mut p, pi, now).await?;
    if p == unchanged {
        // A late or repeated report of what is recorded already: nothing to write.
        return Ok((p, None));
    }
    if before == "pending" && p.status != "pending" {
        // The outcome is known: the call is no longer in flight.
        p.lease_until = None;
    }
    p.updated = now;
    payments::save(tx, &p).await?;
    if p.status != before {
        let kind = match p.status.as_str() {
            "succeeded" => Some("payment.succeeded"),
            "authorized" => Some("payment.authorized"),
            "failed" => Some("payment.failed"),
            "canceled" => Some("payment.canceled"),
            "requires_action" => Some("payment.requires_action"),
            "void_pending" => Some("payment.void_pending"),
            _ => None,
        };
        if let Some(kind) = kind {
            events::record(tx, kind, &p.id, &Payment::from(p.clone()), now).await?;
        }
    }
    Ok((p, created))
}

/// `pi` carries the metadata of `kept` but is not the PaymentIntent it keeps: if it holds money
/// (captured and not refunded, or authorized), record it as a duplicate charge to be given
/// back — once, whoever notices it first.
async fn record_duplicate(tx: &mut Tx, kept: &PaymentRow, pi: &PaymentIntent, now: i64) -> ApiResult<()> {
    let holds_money = match pi.status {
        PaymentIntentStatus::Succeeded => pi.amount_refunded < pi.amount_received,
        PaymentIntentStatus::RequiresCapture => true,
        _ => false,
    };
    if !holds_money {
        return Ok(());
    }
    let currency = if pi.currency.eq_ignore_ascii_case(&kept.currency) {
        kept.currency.clone()
    } else {
        pi.currency.to_lowercase()
    };
    let duplicate = PaymentRow {
        attempt: kept.attempt,
        processor_payment_intent: Some(pi.id.clone()),
        status: "void_pending".into(),
        amount_capturable: pi.amount_capturable,
        amount_captured: pi.amount_received,
        amount_refunded: pi.amount_refunded,
        void_reason: Some("duplicate_charge".into()),
        duplicate_of: Some(kept.id.clone()),
        ..PaymentRow::pending(&kept.purpose, &kept.customer, pi.amount, &currency, &kept.processor, now)
    };
    if payments::insert_for_new_intent(tx, &duplicate).await? {
        tracing::warn!(
            payment = %kept.id, kept = ?kept.processor_payment_intent, duplicate = %pi.id,
            "a second charge carries this payment's metadata; giving it back"
        );
        events::record(tx, "payment.void_pending", &duplicate.id, &Payment::from(duplicate.clone()), now).await?;
    }
    Ok(())
}

/// Refunds made outside Kassa (the processor's dashboard) show up in the PaymentIntent's
/// refunded amount; the order follows. Monotonic: refunds Kassa set aside but the processor
/// has not confirmed yet are never undone here.
async fn sync_refunded(tx: &mut Tx, p: &mut PaymentRow, pi: &PaymentIntent, now: i64) -> ApiResult<()> {
    if pi.amount_refunded <= p.amount_refunded {
        return Ok(());
    }
    p.amount_refunded = pi.amount_refunded;
    if p.purpose == "credits" {
        return crate::services::credits::reverse_refunded_top_up(tx, p, now).await;
    }
    if let Some(mut o) = orders::by_payment(tx.conn(), &p.id).await?
        && pi.amount_refunded > o.amount_refunded
        && pi.amount_refunded <= o.amount_captured
    {
        o.amount_refunded = pi.amount_refunded;
        o.payment_status =
            if o.amount_refunded >= o.amount_captured { "refunded" } else { "partially_refunded" }.into();
        o.updated = now;
        orders::save(tx, &o).await?;
        let lines = orders::lines(tx.conn(), &o.id).await?;
        let id = o.id.clone();
        events::record(tx, "order.refunded", &id, &Order::from_rows(o, lines), now).await?;
    }
    Ok(())
}

/// The money for a cart is secured: create its order — unless the cart changed after the
/// payment started (stale) or another payment completed it first (duplicate); then the
/// payment is marked to be given back by the void job instead.
async fn secure_order(
    tx: &mut Tx,
    cart: &mut CartRow,
    p: &mut PaymentRow,
    pi: &PaymentIntent,
    now: i64,
) -> ApiResult<Option<Order>> {
    let payable = cart.status == "open"
        && Some(cart.version) == p.cart_version
        && cart.total == p.amount
        && pi.amount == p.amount
        && pi.currency.eq_ignore_ascii_case(&cart.currency);
    if !payable {
        p.void_reason = Some(if cart.status == "completed" { "duplicate" } else { "stale" }.into());
        p.status = "void_pending".into();
        tracing::warn!(payment = %p.id, cart = %cart.id, reason = ?p.void_reason, "secured payment cannot complete its cart; giving it back");
        return Ok(None);
    }
    let lines = carts::lines(tx.conn(), &cart.id).await?;
    let order = OrderRow {
        id: IdKind::Order.new_id(),
        cart: cart.id.clone(),
        payment: p.id.clone(),
        customer: p.customer.clone(),
        email: cart.email.clone(),
        region: cart.region.clone(),
        currency: cart.currency.clone(),
        subtotal: cart.subtotal,
        discount_total: cart.discount_total,
        shipping_total: cart.shipping_total,
        tax_total: cart.tax_total,
        total: cart.total,
        shipping_option: cart.shipping_option.clone(),
        shipping_address: cart.shipping_address.clone(),
        billing_address: cart.billing_address.clone(),
        status: "open".into(),
        payment_status: if p.status == "authorized" { "authorized" } else { "captured" }.into(),
        fulfillment_status: "not_fulfilled".into(),
        amount_authorized: p.amount,
        amount_captured: pi.amount_received,
        amount_refunded: 0,
        metadata: cart.metadata.clone(),
        created: now,
        updated: now,
    };
    let order_lines: Vec<OrderLineRow> = lines
        .iter()
        .map(|l| OrderLineRow {
            id: IdKind::LineItem.new_id(),
            order_id: order.id.clone(),
            product: l.product.clone(),
            price: l.price.clone(),
            name: l.name.clone(),
            quantity: l.quantity,
            unit_amount: l.unit_amount,
            stocked: l.reserved,
        })
        .collect();
    orders::insert(tx, &order, &order_lines).await?;
    for l in lines.iter().filter(|l| l.reserved > 0) {
        carts::take_reserved(tx, &l.product, l.reserved, now).await?;
    }
    cart.status = "completed".into();
    cart.completed_at = Some(now);
    cart.updated = now;
    carts::save(tx, cart).await?;
    let order_id = order.id.clone();
    let shown = Order::from_rows(order, order_lines);
    events::record(tx, "order.created", &order_id, &shown, now).await?;
    Ok(Some(shown))
}

/// Records a refused attempt whose PaymentIntent the processor did not return.
pub async fn mark_failed(
    state: &AppState,
    payment_id: &str,
    code: &str,
    decline: Option<&str>,
    message: &str,
) -> ApiResult<()> {
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    if let Some(mut p) = payments::lock(&mut tx, payment_id).await?
        && is_unsettled(&p.status)
    {
        p.status = "failed".into();
        p.lease_until = None;
        p.failure_code = Some(code.into());
        p.decline_code = decline.map(Into::into);
        p.failure_message = Some(message.into());
        p.updated = now;
        payments::save(&mut tx, &p).await?;
        events::record(&mut tx, "payment.failed", &p.id, &Payment::from(p.clone()), now).await?;
    }
    tx.commit().await?;
    Ok(())
}
