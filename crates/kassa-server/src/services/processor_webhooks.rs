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
    let mut kind = None;
    let outcome = handle(state, body, signature, &mut kind).await;
    let result = match &outcome {
        Ok(true) => "duplicate",
        Ok(false) => "handled",
        Err(e) if e.status().is_client_error() => "refused",
        Err(_) => "failed",
    };
    // The type is known once the signature checked out; a refused post counts as `unverified`.
    let kind = kind.unwrap_or_else(|| "unverified".into());
    metrics::counter!("kassa_webhooks_received_total", "type" => kind, "result" => result).increment(1);
    outcome.map(|_duplicate| ())
}

/// Verifies and applies one event; answers whether it was a duplicate, and puts its type in
/// `verified_kind` once the signature checked out.
async fn handle(
    state: &AppState,
    body: &[u8],
    signature: Option<&str>,
    verified_kind: &mut Option<String>,
) -> ApiResult<bool> {
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
    *verified_kind = Some(event.kind.clone());
    let kind = event.kind.as_str();
    if kind.starts_with("payment_intent.") {
        on_payment_intent(state, &event, event.object_id()).await
    } else if kind.starts_with("charge.") {
        let pi = event.object.get("payment_intent").and_then(|v| v.as_str()).map(str::to_string);
        on_payment_intent(state, &event, pi.as_deref()).await
    } else if kind.starts_with("checkout.session.") {
        if event_dedupe::handled_before(state, &event).await? {
            log_received(&event, true);
            return Ok(true);
        }
        log_received(&event, false);
        checkout_sessions::on_event(state, &event).await.map(|()| false)
    } else {
        // A type Kassa does not act on (`customer.created`, …): acknowledged, and nothing to
        // remember, since a repeat does nothing either.
        log_received(&event, false);
        Ok(false)
    }
}

/// Applies an event about a PaymentIntent; answers whether it was a repeat.
///
/// The common case costs one statement: the pay call settled the payment before the
/// processor's event arrived (or the event is a repeat), so the event is only recorded
/// ([`event_dedupe::record_if_nothing_to_do`]). Otherwise the payment is found (by
/// PaymentIntent id, or by the `kassa_payment_id` metadata when Kassa died before storing the
/// id) and the PaymentIntent's current state, read from the processor, applied to it.
async fn on_payment_intent(state: &AppState, event: &Event, intent: Option<&str>) -> ApiResult<bool> {
    let Some(intent) = intent else { return remember(state, event).await };
    // The success the event reports is recorded already when the payment is in this status.
    let settled = match event.kind.as_str() {
        "payment_intent.succeeded" => Some(PaymentStatus::Succeeded),
        "payment_intent.amount_capturable_updated" => Some(PaymentStatus::Authorized),
        _ => None,
    };
    if let Some(first) = event_dedupe::record_if_nothing_to_do(state, event, intent, settled).await? {
        log_received(event, !first);
        return Ok(!first);
    }
    log_received(event, false);
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
    let current = state.processor.retrieve_payment_intent(intent).await?;
    let applied = payments::apply_intent(state, &payment.id, &current, Some(event)).await?;
    // `None`: a concurrent delivery of the same event recorded it first.
    Ok(applied.is_none())
}

fn log_received(event: &Event, repeat: bool) {
    if repeat {
        tracing::info!(event = %event.id, kind = %event.kind, "webhook received again; handled before");
    } else {
        tracing::info!(event = %event.id, kind = %event.kind, "webhook received");
    }
}

/// Records an event that has no effects (one statement, no transaction around it); answers
/// whether it was a repeat.
async fn remember(state: &AppState, event: &Event) -> ApiResult<bool> {
    let first = event_dedupe::first_delivery(Record::Alone(&state.store), event, state.clock.now()).await?;
    Ok(!first)
}
