//! Customers, PaymentIntents, charges, refunds and saved cards.

use crate::cards::{self, Decision, TestCard};
use crate::db::{self as db, ObjectRow};
use crate::objects::{self as o, Stored};
use crate::work::{Work, db_failed, decode, invalid, no_such};
use crate::{Committed, TestProcessor};
use kassa_domain::Currency;
use kassa_domain::ids::new_id;
use kassa_processors::types::{
    CaptureMethod, ConfirmPaymentIntent, CreateCustomer, CreatePaymentIntent, CreateRefund, PaymentError,
    PaymentIntentStatus as S, PaymentSource, ProcessorCustomer, RefundStatus,
};
use kassa_processors::{PaymentIntent, PaymentIntentPage, PaymentMethod, ProcessorError, Refund};
use kassa_store::Store;

/// ConfirmationTokens expire 12 hours after they are made, as Stripe's do.
pub(super) const CONFIRMATION_TOKEN_TTL_SECS: i64 = 12 * 3600;

pub(super) fn create_customer(w: &mut Work, req: &CreateCustomer) -> ProcessorCustomer {
    let customer = o::Customer {
        id: new_id("cus"),
        object: "customer".into(),
        created: w.now,
        email: req.email.clone(),
        name: req.name.clone(),
        metadata: req.metadata.clone(),
        livemode: false,
    };
    w.put(&customer);
    w.emit("customer.created", &customer);
    ProcessorCustomer { id: customer.id, email: customer.email }
}

fn unexpected_state(pi: &o::PaymentIntent, action: &str) -> ProcessorError {
    invalid(
        "payment_intent_unexpected_state",
        None,
        format!("You cannot {action} this PaymentIntent because it has a status of {}.", status_name(pi.status)),
    )
}

fn status_name(status: S) -> String {
    serde_json::to_value(status).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// A fresh, unsaved card PaymentMethod.
pub(super) fn card_payment_method(now: i64, card: &TestCard, exp_month: i64, exp_year: i64) -> o::PaymentMethod {
    o::PaymentMethod {
        id: new_id("pm"),
        object: "payment_method".into(),
        kind: "card".into(),
        card: Some(o::Card {
            brand: card.brand.into(),
            last4: card.last4().into(),
            exp_month,
            exp_year,
            funding: "credit".into(),
            country: "US".into(),
        }),
        us_bank_account: None,
        customer: None,
        created: now,
        metadata: Default::default(),
        livemode: false,
    }
}

/// The id a source names in the database (shortcuts like `pm_card_visa` name none).
fn stored_source_id(source: &PaymentSource) -> Option<&str> {
    match source {
        PaymentSource::ConfirmationToken(id) => Some(id),
        PaymentSource::PaymentMethod(id) if TestCard::by_shortcut(id).is_none() => Some(id),
        PaymentSource::PaymentMethod(_) => None,
    }
}

/// The PaymentMethod `source` pays `pi` with, and whether it was saved with the PaymentIntent's
/// customer before. A ConfirmationToken is used up by this.
fn resolve_source(
    w: &mut Work,
    source: &PaymentSource,
    pi: &o::PaymentIntent,
) -> Result<(o::PaymentMethod, bool), ProcessorError> {
    match source {
        PaymentSource::ConfirmationToken(id) => {
            let mut token: o::ConfirmationToken =
                w.get(id)?.ok_or_else(|| no_such("confirmation token", "confirmation_token", id))?;
            if token.payment_intent.is_some() {
                return Err(invalid(
                    "confirmation_token_already_used",
                    Some("confirmation_token"),
                    format!("The ConfirmationToken '{id}' has already been used; create a new one."),
                ));
            }
            if token.expires_at <= w.now {
                return Err(invalid(
                    "confirmation_token_expired",
                    Some("confirmation_token"),
                    format!("The ConfirmationToken '{id}' has expired; create a new one."),
                ));
            }
            let card = token.payment_method_preview.card.clone().ok_or_else(|| {
                invalid("parameter_invalid", Some("confirmation_token"), "The ConfirmationToken carries no card.")
            })?;
            let test_card = TestCard::by_brand_last4(&card.brand, &card.last4)
                .ok_or_else(|| invalid("incorrect_number", Some("confirmation_token"), "Unknown test card."))?;
            token.payment_intent = Some(pi.id.clone());
            w.put(&token);
            Ok((card_payment_method(w.now, test_card, card.exp_month, card.exp_year), false))
        }
        PaymentSource::PaymentMethod(id) => {
            if let Some(card) = TestCard::by_shortcut(id) {
                let (year, _) = cards::year_month(w.now);
                return Ok((card_payment_method(w.now, card, 12, year + 3), false));
            }
            let pm: o::PaymentMethod = w.get(id)?.ok_or_else(|| no_such("payment method", "payment_method", id))?;
            match &pm.customer {
                Some(owner) if Some(owner) == pi.customer.as_ref() => {
                    let set_up = !pm.metadata.contains_key(NOT_SET_UP);
                    Ok((pm, set_up))
                }
                Some(_) => Err(invalid(
                    "payment_method_unexpected_state",
                    Some("payment_method"),
                    format!("The PaymentMethod '{id}' belongs to another customer."),
                )),
                None => Err(invalid(
                    "payment_method_unexpected_state",
                    Some("payment_method"),
                    format!(
                        "The PaymentMethod '{id}' was used without being saved with a customer and may not be \
                         used again."
                    ),
                )),
            }
        }
    }
}

fn new_charge(w: &Work, pi: &o::PaymentIntent, pm: &o::PaymentMethod, failure: Option<&PaymentError>) -> o::Charge {
    let id = new_id("ch");
    let captured = failure.is_none() && pi.capture_method == CaptureMethod::Automatic;
    o::Charge {
        refunds: o::List::embedded(Some(format!("/v1/charges/{id}/refunds"))),
        id,
        object: "charge".into(),
        amount: Some(pi.amount),
        amount_captured: Some(if captured { pi.amount } else { 0 }),
        amount_refunded: 0,
        captured,
        refunded: false,
        paid: failure.is_none(),
        status: if failure.is_none() { "succeeded" } else { "failed" }.into(),
        currency: pi.currency.clone(),
        customer: pi.customer.clone(),
        payment_intent: Some(pi.id.clone()),
        payment_method: Some(pm.id.clone()),
        failure_code: failure.map(|f| f.code.clone()),
        failure_message: failure.map(|f| f.message.clone()),
        metadata: pi.metadata.clone(),
        created: w.now,
        livemode: false,
    }
}

/// The payment went through: a charge, the PaymentIntent succeeded (or authorized, with
/// manual capture), the card saved when asked.
pub(super) fn succeed(w: &mut Work, pi: &mut o::PaymentIntent, pm: &mut o::PaymentMethod) -> PaymentIntent {
    let charge = new_charge(w, pi, pm, None);
    pi.latest_charge = Some(o::Expandable::Id(charge.id.clone()));
    pi.payment_method = Some(pm.id.clone());
    pi.last_payment_error = None;
    pi.next_action = None;
    let event = match pi.capture_method {
        CaptureMethod::Automatic => {
            pi.status = S::Succeeded;
            pi.amount_received = Some(pi.amount);
            pi.amount_capturable = Some(0);
            "payment_intent.succeeded"
        }
        CaptureMethod::Manual => {
            pi.status = S::RequiresCapture;
            pi.amount_capturable = Some(pi.amount);
            "payment_intent.amount_capturable_updated"
        }
    };
    if pi.setup_future_usage.is_some() && pm.customer.is_none() {
        pm.customer = pi.customer.clone();
    }
    w.put(pm);
    w.put(&charge);
    w.put(pi);
    w.emit(event, pi);
    o::payment_intent_neutral(pi, Some(&charge))
}

/// The payment was refused: a failed charge, the PaymentIntent back to
/// `requires_payment_method` with the reason.
pub(super) fn decline(
    w: &mut Work,
    pi: &mut o::PaymentIntent,
    pm: &o::PaymentMethod,
    error: PaymentError,
) -> Committed<PaymentIntent> {
    let charge = new_charge(w, pi, pm, Some(&error));
    pi.status = S::RequiresPaymentMethod;
    pi.payment_method = None;
    pi.next_action = None;
    pi.latest_charge = Some(o::Expandable::Id(charge.id.clone()));
    pi.last_payment_error = Some(o::ApiError::card_error(&error, Some(&pm.id)));
    w.put(pm);
    w.put(&charge);
    w.put(pi);
    w.emit("payment_intent.payment_failed", pi);
    Committed::Declined { error, payment_intent: Box::new(o::payment_intent_neutral(pi, Some(&charge))) }
}

impl TestProcessor {
    /// The 3-D Secure challenge page of a PaymentIntent.
    pub(super) fn authenticate_url(&self, pi: &str) -> String {
        format!("{}/test-processor/authenticate/{pi}", self.config.public_url)
    }

    /// Confirms `pi` with `pm`: succeeds, asks for 3-D Secure, or declines.
    pub(super) fn attempt(
        &self,
        w: &mut Work,
        mut pi: o::PaymentIntent,
        mut pm: o::PaymentMethod,
        saved: bool,
        off_session: bool,
        return_url: Option<String>,
    ) -> Committed<PaymentIntent> {
        let decision = match pm.card.as_ref().and_then(|c| Some((c, TestCard::by_brand_last4(&c.brand, &c.last4)?))) {
            Some((card, test_card)) => {
                cards::decide(test_card, card.exp_month, card.exp_year, w.now, off_session, saved)
            }
            None => {
                Decision::Decline(cards::error("card_declined", Some("generic_decline"), "Your card was declined."))
            }
        };
        match decision {
            Decision::Succeed => Committed::Done(succeed(w, &mut pi, &mut pm)),
            Decision::Decline(error) => decline(w, &mut pi, &pm, error),
            Decision::Authenticate => {
                pi.status = S::RequiresAction;
                pi.payment_method = Some(pm.id.clone());
                pi.last_payment_error = None;
                pi.next_action = Some(o::NextAction {
                    kind: "redirect_to_url".into(),
                    redirect_to_url: Some(o::RedirectToUrl { url: self.authenticate_url(&pi.id), return_url }),
                });
                w.put(&pm);
                w.put(&pi);
                w.emit("payment_intent.requires_action", &pi);
                let latest = w.get::<o::Charge>(pi.latest_charge_id().unwrap_or_default()).ok().flatten();
                Committed::Done(o::payment_intent_neutral(&pi, latest.as_ref()))
            }
        }
    }

    pub(super) async fn create_payment_intent_in(
        &self,
        w: &mut Work,
        req: &CreatePaymentIntent,
    ) -> Result<Committed<PaymentIntent>, ProcessorError> {
        if req.customer.trim().is_empty() {
            return Err(invalid(
                "parameter_missing",
                Some("customer"),
                "A customer is required: Kassa never makes a payment without a processor customer.",
            ));
        }
        if req.amount < 1 {
            return Err(invalid("parameter_invalid_integer", Some("amount"), "The amount must be at least 1."));
        }
        let currency = Currency::parse(&req.currency)
            .map_err(|e| invalid("parameter_invalid", Some("currency"), e.to_string()))?;
        if req.off_session && req.confirm.is_none() {
            return Err(invalid(
                "parameter_invalid",
                Some("off_session"),
                "off_session can only be used with confirm.",
            ));
        }
        let mut ids = vec![req.customer.as_str()];
        ids.extend(req.confirm.as_ref().and_then(stored_source_id));
        w.load(&ids, false, true).await?;
        if w.get::<o::Customer>(&req.customer)?.is_none() {
            return Err(no_such("customer", "customer", &req.customer));
        }
        let pi = o::PaymentIntent {
            id: new_id("pi"),
            object: "payment_intent".into(),
            amount: req.amount,
            amount_capturable: Some(0),
            amount_received: Some(0),
            currency: currency.code().to_string(),
            customer: Some(req.customer.clone()),
            payment_method: None,
            capture_method: req.capture_method,
            status: S::RequiresPaymentMethod,
            metadata: req.metadata.clone(),
            next_action: None,
            last_payment_error: None,
            latest_charge: None,
            charges: None,
            setup_future_usage: req.setup_future_usage.then(|| "off_session".to_string()),
            cancellation_reason: None,
            canceled_at: None,
            payment_method_types: vec!["card".into()],
            created: w.now,
            livemode: false,
        };
        match &req.confirm {
            None => {
                w.put(&pi);
                Ok(Committed::Done(o::payment_intent_neutral(&pi, None)))
            }
            Some(source) => {
                let (pm, saved) = resolve_source(w, source, &pi)?;
                Ok(self.attempt(w, pi, pm, saved, req.off_session, req.return_url.clone()))
            }
        }
    }

    pub(super) async fn confirm_payment_intent_in(
        &self,
        w: &mut Work,
        id: &str,
        req: &ConfirmPaymentIntent,
    ) -> Result<Committed<PaymentIntent>, ProcessorError> {
        let mut ids = vec![id];
        ids.extend(stored_source_id(&req.source));
        w.load(&ids, true, true).await?;
        let pi: o::PaymentIntent = w.get(id)?.ok_or_else(|| ProcessorError::NotFound(id.to_string()))?;
        if !matches!(pi.status, S::RequiresPaymentMethod | S::RequiresConfirmation | S::RequiresAction) {
            return Err(unexpected_state(&pi, "confirm"));
        }
        let (pm, saved) = resolve_source(w, &req.source, &pi)?;
        Ok(self.attempt(w, pi, pm, saved, false, req.return_url.clone()))
    }
}

/// Loads a PaymentIntent with its charges (the call writes only if they are unchanged).
async fn load_payment_intent(w: &mut Work, id: &str) -> Result<(o::PaymentIntent, Option<o::Charge>), ProcessorError> {
    w.load(&[id], true, true).await?;
    let pi: o::PaymentIntent = w.get(id)?.ok_or_else(|| ProcessorError::NotFound(id.to_string()))?;
    let charge = match pi.latest_charge_id() {
        Some(ch) => w.get::<o::Charge>(ch)?,
        None => None,
    };
    Ok((pi, charge))
}

pub(super) async fn capture(
    w: &mut Work,
    id: &str,
    amount: Option<i64>,
) -> Result<Committed<PaymentIntent>, ProcessorError> {
    let (mut pi, charge) = load_payment_intent(w, id).await?;
    if pi.status != S::RequiresCapture {
        return Err(unexpected_state(&pi, "capture"));
    }
    let mut charge = charge.ok_or_else(|| ProcessorError::Unavailable(format!("{id} has no charge to capture")))?;
    let capturable = pi.amount_capturable.unwrap_or(0);
    let amount = amount.unwrap_or(capturable);
    if amount < 1 {
        return Err(invalid("parameter_invalid_integer", Some("amount_to_capture"), "The amount must be at least 1."));
    }
    if amount > capturable {
        return Err(invalid(
            "amount_too_large",
            Some("amount_to_capture"),
            format!("The amount to capture ({amount}) is greater than the amount capturable ({capturable})."),
        ));
    }
    // What is not captured is released, as at Stripe: it never reaches the merchant and
    // cannot be refunded.
    charge.captured = true;
    charge.amount_captured = Some(amount);
    pi.amount_received = Some(amount);
    pi.amount_capturable = Some(0);
    pi.status = S::Succeeded;
    w.put(&charge);
    w.put(&pi);
    w.emit("payment_intent.succeeded", &pi);
    Ok(Committed::Done(o::payment_intent_neutral(&pi, Some(&charge))))
}

/// Cancels a PaymentIntent that has not succeeded; `reason` as Stripe reports it.
pub(super) fn cancel_loaded(
    w: &mut Work,
    pi: &mut o::PaymentIntent,
    reason: Option<&str>,
) -> Result<(), ProcessorError> {
    if !matches!(pi.status, S::RequiresPaymentMethod | S::RequiresConfirmation | S::RequiresAction | S::RequiresCapture)
    {
        return Err(unexpected_state(pi, "cancel"));
    }
    pi.status = S::Canceled;
    pi.amount_capturable = Some(0);
    pi.next_action = None;
    pi.canceled_at = Some(w.now);
    pi.cancellation_reason = reason.map(str::to_string);
    w.put(pi);
    w.emit("payment_intent.canceled", pi);
    Ok(())
}

pub(super) async fn cancel(w: &mut Work, id: &str) -> Result<Committed<PaymentIntent>, ProcessorError> {
    let (mut pi, charge) = load_payment_intent(w, id).await?;
    cancel_loaded(w, &mut pi, Some("requested_by_customer"))?;
    Ok(Committed::Done(o::payment_intent_neutral(&pi, charge.as_ref())))
}

pub(super) async fn refund(w: &mut Work, req: &CreateRefund) -> Result<Committed<Refund>, ProcessorError> {
    let (pi, charge) = load_payment_intent(w, &req.payment_intent).await?;
    let mut charge = match charge {
        Some(c) if pi.status == S::Succeeded && c.captured => c,
        _ => {
            return Err(invalid(
                "payment_intent_unexpected_state",
                Some("payment_intent"),
                format!("The PaymentIntent '{}' has no captured charge to refund.", pi.id),
            ));
        }
    };
    // The charge is guarded: a refund of it between this read and the write makes this call
    // run again on what that refund left.
    let captured = charge.amount_captured.unwrap_or(0);
    let refundable = captured - charge.amount_refunded;
    if refundable == 0 {
        return Err(invalid(
            "charge_already_refunded",
            None,
            format!("Charge {} has already been refunded.", charge.id),
        ));
    }
    let amount = req.amount.unwrap_or(refundable);
    if amount < 1 {
        return Err(invalid("parameter_invalid_integer", Some("amount"), "The refund amount must be at least 1."));
    }
    if amount > refundable {
        return Err(invalid(
            "amount_too_large",
            Some("amount"),
            format!("Refund amount ({amount}) is greater than unrefunded amount on charge ({refundable})."),
        ));
    }
    let refund = o::Refund {
        id: new_id("re"),
        object: "refund".into(),
        amount,
        charge: Some(charge.id.clone()),
        payment_intent: Some(pi.id.clone()),
        currency: charge.currency.clone(),
        status: RefundStatus::Succeeded,
        reason: None,
        metadata: req.metadata.clone(),
        created: w.now,
    };
    charge.amount_refunded += amount;
    charge.refunded = charge.amount_refunded == captured;
    charge.refunds.data.insert(0, refund.clone());
    *charge.refunds.total_count.get_or_insert(0) += 1;
    w.put(&refund);
    w.put(&charge);
    w.emit("charge.refunded", &charge);
    Ok(Committed::Done(o::refund_neutral(&refund)))
}

/// A PaymentIntent from `rows` (it and its children).
pub(super) fn neutral_from_rows(id: &str, rows: &[ObjectRow]) -> Result<PaymentIntent, ProcessorError> {
    let row = rows
        .iter()
        .find(|r| r.id == id && r.kind == o::PaymentIntent::KIND)
        .ok_or_else(|| ProcessorError::NotFound(id.to_string()))?;
    let pi: o::PaymentIntent = decode(row)?;
    let charge = match pi.latest_charge_id() {
        Some(ch) => rows.iter().find(|r| r.id == ch).map(decode::<o::Charge>).transpose()?,
        None => None,
    };
    Ok(o::payment_intent_neutral(&pi, charge.as_ref()))
}

/// A page of PaymentIntents, newest first, each with its latest charge.
pub(super) async fn list_payment_intents(
    store: &Store,
    starting_after: Option<&str>,
    limit: u32,
) -> Result<PaymentIntentPage, ProcessorError> {
    let limit = i64::from(limit.clamp(1, 100));
    let (intents, children) = db::list_newest_with_children(store, o::PaymentIntent::KIND, starting_after, limit + 1)
        .await
        .map_err(db_failed)?;
    let has_more = intents.len() as i64 > limit;
    let data = intents
        .iter()
        .take(limit as usize)
        .map(|row| {
            let pi: o::PaymentIntent = decode(row)?;
            let charge = match pi.latest_charge_id() {
                Some(ch) => children.iter().find(|r| r.id == ch).map(decode::<o::Charge>).transpose()?,
                None => None,
            };
            Ok(o::payment_intent_neutral(&pi, charge.as_ref()))
        })
        .collect::<Result<Vec<_>, ProcessorError>>()?;
    Ok(PaymentIntentPage { data, has_more })
}

/// Metadata of a card attached directly (not saved through an authenticated payment with
/// `setup_future_usage`): like Stripe's, a card that authenticates unless set up
/// (4000 0025 0000 3155) still asks for authentication off-session then.
pub(super) const NOT_SET_UP: &str = "test_processor_not_set_up_for_off_session";

/// Saves a payment method with `customer` (Stripe's attach). A shortcut makes a fresh one; a
/// stored one must not belong to anyone else yet.
pub(super) async fn attach_payment_method(
    w: &mut Work,
    payment_method: &str,
    customer: &str,
) -> Result<Committed<PaymentMethod>, ProcessorError> {
    let mut ids = vec![customer];
    if TestCard::by_shortcut(payment_method).is_none() {
        ids.push(payment_method);
    }
    w.load(&ids, false, true).await?;
    if w.get::<o::Customer>(customer)?.is_none() {
        return Err(no_such("customer", "customer", customer));
    }
    let mut pm = match TestCard::by_shortcut(payment_method) {
        Some(card) => {
            let (year, _) = cards::year_month(w.now);
            card_payment_method(w.now, card, 12, year + 3)
        }
        None => w.get(payment_method)?.ok_or_else(|| no_such("payment method", "payment_method", payment_method))?,
    };
    match pm.customer.as_deref() {
        Some(owner) if owner == customer => {}
        Some(_) => {
            return Err(invalid(
                "payment_method_unexpected_state",
                Some("payment_method"),
                format!("The PaymentMethod '{payment_method}' belongs to another customer."),
            ));
        }
        None => {
            pm.customer = Some(customer.to_string());
            pm.metadata.insert(NOT_SET_UP.into(), "true".into());
            w.put(&pm);
            w.emit("payment_method.attached", &pm);
        }
    }
    Ok(Committed::Done(o::payment_method_neutral(&pm)))
}

/// Forgets a saved payment method: it belongs to no customer and pays nothing again.
pub(super) async fn detach_payment_method(
    w: &mut Work,
    payment_method: &str,
) -> Result<Committed<PaymentMethod>, ProcessorError> {
    w.load(&[payment_method], false, true).await?;
    let mut pm: o::PaymentMethod =
        w.get(payment_method)?.ok_or_else(|| no_such("payment method", "payment_method", payment_method))?;
    if pm.customer.is_none() {
        return Err(invalid(
            "payment_method_unexpected_state",
            Some("payment_method"),
            format!("The PaymentMethod '{payment_method}' is not attached to a customer."),
        ));
    }
    pm.customer = None;
    w.put(&pm);
    w.emit("payment_method.detached", &pm);
    Ok(Committed::Done(o::payment_method_neutral(&pm)))
}

pub(super) async fn list_payment_methods(store: &Store, customer: &str) -> Result<Vec<PaymentMethod>, ProcessorError> {
    let rows = db::list_by_customer(store.reader(), customer, o::PaymentMethod::KIND).await.map_err(db_failed)?;
    if rows.is_empty() {
        let found = db::read_with_children(store.reader(), customer).await.map_err(db_failed)?;
        if !found.iter().any(|r| r.id == customer && r.kind == o::Customer::KIND) {
            return Err(ProcessorError::NotFound(customer.to_string()));
        }
    }
    rows.iter().map(|r| decode::<o::PaymentMethod>(r).map(|pm| o::payment_method_neutral(&pm))).collect()
}
