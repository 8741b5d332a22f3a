//! Prepaid credits: the fee gross-up of a top-up.

use crate::money::{Amount, MoneyError};
use crate::tax::{PPM, Percentage, div_ceil};

/// The largest credit balance, and so the largest single change of one (a debit or an
/// adjustment): twelve digits, below 2^53 (exact in JavaScript) and far from `i64` overflow,
/// so the guarded balance update `balance + delta` can never overflow in the database.
pub const MAX_CREDITS: i64 = 999_999_999_999;

/// A processor's fee on a charge: `percent × amount + fixed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeeSchedule {
    pub percent: Percentage,
    pub fixed: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrossUp {
    /// What the buyer pays.
    pub total: i64,
    /// The processing-fee line: `total − value`.
    pub fee: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrossUpError {
    #[error("a fee of 100 % or more cannot be grossed up")]
    FeeTooHigh,
    #[error(transparent)]
    Money(#[from] MoneyError),
}

/// The smallest total whose net after the fee covers `value`:
/// `total = ceil((value + fixed) / (1 − percent))`, in exact integer arithmetic.
///
/// With `p = ppm / 10⁶` this is `ceil((value + fixed) × 10⁶ / (10⁶ − ppm))`.
pub fn gross_up(value: Amount, fee: FeeSchedule) -> Result<GrossUp, GrossUpError> {
    let ppm = fee.percent.ppm() as i128;
    if ppm >= PPM {
        return Err(GrossUpError::FeeTooHigh);
    }
    let fixed = Amount::new(fee.fixed)?;
    let numerator = (value.get() as i128 + fixed.get() as i128) * PPM;
    let total = div_ceil(numerator, PPM - ppm);
    let total = Amount::new(i64::try_from(total).map_err(|_| MoneyError::TooLarge)?)?;
    Ok(GrossUp { total: total.get(), fee: total.get() - value.get() })
}

/// The merchant's net from a charge of `total` after the fee, as an exact fraction
/// `(numerator, 10⁶)`: `total × (1 − p) − fixed`.
pub fn net_after_fee_ppm(total: i64, fee: FeeSchedule) -> i128 {
    total as i128 * (PPM - fee.percent.ppm() as i128) - fee.fixed as i128 * PPM
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stripe_default() -> FeeSchedule {
        FeeSchedule { percent: "2.9".parse().unwrap(), fixed: 30 }
    }

    #[test]
    fn spec_example() {
        let g = gross_up(Amount::new(250).unwrap(), stripe_default()).unwrap();
        assert_eq!(g, GrossUp { total: 289, fee: 39 });
    }

    #[test]
    fn no_fee_means_no_gross_up() {
        let g = gross_up(Amount::new(1234).unwrap(), FeeSchedule { percent: Percentage::ZERO, fixed: 0 }).unwrap();
        assert_eq!(g, GrossUp { total: 1234, fee: 0 });
    }

    #[test]
    fn full_fee_is_refused() {
        let r = gross_up(Amount::new(1).unwrap(), FeeSchedule { percent: "100".parse().unwrap(), fixed: 0 });
        assert_eq!(r, Err(GrossUpError::FeeTooHigh));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        /// The net never falls below the credits' value, and one unit less would.
        #[test]
        fn gross_up_is_the_smallest_sufficient_total(
            value in 1i64..=10_000_000_000,
            ppm in 0u32..=500_000,
            fixed in 0i64..=100_000,
        ) {
            let fee = FeeSchedule { percent: Percentage::from_ppm(ppm).unwrap(), fixed };
            let g = gross_up(Amount::new(value).unwrap(), fee).unwrap();
            let wanted = value as i128 * PPM;
            prop_assert!(net_after_fee_ppm(g.total, fee) >= wanted);
            prop_assert!(net_after_fee_ppm(g.total - 1, fee) < wanted);
            prop_assert_eq!(g.fee, g.total - value);
        }
    }
}
