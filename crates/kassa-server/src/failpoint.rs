//! Crash-test hooks: `KASSA_FAILPOINTS=pay.after_processor_confirm` makes the server stop
//! dead at that point (it hangs there, and the test kills it with SIGKILL), to prove that
//! what was committed before is enough to finish the job after a restart.

use std::sync::OnceLock;

fn enabled() -> &'static Vec<String> {
    // Stays a process-wide static (not in `AppState`): a crash-test switch read from the
    // environment of the process under test, not configuration, reached from deep inside a
    // use case that should not carry it.
    static POINTS: OnceLock<Vec<String>> = OnceLock::new();
    POINTS.get_or_init(|| {
        std::env::var("KASSA_FAILPOINTS")
            .map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default()
    })
}

/// Never returns when `name` is enabled.
pub async fn hit(name: &str) {
    if enabled().iter().any(|p| p == name) {
        tracing::warn!(failpoint = name, "failpoint reached: hanging until killed");
        std::future::pending::<()>().await;
    }
}
