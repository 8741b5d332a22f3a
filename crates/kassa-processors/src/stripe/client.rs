//! HTTP to Stripe: authentication, the pinned `Stripe-Version`, idempotency keys, retries
//! with backoff, and Stripe's error object mapped onto [`ProcessorError`].
//!
//! Retries follow Stripe's own libraries: network errors, 409 (another request with the same
//! idempotency key is running), 429 and 5xx are retried; `Stripe-Should-Retry` overrides that
//! either way. Every retry of a POST carries the same `Idempotency-Key`, so Stripe runs the
//! call at most once however often it is sent.

use super::form::Form;
use super::objects;
use crate::{IdempotencyKey, ProcessorError};
use rand::Rng;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use std::time::Duration;
use url::Url;

/// Stripe's libraries cap the wait between retries at a few seconds; a longer wait helps no one
/// who is waiting on a checkout.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);
/// A `Retry-After` longer than this is not worth waiting for inside one request.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

pub(crate) struct HttpClient {
    http: reqwest::Client,
    base_url: Url,
    secret_key: SecretString,
    api_version: HeaderValue,
    max_retries: u32,
    initial_retry_delay: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Get,
    Post,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl HttpClient {
    pub(crate) fn new(
        base_url: Url,
        secret_key: SecretString,
        api_version: HeaderValue,
        max_retries: u32,
        timeout: Duration,
        initial_retry_delay: Duration,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("kassa/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(HttpClient { http, base_url, secret_key, api_version, max_retries, initial_retry_delay })
    }

    pub(crate) fn base_url(&self) -> &Url {
        &self.base_url
    }

    pub(crate) fn api_version(&self) -> &str {
        self.api_version.to_str().unwrap_or_default()
    }

    /// The base URL with `segments` appended, each escaped, so an id can never change the path.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base_url.clone();
        url.path_segments_mut().expect("checked at construction: an http(s) base URL").pop_if_empty().extend(segments);
        url
    }

    /// `op` names the call for logs and for [`ProcessorError::Unsupported`].
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        op: &'static str,
        segments: &[&str],
        query: &Form,
    ) -> Result<T, ProcessorError> {
        self.call(op, Method::Get, segments, query, None).await
    }

    pub(crate) async fn post<T: DeserializeOwned>(
        &self,
        op: &'static str,
        segments: &[&str],
        form: &Form,
        key: &IdempotencyKey,
    ) -> Result<T, ProcessorError> {
        self.call(op, Method::Post, segments, form, Some(key)).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        op: &'static str,
        method: Method,
        segments: &[&str],
        form: &Form,
        key: Option<&IdempotencyKey>,
    ) -> Result<T, ProcessorError> {
        let mut url = self.url(segments);
        if method == Method::Get && !form.is_empty() {
            url.set_query(Some(&form.encode()));
        }
        let body = if method == Method::Post { form.encode() } else { String::new() };
        let mut attempt = 0;
        loop {
            let outcome = self.send_once(method, &url, &body, key).await;
            let retry = match &outcome {
                // A success is final whatever its headers say.
                Ok(answer) => !answer.status.is_success() && should_retry(answer.status, &answer.headers),
                Err(e) => !e.is_builder(),
            };
            if retry && attempt < self.max_retries {
                let wait = self.retry_delay(attempt, outcome.as_ref().ok().map(|a| &a.headers));
                tracing::info!(
                    op,
                    attempt = attempt + 1,
                    status = outcome.as_ref().ok().map(|a| a.status.as_u16()),
                    error = outcome.as_ref().err().map(|e| e.to_string()),
                    wait_ms = wait.as_millis() as u64,
                    "Stripe request failed; retrying with the same idempotency key"
                );
                tokio::time::sleep(wait).await;
                attempt += 1;
                continue;
            }
            return match outcome {
                Ok(answer) => interpret(op, answer),
                Err(e) => Err(ProcessorError::Unavailable(format!(
                    "{op}: {} after {} attempt(s)",
                    e.without_url(),
                    attempt + 1
                ))),
            };
        }
    }

    async fn send_once(
        &self,
        method: Method,
        url: &Url,
        body: &str,
        key: Option<&IdempotencyKey>,
    ) -> Result<Answer, reqwest::Error> {
        let mut request = match method {
            Method::Get => self.http.get(url.clone()),
            Method::Post => self
                .http
                .post(url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body.to_owned()),
        };
        request =
            request.bearer_auth(self.secret_key.expose_secret()).header("Stripe-Version", self.api_version.clone());
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key.as_str());
        }
        let response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        // Reading the body can fail like the connection can; both are retried.
        let body = response.bytes().await?.to_vec();
        tracing::debug!(
            path = url.path(),
            status = status.as_u16(),
            request_id = headers.get("request-id").and_then(|v| v.to_str().ok()),
            "Stripe answered"
        );
        Ok(Answer { status, headers, body })
    }

    /// Exponential backoff with jitter (half to all of the step), at least what `Retry-After`
    /// asks for when that is reasonable.
    fn retry_delay(&self, attempt: u32, headers: Option<&HeaderMap>) -> Duration {
        let step = self.initial_retry_delay.saturating_mul(2u32.saturating_pow(attempt)).min(MAX_RETRY_DELAY);
        let jittered = step.mul_f64(rand::thread_rng().gen_range(0.5..=1.0));
        let retry_after = headers
            .and_then(|h| h.get(reqwest::header::RETRY_AFTER))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs)
            .filter(|d| *d <= MAX_RETRY_AFTER);
        retry_after.map_or(jittered, |ra| ra.max(jittered))
    }
}

fn should_retry(status: StatusCode, headers: &HeaderMap) -> bool {
    match headers.get("stripe-should-retry").and_then(|v| v.to_str().ok()) {
        Some("true") => return true,
        Some("false") => return false,
        _ => {}
    }
    status == StatusCode::CONFLICT || status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

fn is_transient(status: StatusCode) -> bool {
    status == StatusCode::CONFLICT || status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

fn interpret<T: DeserializeOwned>(op: &'static str, answer: Answer) -> Result<T, ProcessorError> {
    if answer.status.is_success() {
        // A success we cannot read may still have taken effect: the caller retries with the
        // same idempotency key and Stripe replays the stored answer.
        return serde_json::from_slice(&answer.body)
            .map_err(|e| ProcessorError::Unavailable(format!("{op}: unreadable answer from Stripe: {e}")));
    }
    Err(map_error(op, answer.status, &answer.body))
}

/// Stripe's error object onto [`ProcessorError`].
pub(crate) fn map_error(op: &'static str, status: StatusCode, body: &[u8]) -> ProcessorError {
    let error = serde_json::from_slice::<objects::ErrorBody>(body).ok().and_then(|b| b.error);
    let Some(error) = error else {
        // Not Stripe's error object: a proxy, or a server without this route. localstripe
        // answers plain-text 404 for what it does not implement (Checkout Sessions, …).
        return if status == StatusCode::NOT_FOUND {
            ProcessorError::Unsupported(op)
        } else if is_transient(status) {
            ProcessorError::Unavailable(format!("{op}: HTTP {status}"))
        } else {
            let text: String = String::from_utf8_lossy(body).chars().take(200).collect();
            ProcessorError::InvalidRequest { code: None, message: format!("{op}: HTTP {status}: {text}"), param: None }
        };
    };
    tracing::info!(
        op,
        status = status.as_u16(),
        kind = error.kind.as_deref(),
        code = error.code.as_deref(),
        decline_code = error.decline_code.as_deref(),
        "Stripe refused the request"
    );
    if status == StatusCode::PAYMENT_REQUIRED || error.kind.as_deref() == Some("card_error") {
        let payment_intent = error.payment_intent.clone().and_then(|pi| pi.into_neutral().ok()).map(Box::new);
        return ProcessorError::Payment { error: error.into_payment_error(), payment_intent };
    }
    let message = error.message.unwrap_or_else(|| format!("{op}: HTTP {status}"));
    if status == StatusCode::NOT_FOUND {
        // Stripe names unknown routes this way, in JSON.
        if message.starts_with("Unrecognized request URL") {
            return ProcessorError::Unsupported(op);
        }
        return ProcessorError::NotFound(message);
    }
    if is_transient(status) {
        return ProcessorError::Unavailable(format!("{op}: {message}"));
    }
    ProcessorError::InvalidRequest { code: error.code, message, param: error.param }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_overrides_the_status() {
        let mut h = HeaderMap::new();
        assert!(should_retry(StatusCode::INTERNAL_SERVER_ERROR, &h));
        assert!(should_retry(StatusCode::TOO_MANY_REQUESTS, &h));
        assert!(should_retry(StatusCode::CONFLICT, &h));
        assert!(!should_retry(StatusCode::BAD_REQUEST, &h));
        assert!(!should_retry(StatusCode::PAYMENT_REQUIRED, &h));
        h.insert("stripe-should-retry", HeaderValue::from_static("false"));
        assert!(!should_retry(StatusCode::SERVICE_UNAVAILABLE, &h));
        h.insert("stripe-should-retry", HeaderValue::from_static("true"));
        assert!(should_retry(StatusCode::BAD_REQUEST, &h));
    }

    #[test]
    fn stripe_errors_map_by_status_and_type() {
        let card = br#"{"error":{"type":"card_error","code":"card_declined","decline_code":"insufficient_funds",
            "message":"Your card has insufficient funds.","payment_intent":{"id":"pi_1","status":"requires_payment_method"}}}"#;
        match map_error("op", StatusCode::PAYMENT_REQUIRED, card) {
            ProcessorError::Payment { error, payment_intent } => {
                assert_eq!(error.code, "card_declined");
                assert_eq!(error.decline_code.as_deref(), Some("insufficient_funds"));
                assert_eq!(payment_intent.unwrap().id, "pi_1");
            }
            other => panic!("{other:?}"),
        }
        let missing = br#"{"error":{"type":"invalid_request_error","code":"resource_missing","message":"No such payment_intent: 'pi_x'","param":"intent"}}"#;
        assert_eq!(
            map_error("op", StatusCode::NOT_FOUND, missing),
            ProcessorError::NotFound("No such payment_intent: 'pi_x'".into())
        );
        let route =
            br#"{"error":{"type":"invalid_request_error","message":"Unrecognized request URL (POST: /v1/x)."}}"#;
        assert_eq!(map_error("op", StatusCode::NOT_FOUND, route), ProcessorError::Unsupported("op"));
        assert_eq!(map_error("op", StatusCode::NOT_FOUND, b"404: Not Found"), ProcessorError::Unsupported("op"));
        let bad = br#"{"error":{"type":"invalid_request_error","code":"parameter_invalid_integer","message":"Invalid integer: x","param":"amount"}}"#;
        assert_eq!(
            map_error("op", StatusCode::BAD_REQUEST, bad),
            ProcessorError::InvalidRequest {
                code: Some("parameter_invalid_integer".into()),
                message: "Invalid integer: x".into(),
                param: Some("amount".into())
            }
        );
        assert!(matches!(map_error("op", StatusCode::BAD_GATEWAY, b"<html>"), ProcessorError::Unavailable(_)));
        assert!(matches!(
            map_error("op", StatusCode::UNAUTHORIZED, b"{\"error\":{\"message\":\"Invalid API Key provided\"}}"),
            ProcessorError::InvalidRequest { .. }
        ));
    }
}
