//! The hosted invoice page (Stripe's `hosted_invoice_url`): where the customer pays an open
//! invoice in the browser — after an off-session charge declined or needed their
//! authentication — with another card, passing 3-D Secure when the card asks for it.
//!
//! The URL's last segment, `<invoice>_secret_<random>`, is the credential (compared in
//! constant time): it opens that one invoice and nothing else. Paying claims the invoice's
//! attempt like the renewal job does (`lease_until`), so a double submit or a racing job
//! retry cannot charge twice: the one that does not hold the claim makes no charge. A charge
//! waiting for 3-D Secure is written as the invoice's `payment_intent`; when the browser
//! comes back the page reads it (and the job, before any new charge, takes it as paid or
//! cancels it — `invoices::earlier_intent_paid`). The page's PaymentIntent is written as the
//! invoice's before it is confirmed, so a crash between the charge and its outcome leaves it
//! for the job to settle rather than charge again (see `charge_on_page`).

use crate::error::{ApiError, ApiResult};
use crate::services::invoices::{self, ATTEMPT_LEASE_SECS, Outcome};
use crate::services::{customers, processor_keys};
use crate::state::AppState;
use kassa_domain::ids::IdKind;
use kassa_domain::lifecycle::invoice::InvoiceStatus;
use kassa_processors::{
    CaptureMethod, ConfirmPaymentIntent, CreatePaymentIntent, Metadata, PaymentIntentStatus, PaymentSource,
    ProcessorError,
};
use kassa_sandbox::{CardInput, TokenSource};
use kassa_store::billing::{self as db, InvoiceRow};
use subtle::ConstantTimeEq;

const SECRET_MARK: &str = "_secret_";

/// A new page URL for `invoice`, with a fresh secret.
pub fn url_of(public_url: &str, invoice: &str) -> String {
    use rand::Rng;
    use rand::distributions::Alphanumeric;
    let random: String = rand::thread_rng().sample_iter(&Alphanumeric).take(32).map(char::from).collect();
    format!("{public_url}/invoice-pages/{invoice}{SECRET_MARK}{random}")
}

/// The invoice whose page `token` is; 404 alike for a malformed token, an unknown invoice and
/// a wrong secret (nothing tells them apart).
pub async fn find(state: &AppState, token: &str) -> ApiResult<InvoiceRow> {
    let missing = || ApiError::not_found("invoice page", "");
    let (id, _) = token.split_once(SECRET_MARK).ok_or_else(missing)?;
    if !IdKind::Invoice.matches(id) {
        return Err(missing());
    }
    let row = db::get_invoice(state.store.reader(), id).await?.ok_or_else(missing)?;
    let expected = row.hosted_invoice_url.as_deref().and_then(|u| u.rsplit('/').next()).unwrap_or_default();
    if bool::from(expected.as_bytes().ct_eq(token.as_bytes())) && !expected.is_empty() {
        Ok(row)
    } else {
        Err(missing())
    }
}

/// The invoice as the page shows it: a charge of the page that the customer has authenticated
/// since is written first (the browser comes back here from the 3-D Secure challenge).
pub async fn show(state: &AppState, token: &str) -> ApiResult<InvoiceRow> {
    let inv = find(state, token).await?;
    if inv.status == InvoiceStatus::Open.as_str() && inv.payment_intent.is_some() {
        let lease = state.clock.now() + ATTEMPT_LEASE_SECS;
        if let Some(claimed) = db::claim_invoice(&state.store, &inv.id, InvoiceStatus::Open.as_str(), lease).await? {
            match invoices::earlier_intent_paid_if_done(state, &claimed).await {
                Ok(Some(paid)) => invoices::record(state, &claimed, paid, false).await?,
                Ok(None) => db::release_invoice(state.store.writer(), &claimed.id, claimed.attempt_count).await?,
                Err(e) => {
                    db::release_invoice(state.store.writer(), &claimed.id, claimed.attempt_count).await?;
                    return Err(e);
                }
            }
        }
        return find(state, token).await;
    }
    Ok(inv)
}

/// What paying on the page came to.
pub enum Paying {
    Paid,
    /// To the test processor's 3-D Secure challenge, which returns to the page.
    Authenticate(String),
    /// The card was refused; the page says why.
    Refused(String),
    /// What was typed is no valid card (a bad number or expiry); nothing was tried.
    Invalid(String),
    /// Another payment of this invoice is under way (a double submit, the renewal job).
    Busy,
    /// Paid, void or uncollectible already: nothing to pay.
    NotOpen,
}

/// Pays the invoice with a card typed on the page (test processor).
pub async fn pay(state: &AppState, token: &str, card: CardInput) -> ApiResult<Paying> {
    let inv = find(state, token).await?;
    if inv.status != InvoiceStatus::Open.as_str() {
        return Ok(Paying::NotOpen);
    }
    let tp = state.test_processor.clone().ok_or_else(|| ApiError::not_found("invoice page", ""))?;
    let source = match tp.create_confirmation_token(&TokenSource::Card(card)).await {
        Ok(t) => t["id"].as_str().unwrap_or_default().to_string(),
        // A card the bank refuses (declined when the token is made) against a card mistyped.
        Err(ProcessorError::Payment { error, .. }) if error.code == "card_declined" => {
            return Ok(Paying::Refused(error.message));
        }
        Err(ProcessorError::Payment { error, .. }) => return Ok(Paying::Invalid(error.message)),
        Err(ProcessorError::InvalidRequest { message, .. }) => return Ok(Paying::Invalid(message)),
        Err(e) => return Err(e.into()),
    };
    let lease = state.clock.now() + ATTEMPT_LEASE_SECS;
    let Some(claimed) = db::claim_invoice(&state.store, &inv.id, InvoiceStatus::Open.as_str(), lease).await? else {
        let now = db::get_invoice(state.store.reader(), &inv.id).await?;
        return Ok(if now.is_some_and(|i| i.status != InvoiceStatus::Open.as_str()) {
            Paying::NotOpen
        } else {
            Paying::Busy
        });
    };
    let outcome = match charge_on_page(state, &claimed, source, token).await {
        Ok(Some(o)) => o,
        Ok(None) => return Ok(Paying::Busy),
        Err(e) => {
            db::release_invoice(state.store.writer(), &claimed.id, claimed.attempt_count).await?;
            return Err(e);
        }
    };
    let answer = match &outcome {
        (Outcome::Paid { .. }, _) => Paying::Paid,
        (Outcome::Failed { .. }, Some(url)) => Paying::Authenticate(url.clone()),
        (Outcome::Failed { error, .. }, None) => Paying::Refused(error.message.clone()),
    };
    invoices::record(state, &claimed, outcome.0, true).await?;
    Ok(answer)
}

/// The page's charge, on-session, returning to the page after 3-D Secure; with the URL of
/// the challenge when the card asks for it. `None` when the claim was lost before the charge
/// (it ran out and the job took the invoice over): nothing was charged.
///
/// Crash safety: the PaymentIntent is made unconfirmed first and written as the invoice's
/// `payment_intent` (fenced by this claim) *before* it is confirmed, so a server that dies
/// between the processor's charge and writing its outcome leaves the charge findable: the job
/// (and a later page submit) settles that intent first (`invoices::earlier_intent_paid`: paid →
/// that is the outcome; not yet paid → canceled before any new charge), never a second charge.
async fn charge_on_page(
    state: &AppState,
    inv: &InvoiceRow,
    confirmation_token: String,
    token: &str,
) -> ApiResult<Option<(Outcome, Option<String>)>> {
    if let Some(paid) = invoices::earlier_intent_paid(state, inv).await? {
        return Ok(Some((paid, None)));
    }
    let failed = |code: &str, message: String, pi: Option<String>, action: bool| Outcome::Failed {
        error: crate::objects::billing::InvoicePaymentError { code: code.into(), decline_code: None, message },
        action_required: action,
        payment_intent: pi,
    };
    let processor_customer = customers::ensure_processor_customer(state, &inv.customer).await?;
    let mut metadata = Metadata::new();
    metadata.insert("kassa_invoice".into(), inv.id.clone());
    metadata.insert("kassa_customer_id".into(), inv.customer.clone());
    if let Some(s) = &inv.subscription {
        metadata.insert("kassa_subscription".into(), s.clone());
    }
    let req = CreatePaymentIntent {
        amount: inv.amount_due - inv.amount_paid,
        currency: inv.currency.clone(),
        customer: processor_customer,
        metadata,
        capture_method: CaptureMethod::Automatic,
        setup_future_usage: false,
        confirm: None,
        off_session: false,
        return_url: None,
    };
    // One key per form submitted (its confirmation token): the claim keeps two from running
    // at once, and the invoice is no longer open once one is paid.
    let pi = match state
        .processor
        .create_payment_intent(&req, &processor_keys::pay_invoice_on_page(&inv.id, &confirmation_token))
        .await
    {
        Ok(pi) => pi,
        Err(ProcessorError::InvalidRequest { code, message, .. }) => {
            return Ok(Some((failed(code.as_deref().unwrap_or("payment_intent_invalid"), message, None, false), None)));
        }
        Err(e) => return Err(e.into()),
    };
    let (lease, open) = (inv.lease_until.unwrap_or_default(), InvoiceStatus::Open.as_str());
    if !db::set_attempt_payment_intent(state.store.writer(), &inv.id, inv.attempt_count, lease, open, &pi.id).await? {
        // The claim ran out meanwhile: the unconfirmed intent can charge nothing; drop it.
        let _ = state.processor.cancel_payment_intent(&pi.id, &processor_keys::cancel_invoice_intent(&pi.id)).await;
        return Ok(None);
    }
    let confirm = ConfirmPaymentIntent {
        source: PaymentSource::ConfirmationToken(confirmation_token.clone()),
        return_url: Some(format!("{}/invoice-pages/{token}", state.public_url)),
    };
    let key = processor_keys::confirm_invoice_on_page(&inv.id, &confirmation_token);
    let confirmed = state.processor.confirm_payment_intent(&pi.id, &confirm, &key).await;
    crate::failpoint::hit("invoice_page.after_processor_confirm").await;
    Ok(Some(match confirmed {
        Ok(pi) if pi.status.is_paid_or_authorized() => {
            (Outcome::Paid { payment_intent: Some(pi.id), payment_method: pi.payment_method }, None)
        }
        Ok(pi) if pi.status == PaymentIntentStatus::RequiresAction => {
            let url = pi.next_action.as_ref().map(|a| a.redirect_url.clone());
            let message = "The card requires the customer's authentication.".to_string();
            (failed("authentication_required", message, Some(pi.id), true), url)
        }
        Ok(pi) => {
            let message =
                pi.last_payment_error.map(|e| e.message).unwrap_or_else(|| "The payment did not complete.".into());
            (failed("card_declined", message, Some(pi.id), false), None)
        }
        Err(ProcessorError::Payment { error, payment_intent }) => {
            (failed(&error.code, error.message, payment_intent.map(|p| p.id).or(Some(pi.id)), false), None)
        }
        Err(ProcessorError::InvalidRequest { code, message, .. }) => {
            (failed(code.as_deref().unwrap_or("payment_method_invalid"), message, Some(pi.id), false), None)
        }
        Err(e) => return Err(e.into()),
    }))
}
