//! A server killed with SIGKILL after the processor charged the card typed on a hosted invoice
//! page but before the invoice's payment was written: after a restart, neither a second submit
//! of the page nor the renewal job's retry charges again — the job finds the page's payment
//! (written to the invoice before it was confirmed) and records it as the invoice's.

use crate::crash::start;
use crate::helpers::*;
use serde_json::{Value, json};
use std::time::Duration;

/// 2027-01-31T00:00:00Z.
const JAN_31_2027: i64 = 1_801_353_600;
const DAY: i64 = 86_400;
const VISA_FORM: [(&str, &str); 3] = [("number", "4242 4242 4242 4242"), ("exp", "12/34"), ("cvc", "123")];

/// Succeeded PaymentIntents at the test processor (its objects live in Kassa's database)
/// that pay `invoice`.
async fn charges_of(db_url: &str, invoice: &str) -> usize {
    let store = kassa_store::Store::connect(&kassa_store::db::ConnectOptions {
        url: db_url.to_string(),
        max_connections: 1,
        acquire_timeout: Duration::from_secs(10),
        sqlite_full_sync: false,
    })
    .await
    .unwrap();
    let intents: Vec<String> =
        kassa_store::sql::query_scalar("SELECT data FROM tp_objects WHERE kind = 'payment_intent'")
            .fetch_all(store.reader())
            .await
            .unwrap();
    store.close().await;
    intents
        .iter()
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .filter(|pi| pi["status"] == "succeeded" && pi["metadata"]["kassa_invoice"] == invoice)
        .count()
}

async fn submit(url: &str) -> Result<reqwest::Response, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(url)
        .form(&VISA_FORM)
        .timeout(Duration::from_secs(3))
        .send()
        .await
}

async fn advance(app: &Api, clock: &str, to: i64) {
    let r = app.post(&format!("/admin/test-clocks/{clock}/advance"), As::Admin, json!({"frozen_time": to})).await;
    assert_eq!(r.ok()["frozen_time"], to);
}

#[tokio::test]
async fn a_kill_between_the_page_charge_and_its_record_never_charges_the_invoice_twice() {
    let (db, url) = TestDb::fresh().await;
    let mut keys = None;
    // First life: hangs right after the processor charged the page's card.
    let mut first = start(&url, "invoice_page.after_processor_confirm", 3_600_000, &mut keys);
    let (sk, pk) = keys.clone().expect("a fresh database prints its keys");
    let app = remote(&first.address, &sk, &pk);

    // A renewal whose saved card declines: past due, its invoice open on its hosted page.
    let product = app.post("/admin/products", As::Admin, json!({"name": "Plan"})).await.ok();
    let price = app
        .post(
            "/admin/prices",
            As::Admin,
            json!({"product": product["id"], "currency": "usd", "unit_amount": 1300, "recurring": {"interval": "month"}}),
        )
        .await
        .ok();
    let clock = app.post("/admin/test-clocks", As::Admin, json!({"frozen_time": JAN_31_2027})).await.ok();
    let clock = clock["id"].as_str().unwrap().to_string();
    let customer = app
        .post("/admin/customers", As::Admin, json!({"email": "page-crash@example.com", "test_clock": clock}))
        .await
        .ok();
    let customer = customer["id"].as_str().unwrap().to_string();
    app.post(
        &format!("/admin/customers/{customer}/payment-methods"),
        As::Admin,
        json!({"payment_method": "pm_card_chargeCustomerFail", "default": true}),
    )
    .await
    .ok();
    let body = json!({"customer": customer, "items": [{"price": price["id"]}], "trial_period_days": 1});
    let sub = app.post("/admin/subscriptions", As::Admin, body).await.ok()["id"].as_str().unwrap().to_string();
    advance(&app, &clock, JAN_31_2027 + DAY).await;
    let s = app.get(&format!("/admin/subscriptions/{sub}"), As::Admin).await.ok();
    assert_eq!(s["status"], "past_due");
    let inv_id = s["latest_invoice"].as_str().unwrap().to_string();
    let inv = app.get(&format!("/admin/invoices/{inv_id}"), As::Admin).await.ok();
    let url_of_page = inv["hosted_invoice_url"].as_str().unwrap();
    // The page's path; each life of the server serves it at its own address.
    let page = url_of_page[url_of_page.find("/invoice-pages/").unwrap()..].to_string();
    let next = inv["next_payment_attempt"].as_i64().expect("a retry is scheduled");

    // The customer pays on the page with a good card; the server dies after the charge.
    assert!(submit(&format!("{}{page}", app.address)).await.is_err(), "the server hangs at the failpoint");
    assert_eq!(charges_of(&url, &inv_id).await, 1, "charged at the processor");
    let inv = app.get(&format!("/admin/invoices/{inv_id}"), As::Admin).await.ok();
    assert_eq!((inv["status"].as_str(), inv["amount_paid"].as_i64()), (Some("open"), Some(0)), "not yet recorded");
    first.child.kill().expect("SIGKILL");
    first.child.wait().unwrap();

    // Second life. The customer submits again at once: the dead server's claim still holds the
    // invoice, so nothing is charged.
    let mut second = start(&url, "", 100, &mut keys);
    let app = remote(&second.address, &sk, &pk);
    let again = submit(&format!("{}{page}", app.address)).await.expect("the page answers");
    assert_eq!(again.status().as_u16(), 409, "another payment is under way");
    assert_eq!(charges_of(&url, &inv_id).await, 1);

    // The claim runs out (its 60 s lease; set in the past here rather than waited for), and
    // the retry falls due: the job finds the page's payment and records it — no new charge.
    let store = kassa_store::Store::connect(&kassa_store::db::ConnectOptions {
        url: url.clone(),
        max_connections: 1,
        acquire_timeout: Duration::from_secs(10),
        sqlite_full_sync: false,
    })
    .await
    .unwrap();
    kassa_store::sql::query("UPDATE invoices SET lease_until = 1 WHERE id = $1")
        .bind(&inv_id)
        .execute(store.writer())
        .await
        .unwrap();
    store.close().await;
    advance(&app, &clock, next).await;
    let inv = app.get(&format!("/admin/invoices/{inv_id}"), As::Admin).await.ok();
    assert_eq!((inv["status"].as_str(), inv["amount_paid"].as_i64()), (Some("paid"), Some(1300)), "{inv}");
    assert_eq!(charges_of(&url, &inv_id).await, 1, "exactly one charge");
    assert_eq!(app.get(&format!("/admin/subscriptions/{sub}"), As::Admin).await.ok()["status"], "active");
    let events = app.get(&format!("/admin/events?object={inv_id}&limit=100"), As::Admin).await.ok();
    let paid = events["data"].as_array().unwrap().iter().filter(|e| e["type"] == "invoice.paid").count();
    assert_eq!(paid, 1);

    // A last submit finds the invoice paid: back to the page, nothing charged.
    let last = submit(&format!("{}{page}", app.address)).await.expect("the page answers");
    assert_eq!(last.status().as_u16(), 303);
    assert_eq!(charges_of(&url, &inv_id).await, 1);
    second.child.kill().unwrap();
    second.child.wait().unwrap();
    drop(db);
}
