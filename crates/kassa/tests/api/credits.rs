//! Prepaid credits: gross-up, exactly-once top-ups under duplicate and concurrent
//! deliveries, atomic debits, refund reversals.

use crate::checkout::{VISA, eventually};
use crate::customers::{app_with_sign_in, hs_token};
use crate::helpers::*;
use serde_json::{Value, json};

/// A server whose test processor delivers its events nowhere, so that the test delivers
/// them itself (in the numbers and order it wants).
async fn app_without_deliveries() -> TestApp {
    spawn_app_with(|s| s.processor.test.webhook_url = Some("http://127.0.0.1:9/webhooks/stripe".into())).await
}

async fn top_up_session(app: &TestApp, email: &str, credits: i64) -> Value {
    app.post(
        "/store/credits/sessions",
        As::Store,
        json!({"credits": credits, "success_url": "https://app.test/credits", "email": email}),
    )
    .await
    .ok()
}

/// Pays a hosted session through its page, as a buyer would.
pub async fn pay_page(url: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    client.post(url).form(fields).send().await.unwrap()
}

async fn pay_by_card(url: &str) {
    let r = pay_page(url, &[("method", "card"), ("number", VISA), ("exp", "12/34"), ("cvc", "123")]).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
}

async fn balance(app: &TestApp, customer: &str) -> (i64, Vec<Value>) {
    let b = app.get(&format!("/admin/customers/{customer}/credits?limit=100"), As::Admin).await.ok();
    (b["balance"].as_i64().unwrap(), b["entries"].as_array().unwrap().clone())
}

async fn ledger_sum(app: &TestApp, customer: &str) -> i64 {
    kassa_store::credits::ledger_sum(app.state.store.reader(), customer).await.unwrap()
}

/// A `checkout.session.*` event for a processor session, signed like the test processor's.
async fn session_event(app: &TestApp, event_id: &str, kind: &str, processor_session: &str) -> (String, String) {
    let secret =
        kassa_store::settings::get(app.state.store.reader(), "test_processor_webhook_secret").await.unwrap().unwrap();
    let object = app.state.test_processor.clone().unwrap().object(processor_session).await.unwrap();
    let body = json!({"id": event_id, "object": "event", "type": kind, "created": app.state.clock.now(), "data": {"object": object}}).to_string();
    let header = kassa_processors::signature::sign(&secret, app.state.clock.now(), body.as_bytes());
    (body, header)
}

async fn deliver(app: &TestApp, (body, header): &(String, String)) -> u16 {
    app.http
        .post(format!("{}/webhooks/stripe", app.address))
        .header("stripe-signature", header)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The processor's id of a Kassa session (the page URL ends with it).
fn processor_session(session: &Value) -> String {
    session["url"].as_str().unwrap().rsplit('/').next().unwrap().to_string()
}

#[tokio::test]
async fn a_top_up_is_grossed_up_and_validated() {
    let app = spawn_app().await;
    let s = top_up_session(&app, "credits@example.com", 250).await;
    assert_eq!(s["purpose"], "credits");
    assert_eq!(s["credits"], 250);
    assert_eq!(s["amount_total"], 289, "ceil((250 + 30) / (1 - 0.029))");
    assert_eq!(s["currency"], "usd");
    let lines = s["lines"].as_array().unwrap();
    assert_eq!(lines[0]["unit_amount"], 250);
    assert_eq!(lines[1]["name"], "Processing fee");
    assert_eq!(lines[1]["unit_amount"], 39);
    assert_eq!(s["payment_status"], "unpaid");

    for (body, param) in [
        (json!({"credits": 0, "success_url": "https://a.test", "email": "a@b.co"}), "credits"),
        (json!({"credits": -5, "success_url": "https://a.test", "email": "a@b.co"}), "credits"),
        (json!({"credits": 1.5, "success_url": "https://a.test", "email": "a@b.co"}), "credits"),
        (json!({"credits": "10", "success_url": "https://a.test", "email": "a@b.co"}), "credits"),
        (json!({"credits": 1_000_001, "success_url": "https://a.test", "email": "a@b.co"}), "credits"),
        (json!({"credits": 10, "success_url": "/relative", "email": "a@b.co"}), "success_url"),
        (
            json!({"credits": 10, "success_url": "https://a.test", "cancel_url": "javascript:alert(1)", "email": "a@b.co"}),
            "cancel_url",
        ),
        (json!({"credits": 10, "success_url": "https://a.test"}), "email"),
        (json!({"success_url": "https://a.test", "email": "a@b.co"}), "credits"),
    ] {
        let r = app.post("/store/credits/sessions", As::Store, body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert_eq!(r.error_param(), param, "{body}");
    }
}

#[tokio::test]
async fn fee_parameters_and_credit_value_come_from_configuration() {
    let app = spawn_app_with(|s| {
        s.credits.fee_percent = "1.5".into();
        s.credits.fee_fixed = 25;
        s.credits.unit_amount = 10;
        s.credits.currency = "eur".into();
    })
    .await;
    let s = top_up_session(&app, "conf@example.com", 100).await;
    // 100 credits × 10 cents = 1000; ceil((1000 + 25) / 0.985) = 1041
    assert_eq!(s["amount_total"], 1041);
    assert_eq!(s["currency"], "eur");
    assert_eq!(s["lines"][0]["unit_amount"], 1000);
    assert_eq!(s["lines"][1]["unit_amount"], 41);
}

#[tokio::test]
async fn paid_top_ups_add_credits_exactly_once() {
    let app = app_without_deliveries().await;
    let s = top_up_session(&app, "once@example.com", 250).await;
    let customer = s["customer"].as_str().unwrap().to_string();
    let completed = session_event(&app, "evt_unpaid_yet", "checkout.session.completed", &processor_session(&s)).await;
    // Not paid yet: a (forged-early) completion adds nothing.
    assert_eq!(deliver(&app, &completed).await, 200);
    assert_eq!(balance(&app, &customer).await.0, 0);

    pay_by_card(s["url"].as_str().unwrap()).await;
    let completed = session_event(&app, "evt_paid_1", "checkout.session.completed", &processor_session(&s)).await;
    let statuses = futures::future::join_all((0..30).map(|_| deliver(&app, &completed))).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let other_id = session_event(&app, "evt_paid_2", "checkout.session.completed", &processor_session(&s)).await;
    assert_eq!(deliver(&app, &other_id).await, 200);
    let (bal, entries) = balance(&app, &customer).await;
    assert_eq!(bal, 250);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["kind"], "top_up");
    assert_eq!(ledger_sum(&app, &customer).await, 250);
    let added = app.get("/admin/events?type=credits.added", As::Admin).await.ok();
    assert_eq!(added["data"].as_array().unwrap().len(), 1);
    let session = app
        .get(&format!("/store/checkout-sessions/{}", s["id"].as_str().unwrap()), As::Guest(&secret_of(&s)))
        .await
        .ok();
    assert_eq!(session["payment_status"], "paid");
}

#[tokio::test]
async fn an_asynchronous_payment_adds_credits_only_when_it_succeeds() {
    let app = spawn_app().await;
    let s = top_up_session(&app, "async@example.com", 500).await;
    let customer = s["customer"].as_str().unwrap().to_string();
    let r = pay_page(s["url"].as_str().unwrap(), &[("method", "bank_debit")]).await;
    assert_eq!(r.status(), 303);
    // The completion (payment_status unpaid) is delivered and handled: nothing added.
    eventually("the unpaid completion to be handled", || async {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM processor_events WHERE type = 'checkout.session.completed'")
                .fetch_one(app.state.store.reader())
                .await
                .unwrap();
        n == 1
    })
    .await;
    let session = app
        .get(&format!("/store/checkout-sessions/{}", s["id"].as_str().unwrap()), As::Guest(&secret_of(&s)))
        .await
        .ok();
    assert_eq!(session["status"], "complete");
    assert_eq!(session["payment_status"], "unpaid");
    assert_eq!(balance(&app, &customer).await.0, 0);

    let settle = app
        .post(
            &format!("/test-processor/v1/checkout/sessions/{}/settle", processor_session(&s)),
            As::Admin,
            json!({"outcome": "succeeded"}),
        )
        .await;
    assert_eq!(settle.status, 200, "{}", settle.text);
    eventually("the async success to add the credits", || async { balance(&app, &customer).await.0 == 500 }).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let (bal, entries) = balance(&app, &customer).await;
    assert_eq!(bal, 500);
    assert_eq!(entries.len(), 1);
}

#[tokio::test]
async fn sixty_four_concurrent_writers_lose_nothing_and_count_nothing_twice() {
    let app = app_without_deliveries().await;
    let first = top_up_session(&app, "race@example.com", 100).await;
    let customer = first["customer"].as_str().unwrap().to_string();
    let mut sessions = vec![first];
    for _ in 1..16 {
        sessions.push(top_up_session(&app, "race@example.com", 100).await);
    }
    assert!(sessions.iter().all(|s| s["customer"] == customer.as_str()), "one guest per email");
    for s in &sessions {
        pay_by_card(s["url"].as_str().unwrap()).await;
    }
    let mut deliveries = Vec::new();
    for (i, s) in sessions.iter().enumerate() {
        let ps = processor_session(s);
        deliveries.push(session_event(&app, &format!("evt_race_{i}"), "checkout.session.completed", &ps).await);
        // A duplicate of the same event, and the same payment told by another event.
        deliveries.push(session_event(&app, &format!("evt_race_{i}"), "checkout.session.completed", &ps).await);
    }
    enum Write {
        Deliver(usize),
        Debit(usize),
    }
    let writes: Vec<Write> = (0..32).map(Write::Deliver).chain((0..32).map(Write::Debit)).collect();
    let results = futures::future::join_all(writes.iter().map(|w| {
        let app = &app;
        let deliveries = &deliveries;
        let customer = &customer;
        async move {
            match w {
                Write::Deliver(i) => ("deliver", deliver(app, &deliveries[*i]).await),
                Write::Debit(i) => {
                    let r = app
                        .post_idem(
                            &format!("/admin/customers/{customer}/credits/debit"),
                            As::Admin,
                            json!({"amount": 30, "reason": "usage"}),
                            &format!("debit-{i}"),
                        )
                        .await;
                    ("debit", r.status.as_u16())
                }
            }
        }
    }))
    .await;
    assert!(results.iter().filter(|(k, _)| *k == "deliver").all(|(_, s)| *s == 200), "{results:?}");
    let debited = results.iter().filter(|(k, s)| *k == "debit" && *s == 200).count() as i64;
    assert!(results.iter().filter(|(k, _)| *k == "debit").all(|(_, s)| *s == 200 || *s == 409), "{results:?}");
    let (bal, _) = balance(&app, &customer).await;
    assert_eq!(bal, 1600 - 30 * debited, "every top-up once, every successful debit once");
    assert_eq!(ledger_sum(&app, &customer).await, bal, "balance equals the ledger's sum");
    assert!(bal >= 0);

    // Everything again, in order: nothing changes.
    for d in &deliveries {
        assert_eq!(deliver(&app, d).await, 200);
    }
    for i in 0..32 {
        let r = app
            .post_idem(
                &format!("/admin/customers/{customer}/credits/debit"),
                As::Admin,
                json!({"amount": 30, "reason": "usage"}),
                &format!("debit-{i}"),
            )
            .await;
        assert!(r.status == 200 || r.status == 409);
    }
    let (after, entries) = balance(&app, &customer).await;
    let replayed_debits = entries.iter().filter(|e| e["kind"] == "debit").count() as i64;
    let top_ups = entries.iter().filter(|e| e["kind"] == "top_up").count();
    assert_eq!(top_ups, 16);
    assert_eq!(after, 1600 - 30 * replayed_debits);
    assert_eq!(ledger_sum(&app, &customer).await, after);
}

#[tokio::test]
async fn debits_and_adjustments_are_atomic_and_idempotent() {
    let app = spawn_app().await;
    let c = app.post("/admin/customers", As::Admin, json!({"email": "spend@example.com"})).await.ok();
    let id = c["id"].as_str().unwrap();
    let r = app.post(&format!("/admin/customers/{id}/credits/debit"), As::Admin, json!({"amount": 1})).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.error_code(), "insufficient_credits");
    let r = app.post(&format!("/admin/customers/{id}/credits/adjust"), As::Admin, json!({"amount": 100})).await;
    assert_eq!(r.status, 400, "an adjustment needs a reason");
    let e = app
        .post(&format!("/admin/customers/{id}/credits/adjust"), As::Admin, json!({"amount": 100, "reason": "goodwill"}))
        .await
        .ok();
    assert_eq!(e["kind"], "adjustment");
    assert_eq!(e["balance_after"], 100);
    for (body, param) in [
        (json!({"amount": 0}), "amount"),
        (json!({"amount": -5}), "amount"),
        (json!({"amount": 2.5}), "amount"),
        (json!({"amount": 1, "x": 1}), "x"),
    ] {
        let r = app.post(&format!("/admin/customers/{id}/credits/debit"), As::Admin, body.clone()).await;
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(r.error_param(), param);
    }
    let first = app
        .post_idem(&format!("/admin/customers/{id}/credits/debit"), As::Admin, json!({"amount": 70}), "order-17")
        .await;
    let again = app
        .post_idem(&format!("/admin/customers/{id}/credits/debit"), As::Admin, json!({"amount": 70}), "order-17")
        .await;
    assert_eq!(first.status, 200);
    assert_eq!(again.text, first.text);
    assert_eq!(balance(&app, id).await.0, 30);
    let r = app
        .post(&format!("/admin/customers/{id}/credits/adjust"), As::Admin, json!({"amount": -31, "reason": "oops"}))
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(balance(&app, id).await.0, 30);
    assert_eq!(
        app.post("/admin/customers/cus_00000000000000000000000000/credits/debit", As::Admin, json!({"amount": 1}))
            .await
            .status,
        404
    );
    for kind in ["credits.adjusted", "credits.debited"] {
        let ev = app.get(&format!("/admin/events?type={kind}"), As::Admin).await.ok();
        assert_eq!(ev["data"].as_array().unwrap().len(), 1, "{kind}");
    }
}

#[tokio::test]
async fn a_refunded_top_up_takes_back_what_is_left() {
    let app = spawn_app().await;
    let s = top_up_session(&app, "refund@example.com", 250).await;
    let customer = s["customer"].as_str().unwrap().to_string();
    pay_by_card(s["url"].as_str().unwrap()).await;
    eventually("credits to arrive", || async { balance(&app, &customer).await.0 == 250 }).await;
    app.post(&format!("/admin/customers/{customer}/credits/debit"), As::Admin, json!({"amount": 200})).await.ok();
    let ps = app.state.test_processor.clone().unwrap().object(&processor_session(&s)).await.unwrap();
    let pi = ps["payment_intent"].as_str().unwrap().to_string();
    // A partial refund of 100 of 289 takes back ceil(250 × 100 / 289) = 87 credits, of which
    // 50 are left.
    let refund =
        kassa_processors::CreateRefund { payment_intent: pi.clone(), amount: Some(100), metadata: Default::default() };
    app.state
        .processor
        .create_refund(&refund, &kassa_processors::IdempotencyKey::new("dashboard-refund-1"))
        .await
        .unwrap();
    eventually("the reversal", || async {
        balance(&app, &customer).await.1.iter().any(|e| e["kind"] == "refund_reversal")
    })
    .await;
    let (bal, entries) = balance(&app, &customer).await;
    assert_eq!(bal, 0, "never below zero");
    let reversal = entries.iter().find(|e| e["kind"] == "refund_reversal").unwrap();
    assert_eq!(reversal["amount"], -50);
    assert_eq!(reversal["shortfall"], 37);
    assert_eq!(ledger_sum(&app, &customer).await, 0);
}

#[tokio::test]
async fn signed_in_customers_see_their_balance() {
    let app = app_with_sign_in().await;
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 600;
    let token = hs_token(json!({"sub": "credit-user", "exp": exp, "iss": "https://auth.shop.test", "aud": "kassa"}));
    let s = app
        .post(
            "/store/credits/sessions",
            As::Customer(&token),
            json!({"credits": 40, "success_url": "https://app.test/ok"}),
        )
        .await
        .ok();
    pay_by_card(s["url"].as_str().unwrap()).await;
    eventually("credits to show", || async {
        app.get("/store/customers/me/credits", As::Customer(&token)).await.ok()["balance"] == 40
    })
    .await;
    let mine = app.get("/store/customers/me/credits", As::Customer(&token)).await.ok();
    assert_eq!(mine["entries"][0]["amount"], 40);
    assert_eq!(app.get("/store/customers/me/credits", As::Store).await.status, 401);
}

/// A guest's credits session for a new email answers promptly: the processor-customer job
/// (woken by the new customer) and the session's own wait for that customer never wait for
/// each other's lease (they did, for its 30 s, before eb06cbd). A bound far above any normal
/// answer that still catches such a wait; a deadlock check, not a speed target.
#[tokio::test]
async fn a_guest_credits_session_for_a_new_email_answers_promptly() {
    let app = spawn_app().await;
    for n in 0..3 {
        let started = std::time::Instant::now();
        let session = top_up_session(&app, &format!("prompt-{n}-{}@example.com", rand_suffix()), 100).await;
        let took = started.elapsed();
        assert_eq!(session["purpose"], "credits", "{session}");
        assert!(took < std::time::Duration::from_secs(5), "session {n} took {took:?}");
    }
}
