//! ISO 4217 currencies and their minor-unit exponents.
//!
//! Written out as a table because the exponent is what matters to a payments server and the
//! crates that carry ISO 4217 disagree with each other (and with Stripe) on a few codes.
//! Codes are accepted in any case and shown in lower case, as Stripe does.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    code: [u8; 3],
    exponent: u8,
}

/// Active ISO 4217 codes with a minor-unit exponent other than 2.
const ZERO_DECIMAL: &[&str] = &[
    "bif", "clp", "djf", "gnf", "isk", "jpy", "kmf", "krw", "pyg", "rwf", "ugx", "uyi", "vnd", "vuv", "xaf", "xof",
    "xpf",
];
const THREE_DECIMAL: &[&str] = &["bhd", "iqd", "jod", "kwd", "lyd", "omr", "tnd"];
const FOUR_DECIMAL: &[&str] = &["clf", "uyw"];
/// Active ISO 4217 codes with two decimals.
const TWO_DECIMAL: &[&str] = &[
    "aed", "afn", "all", "amd", "ang", "aoa", "ars", "aud", "awg", "azn", "bam", "bbd", "bdt", "bgn", "bmd", "bnd",
    "bob", "bov", "brl", "bsd", "btn", "bwp", "byn", "bzd", "cad", "cdf", "che", "chf", "chw", "cny", "cop", "cou",
    "crc", "cup", "cve", "czk", "dkk", "dop", "dzd", "egp", "ern", "etb", "eur", "fjd", "fkp", "gbp", "gel", "ghs",
    "gip", "gmd", "gtq", "gyd", "hkd", "hnl", "htg", "huf", "idr", "ils", "inr", "irr", "jmd", "kes", "kgs", "khr",
    "kpw", "kyd", "kzt", "lak", "lbp", "lkr", "lrd", "lsl", "mad", "mdl", "mga", "mkd", "mmk", "mnt", "mop", "mru",
    "mur", "mvr", "mwk", "mxn", "mxv", "myr", "mzn", "nad", "ngn", "nio", "nok", "npr", "nzd", "pab", "pen", "pgk",
    "php", "pkr", "pln", "qar", "ron", "rsd", "rub", "sar", "sbd", "scr", "sdg", "sek", "sgd", "shp", "sle", "sll",
    "sos", "srd", "ssp", "stn", "svc", "syp", "szl", "thb", "tjs", "tmt", "top", "try", "ttd", "twd", "tzs", "uah",
    "usd", "usn", "uyu", "uzs", "ved", "ves", "wst", "xcd", "yer", "zar", "zmw", "zwl",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a supported ISO 4217 currency code")]
pub struct UnknownCurrency(pub String);

impl Currency {
    pub const USD: Currency = Currency { code: *b"usd", exponent: 2 };

    /// Parses a three-letter ISO 4217 code in any case.
    pub fn parse(code: &str) -> Result<Currency, UnknownCurrency> {
        let lower = code.to_ascii_lowercase();
        let exponent = if ZERO_DECIMAL.contains(&lower.as_str()) {
            0
        } else if THREE_DECIMAL.contains(&lower.as_str()) {
            3
        } else if FOUR_DECIMAL.contains(&lower.as_str()) {
            4
        } else if TWO_DECIMAL.contains(&lower.as_str()) {
            2
        } else {
            return Err(UnknownCurrency(code.to_string()));
        };
        let bytes = lower.as_bytes();
        Ok(Currency { code: [bytes[0], bytes[1], bytes[2]], exponent })
    }

    /// The lower-case code, as the API shows it.
    pub fn code(&self) -> &str {
        // The code came from one of the ASCII tables above.
        std::str::from_utf8(&self.code).expect("currency codes are ASCII")
    }

    /// Number of decimal places of the minor unit: JPY 0, USD 2, KWD 3.
    pub fn exponent(&self) -> u8 {
        self.exponent
    }

    /// Formats an amount in minor units for people: `1050` USD → `10.50`, `1050` JPY → `1050`.
    pub fn format_amount(&self, amount: i64) -> String {
        let exp = self.exponent as u32;
        if exp == 0 {
            return amount.to_string();
        }
        let scale = 10i64.pow(exp);
        let sign = if amount < 0 { "-" } else { "" };
        let abs = amount.unsigned_abs();
        format!("{sign}{}.{:0width$}", abs / scale as u64, abs % scale as u64, width = exp as usize)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.code())
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Currency::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for Currency {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("Three-letter ISO 4217 currency code, lower case."))
            .examples(["usd"])
            .into()
    }
}
impl utoipa::ToSchema for Currency {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponents_follow_iso_4217() {
        assert_eq!(Currency::parse("JPY").unwrap().exponent(), 0);
        assert_eq!(Currency::parse("krw").unwrap().exponent(), 0);
        assert_eq!(Currency::parse("usd").unwrap().exponent(), 2);
        assert_eq!(Currency::parse("KWD").unwrap().exponent(), 3);
        assert_eq!(Currency::parse("bhd").unwrap().exponent(), 3);
        assert!(Currency::parse("xyz").is_err());
        assert!(Currency::parse("us").is_err());
        assert_eq!(Currency::parse("EUR").unwrap().code(), "eur");
    }

    #[test]
    fn formats_by_exponent() {
        assert_eq!(Currency::parse("usd").unwrap().format_amount(1050), "10.50");
        assert_eq!(Currency::parse("jpy").unwrap().format_amount(1050), "1050");
        assert_eq!(Currency::parse("kwd").unwrap().format_amount(1050), "1.050");
        assert_eq!(Currency::parse("usd").unwrap().format_amount(-5), "-0.05");
    }
}
