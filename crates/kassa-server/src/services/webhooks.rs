//! Events in from the processor (`POST /webhooks/stripe`). Verified on the raw body; each
//! event id is handled at most once (its dedupe record commits with its effects); handlers
//! read the current state from the processor instead of trusting the event's snapshot, so
//! duplicates, delays and reordering are harmless. Unknown types are acknowledged.

use crate::error::{ApiError, ApiResult};
use crate::services::event_dedupe::{self, Record};
use crate::services::{checkout_sessions, payments};
use crate::state::AppState;
use kassa_domain::lifecycle::payment::PaymentStatus;
use kassa_processors::{Event, EventError};
use kassa_store::payments as payment_db;

pub async fn receive(state: &AppState, body: &[u8], signature: Option<&str>) -> ApiResult<()> {
    let Some(signature) = signature else {
        return Err(ApiError::InvalidRequest {
            code: "signature_missing",
            message: "The Stripe-Signature header is missing.".into(),
            param: None,
        });
    };
    let event = state.processor.parse_event(body, signature, state.clock.now()).map_err(|e| match e {
        EventError::Signature(s) => ApiError::InvalidRequest {
            code: "signature_invalid",
            message: format!("Webhook signature refused: {s}"),
            param: None,
        },
        EventError::Malformed(m) => ApiError::InvalidRequest { code: "event_invalid", message: m, param: None },
    })?;
    if event_dedupe::handled_before(state, &event).await? {
        return Ok(());
    }
    let kind = event.kind.as_str();
    if kind.starts_with("payment_intent.") {
        on_payment_intent(state, &event, event.object_id()).await
    } else if kind.starts_with("charge.") {
        let pi = event.object.get("payment_intent").and_then(|v| v.as_str()).map(str::to_string);
        on_payment_intent(state, &event, pi.as_deref()).await
    } else if kind.starts_with("checkout.session.") {
        checkout_sessions::on_event(state, &event).await
    } else {
        Ok(())
    }
}

/// Finds the payment (by PaymentIntent id, or by the `kassa_payment_id` metadata when Kassa
/// died before storing the id) and applies the PaymentIntent's current state.
async fn on_payment_intent(state: &AppState, event: &Event, intent: Option<&str>) -> ApiResult<()> {
    let Some(intent) = intent else { return remember(state, event).await };
    let mut payment = payment_db::by_intent(state.store.reader(), intent).await?;
    if payment.is_none()
        && let Some(id) = event.metadata("kassa_payment_id")
    {
        payment = payment_db::get(state.store.reader(), id).await?;
    }
    let Some(payment) = payment else {
        // Hosted checkout payments are recorded from their checkout.session events.
        return remember(state, event).await;
    };
    // The success the event reports is recorded already (the pay call or an earlier event got
    // there first): nothing to ask the processor, nothing to change.
    let recorded = matches!(
        (event.kind.as_str(), payment.status),
        ("payment_intent.succeeded", PaymentStatus::Succeeded)
            | ("payment_intent.amount_capturable_updated", PaymentStatus::Authorized)
    );
    if recorded && payment.processor_payment_intent.as_deref() == Some(intent) {
        return remember(state, event).await;
    }
    let current = state.processor.retrieve_payment_intent(intent).await?;
    payments::apply_intent(state, &payment.id, &current, Some(event)).await?;
    Ok(())
}

/// Records an event that has no effects (one statement, no transaction around it).
async fn remember(state: &AppState, event: &Event) -> ApiResult<()> {
    event_dedupe::first_delivery(Record::Alone(&state.store), event, state.clock.now()).await?;
    Ok(())
}
