//! Processor-neutral objects: the fields Kassa's services need, shaped after Stripe's API
//! (which the test processor imitates), without Stripe's wire format.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub type Metadata = BTreeMap<String, String>;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateCustomer {
    pub email: Option<String>,
    pub name: Option<String>,
    /// Carries `kassa_customer_id`.
    pub metadata: Metadata,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessorCustomer {
    pub id: String,
    pub email: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureMethod {
    #[default]
    Automatic,
    Manual,
}

/// What pays: a ConfirmationToken from the browser (Stripe.js or the test processor's
/// endpoint) or a PaymentMethod saved with the customer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentSource {
    ConfirmationToken(String),
    PaymentMethod(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatePaymentIntent {
    pub amount: i64,
    pub currency: String,
    /// The processor customer; Kassa never pays without one.
    pub customer: String,
    pub metadata: Metadata,
    pub capture_method: CaptureMethod,
    /// Save the payment method for later off-session charges (`off_session`).
    pub setup_future_usage: bool,
    /// Confirm in the same call with this source.
    pub confirm: Option<PaymentSource>,
    /// A charge without the customer present (subscription renewals).
    pub off_session: bool,
    /// Where a 3-D Secure challenge returns the browser to.
    pub return_url: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmPaymentIntent {
    pub source: PaymentSource,
    pub return_url: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentIntentStatus {
    RequiresPaymentMethod,
    RequiresConfirmation,
    RequiresAction,
    Processing,
    RequiresCapture,
    Canceled,
    Succeeded,
}

impl PaymentIntentStatus {
    /// Money is secured: captured, or authorized and waiting for capture.
    pub fn is_paid_or_authorized(self) -> bool {
        matches!(self, PaymentIntentStatus::Succeeded | PaymentIntentStatus::RequiresCapture)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextAction {
    /// Where to send the customer (the 3-D Secure challenge).
    pub redirect_url: String,
}

/// Why the last attempt failed, as Stripe reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentError {
    /// `card_declined`, `expired_card`, `payment_intent_authentication_failure`, …
    pub code: String,
    /// `generic_decline`, `insufficient_funds`, … for card declines.
    pub decline_code: Option<String>,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentIntent {
    pub id: String,
    pub status: PaymentIntentStatus,
    pub amount: i64,
    /// Authorized and not yet captured (manual capture).
    pub amount_capturable: i64,
    /// Captured.
    pub amount_received: i64,
    pub currency: String,
    pub customer: Option<String>,
    pub payment_method: Option<String>,
    pub capture_method: CaptureMethod,
    pub metadata: Metadata,
    pub next_action: Option<NextAction>,
    pub last_payment_error: Option<PaymentError>,
    /// The charge refunds attach to.
    pub latest_charge: Option<String>,
    /// Refunded so far (from the latest charge).
    pub amount_refunded: i64,
    pub created: i64,
}

/// One page of PaymentIntents, newest first (Stripe's order).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentIntentPage {
    pub data: Vec<PaymentIntent>,
    /// More, older ones follow: ask again with `starting_after` the last id of this page.
    pub has_more: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRefund {
    pub payment_intent: String,
    /// `None` refunds what is left.
    pub amount: Option<i64>,
    pub metadata: Metadata,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    Pending,
    Succeeded,
    Failed,
    Canceled,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub id: String,
    pub payment_intent: Option<String>,
    pub amount: i64,
    pub currency: String,
    pub status: RefundStatus,
    pub metadata: Metadata,
    pub created: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentMethod {
    pub id: String,
    pub customer: Option<String>,
    pub card_brand: Option<String>,
    pub card_last4: Option<String>,
    pub exp_month: Option<i64>,
    pub exp_year: Option<i64>,
}

/// One line on a hosted checkout page, priced by Kassa.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutLine {
    pub name: String,
    pub unit_amount: i64,
    pub quantity: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateCheckoutSession {
    pub customer: String,
    pub currency: String,
    pub lines: Vec<CheckoutLine>,
    pub success_url: String,
    pub cancel_url: Option<String>,
    /// Copied onto the session and its PaymentIntent (`kassa_checkout_session`, …).
    pub metadata: Metadata,
    pub capture_method: CaptureMethod,
    /// Unix seconds; Stripe accepts 30 minutes to 24 hours from now.
    pub expires_at: i64,
    /// Save the card with the customer for later off-session charges (a subscription's
    /// renewals), with the buyer's consent to what the page says; `None` for a one-off payment.
    pub save_card: Option<SaveCard>,
}

/// A hosted checkout that saves the card: Stripe's `mode=payment` with
/// `payment_intent_data[setup_future_usage]=off_session` — not `mode=subscription`, since
/// Kassa, not the processor, is the billing engine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaveCard {
    /// What the buyer agrees to, shown beside the pay button (Stripe's
    /// `custom_text[submit][message]`, at most 1,200 characters): that the card is saved and
    /// charged for the subscription's future payments, how much and how often.
    pub consent_text: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckoutSessionStatus {
    Open,
    Complete,
    Expired,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckoutPaymentStatus {
    Unpaid,
    Paid,
    NoPaymentRequired,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutSession {
    pub id: String,
    /// The hosted page.
    pub url: Option<String>,
    pub status: CheckoutSessionStatus,
    pub payment_status: CheckoutPaymentStatus,
    pub amount_total: i64,
    pub currency: String,
    pub customer: Option<String>,
    pub payment_intent: Option<String>,
    pub metadata: Metadata,
    pub expires_at: i64,
}

/// A processor event after its signature was verified.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    /// `payment_intent.succeeded`, `charge.refunded`, `checkout.session.completed`, …
    #[serde(rename = "type")]
    pub kind: String,
    pub created: i64,
    /// The object as it was when the event happened (`data.object`); handlers re-read the
    /// current state rather than trusting it, since events arrive late and out of order.
    pub object: serde_json::Value,
}

impl Event {
    /// `data.object.id`.
    pub fn object_id(&self) -> Option<&str> {
        self.object.get("id").and_then(|v| v.as_str())
    }

    /// `data.object.metadata[key]`.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.object.get("metadata").and_then(|m| m.get(key)).and_then(|v| v.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProcessorError {
    /// The card or payment was refused. `payment_intent` is the PaymentIntent after the
    /// attempt (status `requires_payment_method`) when the processor returned one.
    #[error("payment failed: {} ({})", .error.message, .error.code)]
    Payment { error: PaymentError, payment_intent: Option<Box<PaymentIntent>> },
    /// The request was wrong (unknown id, bad parameter, wrong state).
    #[error("processor refused the request: {message}")]
    InvalidRequest { code: Option<String>, message: String, param: Option<String> },
    /// The object does not exist at the processor.
    #[error("no such object at the processor: {0}")]
    NotFound(String),
    /// The processor could not be reached or failed after retries; the call may or may not
    /// have taken effect, so it must be retried with the same idempotency key.
    #[error("processor unavailable: {0}")]
    Unavailable(String),
    /// The processor does not offer this call (localstripe lacks Checkout Sessions).
    #[error("not supported by this processor: {0}")]
    Unsupported(&'static str),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error(transparent)]
    Signature(#[from] crate::signature::SignatureError),
    #[error("event payload is not a valid event: {0}")]
    Malformed(String),
}
