//! Single-shot pay, orders, inbound webhooks and hosted checkout, end to end through HTTP
//! with the built-in test processor.

use crate::carts::{address, us_region};
use crate::helpers::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

pub const VISA: &str = "4242 4242 4242 4242";
pub const DECLINED: &str = "4000 0000 0000 0002";
pub const NO_FUNDS: &str = "4000 0000 0000 9995";
pub const THREE_DS: &str = "4000 0027 6000 3184";

/// A ConfirmationToken for a test card, as a browser would get one.
pub async fn card_token(app: &Api, number: &str) -> String {
    let t = app
        .post(
            "/test-processor/v1/confirmation_tokens",
            As::Store,
            json!({"card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}}),
        )
        .await
        .ok();
    t["id"].as_str().unwrap().to_string()
}

/// A shop: a region with tax and shipping, a tracked product and an untracked one.
pub struct Shop {
    pub region: String,
    pub shipping: String,
    pub tracked: (String, String),
    pub untracked: (String, String),
}

pub async fn shop(app: &Api, stock: i64) -> Shop {
    let (region, shipping) = us_region(app).await;
    Shop {
        region,
        shipping,
        tracked: app.product_with_price("Shirt", 2500, Some(stock)).await,
        untracked: app.product_with_price("Sticker", 400, None).await,
    }
}

/// A guest cart ready to pay: 2 shirts, 1 sticker, email, address, shipping; with the
/// `client_secret` of the answer that created it.
pub async fn ready_cart(app: &Api, shop: &Shop, email: &str) -> Value {
    let cart = app
        .post(
            "/store/carts",
            As::Store,
            json!({"region": shop.region, "email": email, "shipping_address": address(),
                   "items": [{"price": shop.tracked.1, "quantity": 2}, {"price": shop.untracked.1}]}),
        )
        .await
        .ok();
    let id = cart["id"].as_str().unwrap();
    let secret = secret_of(&cart);
    let mut ready = app
        .post(&format!("/store/carts/{id}"), As::Guest(&secret), json!({"shipping_option": shop.shipping}))
        .await
        .ok();
    ready["client_secret"] = secret.into();
    ready
}

/// Pays a guest cart (as returned by [`ready_cart`]) with a test card.
pub async fn pay(app: &Api, cart: &Value, number: &str) -> Res {
    let token = card_token(app, number).await;
    let id = cart["id"].as_str().unwrap();
    app.post(&format!("/store/carts/{id}/pay"), As::Guest(&secret_of(cart)), json!({"confirmation_token": token})).await
}

pub async fn orders_of_cart(app: &Api, cart: &str) -> Vec<Value> {
    let all = app.get("/admin/orders?limit=100", As::Admin).await.ok();
    all["data"].as_array().unwrap().iter().filter(|o| o["cart"] == cart).cloned().collect()
}

async fn stock(app: &Api, product: &str) -> Value {
    app.get(&format!("/admin/products/{product}"), As::Admin).await.ok()["inventory"].clone()
}

/// Waits until `check` holds (webhooks and jobs are asynchronous).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Follows a 3-D Secure challenge URL and presses a button of the page.
pub async fn answer_challenge(app: &Api, url: &str, outcome: &str) {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let res = client.post(url).form(&[("outcome", outcome)]).send().await.unwrap();
    // 303 to the return URL, or the page itself when the payment has none.
    assert!(matches!(res.status().as_u16(), 200 | 303), "{}", res.text().await.unwrap());
    let _ = app;
}

#[tokio::test]
async fn paying_with_a_test_card_creates_exactly_one_order() {
    let app = spawn_app().await;
    let shop = shop(&app, 10).await;
    let cart = ready_cart(&app, &shop, "buyer@example.com").await;
    let secret = secret_of(&cart);
    let id = cart["id"].as_str().unwrap();
    assert_eq!(stock(&app, &shop.tracked.0).await, json!({"quantity": 10, "reserved": 2, "available": 8}));

    let token = card_token(&app, VISA).await;
    let paid = app
        .post_idem(&format!("/store/carts/{id}/pay"), As::Guest(&secret), json!({"confirmation_token": token}), "pay-1")
        .await;
    assert_eq!(paid.status, 200, "{}", paid.text);
    assert_eq!(paid.body["status"], "succeeded");
    let order = &paid.body["order"];
    assert!(order["id"].as_str().unwrap().starts_with("ord_"));
    assert_eq!(order["total"], cart["total"]);
    assert_eq!(order["payment_status"], "captured");
    assert_eq!(order["fulfillment_status"], "not_fulfilled");
    assert_eq!(order["items"].as_array().unwrap().len(), 2);
    assert_eq!(order["shipping_address"]["city"], "New York");
    // The replay answers the same, and there is still one order.
    let replay = app
        .post_idem(&format!("/store/carts/{id}/pay"), As::Guest(&secret), json!({"confirmation_token": token}), "pay-1")
        .await;
    assert_eq!(replay.text, paid.text);
    assert_eq!(orders_of_cart(&app, id).await.len(), 1);

    let cart_now = app.get(&format!("/store/carts/{id}"), As::Guest(&secret)).await.ok();
    assert_eq!(cart_now["status"], "completed");
    assert_eq!(cart_now["order"], order["id"]);
    assert_eq!(stock(&app, &shop.tracked.0).await, json!({"quantity": 8, "reserved": 0, "available": 8}));
    let again = pay(&app, &cart, VISA).await;
    assert_eq!(again.status, 409);
    assert_eq!(again.error_code(), "cart_completed");

    // Never a "Guest" payment: the PaymentIntent carries the customer's processor customer.
    let customer = app.get(&format!("/admin/customers/{}", cart["customer"].as_str().unwrap()), As::Admin).await.ok();
    let processor_customer = customer["processor_customer"].as_str().expect("processor customer exists");
    let pi_id = paid.body["payment"]["processor_payment_intent"].as_str().unwrap();
    let pi = app.state.processor.retrieve_payment_intent(pi_id).await.unwrap();
    assert_eq!(pi.customer.as_deref(), Some(processor_customer));
    assert_eq!(pi.amount, cart["total"].as_i64().unwrap());
    assert_eq!(pi.metadata.get("kassa_cart_id").map(String::as_str), Some(id));

    for kind in ["order.created", "payment.succeeded"] {
        let ev = app.get(&format!("/admin/events?type={kind}"), As::Admin).await.ok();
        assert_eq!(ev["data"].as_array().unwrap().len(), 1, "{kind}");
    }
    let mine = app.get(&format!("/store/orders/{}", order["id"].as_str().unwrap()), As::Guest(&secret)).await.ok();
    assert_eq!(mine["id"], order["id"]);
}

#[tokio::test]
async fn a_decline_creates_nothing_and_leaves_the_cart_payable() {
    let app = spawn_app().await;
    let shop = shop(&app, 10).await;
    let cart = ready_cart(&app, &shop, "decline@example.com").await;
    let secret = secret_of(&cart);
    let id = cart["id"].as_str().unwrap();
    for (card, decline) in [(DECLINED, "generic_decline"), (NO_FUNDS, "insufficient_funds")] {
        let r = pay(&app, &cart, card).await;
        assert_eq!(r.status, 402, "{}", r.text);
        assert_eq!(r.body["error"]["type"], "card_error");
        assert_eq!(r.error_code(), "card_declined");
        assert_eq!(r.body["error"]["decline_code"], decline);
        assert!(r.body["error"]["payment"].as_str().unwrap().starts_with("pay_"));
    }
    assert!(orders_of_cart(&app, id).await.is_empty());
    let still = app.get(&format!("/store/carts/{id}"), As::Guest(&secret)).await.ok();
    assert_eq!(still["status"], "open");
    assert_eq!(stock(&app, &shop.tracked.0).await["reserved"], 2, "the cart keeps its stock");
    let failed = app.get("/admin/payments?status=failed", As::Admin).await.ok();
    assert_eq!(failed["data"].as_array().unwrap().len(), 2);

    let ok = pay(&app, &cart, VISA).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(orders_of_cart(&app, id).await.len(), 1);
}

#[tokio::test]
async fn three_d_secure_completes_by_calling_pay_again_exactly_once() {
    let app = spawn_app().await;
    let shop = shop(&app, 10).await;
    let cart = ready_cart(&app, &shop, "sca@example.com").await;
    let secret = secret_of(&cart);
    let id = cart["id"].as_str().unwrap();
    let token = card_token(&app, THREE_DS).await;
    let body = json!({"confirmation_token": token, "return_url": "https://shop.test/return"});
    let r = app.post(&format!("/store/carts/{id}/pay"), As::Guest(&secret), body.clone()).await.ok();
    assert_eq!(r["status"], "requires_action");
    assert_eq!(r["order"], Value::Null);
    let url = r["next_action"]["redirect_url"].as_str().unwrap().to_string();
    assert!(url.contains("/test-processor/authenticate/pi_"), "{url}");
    // Asking again before the challenge is answered returns the same challenge.
    let again = app.post(&format!("/store/carts/{id}/pay"), As::Guest(&secret), body.clone()).await.ok();
    assert_eq!(again["next_action"]["redirect_url"], url.as_str());
    assert!(orders_of_cart(&app, id).await.is_empty());

    answer_challenge(&app, &url, "complete").await;
    let done = app.post(&format!("/store/carts/{id}/pay"), As::Guest(&secret), body.clone()).await.ok();
    assert_eq!(done["status"], "succeeded");
    let order = done["order"]["id"].as_str().unwrap().to_string();
    // The processor's webhook arrives too; still exactly one order.
    eventually("the payment_intent.succeeded webhook to be handled", || async {
        let tp = app.state.test_processor.clone().unwrap();
        let pi = done["payment"]["processor_payment_intent"].as_str().unwrap().to_string();
        let delivered = tp
            .events()
            .await
            .unwrap()
            .iter()
            .any(|e| e["type"] == "payment_intent.succeeded" && e["data"]["object"]["id"] == pi.as_str());
        let handled: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM processor_events WHERE type = 'payment_intent.succeeded'")
                .fetch_one(app.state.store.reader())
                .await
                .unwrap();
        delivered && handled == 1
    })
    .await;
    let orders = orders_of_cart(&app, id).await;
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0]["id"], order.as_str());
}

#[tokio::test]
async fn three_d_secure_completed_by_the_webhook_alone() {
    let app = spawn_app().await;
    let shop = shop(&app, 10).await;
    let cart = ready_cart(&app, &shop, "webhook@example.com").await;
    let secret = secret_of(&cart);
    let id = cart["id"].as_str().unwrap();
    let r = pay(&app, &cart, THREE_DS).await.ok();
    answer_challenge(&app, r["next_action"]["redirect_url"].as_str().unwrap(), "complete").await;
    eventually("the webhook to create the order", || async { orders_of_cart(&app, id).await.len() == 1 }).await;
    assert_eq!(app.get(&format!("/store/carts/{id}"), As::Guest(&secret)).await.ok()["status"], "completed");
    assert_eq!(stock(&app, &shop.tracked.0).await, json!({"quantity": 8, "reserved": 0, "available": 8}));
}

#[tokio::test]
async fn a_failed_challenge_leaves_the_cart_payable() {
    let app = spawn_app().await;
    let shop = shop(&app, 10).await;
    let cart = ready_cart(&app, &shop, "fail3ds@example.com").await;
    let secret = secret_of(&cart);
    let id = cart["id"].as_str().unwrap();
    let token = card_token(&app, THREE_DS).await;
    let body = json!({"confirmation_token": token});
    let r = app.post(&format!("/store/carts/{id}/pay"), As::Guest(&secret), body.clone()).await.ok();
    answer_challenge(&app, r["next_action"]["redirect_url"].as_str().unwrap(), "fail").await;
    let r = app.post(&format!("/store/carts/{id}/pay"), As::Guest(&secret), body).await;
    assert_eq!(r.status, 402, "{}", r.text);
    assert!(orders_of_cart(&app, id).await.is_empty());
    assert_eq!(pay(&app, &cart, VISA).await.status, 200);
}

#[tokio::test]
async fn a_cart_changed_during_the_challenge_is_not_completed_with_the_stale_amount() {
    let app = spawn_app().await;
    let shop = shop(&app, 10).await;
    let cart = ready_cart(&app, &shop, "stale@example.com").await;
    let secret = secret_of(&cart);
    let id = cart["id"].as_str().unwrap();
    let r = pay(&app, &cart, THREE_DS).await.ok();
    let stale_payment = r["payment"]["id"].as_str().unwrap().to_string();
    let stale_pi = r["payment"]["processor_payment_intent"].as_str().unwrap().to_string();
    // The shopper adds an item in another tab, then finishes the old challenge.
    let changed = app
        .post(&format!("/store/carts/{id}/line-items"), As::Guest(&secret), json!({"price": shop.untracked.1}))
        .await
        .ok();
    assert!(changed["total"].as_i64() > cart["total"].as_i64());
    answer_challenge(&app, r["next_action"]["redirect_url"].as_str().unwrap(), "complete").await;

    // The stale payment never becomes an order; it is given back.
    eventually("the stale payment to be voided", || async {
        app.get(&format!("/admin/payments/{stale_payment}"), As::Admin).await.ok()["status"] == "voided"
    })
    .await;
    let p = app.get(&format!("/admin/payments/{stale_payment}"), As::Admin).await.ok();
    assert_eq!(p["void_reason"], "stale");
    let pi = app.state.processor.retrieve_payment_intent(&stale_pi).await.unwrap();
    assert_eq!(pi.amount_refunded, pi.amount_received, "the stale charge was refunded");
    assert!(orders_of_cart(&app, id).await.is_empty());
    let open = app.get(&format!("/store/carts/{id}"), As::Guest(&secret)).await.ok();
    assert_eq!(open["status"], "open");

    let ok = pay(&app, &cart, VISA).await.ok();
    assert_eq!(ok["order"]["total"], changed["total"]);
    assert_eq!(orders_of_cart(&app, id).await.len(), 1);
}

#[tokio::test]
async fn manual_capture_partial_capture_refund_limits_and_cancel() {
    let app = spawn_app_with(|s| s.checkout.capture = kassa_server::config::CaptureMode::Manual).await;
    let shop = shop(&app, 10).await;
    let cart = ready_cart(&app, &shop, "capture@example.com").await;
    let total = cart["total"].as_i64().unwrap();
    let r = pay(&app, &cart, VISA).await.ok();
    assert_eq!(r["status"], "authorized");
    let order = r["order"]["id"].as_str().unwrap().to_string();
    assert_eq!(r["order"]["payment_status"], "authorized");
    assert_eq!(r["order"]["amount_captured"], 0);

    // Nothing captured yet: nothing to refund.
    let r = app.post(&format!("/admin/orders/{order}/refunds"), As::Admin, json!({"amount": 1})).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let r = app.post(&format!("/admin/orders/{order}/capture"), As::Admin, json!({"amount": total + 1})).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_param(), "amount");
    let captured = total - 1000;
    let o = app.post(&format!("/admin/orders/{order}/capture"), As::Admin, json!({"amount": captured})).await.ok();
    assert_eq!(o["payment_status"], "captured");
    assert_eq!(o["amount_captured"], captured);
    let r = app.post(&format!("/admin/orders/{order}/capture"), As::Admin, json!({})).await;
    assert_eq!(r.status, 409, "one capture per payment");

    let r = app.post(&format!("/admin/orders/{order}/refunds"), As::Admin, json!({"amount": captured + 1})).await;
    assert_eq!(r.status, 400, "never more than captured: {}", r.text);
    // Twelve concurrent refunds of a tenth each: exactly ten fit.
    let tenth = captured / 10;
    let path = format!("/admin/orders/{order}/refunds");
    let results =
        futures::future::join_all((0..12).map(|_| app.post(&path, As::Admin, json!({"amount": tenth})))).await;
    let ok = results.iter().filter(|r| r.status == 200).count();
    assert!(
        results.iter().all(|r| r.status == 200 || r.status == 400),
        "{:?}",
        results.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
    assert_eq!(ok, 10);
    let o = app.get(&format!("/admin/orders/{order}"), As::Admin).await.ok();
    assert_eq!(o["amount_refunded"], tenth * 10);
    let pi = app.state.processor.retrieve_payment_intent(r_pi(&app, &o).await.as_str()).await.unwrap();
    assert_eq!(pi.amount_refunded, tenth * 10, "the processor refunded exactly what Kassa recorded");
    let rest = captured - tenth * 10;
    if rest > 0 {
        let last = app.post(&format!("/admin/orders/{order}/refunds"), As::Admin, json!({})).await.ok();
        assert_eq!(last["amount"], rest);
    }
    let o = app.get(&format!("/admin/orders/{order}"), As::Admin).await.ok();
    assert_eq!(o["payment_status"], "refunded");
    let refunds = app.get(&format!("/admin/orders/{order}/refunds"), As::Admin).await.ok();
    assert!(refunds.as_array().unwrap().iter().all(|r| r["status"] == "succeeded"));

    // Canceling an authorized order releases it and restocks.
    let cart2 = ready_cart(&app, &shop, "cancel@example.com").await;
    let before = stock(&app, &shop.tracked.0).await["quantity"].as_i64().unwrap();
    let r = pay(&app, &cart2, VISA).await.ok();
    let order2 = r["order"]["id"].as_str().unwrap().to_string();
    assert_eq!(stock(&app, &shop.tracked.0).await["quantity"], before - 2);
    let c = app.post(&format!("/admin/orders/{order2}/cancel"), As::Admin, json!({})).await.ok();
    assert_eq!(c["status"], "canceled");
    assert_eq!(c["payment_status"], "canceled");
    assert_eq!(stock(&app, &shop.tracked.0).await["quantity"], before);
    let pi = app
        .state
        .processor
        .retrieve_payment_intent(r["payment"]["processor_payment_intent"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(pi.status, kassa_processors::PaymentIntentStatus::Canceled);
    let f = app.post(&format!("/admin/orders/{order2}/fulfill"), As::Admin, json!({})).await;
    assert_eq!(f.status, 409);
    let f = app.post(&format!("/admin/orders/{order}/fulfill"), As::Admin, json!({})).await.ok();
    assert_eq!(f["fulfillment_status"], "fulfilled");
}

async fn r_pi(app: &TestApp, order: &Value) -> String {
    let p = app.get(&format!("/admin/payments/{}", order["payment"].as_str().unwrap()), As::Admin).await.ok();
    p["processor_payment_intent"].as_str().unwrap().to_string()
}

/// A signed `payment_intent.succeeded` for `pi`, exactly as the test processor (and Stripe)
/// would send it.
async fn signed_event(app: &TestApp, event_id: &str, kind: &str, object: Value) -> (String, String) {
    let secret =
        kassa_store::settings::get(app.state.store.reader(), "test_processor_webhook_secret").await.unwrap().unwrap();
    let body =
        json!({"id": event_id, "object": "event", "type": kind, "created": app.state.clock.now(), "livemode": false,
                      "data": {"object": object}})
        .to_string();
    let header = kassa_processors::signature::sign(&secret, app.state.clock.now(), body.as_bytes());
    (body, header)
}

async fn deliver(app: &TestApp, body: &str, header: Option<&str>) -> reqwest::Response {
    let mut req = app
        .http
        .post(format!("{}/webhooks/stripe", app.address))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(h) = header {
        req = req.header("stripe-signature", h);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn a_thousand_deliveries_of_one_success_make_one_order() {
    let app = spawn_app().await;
    let shop = shop(&app, 10).await;
    let cart = ready_cart(&app, &shop, "flood@example.com").await;
    let id = cart["id"].as_str().unwrap().to_string();
    let r = pay(&app, &cart, THREE_DS).await.ok();
    let pi = r["payment"]["processor_payment_intent"].as_str().unwrap().to_string();
    // Hold the processor's own deliveries back: only ours count here.
    answer_challenge(&app, r["next_action"]["redirect_url"].as_str().unwrap(), "complete").await;
    let object = app.state.test_processor.clone().unwrap().object(&pi).await.unwrap();
    let (body, header) = signed_event(&app, "evt_flood_0001", "payment_intent.succeeded", object).await;
    let mut statuses = std::collections::HashMap::new();
    for _ in 0..10 {
        let batch = futures::future::join_all((0..100).map(|_| deliver(&app, &body, Some(&header)))).await;
        for res in batch {
            *statuses.entry(res.status().as_u16()).or_insert(0) += 1;
        }
    }
    assert_eq!(statuses.get(&200), Some(&1000), "{statuses:?}");
    let orders = orders_of_cart(&app, &id).await;
    assert_eq!(orders.len(), 1);
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM processor_events WHERE id = 'evt_flood_0001'")
        .fetch_one(app.state.store.reader())
        .await
        .unwrap();
    assert_eq!(n, 1);
    let created = app.get("/admin/events?type=order.created", As::Admin).await.ok();
    assert_eq!(created["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn webhook_signatures_types_and_failures() {
    // The processor's own deliveries wait: the event delivered below must be the first news of
    // the payment's success (else it changes nothing and needs no processor call).
    let app = spawn_app_with(|s| s.processor.test.delivery_interval_ms = 3_600_000).await;
    let (body, header) = signed_event(&app, "evt_unknown_1", "invoice.paid", json!({"id": "in_1"})).await;
    assert_eq!(deliver(&app, &body, Some(&header)).await.status(), 200, "unknown types are acknowledged");
    assert_eq!(deliver(&app, &body, None).await.status(), 400);
    let tampered = body.replace("in_1", "in_2");
    let r = deliver(&app, &tampered, Some(&header)).await;
    assert_eq!(r.status(), 400);
    let r: Value = r.json().await.unwrap();
    assert_eq!(r["error"]["code"], "signature_invalid");
    let forged = kassa_processors::signature::sign("whsec_not_the_secret", app.state.clock.now(), body.as_bytes());
    assert_eq!(deliver(&app, &body, Some(&forged)).await.status(), 400);
    let old = kassa_processors::signature::sign(
        &kassa_store::settings::get(app.state.store.reader(), "test_processor_webhook_secret").await.unwrap().unwrap(),
        app.state.clock.now() - 301,
        body.as_bytes(),
    );
    assert_eq!(deliver(&app, &body, Some(&old)).await.status(), 400, "replays older than 300 s are refused");

    // A handler failure is a 5xx, so the processor retries; after recovery the event applies.
    let shop = shop(&app, 10).await;
    let cart = ready_cart(&app, &shop, "outage@example.com").await;
    let id = cart["id"].as_str().unwrap().to_string();
    let r = pay(&app, &cart, THREE_DS).await.ok();
    let pi = r["payment"]["processor_payment_intent"].as_str().unwrap().to_string();
    answer_challenge(&app, r["next_action"]["redirect_url"].as_str().unwrap(), "complete").await;
    let tp = app.state.test_processor.clone().unwrap();
    let object = tp.object(&pi).await.unwrap();
    let (body, header) = signed_event(&app, "evt_outage_1", "payment_intent.succeeded", object).await;
    tp.set_available(false);
    let r = deliver(&app, &body, Some(&header)).await;
    assert!(r.status().is_server_error(), "{}", r.status());
    tp.set_available(true);
    assert_eq!(deliver(&app, &body, Some(&header)).await.status(), 200);
    assert_eq!(orders_of_cart(&app, &id).await.len(), 1);
}

#[tokio::test]
async fn hosted_checkout_for_a_cart_pays_and_lands_on_the_success_url() {
    let app = spawn_app().await;
    let shop = shop(&app, 10).await;
    let cart = ready_cart(&app, &shop, "hosted@example.com").await;
    let secret = secret_of(&cart);
    let id = cart["id"].as_str().unwrap();
    let r = app
        .post(&format!("/store/carts/{id}/checkout-sessions"), As::Guest(&secret), json!({"success_url": "ftp://nope"}))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_param(), "success_url");
    let session = app
        .post(
            &format!("/store/carts/{id}/checkout-sessions"),
            As::Guest(&secret),
            json!({"success_url": "https://shop.test/thanks", "cancel_url": "https://shop.test/cart"}),
        )
        .await
        .ok();
    // Kassa's session and the processor's (whose page `url` opens) have different prefixes.
    assert!(session["id"].as_str().unwrap().starts_with("checkout_"), "{session}");
    assert_eq!(session["amount_total"], cart["total"]);
    assert_eq!(session["status"], "open");
    let url = session["url"].as_str().unwrap();
    assert!(url.contains("/checkout/cs_"), "{url}");
    let lines: i64 = session["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["unit_amount"].as_i64().unwrap() * l["quantity"].as_i64().unwrap())
        .sum();
    assert_eq!(lines, cart["total"].as_i64().unwrap(), "the page's lines add up to the cart's total");

    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = client.get(url).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Shirt"), "{page}");
    let declined = client
        .post(url)
        .form(&[("method", "card"), ("number", DECLINED), ("exp", "12/34"), ("cvc", "123")])
        .send()
        .await
        .unwrap();
    assert!(declined.text().await.unwrap().to_lowercase().contains("declined"));
    assert!(orders_of_cart(&app, id).await.is_empty());
    let paid = client
        .post(url)
        .form(&[("method", "card"), ("number", VISA), ("exp", "12/34"), ("cvc", "123")])
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 303);
    let location = paid.headers()["location"].to_str().unwrap().to_string();
    let sid = session["id"].as_str().unwrap();
    let session_secret = secret_of(&session);
    assert!(session_secret.starts_with(&format!("{sid}_secret_")), "{session_secret}");
    assert_eq!(location, format!("https://shop.test/thanks?session_id={sid}&client_secret={session_secret}"));
    // The success page reads the session with what its link carries: it is complete and
    // names the order. The cart's secret opens it too; the session is nobody else's.
    let s = app.get(&format!("/store/checkout-sessions/{sid}?client_secret={session_secret}"), As::Store).await.ok();
    assert_eq!(app.get(&format!("/store/checkout-sessions/{sid}"), As::Guest(&secret)).await.ok(), s);
    assert_eq!(app.get(&format!("/store/checkout-sessions/{sid}"), As::Store).await.status, 404);
    assert_eq!(s["status"], "complete");
    assert_eq!(s["payment_status"], "paid");
    let orders = orders_of_cart(&app, id).await;
    assert_eq!(orders.len(), 1);
    assert_eq!(s["order"], orders[0]["id"]);
    // The webhooks that follow change nothing.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(orders_of_cart(&app, id).await.len(), 1);
}

#[tokio::test]
async fn with_the_processor_down_at_creation_a_later_payment_attaches_one_processor_customer() {
    let app = spawn_app().await;
    let shop = shop(&app, 10).await;
    let tp = app.state.test_processor.clone().unwrap();
    let token = card_token(&app, VISA).await;
    let r = app.post("/test-processor/v1/control", As::Admin, json!({"available": false})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let cart = ready_cart(&app, &shop, "down@example.com").await;
    let secret = secret_of(&cart);
    assert!(orders_of_cart(&app, cart["id"].as_str().unwrap()).await.is_empty());
    let customer = cart["customer"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = app.get(&format!("/admin/customers/{customer}"), As::Admin).await.ok();
    assert_eq!(c["processor_customer"], Value::Null, "the customer exists without one");
    // Paying while it is down fails cleanly and creates nothing.
    let path = format!("/store/carts/{}/pay", cart["id"].as_str().unwrap());
    let r = app.post(&path, As::Guest(&secret), json!({"confirmation_token": token})).await;
    assert_eq!(r.status, 502, "{}", r.text);
    assert_eq!(r.error_code(), "processor_unavailable");
    tp.set_available(true);
    // Ten racing payments attach one processor customer.
    let results = futures::future::join_all(
        (0..10).map(|_| app.post(&path, As::Guest(&secret), json!({"confirmation_token": token}))),
    )
    .await;
    assert!(results.iter().any(|r| r.status == 200), "{:?}", results.iter().map(|r| &r.text).collect::<Vec<_>>());
    let c = app.get(&format!("/admin/customers/{customer}"), As::Admin).await.ok();
    let pc = c["processor_customer"].as_str().unwrap();
    let at_processor: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tp_objects WHERE kind = 'customer'")
        .fetch_one(app.state.store.reader())
        .await
        .unwrap();
    assert_eq!(at_processor, 1, "exactly one processor customer");
    let orders = orders_of_cart(&app, cart["id"].as_str().unwrap()).await;
    assert_eq!(orders.len(), 1);
    let p = app.get(&format!("/admin/payments/{}", orders[0]["payment"].as_str().unwrap()), As::Admin).await.ok();
    let pi =
        app.state.processor.retrieve_payment_intent(p["processor_payment_intent"].as_str().unwrap()).await.unwrap();
    assert_eq!(pi.customer.as_deref(), Some(pc));
}

#[tokio::test]
async fn reconcile_applies_what_a_lost_webhook_would_have() {
    // The processor's events go nowhere: only reconciliation can learn the outcome.
    let app =
        spawn_app_with(|s| s.processor.test.webhook_url = Some("http://127.0.0.1:9/webhooks/stripe".into())).await;
    let shop = shop(&app, 10).await;
    let cart = ready_cart(&app, &shop, "reconcile@example.com").await;
    let id = cart["id"].as_str().unwrap();
    let r = pay(&app, &cart, THREE_DS).await.ok();
    answer_challenge(&app, r["next_action"]["redirect_url"].as_str().unwrap(), "complete").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(orders_of_cart(&app, id).await.is_empty());
    let report = kassa_server::jobs::commerce::reconcile_all(&app.state).await.unwrap();
    assert_eq!(report.checked, 1);
    assert_eq!(report.changed, 1);
    assert_eq!(orders_of_cart(&app, id).await.len(), 1);
    let again = kassa_server::jobs::commerce::reconcile_all(&app.state).await.unwrap();
    assert_eq!(again.checked, 0, "nothing left open");
    assert_eq!(orders_of_cart(&app, id).await.len(), 1);
}

#[tokio::test]
async fn an_authorization_ended_at_the_processor_cancels_the_order() {
    let app = spawn_app_with(|s| s.checkout.capture = kassa_server::config::CaptureMode::Manual).await;
    let shop = shop(&app, 10).await;
    let cart = ready_cart(&app, &shop, "expired-auth@example.com").await;
    let r = pay(&app, &cart, VISA).await.ok();
    let order = r["order"]["id"].as_str().unwrap().to_string();
    assert_eq!(stock(&app, &shop.tracked.0).await["quantity"], 8);
    // As when Stripe lets an uncaptured payment expire, or someone cancels it in its dashboard.
    let pi = r["payment"]["processor_payment_intent"].as_str().unwrap();
    app.state
        .processor
        .cancel_payment_intent(pi, &kassa_processors::IdempotencyKey::new("dashboard-cancel"))
        .await
        .unwrap();
    eventually("the canceled webhook to cancel the order", || async {
        app.get(&format!("/admin/orders/{order}"), As::Admin).await.ok()["status"] == "canceled"
    })
    .await;
    let o = app.get(&format!("/admin/orders/{order}"), As::Admin).await.ok();
    assert_eq!(o["payment_status"], "canceled");
    assert_eq!(stock(&app, &shop.tracked.0).await["quantity"], 10, "stock is back");
    let p = app.get(&format!("/admin/payments/{}", o["payment"].as_str().unwrap()), As::Admin).await.ok();
    assert_eq!(p["status"], "canceled");
    let events = app.get(&format!("/admin/events?type=order.canceled&object={order}"), As::Admin).await.ok();
    assert_eq!(events["data"].as_array().unwrap().len(), 1);
}
