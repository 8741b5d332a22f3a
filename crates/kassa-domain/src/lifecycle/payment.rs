//! A payment: one attempt to take money for a cart (or a credit top-up), and what Kassa
//! knows of its outcome at the processor.
//!
//! ```text
//!  pending ──▶ requires_action ──▶ processing ──▶ succeeded ◀── authorized ──▶ canceled
//!     │  ╲            │                 │            │  ▲           │
//!     │   ╲───────────┴─────────────────┴──▶ failed ─┘  │           │ (cart changed or
//!     │                                                 │           │  paid already)
//!     └──────────────────────────────────────▶ canceled │           ▼
//!                                                void_pending ──▶ voided
//! ```
//!
//! The processor's report (the pay call's answer, a webhook, reconciliation) is the truth
//! and may arrive late, twice or out of order: a report of what is recorded already changes
//! nothing, and money once secured (succeeded, authorized) never goes back to an open or
//! failed state — an authorization can only end (canceled) or be captured, and money Kassa
//! cannot use is given back (`void_pending` → `voided`).

use super::{Refused, status_enum};

status_enum!(
    /// Where a payment stands.
    PaymentStatus {
        /// The processor call is about to be made, or its outcome is unknown.
        Pending => "pending",
        /// The customer must act (3-D Secure); `next_action_url` says where.
        RequiresAction => "requires_action",
        /// An asynchronous method; the outcome arrives later.
        Processing => "processing",
        /// Captured.
        Succeeded => "succeeded",
        /// Authorized, to be captured by the merchant (manual capture).
        Authorized => "authorized",
        /// Refused (declined, or the payment source was invalid).
        Failed => "failed",
        /// Abandoned before money moved, or an authorization released.
        Canceled => "canceled",
        /// Secured, but what it paid for cannot be delivered: being given back.
        VoidPending => "void_pending",
        /// Given back (authorization canceled or charge refunded).
        Voided => "voided",
    }
);

impl PaymentStatus {
    /// The money is (or was) in hand: captured, authorized, or being/been given back.
    pub fn is_secured(self) -> bool {
        matches!(self, Self::Succeeded | Self::Authorized | Self::VoidPending | Self::Voided)
    }

    /// The outcome is still open at the processor.
    pub fn is_unsettled(self) -> bool {
        matches!(self, Self::Pending | Self::RequiresAction | Self::Processing)
    }

    /// The payment paid for what it was made for (an order exists, or credits were added).
    pub fn is_kept(self) -> bool {
        matches!(self, Self::Succeeded | Self::Authorized)
    }

    /// The event recorded when a payment enters this status.
    pub fn event_kind(self) -> Option<&'static str> {
        Some(match self {
            Self::Succeeded => "payment.succeeded",
            Self::Authorized => "payment.authorized",
            Self::Failed => "payment.failed",
            Self::Canceled => "payment.canceled",
            Self::RequiresAction => "payment.requires_action",
            Self::VoidPending => "payment.void_pending",
            Self::Voided => "payment.voided",
            Self::Pending | Self::Processing => return None,
        })
    }
}

status_enum!(
    /// What a payment pays for.
    Purpose {
        /// A cart; the order is created when the money is secured.
        Order => "order",
        /// A credit top-up; the credits are added when the money is secured.
        Credits => "credits",
    }
);

status_enum!(
    /// Why secured money is given back.
    VoidReason {
        /// The cart changed (or expired) while the payment was in flight.
        Stale => "stale",
        /// Another payment completed the cart first.
        Duplicate => "duplicate",
        /// The payment had been canceled when the processor reported the money secured.
        Canceled => "canceled",
        /// A second charge carrying this payment's metadata (a repeated processor call the
        /// processor did not deduplicate): a payment row of its own, given back.
        DuplicateCharge => "duplicate_charge",
    }
);

/// A PaymentIntent's status at the processor (Stripe's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntentStatus {
    RequiresPaymentMethod,
    RequiresConfirmation,
    RequiresAction,
    Processing,
    RequiresCapture,
    Succeeded,
    Canceled,
}

/// Why a payment failed, as the processor said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub code: String,
    pub decline_code: Option<String>,
    pub message: Option<String>,
}

/// The processor's current view of the payment's PaymentIntent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntentReport {
    pub status: IntentStatus,
    pub amount_capturable: i64,
    pub amount_received: i64,
    pub amount_refunded: i64,
    /// Where the customer acts (3-D Secure), with `RequiresAction`.
    pub next_action_url: Option<String>,
    /// Why the last attempt failed, with `RequiresPaymentMethod`.
    pub last_error: Option<Failure>,
}

/// Whether the cart a payment was made for can still take it (decided from the locked cart,
/// see [`super::cart::check_payable`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CartCheck {
    Payable,
    /// Changed, expired, or a different amount or currency than paid.
    Stale,
    /// Completed by another payment.
    Completed,
}

/// What secured money would buy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The cart's order, if the cart can still take it.
    Order(CartCheck),
    /// The top-up's credits.
    Credits,
}

/// The mutable part of a payment: its status and what the processor reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentState {
    pub status: PaymentStatus,
    pub amount_capturable: i64,
    pub amount_captured: i64,
    pub amount_refunded: i64,
    pub failure: Option<Failure>,
    pub next_action_url: Option<String>,
    pub void_reason: Option<VoidReason>,
}

impl PaymentState {
    /// A payment about to be attempted.
    pub fn pending() -> PaymentState {
        PaymentState {
            status: PaymentStatus::Pending,
            amount_capturable: 0,
            amount_captured: 0,
            amount_refunded: 0,
            failure: None,
            next_action_url: None,
            void_reason: None,
        }
    }
}

/// What happened to a payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PaymentInput {
    /// The processor's current view of the PaymentIntent (the pay call's answer, a webhook,
    /// a hosted session's completion, reconciliation). `target` matters only when the report
    /// secures money that was not secured before.
    Reported { intent: IntentReport, target: Target },
    /// The processor refused the attempt without returning a PaymentIntent.
    Refused(Failure),
    /// The merchant captured the authorization through Kassa.
    Captured { amount_received: i64 },
    /// The merchant canceled the order; the authorization was released at the processor.
    AuthorizationReleased,
    /// The money of a `void_pending` payment was given back at the processor.
    GivenBack,
    /// A refund Kassa made settled at the processor.
    Refunded { amount: i64 },
}

/// What the service must do, in the same transaction, because of a transition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PaymentEffect {
    /// Create the cart's order, complete the cart and take its reserved stock.
    CreateOrder,
    /// Add the top-up's credits.
    AddCredits,
    /// The authorization was captured outside Kassa: the order follows.
    MarkOrderCaptured { amount_captured: i64 },
    /// The authorization ended at the processor: cancel the order as the merchant would.
    CancelOrder,
    /// The processor reports more refunded than recorded (a refund outside Kassa): the order
    /// (or the top-up's credits) follows.
    SyncRefunded { amount_refunded: i64 },
    /// Record this event about the payment.
    Record(&'static str),
}

/// The outcome of [`transition`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub next: PaymentState,
    pub effects: Vec<PaymentEffect>,
}

/// What follows `input` for a payment in state `current`.
///
/// A report of what is recorded already yields `next == current` and no effects: callers
/// write nothing then. Inputs that the current status cannot take are refused.
pub fn transition(current: &PaymentState, input: &PaymentInput) -> Result<Transition, Refused> {
    use PaymentStatus as S;
    let mut next = current.clone();
    let mut effects = Vec::new();
    match input {
        PaymentInput::Reported { intent, target } => {
            reported(current, intent, *target, &mut next, &mut effects);
        }
        PaymentInput::Refused(failure) => {
            if current.status.is_unsettled() {
                next.status = S::Failed;
                next.failure = Some(failure.clone());
                next.next_action_url = None;
            }
        }
        PaymentInput::Captured { amount_received } => match current.status {
            S::Authorized => {
                next.status = S::Succeeded;
                next.amount_captured = *amount_received;
                next.amount_capturable = 0;
            }
            S::Succeeded => {}
            other => return Err(Refused::new("payment_not_capturable", format!("The payment is {other}."))),
        },
        PaymentInput::AuthorizationReleased => match current.status {
            S::Authorized => {
                next.status = S::Canceled;
                next.amount_capturable = 0;
            }
            S::Canceled => {}
            other => {
                return Err(Refused::new("payment_not_cancelable", format!("The payment is {other}, not authorized.")));
            }
        },
        PaymentInput::GivenBack => match current.status {
            S::VoidPending => {
                next.status = S::Voided;
                next.amount_refunded = current.amount_captured;
                next.amount_capturable = 0;
            }
            S::Voided => {}
            other => return Err(Refused::new("payment_not_void_pending", format!("The payment is {other}."))),
        },
        PaymentInput::Refunded { amount } => {
            if !matches!(current.status, S::Succeeded | S::VoidPending | S::Voided) {
                return Err(Refused::new("payment_not_refundable", format!("The payment is {}.", current.status)));
            }
            next.amount_refunded = current.amount_refunded.saturating_add(*amount).min(current.amount_captured);
        }
    }
    if next.status != current.status
        && let Some(kind) = next.status.event_kind()
    {
        effects.push(PaymentEffect::Record(kind));
    }
    Ok(Transition { next, effects })
}

fn reported(
    current: &PaymentState,
    intent: &IntentReport,
    target: Target,
    next: &mut PaymentState,
    effects: &mut Vec<PaymentEffect>,
) {
    use IntentStatus as I;
    use PaymentStatus as S;
    match intent.status {
        I::Succeeded | I::RequiresCapture => {
            next.amount_capturable = intent.amount_capturable;
            next.amount_captured = intent.amount_received;
            let secured = if intent.status == I::Succeeded { S::Succeeded } else { S::Authorized };
            match current.status {
                // Captured outside Kassa (the processor's dashboard).
                S::Authorized if secured == S::Succeeded => {
                    next.status = S::Succeeded;
                    effects.push(PaymentEffect::MarkOrderCaptured { amount_captured: intent.amount_received });
                }
                // Recorded already (or being given back): only the amounts follow.
                s if s.is_secured() => {}
                // Canceled here, yet the money came in: it buys nothing, so it goes back.
                S::Canceled => {
                    next.status = S::VoidPending;
                    next.void_reason = Some(VoidReason::Canceled);
                    next.next_action_url = None;
                }
                _ => {
                    next.next_action_url = None;
                    next.failure = None;
                    match target {
                        Target::Credits => {
                            next.status = secured;
                            effects.push(PaymentEffect::AddCredits);
                        }
                        Target::Order(CartCheck::Payable) => {
                            next.status = secured;
                            effects.push(PaymentEffect::CreateOrder);
                        }
                        Target::Order(check) => {
                            next.status = S::VoidPending;
                            next.void_reason = Some(if check == CartCheck::Completed {
                                VoidReason::Duplicate
                            } else {
                                VoidReason::Stale
                            });
                        }
                    }
                }
            }
        }
        I::RequiresAction => {
            if current.status.is_unsettled() {
                next.status = S::RequiresAction;
                next.next_action_url = intent.next_action_url.clone();
            }
        }
        I::Processing => {
            if matches!(current.status, S::Pending | S::RequiresAction) {
                next.status = S::Processing;
                next.next_action_url = None;
            }
        }
        I::RequiresPaymentMethod | I::RequiresConfirmation => {
            if current.status.is_unsettled() {
                next.status = S::Failed;
                next.next_action_url = None;
                next.failure = Some(intent.last_error.clone().unwrap_or_else(|| Failure {
                    code: "payment_failed".into(),
                    decline_code: None,
                    message: None,
                }));
            }
        }
        I::Canceled => match current.status {
            s if s.is_unsettled() || s == S::Failed => {
                next.status = S::Canceled;
                next.next_action_url = None;
            }
            // The authorization ended at the processor (canceled there, or expired
            // uncaptured): the order is canceled as if the merchant had done it.
            S::Authorized => {
                next.status = S::Canceled;
                next.amount_capturable = 0;
                effects.push(PaymentEffect::CancelOrder);
            }
            _ => {}
        },
    }
    // Refunds made outside Kassa show up in the refunded amount; the order follows.
    // Monotonic: refunds Kassa set aside but the processor has not confirmed are never undone.
    if intent.amount_refunded > current.amount_refunded {
        next.amount_refunded = intent.amount_refunded;
        effects.push(PaymentEffect::SyncRefunded { amount_refunded: intent.amount_refunded });
    }
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::*;
    use proptest::prelude::*;

    const INTENTS: [IntentStatus; 7] = [
        IntentStatus::RequiresPaymentMethod,
        IntentStatus::RequiresConfirmation,
        IntentStatus::RequiresAction,
        IntentStatus::Processing,
        IntentStatus::RequiresCapture,
        IntentStatus::Succeeded,
        IntentStatus::Canceled,
    ];

    fn state(status: PaymentStatus) -> PaymentState {
        let secured = status.is_secured();
        PaymentState {
            status,
            amount_capturable: if status == PaymentStatus::Authorized { 1000 } else { 0 },
            amount_captured: if secured && status != PaymentStatus::Authorized { 1000 } else { 0 },
            ..PaymentState::pending()
        }
    }

    fn report(status: IntentStatus, refunded: i64) -> IntentReport {
        let (capturable, received) = match status {
            IntentStatus::RequiresCapture => (1000, 0),
            IntentStatus::Succeeded => (0, 1000),
            _ => (0, 0),
        };
        IntentReport {
            status,
            amount_capturable: capturable,
            amount_received: received,
            amount_refunded: refunded,
            next_action_url: (status == IntentStatus::RequiresAction).then(|| "https://x/3ds".into()),
            last_error: None,
        }
    }

    fn arb_status() -> impl Strategy<Value = PaymentStatus> {
        proptest::sample::select(PaymentStatus::ALL)
    }

    fn arb_target() -> impl Strategy<Value = Target> {
        prop_oneof![
            Just(Target::Credits),
            Just(Target::Order(CartCheck::Payable)),
            Just(Target::Order(CartCheck::Stale)),
            Just(Target::Order(CartCheck::Completed)),
        ]
    }

    fn arb_input() -> impl Strategy<Value = PaymentInput> {
        prop_oneof![
            (proptest::sample::select(INTENTS.to_vec()), prop_oneof![Just(0i64), Just(400), Just(1000)], arb_target())
                .prop_map(|(s, r, target)| PaymentInput::Reported { intent: report(s, r), target }),
            Just(PaymentInput::Refused(Failure { code: "card_declined".into(), decline_code: None, message: None })),
            Just(PaymentInput::Captured { amount_received: 1000 }),
            Just(PaymentInput::AuthorizationReleased),
            Just(PaymentInput::GivenBack),
            Just(PaymentInput::Refunded { amount: 300 }),
        ]
    }

    fn creates(t: &Transition) -> bool {
        t.effects.iter().any(|e| matches!(e, PaymentEffect::CreateOrder | PaymentEffect::AddCredits))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Every (state, input) pair: voided stays voided, captured money never goes back to
        /// an open, failed or canceled state, an authorization only ends or is captured, an
        /// order (or credits) only comes from money secured by this very transition.
        #[test]
        fn every_pair_keeps_the_rules(status in arb_status(), input in arb_input()) {
            let current = state(status);
            let Ok(t) = transition(&current, &input) else { return Ok(()) };
            let next = t.next.status;
            if status == PaymentStatus::Voided {
                prop_assert_eq!(next, PaymentStatus::Voided);
            }
            if matches!(status, PaymentStatus::Succeeded | PaymentStatus::VoidPending | PaymentStatus::Voided) {
                prop_assert!(next.is_secured(), "{status} -> {next}");
            }
            if status == PaymentStatus::Authorized {
                prop_assert!(next.is_secured() || next == PaymentStatus::Canceled, "{status} -> {next}");
            }
            if creates(&t) {
                prop_assert!(next.is_kept());
                prop_assert!(!status.is_secured() && status != PaymentStatus::Canceled);
            }
            prop_assert!(t.next.amount_refunded >= current.amount_refunded, "refunds are never undone");
            let recorded = t.effects.iter().filter(|e| matches!(e, PaymentEffect::Record(_))).count();
            prop_assert_eq!(recorded, usize::from(next != status && next.event_kind().is_some()));
        }

        /// Any sequence of reports and actions, in any order and repeated: the order (or the
        /// credits) is created at most once, and only while the money is secured.
        #[test]
        fn at_most_one_order_per_payment(inputs in proptest::collection::vec(arb_input(), 1..40)) {
            let mut s = PaymentState::pending();
            let mut created = 0;
            for input in &inputs {
                if let Ok(t) = transition(&s, input) {
                    if creates(&t) {
                        created += 1;
                        prop_assert!(t.next.status.is_kept());
                    }
                    s = t.next;
                }
            }
            prop_assert!(created <= 1, "{created} orders from one payment: {inputs:?}");
        }

        /// The same report twice: the second changes nothing.
        #[test]
        fn reports_are_idempotent(status in arb_status(), input in arb_input()) {
            let Ok(first) = transition(&state(status), &input) else { return Ok(()) };
            if let PaymentInput::Reported { .. } = input {
                let again = transition(&first.next, &input).expect("a report is never refused");
                prop_assert_eq!(&again.next, &first.next);
                prop_assert!(again.effects.is_empty(), "{:?}", again.effects);
            }
        }
    }

    #[test]
    fn a_success_creates_the_order_and_records_it() {
        let t = transition(
            &PaymentState::pending(),
            &PaymentInput::Reported {
                intent: report(IntentStatus::Succeeded, 0),
                target: Target::Order(CartCheck::Payable),
            },
        )
        .unwrap();
        assert_eq!(t.next.status, PaymentStatus::Succeeded);
        assert_eq!(t.next.amount_captured, 1000);
        assert_eq!(t.effects, vec![PaymentEffect::CreateOrder, PaymentEffect::Record("payment.succeeded")]);
    }

    #[test]
    fn money_for_a_changed_or_completed_cart_goes_back() {
        for (check, reason) in [(CartCheck::Stale, VoidReason::Stale), (CartCheck::Completed, VoidReason::Duplicate)] {
            let t = transition(
                &PaymentState::pending(),
                &PaymentInput::Reported { intent: report(IntentStatus::Succeeded, 0), target: Target::Order(check) },
            )
            .unwrap();
            assert_eq!(t.next.status, PaymentStatus::VoidPending);
            assert_eq!(t.next.void_reason, Some(reason));
            assert_eq!(t.effects, vec![PaymentEffect::Record("payment.void_pending")]);
        }
    }

    #[test]
    fn a_late_decline_does_not_undo_a_success() {
        let paid = state(PaymentStatus::Succeeded);
        let t = transition(
            &paid,
            &PaymentInput::Reported {
                intent: report(IntentStatus::RequiresPaymentMethod, 0),
                target: Target::Order(CartCheck::Payable),
            },
        )
        .unwrap();
        assert_eq!(t.next, paid);
        assert!(t.effects.is_empty());
    }

    #[test]
    fn an_authorization_ended_at_the_processor_cancels_the_order() {
        let t = transition(
            &state(PaymentStatus::Authorized),
            &PaymentInput::Reported {
                intent: report(IntentStatus::Canceled, 0),
                target: Target::Order(CartCheck::Completed),
            },
        )
        .unwrap();
        assert_eq!(t.next.status, PaymentStatus::Canceled);
        assert_eq!(t.effects, vec![PaymentEffect::CancelOrder, PaymentEffect::Record("payment.canceled")]);
    }

    #[test]
    fn refunds_outside_kassa_are_followed_once() {
        let paid = state(PaymentStatus::Succeeded);
        let input = PaymentInput::Reported {
            intent: report(IntentStatus::Succeeded, 400),
            target: Target::Order(CartCheck::Completed),
        };
        let t = transition(&paid, &input).unwrap();
        assert_eq!(t.effects, vec![PaymentEffect::SyncRefunded { amount_refunded: 400 }]);
        assert!(transition(&t.next, &input).unwrap().effects.is_empty());
    }

    #[test]
    fn only_an_authorization_can_be_captured_or_released() {
        assert!(transition(&state(PaymentStatus::Failed), &PaymentInput::Captured { amount_received: 1 }).is_err());
        assert!(transition(&state(PaymentStatus::Succeeded), &PaymentInput::AuthorizationReleased).is_err());
        let t =
            transition(&state(PaymentStatus::Authorized), &PaymentInput::Captured { amount_received: 700 }).unwrap();
        assert_eq!(
            (t.next.status, t.next.amount_captured, t.next.amount_capturable),
            (PaymentStatus::Succeeded, 700, 0)
        );
    }
}
