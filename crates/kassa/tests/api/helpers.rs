//! `spawn_app()`: a real server on port 0 over a fresh database, and an HTTP client for it.

use kassa_server::config::Settings;
use kassa_server::startup::{Application, BuildOptions};
use kassa_server::state::AppState;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::sync::Once;

/// An HTTP client for one Kassa server, with its keys.
pub struct Api {
    pub address: String,
    pub http: reqwest::Client,
    pub secret_key: String,
    pub publishable_key: String,
}

/// A client for a server running in another process (the real binary).
pub fn remote(address: &str, secret_key: &str, publishable_key: &str) -> Api {
    Api {
        address: address.to_string(),
        http: reqwest::Client::new(),
        secret_key: secret_key.to_string(),
        publishable_key: publishable_key.to_string(),
    }
}

/// A server running in this process, its state, and a client for it.
pub struct TestApp {
    pub api: Api,
    pub state: AppState,
    db: TestDb,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

/// The database a test owns; dropped with it.
pub enum TestDb {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, schema: String },
}

impl TestDb {
    /// A fresh database: `KASSA_TEST_DATABASE_URL` (PostgreSQL) gets a new schema, else a
    /// SQLite file in a new temp dir. Returns the URL Kassa should use.
    pub async fn fresh() -> (TestDb, String) {
        match std::env::var("KASSA_TEST_DATABASE_URL") {
            Ok(admin_url) if admin_url.starts_with("postgres") => {
                let schema = format!("t_{}", rand_suffix());
                exec_pg(&admin_url, &format!("CREATE SCHEMA {schema}")).await;
                let sep = if admin_url.contains('?') { '&' } else { '?' };
                let url = format!("{admin_url}{sep}options[search_path]={schema}");
                (TestDb::Postgres { admin_url, schema }, url)
            }
            _ => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("kassa.db").display());
                (TestDb::Sqlite(dir), url)
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, TestDb::Postgres { .. })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres { admin_url, schema } = self {
            let (url, schema) = (admin_url.clone(), schema.clone());
            // Not joined: the test's runtime (and with it the server's open transactions) is
            // torn down after this returns, and DROP SCHEMA waits for those transactions.
            // A schema left behind when the process exits first is dropped with CI's database.
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                for _ in 0..20 {
                    let sql = format!("SET lock_timeout = '2s'; DROP SCHEMA IF EXISTS {schema} CASCADE");
                    if rt.block_on(try_exec_pg(&url, &sql)) {
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(500));
                }
            });
        }
    }
}

async fn try_exec_pg(url: &str, sql: &str) -> bool {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let Ok(mut conn) = sqlx::AnyConnection::connect(url).await else { return false };
    let ok = sqlx::raw_sql(sql).execute(&mut conn).await.is_ok();
    let _ = conn.close().await;
    ok
}

async fn exec_pg(url: &str, sql: &str) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.expect("connect to KASSA_TEST_DATABASE_URL");
    sqlx::query(sql).execute(&mut conn).await.expect("schema statement");
    let _ = conn.close().await;
}

pub fn rand_suffix() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..12).map(|_| (b'a' + rng.gen_range(0..26)) as char).collect()
}

static TRACING: Once = Once::new();

/// Settings for a test server: port 0, a fresh database, quiet logs, fast jobs.
pub fn test_settings(db_url: &str) -> Settings {
    let mut s = Settings::default();
    s.server.port = 0;
    s.database.url = db_url.to_string();
    s.database.max_connections = 5;
    s.jobs.interval_ms = 50;
    s.webhooks.allow_private_urls = true;
    // The suites send bursts no real client sends (hundreds of concurrent requests from one
    // address with one key). The limits stay on, so every request goes through them, but far
    // out of reach; `rate_limits.rs` tests them with low ones.
    s.rate_limits.admin_per_second = 1_000_000;
    s.rate_limits.admin_burst = 1_000_000;
    s.rate_limits.store_per_second = 1_000_000;
    s.rate_limits.store_burst = 1_000_000;
    s.rate_limits.failed_auth_per_minute = 1_000_000;
    s.rate_limits.failed_auth_burst = 1_000_000;
    s
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A server whose settings `configure` may change first.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    TRACING.call_once(|| {
        if std::env::var("TEST_LOG").is_ok() {
            kassa_server::telemetry::init(&kassa_server::config::LogSettings {
                format: kassa_server::config::LogFormat::Human,
                level: "info,kassa_server=debug".into(),
                backtraces: false,
            });
        }
    });
    let (db, url) = TestDb::fresh().await;
    let mut settings = test_settings(&url);
    configure(&mut settings);
    start(settings, db).await
}

pub async fn start(settings: Settings, db: TestDb) -> TestApp {
    let app = Application::build(settings, BuildOptions::default()).await.expect("server builds");
    let (secret, publishable) =
        app.bootstrap_keys.as_ref().map(|(s, p)| (s.secret.clone(), p.secret.clone())).expect("fresh database");
    let address = format!("http://{}", app.local_addr());
    let state = app.state().clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        app.run_until_stopped(async move {
            let _ = stop_rx.await;
        })
        .await
        .expect("server runs");
    });
    TestApp {
        api: Api { address, http: reqwest::Client::new(), secret_key: secret, publishable_key: publishable },
        state,
        db,
        stop: Some(stop_tx),
        server: Some(server),
    }
}

/// How a request authenticates.
#[derive(Clone, Copy)]
pub enum As<'a> {
    Admin,
    Store,
    /// The store API with a customer's bearer token.
    Customer(&'a str),
    /// The store API as a guest holding a client secret (`Kassa-Client-Secret`).
    Guest(&'a str),
    /// The store API with a customer's bearer token and a client secret.
    CustomerWithSecret(&'a str, &'a str),
    /// Any `Authorization: Bearer` value.
    Bearer(&'a str),
    Nobody,
}

pub struct Res {
    pub status: StatusCode,
    pub body: Value,
    pub text: String,
    pub headers: reqwest::header::HeaderMap,
}

/// The `client_secret` of an answer that created a cart or a checkout session.
#[track_caller]
pub fn secret_of(v: &Value) -> String {
    v["client_secret"].as_str().unwrap_or_else(|| panic!("no client_secret in {v}")).to_string()
}

impl Res {
    /// `error.code`, `error.param` of an error answer.
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
    pub fn error_param(&self) -> &str {
        self.body["error"]["param"].as_str().unwrap_or_default()
    }
    pub fn id(&self) -> String {
        self.body["id"].as_str().unwrap_or_else(|| panic!("no id in {}", self.text)).to_string()
    }
    #[track_caller]
    pub fn ok(self) -> Value {
        assert!(self.status.is_success(), "expected success, got {}: {}", self.status, self.text);
        self.body
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

impl std::ops::Deref for TestApp {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl TestApp {
    pub fn is_postgres(&self) -> bool {
        self.db.is_postgres()
    }

    /// Stops the server and waits for it (graceful shutdown).
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            let _ = h.await;
        }
    }
}

impl Api {
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        who: As<'_>,
        body: Option<&str>,
        idempotency_key: Option<&str>,
    ) -> Res {
        let mut req = self.http.request(method, format!("{}{path}", self.address));
        req = match who {
            As::Admin => req.bearer_auth(&self.secret_key),
            As::Store => req.header("kassa-publishable-key", &self.publishable_key),
            As::Customer(token) => req.header("kassa-publishable-key", &self.publishable_key).bearer_auth(token),
            As::Guest(secret) => {
                req.header("kassa-publishable-key", &self.publishable_key).header("kassa-client-secret", secret)
            }
            As::CustomerWithSecret(token, secret) => req
                .header("kassa-publishable-key", &self.publishable_key)
                .header("kassa-client-secret", secret)
                .bearer_auth(token),
            As::Bearer(v) => req.bearer_auth(v),
            As::Nobody => req,
        };
        if let Some(k) = idempotency_key {
            req = req.header("idempotency-key", k);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        let res = req.send().await.expect("request sent");
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body read");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Res { status, body, text, headers }
    }

    pub async fn post(&self, path: &str, who: As<'_>, body: Value) -> Res {
        self.request(Method::POST, path, who, Some(&body.to_string()), None).await
    }

    pub async fn post_idem(&self, path: &str, who: As<'_>, body: Value, key: &str) -> Res {
        self.request(Method::POST, path, who, Some(&body.to_string()), Some(key)).await
    }

    pub async fn get(&self, path: &str, who: As<'_>) -> Res {
        self.request(Method::GET, path, who, None, None).await
    }

    /// Creates a product with one USD price; returns (product id, price id).
    pub async fn product_with_price(&self, name: &str, unit_amount: i64, stock: Option<i64>) -> (String, String) {
        let mut body = serde_json::json!({"name": name});
        if let Some(q) = stock {
            body["inventory"] = serde_json::json!({"quantity": q});
        }
        let product = self.post("/admin/products", As::Admin, body).await.ok();
        let pid = product["id"].as_str().unwrap().to_string();
        let price = self
            .post(
                "/admin/prices",
                As::Admin,
                serde_json::json!({"product": pid, "currency": "usd", "unit_amount": unit_amount}),
            )
            .await
            .ok();
        (pid, price["id"].as_str().unwrap().to_string())
    }
}

/// The real `kassa` binary serving on a free port (`kassa serve`): for what only a process
/// shows (a kill, a restart, a signal, its own metrics). Killed (SIGKILL) when dropped.
pub struct Binary {
    pub child: std::process::Child,
    pub address: String,
    /// The first API keys, printed by the server that created the database (`None` when the
    /// database had keys already).
    pub keys: Option<(String, String)>,
}

impl Binary {
    /// The first server's keys (panics on a server that did not create the database).
    pub fn keys(&self) -> (String, String) {
        self.keys.clone().expect("a fresh database prints its keys")
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `kassa serve` against `db_url` and waits until it listens. `env` comes last, so it
/// overrides the defaults (port 0, `RUST_LOG=warn`); stderr is dropped, stdout read to the end
/// so the server never blocks on a full pipe.
pub fn start_binary(db_url: &str, env: &[(&str, &str)]) -> Binary {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_kassa"))
        .arg("serve")
        .env("DATABASE_URL", db_url)
        .env("KASSA_SERVER__PORT", "0")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the kassa binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut keys = None;
    let address = loop {
        let line = lines.next().expect("kassa prints its address").unwrap();
        if let Some(rest) = line.trim().strip_prefix("export KASSA_SECRET_KEY=") {
            let mut parts = rest.split(" KASSA_PUBLISHABLE_KEY=");
            keys = Some((parts.next().unwrap().to_string(), parts.next().unwrap().to_string()));
        }
        if let Some(rest) = line.strip_prefix("Kassa listening on ") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Binary { child, address, keys }
}
