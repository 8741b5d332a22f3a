//! Webhook endpoints of the merchant (SPEC §9): create, change, disable, delete, roll the
//! secret; resend an event; read the delivery log. Delivery itself is the job
//! `jobs::webhook_deliveries`.
//!
//! Secrets: `whsec_` and 32 random characters, shown once (at creation and at a roll), stored
//! sealed with XChaCha20-Poly1305 under `webhooks.secret_key`, the endpoint id as associated
//! data (a sealed secret copied to another row does not open). Without a configured key they
//! are stored unsealed (`plain:`), so a laptop needs no setup; the server warns at start.
//! A key configured later still opens those, and secrets made from then on are sealed.

use crate::config::Settings;
use crate::error::{ApiError, ApiResult};
use crate::objects::webhook_endpoint::{DeletedWebhookEndpoint, EventResent, WebhookDeliveryAttempt, WebhookEndpoint};
use crate::objects::{Metadata, metadata_json};
use crate::services::idempotency::StoredAnswer;
use crate::services::{Tx, validate};
use crate::state::AppState;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use kassa_domain::ids::IdKind;
use kassa_domain::lifecycle::webhook_endpoint::{EndpointInput, WebhookEndpointStatus, transition};
use kassa_store::sql::{Listed, Page};
use kassa_store::webhook_endpoints::{self as db, EndpointRow};
use kassa_store::{events, webhook_deliveries};
use serde::Deserialize;
use std::net::IpAddr;
use utoipa::ToSchema;

/// The job that delivers (its wake-up name).
pub const DELIVERY_JOB: &str = "webhook_deliveries";

/// Stripe allows 16 endpoints per account; so does Kassa (each event is sent to each).
pub const MAX_ENDPOINTS: i64 = 16;

/// Every event type Kassa records, with the schema of its `data.object` in the OpenAPI
/// document. `webhook_endpoint.disabled` is recorded when an endpoint failed for the whole
/// retry schedule.
pub const EVENT_TYPES: &[(&str, &str)] = &[
    ("cart.created", "Cart"),
    ("cart.expired", "Cart"),
    ("checkout.session.completed", "CheckoutSession"),
    ("checkout.session.created", "CheckoutSession"),
    ("checkout.session.expired", "CheckoutSession"),
    ("credits.added", "CreditEntry"),
    ("credits.adjusted", "CreditEntry"),
    ("credits.debited", "CreditEntry"),
    ("credits.reversed", "CreditEntry"),
    ("customer.created", "Customer"),
    ("customer.updated", "Customer"),
    ("invoice.created", "Invoice"),
    ("invoice.marked_uncollectible", "Invoice"),
    ("invoice.paid", "Invoice"),
    ("invoice.payment_action_required", "Invoice"),
    ("invoice.payment_failed", "Invoice"),
    ("invoice.voided", "Invoice"),
    ("order.canceled", "Order"),
    ("order.captured", "Order"),
    ("order.created", "Order"),
    ("order.fulfilled", "Order"),
    ("order.refunded", "Order"),
    ("payment.authorized", "Payment"),
    ("payment.canceled", "Payment"),
    ("payment.failed", "Payment"),
    ("payment.requires_action", "Payment"),
    ("payment.succeeded", "Payment"),
    ("payment.void_pending", "Payment"),
    ("payment.voided", "Payment"),
    ("price.created", "Price"),
    ("price.updated", "Price"),
    ("pricing_model.created", "PricingModel"),
    ("pricing_model.updated", "PricingModel"),
    ("product.created", "Product"),
    ("product.updated", "Product"),
    ("refund.failed", "Refund"),
    ("refund.pending", "Refund"),
    ("refund.succeeded", "Refund"),
    ("region.created", "Region"),
    ("region.updated", "Region"),
    ("shipping_option.created", "ShippingOption"),
    ("shipping_option.updated", "ShippingOption"),
    ("subscription.created", "Subscription"),
    ("subscription.deleted", "Subscription"),
    ("subscription.updated", "Subscription"),
    ("webhook_endpoint.disabled", "WebhookEndpoint"),
    (TEST_EVENT, "WebhookEndpoint"),
];

/// The event `POST /admin/webhook-endpoints/{id}/test` (and `kassa webhooks test`) sends to
/// one endpoint, whatever it subscribed to; its `data.object` is the endpoint.
pub const TEST_EVENT: &str = "webhook_endpoint.test";

pub fn is_known_type(t: &str) -> bool {
    EVENT_TYPES.iter().any(|(k, _)| *k == t)
}

/// Whether an endpoint subscribed to `enabled` (its JSON list) wants events of `kind`.
///
/// `"*"` means every type of the catalogue above, not every event recorded: the dashboard's
/// audit trail (`dashboard.*`, naming staff by email) stays in the event log and is never sent
/// to a merchant's endpoint, as Stripe keeps its account audit log out of webhooks.
pub fn wants(enabled_events_json: &str, kind: &str) -> bool {
    let list: Vec<String> = serde_json::from_str(enabled_events_json).unwrap_or_default();
    list.iter().any(|e| (e == "*" && is_known_type(kind)) || e == kind)
}

// ---- secrets ----------------------------------------------------------------------------

/// Seals and opens signing secrets with the configured key (see the module's documentation).
#[derive(Clone)]
pub struct SecretBox {
    key: Option<[u8; 32]>,
}

impl SecretBox {
    pub fn from_settings(settings: &Settings) -> SecretBox {
        // `Settings::validate` already refused a malformed key.
        SecretBox { key: settings.webhook_secret_key().ok().flatten() }
    }

    pub fn is_sealing(&self) -> bool {
        self.key.is_some()
    }

    pub fn seal(&self, secret: &str, endpoint: &str) -> String {
        let Some(key) = &self.key else {
            return format!("plain:{secret}");
        };
        use rand::RngCore;
        let mut nonce = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut nonce);
        let cipher = XChaCha20Poly1305::new(key.into());
        let sealed = cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: secret.as_bytes(), aad: endpoint.as_bytes() })
            .expect("XChaCha20-Poly1305 seals any message");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("v1:{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(out))
    }

    pub fn open(&self, stored: &str, endpoint: &str) -> Result<String, String> {
        if let Some(plain) = stored.strip_prefix("plain:") {
            return Ok(plain.to_string());
        }
        let body = stored.strip_prefix("v1:").ok_or("unknown sealing of the signing secret")?;
        let key = self.key.as_ref().ok_or("the signing secret is sealed, and webhooks.secret_key is not set")?;
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(body)
            .map_err(|_| "the sealed signing secret is damaged".to_string())?;
        if bytes.len() < 24 {
            return Err("the sealed signing secret is damaged".into());
        }
        let (nonce, sealed) = bytes.split_at(24);
        let cipher = XChaCha20Poly1305::new(key.into());
        let plain = cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: endpoint.as_bytes() })
            .map_err(|_| "the signing secret does not open with webhooks.secret_key (changed key?)".to_string())?;
        String::from_utf8(plain).map_err(|_| "the signing secret is not text".to_string())
    }
}

fn new_secret() -> String {
    use rand::Rng;
    use rand::distributions::Alphanumeric;
    let body: String = rand::thread_rng().sample_iter(&Alphanumeric).take(32).map(char::from).collect();
    format!("whsec_{body}")
}

// ---- URLs ---------------------------------------------------------------------------------

/// Whether `ip` is an address the public internet does not reach: loopback, private,
/// link-local, carrier-grade NAT, unique-local, unspecified, multicast, broadcast,
/// documentation, and IPv4 inside IPv6.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 198 && (o[1] == 18 || o[1] == 19))
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || (s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0 && s[4] == 0 && s[5] == 0)
        }
    }
}

/// Checks an endpoint URL: absolute http(s), at most 2,048 bytes, and — unless
/// `webhooks.allow_private_urls` — a host that is not, and does not resolve to, a private or
/// loopback address. (Deliveries check the addresses again when they connect, see
/// `jobs::webhook_deliveries`, so a name that later resolves elsewhere gains nothing.)
pub async fn check_url(url: &str, allow_private: bool) -> ApiResult<String> {
    let bad = |why: &str| ApiError::invalid("url", format!("url {why}."));
    if url.len() > 2048 {
        return Err(bad("must be at most 2048 bytes"));
    }
    let parsed = url::Url::parse(url).map_err(|_| bad("must be an absolute http(s) URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("must be an absolute http(s) URL"));
    }
    let host = parsed.host().ok_or_else(|| bad("must name a host"))?;
    if allow_private {
        return Ok(url.to_string());
    }
    let refused = || {
        bad(
            "must be reachable on the public internet (private and loopback addresses are refused; see webhooks.allow_private_urls)",
        )
    };
    match host {
        url::Host::Ipv4(ip) if is_private(IpAddr::V4(ip)) => Err(refused()),
        url::Host::Ipv6(ip) if is_private(IpAddr::V6(ip)) => Err(refused()),
        url::Host::Ipv4(_) | url::Host::Ipv6(_) => Ok(url.to_string()),
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if name == "localhost" || name.ends_with(".localhost") || name.ends_with(".internal") {
                return Err(refused());
            }
            let port = parsed.port_or_known_default().unwrap_or(443);
            let lookup =
                tokio::time::timeout(std::time::Duration::from_secs(5), tokio::net::lookup_host((name.as_str(), port)))
                    .await;
            match lookup {
                Ok(Ok(addrs)) => {
                    let addrs: Vec<_> = addrs.collect();
                    if addrs.is_empty() {
                        Err(bad("names a host that does not resolve"))
                    } else if addrs.iter().any(|a| is_private(a.ip())) {
                        Err(refused())
                    } else {
                        Ok(url.to_string())
                    }
                }
                _ => Err(bad("names a host that does not resolve")),
            }
        }
    }
}

// ---- inputs -------------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpointInput {
    /// Where events are posted: an absolute http(s) URL.
    pub url: String,
    /// Event types to send (see the `webhooks` of this document), or `["*"]` for all.
    pub enabled_events: Vec<String>,
    /// Up to 5,000 characters.
    pub description: Option<String>,
    /// The `api_version` written into events sent to this endpoint.
    pub api_version: Option<String>,
    #[serde(default)]
    pub metadata: Metadata,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEndpointInput {
    pub url: Option<String>,
    pub enabled_events: Option<Vec<String>>,
    pub description: Option<String>,
    pub api_version: Option<String>,
    pub metadata: Option<Metadata>,
    /// `true` disables the endpoint (no events are sent to it), `false` enables it again.
    pub disabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollSecretInput {
    /// Seconds the current secret keeps signing beside the new one: 0 (stop at once) to
    /// 604,800 (a week). Default `webhooks.roll_window_hours`.
    pub expires_in: Option<i64>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResendInput {
    /// Only to this endpoint (which gets the event even when not subscribed to its type).
    /// Default: every enabled endpoint subscribed to the event's type.
    pub webhook_endpoint: Option<String>,
}

fn enabled_events(list: &[String]) -> ApiResult<String> {
    if list.is_empty() {
        return Err(ApiError::invalid("enabled_events", "enabled_events must list event types, or [\"*\"]."));
    }
    let mut out: Vec<String> = Vec::new();
    for (i, t) in list.iter().enumerate() {
        if t != "*" && !is_known_type(t) {
            return Err(ApiError::invalid(
                format!("enabled_events[{i}]"),
                format!(
                    "enabled_events[{i}]: {t:?} is not an event type Kassa sends (see GET /openapi.json, `webhooks`)."
                ),
            ));
        }
        if !out.contains(t) {
            out.push(t.clone());
        }
    }
    if out.len() > 1 && out.iter().any(|t| t == "*") {
        return Err(ApiError::invalid("enabled_events", "\"*\" stands alone in enabled_events."));
    }
    Ok(serde_json::to_string(&out).expect("strings serialize"))
}

fn api_version(v: Option<&str>) -> ApiResult<Option<String>> {
    validate::optional_text("api_version", v, 64)
}

// ---- use cases ----------------------------------------------------------------------------

/// A validated endpoint to create: checked (its URL resolved) before the transaction that
/// stores it, so no DNS lookup holds a write transaction open.
pub struct NewEndpoint {
    row: EndpointRow,
    secret: String,
}

/// Validates a new endpoint and makes its secret (nothing is stored yet, see [`create_in`]).
pub async fn prepare_create(app: &AppState, input: CreateEndpointInput) -> ApiResult<NewEndpoint> {
    let events = enabled_events(&input.enabled_events)?;
    let description = validate::optional_text("description", input.description.as_deref(), 5000)?;
    let api_version = api_version(input.api_version.as_deref())?;
    validate::metadata(&input.metadata)?;
    let url = check_url(&input.url, app.settings.webhooks.allow_private_urls).await?;
    let now = app.clock.now();
    let id = IdKind::WebhookEndpoint.new_id();
    let secret = new_secret();
    let row = EndpointRow {
        id: id.clone(),
        url,
        description,
        enabled_events: events,
        api_version,
        status: WebhookEndpointStatus::Enabled.as_str().into(),
        disabled_reason: None,
        secret: SecretBox::from_settings(&app.settings).seal(&secret, &id),
        previous_secret: None,
        previous_secret_expires: None,
        metadata: metadata_json(&input.metadata),
        created: now,
        updated: now,
    };
    Ok(NewEndpoint { row, secret })
}

/// Stores a prepared endpoint in `tx` (the transaction of its `Idempotency-Key`); the answer
/// shows its secret, this once.
pub async fn create_in(tx: &mut Tx, new: NewEndpoint) -> ApiResult<WebhookEndpoint> {
    if db::count(tx.conn()).await? >= MAX_ENDPOINTS {
        return Err(ApiError::InvalidRequest {
            code: "webhook_endpoints_limit",
            message: format!("At most {MAX_ENDPOINTS} webhook endpoints; delete one first."),
            param: None,
        });
    }
    db::insert(tx, &new.row).await?;
    let mut shown = WebhookEndpoint::from_row(&new.row);
    shown.secret = Some(new.secret);
    Ok(shown)
}

/// Answers holding a signing secret (creation, roll) as the idempotency table keeps them: the
/// secret sealed like the endpoint's own (with `webhooks.secret_key`), bound to the endpoint
/// and to this use, so a replay shows the secret that was shown and a database dump does not.
/// The rest of the answer is kept byte for byte.
pub struct SealedSecretAnswer(pub SecretBox);

impl SealedSecretAnswer {
    pub fn new(app: &AppState) -> SealedSecretAnswer {
        SealedSecretAnswer(SecretBox::from_settings(&app.settings))
    }

    fn fields(body: &str) -> ApiResult<(String, Option<String>)> {
        let value: serde_json::Value = serde_json::from_str(body).map_err(|e| ApiError::Internal(e.into()))?;
        let id = value["id"].as_str().ok_or_else(|| anyhow::anyhow!("a webhook endpoint answer without an id"))?;
        Ok((format!("idempotency:{id}"), value["secret"].as_str().map(str::to_string)))
    }
}

impl StoredAnswer for SealedSecretAnswer {
    fn stored(&self, body: &str) -> ApiResult<String> {
        let (bound_to, secret) = Self::fields(body)?;
        let Some(secret) = secret else { return Ok(body.to_string()) };
        let sealed = self.0.seal(&secret, &bound_to);
        // Secrets and sealed secrets are plain ASCII (alphanumerics, base64): no JSON escaping.
        Ok(body.replacen(&format!("\"secret\":\"{secret}\""), &format!("\"secret\":\"{sealed}\""), 1))
    }

    fn replayed(&self, stored: String) -> ApiResult<String> {
        let (bound_to, sealed) = Self::fields(&stored)?;
        let Some(sealed) = sealed else { return Ok(stored) };
        let secret = self.0.open(&sealed, &bound_to).map_err(|e| anyhow::anyhow!(e))?;
        Ok(stored.replacen(&format!("\"secret\":\"{sealed}\""), &format!("\"secret\":\"{secret}\""), 1))
    }
}

pub async fn list(app: &AppState, page: &Page) -> ApiResult<Listed<WebhookEndpoint>> {
    Ok(db::list(app.store.reader(), page).await?.map(|r| WebhookEndpoint::from_row(&r)))
}

pub async fn get(app: &AppState, id: &str) -> ApiResult<WebhookEndpoint> {
    validate::id(IdKind::WebhookEndpoint, "webhook_endpoint", id)?;
    db::get(app.store.reader(), id)
        .await?
        .map(|r| WebhookEndpoint::from_row(&r))
        .ok_or_else(|| ApiError::not_found("webhook_endpoint", id))
}

pub async fn update(app: &AppState, id: &str, input: UpdateEndpointInput) -> ApiResult<WebhookEndpoint> {
    validate::id(IdKind::WebhookEndpoint, "webhook_endpoint", id)?;
    let events = input.enabled_events.as_deref().map(enabled_events).transpose()?;
    let description = validate::optional_text("description", input.description.as_deref(), 5000)?;
    let version = api_version(input.api_version.as_deref())?;
    if let Some(m) = &input.metadata {
        validate::metadata(m)?;
    }
    let url = match &input.url {
        Some(u) => Some(check_url(u, app.settings.webhooks.allow_private_urls).await?),
        None => None,
    };
    let mut tx = app.store.begin().await?;
    let mut row = db::get_for_update(&mut tx, id).await?.ok_or_else(|| ApiError::not_found("webhook_endpoint", id))?;
    if let Some(u) = url {
        row.url = u;
    }
    if let Some(e) = events {
        row.enabled_events = e;
    }
    if description.is_some() {
        row.description = description;
    }
    if version.is_some() {
        row.api_version = version;
    }
    if let Some(m) = &input.metadata {
        row.metadata = metadata_json(m);
    }
    let change = match input.disabled {
        Some(true) => Some(EndpointInput::Disable),
        Some(false) => Some(EndpointInput::Enable),
        None => None,
    };
    if let Some(input) = change
        && let Some((status, reason)) = transition(status_of(&row), input)
    {
        row.status = status.as_str().into();
        row.disabled_reason = reason.map(|r| r.as_str().into());
    }
    row.updated = app.clock.now();
    db::update(&mut tx, &row).await?;
    tx.commit().await?;
    Ok(WebhookEndpoint::from_row(&row))
}

pub async fn delete(app: &AppState, id: &str) -> ApiResult<DeletedWebhookEndpoint> {
    validate::id(IdKind::WebhookEndpoint, "webhook_endpoint", id)?;
    let mut tx = app.store.begin().await?;
    if !db::delete(&mut tx, id).await? {
        return Err(ApiError::not_found("webhook_endpoint", id));
    }
    tx.commit().await?;
    Ok(DeletedWebhookEndpoint { id: id.to_string(), object: "webhook_endpoint", deleted: true })
}

/// A validated roll of an endpoint's secret (see [`roll_secret_in`]).
pub struct SecretRoll {
    id: String,
    window: i64,
    secrets: SecretBox,
    now: i64,
}

/// Validates a roll.
pub fn prepare_roll(app: &AppState, id: &str, input: RollSecretInput) -> ApiResult<SecretRoll> {
    validate::id(IdKind::WebhookEndpoint, "webhook_endpoint", id)?;
    let window = match input.expires_in {
        Some(s) => validate::int_in("expires_in", s, 0..=604_800)?,
        None => app.settings.webhooks.roll_window_hours as i64 * 3600,
    };
    Ok(SecretRoll {
        id: id.to_string(),
        window,
        secrets: SecretBox::from_settings(&app.settings),
        now: app.clock.now(),
    })
}

/// A new secret, in `tx` (the transaction of its `Idempotency-Key`); the current one keeps
/// signing beside it for the roll's window. The answer shows the new secret, this once.
pub async fn roll_secret_in(tx: &mut Tx, roll: SecretRoll) -> ApiResult<WebhookEndpoint> {
    let SecretRoll { id, window, secrets, now } = roll;
    let secret = new_secret();
    let mut row = db::get_for_update(tx, &id).await?.ok_or_else(|| ApiError::not_found("webhook_endpoint", &id))?;
    if window > 0 {
        // Re-sealed, so a key configured since the endpoint's creation seals it too.
        let current = secrets.open(&row.secret, &id).map_err(|e| anyhow::anyhow!(e))?;
        row.previous_secret = Some(secrets.seal(&current, &id));
        row.previous_secret_expires = Some(now + window);
    } else {
        row.previous_secret = None;
        row.previous_secret_expires = None;
    }
    row.secret = secrets.seal(&secret, &id);
    row.updated = now;
    db::update(tx, &row).await?;
    let mut shown = WebhookEndpoint::from_row(&row);
    shown.secret = Some(secret);
    Ok(shown)
}

/// Sends an event again: to one endpoint, or to every enabled endpoint subscribed to it.
pub async fn resend(app: &AppState, event_id: &str, input: ResendInput) -> ApiResult<EventResent> {
    validate::id(IdKind::Event, "event", event_id)?;
    if let Some(e) = &input.webhook_endpoint
        && !IdKind::WebhookEndpoint.matches(e)
    {
        return Err(ApiError::invalid("webhook_endpoint", "webhook_endpoint is not a webhook endpoint id."));
    }
    let now = app.clock.now();
    let now_ms = now_ms(app);
    let mut tx = app.store.begin().await?;
    let event = events::get(tx.conn(), event_id).await?.ok_or_else(|| ApiError::not_found("event", event_id))?;
    let targets: Vec<String> = match &input.webhook_endpoint {
        Some(id) => {
            let e = db::get(tx.conn(), id).await?.ok_or_else(|| ApiError::not_found("webhook_endpoint", id))?;
            if status_of(&e) != WebhookEndpointStatus::Enabled {
                return Err(ApiError::invalid(
                    "webhook_endpoint",
                    "The webhook endpoint is disabled; enable it first.",
                ));
            }
            vec![e.id]
        }
        None => db::enabled(tx.conn())
            .await?
            .into_iter()
            .filter(|e| wants(&e.enabled_events, &event.kind))
            .map(|e| e.id)
            .collect(),
    };
    for endpoint in &targets {
        webhook_deliveries::resend(&mut tx, &event.id, endpoint, now, now_ms).await?;
    }
    tx.commit().await?;
    app.jobs.wake(DELIVERY_JOB);
    Ok(EventResent { id: event.id, object: "event", webhook_endpoints: targets })
}

/// Sends a `webhook_endpoint.test` event to one enabled endpoint, signed and delivered like
/// any other (retried on failure). The event is recorded (`GET /admin/events/{id}`, with its
/// delivery log) but goes to this endpoint only: it is marked fanned out in the transaction
/// that records it, together with its one delivery.
pub async fn send_test(app: &AppState, id: &str) -> ApiResult<EventResent> {
    validate::id(IdKind::WebhookEndpoint, "webhook_endpoint", id)?;
    let now = app.clock.now();
    let now_ms = now_ms(app);
    let mut tx = app.store.begin().await?;
    let row = db::get(tx.conn(), id).await?.ok_or_else(|| ApiError::not_found("webhook_endpoint", id))?;
    if status_of(&row) != WebhookEndpointStatus::Enabled {
        return Err(ApiError::invalid("webhook_endpoint", "The webhook endpoint is disabled; enable it first."));
    }
    // Inserted at commit already marked fanned out (events are inserted at commit, so marking
    // it here by an UPDATE would find no row).
    let event = events::record_fanned_out(&mut tx, TEST_EVENT, &row.id, &WebhookEndpoint::from_row(&row), now).await?;
    webhook_deliveries::resend(&mut tx, &event, &row.id, now, now_ms).await?;
    tx.commit().await?;
    app.jobs.wake(DELIVERY_JOB);
    Ok(EventResent { id: event, object: "event", webhook_endpoints: vec![row.id] })
}

/// The delivery log of an event.
pub async fn event_attempts(app: &AppState, event: &str, page: &Page) -> ApiResult<Listed<WebhookDeliveryAttempt>> {
    validate::id(IdKind::Event, "event", event)?;
    if events::get(app.store.reader(), event).await?.is_none() {
        return Err(ApiError::not_found("event", event));
    }
    let listed = webhook_deliveries::list_attempts(app.store.reader(), Some(event), None, false, page).await?;
    Ok(listed.map(WebhookDeliveryAttempt::from))
}

/// The delivery log of an endpoint, optionally only failed attempts.
pub async fn endpoint_attempts(
    app: &AppState,
    endpoint: &str,
    failed_only: bool,
    page: &Page,
) -> ApiResult<Listed<WebhookDeliveryAttempt>> {
    get(app, endpoint).await?;
    let listed = webhook_deliveries::list_attempts(app.store.reader(), None, Some(endpoint), failed_only, page).await?;
    Ok(listed.map(WebhookDeliveryAttempt::from))
}

/// The endpoint's status (a row the store wrote from a status, so always one).
pub fn status_of(row: &EndpointRow) -> WebhookEndpointStatus {
    WebhookEndpointStatus::parse(&row.status).unwrap_or(WebhookEndpointStatus::Disabled)
}

/// Unix milliseconds on the application's clock (tests move it).
pub fn now_ms(app: &AppState) -> i64 {
    let sub = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_millis() as i64)
        .unwrap_or(0);
    app.clock.now() * 1000 + sub
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn secrets_seal_per_endpoint() {
        let b = SecretBox { key: Some([7; 32]) };
        let sealed = b.seal("whsec_abc", "we_1");
        assert!(sealed.starts_with("v1:") && !sealed.contains("whsec_abc"));
        assert_eq!(b.open(&sealed, "we_1").unwrap(), "whsec_abc");
        assert!(b.open(&sealed, "we_2").is_err(), "bound to its endpoint");
        assert!(SecretBox { key: Some([8; 32]) }.open(&sealed, "we_1").is_err(), "another key");
        assert!(SecretBox { key: None }.open(&sealed, "we_1").is_err(), "no key");
        assert_eq!(
            SecretBox { key: None }.open(&SecretBox { key: None }.seal("whsec_x", "we_1"), "we_1").unwrap(),
            "whsec_x"
        );
    }

    /// Every event type written as a literal where events are recorded (the lifecycles'
    /// effects, the services, the jobs) is in the catalogue, so an endpoint can subscribe to it
    /// and the OpenAPI document lists it.
    #[test]
    fn every_recorded_event_type_is_in_the_catalogue() {
        let sources = [
            include_str!("../../../kassa-domain/src/lifecycle/cart.rs"),
            include_str!("../../../kassa-domain/src/lifecycle/checkout_session.rs"),
            include_str!("../../../kassa-domain/src/lifecycle/order.rs"),
            include_str!("../../../kassa-domain/src/lifecycle/payment.rs"),
            include_str!("../../../kassa-domain/src/lifecycle/refund.rs"),
            include_str!("../../../kassa-domain/src/lifecycle/webhook_endpoint.rs"),
            include_str!("catalog.rs"),
            include_str!("carts.rs"),
            include_str!("checkout_sessions.rs"),
            include_str!("credits.rs"),
            include_str!("customers.rs"),
            include_str!("settlement.rs"),
        ];
        let objects: Vec<&str> = EVENT_TYPES.iter().map(|(k, _)| k.split('.').next().unwrap()).collect();
        let mut seen = 0;
        for source in sources {
            for literal in source.split('"').skip(1).step_by(2) {
                let object = literal.split('.').next().unwrap_or_default();
                let is_event = objects.contains(&object)
                    && literal.contains('.')
                    && literal.chars().all(|c| c.is_ascii_lowercase() || c == '_' || c == '.')
                    && !literal.ends_with('.');
                if is_event {
                    seen += 1;
                    assert!(is_known_type(literal), "{literal} is recorded but not in EVENT_TYPES");
                }
            }
        }
        assert!(seen > 20, "the scan found only {seen} event types");
    }

    #[test]
    fn subscriptions_match_types_or_everything() {
        assert!(wants(r#"["*"]"#, "order.created"));
        assert!(!wants(r#"["*"]"#, "dashboard.order.refund"), "the audit trail is never sent");
        assert!(wants(r#"["order.created"]"#, "order.created"));
        assert!(!wants(r#"["order.created"]"#, "payment.succeeded"));
    }
}
