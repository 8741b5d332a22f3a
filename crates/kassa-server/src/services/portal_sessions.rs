//! The billing portal (Stripe's customer portal): a short-lived hosted page per session where
//! the customer sees their subscriptions, invoices and card, updates the card (3-D Secure
//! when the card asks for it) and cancels at the period end or takes that back.
//!
//! The URL's last segment, `<session>_secret_<random>`, is the credential: only the secret's
//! SHA-256 is stored, compared in constant time; a malformed, unknown, wrong or expired one
//! is the same 404. Every action is a form carrying a nonce and a token bound to the session
//! (an HMAC of the nonce under the URL's secret); each nonce acts once (`billing_portal_actions`),
//! so a double submit changes nothing more. Actions go through the services the admin API
//! uses (`subscriptions::cancel`/`resume`/`update`, `payment_methods::set_default`), so the
//! portal can do nothing the admin API refuses, and the same events are recorded.
//!
//! Updating the card (test processor): the card typed on the page is verified with an
//! authorization of [`VERIFY_AMOUNT`] that saves it for off-session use
//! (`setup_future_usage`), passing 3-D Secure when the card asks; the authorization is
//! voided at once and the card made the customer's default and every live subscription's
//! `default_payment_method`. The old card stays saved (as Stripe's portal leaves it).

use crate::error::{ApiError, ApiResult};
use crate::objects::billing::{Invoice, PaymentMethod};
use crate::objects::customer::Subscription;
use crate::services::subscriptions::{self, CancelInput, UpdateSubscriptionInput};
use crate::services::{customers, payment_methods, processor_keys, validate};
use crate::state::AppState;
use hmac::{Hmac, Mac};
use kassa_domain::ids::IdKind;
use kassa_processors::{
    CaptureMethod, CreatePaymentIntent, Metadata, PaymentIntent, PaymentIntentStatus, PaymentSource, ProcessorError,
};
use kassa_sandbox::{CardInput, TokenSource};
use kassa_store::catalog::{self, PriceRow};
use kassa_store::customers::CustomerRow;
use kassa_store::portal_sessions::{self as db, PortalSessionRow};
use kassa_store::sql::Page;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

const SECRET_MARK: &str = "_secret_";
/// How long a portal link opens the portal (Stripe's sessions last a few minutes to hours).
pub const LIFETIME_SECS: i64 = 3600;
/// The authorization (minor units) that verifies a new card; voided at once.
pub const VERIFY_AMOUNT: i64 = 100;
/// How many invoices the page lists, newest first.
const INVOICES_SHOWN: i64 = 24;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePortalSessionInput {
    /// Where the page's "Return" link goes (an http(s) URL of the merchant).
    pub return_url: Option<String>,
}

/// A customer's link to the billing portal (Stripe's `billing_portal.session`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BillingPortalSession {
    pub id: String,
    /// Always `billing_portal.session`.
    pub object: &'static str,
    pub customer: String,
    /// The portal page; its secret is the credential, shown only here: hand it to the
    /// customer (redirect them) and keep it nowhere else.
    pub url: String,
    pub return_url: Option<String>,
    pub created: i64,
    /// After this the URL opens nothing.
    pub expires_at: i64,
    pub livemode: bool,
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn random(len: usize) -> String {
    use rand::Rng;
    use rand::distributions::Alphanumeric;
    rand::thread_rng().sample_iter(&Alphanumeric).take(len).map(char::from).collect()
}

async fn customer(state: &AppState, id: &str) -> ApiResult<CustomerRow> {
    validate::id(IdKind::Customer, "customer", id)?;
    kassa_store::customers::get(state.store.reader(), id).await?.ok_or_else(|| ApiError::not_found("customer", id))
}

/// A new portal session of `customer_id`, open for [`LIFETIME_SECS`].
pub async fn create(
    state: &AppState,
    customer_id: &str,
    input: CreatePortalSessionInput,
) -> ApiResult<BillingPortalSession> {
    let c = customer(state, customer_id).await?;
    let return_url = match input.return_url.as_deref() {
        Some(u) => Some(validate::http_url("return_url", u)?),
        None => None,
    };
    let secret = random(32);
    let now = state.clock.now();
    let row = PortalSessionRow {
        id: IdKind::BillingPortalSession.new_id(),
        customer: c.id,
        secret_hash: hash(&secret),
        return_url,
        created: now,
        expires_at: now + LIFETIME_SECS,
        pending_payment_intent: None,
    };
    db::insert(state.store.writer(), &row).await?;
    Ok(BillingPortalSession {
        url: format!("{}/billing-portal/{}{SECRET_MARK}{secret}", state.public_url, row.id),
        id: row.id,
        object: "billing_portal.session",
        customer: row.customer,
        return_url: row.return_url,
        created: row.created,
        expires_at: row.expires_at,
        livemode: false,
    })
}

/// The live session whose page `token` is, with the secret; 404 alike for a malformed
/// token, an unknown session, a wrong secret and an expired session.
pub async fn find(state: &AppState, token: &str) -> ApiResult<(PortalSessionRow, String)> {
    let missing = || ApiError::not_found("billing portal session", "");
    let (id, secret) = token.split_once(SECRET_MARK).ok_or_else(missing)?;
    if !IdKind::BillingPortalSession.matches(id) || secret.is_empty() {
        return Err(missing());
    }
    let row = db::get(state.store.reader(), id).await?.ok_or_else(missing)?;
    let right = bool::from(hash(secret).as_bytes().ct_eq(row.secret_hash.as_bytes()));
    if right && row.expires_at > state.clock.now() { Ok((row, secret.to_string())) } else { Err(missing()) }
}

/// The token a form of the session carries with its `nonce`: HMAC-SHA-256 of the nonce
/// under the URL's secret, so only a page of this session can make it.
fn form_token(secret: &str, nonce: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(b"kassa-billing-portal-form:");
    mac.update(nonce.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A form's proof that the page of this session made it.
#[derive(Clone, Debug)]
pub struct FormProof {
    pub nonce: String,
    pub token: String,
}

impl FormProof {
    /// A fresh form of the session whose secret is `secret`.
    pub fn new(secret: &str) -> FormProof {
        let nonce = random(24);
        FormProof { token: form_token(secret, &nonce), nonce }
    }

    fn holds(&self, secret: &str) -> bool {
        let ok_nonce =
            !self.nonce.is_empty() && self.nonce.len() <= 64 && self.nonce.bytes().all(|b| b.is_ascii_alphanumeric());
        ok_nonce && bool::from(form_token(secret, &self.nonce).as_bytes().ct_eq(self.token.as_bytes()))
    }
}

/// One subscription as the page shows it.
pub struct PortalSubscription {
    pub subscription: Subscription,
    pub price: Option<PriceRow>,
}

/// What the page shows.
pub struct Portal {
    pub session: PortalSessionRow,
    pub subscriptions: Vec<PortalSubscription>,
    pub invoices: Vec<Invoice>,
    pub card: Option<PaymentMethod>,
    /// A fresh form for each action of the page.
    pub forms: FormSource,
    /// Whether cards can be typed here (the test processor).
    pub can_update_card: bool,
}

/// Makes the page's forms (each with its own nonce).
pub struct FormSource(String);

impl FormSource {
    pub fn form(&self) -> FormProof {
        FormProof::new(&self.0)
    }
}

/// The portal as the page shows it; a card update whose 3-D Secure challenge was passed
/// since is finished first (the browser comes back here from the challenge). The message
/// tells how such a card update ended.
pub async fn show(state: &AppState, token: &str) -> ApiResult<(Portal, Option<String>)> {
    let (mut session, secret) = find(state, token).await?;
    let mut message = None;
    if let Some(pi) = session.pending_payment_intent.clone() {
        message = finish_pending(state, &session, &pi).await?;
        session = find(state, token).await?.0;
    }
    let c = customer(state, &session.customer).await?;
    let page = Page { limit: 100, starting_after: None, ending_before: None };
    let mut subscriptions = Vec::new();
    for s in subscriptions::list(state, Some(&c.id), None, &page).await?.data {
        let price = catalog::get_price(state.store.reader(), &s.price).await?;
        subscriptions.push(PortalSubscription { subscription: s, price });
    }
    let page = Page { limit: INVOICES_SHOWN, starting_after: None, ending_before: None };
    let invoices = crate::services::invoices::list(state, None, Some(&c.id), None, &page).await?.data;
    let card = match &c.default_payment_method {
        Some(_) => payment_methods::list(state, &c.id).await?.into_iter().find(|m| m.default),
        None => None,
    };
    let portal = Portal {
        session,
        subscriptions,
        invoices,
        card,
        forms: FormSource(secret),
        can_update_card: state.test_processor.is_some(),
    };
    Ok((portal, message))
}

/// What an action of the page came to.
pub enum Acted {
    /// Done (or done already by the same form, submitted twice).
    Done,
    /// To the test processor's 3-D Secure challenge, which returns to the page.
    Authenticate(String),
    /// Refused: the page says why.
    Refused(String),
    /// What was typed is no valid card (a bad number or expiry); nothing was tried.
    Invalid(String),
}

/// A session good for a form: live, and the form made by its page. The form's nonce is
/// taken, so false when it acted already.
async fn act(state: &AppState, token: &str, proof: &FormProof, action: &str) -> ApiResult<Option<PortalSessionRow>> {
    let (session, secret) = find(state, token).await?;
    if !proof.holds(&secret) {
        return Err(ApiError::PermissionDenied("This form does not belong to this billing portal session.".into()));
    }
    let first = db::claim_form(state.store.writer(), &session.id, &proof.nonce, action, state.clock.now()).await?;
    Ok(first.then_some(session))
}

/// A subscription of the session's customer; another customer's is the same 404 as none.
async fn own_subscription(state: &AppState, session: &PortalSessionRow, id: &str) -> ApiResult<Subscription> {
    let missing = || ApiError::not_found("subscription", id);
    if !IdKind::Subscription.matches(id) {
        return Err(missing());
    }
    let s = subscriptions::get(state, id).await?;
    if s.customer == session.customer { Ok(s) } else { Err(missing()) }
}

/// Cancels the subscription at the end of its period (`at_period_end`), or takes that back
/// (`resume`), through the same services as `/admin/subscriptions/{id}/cancel` and `/resume`.
pub async fn cancel_at_period_end(
    state: &AppState,
    token: &str,
    proof: &FormProof,
    subscription: &str,
    cancel: bool,
) -> ApiResult<Acted> {
    // The subscription is checked before the form is taken: a form naming another
    // customer's subscription uses up nothing.
    let (session, _) = find(state, token).await?;
    own_subscription(state, &session, subscription).await?;
    let action = if cancel { "cancel_at_period_end" } else { "resume" };
    let Some(_) = act(state, token, proof, action).await? else { return Ok(Acted::Done) };
    let done = if cancel {
        subscriptions::cancel(state, subscription, CancelInput { at_period_end: Some(true) }, None).await
    } else {
        subscriptions::resume(state, subscription, None).await
    };
    match done {
        Ok(_) => Ok(Acted::Done),
        Err(ApiError::Conflict { message, .. }) | Err(ApiError::InvalidRequest { message, .. }) => {
            Ok(Acted::Refused(message))
        }
        Err(e) => Err(e),
    }
}

/// The currency the card is verified in: the customer's latest subscription's, else USD.
async fn verify_currency(state: &AppState, customer: &str) -> ApiResult<String> {
    let page = Page { limit: 1, starting_after: None, ending_before: None };
    let latest = subscriptions::list(state, Some(customer), None, &page).await?.data.into_iter().next();
    Ok(match latest {
        Some(s) => catalog::get_price(state.store.reader(), &s.price).await?.map(|p| p.currency),
        None => None,
    }
    .unwrap_or_else(|| "usd".into()))
}

/// Updates the customer's card with one typed on the page (test processor).
pub async fn update_card(state: &AppState, token: &str, proof: &FormProof, card: CardInput) -> ApiResult<Acted> {
    let Some(tp) = state.test_processor.clone() else {
        return Ok(Acted::Refused("Cards cannot be entered here with this payment processor.".into()));
    };
    let Some(session) = act(state, token, proof, "update_card").await? else { return Ok(Acted::Done) };
    let source = match tp.create_confirmation_token(&TokenSource::Card(card)).await {
        Ok(t) => t["id"].as_str().unwrap_or_default().to_string(),
        // A card the bank refuses (declined when the token is made) against a card mistyped.
        Err(ProcessorError::Payment { error, .. }) if error.code == "card_declined" => {
            return Ok(Acted::Refused(error.message));
        }
        Err(ProcessorError::Payment { error, .. }) => return Ok(Acted::Invalid(error.message)),
        Err(ProcessorError::InvalidRequest { message, .. }) => return Ok(Acted::Invalid(message)),
        Err(e) => return Err(e.into()),
    };
    let processor_customer = customers::ensure_processor_customer(state, &session.customer).await?;
    let mut metadata = Metadata::new();
    metadata.insert("kassa_billing_portal_session".into(), session.id.clone());
    metadata.insert("kassa_customer_id".into(), session.customer.clone());
    let req = CreatePaymentIntent {
        amount: VERIFY_AMOUNT,
        currency: verify_currency(state, &session.customer).await?,
        customer: processor_customer,
        metadata,
        capture_method: CaptureMethod::Manual,
        setup_future_usage: true,
        confirm: Some(PaymentSource::ConfirmationToken(source)),
        off_session: false,
        return_url: Some(format!("{}/billing-portal/{token}", state.public_url)),
    };
    let key = processor_keys::verify_card_in_portal(&session.id, &proof.nonce);
    let pi = match state.processor.create_payment_intent(&req, &key).await {
        Ok(pi) => pi,
        Err(ProcessorError::Payment { error, .. }) => return Ok(Acted::Refused(error.message)),
        Err(ProcessorError::InvalidRequest { message, .. }) => return Ok(Acted::Refused(message)),
        Err(e) => return Err(e.into()),
    };
    match pi.status {
        PaymentIntentStatus::RequiresAction => {
            db::set_pending(state.store.writer(), &session.id, &pi.id).await?;
            match pi.next_action.as_ref().map(|a| a.redirect_url.clone()) {
                Some(url) => Ok(Acted::Authenticate(url)),
                None => Ok(Acted::Refused("The card asks for an authentication this page cannot show.".into())),
            }
        }
        s if s.is_paid_or_authorized() => {
            save_card(state, &session, &pi).await?;
            Ok(Acted::Done)
        }
        _ => Ok(Acted::Refused(
            pi.last_payment_error.map(|e| e.message).unwrap_or_else(|| "The card was declined.".into()),
        )),
    }
}

/// Finishes the card update waiting for 3-D Secure, when the challenge is answered: the
/// page's message about it.
async fn finish_pending(state: &AppState, session: &PortalSessionRow, pi_id: &str) -> ApiResult<Option<String>> {
    let pi = state.processor.retrieve_payment_intent(pi_id).await?;
    if pi.status == PaymentIntentStatus::RequiresAction {
        return Ok(None); // the challenge is still open
    }
    if !db::take_pending(state.store.writer(), &session.id, pi_id).await? {
        return Ok(None); // another page load finished it
    }
    if pi.status.is_paid_or_authorized() {
        if let Err(e) = save_card(state, session, &pi).await {
            db::restore_pending(state.store.writer(), &session.id, pi_id).await?;
            return Err(e);
        }
        return Ok(Some("Your card is updated.".into()));
    }
    Ok(Some(
        pi.last_payment_error
            .map(|e| e.message)
            .unwrap_or_else(|| "The card's authentication failed; your card is unchanged.".into()),
    ))
}

/// The verified card becomes the default: the authorization is voided, the card made the
/// customer's default and every live subscription's payment method.
async fn save_card(state: &AppState, session: &PortalSessionRow, pi: &PaymentIntent) -> ApiResult<()> {
    let pm = pi.payment_method.clone().ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!("authorized PaymentIntent {} has no payment method", pi.id))
    })?;
    if pi.status == PaymentIntentStatus::RequiresCapture {
        state.processor.cancel_payment_intent(&pi.id, &processor_keys::void_card_verification(&pi.id)).await?;
    }
    payment_methods::set_default(state, &session.customer, &pm).await?;
    let page = Page { limit: 100, starting_after: None, ending_before: None };
    for s in subscriptions::list(state, Some(&session.customer), None, &page).await?.data {
        if subscriptions::has_ended(&s.status) || s.default_payment_method.as_deref() == Some(pm.as_str()) {
            continue;
        }
        let input =
            UpdateSubscriptionInput { items: None, proration_behavior: None, default_payment_method: Some(pm.clone()) };
        subscriptions::update(state, &s.id, input).await?;
    }
    Ok(())
}
