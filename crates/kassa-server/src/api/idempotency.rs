//! `Idempotency-Key` on mutating requests, with Stripe's semantics:
//! - the same key with the same request returns the stored response (same status, same bytes)
//!   without doing the work again;
//! - the same key with a different request (method, path or body) is a 400
//!   `idempotency_key_reused`;
//! - a second request while the first still runs is a 409 `idempotency_key_in_use`.
//!
//! Two ways to run the work (after Brandur Leach's "Implementing Stripe-like Idempotency
//! Keys"):
//! - [`IdemRequest::local`]: work that only touches our database runs in the same transaction
//!   that claims the key and stores the response, so the work and its recorded answer commit
//!   together or not at all.
//! - [`IdemRequest::staged`]: work that calls the processor commits the claim first (a lock
//!   with an expiry), runs in its own transactions, and stores the response last. The work
//!   itself must be safe to repeat (its processor calls carry idempotency keys derived from
//!   ours), because a holder that dies is taken over once its lock expires.

use crate::api::extract::{parse_json, read_body};
use crate::error::{ApiError, ApiResult};
use crate::services::Tx;
use crate::services::idempotency::{self, AsIs, Outcome, StoredAnswer};
use crate::state::AppState;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use std::future::Future;

pub const HEADER: &str = "idempotency-key";

/// How many times [`IdemRequest::local_retrying`] work runs in all when the database keeps
/// aborting its transaction for concurrent ones (rows are locked in one global order, so
/// this is rare; the bound keeps a pathological case from spinning).
pub const LOCAL_ATTEMPTS: u32 = 5;

/// A JSON body together with the request's `Idempotency-Key` and fingerprint.
pub struct Idempotent<T> {
    pub request: IdemRequest,
    pub body: T,
}

/// The key (if the client sent one) and a hash of what the key must be reused with.
pub struct IdemRequest {
    key: Option<String>,
    fingerprint: String,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Idempotent<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let key = match req.headers().get(HEADER) {
            None => None,
            Some(v) => {
                let k = v.to_str().ok().map(str::trim).filter(|k| !k.is_empty() && k.len() <= 255);
                Some(
                    k.ok_or_else(|| {
                        ApiError::invalid("Idempotency-Key", "Idempotency-Key must be 1 to 255 printable characters.")
                    })?
                    .to_string(),
                )
            }
        };
        let method = req.method().to_string();
        let path = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
        let bytes = read_body(req, state).await?;
        let body = parse_json(&bytes)?;
        let mut hasher = Sha256::new();
        hasher.update(method.as_bytes());
        hasher.update(b" ");
        hasher.update(path.as_bytes());
        hasher.update(b"\n");
        hasher.update(&bytes);
        let fingerprint = hex::encode(hasher.finalize());
        Ok(Idempotent { request: IdemRequest { key, fingerprint }, body })
    }
}

/// A stored or fresh JSON response.
fn json_response(status: StatusCode, body: String, replayed: bool) -> Response {
    let mut res = (status, body).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if replayed {
        metrics::counter!("kassa_idempotency_replays_total").increment(1);
        res.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    res
}

fn to_body<R: Serialize>(value: &R) -> ApiResult<String> {
    serde_json::to_string(value).map_err(|e| ApiError::Internal(e.into()))
}

/// The stored answer of a key whose work ran before.
fn replay(status: u16, body: String) -> ApiResult<Response> {
    let status = StatusCode::from_u16(status).map_err(|e| ApiError::Internal(e.into()))?;
    Ok(json_response(status, body, true))
}

impl IdemRequest {
    /// Runs local work in one transaction with the key's claim and stored response.
    /// An error rolls everything back, key included, so a retry runs afresh.
    pub async fn local<R, F>(self, state: &AppState, scope: &str, work: F) -> ApiResult<Response>
    where
        R: Serialize,
        F: for<'t> FnOnce(&'t mut Tx) -> BoxFuture<'t, ApiResult<R>> + Clone,
    {
        Ok(self.local_returning(state, scope, work).await?.0)
    }

    /// Like [`IdemRequest::local`], and also hands back the value when the work ran now
    /// (`None` for a replay), for follow-up work after the commit. A transaction the database
    /// aborts for a concurrent one (a deadlock, a serialization failure) runs again, from a
    /// fresh copy of the work, up to [`LOCAL_ATTEMPTS`] times in all (see
    /// [`IdemRequest::local_retrying`]); only then the answer is 409 `lock_timeout`, never a 500.
    pub async fn local_returning<R, F>(self, state: &AppState, scope: &str, work: F) -> ApiResult<(Response, Option<R>)>
    where
        R: Serialize,
        F: for<'t> FnOnce(&'t mut Tx) -> BoxFuture<'t, ApiResult<R>> + Clone,
    {
        self.local_retrying(state, scope, LOCAL_ATTEMPTS, move |tx| (work.clone())(tx)).await
    }

    /// Runs local work like [`IdemRequest::local_returning`], and runs the whole transaction
    /// (key claim, work, stored answer) again, up to `attempts` times in all, when the
    /// database aborted it for a concurrent one (a deadlock or a serialization failure, see
    /// `StoreError::Retryable`). An aborted attempt wrote nothing, its claim included, so the
    /// answer is stored exactly once: by the attempt that commits.
    pub async fn local_retrying<R, F>(
        self,
        state: &AppState,
        scope: &str,
        attempts: u32,
        mut work: F,
    ) -> ApiResult<(Response, Option<R>)>
    where
        R: Serialize,
        F: for<'t> FnMut(&'t mut Tx) -> BoxFuture<'t, ApiResult<R>>,
    {
        let mut attempt = 1;
        loop {
            match self.local_attempt(state, scope, &AsIs, &mut work).await {
                Err(e) if e.is_retryable() && attempt < attempts => {
                    // A short, growing, jittered pause lets the transaction that won finish.
                    let pause = (1u64 << attempt) + rand::random::<u64>() % 4;
                    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Runs local work like [`IdemRequest::local`], storing its answer through `answers` (for
    /// an answer holding a secret shown once: sealed at rest, opened for the replay).
    pub async fn local_storing<R, F>(
        self,
        state: &AppState,
        scope: &str,
        answers: &dyn StoredAnswer,
        work: F,
    ) -> ApiResult<Response>
    where
        R: Serialize,
        F: for<'t> FnOnce(&'t mut Tx) -> BoxFuture<'t, ApiResult<R>>,
    {
        let mut work = Some(work);
        let ran = self
            .local_attempt(state, scope, answers, &mut move |tx| {
                (work.take().expect("one attempt runs the work once"))(tx)
            })
            .await?;
        Ok(ran.0)
    }

    async fn local_attempt<R, F>(
        &self,
        state: &AppState,
        scope: &str,
        answers: &dyn StoredAnswer,
        work: &mut F,
    ) -> ApiResult<(Response, Option<R>)>
    where
        R: Serialize,
        F: for<'t> FnMut(&'t mut Tx) -> BoxFuture<'t, ApiResult<R>>,
    {
        let now = state.clock.now();
        let mut tx = idempotency::begin(state).await?;
        let ran = async {
            if let Some(key) = &self.key
                && let Outcome::Replay { status, body } =
                    idempotency::claim(&mut tx, scope, key, &self.fingerprint, now).await?
            {
                return Ok(Err((status, answers.replayed(body)?)));
            }
            let value = work(&mut tx).await?;
            let body = to_body(&value)?;
            if let Some(key) = &self.key {
                idempotency::complete_in(&mut tx, scope, key, 200, &answers.stored(&body)?).await?;
            }
            Ok(Ok((body, value)))
        }
        .await;
        match ran {
            Ok(Ok((body, value))) => {
                tx.commit().await?;
                Ok((json_response(StatusCode::OK, body, false), Some(value)))
            }
            Ok(Err((status, body))) => {
                tx.rollback().await?;
                Ok((replay(status, body)?, None))
            }
            Err(e) => {
                // Now rather than on the connection's next use: the row locks go at once.
                if let Err(r) = tx.rollback().await {
                    tracing::warn!(error = %r, "rolling back a failed request's transaction failed");
                }
                Err(e)
            }
        }
    }

    /// Runs work that manages its own transactions and processor calls (see module docs).
    /// Answers below 500 are stored and replayed; a 5xx (or a conflict with another running
    /// request) releases the key for a retry.
    pub async fn staged<R, Fut>(self, state: &AppState, scope: &str, work: Fut) -> ApiResult<Response>
    where
        R: Serialize,
        Fut: Future<Output = ApiResult<R>>,
    {
        let Some(key) = self.key.clone() else {
            let value = work.await?;
            return Ok(json_response(StatusCode::OK, to_body(&value)?, false));
        };
        let now = state.clock.now();
        let mut tx = idempotency::begin(state).await?;
        if let Outcome::Replay { status, body } =
            idempotency::claim(&mut tx, scope, &key, &self.fingerprint, now).await?
        {
            return replay(status, body);
        }
        tx.commit().await?;

        match work.await {
            Ok(value) => {
                let body = to_body(&value)?;
                idempotency::complete(state, scope, &key, 200, &body).await?;
                Ok(json_response(StatusCode::OK, body, false))
            }
            Err(e) if e.status().is_server_error() || e.is_transient_conflict() => {
                idempotency::release(state, scope, &key).await?;
                Err(e)
            }
            Err(e) => {
                let body = to_body(&e.body())?;
                idempotency::complete(state, scope, &key, e.status().as_u16(), &body).await?;
                Err(e)
            }
        }
    }
}
