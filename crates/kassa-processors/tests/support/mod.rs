//! Helpers shared by the Stripe test suites: the gate on external tools, localstripe per test,
//! and a processor pointed at a local server. Kassa's HTTP tests (`crates/kassa/tests/api/`)
//! and the processor contract (`crates/kassa-sandbox/tests/contract.rs`) include this file too,
//! by path.

#![allow(dead_code)]

use kassa_processors::stripe::{StripeConfig, StripeProcessor};
use secrecy::SecretString;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::Duration;

pub const SECRET_KEY: &str = "sk_test_kassa_4eC39HqLyjWDarjtT1zdp7dc";
pub const WEBHOOK_SECRET: &str = "whsec_kassa_current_secret";

/// The Python of the environment with localstripe and stripe-python (`.ci/python-env`), from
/// `KASSA_TEST_PYTHON`. The tests that need it are `#[ignore]`d, so `cargo test` lists them as
/// ignored; run with `-- --include-ignored` but without it, a test returns early, unless
/// `KASSA_REQUIRE_EXTERNAL=1` (CI), where a missing tool must fail rather than pass silently.
pub fn python() -> Option<PathBuf> {
    match std::env::var_os("KASSA_TEST_PYTHON").filter(|v| !v.is_empty()) {
        Some(path) => Some(PathBuf::from(path)),
        None if std::env::var("KASSA_REQUIRE_EXTERNAL").as_deref() == Ok("1") => {
            panic!("KASSA_REQUIRE_EXTERNAL=1 but KASSA_TEST_PYTHON is not set (see .ci/python-env)")
        }
        None => {
            println!("skipped: set KASSA_TEST_PYTHON");
            None
        }
    }
}

/// The `node_modules` folder holding the official `stripe` npm package
/// (`scripts/stripe-node-env` installs it and prints the folder), from `KASSA_TEST_STRIPE_NODE`;
/// gated like [`python`].
pub fn stripe_node_modules() -> Option<PathBuf> {
    match std::env::var_os("KASSA_TEST_STRIPE_NODE").filter(|v| !v.is_empty()) {
        Some(path) => Some(PathBuf::from(path)),
        None if std::env::var("KASSA_REQUIRE_EXTERNAL").as_deref() == Ok("1") => {
            panic!("KASSA_REQUIRE_EXTERNAL=1 but KASSA_TEST_STRIPE_NODE is not set (see scripts/stripe-node-env)")
        }
        None => {
            println!("skipped: set KASSA_TEST_STRIPE_NODE=$(scripts/stripe-node-env)");
            None
        }
    }
}

/// A line-oriented helper process (one JSON request per line on stdin, one `{"result": …}`
/// per line on stdout): `scripts/stripe_webhook_signature.py` (stripe-python) or
/// `scripts/stripe_webhook_signature.js` (stripe-node). Importing the library takes a
/// while, so a test binary starts each once and shares it; it exits when its stdin closes,
/// that is when the test binary ends.
struct LineHelper {
    _child: Child,
    stdin: ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
}

impl LineHelper {
    fn start(mut command: Command) -> LineHelper {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        LineHelper { _child: child, stdin, stdout }
    }

    fn ask(helper: &Mutex<LineHelper>, request: &serde_json::Value) -> String {
        use std::io::Write;
        let mut helper = helper.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        writeln!(helper.stdin, "{request}").unwrap();
        let mut line = String::new();
        helper.stdout.read_line(&mut line).unwrap();
        let answer: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("the helper answered {line:?} to {request}"));
        answer["result"].as_str().unwrap().to_owned()
    }
}

/// Asks stripe-python (`scripts/stripe_webhook_signature.py`, see its protocol there).
pub fn stripe_python(python: &std::path::Path, request: serde_json::Value) -> String {
    static HELPER: OnceLock<Mutex<LineHelper>> = OnceLock::new();
    let helper = HELPER.get_or_init(|| {
        let mut command = Command::new(python);
        command.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/stripe_webhook_signature.py"));
        Mutex::new(LineHelper::start(command))
    });
    LineHelper::ask(helper, &request)
}

/// Asks stripe-node (`scripts/stripe_webhook_signature.js`, the same protocol), with the
/// package from `node_modules`.
pub fn stripe_node(node_modules: &std::path::Path, request: serde_json::Value) -> String {
    static HELPER: OnceLock<Mutex<LineHelper>> = OnceLock::new();
    let helper = HELPER.get_or_init(|| {
        let mut command = Command::new("node");
        command
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/stripe_webhook_signature.js"))
            .env("NODE_PATH", node_modules);
        Mutex::new(LineHelper::start(command))
    });
    LineHelper::ask(helper, &request)
}

/// `Webhook.construct_event` of stripe-python on a payload: `ok <id> <type>` or `refused: …`.
pub fn stripe_python_verify(python: &std::path::Path, payload: &[u8], secret: &str, header: &str) -> String {
    stripe_python(python, verify_request(payload, secret, header))
}

/// `stripe.webhooks.constructEvent` of stripe-node on a payload: `ok <id> <type>` or `refused: …`.
pub fn stripe_node_verify(node_modules: &std::path::Path, payload: &[u8], secret: &str, header: &str) -> String {
    stripe_node(node_modules, verify_request(payload, secret, header))
}

fn verify_request(payload: &[u8], secret: &str, header: &str) -> serde_json::Value {
    serde_json::json!({"mode": "verify", "secret": secret, "header": header, "payload_hex": hex::encode(payload)})
}

/// One localstripe server, private to a test, on a free loopback port, killed on drop.
pub struct LocalStripe {
    child: Child,
    /// Held open: the server exits when it closes, also if this process dies first.
    _stdin: ChildStdin,
    pub base_url: String,
}

/// A loopback port nothing listens on (just now): for a server that is down, then started there.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl LocalStripe {
    pub fn start(python: &PathBuf) -> LocalStripe {
        LocalStripe::start_on(python, 0)
    }

    /// localstripe on `port` (0: any free port).
    pub fn start_on(python: &PathBuf, port: u16) -> LocalStripe {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/localstripe_server.py");
        let mut child = Command::new(python)
            .arg(script)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let port: u16 = match line.trim().parse() {
            Ok(port) => port,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "localstripe did not start on port {port} (printed {line:?}); is localstripe installed for {}?",
                    python.display()
                )
            }
        };
        LocalStripe { child, _stdin: stdin, base_url: format!("http://127.0.0.1:{port}") }
    }

    /// Stops the server where it is (`SIGSTOP`): connections are still accepted by the kernel
    /// and requests wait in its buffers, unanswered, until [`LocalStripe::resume`].
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server go on (`SIGCONT`): it serves the requests that waited.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill").arg(signal).arg(self.child.id().to_string()).status().expect("kill runs");
        assert!(status.success(), "kill {signal} {}", self.child.id());
    }

    pub fn processor(&self) -> StripeProcessor {
        processor(&self.base_url)
    }

    /// A raw call to localstripe for what the processor does not offer (test cards,
    /// `_authenticate`, webhook registration).
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> serde_json::Value {
        let response = reqwest::Client::new()
            .post(format!("{}{path}", self.base_url))
            .bearer_auth(SECRET_KEY)
            .form(form)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "POST {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
    }

    pub async fn get(&self, path: &str) -> serde_json::Value {
        let response = reqwest::Client::new()
            .get(format!("{}{path}", self.base_url))
            .bearer_auth(SECRET_KEY)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "GET {path}: {}", response.status());
        response.json().await.unwrap()
    }

    /// A card PaymentMethod for a test card number.
    pub async fn card(&self, number: &str) -> String {
        let pm = self
            .post(
                "/v1/payment_methods",
                &[
                    ("type", "card"),
                    ("card[number]", number),
                    ("card[exp_month]", "12"),
                    ("card[exp_year]", "2034"),
                    ("card[cvc]", "123"),
                ],
            )
            .await;
        pm["id"].as_str().unwrap().to_owned()
    }
}

impl Drop for LocalStripe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn config(base_url: &str) -> StripeConfig {
    StripeConfig {
        base_url: base_url.to_owned(),
        timeout: Duration::from_secs(10),
        initial_retry_delay: Duration::from_millis(20),
        ..StripeConfig::new(SecretString::from(SECRET_KEY), vec![SecretString::from(WEBHOOK_SECRET)])
    }
}

pub fn processor(base_url: &str) -> StripeProcessor {
    StripeProcessor::new(config(base_url)).unwrap()
}

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

pub fn processor_with_secrets(base_url: &str, secrets: &[&str]) -> StripeProcessor {
    let webhook_secrets = secrets.iter().map(|s| SecretString::from(s.to_string())).collect();
    StripeProcessor::new(StripeConfig { webhook_secrets, ..config(base_url) }).unwrap()
}
