//! Prefixed, time-sortable object ids (`cus_01jd…`).
//!
//! The body is a ULID in lower case: 48 bits of milliseconds then 80 random bits, so ids sort
//! by creation time (cursor pagination orders by id) and cannot be guessed (a cart id is the
//! guest's only credential for that cart).

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
}

impl IdKind {
    pub const fn prefix(self) -> &'static str {
        match self {
            IdKind::ApiKey => "key",
            IdKind::Product => "prod",
            IdKind::Price => "price",
            IdKind::PricingModel => "pm",
            IdKind::Region => "reg",
            IdKind::ShippingOption => "shipopt",
            IdKind::Customer => "cus",
            IdKind::Subscription => "sub",
            IdKind::Cart => "cart",
            IdKind::LineItem => "li",
            IdKind::Order => "ord",
            IdKind::Payment => "pay",
            IdKind::Refund => "re",
            IdKind::CheckoutSession => "cs",
            IdKind::CreditEntry => "cred",
            IdKind::Event => "evt",
            IdKind::WebhookEvent => "whevt",
        }
    }

    /// A new id of this kind.
    pub fn new_id(self) -> String {
        new_id(self.prefix())
    }

    /// Whether `id` looks like an id of this kind (prefix and ULID body).
    pub fn matches(self, id: &str) -> bool {
        matches_prefix(self.prefix(), id)
    }
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.prefix())
    }
}

/// A new id with any prefix (the test processor uses Stripe's own prefixes: `pi_`, `ch_`, …).
///
/// Monotonic within the process: two ids made in the same millisecond still sort in the
/// order they were made, so "newest first" lists are exact for one server.
pub fn new_id(prefix: &str) -> String {
    static GENERATOR: std::sync::Mutex<Option<ulid::Generator>> = std::sync::Mutex::new(None);
    let ulid = {
        let mut g = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
        // The random part overflows only after 2^80 ids in one millisecond.
        g.get_or_insert_with(ulid::Generator::new).generate().unwrap_or_else(|_| ulid::Ulid::new())
    };
    let body = ulid.to_string().to_ascii_lowercase();
    let mut id = String::with_capacity(prefix.len() + 1 + body.len());
    id.push_str(prefix);
    id.push('_');
    id.push_str(&body);
    id
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
    fn ids_made_in_the_same_millisecond_keep_their_order() {
        let ids: Vec<String> = (0..1000).map(|_| IdKind::Order.new_id()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
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
}
