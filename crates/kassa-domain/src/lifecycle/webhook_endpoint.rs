//! A webhook endpoint of the merchant: `enabled` receives events; `disabled` does not, either
//! because the merchant turned it off (`manual`) or because its deliveries failed for the
//! whole retry schedule (`failing`, recorded as `webhook_endpoint.disabled`). And a delivery
//! of one event to one endpoint: `pending` until an attempt succeeds or the schedule ends.

use super::status_enum;

status_enum!(
    WebhookEndpointStatus {
        Enabled => "enabled",
        Disabled => "disabled",
    }
);

status_enum!(
    /// Why a disabled endpoint is disabled.
    DisabledReason {
        /// The merchant disabled it.
        Manual => "manual",
        /// Its deliveries failed for the whole retry schedule.
        Failing => "failing",
    }
);

status_enum!(
    WebhookDeliveryStatus {
        /// Due, being attempted, or waiting for its next attempt.
        Pending => "pending",
        Succeeded => "succeeded",
        /// Gave up after the whole schedule (a resend starts it again).
        Failed => "failed",
    }
);

/// What happens to an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointInput {
    /// The merchant disables it.
    Disable,
    /// The merchant enables it.
    Enable,
    /// A delivery failed the whole schedule with no success to the endpoint meanwhile.
    FailedWholeSchedule,
}

/// The event recorded when an endpoint is disabled for failing.
pub const DISABLED_EVENT: &str = "webhook_endpoint.disabled";

/// Whether an endpoint subscribed to `enabled_events` may want events of `kind`: `*` counts as
/// every type. A superset of the delivery job's own matching (which may narrow `*`), so a
/// server that asks this before skipping the fan-out never skips an event an endpoint wants.
pub fn subscribes(enabled_events: &[String], kind: &str) -> bool {
    enabled_events.iter().any(|e| e == "*" || e == kind)
}

/// The next status and reason, or `None` when nothing changes.
pub fn transition(
    status: WebhookEndpointStatus,
    input: EndpointInput,
) -> Option<(WebhookEndpointStatus, Option<DisabledReason>)> {
    use EndpointInput::*;
    use WebhookEndpointStatus::*;
    match (status, input) {
        (Enabled, Disable) => Some((Disabled, Some(DisabledReason::Manual))),
        (Enabled, FailedWholeSchedule) => Some((Disabled, Some(DisabledReason::Failing))),
        (Disabled, Enable) => Some((Enabled, None)),
        (Enabled, Enable) | (Disabled, Disable) | (Disabled, FailedWholeSchedule) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::Status;

    #[test]
    fn every_pair_has_an_answer() {
        for &s in WebhookEndpointStatus::ALL {
            for i in [EndpointInput::Disable, EndpointInput::Enable, EndpointInput::FailedWholeSchedule] {
                if let Some((next, reason)) = transition(s, i) {
                    assert_ne!(next, s, "{s:?} {i:?}");
                    assert_eq!(reason.is_some(), next == WebhookEndpointStatus::Disabled);
                }
            }
        }
        assert_eq!(
            transition(WebhookEndpointStatus::Enabled, EndpointInput::FailedWholeSchedule),
            Some((WebhookEndpointStatus::Disabled, Some(DisabledReason::Failing)))
        );
    }
}
