//! Crash-test hooks: `KASSA_FAILPOINTS=pay.after_processor_confirm` makes the server stop
//! dead at that point (it hangs there, and the test kills it with SIGKILL), to prove that
//! what was committed before is enough to finish the job after a restart.
//!
//! Compiled in only where tests run: debug builds (`cargo test`, CI and the cluster test use
//! `target/debug/kassa`) and builds with the `failpoints` feature. A release build has none:
//! an environment variable must never be able to make a production server hang between a
//! charge and its order. Such a build refuses to start when the variable is set
//! ([`refuse_if_set`]) instead of silently ignoring it, so a crash test run against it cannot
//! pass without having crashed anything.

/// Whether this build honours `KASSA_FAILPOINTS`.
pub const COMPILED: bool = cfg!(any(debug_assertions, feature = "failpoints"));

/// The variable that names the enabled failpoints (comma separated).
pub const VARIABLE: &str = "KASSA_FAILPOINTS";

#[cfg(any(debug_assertions, feature = "failpoints"))]
fn enabled() -> &'static [String] {
    use std::sync::OnceLock;
    // Stays a process-wide static (not in `AppState`): a crash-test switch read from the
    // environment of the process under test, not configuration, reached from deep inside a
    // use case that should not carry it.
    static POINTS: OnceLock<Vec<String>> = OnceLock::new();
    POINTS.get_or_init(|| {
        std::env::var(VARIABLE)
            .map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default()
    })
}

#[cfg(not(any(debug_assertions, feature = "failpoints")))]
fn enabled() -> &'static [String] {
    &[]
}

/// Why a server must not start: `KASSA_FAILPOINTS` is set (to anything) on a build without
/// failpoints. Pure, so both kinds of build are tested from either.
pub fn refusal(compiled: bool, value: Option<&std::ffi::OsStr>) -> Option<String> {
    match value {
        Some(v) if !compiled => Some(format!(
            "{VARIABLE} is set ({:?}) but this build has no failpoints (they exist only in debug builds and \
             builds with the `failpoints` feature); unset it to run this server",
            v.to_string_lossy()
        )),
        _ => None,
    }
}

/// Fails when `KASSA_FAILPOINTS` is set on a build without failpoints (see [`refusal`]).
pub fn refuse_if_set() -> anyhow::Result<()> {
    match refusal(COMPILED, std::env::var_os(VARIABLE).as_deref()) {
        Some(message) => Err(anyhow::anyhow!(message)),
        None => Ok(()),
    }
}

/// Never returns when `name` is enabled.
pub async fn hit(name: &str) {
    if enabled().iter().any(|p| p == name) {
        tracing::warn!(failpoint = name, "failpoint reached: hanging until killed");
        std::future::pending::<()>().await;
    }
}

/// Whether `name` is enabled (to install a failpoint's layer only when it is).
pub fn is_enabled(name: &str) -> bool {
    enabled().iter().any(|p| p == name)
}

/// `KASSA_FAILPOINTS=api.internal_error`: every admin API request fails with an internal
/// error (500), made and logged the way a real fault is — for tests of what errors cost.
/// The other routes (`/health`, `/metrics`, …) keep working.
pub async fn internal_errors(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::response::IntoResponse;
    if req.uri().path().starts_with("/admin/") {
        let cause = anyhow::anyhow!("failpoint api.internal_error reached");
        return crate::error::ApiError::Internal(cause.context("serving an admin request")).into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn a_build_without_failpoints_refuses_the_variable() {
        let refused = refusal(false, Some(OsStr::new("pay.after_processor_confirm"))).expect("refused");
        assert!(refused.contains("KASSA_FAILPOINTS") && refused.contains("no failpoints"), "{refused}");
        // Even empty: whoever set it expects failpoints.
        assert!(refusal(false, Some(OsStr::new(""))).is_some());
        assert_eq!(refusal(false, None), None);
    }

    #[test]
    fn a_build_with_failpoints_takes_the_variable() {
        assert_eq!(refusal(true, Some(OsStr::new("pay.after_processor_confirm"))), None);
        assert_eq!(refusal(true, None), None);
    }

    #[test]
    fn tests_run_on_a_build_with_failpoints() {
        // The crash tests rely on it (they spawn the debug binary).
        assert_eq!(refusal(COMPILED, Some(OsStr::new("pay.after_processor_confirm"))), None);
    }
}
