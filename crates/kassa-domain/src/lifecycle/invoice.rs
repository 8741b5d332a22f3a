//! An invoice: what a subscription owes for one period (or for a mid-period change).
//!
//! ```text
//!  draft ──▶ open ──▶ paid
//!              │ ╲──▶ void            (the subscription ended before it was paid)
//!              └──▶ uncollectible ──▶ paid (paid late)
//! ```
//!
//! An open invoice is tried on the retry schedule; each failed attempt counts. Paid, void are
//! final.

use super::{Refused, status_enum};

status_enum!(
    InvoiceStatus {
        Draft => "draft",
        Open => "open",
        Paid => "paid",
        Void => "void",
        Uncollectible => "uncollectible",
    }
);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvoiceState {
    pub status: InvoiceStatus,
    pub amount_due: i64,
    pub amount_paid: i64,
    pub attempt_count: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InvoiceInput {
    Finalize,
    /// A payment attempt succeeded.
    Paid,
    /// A payment attempt was declined or needs the customer (`action_required`).
    AttemptFailed {
        action_required: bool,
    },
    /// The retries are used up.
    GiveUp,
    Void,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InvoiceEffect {
    /// Grant what the paid period carries (credits).
    Fulfil,
    Record(&'static str),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub next: InvoiceState,
    pub effects: Vec<InvoiceEffect>,
}

pub fn transition(current: &InvoiceState, input: &InvoiceInput) -> Result<Transition, Refused> {
    use InvoiceEffect as E;
    use InvoiceStatus as S;
    let mut next = current.clone();
    let mut effects = Vec::new();
    match input {
        InvoiceInput::Finalize => {
            if current.status != S::Draft {
                return Err(Refused::new("invoice_not_draft", "Only a draft invoice can be finalized."));
            }
            next.status = S::Open;
            effects.push(E::Record("invoice.finalized"));
        }
        InvoiceInput::Paid => match current.status {
            S::Open | S::Uncollectible => {
                next.status = S::Paid;
                next.amount_paid = current.amount_due;
                next.attempt_count += 1;
                effects.push(E::Fulfil);
                effects.push(E::Record("invoice.paid"));
            }
            S::Paid => {}
            S::Draft | S::Void => {
                return Err(Refused::new("invoice_not_payable", format!("The invoice is {}.", current.status)));
            }
        },
        InvoiceInput::AttemptFailed { action_required } => {
            if current.status != S::Open {
                return Err(Refused::new("invoice_not_payable", format!("The invoice is {}.", current.status)));
            }
            next.attempt_count += 1;
            effects.push(E::Record("invoice.payment_failed"));
            if *action_required {
                effects.push(E::Record("invoice.payment_action_required"));
            }
        }
        InvoiceInput::GiveUp => {
            if current.status == S::Open {
                next.status = S::Uncollectible;
                effects.push(E::Record("invoice.marked_uncollectible"));
            }
        }
        InvoiceInput::Void => match current.status {
            S::Draft | S::Open | S::Uncollectible => {
                next.status = S::Void;
                effects.push(E::Record("invoice.voided"));
            }
            S::Void => {}
            S::Paid => return Err(Refused::new("invoice_paid", "A paid invoice cannot be voided.")),
        },
    }
    Ok(Transition { next, effects })
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::*;
    use proptest::prelude::*;

    fn arb_input() -> impl Strategy<Value = InvoiceInput> {
        prop_oneof![
            Just(InvoiceInput::Finalize),
            Just(InvoiceInput::Paid),
            any::<bool>().prop_map(|a| InvoiceInput::AttemptFailed { action_required: a }),
            Just(InvoiceInput::GiveUp),
            Just(InvoiceInput::Void),
        ]
    }

    proptest! {
        #[test]
        fn paid_and_void_are_final_and_fulfilment_happens_once(
            status in proptest::sample::select(InvoiceStatus::ALL), attempts in 0i64..10, input in arb_input()
        ) {
            let current = InvoiceState { status, amount_due: 500, amount_paid: 0, attempt_count: attempts };
            let Ok(t) = transition(&current, &input) else { return Ok(()) };
            if matches!(status, InvoiceStatus::Paid | InvoiceStatus::Void) {
                prop_assert_eq!(t.next.status, status);
            }
            let fulfils = t.effects.contains(&InvoiceEffect::Fulfil);
            prop_assert_eq!(fulfils, status != InvoiceStatus::Paid && t.next.status == InvoiceStatus::Paid);
            prop_assert!(t.next.attempt_count >= current.attempt_count);
        }
    }
}
