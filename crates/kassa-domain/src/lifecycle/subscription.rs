//! A subscription: a customer paying a recurring price period after period.
//!
//! ```text
//!  incomplete ──(first invoice paid)──▶ active ◀──(invoice paid)── past_due ──(retries used up)──▶ canceled | unpaid
//!  trialing ──(trial ends)──▶ active ──(renewal fails / needs the customer)──▶ past_due
//!  any but canceled ──(cancel now, or the period ends with cancel_at_period_end)──▶ canceled
//! ```
//!
//! The period advances when the renewal invoice for the next period is created (as Stripe's
//! does): the invoice bills that period, and whether it is paid moves the status. Canceled is
//! final; an `unpaid` subscription returns to `active` when its open invoice is paid.

use super::{Refused, status_enum};

status_enum!(
    SubscriptionStatus {
        /// Created, its first invoice not paid yet.
        Incomplete => "incomplete",
        Trialing => "trialing",
        Active => "active",
        /// The latest invoice failed (or needs the customer); retries are scheduled.
        PastDue => "past_due",
        /// Ended: by the merchant, at the period end, or after the last retry.
        Canceled => "canceled",
        /// The retries are used up and the merchant chose to keep it (no more renewals).
        Unpaid => "unpaid",
    }
);

/// What ends dunning after the last retry (configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AfterLastRetry {
    #[default]
    Cancel,
    MarkUnpaid,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionState {
    pub status: SubscriptionStatus,
    pub cancel_at_period_end: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubscriptionInput {
    /// An invoice of this subscription was paid.
    InvoicePaid,
    /// An invoice payment was declined or needs the customer's authentication; `retries_left`
    /// says whether the schedule tries again.
    InvoiceFailed {
        retries_left: bool,
        after_last: AfterLastRetry,
    },
    /// The current period ended: renew, or end it when it was to be canceled at the period end.
    PeriodEnded,
    Cancel {
        at_period_end: bool,
    },
    /// Undo a cancel at the period end.
    Resume,
    /// Price or quantity changed.
    Updated,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubscriptionEffect {
    /// Create the invoice of the next period and advance the period.
    Renew,
    /// Stop billing: void what is still open of it.
    StopBilling,
    Record(&'static str),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub next: SubscriptionState,
    pub effects: Vec<SubscriptionEffect>,
}

/// Whether invoices are still made for a subscription in `status`.
pub fn bills(status: SubscriptionStatus) -> bool {
    use SubscriptionStatus as S;
    matches!(status, S::Incomplete | S::Trialing | S::Active | S::PastDue)
}

pub fn transition(current: &SubscriptionState, input: &SubscriptionInput) -> Result<Transition, Refused> {
    use SubscriptionEffect as E;
    use SubscriptionStatus as S;
    let mut next = current.clone();
    let mut effects = Vec::new();
    let canceled = current.status == S::Canceled;
    match input {
        SubscriptionInput::InvoicePaid => {
            // A trial's own (zero) invoice leaves it trialing; the trial ends with its period.
            if matches!(current.status, S::Incomplete | S::PastDue | S::Unpaid) {
                next.status = S::Active;
                effects.push(E::Record("subscription.updated"));
            }
        }
        SubscriptionInput::InvoiceFailed { retries_left, after_last } => {
            if canceled || current.status == S::Unpaid {
                return Ok(Transition { next, effects });
            }
            next.status = match (retries_left, current.status) {
                (true, S::Incomplete) => S::Incomplete,
                (true, _) => S::PastDue,
                (false, _) if *after_last == AfterLastRetry::MarkUnpaid => S::Unpaid,
                (false, _) => S::Canceled,
            };
            if next.status == S::Canceled {
                effects.push(E::StopBilling);
                effects.push(E::Record("subscription.deleted"));
            } else if next.status != current.status {
                effects.push(E::Record("subscription.updated"));
            }
        }
        SubscriptionInput::PeriodEnded => {
            if !bills(current.status) {
                return Ok(Transition { next, effects });
            }
            if current.cancel_at_period_end {
                next.status = S::Canceled;
                effects.push(E::StopBilling);
                effects.push(E::Record("subscription.deleted"));
            } else {
                if current.status == S::Trialing {
                    next.status = S::Active;
                    effects.push(E::Record("subscription.updated"));
                }
                effects.push(E::Renew);
            }
        }
        SubscriptionInput::Cancel { at_period_end } => {
            if canceled {
                return Err(Refused::new("subscription_canceled", "The subscription is canceled already."));
            }
            if *at_period_end {
                if !current.cancel_at_period_end {
                    next.cancel_at_period_end = true;
                    effects.push(E::Record("subscription.updated"));
                }
            } else {
                next.status = S::Canceled;
                effects.push(E::StopBilling);
                effects.push(E::Record("subscription.deleted"));
            }
        }
        SubscriptionInput::Resume => {
            if canceled {
                return Err(Refused::new("subscription_canceled", "A canceled subscription cannot be resumed."));
            }
            if current.cancel_at_period_end {
                next.cancel_at_period_end = false;
                effects.push(E::Record("subscription.updated"));
            }
        }
        SubscriptionInput::Updated => {
            if canceled {
                return Err(Refused::new("subscription_canceled", "A canceled subscription cannot be changed."));
            }
            effects.push(E::Record("subscription.updated"));
        }
    }
    Ok(Transition { next, effects })
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::*;
    use proptest::prelude::*;

    fn arb_input() -> impl Strategy<Value = SubscriptionInput> {
        prop_oneof![
            Just(SubscriptionInput::InvoicePaid),
            (any::<bool>(), any::<bool>()).prop_map(|(r, u)| SubscriptionInput::InvoiceFailed {
                retries_left: r,
                after_last: if u { AfterLastRetry::MarkUnpaid } else { AfterLastRetry::Cancel }
            }),
            Just(SubscriptionInput::PeriodEnded),
            any::<bool>().prop_map(|a| SubscriptionInput::Cancel { at_period_end: a }),
            Just(SubscriptionInput::Resume),
            Just(SubscriptionInput::Updated),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn canceled_is_final_and_renewals_only_while_billing(
            status in proptest::sample::select(SubscriptionStatus::ALL), flag in any::<bool>(), input in arb_input()
        ) {
            let current = SubscriptionState { status, cancel_at_period_end: flag };
            let Ok(t) = transition(&current, &input) else {
                prop_assert_eq!(status, SubscriptionStatus::Canceled);
                return Ok(());
            };
            if status == SubscriptionStatus::Canceled {
                prop_assert_eq!(t.next.status, SubscriptionStatus::Canceled);
                prop_assert!(t.effects.is_empty());
            }
            if t.effects.contains(&SubscriptionEffect::Renew) {
                prop_assert!(bills(status) && !flag);
            }
            // Ending records subscription.deleted exactly when it becomes canceled.
            let deleted = t.effects.contains(&SubscriptionEffect::Record("subscription.deleted"));
            prop_assert_eq!(deleted, status != SubscriptionStatus::Canceled && t.next.status == SubscriptionStatus::Canceled);
        }
    }

    #[test]
    fn dunning_moves_past_due_then_ends() {
        let active = SubscriptionState { status: SubscriptionStatus::Active, cancel_at_period_end: false };
        let failed = |r| SubscriptionInput::InvoiceFailed { retries_left: r, after_last: AfterLastRetry::Cancel };
        let t = transition(&active, &failed(true)).unwrap();
        assert_eq!(t.next.status, SubscriptionStatus::PastDue);
        let t2 = transition(&t.next, &failed(false)).unwrap();
        assert_eq!(t2.next.status, SubscriptionStatus::Canceled);
        let paid = transition(&t.next, &SubscriptionInput::InvoicePaid).unwrap();
        assert_eq!(paid.next.status, SubscriptionStatus::Active);
        let at_end = SubscriptionState { status: SubscriptionStatus::Active, cancel_at_period_end: true };
        assert_eq!(
            transition(&at_end, &SubscriptionInput::PeriodEnded).unwrap().next.status,
            SubscriptionStatus::Canceled
        );
    }
}
