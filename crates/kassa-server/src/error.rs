//! The one error type of the API. Every failure a handler can return is a variant here, and
//! [`IntoResponse`] writes Stripe's error object with the status of SPEC §2:
//! `{"error": {"type", "code", "message", "param"?, "decline_code"?}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kassa_processors::ProcessorError;
use kassa_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

pub type ApiResult<T> = Result<T, ApiError>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed or a parameter is invalid.
    #[error("{message}")]
    InvalidRequest { code: &'static str, message: String, param: Option<String> },
    /// 401: no API key, an unknown one, or a revoked one; or a bad customer token.
    #[error("{0}")]
    Authentication(String),
    /// 403: the key is valid but may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// 404: no such object (or not yours).
    #[error("No such {kind}: '{id}'")]
    NotFound { kind: &'static str, id: String },
    /// 404: no such route.
    #[error("Unrecognized request URL ({method} {path})")]
    RouteNotFound { method: String, path: String },
    /// 405
    #[error("Method not allowed")]
    MethodNotAllowed,
    /// 409: the object's state forbids this (or a concurrent request holds the key).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 400 `idempotency_key_reused`: the key was used with other parameters.
    #[error("Keys for idempotent requests can only be used with the same parameters they were first used with.")]
    IdempotencyKeyReused,
    /// 409 `idempotency_key_in_use`: the first request with this key is still running.
    #[error("A request with this idempotency key is still being processed; retry later.")]
    IdempotencyKeyInUse,
    /// 402: the payment was refused.
    #[error("{message}")]
    PaymentFailed {
        code: String,
        decline_code: Option<String>,
        message: String,
        /// The Kassa payment the attempt belongs to.
        payment: Option<String>,
    },
    /// 413
    #[error("The request body is larger than {limit} bytes.")]
    PayloadTooLarge { limit: usize },
    /// 422: well-formed, but the semantics forbid it.
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String, param: Option<String> },
    /// 429: the key (and, on the store API, the client address) went over its rate; retry
    /// after `retry_after` seconds (sent as `Retry-After`).
    #[error("Too many requests {scope}. Retry after {retry_after} seconds.")]
    RateLimited { scope: &'static str, retry_after: u64 },
    /// 502: the payment processor failed or could not be reached; safe to retry.
    #[error("The payment processor is unavailable: {0}")]
    ProcessorUnavailable(String),
    /// 500: a real fault of ours. The cause is logged, never shown.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::InvalidRequest { code: "parameter_invalid", message: message.into(), param: Some(param.into()) }
    }

    pub fn missing(param: &str) -> ApiError {
        ApiError::InvalidRequest {
            code: "parameter_missing",
            message: format!("Missing required param: {param}."),
            param: Some(param.into()),
        }
    }

    pub fn not_found(kind: &'static str, id: impl Into<String>) -> ApiError {
        ApiError::NotFound { kind, id: id.into() }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Conflict { code, message: message.into() }
    }

    /// A conflict with a request still running (not with the state of an object): like
    /// Stripe, such an answer is not kept under the idempotency key, so the same request can be
    /// retried once the other one has finished.
    pub fn is_transient_conflict(&self) -> bool {
        matches!(self, ApiError::Conflict { code: "payment_in_progress" | LOCK_TIMEOUT, .. })
    }

    /// A transaction the database aborted for a concurrent one: running it again is safe.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ApiError::Conflict { code: LOCK_TIMEOUT, .. })
    }

    pub fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            InvalidRequest { .. } | IdempotencyKeyReused => StatusCode::BAD_REQUEST,
            Authentication(_) => StatusCode::UNAUTHORIZED,
            PaymentFailed { .. } => StatusCode::PAYMENT_REQUIRED,
            PermissionDenied(_) => StatusCode::FORBIDDEN,
            NotFound { .. } | RouteNotFound { .. } => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Conflict { .. } | IdempotencyKeyInUse => StatusCode::CONFLICT,
            PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ProcessorUnavailable(_) => StatusCode::BAD_GATEWAY,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn body(&self) -> ErrorBody {
        use ApiError::*;
        let (kind, code, param, decline_code, payment): (
            &str,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        ) = match self {
            InvalidRequest { code, param, .. } => {
                ("invalid_request_error", Some((*code).into()), param.clone(), None, None)
            }
            Authentication(_) => ("authentication_error", Some("api_key_invalid".into()), None, None, None),
            PermissionDenied(_) => ("permission_error", Some("permission_denied".into()), None, None, None),
            NotFound { .. } => {
                ("invalid_request_error", Some("resource_missing".into()), Some("id".into()), None, None)
            }
            RouteNotFound { .. } => ("invalid_request_error", Some("route_not_found".into()), None, None, None),
            MethodNotAllowed => ("invalid_request_error", Some("method_not_allowed".into()), None, None, None),
            Conflict { code, .. } => ("invalid_request_error", Some((*code).into()), None, None, None),
            IdempotencyKeyReused => ("idempotency_error", Some("idempotency_key_reused".into()), None, None, None),
            IdempotencyKeyInUse => ("idempotency_error", Some("idempotency_key_in_use".into()), None, None, None),
            PaymentFailed { code, decline_code, payment, .. } => {
                ("card_error", Some(code.clone()), None, decline_code.clone(), payment.clone())
            }
            PayloadTooLarge { .. } => ("invalid_request_error", Some("request_too_large".into()), None, None, None),
            Unprocessable { code, param, .. } => {
                ("invalid_request_error", Some((*code).into()), param.clone(), None, None)
            }
            RateLimited { .. } => ("rate_limit_error", Some("rate_limit".into()), None, None, None),
            ProcessorUnavailable(_) => ("api_error", Some("processor_unavailable".into()), None, None, None),
            Internal(_) => ("api_error", None, None, None, None),
        };
        let message = match self {
            Internal(_) => "An internal error occurred. It has been logged; retrying is safe.".to_string(),
            other => other.to_string(),
        };
        ErrorBody { error: ErrorObject { kind: kind.into(), code, message, param, decline_code, payment } }
    }
}

/// The error envelope every non-2xx response carries.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorObject,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorObject {
    /// `invalid_request_error`, `authentication_error`, `permission_error`, `idempotency_error`,
    /// `card_error`, `rate_limit_error` or `api_error`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub message: String,
    /// The request parameter at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// For card declines: `generic_decline`, `insufficient_funds`, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decline_code: Option<String>,
    /// For payment failures: the Kassa payment of the attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(e) = &self {
            // The chain of causes, one line; never `{e:?}`, which would print (and so
            // symbolize) a captured backtrace inside the request. Backtraces only when an
            // operator asked for them (`log.backtraces`).
            let backtrace = e.backtrace();
            if crate::telemetry::backtraces() && backtrace.status() == std::backtrace::BacktraceStatus::Captured {
                tracing::error!(error = format!("{e:#}"), %backtrace, "internal error");
            } else {
                tracing::error!(error = format!("{e:#}"), "internal error");
            }
        }
        let mut res = (self.status(), axum::Json(self.body())).into_response();
        if let ApiError::RateLimited { retry_after, .. } = self {
            res.headers_mut().insert(axum::http::header::RETRY_AFTER, retry_after.into());
        }
        res
    }
}

/// The code of a 409 for a transaction that kept losing races with concurrent ones.
pub const LOCK_TIMEOUT: &str = "lock_timeout";

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_retryable() {
            // The database aborted the transaction for a concurrent one (a deadlock or a
            // serialization failure): nothing was written. `IdemRequest` runs local work again
            // a few times; what still loses is the caller's to retry, like Stripe's
            // `lock_timeout`, never a 500.
            tracing::info!(error = %e, "a transaction lost a race with a concurrent one");
            return ApiError::Conflict {
                code: LOCK_TIMEOUT,
                message: "Another request was changing the same objects at the same time; retrying is safe."
                    .to_string(),
            };
        }
        ApiError::Internal(anyhow::Error::new(e))
    }
}

impl From<ProcessorError> for ApiError {
    fn from(e: ProcessorError) -> Self {
        match e {
            ProcessorError::Payment { error, .. } => ApiError::PaymentFailed {
                code: error.code,
                decline_code: error.decline_code,
                message: error.message,
                payment: None,
            },
            ProcessorError::Unavailable(m) => ApiError::ProcessorUnavailable(m),
            // The processor refused what the object's state allows there (a second capture,
            // canceling a captured payment): a conflict the caller can act on, not our fault.
            ProcessorError::InvalidRequest { message, .. } => ApiError::Conflict { code: "processor_refused", message },
            ProcessorError::Unsupported(what) => ApiError::Unprocessable {
                code: "processor_unsupported",
                message: format!("The configured payment processor does not support this: {what}"),
                param: None,
            },
            other @ ProcessorError::NotFound(_) => ApiError::Internal(anyhow::Error::new(other)),
        }
    }
}

/// A state machine refused an input: the object's current state does not allow it (409 with
/// the machine's code).
impl From<kassa_domain::lifecycle::Refused> for ApiError {
    fn from(r: kassa_domain::lifecycle::Refused) -> ApiError {
        ApiError::Conflict { code: r.code, message: r.message }
    }
}
