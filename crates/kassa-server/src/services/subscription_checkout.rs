//! Starting a subscription from the storefront: a hosted checkout session in subscription
//! mode (`POST /store/checkout-sessions` with `mode=subscription`) for the signed-in customer
//! or a guest (by email), as the credits top-up does.
//!
//! Kassa is the billing engine: the processor's side is a one-off payment of the first
//! period that saves the card with the customer for the renewals
//! (`setup_future_usage=off_session`; with Stripe, Checkout in `mode=payment`, never Stripe
//! Billing's `mode=subscription`). The page says that the card is saved and charged for the
//! future payments of this subscription — how much, how often — and asks for the buyer's
//! consent. When the money is in (webhook or the success page), `services::checkout_sessions`
//! starts the subscription, once, with its first invoice paid by that payment.

use crate::error::{ApiError, ApiResult};
use crate::objects::commerce::{CheckoutSession, SessionLine};
use crate::services::checkout_sessions::{PlanSpec, SessionSpec, open_subscription};
use crate::services::subscriptions::{self, Billable, ItemInput};
use crate::services::{customers, validate};
use crate::state::AppState;
use kassa_domain::Currency;
use kassa_domain::billing::Interval;
use kassa_domain::lifecycle::checkout_session::SessionPurpose;
use kassa_store::catalog;
use kassa_store::customers::CustomerRow;
use serde::Deserialize;
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCheckoutInput {
    /// `subscription`: the session starts a subscription to a recurring price.
    #[schema(example = "subscription")]
    pub mode: String,
    /// Exactly one item: an active recurring price and its quantity (1 to 1,000,000,
    /// default 1).
    pub line_items: Vec<ItemInput>,
    /// Where the buyer lands after paying (see the cart's checkout sessions: the session id and
    /// its client secret are appended).
    #[schema(max_length = 2048, pattern = "^https?://[a-z0-9.-]+(/.*)?$")]
    pub success_url: String,
    #[schema(max_length = 2048, pattern = "^https?://[a-z0-9.-]+(/.*)?$")]
    pub cancel_url: Option<String>,
    /// For guests (no customer token): whose subscription it is. Ignored for a signed-in
    /// customer, whose subscription it always is.
    #[schema(format = Email)]
    pub email: Option<String>,
}

/// `items[0].price` → `line_items[0].price`: the subscription checks name the admin API's
/// parameter; this endpoint's is `line_items`.
fn renamed(e: ApiError) -> ApiError {
    match e {
        ApiError::InvalidRequest { code, message, param: Some(p) } if p.starts_with("items") => {
            ApiError::InvalidRequest { code, message, param: Some(format!("line_{p}")) }
        }
        other => other,
    }
}

/// "every month", "every 3 weeks".
fn every(interval: Interval, count: u32) -> String {
    let unit = match interval {
        Interval::Day => "day",
        Interval::Week => "week",
        Interval::Month => "month",
        Interval::Year => "year",
    };
    if count == 1 { format!("every {unit}") } else { format!("every {count} {unit}s") }
}

/// What the buyer consents to: the card saved, charged now and every period, until canceled.
fn consent_text(merchant: &str, amount: &str, b: &Billable) -> String {
    format!(
        "Your card will be saved with {merchant} and charged {amount} now and {amount} {} for this \
         subscription until you cancel it.",
        every(b.interval, b.count)
    )
}

/// `POST /store/checkout-sessions` (`mode=subscription`): checks everything first — bad
/// input changes nothing —, then finds the guest customer (by email) and opens the session.
pub async fn create(
    state: &AppState,
    shopper: Option<&CustomerRow>,
    input: CreateCheckoutInput,
) -> ApiResult<CheckoutSession> {
    if input.mode != "subscription" {
        return Err(ApiError::invalid(
            "mode",
            "mode must be `subscription` (carts pay through POST /store/carts/{id}/checkout-sessions).",
        ));
    }
    if input.line_items.len() != 1 {
        return Err(ApiError::invalid("line_items", "line_items must hold exactly one item (a recurring price)."));
    }
    let b = subscriptions::billable(state, &input.line_items).await.map_err(renamed)?;
    if b.total < 1 {
        return Err(ApiError::invalid("line_items[0].price", "A free price needs no checkout."));
    }
    let success_url = validate::http_url("success_url", &input.success_url)?;
    let cancel_url = input.cancel_url.as_deref().map(|u| validate::http_url("cancel_url", u)).transpose()?;
    let guest_email = match (shopper, &input.email) {
        (Some(_), _) => None,
        (None, Some(email)) => Some(customers::email("email", email)?),
        (None, None) => return Err(ApiError::missing("email")),
    };
    let currency =
        Currency::parse(&b.price.currency).map_err(|e| ApiError::Internal(anyhow::anyhow!("price currency: {e}")))?;
    let product = catalog::get_product(state.store.reader(), &b.price.product).await?;
    let name = b.price.nickname.clone().or(product.map(|p| p.name)).unwrap_or_else(|| b.price.id.clone());
    let merchant = state.settings.checkout.merchant_name.clone().unwrap_or_else(|| "the merchant".into());
    let consent = consent_text(&merchant, &currency.display_amount(b.total), &b);
    let customer = match (shopper, guest_email) {
        (Some(c), _) => c.id.clone(),
        (None, Some(email)) => {
            let now = state.clock.now();
            let mut tx = state.store.begin().await?;
            let (guest, created) = customers::guest(&mut tx, now, &email).await?;
            tx.commit().await?;
            if created {
                customers::after_commit(state, &guest.id);
            }
            guest.id
        }
        (None, None) => return Err(ApiError::missing("email")),
    };
    let spec = SessionSpec {
        purpose: SessionPurpose::Subscription,
        customer,
        cart: None,
        credits: None,
        currency: currency.code().to_string(),
        lines: vec![SessionLine {
            name: format!("{name} ({})", every(b.interval, b.count)),
            unit_amount: b.price.unit_amount,
            quantity: b.quantity,
        }],
        success_url,
        cancel_url,
    };
    let plan = PlanSpec { price: b.price.id.clone(), quantity: b.quantity, consent_text: consent };
    open_subscription(state, spec, plan).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_read_as_english() {
        assert_eq!(every(Interval::Month, 1), "every month");
        assert_eq!(every(Interval::Week, 2), "every 2 weeks");
        assert_eq!(every(Interval::Year, 1), "every year");
    }
}
