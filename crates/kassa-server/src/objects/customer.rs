use super::{Metadata, parse_metadata};
use kassa_store::customers::{CustomerRow, SubscriptionRow};
use serde::Serialize;
use utoipa::ToSchema;

/// Someone who buys: signed in through the merchant's auth (`external_id`), or a guest known
/// by email.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Customer {
    pub id: String,
    /// Always `customer`.
    pub object: &'static str,
    pub email: Option<String>,
    pub name: Option<String>,
    /// The `sub` of the merchant's customer JWT; `null` for guests.
    pub external_id: Option<String>,
    /// A guest has no login; one guest customer exists per email.
    pub guest: bool,
    pub email_verified: bool,
    pub pricing_model: Option<String>,
    /// The customer at the payment processor (Stripe `cus_…`). Kassa creates it right after
    /// the customer, and at the latest before the first payment; `null` until then.
    pub processor_customer: Option<String>,
    /// Prepaid credits.
    pub credit_balance: i64,
    pub metadata: Metadata,
    pub created: i64,
    pub updated: i64,
    /// The test clock the customer lives on (test processor only).
    pub test_clock: Option<String>,
    /// The saved payment method (`pm_…`) subscriptions charge unless they name another.
    pub default_payment_method: Option<String>,
}

impl From<CustomerRow> for Customer {
    fn from(r: CustomerRow) -> Self {
        Customer {
            id: r.id,
            object: "customer",
            email: r.email,
            name: r.name,
            external_id: r.external_id,
            guest: r.guest,
            email_verified: r.email_verified,
            pricing_model: r.pricing_model,
            processor_customer: r.processor_customer,
            credit_balance: r.credit_balance,
            metadata: parse_metadata(&r.metadata),
            created: r.created,
            updated: r.updated,
            test_clock: r.test_clock,
            default_payment_method: r.default_payment_method,
        }
    }
}

/// A customer's recurring price, billed period after period (Stripe's shape).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Subscription {
    pub id: String,
    /// Always `subscription`.
    pub object: &'static str,
    pub customer: String,
    /// The price of its one item (also in `items`).
    pub price: String,
    pub quantity: i64,
    pub items: SubscriptionItems,
    /// `incomplete`, `trialing`, `active`, `past_due`, `canceled`, `unpaid` or `incomplete_expired`.
    pub status: String,
    pub current_period_start: i64,
    pub current_period_end: i64,
    /// Every period boundary is counted from it (a Jan 31 anchor renews Feb 28, Mar 31, …).
    pub billing_cycle_anchor: i64,
    pub cancel_at_period_end: bool,
    pub canceled_at: Option<i64>,
    pub trial_end: Option<i64>,
    pub default_payment_method: Option<String>,
    pub latest_invoice: Option<String>,
    /// A change that takes effect at the period end (a downgrade).
    pub pending_update: Option<SubscriptionItem>,
    pub created: i64,
    pub updated: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SubscriptionItems {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<SubscriptionItem>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SubscriptionItem {
    /// Always `subscription_item`.
    pub object: &'static str,
    pub price: String,
    pub quantity: i64,
}

impl From<SubscriptionRow> for Subscription {
    fn from(r: SubscriptionRow) -> Self {
        let item = SubscriptionItem { object: "subscription_item", price: r.price.clone(), quantity: r.quantity };
        Subscription {
            id: r.id,
            object: "subscription",
            customer: r.customer,
            price: r.price,
            quantity: r.quantity,
            items: SubscriptionItems { object: "list", data: vec![item] },
            status: r.status,
            current_period_start: r.current_period_start,
            current_period_end: r.current_period_end,
            billing_cycle_anchor: r.billing_cycle_anchor.unwrap_or(r.current_period_start),
            cancel_at_period_end: r.cancel_at_period_end,
            canceled_at: r.canceled_at,
            trial_end: r.trial_end,
            default_payment_method: r.default_payment_method,
            latest_invoice: r.latest_invoice,
            pending_update: r.pending_price.map(|price| SubscriptionItem {
                object: "subscription_item",
                price,
                quantity: r.pending_quantity.unwrap_or(r.quantity),
            }),
            created: r.created,
            updated: r.updated,
        }
    }
}
