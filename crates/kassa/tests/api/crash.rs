//! A server killed with SIGKILL after the processor confirmed a payment but before the order
//! committed: after a restart, the processor's webhook produces the order exactly once.

use crate::checkout::{VISA, card_token, eventually, orders_of_cart, ready_cart, shop};
use crate::helpers::*;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The real `kassa` binary, serving on a free port.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) address: String,
}

/// A test that fails before killing its server does not leave it running (and holding its
/// database).
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn start(db_url: &str, failpoints: &str, delivery_ms: u64, keys: &mut Option<(String, String)>) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kassa"))
        .arg("serve")
        .env("DATABASE_URL", db_url)
        .env("KASSA_SERVER__PORT", "0")
        .env("KASSA_JOBS__INTERVAL_MS", "50")
        .env("KASSA_PROCESSOR__TEST__DELIVERY_INTERVAL_MS", delivery_ms.to_string())
        .env("KASSA_FAILPOINTS", failpoints)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the kassa binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let address = loop {
        let line = lines.next().expect("kassa prints its address").unwrap();
        if let Some(rest) = line.trim().strip_prefix("export KASSA_SECRET_KEY=") {
            let mut parts = rest.split(" KASSA_PUBLISHABLE_KEY=");
            *keys = Some((parts.next().unwrap().to_string(), parts.next().unwrap().to_string()));
        }
        if let Some(rest) = line.strip_prefix("Kassa listening on ") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    Server { child, address }
}

#[tokio::test]
async fn a_kill_between_confirmation_and_order_is_repaired_by_the_webhook_after_restart() {
    let (db, url) = TestDb::fresh().await;
    let mut keys = None;
    // First life: hangs right after the processor confirmed; delivers no events meanwhile.
    let mut first = start(&url, "pay.after_processor_confirm", 3_600_000, &mut keys);
    let (sk, pk) = keys.clone().expect("a fresh database prints its keys");
    let app = remote(&first.address, &sk, &pk);
    let shop = shop(&app, 10).await;
    let cart = ready_cart(&app, &shop, "crash@example.com").await;
    let id = cart["id"].as_str().unwrap().to_string();
    let secret = secret_of(&cart);
    let token = card_token(&app, VISA).await;
    let attempt = app
        .http
        .post(format!("{}/store/carts/{id}/pay", app.address))
        .header("kassa-publishable-key", &pk)
        .header("kassa-client-secret", &secret)
        .json(&json!({"confirmation_token": token}))
        .timeout(Duration::from_secs(3))
        .send()
        .await;
    assert!(attempt.is_err(), "the server hangs at the failpoint");
    let payments = app.get("/admin/payments", As::Admin).await.ok();
    assert_eq!(payments["data"][0]["status"], "pending", "confirmed at the processor, not yet recorded");
    assert!(orders_of_cart(&app, &id).await.is_empty());

    first.child.kill().expect("SIGKILL");
    first.child.wait().unwrap();

    // Second life: the processor's pending event is delivered to the new server.
    let mut second = start(&url, "", 100, &mut keys);
    let app = remote(&second.address, &sk, &pk);
    eventually("the webhook to create the order after the restart", || async {
        orders_of_cart(&app, &id).await.len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(orders_of_cart(&app, &id).await.len(), 1, "exactly once");
    let cart_now = app.get(&format!("/store/carts/{id}"), As::Guest(&secret)).await.ok();
    assert_eq!(cart_now["status"], "completed");
    let payments = app.get("/admin/payments", As::Admin).await.ok();
    assert_eq!(payments["data"][0]["status"], "succeeded");
    assert_eq!(
        app.get(&format!("/admin/products/{}", shop.tracked.0), As::Admin).await.ok()["inventory"]["quantity"],
        8
    );
    // The shopper's retry answers that the cart is paid.
    let r = app.post(&format!("/store/carts/{id}/pay"), As::Guest(&secret), json!({"confirmation_token": token})).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.error_code(), "cart_completed");
    second.child.kill().unwrap();
    second.child.wait().unwrap();
    drop(db);
}
