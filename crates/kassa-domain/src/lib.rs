//! Kassa's domain: pure types and rules shared by every other crate.
//!
//! Nothing here does IO, spawns tasks or knows about SQL or HTTP, so every rule can be
//! unit- and property-tested in isolation.

pub mod billing;
pub mod client_secret;
pub mod credits;
pub mod currency;
pub mod ids;
pub mod lifecycle;
pub mod money;
pub mod tax;
pub mod totals;

pub use currency::Currency;
pub use money::{Amount, MoneyError};
