//! Starting a subscription from the storefront (issue 15, "Starting one"): a hosted checkout
//! session in subscription mode, paid on the test processor's page with consent. The card is
//! saved (the customer's default), the subscription `active` with its first invoice paid by
//! that very payment — one charge —, once, whatever the number of reports.

use crate::checkout::VISA;
use crate::customers::{app_with_sign_in, claims, free_plan, hs_token};
use crate::helpers::{As, TestApp, rand_suffix, secret_of, spawn_app};
use serde_json::{Value, json};
use std::time::Duration;

const CREDITS: i64 = 25;

/// A monthly price of `unit_amount` granting `CREDITS` per period.
async fn monthly(app: &TestApp, unit_amount: i64) -> String {
    let product = app.post("/admin/products", As::Admin, json!({"name": "Pro plan"})).await.ok();
    let price = app
        .post(
            "/admin/prices",
            As::Admin,
            json!({"product": product["id"], "currency": "usd", "unit_amount": unit_amount,
                   "recurring": {"interval": "month"}, "credits_per_period": CREDITS}),
        )
        .await
        .ok();
    price["id"].as_str().unwrap().to_string()
}

fn email() -> String {
    format!("sub-{}@example.com", rand_suffix())
}

async fn start(app: &TestApp, who: As<'_>, body: Value) -> Value {
    app.post("/store/checkout-sessions", who, body).await.ok()
}

fn body(price: &str, quantity: i64, email: Option<&str>) -> Value {
    let mut b = json!({"mode": "subscription", "line_items": [{"price": price, "quantity": quantity}],
                       "success_url": "https://shop.test/welcome", "cancel_url": "https://shop.test/plans"});
    if let Some(e) = email {
        b["email"] = json!(e);
    }
    b
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Posts the hosted page's card form; `consent` ticks the checkbox.
async fn pay(url: &str, number: &str, consent: bool) -> reqwest::Response {
    let mut form = vec![("method", "card"), ("number", number), ("exp", "12/34"), ("cvc", "123")];
    if consent {
        form.push(("consent", "yes"));
    }
    no_redirects().post(url).form(&form).send().await.unwrap()
}

/// Succeeded PaymentIntents at the processor for this Kassa checkout session.
async fn charges_of_session(app: &TestApp, session: &str) -> usize {
    let page = app.state.processor.list_payment_intents(None, 100).await.unwrap();
    page.data
        .iter()
        .filter(|pi| pi.metadata.get("kassa_checkout_session").map(String::as_str) == Some(session))
        .filter(|pi| pi.status == kassa_processors::PaymentIntentStatus::Succeeded)
        .count()
}

/// Every PaymentIntent at the processor for this session, whatever its status.
async fn intents_of_session(app: &TestApp, session: &str) -> usize {
    let page = app.state.processor.list_payment_intents(None, 100).await.unwrap();
    page.data.iter().filter(|pi| pi.metadata.get("kassa_checkout_session").map(String::as_str) == Some(session)).count()
}

async fn subscriptions_of(app: &TestApp, customer: &str) -> Vec<Value> {
    let page = app.get(&format!("/admin/subscriptions?customer={customer}&limit=100"), As::Admin).await.ok();
    page["data"].as_array().unwrap().clone()
}

async fn events_about(app: &TestApp, kind: &str, object: &str) -> usize {
    let page = app.get(&format!("/admin/events?type={kind}&object={object}&limit=100"), As::Admin).await.ok();
    page["data"].as_array().unwrap().len()
}

/// The session read as the success page does, until it names its subscription.
async fn completed(app: &TestApp, session: &str, secret: &str) -> Value {
    let path = format!("/store/checkout-sessions/{session}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let read = app.get(&path, As::Guest(secret)).await.ok();
        if read["subscription"].is_string() {
            return read;
        }
        assert!(std::time::Instant::now() < deadline, "the session did not complete: {read}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_guest_subscribes_with_consent_and_the_first_invoice_is_paid_by_that_one_charge() {
    let app = spawn_app().await;
    let price = monthly(&app, 1500).await;
    let email = email();
    let session = start(&app, As::Store, body(&price, 2, Some(&email))).await;
    assert_eq!(session["mode"], "subscription");
    assert_eq!(session["purpose"], "subscription");
    assert_eq!(session["status"], "open");
    assert_eq!(session["amount_total"], 3000);
    assert_eq!(session["price"], price.as_str());
    assert_eq!(session["quantity"], 2);
    assert!(session["subscription"].is_null());
    let (sid, url, secret) = (session["id"].as_str().unwrap(), session["url"].as_str().unwrap(), secret_of(&session));

    // The page says the card is saved for this subscription's future payments, how much and
    // how often, and asks for consent with a required checkbox; no bank debit is offered.
    let page = reqwest::get(url).await.unwrap().text().await.unwrap();
    assert!(page.contains("Subscribe"), "{page}");
    assert!(page.contains("Your card will be saved"), "{page}");
    assert!(page.contains("$30.00 now and $30.00 every month"), "{page}");
    assert!(page.contains(r#"name="consent""#) && page.contains("required"), "{page}");
    assert!(!page.contains("bank_debit"), "{page}");

    let paid = pay(url, VISA, true).await;
    assert_eq!(paid.status(), 303);
    let location = paid.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(location, format!("https://shop.test/welcome?session_id={sid}&client_secret={secret}"));

    let read = completed(&app, sid, &secret).await;
    assert_eq!(read["status"], "complete");
    assert_eq!(read["payment_status"], "paid");
    let sub_id = read["subscription"].as_str().unwrap().to_string();
    let customer = read["customer"].as_str().unwrap().to_string();

    let sub = app.get(&format!("/admin/subscriptions/{sub_id}"), As::Admin).await.ok();
    assert_eq!(sub["status"], "active", "{sub}");
    assert_eq!(sub["customer"], customer.as_str());
    assert_eq!(sub["quantity"], 2);
    let start = sub["current_period_start"].as_i64().unwrap();
    assert!((start - app.state.clock.now()).abs() < 60, "the period starts at completion");
    let pm = sub["default_payment_method"].as_str().expect("the saved card pays the renewals").to_string();

    // The first invoice is paid by the checkout's own PaymentIntent: one charge in all.
    let invoices = app.get(&format!("/admin/invoices?subscription={sub_id}"), As::Admin).await.ok();
    let invoices = invoices["data"].as_array().unwrap();
    assert_eq!(invoices.len(), 1, "{invoices:?}");
    let inv = &invoices[0];
    assert_eq!(inv["billing_reason"], "subscription_create");
    assert_eq!(inv["status"], "paid");
    assert_eq!((inv["amount_due"].as_i64(), inv["amount_paid"].as_i64()), (Some(3000), Some(3000)));
    assert_eq!(inv["period_start"], start);
    assert_eq!(sub["latest_invoice"], inv["id"]);
    let pi = inv["payment_intent"].as_str().unwrap().to_string();
    let at_processor = app.state.processor.retrieve_payment_intent(&pi).await.unwrap();
    assert_eq!(at_processor.metadata["kassa_checkout_session"], sid);
    assert_eq!(at_processor.amount, 3000);

    // The card is saved with the customer, as the default.
    let methods = app.get(&format!("/admin/customers/{customer}/payment-methods"), As::Admin).await.ok();
    let methods = methods["data"].as_array().unwrap().clone();
    assert_eq!(methods.len(), 1, "{methods:?}");
    assert_eq!(methods[0]["id"], pm.as_str());
    assert_eq!(methods[0]["default"], true);
    assert_eq!(methods[0]["card"]["last4"], "4242", "{methods:?}");
    let c = app.get(&format!("/admin/customers/{customer}"), As::Admin).await.ok();
    assert_eq!(c["default_payment_method"], pm.as_str());

    // Credits of the period, once.
    let credits = app.get(&format!("/admin/customers/{customer}/credits"), As::Admin).await.ok();
    assert_eq!(credits["balance"], CREDITS * 2, "{credits}");

    // The webhooks that follow (and reading the session again) change nothing.
    tokio::time::sleep(Duration::from_millis(800)).await;
    app.get(&format!("/store/checkout-sessions/{sid}"), As::Guest(&secret)).await.ok();
    assert_eq!(subscriptions_of(&app, &customer).await.len(), 1);
    assert_eq!(charges_of_session(&app, sid).await, 1);
    assert_eq!(events_about(&app, "subscription.created", &sub_id).await, 1);
    assert_eq!(events_about(&app, "invoice.paid", inv["id"].as_str().unwrap()).await, 1);
    assert_eq!(events_about(&app, "checkout.session.completed", sid).await, 1);
    let credits = app.get(&format!("/admin/customers/{customer}/credits"), As::Admin).await.ok();
    assert_eq!(credits["balance"], CREDITS * 2);

    // The saved card pays off-session, as the renewals will: a subscription the merchant
    // starts with it is charged without the customer and is active.
    let renewed = app
        .post(
            "/admin/subscriptions",
            As::Admin,
            json!({"customer": customer, "items": [{"price": price}], "default_payment_method": pm}),
        )
        .await
        .ok();
    assert_eq!(renewed["status"], "active", "the saved card pays off-session: {renewed}");
}

#[tokio::test]
async fn without_consent_nothing_is_charged_and_the_page_says_why() {
    let app = spawn_app().await;
    let price = monthly(&app, 900).await;
    let session = start(&app, As::Store, body(&price, 1, Some(&email()))).await;
    let (sid, url, secret) = (session["id"].as_str().unwrap(), session["url"].as_str().unwrap(), secret_of(&session));

    let refused = pay(url, VISA, false).await;
    assert_eq!(refused.status(), 400);
    let page = refused.text().await.unwrap();
    assert!(page.contains("Tick the box"), "{page}");
    assert!(page.contains("Nothing was charged"), "{page}");
    assert!(page.contains("Your card will be saved"), "the page is shown again: {page}");
    assert_eq!(intents_of_session(&app, sid).await, 0, "no payment was even attempted");
    let read = app.get(&format!("/store/checkout-sessions/{sid}"), As::Guest(&secret)).await.ok();
    assert_eq!((read["status"].as_str(), read["payment_status"].as_str()), (Some("open"), Some("unpaid")));
    assert!(read["subscription"].is_null());
    let customer = read["customer"].as_str().unwrap();
    assert!(subscriptions_of(&app, customer).await.is_empty());

    // A bank debit cannot save a card for renewals: refused too, nothing charged.
    let debit = no_redirects().post(url).form(&[("method", "bank_debit")]).send().await.unwrap();
    assert_eq!(debit.status(), 400);
    assert_eq!(intents_of_session(&app, sid).await, 0);

    // With consent it goes through.
    assert_eq!(pay(url, VISA, true).await.status(), 303);
    completed(&app, sid, &secret).await;
    assert_eq!(charges_of_session(&app, sid).await, 1);
}

#[tokio::test]
async fn a_double_submit_and_repeated_reads_start_one_subscription() {
    let app = spawn_app().await;
    let price = monthly(&app, 1200).await;
    let session = start(&app, As::Store, body(&price, 1, Some(&email()))).await;
    let (sid, url, secret) = (session["id"].as_str().unwrap(), session["url"].as_str().unwrap(), secret_of(&session));
    let (a, b) = tokio::join!(pay(url, VISA, true), pay(url, VISA, true));
    for res in [a, b] {
        assert_eq!(res.status(), 303);
    }
    // The success page read many times at once, while the webhooks arrive.
    let path = format!("/store/checkout-sessions/{sid}");
    let reads = futures::future::join_all((0..6).map(|_| app.get(&path, As::Guest(&secret)))).await;
    for r in reads {
        assert!(r.status.is_success(), "{}", r.text);
    }
    let read = completed(&app, sid, &secret).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let customer = read["customer"].as_str().unwrap();
    let subs = subscriptions_of(&app, customer).await;
    assert_eq!(subs.len(), 1, "{subs:?}");
    assert_eq!(subs[0]["id"], read["subscription"]);
    let sub_id = subs[0]["id"].as_str().unwrap();
    let invoices = app.get(&format!("/admin/invoices?customer={customer}"), As::Admin).await.ok();
    assert_eq!(invoices["data"].as_array().unwrap().len(), 1);
    assert_eq!(charges_of_session(&app, sid).await, 1);
    assert_eq!(events_about(&app, "subscription.created", sub_id).await, 1);
    let credits = app.get(&format!("/admin/customers/{customer}/credits"), As::Admin).await.ok();
    assert_eq!(credits["balance"], CREDITS);
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_parameter_and_stores_nothing() {
    let app = spawn_app().await;
    let price = monthly(&app, 1000).await;
    let (_, one_time) = app.product_with_price("Sticker", 400, None).await;
    let archived = monthly(&app, 2000).await;
    app.post(&format!("/admin/prices/{archived}"), As::Admin, json!({"active": false})).await.ok();
    let free = monthly(&app, 0).await;
    let other = app.post("/admin/customers", As::Admin, json!({"email": email()})).await.ok();
    let e = email();
    let with = |patch: Value| {
        let mut b = body(&price, 1, Some(&e));
        for (k, v) in patch.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let cases: Vec<(Value, &str)> = vec![
        (with(json!({"mode": "payment"})), "mode"),
        (with(json!({"mode": "subscription\u{0}"})), "mode"),
        (with(json!({"line_items": []})), "line_items"),
        (with(json!({"line_items": [{"price": price}, {"price": price}]})), "line_items"),
        (with(json!({"line_items": [{"price": "price_nope"}]})), "line_items[0].price"),
        (with(json!({"line_items": [{"price": "x\u{0}"}]})), "line_items[0].price"),
        (with(json!({"line_items": [{"price": one_time}]})), "line_items[0].price"),
        (with(json!({"line_items": [{"price": archived}]})), "line_items[0].price"),
        (with(json!({"line_items": [{"price": free}]})), "line_items[0].price"),
        (with(json!({"line_items": [{"price": price, "quantity": 0}]})), "line_items[0].quantity"),
        (with(json!({"line_items": [{"price": price, "quantity": -1}]})), "line_items[0].quantity"),
        (with(json!({"line_items": [{"price": price, "quantity": i64::MAX}]})), "line_items[0].quantity"),
        (with(json!({"line_items": [{"price": price, "quantity": 1_000_000}]})), "line_items[0].quantity"),
        (with(json!({"success_url": "javascript:alert(1)"})), "success_url"),
        (with(json!({"cancel_url": "/relative"})), "cancel_url"),
        (with(json!({"email": "not-an-email"})), "email"),
        (with(json!({"email": "a\u{0}@example.com"})), "email"),
        (with(json!({"trial_period_days": 7})), "trial_period_days"),
        // A guest cannot name a customer: the subscription is the token's or the email's.
        (with(json!({"customer": other["id"]})), "customer"),
        (body(&price, 1, None), "email"),
    ];
    for (input, param) in cases {
        let res = app.post("/store/checkout-sessions", As::Store, input.clone()).await;
        assert_eq!(res.status, 400, "{input}: {}", res.text);
        assert_eq!(res.error_param(), param, "{input}: {}", res.text);
    }
    // Nothing stored: no session, no guest customer for the email, no processor customer.
    let events = app.get("/admin/events?type=checkout.session.created", As::Admin).await.ok();
    assert!(events["data"].as_array().unwrap().is_empty(), "{events}");
    let customers = app.get(&format!("/admin/customers?email={e}"), As::Admin).await.ok();
    assert!(customers["data"].as_array().unwrap().is_empty(), "{customers}");
}

#[tokio::test]
async fn another_customers_session_is_out_of_reach() {
    let app = app_with_sign_in().await;
    let price = monthly(&app, 1000).await;
    let alice = hs_token(claims(&format!("alice-{}", rand_suffix())));
    let bob = hs_token(claims(&format!("bob-{}", rand_suffix())));
    let session = start(&app, As::Customer(&alice), body(&price, 1, None)).await;
    let sid = session["id"].as_str().unwrap();
    let me = app.get("/store/customers/me", As::Customer(&alice)).await.ok();
    assert_eq!(session["customer"], me["id"], "a signed-in customer's own subscription");
    // Another guest's secret, another signed-in customer, or nothing: the 404 of no session.
    let guest = start(&app, As::Store, body(&price, 1, Some(&email()))).await;
    let path = format!("/store/checkout-sessions/{sid}");
    for who in [As::Store, As::Guest(&secret_of(&guest)), As::Customer(&bob)] {
        let res = app.get(&path, who).await;
        assert_eq!(res.status, 404, "{}", res.text);
    }
    assert_eq!(app.get(&path, As::Customer(&alice)).await.ok()["id"], sid);
    // Signed in, the email of someone else changes nothing: still the token's customer.
    let other = start(&app, As::Customer(&bob), body(&price, 1, Some("alice@example.com"))).await;
    let bob_id = app.get("/store/customers/me", As::Customer(&bob)).await.ok()["id"].clone();
    assert_eq!(other["customer"], bob_id);
}

#[tokio::test]
async fn a_customer_on_the_free_default_plan_upgrades_and_the_free_plan_ends() {
    let app = app_with_sign_in().await;
    let (_model, free_price) = free_plan(&app).await;
    let price = monthly(&app, 2500).await;
    let token = hs_token(claims(&format!("upgrader-{}", rand_suffix())));
    let me = app.get("/store/customers/me", As::Customer(&token)).await.ok();
    let customer = me["id"].as_str().unwrap().to_string();
    let before = subscriptions_of(&app, &customer).await;
    assert_eq!(before.len(), 1);
    assert_eq!(
        (before[0]["price"].as_str(), before[0]["status"].as_str()),
        (Some(free_price.as_str()), Some("active"))
    );
    let free_sub = before[0]["id"].as_str().unwrap().to_string();

    let session = start(&app, As::Customer(&token), body(&price, 1, None)).await;
    let (sid, url, secret) = (session["id"].as_str().unwrap(), session["url"].as_str().unwrap(), secret_of(&session));
    assert_eq!(pay(url, VISA, true).await.status(), 303);
    let read = completed(&app, sid, &secret).await;
    let paid_sub = read["subscription"].as_str().unwrap();

    let subs = subscriptions_of(&app, &customer).await;
    assert_eq!(subs.len(), 2);
    let status_of = |id: &str| subs.iter().find(|s| s["id"] == id).unwrap()["status"].as_str().unwrap().to_string();
    assert_eq!(status_of(paid_sub), "active");
    assert_eq!(status_of(&free_sub), "canceled", "the paid plan replaces the free default");
    assert_eq!(events_about(&app, "subscription.deleted", &free_sub).await, 1);
    let c = app.get(&format!("/admin/customers/{customer}"), As::Admin).await.ok();
    assert!(c["default_payment_method"].is_string(), "{c}");
}
