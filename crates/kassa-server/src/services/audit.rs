//! An audit record that commits with the change it records. A person's action (a refund from
//! the dashboard) and the event naming who did it must never be apart: recorded afterwards in
//! a transaction of its own, a crash in between would leave a refund nobody is recorded as
//! having made. So the caller builds the record first and hands it to the service, which
//! writes it in the transaction that commits the change (for a refund: the one that reserves
//! the amount, before the processor is called).

use kassa_store::{Tx, events};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};

/// One event to record with a change (written once however many transactions the use case
/// runs: the first that commits a change carries it).
pub struct AuditRecord {
    kind: String,
    object: String,
    data: Value,
    written: AtomicBool,
}

impl AuditRecord {
    /// The event `kind` about `object`, with `data`.
    pub fn new(kind: String, object: &str, data: Value) -> AuditRecord {
        AuditRecord { kind, object: object.to_string(), data, written: AtomicBool::new(false) }
    }

    /// Appends the event to `tx`, unless an earlier transaction of the use case carries it.
    /// Should `tx` then fail to commit, the use case fails, and its caller records that.
    pub async fn write(&self, tx: &mut Tx, now: i64) -> kassa_store::Result<()> {
        if self.written.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        events::record(tx, &self.kind, &self.object, &self.data, now).await?;
        Ok(())
    }

    /// Whether a transaction of the use case carried it (`false` when the use case changed
    /// nothing, e.g. a capture of an order captured already).
    pub fn written(&self) -> bool {
        self.written.load(Ordering::SeqCst)
    }
}

/// Writes `audit` (when the use case has one) into `tx`.
pub async fn write(audit: Option<&AuditRecord>, tx: &mut Tx, now: i64) -> kassa_store::Result<()> {
    match audit {
        Some(a) => a.write(tx, now).await,
        None => Ok(()),
    }
}
