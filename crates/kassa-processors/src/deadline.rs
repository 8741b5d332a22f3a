//! One deadline around every processor call, retries included.
//!
//! The Stripe client retries a call that failed on the network (each attempt with its own
//! timeout), so a processor that accepts connections and never answers would hold a checkout
//! for attempts × timeout (three times 30 s by default). Kassa's callers need an answer in
//! bounded time instead: past the deadline the call counts as [`ProcessorError::Unavailable`]
//! — its outcome unknown, as after any network failure — and the webhook and reconciliation
//! paths learn what happened. The call may still take effect at the processor after that;
//! whoever repeats it does so with the same idempotency key, under the payment's lease.

use crate::*;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// A processor whose every call answers within `deadline`.
pub struct WithDeadline {
    inner: Arc<dyn Processor>,
    deadline: Duration,
}

impl WithDeadline {
    pub fn new(inner: Arc<dyn Processor>, deadline: Duration) -> Self {
        WithDeadline { inner, deadline }
    }

    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    async fn bounded<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = Result<T, ProcessorError>>,
    ) -> Result<T, ProcessorError> {
        match tokio::time::timeout(self.deadline, call).await {
            Ok(outcome) => outcome,
            Err(_) => {
                tracing::warn!(
                    op,
                    deadline_ms = self.deadline.as_millis() as u64,
                    "processor call passed its deadline"
                );
                Err(ProcessorError::Unavailable(format!(
                    "{op}: no answer from the processor within {} ms; the outcome is unknown",
                    self.deadline.as_millis()
                )))
            }
        }
    }
}

#[async_trait]
impl Processor for WithDeadline {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn create_customer(
        &self,
        req: &CreateCustomer,
        key: &IdempotencyKey,
    ) -> Result<ProcessorCustomer, ProcessorError> {
        self.bounded("create a customer", self.inner.create_customer(req, key)).await
    }

    async fn create_payment_intent(
        &self,
        req: &CreatePaymentIntent,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProcessorError> {
        self.bounded("create a PaymentIntent", self.inner.create_payment_intent(req, key)).await
    }

    async fn confirm_payment_intent(
        &self,
        id: &str,
        req: &ConfirmPaymentIntent,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProcessorError> {
        self.bounded("confirm a PaymentIntent", self.inner.confirm_payment_intent(id, req, key)).await
    }

    async fn retrieve_payment_intent(&self, id: &str) -> Result<PaymentIntent, ProcessorError> {
        self.bounded("retrieve a PaymentIntent", self.inner.retrieve_payment_intent(id)).await
    }

    async fn list_payment_intents(
        &self,
        starting_after: Option<&str>,
        limit: u32,
    ) -> Result<PaymentIntentPage, ProcessorError> {
        self.bounded("list PaymentIntents", self.inner.list_payment_intents(starting_after, limit)).await
    }

    async fn capture_payment_intent(
        &self,
        id: &str,
        amount: Option<i64>,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProcessorError> {
        self.bounded("capture a PaymentIntent", self.inner.capture_payment_intent(id, amount, key)).await
    }

    async fn cancel_payment_intent(&self, id: &str, key: &IdempotencyKey) -> Result<PaymentIntent, ProcessorError> {
        self.bounded("cancel a PaymentIntent", self.inner.cancel_payment_intent(id, key)).await
    }

    async fn create_refund(&self, req: &CreateRefund, key: &IdempotencyKey) -> Result<Refund, ProcessorError> {
        self.bounded("create a refund", self.inner.create_refund(req, key)).await
    }

    async fn list_payment_methods(&self, customer: &str) -> Result<Vec<PaymentMethod>, ProcessorError> {
        self.bounded("list payment methods", self.inner.list_payment_methods(customer)).await
    }

    async fn attach_payment_method(
        &self,
        payment_method: &str,
        customer: &str,
        key: &IdempotencyKey,
    ) -> Result<PaymentMethod, ProcessorError> {
        self.bounded("attach a payment method", self.inner.attach_payment_method(payment_method, customer, key)).await
    }

    async fn detach_payment_method(
        &self,
        payment_method: &str,
        key: &IdempotencyKey,
    ) -> Result<PaymentMethod, ProcessorError> {
        self.bounded("detach a payment method", self.inner.detach_payment_method(payment_method, key)).await
    }

    async fn create_checkout_session(
        &self,
        req: &CreateCheckoutSession,
        key: &IdempotencyKey,
    ) -> Result<CheckoutSession, ProcessorError> {
        self.bounded("create a Checkout Session", self.inner.create_checkout_session(req, key)).await
    }

    async fn retrieve_checkout_session(&self, id: &str) -> Result<CheckoutSession, ProcessorError> {
        self.bounded("retrieve a Checkout Session", self.inner.retrieve_checkout_session(id)).await
    }

    async fn expire_checkout_session(&self, id: &str, key: &IdempotencyKey) -> Result<CheckoutSession, ProcessorError> {
        self.bounded("expire a Checkout Session", self.inner.expire_checkout_session(id, key)).await
    }

    fn parse_event(&self, payload: &[u8], signature: &str, now: i64) -> Result<Event, EventError> {
        self.inner.parse_event(payload, signature, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Never answers a PaymentIntent call, like a processor stopped mid-call.
    struct Silent;

    #[async_trait]
    impl Processor for Silent {
        fn name(&self) -> &'static str {
            "silent"
        }
        async fn create_customer(
            &self,
            _: &CreateCustomer,
            _: &IdempotencyKey,
        ) -> Result<ProcessorCustomer, ProcessorError> {
            Ok(ProcessorCustomer { id: "cus_1".into(), email: None })
        }
        async fn create_payment_intent(
            &self,
            _: &CreatePaymentIntent,
            _: &IdempotencyKey,
        ) -> Result<PaymentIntent, ProcessorError> {
            std::future::pending().await
        }
        async fn confirm_payment_intent(
            &self,
            _: &str,
            _: &ConfirmPaymentIntent,
            _: &IdempotencyKey,
        ) -> Result<PaymentIntent, ProcessorError> {
            std::future::pending().await
        }
        async fn retrieve_payment_intent(&self, _: &str) -> Result<PaymentIntent, ProcessorError> {
            std::future::pending().await
        }
        async fn list_payment_intents(&self, _: Option<&str>, _: u32) -> Result<PaymentIntentPage, ProcessorError> {
            std::future::pending().await
        }
        async fn capture_payment_intent(
            &self,
            _: &str,
            _: Option<i64>,
            _: &IdempotencyKey,
        ) -> Result<PaymentIntent, ProcessorError> {
            std::future::pending().await
        }
        async fn cancel_payment_intent(&self, _: &str, _: &IdempotencyKey) -> Result<PaymentIntent, ProcessorError> {
            std::future::pending().await
        }
        async fn create_refund(&self, _: &CreateRefund, _: &IdempotencyKey) -> Result<Refund, ProcessorError> {
            std::future::pending().await
        }
        async fn list_payment_methods(&self, _: &str) -> Result<Vec<PaymentMethod>, ProcessorError> {
            std::future::pending().await
        }
        async fn attach_payment_method(
            &self,
            _: &str,
            _: &str,
            _: &IdempotencyKey,
        ) -> Result<PaymentMethod, ProcessorError> {
            std::future::pending().await
        }
        async fn detach_payment_method(&self, _: &str, _: &IdempotencyKey) -> Result<PaymentMethod, ProcessorError> {
            std::future::pending().await
        }
        async fn create_checkout_session(
            &self,
            _: &CreateCheckoutSession,
            _: &IdempotencyKey,
        ) -> Result<CheckoutSession, ProcessorError> {
            std::future::pending().await
        }
        async fn retrieve_checkout_session(&self, _: &str) -> Result<CheckoutSession, ProcessorError> {
            std::future::pending().await
        }
        async fn expire_checkout_session(
            &self,
            _: &str,
            _: &IdempotencyKey,
        ) -> Result<CheckoutSession, ProcessorError> {
            std::future::pending().await
        }
        fn parse_event(&self, _: &[u8], _: &str, _: i64) -> Result<Event, EventError> {
            Err(EventError::Malformed("silent".into()))
        }
    }

    #[tokio::test]
    async fn a_call_without_answer_is_unavailable_at_the_deadline_and_an_answer_passes_through() {
        let p = WithDeadline::new(Arc::new(Silent), Duration::from_millis(200));
        let started = std::time::Instant::now();
        let err = p.retrieve_payment_intent("pi_1").await.unwrap_err();
        assert!(matches!(&err, ProcessorError::Unavailable(m) if m.contains("within 200 ms")), "{err:?}");
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(200) && waited < Duration::from_secs(5), "{waited:?}");
        let customer =
            p.create_customer(&CreateCustomer::default(), &IdempotencyKey::new("k")).await.expect("answers in time");
        assert_eq!(customer.id, "cus_1");
        assert_eq!(p.name(), "silent");
    }
}
