//! Payment processors behind one trait.
//!
//! Services see only [`Processor`] and the processor-neutral types in [`types`]; Stripe's
//! wire format stays inside `stripe/`. The offline `test` processor, which behaves like Stripe's
//! test mode, is the `kassa-sandbox` crate (it keeps its state in Kassa's database, which this
//! crate knows nothing of). Both pass the same contract suite (`kassa-sandbox/tests/contract.rs`).

pub mod deadline;
pub mod signature;
pub mod stripe;
pub mod types;
pub mod unavailable;

pub use types::*;

use async_trait::async_trait;

/// An idempotency key for a mutating processor call, chosen by the caller and derived from
/// Kassa's own ids (`kassa_pay_<payment id>`), so that a retry after a crash repeats the call
/// instead of making a second charge.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(pub String);

impl IdempotencyKey {
    pub fn new(key: impl Into<String>) -> Self {
        IdempotencyKey(key.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A payment processor. Every mutating call carries the caller's idempotency key: the same
/// key and parameters give the same result, however often the call is repeated.
#[async_trait]
pub trait Processor: Send + Sync + 'static {
    /// `test` or `stripe`.
    fn name(&self) -> &'static str;

    async fn create_customer(
        &self,
        req: &CreateCustomer,
        key: &IdempotencyKey,
    ) -> Result<ProcessorCustomer, ProcessorError>;

    /// Creates a PaymentIntent; with `confirm` set it is confirmed in the same call (the
    /// single-shot flow), which is also the only confirm localstripe can serve.
    async fn create_payment_intent(
        &self,
        req: &CreatePaymentIntent,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProcessorError>;

    /// Confirms an existing PaymentIntent with a (new) payment source.
    async fn confirm_payment_intent(
        &self,
        id: &str,
        req: &ConfirmPaymentIntent,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProcessorError>;

    async fn retrieve_payment_intent(&self, id: &str) -> Result<PaymentIntent, ProcessorError>;

    /// PaymentIntents, newest first, a page at a time (reconciliation looks for charges that
    /// carry Kassa's metadata but are not the ones Kassa keeps). Each carries its latest
    /// charge's refunded amount, as [`Processor::retrieve_payment_intent`] does.
    async fn list_payment_intents(
        &self,
        starting_after: Option<&str>,
        limit: u32,
    ) -> Result<PaymentIntentPage, ProcessorError>;

    /// Captures an authorized PaymentIntent; `amount` below the authorized amount is a
    /// partial capture (the rest is released).
    async fn capture_payment_intent(
        &self,
        id: &str,
        amount: Option<i64>,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProcessorError>;

    async fn cancel_payment_intent(&self, id: &str, key: &IdempotencyKey) -> Result<PaymentIntent, ProcessorError>;

    async fn create_refund(&self, req: &CreateRefund, key: &IdempotencyKey) -> Result<Refund, ProcessorError>;

    /// The customer's saved payment methods (cards saved with `setup_future_usage`).
    async fn list_payment_methods(&self, customer: &str) -> Result<Vec<PaymentMethod>, ProcessorError>;

    /// Saves `payment_method` with `customer` for later (off-session) payments, as Stripe's
    /// `POST /v1/payment_methods/{id}/attach`. A test shortcut (`pm_card_visa`) makes a fresh
    /// payment method first; the answer carries its id.
    async fn attach_payment_method(
        &self,
        payment_method: &str,
        customer: &str,
        key: &IdempotencyKey,
    ) -> Result<PaymentMethod, ProcessorError>;

    /// Forgets a saved payment method (Stripe's detach): it can pay nothing any more.
    async fn detach_payment_method(
        &self,
        payment_method: &str,
        key: &IdempotencyKey,
    ) -> Result<PaymentMethod, ProcessorError>;

    /// A hosted checkout page at the processor (Stripe Checkout; the test processor's page).
    async fn create_checkout_session(
        &self,
        req: &CreateCheckoutSession,
        key: &IdempotencyKey,
    ) -> Result<CheckoutSession, ProcessorError>;

    async fn retrieve_checkout_session(&self, id: &str) -> Result<CheckoutSession, ProcessorError>;

    async fn expire_checkout_session(&self, id: &str, key: &IdempotencyKey) -> Result<CheckoutSession, ProcessorError>;

    /// Verifies a webhook delivery (raw body and `Stripe-Signature` header) and parses it.
    fn parse_event(&self, payload: &[u8], signature: &str, now: i64) -> Result<Event, EventError>;
}
