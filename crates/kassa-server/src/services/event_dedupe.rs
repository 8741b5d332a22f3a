//! Processor events are handled at most once, however often they are delivered: this is the
//! one place that decides it.
//!
//! [`first_delivery`] records the delivery, in one statement, on whatever connection it is
//! given: in the transaction of the event's effects (so the record and the effects commit
//! together and a repeat finds the record), or on its own for an event without effects. A
//! repeat counts as one more delivery.

use crate::error::ApiResult;
use crate::state::AppState;
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

/// Whether `event` was handled before (a read first, so a repeat costs no processor call);
/// a repeat is counted as a delivery.
pub async fn handled_before(state: &AppState, event: &Event) -> ApiResult<bool> {
    if !processor_events::seen(state.store.reader(), &event.id).await? {
        return Ok(false);
    }
    first_delivery(Record::Alone(&state.store), event, state.clock.now()).await?;
    Ok(true)
}
