//! Kassa's database: one API over SQLite (embedded default) and PostgreSQL (production).
//!
//! Every query lives in this crate, behind functions named for what they do. Statements use
//! `$1, $2…` placeholders, which sqlx binds by number on both backends; where the dialects
//! must differ (row locks, pragmas, `LEAST`/`MIN`) the difference is decided here, once, by
//! [`Backend`]. Timestamps are Unix seconds (`BIGINT`), money is `BIGINT` minor units, JSON is
//! text: the Any driver decodes only those primitive types on both backends.

pub mod api_keys;
pub mod backlog;
pub mod bench_seed;
pub mod billing;
pub mod carts;
pub mod catalog;
pub mod checkout_sessions;
pub mod config_cache;
pub mod credits;
pub mod customers;
pub mod dashboard;
pub mod db;
pub mod error;
pub mod events;
pub mod idempotency;
#[cfg(test)]
mod migration_rules;
pub mod orders;
pub mod payments;
pub mod portal_sessions;
pub mod processor_events;
pub mod settings;
pub mod sql;
pub mod webhook_deliveries;
pub mod webhook_endpoints;
pub mod webhook_subscriptions;

pub use db::{Backend, Store, Tx};
pub use error::StoreError;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
