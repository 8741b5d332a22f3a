//! Read-mostly configuration (regions, shipping options, prices with their products, the
//! default pricing model) served from memory instead of read on every cart change.
//!
//! Correctness rests on `config_version` (migration 0012): a counter that triggers bump in
//! the transaction of every change to those tables, whoever makes it (this server, another one
//! on the same database, an operator's SQL). A transaction observes the counter once — read
//! within the cart's lock statement, which it sends anyway, or by one small query — and uses
//! a copy only if it was read at that version or later. A copy is read *after* the version it
//! is filed under was observed, so it is never older than its label; a change that commits
//! after the observation is one the request may not see, exactly as if it had read the row
//! itself a moment earlier. So a price, tax rate or shipping amount is never applied stale
//! once its change committed before the request's first statement.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Mutex;

/// Entries kept at most (an unbounded catalog must not grow memory without bound; past this
/// the copies are dropped and read again on demand).
const MAX_ENTRIES: usize = 40_000;

/// Copies of rows by kind (`"region"`, …) and id, each a clone of what the store read.
#[derive(Default)]
pub struct ConfigCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The version every entry below was read at (or after).
    version: i64,
    entries: HashMap<(&'static str, String), Box<dyn Any + Send + Sync>>,
}

impl ConfigCache {
    fn current(&self, observed: i64) -> std::sync::MutexGuard<'_, Inner> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if observed > inner.version {
            *inner = Inner { version: observed, entries: HashMap::new() };
        }
        inner
    }

    /// The newest version copies were filed under, if any.
    pub(crate) fn version(&self) -> Option<i64> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        (inner.version > 0 || !inner.entries.is_empty()).then_some(inner.version)
    }

    /// A transaction observed `version`: older copies go.
    pub(crate) fn saw(&self, version: i64) {
        drop(self.current(version));
    }

    /// The copy of `kind`/`id`, if one read at `observed` or later is kept.
    pub(crate) fn get<T: Clone + 'static>(&self, observed: i64, kind: &'static str, id: &str) -> Option<T> {
        let inner = self.current(observed);
        inner.entries.get(&(kind, id.to_string())).and_then(|v| v.downcast_ref::<T>()).cloned()
    }

    /// Keeps a copy read after `observed` was observed — unless a newer version was seen
    /// meanwhile (then the copy may be older than the ones filed under that one).
    pub(crate) fn put<T: Send + Sync + 'static>(&self, observed: i64, kind: &'static str, id: &str, value: T) {
        let mut inner = self.current(observed);
        if inner.version != observed {
            return;
        }
        if inner.entries.len() >= MAX_ENTRIES {
            inner.entries.clear();
        }
        inner.entries.insert((kind, id.to_string()), Box::new(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(c: &ConfigCache, observed: i64) -> Option<String> {
        c.get::<String>(observed, "region", "reg_1")
    }

    #[test]
    fn a_newer_version_empties_the_copies() {
        let c = ConfigCache::default();
        c.put(3, "region", "reg_1", "old".to_string());
        assert_eq!(name(&c, 3).as_deref(), Some("old"));
        assert!(name(&c, 4).is_none());
    }

    #[test]
    fn a_copy_read_under_an_older_version_is_not_kept() {
        let c = ConfigCache::default();
        assert!(name(&c, 5).is_none());
        // A request that observed 4 (before 5 was seen) read its copy: it may predate change 5.
        c.put(4, "region", "reg_1", "maybe stale".to_string());
        assert!(name(&c, 5).is_none());
        // A request still at 4 may use copies read at 5: they are newer than what it saw.
        c.put(5, "region", "reg_1", "new".to_string());
        assert_eq!(name(&c, 4).as_deref(), Some("new"));
    }
}
