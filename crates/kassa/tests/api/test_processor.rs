//! The built-in test processor over HTTP: the ConfirmationToken endpoint, the hosted checkout
//! and 3-D Secure pages, the controls, and event delivery by the server's job.

use crate::helpers::*;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use kassa_processors::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// A customer and an open checkout session (2 × Tea at 4.50, 1 × Cake at 3.00) at the
/// server's test processor.
async fn checkout_session(app: &TestApp, capture: CaptureMethod) -> CheckoutSession {
    checkout_session_to(app, capture, "https://shop.test/thanks?session={CHECKOUT_SESSION_ID}").await
}

async fn checkout_session_to(app: &TestApp, capture: CaptureMethod, success_url: &str) -> CheckoutSession {
    let processor = &app.state.processor;
    let key = |k: &str| IdempotencyKey::new(format!("{k}_{}", rand_suffix()));
    let customer = processor.create_customer(&CreateCustomer::default(), &key("cus")).await.unwrap();
    let req = CreateCheckoutSession {
        customer: customer.id,
        currency: "usd".into(),
        lines: vec![
            CheckoutLine { name: "Tea".into(), unit_amount: 450, quantity: 2 },
            CheckoutLine { name: "Cake".into(), unit_amount: 300, quantity: 1 },
        ],
        success_url: success_url.into(),
        cancel_url: Some("https://shop.test/cart".into()),
        metadata: Default::default(),
        capture_method: capture,
        expires_at: app.state.clock.now() + 3600,
        save_card: None,
    };
    processor.create_checkout_session(&req, &key("cs")).await.unwrap()
}

/// A zero-decimal currency shows as the buyer reads it: `¥500`, not `5.00` nor `500 JPY`.
#[tokio::test]
async fn the_checkout_page_shows_amounts_in_the_currencys_own_format() {
    let app = spawn_app().await;
    let processor = &app.state.processor;
    let key = |k: &str| IdempotencyKey::new(format!("{k}_{}", rand_suffix()));
    let customer = processor.create_customer(&CreateCustomer::default(), &key("cus")).await.unwrap();
    let req = CreateCheckoutSession {
        customer: customer.id,
        currency: "jpy".into(),
        lines: vec![CheckoutLine { name: "Matcha".into(), unit_amount: 500, quantity: 3 }],
        success_url: "https://shop.test/thanks".into(),
        cancel_url: None,
        metadata: Default::default(),
        capture_method: CaptureMethod::Automatic,
        expires_at: app.state.clock.now() + 3600,
        save_card: None,
    };
    let session = processor.create_checkout_session(&req, &key("cs")).await.unwrap();
    let page = browse(&app, &format!("/test-processor/checkout/{}", session.id), None).await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("Pay ¥1,500"), "{}", page.text);
    assert!(!page.text.contains("JPY") && !page.text.contains("15.00"), "{}", page.text);
}

struct Page {
    status: StatusCode,
    location: Option<String>,
    content_type: String,
    text: String,
    headers: reqwest::header::HeaderMap,
}

/// How many times the PaymentIntent succeeded at the processor (its `payment_intent.succeeded`
/// events): a second charge would need a second success.
async fn succeeded_payments_of(app: &TestApp, pi: &str) -> usize {
    let events = app.state.test_processor.as_ref().unwrap().events().await.unwrap();
    events.iter().filter(|e| e["type"] == "payment_intent.succeeded" && e["data"]["object"]["id"] == pi).count()
}

/// A browser that does not follow redirects, so the tests see them.
async fn browse(app: &TestApp, path: &str, form: Option<&[(&str, &str)]>) -> Page {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let url = format!("{}{path}", app.address);
    let req = match form {
        Some(fields) => client.post(url).form(fields),
        None => client.get(url),
    };
    let res = req.send().await.unwrap();
    let header = |name| res.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (status, location, content_type) =
        (res.status(), header("location"), header("content-type").unwrap_or_default());
    let headers = res.headers().clone();
    Page { status, location, content_type, headers, text: res.text().await.unwrap() }
}

fn path_of(url: &str, app: &TestApp) -> String {
    url.strip_prefix(&app.address).unwrap_or_else(|| panic!("{url} is not on this server")).to_string()
}

#[tokio::test]
async fn confirmation_tokens_need_a_publishable_key_and_a_test_card() {
    let app = spawn_app().await;
    let path = "/test-processor/v1/confirmation_tokens";
    let card = json!({"card": {"number": "4242 4242 4242 4242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}});
    let token = app.post(path, As::Store, card.clone()).await.ok();
    assert_eq!(token["object"], "confirmation_token");
    assert!(token["id"].as_str().unwrap().starts_with("ctoken_"));
    assert_eq!(token["payment_method_preview"]["card"]["last4"], "4242");
    assert!(!token.to_string().contains("4242 4242"), "the number does not come back");

    // Secret keys stay out of browsers: refused as the publishable key, and not one.
    let sk_as_pk = app.http.post(format!("{}{path}", app.address)).header("kassa-publishable-key", &app.secret_key);
    assert_eq!(sk_as_pk.json(&card).send().await.unwrap().status(), 403);
    assert_eq!(app.post(path, As::Admin, card.clone()).await.status, 401);
    assert_eq!(app.post(path, As::Nobody, card.clone()).await.status, 401);

    // The same Idempotency-Key gives the same token.
    let a = app.post_idem(path, As::Store, card.clone(), "tok-1").await.ok();
    let b = app.post_idem(path, As::Store, card.clone(), "tok-1").await.ok();
    assert_eq!(a["id"], b["id"]);

    let shortcut = app.post(path, As::Store, json!({"payment_method": "pm_card_chargeDeclined"})).await.ok();
    assert_eq!(shortcut["payment_method_preview"]["card"]["last4"], "0002");

    let bad = |body: Value, code: &'static str, param: &'static str| (body, code, param);
    for (body, code, param) in [
        bad(
            json!({"card": {"number": "4111 1111 1111 1111", "exp_month": 12, "exp_year": 2034}}),
            "incorrect_number",
            "card.number",
        ),
        bad(
            json!({"card": {"number": "4242424242424242", "exp_month": 13, "exp_year": 2034}}),
            "invalid_expiry_month",
            "card.exp_month",
        ),
        bad(
            json!({"card": {"number": "4242424242424242", "exp_month": 1, "exp_year": 2001}}),
            "expired_card",
            "card.exp_year",
        ),
        bad(
            json!({"card": {"number": "4242424242424242", "exp_month": 1, "exp_year": 2034, "cvc": "x"}}),
            "invalid_cvc",
            "card.cvc",
        ),
        bad(
            json!({"card": {"number": "4242424242424242", "exp_month": "twelve", "exp_year": 2034}}),
            "parameter_invalid",
            "card.exp_month",
        ),
        bad(json!({"card": {"exp_month": 1, "exp_year": 2034}}), "parameter_missing", "card.number"),
        bad(json!({}), "parameter_missing", "card"),
        bad(
            json!({"payment_method": "pm_card_visa", "card": {"number": "4242424242424242", "exp_month": 1, "exp_year": 2034}}),
            "parameter_invalid",
            "payment_method",
        ),
        bad(json!({"payment_method": "pm_card_unknown"}), "resource_missing", "payment_method"),
        bad(json!({"cards": []}), "parameter_unknown", "cards"),
    ] {
        let r = app.post(path, As::Store, body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert_eq!((r.error_code(), r.error_param()), (code, param), "{body}");
    }
}

#[tokio::test]
async fn the_checkout_page_shows_the_order_and_pays_by_card() {
    let app = spawn_app().await;
    let session = checkout_session(&app, CaptureMethod::Automatic).await;
    let path = format!("/test-processor/checkout/{}", session.id);
    assert_eq!(session.url.as_deref(), Some(format!("{}{path}", app.address).as_str()));

    let page = browse(&app, &path, None).await;
    assert_eq!(page.status, 200);
    assert!(page.content_type.starts_with("text/html"), "{}", page.content_type);
    for shown in
        ["Tea", "× 2", "$9.00", "Cake", "$3.00", "Total", "$12.00", "Pay by bank debit", "https://shop.test/cart"]
    {
        assert!(page.text.contains(shown), "{shown} missing from the page");
    }

    // A decline shows in place; the session stays open.
    let declined = browse(
        &app,
        &path,
        Some(&[("method", "card"), ("number", "4000 0000 0000 0002"), ("exp", "12/34"), ("cvc", "123")]),
    )
    .await;
    assert_eq!(declined.status, 402);
    assert!(declined.text.contains("Your card was declined."), "{}", declined.text);
    assert!(declined.text.contains("Card number"), "the form is still there");
    // With the number and expiry as typed (never the security code), the message to focus.
    assert!(declined.text.contains(r#"value="4000 0000 0000 0002""#), "{}", declined.text);
    assert!(declined.text.contains(r#"value="12/34""#) && !declined.text.contains(r#"value="123""#));
    assert!(declined.text.contains(r#"id="payment-error""#) && declined.text.contains("autofocus"));
    // So does a card typed wrong.
    let typo = browse(&app, &path, Some(&[("number", "4242 4242 4242 4241"), ("exp", "12/34"), ("cvc", "123")])).await;
    assert_eq!(typo.status, 400);
    assert!(typo.text.contains("Your card number is incorrect"));
    let no_expiry = browse(&app, &path, Some(&[("number", "4242 4242 4242 4242"), ("exp", "soon")])).await;
    assert_eq!(no_expiry.status, 400);
    assert!(no_expiry.text.contains("MM/YY"));
    let empty = browse(&app, &path, Some(&[])).await;
    assert_eq!(empty.status, 400);

    let paid = browse(
        &app,
        &path,
        Some(&[("method", "card"), ("number", "4242 4242 4242 4242"), ("exp", "12 / 34"), ("cvc", "123")]),
    )
    .await;
    assert_eq!(paid.status, 303, "{}", paid.text);
    assert_eq!(paid.location.as_deref(), Some(format!("https://shop.test/thanks?session={}", session.id).as_str()));
    let done = app.state.processor.retrieve_checkout_session(&session.id).await.unwrap();
    assert_eq!((done.status, done.payment_status), (CheckoutSessionStatus::Complete, CheckoutPaymentStatus::Paid));
    let pi = app.state.processor.retrieve_payment_intent(done.payment_intent.as_deref().unwrap()).await.unwrap();
    assert_eq!((pi.status, pi.amount_received), (PaymentIntentStatus::Succeeded, 1200));

    let after = browse(&app, &path, None).await;
    assert_eq!(after.status, 200);
    assert!(after.text.contains("This checkout session is complete"));
    assert!(!after.text.contains("Card number"));
    // The form posted again (a second click on Pay, a reload) goes where the first post went
    // and charges nothing more.
    let again = browse(&app, &path, Some(&[("number", "4242 4242 4242 4242"), ("exp", "12/34"), ("cvc", "123")])).await;
    assert_eq!((again.status, again.location), (StatusCode::SEE_OTHER, paid.location.clone()));
    assert_eq!(succeeded_payments_of(&app, &pi.id).await, 1);

    // A merchant's URL that is not ASCII still redirects (percent-encoded).
    let session =
        checkout_session_to(&app, CaptureMethod::Automatic, "https://shop.test/danke-schön/{CHECKOUT_SESSION_ID}")
            .await;
    let card = [("number", "4242424242424242"), ("exp", "12/34"), ("cvc", "123")];
    let paid = browse(&app, &format!("/test-processor/checkout/{}", session.id), Some(&card)).await;
    assert_eq!(paid.status, 303);
    assert_eq!(paid.location, Some(format!("https://shop.test/danke-sch%C3%B6n/{}", session.id)));

    let missing = app.get("/test-processor/checkout/cs_nothing", As::Nobody).await;
    assert_eq!((missing.status.as_u16(), missing.error_code()), (404, "resource_missing"));
}

#[tokio::test]
async fn three_d_secure_goes_through_the_challenge_page() {
    let app = spawn_app().await;
    let session = checkout_session(&app, CaptureMethod::Automatic).await;
    let path = format!("/test-processor/checkout/{}", session.id);
    let card = [("number", "4000 0027 6000 3184"), ("exp", "12/34"), ("cvc", "123")];

    // Failing the challenge returns to the checkout page, which says why.
    let challenge = browse(&app, &path, Some(&card)).await;
    assert_eq!(challenge.status, 303);
    let auth_path = path_of(challenge.location.as_deref().unwrap(), &app);
    assert!(auth_path.starts_with("/test-processor/authenticate/pi_"), "{auth_path}");
    let auth = browse(&app, &auth_path, None).await;
    assert_eq!(auth.status, 200);
    assert!(auth.text.contains("Complete authentication") && auth.text.contains("Fail authentication"));
    assert!(auth.text.contains("$12.00"));
    let failed = browse(&app, &auth_path, Some(&[("outcome", "fail")])).await;
    assert_eq!(failed.status, 303);
    assert_eq!(failed.location.as_deref(), session.url.as_deref());
    let back = browse(&app, &path, None).await;
    assert!(back.text.contains("unable to authenticate"), "{}", back.text);

    // Approving completes the session.
    let challenge = browse(&app, &path, Some(&card)).await;
    let auth_path = path_of(challenge.location.as_deref().unwrap(), &app);
    assert_eq!(browse(&app, &auth_path, Some(&[])).await.status, 400, "no outcome chosen");
    let approved = browse(&app, &auth_path, Some(&[("outcome", "complete")])).await;
    assert_eq!(approved.status, 303);
    assert_eq!(approved.location.as_deref(), Some(format!("https://shop.test/thanks?session={}", session.id).as_str()));
    let done = app.state.processor.retrieve_checkout_session(&session.id).await.unwrap();
    assert_eq!(done.payment_status, CheckoutPaymentStatus::Paid);
    // The challenge is over: answering it again goes where the first answer went.
    let again = browse(&app, &auth_path, Some(&[("outcome", "complete")])).await;
    assert_eq!((again.status, again.location), (StatusCode::SEE_OTHER, approved.location.clone()));
    assert!(browse(&app, &auth_path, None).await.text.contains("does not wait for authentication"));
    assert_eq!(browse(&app, "/test-processor/authenticate/pi_nothing", None).await.status, 404);

    // A PaymentIntent confirmed through the API returns to its return_url.
    let tp = app.state.test_processor.clone().unwrap();
    let customer = tp.create_customer(&CreateCustomer::default(), &IdempotencyKey::new(rand_suffix())).await.unwrap();
    let req = CreatePaymentIntent {
        amount: 500,
        currency: "eur".into(),
        customer: customer.id,
        metadata: Default::default(),
        capture_method: CaptureMethod::Automatic,
        setup_future_usage: false,
        confirm: Some(PaymentSource::PaymentMethod("pm_card_authenticationRequired".into())),
        off_session: false,
        return_url: Some("https://shop.test/after-3ds".into()),
    };
    let pi = tp.create_payment_intent(&req, &IdempotencyKey::new(rand_suffix())).await.unwrap();
    let auth_path = path_of(&pi.next_action.unwrap().redirect_url, &app);
    assert!(browse(&app, &auth_path, None).await.text.contains("€5.00"));
    let back = browse(&app, &auth_path, Some(&[("outcome", "complete")])).await;
    assert_eq!(
        back.location.as_deref(),
        Some(format!("https://shop.test/after-3ds?payment_intent={}&redirect_status=succeeded", pi.id).as_str())
    );
    // Without a session there is nowhere known to go back to: the page says it is over.
    let again = browse(&app, &auth_path, Some(&[("outcome", "complete")])).await;
    assert_eq!(again.status, 409);
    assert!(again.text.contains("does not wait for authentication"));
}

#[tokio::test]
async fn a_bank_debit_is_settled_with_the_secret_key() {
    let app = spawn_app().await;
    let session = checkout_session(&app, CaptureMethod::Automatic).await;
    let submitted =
        browse(&app, &format!("/test-processor/checkout/{}", session.id), Some(&[("method", "bank_debit")])).await;
    assert_eq!(submitted.status, 303);
    let done = app.state.processor.retrieve_checkout_session(&session.id).await.unwrap();
    assert_eq!((done.status, done.payment_status), (CheckoutSessionStatus::Complete, CheckoutPaymentStatus::Unpaid));

    let path = format!("/test-processor/v1/checkout/sessions/{}/settle", session.id);
    assert_eq!(app.post(&path, As::Bearer(&app.publishable_key), json!({"outcome": "succeeded"})).await.status, 403);
    assert_eq!(app.post(&path, As::Store, json!({"outcome": "succeeded"})).await.status, 401);
    assert_eq!(app.post(&path, As::Nobody, json!({"outcome": "succeeded"})).await.status, 401);
    let r = app.post(&path, As::Admin, json!({"outcome": "maybe"})).await;
    assert_eq!((r.status.as_u16(), r.error_param()), (400, "outcome"));
    let settled = app.post(&path, As::Admin, json!({"outcome": "succeeded"})).await.ok();
    assert_eq!(settled["object"], "checkout.session");
    assert_eq!(settled["payment_status"], "paid");
    let r = app.post(&path, As::Admin, json!({"outcome": "failed"})).await;
    assert_eq!(r.status, 409, "already settled: {}", r.text);
    let r = app
        .post("/test-processor/v1/checkout/sessions/cs_nothing/settle", As::Admin, json!({"outcome": "failed"}))
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn the_failure_switch_needs_the_secret_key_and_fails_payments() {
    let app = spawn_app().await;
    let session = checkout_session(&app, CaptureMethod::Automatic).await;
    let path = "/test-processor/v1/control";
    assert_eq!(app.post(path, As::Bearer(&app.publishable_key), json!({"available": false})).await.status, 403);
    assert_eq!(app.post(path, As::Store, json!({"available": false})).await.status, 401);
    assert_eq!(app.post(path, As::Nobody, json!({"available": false})).await.status, 401);
    assert_eq!(app.post(path, As::Admin, json!({})).await.error_param(), "available");

    let off = app.post(path, As::Admin, json!({"available": false})).await.ok();
    assert_eq!(off["available"], false);
    let r =
        app.post("/test-processor/v1/confirmation_tokens", As::Store, json!({"payment_method": "pm_card_visa"})).await;
    assert_eq!((r.status.as_u16(), r.error_code()), (502, "processor_unavailable"));
    let page = browse(
        &app,
        &format!("/test-processor/checkout/{}", session.id),
        Some(&[("number", "4242424242424242"), ("exp", "12/34"), ("cvc", "123")]),
    )
    .await;
    assert_eq!(page.status, 503);
    assert!(page.text.contains("unavailable"));
    assert!(app.state.processor.retrieve_checkout_session(&session.id).await.is_err());

    let on = app.post(path, As::Admin, json!({"available": true})).await.ok();
    assert_eq!(on["available"], true);
    let page = browse(
        &app,
        &format!("/test-processor/checkout/{}", session.id),
        Some(&[("number", "4242424242424242"), ("exp", "12/34"), ("cvc", "123")]),
    )
    .await;
    assert_eq!(page.status, 303);
}

#[tokio::test]
async fn an_overdue_session_expires_and_its_page_says_so() {
    let app = spawn_app().await;
    let session = checkout_session(&app, CaptureMethod::Automatic).await;
    let path = format!("/test-processor/checkout/{}", session.id);
    app.state.clock.advance(3601);
    let page = browse(&app, &path, None).await;
    assert!(page.text.contains("has expired"), "{}", page.text);
    let pay = browse(&app, &path, Some(&[("number", "4242424242424242"), ("exp", "12/34"), ("cvc", "123")])).await;
    assert_eq!(pay.status, 409);
    // The processor's job marks it expired and records the event.
    let tp = app.state.test_processor.clone().unwrap();
    for _ in 0..100 {
        if app.state.processor.retrieve_checkout_session(&session.id).await.unwrap().status
            == CheckoutSessionStatus::Expired
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        app.state.processor.retrieve_checkout_session(&session.id).await.unwrap().status,
        CheckoutSessionStatus::Expired
    );
    assert!(
        tp.events()
            .await
            .unwrap()
            .iter()
            .any(|e| e["type"] == "checkout.session.expired" && e["data"]["object"]["id"] == session.id.as_str())
    );
}

#[tokio::test]
async fn the_server_delivers_signed_events_to_the_configured_webhook_url() {
    // A stand-in for the webhook endpoint: records what arrives.
    let received: Arc<Mutex<Vec<(String, Bytes)>>> = Default::default();
    let sink = received.clone();
    let endpoint = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let sink = sink.clone();
            async move {
                let signature = headers.get("stripe-signature").and_then(|v| v.to_str().ok()).unwrap_or_default();
                sink.lock().unwrap().push((signature.to_string(), body));
                AxumStatus::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, endpoint).await.unwrap() });

    let app = spawn_app_with(|s| {
        s.processor.test.webhook_url = Some(url);
        s.processor.test.delivery_interval_ms = 20;
    })
    .await;
    let customer = app
        .state
        .processor
        .create_customer(&CreateCustomer::default(), &IdempotencyKey::new(rand_suffix()))
        .await
        .unwrap();
    for _ in 0..100 {
        if !received.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (signature, body) = received.lock().unwrap().first().cloned().expect("the event arrived");
    let event = app
        .state
        .processor
        .parse_event(&body, &signature, app.state.clock.now())
        .expect("signed with the shared secret");
    assert_eq!((event.kind.as_str(), event.object_id()), ("customer.created", Some(customer.id.as_str())));
}

#[tokio::test]
async fn the_test_processor_routes_are_documented() {
    let app = spawn_app().await;
    let doc = app.get("/openapi.json", As::Nobody).await.ok();
    let paths = &doc["paths"];
    for path in [
        "/test-processor/v1/confirmation_tokens",
        "/test-processor/v1/control",
        "/test-processor/v1/checkout/sessions/{id}/settle",
        "/test-processor/checkout/{id}",
        "/test-processor/authenticate/{id}",
    ] {
        assert!(paths.get(path).is_some(), "{path} is not documented");
    }
    let page = &paths["/test-processor/checkout/{id}"];
    assert!(page["get"]["responses"]["200"]["content"]["text/html"].is_object());
    assert!(page["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"].is_object());
    assert!(paths["/test-processor/authenticate/{id}"]["get"]["responses"]["200"]["content"]["text/html"].is_object());
}

/// The directives of a Content-Security-Policy, by name.
fn csp_directives(page: &Page) -> std::collections::HashMap<String, Vec<String>> {
    let csp = page.headers.get("content-security-policy").expect("a Content-Security-Policy").to_str().unwrap();
    csp.split(';')
        .filter_map(|d| {
            let mut words = d.split_whitespace().map(str::to_string);
            Some((words.next()?, words.collect()))
        })
        .collect()
}

#[track_caller]
fn assert_hosted_page_headers(page: &Page, form_targets: &[&str]) {
    let header = |name: &str| page.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let csp = csp_directives(page);
    let directive = |name: &str| csp.get(name).cloned().unwrap_or_else(|| panic!("no {name} in {csp:?}"));
    assert_eq!(directive("default-src"), ["'self'"]);
    assert_eq!(directive("script-src"), ["'self'"], "no inline script");
    assert_eq!(directive("style-src"), ["'self'"], "no inline style");
    assert_eq!(directive("frame-ancestors"), ["'none'"]);
    let mut form_action = directive("form-action");
    form_action.sort();
    let mut expected: Vec<String> = form_targets.iter().map(|t| t.to_string()).collect();
    expected.push("'self'".into());
    expected.sort();
    assert_eq!(form_action, expected);
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("referrer-policy"), "no-referrer");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("cache-control"), "no-store");
}

/// The `href`/`src` of a page's `<link>`/`<script>`.
fn linked(page: &str, attribute: &str, tag: &str) -> Vec<String> {
    page.split(&format!("<{tag} "))
        .skip(1)
        .filter_map(|rest| rest.split('>').next())
        .filter_map(|attrs| attrs.split(&format!("{attribute}=\"")).nth(1))
        .filter_map(|v| v.split('"').next())
        .map(|v| v.replace("&amp;", "&"))
        .collect()
}

#[tokio::test]
async fn hosted_pages_forbid_inline_code_framing_and_referrers() {
    let app = spawn_app().await;
    let session = checkout_session(&app, CaptureMethod::Automatic).await;
    let path = format!("/test-processor/checkout/{}", session.id);
    let page = browse(&app, &path, None).await;
    assert_eq!(page.status, 200);
    // Forms post to Kassa; paying redirects to the merchant (https://shop.test) or to the
    // 3-D Secure page at Kassa's public URL.
    assert_hosted_page_headers(&page, &["https://shop.test", &app.address]);
    // No inline style, no inline script, no event handler attributes: all would be blocked.
    assert!(!page.text.contains("<style"), "{}", page.text);
    assert_eq!(page.text.matches("<script").count(), linked(&page.text, "src", "script").len());
    assert!(!page.text.contains(" onclick=") && !page.text.contains(" onsubmit="));
    // The stylesheet and the script come from Kassa, versioned by their content.
    let sheets = linked(&page.text, "href", "link");
    let scripts = linked(&page.text, "src", "script");
    assert_eq!((sheets.len(), scripts.len()), (1, 1), "{}", page.text);
    for (href, content_type, sample) in
        [(&sheets[0], "text/css", "button:disabled"), (&scripts[0], "text/javascript", "addEventListener(\"submit\"")]
    {
        assert!(href.starts_with("/test-processor/assets/") && href.contains("?v="), "{href}");
        let asset = browse(&app, href, None).await;
        assert_eq!(asset.status, 200, "{href}");
        assert!(asset.content_type.starts_with(content_type), "{}", asset.content_type);
        assert_eq!(asset.headers["x-content-type-options"], "nosniff");
        assert!(asset.text.contains(sample), "{href}");
    }
    assert_eq!(browse(&app, "/test-processor/assets/other.js", None).await.status, 404);
    // A re-rendered page (a decline) and the redirect after paying carry them too.
    let declined =
        browse(&app, &path, Some(&[("number", "4000 0000 0000 0002"), ("exp", "12/34"), ("cvc", "123")])).await;
    assert_eq!(declined.status, 402);
    assert_hosted_page_headers(&declined, &["https://shop.test", &app.address]);
    let challenge =
        browse(&app, &path, Some(&[("number", "4000 0027 6000 3184"), ("exp", "12/34"), ("cvc", "123")])).await;
    assert_eq!(challenge.status, 303);
    assert_eq!(challenge.headers["referrer-policy"], "no-referrer");

    // The 3-D Secure page may send the browser back to the session's success URL.
    let auth = browse(&app, &path_of(challenge.location.as_deref().unwrap(), &app), None).await;
    assert_eq!(auth.status, 200);
    assert_hosted_page_headers(&auth, &["https://shop.test", &app.address]);

    // A PaymentIntent confirmed through the API returns to its own return_url.
    let tp = app.state.test_processor.clone().unwrap();
    let customer = tp.create_customer(&CreateCustomer::default(), &IdempotencyKey::new(rand_suffix())).await.unwrap();
    let req = CreatePaymentIntent {
        amount: 500,
        currency: "eur".into(),
        customer: customer.id,
        metadata: Default::default(),
        capture_method: CaptureMethod::Automatic,
        setup_future_usage: false,
        confirm: Some(PaymentSource::PaymentMethod("pm_card_authenticationRequired".into())),
        off_session: false,
        return_url: Some("https://merchant.example:8443/after-3ds?order=1".into()),
    };
    let pi = tp.create_payment_intent(&req, &IdempotencyKey::new(rand_suffix())).await.unwrap();
    let auth = browse(&app, &path_of(&pi.next_action.unwrap().redirect_url, &app), None).await;
    assert_hosted_page_headers(&auth, &["https://merchant.example:8443", &app.address]);
}

#[tokio::test]
async fn a_form_posted_twice_at_once_pays_once_and_both_go_where_the_first_went() {
    let app = spawn_app().await;
    let card = |number| [("method", "card"), ("number", number), ("exp", "12/34"), ("cvc", "123")];

    // Pay twice at once (a double click without the page's script).
    let session = checkout_session(&app, CaptureMethod::Automatic).await;
    let path = format!("/test-processor/checkout/{}", session.id);
    let visa = card("4242 4242 4242 4242");
    let (a, b) = tokio::join!(browse(&app, &path, Some(&visa)), browse(&app, &path, Some(&visa)));
    let thanks = format!("https://shop.test/thanks?session={}", session.id);
    for page in [&a, &b] {
        assert_eq!((page.status, page.location.as_deref()), (StatusCode::SEE_OTHER, Some(thanks.as_str())));
    }
    let done = app.state.processor.retrieve_checkout_session(&session.id).await.unwrap();
    assert_eq!(done.payment_status, CheckoutPaymentStatus::Paid);
    assert_eq!(succeeded_payments_of(&app, done.payment_intent.as_deref().unwrap()).await, 1);
    let events = app.state.test_processor.as_ref().unwrap().events().await.unwrap();
    let completed = events
        .iter()
        .filter(|e| e["type"] == "checkout.session.completed" && e["data"]["object"]["id"] == session.id.as_str())
        .count();
    assert_eq!(completed, 1);

    // With 3-D Secure: both posts lead to the one challenge; answering it twice at once pays once.
    let session = checkout_session(&app, CaptureMethod::Automatic).await;
    let path = format!("/test-processor/checkout/{}", session.id);
    let three_ds = card("4000 0027 6000 3184");
    let (a, b) = tokio::join!(browse(&app, &path, Some(&three_ds)), browse(&app, &path, Some(&three_ds)));
    assert_eq!((a.status, b.status), (StatusCode::SEE_OTHER, StatusCode::SEE_OTHER));
    assert_eq!(a.location, b.location, "one PaymentIntent, one challenge");
    let auth_path = path_of(a.location.as_deref().unwrap(), &app);
    let complete = [("outcome", "complete")];
    let (a, b) = tokio::join!(browse(&app, &auth_path, Some(&complete)), browse(&app, &auth_path, Some(&complete)));
    let thanks = format!("https://shop.test/thanks?session={}", session.id);
    for page in [&a, &b] {
        assert_eq!((page.status, page.location.as_deref()), (StatusCode::SEE_OTHER, Some(thanks.as_str())));
    }
    let pi = auth_path.rsplit('/').next().unwrap();
    assert_eq!(succeeded_payments_of(&app, pi).await, 1);
}
