//! The lifecycles of Kassa's objects as state machines: an enum of statuses per lifecycle,
//! stored as text, and one pure transition function per machine,
//! `(current state, what happened) → next state + effects`.
//!
//! Services load a row, ask its machine what follows, persist the next state and carry out
//! the effects in the same transaction. No status is written anywhere else, so every rule of
//! a lifecycle lives here, where it is tested over every (state, input) pair without a
//! database or HTTP.

pub mod cart;
pub mod checkout_session;
pub mod invoice;
pub mod order;
pub mod payment;
pub mod refund;
pub mod subscription;
pub mod webhook_endpoint;

/// A status stored as text: its database/API spelling and back.
pub trait Status: Copy + Sized + 'static {
    /// Every status, in declaration order (for property tests and docs).
    const ALL: &'static [Self];

    fn as_str(self) -> &'static str;

    /// The status spelled `s`, if any.
    fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.as_str() == s)
    }
}

/// Declares a status enum with its text spelling, serde names and [`Status`] impl.
macro_rules! status_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $crate::lifecycle::Status for $name {
            const ALL: &'static [Self] = &[$($name::$variant),+];

            fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl $name {
            /// The stored/API spelling.
            pub fn as_str(self) -> &'static str {
                <Self as $crate::lifecycle::Status>::as_str(self)
            }

            /// Reads a stored spelling; `None` for text no version of Kassa wrote.
            pub fn parse(s: &str) -> Option<Self> {
                <Self as $crate::lifecycle::Status>::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::lifecycle::UnknownStatus;

            /// Reads a stored spelling (the store decodes columns with this).
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s).ok_or($crate::lifecycle::UnknownStatus { lifecycle: stringify!($name), text: s })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use status_enum;

/// Stored text that is no status of its lifecycle (a row no version of Kassa wrote).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is no {lifecycle}")]
pub struct UnknownStatus {
    pub lifecycle: &'static str,
    pub text: String,
}

/// Why a machine refused an input: the current state does not allow it. Services turn this
/// into a 409 with `code`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refused {
    /// A stable, Stripe-style error code (`order_not_capturable`, `cart_not_open`, …).
    pub code: &'static str,
    pub message: String,
}

impl Refused {
    pub fn new(code: &'static str, message: impl Into<String>) -> Refused {
        Refused { code, message: message.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<S: Status + PartialEq + std::fmt::Debug>() {
        for s in S::ALL {
            assert_eq!(S::parse(s.as_str()), Some(*s));
        }
        assert_eq!(S::parse("no such status"), None);
    }

    #[test]
    fn every_status_round_trips_through_its_text() {
        round_trips::<payment::PaymentStatus>();
        round_trips::<order::OrderStatus>();
        round_trips::<order::OrderPaymentStatus>();
        round_trips::<order::FulfillmentStatus>();
        round_trips::<cart::CartStatus>();
        round_trips::<checkout_session::SessionStatus>();
        round_trips::<checkout_session::SessionPaymentStatus>();
        round_trips::<checkout_session::SessionPurpose>();
        round_trips::<payment::Purpose>();
        round_trips::<payment::VoidReason>();
        round_trips::<refund::RefundStatus>();
        round_trips::<subscription::SubscriptionStatus>();
        round_trips::<invoice::InvoiceStatus>();
    }

    #[test]
    fn serde_uses_the_stored_spelling() {
        let s = serde_json::to_string(&payment::PaymentStatus::RequiresAction).unwrap();
        assert_eq!(s, "\"requires_action\"");
    }
}
