//! Stripe's objects, one model for both sides of the wire: the Stripe client reads them from
//! Stripe (or localstripe), the built-in test processor (`kassa-sandbox`) stores and sends them.
//!
//! Reading is lenient: Stripe adds and renames fields between API versions, and localstripe
//! omits many (`amount_received`, `amount_capturable`, `amount_captured`), so every field has a
//! default, references read as an id whether or not Stripe expanded them, and unknown statuses
//! read as the least committal status. Fields whose absence means something (an amount
//! localstripe leaves out, which the conversion derives) are `Option`s. Writing gives exactly
//! Stripe's shape: the test processor fills every field Stripe sends.
//!
//! The conversions to the processor-neutral types ([`crate::types`]) derive what is missing from
//! what is there, never in a way that claims money that was not received.

use crate::types::{self, CaptureMethod, CheckoutPaymentStatus, CheckoutSessionStatus, PaymentIntentStatus};
use crate::{Metadata, ProcessorError};
use serde::{Deserialize, Deserializer, Serialize};

/// A field Stripe returns as an id, or as the object when expanded (localstripe always inlines
/// `latest_charge`). Written as it is held: an id as a string, an object as the object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Expandable<T> {
    Id(String),
    Object(Box<T>),
}

impl<T: HasId> Expandable<T> {
    pub fn id(&self) -> &str {
        match self {
            Expandable::Id(id) => id,
            Expandable::Object(o) => o.id(),
        }
    }

    pub fn object(&self) -> Option<&T> {
        match self {
            Expandable::Id(_) => None,
            Expandable::Object(o) => Some(o),
        }
    }
}

/// Objects with an `id`.
pub trait HasId {
    fn id(&self) -> &str;
}

macro_rules! has_id {
    ($($t:ty),*) => {$(
        impl HasId for $t {
            fn id(&self) -> &str {
                &self.id
            }
        }
    )*};
}
has_id!(Customer, PaymentMethod, ConfirmationToken, PaymentIntent, Charge, Refund, CheckoutSession, Event);

/// A reference to another object, kept as its id: a string, or the object when Stripe expanded
/// it (its `id`). `null`, a missing field or an object without an id read as `None`.
fn reference<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::String(id)) => Some(id),
        Some(serde_json::Value::Object(o)) => o.get("id").and_then(|id| id.as_str()).map(str::to_owned),
        _ => None,
    })
}

/// An embedded object that is dropped, rather than failing what embeds it, when it does not read.
fn readable<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    Ok(Option::<serde_json::Value>::deserialize(d)?.and_then(|v| serde_json::from_value(v).ok()))
}

/// Stripe's metadata is a map of strings; anything else (`null`, or `[]` from some
/// re-serializers) reads as empty, and non-string values keep their JSON text.
fn metadata<'de, D: Deserializer<'de>>(d: D) -> Result<Metadata, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => (k, s),
                other => (k, other.to_string()),
            })
            .collect(),
        _ => Metadata::new(),
    })
}

/// A string field that may be `null`: read as empty.
fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// The status of a PaymentIntent. Older API versions' names read as today's; a status this
/// client does not know yet reads as `processing`: not final and not paid, so callers look
/// again later.
fn payment_intent_status<'de, D: Deserializer<'de>>(d: D) -> Result<PaymentIntentStatus, D::Error> {
    let status = Option::<String>::deserialize(d)?
        .ok_or_else(|| serde::de::Error::custom("a PaymentIntent without a status"))?;
    Ok(match status.as_str() {
        "requires_payment_method" | "requires_source" => PaymentIntentStatus::RequiresPaymentMethod,
        "requires_confirmation" => PaymentIntentStatus::RequiresConfirmation,
        "requires_action" | "requires_source_action" => PaymentIntentStatus::RequiresAction,
        "processing" => PaymentIntentStatus::Processing,
        "requires_capture" => PaymentIntentStatus::RequiresCapture,
        "canceled" => PaymentIntentStatus::Canceled,
        "succeeded" => PaymentIntentStatus::Succeeded,
        other => {
            tracing::warn!(status = other, "unknown PaymentIntent status from Stripe; treating it as processing");
            PaymentIntentStatus::Processing
        }
    })
}

/// `manual` is manual; anything else (Stripe's `automatic_async` too) captures by itself.
fn capture_method<'de, D: Deserializer<'de>>(d: D) -> Result<CaptureMethod, D::Error> {
    Ok(match Option::<String>::deserialize(d)?.as_deref() {
        Some("manual") => CaptureMethod::Manual,
        _ => CaptureMethod::Automatic,
    })
}

/// `pending`, `requires_action`, or unknown: not done yet.
fn refund_status<'de, D: Deserializer<'de>>(d: D) -> Result<types::RefundStatus, D::Error> {
    Ok(match Option::<String>::deserialize(d)?.as_deref() {
        Some("succeeded") => types::RefundStatus::Succeeded,
        Some("failed") => types::RefundStatus::Failed,
        Some("canceled") => types::RefundStatus::Canceled,
        _ => types::RefundStatus::Pending,
    })
}

fn pending() -> types::RefundStatus {
    types::RefundStatus::Pending
}

/// `unpaid` or unknown: never claim a payment that is not confirmed.
fn checkout_payment_status<'de, D: Deserializer<'de>>(d: D) -> Result<CheckoutPaymentStatus, D::Error> {
    Ok(match Option::<String>::deserialize(d)?.as_deref() {
        Some("paid") => CheckoutPaymentStatus::Paid,
        Some("no_payment_required") => CheckoutPaymentStatus::NoPaymentRequired,
        _ => CheckoutPaymentStatus::Unpaid,
    })
}

fn unpaid() -> CheckoutPaymentStatus {
    CheckoutPaymentStatus::Unpaid
}

/// A list object (`"object": "list"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, bound(deserialize = "T: Deserialize<'de>"))]
pub struct List<T> {
    #[serde(deserialize_with = "text")]
    pub object: String,
    pub data: Vec<T>,
    pub has_more: bool,
    /// Sent on the lists embedded in an object (a charge's `refunds`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl<T> Default for List<T> {
    fn default() -> Self {
        List { object: String::new(), data: Vec::new(), has_more: false, total_count: None, url: None }
    }
}

impl<T> List<T> {
    /// An empty embedded list (`url` as Stripe gives it, e.g. `/v1/charges/ch_…/refunds`).
    pub fn embedded(url: Option<String>) -> Self {
        List { object: "list".into(), data: Vec::new(), has_more: false, total_count: url.as_ref().map(|_| 0), url }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Customer {
    #[serde(deserialize_with = "text")]
    pub id: String,
    #[serde(deserialize_with = "text")]
    pub object: String,
    pub created: i64,
    pub email: Option<String>,
    pub name: Option<String>,
    #[serde(deserialize_with = "metadata")]
    pub metadata: Metadata,
    pub livemode: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Card {
    #[serde(deserialize_with = "text")]
    pub brand: String,
    #[serde(deserialize_with = "text")]
    pub last4: String,
    pub exp_month: i64,
    pub exp_year: i64,
    #[serde(deserialize_with = "text")]
    pub funding: String,
    #[serde(deserialize_with = "text")]
    pub country: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BankAccount {
    #[serde(deserialize_with = "text")]
    pub bank_name: String,
    #[serde(deserialize_with = "text")]
    pub last4: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PaymentMethod {
    #[serde(deserialize_with = "text")]
    pub id: String,
    #[serde(deserialize_with = "text")]
    pub object: String,
    /// `card` or `us_bank_account`.
    #[serde(rename = "type", deserialize_with = "text")]
    pub kind: String,
    pub card: Option<Card>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub us_bank_account: Option<BankAccount>,
    /// Set once the method is saved with a customer (`setup_future_usage`).
    #[serde(deserialize_with = "reference")]
    pub customer: Option<String>,
    pub created: i64,
    #[serde(deserialize_with = "metadata")]
    pub metadata: Metadata,
    pub livemode: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PaymentMethodPreview {
    #[serde(rename = "type", deserialize_with = "text")]
    pub kind: String,
    pub card: Option<Card>,
}

/// What Stripe.js hands the browser: the card, to be turned into a PaymentMethod by the
/// confirmation that uses it. Single use, expires after 12 hours.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConfirmationToken {
    #[serde(deserialize_with = "text")]
    pub id: String,
    #[serde(deserialize_with = "text")]
    pub object: String,
    pub created: i64,
    pub expires_at: i64,
    pub livemode: bool,
    /// The PaymentIntent this token confirmed; a token is used once.
    #[serde(deserialize_with = "reference")]
    pub payment_intent: Option<String>,
    pub payment_method_preview: PaymentMethodPreview,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RedirectToUrl {
    #[serde(deserialize_with = "text")]
    pub url: String,
    pub return_url: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NextAction {
    /// `redirect_to_url` (the only kind Kassa follows; the test processor sends no other), or
    /// `use_stripe_sdk` (localstripe's 3-D Secure), …
    #[serde(rename = "type", deserialize_with = "text")]
    pub kind: String,
    pub redirect_to_url: Option<RedirectToUrl>,
}

/// Stripe's error object: the body of a refused request (`{"error": …}`) and the
/// `last_payment_error` of a PaymentIntent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiError {
    /// `card_error`, `invalid_request_error`, …
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub code: Option<String>,
    pub decline_code: Option<String>,
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// On a `last_payment_error`: the method that failed.
    #[serde(deserialize_with = "reference", skip_serializing_if = "Option::is_none")]
    pub payment_method: Option<String>,
    /// The PaymentIntent after a failed confirmation (dropped when unreadable: the error
    /// still reads).
    #[serde(deserialize_with = "readable", skip_serializing_if = "Option::is_none")]
    pub payment_intent: Option<Box<PaymentIntent>>,
}

impl ApiError {
    /// The `last_payment_error` of a refused card.
    pub fn card_error(error: &types::PaymentError, payment_method: Option<&str>) -> Self {
        ApiError {
            kind: Some("card_error".into()),
            code: Some(error.code.clone()),
            decline_code: error.decline_code.clone(),
            message: Some(error.message.clone()),
            param: None,
            payment_method: payment_method.map(str::to_string),
            payment_intent: None,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ErrorBody {
    pub error: Option<ApiError>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PaymentIntent {
    #[serde(default, deserialize_with = "text")]
    pub id: String,
    #[serde(default, deserialize_with = "text")]
    pub object: String,
    #[serde(default)]
    pub amount: i64,
    /// Omitted by localstripe: derived from the charge when missing.
    #[serde(default)]
    pub amount_capturable: Option<i64>,
    /// Omitted by localstripe: derived from the charge when missing.
    #[serde(default)]
    pub amount_received: Option<i64>,
    #[serde(default, deserialize_with = "text")]
    pub currency: String,
    #[serde(default, deserialize_with = "reference")]
    pub customer: Option<String>,
    #[serde(default, deserialize_with = "reference")]
    pub payment_method: Option<String>,
    #[serde(default, deserialize_with = "capture_method")]
    pub capture_method: CaptureMethod,
    /// Required: a PaymentIntent without one cannot be acted on.
    #[serde(deserialize_with = "payment_intent_status")]
    pub status: PaymentIntentStatus,
    #[serde(default, deserialize_with = "metadata")]
    pub metadata: Metadata,
    #[serde(default)]
    pub next_action: Option<NextAction>,
    #[serde(default)]
    pub last_payment_error: Option<ApiError>,
    /// An id at Stripe unless expanded; localstripe always inlines the charge.
    #[serde(default)]
    pub latest_charge: Option<Expandable<Charge>>,
    /// Removed from Stripe in API version 2022-11-15; localstripe still sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charges: Option<List<Charge>>,
    /// `off_session` when the method is saved for later charges.
    #[serde(default)]
    pub setup_future_usage: Option<String>,
    #[serde(default)]
    pub cancellation_reason: Option<String>,
    #[serde(default)]
    pub canceled_at: Option<i64>,
    #[serde(default)]
    pub payment_method_types: Vec<String>,
    #[serde(default)]
    pub created: i64,
    #[serde(default)]
    pub livemode: bool,
}

impl PaymentIntent {
    /// The id of the latest charge, expanded or not.
    pub fn latest_charge_id(&self) -> Option<&str> {
        self.latest_charge.as_ref().map(Expandable::id).filter(|id| !id.is_empty())
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Charge {
    #[serde(deserialize_with = "text")]
    pub id: String,
    #[serde(deserialize_with = "text")]
    pub object: String,
    pub amount: Option<i64>,
    /// Omitted by localstripe: derived from the refunds when missing.
    pub amount_captured: Option<i64>,
    pub amount_refunded: i64,
    pub captured: bool,
    pub refunded: bool,
    pub paid: bool,
    /// `succeeded`, `pending` or `failed`.
    #[serde(deserialize_with = "text")]
    pub status: String,
    #[serde(deserialize_with = "text")]
    pub currency: String,
    #[serde(deserialize_with = "reference")]
    pub customer: Option<String>,
    #[serde(deserialize_with = "reference")]
    pub payment_intent: Option<String>,
    #[serde(deserialize_with = "reference")]
    pub payment_method: Option<String>,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    #[serde(deserialize_with = "metadata")]
    pub metadata: Metadata,
    /// Not returned by Stripe since API version 2022-11-15 unless expanded; localstripe
    /// always inlines it, the test processor too.
    pub refunds: List<Refund>,
    pub created: i64,
    pub livemode: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Refund {
    #[serde(default, deserialize_with = "text")]
    pub id: String,
    #[serde(default, deserialize_with = "text")]
    pub object: String,
    #[serde(default)]
    pub amount: i64,
    #[serde(default, deserialize_with = "reference")]
    pub charge: Option<String>,
    /// localstripe names none on the refund that releases the uncaptured rest of a partial
    /// capture; every refund Kassa makes names one.
    #[serde(default, deserialize_with = "reference")]
    pub payment_intent: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub currency: String,
    #[serde(default = "pending", deserialize_with = "refund_status")]
    pub status: types::RefundStatus,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default, deserialize_with = "metadata")]
    pub metadata: Metadata,
    #[serde(default)]
    pub created: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LinePrice {
    pub unit_amount: i64,
    #[serde(deserialize_with = "text")]
    pub currency: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LineItem {
    #[serde(deserialize_with = "text")]
    pub id: String,
    #[serde(deserialize_with = "text")]
    pub object: String,
    #[serde(deserialize_with = "text")]
    pub description: String,
    pub quantity: i64,
    pub amount_subtotal: i64,
    pub amount_total: i64,
    #[serde(deserialize_with = "text")]
    pub currency: String,
    pub price: LinePrice,
}

/// How the session's PaymentIntent is to be made (Stripe's `payment_intent_data`, which
/// Stripe keeps to itself and the test processor keeps on the session).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PaymentIntentData {
    #[serde(deserialize_with = "capture_method")]
    pub capture_method: CaptureMethod,
    /// `off_session`: the card is saved with the customer for later charges (a subscription
    /// checkout); the page then asks for the buyer's consent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setup_future_usage: Option<String>,
}

/// Stripe's `custom_text`: what the page shows beside the pay button.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CustomText {
    pub submit: Option<CustomTextMessage>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CustomTextMessage {
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckoutSession {
    #[serde(default, deserialize_with = "text")]
    pub id: String,
    #[serde(default, deserialize_with = "text")]
    pub object: String,
    /// Always `payment` here.
    #[serde(default, deserialize_with = "text")]
    pub mode: String,
    /// Required and known: a session in a state this client cannot name cannot be acted on.
    pub status: CheckoutSessionStatus,
    #[serde(default = "unpaid", deserialize_with = "checkout_payment_status")]
    pub payment_status: CheckoutPaymentStatus,
    #[serde(default)]
    pub amount_subtotal: i64,
    #[serde(default)]
    pub amount_total: i64,
    #[serde(default, deserialize_with = "text")]
    pub currency: String,
    #[serde(default, deserialize_with = "reference")]
    pub customer: Option<String>,
    #[serde(default, deserialize_with = "reference")]
    pub payment_intent: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub success_url: String,
    #[serde(default)]
    pub cancel_url: Option<String>,
    /// The hosted page while the session is open.
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default, deserialize_with = "metadata")]
    pub metadata: Metadata,
    #[serde(default)]
    pub expires_at: i64,
    #[serde(default)]
    pub created: i64,
    #[serde(default)]
    pub livemode: bool,
    /// Sent when expanded (`expand[]=line_items`); the test processor always sends them.
    #[serde(default)]
    pub line_items: List<LineItem>,
    #[serde(default)]
    pub payment_intent_data: PaymentIntentData,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_text: Option<CustomText>,
}

impl CheckoutSession {
    /// `success_url` with `{CHECKOUT_SESSION_ID}` replaced, as Stripe redirects (in its
    /// ASCII form, fit for a `Location` header).
    pub fn success_redirect(&self) -> String {
        let url = self.success_url.replace("{CHECKOUT_SESSION_ID}", &self.id);
        url::Url::parse(&url).map(String::from).unwrap_or(url)
    }
}

/// The request that caused an event.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventRequest {
    pub id: Option<String>,
    pub idempotency_key: Option<String>,
}

/// Events are read strictly: an event without an id, a type or an object cannot be
/// deduplicated or handled, so it is refused as malformed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(default, deserialize_with = "text")]
    pub object: String,
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub created: i64,
    #[serde(default)]
    pub livemode: bool,
    #[serde(default)]
    pub pending_webhooks: i64,
    #[serde(default)]
    pub request: EventRequest,
    #[serde(rename = "type")]
    pub kind: String,
    pub data: EventData,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventData {
    pub object: serde_json::Value,
}

fn malformed(what: &str) -> ProcessorError {
    ProcessorError::Unavailable(format!("Stripe answered with {what}"))
}

fn required(id: String, object: &str) -> Result<String, ProcessorError> {
    Some(id).filter(|id| !id.is_empty()).ok_or_else(|| malformed(&format!("a {object} without an id")))
}

impl Customer {
    pub fn into_neutral(self) -> Result<types::ProcessorCustomer, ProcessorError> {
        Ok(types::ProcessorCustomer { id: required(self.id, "customer")?, email: self.email })
    }
}

impl ApiError {
    pub fn into_payment_error(self) -> types::PaymentError {
        types::PaymentError {
            code: self.code.or(self.kind).unwrap_or_else(|| "payment_failed".into()),
            decline_code: self.decline_code,
            message: self.message.unwrap_or_else(|| "The payment failed.".into()),
        }
    }
}

impl Charge {
    /// Money actually taken: an authorization that was never captured took nothing.
    fn is_captured(&self) -> bool {
        self.captured && (self.paid || self.status == "succeeded")
    }

    /// What a capture took, for servers that report neither `amount_received` on the
    /// PaymentIntent nor `amount_captured` on the charge (localstripe). Stripe records the
    /// uncaptured rest of a partial capture as a refund on the charge; localstripe does the same,
    /// without naming a PaymentIntent on it, while every refund Kassa makes names one.
    fn captured_amount_without_field(&self) -> i64 {
        let released: i64 = self.refunds.data.iter().filter(|r| r.payment_intent.is_none()).map(|r| r.amount).sum();
        (self.amount.unwrap_or(0) - released).max(0)
    }
}

impl PaymentIntent {
    /// The latest charge as an object: expanded `latest_charge`, or the deprecated `charges`
    /// list that localstripe still sends.
    fn charge(&self) -> Option<&Charge> {
        self.latest_charge
            .as_ref()
            .and_then(Expandable::object)
            .or_else(|| self.charges.as_ref().and_then(|l| l.data.first()))
    }

    pub fn into_neutral(self) -> Result<types::PaymentIntent, ProcessorError> {
        let status = self.status;
        let amount = self.amount;
        let charge = self.charge();
        let amount_received = match (self.amount_received, charge) {
            (Some(received), _) => received,
            (None, Some(ch)) if ch.is_captured() => {
                ch.amount_captured.unwrap_or_else(|| ch.captured_amount_without_field())
            }
            (None, Some(_)) => 0,
            (None, None) if status == PaymentIntentStatus::Succeeded => amount,
            (None, None) => 0,
        };
        let amount_capturable = match self.amount_capturable {
            Some(capturable) => capturable,
            None if status == PaymentIntentStatus::RequiresCapture => charge.and_then(|c| c.amount).unwrap_or(amount),
            None => 0,
        };
        // A charge's `amount_refunded` includes what a partial capture released (Stripe books
        // it as a refund); Kassa wants what was given back of the money received.
        let amount_refunded = match charge {
            Some(ch) if ch.is_captured() => {
                let released = (ch.amount.unwrap_or(amount_received) - amount_received).max(0);
                (ch.amount_refunded - released).max(0)
            }
            _ => 0,
        };
        let latest_charge = self.latest_charge_id().or_else(|| charge.map(|c| c.id.as_str())).map(str::to_owned);
        let next_action = self
            .next_action
            .and_then(|a| a.redirect_to_url)
            .map(|r| r.url)
            .filter(|url| !url.is_empty())
            .map(|redirect_url| types::NextAction { redirect_url });
        Ok(types::PaymentIntent {
            id: required(self.id, "PaymentIntent")?,
            status,
            amount,
            amount_capturable,
            amount_received,
            currency: self.currency,
            customer: self.customer,
            payment_method: self.payment_method,
            capture_method: self.capture_method,
            metadata: self.metadata,
            next_action,
            last_payment_error: self.last_payment_error.map(ApiError::into_payment_error),
            latest_charge,
            amount_refunded,
            created: self.created,
        })
    }
}

impl Refund {
    pub fn into_neutral(self) -> Result<types::Refund, ProcessorError> {
        Ok(types::Refund {
            id: required(self.id, "refund")?,
            payment_intent: self.payment_intent,
            amount: self.amount,
            currency: self.currency,
            status: self.status,
            metadata: self.metadata,
            created: self.created,
        })
    }
}

impl PaymentMethod {
    pub fn into_neutral(self) -> Result<types::PaymentMethod, ProcessorError> {
        let card = self.card.unwrap_or_default();
        let given = |s: String| Some(s).filter(|s| !s.is_empty());
        let positive = |n: i64| Some(n).filter(|n| *n > 0);
        Ok(types::PaymentMethod {
            id: required(self.id, "payment method")?,
            customer: self.customer,
            card_brand: given(card.brand),
            card_last4: given(card.last4),
            exp_month: positive(card.exp_month),
            exp_year: positive(card.exp_year),
        })
    }
}

impl CheckoutSession {
    pub fn into_neutral(self) -> Result<types::CheckoutSession, ProcessorError> {
        Ok(types::CheckoutSession {
            id: required(self.id, "Checkout Session")?,
            url: self.url,
            status: self.status,
            payment_status: self.payment_status,
            amount_total: self.amount_total,
            currency: self.currency,
            customer: self.customer,
            payment_intent: self.payment_intent,
            metadata: self.metadata,
            expires_at: self.expires_at,
        })
    }
}

impl Event {
    pub fn into_neutral(self) -> types::Event {
        types::Event { id: self.id, kind: self.kind, created: self.created, object: self.data.object }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pi(value: serde_json::Value) -> types::PaymentIntent {
        serde_json::from_value::<PaymentIntent>(value).unwrap().into_neutral().unwrap()
    }

    #[test]
    fn a_sparse_payment_intent_reads_with_conservative_defaults() {
        let p = pi(json!({"id": "pi_1", "status": "requires_payment_method", "metadata": null}));
        assert_eq!(p.status, PaymentIntentStatus::RequiresPaymentMethod);
        assert_eq!((p.amount, p.amount_received, p.amount_capturable, p.amount_refunded), (0, 0, 0, 0));
        assert!(p.metadata.is_empty());
        assert_eq!(p.capture_method, CaptureMethod::Automatic);
    }

    /// As the client reads an answer: unreadable JSON is [`ProcessorError::Unavailable`].
    fn read_pi(value: serde_json::Value) -> Result<types::PaymentIntent, ProcessorError> {
        serde_json::from_value::<PaymentIntent>(value)
            .map_err(|e| ProcessorError::Unavailable(e.to_string()))
            .and_then(PaymentIntent::into_neutral)
    }

    #[test]
    fn a_payment_intent_without_id_or_status_is_refused() {
        assert!(matches!(read_pi(json!({"id": "pi_1"})), Err(ProcessorError::Unavailable(_))));
        assert!(matches!(read_pi(json!({"id": "pi_1", "status": null})), Err(ProcessorError::Unavailable(_))));
        assert!(matches!(read_pi(json!({"status": "succeeded"})), Err(ProcessorError::Unavailable(_))));
    }

    #[test]
    fn stripe_amount_fields_win_over_derivation() {
        // Stripe's shape after a partial capture of 600 out of 1000 and a refund of 100: the
        // charge counts the released 400 as refunded.
        let p = pi(json!({
            "id": "pi_1", "status": "succeeded", "amount": 1000, "amount_received": 600,
            "amount_capturable": 0, "capture_method": "manual",
            "latest_charge": {"id": "ch_1", "amount": 1000, "amount_captured": 600,
                              "amount_refunded": 500, "captured": true, "paid": true, "status": "succeeded"}
        }));
        assert_eq!(p.amount_received, 600);
        assert_eq!(p.amount_refunded, 100);
        assert_eq!(p.latest_charge.as_deref(), Some("ch_1"));
        assert_eq!(p.capture_method, CaptureMethod::Manual);
    }

    #[test]
    fn localstripe_partial_capture_is_derived_from_the_charge() {
        // localstripe: no amount_received/amount_captured; the released 400 is a refund that
        // names no PaymentIntent, Kassa's refund of 100 names one.
        let p = pi(json!({
            "id": "pi_1", "status": "succeeded", "amount": 1000, "capture_method": "manual",
            "latest_charge": {"id": "ch_1", "amount": 1000, "amount_refunded": 500, "captured": true,
                              "paid": true, "status": "succeeded",
                              "refunds": {"data": [{"id": "re_2", "amount": 100, "payment_intent": "pi_1"},
                                                   {"id": "re_1", "amount": 400, "payment_intent": null}]}}
        }));
        assert_eq!(p.amount_received, 600);
        assert_eq!(p.amount_refunded, 100);
    }

    #[test]
    fn an_authorization_has_received_nothing() {
        let p = pi(json!({
            "id": "pi_1", "status": "requires_capture", "amount": 1000,
            "charges": {"data": [{"id": "ch_1", "amount": 1000, "amount_refunded": 0, "captured": false,
                                  "paid": true, "status": "succeeded"}]}
        }));
        assert_eq!((p.amount_received, p.amount_capturable, p.amount_refunded), (0, 1000, 0));
        assert_eq!(p.latest_charge.as_deref(), Some("ch_1"));
    }

    #[test]
    fn only_a_redirect_is_a_next_action() {
        let redirect = pi(json!({"id": "pi_1", "status": "requires_action",
            "next_action": {"type": "redirect_to_url", "redirect_to_url": {"url": "https://hooks.stripe.com/3ds", "return_url": "https://shop/r"}}}));
        assert_eq!(redirect.next_action.unwrap().redirect_url, "https://hooks.stripe.com/3ds");
        let sdk = pi(json!({"id": "pi_1", "status": "requires_action",
            "next_action": {"type": "use_stripe_sdk", "use_stripe_sdk": {"type": "three_d_secure_redirect"}}}));
        assert_eq!(sdk.status, PaymentIntentStatus::RequiresAction);
        assert!(sdk.next_action.is_none());
    }

    #[test]
    fn unknown_statuses_never_read_as_paid() {
        let p = pi(json!({"id": "pi_1", "status": "some_future_status", "amount": 5}));
        assert_eq!(p.status, PaymentIntentStatus::Processing);
        let r = serde_json::from_value::<Refund>(json!({"id": "re_1", "status": "requires_action"})).unwrap();
        assert_eq!(r.into_neutral().unwrap().status, types::RefundStatus::Pending);
        let s = serde_json::from_value::<CheckoutSession>(
            json!({"id": "cs_1", "status": "open", "payment_status": "weird"}),
        )
        .unwrap();
        assert_eq!(s.into_neutral().unwrap().payment_status, CheckoutPaymentStatus::Unpaid);
    }

    #[test]
    fn metadata_values_are_strings() {
        let p = pi(json!({"id": "pi_1", "status": "succeeded", "metadata": {"a": "x", "n": 5}}));
        assert_eq!(p.metadata.get("a").map(String::as_str), Some("x"));
        assert_eq!(p.metadata.get("n").map(String::as_str), Some("5"));
        let p = pi(json!({"id": "pi_1", "status": "succeeded", "metadata": []}));
        assert!(p.metadata.is_empty());
    }
}
