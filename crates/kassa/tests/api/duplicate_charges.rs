//! Money Kassa does not keep is given back (issue 11).
//!
//! A processor call whose outcome is unknown is never repeated while another request holds it
//! (409 `payment_in_progress`); a stalled processor answers 502 within the configured deadline;
//! and every succeeded or authorized charge that carries a payment's `kassa_payment_id` but is
//! not the one the payment keeps is refunded (or its authorization canceled) exactly once,
//! whichever path notices it first: the pay call, a webhook or `kassa reconcile` (the real
//! binary). Against the test processor with idempotency keys ignored, and against localstripe,
//! which ignores them by nature.

use crate::checkout::{eventually, orders_of_cart, ready_cart, shop};
use crate::helpers::*;
use kassa_processors::{
    CaptureMethod, CreatePaymentIntent, IdempotencyKey, Metadata, PaymentIntent, PaymentIntentStatus, PaymentSource,
};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// The processor deadline of these tests.
const DEADLINE_SECS: u64 = 2;
/// What the answer may come later than the deadline on this shared, busy machine (the deadline
/// itself is exact; the rest is scheduling, and recording nothing).
const MARGIN: Duration = Duration::from_millis(1500);
/// Past a lease: the deadline plus the 5 s Kassa gives a holder to record the outcome.
const PAST_LEASE_SECS: i64 = DEADLINE_SECS as i64 + 6;
const CONCURRENT: usize = 8;

/// `CONCURRENT` pay calls at once on one cart with `pm_card_visa`, each with its own
/// `Idempotency-Key`, with how long each took.
async fn pay_concurrently(app: &Api, cart: &Value, tag: &str) -> Vec<(Res, Duration)> {
    let path = format!("/store/carts/{}/pay", cart["id"].as_str().unwrap());
    let secret = secret_of(cart);
    futures::future::join_all((0..CONCURRENT).map(|i| {
        let (path, key, secret) = (path.clone(), format!("{tag}-{i}"), secret.clone());
        async move {
            let started = Instant::now();
            let r = app.post_idem(&path, As::Guest(&secret), json!({"payment_method": "pm_card_visa"}), &key).await;
            (r, started.elapsed())
        }
    }))
    .await
}

/// `status code` → how many answers had it.
fn tally(results: &[(Res, Duration)]) -> BTreeMap<String, usize> {
    let mut t = BTreeMap::new();
    for (r, _) in results {
        *t.entry(format!("{} {}", r.status.as_u16(), r.error_code()).trim().to_string()).or_insert(0) += 1;
    }
    t
}

/// Asserts that, with the processor stalled, exactly one call made the processor call and got
/// 502 `processor_unavailable` within the deadline, and every other one was told at once that
/// a payment is in progress. Returns the time to the 502.
#[track_caller]
fn one_502_within_the_deadline_and_the_rest_in_progress(results: &[(Res, Duration)]) -> Duration {
    let t = tally(results);
    assert_eq!(t.get("502 processor_unavailable"), Some(&1), "{t:?}");
    assert_eq!(t.get("409 payment_in_progress"), Some(&(CONCURRENT - 1)), "{t:?}");
    let (_, took) = results.iter().find(|(r, _)| r.status == 502).unwrap();
    let deadline = Duration::from_secs(DEADLINE_SECS);
    assert!(*took >= deadline - Duration::from_millis(50) && *took <= deadline + MARGIN, "502 after {took:?}");
    // (That they made no processor call shows in their code; this shows they did not wait.)
    for (r, took) in results.iter().filter(|(r, _)| r.status == 409) {
        assert!(*took < deadline + MARGIN, "409 after {took:?}: {}", r.text);
    }
    *took
}

/// Every answer of a round once the processor answers again: the order, or a conflict that
/// says why there is nothing to do.
#[track_caller]
fn settled_answers(results: &[(Res, Duration)]) {
    for (r, _) in results {
        match (r.status.as_u16(), r.error_code()) {
            (200, _) => assert_eq!(r.body["status"], "succeeded", "{}", r.text),
            (409, "payment_in_progress" | "cart_completed") => {}
            _ => panic!("unexpected answer {}: {}", r.status, r.text),
        }
    }
}

async fn wait_for_processor_customer(app: &Api, cart: &Value) -> String {
    let path = format!("/admin/customers/{}", cart["customer"].as_str().unwrap());
    eventually("the guest's processor customer", || async {
        app.get(&path, As::Admin).await.ok()["processor_customer"].is_string()
    })
    .await;
    app.get(&path, As::Admin).await.ok()["processor_customer"].as_str().unwrap().to_string()
}

/// Every PaymentIntent at the processor made for `cart` (Kassa puts the cart in the metadata).
async fn charges_of_cart(app: &TestApp, cart: &str) -> Vec<PaymentIntent> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = app.state.processor.list_payment_intents(after.as_deref(), 100).await.unwrap();
        all.extend(
            page.data.iter().filter(|pi| pi.metadata.get("kassa_cart_id").map(String::as_str) == Some(cart)).cloned(),
        );
        match page.data.last() {
            Some(last) if page.has_more => after = Some(last.id.clone()),
            _ => return all,
        }
    }
}

async fn payments(app: &Api) -> Vec<Value> {
    app.get("/admin/payments?limit=100", As::Admin).await.ok()["data"].as_array().unwrap().clone()
}

/// The events of `kind`, by the id of the object they are about.
async fn events_by_object(app: &Api, kind: &str) -> BTreeMap<String, usize> {
    let events = app.get(&format!("/admin/events?type={kind}&limit=100"), As::Admin).await.ok();
    let mut by = BTreeMap::new();
    for e in events["data"].as_array().unwrap() {
        *by.entry(e["data"]["object"]["id"].as_str().unwrap().to_string()).or_insert(0) += 1;
    }
    by
}

/// The cart was paid exactly once: one order; at the processor exactly one charge kept (the
/// order's, nothing refunded) and every other charge made for the cart fully refunded; in
/// Kassa each of those is a voided `duplicate_charge` payment of the order's payment, with one
/// `payment.void_pending` and one `payment.voided` event. Returns the duplicates' PaymentIntents.
async fn assert_kept_once_and_the_rest_given_back(app: &TestApp, cart: &str) -> BTreeSet<String> {
    let orders = orders_of_cart(app, cart).await;
    assert_eq!(orders.len(), 1, "{orders:?}");
    assert_eq!(orders[0]["payment_status"], "captured");
    assert_eq!(orders[0]["amount_refunded"], 0);
    let kept_payment = orders[0]["payment"].as_str().unwrap();
    let all = payments(app).await;
    let kept = all.iter().find(|p| p["id"] == kept_payment).unwrap();
    let kept_pi = kept["processor_payment_intent"].as_str().unwrap();

    let charges = charges_of_cart(app, cart).await;
    let secured: Vec<&PaymentIntent> =
        charges.iter().filter(|pi| pi.status == PaymentIntentStatus::Succeeded).collect();
    let kept_charge = secured.iter().find(|pi| pi.id == kept_pi).expect("the kept charge is at the processor");
    assert_eq!(kept_charge.amount_refunded, 0, "the kept charge is not refunded");
    assert_eq!(kept_charge.metadata.get("kassa_payment_id").map(String::as_str), Some(kept_payment));
    let others: BTreeSet<String> = secured.iter().filter(|pi| pi.id != kept_pi).map(|pi| pi.id.clone()).collect();
    for pi in secured.iter().filter(|pi| pi.id != kept_pi) {
        assert_eq!(pi.amount_refunded, pi.amount_received, "{} is refunded in full: {pi:?}", pi.id);
    }

    let duplicates: Vec<&Value> = all.iter().filter(|p| p["void_reason"] == "duplicate_charge").collect();
    let duplicate_pis: BTreeSet<String> =
        duplicates.iter().map(|p| p["processor_payment_intent"].as_str().unwrap().to_string()).collect();
    assert_eq!(duplicate_pis, others, "every other charge is a recorded duplicate, once");
    assert_eq!(duplicates.len(), others.len());
    let voided = events_by_object(app, "payment.voided").await;
    let noticed = events_by_object(app, "payment.void_pending").await;
    for d in &duplicates {
        assert_eq!(d["status"], "voided", "{d}");
        assert_eq!(d["duplicate_of"], kept_payment, "{d}");
        assert_eq!(d["amount_refunded"], d["amount_captured"], "{d}");
        let id = d["id"].as_str().unwrap();
        assert_eq!((noticed.get(id), voided.get(id)), (Some(&1), Some(&1)), "events of {id}");
    }
    others
}

/// Runs `kassa reconcile` (the real binary) on the test server's database, with `env` naming
/// the processor, and returns what it printed.
async fn reconcile_cli(app: &TestApp, env: &[(&str, &str)]) -> String {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kassa"))
        .arg("reconcile")
        .env("DATABASE_URL", &app.state.settings.database.url)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .await
        .expect("kassa reconcile runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "kassa reconcile failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[track_caller]
fn line<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no line `{prefix}…` in:\n{out}"))
}

/// The duplicate charges `kassa reconcile` listed: PaymentIntent → status.
fn listed_duplicates(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter(|l| l.starts_with("  pay_") && l.contains(" duplicate of "))
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            (words[1].to_string(), words.last().unwrap().to_string())
        })
        .collect()
}

async fn control(app: &Api, switches: Value) {
    let r = app.post("/test-processor/v1/control", As::Admin, switches).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn concurrent_pays_make_one_charge_when_the_processor_ignores_idempotency_keys() {
    let app = spawn_app().await;
    control(&app, json!({"ignore_idempotency_keys": true})).await;
    let shop = shop(&app, 20).await;

    // The switch is real: the same call with the same key twice makes two charges.
    let cart = ready_cart(&app, &shop, "switch@example.com").await;
    let pc = wait_for_processor_customer(&app, &cart).await;
    let req = CreatePaymentIntent {
        amount: 500,
        currency: "usd".into(),
        customer: pc,
        metadata: Metadata::new(),
        capture_method: CaptureMethod::Automatic,
        setup_future_usage: false,
        confirm: Some(PaymentSource::PaymentMethod("pm_card_visa".into())),
        off_session: false,
        return_url: None,
    };
    let key = IdempotencyKey::new("kassa_pay_same_key");
    let a = app.state.processor.create_payment_intent(&req, &key).await.unwrap();
    let b = app.state.processor.create_payment_intent(&req, &key).await.unwrap();
    assert_ne!(a.id, b.id, "idempotency keys are ignored");

    for (n, email) in ["one@example.com", "two@example.com", "three@example.com"].into_iter().enumerate() {
        let cart = ready_cart(&app, &shop, email).await;
        let id = cart["id"].as_str().unwrap();
        wait_for_processor_customer(&app, &cart).await;
        let results = pay_concurrently(&app, &cart, &format!("race-{n}")).await;
        settled_answers(&results);
        let t = tally(&results);
        assert!(t.contains_key("200"), "{t:?}");
        // Every 200 is the one order.
        let orders: BTreeSet<&str> = results
            .iter()
            .filter(|(r, _)| r.status == 200)
            .map(|(r, _)| r.body["order"]["id"].as_str().unwrap())
            .collect();
        assert_eq!(orders.len(), 1, "{orders:?}");
        // One processor call: one charge, the order's.
        let charges = charges_of_cart(&app, id).await;
        assert_eq!(charges.len(), 1, "{charges:?}");
        assert!(assert_kept_once_and_the_rest_given_back(&app, id).await.is_empty());
    }
}

#[tokio::test]
async fn a_stalled_processor_answers_502_within_the_deadline_and_every_second_charge_is_given_back() {
    let app = spawn_app_with(|s| {
        s.processor.call_deadline_secs = DEADLINE_SECS;
        s.processor.test.ignore_idempotency_keys = true;
    })
    .await;
    let shop = shop(&app, 10).await;
    let cart = ready_cart(&app, &shop, "stall@example.com").await;
    let id = cart["id"].as_str().unwrap();
    wait_for_processor_customer(&app, &cart).await;

    // The processor stops mid-call: the request holding the payment gets 502 at the deadline,
    // the others 409 at once — none repeats the call.
    control(&app, json!({"stalled": true})).await;
    let first = pay_concurrently(&app, &cart, "stalled-1").await;
    let took = one_502_within_the_deadline_and_the_rest_in_progress(&first);
    println!("time to 502 with the test processor stalled (deadline {DEADLINE_SECS} s): {took:?}");
    let pending = payments(&app).await;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["status"], "pending", "the outcome is unknown");

    // The lease runs out (the holder gave up at its deadline): the next request repeats the
    // call, once, with the same idempotency key — which this processor ignores.
    app.state.clock.advance(PAST_LEASE_SECS);
    let second = pay_concurrently(&app, &cart, "stalled-2").await;
    let took = one_502_within_the_deadline_and_the_rest_in_progress(&second);
    println!("time to 502 with the test processor stalled, repeated call: {took:?}");
    // A 409 `payment_in_progress` was not kept under its key: the same request runs again.
    let retried = app
        .post_idem(
            &format!("/store/carts/{id}/pay"),
            As::Guest(&secret_of(&cart)),
            json!({"payment_method": "pm_card_visa"}),
            "stalled-1-1",
        )
        .await;
    assert!(retried.headers.get("idempotent-replayed").is_none(), "{:?}", retried.headers);
    assert_eq!((retried.status.as_u16(), retried.error_code()), (409, "payment_in_progress"), "{}", retried.text);

    // The processor resumes: both calls it received run, two charges for one payment.
    control(&app, json!({"stalled": false})).await;
    app.state.clock.advance(PAST_LEASE_SECS);
    let third = pay_concurrently(&app, &cart, "resumed").await;
    settled_answers(&third);

    eventually("one order, and every other charge given back", || async {
        let charges = charges_of_cart(&app, id).await;
        let paid = charges.iter().filter(|pi| pi.status == PaymentIntentStatus::Succeeded).count();
        let unrefunded = charges.iter().filter(|pi| pi.amount_refunded < pi.amount_received).count();
        let open =
            payments(&app).await.iter().filter(|p| p["status"] == "void_pending" || p["status"] == "pending").count();
        orders_of_cart(&app, id).await.len() == 1 && paid >= 2 && unrefunded == 1 && open == 0
    })
    .await;
    let given_back = assert_kept_once_and_the_rest_given_back(&app, id).await;
    assert!(!given_back.is_empty(), "the stalled calls made second charges");
    // Exactly once at the processor: one refund on each duplicate's charge.
    let tp = app.state.test_processor.clone().unwrap();
    for pi in &given_back {
        let intent = app.state.processor.retrieve_payment_intent(pi).await.unwrap();
        let charge = tp.object(intent.latest_charge.as_deref().unwrap()).await.unwrap();
        assert_eq!(charge["refunds"]["total_count"], 1, "{charge}");
    }
    let shirts = app.get(&format!("/admin/products/{}", shop.tracked.0), As::Admin).await.ok();
    assert_eq!(shirts["inventory"]["quantity"], 8, "stock taken once");

    // `kassa reconcile` shows them, given back, and finds nothing left.
    let out = reconcile_cli(&app, &[]).await;
    assert_eq!(line(&out, "left to give back:"), "left to give back: 0", "{out}");
    assert!(line(&out, "scanned ").ends_with("0 duplicate charges found"), "{out}");
    let listed = listed_duplicates(&out);
    assert_eq!(listed.keys().cloned().collect::<BTreeSet<_>>(), given_back, "{out}");
    assert!(listed.values().all(|s| s == "voided"), "{out}");
    for pi in &given_back {
        let intent = app.state.processor.retrieve_payment_intent(pi).await.unwrap();
        let charge = tp.object(intent.latest_charge.as_deref().unwrap()).await.unwrap();
        assert_eq!(charge["refunds"]["total_count"], 1, "reconcile refunded nothing again: {charge}");
    }
}

#[tokio::test]
async fn a_second_charge_answered_to_the_pay_call_is_given_back_and_the_answer_is_the_order() {
    // Long enough for `kassa reconcile` (a process of its own) to run while a call waits at
    // the stalled processor, also on a busy machine.
    const DEADLINE: u64 = 10;
    let app = spawn_app_with(|s| {
        s.processor.call_deadline_secs = DEADLINE;
        s.processor.test.ignore_idempotency_keys = true;
        // The processor's events go nowhere: only the pay call and reconcile learn anything.
        s.processor.test.webhook_url = Some("http://127.0.0.1:9/webhooks/stripe".into());
    })
    .await;
    let shop = shop(&app, 10).await;
    let cart = ready_cart(&app, &shop, "pay-path@example.com").await;
    let id = cart["id"].as_str().unwrap();
    wait_for_processor_customer(&app, &cart).await;
    let path = format!("/store/carts/{id}/pay");
    let body = json!({"payment_method": "pm_card_visa"});

    // A call the processor answers after Kassa gave up: a charge Kassa does not know of.
    control(&app, json!({"stalled": true})).await;
    let r = app.post_idem(&path, As::Guest(&secret_of(&cart)), body.clone(), "pay-path-1").await;
    assert_eq!((r.status.as_u16(), r.error_code()), (502, "processor_unavailable"), "{}", r.text);
    control(&app, json!({"stalled": false})).await;
    eventually("the abandoned call to make its charge", || async { charges_of_cart(&app, id).await.len() == 1 }).await;
    let first_charge = charges_of_cart(&app, id).await.remove(0).id;
    let payment = payments(&app).await.remove(0);
    let payment_id = payment["id"].as_str().unwrap().to_string();
    assert_eq!(payment["status"], "pending");

    // Past the lease the call is repeated — and waits at the stalled processor while
    // `kassa reconcile` finds the first charge and records it as the payment's (the order).
    control(&app, json!({"stalled": true})).await;
    app.state.clock.advance(DEADLINE as i64 + 6);
    let leased_until = || async {
        sqlx::query_scalar::<_, Option<i64>>("SELECT lease_until FROM payments WHERE id = $1")
            .bind(&payment_id)
            .fetch_one(app.state.store.reader())
            .await
            .unwrap()
            .unwrap_or(0)
    };
    let first_lease = leased_until().await;
    let secret = secret_of(&cart);
    let repeated = app.post_idem(&path, As::Guest(&secret), body.clone(), "pay-path-2");
    let meanwhile = async {
        eventually("the repeated call to hold the payment", || async { leased_until().await > first_lease }).await;
        let out = reconcile_cli(&app, &[]).await;
        control(&app, json!({"stalled": false})).await;
        out
    };
    let (answer, out) = tokio::join!(repeated, meanwhile);
    assert!(line(&out, "scanned ").contains("1 pending payments found their outcome"), "{out}");
    let orders = orders_of_cart(&app, id).await;
    assert_eq!(orders.len(), 1);
    // The repeated call's charge came back to the pay call, which found the payment keeping
    // another one: it answers with the order and gives its own charge back.
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["order"]["id"], orders[0]["id"]);
    assert_eq!(answer.body["payment"]["processor_payment_intent"], first_charge.as_str());
    eventually("the pay call's own charge to be given back", || async {
        payments(&app).await.iter().any(|p| p["void_reason"] == "duplicate_charge" && p["status"] == "voided")
    })
    .await;
    let given_back = assert_kept_once_and_the_rest_given_back(&app, id).await;
    assert_eq!(given_back.len(), 1);
    assert!(!given_back.contains(&first_charge));
}

/// A signed event, as the test processor (and Stripe) sends it.
async fn signed_event(app: &TestApp, event_id: &str, kind: &str, object: Value) -> (String, String) {
    let secret =
        kassa_store::settings::get(app.state.store.reader(), "test_processor_webhook_secret").await.unwrap().unwrap();
    let now = app.state.clock.now();
    let body = json!({"id": event_id, "object": "event", "type": kind, "created": now, "livemode": false,
                      "data": {"object": object}})
    .to_string();
    let header = kassa_processors::signature::sign(&secret, now, body.as_bytes());
    (body, header)
}

async fn deliver(app: &TestApp, body: &str, header: &str) -> u16 {
    app.http
        .post(format!("{}/webhooks/stripe", app.address))
        .header("content-type", "application/json")
        .header("stripe-signature", header)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_charge_made_with_a_payments_metadata_is_given_back_once_however_often_its_webhook_comes() {
    let app = spawn_app().await;
    let shop = shop(&app, 10).await;
    let cart = ready_cart(&app, &shop, "webhook@example.com").await;
    let id = cart["id"].as_str().unwrap();
    let paid = app
        .post(
            &format!("/store/carts/{id}/pay"),
            As::Guest(&secret_of(&cart)),
            json!({"payment_method": "pm_card_visa"}),
        )
        .await
        .ok();
    let payment = paid["payment"]["id"].as_str().unwrap().to_string();
    let kept_pi = paid["payment"]["processor_payment_intent"].as_str().unwrap().to_string();
    let pc = wait_for_processor_customer(&app, &cart).await;

    // Two charges made at the processor with the payment's metadata (as a repeated call would
    // make them): one captured, one only authorized. The processor sends their webhooks.
    let stray = |amount: i64, capture_method: CaptureMethod| CreatePaymentIntent {
        amount,
        currency: "usd".into(),
        customer: pc.clone(),
        metadata: [("kassa_payment_id", payment.as_str()), ("kassa_cart_id", id)]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        capture_method,
        setup_future_usage: false,
        confirm: Some(PaymentSource::PaymentMethod("pm_card_visa".into())),
        off_session: false,
        return_url: None,
    };
    let captured = app
        .state
        .processor
        .create_payment_intent(&stray(1234, CaptureMethod::Automatic), &IdempotencyKey::new("stray_captured"))
        .await
        .unwrap();
    let authorized = app
        .state
        .processor
        .create_payment_intent(&stray(4321, CaptureMethod::Manual), &IdempotencyKey::new("stray_authorized"))
        .await
        .unwrap();
    assert_eq!(captured.status, PaymentIntentStatus::Succeeded);
    assert_eq!(authorized.status, PaymentIntentStatus::RequiresCapture);

    // The captured one's success, delivered many more times, concurrently, under its own event
    // id and under others (a processor may send several events about one charge).
    let tp = app.state.test_processor.clone().unwrap();
    let object = tp.object(&captured.id).await.unwrap();
    let mut deliveries = Vec::new();
    for n in 0..4 {
        deliveries
            .push(signed_event(&app, &format!("evt_stray_{n}"), "payment_intent.succeeded", object.clone()).await);
    }
    for _ in 0..5 {
        let statuses = futures::future::join_all(
            deliveries.iter().cycle().take(40).map(|(body, header)| deliver(&app, body, header)),
        )
        .await;
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    }

    eventually("both charges given back", || async {
        let (c, a) = (
            app.state.processor.retrieve_payment_intent(&captured.id).await.unwrap(),
            app.state.processor.retrieve_payment_intent(&authorized.id).await.unwrap(),
        );
        let voided = payments(&app).await.iter().filter(|p| p["status"] == "voided").count();
        c.amount_refunded == 1234 && a.status == PaymentIntentStatus::Canceled && voided == 2
    })
    .await;
    // Some job rounds later, still once.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let charge = tp.object(captured.latest_charge.as_deref().unwrap()).await.unwrap();
    assert_eq!((charge["refunds"]["total_count"].as_i64(), charge["amount_refunded"].as_i64()), (Some(1), Some(1234)));
    let refund = &charge["refunds"]["data"][0];
    assert_eq!(refund["metadata"]["kassa_void_reason"], "duplicate_charge");
    assert_eq!(refund["metadata"]["kassa_duplicate_of"], payment.as_str());

    let all = payments(&app).await;
    let duplicates: Vec<&Value> = all.iter().filter(|p| p["duplicate_of"] == payment.as_str()).collect();
    assert_eq!(duplicates.len(), 2, "{all:?}");
    let voided = events_by_object(&app, "payment.voided").await;
    let noticed = events_by_object(&app, "payment.void_pending").await;
    for (pi, amount, refunded) in [(&captured.id, 1234, 1234), (&authorized.id, 4321, 0)] {
        let d = duplicates.iter().find(|d| d["processor_payment_intent"] == pi.as_str()).unwrap();
        assert_eq!(
            (&d["status"], &d["void_reason"], &d["amount"], &d["amount_refunded"], &d["customer"]),
            (&json!("voided"), &json!("duplicate_charge"), &json!(amount), &json!(refunded), &cart["customer"]),
            "{d}"
        );
        let did = d["id"].as_str().unwrap();
        assert_eq!((noticed.get(did), voided.get(did)), (Some(&1), Some(&1)), "one event each for {did}");
    }

    // The payment and its order are untouched: one kept charge, not refunded.
    let p = all.iter().find(|p| p["id"] == payment.as_str()).unwrap();
    assert_eq!(
        (&p["status"], &p["processor_payment_intent"], &p["amount_refunded"]),
        (&json!("succeeded"), &json!(kept_pi), &json!(0))
    );
    let orders = orders_of_cart(&app, id).await;
    assert_eq!(
        (orders.len(), &orders[0]["payment_status"], &orders[0]["amount_refunded"]),
        (1, &json!("captured"), &json!(0))
    );
    assert_eq!(app.state.processor.retrieve_payment_intent(&kept_pi).await.unwrap().amount_refunded, 0);

    // `kassa reconcile` lists both as given back, finds nothing new and gives nothing back again.
    let out = reconcile_cli(&app, &[]).await;
    assert_eq!(line(&out, "left to give back:"), "left to give back: 0", "{out}");
    assert!(line(&out, "scanned ").ends_with("0 duplicate charges found"), "{out}");
    let listed = listed_duplicates(&out);
    assert_eq!(listed.get(&captured.id).map(String::as_str), Some("voided"), "{out}");
    assert_eq!(listed.get(&authorized.id).map(String::as_str), Some("voided"), "{out}");
    let charge = tp.object(captured.latest_charge.as_deref().unwrap()).await.unwrap();
    assert_eq!(charge["refunds"]["total_count"], 1);
}

use crate::localstripe::support;

#[tokio::test]
#[ignore = "needs localstripe: set KASSA_TEST_PYTHON (see README Testing)"]
async fn against_localstripe_concurrent_and_stalled_pays_keep_one_charge_and_reconcile_gives_back_the_rest() {
    let Some(python) = support::python() else { return };
    let ls = support::LocalStripe::start(&python);
    let base_url = ls.base_url.clone();
    let app = spawn_app_with(move |s| {
        s.processor.kind = kassa_server::config::ProcessorKind::Stripe;
        s.processor.stripe.secret_key = Some(support::SECRET_KEY.into());
        s.processor.stripe.webhook_secret = Some(support::WEBHOOK_SECRET.into());
        s.processor.stripe.base_url = base_url;
        // Stripe's client defaults stay: 30 s per attempt, 2 retries. The deadline bounds them.
        s.processor.call_deadline_secs = DEADLINE_SECS;
    })
    .await;
    let cli_env = [
        ("KASSA_PROCESSOR__KIND", "stripe"),
        ("KASSA_PROCESSOR__STRIPE__SECRET_KEY", support::SECRET_KEY),
        ("KASSA_PROCESSOR__STRIPE__WEBHOOK_SECRET", support::WEBHOOK_SECRET),
        ("KASSA_PROCESSOR__STRIPE__BASE_URL", ls.base_url.as_str()),
    ];
    let shop = shop(&app, 10).await;

    // localstripe ignores idempotency keys: eight concurrent pays make one charge all the same.
    let raced = ready_cart(&app, &shop, "race@example.com").await;
    let raced_id = raced["id"].as_str().unwrap();
    wait_for_processor_customer(&app, &raced).await;
    let results = pay_concurrently(&app, &raced, "ls-race").await;
    settled_answers(&results);
    assert_eq!(charges_of_cart(&app, raced_id).await.len(), 1, "one call, one charge");
    assert!(assert_kept_once_and_the_rest_given_back(&app, raced_id).await.is_empty());

    // localstripe stopped mid-call (SIGSTOP): 502 at the deadline, not after 3 × 30 s.
    let cart = ready_cart(&app, &shop, "sigstop@example.com").await;
    let id = cart["id"].as_str().unwrap();
    wait_for_processor_customer(&app, &cart).await;
    ls.pause();
    let first = pay_concurrently(&app, &cart, "ls-stalled-1").await;
    let took_first = one_502_within_the_deadline_and_the_rest_in_progress(&first);
    app.state.clock.advance(PAST_LEASE_SECS);
    let second = pay_concurrently(&app, &cart, "ls-stalled-2").await;
    let took_second = one_502_within_the_deadline_and_the_rest_in_progress(&second);
    println!("time to 502 with localstripe stopped (deadline {DEADLINE_SECS} s): {took_first:?}, {took_second:?}");
    ls.resume();

    // Resumed, localstripe serves both waiting requests: two charges for the one payment.
    let payment = payments(&app).await.into_iter().find(|p| p["cart"] == id).unwrap();
    assert_eq!(payment["status"], "pending");
    eventually("localstripe to serve the two requests that waited", || async {
        charges_of_cart(&app, id).await.len() == 2
    })
    .await;
    for pi in charges_of_cart(&app, id).await {
        assert_eq!(pi.status, PaymentIntentStatus::Succeeded);
        assert_eq!(pi.metadata.get("kassa_payment_id").map(String::as_str), payment["id"].as_str());
    }

    // Past the lease, paying again repeats the call once more (a third charge) and gets the order.
    app.state.clock.advance(PAST_LEASE_SECS);
    let third = pay_concurrently(&app, &cart, "ls-resumed").await;
    settled_answers(&third);
    assert!(third.iter().any(|(r, _)| r.status == 200), "{:?}", tally(&third));
    assert_eq!(orders_of_cart(&app, id).await.len(), 1);
    // No webhook reaches Kassa here (none is configured at localstripe): the two earlier
    // charges are unknown to Kassa until it reconciles.
    assert_eq!(charges_of_cart(&app, id).await.len(), 3);
    assert!(payments(&app).await.iter().all(|p| p["void_reason"] != "duplicate_charge"));

    let out = reconcile_cli(&app, &cli_env).await;
    assert!(line(&out, "scanned ").ends_with("2 duplicate charges found"), "{out}");
    assert_eq!(listed_duplicates(&out).len(), 2, "{out}");
    // Given back by reconcile itself, or by the running server's void job if it claimed them
    // first (then reconcile lists them as in progress).
    eventually("both duplicate charges to be given back", || async {
        payments(&app)
            .await
            .iter()
            .filter(|p| p["void_reason"] == "duplicate_charge" && p["status"] == "voided")
            .count()
            == 2
    })
    .await;
    let given_back = assert_kept_once_and_the_rest_given_back(&app, id).await;
    assert_eq!(given_back.len(), 2);
    assert_eq!(listed_duplicates(&out).keys().cloned().collect::<BTreeSet<_>>(), given_back, "{out}");
    // At localstripe: one refund per duplicate charge, of its whole amount; none on the kept one.
    refunded_once_at_localstripe(&app, &ls, id, &given_back).await;

    // Reconciling again shows them given back, finds nothing new, has nothing left to give
    // back, and refunds nothing twice.
    let again = reconcile_cli(&app, &cli_env).await;
    assert!(line(&again, "scanned ").ends_with("0 duplicate charges found"), "{again}");
    assert_eq!(line(&again, "left to give back:"), "left to give back: 0", "{again}");
    let listed = listed_duplicates(&again);
    assert_eq!(listed.keys().cloned().collect::<BTreeSet<_>>(), given_back, "{again}");
    assert!(listed.values().all(|s| s == "voided"), "{again}");
    refunded_once_at_localstripe(&app, &ls, id, &given_back).await;
    let shirts = app.get(&format!("/admin/products/{}", shop.tracked.0), As::Admin).await.ok();
    assert_eq!(shirts["inventory"]["quantity"], 6, "two orders, stock taken once each");
}

/// At localstripe, by its own refund list: each given-back charge of `cart` has exactly one
/// refund, of its whole amount; the kept one has none.
async fn refunded_once_at_localstripe(
    app: &TestApp,
    ls: &support::LocalStripe,
    cart: &str,
    given_back: &BTreeSet<String>,
) {
    for pi in charges_of_cart(app, cart).await {
        let refunds = ls.get(&format!("/v1/refunds?payment_intent={}&limit=100", pi.id)).await;
        let refunds = refunds["data"].as_array().unwrap();
        if given_back.contains(&pi.id) {
            assert_eq!(refunds.len(), 1, "{}: {refunds:?}", pi.id);
            assert_eq!(refunds[0]["amount"].as_i64(), Some(pi.amount));
            assert_eq!(refunds[0]["metadata"]["kassa_void_reason"], "duplicate_charge");
        } else {
            assert!(refunds.is_empty(), "the kept charge {} is not refunded: {refunds:?}", pi.id);
        }
    }
}
