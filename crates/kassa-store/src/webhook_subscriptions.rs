//! The enabled webhook endpoints' subscriptions, kept in memory so that a transaction whose
//! events no endpoint wants costs the webhook dispatcher nothing: its events are inserted
//! already fanned out, in the statement that inserts them (see `events::insert_all`), and
//! no delivery round is woken.
//!
//! Correctness rests on `webhook_endpoints_version` (migration 0013), bumped by the store in
//! the transaction of every endpoint change. The copy is filed under the version read *before*
//! the endpoints (so it is never older than its label), and the events' insert uses it only if
//! the counter, read in that same statement, still has that value. On PostgreSQL the counter is
//! read `FOR SHARE`: an endpoint change that bumped it and has not committed makes the insert
//! wait and then see the new value; one that has not bumped it yet waits for the events'
//! transaction, so its endpoint exists only after those events committed. On SQLite writers
//! are serialized, so the statement reads the latest value. Either way, an event that commits
//! while an enabled endpoint wanting it exists is left to the fan-out (at-least-once delivery).

use std::sync::Mutex;

/// Subscriptions of the enabled endpoints at a version of `webhook_endpoints_version`.
#[derive(Clone, Debug, Default)]
pub struct Subscriptions {
    pub version: i64,
    /// Each enabled endpoint's `enabled_events`.
    pub enabled_events: Vec<Vec<String>>,
}

/// The copy shared by a store's clones; `None` until the fan-out first reads the endpoints.
#[derive(Default)]
pub struct SubscriptionsCache {
    inner: Mutex<Option<Subscriptions>>,
}

impl SubscriptionsCache {
    /// Keeps `subs` unless a copy at a newer version is already kept.
    pub fn store(&self, subs: Subscriptions) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.as_ref().is_none_or(|c| c.version <= subs.version) {
            *inner = Some(subs);
        }
    }

    /// The version of the copy kept, if any.
    pub fn version(&self) -> Option<i64> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|c| c.version)
    }

    /// The version of the copy if no enabled endpoint in it wants any of `kinds`.
    pub(crate) fn unwanted_at<'a>(&self, mut kinds: impl Iterator<Item = &'a str>) -> Option<i64> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let subs = inner.as_ref()?;
        let wanted = kinds
            .any(|k| subs.enabled_events.iter().any(|e| kassa_domain::lifecycle::webhook_endpoint::subscribes(e, k)));
        (!wanted).then_some(subs.version)
    }
}
