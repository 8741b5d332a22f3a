//! ConfirmationTokens: what Stripe.js makes in the browser from the card a customer typed.

use crate::TestProcessor;
use crate::cards::{CardInput, TestCard};
use crate::db::{self as db, ObjectRow};
use crate::objects::{self as o, Stored};
use crate::payments::{CONFIRMATION_TOKEN_TTL_SECS, card_payment_method};
use crate::work::{db_failed, invalid};
use kassa_domain::ids::new_id;
use kassa_processors::ProcessorError;

/// What a ConfirmationToken is made from.
#[derive(Clone, Debug)]
pub enum TokenSource {
    Card(CardInput),
    /// A shortcut: `pm_card_visa`, `pm_card_chargeDeclined`, `tok_visa`, …
    PaymentMethod(String),
}

impl TestProcessor {
    /// Makes a ConfirmationToken (Stripe's JSON) from a card, checked as Stripe.js checks it:
    /// a bad number, date or CVC, an unknown (non-test) number or an expired card is refused
    /// with a `param`.
    pub async fn create_confirmation_token(&self, source: &TokenSource) -> Result<serde_json::Value, ProcessorError> {
        self.check_available()?;
        let now = self.now();
        let card = match source {
            TokenSource::Card(input) => {
                let checked = input.check(now)?;
                card_payment_method(now, checked.card, checked.exp_month, checked.exp_year).card
            }
            TokenSource::PaymentMethod(name) => {
                let card = TestCard::by_shortcut(name).ok_or_else(|| {
                    invalid(
                        "resource_missing",
                        Some("payment_method"),
                        format!("No such test payment method: '{name}'. Use a shortcut such as pm_card_visa."),
                    )
                })?;
                let (year, _) = super::cards::year_month(now);
                card_payment_method(now, card, 12, year + 3).card
            }
        };
        let token = o::ConfirmationToken {
            id: new_id("ctoken"),
            object: "confirmation_token".into(),
            created: now,
            expires_at: now + CONFIRMATION_TOKEN_TTL_SECS,
            livemode: false,
            payment_intent: None,
            payment_method_preview: o::PaymentMethodPreview { kind: "card".into(), card },
        };
        let data = serde_json::to_string(&token).expect("tokens serialize");
        let row = ObjectRow {
            id: token.id.clone(),
            kind: o::ConfirmationToken::KIND.into(),
            customer: None,
            parent: None,
            data,
            created: now,
            updated: now,
            due_at: None,
            version: 0,
        };
        // A new object and nothing else: one statement, no transaction.
        db::insert(self.store.writer(), std::slice::from_ref(&row)).await.map_err(db_failed)?;
        // The payment that uses it usually follows on this server: it starts from this row.
        self.known.remember([row]);
        Ok(serde_json::to_value(&token).expect("tokens serialize"))
    }
}
