//! A refund: the amount is set aside on its order first (`pending`), then the processor
//! call settles it. A pending refund is retried with the same idempotency key until the
//! processor answers; a settled one never changes again.

use super::status_enum;

status_enum!(
    RefundStatus {
        /// Set aside; the processor has not confirmed it yet.
        Pending => "pending",
        Succeeded => "succeeded",
        /// The processor refused it; the amount set aside is released.
        Failed => "failed",
    }
);

impl RefundStatus {
    /// The event recorded when a refund enters this status.
    pub fn event_kind(self) -> &'static str {
        match self {
            Self::Pending => "refund.pending",
            Self::Succeeded => "refund.succeeded",
            Self::Failed => "refund.failed",
        }
    }
}

/// The processor's answer to a refund call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefundOutcome {
    Succeeded,
    Refused,
    /// No answer (outage, timeout): stays pending, retried later.
    Unknown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefundEffect {
    /// The order's refunded amount settles (its payment status follows).
    SettleOrder,
    /// Give the amount set aside back to the order's refundable amount.
    ReleaseReservation,
}

/// What follows the processor's answer for a refund in `current`: the next status and its
/// effects, or `None` when nothing changes (settled already, or no answer).
pub fn settle(current: RefundStatus, outcome: RefundOutcome) -> Option<(RefundStatus, RefundEffect)> {
    match (current, outcome) {
        (RefundStatus::Pending, RefundOutcome::Succeeded) => Some((RefundStatus::Succeeded, RefundEffect::SettleOrder)),
        (RefundStatus::Pending, RefundOutcome::Refused) => {
            Some((RefundStatus::Failed, RefundEffect::ReleaseReservation))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::*;

    #[test]
    fn settled_refunds_never_change() {
        for &s in RefundStatus::ALL {
            for o in [RefundOutcome::Succeeded, RefundOutcome::Refused, RefundOutcome::Unknown] {
                let next = settle(s, o);
                if s != RefundStatus::Pending || o == RefundOutcome::Unknown {
                    assert_eq!(next, None);
                }
            }
        }
        assert_eq!(
            settle(RefundStatus::Pending, RefundOutcome::Succeeded),
            Some((RefundStatus::Succeeded, RefundEffect::SettleOrder))
        );
    }
}
