//! Kassa's server: HTTP API (`api`), use cases (`services`), background work (`jobs`), and
//! what ties them together (configuration, errors, state, startup).

pub mod api;
pub mod clock;
pub mod config;
pub mod dashboard;
pub mod demo;
pub mod error;
pub mod failpoint;
pub mod jobs;
pub mod metrics;
pub mod objects;
pub mod services;
pub mod single_flight;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod wakeups;

pub use startup::Application;
