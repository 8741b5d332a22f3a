//! Amounts in integer minor units. Never floats.

use crate::Currency;

/// The largest amount any configuration of Kassa accepts for one price, line or cart, in minor
/// units: the ceiling of `checkout.max_amount`. Twelve digits keep every sum of a cart
/// (at most [`MAX_LINES`] lines of [`MAX_QUANTITY`] units, checked) far from `i64` overflow and
/// below 2^53, so JavaScript clients read amounts exactly.
pub const MAX_AMOUNT: i64 = 999_999_999_999;

/// The default bound of amounts (prices, shipping rates, cart totals, charges): Stripe's eight
/// digits of minor units (99,999,999: $999,999.99, ¥99,999,999). A charge above it would be
/// refused by the processor, so Kassa refuses it where it is entered.
pub const DEFAULT_MAX_AMOUNT: i64 = 99_999_999;

/// The largest quantity of one line item.
pub const MAX_QUANTITY: i64 = 1_000_000;

/// The most lines one cart (and so one order) holds; Stripe Checkout takes 100 line items.
pub const MAX_LINES: usize = 100;

/// The largest stock level of a product.
pub const MAX_STOCK: i64 = 1_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amount must not be negative")]
    Negative,
    #[error("amount must be at most {MAX_AMOUNT}")]
    TooLarge,
    #[error("currency {expected} expected, got {got}")]
    CurrencyMismatch { expected: Currency, got: Currency },
}

/// A validated non-negative amount in minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Amount(i64);

impl Amount {
    pub const ZERO: Amount = Amount(0);

    pub fn new(minor_units: i64) -> Result<Amount, MoneyError> {
        if minor_units < 0 {
            Err(MoneyError::Negative)
        } else if minor_units > MAX_AMOUNT {
            Err(MoneyError::TooLarge)
        } else {
            Ok(Amount(minor_units))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }

    /// `self + other`, refusing results above [`MAX_AMOUNT`].
    pub fn checked_add(self, other: Amount) -> Result<Amount, MoneyError> {
        Amount::new(self.0.checked_add(other.0).ok_or(MoneyError::TooLarge)?)
    }

    /// `self × quantity`, refusing results above [`MAX_AMOUNT`].
    pub fn checked_mul(self, quantity: i64) -> Result<Amount, MoneyError> {
        if quantity < 0 {
            return Err(MoneyError::Negative);
        }
        Amount::new(self.0.checked_mul(quantity).ok_or(MoneyError::TooLarge)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_enforced() {
        assert_eq!(Amount::new(-1), Err(MoneyError::Negative));
        assert_eq!(Amount::new(MAX_AMOUNT + 1), Err(MoneyError::TooLarge));
        let a = Amount::new(MAX_AMOUNT).unwrap();
        assert_eq!(a.checked_add(Amount::new(1).unwrap()), Err(MoneyError::TooLarge));
        assert_eq!(a.checked_mul(i64::MAX), Err(MoneyError::TooLarge));
        assert_eq!(Amount::new(250).unwrap().checked_mul(3).unwrap().get(), 750);
    }
}
