use kassa_store::credits::EntryRow;
use serde::Serialize;
use utoipa::ToSchema;

/// One change of a customer's credit balance. The ledger is append-only and the balance
/// always equals the sum of the entries.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreditEntry {
    pub id: String,
    /// Always `credit_entry`.
    pub object: &'static str,
    pub customer: String,
    /// Credits added (positive) or removed (negative).
    pub amount: i64,
    /// `top_up`, `debit`, `adjustment` or `refund_reversal`.
    pub kind: String,
    /// What caused it; each cause changes the balance at most once.
    pub source: String,
    pub balance_after: i64,
    pub reason: Option<String>,
    /// For a refund reversal: credits that could not be taken back because they were spent.
    pub shortfall: i64,
    pub payment: Option<String>,
    pub checkout_session: Option<String>,
    pub created: i64,
}

impl From<EntryRow> for CreditEntry {
    fn from(e: EntryRow) -> Self {
        CreditEntry {
            id: e.id,
            object: "credit_entry",
            customer: e.customer,
            amount: e.amount,
            kind: e.kind,
            source: e.source,
            balance_after: e.balance_after,
            reason: e.reason,
            shortfall: e.shortfall,
            payment: e.payment,
            checkout_session: e.checkout_session,
            created: e.created,
        }
    }
}

/// A customer's balance and recent entries.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreditBalance {
    /// Always `credit_balance`.
    pub object: &'static str,
    pub customer: String,
    pub balance: i64,
    /// What one credit is worth, in minor units of `currency`.
    pub unit_amount: i64,
    #[schema(value_type = String, example = "usd")]
    pub currency: String,
    /// The most recent entries, newest first.
    pub entries: Vec<CreditEntry>,
    pub has_more: bool,
}
