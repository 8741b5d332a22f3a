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

    /// An amount as a buyer reads it (English conventions, as Stripe Checkout shows it to an
    /// English-speaking buyer): the currency's symbol where it is unambiguous, thousands
    /// grouped — `7349` USD → `$73.49`, `500` JPY → `¥500`, `123456` EUR → `€1,234.56`;
    /// other currencies end with their code: `1000` KWD → `1.000 KWD`.
    pub fn display_amount(&self, amount: i64) -> String {
        let plain = self.format_amount(amount.unsigned_abs().min(i64::MAX as u64) as i64);
        let (whole, fraction) = match plain.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (plain.as_str(), None),
        };
        let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
        for (i, digit) in whole.chars().enumerate() {
            if i > 0 && (whole.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(digit);
        }
        if let Some(f) = fraction {
            grouped.push('.');
            grouped.push_str(f);
        }
        let sign = if amount < 0 { "-" } else { "" };
        match self.symbol() {
            Some(symbol) => format!("{sign}{symbol}{grouped}"),
            None => format!("{sign}{grouped} {}", self.code().to_ascii_uppercase()),
        }
    }

    /// The symbol an English-speaking buyer reads without doubt (`$` is the US dollar's; other
    /// dollars carry their country: `CA$`, `A$`), if the currency has one.
    fn symbol(&self) -> Option<&'static str> {
        Some(match self.code() {
            "usd" => "$",
            "eur" => "€",
            "gbp" => "£",
            "jpy" => "¥",
            "cny" => "CN¥",
            "inr" => "₹",
            "krw" => "₩",
            "ils" => "₪",
            "vnd" => "₫",
            "cad" => "CA$",
            "aud" => "A$",
            "nzd" => "NZ$",
            "hkd" => "HK$",
            "mxn" => "MX$",
            "brl" => "R$",
            "twd" => "NT$",
            _ => return None,
        })
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
    fn displays_amounts_as_buyers_read_them() {
        let c = |code: &str| Currency::parse(code).unwrap();
        assert_eq!(c("usd").display_amount(7349), "$73.49");
        assert_eq!(c("usd").display_amount(5), "$0.05");
        assert_eq!(c("usd").display_amount(123_456_789), "$1,234,567.89");
        assert_eq!(c("jpy").display_amount(500), "¥500");
        assert_eq!(c("jpy").display_amount(1_500_000), "¥1,500,000");
        assert_eq!(c("eur").display_amount(-250), "-€2.50");
        assert_eq!(c("kwd").display_amount(1000), "1.000 KWD");
        assert_eq!(c("chf").display_amount(100_000), "1,000.00 CHF");
        assert_eq!(c("usd").display_amount(i64::MIN), "-$92,233,720,368,547,758.07");
    }

    #[test]
    fn formats_by_exponent() {
        assert_eq!(Currency::parse("usd").unwrap().format_amount(1050), "10.50");
        assert_eq!(Currency::parse("jpy").unwrap().format_amount(1050), "1050");
        assert_eq!(Currency::parse("kwd").unwrap().format_amount(1050), "1.050");
        assert_eq!(Currency::parse("usd").unwrap().format_amount(-5), "-0.05");
    }
}
