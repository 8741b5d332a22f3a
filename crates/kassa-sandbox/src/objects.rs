//! The test processor's objects, shaped as Stripe's API returns them (and as its events carry
//! them), with the conversions to Kassa's processor-neutral types.

use kassa_processors::types::{
    self, CaptureMethod, CheckoutPaymentStatus, CheckoutSessionStatus, Metadata, PaymentIntentStatus,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The API version the test processor's objects and events follow.
pub const API_VERSION: &str = "2024-06-20";

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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    pub id: String,
    pub object: String,
    pub created: i64,
    pub email: Option<String>,
    pub name: Option<String>,
    pub metadata: Metadata,
    pub livemode: bool,
}

impl Stored for Customer {
    const KIND: &'static str = "customer";
    fn id(&self) -> &str {
        &self.id
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    pub brand: String,
    pub last4: String,
    pub exp_month: i64,
    pub exp_year: i64,
    pub funding: String,
    pub country: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankAccount {
    pub bank_name: String,
    pub last4: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PaymentMethod {
    pub id: String,
    pub object: String,
    /// `card` or `us_bank_account`.
    #[serde(rename = "type")]
    pub kind: String,
    pub card: Option<Card>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub us_bank_account: Option<BankAccount>,
    /// Set once the method is saved with a customer (`setup_future_usage`).
    pub customer: Option<String>,
    pub created: i64,
    pub metadata: Metadata,
    pub livemode: bool,
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

impl PaymentMethod {
    pub fn to_neutral(&self) -> types::PaymentMethod {
        types::PaymentMethod {
            id: self.id.clone(),
            customer: self.customer.clone(),
            card_brand: self.card.as_ref().map(|c| c.brand.clone()),
            card_last4: self.card.as_ref().map(|c| c.last4.clone()),
            exp_month: self.card.as_ref().map(|c| c.exp_month),
            exp_year: self.card.as_ref().map(|c| c.exp_year),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PaymentMethodPreview {
    #[serde(rename = "type")]
    pub kind: String,
    pub card: Option<Card>,
}

/// What Stripe.js hands the browser: the card, to be turned into a PaymentMethod by the
/// confirmation that uses it. Single use, expires after 12 hours.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConfirmationToken {
    pub id: String,
    pub object: String,
    pub created: i64,
    pub expires_at: i64,
    pub livemode: bool,
    /// The PaymentIntent this token confirmed; a token is used once.
    pub payment_intent: Option<String>,
    pub payment_method_preview: PaymentMethodPreview,
}

impl Stored for ConfirmationToken {
    const KIND: &'static str = "confirmation_token";
    fn id(&self) -> &str {
        &self.id
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RedirectToUrl {
    pub url: String,
    pub return_url: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NextAction {
    /// Always `redirect_to_url`.
    #[serde(rename = "type")]
    pub kind: String,
    pub redirect_to_url: RedirectToUrl,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LastPaymentError {
    /// `card_error`.
    #[serde(rename = "type")]
    pub kind: String,
    pub code: String,
    pub decline_code: Option<String>,
    pub message: String,
    pub payment_method: Option<String>,
}

impl LastPaymentError {
    pub fn new(error: &types::PaymentError, payment_method: Option<&str>) -> Self {
        LastPaymentError {
            kind: "card_error".into(),
            code: error.code.clone(),
            decline_code: error.decline_code.clone(),
            message: error.message.clone(),
            payment_method: payment_method.map(str::to_string),
        }
    }

    pub fn to_neutral(&self) -> types::PaymentError {
        types::PaymentError {
            code: self.code.clone(),
            decline_code: self.decline_code.clone(),
            message: self.message.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PaymentIntent {
    pub id: String,
    pub object: String,
    pub amount: i64,
    pub amount_capturable: i64,
    pub amount_received: i64,
    pub currency: String,
    pub customer: Option<String>,
    pub payment_method: Option<String>,
    pub capture_method: CaptureMethod,
    pub status: PaymentIntentStatus,
    pub metadata: Metadata,
    pub next_action: Option<NextAction>,
    pub last_payment_error: Option<LastPaymentError>,
    pub latest_charge: Option<String>,
    /// `off_session` when the method is saved for later charges.
    pub setup_future_usage: Option<String>,
    pub cancellation_reason: Option<String>,
    pub canceled_at: Option<i64>,
    pub payment_method_types: Vec<String>,
    pub created: i64,
    pub livemode: bool,
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

impl PaymentIntent {
    /// The neutral PaymentIntent; `latest_charge` is the charge of that id, when loaded.
    pub fn to_neutral(&self, latest_charge: Option<&Charge>) -> types::PaymentIntent {
        types::PaymentIntent {
            id: self.id.clone(),
            status: self.status,
            amount: self.amount,
            amount_capturable: self.amount_capturable,
            amount_received: self.amount_received,
            currency: self.currency.clone(),
            customer: self.customer.clone(),
            payment_method: self.payment_method.clone(),
            capture_method: self.capture_method,
            metadata: self.metadata.clone(),
            next_action: self
                .next_action
                .as_ref()
                .map(|a| types::NextAction { redirect_url: a.redirect_to_url.url.clone() }),
            last_payment_error: self.last_payment_error.as_ref().map(LastPaymentError::to_neutral),
            latest_charge: self.latest_charge.clone(),
            amount_refunded: latest_charge
                .filter(|c| Some(&c.id) == self.latest_charge.as_ref())
                .map_or(0, |c| c.amount_refunded),
            created: self.created,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RefundList {
    pub object: String,
    pub data: Vec<Refund>,
    pub has_more: bool,
    pub total_count: i64,
    pub url: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Charge {
    pub id: String,
    pub object: String,
    pub amount: i64,
    pub amount_captured: i64,
    pub amount_refunded: i64,
    pub captured: bool,
    pub refunded: bool,
    pub paid: bool,
    /// `succeeded`, `pending` or `failed`.
    pub status: String,
    pub currency: String,
    pub customer: Option<String>,
    pub payment_intent: String,
    pub payment_method: Option<String>,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub metadata: Metadata,
    pub refunds: RefundList,
    pub created: i64,
    pub livemode: bool,
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
        Some(&self.payment_intent)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Refund {
    pub id: String,
    pub object: String,
    pub amount: i64,
    pub charge: String,
    pub payment_intent: String,
    pub currency: String,
    pub status: types::RefundStatus,
    pub reason: Option<String>,
    pub metadata: Metadata,
    pub created: i64,
}

impl Stored for Refund {
    const KIND: &'static str = "refund";
    fn id(&self) -> &str {
        &self.id
    }
    fn parent(&self) -> Option<&str> {
        Some(&self.charge)
    }
}

impl Refund {
    pub fn to_neutral(&self) -> types::Refund {
        types::Refund {
            id: self.id.clone(),
            payment_intent: Some(self.payment_intent.clone()),
            amount: self.amount,
            currency: self.currency.clone(),
            status: self.status,
            metadata: self.metadata.clone(),
            created: self.created,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinePrice {
    pub unit_amount: i64,
    pub currency: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LineItem {
    pub id: String,
    pub object: String,
    pub description: String,
    pub quantity: i64,
    pub amount_subtotal: i64,
    pub amount_total: i64,
    pub currency: String,
    pub price: LinePrice,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LineItemList {
    pub object: String,
    pub data: Vec<LineItem>,
    pub has_more: bool,
}

/// How the session's PaymentIntent is to be made (Stripe's `payment_intent_data`, which
/// Stripe keeps to itself and the test processor keeps on the session).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PaymentIntentData {
    pub capture_method: CaptureMethod,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckoutSession {
    pub id: String,
    pub object: String,
    /// Always `payment`.
    pub mode: String,
    pub status: CheckoutSessionStatus,
    pub payment_status: CheckoutPaymentStatus,
    pub amount_subtotal: i64,
    pub amount_total: i64,
    pub currency: String,
    pub customer: Option<String>,
    pub payment_intent: Option<String>,
    pub success_url: String,
    pub cancel_url: Option<String>,
    /// The hosted page while the session is open.
    pub url: Option<String>,
    pub metadata: Metadata,
    pub expires_at: i64,
    pub created: i64,
    pub livemode: bool,
    /// Expanded, as with `expand[]=line_items`: the page shows them.
    pub line_items: LineItemList,
    pub payment_intent_data: PaymentIntentData,
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

impl CheckoutSession {
    pub fn to_neutral(&self) -> types::CheckoutSession {
        types::CheckoutSession {
            id: self.id.clone(),
            url: self.url.clone(),
            status: self.status,
            payment_status: self.payment_status,
            amount_total: self.amount_total,
            currency: self.currency.clone(),
            customer: self.customer.clone(),
            payment_intent: self.payment_intent.clone(),
            metadata: self.metadata.clone(),
            expires_at: self.expires_at,
        }
    }

    /// `success_url` with `{CHECKOUT_SESSION_ID}` replaced, as Stripe redirects (in its
    /// ASCII form, fit for a `Location` header).
    pub fn success_redirect(&self) -> String {
        let url = self.success_url.replace("{CHECKOUT_SESSION_ID}", &self.id);
        url::Url::parse(&url).map(String::from).unwrap_or(url)
    }
}
