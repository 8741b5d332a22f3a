//! The webhooks the test processor sends back after a checkout cost Kassa (almost) nothing
//! (issue 13): `payment_intent.succeeded` for a payment the pay call settled already is one
//! statement (it records the event for dedupe and checks the payment in one), its repeat one
//! statement too, and `customer.created`, which Kassa does not act on, none.
//!
//! Measured on a server of its own — the real binary, so that the process-wide counters of
//! `/metrics` count that server alone while other tests run. It runs no background jobs (no
//! other job's round lands in the count), so the test processor's events stay in `tp_events`
//! and this test delivers them itself, signed as the processor signs them.

use crate::checkout::{VISA, card_token, shop};
use crate::helpers::*;
use kassa_store::Store;
use kassa_store::db::ConnectOptions;
use serde_json::json;
use std::time::Duration;

/// Database round trips the server has made so far.
async fn round_trips(app: &Api) -> u64 {
    let text = app.http.get(format!("{}/metrics", app.address)).send().await.unwrap().text().await.unwrap();
    let value = |line: &str| line.split_whitespace().nth(1).unwrap().parse::<f64>().unwrap() as u64;
    text.lines().filter(|l| l.starts_with("kassa_db_round_trips_total{")).map(value).sum()
}

/// Posts an event body to the server's webhook endpoint, signed with the processor's secret;
/// answers the HTTP status and the round trips the server made meanwhile.
async fn deliver(app: &Api, secret: &str, body: &str) -> (u16, u64) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let header = kassa_processors::signature::sign(secret, now, body.as_bytes());
    let before = round_trips(app).await;
    let status = app
        .http
        .post(format!("{}/webhooks/stripe", app.address))
        .header("stripe-signature", header)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    (status, round_trips(app).await - before)
}

#[tokio::test]
async fn the_webhooks_after_a_checkout_cost_one_statement_when_they_change_nothing() {
    let (_db, url) = TestDb::fresh().await;
    let server = start_binary(&url, &[("KASSA_JOBS__ENABLED", "false")]);
    let (sk, pk) = server.keys();
    let app = remote(&server.address, &sk, &pk);
    let shop = shop(&app, 10).await;
    let cart = app
        .post(
            "/store/carts",
            As::Store,
            json!({"region": shop.region, "email": "webhooks@example.com",
                   "shipping_address": crate::carts::address(), "shipping_option": shop.shipping,
                   "items": [{"price": shop.untracked.1}]}),
        )
        .await
        .ok();
    let (id, secret) = (cart["id"].as_str().unwrap().to_string(), secret_of(&cart));
    let token = card_token(&app, VISA).await;
    let paid = app
        .post(&format!("/store/carts/{id}/pay"), As::Guest(&secret), json!({"confirmation_token": token}))
        .await
        .ok();
    assert!(paid["order"]["id"].is_string(), "{paid}");
    let payment = paid["payment"]["id"].as_str().unwrap().to_string();
    let pi = paid["payment"]["processor_payment_intent"].as_str().unwrap().to_string();
    // The guest's processor customer (made by the pay call, as no job runs here) has its event.
    let db = Store::connect(&ConnectOptions {
        url: url.clone(),
        max_connections: 2,
        acquire_timeout: Duration::from_secs(10),
        sqlite_full_sync: false,
    })
    .await
    .unwrap();
    let events: Vec<(String, String)> = kassa_store::sql::query_as("SELECT type, data FROM tp_events ORDER BY id")
        .fetch_all(db.reader())
        .await
        .unwrap();
    let webhook_secret =
        kassa_store::settings::get(db.reader(), "test_processor_webhook_secret").await.unwrap().unwrap();
    let body_of = |kind: &str| {
        events.iter().find(|(k, _)| k == kind).unwrap_or_else(|| panic!("no {kind} in {events:?}")).1.clone()
    };
    let succeeded = body_of("payment_intent.succeeded");
    assert!(succeeded.contains(&pi), "{succeeded}");

    // The pay call settled the payment: recording the event is all there is to do.
    assert_eq!(deliver(&app, &webhook_secret, &succeeded).await, (200, 1));
    // A repeat is counted as one more delivery, in one statement as well.
    assert_eq!(deliver(&app, &webhook_secret, &succeeded).await, (200, 1));
    // An event Kassa does not act on costs nothing.
    assert_eq!(deliver(&app, &webhook_secret, &body_of("customer.created")).await, (200, 0));

    // And nothing changed: one order, the payment succeeded, the event recorded once with
    // its two deliveries.
    let p = app.get(&format!("/admin/payments/{payment}"), As::Admin).await.ok();
    assert_eq!(p["status"], "succeeded", "{p}");
    let orders: i64 = kassa_store::sql::query_scalar("SELECT COUNT(*) FROM orders WHERE cart = $1")
        .bind(&id)
        .fetch_one(db.reader())
        .await
        .unwrap();
    assert_eq!(orders, 1);
    let event_id = serde_json::from_str::<serde_json::Value>(&succeeded).unwrap()["id"].as_str().unwrap().to_string();
    let deliveries: i64 = kassa_store::sql::query_scalar("SELECT deliveries FROM processor_events WHERE id = $1")
        .bind(&event_id)
        .fetch_one(db.reader())
        .await
        .unwrap();
    assert_eq!(deliveries, 2);
    db.close().await;
}
