//! What a dashboard form does. Each action:
//! 1. asks the user's role ([`Role::require`]) — a forged form is refused like a hidden button;
//! 2. runs the same service function as the admin API (so the dashboard can do nothing the
//!    API forbids: a refund above what was captured is refused there);
//! 3. runs once per form: the form carries a fresh idempotency key, claimed like the admin
//!    API's `Idempotency-Key` (scope `dashboard:<user id>`), so a double click or a reload of
//!    the POST does the work once and the second answer says it was done;
//! 4. is recorded as an event `dashboard.<action>` naming the user, the object and the
//!    outcome (the audit trail).

use crate::error::{ApiError, ApiResult};
use crate::objects::commerce::{Order, Refund};
use crate::objects::credits::CreditEntry;
use crate::objects::customer::Subscription;
use crate::services::dashboard::audit::audit;
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
    match work.await {
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
async fn act<T, Fut>(state: &AppState, user: &SignedIn, a: Action<'_>, work: Fut) -> ApiResult<Done<T>>
where
    T: Serialize,
    Fut: Future<Output = ApiResult<T>>,
{
    let Action { permission, name: action, object, sub, detail } = a;
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
        Ok(Done::Now(_)) => {
            audit(state, user, action, object, json!({"params": detail, "outcome": "succeeded"})).await?
        }
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
    let detail = json!({"amount": amount});
    let work = orders::capture(state, id, CaptureInput { amount });
    let a = Action { permission: Permission::ManageOrders, name: "order.capture", object: id, sub, detail };
    act(state, user, a, work).await
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
    let work = orders::refund(state, id, RefundInput { amount, reason });
    let a = Action { permission: Permission::ManageOrders, name: "order.refund", object: id, sub, detail };
    act(state, user, a, work).await
}

pub async fn cancel_order(state: &AppState, user: &SignedIn, id: &str, sub: Submitted<'_>) -> ApiResult<Done<Order>> {
    let work = orders::cancel(state, id);
    let a = Action { permission: Permission::ManageOrders, name: "order.cancel", object: id, sub, detail: json!({}) };
    act(state, user, a, work).await
}

pub async fn fulfill_order(state: &AppState, user: &SignedIn, id: &str, sub: Submitted<'_>) -> ApiResult<Done<Order>> {
    let work = async {
        let mut tx = state.store.begin().await?;
        let order = orders::fulfill(&mut tx, state.clock.now(), id).await?;
        tx.commit().await?;
        Ok(order)
    };
    let a = Action { permission: Permission::ManageOrders, name: "order.fulfill", object: id, sub, detail: json!({}) };
    act(state, user, a, work).await
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
    let work = subscriptions::cancel(state, id, CancelInput { at_period_end: Some(at_period_end) });
    let a =
        Action { permission: Permission::ManageSubscriptions, name: "subscription.cancel", object: id, sub, detail };
    act(state, user, a, work).await
}

/// Undoes a cancel at the period end, as `POST /admin/subscriptions/{id}/resume` does.
pub async fn resume_subscription(
    state: &AppState,
    user: &SignedIn,
    id: &str,
    sub: Submitted<'_>,
) -> ApiResult<Done<Subscription>> {
    let work = subscriptions::resume(state, id);
    let a = Action {
        permission: Permission::ManageSubscriptions,
        name: "subscription.resume",
        object: id,
        sub,
        detail: json!({}),
    };
    act(state, user, a, work).await
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
    let work = async {
        let amount: i64 =
            amount.trim().parse().map_err(|_| ApiError::invalid("amount", "Enter a whole number of credits."))?;
        let input = credits::AdjustInput { amount, reason: reason.to_string() };
        let mut tx = state.store.begin().await?;
        let entry = credits::adjust(&mut tx, state.clock.now(), customer, source, input).await?;
        tx.commit().await?;
        Ok(entry)
    };
    let a = Action { permission: Permission::AdjustCredits, name: "credits.adjust", object: customer, sub, detail };
    act(state, user, a, work).await
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
    let work = async {
        let key: NewKey = keys::create(&state.store, kind, name, state.clock.now()).await?;
        Ok(CreatedKey { id: key.row.id, secret: key.secret })
    };
    let a = Action { permission: Permission::ManageApiKeys, name: "api_key.create", object: "api_keys", sub, detail };
    act(state, user, a, work).await
}

pub async fn revoke_api_key(state: &AppState, user: &SignedIn, id: &str, sub: Submitted<'_>) -> ApiResult<Done<bool>> {
    let work = async {
        if state.api_keys.revoke(&state.store, id, state.clock.now()).await? {
            Ok(true)
        } else {
            Err(ApiError::not_found("api_key", id))
        }
    };
    let a =
        Action { permission: Permission::ManageApiKeys, name: "api_key.revoke", object: id, sub, detail: json!({}) };
    act(state, user, a, work).await
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
    let work = crate::services::dashboard::users::create(&state.store, email, role, password, state.clock.now());
    let a = Action { permission: Permission::ManageUsers, name: "user.create", object: "dashboard_users", sub, detail };
    act(state, user, a, work).await
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
    let work = crate::services::webhook_endpoints::resend(state, event, input);
    let a = Action { permission: Permission::ManageWebhooks, name: "event.resend", object: event, sub, detail };
    act(state, user, a, work).await
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
