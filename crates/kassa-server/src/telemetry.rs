//! `tracing` output: human-readable or JSON lines, and how much an internal error costs.
//!
//! What an operator reads: at `info` one line per business outcome (the event outbox logs
//! each committed event: `order.created` with its id and amount, `payment.failed` with its
//! decline code, refunds, …; webhooks received; job rounds that did work), every line of a
//! request inside its `request` span (method, path and request id); retries and degraded
//! states at `warn`. Never a secret, key or card number: spans carry no headers nor query
//! strings, and outcome lines pick named fields of the API objects.

use crate::config::{LogFormat, LogSettings};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing_subscriber::EnvFilter;

static BACKTRACES: AtomicBool = AtomicBool::new(false);

/// Whether internal errors are logged with their backtrace (`log.backtraces`).
pub fn backtraces() -> bool {
    BACKTRACES.load(Ordering::Relaxed)
}

/// Decides, before any thread starts, whether errors capture backtraces. Only with
/// `log.backtraces = true`: a `RUST_BACKTRACE=1` left in a developer's shell would otherwise
/// make every internal error capture one, and logging it symbolizes it against the binary's
/// debug info inside the request (the first one took the resident memory from 19 to 176 MiB).
/// Panics still follow `RUST_BACKTRACE`: they are bugs.
///
/// Call it from `main` before the async runtime exists (it sets `RUST_LIB_BACKTRACE`, which
/// `std::backtrace` reads once).
pub fn configure_backtraces(settings: &LogSettings) {
    BACKTRACES.store(settings.backtraces, Ordering::Relaxed);
    let value = if settings.backtraces { "1" } else { "0" };
    // SAFETY: called from `main` while the process has a single thread, so nothing reads the
    // environment concurrently.
    unsafe { std::env::set_var("RUST_LIB_BACKTRACE", value) };
}

/// Installs the global subscriber; `RUST_LOG` overrides the configured level. Colours only
/// when standard error is a terminal and `NO_COLOR` is unset.
pub fn init(settings: &LogSettings) {
    BACKTRACES.fetch_or(settings.backtraces, Ordering::Relaxed);
    let directives = std::env::var("RUST_LOG").ok().filter(|v| !v.trim().is_empty()).unwrap_or(settings.level.clone());
    let filter = EnvFilter::try_new(quiet_notices(&directives)).unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = match settings.format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init(),
        LogFormat::Human => builder.compact().try_init(),
    };
}

/// PostgreSQL sends a NOTICE for every `CREATE TABLE IF NOT EXISTS` the migrator runs
/// (`relation "_sqlx_migrations" already exists, skipping`) and sqlx logs notices at `info`:
/// they are kept at `warn` unless the directives name sqlx themselves.
fn quiet_notices(directives: &str) -> String {
    if directives.contains("sqlx") {
        directives.to_string()
    } else {
        format!("{directives},sqlx::postgres::notice=warn")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn notices_are_quiet_unless_asked_for() {
        assert_eq!(super::quiet_notices("info"), "info,sqlx::postgres::notice=warn");
        assert_eq!(super::quiet_notices("sqlx=debug"), "sqlx=debug");
    }
}
