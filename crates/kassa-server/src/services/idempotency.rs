//! The rules of an `Idempotency-Key` (Stripe's semantics), below HTTP: who may run the work
//! under a key, when a stored answer is replayed, and when a dead holder's key is taken over.
//! `api::idempotency` turns the outcomes into responses.

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use kassa_store::Tx;
use kassa_store::idempotency::{self, Claim};

/// How long a staged request holds its key before another may take it over.
const STAGED_LOCK_SECS: i64 = 60;

/// What presenting a key means for this request.
pub enum Outcome {
    /// This request holds the key (fresh, or taken over from a holder that died): run the work.
    Run,
    /// The work ran before: answer with its stored status and JSON body.
    Replay { status: u16, body: String },
}

/// How an answer is kept under its key and given back on a replay: as it is ([`AsIs`]), or,
/// for an answer holding a secret that is shown once, with that secret sealed so the
/// idempotency table never holds it in clear (`webhook_endpoints::SealedSecretAnswer`).
pub trait StoredAnswer: Send + Sync {
    /// What is stored for the answer `body`.
    fn stored(&self, body: &str) -> ApiResult<String>;
    /// The answer to replay from what was stored.
    fn replayed(&self, stored: String) -> ApiResult<String>;
}

/// Answers stored as they are sent.
pub struct AsIs;

impl StoredAnswer for AsIs {
    fn stored(&self, body: &str) -> ApiResult<String> {
        Ok(body.to_string())
    }

    fn replayed(&self, stored: String) -> ApiResult<String> {
        Ok(stored)
    }
}

/// Claims `key` in `tx` for the request with this `fingerprint`: a different request under the
/// same key is `idempotency_key_reused`, a live holder `idempotency_key_in_use`.
pub async fn claim(tx: &mut Tx, scope: &str, key: &str, fingerprint: &str, now: i64) -> ApiResult<Outcome> {
    let row = match idempotency::claim(tx, scope, key, fingerprint, now, now + STAGED_LOCK_SECS).await? {
        Claim::Claimed => return Ok(Outcome::Run),
        Claim::Existing(row) => row,
    };
    if row.fingerprint != fingerprint {
        return Err(ApiError::IdempotencyKeyReused);
    }
    if let (Some(status), Some(body)) = (row.response_status, row.response_body) {
        return Ok(Outcome::Replay { status: status as u16, body });
    }
    match row.locked_until {
        Some(until) if until < now => {
            if idempotency::take_over(tx, &row.scope, &row.key, now, now + STAGED_LOCK_SECS).await? {
                Ok(Outcome::Run)
            } else {
                Err(ApiError::IdempotencyKeyInUse)
            }
        }
        _ => Err(ApiError::IdempotencyKeyInUse),
    }
}

/// Stores the answer in the transaction of the work (local work).
pub async fn complete_in(tx: &mut Tx, scope: &str, key: &str, status: u16, body: &str) -> ApiResult<()> {
    Ok(idempotency::complete(tx.conn(), scope, key, status, body).await?)
}

/// Stores the answer after staged work, which ran in its own transactions.
pub async fn complete(state: &AppState, scope: &str, key: &str, status: u16, body: &str) -> ApiResult<()> {
    Ok(idempotency::complete(state.store.writer(), scope, key, status, body).await?)
}

/// Frees the key after a failure worth retrying, so the retry runs afresh.
pub async fn release(state: &AppState, scope: &str, key: &str) -> ApiResult<()> {
    Ok(idempotency::release(state.store.writer(), scope, key).await?)
}

/// Opens the transaction that claims a key and, for local work, runs the work and stores its
/// answer.
pub async fn begin(state: &AppState) -> ApiResult<Tx> {
    Ok(state.store.begin().await?)
}
