//! Prefixed, time-sortable object ids (`cus_01jd…`).
//!
//! The body is a ULID in lower case: 48 bits of milliseconds then 80 random bits, so ids sort
//! by creation time to the millisecond (cursor pagination orders by id, a total order since ids
//! are unique) and cannot be guessed from one another. The random part is fresh for every id:
//! ids made in the same millisecond sort by it, that is in no particular order. (Monotonic
//! ULIDs, which add one to the previous id's random part inside a millisecond, would give
//! exact creation order but let anyone who sees one id name its neighbours.) Where creation
//! order inside a request matters — the lines of a cart — it is stored explicitly.
//!
//! An id is a name, not a credential: what a guest owns is opened with its client secret as
//! well (see [`crate::client_secret`]).

use std::fmt;

/// Every kind of object and the prefix of its ids. One list, so prefixes never collide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdKind {
    ApiKey,
    Product,
    Price,
    PricingModel,
    Region,
    ShippingOption,
    Customer,
    Subscription,
    Cart,
    LineItem,
    Order,
    Payment,
    Refund,
    CheckoutSession,
    CreditEntry,
    Event,
    WebhookEvent,
    WebhookEndpoint,
    WebhookDelivery,
    WebhookAttempt,
    Invoice,
    TestClock,
    /// A person who signs in to the merchant's dashboard.
    DashboardUser,
    /// A customer's short-lived link to the billing portal (Stripe's `bps_`).
    BillingPortalSession,
}

impl IdKind {
    pub const fn prefix(self) -> &'static str {
        match self {
            IdKind::ApiKey => "key",
            IdKind::Product => "prod",
            IdKind::Price => "price",
            IdKind::PricingModel => "pmod",
            IdKind::Region => "reg",
            IdKind::ShippingOption => "shipopt",
            IdKind::Customer => "cus",
            IdKind::Subscription => "sub",
            IdKind::Cart => "cart",
            IdKind::LineItem => "li",
            IdKind::Order => "ord",
            IdKind::Payment => "pay",
            IdKind::Refund => "re",
            // Not Stripe's `cs_`: the processor's session (Stripe's, or the test processor's,
            // which copies Stripe) is another object beside Kassa's, and one session showed
            // two `cs_` ids. Sessions stored before the change keep their `cs_` ids
            // ([`IdKind::legacy_prefixes`]).
            IdKind::CheckoutSession => "checkout",
            IdKind::CreditEntry => "cred",
            IdKind::Event => "evt",
            IdKind::WebhookEvent => "whevt",
            IdKind::WebhookEndpoint => "we",
            IdKind::WebhookDelivery => "whdel",
            IdKind::WebhookAttempt => "whatt",
            IdKind::Invoice => "in",
            IdKind::TestClock => "clock",
            IdKind::DashboardUser => "user",
            IdKind::BillingPortalSession => "bps",
        }
    }

    /// A new id of this kind.
    pub fn new_id(self) -> String {
        new_id(self.prefix())
    }

    /// Prefixes this kind had before: ids stored with them stay valid (looked up, never
    /// generated). Checkout sessions were `cs_` until Kassa's and the processor's differed.
    pub const fn legacy_prefixes(self) -> &'static [&'static str] {
        match self {
            IdKind::CheckoutSession => &["cs"],
            _ => &[],
        }
    }

    /// Whether `id` looks like an id of this kind (its prefix, or one it had before, and a
    /// ULID body).
    pub fn matches(self, id: &str) -> bool {
        matches_prefix(self.prefix(), id) || self.legacy_prefixes().iter().any(|p| matches_prefix(p, id))
    }
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.prefix())
    }
}

/// A new id with any prefix (the test processor uses Stripe's own prefixes: `pi_`, `ch_`, …).
/// The random part comes from the thread's CSPRNG (`rand`'s `ThreadRng`, behind `Ulid::new`).
pub fn new_id(prefix: &str) -> String {
    let body = ulid::Ulid::new().to_string().to_ascii_lowercase();
    let mut id = String::with_capacity(prefix.len() + 1 + body.len());
    id.push_str(prefix);
    id.push('_');
    id.push_str(&body);
    id
}

/// The 80-bit random part of an id of any prefix, or `None` when `id` is not one.
pub fn random_part(id: &str) -> Option<u128> {
    let body = id.rsplit_once('_')?.1;
    if body.len() != 26 {
        return None;
    }
    ulid::Ulid::from_string(body).ok().map(|u| u.random())
}

/// Whether `id` is `prefix_` followed by a well-formed ULID body.
pub fn matches_prefix(prefix: &str, id: &str) -> bool {
    id.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|body| body.len() == 26 && ulid::Ulid::from_string(body).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_has_a_fresh_random_part() {
        // Monotonic ids made in one millisecond differ by one in their random part; fresh ones
        // are spread over 2^80 values, so 100,000 of them leave no two within 2^16 of each
        // other (the chance that any pair does is about 2^-30).
        let mut parts: Vec<u128> =
            (0..100_000).map(|_| random_part(&IdKind::Cart.new_id()).expect("a well-formed id")).collect();
        parts.sort_unstable();
        let closest = parts.windows(2).map(|w| w[1] - w[0]).min().expect("many ids");
        assert!(closest > 1 << 16, "two random parts only {closest} apart");
    }

    #[test]
    fn ids_sort_by_their_millisecond_and_parse_as_before() {
        let ids: Vec<String> = (0..1000).map(|_| IdKind::Order.new_id()).collect();
        let millis = |id: &str| ulid::Ulid::from_string(&id[4..]).unwrap().timestamp_ms();
        let mut sorted = ids.clone();
        sorted.sort();
        for w in sorted.windows(2) {
            assert!(millis(&w[0]) <= millis(&w[1]), "{} sorts before {} but is newer", w[0], w[1]);
        }
        // An id made before this change (monotonic ULID, same format) still parses.
        assert!(IdKind::Cart.matches("cart_01m8sv58gz1g4937ffssgyn57b"));
        assert_eq!(
            random_part("cart_01m8sv58gz1g4937ffssgyn57d").unwrap()
                - random_part("cart_01m8sv58gz1g4937ffssgyn57b").unwrap(),
            2
        );
        assert_eq!(random_part("cart_nope"), None);
    }

    #[test]
    fn ids_carry_their_prefix_and_sort_by_time() {
        let a = IdKind::Customer.new_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = IdKind::Customer.new_id();
        assert!(a.starts_with("cus_"));
        assert!(a < b, "{a} should sort before {b}");
        assert!(IdKind::Customer.matches(&a));
        assert!(!IdKind::Cart.matches(&a));
        assert!(!IdKind::Customer.matches("cus_nope"));
    }

    #[test]
    fn checkout_sessions_are_not_stripe_prefixed_and_old_ids_stay_valid() {
        let id = IdKind::CheckoutSession.new_id();
        assert!(id.starts_with("checkout_"), "{id}");
        assert!(IdKind::CheckoutSession.matches(&id));
        // Stored before the prefix changed: still found.
        assert!(IdKind::CheckoutSession.matches("cs_01m8sv58gz1g4937ffssgyn57b"));
        assert!(!IdKind::Cart.matches("cs_01m8sv58gz1g4937ffssgyn57b"));
        assert!(!IdKind::CheckoutSession.matches("cs_nope"));
    }
}
