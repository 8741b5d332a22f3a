//! A subscription: a customer paying a recurring price period after period.
//!
//! ```text
//!  incomplete ──(first invoice paid)──▶ active ◀──(invoice paid)── past_due ──(retries used up)──▶ canceled | unpaid
//!  trialing ──(trial ends)──▶ active ──(renewal fails / needs the customer)──▶ past_due
//!  any but canceled ──(cancel now, or the period ends with cancel_at_period_end)──▶ canceled
//!  incomplete ──(first invoice not paid within 23 hours of the start)──▶ incomplete_expired
//! ```
//!
//! The period advances when the renewal invoice for the next period is created (as Stripe's
//! does): the invoice bills that period, and whether it is paid moves the status. Canceled and
//! incomplete_expired are final (never billed again); an `unpaid` subscription returns to `active` when its open invoice is paid.

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
        /// Its first invoice was not paid within [`INCOMPLETE_EXPIRES_AFTER_SECS`] of its start
        /// (Stripe's): ended like canceled, its open invoice voided.
        IncompleteExpired => "incomplete_expired",
    }
);

/// How long an `incomplete` subscription waits for its first invoice to be paid before it
/// becomes `incomplete_expired` (Stripe's 23 hours), counted from its creation.
pub const INCOMPLETE_EXPIRES_AFTER_SECS: i64 = 23 * 3600;

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
    /// The first invoice was not paid in time ([`INCOMPLETE_EXPIRES_AFTER_SECS`]): ends an
    /// `incomplete` subscription; from any other status nothing happens (a sweep that finds it
    /// paid or canceled meanwhile changes nothing).
    FirstInvoiceExpired,
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

/// Whether a subscription in `status` has ended for good: canceled or expired before its
/// first payment. Nothing changes it any more.
pub fn ended(status: SubscriptionStatus) -> bool {
    use SubscriptionStatus as S;
    matches!(status, S::Canceled | S::IncompleteExpired)
}

pub fn transition(current: &SubscriptionState, input: &SubscriptionInput) -> Result<Transition, Refused> {
    use SubscriptionEffect as E;
    use SubscriptionStatus as S;
    let mut next = current.clone();
    let mut effects = Vec::new();
    let canceled = ended(current.status);
    match input {
        SubscriptionInput::FirstInvoiceExpired => {
            if current.status == S::Incomplete {
                next.status = S::IncompleteExpired;
                effects.push(E::StopBilling);
                effects.push(E::Record("subscription.deleted"));
            }
        }
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
                return Err(Refused::new("subscription_canceled", "The subscription has ended already."));
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
                return Err(Refused::new("subscription_canceled", "A subscription that ended cannot be resumed."));
            }
            if current.cancel_at_period_end {
                next.cancel_at_period_end = false;
                effects.push(E::Record("subscription.updated"));
            }
        }
        SubscriptionInput::Updated => {
            if canceled {
                return Err(Refused::new("subscription_canceled", "A subscription that ended cannot be changed."));
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
            Just(SubscriptionInput::FirstInvoiceExpired),
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
                prop_assert!(ended(status));
                return Ok(());
            };
            if ended(status) {
                prop_assert_eq!(t.next.status, status);
                prop_assert!(t.effects.is_empty());
                prop_assert!(!bills(status));
            }
            if t.effects.contains(&SubscriptionEffect::Renew) {
                prop_assert!(bills(status) && !flag);
            }
            // Only an incomplete subscription expires, and nothing else expires it.
            if t.next.status == SubscriptionStatus::IncompleteExpired {
                prop_assert!(status == SubscriptionStatus::IncompleteExpired
                    || (status == SubscriptionStatus::Incomplete && input == SubscriptionInput::FirstInvoiceExpired));
            }
            if input == SubscriptionInput::FirstInvoiceExpired && status != SubscriptionStatus::Incomplete {
                prop_assert_eq!(&t.next, &current);
                prop_assert!(t.effects.is_empty());
            }
            // Ending records subscription.deleted, and stops billing, exactly when it ends.
            let deleted = t.effects.contains(&SubscriptionEffect::Record("subscription.deleted"));
            prop_assert_eq!(deleted, !ended(status) && ended(t.next.status));
            prop_assert_eq!(t.effects.contains(&SubscriptionEffect::StopBilling), deleted);
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

    #[test]
    fn an_unpaid_first_invoice_expires_an_incomplete_subscription_only() {
        let state = |status| SubscriptionState { status, cancel_at_period_end: false };
        let t = transition(&state(SubscriptionStatus::Incomplete), &SubscriptionInput::FirstInvoiceExpired).unwrap();
        assert_eq!(t.next.status, SubscriptionStatus::IncompleteExpired);
        assert_eq!(
            t.effects,
            vec![SubscriptionEffect::StopBilling, SubscriptionEffect::Record("subscription.deleted")]
        );
        for status in SubscriptionStatus::ALL.iter().copied().filter(|s| *s != SubscriptionStatus::Incomplete) {
            let t = transition(&state(status), &SubscriptionInput::FirstInvoiceExpired).unwrap();
            assert_eq!((t.next, t.effects), (state(status), vec![]), "{status:?}: no change, no error");
        }
        // Expired is final: never billed, renewed, revived by a payment, changed or resumed.
        let expired = state(SubscriptionStatus::IncompleteExpired);
        assert!(!bills(SubscriptionStatus::IncompleteExpired));
        for input in [SubscriptionInput::InvoicePaid, SubscriptionInput::PeriodEnded] {
            let t = transition(&expired, &input).unwrap();
            assert_eq!((t.next, t.effects), (expired.clone(), vec![]));
        }
        for input in
            [SubscriptionInput::Cancel { at_period_end: false }, SubscriptionInput::Resume, SubscriptionInput::Updated]
        {
            assert_eq!(transition(&expired, &input).unwrap_err().code, "subscription_canceled");
        }
    }
}
