//! Carts, orders, payments, refunds and checkout sessions as the API shows them.

use super::{Metadata, parse_metadata};
use kassa_domain::lifecycle::checkout_session::SessionPurpose;
use kassa_store::carts::{CartRow, LineRow};
use kassa_store::checkout_sessions::SessionRow;
use kassa_store::orders::{OrderLineRow, OrderRow, RefundRow};
use kassa_store::payments::PaymentRow;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Address {
    pub name: Option<String>,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: Option<String>,
    pub state: Option<String>,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: String,
    pub phone: Option<String>,
}

fn address(json: &Option<String>) -> Option<Address> {
    json.as_deref().and_then(|j| serde_json::from_str(j).ok())
}

/// A line of a cart.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LineItem {
    pub id: String,
    /// Always `line_item`.
    pub object: &'static str,
    pub price: String,
    pub product: String,
    pub name: String,
    pub quantity: i64,
    pub unit_amount: i64,
    /// `unit_amount × quantity`.
    pub amount: i64,
}

impl From<LineRow> for LineItem {
    fn from(l: LineRow) -> Self {
        LineItem {
            amount: l.unit_amount * l.quantity,
            id: l.id,
            object: "line_item",
            price: l.price,
            product: l.product,
            name: l.name,
            quantity: l.quantity,
            unit_amount: l.unit_amount,
        }
    }
}

/// What a shopper is about to buy. Totals are computed by Kassa on every change.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Cart {
    pub id: String,
    /// Always `cart`.
    pub object: &'static str,
    /// `open`, `completed` (paid: see `order`) or `expired`.
    pub status: String,
    /// Changes with every change; a payment pays one version.
    pub version: i64,
    pub customer: Option<String>,
    pub email: Option<String>,
    pub region: String,
    #[schema(value_type = String, example = "usd")]
    pub currency: String,
    pub items: Vec<LineItem>,
    pub shipping_option: Option<String>,
    pub shipping_address: Option<Address>,
    pub billing_address: Option<Address>,
    pub subtotal: i64,
    pub discount_total: i64,
    pub shipping_total: i64,
    /// Tax, added on top (exclusive regions) or contained in the prices (inclusive regions).
    pub tax_total: i64,
    pub total: i64,
    /// The order, once the cart is paid.
    pub order: Option<String>,
    pub metadata: Metadata,
    /// When the cart expires unless something changes first.
    pub expires_at: i64,
    pub created: i64,
    pub updated: i64,
    /// Only in the answer that created the cart, shown once: the capability that opens the
    /// cart, its checkout sessions and the order paid from it on the store API (header
    /// `Kassa-Client-Secret`, or `client_secret` in a link). Keep it in the buyer's browser; a
    /// signed-in customer's own cart also opens with their token alone. Never in events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

impl Cart {
    pub fn from_rows(c: CartRow, lines: Vec<LineRow>, order: Option<String>, ttl_secs: i64) -> Cart {
        Cart {
            items: lines.into_iter().map(LineItem::from).collect(),
            shipping_address: address(&c.shipping_address),
            billing_address: address(&c.billing_address),
            expires_at: c.last_activity + ttl_secs,
            id: c.id,
            object: "cart",
            status: c.status.to_string(),
            version: c.version,
            customer: c.customer,
            email: c.email,
            region: c.region,
            currency: c.currency,
            shipping_option: c.shipping_option,
            subtotal: c.subtotal,
            discount_total: c.discount_total,
            shipping_total: c.shipping_total,
            tax_total: c.tax_total,
            total: c.total,
            order,
            metadata: parse_metadata(&c.metadata),
            created: c.created,
            updated: c.updated,
            client_secret: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderLine {
    pub id: String,
    pub product: String,
    pub price: String,
    pub name: String,
    pub quantity: i64,
    pub unit_amount: i64,
    pub amount: i64,
}

/// A paid (or authorized) cart.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Order {
    pub id: String,
    /// Always `order`.
    pub object: &'static str,
    pub cart: String,
    pub payment: String,
    pub customer: String,
    pub email: Option<String>,
    pub region: String,
    #[schema(value_type = String, example = "usd")]
    pub currency: String,
    pub items: Vec<OrderLine>,
    pub subtotal: i64,
    pub discount_total: i64,
    pub shipping_total: i64,
    pub tax_total: i64,
    pub total: i64,
    pub shipping_option: Option<String>,
    pub shipping_address: Option<Address>,
    pub billing_address: Option<Address>,
    /// `open`, `completed` (fulfilled and paid) or `canceled`.
    pub status: String,
    /// `authorized`, `captured`, `partially_refunded`, `refunded` or `canceled`.
    pub payment_status: String,
    /// `not_fulfilled` or `fulfilled`.
    pub fulfillment_status: String,
    pub amount_authorized: i64,
    pub amount_captured: i64,
    pub amount_refunded: i64,
    pub metadata: Metadata,
    pub created: i64,
    pub updated: i64,
}

impl Order {
    pub fn from_rows(o: OrderRow, lines: Vec<OrderLineRow>) -> Order {
        Order {
            items: lines
                .into_iter()
                .map(|l| OrderLine {
                    amount: l.unit_amount * l.quantity,
                    id: l.id,
                    product: l.product,
                    price: l.price,
                    name: l.name,
                    quantity: l.quantity,
                    unit_amount: l.unit_amount,
                })
                .collect(),
            shipping_address: address(&o.shipping_address),
            billing_address: address(&o.billing_address),
            id: o.id,
            object: "order",
            cart: o.cart,
            payment: o.payment,
            customer: o.customer,
            email: o.email,
            region: o.region,
            currency: o.currency,
            subtotal: o.subtotal,
            discount_total: o.discount_total,
            shipping_total: o.shipping_total,
            tax_total: o.tax_total,
            total: o.total,
            shipping_option: o.shipping_option,
            status: o.status.to_string(),
            payment_status: o.payment_status.to_string(),
            fulfillment_status: o.fulfillment_status.to_string(),
            amount_authorized: o.amount_authorized,
            amount_captured: o.amount_captured,
            amount_refunded: o.amount_refunded,
            metadata: parse_metadata(&o.metadata),
            created: o.created,
            updated: o.updated,
        }
    }
}

/// An attempt to take money through the processor.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Payment {
    pub id: String,
    /// Always `payment`.
    pub object: &'static str,
    /// `order` or `credits`.
    pub purpose: String,
    pub cart: Option<String>,
    pub checkout_session: Option<String>,
    pub customer: String,
    pub amount: i64,
    #[schema(value_type = String, example = "usd")]
    pub currency: String,
    /// `pending`, `requires_action`, `processing`, `authorized`, `succeeded`, `failed`,
    /// `canceled`, `void_pending` or `voided` (money Kassa does not keep, being given back or
    /// given back: refunded, or its authorization canceled; see `void_reason`).
    pub status: String,
    pub processor: String,
    pub processor_payment_intent: Option<String>,
    pub amount_captured: i64,
    pub amount_refunded: i64,
    pub failure_code: Option<String>,
    pub decline_code: Option<String>,
    pub failure_message: Option<String>,
    /// Why the money is given back: `stale` (the cart changed while paying), `duplicate` (the
    /// cart was paid by another payment first) or `duplicate_charge` (a second charge made for
    /// the payment in `duplicate_of`, e.g. a processor call repeated after its outcome was
    /// unknown; the payment keeps its own charge) or `canceled` (the payment had been canceled
    /// when the processor reported the money secured).
    pub void_reason: Option<String>,
    /// For a `duplicate_charge`: the payment whose metadata the charge carries.
    pub duplicate_of: Option<String>,
    pub created: i64,
    pub updated: i64,
}

impl From<PaymentRow> for Payment {
    fn from(p: PaymentRow) -> Self {
        Payment {
            id: p.id,
            object: "payment",
            purpose: p.purpose.to_string(),
            cart: p.cart,
            checkout_session: p.checkout_session,
            customer: p.customer,
            amount: p.amount,
            currency: p.currency,
            status: p.status.to_string(),
            processor: p.processor,
            processor_payment_intent: p.processor_payment_intent,
            amount_captured: p.amount_captured,
            amount_refunded: p.amount_refunded,
            failure_code: p.failure_code,
            decline_code: p.decline_code,
            failure_message: p.failure_message,
            void_reason: p.void_reason,
            duplicate_of: p.duplicate_of,
            created: p.created,
            updated: p.updated,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Refund {
    pub id: String,
    /// Always `refund`.
    pub object: &'static str,
    pub order: Option<String>,
    pub payment: String,
    pub amount: i64,
    #[schema(value_type = String, example = "usd")]
    pub currency: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    pub reason: Option<String>,
    pub failure_message: Option<String>,
    pub created: i64,
}

impl From<RefundRow> for Refund {
    fn from(r: RefundRow) -> Self {
        Refund {
            id: r.id,
            object: "refund",
            order: r.order_id,
            payment: r.payment,
            amount: r.amount,
            currency: r.currency,
            status: r.status.to_string(),
            reason: r.reason,
            failure_message: r.failure_message,
            created: r.created,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionLine {
    pub name: String,
    pub unit_amount: i64,
    pub quantity: i64,
}

/// A hosted checkout page (like Stripe Checkout) for a cart or a credit top-up.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CheckoutSession {
    pub id: String,
    /// Always `checkout.session`.
    pub object: &'static str,
    /// `cart`, `credits` or `subscription`.
    pub purpose: String,
    /// `payment`, or `subscription` for a session that starts a subscription (Stripe's
    /// names; the processor's side is a payment that saves the card either way).
    pub mode: &'static str,
    /// Send the buyer here.
    pub url: Option<String>,
    /// `open`, `complete` or `expired`.
    pub status: String,
    /// `unpaid`, `paid` or `no_payment_required`.
    pub payment_status: String,
    pub cart: Option<String>,
    pub customer: String,
    pub credits: Option<i64>,
    #[schema(value_type = String, example = "usd")]
    pub currency: String,
    pub amount_total: i64,
    pub lines: Vec<SessionLine>,
    pub success_url: String,
    pub cancel_url: Option<String>,
    pub payment: Option<String>,
    /// The order, once a cart session is paid.
    pub order: Option<String>,
    /// A subscription session: the recurring price and quantity it starts.
    pub price: Option<String>,
    pub quantity: Option<i64>,
    /// The subscription, once a subscription session is paid.
    pub subscription: Option<String>,
    pub expires_at: i64,
    pub created: i64,
    /// Only in the answer that created the session, shown once: the capability that opens this
    /// session on the store API (header `Kassa-Client-Secret` or `client_secret` in a link).
    /// The buyer's browser lands on `success_url` with it appended. A cart's session also
    /// opens with the cart's secret. Never in events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

impl From<SessionRow> for CheckoutSession {
    fn from(s: SessionRow) -> Self {
        CheckoutSession {
            lines: serde_json::from_str(&s.lines).unwrap_or_default(),
            id: s.id,
            object: "checkout.session",
            mode: if s.purpose == SessionPurpose::Subscription { "subscription" } else { "payment" },
            purpose: s.purpose.to_string(),
            url: s.url,
            status: s.status.to_string(),
            payment_status: s.payment_status.to_string(),
            cart: s.cart,
            customer: s.customer,
            credits: s.credits,
            currency: s.currency,
            amount_total: s.amount_total,
            success_url: s.success_url,
            cancel_url: s.cancel_url,
            payment: s.payment,
            order: s.order_id,
            price: s.price,
            quantity: s.quantity,
            subscription: s.subscription,
            expires_at: s.expires_at,
            created: s.created,
            client_secret: None,
        }
    }
}
