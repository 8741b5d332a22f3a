//! What follows when money is secured or given back: the order a cart's payment buys, the
//! credits a top-up buys, and what follows them when the money goes back (an authorization
//! released, a refund, a top-up's credits reversed).
//!
//! The state machines in `kassa_domain::lifecycle` decide *that* one of these happens (as an
//! effect of a payment's or an order's transition); this module is where it is carried out,
//! inside the caller's transaction. It is the one place both the payment and the order side
//! reach, so it uses no other service: payments, orders, checkout sessions and credits all
//! point here, and nothing here points back.

use crate::error::{ApiError, ApiResult};
use crate::objects::commerce::{Order, Payment};
use crate::objects::credits::CreditEntry;
use kassa_domain::credits::MAX_CREDITS;
use kassa_domain::ids::IdKind;
use kassa_domain::lifecycle::cart::{self, CartEffect, CartInput};
use kassa_domain::lifecycle::order::{self as order_machine, OrderEffect, OrderInput, OrderState};
use kassa_domain::lifecycle::payment::{self as payment_machine, PaymentEffect, PaymentInput, PaymentStatus};
use kassa_domain::tax::div_ceil;
use kassa_store::carts::{self, CartRow};
use kassa_store::credits::{self as ledger, Added, NewEntry};
use kassa_store::orders::{self, OrderLineRow, OrderRow};
use kassa_store::payments::{self, PaymentRow};
use kassa_store::{Tx, checkout_sessions, events};

/// The ledger kind of the entry a paid top-up adds.
const TOP_UP: &str = "top_up";
/// The ledger kind of the entry that takes back a refunded top-up's credits.
const REFUND_REVERSAL: &str = "refund_reversal";

/// An order made by [`create_order`] and not written yet: the caller writes it together with
/// its cart and payment (`orders::insert_completing`: one statement on PostgreSQL), or with
/// [`write_order`] before anything reads it.
pub struct UnwrittenOrder {
    pub row: OrderRow,
    pub lines: Vec<OrderLineRow>,
}

/// Writes an [`UnwrittenOrder`] and its completed cart now.
pub async fn write_order(tx: &mut Tx, order: &UnwrittenOrder, cart: &CartRow) -> ApiResult<()> {
    orders::insert(tx, &order.row, &order.lines).await?;
    carts::save(tx, cart).await?;
    Ok(())
}

/// The money for `cart` (holding `lines`) is secured by `p` (and the cart can take it): create the order,
/// complete the cart and take its reserved stock, record `order.created`. Returns the order as
/// the API shows it (the pay call answers with it without reading it back), and the order
/// with the cart's new state still to be written (see [`UnwrittenOrder`]).
pub async fn create_order(
    tx: &mut Tx,
    cart: &mut CartRow,
    lines: &[carts::LineRow],
    p: &PaymentRow,
    amount_captured: i64,
    now: i64,
) -> ApiResult<(Order, UnwrittenOrder)> {
    let completed = cart::transition(cart.status, CartInput::Complete)?;
    let state = OrderState::new(p.amount, amount_captured, p.status == PaymentStatus::Authorized);
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
        status: state.status,
        payment_status: state.payment_status,
        fulfillment_status: state.fulfillment_status,
        amount_authorized: state.amount_authorized,
        amount_captured: state.amount_captured,
        amount_refunded: state.amount_refunded,
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
    for effect in &completed.effects {
        match effect {
            CartEffect::TakeReservedStock => {
                // In product id order, like every stock move (see `carts::by_product`).
                let held = lines.iter().filter(|l| l.reserved > 0).map(|l| (l.product.as_str(), l.reserved));
                for (product, units) in carts::by_product(held) {
                    carts::take_reserved(tx, product, units, now).await?;
                }
            }
            CartEffect::ReleaseReservedStock | CartEffect::Record(_) => {}
        }
    }
    cart.status = completed.next;
    cart.completed_at = Some(now);
    cart.updated = now;
    let shown = Order::from_rows(order.clone(), order_lines.clone());
    events::record(tx, "order.created", &order.id, &shown, now).await?;
    Ok((shown, UnwrittenOrder { row: order, lines: order_lines }))
}

/// A top-up's payment is secured: add its credits, once per checkout session.
pub async fn add_top_up_credits(tx: &mut Tx, p: &PaymentRow, now: i64) -> ApiResult<()> {
    let session_id = p
        .checkout_session
        .as_deref()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("top-up {} has no session", p.id)))?;
    let session = checkout_sessions::get(tx.conn(), session_id)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("top-up session {session_id} is missing")))?;
    let credits = session.credits.unwrap_or(0);
    if credits <= 0 {
        return Ok(());
    }
    let entry = NewEntry {
        customer: p.customer.clone(),
        amount: credits,
        kind: TOP_UP,
        source: format!("top_up:{session_id}"),
        reason: None,
        shortfall: 0,
        payment: Some(p.id.clone()),
        checkout_session: Some(session_id.to_string()),
    };
    match ledger::add_entry(tx, entry, now).await? {
        Added::Entry(e) => {
            let e = CreditEntry::from(e);
            events::record(tx, "credits.added", &e.id, &e, now).await?;
            Ok(())
        }
        Added::Duplicate(_) => Ok(()),
        // Paid for, but beyond the largest balance: fail (and roll back the entry) so the
        // event is retried and the logs show it, rather than drop the credits silently.
        Added::Insufficient | Added::OverLimit => Err(ApiError::Internal(anyhow::anyhow!(
            "top-up {session_id} of {credits} credits would take the balance of {} beyond {MAX_CREDITS}",
            p.customer
        ))),
    }
}

/// The processor reports more of `p`'s charge refunded than Kassa recorded (a refund made
/// outside Kassa, e.g. in the processor's dashboard): the order follows, or the top-up's
/// credits are taken back. `p` carries the refunded amount already.
pub async fn follow_refunds(tx: &mut Tx, p: &PaymentRow, now: i64) -> ApiResult<()> {
    if p.purpose == payment_machine::Purpose::Credits {
        return reverse_refunded_top_up(tx, p, now).await;
    }
    if let Some(mut o) = orders::by_payment(tx.conn(), &p.id).await?
        && p.amount_refunded > o.amount_refunded
        && p.amount_refunded <= o.amount_captured
    {
        // An order that takes no refund (never captured) is left as it is.
        if let Ok(t) =
            order_machine::transition(&o.state(), &OrderInput::RefundSettled { amount_refunded: p.amount_refunded })
        {
            o.set_state(&t.next);
            o.updated = now;
            orders::save(tx, &o).await?;
            order_effects(tx, &o, &t.effects, now).await?;
        }
    }
    Ok(())
}

/// Refund rule of top-ups: refunding one takes back the credits it bought in proportion to the
/// refunded share of the charge (rounded up, never more than the top-up added); if some were
/// spent already, it takes what is left and records the rest as the entry's `shortfall`. The
/// balance never goes below zero.
async fn reverse_refunded_top_up(tx: &mut Tx, p: &PaymentRow, now: i64) -> ApiResult<()> {
    let Some(session_id) = &p.checkout_session else { return Ok(()) };
    let Some(session) = checkout_sessions::get(tx.conn(), session_id).await? else { return Ok(()) };
    let credits = session.credits.unwrap_or(0);
    if credits <= 0 || p.amount <= 0 {
        return Ok(());
    }
    let refunded = p.amount_refunded.min(p.amount);
    let due_total = div_ceil(credits as i128 * refunded as i128, p.amount as i128).min(credits as i128) as i64;
    let entries = ledger::of_session(tx.conn(), session_id).await?;
    if !entries.iter().any(|e| e.kind == TOP_UP) {
        return Ok(());
    }
    let settled: i64 = entries.iter().filter(|e| e.kind == REFUND_REVERSAL).map(|e| -e.amount + e.shortfall).sum();
    let due = due_total - settled;
    if due <= 0 {
        return Ok(());
    }
    let balance = ledger::lock_balance(tx, &p.customer).await?.unwrap_or(0);
    let taken = due.min(balance);
    let entry = NewEntry {
        customer: p.customer.clone(),
        amount: -taken,
        kind: REFUND_REVERSAL,
        // One reversal per refunded level of the charge.
        source: format!("refund_reversal:{}:{refunded}", p.id),
        reason: Some(format!("{refunded} of {} refunded", p.amount)),
        shortfall: due - taken,
        payment: Some(p.id.clone()),
        checkout_session: Some(session_id.clone()),
    };
    match ledger::add_entry(tx, entry, now).await? {
        Added::Entry(e) => {
            let e = CreditEntry::from(e);
            events::record(tx, "credits.reversed", &e.id, &e, now).await?;
            Ok(())
        }
        Added::Duplicate(_) => Ok(()),
        Added::Insufficient | Added::OverLimit => {
            Err(ApiError::Internal(anyhow::anyhow!("a reversal bounded by the locked balance overdrew it")))
        }
    }
}

/// The authorization of payment `payment_id` was captured (through Kassa, or outside it):
/// its order follows.
pub async fn mark_order_captured(tx: &mut Tx, payment_id: &str, amount_captured: i64, now: i64) -> ApiResult<()> {
    let Some(mut o) = orders::by_payment(tx.conn(), payment_id).await? else { return Ok(()) };
    let t = match order_machine::transition(&o.state(), &OrderInput::Captured { amount_captured }) {
        Ok(t) => t,
        Err(r) => {
            tracing::warn!(order = %o.id, reason = %r, "the payment was captured, its order cannot follow");
            return Ok(());
        }
    };
    if t.next == o.state() {
        return Ok(());
    }
    o.set_state(&t.next);
    o.updated = now;
    orders::save(tx, &o).await?;
    order_effects(tx, &o, &t.effects, now).await?;
    Ok(())
}

/// Who gives the payment's authorization back when an order is canceled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// The caller released it at the processor: the payment is marked released here.
    Here,
    /// The payment's own transition records it (the processor reported it ended).
    ByPayment,
}

/// Cancels the order (its authorization released or its charge refunded before): payment
/// status, stock back, `order.canceled`. Used by the merchant's cancel and by the processor
/// reporting that an authorization ended (a webhook, e.g. after Stripe let an uncaptured
/// payment expire). Returns `None` when it was canceled already.
pub async fn cancel_order(tx: &mut Tx, id: &str, release: Release, now: i64) -> ApiResult<Option<Order>> {
    let mut o = orders::lock(tx, id).await?.ok_or_else(|| ApiError::not_found("order", id))?;
    let t = order_machine::transition(&o.state(), &OrderInput::Canceled)?;
    if t.next == o.state() {
        return Ok(None);
    }
    o.set_state(&t.next);
    o.updated = now;
    orders::save(tx, &o).await?;
    for effect in &t.effects {
        match effect {
            OrderEffect::ReleasePayment if release == Release::Here => {
                release_payment(tx, &o.payment, now).await?;
            }
            OrderEffect::Restock => {
                let lines = orders::lines(tx.conn(), id).await?;
                let sold = lines.iter().filter(|l| l.stocked > 0).map(|l| (l.product.as_str(), l.stocked));
                for (product, units) in carts::by_product(sold) {
                    carts::restock(tx, product, units, now).await?;
                }
            }
            _ => {}
        }
    }
    order_effects(tx, &o, &t.effects, now).await
}

/// The order's payment authorization was released at the processor.
async fn release_payment(tx: &mut Tx, payment_id: &str, now: i64) -> ApiResult<()> {
    let Some(p) = payments::lock(tx, payment_id).await? else { return Ok(()) };
    match payment_machine::transition(&p.state(), &PaymentInput::AuthorizationReleased) {
        Ok(t) => save_payment(tx, p, &t, now).await,
        Err(r) => {
            tracing::warn!(payment = %payment_id, reason = %r, "the order's authorization was released, its payment not authorized");
            Ok(())
        }
    }
}

/// A refund of the payment settled at the processor: the refunded amount follows.
pub async fn payment_refunded(tx: &mut Tx, payment_id: &str, amount: i64, now: i64) -> ApiResult<()> {
    let Some(p) = payments::lock(tx, payment_id).await? else { return Ok(()) };
    match payment_machine::transition(&p.state(), &PaymentInput::Refunded { amount }) {
        Ok(t) => save_payment(tx, p, &t, now).await,
        Err(r) => {
            tracing::warn!(payment = %payment_id, reason = %r, "a refund settled for a payment that took none");
            Ok(())
        }
    }
}

/// The authorization of the payment was captured through Kassa.
pub async fn payment_captured(tx: &mut Tx, payment_id: &str, amount_received: i64, now: i64) -> ApiResult<()> {
    let Some(p) = payments::lock(tx, payment_id).await? else { return Ok(()) };
    match payment_machine::transition(&p.state(), &PaymentInput::Captured { amount_received }) {
        Ok(t) => save_payment(tx, p, &t, now).await,
        Err(r) => {
            tracing::warn!(payment = %payment_id, reason = %r, "the order was captured, its payment not authorized");
            Ok(())
        }
    }
}

/// Writes a payment transition that has no effects besides its events.
async fn save_payment(tx: &mut Tx, mut p: PaymentRow, t: &payment_machine::Transition, now: i64) -> ApiResult<()> {
    if t.next == p.state() {
        return Ok(());
    }
    p.set_state(&t.next);
    p.updated = now;
    payments::save(tx, &p).await?;
    record_payment_events(tx, &p, &t.effects, now).await
}

/// Records the events a payment transition asks for.
pub async fn record_payment_events(tx: &mut Tx, p: &PaymentRow, effects: &[PaymentEffect], now: i64) -> ApiResult<()> {
    for effect in effects {
        if let PaymentEffect::Record(kind) = effect {
            events::record(tx, kind, &p.id, &Payment::from(p.clone()), now).await?;
        }
    }
    Ok(())
}

/// Records the events an order transition asks for; returns the order as shown in the last.
pub async fn order_effects(tx: &mut Tx, o: &OrderRow, effects: &[OrderEffect], now: i64) -> ApiResult<Option<Order>> {
    let mut shown = None;
    for effect in effects {
        if let OrderEffect::Record(kind) = effect {
            let lines = orders::lines(tx.conn(), &o.id).await?;
            let order = Order::from_rows(o.clone(), lines);
            events::record(tx, kind, &order.id, &order, now).await?;
            shown = Some(order);
        }
    }
    Ok(shown)
}
