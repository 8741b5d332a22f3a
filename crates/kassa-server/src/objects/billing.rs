//! Invoices, saved payment methods and test clocks as the API shows them (Stripe's shapes).

use kassa_processors::PaymentMethod as ProcessorPaymentMethod;
use kassa_store::billing::{InvoiceRow, TestClockRow};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a subscription owes for one period, or for a change in the middle of one.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Invoice {
    pub id: String,
    /// Always `invoice`.
    pub object: &'static str,
    pub customer: String,
    pub subscription: Option<String>,
    /// `draft`, `open`, `paid`, `void` or `uncollectible`.
    pub status: String,
    /// `subscription_create`, `subscription_cycle` or `subscription_update`.
    pub billing_reason: String,
    pub currency: String,
    pub amount_due: i64,
    pub amount_paid: i64,
    pub amount_remaining: i64,
    pub paid: bool,
    /// Failed or successful payment attempts so far.
    pub attempt_count: i64,
    pub attempted: bool,
    /// When the next automatic attempt is made; `null` when none is scheduled.
    pub next_payment_attempt: Option<i64>,
    pub period_start: i64,
    pub period_end: i64,
    pub lines: InvoiceLines,
    /// Credits the paid invoice adds to the customer's balance.
    pub credits: i64,
    pub payment_intent: Option<String>,
    pub last_payment_error: Option<InvoicePaymentError>,
    /// The page where the customer pays it in the browser (card entry, 3-D Secure); its
    /// secret is the credential: share it only with the customer.
    pub hosted_invoice_url: Option<String>,
    pub created: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InvoiceLines {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<InvoiceLine>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InvoiceLine {
    /// Always `line_item`.
    pub object: String,
    pub description: String,
    pub price: String,
    pub quantity: i64,
    /// Minor units; negative for a proration credit.
    pub amount: i64,
    pub proration: bool,
    pub period: LinePeriod,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LinePeriod {
    pub start: i64,
    pub end: i64,
}

/// Why the last attempt failed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InvoicePaymentError {
    pub code: String,
    pub decline_code: Option<String>,
    pub message: String,
}

impl From<InvoiceRow> for Invoice {
    fn from(r: InvoiceRow) -> Self {
        let lines: Vec<InvoiceLine> = serde_json::from_str(&r.lines).unwrap_or_default();
        Invoice {
            object: "invoice",
            customer: r.customer,
            subscription: r.subscription,
            paid: r.paid_at.is_some(),
            billing_reason: r.billing_reason,
            currency: r.currency,
            amount_remaining: (r.amount_due - r.amount_paid).max(0),
            amount_due: r.amount_due,
            amount_paid: r.amount_paid,
            attempted: r.attempt_count > 0,
            attempt_count: r.attempt_count,
            next_payment_attempt: r.next_payment_attempt,
            period_start: r.period_start,
            period_end: r.period_end,
            lines: InvoiceLines { object: "list", data: lines },
            credits: r.credits,
            payment_intent: r.payment_intent,
            last_payment_error: r.last_payment_error.and_then(|e| serde_json::from_str(&e).ok()),
            hosted_invoice_url: r.hosted_invoice_url,
            status: r.status,
            created: r.created,
            id: r.id,
        }
    }
}

/// A card saved with a customer at the processor.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PaymentMethod {
    /// The processor's id (`pm_…`).
    pub id: String,
    /// Always `payment_method`.
    pub object: &'static str,
    /// Always `card`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub card: Option<CardDetails>,
    /// The Kassa customer it is saved with; `null` once detached.
    pub customer: Option<String>,
    /// Whether it is the customer's default (`default_payment_method`).
    pub default: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CardDetails {
    pub brand: String,
    pub last4: String,
    pub exp_month: Option<i64>,
    pub exp_year: Option<i64>,
}

impl PaymentMethod {
    pub fn of(pm: ProcessorPaymentMethod, customer: Option<&str>, default: Option<&str>) -> PaymentMethod {
        let card = match (pm.card_brand, pm.card_last4) {
            (Some(brand), Some(last4)) => {
                Some(CardDetails { brand, last4, exp_month: pm.exp_month, exp_year: pm.exp_year })
            }
            _ => None,
        };
        PaymentMethod {
            default: default == Some(pm.id.as_str()),
            id: pm.id,
            object: "payment_method",
            kind: "card",
            card,
            customer: pm.customer.and(customer.map(str::to_string)),
        }
    }
}

/// Frozen time for the customers created on it (test processor only), like Stripe's.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TestClock {
    pub id: String,
    /// Always `test_helpers.test_clock`.
    pub object: &'static str,
    pub name: Option<String>,
    /// Unix seconds: the time the clock's customers live at.
    pub frozen_time: i64,
    /// `ready`.
    pub status: String,
    pub created: i64,
}

impl From<TestClockRow> for TestClock {
    fn from(r: TestClockRow) -> Self {
        TestClock {
            id: r.id,
            object: "test_helpers.test_clock",
            name: r.name,
            frozen_time: r.frozen_time,
            status: r.status,
            created: r.created,
        }
    }
}
