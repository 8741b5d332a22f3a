//! Who is calling: an admin (secret key), or a storefront (publishable key) optionally acting
//! for a signed-in customer.

use crate::error::ApiError;
use crate::services::access::Caller;
use crate::services::keys::{ApiKeyRow, KeyCheck};
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine;
use kassa_domain::client_secret;

/// The publishable key header of the store API.
pub const PUBLISHABLE_KEY_HEADER: &str = "kassa-publishable-key";

/// The header carrying the client secret of a guest's cart, session or order.
pub const CLIENT_SECRET_HEADER: &str = "kassa-client-secret";
/// The same as a query parameter, for links (success pages, e-mails).
pub const CLIENT_SECRET_PARAM: &str = "client_secret";

/// A request authenticated with a secret key.
pub struct Admin {
    pub key_id: String,
}

impl Admin {
    /// Idempotency keys of the admin API are shared by all its secret keys, as at Stripe.
    pub fn idempotency_scope(&self) -> String {
        "admin".into()
    }
}

/// A request authenticated with a publishable key.
pub struct Storefront {
    pub key_id: String,
    /// The raw bearer token after the publishable key, if any (a customer JWT).
    pub bearer: Option<String>,
}

fn bearer(parts: &Parts) -> Option<String> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    if let Some(token) = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")) {
        return Some(token.trim().to_string());
    }
    // `curl -u sk_…:` sends Basic auth with the key as user name, as Stripe accepts.
    let basic = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(basic.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    Some(text.split(':').next().unwrap_or_default().to_string())
}

/// The key's row, or 401; a client that failed too often is refused (429) before the lookup
/// ([`crate::api::rate_limit`]).
async fn check_key(state: &AppState, parts: &Parts, presented: &str) -> Result<ApiKeyRow, ApiError> {
    state.rate_limits.before_authentication(parts)?;
    let refused = match state.api_keys.check(&state.store, presented).await? {
        KeyCheck::Valid(row) => return Ok(row),
        KeyCheck::Revoked => "This API key has been revoked.",
        KeyCheck::Unknown => "Invalid API key provided.",
    };
    state.rate_limits.authentication_failed(parts);
    Err(ApiError::Authentication(refused.into()))
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(key) = bearer(parts) else {
            return Err(ApiError::Authentication(
                "You did not provide an API key. Send your secret key as `Authorization: Bearer sk_…`.".into(),
            ));
        };
        let row = check_key(state, parts, &key).await?;
        if row.kind != "secret" {
            return Err(ApiError::PermissionDenied(
                "Publishable keys cannot use the admin API; use a secret key (sk_…).".into(),
            ));
        }
        state.rate_limits.admin(&row.id)?;
        Ok(Admin { key_id: row.id })
    }
}

impl FromRequestParts<AppState> for Storefront {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(PUBLISHABLE_KEY_HEADER).and_then(|v| v.to_str().ok()).map(str::trim);
        let bearer = bearer(parts);
        // Without the header, a publishable key may come as the bearer token itself.
        let (key, customer_token) = match (header, bearer) {
            (Some(h), b) => (h.to_string(), b),
            (None, Some(b)) if b.starts_with("pk_") => (b, None),
            (None, _) => {
                return Err(ApiError::Authentication(format!(
                    "You did not provide a publishable key. Send it as `{PUBLISHABLE_KEY_HEADER}: pk_…`."
                )));
            }
        };
        let row = check_key(state, parts, &key).await?;
        if row.kind != "publishable" {
            return Err(ApiError::PermissionDenied(
                "Secret keys must not be used in the store API, which browsers call; use a publishable key (pk_…)."
                    .into(),
            ));
        }
        state.rate_limits.store(&row.id, parts)?;
        Ok(Storefront { key_id: row.id, bearer: customer_token })
    }
}

/// A store request and, when it carries a valid customer JWT, the signed-in customer (found
/// by `sub`, or created on first sight through the one customer-creation path), and the client
/// secret it presented (deliberately no `Debug`: the secret must never reach a log).
pub struct Shopper {
    pub key_id: String,
    pub customer: Option<crate::services::customers::CustomerRow>,
    pub client_secret: Option<String>,
}

impl Shopper {
    /// The signed-in customer, or 401.
    pub fn signed_in(&self) -> Result<&crate::services::customers::CustomerRow, ApiError> {
        self.customer.as_ref().ok_or_else(|| {
            ApiError::Authentication(
                "This endpoint needs a signed-in customer: send `Authorization: Bearer <customer JWT>`.".into(),
            )
        })
    }

    /// Who is asking, for the access rules of guests' objects (`services::access`).
    pub fn caller(&self) -> Caller<'_> {
        Caller { customer: self.customer.as_ref(), client_secret: self.client_secret.as_deref() }
    }

    /// Idempotency keys of the store API are scoped to the customer, or for guests to the
    /// client secret they present (else to guests at large): a stored answer about a guest's
    /// cart is replayed only to a request that could have made it.
    pub fn idempotency_scope(&self) -> String {
        match (&self.customer, &self.client_secret) {
            (Some(c), _) => format!("store:{}", c.id),
            (None, Some(secret)) => format!("store:guest:{}", client_secret::hash(secret)),
            (None, None) => "store:guest".into(),
        }
    }
}

/// The client secret of a request: the `Kassa-Client-Secret` header, else the `client_secret`
/// query parameter. Anything unusable (not text, too long) counts as none — the object then
/// answers 404 like any other wrong secret.
fn presented_client_secret(parts: &Parts) -> Option<String> {
    let from_header =
        parts.headers.get(CLIENT_SECRET_HEADER).and_then(|v| v.to_str().ok()).map(|v| v.trim().to_string());
    let secret = from_header.or_else(|| {
        let query = parts.uri.query()?;
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == CLIENT_SECRET_PARAM)
            .map(|(_, v)| v.trim().to_string())
    })?;
    (!secret.is_empty() && secret.len() <= client_secret::MAX_LEN).then_some(secret)
}

impl FromRequestParts<AppState> for Shopper {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let front = Storefront::from_request_parts(parts, state).await?;
        let customer = match &front.bearer {
            None => None,
            Some(token) => {
                let tokens = state.customer_tokens.as_ref().ok_or_else(|| {
                    ApiError::Authentication("Customer sign-in is not configured on this Kassa.".into())
                })?;
                let claims = tokens.verify(token)?;
                Some(crate::services::customers::signed_in(state, &claims).await?)
            }
        };
        Ok(Shopper { key_id: front.key_id, customer, client_secret: presented_client_secret(parts) })
    }
}
