//! The `stripe` processor: a thin typed client over Stripe's REST API v1.
//!
//! Form-encoded requests with nested parameters ([`form`]), the pinned `Stripe-Version`, an
//! `Idempotency-Key` on every POST and retries with backoff ([`client`]), Stripe's JSON read
//! leniently into the one model of Stripe's objects that the test processor writes as well
//! ([`objects`]), and only the parameters each call needs ([`requests`]).
//!
//! Written by hand rather than with `async-stripe`: measured here, async-stripe 1.0 takes about
//! two minutes to build and cannot parse localstripe's PaymentIntents, while Kassa needs a dozen
//! calls and a handful of fields.
//!
//! # What the tests exercise where
//! Against localstripe 1.15.10 (`tests/stripe_localstripe.rs`): customers; PaymentIntents
//! created with the customer and confirmed in one call (`confirm=true` + `payment_method`);
//! a decline (card 4000 0000 0000 0341, 402 `card_declined`); manual capture, full and partial;
//! cancel; refunds, full and partial; retrieve; saved cards and an `off_session` charge of one;
//! 3-D Secure through localstripe's
//! own `_authenticate`; its signed `payment_intent.succeeded` webhook; a plain-text 404 for a
//! route it lacks mapped to [`ProcessorError::Unsupported`].
//!
//! localstripe cannot exercise, so recorded Stripe-shaped answers do (`tests/stripe_fixtures.rs`,
//! `tests/fixtures/stripe/`): Checkout Sessions (create, retrieve, expire); ConfirmationTokens;
//! decline errors carrying the PaymentIntent; `next_action.redirect_to_url`; Stripe's own
//! `amount_received`/`amount_captured` fields; idempotency keys and retries (localstripe ignores
//! `Idempotency-Key` and never fails transiently); `setup_future_usage` and `return_url`
//! (localstripe answers 400 to them); confirming an existing PaymentIntent with a new payment
//! method (localstripe answers 500). localstripe's 3-D Secure answers with a
//! `use_stripe_sdk` next action, which has no URL to redirect to, so [`PaymentIntent::next_action`]
//! stays empty there.
//!
//! Webhook signatures are checked against the official `stripe` Python library in
//! `tests/stripe_signature.rs`.

mod client;
mod form;
pub mod objects;
mod requests;

use crate::signature::{self, DEFAULT_TOLERANCE_SECS, SignatureError};
use crate::*;
use client::HttpClient;
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

/// The API version this client's requests and readers were written against (the server's
/// configuration default as well).
pub const DEFAULT_API_VERSION: &str = "2024-06-20";
pub const DEFAULT_BASE_URL: &str = "https://api.stripe.com";

/// Settings of the Stripe processor.
#[derive(Clone, Debug)]
pub struct StripeConfig {
    /// `sk_…` or a restricted `rk_…` key.
    pub secret_key: SecretString,
    /// `whsec_…` of the webhook endpoint: the current one first, then the previous one while a
    /// secret is rotated. A delivery signed with any of them is accepted.
    pub webhook_secrets: Vec<SecretString>,
    /// `https://api.stripe.com`; tests point it at localstripe or a fake.
    pub base_url: String,
    /// The pinned `Stripe-Version`.
    pub api_version: String,
    /// Retries after the first attempt, for network errors, 409, 429 and 5xx.
    pub max_network_retries: u32,
    /// Per attempt, connection to last byte.
    pub timeout: Duration,
    /// The first wait between retries; it doubles with each retry (with jitter), up to 5 s.
    pub initial_retry_delay: Duration,
}

impl StripeConfig {
    /// Stripe's defaults for everything but the secrets.
    pub fn new(secret_key: SecretString, webhook_secrets: Vec<SecretString>) -> Self {
        StripeConfig {
            secret_key,
            webhook_secrets,
            base_url: DEFAULT_BASE_URL.into(),
            api_version: DEFAULT_API_VERSION.into(),
            max_network_retries: 2,
            timeout: Duration::from_secs(30),
            initial_retry_delay: Duration::from_millis(500),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StripeConfigError {
    #[error("the Stripe secret key must be a secret or restricted key (sk_… or rk_…)")]
    SecretKey,
    #[error("at least one Stripe webhook signing secret (whsec_…) is required")]
    NoWebhookSecret,
    #[error("Stripe webhook secret #{0} is not a signing secret (whsec_…)")]
    WebhookSecret(usize),
    #[error("the Stripe base URL must be an http(s) URL: {0}")]
    BaseUrl(String),
    #[error("the Stripe API version is not a valid header value")]
    ApiVersion,
    #[error("the HTTP client could not be built: {0}")]
    Http(String),
}

/// The Stripe processor. Cheap to share behind an `Arc`; the HTTP connection pool is inside.
pub struct StripeProcessor {
    client: HttpClient,
    webhook_secrets: Vec<SecretString>,
}

impl std::fmt::Debug for StripeProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeProcessor")
            .field("base_url", &self.client.base_url().as_str())
            .field("api_version", &self.client.api_version())
            .field("webhook_secrets", &self.webhook_secrets.len())
            .finish_non_exhaustive()
    }
}

impl StripeProcessor {
    /// Checks the configuration, so a wrong secret stops the server at start rather than at
    /// the first payment or webhook.
    pub fn new(config: StripeConfig) -> Result<Self, StripeConfigError> {
        let key = config.secret_key.expose_secret();
        if !(key.starts_with("sk_") || key.starts_with("rk_")) || key.len() <= 3 {
            return Err(StripeConfigError::SecretKey);
        }
        if config.webhook_secrets.is_empty() {
            return Err(StripeConfigError::NoWebhookSecret);
        }
        for (i, secret) in config.webhook_secrets.iter().enumerate() {
            let s = secret.expose_secret();
            if !s.starts_with("whsec_") || s.len() <= "whsec_".len() {
                return Err(StripeConfigError::WebhookSecret(i));
            }
        }
        let base_url = url::Url::parse(&config.base_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && !u.cannot_be_a_base() && u.host().is_some())
            .ok_or_else(|| StripeConfigError::BaseUrl(config.base_url.clone()))?;
        let api_version = HeaderValue::from_str(&config.api_version)
            .ok()
            .filter(|_| !config.api_version.is_empty())
            .ok_or(StripeConfigError::ApiVersion)?;
        let client = HttpClient::new(
            base_url,
            config.secret_key,
            api_version,
            config.max_network_retries,
            config.timeout,
            config.initial_retry_delay,
        )
        .map_err(|e| StripeConfigError::Http(e.to_string()))?;
        Ok(StripeProcessor { client, webhook_secrets: config.webhook_secrets })
    }

    async fn payment_intent_post(
        &self,
        op: &'static str,
        segments: &[&str],
        form: &form::Form,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProcessorError> {
        self.client.post::<objects::PaymentIntent>(op, segments, form, key).await?.into_neutral()
    }
}

#[async_trait]
impl Processor for StripeProcessor {
    fn name(&self) -> &'static str {
        "stripe"
    }

    async fn create_customer(
        &self,
        req: &CreateCustomer,
        key: &IdempotencyKey,
    ) -> Result<ProcessorCustomer, ProcessorError> {
        let form = requests::create_customer(req);
        self.client
            .post::<objects::Customer>("create a customer", &["v1", "customers"], &form, key)
            .await?
            .into_neutral()
    }

    async fn create_payment_intent(
        &self,
        req: &CreatePaymentIntent,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProcessorError> {
        let form = requests::create_payment_intent(req);
        self.payment_intent_post("create a PaymentIntent", &["v1", "payment_intents"], &form, key).await
    }

    async fn confirm_payment_intent(
        &self,
        id: &str,
        req: &ConfirmPaymentIntent,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProcessorError> {
        let form = requests::confirm_payment_intent(req);
        self.payment_intent_post("confirm a PaymentIntent", &["v1", "payment_intents", id, "confirm"], &form, key).await
    }

    async fn retrieve_payment_intent(&self, id: &str) -> Result<PaymentIntent, ProcessorError> {
        let query = requests::expand_payment_intent();
        self.client
            .get::<objects::PaymentIntent>("retrieve a PaymentIntent", &["v1", "payment_intents", id], &query)
            .await?
            .into_neutral()
    }

    async fn list_payment_intents(
        &self,
        starting_after: Option<&str>,
        limit: u32,
    ) -> Result<PaymentIntentPage, ProcessorError> {
        let query = requests::list_payment_intents(starting_after, limit);
        let page = self
            .client
            .get::<objects::List<objects::PaymentIntent>>("list PaymentIntents", &["v1", "payment_intents"], &query)
            .await?;
        Ok(PaymentIntentPage {
            data: page.data.into_iter().map(objects::PaymentIntent::into_neutral).collect::<Result<_, _>>()?,
            has_more: page.has_more,
        })
    }

    async fn capture_payment_intent(
        &self,
        id: &str,
        amount: Option<i64>,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProcessorError> {
        let form = requests::capture_payment_intent(amount);
        self.payment_intent_post("capture a PaymentIntent", &["v1", "payment_intents", id, "capture"], &form, key).await
    }

    async fn cancel_payment_intent(&self, id: &str, key: &IdempotencyKey) -> Result<PaymentIntent, ProcessorError> {
        let form = requests::expand_payment_intent();
        self.payment_intent_post("cancel a PaymentIntent", &["v1", "payment_intents", id, "cancel"], &form, key).await
    }

    async fn create_refund(&self, req: &CreateRefund, key: &IdempotencyKey) -> Result<Refund, ProcessorError> {
        let form = requests::create_refund(req);
        self.client.post::<objects::Refund>("create a refund", &["v1", "refunds"], &form, key).await?.into_neutral()
    }

    async fn attach_payment_method(
        &self,
        payment_method: &str,
        customer: &str,
        key: &IdempotencyKey,
    ) -> Result<PaymentMethod, ProcessorError> {
        let form = requests::attach_payment_method(customer);
        let segments = ["v1", "payment_methods", payment_method, "attach"];
        self.client
            .post::<objects::PaymentMethod>("attach a payment method", &segments, &form, key)
            .await?
            .into_neutral()
    }

    async fn detach_payment_method(
        &self,
        payment_method: &str,
        key: &IdempotencyKey,
    ) -> Result<PaymentMethod, ProcessorError> {
        let segments = ["v1", "payment_methods", payment_method, "detach"];
        self.client
            .post::<objects::PaymentMethod>("detach a payment method", &segments, &requests::empty(), key)
            .await?
            .into_neutral()
    }

    async fn list_payment_methods(&self, customer: &str) -> Result<Vec<PaymentMethod>, ProcessorError> {
        // Bounded, in case a server keeps answering `has_more` without moving on.
        const MAX_PAGES: usize = 20;
        let mut methods = Vec::new();
        let mut starting_after: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let query = requests::list_payment_methods(customer, starting_after.as_deref());
            let page = self
                .client
                .get::<objects::List<objects::PaymentMethod>>(
                    "list payment methods",
                    &["v1", "payment_methods"],
                    &query,
                )
                .await?;
            let has_more = page.has_more;
            for pm in page.data {
                methods.push(pm.into_neutral()?);
            }
            match methods.last() {
                Some(last) if has_more && starting_after.as_deref() != Some(last.id.as_str()) => {
                    starting_after = Some(last.id.clone());
                }
                _ => break,
            }
        }
        Ok(methods)
    }

    async fn create_checkout_session(
        &self,
        req: &CreateCheckoutSession,
        key: &IdempotencyKey,
    ) -> Result<CheckoutSession, ProcessorError> {
        let form = requests::create_checkout_session(req);
        self.client
            .post::<objects::CheckoutSession>("create a Checkout Session", &["v1", "checkout", "sessions"], &form, key)
            .await?
            .into_neutral()
    }

    async fn retrieve_checkout_session(&self, id: &str) -> Result<CheckoutSession, ProcessorError> {
        self.client
            .get::<objects::CheckoutSession>(
                "retrieve a Checkout Session",
                &["v1", "checkout", "sessions", id],
                &form::Form::new(),
            )
            .await?
            .into_neutral()
    }

    async fn expire_checkout_session(&self, id: &str, key: &IdempotencyKey) -> Result<CheckoutSession, ProcessorError> {
        self.client
            .post::<objects::CheckoutSession>(
                "expire a Checkout Session",
                &["v1", "checkout", "sessions", id, "expire"],
                &form::Form::new(),
                key,
            )
            .await?
            .into_neutral()
    }

    /// `signature` is the `Stripe-Signature` header; an empty one counts as missing. Any
    /// configured secret may match (rotation). When none does, a signature that matched but is
    /// too old is reported as [`SignatureError::Expired`], since that is the actionable cause.
    fn parse_event(&self, payload: &[u8], signature: &str, now: i64) -> Result<Event, EventError> {
        let header = Some(signature).filter(|s| !s.trim().is_empty());
        let mut refusal: Option<SignatureError> = None;
        let mut verified = false;
        for secret in &self.webhook_secrets {
            match signature::verify(secret.expose_secret(), payload, header, now, DEFAULT_TOLERANCE_SECS) {
                Ok(()) => {
                    verified = true;
                    break;
                }
                Err(e @ SignatureError::Expired(_)) => refusal = Some(e),
                Err(e) => {
                    refusal.get_or_insert(e);
                }
            }
        }
        if !verified {
            return Err(EventError::Signature(refusal.unwrap_or(SignatureError::NoMatch)));
        }
        serde_json::from_slice::<objects::Event>(payload)
            .map(objects::Event::into_neutral)
            .map_err(|e| EventError::Malformed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> StripeConfig {
        StripeConfig::new(SecretString::from("sk_test_abc"), vec![SecretString::from("whsec_current")])
    }

    #[test]
    fn the_configuration_is_checked_at_construction() {
        assert!(StripeProcessor::new(config()).is_ok());
        let bad_key = StripeConfig { secret_key: SecretString::from("pk_test_abc"), ..config() };
        assert_eq!(StripeProcessor::new(bad_key).unwrap_err(), StripeConfigError::SecretKey);
        let no_secret = StripeConfig { webhook_secrets: vec![], ..config() };
        assert_eq!(StripeProcessor::new(no_secret).unwrap_err(), StripeConfigError::NoWebhookSecret);
        let bad_secret = StripeConfig {
            webhook_secrets: vec![SecretString::from("whsec_ok"), SecretString::from("nope")],
            ..config()
        };
        assert_eq!(StripeProcessor::new(bad_secret).unwrap_err(), StripeConfigError::WebhookSecret(1));
        for url in ["api.stripe.com", "ftp://x", "mailto:a@b"] {
            let bad_url = StripeConfig { base_url: url.into(), ..config() };
            assert!(matches!(StripeProcessor::new(bad_url), Err(StripeConfigError::BaseUrl(_))), "{url}");
        }
        let bad_version = StripeConfig { api_version: "2024\n".into(), ..config() };
        assert_eq!(StripeProcessor::new(bad_version).unwrap_err(), StripeConfigError::ApiVersion);
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let text = format!("{:?} {:?}", StripeProcessor::new(config()).unwrap(), config());
        assert!(!text.contains("sk_test_abc") && !text.contains("whsec_current"), "{text}");
    }

    #[test]
    fn an_event_signed_with_any_configured_secret_is_accepted() {
        let p = StripeProcessor::new(StripeConfig {
            webhook_secrets: vec![SecretString::from("whsec_current"), SecretString::from("whsec_previous")],
            ..config()
        })
        .unwrap();
        let body =
            br#"{"id":"evt_1","type":"payment_intent.succeeded","created":1700000000,"data":{"object":{"id":"pi_1"}}}"#;
        for secret in ["whsec_current", "whsec_previous"] {
            let header = signature::sign(secret, 1_700_000_000, body);
            let event = p.parse_event(body, &header, 1_700_000_010).unwrap();
            assert_eq!(
                (event.id.as_str(), event.kind.as_str(), event.object_id()),
                ("evt_1", "payment_intent.succeeded", Some("pi_1"))
            );
        }
        let stranger = signature::sign("whsec_other", 1_700_000_000, body);
        assert_eq!(
            p.parse_event(body, &stranger, 1_700_000_010).unwrap_err(),
            EventError::Signature(SignatureError::NoMatch)
        );
        let old = signature::sign("whsec_previous", 1_700_000_000, body);
        assert_eq!(
            p.parse_event(body, &old, 1_700_000_301).unwrap_err(),
            EventError::Signature(SignatureError::Expired(DEFAULT_TOLERANCE_SECS))
        );
        assert_eq!(
            p.parse_event(body, "", 1_700_000_000).unwrap_err(),
            EventError::Signature(SignatureError::MissingHeader)
        );
    }

    #[test]
    fn a_signed_payload_that_is_not_an_event_is_malformed() {
        let p = StripeProcessor::new(config()).unwrap();
        for body in [&b"not json"[..], br#"{"id":"evt_1","data":{"object":{}}}"#] {
            let header = signature::sign("whsec_current", 1_700_000_000, body);
            assert!(matches!(p.parse_event(body, &header, 1_700_000_000), Err(EventError::Malformed(_))));
        }
    }
}
