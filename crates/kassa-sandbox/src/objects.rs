//! The test processor's objects: Stripe's own model ([`kassa_processors::stripe::objects`],
//! which the Stripe client reads too), stored one per row of `tp_objects` and sent in events as
//! Stripe sends them; with the conversions to Kassa's processor-neutral types.

use kassa_processors::types::{self, CheckoutSessionStatus};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use kassa_processors::stripe::objects::*;

/// The API version the test processor's objects and events follow: the one the Stripe client
/// pins.
pub const API_VERSION: &str = kassa_processors::stripe::DEFAULT_API_VERSION;

/// A processor object as one row of `tp_objects`.
pub trait Stored: Serialize + DeserializeOwned {
    /// The `kind` column.
    const KIND: &'static str;
    fn id(&self) -> &str;
    /// The customer the object belongs to (the `customer` column).
    fn owner(&self) -> Option<&str> {
        None
    }
    /// The object it hangs off, when the object itself says so.
    fn parent(&self) -> Option<&str> {
        None
    }
    /// When the processor must act on it by itself.
    fn due_at(&self) -> Option<i64> {
        None
    }
}

impl Stored for Customer {
    const KIND: &'static str = "customer";
    fn id(&self) -> &str {
        &self.id
    }
}

impl Stored for PaymentMethod {
    const KIND: &'static str = "payment_method";
    fn id(&self) -> &str {
        &self.id
    }
    fn owner(&self) -> Option<&str> {
        self.customer.as_deref()
    }
}

impl Stored for ConfirmationToken {
    const KIND: &'static str = "confirmation_token";
    fn id(&self) -> &str {
        &self.id
    }
}

impl Stored for PaymentIntent {
    const KIND: &'static str = "payment_intent";
    fn id(&self) -> &str {
        &self.id
    }
    fn owner(&self) -> Option<&str> {
        self.customer.as_deref()
    }
}

impl Stored for Charge {
    const KIND: &'static str = "charge";
    fn id(&self) -> &str {
        &self.id
    }
    fn owner(&self) -> Option<&str> {
        self.customer.as_deref()
    }
    fn parent(&self) -> Option<&str> {
        self.payment_intent.as_deref()
    }
}

impl Stored for Refund {
    const KIND: &'static str = "refund";
    fn id(&self) -> &str {
        &self.id
    }
    fn parent(&self) -> Option<&str> {
        self.charge.as_deref()
    }
}

impl Stored for CheckoutSession {
    const KIND: &'static str = "checkout_session";
    fn id(&self) -> &str {
        &self.id
    }
    fn owner(&self) -> Option<&str> {
        self.customer.as_deref()
    }
    fn due_at(&self) -> Option<i64> {
        (self.status == CheckoutSessionStatus::Open).then_some(self.expires_at)
    }
}

/// The neutral PaymentIntent; `latest_charge` is the charge of that id, when loaded.
///
/// Read as the Stripe client reads it, except for `amount_refunded`: the test processor keeps
/// the uncaptured rest of a partial capture off the charge's `amount_refunded` (Stripe books
/// it there, and the shared conversion takes it off again), so what the charge says was
/// refunded is what was given back.
pub fn payment_intent_neutral(pi: &PaymentIntent, latest_charge: Option<&Charge>) -> types::PaymentIntent {
    let mut neutral = pi.clone().into_neutral().expect("the test processor's PaymentIntents have ids");
    neutral.amount_refunded = latest_charge
        .filter(|c| Some(c.id.as_str()) == pi.latest_charge_id())
        .map_or(0, |c| c.amount_refunded);
    neutral
}

pub fn refund_neutral(refund: &Refund) -> types::Refund {
    refund.clone().into_neutral().expect("the test processor's refunds have ids")
}

pub fn payment_method_neutral(pm: &PaymentMethod) -> types::PaymentMethod {
    pm.clone().into_neutral().expect("the test processor's payment methods have ids")
}

pub fn checkout_session_neutral(session: &CheckoutSession) -> types::CheckoutSession {
    session.clone().into_neutral().expect("the test processor's checkout sessions have ids")
}
