//! Running Kassa as an operator does, through the real binary: first start, errors at start,
//! memory after internal errors, logs, backup and restore.

use crate::checkout::{DECLINED, VISA, card_token, pay, ready_cart, shop};
use crate::helpers::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `kassa` with a clean environment (a developer's `RUST_LOG` or `DATABASE_URL` must not leak
/// in), in `dir`.
///
/// The binary is this build's, or `KASSA_TEST_BIN` (e.g. `target/release/kassa`, to check the
/// release profile: `KASSA_TEST_BIN=target/release/kassa cargo test -p kassa --test api operations`).
fn kassa(dir: &Path, db_url: &str) -> Command {
    let bin = std::env::var_os("KASSA_TEST_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_kassa").into());
    let mut cmd = Command::new(bin);
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", db_url)
        .env("KASSA_JOBS__INTERVAL_MS", "50")
        // Events reach the webhook soon, yet after the pay call has recorded its outcome.
        .env("KASSA_PROCESSOR__TEST__DELIVERY_INTERVAL_MS", "300");
    cmd
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A `kassa serve` of the real binary; its standard error (the log) goes to a file.
struct Served {
    child: Child,
    address: String,
    /// The first keys, when this start created them.
    keys: Option<(String, String)>,
    log: std::path::PathBuf,
}

impl Served {
    fn start(cmd: &mut Command, log: &Path) -> Served {
        let file = std::fs::File::create(log).unwrap();
        let mut child = cmd.arg("serve").stdout(Stdio::piped()).stderr(file).spawn().expect("the kassa binary starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut keys = None;
        let address = loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.wait();
                panic!("kassa serve stopped before listening: {}", std::fs::read_to_string(log).unwrap_or_default());
            };
            if let Some(rest) = line.trim().strip_prefix("export KASSA_SECRET_KEY=") {
                let mut parts = rest.split(" KASSA_PUBLISHABLE_KEY=");
                keys = Some((parts.next().unwrap().to_string(), parts.next().unwrap().to_string()));
            }
            if let Some(rest) = line.strip_prefix("Kassa listening on ") {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        Served { child, address, keys, log: log.to_path_buf() }
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Stops the server (SIGKILL: what it logged is in the file already) and returns its log.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut log = String::new();
        std::fs::File::open(&self.log).unwrap().read_to_string(&mut log).unwrap();
        log
    }
}

/// A port someone else holds on the first start: Kassa stops with the address it could not
/// take and has created no keys, so the next start prints the first keys, and they work.
#[tokio::test]
async fn a_busy_port_on_first_start_leaves_the_first_keys_to_the_next_start() {
    let (db, url) = TestDb::fresh().await;
    let dir = tempfile::tempdir().unwrap();
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let out = kassa(dir.path(), &url).arg("serve").env("PORT", port.to_string()).output().unwrap();
    assert!(!out.status.success());
    let said = text(&out);
    assert!(said.contains(&format!("cannot listen on 127.0.0.1:{port}")), "{said}");
    assert!(said.contains("PORT"), "{said}");
    assert!(!said.contains("sk_") && !said.contains("pk_"), "no keys were created: {said}");

    let listed = kassa(dir.path(), &url).args(["keys", "list"]).output().unwrap();
    assert!(listed.status.success(), "{}", text(&listed));
    assert!(!String::from_utf8_lossy(&listed.stdout).contains("active"), "{}", text(&listed));

    drop(holder);
    let server = Served::start(kassa(dir.path(), &url).env("PORT", "0"), &dir.path().join("log"));
    let (sk, pk) = server.keys.clone().expect("the next start prints the first keys");
    let app = remote(&server.address, &sk, &pk);
    app.get("/admin/products", As::Admin).await.ok();
    app.get("/store/products", As::Store).await.ok();
    server.stop();
    drop(db);
}

/// Settings are named as the operator wrote them, the database's problem is said at once,
/// and no backtrace is printed for a mistake of configuration, even with `RUST_BACKTRACE`.
#[test]
fn errors_at_start_name_the_setting_and_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("kassa.db").display());
    let out = kassa(dir.path(), &sqlite).arg("migrate").env("PORT", "abc").env("RUST_BACKTRACE", "1").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let said = text(&out);
    assert!(said.contains("(environment variable PORT)"), "{said}");
    assert!(!said.contains("KASSA_SERVER__PORT"), "the variable set was PORT: {said}");

    // Nothing listens on port 1: refused at once, not after the pool's acquire timeout.
    let refused = "postgres://kassa:hunter2@127.0.0.1:1/kassa";
    let started = Instant::now();
    let out = kassa(dir.path(), refused)
        .arg("migrate")
        .env("RUST_BACKTRACE", "1")
        .env("KASSA_DATABASE__ACQUIRE_TIMEOUT_SECS", "30")
        .output()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert_eq!(out.status.code(), Some(1));
    let said = text(&out);
    assert!(said.contains("DATABASE_URL"), "{said}");
    assert!(said.contains("connection refused"), "{said}");
    assert!(!said.contains("hunter2"), "the password is never printed: {said}");
    assert!(!said.to_lowercase().contains("backtrace"), "{said}");
    assert_eq!(said.lines().count(), 1, "one line: {said}");

    for bad_port in ["postgres://kassa:hunter2@127.0.0.1:99999/kassa", "postgres://kassa:hunter2@127.0.0.1:x/kassa"] {
        let out = kassa(dir.path(), bad_port).args(["keys", "list"]).env("RUST_BACKTRACE", "1").output().unwrap();
        assert!(!out.status.success());
        let said = text(&out);
        assert!(said.contains("DATABASE_URL"), "{said}");
        assert!(said.contains("port"), "{said}");
        assert!(!said.contains("hunter2"), "{said}");
        assert!(!said.to_lowercase().contains("backtrace"), "{said}");
    }
}

/// Every command opens (and migrates) the database: on PostgreSQL the migrator's `CREATE
/// TABLE IF NOT EXISTS` notices stay out of the output.
#[tokio::test]
async fn commands_print_no_migration_notices() {
    let (db, url) = TestDb::fresh().await;
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let out = kassa(dir.path(), &url).args(["keys", "list"]).env("RUST_LOG", "info").output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        assert!(!text(&out).contains("already exists"), "{}", text(&out));
    }
    drop(db);
}

/// With `RUST_BACKTRACE=1` (set on many developers' machines), internal errors are logged as
/// their chain of causes; no backtrace is captured or symbolized in the request, so memory
/// stays where it was.
#[tokio::test]
async fn a_hundred_internal_errors_leave_memory_under_40_mib() {
    let (db, url) = TestDb::fresh().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = kassa(dir.path(), &url);
    cmd.env("PORT", "0")
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LOG", "info")
        .env("KASSA_FAILPOINTS", "api.internal_error");
    let server = Served::start(&mut cmd, &dir.path().join("log"));
    let (sk, pk) = server.keys.clone().unwrap();
    let app = remote(&server.address, &sk, &pk);
    for _ in 0..100 {
        let r = app.get("/admin/products", As::Admin).await;
        assert_eq!(r.status, 500);
        assert_eq!(r.body["error"]["type"], "api_error");
    }
    app.get("/health", As::Nobody).await.ok();
    let rss = server.rss_kib();
    let log = server.stop();
    assert!(rss < 40 * 1024, "resident memory {} KiB after 100 internal errors", rss);
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("internal error")).collect();
    assert_eq!(errors.len(), 100, "{log}");
    assert!(errors[0].contains("failpoint api.internal_error reached"), "the cause is logged: {}", errors[0]);
    assert!(!log.contains("stack backtrace") && !log.contains("backtrace="), "{log}");
    drop(db);
}

/// The secrets a test run knows: the keys and the test processor's webhook secret.
fn assert_no_secrets(log: &str, keys: &(String, String)) {
    for line in log.lines() {
        for secret in [&keys.0, &keys.1] {
            assert!(!line.contains(secret.as_str()), "a key in the log: {line}");
        }
        for prefix in ["sk_", "pk_", "whsec_", "_secret_"] {
            assert!(!line.contains(prefix), "`{prefix}` in the log: {line}");
        }
        for card in [VISA, DECLINED] {
            assert!(!line.contains(card) && !line.contains(&card.replace(' ', "")), "a card number in the log: {line}");
        }
        assert!(!line.contains('\u{1b}'), "no colours when the log is not a terminal: {line:?}");
    }
}

/// A checkout at `info`: the log names the order with its amount, the decline with its code
/// and the webhooks; the pay request's lines carry its request id (the one the client sent,
/// returned in the answer); no line holds a key, a client secret or a card number.
#[tokio::test]
async fn a_checkout_at_info_logs_outcomes_with_request_ids_and_no_secrets() {
    let (db, url) = TestDb::fresh().await;
    let dir = tempfile::tempdir().unwrap();
    let server = Served::start(kassa(dir.path(), &url).env("PORT", "0"), &dir.path().join("log"));
    let keys = server.keys.clone().unwrap();
    let app = remote(&server.address, &keys.0, &keys.1);
    let shop = shop(&app, 10).await;

    let declined = ready_cart(&app, &shop, "decline@example.com").await;
    assert_eq!(pay(&app, &declined, DECLINED).await.status, 402);

    let cart = ready_cart(&app, &shop, "ada@example.com").await;
    let token = card_token(&app, VISA).await;
    let paid = app
        .http
        .post(format!("{}/store/carts/{}/pay", app.address, cart["id"].as_str().unwrap()))
        .header("kassa-publishable-key", &keys.1)
        .header("kassa-client-secret", secret_of(&cart))
        .header("x-request-id", "checkout-test-7f3a")
        .json(&json!({"confirmation_token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(paid.headers()["x-request-id"], "checkout-test-7f3a");
    let paid: Value = paid.json().await.unwrap();
    let order = paid["order"]["id"].as_str().unwrap_or_else(|| panic!("an order: {paid}")).to_string();
    let total = paid["order"]["total"].as_i64().unwrap();

    // A generated id when the client sends none (or one that is not a plain token).
    let r = app.http.get(format!("{}/health", app.address)).header("x-request-id", "a b").send().await.unwrap();
    let generated = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(generated.starts_with("req_"), "{generated}");

    // The processor's events arrive as webhooks meanwhile.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&server.log).unwrap().contains("webhook received") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The same outcomes, counted: payments by status and decline code, webhooks by type and
    // result, idempotent replays.
    for _ in 0..2 {
        let r = app
            .http
            .post(format!("{}/admin/products", app.address))
            .bearer_auth(&keys.0)
            .header("idempotency-key", "metrics-replay")
            .json(&json!({"name": "Replayed"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // The processor's event for the paid cart arrives by webhook meanwhile.
    let succeeded_webhook = "kassa_webhooks_received_total{type=\"payment_intent.succeeded\",result=";
    let deadline = Instant::now() + Duration::from_secs(15);
    let metrics = loop {
        let metrics = app.get("/metrics", As::Nobody).await.text;
        if metrics.contains(succeeded_webhook) || Instant::now() > deadline {
            break metrics;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        metrics.contains("kassa_payments_total{status=\"failed\",decline_code=\"generic_decline\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("kassa_payments_total{status=\"succeeded\",decline_code=\"\"} 1"), "{metrics}");
    assert!(metrics.contains("kassa_events_total{type=\"order.created\"} 1"), "{metrics}");
    assert!(metrics.contains(succeeded_webhook), "{metrics}");
    assert!(metrics.contains("kassa_idempotency_replays_total 1"), "{metrics}");
    assert!(metrics.contains("kassa_db_pool_connections{pool=\"writer\",state=\"idle\"}"), "{metrics}");

    let log = server.stop();
    let created = log
        .lines()
        .find(|l| l.contains("order.created") && l.contains(&order))
        .unwrap_or_else(|| panic!("no line for the order:\n{log}"));
    assert!(created.contains("checkout-test-7f3a"), "the order's line has the request id: {created}");
    assert!(created.contains(&format!("amount={total}")), "{created}");
    let failed = log.lines().find(|l| l.contains("payment.failed")).unwrap_or_else(|| panic!("{log}"));
    assert!(
        failed.contains("decline_code=\"generic_decline\"") || failed.contains("decline_code=generic_decline"),
        "{failed}"
    );
    assert!(log.lines().any(|l| l.contains("webhook received") && l.contains("evt_")), "{log}");
    assert_no_secrets(&log, &keys);
    drop(db);
}

/// The JSON format carries the same fields: the outcome, the order and the request id.
#[tokio::test]
async fn json_logs_carry_the_same_fields() {
    let (db, url) = TestDb::fresh().await;
    let dir = tempfile::tempdir().unwrap();
    let server = Served::start(
        kassa(dir.path(), &url).env("PORT", "0").env("KASSA_LOG__FORMAT", "json"),
        &dir.path().join("log"),
    );
    let keys = server.keys.clone().unwrap();
    let app = remote(&server.address, &keys.0, &keys.1);
    let shop = shop(&app, 10).await;
    let cart = ready_cart(&app, &shop, "json@example.com").await;
    let r = pay(&app, &cart, VISA).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let order = r.body["order"]["id"].as_str().unwrap().to_string();
    let request_id = r.headers["x-request-id"].to_str().unwrap().to_string();
    let log = server.stop();
    let lines: Vec<Value> =
        log.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    let created = lines
        .iter()
        .find(|l| {
            l["object"] == order.as_str() && l["message"].as_str().unwrap_or_default().starts_with("order.created")
        })
        .unwrap_or_else(|| panic!("{log}"));
    assert_eq!(created["level"], "INFO");
    assert_eq!(created["span"]["request_id"], request_id.as_str(), "{created}");
    assert!(created["amount"].as_i64().unwrap() > 0, "{created}");
    assert_no_secrets(&log, &keys);
    drop(db);
}

/// `kassa backup` copies a SQLite database while the server runs; a server started from the
/// copy in another directory has the same orders and credit balances (and the same keys).
#[tokio::test]
async fn backup_then_restore_serves_the_same_orders_and_balances() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("kassa.db").display());
    let server = Served::start(kassa(dir.path(), &url).env("PORT", "0"), &dir.path().join("log"));
    let (sk, pk) = server.keys.clone().unwrap();
    let app = remote(&server.address, &sk, &pk);
    let shop = shop(&app, 10).await;
    for email in ["one@example.com", "two@example.com"] {
        let cart = ready_cart(&app, &shop, email).await;
        assert_eq!(pay(&app, &cart, VISA).await.status, 200);
    }
    let customer = app.post("/admin/customers", As::Admin, json!({"email": "credits@example.com"})).await.ok();
    let customer = customer["id"].as_str().unwrap().to_string();
    app.post(
        &format!("/admin/customers/{customer}/credits/adjust"),
        As::Admin,
        json!({"amount": 1234, "reason": "goodwill"}),
    )
    .await
    .ok();
    let orders = app.get("/admin/orders?limit=100", As::Admin).await.ok();
    let balance = app.get(&format!("/admin/customers/{customer}/credits?limit=100"), As::Admin).await.ok();
    assert_eq!(balance["balance"], 1234);

    let copy = dir.path().join("backup.db");
    let out = kassa(dir.path(), &url).args(["backup", copy.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = kassa(dir.path(), &url).args(["backup", copy.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success(), "an existing file is never overwritten");
    assert!(text(&out).contains("exists already"), "{}", text(&out));
    server.stop();

    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::copy(&copy, elsewhere.path().join("kassa.db")).unwrap();
    let restored_url = format!("sqlite://{}", elsewhere.path().join("kassa.db").display());
    let restored =
        Served::start(kassa(elsewhere.path(), &restored_url).env("PORT", "0"), &elsewhere.path().join("log"));
    assert!(restored.keys.is_none(), "the copy has its keys: none are created");
    let app = remote(&restored.address, &sk, &pk);
    let orders_after = app.get("/admin/orders?limit=100", As::Admin).await.ok();
    assert_eq!(orders_after["data"].as_array().unwrap().len(), 2);
    assert_eq!(orders_after["data"], orders["data"]);
    let balance_after = app.get(&format!("/admin/customers/{customer}/credits?limit=100"), As::Admin).await.ok();
    assert_eq!(balance_after, balance);
    restored.stop();

    // PostgreSQL has its own tools: the command says which.
    let out = kassa(dir.path(), "postgres://kassa@127.0.0.1:1/kassa").args(["backup", "x.db"]).output().unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("pg_dump"), "{}", text(&out));
}

/// The value of the metric line `name` (with its labels, as rendered) on `/metrics`.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// `/metrics` shows each job's backlog (items due, and how long the oldest has been due) and
/// the waits for the writer pool. With jobs off, work piles up and the gauges say so.
#[tokio::test]
async fn metrics_show_each_jobs_backlog_and_the_waits_for_the_writer_pool() {
    let (db, url) = TestDb::fresh().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = kassa(dir.path(), &url);
    cmd.env("PORT", "0").env("KASSA_JOBS__ENABLED", "false");
    let server = Served::start(&mut cmd, &dir.path().join("log"));
    let (sk, pk) = server.keys.clone().unwrap();
    let app = remote(&server.address, &sk, &pk);
    let deliveries = "kassa_job_backlog{job=\"webhook_deliveries\"}";
    let customers = "kassa_job_backlog{job=\"processor_customers\"}";
    let oldest = "kassa_job_oldest_due_seconds{job=\"webhook_deliveries\"}";
    let begins = "kassa_db_begin_wait_seconds_count";
    let sampled = |text: &str| metric(text, deliveries).is_some() && metric(text, customers).is_some();
    let deadline = Instant::now() + Duration::from_secs(10);
    let before = loop {
        let text = app.get("/metrics", As::Nobody).await.text;
        if sampled(&text) || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(sampled(&before), "{before}");
    for job in [
        "cart_expiry",
        "payment_voids",
        "refund_retries",
        "session_expiry",
        "payment_reconcile",
        "idempotency_cleanup",
        "webhook_log_cleanup",
    ] {
        assert_eq!(metric(&before, &format!("kassa_job_backlog{{job=\"{job}\"}}")), Some(0.0), "{job}: {before}");
    }
    assert!(metric(&before, "kassa_db_pool_connections{pool=\"writer\",state=\"waiting\"}").is_some(), "{before}");

    // Three products and a customer: four events nobody fans out, a customer without its
    // processor customer.
    for name in ["Tea", "Coffee", "Cocoa"] {
        app.post("/admin/products", As::Admin, json!({"name": name})).await.ok();
    }
    app.post("/admin/customers", As::Admin, json!({"email": "backlog@example.com"})).await.ok();
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let text = app.get("/metrics", As::Nobody).await.text;
        let grown = metric(&text, deliveries).unwrap() >= metric(&before, deliveries).unwrap() + 4.0
            && metric(&text, customers).unwrap() >= metric(&before, customers).unwrap() + 1.0
            && metric(&text, oldest).unwrap() > 0.0;
        if grown || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(metric(&after, deliveries).unwrap() >= metric(&before, deliveries).unwrap() + 4.0, "{after}");
    assert!(metric(&after, customers).unwrap() >= metric(&before, customers).unwrap() + 1.0, "{after}");
    assert!(metric(&after, oldest).unwrap() > 0.0, "{after}");
    assert!(
        metric(&after, begins).unwrap() >= metric(&before, begins).unwrap_or(0.0) + 4.0,
        "every write began: {after}"
    );
    assert!(after.contains("kassa_db_begin_wait_seconds_bucket{le=\"0.005\"}"), "a histogram: {after}");
    server.stop();
    drop(db);
}
