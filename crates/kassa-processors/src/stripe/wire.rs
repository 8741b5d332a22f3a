//! Stripe's JSON as it arrives, read leniently, and its conversion to the neutral types.
//!
//! Every field is optional: Stripe adds and renames fields between API versions, and
//! localstripe omits many (`amount_received`, `amount_capturable`, `amount_captured`). Where a
//! field is missing, the conversion derives it from what is there, never in a way that claims
//! money that was not received.

use crate::types::{self, CaptureMethod, CheckoutPaymentStatus, CheckoutSessionStatus, PaymentIntentStatus};
use crate::{Metadata, ProcessorError};
use serde::{Deserialize, Deserializer};

/// A field Stripe returns as an id, or as the object when expanded (localstripe always inlines
/// `latest_charge`).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Expandable<T> {
    Id(String),
    Object(Box<T>),
}

/// Any object, when only its id matters.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct Object {
    #[serde(default)]
    pub id: Option<String>,
}

pub(crate) trait HasId {
    fn id(&self) -> Option<&str>;
}

impl HasId for Object {
    fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }
}

impl<T: HasId> Expandable<T> {
    pub(crate) fn id(&self) -> Option<&str> {
        match self {
            Expandable::Id(id) => Some(id),
            Expandable::Object(o) => o.id(),
        }
    }

    fn object(&self) -> Option<&T> {
        match self {
            Expandable::Id(_) => None,
            Expandable::Object(o) => Some(o),
        }
    }
}

fn id_of<T: HasId>(field: &Option<Expandable<T>>) -> Option<String> {
    field.as_ref().and_then(|f| f.id()).map(str::to_owned)
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

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct List<T> {
    pub data: Vec<T>,
    pub has_more: bool,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Customer {
    pub id: Option<String>,
    pub email: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Charge {
    pub id: Option<String>,
    pub amount: Option<i64>,
    pub amount_captured: Option<i64>,
    pub amount_refunded: Option<i64>,
    pub captured: Option<bool>,
    pub paid: Option<bool>,
    pub status: Option<String>,
    /// Not returned by Stripe since API version 2022-11-15 unless expanded; localstripe
    /// always inlines it.
    pub refunds: Option<List<Refund>>,
}

impl HasId for Charge {
    fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RedirectToUrl {
    pub url: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct NextAction {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub redirect_to_url: Option<RedirectToUrl>,
}

/// Stripe's error object; also the shape of `last_payment_error`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ApiError {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub code: Option<String>,
    pub decline_code: Option<String>,
    pub message: Option<String>,
    pub param: Option<String>,
    /// The PaymentIntent after a failed confirmation.
    pub payment_intent: Option<Box<PaymentIntent>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ErrorBody {
    pub error: Option<ApiError>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct PaymentIntent {
    pub id: Option<String>,
    pub status: Option<String>,
    pub amount: Option<i64>,
    pub amount_capturable: Option<i64>,
    pub amount_received: Option<i64>,
    pub currency: Option<String>,
    pub customer: Option<Expandable<Object>>,
    pub payment_method: Option<Expandable<Object>>,
    pub capture_method: Option<String>,
    #[serde(deserialize_with = "metadata")]
    pub metadata: Metadata,
    pub next_action: Option<NextAction>,
    pub last_payment_error: Option<ApiError>,
    pub latest_charge: Option<Expandable<Charge>>,
    /// Removed from Stripe in API version 2022-11-15; localstripe still sends it.
    pub charges: Option<List<Charge>>,
    pub created: Option<i64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Refund {
    pub id: Option<String>,
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub status: Option<String>,
    pub payment_intent: Option<Expandable<Object>>,
    #[serde(deserialize_with = "metadata")]
    pub metadata: Metadata,
    pub created: Option<i64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Card {
    pub brand: Option<String>,
    pub last4: Option<String>,
    pub exp_month: Option<i64>,
    pub exp_year: Option<i64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct PaymentMethod {
    pub id: Option<String>,
    pub customer: Option<Expandable<Object>>,
    pub card: Option<Card>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct CheckoutSession {
    pub id: Option<String>,
    pub url: Option<String>,
    pub status: Option<String>,
    pub payment_status: Option<String>,
    pub amount_total: Option<i64>,
    pub currency: Option<String>,
    pub customer: Option<Expandable<Object>>,
    pub payment_intent: Option<Expandable<Object>>,
    #[serde(deserialize_with = "metadata")]
    pub metadata: Metadata,
    pub expires_at: Option<i64>,
}

/// Events are read strictly: an event without an id, a type or an object cannot be deduplicated
/// or handled, so it is refused as malformed.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub created: Option<i64>,
    pub data: EventData,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct EventData {
    pub object: serde_json::Value,
}

fn malformed(what: &str) -> ProcessorError {
    ProcessorError::Unavailable(format!("Stripe answered with {what}"))
}

fn required(id: Option<String>, object: &str) -> Result<String, ProcessorError> {
    id.filter(|id| !id.is_empty()).ok_or_else(|| malformed(&format!("a {object} without an id")))
}

impl Customer {
    pub(crate) fn into_neutral(self) -> Result<types::ProcessorCustomer, ProcessorError> {
        Ok(types::ProcessorCustomer { id: required(self.id, "customer")?, email: self.email })
    }
}

fn payment_intent_status(status: Option<&str>) -> Result<PaymentIntentStatus, ProcessorError> {
    Ok(match status {
        Some("requires_payment_method" | "requires_source") => PaymentIntentStatus::RequiresPaymentMethod,
        Some("requires_confirmation") => PaymentIntentStatus::RequiresConfirmation,
        Some("requires_action" | "requires_source_action") => PaymentIntentStatus::RequiresAction,
        Some("processing") => PaymentIntentStatus::Processing,
        Some("requires_capture") => PaymentIntentStatus::RequiresCapture,
        Some("canceled") => PaymentIntentStatus::Canceled,
        Some("succeeded") => PaymentIntentStatus::Succeeded,
        // Not final and not paid: callers look again later, which is right for a status this
        // client does not know yet.
        Some(other) => {
            tracing::warn!(status = other, "unknown PaymentIntent status from Stripe; treating it as processing");
            PaymentIntentStatus::Processing
        }
        None => return Err(malformed("a PaymentIntent without a status")),
    })
}

impl ApiError {
    pub(crate) fn into_payment_error(self) -> types::PaymentError {
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
        self.captured == Some(true) && (self.paid == Some(true) || self.status.as_deref() == Some("succeeded"))
    }

    /// What a capture took, for servers that report neither `amount_received` on the
    /// PaymentIntent nor `amount_captured` on the charge (localstripe). Stripe records the
    /// uncaptured rest of a partial capture as a refund on the charge; localstripe does the same,
    /// without naming a PaymentIntent on it, while every refund Kassa makes names one.
    fn captured_amount_without_field(&self) -> i64 {
        let released: i64 = self
            .refunds
            .iter()
            .flat_map(|l| &l.data)
            .filter(|r| r.payment_intent.is_none())
            .filter_map(|r| r.amount)
            .sum();
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

    pub(crate) fn into_neutral(self) -> Result<types::PaymentIntent, ProcessorError> {
        let status = payment_intent_status(self.status.as_deref())?;
        let amount = self.amount.unwrap_or(0);
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
                (ch.amount_refunded.unwrap_or(0) - released).max(0)
            }
            _ => 0,
        };
        let latest_charge =
            self.latest_charge.as_ref().and_then(|c| c.id()).or_else(|| charge.and_then(|c| c.id())).map(str::to_owned);
        let next_action = self
            .next_action
            .and_then(|a| a.redirect_to_url)
            .and_then(|r| r.url)
            .map(|redirect_url| types::NextAction { redirect_url });
        Ok(types::PaymentIntent {
            id: required(self.id, "PaymentIntent")?,
            status,
            amount,
            amount_capturable,
            amount_received,
            currency: self.currency.unwrap_or_default(),
            customer: id_of(&self.customer),
            payment_method: id_of(&self.payment_method),
            capture_method: match self.capture_method.as_deref() {
                Some("manual") => CaptureMethod::Manual,
                _ => CaptureMethod::Automatic,
            },
            metadata: self.metadata,
            next_action,
            last_payment_error: self.last_payment_error.map(ApiError::into_payment_error),
            latest_charge,
            amount_refunded,
            created: self.created.unwrap_or(0),
        })
    }
}

impl Refund {
    pub(crate) fn into_neutral(self) -> Result<types::Refund, ProcessorError> {
        let status = match self.status.as_deref() {
            Some("succeeded") => types::RefundStatus::Succeeded,
            Some("failed") => types::RefundStatus::Failed,
            Some("canceled") => types::RefundStatus::Canceled,
            // `pending`, `requires_action`, or unknown: not done yet.
            _ => types::RefundStatus::Pending,
        };
        Ok(types::Refund {
            id: required(self.id, "refund")?,
            payment_intent: id_of(&self.payment_intent),
            amount: self.amount.unwrap_or(0),
            currency: self.currency.unwrap_or_default(),
            status,
            metadata: self.metadata,
            created: self.created.unwrap_or(0),
        })
    }
}

impl PaymentMethod {
    pub(crate) fn into_neutral(self) -> Result<types::PaymentMethod, ProcessorError> {
        let card = self.card.unwrap_or_default();
        Ok(types::PaymentMethod {
            id: required(self.id, "payment method")?,
            customer: id_of(&self.customer),
            card_brand: card.brand,
            card_last4: card.last4,
            exp_month: card.exp_month,
            exp_year: card.exp_year,
        })
    }
}

impl CheckoutSession {
    pub(crate) fn into_neutral(self) -> Result<types::CheckoutSession, ProcessorError> {
        let status = match self.status.as_deref() {
            Some("complete") => CheckoutSessionStatus::Complete,
            Some("expired") => CheckoutSessionStatus::Expired,
            Some("open") => CheckoutSessionStatus::Open,
            _ => return Err(malformed("a Checkout Session without a known status")),
        };
        let payment_status = match self.payment_status.as_deref() {
            Some("paid") => CheckoutPaymentStatus::Paid,
            Some("no_payment_required") => CheckoutPaymentStatus::NoPaymentRequired,
            // `unpaid` or unknown: never claim a payment that is not confirmed.
            _ => CheckoutPaymentStatus::Unpaid,
        };
        Ok(types::CheckoutSession {
            id: required(self.id, "Checkout Session")?,
            url: self.url,
            status,
            payment_status,
            amount_total: self.amount_total.unwrap_or(0),
            currency: self.currency.unwrap_or_default(),
            customer: id_of(&self.customer),
            payment_intent: id_of(&self.payment_intent),
            metadata: self.metadata,
            expires_at: self.expires_at.unwrap_or(0),
        })
    }
}

impl Event {
    pub(crate) fn into_neutral(self) -> types::Event {
        types::Event { id: self.id, kind: self.kind, created: self.created.unwrap_or(0), object: self.data.object }
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

    #[test]
    fn a_payment_intent_without_id_or_status_is_refused() {
        let no_status = serde_json::from_value::<PaymentIntent>(json!({"id": "pi_1"})).unwrap();
        assert!(matches!(no_status.into_neutral(), Err(ProcessorError::Unavailable(_))));
        let no_id = serde_json::from_value::<PaymentIntent>(json!({"status": "succeeded"})).unwrap();
        assert!(matches!(no_id.into_neutral(), Err(ProcessorError::Unavailable(_))));
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
