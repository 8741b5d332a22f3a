//! Prometheus metrics: request counts and latency histograms per route, plus the number of
//! SQL statements and transactions (the benchmark divides them by checkouts).

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Instant;

// Stays a process-wide static (not in `AppState`): the `metrics` facade has one global
// recorder per process, which this handle renders.
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide recorder (a process has one, however many servers it runs in tests).
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("http_request_duration_seconds".into()),
                &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0],
            )
            .expect("static buckets are valid")
            .set_buckets_for_metric(
                Matcher::Full("kassa_db_begin_wait_seconds".into()),
                &[0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0],
            )
            .expect("static buckets are valid")
            .install_recorder()
            .expect("no other metrics recorder is installed")
    })
}

/// Route layer: counts and times every request by method, route template and status.
pub async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned()).unwrap_or_default();
    let method = req.method().to_string();
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    res
}

/// The text exposition: recorded metrics and the database counters.
pub fn render() -> String {
    let (statements, transactions) = kassa_store::sql::counters();
    let mut out = handle().render();
    out.push_str(&format!(
        "# HELP kassa_db_statements_total SQL statements sent by this process.\n\
         # TYPE kassa_db_statements_total counter\n\
         kassa_db_statements_total {statements}\n\
         # HELP kassa_db_transactions_total Write transactions begun by this process.\n\
         # TYPE kassa_db_transactions_total counter\n\
         kassa_db_transactions_total {transactions}\n\
         # HELP kassa_db_round_trips_total Exchanges with the database started by this process, by kind \
         (statements, BEGIN, COMMIT, ROLLBACK, the pool's liveness pings).\n\
         # TYPE kassa_db_round_trips_total counter\n"
    ));
    for (kind, n) in kassa_store::sql::round_trips().by_kind() {
        out.push_str(&format!("kassa_db_round_trips_total{{kind=\"{kind}\"}} {n}\n"));
    }
    out
}

/// Samples the database pools every second while the server runs:
/// `kassa_db_pool_connections{pool="writer"|"reader", state="in_use"|"idle"}` and
/// `kassa_db_pool_max_connections` (on PostgreSQL both names are the same pool). A pool whose
/// `in_use` sits at its maximum makes requests wait (up to `database.acquire_timeout_secs`):
/// sqlx does not expose its waiters, so Kassa counts the tasks waiting to begin a write
/// transaction, `kassa_db_pool_connections{pool="writer", state="waiting"}`, and times each
/// wait (`kassa_db_begin_wait_seconds`, see `kassa_store::Store::begin`).
pub async fn sample_pools(store: kassa_store::Store) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        for (name, pool) in [("writer", store.writer()), ("reader", store.reader())] {
            let size = pool.size() as f64;
            let idle = pool.num_idle() as f64;
            metrics::gauge!("kassa_db_pool_connections", "pool" => name, "state" => "in_use").set(size - idle);
            metrics::gauge!("kassa_db_pool_connections", "pool" => name, "state" => "idle").set(idle);
            metrics::gauge!("kassa_db_pool_max_connections", "pool" => name)
                .set(pool.options().get_max_connections() as f64);
        }
        metrics::gauge!("kassa_db_pool_connections", "pool" => "writer", "state" => "waiting")
            .set(kassa_store::db::waiting_to_begin() as f64);
    }
}
