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

use crate::catalog::{PriceRow, PricingModelRow, ProductRow, RegionRow, ShippingOptionRow};
use std::collections::HashMap;
use std::sync::Mutex;

/// Entries kept per kind at most (an unbounded catalog must not grow memory without bound;
/// past this the kind is emptied and refilled on demand).
const MAX_ENTRIES: usize = 10_000;

#[derive(Default)]
pub struct ConfigCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The version every entry below was read at (or after).
    version: i64,
    regions: HashMap<String, RegionRow>,
    shipping: HashMap<String, ShippingOptionRow>,
    prices: HashMap<String, (PriceRow, ProductRow)>,
    /// `Some(None)`: read, and there is no default model.
    default_pricing_model: Option<Option<PricingModelRow>>,
}

/// One kind of cached configuration.
pub(crate) enum Entry {
    Region(RegionRow),
    Shipping(ShippingOptionRow),
    Price(Box<(PriceRow, ProductRow)>),
    DefaultPricingModel(Option<PricingModelRow>),
}

pub(crate) enum Key<'a> {
    Region(&'a str),
    Shipping(&'a str),
    Price(&'a str),
    DefaultPricingModel,
}

impl ConfigCache {
    fn current(&self, observed: i64) -> std::sync::MutexGuard<'_, Inner> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if observed > inner.version {
            *inner = Inner { version: observed, ..Inner::default() };
        }
        inner
    }

    /// The entry, if one read at `observed` or later is kept.
    pub(crate) fn get(&self, observed: i64, key: Key<'_>) -> Option<Entry> {
        let inner = self.current(observed);
        match key {
            Key::Region(id) => inner.regions.get(id).cloned().map(Entry::Region),
            Key::Shipping(id) => inner.shipping.get(id).cloned().map(Entry::Shipping),
            Key::Price(id) => inner.prices.get(id).cloned().map(|p| Entry::Price(Box::new(p))),
            Key::DefaultPricingModel => inner.default_pricing_model.clone().map(Entry::DefaultPricingModel),
        }
    }

    /// Keeps `entry`, read after `observed` was observed — unless a newer version was seen
    /// meanwhile (then the entry may be older than the copies filed under that one).
    pub(crate) fn put(&self, observed: i64, entry: Entry) {
        let mut inner = self.current(observed);
        if inner.version != observed {
            return;
        }
        fn bounded<V>(map: &mut HashMap<String, V>, id: String, value: V) {
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
            map.insert(id, value);
        }
        match entry {
            Entry::Region(r) => bounded(&mut inner.regions, r.id.clone(), r),
            Entry::Shipping(s) => bounded(&mut inner.shipping, s.id.clone(), s),
            Entry::Price(p) => bounded(&mut inner.prices, p.0.id.clone(), *p),
            Entry::DefaultPricingModel(m) => inner.default_pricing_model = Some(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(id: &str, name: &str) -> RegionRow {
        RegionRow {
            id: id.into(),
            name: name.into(),
            currency: "usd".into(),
            countries: "[]".into(),
            tax_rates: "[]".into(),
            tax_inclusive: false,
            created: 0,
            updated: 0,
        }
    }

    fn name(e: Option<Entry>) -> Option<String> {
        match e {
            Some(Entry::Region(r)) => Some(r.name),
            _ => None,
        }
    }

    #[test]
    fn a_newer_version_empties_the_copies() {
        let c = ConfigCache::default();
        c.put(3, Entry::Region(region("reg_1", "old")));
        assert_eq!(name(c.get(3, Key::Region("reg_1"))).as_deref(), Some("old"));
        assert!(c.get(4, Key::Region("reg_1")).is_none());
    }

    #[test]
    fn a_copy_read_under_an_older_version_is_not_kept() {
        let c = ConfigCache::default();
        assert!(c.get(5, Key::Region("reg_1")).is_none());
        // A request that observed 4 (before 5 was seen) read its copy: it may predate change 5.
        c.put(4, Entry::Region(region("reg_1", "maybe stale")));
        assert!(c.get(5, Key::Region("reg_1")).is_none());
        // A request still at 4 may use copies read at 5: they are newer than what it saw.
        c.put(5, Entry::Region(region("reg_1", "new")));
        assert_eq!(name(c.get(4, Key::Region("reg_1"))).as_deref(), Some("new"));
    }
}
