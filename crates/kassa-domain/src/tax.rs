//! Percentages (tax rates, processor fees) as exact integers.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::{fmt, str::FromStr};

/// A percentage between 0 and 100 with at most four decimals (`"8.875"`), held as parts per
/// million of the whole (8.875 % → 88 750) so that every computation with it is integer math.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Percentage {
    ppm: u32,
}

pub const PPM: i128 = 1_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PercentageError {
    #[error("`{0}` is not a decimal number")]
    NotANumber(String),
    #[error("a percentage must be between 0 and 100")]
    OutOfRange,
    #[error("a percentage has at most four decimals")]
    TooPrecise,
}

impl Percentage {
    pub const ZERO: Percentage = Percentage { ppm: 0 };

    pub fn from_ppm(ppm: u32) -> Result<Percentage, PercentageError> {
        if ppm as i128 > PPM {
            return Err(PercentageError::OutOfRange);
        }
        Ok(Percentage { ppm })
    }

    /// Parts per million of the whole: 2.9 % → 29 000.
    pub fn ppm(self) -> u32 {
        self.ppm
    }

    /// `round_half_up(amount × self)`.
    pub fn of(self, amount: i64) -> i64 {
        div_round_half_up(amount as i128 * self.ppm as i128, PPM) as i64
    }
}

impl FromStr for Percentage {
    type Err = PercentageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let d = Decimal::from_str(s.trim()).map_err(|_| PercentageError::NotANumber(s.into()))?;
        if d.is_sign_negative() && !d.is_zero() || d > Decimal::ONE_HUNDRED {
            return Err(PercentageError::OutOfRange);
        }
        let ppm = d * Decimal::from(10_000);
        if !ppm.fract().is_zero() {
            return Err(PercentageError::TooPrecise);
        }
        let ppm: u32 = ppm.trunc().try_into().map_err(|_| PercentageError::OutOfRange)?;
        Percentage::from_ppm(ppm)
    }
}

impl fmt::Display for Percentage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = Decimal::from(self.ppm) / Decimal::from(10_000);
        write!(f, "{}", d.normalize())
    }
}

impl Serialize for Percentage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// Accepts `"8.875"` or `8.875`; a JSON number is read from its decimal text, never as a float.
impl<'de> Deserialize<'de> for Percentage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Percentage;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a percentage such as \"8.875\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Percentage, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Percentage, E> {
                v.to_string().parse().map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Percentage, E> {
                v.to_string().parse().map_err(E::custom)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Percentage, E> {
                // serde_json hands numbers with a fraction over as f64; its shortest
                // round-trip text is the literal the client wrote for up to 15 digits.
                v.to_string().parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl utoipa::PartialSchema for Percentage {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("A percentage with at most four decimals, e.g. \"8.875\"."))
            .examples(["19"])
            .into()
    }
}
impl utoipa::ToSchema for Percentage {}

/// `n / d` rounded half away from zero; `d > 0`.
pub fn div_round_half_up(n: i128, d: i128) -> i128 {
    debug_assert!(d > 0);
    if n >= 0 { (2 * n + d) / (2 * d) } else { -((-2 * n + d) / (2 * d)) }
}

/// `ceil(n / d)` for `n >= 0`, `d > 0`.
pub fn div_ceil(n: i128, d: i128) -> i128 {
    debug_assert!(n >= 0 && d > 0);
    (n + d - 1) / d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exactly() {
        assert_eq!("8.875".parse::<Percentage>().unwrap().ppm(), 88_750);
        assert_eq!("2.9".parse::<Percentage>().unwrap().ppm(), 29_000);
        assert_eq!("100".parse::<Percentage>().unwrap().ppm(), 1_000_000);
        assert_eq!("0".parse::<Percentage>().unwrap().ppm(), 0);
        assert_eq!("1.23456".parse::<Percentage>(), Err(PercentageError::TooPrecise));
        assert_eq!("-1".parse::<Percentage>(), Err(PercentageError::OutOfRange));
        assert_eq!("101".parse::<Percentage>(), Err(PercentageError::OutOfRange));
        assert!("abc".parse::<Percentage>().is_err());
        assert_eq!("8.875".parse::<Percentage>().unwrap().to_string(), "8.875");
        let p: Percentage = serde_json::from_str("19.5").unwrap();
        assert_eq!(p.ppm(), 195_000);
    }

    #[test]
    fn rounding() {
        assert_eq!(div_round_half_up(5, 10), 1);
        assert_eq!(div_round_half_up(4, 10), 0);
        assert_eq!(div_round_half_up(-5, 10), -1);
        assert_eq!(div_ceil(11, 10), 2);
        assert_eq!(div_ceil(10, 10), 1);
        assert_eq!(div_ceil(0, 10), 0);
    }
}
