//! Cart and order totals, computed on the server only.

use crate::money::{Amount, MoneyError};
use crate::tax::{PPM, Percentage, div_round_half_up};

/// How a region taxes: one combined rate, either added on top of prices (exclusive, US style)
/// or already contained in them (inclusive, EU VAT style).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TaxPolicy {
    pub rate: Percentage,
    pub inclusive: bool,
}

/// One priced line: unit amount × quantity.
#[derive(Clone, Copy, Debug)]
pub struct PricedLine {
    pub unit_amount: Amount,
    pub quantity: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Totals {
    /// Sum of the lines.
    pub subtotal: i64,
    pub discount: i64,
    pub shipping: i64,
    /// Tax on (subtotal − discount + shipping); part of those amounts when inclusive.
    pub tax: i64,
    /// What the customer pays.
    pub total: i64,
}

/// Computes totals. Shipping is taxed like goods (as EU VAT and most US states that tax
/// shipping do); the tax is rounded once per cart, half up, to the currency's minor unit.
pub fn compute(lines: &[PricedLine], shipping: Amount, tax: TaxPolicy) -> Result<Totals, MoneyError> {
    let mut subtotal = Amount::ZERO;
    for line in lines {
        subtotal = subtotal.checked_add(line.unit_amount.checked_mul(line.quantity)?)?;
    }
    let base = subtotal.checked_add(shipping)?;
    let rate = tax.rate.ppm() as i128;
    let (tax_amount, total) = if tax.inclusive {
        let net = div_round_half_up(base.get() as i128 * PPM, PPM + rate) as i64;
        (base.get() - net, base)
    } else {
        let t = Amount::new(div_round_half_up(base.get() as i128 * rate, PPM) as i64)?;
        (t.get(), base.checked_add(t)?)
    };
    Ok(Totals { subtotal: subtotal.get(), discount: 0, shipping: shipping.get(), tax: tax_amount, total: total.get() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(unit: i64, qty: i64) -> PricedLine {
        PricedLine { unit_amount: Amount::new(unit).unwrap(), quantity: qty }
    }

    #[test]
    fn exclusive_tax_is_added() {
        let t = compute(
            &[line(1000, 2), line(550, 1)],
            Amount::new(500).unwrap(),
            TaxPolicy { rate: "8.875".parse().unwrap(), inclusive: false },
        )
        .unwrap();
        assert_eq!(t.subtotal, 2550);
        assert_eq!(t.shipping, 500);
        // 3050 × 8.875 % = 270.6875 → 271
        assert_eq!(t.tax, 271);
        assert_eq!(t.total, 3321);
    }

    #[test]
    fn inclusive_tax_is_contained() {
        let t = compute(&[line(1190, 1)], Amount::ZERO, TaxPolicy { rate: "19".parse().unwrap(), inclusive: true })
            .unwrap();
        assert_eq!(t.tax, 190);
        assert_eq!(t.total, 1190);
    }

    #[test]
    fn overflow_is_refused() {
        let r = compute(&[line(crate::money::MAX_AMOUNT, 2)], Amount::ZERO, TaxPolicy::default());
        assert_eq!(r, Err(MoneyError::TooLarge));
    }
}
