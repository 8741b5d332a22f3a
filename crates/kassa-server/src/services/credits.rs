//! Prepaid credits: top-ups through hosted checkout with the processor's fee grossed up,
//! an exactly-once ledger, atomic spending.
//!
//! What a paid top-up adds, and what its refund takes back, happens where every secured or
//! returned payment is settled: `services::settlement`.

use crate::error::{ApiError, ApiResult};
use crate::objects::commerce::{CheckoutSession, SessionLine};
use crate::objects::credits::CreditBalance;
use crate::objects::credits::CreditEntry;
use crate::services::checkout_sessions::{SessionSpec, open as open_session};
use crate::services::{customers, validate};
use crate::state::AppState;
use kassa_domain::credits::{MAX_CREDITS, gross_up};
use kassa_domain::ids::IdKind;
use kassa_domain::lifecycle::checkout_session::SessionPurpose;
use kassa_domain::money::Amount;
use kassa_store::credits::{self as ledger, Added, NewEntry};
use kassa_store::customers::CustomerRow;
use kassa_store::sql::Page;
use kassa_store::{Tx, events};
use serde::Deserialize;
use utoipa::ToSchema;

// ---------------------------------------------------------------- API

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopUpInput {
    /// Whole credits to buy: 1 to `credits.max_credits` (default 1,000,000); their price with
    /// the fee may be at most `checkout.max_amount`.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub credits: i64,
    #[schema(max_length = 2048, pattern = "^https?://[a-z0-9.-]+(/.*)?$")]
    pub success_url: String,
    #[schema(max_length = 2048, pattern = "^https?://[a-z0-9.-]+(/.*)?$")]
    pub cancel_url: Option<String>,
    /// For guests (no customer token): whose balance the credits go to.
    #[schema(format = Email)]
    pub email: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DebitInput {
    /// Credits to spend: 1 to 999,999,999,999.
    #[schema(minimum = 1, maximum = 999_999_999_999_i64)]
    pub amount: i64,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustInput {
    /// Credits to add (positive) or remove (negative), at most 999,999,999,999 either way and
    /// not 0; the balance stays between 0 and 999,999,999,999.
    #[schema(minimum = -999_999_999_999_i64, maximum = 999_999_999_999_i64)]
    pub amount: i64,
    pub reason: String,
}

/// `POST /store/credits/sessions`: a hosted checkout with two lines, the credits and the
/// processing fee, grossed up so the merchant nets the credits' full value after the fee.
pub async fn create_top_up(
    state: &AppState,
    shopper: Option<&CustomerRow>,
    input: TopUpInput,
) -> ApiResult<CheckoutSession> {
    let settings = &state.settings.credits;
    if input.credits <= 0 || input.credits > settings.max_credits {
        return Err(ApiError::invalid(
            "credits",
            format!("credits must be a whole number between 1 and {}.", settings.max_credits),
        ));
    }
    let success_url = validate::http_url("success_url", &input.success_url)?;
    let cancel_url = input.cancel_url.as_deref().map(|u| validate::http_url("cancel_url", u)).transpose()?;
    let customer = match (shopper, &input.email) {
        (Some(c), _) => c.id.clone(),
        (None, Some(email)) => {
            let now = state.clock.now();
            let mut tx = state.store.begin().await?;
            let (guest, created) = customers::guest(&mut tx, now, email).await?;
            tx.commit().await?;
            if created {
                customers::after_commit(state, &guest.id);
            }
            guest.id
        }
        (None, None) => return Err(ApiError::missing("email")),
    };
    let (currency, fee) = (state.credit_terms.currency, state.credit_terms.fee);
    let value =
        input.credits.checked_mul(settings.unit_amount).and_then(|v| Amount::new(v).ok()).ok_or_else(|| {
            ApiError::invalid("credits", "That many credits cost more than Kassa accepts in one charge.")
        })?;
    let max_amount = state.settings.checkout.max_amount;
    let charge =
        gross_up(value, fee).ok().filter(|c| c.total <= max_amount).ok_or_else(|| ApiError::InvalidRequest {
            code: "amount_too_large",
            message: format!(
                "That many credits cost more than {max_amount}, the most one payment may be (minor units)."
            ),
            param: Some("credits".into()),
        })?;
    let mut lines =
        vec![SessionLine { name: format!("{} credits", input.credits), unit_amount: value.get(), quantity: 1 }];
    if charge.fee > 0 {
        lines.push(SessionLine { name: "Processing fee".into(), unit_amount: charge.fee, quantity: 1 });
    }
    open_session(
        state,
        SessionSpec {
            purpose: SessionPurpose::Credits,
            customer,
            cart: None,
            credits: Some(input.credits),
            currency: currency.code().to_string(),
            lines,
            success_url,
            cancel_url,
        },
    )
    .await
}

pub async fn balance(state: &AppState, customer: &str, page: &Page) -> ApiResult<CreditBalance> {
    let row = kassa_store::customers::get(state.store.reader(), customer)
        .await?
        .ok_or_else(|| ApiError::not_found("customer", customer))?;
    let listed = ledger::list(state.store.reader(), customer, page).await?;
    Ok(CreditBalance {
        object: "credit_balance",
        customer: row.id,
        balance: row.credit_balance,
        unit_amount: state.settings.credits.unit_amount,
        currency: state.settings.credits.currency.to_lowercase(),
        entries: listed.data.into_iter().map(CreditEntry::from).collect(),
        has_more: listed.has_more,
    })
}

async fn existing_customer(tx: &mut Tx, id: &str) -> ApiResult<()> {
    validate::id(IdKind::Customer, "customer", id)?;
    kassa_store::customers::get(tx.conn(), id).await?.ok_or_else(|| ApiError::not_found("customer", id))?;
    Ok(())
}

/// Spends credits atomically; 409 `insufficient_credits` when the balance would go below
/// zero. `source` makes a retried debit count once (the idempotency key, when given).
pub async fn debit(tx: &mut Tx, now: i64, customer: &str, source: String, input: DebitInput) -> ApiResult<CreditEntry> {
    validate::int_in("amount", input.amount, 1..=MAX_CREDITS)?;
    existing_customer(tx, customer).await?;
    let reason = validate::optional_text("reason", input.reason.as_deref(), 500)?;
    let entry = NewEntry {
        customer: customer.into(),
        amount: -input.amount,
        kind: "debit",
        source,
        reason,
        ..Default::default()
    };
    record_change(tx, entry, "credits.debited", now).await
}

pub async fn adjust(
    tx: &mut Tx,
    now: i64,
    customer: &str,
    source: String,
    input: AdjustInput,
) -> ApiResult<CreditEntry> {
    validate::int_in("amount", input.amount, -MAX_CREDITS..=MAX_CREDITS)?;
    if input.amount == 0 {
        return Err(ApiError::invalid("amount", "amount must not be zero."));
    }
    existing_customer(tx, customer).await?;
    let reason = Some(validate::text("reason", &input.reason, 500)?);
    let entry = NewEntry {
        customer: customer.into(),
        amount: input.amount,
        kind: "adjustment",
        source,
        reason,
        ..Default::default()
    };
    record_change(tx, entry, "credits.adjusted", now).await
}

async fn record_change(tx: &mut Tx, entry: NewEntry, event: &str, now: i64) -> ApiResult<CreditEntry> {
    match ledger::add_entry(tx, entry, now).await? {
        Added::Entry(e) => {
            let e = CreditEntry::from(e);
            events::record(tx, event, &e.id, &e, now).await?;
            Ok(e)
        }
        Added::Duplicate(e) => Ok(e.into()),
        Added::Insufficient => {
            Err(ApiError::conflict("insufficient_credits", "The balance is too low for this debit."))
        }
        Added::OverLimit => Err(ApiError::conflict(
            "credit_balance_limit",
            format!("The balance would be larger than {MAX_CREDITS}, the most one customer may hold."),
        )),
    }
}
