//! A hosted checkout session: open until the buyer pays (complete) or it times out
//! (expired). Its payment status says whether the money came in.

use super::status_enum;

status_enum!(
    SessionStatus {
        Open => "open",
        Complete => "complete",
        Expired => "expired",
    }
);

status_enum!(
    SessionPaymentStatus {
        Unpaid => "unpaid",
        Paid => "paid",
        /// Nothing to pay (a zero total).
        NoPaymentRequired => "no_payment_required",
    }
);

status_enum!(
    /// What a session sells.
    SessionPurpose {
        /// A cart: the order is created when it is paid.
        Cart => "cart",
        /// A credit top-up.
        Credits => "credits",
        /// A subscription (recurring price × quantity): the card is saved with the buyer's
        /// consent, and the subscription starts with its first invoice paid by this payment.
        Subscription => "subscription",
    }
);

/// A session's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionState {
    pub status: SessionStatus,
    pub payment_status: SessionPaymentStatus,
}

/// The processor's current view of its session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionReport {
    pub status: SessionStatus,
    /// The processor's session is paid and its PaymentIntent secured the money.
    pub money_secured: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionEffect {
    /// Record the money that came in as the session's payment and apply it (the order, or
    /// the credits).
    ApplyPayment,
    Record(&'static str),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub next: SessionState,
    pub effects: Vec<SessionEffect>,
}

/// What follows the processor's `report` for a session in `current`. Reports may come late
/// and repeated (webhooks, the success page, the expiry job): completion wins over expiry,
/// since money that came in must be applied.
pub fn transition(current: SessionState, report: SessionReport) -> Transition {
    use SessionStatus::*;
    let mut next = current;
    let mut effects = Vec::new();
    match report.status {
        Complete => next.status = Complete,
        Expired if current.status == Open => next.status = Expired,
        _ => {}
    }
    if report.money_secured {
        next.payment_status = SessionPaymentStatus::Paid;
        // Applying is idempotent on the payment's side; it runs on every report of secured
        // money so a crash between the two never loses it.
        effects.push(SessionEffect::ApplyPayment);
    }
    if next.status != current.status {
        effects.push(SessionEffect::Record(match next.status {
            Complete => "checkout.session.completed",
            Expired => "checkout.session.expired",
            Open => unreachable!("no report reopens a session"),
        }));
    }
    Transition { next, effects }
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::*;

    #[test]
    fn every_pair() {
        for &status in SessionStatus::ALL {
            for &payment_status in SessionPaymentStatus::ALL {
                for &reported in SessionStatus::ALL {
                    for money_secured in [false, true] {
                        let current = SessionState { status, payment_status };
                        let t = transition(current, SessionReport { status: reported, money_secured });
                        // Nothing reopens a session; complete is terminal; paid stays paid.
                        if status != SessionStatus::Open {
                            assert_ne!(t.next.status, SessionStatus::Open);
                        }
                        if status == SessionStatus::Complete {
                            assert_eq!(t.next.status, SessionStatus::Complete);
                        }
                        if payment_status == SessionPaymentStatus::Paid {
                            assert_eq!(t.next.payment_status, SessionPaymentStatus::Paid);
                        }
                        assert_eq!(t.effects.contains(&SessionEffect::ApplyPayment), money_secured);
                        let again = transition(t.next, SessionReport { status: reported, money_secured });
                        assert_eq!(again.next, t.next, "a repeated report changes nothing");
                        assert!(!again.effects.iter().any(|e| matches!(e, SessionEffect::Record(_))));
                    }
                }
            }
        }
    }

    #[test]
    fn money_after_expiry_still_completes() {
        let expired = SessionState { status: SessionStatus::Expired, payment_status: SessionPaymentStatus::Unpaid };
        let t = transition(expired, SessionReport { status: SessionStatus::Complete, money_secured: true });
        assert_eq!(t.next.status, SessionStatus::Complete);
        assert_eq!(t.effects, vec![SessionEffect::ApplyPayment, SessionEffect::Record("checkout.session.completed")]);
    }
}
