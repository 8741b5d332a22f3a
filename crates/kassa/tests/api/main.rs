//! HTTP integration tests: each test spawns a server on port 0 against a fresh database (a
//! temp SQLite file, or with `KASSA_TEST_DATABASE_URL=postgres://…` a fresh PostgreSQL
//! schema) and talks to it over HTTP. One test binary, so it links once.

#[allow(dead_code)]
mod helpers;

mod auth;
mod bad_input;
mod billing_portal;
mod carts;
mod catalog;
mod chaos;
mod checkout;
mod cors;
mod crash;
mod crash_invoice_page;
mod credits;
mod customers;
mod dashboard;
mod duplicate_charges;
mod guest_secrets;
mod hosted_pages;
mod idempotency;
mod lifecycle;
mod localstripe;
mod operations;
mod rate_limits;
mod round_trips;
mod subscription_checkout;
mod subscriptions;
mod system;
mod test_processor;
mod webhook_round_trips;
mod webhooks_out;
