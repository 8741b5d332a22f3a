//! Stripe's test cards and what each one does, card input checks, and the decision of a
//! payment attempt.
//!
//! A card's behaviour is found again from its brand and last four digits (unique among the
//! test cards), so no stored object ever needs more of the number than Stripe shows.

use kassa_processors::ProcessorError;
use kassa_processors::types::PaymentError;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    Succeeds,
    Declines {
        code: &'static str,
        decline_code: &'static str,
        message: &'static str,
    },
    /// 3-D Secure on every payment; off-session payments fail with `authentication_required`.
    AlwaysAuthenticates,
    /// 3-D Secure on-session; off-session payments succeed once the card is saved.
    AuthenticatesUnlessSetUp,
}

#[derive(Debug, PartialEq, Eq)]
pub struct TestCard {
    pub number: &'static str,
    pub brand: &'static str,
    pub behaviour: Behaviour,
    /// `visa` is reachable as `pm_card_visa` and `tok_visa`.
    pub shortcut: &'static str,
}

const fn declines(code: &'static str, decline_code: &'static str, message: &'static str) -> Behaviour {
    Behaviour::Declines { code, decline_code, message }
}

const DECLINED: &str = "Your card was declined.";

pub const TEST_CARDS: &[TestCard] = &[
    TestCard { number: "4242424242424242", brand: "visa", behaviour: Behaviour::Succeeds, shortcut: "visa" },
    TestCard {
        number: "5555555555554444",
        brand: "mastercard",
        behaviour: Behaviour::Succeeds,
        shortcut: "mastercard",
    },
    TestCard {
        number: "4000000000000002",
        brand: "visa",
        behaviour: declines("card_declined", "generic_decline", DECLINED),
        shortcut: "chargeDeclined",
    },
    TestCard {
        number: "4000000000009995",
        brand: "visa",
        behaviour: declines("card_declined", "insufficient_funds", "Your card has insufficient funds."),
        shortcut: "chargeDeclinedInsufficientFunds",
    },
    TestCard {
        number: "4000000000009987",
        brand: "visa",
        behaviour: declines("card_declined", "lost_card", DECLINED),
        shortcut: "chargeDeclinedLostCard",
    },
    TestCard {
        number: "4000000000000069",
        brand: "visa",
        behaviour: declines("expired_card", "expired_card", "Your card has expired."),
        shortcut: "chargeDeclinedExpiredCard",
    },
    TestCard {
        number: "4000000000000127",
        brand: "visa",
        behaviour: declines("incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect."),
        shortcut: "chargeDeclinedIncorrectCvc",
    },
    TestCard {
        number: "4000000000000119",
        brand: "visa",
        behaviour: declines(
            "processing_error",
            "processing_error",
            "An error occurred while processing your card. Try again in a little bit.",
        ),
        shortcut: "chargeDeclinedProcessingError",
    },
    TestCard {
        number: "4000002760003184",
        brand: "visa",
        behaviour: Behaviour::AlwaysAuthenticates,
        shortcut: "authenticationRequired",
    },
    TestCard {
        number: "4000002500003155",
        brand: "visa",
        behaviour: Behaviour::AuthenticatesUnlessSetUp,
        shortcut: "authenticationRequiredOnSetup",
    },
    // Attaches to a customer like any card; every charge of it is declined (Stripe's
    // `pm_card_chargeCustomerFail`): how merchants test dunning.
    TestCard {
        number: "4000000000000341",
        brand: "visa",
        behaviour: declines("card_declined", "generic_decline", DECLINED),
        shortcut: "chargeCustomerFail",
    },
    TestCard {
        number: "4000000000003220",
        brand: "visa",
        behaviour: Behaviour::AlwaysAuthenticates,
        shortcut: "threeDSecure2Required",
    },
];

impl TestCard {
    pub fn last4(&self) -> &'static str {
        &self.number[self.number.len() - 4..]
    }

    pub fn by_number(number: &str) -> Option<&'static TestCard> {
        TEST_CARDS.iter().find(|c| c.number == number)
    }

    /// The card a stored PaymentMethod was made from.
    pub fn by_brand_last4(brand: &str, last4: &str) -> Option<&'static TestCard> {
        TEST_CARDS.iter().find(|c| c.brand == brand && c.last4() == last4)
    }

    /// `pm_card_visa`, `tok_visa`, … (Stripe's shortcuts for a fresh PaymentMethod).
    pub fn by_shortcut(name: &str) -> Option<&'static TestCard> {
        let short = name.strip_prefix("pm_card_").or_else(|| name.strip_prefix("tok_"))?;
        TEST_CARDS.iter().find(|c| c.shortcut == short)
    }
}

/// Card details as a browser sends them. `Debug` never shows the number.
#[derive(Clone, serde::Deserialize)]
pub struct CardInput {
    /// Spaces allowed (`4242 4242 4242 4242`).
    pub number: String,
    pub exp_month: i64,
    /// Four digits, or two (`34` is 2034).
    pub exp_year: i64,
    pub cvc: Option<String>,
}

impl fmt::Debug for CardInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardInput")
            .field("number", &"<redacted>")
            .field("exp_month", &self.exp_month)
            .field("exp_year", &self.exp_year)
            .finish_non_exhaustive()
    }
}

/// A card that passed the checks: a known test card and a valid, unexpired date.
#[derive(Debug, Clone, Copy)]
pub struct CheckedCard {
    pub card: &'static TestCard,
    pub exp_month: i64,
    pub exp_year: i64,
}

fn refuse(code: &str, param: &str, message: &str) -> ProcessorError {
    ProcessorError::InvalidRequest { code: Some(code.into()), message: message.into(), param: Some(param.into()) }
}

impl CardInput {
    /// Checks the card as Stripe.js does before anything is charged. `now` in Unix seconds.
    pub fn check(&self, now: i64) -> Result<CheckedCard, ProcessorError> {
        let number: String = self.number.chars().filter(|c| !c.is_whitespace()).collect();
        if number.is_empty() {
            return Err(refuse("invalid_number", "card.number", "Your card number is missing."));
        }
        if !number.bytes().all(|b| b.is_ascii_digit()) || !(12..=19).contains(&number.len()) {
            return Err(refuse("invalid_number", "card.number", "Your card number is not a valid card number."));
        }
        let Some(card) = TestCard::by_number(&number) else {
            return Err(refuse(
                "incorrect_number",
                "card.number",
                "Your card number is incorrect. Use one of the test cards, for example 4242 4242 4242 4242.",
            ));
        };
        if !(1..=12).contains(&self.exp_month) {
            return Err(refuse("invalid_expiry_month", "card.exp_month", "Your card's expiration month is invalid."));
        }
        let exp_year = if (0..100).contains(&self.exp_year) { 2000 + self.exp_year } else { self.exp_year };
        let (year, month) = year_month(now);
        if !(2000..=year + 50).contains(&exp_year) {
            return Err(refuse("invalid_expiry_year", "card.exp_year", "Your card's expiration year is invalid."));
        }
        if let Some(cvc) = &self.cvc
            && !((3..=4).contains(&cvc.len()) && cvc.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(refuse("invalid_cvc", "card.cvc", "Your card's security code is invalid."));
        }
        if (exp_year, self.exp_month) < (year, month) {
            let param = if exp_year < year { "card.exp_year" } else { "card.exp_month" };
            return Err(refuse("expired_card", param, "Your card has expired."));
        }
        Ok(CheckedCard { card, exp_month: self.exp_month, exp_year })
    }
}

/// What a payment attempt comes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Succeed,
    Authenticate,
    Decline(PaymentError),
}

/// Decides an attempt with `card` (valid through `exp_month`/`exp_year`). `saved` says the
/// card was saved with the paying customer before this attempt, which is what makes an
/// off-session charge of a set-up card go through.
pub fn decide(card: &TestCard, exp_month: i64, exp_year: i64, now: i64, off_session: bool, saved: bool) -> Decision {
    if (exp_year, exp_month) < year_month(now) {
        return Decision::Decline(error("expired_card", Some("expired_card"), "Your card has expired."));
    }
    match card.behaviour {
        Behaviour::Succeeds => Decision::Succeed,
        Behaviour::Declines { code, decline_code, message } => {
            Decision::Decline(error(code, Some(decline_code), message))
        }
        Behaviour::AlwaysAuthenticates if off_session => Decision::Decline(authentication_required()),
        Behaviour::AuthenticatesUnlessSetUp if off_session && !saved => Decision::Decline(authentication_required()),
        Behaviour::AuthenticatesUnlessSetUp if off_session => Decision::Succeed,
        Behaviour::AlwaysAuthenticates | Behaviour::AuthenticatesUnlessSetUp => Decision::Authenticate,
    }
}

pub fn error(code: &str, decline_code: Option<&str>, message: &str) -> PaymentError {
    PaymentError { code: code.into(), decline_code: decline_code.map(str::to_string), message: message.into() }
}

fn authentication_required() -> PaymentError {
    error(
        "authentication_required",
        Some("authentication_required"),
        "Your card was declined. This transaction requires authentication.",
    )
}

/// The customer failed (or abandoned) the 3-D Secure challenge.
pub fn authentication_failed() -> PaymentError {
    error(
        "payment_intent_authentication_failure",
        None,
        "We are unable to authenticate your payment method. Please choose a different payment method and try again.",
    )
}

/// The (year, month) of a Unix time, in UTC.
pub fn year_month(unix: i64) -> (i64, i64) {
    // Howard Hinnant's civil_from_days.
    let z = unix.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month)
}

#[cfg(test)]
mod tests {
    use super::*;

    const JAN_2026: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

    #[test]
    fn calendar() {
        assert_eq!(year_month(0), (1970, 1));
        assert_eq!(year_month(JAN_2026), (2026, 1));
        assert_eq!(year_month(JAN_2026 - 1), (2025, 12));
        assert_eq!(year_month(951_782_400), (2000, 2)); // 2000-02-29
    }

    #[test]
    fn brand_and_last4_identify_a_test_card() {
        for card in TEST_CARDS {
            assert_eq!(TestCard::by_brand_last4(card.brand, card.last4()), Some(card));
            assert_eq!(TestCard::by_shortcut(&format!("pm_card_{}", card.shortcut)), Some(card));
            assert_eq!(TestCard::by_shortcut(&format!("tok_{}", card.shortcut)), Some(card));
        }
        assert!(TestCard::by_shortcut("pm_card_nope").is_none());
    }

    fn input(number: &str, m: i64, y: i64, cvc: Option<&str>) -> CardInput {
        CardInput { number: number.into(), exp_month: m, exp_year: y, cvc: cvc.map(str::to_string) }
    }

    fn code(r: Result<CheckedCard, ProcessorError>) -> (String, String) {
        match r {
            Err(ProcessorError::InvalidRequest { code, param, .. }) => (code.unwrap(), param.unwrap()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn card_checks() {
        let ok = input("4242 4242 4242 4242", 12, 34, Some("123")).check(JAN_2026).unwrap();
        assert_eq!((ok.card.last4(), ok.exp_year), ("4242", 2034));
        assert!(input("4242424242424242", 1, 2026, None).check(JAN_2026).is_ok(), "valid through its month");
        assert_eq!(code(input("4242424242424241", 1, 30, None).check(JAN_2026)).0, "incorrect_number");
        assert_eq!(code(input("4242-4242", 1, 30, None).check(JAN_2026)).0, "invalid_number");
        assert_eq!(code(input("", 1, 30, None).check(JAN_2026)).0, "invalid_number");
        assert_eq!(
            code(input("4242424242424242", 13, 30, None).check(JAN_2026)),
            ("invalid_expiry_month".into(), "card.exp_month".into())
        );
        assert_eq!(
            code(input("4242424242424242", 12, 2025, None).check(JAN_2026)),
            ("expired_card".into(), "card.exp_year".into())
        );
        assert_eq!(code(input("4242424242424242", 12, 1999, None).check(JAN_2026)).0, "invalid_expiry_year");
        assert_eq!(code(input("4242424242424242", 12, 30, Some("12")).check(JAN_2026)).0, "invalid_cvc");
        assert_eq!(code(input("4242424242424242", 12, 30, Some("12a")).check(JAN_2026)).0, "invalid_cvc");
        assert!(!format!("{:?}", input("4242424242424242", 1, 30, None)).contains("4242"), "Debug hides the number");
    }

    #[test]
    fn decisions() {
        let card = |n| TestCard::by_number(n).unwrap();
        let d = |n, off, saved| decide(card(n), 12, 2030, JAN_2026, off, saved);
        assert_eq!(d("4242424242424242", false, false), Decision::Succeed);
        assert_eq!(d("4000002760003184", false, false), Decision::Authenticate);
        assert_eq!(d("4000002760003184", false, true), Decision::Authenticate);
        assert!(
            matches!(d("4000002760003184", true, true), Decision::Decline(e) if e.code == "authentication_required")
        );
        assert_eq!(d("4000002500003155", false, true), Decision::Authenticate);
        assert_eq!(d("4000002500003155", true, true), Decision::Succeed);
        assert!(
            matches!(d("4000002500003155", true, false), Decision::Decline(e) if e.code == "authentication_required")
        );
        assert!(
            matches!(d("4000000000009995", false, false), Decision::Decline(e) if e.decline_code.as_deref() == Some("insufficient_funds"))
        );
        let expired = decide(card("4242424242424242"), 12, 2025, JAN_2026, false, false);
        assert!(matches!(expired, Decision::Decline(e) if e.code == "expired_card"));
    }
}
