//! The Stripe processor against localstripe, a local Stripe stand-in: each test runs its own
//! server (see `scripts/localstripe_server.py`). Needs `KASSA_TEST_PYTHON` (`.ci/python-env`).

mod support;

use axum::body::Bytes;
use axum::http::HeaderMap;
use kassa_processors::signature::SignatureError;
use kassa_processors::*;
use support::{LocalStripe, WEBHOOK_SECRET};
use tokio::sync::mpsc;

macro_rules! localstripe {
    () => {
        match support::python() {
            Some(python) => LocalStripe::start(&python),
            None => return,
        }
    };
}

fn key(name: &str) -> IdempotencyKey {
    IdempotencyKey::new(format!("kassa_test_{name}_{}", support::now()))
}

fn metadata(pairs: &[(&str, &str)]) -> Metadata {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

async fn customer(p: &dyn Processor) -> String {
    let req = CreateCustomer {
        email: Some("ada@example.com".into()),
        name: Some("Ada Lovelace".into()),
        metadata: metadata(&[("kassa_customer_id", "cus_01KASSA")]),
    };
    p.create_customer(&req, &key("customer")).await.unwrap().id
}

fn intent(customer: &str, amount: i64, source: Option<PaymentSource>) -> CreatePaymentIntent {
    CreatePaymentIntent {
        amount,
        currency: "eur".into(),
        customer: customer.into(),
        metadata: metadata(&[("kassa_cart_id", "cart_01TEST")]),
        capture_method: CaptureMethod::Automatic,
        setup_future_usage: false,
        confirm: source,
        off_session: false,
        return_url: None,
    }
}

fn card(pm: &str) -> Option<PaymentSource> {
    Some(PaymentSource::PaymentMethod(pm.into()))
}

#[tokio::test]
#[ignore = "needs localstripe: set KASSA_TEST_PYTHON (see README Testing)"]
async fn creates_a_customer_with_email_name_and_metadata() {
    let ls = localstripe!();
    let p = ls.processor();
    let req = CreateCustomer {
        email: Some("ada@example.com".into()),
        name: Some("Ada Lovelace".into()),
        metadata: metadata(&[("kassa_customer_id", "cus_01KASSA")]),
    };
    let created = p.create_customer(&req, &key("customer")).await.unwrap();
    assert!(created.id.starts_with("cus_"), "{created:?}");
    assert_eq!(created.email.as_deref(), Some("ada@example.com"));

    let stored = ls.get(&format!("/v1/customers/{}", created.id)).await;
    assert_eq!(stored["name"], "Ada Lovelace");
    assert_eq!(stored["metadata"]["kassa_customer_id"], "cus_01KASSA");
}

#[tokio::test]
#[ignore = "needs localstripe: set KASSA_TEST_PYTHON (see README Testing)"]
async fn a_payment_intent_with_the_customer_confirmed_in_one_call_succeeds() {
    let ls = localstripe!();
    let p = ls.processor();
    let cus = customer(&p).await;
    let pm = ls.card("4242424242424242").await;

    let pi = p.create_payment_intent(&intent(&cus, 2500, card(&pm)), &key("pay")).await.unwrap();
    assert!(pi.id.starts_with("pi_"));
    assert_eq!(pi.status, PaymentIntentStatus::Succeeded);
    assert_eq!((pi.amount, pi.amount_received, pi.amount_capturable, pi.amount_refunded), (2500, 2500, 0, 0));
    assert_eq!(pi.currency, "eur");
    assert_eq!(pi.customer.as_deref(), Some(cus.as_str()));
    assert_eq!(pi.payment_method.as_deref(), Some(pm.as_str()));
    assert_eq!(pi.capture_method, CaptureMethod::Automatic);
    assert_eq!(pi.metadata.get("kassa_cart_id").map(String::as_str), Some("cart_01TEST"));
    assert!(pi.latest_charge.as_deref().is_some_and(|c| c.starts_with("ch_")), "{pi:?}");
    assert!(pi.last_payment_error.is_none() && pi.next_action.is_none());

    // The charge at the processor belongs to the customer: no guest payment.
    let charge = ls.get(&format!("/v1/charges/{}", pi.latest_charge.as_deref().unwrap())).await;
    assert_eq!(charge["customer"], cus.as_str());
}

#[tokio::test]
#[ignore = "needs localstripe: set KASSA_TEST_PYTHON (see README Testing)"]
async fn the_test_payment_method_shortcut_works() {
    let ls = localstripe!();
    let p = ls.processor();
    let cus = customer(&p).await;
    let pi = p.create_payment_intent(&intent(&cus, 700, card("pm_card_visa")), &key("visa")).await.unwrap();
    assert_eq!(pi.status, PaymentIntentStatus::Succeeded);
    assert_eq!(pi.amount_received, 700);
}

#[tokio::test]
#[ignore = "needs localstripe: set KASSA_TEST_PYTHON (see README Testing)"]
async fn a_declined_card_is_a_payment_error_with_the_decline_code() {
    let ls = localstripe!();
    let p = ls.processor();
    let cus = customer(&p).await;
    let pm = ls.card("4000000000000341").await;

    let err = p.create_payment_intent(&intent(&cus, 1000, card(&pm)), &key("decline")).await.unwrap_err();
    match err {
        ProcessorError::Payment { error, payment_intent } => {
            assert_eq!(error.code, "card_declined");
            assert_eq!(error.message, "Your card was declined.");
            // localstripe's error object carries the charge, not the PaymentIntent; nothing is
            // made up in its place.
            assert!(payment_intent.is_none());
        }
        other => panic!("expected a payment error, got {other:?}"),
    }
}

#[tokio::test]
#[ignore = "needs localstripe: set KASSA_TEST_PYTHON (see README Testing)"]
async fn manual_capture_of_the_full_amount() {
    let ls = localstripe!();
    let p = ls.processor();
    let cus = customer(&p).await;
    let pm = ls.card("4242424242424242").await;
    let req = CreatePaymentIntent { capture_method: CaptureMethod::Manual, ..intent(&cus, 1800, card(&pm)) };

    let authorized = p.create_payment_intent(&req, &key("auth")).await.unwrap();
    assert_eq!(authorized.status, PaymentIntentStatus::RequiresCapture);
    assert_eq!(authorized.capture_method, CaptureMethod::Manual);
    assert_eq!((authorized.amount_capturable, authorized.amount_received), (1800, 0));

    let captured = p.capture_payment_intent(&authorized.id, None, &key("capture")).await.unwrap();
    assert_eq!(captured.status, PaymentIntentStatus::Succeeded);
    assert_eq!((captured.amount_received, captured.amount_capturable, captured.amount_refunded), (1800, 0, 0));
}

#[tokio::test]
#[ignore = "needs localstripe: set KASSA_TEST_PYTHON (see README Testing)"]
async fn manual_capture_of_part_of_the_amount() {
    let ls = localstripe!();
    let p = ls.processor();
    let cus = customer(&p).await;
    let pm = ls.card("4242424242424242").await;
    let req = CreatePaymentIntent { capture_method: CaptureMethod::Manual, ..intent(&cus, 1000, card(&pm)) };
    let authorized = p.create_payment_intent(&req, &key("auth")).await.unwrap();

    let captured = p.capture_payment_intent(&authorized.id, Some(600), &key("capture")).await.unwrap();
    assert_eq!(captured.status, PaymentIntentStatus::Succeeded);
    assert_eq!(captured.amount_received, 600);
    // The released 400 is not a refund of money received.
    assert_eq!(captured.amount_refunded, 0);

    let retrieved = p.retrieve_payment_intent(&authorized.id).await.unwrap();
    assert_eq!((retrieved.amount_received, retrieved.amount_refunded), (600, 0));

    let refund = CreateRefund { payment_intent: authorized.id.clone(), amount: Some(100), metadata: Metadata::new() };
    p.create_refund(&refund, &key("refund")).await.unwrap();
    let after_refund = p.retrieve_payment_intent(&authorized.id).await.unwrap();
    assert_eq!((after_refund.amount_received, after_refund.amount_refunded), (600, 100));
}

#[tokio::test]
#[ignore = "needs localstripe: set KASSA_TEST_PYTHON (see README Testing)"]
async fn cancels_an_authorization_and_an_unconfirmed_intent() {
    let ls = localstripe!();
    let p = ls.processor();
    let cus = customer(&p).await;
    let pm = ls.card("4242424242424242").await;
    let req = CreatePaymentIntent { capture_method: CaptureMethod::Manual, ..intent(&cus, 1000, card(&pm)) };
    let authorized = p.create_payment_intent(&req, &key("auth")).await.unwrap();

    let canceled = p.cancel_payment_intent(&authorized.id, &key("cancel")).await.unwrap();
    assert_eq!(canceled.status, PaymentIntentStatus::Canceled);
    assert_eq!(canceled.amount_received, 0);
    assert_eq!(p.retrieve_payment_intent(&authorized.id).await.unwrap().status, PaymentIntentStatus::Canceled);

    let open = p.create_payment_intent(&intent(&cus, 500, None), &key("open")).await.unwrap();
    assert_eq!(open.status, PaymentIntentStatus::RequiresPaymentMethod);
    let canceled = p.cancel_payment_intent(&open.id, &key("cancel_open")).await.unwrap();
    assert_eq!(canceled.status, PaymentIntentStatus::Canceled);

    // A canceled intent cannot be canceled again: a refusal, not an outage.
    let again = p.cancel_payment_intent(&open.id, &key("cancel_again")).await.unwrap_err();
    assert!(matches!(again, ProcessorError::InvalidRequest { .. }), "{again:?}");
}

#[tokio::test]
#[ignore = "needs localstripe: set KASSA_TEST_PYTHON (see README Testing)"]
async fn refunds_in_full() {
    let ls = localstripe!();
    let p = ls.processor();
    let cus = customer(&p).await;
    let pm = ls.card("4242424242424242").await;
    let pi = p.create_payment_intent(&intent(&cus, 1500, card(&pm)), &key("pay")).await.unwrap();

    let req = CreateRefund {
        payment_intent: pi.id.clone(),
        amount: None,
        metadata: metadata(&[("kassa_refund_id", "ref_01")]),
    };
    let refund = p.create_refund(&req, &key("refund")).await.unwrap();
    assert!(refund.id.starts_with("re_"));
    assert_eq!(refund.payment_intent.as_deref(), Some(pi.id.as_str()));
    assert_eq!((refund.amount, refund.currency.as_str(), refund.status), (1500, "eur", RefundStatus::Succeeded));
    assert_eq!(refund.metadata.get("kassa_refund_id").map(String::as_str), Some("ref_01"));

    let after = p.retrieve_payment_intent(&pi.id).await.unwrap();
    assert_eq!((after.amount_received, after.amount_refunded), (1500, 1500));
}

#[tokio::test]
#[ignore = "needs localstripe: set KASSA_TEST_PYTHON (see README Testing)"]
async fn refunds_in_parts() {
    let ls = localstripe!();
    let p = ls.processor();
    let cus = customer(&p).await;
    let pm = ls.card("4242424242424242").await;
    let pi = p.create_payment_intent(&intent(&cus, 1000, card(&pm)), &key("pay")).await.unwrap();

    for (i, amount) in [300, 200].into_iter().enumerate() {
        let req = CreateRefund { payment_intent: pi.id.clone(), amount: Some(amount), metadata: Metadata::new() };
        let refund = p.create_refund(&req, &key(&format!("refund{i}"))).await.unwrap();
        assert_eq!((refund.amount, refund.status), (amount, RefundStatus::Succeeded));
    }
    let after = p.retrieve_payment_intent(&pi.id).await.unwrap();
    assert_eq!(
        (after.status, after.amount_received, after.amount_refunded),
        (PaymentIntentStatus::Succeeded, 1000, 500)
    );
}

#[tokio::test]
#[ignore = "needs localstripe: set KASSA_TEST_PYTHON (see README Testing)"]
async fn retrieves_a_payment_intent_and_reports_an_unknown_one_as_not_found() {
    let ls = localstripe!();
    let p = ls.processor();
    let cus = customer(&p).await;
    let pm = ls.card("4242424242424242").await;
    let created = p.create_payment_intent(&intent(&cus, 1234, card(&pm)), &key("pay")).await.unwrap();

    let retrieved = p.retrieve_payment_intent(&created.id).await.unwrap();
    assert_eq!(retrieved, created);

    let missing = p.retrieve_payment_intent("pi_doesnotexist").await.unwrap_err();
    assert!(matches!(missing, ProcessorError::NotFound(_)), "{missing:?}");
}

#[tokio::test]
#[ignore = "needs localstripe: set KASSA_TEST_PYTHON (see README Testing)"]
async fn lists_the_customers_saved_cards() {
    let ls = localstripe!();
    let p = ls.processor();
    let cus = customer(&p).await;
    let other = customer(&p).await;
    let visa = ls.card("4242424242424242").await;
    let mastercard = ls.card("5555555555554444").await;
    let foreign = ls.card("4000056655665556").await;
    for (pm, owner) in [(&visa, &cus), (&mastercard, &cus), (&foreign, &other)] {
        ls.post(&format!("/v1/payment_methods/{pm}/attach"), &[("customer", owner)]).await;
    }

    let mut methods = p.list_payment_methods(&cus).await.unwrap();
    methods.sort_by(|a, b| a.card_last4.cmp(&b.card_last4));
    assert_eq!(methods.len(), 2, "{methods:?}");
    assert_eq!(methods[0].id, visa);
    assert_eq!(methods[0].card_last4.as_deref(), Some("4242"));
    assert_eq!(methods[0].card_brand.as_deref(), Some("visa"));
    assert_eq!((methods[0].exp_month, methods[0].exp_year), (Some(12), Some(2034)));
    assert_eq!(methods[1].id, mastercard);
    assert!(methods.iter().all(|m| m.customer.as_deref() == Some(cus.as_str())));

    assert!(p.list_payment_methods(&customer(&p).await).await.unwrap().is_empty());
}

#[tokio::test]
#[ignore = "needs localstripe: set KASSA_TEST_PYTHON (see README Testing)"]
async fn charges_a_saved_card_off_session() {
    let ls = localstripe!();
    let p = ls.processor();
    let cus = customer(&p).await;
    let pm = ls.card("4242424242424242").await;
    ls.post(&format!("/v1/payment_methods/{pm}/attach"), &[("customer", &cus)]).await;
    let saved = p.list_payment_methods(&cus).await.unwrap();
    assert_eq!(saved.len(), 1);

    let renewal = CreatePaymentIntent { off_session: true, ..intent(&cus, 1999, card(&saved[0].id)) };
    let pi = p.create_payment_intent(&renewal, &key("renewal")).await.unwrap();
    assert_eq!((pi.status, pi.amount_received), (PaymentIntentStatus::Succeeded, 1999));
    assert_eq!(pi.payment_method.as_deref(), Some(pm.as_str()));
    assert_eq!(pi.customer.as_deref(), Some(cus.as_str()));
}

#[tokio::test]
#[ignore = "needs localstripe: set KASSA_TEST_PYTHON (see README Testing)"]
async fn three_d_secure_requires_action_then_succeeds_after_authentication() {
    let ls = localstripe!();
    let p = ls.processor();
    let cus = customer(&p).await;
    let pm = ls.card("4000002760003184").await;

    let pi = p.create_payment_intent(&intent(&cus, 4200, card(&pm)), &key("3ds")).await.unwrap();
    assert_eq!(pi.status, PaymentIntentStatus::RequiresAction);
    assert_eq!(pi.amount_received, 0);
    // localstripe asks for Stripe.js (`use_stripe_sdk`), which has no URL to redirect to.
    assert!(pi.next_action.is_none());

    let client_secret =
        ls.get(&format!("/v1/payment_intents/{}", pi.id)).await["client_secret"].as_str().unwrap().to_owned();
    ls.post(
        &format!("/v1/payment_intents/{}/_authenticate", pi.id),
        &[("client_secret", &client_secret), ("success", "true")],
    )
    .await;

    let done = p.retrieve_payment_intent(&pi.id).await.unwrap();
    assert_eq!(done.status, PaymentIntentStatus::Succeeded);
    assert_eq!(done.amount_received, 4200);
}

#[tokio::test]
#[ignore = "needs localstripe: set KASSA_TEST_PYTHON (see README Testing)"]
async fn a_failed_authentication_leaves_the_intent_without_a_payment_method() {
    let ls = localstripe!();
    let p = ls.processor();
    let cus = customer(&p).await;
    let pm = ls.card("4000002760003184").await;
    let pi = p.create_payment_intent(&intent(&cus, 4200, card(&pm)), &key("3ds")).await.unwrap();
    let client_secret =
        ls.get(&format!("/v1/payment_intents/{}", pi.id)).await["client_secret"].as_str().unwrap().to_owned();
    ls.post(
        &format!("/v1/payment_intents/{}/_authenticate", pi.id),
        &[("client_secret", &client_secret), ("success", "false")],
    )
    .await;

    let failed = p.retrieve_payment_intent(&pi.id).await.unwrap();
    assert_eq!(failed.status, PaymentIntentStatus::RequiresPaymentMethod);
    assert_eq!(failed.amount_received, 0);
    assert_eq!(failed.last_payment_error.unwrap().code, "payment_intent_authentication_failure");
}

#[tokio::test]
#[ignore = "needs localstripe: set KASSA_TEST_PYTHON (see README Testing)"]
async fn checkout_sessions_are_unsupported_by_localstripe() {
    let ls = localstripe!();
    let p = ls.processor();
    let cus = customer(&p).await;
    let req = CreateCheckoutSession {
        customer: cus,
        currency: "eur".into(),
        lines: vec![CheckoutLine { name: "Tea".into(), unit_amount: 450, quantity: 2 }],
        success_url: "https://shop.example/ok".into(),
        cancel_url: None,
        metadata: Metadata::new(),
        capture_method: CaptureMethod::Automatic,
        expires_at: support::now() + 3600,
        save_card: None,
    };
    let err = p.create_checkout_session(&req, &key("session")).await.unwrap_err();
    assert!(matches!(err, ProcessorError::Unsupported(_)), "{err:?}");
    let err = p.retrieve_checkout_session("cs_test_1").await.unwrap_err();
    assert!(matches!(err, ProcessorError::Unsupported(_)), "{err:?}");
}

#[tokio::test]
#[ignore = "needs localstripe: set KASSA_TEST_PYTHON (see README Testing)"]
async fn a_parameter_the_server_refuses_is_an_invalid_request() {
    let ls = localstripe!();
    let p = ls.processor();
    let cus = customer(&p).await;
    // localstripe does not implement `setup_future_usage` and says so with a 400.
    let req = CreatePaymentIntent { setup_future_usage: true, ..intent(&cus, 1000, card("pm_card_visa")) };
    match p.create_payment_intent(&req, &key("sfu")).await.unwrap_err() {
        ProcessorError::InvalidRequest { message, .. } => assert!(message.contains("setup_future_usage"), "{message}"),
        other => panic!("{other:?}"),
    }
}

/// A tiny endpoint that hands every delivery to the test.
async fn webhook_listener() -> (String, mpsc::UnboundedReceiver<(HeaderMap, Bytes)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/webhooks/stripe",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((headers, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks/stripe", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, rx)
}

#[tokio::test]
#[ignore = "needs localstripe: set KASSA_TEST_PYTHON (see README Testing)"]
async fn localstripes_signed_payment_intent_succeeded_webhook_verifies() {
    let ls = localstripe!();
    let p = ls.processor();
    let (url, mut deliveries) = webhook_listener().await;
    ls.post("/_config/webhooks/kassa", &[("url", &url), ("secret", WEBHOOK_SECRET)]).await;

    let cus = customer(&p).await;
    let pm = ls.card("4242424242424242").await;
    let pi = p.create_payment_intent(&intent(&cus, 990, card(&pm)), &key("pay")).await.unwrap();

    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    let (headers, body, event) = loop {
        let (headers, body) = tokio::time::timeout_at(deadline, deliveries.recv())
            .await
            .expect("no payment_intent.succeeded delivery within 15 s")
            .unwrap();
        let signature = headers.get("stripe-signature").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        // Every delivery (customer.created too) is signed with the endpoint's secret.
        let event = p.parse_event(&body, &signature, support::now()).unwrap();
        if event.kind == "payment_intent.succeeded" {
            break (headers, body, event);
        }
    };
    assert!(event.id.starts_with("evt_"));
    assert_eq!(event.object_id(), Some(pi.id.as_str()));
    assert_eq!(event.metadata("kassa_cart_id"), Some("cart_01TEST"));
    assert!((support::now() - event.created).abs() < 60);

    let signature = headers["stripe-signature"].to_str().unwrap();
    let stranger = support::processor_with_secrets(&ls.base_url, &["whsec_someone_else"]);
    assert_eq!(
        stranger.parse_event(&body, signature, support::now()).unwrap_err(),
        EventError::Signature(SignatureError::NoMatch)
    );
    let mut tampered = body.to_vec();
    let at = tampered.iter().position(|b| b.is_ascii_digit()).unwrap();
    tampered[at] = if tampered[at] == b'9' { b'8' } else { b'9' };
    assert_eq!(
        p.parse_event(&tampered, signature, support::now()).unwrap_err(),
        EventError::Signature(SignatureError::NoMatch)
    );
}

#[tokio::test]
#[ignore = "needs localstripe: set KASSA_TEST_PYTHON (see README Testing)"]
async fn lists_payment_intents_a_page_at_a_time_with_metadata_and_refunds() {
    let ls = localstripe!();
    let p = ls.processor();
    let cus = customer(&p).await;
    let mut made = Vec::new();
    for amount in [1100, 1200, 1300] {
        let mut req = intent(&cus, amount, card("pm_card_visa"));
        req.metadata.insert("kassa_payment_id".into(), format!("pay_{amount}"));
        made.push(p.create_payment_intent(&req, &key(&format!("list_{amount}"))).await.unwrap());
    }
    let refund = CreateRefund { payment_intent: made[1].id.clone(), amount: None, metadata: Metadata::new() };
    p.create_refund(&refund, &key("list_refund")).await.unwrap();

    let mut listed = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..10 {
        let page = p.list_payment_intents(after.as_deref(), 2).await.unwrap();
        assert!(page.data.len() <= 2, "{page:?}");
        listed.extend(page.data.clone());
        if !page.has_more {
            break;
        }
        after = page.data.last().map(|pi| pi.id.clone());
    }
    // localstripe lists in creation order (Stripe newest first); every one appears once.
    let mut ids: Vec<&str> = listed.iter().map(|pi| pi.id.as_str()).collect();
    ids.sort();
    let mut expected: Vec<&str> = made.iter().map(|pi| pi.id.as_str()).collect();
    expected.sort();
    assert_eq!(ids, expected);
    for pi in &made {
        let seen = listed.iter().find(|l| l.id == pi.id).unwrap();
        assert_eq!(seen.metadata.get("kassa_payment_id"), pi.metadata.get("kassa_payment_id"));
        assert_eq!((seen.status, seen.amount_received), (PaymentIntentStatus::Succeeded, pi.amount));
        let refunded = if pi.id == made[1].id { pi.amount } else { 0 };
        assert_eq!(seen.amount_refunded, refunded, "{seen:?}");
        assert!(seen.created > 0);
    }
}
