//! Use cases: one function per thing a caller can do. Handlers call exactly one of them;
//! business rules live here and in `kassa-domain`, where tests reach them.

pub mod access;
pub mod audit;
pub mod carts;
pub mod catalog;
pub mod checkout;
pub mod checkout_sessions;
pub mod credits;
pub mod customers;
pub mod dashboard;
pub mod event_dedupe;
pub mod events;
pub mod idempotency;
pub mod identity;
pub mod invoice_pages;
pub mod invoices;
pub mod keys;
pub mod orders;
pub mod payment_methods;
pub mod payments;
pub mod portal_sessions;
pub mod processor_keys;
pub mod processor_webhooks;
pub mod settlement;
pub mod subscription_checkout;
pub mod subscriptions;
pub mod test_clocks;
pub mod validate;
pub mod webhook_endpoints;

/// The transaction a use case runs in. Handlers open none and query with none: they hand the
/// one `api::idempotency` opened to the service, so the work and its stored answer commit
/// together.
pub use kassa_store::Tx;
/// The page a list asks for, and the page it found (cursor pagination).
pub use kassa_store::sql::{Listed, Page};
