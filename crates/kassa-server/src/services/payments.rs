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
use crate::services::{event_dedupe, settlement};
use crate::state::AppState;
use kassa_domain::lifecycle::cart::{CartNow, PaidFor, check_payable};
use kassa_domain::lifecycle::payment::{
    CartCheck, Failure, IntentReport, IntentStatus, PaymentEffect, PaymentInput, PaymentStatus, Purpose, Target,
    VoidReason, transition,
};
use kassa_processors::{Event, PaymentIntent, PaymentIntentStatus};
use kassa_store::carts;
use kassa_store::payments::{self, PaymentRow};
use kassa_store::{Tx, events};

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
    crate::services::validate::id(kassa_domain::ids::IdKind::Payment, "payment", id)?;
    let row = kassa_store::payments::get(state.store.reader(), id).await?;
    row.map(Payment::from).ok_or_else(|| ApiError::not_found("payment", id))
}

/// The processor's view of a PaymentIntent, as the payment's state machine reads it.
pub fn report(pi: &PaymentIntent) -> IntentReport {
    use PaymentIntentStatus as P;
    IntentReport {
        status: match pi.status {
            P::RequiresPaymentMethod => IntentStatus::RequiresPaymentMethod,
            P::RequiresConfirmation => IntentStatus::RequiresConfirmation,
            P::RequiresAction => IntentStatus::RequiresAction,
            P::Processing => IntentStatus::Processing,
            P::RequiresCapture => IntentStatus::RequiresCapture,
            P::Succeeded => IntentStatus::Succeeded,
            P::Canceled => IntentStatus::Canceled,
        },
        amount_capturable: pi.amount_capturable,
        amount_received: pi.amount_received,
        amount_refunded: pi.amount_refunded,
        next_action_url: pi.next_action.as_ref().map(|a| a.redirect_url.clone()),
        last_error: pi.last_payment_error.clone().map(|e| Failure {
            code: e.code,
            decline_code: e.decline_code,
            message: Some(e.message),
        }),
    }
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
        && !event_dedupe::first_delivery(event_dedupe::Record::WithEffects(&mut tx), ev, now).await?
    {
        return Ok(None);
    }
    let p = apply_in(&mut tx, payment_id, pi, now).await?;
    tx.commit().await?;
    Ok(Some(p))
}

/// [`apply_intent`] inside the caller's transaction (which commits it with its own work).
pub async fn apply_in(tx: &mut Tx, payment_id: &str, pi: &PaymentIntent, now: i64) -> ApiResult<PaymentRow> {
    Ok(apply(tx, payment_id, None, pi, now).await?.0)
}

/// [`apply_intent`] for the pay call, which answers with the order it created (without
/// reading it back). `payment` is the row the call was made for (its cart never changes, so
/// it is not read again before the locks).
pub async fn apply_returning_order(
    state: &AppState,
    payment: &PaymentRow,
    pi: &PaymentIntent,
) -> ApiResult<(PaymentRow, Option<Order>)> {
    let mut tx = state.store.begin().await?;
    let applied = apply(&mut tx, &payment.id, Some(payment.cart.as_deref()), pi, state.clock.now()).await?;
    tx.commit().await?;
    Ok(applied)
}

/// `known_cart`: the payment's cart when the caller knows it (a payment's cart never changes).
async fn apply(
    tx: &mut Tx,
    payment_id: &str,
    known_cart: Option<Option<&str>>,
    pi: &PaymentIntent,
    now: i64,
) -> ApiResult<(PaymentRow, Option<Order>)> {
    let tx = &mut *tx;
    // Lock order everywhere: cart, then payment, then order.
    let cart_id = match known_cart {
        Some(cart) => cart.map(str::to_owned),
        None => {
            payments::get(tx.conn(), payment_id).await?.ok_or_else(|| ApiError::not_found("payment", payment_id))?.cart
        }
    };
    // The cart's lines come with its lock: an order copies them. The cart and the payment are
    // locked by one statement when both exist.
    let locked = match &cart_id {
        Some(id) => carts::lock_with_lines_and_payment(tx, id, payment_id).await?,
        None => None,
    };
    let (mut cart, lines, mut p) = match locked {
        Some((cart, lines, p)) => (Some(cart), Some(lines), p),
        None => {
            let (cart, lines) = match &cart_id {
                Some(id) => carts::lock_with_lines(tx, id).await?.unzip(),
                None => (None, None),
            };
            let p = payments::lock(tx, payment_id).await?.ok_or_else(|| ApiError::not_found("payment", payment_id))?;
            (cart, lines, p)
        }
    };
    if let Some(kept) = &p.processor_payment_intent
        && *kept != pi.id
    {
        record_duplicate(tx, &p, pi, now).await?;
        return Ok((p, None));
    }
    let unchanged = p.clone();
    if p.processor_payment_intent.is_none() {
        p.processor_payment_intent = Some(pi.id.clone());
    }
    let target = match p.purpose {
        Purpose::Credits => Target::Credits,
        Purpose::Order => Target::Order(match &cart {
            Some(c) => check_payable(
                CartNow { status: c.status, version: c.version, total: c.total, currency: &c.currency },
                PaidFor {
                    cart_version: p.cart_version,
                    amount: p.amount,
                    currency: &p.currency,
                    intent_amount: pi.amount,
                    intent_currency: &pi.currency,
                },
            ),
            None => CartCheck::Stale,
        }),
    };
    let t = transition(&p.state(), &PaymentInput::Reported { intent: report(pi), target })?;
    p.set_state(&t.next);
    if t.next.status == PaymentStatus::VoidPending && unchanged.status != PaymentStatus::VoidPending {
        tracing::warn!(payment = %p.id, cart = ?p.cart, reason = ?p.void_reason, "secured payment cannot complete its cart; giving it back");
    }
    let mut created = None;
    // The order created here, written with the payment's update at the end (one statement on
    // PostgreSQL) unless an effect reads it before.
    let mut unwritten: Option<settlement::UnwrittenOrder> = None;
    for effect in &t.effects {
        if !matches!(effect, PaymentEffect::CreateOrder | PaymentEffect::Record(_))
            && let (Some(order), Some(cart)) = (unwritten.take(), cart.as_ref())
        {
            settlement::write_order(tx, &order, cart).await?;
        }
        match effect {
            PaymentEffect::CreateOrder => {
                let cart =
                    cart.as_mut().ok_or_else(|| ApiError::Internal(anyhow::anyhow!("payment {} has no cart", p.id)))?;
                let lines = lines.as_deref().unwrap_or_default();
                let (shown, order) = settlement::create_order(tx, cart, lines, &p, pi.amount_received, now).await?;
                created = Some(shown);
                unwritten = Some(order);
            }
            PaymentEffect::AddCredits => settlement::add_top_up_credits(tx, &p, now).await?,
            PaymentEffect::MarkOrderCaptured { amount_captured } => {
                settlement::mark_order_captured(tx, &p.id, *amount_captured, now).await?
            }
            PaymentEffect::CancelOrder => {
                if let Some(order) = kassa_store::orders::by_payment(tx.conn(), &p.id).await? {
                    match settlement::cancel_order(tx, &order.id, settlement::Release::ByPayment, now).await {
                        Ok(_) => {}
                        // A fulfilled order stays as it is (the merchant refunds or captures
                        // anew); the payment still records that its authorization ended, so the
                        // processor's report is not refused and redelivered forever.
                        Err(ApiError::Conflict { code, .. }) => {
                            tracing::warn!(payment = %p.id, order = %order.id, code, "the authorization ended; the order cannot be canceled");
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            PaymentEffect::SyncRefunded { .. } => settlement::follow_refunds(tx, &p, now).await?,
            PaymentEffect::Record(_) => {}
        }
    }
    if p == unchanged && unwritten.is_none() {
        // A late or repeated report of what is recorded already: nothing to write.
        return Ok((p, None));
    }
    if unchanged.status == PaymentStatus::Pending && p.status != PaymentStatus::Pending {
        // The outcome is known: the call is no longer in flight.
        p.lease_until = None;
    }
    p.updated = now;
    match (&unwritten, &cart) {
        (Some(order), Some(cart)) => {
            kassa_store::orders::insert_completing(tx, &order.row, &order.lines, cart, &p).await?
        }
        _ => payments::save(tx, &p).await?,
    }
    settlement::record_payment_events(tx, &p, &t.effects, now).await?;
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
        status: PaymentStatus::VoidPending,
        amount_capturable: pi.amount_capturable,
        amount_captured: pi.amount_received,
        amount_refunded: pi.amount_refunded,
        void_reason: Some(VoidReason::DuplicateCharge.as_str().into()),
        duplicate_of: Some(kept.id.clone()),
        ..PaymentRow::pending(kept.purpose, &kept.customer, pi.amount, &currency, &kept.processor, now)
    };
    if payments::insert_for_new_intent(tx, &duplicate).await? {
        tracing::warn!(
            payment = %kept.id, kept = ?kept.processor_payment_intent, duplicate = %pi.id,
            "a second charge carries this payment's metadata; giving it back"
        );
        if let Some(kind) = duplicate.status.event_kind() {
            events::record(tx, kind, &duplicate.id, &Payment::from(duplicate.clone()), now).await?;
        }
    }
    Ok(())
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
    if let Some(mut p) = payments::lock(&mut tx, payment_id).await? {
        let failure =
            Failure { code: code.into(), decline_code: decline.map(Into::into), message: Some(message.into()) };
        let t = transition(&p.state(), &PaymentInput::Refused(failure))?;
        if t.next != p.state() {
            p.set_state(&t.next);
            p.lease_until = None;
            p.updated = now;
            payments::save(&mut tx, &p).await?;
            settlement::record_payment_events(&mut tx, &p, &t.effects, now).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}
