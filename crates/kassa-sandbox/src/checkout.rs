//! Hosted checkout sessions (Stripe Checkout) and the 3-D Secure challenge: what the hosted
//! pages of the test processor call.

use crate::cards::{CardInput, CheckedCard};
use crate::db;
use crate::objects::{self as o};
use crate::payments::{self, card_payment_method};
use crate::work::{Work, db_failed, decode, invalid, no_such};
use crate::{Committed, TestProcessor, call, cards};
use kassa_domain::Currency;
use kassa_domain::ids::new_id;
use kassa_processors::types::{
    CaptureMethod, CheckoutPaymentStatus as Pay, CheckoutSession, CheckoutSessionStatus as Status,
    CreateCheckoutSession, PaymentIntentStatus as S,
};
use kassa_processors::{PaymentIntent, ProcessorError};

/// Stripe's bounds on `expires_at`: 30 minutes to 24 hours from now (a minute of slack for
/// clocks that read a little apart).
const MIN_SESSION_SECS: i64 = 30 * 60 - 60;
const MAX_SESSION_SECS: i64 = 24 * 3600 + 60;
/// Sessions expired per round of [`TestProcessor::expire_overdue_sessions`].
const EXPIRY_BATCH: i64 = 100;

/// Where the browser goes after paying on the hosted page.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CheckoutPayment {
    /// Paid (or authorized, or a bank debit submitted): to the session's `success_url`.
    Completed { redirect_url: String },
    /// The card needs 3-D Secure: to the challenge page.
    RequiresAction { redirect_url: String },
}

/// The outcome of a 3-D Secure challenge.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AuthenticationResult {
    pub payment_intent: PaymentIntent,
    /// Where the browser goes next: the session's success URL or checkout page, or the
    /// PaymentIntent's `return_url`; `None` when there is nowhere to return to.
    pub redirect_url: Option<String>,
}

fn check_url(param: &str, value: &str) -> Result<(), ProcessorError> {
    match url::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        _ => Err(invalid("url_invalid", Some(param), format!("Not a valid URL: {value}"))),
    }
}

/// A card saved for future payments needs the buyer's consent (the page's checkbox).
fn consent_required() -> ProcessorError {
    invalid(
        "consent_required",
        Some("consent"),
        "Tick the box to agree that your card is saved and charged for the future payments of this \
         subscription. Nothing was charged.",
    )
}

fn not_open(session: &o::CheckoutSession, now: i64) -> Option<ProcessorError> {
    let why = match session.status {
        Status::Complete => "is already complete",
        Status::Expired => "has expired",
        Status::Open if session.expires_at <= now => "has expired",
        Status::Open => return None,
    };
    Some(invalid(
        "checkout_session_unexpected_state",
        None,
        format!("This checkout session {why} and can no longer be paid."),
    ))
}

/// Loads a session with the objects hanging off it (its PaymentIntent); the call writes only
/// if they are still as read.
///
/// The PaymentIntent the session names is read again when the first statement did not return
/// it (it hangs off the session from its first write, so one statement sees both; the second
/// read is a safety net that costs nothing when unused). Without it, a payment posted twice at
/// once could find the first attempt's PaymentIntent missing and start a second one.
async fn load_session(w: &mut Work, id: &str) -> Result<o::CheckoutSession, ProcessorError> {
    w.load(&[id], true, true).await?;
    let session: o::CheckoutSession = w.get(id)?.ok_or_else(|| ProcessorError::NotFound(id.to_string()))?;
    if let Some(pi) = &session.payment_intent
        && w.get::<o::PaymentIntent>(pi)?.is_none()
    {
        w.load(&[pi.as_str()], false, true).await?;
    }
    Ok(session)
}

/// Marks the session paid (or submitted) and records `checkout.session.completed`.
fn complete(w: &mut Work, session: &mut o::CheckoutSession, payment_status: Pay) -> String {
    session.status = Status::Complete;
    session.payment_status = payment_status;
    session.url = None;
    w.put(session);
    w.emit("checkout.session.completed", session);
    session.success_redirect()
}

/// Expires an open session and cancels its unfinished PaymentIntent.
fn expire_loaded(w: &mut Work, session: &mut o::CheckoutSession) -> Result<(), ProcessorError> {
    if session.status != Status::Open {
        return Err(invalid(
            "checkout_session_unexpected_state",
            None,
            "Only checkout sessions that are open can be expired.",
        ));
    }
    if let Some(pi_id) = session.payment_intent.clone()
        && let Some(mut pi) = w.get::<o::PaymentIntent>(&pi_id)?
        && matches!(pi.status, S::RequiresPaymentMethod | S::RequiresConfirmation | S::RequiresAction)
    {
        payments::cancel_loaded(w, &mut pi, Some("abandoned"))?;
    }
    session.status = Status::Expired;
    session.url = None;
    w.put(session);
    w.emit("checkout.session.expired", session);
    Ok(())
}

pub(super) async fn expire(w: &mut Work, id: &str) -> Result<Committed<CheckoutSession>, ProcessorError> {
    let mut session = load_session(w, id).await?;
    expire_loaded(w, &mut session)?;
    Ok(Committed::Done(o::checkout_session_neutral(&session)))
}

impl TestProcessor {
    /// The hosted page of a session.
    pub fn checkout_url(&self, session: &str) -> String {
        format!("{}/test-processor/checkout/{session}", self.config.public_url)
    }

    /// A session as Stripe's JSON (with its line items), for the hosted page.
    pub async fn checkout_session(&self, id: &str) -> Result<o::CheckoutSession, ProcessorError> {
        let rows = db::read_with_children(self.store.reader(), id).await.map_err(db_failed)?;
        let row = rows
            .iter()
            .find(|r| r.id == id && r.kind == "checkout_session")
            .ok_or_else(|| ProcessorError::NotFound(id.to_string()))?;
        decode(row)
    }

    /// Why the last payment attempt of an open session failed (the hosted page shows it).
    pub async fn checkout_last_error(&self, session: &o::CheckoutSession) -> Result<Option<String>, ProcessorError> {
        let Some(pi) = &session.payment_intent else { return Ok(None) };
        let rows = db::read_with_children(self.store.reader(), pi).await.map_err(db_failed)?;
        let pi = payments::neutral_from_rows(pi, &rows)?;
        Ok(pi.last_payment_error.filter(|_| pi.status == S::RequiresPaymentMethod).map(|e| e.message))
    }

    pub(super) async fn create_checkout_session_in(
        &self,
        w: &mut Work,
        req: &CreateCheckoutSession,
    ) -> Result<Committed<CheckoutSession>, ProcessorError> {
        if req.customer.trim().is_empty() {
            return Err(invalid("parameter_missing", Some("customer"), "A customer is required."));
        }
        let currency = Currency::parse(&req.currency)
            .map_err(|e| invalid("parameter_invalid", Some("currency"), e.to_string()))?;
        if req.lines.is_empty() || req.lines.len() > 100 {
            return Err(invalid("parameter_invalid", Some("line_items"), "Between 1 and 100 line items are required."));
        }
        let mut items = Vec::with_capacity(req.lines.len());
        let mut total: i64 = 0;
        for (i, line) in req.lines.iter().enumerate() {
            let amount = (line.quantity >= 1 && line.unit_amount >= 0 && !line.name.trim().is_empty())
                .then(|| line.unit_amount.checked_mul(line.quantity))
                .flatten()
                .ok_or_else(|| {
                    invalid(
                        "parameter_invalid",
                        Some(&format!("line_items[{i}]")),
                        "A line item needs a name, a quantity of at least 1 and an amount of at least 0.",
                    )
                })?;
            total = total
                .checked_add(amount)
                .ok_or_else(|| invalid("parameter_invalid", Some("line_items"), "The total is too large."))?;
            items.push(o::LineItem {
                id: new_id("li"),
                object: "item".into(),
                description: line.name.clone(),
                quantity: line.quantity,
                amount_subtotal: amount,
                amount_total: amount,
                currency: currency.code().into(),
                price: o::LinePrice { unit_amount: line.unit_amount, currency: currency.code().into() },
            });
        }
        if total < 1 {
            return Err(invalid("parameter_invalid", Some("line_items"), "The total must be at least 1."));
        }
        check_url("success_url", &req.success_url)?;
        if let Some(cancel) = &req.cancel_url {
            check_url("cancel_url", cancel)?;
        }
        if let Some(save) = &req.save_card {
            if save.consent_text.trim().is_empty() || save.consent_text.chars().count() > 1200 {
                return Err(invalid(
                    "parameter_invalid",
                    Some("custom_text[submit][message]"),
                    "The consent text must have 1 to 1,200 characters.",
                ));
            }
            if req.capture_method == CaptureMethod::Manual {
                return Err(invalid(
                    "parameter_invalid",
                    Some("payment_intent_data[capture_method]"),
                    "A session that saves the card is captured at once.",
                ));
            }
        }
        if !(w.now + MIN_SESSION_SECS..=w.now + MAX_SESSION_SECS).contains(&req.expires_at) {
            return Err(invalid(
                "parameter_invalid",
                Some("expires_at"),
                "expires_at must be between 30 minutes and 24 hours from now.",
            ));
        }
        w.load(&[req.customer.as_str()], false, false).await?;
        if w.get::<o::Customer>(&req.customer)?.is_none() {
            return Err(no_such("customer", "customer", &req.customer));
        }
        let id = new_id("cs");
        let session = o::CheckoutSession {
            url: Some(self.checkout_url(&id)),
            id,
            object: "checkout.session".into(),
            mode: "payment".into(),
            status: Status::Open,
            payment_status: Pay::Unpaid,
            amount_subtotal: total,
            amount_total: total,
            currency: currency.code().into(),
            customer: Some(req.customer.clone()),
            payment_intent: None,
            success_url: req.success_url.clone(),
            cancel_url: req.cancel_url.clone(),
            metadata: req.metadata.clone(),
            expires_at: req.expires_at,
            created: w.now,
            livemode: false,
            line_items: o::List { data: items, ..o::List::embedded(None) },
            payment_intent_data: o::PaymentIntentData {
                capture_method: req.capture_method,
                setup_future_usage: req.save_card.as_ref().map(|_| "off_session".to_string()),
            },
            custom_text: req
                .save_card
                .as_ref()
                .map(|s| o::CustomText { submit: Some(o::CustomTextMessage { message: s.consent_text.clone() }) }),
        };
        w.put(&session);
        Ok(Committed::Done(o::checkout_session_neutral(&session)))
    }

    /// The session's PaymentIntent that a new attempt confirms: the one of an earlier,
    /// unfinished attempt, or a new one for the session's customer, amount and metadata.
    fn session_payment_intent(
        &self,
        w: &mut Work,
        session: &mut o::CheckoutSession,
    ) -> Result<o::PaymentIntent, ProcessorError> {
        if let Some(id) = &session.payment_intent
            && let Some(pi) = w.get::<o::PaymentIntent>(id)?
            && matches!(pi.status, S::RequiresPaymentMethod | S::RequiresConfirmation | S::RequiresAction)
        {
            return Ok(pi);
        }
        let pi = o::PaymentIntent {
            id: new_id("pi"),
            object: "payment_intent".into(),
            amount: session.amount_total,
            amount_capturable: Some(0),
            amount_received: Some(0),
            currency: session.currency.clone(),
            customer: session.customer.clone(),
            payment_method: None,
            capture_method: session.payment_intent_data.capture_method,
            status: S::RequiresPaymentMethod,
            metadata: session.metadata.clone(),
            next_action: None,
            last_payment_error: None,
            latest_charge: None,
            charges: None,
            setup_future_usage: session.payment_intent_data.setup_future_usage.clone(),
            cancellation_reason: None,
            canceled_at: None,
            payment_method_types: vec!["card".into(), "us_bank_account".into()],
            created: w.now,
            livemode: false,
        };
        session.payment_intent = Some(pi.id.clone());
        // Written now so that the attempt's writes find it hanging off the session.
        w.put_under(&pi, &session.id);
        w.put(session);
        Ok(pi)
    }

    /// Pays a session with a card typed on the hosted page. A decline is
    /// [`ProcessorError::Payment`] (the session stays open for another card); a bad card is
    /// [`ProcessorError::InvalidRequest`] with a `param`.
    pub async fn pay_checkout_session(&self, id: &str, card: &CardInput) -> Result<CheckoutPayment, ProcessorError> {
        self.pay_checkout_session_consenting(id, card, false).await
    }

    /// [`TestProcessor::pay_checkout_session`] with the buyer's answer to the consent
    /// checkbox. A session that saves the card (`setup_future_usage`) is paid only with
    /// `consent`; without it nothing is charged (`consent_required`, `param` `consent`).
    pub async fn pay_checkout_session_consenting(
        &self,
        id: &str,
        card: &CardInput,
        consent: bool,
    ) -> Result<CheckoutPayment, ProcessorError> {
        self.check_available()?;
        let checked = card.check(self.now())?;
        call!(self, None, "", |w| self.pay_with_card_in(&mut w, id, checked, consent).await)
    }

    /// Pays a session by a simulated bank debit that settles later
    /// ([`TestProcessor::settle_async`]): the session completes unpaid, the PaymentIntent
    /// is `processing`.
    pub async fn pay_checkout_session_by_bank_debit(&self, id: &str) -> Result<CheckoutPayment, ProcessorError> {
        self.check_available()?;
        call!(self, None, "", |w| self.pay_by_bank_debit_in(&mut w, id).await)
    }

    /// Settles a session's bank debit: `succeeded` pays it
    /// (`checkout.session.async_payment_succeeded`), otherwise it fails
    /// (`checkout.session.async_payment_failed`). Returns the session as Stripe's JSON.
    pub async fn settle_async(&self, id: &str, succeeded: bool) -> Result<o::CheckoutSession, ProcessorError> {
        call!(self, None, "", |w| self.settle_async_in(&mut w, id, succeeded).await)
    }

    /// Completes (`approve`) or fails the 3-D Secure challenge of a PaymentIntent in
    /// `requires_action`. A checkout session it belongs to completes with it.
    pub async fn complete_authentication(
        &self,
        pi_id: &str,
        approve: bool,
    ) -> Result<AuthenticationResult, ProcessorError> {
        self.check_available()?;
        call!(self, None, "", |w| self.complete_authentication_in(&mut w, pi_id, approve).await)
    }

    /// The PaymentIntent a challenge page shows.
    pub async fn payment_intent_for_page(&self, pi_id: &str) -> Result<PaymentIntent, ProcessorError> {
        let rows = db::read_with_children(self.store.reader(), pi_id).await.map_err(db_failed)?;
        payments::neutral_from_rows(pi_id, &rows)
    }

    /// Where the 3-D Secure challenge of a PaymentIntent may send the browser: for a checkout
    /// session's PaymentIntent its success URL and its page, otherwise the `return_url` (the
    /// challenge page lets its forms end there).
    pub async fn authentication_redirects(&self, pi_id: &str) -> Result<Vec<String>, ProcessorError> {
        let rows = db::read_with_children(self.store.reader(), pi_id).await.map_err(db_failed)?;
        let row = rows
            .iter()
            .find(|r| r.id == pi_id && r.kind == "payment_intent")
            .ok_or_else(|| ProcessorError::NotFound(pi_id.to_string()))?;
        if let Some(session) = row.parent.as_deref().filter(|p| p.starts_with("cs_")) {
            let session = self.checkout_session(session).await?;
            return Ok(vec![session.success_redirect(), self.checkout_url(&session.id)]);
        }
        let pi: o::PaymentIntent = decode(row)?;
        Ok(pi.next_action.and_then(|a| a.redirect_to_url).and_then(|r| r.return_url).into_iter().collect())
    }

    /// Where a challenge that is already over sends the browser (a second click on its
    /// buttons): a checkout session's PaymentIntent goes where the first answer went — the
    /// success URL of the completed session, else back to its checkout page. `None` for a
    /// PaymentIntent without a session (its `return_url` is gone with the `next_action`).
    pub async fn after_authentication(&self, pi_id: &str) -> Result<Option<String>, ProcessorError> {
        let rows = db::read_with_children(self.store.reader(), pi_id).await.map_err(db_failed)?;
        let row = rows
            .iter()
            .find(|r| r.id == pi_id && r.kind == "payment_intent")
            .ok_or_else(|| ProcessorError::NotFound(pi_id.to_string()))?;
        let Some(session) = row.parent.as_deref().filter(|p| p.starts_with("cs_")) else { return Ok(None) };
        let session = self.checkout_session(session).await?;
        Ok(Some(match session.status {
            Status::Complete => session.success_redirect(),
            Status::Open | Status::Expired => self.checkout_url(&session.id),
        }))
    }

    /// Expires open sessions whose `expires_at` has passed (a bounded batch; safe on several
    /// servers at once). Returns how many it expired.
    pub async fn expire_overdue_sessions(&self) -> Result<usize, ProcessorError> {
        if !db::any_due(self.store.reader(), "checkout_session", self.now()).await.map_err(db_failed)? {
            return Ok(0);
        }
        call!(self, None, "", |w| self.expire_overdue_sessions_in(&mut w).await)
    }
}

/// The work of each hosted-page call (written in one statement at its end).
impl TestProcessor {
    async fn pay_with_card_in(
        &self,
        w: &mut Work,
        id: &str,
        checked: CheckedCard,
        consent: bool,
    ) -> Result<Committed<CheckoutPayment>, ProcessorError> {
        let mut session = load_session(w, id).await?;
        if let Some(e) = not_open(&session, w.now) {
            return Err(e);
        }
        if session.payment_intent_data.setup_future_usage.is_some() && !consent {
            return Err(consent_required());
        }
        let pi = self.session_payment_intent(w, &mut session)?;
        let pm = card_payment_method(w.now, checked.card, checked.exp_month, checked.exp_year);
        let return_url = Some(self.checkout_url(id));
        match self.attempt(w, pi, pm, false, false, return_url) {
            Committed::Done(pi) if pi.status == S::RequiresAction => {
                let url = pi.next_action.map(|a| a.redirect_url).unwrap_or_default();
                Ok(Committed::Done(CheckoutPayment::RequiresAction { redirect_url: url }))
            }
            Committed::Done(_) => {
                let redirect_url = complete(w, &mut session, Pay::Paid);
                Ok(Committed::Done(CheckoutPayment::Completed { redirect_url }))
            }
            Committed::Declined { error, payment_intent } => Ok(Committed::Declined { error, payment_intent }),
        }
    }

    async fn pay_by_bank_debit_in(&self, w: &mut Work, id: &str) -> Result<Committed<CheckoutPayment>, ProcessorError> {
        let mut session = load_session(w, id).await?;
        if let Some(e) = not_open(&session, w.now) {
            return Err(e);
        }
        if session.payment_intent_data.setup_future_usage.is_some() {
            return Err(invalid(
                "payment_method_unavailable",
                None,
                "This checkout saves a card for future payments; pay by card.",
            ));
        }
        if session.payment_intent_data.capture_method == CaptureMethod::Manual {
            return Err(invalid(
                "payment_method_unavailable",
                None,
                "Bank debits cannot be authorized for a later capture; pay by card.",
            ));
        }
        let mut pi = self.session_payment_intent(w, &mut session)?;
        let pm = o::PaymentMethod {
            id: new_id("pm"),
            object: "payment_method".into(),
            kind: "us_bank_account".into(),
            card: None,
            us_bank_account: Some(o::BankAccount { bank_name: "STRIPE TEST BANK".into(), last4: "6789".into() }),
            customer: None,
            created: w.now,
            metadata: Default::default(),
            livemode: false,
        };
        pi.status = S::Processing;
        pi.payment_method = Some(pm.id.clone());
        pi.last_payment_error = None;
        pi.next_action = None;
        w.put(&pm);
        w.put(&pi);
        w.emit("payment_intent.processing", &pi);
        let redirect_url = complete(w, &mut session, Pay::Unpaid);
        Ok(Committed::Done(CheckoutPayment::Completed { redirect_url }))
    }

    async fn settle_async_in(
        &self,
        w: &mut Work,
        id: &str,
        succeeded: bool,
    ) -> Result<Committed<o::CheckoutSession>, ProcessorError> {
        let mut session = load_session(w, id).await?;
        let pi = match &session.payment_intent {
            Some(pi) => w.get::<o::PaymentIntent>(pi)?,
            None => None,
        };
        let Some(mut pi) = pi.filter(|pi| session.status == Status::Complete && pi.status == S::Processing) else {
            return Err(invalid(
                "checkout_session_unexpected_state",
                None,
                "Only a completed session with a bank debit in processing can be settled.",
            ));
        };
        let pm_id = pi.payment_method.clone().unwrap_or_default();
        w.load(&[pm_id.as_str()], false, true).await?;
        let mut pm: o::PaymentMethod =
            w.get(&pm_id)?.ok_or_else(|| no_such("payment method", "payment_method", &pm_id))?;
        if succeeded {
            payments::succeed(w, &mut pi, &mut pm);
            session.payment_status = Pay::Paid;
            w.put(&session);
            w.emit("checkout.session.async_payment_succeeded", &session);
        } else {
            let error = cards::error(
                "payment_method_provider_decline",
                Some("insufficient_funds"),
                "The bank debit failed: the account has insufficient funds.",
            );
            let _ = payments::decline(w, &mut pi, &pm, error);
            w.put(&session);
            w.emit("checkout.session.async_payment_failed", &session);
        }
        Ok(Committed::Done(session))
    }

    async fn complete_authentication_in(
        &self,
        w: &mut Work,
        pi_id: &str,
        approve: bool,
    ) -> Result<Committed<AuthenticationResult>, ProcessorError> {
        // Find the session first, then read session and PaymentIntent in one statement (the
        // write checks both are unchanged, as a payment on the session page does).
        w.load(&[pi_id], false, false).await?;
        let session_id = w.parent_of(pi_id).filter(|p| p.starts_with("cs_"));
        let mut ids = vec![pi_id];
        ids.extend(session_id.as_deref());
        w.load(&ids, true, true).await?;
        let mut pi: o::PaymentIntent = w.get(pi_id)?.ok_or_else(|| ProcessorError::NotFound(pi_id.to_string()))?;
        if pi.status != S::RequiresAction {
            return Err(invalid(
                "payment_intent_unexpected_state",
                None,
                "This payment does not wait for authentication any more.",
            ));
        }
        let pm_id = pi.payment_method.clone().unwrap_or_default();
        w.load(&[pm_id.as_str()], false, true).await?;
        let mut pm: o::PaymentMethod =
            w.get(&pm_id)?.ok_or_else(|| no_such("payment method", "payment_method", &pm_id))?;
        let return_url =
            pi.next_action.as_ref().and_then(|a| a.redirect_to_url.as_ref()).and_then(|r| r.return_url.clone());
        let mut session = match &session_id {
            Some(id) => w.get::<o::CheckoutSession>(id)?,
            None => None,
        };
        if let Some(s) = &session
            && (s.status != Status::Open || s.payment_intent.as_deref() != Some(pi_id))
        {
            // Not the payment its session waits for (the session was paid or ended another
            // way): approving it would charge a second time.
            return Err(invalid(
                "payment_intent_unexpected_state",
                None,
                "This payment's checkout session no longer waits for it.",
            ));
        }
        let (payment_intent, redirect_url) = if approve {
            let neutral = payments::succeed(w, &mut pi, &mut pm);
            let redirect = match session.as_mut() {
                Some(s) => Some(complete(w, s, Pay::Paid)),
                None => return_url.map(|u: String| with_redirect_status(&u, pi_id, "succeeded")),
            };
            (neutral, redirect)
        } else {
            let neutral = match payments::decline(w, &mut pi, &pm, cards::authentication_failed()) {
                Committed::Declined { payment_intent, .. } => *payment_intent,
                Committed::Done(pi) => pi,
            };
            let redirect = match &session {
                Some(s) => Some(self.checkout_url(&s.id)),
                None => return_url.map(|u: String| with_redirect_status(&u, pi_id, "failed")),
            };
            (neutral, redirect)
        };
        Ok(Committed::Done(AuthenticationResult { payment_intent, redirect_url }))
    }

    async fn expire_overdue_sessions_in(&self, w: &mut Work) -> Result<Committed<usize>, ProcessorError> {
        let now = w.now;
        let ids = db::due(w.store().reader(), "checkout_session", now, EXPIRY_BATCH).await.map_err(db_failed)?;
        if ids.is_empty() {
            return Ok(Committed::Done(0));
        }
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        w.load(&refs, true, true).await?;
        let mut expired = 0;
        for id in &ids {
            if let Some(mut session) = w.get::<o::CheckoutSession>(id)?
                && session.status == Status::Open
                && session.expires_at <= now
            {
                expire_loaded(w, &mut session)?;
                expired += 1;
            }
        }
        Ok(Committed::Done(expired))
    }
}

/// Stripe appends the outcome to the `return_url` of a redirect.
fn with_redirect_status(return_url: &str, pi: &str, status: &str) -> String {
    match url::Url::parse(return_url) {
        Ok(mut u) => {
            u.query_pairs_mut().append_pair("payment_intent", pi).append_pair("redirect_status", status);
            u.to_string()
        }
        Err(_) => return_url.to_string(),
    }
}
