//! Single-shot checkout (`POST /store/carts/{id}/pay`): Kassa creates and confirms a
//! PaymentIntent with the processor customer attached, and creates the order only once the
//! payment succeeded (or is authorized).
//!
//! Crash safety: the payment row (with everything needed to repeat the processor call) is
//! committed before the call, and the call's idempotency key is derived from that row's id.
//! A retry after a crash repeats the same call and gets the same PaymentIntent; a webhook
//! finds the payment by PaymentIntent id or by the `kassa_payment_id` metadata. Either way
//! [`payments::apply_intent`] creates the order exactly once.
//!
//! Concurrency: the request that makes an attempt's processor call holds the attempt's lease
//! (taken with the attempt's row, or on a pending attempt once the previous holder's lease ran
//! out) for the call's deadline and a little more. A request that finds a pending attempt under
//! a live lease answers 409 `payment_in_progress` rather than repeat a call whose outcome is
//! not known yet: a processor that ignores idempotency keys would make a second charge. If a
//! second charge is made all the same (the processor answered after the deadline, and the call
//! was repeated after the lease), it is given back (see [`payments`]).

use crate::config::CaptureMode;
use crate::error::{ApiError, ApiResult};
use crate::objects::commerce::{Order, Payment};
use crate::services::access::Caller;
use crate::services::carts::may_access;
use crate::services::{customers, payments, processor_keys, validate};
use crate::state::AppState;
use kassa_domain::ids::IdKind;
use kassa_domain::lifecycle::cart::CartStatus;
use kassa_domain::lifecycle::payment::{PaymentStatus, Purpose};
use kassa_processors::{CaptureMethod, CreatePaymentIntent, Metadata, PaymentSource, ProcessorError};
use kassa_store::payments::{self as db, PaymentRow};
use kassa_store::{carts, orders};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayInput {
    /// A ConfirmationToken from the browser (Stripe.js, or the test processor's
    /// `/test-processor/v1/confirmation_tokens`).
    pub confirmation_token: Option<String>,
    /// Or a payment method saved with the (signed-in) customer.
    pub payment_method: Option<String>,
    /// Where the customer returns after a 3-D Secure challenge.
    #[schema(max_length = 2048, pattern = "^https?://[a-z0-9.-]+(/.*)?$")]
    pub return_url: Option<String>,
    /// Save the card for later off-session charges (renewals).
    #[serde(default)]
    pub save_payment_method: bool,
}

/// What a payment attempt sends to the processor, stored with the attempt so that a retry
/// after a crash repeats exactly the same call (same idempotency key, same parameters).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Attempt {
    source: PaymentSource,
    return_url: Option<String>,
    save: bool,
    manual_capture: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NextAction {
    /// Always `redirect_to_url`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Send the customer here (the 3-D Secure challenge).
    pub redirect_url: String,
}

/// The answer of `pay`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PayResult {
    /// Always `cart_payment`.
    pub object: &'static str,
    /// `succeeded`, `authorized` (manual capture), `requires_action` (see `next_action`) or
    /// `processing` (the outcome arrives by webhook).
    pub status: String,
    pub payment: Payment,
    /// The order, when the payment is secured.
    pub order: Option<Order>,
    pub next_action: Option<NextAction>,
}

pub async fn pay(state: &AppState, shopper: Caller<'_>, cart_id: &str, input: PayInput) -> ApiResult<PayResult> {
    let source = match (&input.confirmation_token, &input.payment_method) {
        (Some(t), None) => PaymentSource::ConfirmationToken(validate::text("confirmation_token", t, 255)?),
        (None, Some(pm)) => PaymentSource::PaymentMethod(validate::text("payment_method", pm, 255)?),
        (None, None) => return Err(ApiError::missing("confirmation_token")),
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid("payment_method", "Pass confirmation_token or payment_method, not both."));
        }
    };
    let return_url = input.return_url.as_deref().map(|u| validate::http_url("return_url", u)).transpose()?;
    let attempt = Attempt {
        source,
        return_url,
        save: input.save_payment_method,
        manual_capture: state.settings.checkout.capture == CaptureMode::Manual,
    };

    validate::id(IdKind::Cart, "cart", cart_id)?;
    // One statement reads all that decides whether and how to pay (see `carts::pay_view`).
    let view = carts::pay_view(state.store.reader(), cart_id)
        .await?
        .filter(|v| may_access(&v.cart, shopper))
        .ok_or_else(|| ApiError::not_found("cart", cart_id))?;
    let cart = view.cart;
    match cart.status {
        CartStatus::Open => {}
        CartStatus::Completed => return Err(paid_already(state, cart_id).await?),
        other => return Err(ApiError::conflict("cart_not_open", format!("This cart is {other}."))),
    }
    if !view.has_lines {
        return Err(ApiError::conflict("cart_empty", "The cart has no items."));
    }
    if cart.total <= 0 {
        return Err(ApiError::conflict("nothing_to_pay", "The cart's total is zero."));
    }
    let customer = cart.customer.clone().ok_or_else(|| {
        ApiError::invalid("email", "Set the cart's email (guests) or sign the customer in before paying.")
    })?;
    // Never a "Guest" payment at the processor: the processor customer exists first.
    let processor_customer = match view.processor_customer {
        Some(pc) => pc,
        None => customers::create_lacking_processor_customer(state, &customer).await?,
    };

    // An earlier attempt may still be open (a crash, a 3-D Secure challenge, a double click).
    let prev = match &view.latest_payment {
        Some(id) => db::get(state.store.reader(), id).await?,
        None => None,
    };
    if let Some(prev) = &prev
        && let Some(done) = settle_previous(state, prev, cart.version, &attempt, &processor_customer).await?
    {
        return Ok(done);
    }
    let number = prev.filter(|p| p.cart_version == Some(cart.version)).map(|p| p.attempt + 1).unwrap_or(1);

    let now = state.clock.now();
    let payment = PaymentRow {
        cart: Some(cart.id.clone()),
        cart_version: Some(cart.version),
        attempt: number,
        source: Some(serde_json::to_string(&attempt).expect("attempt serializes")),
        // This request makes the call: it holds the attempt from the start.
        lease_until: Some(payments::lease_until(state, now, 1)),
        ..PaymentRow::pending(Purpose::Order, &customer, cart.total, &cart.currency, state.processor.name(), now)
    };
    // The attempt is recorded only while the cart is still open at the version it pays for,
    // checked and written in one statement under the cart's lock.
    match db::insert_for_cart_at(&state.store, &payment, cart.version, CartStatus::Open.as_str()).await {
        Ok(true) => {}
        Ok(false) => {
            let now = carts::get(state.store.reader(), cart_id).await?;
            return Err(match now.map(|c| c.status) {
                None => ApiError::not_found("cart", cart_id),
                // A concurrent payment completed it meanwhile.
                Some(CartStatus::Completed) => paid_already(state, cart_id).await?,
                Some(_) => {
                    ApiError::conflict("cart_changed", "The cart changed while paying; review it and pay again.")
                }
            });
        }
        // Another attempt for this cart version won the race for this attempt number.
        Err(e) if e.is_constraint() => return Err(in_progress()),
        Err(e) => return Err(e.into()),
    }
    issue(state, &payment, &attempt, &processor_customer).await
}

/// 409 `cart_completed`, naming the order that completed the cart.
async fn paid_already(state: &AppState, cart_id: &str) -> ApiResult<ApiError> {
    let order = orders::by_cart(state.store.reader(), cart_id).await?.map(|o| o.id).unwrap_or_default();
    Ok(ApiError::conflict("cart_completed", format!("This cart is paid already: order {order}.")))
}

/// 409 `payment_in_progress`: another request is paying this cart right now. Not stored
/// under the request's idempotency key (see [`ApiError::is_transient_conflict`]), so the same
/// request may be retried.
fn in_progress() -> ApiError {
    ApiError::conflict(
        "payment_in_progress",
        "Another request is paying this cart right now; retry in a few seconds to get its outcome.",
    )
}

/// Resolves the cart's previous attempt. Returns the result when it already settles the
/// cart (paid, or a 3-D Secure challenge still waiting for the same source).
async fn settle_previous(
    state: &AppState,
    prev: &PaymentRow,
    version: i64,
    attempt: &Attempt,
    processor_customer: &str,
) -> ApiResult<Option<PayResult>> {
    let same_version = prev.cart_version == Some(version);
    let original: Option<Attempt> = prev.source.as_deref().and_then(|s| serde_json::from_str(s).ok());
    // The same source again (a retry, or a reload after the challenge): its outcome stands —
    // a confirmation token is single-use, so trying it again could only fail differently.
    let same_source = same_version && original.as_ref().map(|o| &o.source) == Some(&attempt.source);
    match prev.status {
        PaymentStatus::Failed if same_source => result_of(state, &prev.id).await.map(Some),
        // Unknown outcome (crash or processor outage mid-call): repeat the same call — but only
        // once no other request holds it in flight.
        PaymentStatus::Pending => {
            let now = state.clock.now();
            if !db::claim_pending(state.store.writer(), &prev.id, now, payments::lease_until(state, now, 1)).await? {
                let fresh = db::get(state.store.writer(), &prev.id).await?.unwrap_or_else(|| prev.clone());
                if fresh.status == PaymentStatus::Pending {
                    return Err(in_progress());
                }
                // Its outcome arrived meanwhile: settle by that instead.
                return Box::pin(settle_previous(state, &fresh, version, attempt, processor_customer)).await;
            }
            let original: Attempt =
                prev.source.as_deref().and_then(|s| serde_json::from_str(s).ok()).ok_or_else(|| {
                    ApiError::Internal(anyhow::anyhow!("payment {} lacks its attempt parameters", prev.id))
                })?;
            match issue(state, prev, &original, processor_customer).await {
                Ok(r) if same_version => Ok(Some(r)),
                Ok(_) => Ok(None),
                Err(e @ ApiError::PaymentFailed { .. }) if same_source => Err(e),
                Err(ApiError::PaymentFailed { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        }
        PaymentStatus::RequiresAction | PaymentStatus::Processing => {
            let Some(pi_id) = &prev.processor_payment_intent else { return Ok(None) };
            let pi = state.processor.retrieve_payment_intent(pi_id).await?;
            let p = payments::apply_intent(state, &prev.id, &pi, None).await?.unwrap_or_else(|| prev.clone());
            if p.status.is_secured() || (p.status == PaymentStatus::Processing && same_version) {
                return result_of(state, &p.id).await.map(Some);
            }
            if p.status == PaymentStatus::Failed && same_source {
                return result_of(state, &p.id).await.map(Some);
            }
            if p.status == PaymentStatus::RequiresAction {
                if same_source {
                    return result_of(state, &p.id).await.map(Some);
                }
                // Abandon the challenge before paying another way, so it cannot succeed too.
                let key = processor_keys::cancel(&p.id);
                match state.processor.cancel_payment_intent(pi_id, &key).await {
                    Ok(pi) => {
                        payments::apply_intent(state, &p.id, &pi, None).await?;
                    }
                    Err(ProcessorError::InvalidRequest { .. }) => {
                        // It completed meanwhile: take it.
                        let pi = state.processor.retrieve_payment_intent(pi_id).await?;
                        let p = payments::apply_intent(state, &p.id, &pi, None).await?.unwrap_or_else(|| prev.clone());
                        if p.status.is_secured() && same_version {
                            return result_of(state, &p.id).await.map(Some);
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(None)
        }
        PaymentStatus::Succeeded | PaymentStatus::Authorized if same_version => {
            result_of(state, &prev.id).await.map(Some)
        }
        _ => Ok(None),
    }
}

/// Makes the processor call of an attempt and applies its outcome.
async fn issue(
    state: &AppState,
    payment: &PaymentRow,
    attempt: &Attempt,
    processor_customer: &str,
) -> ApiResult<PayResult> {
    let mut metadata = Metadata::new();
    metadata.insert("kassa_payment_id".into(), payment.id.clone());
    if let Some(c) = &payment.cart {
        metadata.insert("kassa_cart_id".into(), c.clone());
    }
    if let Some(v) = payment.cart_version {
        metadata.insert("kassa_cart_version".into(), v.to_string());
    }
    let req = CreatePaymentIntent {
        amount: payment.amount,
        currency: payment.currency.clone(),
        customer: processor_customer.to_string(),
        metadata,
        capture_method: if attempt.manual_capture { CaptureMethod::Manual } else { CaptureMethod::Automatic },
        setup_future_usage: attempt.save,
        confirm: Some(attempt.source.clone()),
        off_session: false,
        return_url: attempt.return_url.clone(),
    };
    let key = processor_keys::pay(&payment.id);
    match state.processor.create_payment_intent(&req, &key).await {
        Ok(pi) => {
            crate::failpoint::hit("pay.after_processor_confirm").await;
            match payments::apply_returning_order(state, payment, &pi).await? {
                // The common case answers from what the transaction wrote.
                (p, Some(order)) => Ok(PayResult {
                    object: "cart_payment",
                    status: p.status.to_string(),
                    payment: p.into(),
                    order: Some(order),
                    next_action: None,
                }),
                _ => result_of(state, &payment.id).await,
            }
        }
        Err(ProcessorError::Payment { error, payment_intent }) => {
            match payment_intent {
                Some(pi) => {
                    payments::apply_intent(state, &payment.id, &pi, None).await?;
                }
                None => {
                    payments::mark_failed(
                        state,
                        &payment.id,
                        &error.code,
                        error.decline_code.as_deref(),
                        &error.message,
                    )
                    .await?
                }
            }
            Err(ApiError::PaymentFailed {
                code: error.code,
                decline_code: error.decline_code,
                message: error.message,
                payment: Some(payment.id.clone()),
            })
        }
        Err(ProcessorError::InvalidRequest { message, .. }) | Err(ProcessorError::NotFound(message)) => {
            payments::mark_failed(state, &payment.id, "invalid_payment_source", None, &message).await?;
            let param = match attempt.source {
                PaymentSource::ConfirmationToken(_) => "confirmation_token",
                PaymentSource::PaymentMethod(_) => "payment_method",
            };
            Err(ApiError::invalid(param, format!("The processor refused the payment source: {message}")))
        }
        // The outcome is unknown: the payment stays pending and the next call repeats it.
        Err(e) => Err(e.into()),
    }
}

/// The answer for a payment's current state.
pub async fn result_of(state: &AppState, payment_id: &str) -> ApiResult<PayResult> {
    let p =
        db::get(state.store.reader(), payment_id).await?.ok_or_else(|| ApiError::not_found("payment", payment_id))?;
    let order = match p.status {
        PaymentStatus::Succeeded | PaymentStatus::Authorized => {
            match orders::by_payment(state.store.reader(), &p.id).await? {
                Some(o) => {
                    let lines = orders::lines(state.store.reader(), &o.id).await?;
                    Some(Order::from_rows(o, lines))
                }
                None => None,
            }
        }
        PaymentStatus::Failed => {
            return Err(ApiError::PaymentFailed {
                code: p.failure_code.clone().unwrap_or_else(|| "payment_failed".into()),
                decline_code: p.decline_code.clone(),
                message: p.failure_message.clone().unwrap_or_else(|| "The payment failed.".into()),
                payment: Some(p.id.clone()),
            });
        }
        PaymentStatus::VoidPending | PaymentStatus::Voided => {
            return Err(ApiError::conflict(
                "cart_changed",
                format!(
                    "The cart changed or was paid while payment {} was in flight; that payment is being refunded.",
                    p.id
                ),
            ));
        }
        PaymentStatus::Canceled => return Err(ApiError::conflict("payment_canceled", "The payment was canceled.")),
        _ => None,
    };
    let next_action = (p.status == PaymentStatus::RequiresAction)
        .then(|| p.next_action_url.clone())
        .flatten()
        .map(|url| NextAction { kind: "redirect_to_url", redirect_url: url });
    Ok(PayResult { object: "cart_payment", status: p.status.to_string(), payment: p.into(), order, next_action })
}
