//! Webhook endpoints and the delivery log as the admin API shows them.

use crate::objects::{Metadata, parse_metadata};
use kassa_store::webhook_deliveries::AttemptRow;
use kassa_store::webhook_endpoints::EndpointRow;
use serde::Serialize;
use utoipa::ToSchema;

/// A URL of the merchant that receives Kassa's events, signed like Stripe's.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookEndpoint {
    pub id: String,
    /// Always `webhook_endpoint`.
    pub object: &'static str,
    pub url: String,
    pub description: Option<String>,
    /// Event types sent to the endpoint, or `["*"]` for all.
    pub enabled_events: Vec<String>,
    /// The `api_version` put in the events sent (Kassa's own when unset).
    pub api_version: Option<String>,
    /// `enabled` or `disabled`.
    pub status: String,
    /// Why a disabled endpoint is disabled: `manual`, or `failing` (deliveries failed for the
    /// whole retry schedule; a `webhook_endpoint.disabled` event was recorded).
    pub disabled_reason: Option<String>,
    /// The signing secret (`whsec_…`): shown only when the endpoint is created and when its
    /// secret is rolled. Verify deliveries with it like Stripe's (`Stripe-Signature`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Until when (Unix seconds) the secret before the last roll still signs beside the new one.
    pub previous_secret_expires: Option<i64>,
    pub metadata: Metadata,
    pub created: i64,
    pub updated: i64,
}

impl WebhookEndpoint {
    /// The endpoint without its secret.
    pub fn from_row(r: &EndpointRow) -> WebhookEndpoint {
        WebhookEndpoint {
            id: r.id.clone(),
            object: "webhook_endpoint",
            url: r.url.clone(),
            description: r.description.clone(),
            enabled_events: serde_json::from_str(&r.enabled_events).unwrap_or_default(),
            api_version: r.api_version.clone(),
            status: r.status.clone(),
            disabled_reason: r.disabled_reason.clone(),
            secret: None,
            previous_secret_expires: r.previous_secret_expires,
            metadata: parse_metadata(&r.metadata),
            created: r.created,
            updated: r.updated,
        }
    }
}

/// The answer to deleting an endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedWebhookEndpoint {
    pub id: String,
    /// Always `webhook_endpoint`.
    pub object: &'static str,
    pub deleted: bool,
}

/// One attempt to deliver an event to an endpoint: the delivery log.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookDeliveryAttempt {
    pub id: String,
    /// Always `webhook_delivery_attempt`.
    pub object: &'static str,
    /// The delivery (one per event and endpoint) this attempt belongs to.
    pub delivery: String,
    pub event: String,
    pub webhook_endpoint: String,
    /// The URL posted to.
    pub url: String,
    /// Whether the endpoint answered 2xx in time.
    pub succeeded: bool,
    /// The HTTP status of the answer; none when there was no answer (timeout, refused).
    pub status_code: Option<i64>,
    /// Milliseconds from sending to the end of the answer (or the failure).
    pub latency_ms: i64,
    /// Why the attempt failed, when it did.
    pub error: Option<String>,
    /// The start of the answer's body (at most 1,024 bytes).
    pub response_body: Option<String>,
    /// When the attempt was made (Unix seconds).
    pub created: i64,
}

impl From<AttemptRow> for WebhookDeliveryAttempt {
    fn from(r: AttemptRow) -> Self {
        WebhookDeliveryAttempt {
            id: r.id,
            object: "webhook_delivery_attempt",
            delivery: r.delivery,
            event: r.event,
            webhook_endpoint: r.endpoint,
            url: r.url,
            succeeded: r.succeeded != 0,
            status_code: r.status_code,
            latency_ms: r.latency_ms,
            error: r.error,
            response_body: r.response_body,
            created: r.created,
        }
    }
}

/// The answer to a resend.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventResent {
    /// The event.
    pub id: String,
    /// Always `event`.
    pub object: &'static str,
    /// The endpoints the event is being sent to again.
    pub webhook_endpoints: Vec<String>,
}
