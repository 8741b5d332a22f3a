//! Processor events are handled at most once, however often they are delivered: this is the
//! one place that decides it.
//!
//! [`first_delivery`] records the delivery, in one statement, on whatever connection it is
//! given: in the transaction of the event's effects (so the record and the effects commit
//! together and a repeat finds the record), or on its own for an event without effects. A
//! repeat counts as one more delivery.

use crate::error::ApiResult;
use crate::state::AppState;
use kassa_domain::lifecycle::payment::PaymentStatus;
use kassa_processors::Event;
use kassa_store::{Store, Tx, processor_events};

/// Where a delivery is recorded.
pub enum Record<'a> {
    /// In the transaction of the event's effects.
    WithEffects(&'a mut Tx),
    /// On its own: the event has no effects.
    Alone(&'a Store),
}

/// Records this delivery of `event`; true when it is the first (its effects are to be done).
pub async fn first_delivery(at: Record<'_>, event: &Event, now: i64) -> ApiResult<bool> {
    Ok(match at {
        Record::WithEffects(tx) => processor_events::record(tx.conn(), &event.id, &event.kind, now).await?,
        Record::Alone(store) => processor_events::record(store.writer(), &event.id, &event.kind, now).await?,
    })
}

/// Records `event` when it needs nothing done: a repeat, or an event about the PaymentIntent
/// `intent` whose payment is in `settled` already. One statement, the whole work of the
/// common webhook (the pay call settled the payment before the processor's event arrived).
/// `Some(first delivery)` when recorded; `None` when the caller is to apply the event.
pub async fn record_if_nothing_to_do(
    state: &AppState,
    event: &Event,
    intent: &str,
    settled: Option<PaymentStatus>,
) -> ApiResult<Option<bool>> {
    let status = settled.map(|s| s.as_str());
    let now = state.clock.now();
    Ok(processor_events::record_if_nothing_to_do(state.store.writer(), &event.id, &event.kind, now, intent, status)
        .await?)
}

/// Whether `event` was handled before (a read first, so a repeat costs no processor call);
/// a repeat is counted as a delivery.
pub async fn handled_before(state: &AppState, event: &Event) -> ApiResult<bool> {
    if !processor_events::seen(state.store.reader(), &event.id).await? {
        return Ok(false);
    }
    first_delivery(Record::Alone(&state.store), event, state.clock.now()).await?;
    Ok(true)
}
