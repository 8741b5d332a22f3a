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
        }
    }
}

/// A customer's recurring price.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Subscription {
    pub id: String,
    /// Always `subscription`.
    pub object: &'static str,
    pub customer: String,
    pub price: String,
    /// `active`, `past_due` or `canceled`.
    pub status: String,
    pub current_period_start: i64,
    pub current_period_end: i64,
    pub created: i64,
    pub updated: i64,
}

impl From<SubscriptionRow> for Subscription {
    fn from(r: SubscriptionRow) -> Self {
        Subscription {
            id: r.id,
            object: "subscription",
            customer: r.customer,
            price: r.price,
            status: r.status,
            current_period_start: r.current_period_start,
            current_period_end: r.current_period_end,
            created: r.created,
            updated: r.updated,
        }
    }
}
