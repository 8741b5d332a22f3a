//! Use cases: one function per thing a caller can do. Handlers call exactly one of them;
//! business rules live here and in `kassa-domain`, where tests reach them.

pub mod access;
pub mod carts;
pub mod catalog;
pub mod checkout;
pub mod checkout_sessions;
pub mod credits;
pub mod customers;
pub mod events;
pub mod identity;
pub mod keys;
pub mod orders;
pub mod payments;
pub mod validate;
pub mod webhook_endpoints;
pub mod webhooks;
