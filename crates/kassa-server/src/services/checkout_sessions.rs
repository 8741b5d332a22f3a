//! Hosted checkout (like Stripe Checkout): Kassa prices the lines, the processor hosts the
//! page (the test processor's page is served by Kassa itself), and completion arrives by
//! webhook — or when the buyer lands on the success page and the storefront reads the
//! session, which asks the processor. Both end in [`complete`], exactly once.

use crate::error::{ApiError, ApiResult};
use crate::objects::commerce::{CheckoutSession, SessionLine};
use crate::services::access::Caller;
use crate::services::carts::may_access;
use crate::services::event_dedupe::{self, Record};
use crate::services::{customers, payments, processor_keys, subscriptions, validate};
use crate::state::AppState;
use kassa_domain::client_secret;
use kassa_domain::ids::IdKind;
use kassa_domain::lifecycle::cart::CartStatus;
use kassa_domain::lifecycle::checkout_session::{
    SessionEffect, SessionPaymentStatus, SessionPurpose, SessionReport, SessionStatus, transition,
};
use kassa_domain::lifecycle::payment::Purpose;
use kassa_processors::{
    CaptureMethod, CheckoutLine, CheckoutPaymentStatus, CheckoutSessionStatus, CreateCheckoutSession, Event, Metadata,
    PaymentIntentStatus, SaveCard,
};
use kassa_store::checkout_sessions::{self as db, SessionRow};
use kassa_store::payments::{self as payment_db, PaymentRow};
use kassa_store::{carts, events};
use serde::Deserialize;
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSessionInput {
    /// Where the buyer lands after paying; `{CHECKOUT_SESSION_ID}` is replaced by the session
    /// id, else `session_id=…` is appended. `client_secret=…` (the session's) is appended too,
    /// so that the page can read the session (`GET /store/checkout-sessions/{id}`).
    #[schema(max_length = 2048, pattern = "^https?://[a-z0-9.-]+(/.*)?$")]
    pub success_url: String,
    /// Where the buyer goes on "back".
    #[schema(max_length = 2048, pattern = "^https?://[a-z0-9.-]+(/.*)?$")]
    pub cancel_url: Option<String>,
}

/// `success_url` with the session id, as Stripe Checkout does with its template.
pub fn with_session_id(url: &str, id: &str) -> String {
    if url.contains("{CHECKOUT_SESSION_ID}") {
        return url.replace("{CHECKOUT_SESSION_ID}", id);
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}session_id={id}")
}

/// The success URL the processor sends the buyer to: with the session id (see
/// [`with_session_id`]) and the session's client secret, so that the landing page can read the
/// session with the publishable key alone — as Stripe's redirects carry
/// `payment_intent_client_secret`. Kassa keeps the URL without the secret.
pub fn success_redirect(url: &str, id: &str, secret: &str) -> String {
    let url = with_session_id(url, id);
    let (base, fragment) = match url.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (url.as_str(), None),
    };
    let sep = if base.contains('?') { '&' } else { '?' };
    // The secret is letters, digits and `_`: nothing to escape.
    let mut out = format!("{base}{sep}client_secret={secret}");
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// What a new session is for.
pub struct SessionSpec {
    pub purpose: SessionPurpose,
    pub customer: String,
    pub cart: Option<(String, i64)>,
    pub credits: Option<i64>,
    pub currency: String,
    pub lines: Vec<SessionLine>,
    pub success_url: String,
    pub cancel_url: Option<String>,
}

/// What a subscription session starts once paid: a recurring price × quantity, the card saved
/// with the buyer's consent to `consent_text`.
pub struct PlanSpec {
    pub price: String,
    pub quantity: i64,
    pub consent_text: String,
}

/// Creates the processor's session and Kassa's record of it.
pub async fn open(state: &AppState, spec: SessionSpec) -> ApiResult<CheckoutSession> {
    open_for(state, spec, None).await
}

/// [`open`] for a session in subscription mode: a payment that saves the card for the
/// subscription's renewals (`setup_future_usage=off_session`, never the processor's own
/// billing), captured at once.
pub async fn open_subscription(state: &AppState, spec: SessionSpec, plan: PlanSpec) -> ApiResult<CheckoutSession> {
    open_for(state, spec, Some(plan)).await
}

async fn open_for(state: &AppState, spec: SessionSpec, plan: Option<PlanSpec>) -> ApiResult<CheckoutSession> {
    let processor_customer = customers::ensure_processor_customer(state, &spec.customer).await?;
    let now = state.clock.now();
    let id = IdKind::CheckoutSession.new_id();
    let (secret, secret_hash) = client_secret::generate(&id);
    let expires_at = now + state.settings.checkout.session_ttl_hours as i64 * 3600;
    let amount_total: i64 = spec.lines.iter().map(|l| l.unit_amount * l.quantity).sum();
    let mut metadata = Metadata::new();
    metadata.insert("kassa_checkout_session".into(), id.clone());
    metadata.insert("kassa_purpose".into(), spec.purpose.as_str().into());
    metadata.insert("kassa_customer_id".into(), spec.customer.clone());
    if let Some((cart, version)) = &spec.cart {
        metadata.insert("kassa_cart_id".into(), cart.clone());
        metadata.insert("kassa_cart_version".into(), version.to_string());
    }
    if let Some(c) = spec.credits {
        metadata.insert("kassa_credits".into(), c.to_string());
    }
    if let Some(plan) = &plan {
        metadata.insert("kassa_price".into(), plan.price.clone());
        metadata.insert("kassa_quantity".into(), plan.quantity.to_string());
    }
    let manual =
        spec.purpose == SessionPurpose::Cart && state.settings.checkout.capture == crate::config::CaptureMode::Manual;
    let req = CreateCheckoutSession {
        customer: processor_customer,
        currency: spec.currency.clone(),
        lines: spec
            .lines
            .iter()
            .map(|l| CheckoutLine { name: l.name.clone(), unit_amount: l.unit_amount, quantity: l.quantity })
            .collect(),
        success_url: success_redirect(&spec.success_url, &id, &secret),
        cancel_url: spec.cancel_url.clone(),
        metadata,
        capture_method: if manual { CaptureMethod::Manual } else { CaptureMethod::Automatic },
        expires_at,
        save_card: plan.as_ref().map(|p| SaveCard { consent_text: p.consent_text.clone() }),
    };
    let processor_session = state.processor.create_checkout_session(&req, &processor_keys::open_session(&id)).await?;
    let row = SessionRow {
        id,
        purpose: spec.purpose,
        cart: spec.cart.as_ref().map(|c| c.0.clone()),
        cart_version: spec.cart.as_ref().map(|c| c.1),
        customer: spec.customer,
        credits: spec.credits,
        currency: spec.currency,
        amount_total,
        lines: serde_json::to_string(&spec.lines).expect("lines serialize"),
        status: SessionStatus::Open,
        payment_status: SessionPaymentStatus::Unpaid,
        success_url: spec.success_url,
        cancel_url: spec.cancel_url,
        processor_session: Some(processor_session.id),
        url: processor_session.url,
        payment: None,
        order_id: None,
        expires_at,
        created: now,
        updated: now,
        client_secret_hash: Some(secret_hash),
        price: plan.as_ref().map(|p| p.price.clone()),
        quantity: plan.as_ref().map(|p| p.quantity),
        subscription: None,
    };
    let mut tx = state.store.begin().await?;
    db::insert(&mut tx, &row).await?;
    kassa_store::events::record(&mut tx, "checkout.session.created", &row.id, &CheckoutSession::from(row.clone()), now)
        .await?;
    tx.commit().await?;
    // Shown once, in this answer only (never in events).
    Ok(CheckoutSession { client_secret: Some(secret), ..row.into() })
}

/// `POST /store/carts/{id}/checkout-sessions`.
pub async fn for_cart(
    state: &AppState,
    shopper: Caller<'_>,
    cart_id: &str,
    input: CreateSessionInput,
) -> ApiResult<CheckoutSession> {
    let success_url = validate::http_url("success_url", &input.success_url)?;
    let cancel_url = input.cancel_url.as_deref().map(|u| validate::http_url("cancel_url", u)).transpose()?;
    validate::id(IdKind::Cart, "cart", cart_id)?;
    let cart = carts::get(state.store.reader(), cart_id)
        .await?
        .filter(|c| may_access(c, shopper))
        .ok_or_else(|| ApiError::not_found("cart", cart_id))?;
    if cart.status != CartStatus::Open {
        return Err(ApiError::conflict("cart_not_open", format!("This cart is {}.", cart.status)));
    }
    let lines = carts::lines(state.store.reader(), cart_id).await?;
    if lines.is_empty() || cart.total <= 0 {
        return Err(ApiError::conflict("cart_empty", "The cart has nothing to pay for."));
    }
    let customer = cart
        .customer
        .clone()
        .ok_or_else(|| ApiError::invalid("email", "Set the cart's email (guests) or sign the customer in first."))?;
    let mut session_lines: Vec<SessionLine> = lines
        .iter()
        .map(|l| SessionLine { name: l.name.clone(), unit_amount: l.unit_amount, quantity: l.quantity })
        .collect();
    if cart.shipping_total > 0 {
        session_lines.push(SessionLine { name: "Shipping".into(), unit_amount: cart.shipping_total, quantity: 1 });
    }
    // Inclusive tax is inside the prices already; exclusive tax is its own line.
    let lines_sum: i64 = session_lines.iter().map(|l| l.unit_amount * l.quantity).sum();
    if cart.total > lines_sum {
        session_lines.push(SessionLine { name: "Tax".into(), unit_amount: cart.total - lines_sum, quantity: 1 });
    }
    open(
        state,
        SessionSpec {
            purpose: SessionPurpose::Cart,
            customer,
            cart: Some((cart.id.clone(), cart.version)),
            credits: None,
            currency: cart.currency,
            lines: session_lines,
            success_url,
            cancel_url,
        },
    )
    .await
}

/// `GET /store/checkout-sessions/{id}`: the session, brought up to date with the processor
/// while it is open (the buyer may land on the success page before the webhook arrives).
/// Its customer (signed in) reaches it, or whoever presents its client secret or its cart's.
pub async fn get_synced(state: &AppState, caller: Caller<'_>, id: &str) -> ApiResult<CheckoutSession> {
    validate::id(IdKind::CheckoutSession, "checkout_session", id)?;
    let found = db::get_with_cart_secret(state.store.reader(), id)
        .await?
        .filter(|f| {
            let hashes = [f.session.client_secret_hash.as_deref(), f.cart_secret_hash.as_deref()];
            caller.may_reach(Some(&f.session.customer), &hashes)
        })
        .ok_or_else(|| ApiError::not_found("checkout_session", id))?;
    let row = found.session;
    if row.status == SessionStatus::Open || row.payment_status == SessionPaymentStatus::Unpaid {
        sync(state, &row, None).await?;
    }
    let row = db::get(state.store.reader(), id).await?.ok_or_else(|| ApiError::not_found("checkout_session", id))?;
    Ok(row.into())
}

/// Reads the processor's session and applies it, all in one transaction with the event's
/// dedupe record: the session's status, the payment row for the money that came in, and what
/// that payment buys (the cart's order, or the credits).
pub async fn sync(state: &AppState, row: &SessionRow, event: Option<&Event>) -> ApiResult<()> {
    let Some(processor_id) = &row.processor_session else { return Ok(()) };
    let ps = state.processor.retrieve_checkout_session(processor_id).await?;
    let paid = ps.payment_status == CheckoutPaymentStatus::Paid;
    let intent = match (&ps.payment_intent, paid) {
        (Some(pi), true) => Some(state.processor.retrieve_payment_intent(pi).await?),
        _ => None,
    };
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    if let Some(ev) = event
        && !event_dedupe::first_delivery(Record::WithEffects(&mut tx), ev, now).await?
    {
        return Ok(());
    }
    // Lock order: cart, then session, then payment.
    if let Some(c) = &row.cart {
        carts::lock(&mut tx, c).await?;
    }
    let mut s = db::lock(&mut tx, &row.id).await?.ok_or_else(|| ApiError::not_found("checkout_session", &row.id))?;
    let secured = intent
        .as_ref()
        .filter(|pi| matches!(pi.status, PaymentIntentStatus::Succeeded | PaymentIntentStatus::RequiresCapture));
    let reported = match ps.status {
        CheckoutSessionStatus::Open => SessionStatus::Open,
        CheckoutSessionStatus::Complete => SessionStatus::Complete,
        CheckoutSessionStatus::Expired => SessionStatus::Expired,
    };
    let t = transition(s.state(), SessionReport { status: reported, money_secured: secured.is_some() });
    s.set_state(t.next);
    for effect in &t.effects {
        if let (SessionEffect::ApplyPayment, Some(pi)) = (effect, secured) {
            if s.purpose == SessionPurpose::Subscription {
                start_subscription(&mut tx, state, &mut s, pi).await?;
                continue;
            }
            let payment_id = match &s.payment {
                Some(id) => id.clone(),
                None => {
                    let attempt = match (&s.cart, s.cart_version) {
                        (Some(c), Some(v)) => next_attempt(&mut tx, c, v).await?,
                        _ => 1,
                    };
                    let p = session_payment(state, &s, pi, attempt, now)?;
                    payment_db::insert(&mut tx, &p).await?;
                    s.payment = Some(p.id.clone());
                    p.id
                }
            };
            let p = payments::apply_in(&mut tx, &payment_id, pi, now).await?;
            if s.order_id.is_none() {
                s.order_id = kassa_store::orders::by_payment(tx.conn(), &p.id).await?.map(|o| o.id);
            }
        }
    }
    s.updated = now;
    db::save(&mut tx, &s).await?;
    for effect in &t.effects {
        if let SessionEffect::Record(kind) = effect {
            events::record(&mut tx, kind, &s.id, &CheckoutSession::from(s.clone()), now).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// The payment row for money that came in through a hosted session.
fn session_payment(
    state: &AppState,
    s: &SessionRow,
    pi: &kassa_processors::PaymentIntent,
    attempt: i64,
    now: i64,
) -> ApiResult<PaymentRow> {
    let purpose = match s.purpose {
        SessionPurpose::Cart => Purpose::Order,
        SessionPurpose::Credits => Purpose::Credits,
        SessionPurpose::Subscription => {
            return Err(ApiError::Internal(anyhow::anyhow!(
                "session {}: a subscription's money is its invoice's",
                s.id
            )));
        }
    };
    Ok(PaymentRow {
        cart: s.cart.clone(),
        cart_version: s.cart_version,
        attempt,
        checkout_session: Some(s.id.clone()),
        processor_payment_intent: Some(pi.id.clone()),
        ..PaymentRow::pending(purpose, &s.customer, s.amount_total, &s.currency, state.processor.name(), now)
    })
}

/// The money of a subscription session came in: the subscription starts with its first
/// invoice paid by this PaymentIntent (no second charge), once — the session is locked in
/// `tx` and names its subscription from then on, so a repeated report (webhooks, the success
/// page, a double submit) finds it and does nothing. The saved card becomes the
/// subscription's payment method, and the customer's default — except for a guest customer
/// that has one already: a guest is only an email, which anyone may type, so a checkout
/// never changes what that customer's other subscriptions are charged to.
async fn start_subscription(
    tx: &mut kassa_store::Tx,
    state: &AppState,
    s: &mut SessionRow,
    pi: &kassa_processors::PaymentIntent,
) -> ApiResult<()> {
    if s.subscription.is_some() {
        return Ok(());
    }
    let (Some(price), Some(quantity)) = (s.price.clone(), s.quantity) else {
        return Err(ApiError::Internal(anyhow::anyhow!("subscription session {} has no price", s.id)));
    };
    if pi.amount != s.amount_total || !pi.currency.eq_ignore_ascii_case(&s.currency) {
        return Err(ApiError::Internal(anyhow::anyhow!(
            "session {}: the PaymentIntent {} is for {} {}, the session for {} {}",
            s.id,
            pi.id,
            pi.amount,
            pi.currency,
            s.amount_total,
            s.currency
        )));
    }
    let customer = kassa_store::customers::get(tx.conn(), &s.customer)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("session {}: customer missing", s.id)))?;
    let now = crate::services::invoices::customer_now(state, tx, &customer.id).await?;
    let paid = subscriptions::PaidCheckout {
        customer: &customer,
        price: &price,
        quantity,
        payment_method: pi.payment_method.clone(),
        payment_intent: &pi.id,
        amount: s.amount_total,
    };
    let sub = subscriptions::start_paid_by_checkout(tx, &state.public_url, paid, now).await?;
    if let Some(pm) = &pi.payment_method
        && (!customer.guest || customer.default_payment_method.is_none())
    {
        kassa_store::billing::set_default_payment_method(tx, &customer.id, Some(pm), state.clock.now()).await?;
    }
    s.subscription = Some(sub.id);
    Ok(())
}

async fn next_attempt(tx: &mut kassa_store::Tx, cart: &str, version: i64) -> ApiResult<i64> {
    let latest = payment_db::latest_for_cart(tx.conn(), cart).await?;
    Ok(latest.filter(|p| p.cart_version == Some(version)).map(|p| p.attempt + 1).unwrap_or(1))
}

/// A `checkout.session.*` event: find the session, read the processor's state, apply it.
pub async fn on_event(state: &AppState, event: &Event) -> ApiResult<()> {
    let Some(processor_id) = event.object_id() else { return Ok(()) };
    let row = match db::by_processor_session(state.store.reader(), processor_id).await? {
        Some(r) => Some(r),
        None => match event.metadata("kassa_checkout_session") {
            Some(id) => db::get(state.store.reader(), id).await?,
            None => None,
        },
    };
    match row {
        Some(row) => sync(state, &row, Some(event)).await,
        None => {
            // Not one of ours: remember we saw it.
            event_dedupe::first_delivery(Record::Alone(&state.store), event, state.clock.now()).await?;
            Ok(())
        }
    }
}

/// What Kassa's hosted page shows beside the processor's session (as Stripe Checkout shows the
/// account's name and the customer's details): the merchant, what the session buys, the buyer.
#[derive(Debug, Clone, Default)]
pub struct PageSummary {
    pub merchant_name: Option<String>,
    /// `credits` for a top-up: how many credits it buys.
    pub credits: Option<i64>,
    pub email: Option<String>,
    pub shipping_address: Option<crate::objects::commerce::Address>,
}

/// The summary of the Kassa session behind a processor session (the hosted page's id). A
/// processor session Kassa does not know (made through the test processor's API directly) has
/// the merchant's name and nothing else.
pub async fn page_summary(state: &AppState, processor_session: &str) -> ApiResult<PageSummary> {
    let mut summary =
        PageSummary { merchant_name: state.settings.checkout.merchant_name.clone(), ..PageSummary::default() };
    let db = state.store.reader();
    let Some(session) = db::by_processor_session(db, processor_session).await? else { return Ok(summary) };
    summary.credits = session.credits;
    match &session.cart {
        Some(cart_id) => {
            if let Some(cart) = carts::get(db, cart_id).await? {
                summary.email = cart.email;
                summary.shipping_address = cart.shipping_address.as_deref().and_then(|a| serde_json::from_str(a).ok());
            }
        }
        None => {
            summary.email =
                kassa_store::customers::get(state.store.reader(), &session.customer).await?.and_then(|c| c.email);
        }
    }
    Ok(summary)
}
