//! A processor that refuses every call: what Kassa runs with until a real one is configured.

use crate::*;

pub struct Unavailable;

fn refuse<T>() -> Result<T, ProcessorError> {
    Err(ProcessorError::Unsupported("no payment processor is configured"))
}

#[async_trait]
impl Processor for Unavailable {
    fn name(&self) -> &'static str {
        "unavailable"
    }
    async fn create_customer(
        &self,
        _: &CreateCustomer,
        _: &IdempotencyKey,
    ) -> Result<ProcessorCustomer, ProcessorError> {
        refuse()
    }
    async fn create_payment_intent(
        &self,
        _: &CreatePaymentIntent,
        _: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProcessorError> {
        refuse()
    }
    async fn confirm_payment_intent(
        &self,
        _: &str,
        _: &ConfirmPaymentIntent,
        _: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProcessorError> {
        refuse()
    }
    async fn retrieve_payment_intent(&self, _: &str) -> Result<PaymentIntent, ProcessorError> {
        refuse()
    }
    async fn list_payment_intents(&self, _: Option<&str>, _: u32) -> Result<PaymentIntentPage, ProcessorError> {
        refuse()
    }
    async fn capture_payment_intent(
        &self,
        _: &str,
        _: Option<i64>,
        _: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProcessorError> {
        refuse()
    }
    async fn cancel_payment_intent(&self, _: &str, _: &IdempotencyKey) -> Result<PaymentIntent, ProcessorError> {
        refuse()
    }
    async fn create_refund(&self, _: &CreateRefund, _: &IdempotencyKey) -> Result<Refund, ProcessorError> {
        refuse()
    }
    async fn list_payment_methods(&self, _: &str) -> Result<Vec<PaymentMethod>, ProcessorError> {
        refuse()
    }
    async fn attach_payment_method(
        &self,
        _: &str,
        _: &str,
        _: &IdempotencyKey,
    ) -> Result<PaymentMethod, ProcessorError> {
        refuse()
    }
    async fn detach_payment_method(&self, _: &str, _: &IdempotencyKey) -> Result<PaymentMethod, ProcessorError> {
        refuse()
    }
    async fn create_checkout_session(
        &self,
        _: &CreateCheckoutSession,
        _: &IdempotencyKey,
    ) -> Result<CheckoutSession, ProcessorError> {
        refuse()
    }
    async fn retrieve_checkout_session(&self, _: &str) -> Result<CheckoutSession, ProcessorError> {
        refuse()
    }
    async fn expire_checkout_session(&self, _: &str, _: &IdempotencyKey) -> Result<CheckoutSession, ProcessorError> {
        refuse()
    }
    fn parse_event(&self, _: &[u8], _: &str, _: i64) -> Result<Event, EventError> {
        Err(EventError::Malformed("no payment processor is configured".into()))
    }
}
