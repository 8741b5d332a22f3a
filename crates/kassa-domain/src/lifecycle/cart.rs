//! A cart: open while the buyer shops, then completed by its order or expired when idle.

use super::payment::CartCheck;
use super::{Refused, status_enum};

status_enum!(
    CartStatus {
        Open => "open",
        /// Paid: its order exists.
        Completed => "completed",
        /// Idle past its time to live; its reserved stock went back.
        Expired => "expired",
    }
);

/// What happened to a cart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CartInput {
    /// The buyer changes it (items, addresses, shipping, email).
    Change,
    /// A secured payment created its order.
    Complete,
    /// It was idle past its time to live.
    Expire,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CartEffect {
    /// The reserved stock becomes sold.
    TakeReservedStock,
    /// The reserved stock goes back.
    ReleaseReservedStock,
    Record(&'static str),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub next: CartStatus,
    pub effects: Vec<CartEffect>,
}

/// What follows `input` for a cart in `current`.
pub fn transition(current: CartStatus, input: CartInput) -> Result<Transition, Refused> {
    use CartStatus::*;
    let (next, effects) = match (current, input) {
        (Open, CartInput::Change) => (Open, vec![]),
        (Open, CartInput::Complete) => (Completed, vec![CartEffect::TakeReservedStock]),
        (Open, CartInput::Expire) => {
            (Expired, vec![CartEffect::ReleaseReservedStock, CartEffect::Record("cart.expired")])
        }
        // The expiry job and a payment may race: whichever came first stands.
        (Completed | Expired, CartInput::Expire) => (current, vec![]),
        (Completed, _) => return Err(Refused::new("cart_completed", "This cart is paid already.")),
        (Expired, _) => return Err(Refused::new("cart_not_open", "This cart is expired.")),
    };
    Ok(Transition { next, effects })
}

/// What a payment was made for: a version of a cart, an amount, a currency, and what the
/// processor actually took.
#[derive(Clone, Copy, Debug)]
pub struct PaidFor<'a> {
    pub cart_version: Option<i64>,
    pub amount: i64,
    pub currency: &'a str,
    /// The amount of the processor's PaymentIntent.
    pub intent_amount: i64,
    /// The currency of the processor's PaymentIntent.
    pub intent_currency: &'a str,
}

/// The cart as it is now, locked.
#[derive(Clone, Copy, Debug)]
pub struct CartNow<'a> {
    pub status: CartStatus,
    pub version: i64,
    pub total: i64,
    pub currency: &'a str,
}

/// What a payment can still buy from its cart: only the very version, amount and currency
/// it was made for, while the cart is open.
pub fn check_payable(cart: CartNow<'_>, paid: PaidFor<'_>) -> CartCheck {
    let same = paid.cart_version == Some(cart.version)
        && paid.amount == cart.total
        && paid.intent_amount == paid.amount
        && paid.currency.eq_ignore_ascii_case(cart.currency)
        && paid.intent_currency.eq_ignore_ascii_case(cart.currency);
    match cart.status {
        CartStatus::Completed => CartCheck::Completed,
        CartStatus::Open if same => CartCheck::Payable,
        CartStatus::Open | CartStatus::Expired => CartCheck::Stale,
    }
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::*;

    #[test]
    fn every_pair() {
        for &s in CartStatus::ALL {
            for input in [CartInput::Change, CartInput::Complete, CartInput::Expire] {
                match transition(s, input) {
                    Ok(t) => {
                        // Completed and expired are terminal.
                        if s != CartStatus::Open {
                            assert_eq!(t.next, s);
                            assert!(t.effects.is_empty());
                        }
                        // Stock is taken only by completing, released only by expiring.
                        assert_eq!(
                            t.effects.contains(&CartEffect::TakeReservedStock),
                            t.next == CartStatus::Completed && s == CartStatus::Open
                        );
                        assert_eq!(
                            t.effects.contains(&CartEffect::ReleaseReservedStock),
                            t.next == CartStatus::Expired && s == CartStatus::Open
                        );
                    }
                    Err(r) => assert_ne!(s, CartStatus::Open, "an open cart takes every input: {r}"),
                }
            }
        }
    }

    #[test]
    fn only_the_version_paid_for_is_payable() {
        use CartCheck::*;
        let cart = |status, version, total| CartNow { status, version, total, currency: "usd" };
        let paid = |version, amount, intent_amount, currency| PaidFor {
            cart_version: Some(version),
            amount,
            currency,
            intent_amount,
            intent_currency: currency,
        };
        assert_eq!(check_payable(cart(CartStatus::Open, 3, 100), paid(3, 100, 100, "USD")), Payable);
        assert_eq!(check_payable(cart(CartStatus::Open, 4, 100), paid(3, 100, 100, "usd")), Stale);
        assert_eq!(check_payable(cart(CartStatus::Open, 3, 100), paid(3, 90, 90, "usd")), Stale);
        assert_eq!(check_payable(cart(CartStatus::Open, 3, 100), paid(3, 100, 90, "usd")), Stale);
        assert_eq!(check_payable(cart(CartStatus::Open, 3, 100), paid(3, 100, 100, "eur")), Stale);
        assert_eq!(check_payable(cart(CartStatus::Completed, 3, 100), paid(3, 100, 100, "usd")), Completed);
        assert_eq!(check_payable(cart(CartStatus::Expired, 3, 100), paid(3, 100, 100, "usd")), Stale);
    }
}
