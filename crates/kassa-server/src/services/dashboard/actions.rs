//! What a dashboard form does. Each action:
//! 1. asks the user's role ([`Role::require`]) — a forged form is refused like a hidden button;
//! 2. runs the same service function as the admin API (so the dashboard can do nothing the
//!    API forbids: a refund above what was captured is refused there);
//! 3. runs once per form: the form carries a fresh idempotency key, claimed like the admin
//!    API's `Idempotency-Key` (scope `dashboard:<user id>`), so a double click or a reload of
//!    the POST does the work once and the second answer says it was done;
//! 4. is recorded as an event `dashboard.<action>` naming the user, the object and the
//!    outcome (the audit trail). The record of a success commits in the transaction of the
//!    change itself (the service writes it, see [`crate::services::audit`]), so no crash can
//!    leave a refund that nobody is recorded as having made; an action whose use case takes no
//!    record yet, or that changed nothing, is recorded right after it. A failure is recorded
//!    as `dashboard.<action>.failed`; a refund the processor refuses after its reservation
//!    committed has both events (it was made, then failed).

use crate::error::{ApiError, ApiResult};
use crate::objects::commerce::{Order, Refund};
use crate::objects::credits::CreditEntry;
use crate::objects::customer::Subscription;
use crate::services::audit::AuditRecord;
use crate::services::dashboard::audit::{self, audit};
use crate::services::dashboard::{Permission, Role, SignedIn};
use crate::services::idempotency::{self, Outcome};
use crate::services::keys::{self, KeyKind, NewKey};
use crate::services::orders::{self, CaptureInput, RefundInput};
use crate::services::subscriptions::{self, CancelInput};
use crate::services::{credits, validate};
use crate::state::AppState;
use kassa_domain::currency::Currency;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::future::Future;

/// What an action answered.
pub enum Done<T> {
    /// It ran now.
    Now(T),
    /// The same form was submitted before: the work ran then (or is running), not again.
    Before,
}

/// Runs `work` once per (user, form key); the fingerprint ties the key to one action on one
/// object, so a key copied into another form is refused.
async fn once<T, Fut>(
    state: &AppState,
    user: &SignedIn,
    form_key: &str,
    fingerprint: &str,
    work: Fut,
) -> ApiResult<Done<T>>
where
    T: Serialize,
    Fut: Future<Output = ApiResult<T>>,
{
    let key = form_key.trim();
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::invalid("idempotency_key", "The form has no valid idempotency key; reload the page."));
    }
    let scope = format!("dashboard:{}", user.user_id);
    let fingerprint = hex::encode(Sha256::digest(fingerprint.as_bytes()));
    let now = state.clock.now();
    let mut tx = idempotency::begin(state).await?;
    match idempotency::claim(&mut tx, &scope, key, &fingerprint, now).await {
        Ok(Outcome::Run) => {}
        Ok(Outcome::Replay { .. }) | Err(ApiError::IdempotencyKeyInUse) => return Ok(Done::Before),
        Err(e) => return Err(e),
    }
    tx.commit().await?;
    let outcome = work.await;
    if outcome.is_ok() {
        // Crash tests: the action committed, nothing after it did.
        crate::failpoint::hit("dashboard.after_action").await;
    }
    match outcome {
        Ok(value) => {
            let body = serde_json::to_string(&value).map_err(|e| ApiError::Internal(e.into()))?;
            idempotency::complete(state, &scope, key, 200, &body).await?;
            Ok(Done::Now(value))
        }
        Err(e) if e.status().is_server_error() || e.is_transient_conflict() => {
            idempotency::release(state, &scope, key).await?;
            Err(e)
        }
        Err(e) => {
            let body = serde_json::to_string(&e.body()).map_err(|e| ApiError::Internal(e.into()))?;
            idempotency::complete(state, &scope, key, e.status().as_u16(), &body).await?;
            Err(e)
        }
    }
}

/// One submitted form: what it needs, what it is called in the audit trail, on which object.
struct Action<'a> {
    permission: Permission,
    name: &'a str,
    object: &'a str,
    sub: Submitted<'a>,
    detail: Value,
    /// The record of its success, for the use case to commit with its change.
    record: AuditRecord,
}

impl<'a> Action<'a> {
    fn new(
        user: &SignedIn,
        permission: Permission,
        name: &'a str,
        object: &'a str,
        sub: Submitted<'a>,
        detail: Value,
    ) -> Action<'a> {
        let record = audit::record(user, name, object, json!({"params": detail, "outcome": "succeeded"}));
        Action { permission, name, object, sub, detail, record }
    }

    /// The record a use case writes in the transaction of its change.
    fn audit(&self) -> Option<&AuditRecord> {
        Some(&self.record)
    }
}

/// What every action form sends besides its fields.
#[derive(Clone, Copy)]
pub struct Submitted<'a> {
    /// The form's idempotency key (fresh per rendered form).
    pub key: &'a str,
    /// Whether the person ticked the confirmation (forms without one pass `true`).
    pub confirmed: bool,
}

/// Runs a permitted action once and records it (its failure too, with the error's code).
async fn act<T, Fut>(state: &AppState, user: &SignedIn, a: &Action<'_>, work: Fut) -> ApiResult<Done<T>>
where
    T: Serialize,
    Fut: Future<Output = ApiResult<T>>,
{
    let (permission, action, object, sub, detail, record) =
        (a.permission, a.name, a.object, a.sub, &a.detail, &a.record);
    if let Err(e) = user.role.require(permission) {
        audit(state, user, &format!("{action}.refused"), object, json!({"params": detail, "reason": "role"})).await?;
        return Err(e);
    }
    if !sub.confirmed {
        return Err(ApiError::invalid("confirm", "Tick the confirmation box to go ahead."));
    }
    let fingerprint = format!("{action} {object} {detail}");
    let result = once(state, user, sub.key, &fingerprint, work).await;
    match &result {
        Ok(Done::Now(_)) => audit::commit(state, record).await?,
        Ok(Done::Before) => {}
        Err(e) => {
            let outcome = json!({"params": detail, "outcome": "failed", "error": e.to_string()});
            audit(state, user, &format!("{action}.failed"), object, outcome).await?
        }
    }
    result
}

/// An amount typed by a person (`12.50`) in minor units of `currency` (`1250`); empty is
/// `None` (everything).
pub fn parse_amount(currency: &str, text: Option<&str>) -> ApiResult<Option<i64>> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else { return Ok(None) };
    let exponent = Currency::parse(currency).map(|c| c.exponent()).unwrap_or(2) as usize;
    let bad = || ApiError::invalid("amount", format!("Enter the amount as a number with at most {exponent} decimals."));
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
        || fraction.len() > exponent
        || whole.len() > 12
    {
        return Err(bad());
    }
    let digits = format!("{whole}{fraction:0<exponent$}");
    let amount: i64 = digits.parse().map_err(|_| bad())?;
    if amount <= 0 {
        return Err(ApiError::invalid("amount", "The amount must be more than zero."));
    }
    Ok(Some(amount))
}

/// A form's amount field for `order`'s currency.
async fn order_amount(state: &AppState, order_id: &str, amount: Option<&str>) -> ApiResult<Option<i64>> {
    if amount.map(str::trim).unwrap_or_default().is_empty() {
        return Ok(None);
    }
    let order = orders::load(&state.store, order_id).await?;
    parse_amount(&order.currency, amount)
}

pub async fn capture_order(
    state: &AppState,
    user: &SignedIn,
    id: &str,
    amount: Option<&str>,
    sub: Submitted<'_>,
) -> ApiResult<Done<Order>> {
    let amount = if user.role.allows(Permission::ManageOrders) { order_amount(state, id, amount).await? } else { None };
    let a = Action::new(user, Permission::ManageOrders, "order.capture", id, sub, json!({"amount": amount}));
    act(state, user, &a, orders::capture(state, id, CaptureInput { amount }, a.audit())).await
}

pub async fn refund_order(
    state: &AppState,
    user: &SignedIn,
    id: &str,
    amount: Option<&str>,
    reason: Option<&str>,
    sub: Submitted<'_>,
) -> ApiResult<Done<Refund>> {
    let amount = if user.role.allows(Permission::ManageOrders) { order_amount(state, id, amount).await? } else { None };
    let reason = reason.map(str::trim).filter(|r| !r.is_empty()).map(str::to_string);
    let detail = json!({"amount": amount, "reason": reason});
    let a = Action::new(user, Permission::ManageOrders, "order.refund", id, sub, detail);
    act(state, user, &a, orders::refund(state, id, RefundInput { amount, reason }, a.audit())).await
}

pub async fn cancel_order(state: &AppState, user: &SignedIn, id: &str, sub: Submitted<'_>) -> ApiResult<Done<Order>> {
    let a = Action::new(user, Permission::ManageOrders, "order.cancel", id, sub, json!({}));
    act(state, user, &a, orders::cancel(state, id, a.audit())).await
}

pub async fn fulfill_order(state: &AppState, user: &SignedIn, id: &str, sub: Submitted<'_>) -> ApiResult<Done<Order>> {
    let a = Action::new(user, Permission::ManageOrders, "order.fulfill", id, sub, json!({}));
    let work = async {
        let now = state.clock.now();
        let mut tx = state.store.begin().await?;
        let order = orders::fulfill(&mut tx, now, id).await?;
        a.record.write(&mut tx, now).await?;
        tx.commit().await?;
        Ok(order)
    };
    act(state, user, &a, work).await
}

/// Cancels a subscription now (its open invoices are voided) or at its period end, as
/// `POST /admin/subscriptions/{id}/cancel` does.
pub async fn cancel_subscription(
    state: &AppState,
    user: &SignedIn,
    id: &str,
    at_period_end: bool,
    sub: Submitted<'_>,
) -> ApiResult<Done<Subscription>> {
    let detail = json!({"at_period_end": at_period_end});
    let a = Action::new(user, Permission::ManageSubscriptions, "subscription.cancel", id, sub, detail);
    let input = CancelInput { at_period_end: Some(at_period_end) };
    act(state, user, &a, subscriptions::cancel(state, id, input, a.audit())).await
}

/// Undoes a cancel at the period end, as `POST /admin/subscriptions/{id}/resume` does.
pub async fn resume_subscription(
    state: &AppState,
    user: &SignedIn,
    id: &str,
    sub: Submitted<'_>,
) -> ApiResult<Done<Subscription>> {
    let a = Action::new(user, Permission::ManageSubscriptions, "subscription.resume", id, sub, json!({}));
    act(state, user, &a, subscriptions::resume(state, id, a.audit())).await
}

/// Adds (or with a negative amount removes) credits, with a reason, as the admin API's
/// adjustment does; the ledger source is the form's key, so it counts once.
pub async fn adjust_credits(
    state: &AppState,
    user: &SignedIn,
    customer: &str,
    amount: &str,
    reason: &str,
    sub: Submitted<'_>,
) -> ApiResult<Done<CreditEntry>> {
    let detail = json!({"amount": amount.trim(), "reason": reason});
    let source = format!("dashboard:{}:{}", user.user_id, sub.key.trim());
    let a = Action::new(user, Permission::AdjustCredits, "credits.adjust", customer, sub, detail);
    let work = async {
        let amount: i64 =
            amount.trim().parse().map_err(|_| ApiError::invalid("amount", "Enter a whole number of credits."))?;
        let input = credits::AdjustInput { amount, reason: reason.to_string() };
        let now = state.clock.now();
        let mut tx = state.store.begin().await?;
        let entry = credits::adjust(&mut tx, now, customer, source, input).await?;
        a.record.write(&mut tx, now).await?;
        tx.commit().await?;
        Ok(entry)
    };
    act(state, user, &a, work).await
}

/// A created key and its secret, shown once.
#[derive(Serialize)]
pub struct CreatedKey {
    pub id: String,
    #[serde(skip)]
    pub secret: String,
}

pub async fn create_api_key(
    state: &AppState,
    user: &SignedIn,
    kind: &str,
    name: Option<&str>,
    sub: Submitted<'_>,
) -> ApiResult<Done<CreatedKey>> {
    let kind = match kind {
        "secret" => KeyKind::Secret,
        "publishable" => KeyKind::Publishable,
        _ => return Err(ApiError::invalid("kind", "kind must be secret or publishable.")),
    };
    let name = validate::optional_text("name", name.map(str::trim).filter(|n| !n.is_empty()), 200)?;
    let detail = json!({"kind": kind.as_str(), "name": name});
    let a = Action::new(user, Permission::ManageApiKeys, "api_key.create", "api_keys", sub, detail);
    let work = async {
        let key: NewKey = keys::create_audited(&state.store, kind, name, state.clock.now(), a.audit()).await?;
        Ok(CreatedKey { id: key.row.id, secret: key.secret })
    };
    act(state, user, &a, work).await
}

pub async fn revoke_api_key(state: &AppState, user: &SignedIn, id: &str, sub: Submitted<'_>) -> ApiResult<Done<bool>> {
    let a = Action::new(user, Permission::ManageApiKeys, "api_key.revoke", id, sub, json!({}));
    let work = async {
        if state.api_keys.revoke(&state.store, id, state.clock.now(), a.audit()).await? {
            Ok(true)
        } else {
            Err(ApiError::not_found("api_key", id))
        }
    };
    act(state, user, &a, work).await
}

pub async fn create_user(
    state: &AppState,
    user: &SignedIn,
    email: &str,
    role: &str,
    password: &str,
    sub: Submitted<'_>,
) -> ApiResult<Done<crate::services::dashboard::users::User>> {
    let role = Role::parse(role)?;
    let detail = json!({"email": email.trim().to_lowercase(), "role": role.as_str()});
    let a = Action::new(user, Permission::ManageUsers, "user.create", "dashboard_users", sub, detail);
    let now = state.clock.now();
    let work = crate::services::dashboard::users::create_audited(&state.store, email, role, password, now, a.audit());
    act(state, user, &a, work).await
}

/// Sends an event again to one endpoint (the delivery log's "resend").
pub async fn resend_event(
    state: &AppState,
    user: &SignedIn,
    event: &str,
    endpoint: &str,
    sub: Submitted<'_>,
) -> ApiResult<Done<crate::objects::webhook_endpoint::EventResent>> {
    let input = crate::services::webhook_endpoints::ResendInput { webhook_endpoint: Some(endpoint.to_string()) };
    let detail = json!({"webhook_endpoint": endpoint});
    let a = Action::new(user, Permission::ManageWebhooks, "event.resend", event, sub, detail);
    act(state, user, &a, crate::services::webhook_endpoints::resend(state, event, input)).await
}

#[cfg(test)]
mod tests {
    use super::parse_amount;

    #[test]
    fn amounts_typed_by_people_become_minor_units() {
        assert_eq!(parse_amount("usd", Some("12.5")).unwrap(), Some(1250));
        assert_eq!(parse_amount("usd", Some(" 7 ")).unwrap(), Some(700));
        assert_eq!(parse_amount("jpy", Some("500")).unwrap(), Some(500));
        assert_eq!(parse_amount("usd", Some("")).unwrap(), None);
        for bad in ["1.234", "-1", "1e3", "0", "0.00", "abc", "99999999999999"] {
            assert!(parse_amount("usd", Some(bad)).is_err(), "{bad}");
        }
        assert!(parse_amount("jpy", Some("1.5")).is_err());
    }
}
