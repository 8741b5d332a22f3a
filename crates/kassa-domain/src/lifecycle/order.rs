//! An order: created from a secured payment, then captured, refunded, canceled, fulfilled.
//!
//! Three statuses move together: the order's own (`open` → `completed` | `canceled`), its
//! payment status (`authorized` → `captured` → `partially_refunded` → `refunded`, or
//! `authorized` → `canceled`) and its fulfilment (`not_fulfilled` → `fulfilled`). An order is
//! completed when it is both fulfilled and paid (captured); a fulfilled order is never
//! canceled (refund it instead), a canceled one never fulfilled.

use super::{Refused, status_enum};

status_enum!(
    OrderStatus {
        Open => "open",
        /// Fulfilled and paid.
        Completed => "completed",
        Canceled => "canceled",
    }
);

status_enum!(
    OrderPaymentStatus {
        /// Authorized, waiting for the merchant's capture.
        Authorized => "authorized",
        Captured => "captured",
        PartiallyRefunded => "partially_refunded",
        Refunded => "refunded",
        /// The authorization was released.
        Canceled => "canceled",
    }
);

status_enum!(
    FulfillmentStatus {
        NotFulfilled => "not_fulfilled",
        Fulfilled => "fulfilled",
    }
);

/// The mutable part of an order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderState {
    pub status: OrderStatus,
    pub payment_status: OrderPaymentStatus,
    pub fulfillment_status: FulfillmentStatus,
    pub amount_authorized: i64,
    pub amount_captured: i64,
    /// Refunded or set aside for a refund in flight (reserved atomically before the
    /// processor call, so concurrent refunds never exceed what was captured).
    pub amount_refunded: i64,
}

impl OrderState {
    /// A new order for a payment that secured `amount` (captured, or only authorized).
    pub fn new(amount: i64, amount_captured: i64, authorized_only: bool) -> OrderState {
        OrderState {
            status: OrderStatus::Open,
            payment_status: if authorized_only { OrderPaymentStatus::Authorized } else { OrderPaymentStatus::Captured },
            fulfillment_status: FulfillmentStatus::NotFulfilled,
            amount_authorized: amount,
            amount_captured,
            amount_refunded: 0,
        }
    }

    /// What can still be refunded.
    pub fn refundable(&self) -> i64 {
        (self.amount_captured - self.amount_refunded).max(0)
    }
}

/// What the merchant's cancel must do at the processor before the order is canceled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelPlan {
    /// Canceled already: answer with the order as it is.
    AlreadyCanceled,
    /// Release the authorization.
    ReleaseAuthorization,
    /// Refund what was captured and not refunded yet.
    RefundRemaining,
    /// Nothing is held any more (refunded in full): just cancel.
    CancelOnly,
}

/// What happened to an order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrderInput {
    /// The authorization was captured (through Kassa or outside it).
    Captured { amount_captured: i64 },
    /// The money is given back (authorization released or refunded): cancel.
    Canceled,
    /// A refund settled (or one made outside Kassa was seen); `amount_refunded` is the new
    /// total refunded, which only grows.
    RefundSettled { amount_refunded: i64 },
    /// The merchant shipped it.
    Fulfilled,
}

/// What the service must do because of a transition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrderEffect {
    /// Put the stock the order took back on the shelf.
    Restock,
    /// The order's payment follows: its authorization was released.
    ReleasePayment,
    /// Record this event about the order.
    Record(&'static str),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub next: OrderState,
    pub effects: Vec<OrderEffect>,
}

/// Checks a capture request: returns the amount to capture.
pub fn capture_amount(o: &OrderState, requested: Option<i64>) -> Result<i64, Refused> {
    if o.status == OrderStatus::Canceled || o.payment_status != OrderPaymentStatus::Authorized {
        return Err(Refused::new(
            "order_not_capturable",
            format!("Only authorized orders can be captured; this one is {}.", o.payment_status),
        ));
    }
    let amount = requested.unwrap_or(o.amount_authorized);
    if amount <= 0 || amount > o.amount_authorized {
        return Err(Refused::new("amount_invalid", format!("amount must be between 1 and {}.", o.amount_authorized)));
    }
    Ok(amount)
}

/// What a merchant's cancel must do first.
pub fn cancel_plan(o: &OrderState) -> Result<CancelPlan, Refused> {
    if o.status == OrderStatus::Canceled {
        return Ok(CancelPlan::AlreadyCanceled);
    }
    if o.fulfillment_status == FulfillmentStatus::Fulfilled {
        return Err(Refused::new("order_fulfilled", "A fulfilled order cannot be canceled; refund it instead."));
    }
    Ok(if o.payment_status == OrderPaymentStatus::Authorized {
        CancelPlan::ReleaseAuthorization
    } else if o.refundable() > 0 {
        CancelPlan::RefundRemaining
    } else {
        CancelPlan::CancelOnly
    })
}

/// Checks a refund request: returns the amount to refund.
pub fn refund_amount(o: &OrderState, requested: Option<i64>) -> Result<i64, Refused> {
    let amount = requested.unwrap_or(o.refundable());
    if amount <= 0 {
        return Err(Refused::new(
            "amount_invalid",
            "Nothing to refund: amount must be positive and the order captured.",
        ));
    }
    if amount > o.refundable() {
        return Err(Refused::new(
            "amount_invalid",
            format!(
                "amount exceeds what can be refunded ({} captured, {} refunded).",
                o.amount_captured, o.amount_refunded
            ),
        ));
    }
    Ok(amount)
}

/// What follows `input` for an order in state `current`.
pub fn transition(current: &OrderState, input: &OrderInput) -> Result<Transition, Refused> {
    use OrderPaymentStatus as P;
    let mut next = current.clone();
    let mut effects = Vec::new();
    match input {
        OrderInput::Captured { amount_captured } => {
            if current.payment_status != P::Authorized {
                // Captured already (a repeated report): nothing changes.
                return Ok(Transition { next, effects });
            }
            if current.status == OrderStatus::Canceled {
                return Err(Refused::new("order_canceled", "A canceled order cannot be captured."));
            }
            next.payment_status = P::Captured;
            next.amount_captured = *amount_captured;
            if next.fulfillment_status == FulfillmentStatus::Fulfilled {
                next.status = OrderStatus::Completed;
            }
            effects.push(OrderEffect::Record("order.captured"));
        }
        OrderInput::Canceled => {
            if current.status == OrderStatus::Canceled {
                return Ok(Transition { next, effects });
            }
            if current.fulfillment_status == FulfillmentStatus::Fulfilled {
                return Err(Refused::new(
                    "order_fulfilled",
                    "A fulfilled order cannot be canceled; refund it instead.",
                ));
            }
            next.status = OrderStatus::Canceled;
            if current.payment_status == P::Authorized {
                next.payment_status = P::Canceled;
                effects.push(OrderEffect::ReleasePayment);
            }
            effects.push(OrderEffect::Restock);
            effects.push(OrderEffect::Record("order.canceled"));
        }
        OrderInput::RefundSettled { amount_refunded } => {
            if !matches!(current.payment_status, P::Captured | P::PartiallyRefunded | P::Refunded) {
                return Err(Refused::new("order_not_refundable", format!("The order is {}.", current.payment_status)));
            }
            next.amount_refunded = current.amount_refunded.max((*amount_refunded).min(current.amount_captured));
            next.payment_status =
                if next.amount_refunded >= next.amount_captured { P::Refunded } else { P::PartiallyRefunded };
            effects.push(OrderEffect::Record("order.refunded"));
        }
        OrderInput::Fulfilled => {
            if current.status == OrderStatus::Canceled {
                return Err(Refused::new("order_canceled", "A canceled order cannot be fulfilled."));
            }
            if current.fulfillment_status == FulfillmentStatus::Fulfilled {
                return Err(Refused::new("order_fulfilled", "The order is fulfilled already."));
            }
            next.fulfillment_status = FulfillmentStatus::Fulfilled;
            if current.payment_status != P::Authorized {
                next.status = OrderStatus::Completed;
            }
            effects.push(OrderEffect::Record("order.fulfilled"));
        }
    }
    Ok(Transition { next, effects })
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::*;
    use proptest::prelude::*;

    fn arb_state() -> impl Strategy<Value = OrderState> {
        (
            proptest::sample::select(OrderStatus::ALL),
            proptest::sample::select(OrderPaymentStatus::ALL),
            proptest::sample::select(FulfillmentStatus::ALL),
            0i64..=1000,
        )
            .prop_map(|(status, payment_status, fulfillment_status, refunded)| {
                let captured = if payment_status == OrderPaymentStatus::Authorized { 0 } else { 1000 };
                OrderState {
                    status,
                    payment_status,
                    fulfillment_status,
                    amount_authorized: 1000,
                    amount_captured: captured,
                    amount_refunded: refunded.min(captured),
                }
            })
            .prop_filter("a state an order can be in", consistent)
    }

    /// The states the transitions can reach from a new order.
    fn consistent(o: &OrderState) -> bool {
        let fulfilled = o.fulfillment_status == FulfillmentStatus::Fulfilled;
        let authorized = o.payment_status == OrderPaymentStatus::Authorized;
        match o.status {
            OrderStatus::Open => o.payment_status != OrderPaymentStatus::Canceled && (!fulfilled || authorized),
            OrderStatus::Completed => fulfilled && !authorized && o.payment_status != OrderPaymentStatus::Canceled,
            OrderStatus::Canceled => !fulfilled && !authorized,
        }
    }

    fn arb_input() -> impl Strategy<Value = OrderInput> {
        prop_oneof![
            (1i64..=1000).prop_map(|a| OrderInput::Captured { amount_captured: a }),
            Just(OrderInput::Canceled),
            (0i64..=1200).prop_map(|a| OrderInput::RefundSettled { amount_refunded: a }),
            Just(OrderInput::Fulfilled),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn every_pair_keeps_the_rules(current in arb_state(), input in arb_input()) {
            let Ok(t) = transition(&current, &input) else { return Ok(()) };
            let n = &t.next;
            prop_assert!(consistent(n), "{current:?} + {input:?} -> {n:?}");
            // Canceled stays canceled; fulfilled stays fulfilled.
            if current.status == OrderStatus::Canceled {
                prop_assert_eq!(n.status, OrderStatus::Canceled);
            }
            if current.fulfillment_status == FulfillmentStatus::Fulfilled {
                prop_assert_eq!(n.fulfillment_status, FulfillmentStatus::Fulfilled);
                prop_assert_ne!(n.status, OrderStatus::Canceled);
            }
            // Never more refunded than captured, and refunds never shrink.
            prop_assert!(n.amount_refunded <= n.amount_captured.max(current.amount_refunded));
            prop_assert!(n.amount_refunded >= current.amount_refunded);
            // Completed means fulfilled and paid.
            if n.status == OrderStatus::Completed {
                prop_assert_eq!(n.fulfillment_status, FulfillmentStatus::Fulfilled);
                prop_assert_ne!(n.payment_status, OrderPaymentStatus::Authorized);
            }
            // Captured money never returns to "authorized".
            if current.payment_status != OrderPaymentStatus::Authorized {
                prop_assert_ne!(n.payment_status, OrderPaymentStatus::Authorized);
            }
            // Stock goes back exactly when the order becomes canceled.
            let restocks = t.effects.contains(&OrderEffect::Restock);
            prop_assert_eq!(restocks, current.status != OrderStatus::Canceled && n.status == OrderStatus::Canceled);
        }
    }

    #[test]
    fn refunds_never_exceed_the_capture() {
        let o = OrderState::new(1000, 1000, false);
        assert_eq!(refund_amount(&o, Some(1001)).unwrap_err().code, "amount_invalid");
        assert_eq!(refund_amount(&o, None), Ok(1000));
        let t = transition(&o, &OrderInput::RefundSettled { amount_refunded: 400 }).unwrap();
        assert_eq!(t.next.payment_status, OrderPaymentStatus::PartiallyRefunded);
        let t = transition(&t.next, &OrderInput::RefundSettled { amount_refunded: 1000 }).unwrap();
        assert_eq!(t.next.payment_status, OrderPaymentStatus::Refunded);
    }

    #[test]
    fn cancel_gives_back_what_is_held() {
        let authorized = OrderState::new(1000, 0, true);
        assert_eq!(cancel_plan(&authorized), Ok(CancelPlan::ReleaseAuthorization));
        let t = transition(&authorized, &OrderInput::Canceled).unwrap();
        assert_eq!(t.next.payment_status, OrderPaymentStatus::Canceled);
        assert_eq!(
            t.effects,
            vec![OrderEffect::ReleasePayment, OrderEffect::Restock, OrderEffect::Record("order.canceled")]
        );
        assert_eq!(cancel_plan(&OrderState::new(1000, 1000, false)), Ok(CancelPlan::RefundRemaining));
        let mut fulfilled = OrderState::new(1000, 1000, false);
        fulfilled.fulfillment_status = FulfillmentStatus::Fulfilled;
        assert_eq!(cancel_plan(&fulfilled).unwrap_err().code, "order_fulfilled");
    }

    #[test]
    fn a_fulfilled_authorization_completes_when_captured() {
        let mut o = OrderState::new(1000, 0, true);
        o = transition(&o, &OrderInput::Fulfilled).unwrap().next;
        assert_eq!(o.status, OrderStatus::Open);
        o = transition(&o, &OrderInput::Captured { amount_captured: 1000 }).unwrap().next;
        assert_eq!(o.status, OrderStatus::Completed);
    }
}
