//! The built-in test processor against a real store: a temp SQLite file, or with
//! `KASSA_TEST_DATABASE_URL=postgres://…` a fresh PostgreSQL schema per test.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use kassa_processors::signature::{self, SignatureError};
use kassa_processors::*;
use kassa_sandbox::{CardInput, CheckoutPayment, TestProcessor, TestProcessorConfig, TokenSource};
use kassa_store::Store;
use kassa_store::db::ConnectOptions;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

// ---------------------------------------------------------------- harness

/// A database of one test, dropped with it.
struct TestDb {
    url: String,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl TestDb {
    async fn fresh() -> TestDb {
        match std::env::var("KASSA_TEST_DATABASE_URL") {
            Ok(admin) if admin.starts_with("postgres") => {
                let schema = format!("tp_{}", kassa_domain::ids::new_id("t").to_ascii_lowercase().replace('_', ""));
                exec(&admin, &format!("CREATE SCHEMA {schema}")).await;
                let sep = if admin.contains('?') { '&' } else { '?' };
                TestDb {
                    url: format!("{admin}{sep}options[search_path]={schema}"),
                    _dir: None,
                    postgres: Some((admin, schema)),
                }
            }
            _ => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("kassa.db").display());
                TestDb { url, _dir: Some(dir), postgres: None }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, schema)) = self.postgres.take() {
            let _ = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(exec(&admin, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE")))
            })
            .join();
        }
    }
}

async fn connect(url: &str) -> Store {
    Store::connect(&ConnectOptions {
        url: url.into(),
        max_connections: 5,
        acquire_timeout: Duration::from_secs(10),
        sqlite_full_sync: false,
    })
    .await
    .expect("connect")
}

async fn exec(url: &str, sql: &str) {
    let store = connect(url).await;
    kassa_store::sql::query(sql).execute(store.writer()).await.expect("schema statement");
    store.close().await;
}

const PUBLIC_URL: &str = "http://kassa.test";

struct Env {
    tp: TestProcessor,
    store: Store,
    secret: String,
    offset: Arc<AtomicI64>,
    db: TestDb,
}

fn real_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

impl Env {
    async fn new() -> Env {
        let db = TestDb::fresh().await;
        let store = connect(&db.url).await;
        kassa_sandbox::migrations::migrate_all(&store).await.expect("migrations");
        let secret = TestProcessor::webhook_secret(&store).await.unwrap();
        let offset = Arc::new(AtomicI64::new(0));
        let tp = TestProcessor::new(store.clone(), Self::config(&secret, &offset));
        Env { tp, store, secret, offset, db }
    }

    fn config(secret: &str, offset: &Arc<AtomicI64>) -> TestProcessorConfig {
        let offset = offset.clone();
        let mut config =
            TestProcessorConfig::new(PUBLIC_URL, secret, Arc::new(move || real_now() + offset.load(Ordering::SeqCst)));
        config.retry_base_ms = 20;
        config
    }

    fn now(&self) -> i64 {
        real_now() + self.offset.load(Ordering::SeqCst)
    }

    fn advance(&self, secs: i64) {
        self.offset.fetch_add(secs, Ordering::SeqCst);
    }

    /// Another server on the same database: its own connections, the same clock and secret.
    async fn another_server(&self) -> TestProcessor {
        TestProcessor::new(connect(&self.db.url).await, Self::config(&self.secret, &self.offset))
    }

    async fn customer(&self) -> String {
        let req = CreateCustomer { email: Some("ada@example.com".into()), ..Default::default() };
        self.tp.create_customer(&req, &key()).await.unwrap().id
    }

    async fn token(&self, number: &str) -> PaymentSource {
        let card = CardInput { number: number.into(), exp_month: 12, exp_year: 2040, cvc: Some("123".into()) };
        let token = self.tp.create_confirmation_token(&TokenSource::Card(card)).await.unwrap();
        PaymentSource::ConfirmationToken(token["id"].as_str().unwrap().to_string())
    }

    async fn event_types(&self) -> Vec<String> {
        self.tp.events().await.unwrap().iter().map(|e| e["type"].as_str().unwrap().to_string()).collect()
    }

    async fn events_about(&self, object: &str) -> Vec<String> {
        let events = self.tp.events().await.unwrap();
        events
            .iter()
            .filter(|e| e["data"]["object"]["id"] == object)
            .map(|e| e["type"].as_str().unwrap().to_string())
            .collect()
    }

    async fn session(&self, customer: &str, capture: CaptureMethod) -> CheckoutSession {
        let req = CreateCheckoutSession {
            customer: customer.into(),
            currency: "usd".into(),
            lines: vec![
                CheckoutLine { name: "Tea".into(), unit_amount: 450, quantity: 2 },
                CheckoutLine { name: "Cake".into(), unit_amount: 300, quantity: 1 },
            ],
            success_url: "https://shop.test/thanks?session={CHECKOUT_SESSION_ID}".into(),
            cancel_url: Some("https://shop.test/cart".into()),
            metadata: BTreeMap::from([("kassa_cart".to_string(), "cart_1".to_string())]),
            capture_method: capture,
            expires_at: self.now() + 3600,
            save_card: None,
        };
        self.tp.create_checkout_session(&req, &key()).await.unwrap()
    }
}

fn key() -> IdempotencyKey {
    IdempotencyKey::new(kassa_domain::ids::new_id("key"))
}

fn pay(customer: &str, amount: i64, source: Option<PaymentSource>) -> CreatePaymentIntent {
    CreatePaymentIntent {
        amount,
        currency: "usd".into(),
        customer: customer.into(),
        metadata: BTreeMap::from([("kassa_payment".to_string(), "pay_1".to_string())]),
        capture_method: CaptureMethod::Automatic,
        setup_future_usage: false,
        confirm: source,
        off_session: false,
        return_url: Some("https://shop.test/return".into()),
    }
}

fn card(number: &str) -> CardInput {
    CardInput { number: number.into(), exp_month: 12, exp_year: 2040, cvc: Some("123".into()) }
}

#[track_caller]
fn declined(r: Result<PaymentIntent, ProcessorError>) -> (PaymentError, PaymentIntent) {
    match r {
        Err(ProcessorError::Payment { error, payment_intent: Some(pi) }) => (error, *pi),
        other => panic!("expected a decline, got {other:?}"),
    }
}

#[track_caller]
fn refused<T: std::fmt::Debug>(r: Result<T, ProcessorError>) -> (String, Option<String>) {
    match r {
        Err(ProcessorError::InvalidRequest { code, param, .. }) => (code.unwrap_or_default(), param),
        other => panic!("expected an invalid request, got {other:?}"),
    }
}

// ---------------------------------------------------------------- payments

#[tokio::test]
async fn a_good_card_pays_with_automatic_capture() {
    let env = Env::new().await;
    let cus = env.customer().await;
    let source = env.token("4242 4242 4242 4242").await;
    let pi = env.tp.create_payment_intent(&pay(&cus, 1000, Some(source.clone())), &key()).await.unwrap();
    assert!(pi.id.starts_with("pi_") && kassa_domain::ids::matches_prefix("pi", &pi.id), "{}", pi.id);
    assert_eq!(pi.status, PaymentIntentStatus::Succeeded);
    assert_eq!((pi.amount_received, pi.amount_capturable), (1000, 0));
    assert_eq!(pi.customer.as_deref(), Some(cus.as_str()));
    assert_eq!(pi.metadata["kassa_payment"], "pay_1");
    assert!(pi.payment_method.as_deref().unwrap().starts_with("pm_"));
    let charge = env.tp.object(pi.latest_charge.as_deref().unwrap()).await.unwrap();
    assert_eq!(charge["object"], "charge");
    assert_eq!((charge["amount"].as_i64(), charge["amount_captured"].as_i64()), (Some(1000), Some(1000)));
    assert_eq!(charge["payment_intent"], pi.id.as_str());
    assert_eq!(env.tp.retrieve_payment_intent(&pi.id).await.unwrap(), pi);
    assert_eq!(env.events_about(&pi.id).await, ["payment_intent.succeeded"]);
    assert_eq!(env.events_about(&cus).await, ["customer.created"]);

    // A ConfirmationToken is used once, as at Stripe.
    let (code, param) = refused(env.tp.create_payment_intent(&pay(&cus, 1000, Some(source)), &key()).await);
    assert_eq!((code.as_str(), param.as_deref()), ("confirmation_token_already_used", Some("confirmation_token")));

    // Shortcuts make a fresh card each time.
    let visa = PaymentSource::PaymentMethod("pm_card_visa".into());
    let mc = PaymentSource::PaymentMethod("tok_mastercard".into());
    for source in [visa.clone(), visa, mc] {
        let pi = env.tp.create_payment_intent(&pay(&cus, 500, Some(source)), &key()).await.unwrap();
        assert_eq!(pi.status, PaymentIntentStatus::Succeeded);
    }
    let mc = env.token("5555 5555 5555 4444").await;
    let pi = env.tp.create_payment_intent(&pay(&cus, 500, Some(mc)), &key()).await.unwrap();
    let pm = env.tp.object(pi.payment_method.as_deref().unwrap()).await.unwrap();
    assert_eq!((pm["card"]["brand"].as_str(), pm["card"]["last4"].as_str()), (Some("mastercard"), Some("4444")));
}

#[tokio::test]
async fn every_decline_card_declines_with_its_code() {
    let env = Env::new().await;
    let cus = env.customer().await;
    let cases = [
        ("4000 0000 0000 0002", "card_declined", "generic_decline"),
        ("4000 0000 0000 9995", "card_declined", "insufficient_funds"),
        ("4000 0000 0000 9987", "card_declined", "lost_card"),
        ("4000 0000 0000 0069", "expired_card", "expired_card"),
        ("4000 0000 0000 0127", "incorrect_cvc", "incorrect_cvc"),
        ("4000 0000 0000 0119", "processing_error", "processing_error"),
    ];
    for (number, code, decline_code) in cases {
        let source = env.token(number).await;
        let (error, pi) = declined(env.tp.create_payment_intent(&pay(&cus, 700, Some(source)), &key()).await);
        assert_eq!((error.code.as_str(), error.decline_code.as_deref()), (code, Some(decline_code)), "{number}");
        assert!(!error.message.is_empty());
        assert_eq!(pi.status, PaymentIntentStatus::RequiresPaymentMethod, "{number}");
        assert_eq!(pi.last_payment_error.as_ref(), Some(&error));
        assert_eq!(pi.amount_received, 0);
        // The decline is the processor's state, not just an answer.
        let stored = env.tp.retrieve_payment_intent(&pi.id).await.unwrap();
        assert_eq!(stored.status, PaymentIntentStatus::RequiresPaymentMethod);
        assert_eq!(stored.last_payment_error.as_ref().map(|e| e.code.as_str()), Some(code));
        assert_eq!(env.events_about(&pi.id).await, ["payment_intent.payment_failed"], "{number}");
        let charge = env.tp.object(pi.latest_charge.as_deref().unwrap()).await.unwrap();
        assert_eq!((charge["status"].as_str(), charge["failure_code"].as_str()), (Some("failed"), Some(code)));
    }
    let (error, _) = declined(
        env.tp
            .create_payment_intent(
                &pay(&cus, 700, Some(PaymentSource::PaymentMethod("pm_card_chargeDeclined".into()))),
                &key(),
            )
            .await,
    );
    assert_eq!(error.decline_code.as_deref(), Some("generic_decline"));

    // After a decline the customer tries another card on the same PaymentIntent.
    let (_, pi) = declined(
        env.tp.create_payment_intent(&pay(&cus, 700, Some(env.token("4000000000009995").await)), &key()).await,
    );
    let confirm = ConfirmPaymentIntent { source: env.token("4242424242424242").await, return_url: None };
    let pi = env.tp.confirm_payment_intent(&pi.id, &confirm, &key()).await.unwrap();
    assert_eq!(pi.status, PaymentIntentStatus::Succeeded);
    assert_eq!(pi.last_payment_error, None);
    assert_eq!(env.events_about(&pi.id).await, ["payment_intent.payment_failed", "payment_intent.succeeded"]);
    // A succeeded PaymentIntent is not confirmed again.
    let again = ConfirmPaymentIntent { source: env.token("4242424242424242").await, return_url: None };
    assert_eq!(
        refused(env.tp.confirm_payment_intent(&pi.id, &again, &key()).await).0,
        "payment_intent_unexpected_state"
    );
}

#[tokio::test]
async fn card_input_is_checked_like_stripe_js() {
    let env = Env::new().await;
    let make = |c: CardInput| async { env.tp.create_confirmation_token(&TokenSource::Card(c)).await };
    let token = make(card("4242424242424242")).await.unwrap();
    assert_eq!(token["object"], "confirmation_token");
    assert!(token["id"].as_str().unwrap().starts_with("ctoken_"));
    assert_eq!(token["payment_method_preview"]["card"]["last4"], "4242");
    assert_eq!(token["payment_method_preview"]["card"]["brand"], "visa");
    assert!(!token.to_string().contains("4242424242424242"), "the number is never stored or returned");

    let (code, param) = refused(make(card("4111 1111 1111 1111")).await);
    assert_eq!((code.as_str(), param.as_deref()), ("incorrect_number", Some("card.number")));
    let (code, _) = refused(make(card("4242 abcd")).await);
    assert_eq!(code, "invalid_number");
    let (code, param) = refused(make(CardInput { exp_year: 2020, ..card("4242424242424242") }).await);
    assert_eq!((code.as_str(), param.as_deref()), ("expired_card", Some("card.exp_year")));
    let (code, param) = refused(make(CardInput { exp_month: 0, ..card("4242424242424242") }).await);
    assert_eq!((code.as_str(), param.as_deref()), ("invalid_expiry_month", Some("card.exp_month")));
    let (code, param) = refused(make(CardInput { cvc: Some("1".into()), ..card("4242424242424242") }).await);
    assert_eq!((code.as_str(), param.as_deref()), ("invalid_cvc", Some("card.cvc")));

    let shortcut = env.tp.create_confirmation_token(&TokenSource::PaymentMethod("pm_card_visa".into())).await.unwrap();
    assert_eq!(shortcut["payment_method_preview"]["card"]["last4"], "4242");
    let (code, param) = refused(env.tp.create_confirmation_token(&TokenSource::PaymentMethod("pm_nope".into())).await);
    assert_eq!((code.as_str(), param.as_deref()), ("resource_missing", Some("payment_method")));

    // An expired token is refused when used.
    let cus = env.customer().await;
    let source = env.token("4242424242424242").await;
    env.advance(13 * 3600);
    let (code, _) = refused(env.tp.create_payment_intent(&pay(&cus, 100, Some(source)), &key()).await);
    assert_eq!(code, "confirmation_token_expired");
}

#[tokio::test]
async fn a_payment_needs_an_existing_customer_and_sane_parameters() {
    let env = Env::new().await;
    let source = Some(PaymentSource::PaymentMethod("pm_card_visa".into()));
    let (code, param) = refused(env.tp.create_payment_intent(&pay("", 100, source.clone()), &key()).await);
    assert_eq!((code.as_str(), param.as_deref()), ("parameter_missing", Some("customer")));
    let (code, param) = refused(env.tp.create_payment_intent(&pay("cus_nobody", 100, source.clone()), &key()).await);
    assert_eq!((code.as_str(), param.as_deref()), ("resource_missing", Some("customer")));
    let cus = env.customer().await;
    assert_eq!(
        refused(env.tp.create_payment_intent(&pay(&cus, 0, source.clone()), &key()).await).1.as_deref(),
        Some("amount")
    );
    let mut bad_currency = pay(&cus, 100, source);
    bad_currency.currency = "xyz".into();
    assert_eq!(refused(env.tp.create_payment_intent(&bad_currency, &key()).await).1.as_deref(), Some("currency"));
    assert_eq!(env.event_types().await, ["customer.created"], "refused requests record nothing");
    assert!(matches!(env.tp.retrieve_payment_intent("pi_missing").await, Err(ProcessorError::NotFound(_))));
}

#[tokio::test]
async fn three_d_secure_can_be_approved_or_failed() {
    let env = Env::new().await;
    let cus = env.customer().await;
    let pi = env
        .tp
        .create_payment_intent(&pay(&cus, 2500, Some(env.token("4000 0027 6000 3184").await)), &key())
        .await
        .unwrap();
    assert_eq!(pi.status, PaymentIntentStatus::RequiresAction);
    let url = pi.next_action.as_ref().unwrap().redirect_url.clone();
    assert_eq!(url, format!("{PUBLIC_URL}/test-processor/authenticate/{}", pi.id));
    let stripe_json = env.tp.object(&pi.id).await.unwrap();
    assert_eq!(stripe_json["next_action"]["type"], "redirect_to_url");
    assert_eq!(stripe_json["next_action"]["redirect_to_url"]["return_url"], "https://shop.test/return");

    let done = env.tp.complete_authentication(&pi.id, true).await.unwrap();
    assert_eq!(done.payment_intent.status, PaymentIntentStatus::Succeeded);
    assert_eq!(done.payment_intent.amount_received, 2500);
    assert_eq!(
        done.redirect_url.as_deref(),
        Some(format!("https://shop.test/return?payment_intent={}&redirect_status=succeeded", pi.id).as_str())
    );
    assert_eq!(env.events_about(&pi.id).await, ["payment_intent.requires_action", "payment_intent.succeeded"]);
    assert_eq!(refused(env.tp.complete_authentication(&pi.id, true).await).0, "payment_intent_unexpected_state");

    let pi = env
        .tp
        .create_payment_intent(&pay(&cus, 2500, Some(env.token("4000002760003184").await)), &key())
        .await
        .unwrap();
    let failed = env.tp.complete_authentication(&pi.id, false).await.unwrap();
    assert_eq!(failed.payment_intent.status, PaymentIntentStatus::RequiresPaymentMethod);
    let error = failed.payment_intent.last_payment_error.unwrap();
    assert_eq!(error.code, "payment_intent_authentication_failure");
    assert!(failed.redirect_url.unwrap().ends_with("redirect_status=failed"));
    assert_eq!(env.events_about(&pi.id).await, ["payment_intent.requires_action", "payment_intent.payment_failed"]);

    // Manual capture: approval authorizes.
    let mut req = pay(&cus, 900, Some(env.token("4000002500003155").await));
    req.capture_method = CaptureMethod::Manual;
    let pi = env.tp.create_payment_intent(&req, &key()).await.unwrap();
    assert_eq!(pi.status, PaymentIntentStatus::RequiresAction);
    let done = env.tp.complete_authentication(&pi.id, true).await.unwrap();
    assert_eq!(
        (done.payment_intent.status, done.payment_intent.amount_capturable),
        (PaymentIntentStatus::RequiresCapture, 900)
    );
}

#[tokio::test]
async fn saved_cards_pay_off_session_unless_authentication_is_required() {
    let env = Env::new().await;
    let cus = env.customer().await;
    assert_eq!(env.tp.list_payment_methods(&cus).await.unwrap(), vec![]);

    // 3155 asks for 3-D Secure on-session, and saved that way pays off-session.
    let mut req = pay(&cus, 1200, Some(env.token("4000 0025 0000 3155").await));
    req.setup_future_usage = true;
    let pi = env.tp.create_payment_intent(&req, &key()).await.unwrap();
    assert_eq!(pi.status, PaymentIntentStatus::RequiresAction);
    assert_eq!(env.tp.list_payment_methods(&cus).await.unwrap(), vec![], "saved only once the payment succeeds");
    env.tp.complete_authentication(&pi.id, true).await.unwrap();
    let saved = env.tp.list_payment_methods(&cus).await.unwrap();
    assert_eq!(saved.len(), 1);
    assert_eq!((saved[0].card_last4.as_deref(), saved[0].customer.as_deref()), (Some("3155"), Some(cus.as_str())));
    assert_eq!((saved[0].exp_month, saved[0].exp_year), (Some(12), Some(2040)));
    let mut renewal = pay(&cus, 1200, Some(PaymentSource::PaymentMethod(saved[0].id.clone())));
    renewal.off_session = true;
    let pi = env.tp.create_payment_intent(&renewal, &key()).await.unwrap();
    assert_eq!(pi.status, PaymentIntentStatus::Succeeded);

    // 4242 saved on a plain success.
    let mut req = pay(&cus, 500, Some(env.token("4242424242424242").await));
    req.setup_future_usage = true;
    env.tp.create_payment_intent(&req, &key()).await.unwrap();
    let visa = env
        .tp
        .list_payment_methods(&cus)
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.card_last4.as_deref() == Some("4242"))
        .unwrap();
    let mut renewal = pay(&cus, 500, Some(PaymentSource::PaymentMethod(visa.id.clone())));
    renewal.off_session = true;
    assert_eq!(env.tp.create_payment_intent(&renewal, &key()).await.unwrap().status, PaymentIntentStatus::Succeeded);

    // 3184 always wants the customer: off-session it declines with authentication_required.
    let mut req = pay(&cus, 800, Some(env.token("4000002760003184").await));
    req.setup_future_usage = true;
    let pi = env.tp.create_payment_intent(&req, &key()).await.unwrap();
    env.tp.complete_authentication(&pi.id, true).await.unwrap();
    let always = env
        .tp
        .list_payment_methods(&cus)
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.card_last4.as_deref() == Some("3184"))
        .unwrap();
    let mut renewal = pay(&cus, 800, Some(PaymentSource::PaymentMethod(always.id.clone())));
    renewal.off_session = true;
    let (error, pi) = declined(env.tp.create_payment_intent(&renewal, &key()).await);
    assert_eq!(
        (error.code.as_str(), error.decline_code.as_deref()),
        ("authentication_required", Some("authentication_required"))
    );
    assert_eq!(pi.status, PaymentIntentStatus::RequiresPaymentMethod);
    // A card that needs authentication and was never set up declines off-session too.
    let mut off = pay(&cus, 800, Some(PaymentSource::PaymentMethod("pm_card_authenticationRequired".into())));
    off.off_session = true;
    assert_eq!(declined(env.tp.create_payment_intent(&off, &key()).await).0.code, "authentication_required");

    // Saved cards belong to their customer; cards used without saving are not reused.
    let other = env.customer().await;
    let theirs = pay(&other, 100, Some(PaymentSource::PaymentMethod(visa.id.clone())));
    assert_eq!(refused(env.tp.create_payment_intent(&theirs, &key()).await).1.as_deref(), Some("payment_method"));
    let unsaved =
        env.tp.create_payment_intent(&pay(&cus, 100, Some(env.token("4242424242424242").await)), &key()).await.unwrap();
    let reuse = pay(&cus, 100, Some(PaymentSource::PaymentMethod(unsaved.payment_method.unwrap())));
    assert_eq!(refused(env.tp.create_payment_intent(&reuse, &key()).await).0, "payment_method_unexpected_state");
    assert_eq!(env.tp.list_payment_methods(&other).await.unwrap(), vec![]);
    assert!(matches!(env.tp.list_payment_methods("cus_nobody").await, Err(ProcessorError::NotFound(_))));
}

#[tokio::test]
async fn manual_capture_full_and_partial() {
    let env = Env::new().await;
    let cus = env.customer().await;
    let authorize = |amount| {
        let mut req = pay(&cus, amount, Some(PaymentSource::PaymentMethod("pm_card_visa".into())));
        req.capture_method = CaptureMethod::Manual;
        req
    };
    let pi = env.tp.create_payment_intent(&authorize(1000), &key()).await.unwrap();
    assert_eq!((pi.status, pi.amount_capturable, pi.amount_received), (PaymentIntentStatus::RequiresCapture, 1000, 0));
    assert_eq!(env.events_about(&pi.id).await, ["payment_intent.amount_capturable_updated"]);
    let full = env.tp.capture_payment_intent(&pi.id, None, &key()).await.unwrap();
    assert_eq!((full.status, full.amount_received, full.amount_capturable), (PaymentIntentStatus::Succeeded, 1000, 0));
    assert_eq!(
        env.events_about(&pi.id).await,
        ["payment_intent.amount_capturable_updated", "payment_intent.succeeded"]
    );
    assert_eq!(refused(env.tp.capture_payment_intent(&pi.id, None, &key()).await).0, "payment_intent_unexpected_state");

    let pi = env.tp.create_payment_intent(&authorize(1000), &key()).await.unwrap();
    assert_eq!(refused(env.tp.capture_payment_intent(&pi.id, Some(1001), &key()).await).0, "amount_too_large");
    assert_eq!(
        refused(env.tp.capture_payment_intent(&pi.id, Some(0), &key()).await).1.as_deref(),
        Some("amount_to_capture")
    );
    let partial = env.tp.capture_payment_intent(&pi.id, Some(600), &key()).await.unwrap();
    assert_eq!(
        (partial.status, partial.amount_received, partial.amount_capturable),
        (PaymentIntentStatus::Succeeded, 600, 0)
    );
    let charge = env.tp.object(partial.latest_charge.as_deref().unwrap()).await.unwrap();
    assert_eq!((charge["amount"].as_i64(), charge["amount_captured"].as_i64()), (Some(1000), Some(600)));
    // The released 400 cannot be refunded.
    let too_much = CreateRefund { payment_intent: pi.id.clone(), amount: Some(601), metadata: Default::default() };
    assert_eq!(refused(env.tp.create_refund(&too_much, &key()).await).0, "amount_too_large");
    let rest = CreateRefund { payment_intent: pi.id.clone(), amount: None, metadata: Default::default() };
    assert_eq!(env.tp.create_refund(&rest, &key()).await.unwrap().amount, 600);
}

#[tokio::test]
async fn cancel_from_each_open_status_but_not_after_success() {
    let env = Env::new().await;
    let cus = env.customer().await;
    let unconfirmed = env.tp.create_payment_intent(&pay(&cus, 100, None), &key()).await.unwrap();
    assert_eq!(unconfirmed.status, PaymentIntentStatus::RequiresPaymentMethod);
    let needs_action =
        env.tp.create_payment_intent(&pay(&cus, 100, Some(env.token("4000002760003184").await)), &key()).await.unwrap();
    let mut manual = pay(&cus, 100, Some(env.token("4242424242424242").await));
    manual.capture_method = CaptureMethod::Manual;
    let authorized = env.tp.create_payment_intent(&manual, &key()).await.unwrap();
    let (_, after_decline) = declined(
        env.tp.create_payment_intent(&pay(&cus, 100, Some(env.token("4000000000000002").await)), &key()).await,
    );
    for pi in [unconfirmed, needs_action, authorized, after_decline] {
        let canceled = env.tp.cancel_payment_intent(&pi.id, &key()).await.unwrap();
        assert_eq!(
            (canceled.status, canceled.amount_capturable),
            (PaymentIntentStatus::Canceled, 0),
            "{:?}",
            pi.status
        );
        assert_eq!(env.events_about(&pi.id).await.last().map(String::as_str), Some("payment_intent.canceled"));
        assert_eq!(refused(env.tp.cancel_payment_intent(&pi.id, &key()).await).0, "payment_intent_unexpected_state");
    }
    let paid = env
        .tp
        .create_payment_intent(&pay(&cus, 100, Some(PaymentSource::PaymentMethod("pm_card_visa".into()))), &key())
        .await
        .unwrap();
    assert_eq!(refused(env.tp.cancel_payment_intent(&paid.id, &key()).await).0, "payment_intent_unexpected_state");
    assert_eq!(env.tp.retrieve_payment_intent(&paid.id).await.unwrap().status, PaymentIntentStatus::Succeeded);
}

#[tokio::test]
async fn refunds_never_exceed_what_was_captured() {
    let env = Env::new().await;
    let cus = env.customer().await;
    let pi = env
        .tp
        .create_payment_intent(&pay(&cus, 1000, Some(PaymentSource::PaymentMethod("pm_card_visa".into()))), &key())
        .await
        .unwrap();
    let refund = |amount: Option<i64>| CreateRefund {
        payment_intent: pi.id.clone(),
        amount,
        metadata: BTreeMap::from([("kassa_refund".to_string(), "r1".to_string())]),
    };
    let first = env.tp.create_refund(&refund(Some(300)), &key()).await.unwrap();
    assert!(first.id.starts_with("re_"));
    assert_eq!(
        (first.amount, first.status, first.payment_intent.as_deref()),
        (300, RefundStatus::Succeeded, Some(pi.id.as_str()))
    );
    assert_eq!(first.metadata["kassa_refund"], "r1");
    assert_eq!(env.tp.retrieve_payment_intent(&pi.id).await.unwrap().amount_refunded, 300);
    let (code, param) = refused(env.tp.create_refund(&refund(Some(701)), &key()).await);
    assert_eq!((code.as_str(), param.as_deref()), ("amount_too_large", Some("amount")));
    assert_eq!(env.tp.create_refund(&refund(Some(200)), &key()).await.unwrap().amount, 200);
    assert_eq!(env.tp.create_refund(&refund(None), &key()).await.unwrap().amount, 500, "None refunds the rest");
    assert_eq!(refused(env.tp.create_refund(&refund(None), &key()).await).0, "charge_already_refunded");
    assert_eq!(env.tp.retrieve_payment_intent(&pi.id).await.unwrap().amount_refunded, 1000);

    let charge_id = pi.latest_charge.clone().unwrap();
    let charge = env.tp.object(&charge_id).await.unwrap();
    assert_eq!((charge["amount_refunded"].as_i64(), charge["refunded"].as_bool()), (Some(1000), Some(true)));
    assert_eq!(charge["refunds"]["data"].as_array().unwrap().len(), 3);
    let events = env.tp.events().await.unwrap();
    let refunded: Vec<&Value> = events.iter().filter(|e| e["type"] == "charge.refunded").collect();
    assert_eq!(refunded.len(), 3);
    assert!(
        refunded.iter().all(|e| e["data"]["object"]["id"] == charge_id.as_str()
            && e["data"]["object"]["payment_intent"] == pi.id.as_str())
    );
    assert_eq!(refunded[2]["data"]["object"]["amount_refunded"], 1000);

    // Nothing captured, nothing to refund.
    let mut manual = pay(&cus, 100, Some(PaymentSource::PaymentMethod("pm_card_visa".into())));
    manual.capture_method = CaptureMethod::Manual;
    let authorized = env.tp.create_payment_intent(&manual, &key()).await.unwrap();
    let req = CreateRefund { payment_intent: authorized.id, amount: None, metadata: Default::default() };
    assert_eq!(refused(env.tp.create_refund(&req, &key()).await).0, "payment_intent_unexpected_state");
}

#[tokio::test]
async fn refunds_racing_on_one_charge_never_exceed_it() {
    let env = Env::new().await;
    let cus = env.customer().await;
    let pi = env
        .tp
        .create_payment_intent(&pay(&cus, 1000, Some(PaymentSource::PaymentMethod("pm_card_visa".into()))), &key())
        .await
        .unwrap();
    let servers = [env.another_server().await, env.another_server().await, env.another_server().await];
    let attempts = servers.iter().cycle().take(12).map(|tp| {
        let req = CreateRefund { payment_intent: pi.id.clone(), amount: Some(300), metadata: Default::default() };
        async move { tp.create_refund(&req, &key()).await }
    });
    let results = futures::future::join_all(attempts).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 3, "three refunds of 300 fit in 1000: {results:?}");
    assert!(results.iter().all(|r| r.is_ok() || matches!(r, Err(ProcessorError::InvalidRequest { .. }))));
    assert_eq!(env.tp.retrieve_payment_intent(&pi.id).await.unwrap().amount_refunded, 900);
}

// ---------------------------------------------------------------- idempotency, restarts, outages

#[tokio::test]
async fn idempotency_keys_replay_results_and_refuse_other_parameters() {
    let env = Env::new().await;
    let cus = env.customer().await;
    let k = key();
    let req = pay(&cus, 1000, Some(PaymentSource::PaymentMethod("pm_card_visa".into())));
    let first = env.tp.create_payment_intent(&req, &k).await.unwrap();
    let events = env.event_types().await.len();
    let again = env.tp.create_payment_intent(&req, &k).await.unwrap();
    assert_eq!(again, first, "the stored result, not a second payment");
    assert_eq!(env.event_types().await.len(), events, "nothing happened twice");

    let other = pay(&cus, 1001, Some(PaymentSource::PaymentMethod("pm_card_visa".into())));
    let (code, _) = refused(env.tp.create_payment_intent(&other, &k).await);
    assert_eq!(code, "idempotency_error");
    // Keys are not per operation: another call with the key is refused too.
    assert_eq!(refused(env.tp.cancel_payment_intent(&first.id, &k).await).0, "idempotency_error");

    // A decline is replayed as the same decline.
    let k = key();
    let req = pay(&cus, 1000, Some(PaymentSource::PaymentMethod("pm_card_chargeDeclinedInsufficientFunds".into())));
    let first = env.tp.create_payment_intent(&req, &k).await.unwrap_err();
    let again = env.tp.create_payment_intent(&req, &k).await.unwrap_err();
    assert_eq!(first, again);
    assert!(
        matches!(&again, ProcessorError::Payment { error, .. } if error.decline_code.as_deref() == Some("insufficient_funds"))
    );

    // Replays survive a restart: the keys live in the database.
    let restarted = env.another_server().await;
    assert_eq!(restarted.create_payment_intent(&req, &k).await.unwrap_err(), first);

    // Refunds and captures too.
    let paid = env
        .tp
        .create_payment_intent(&pay(&cus, 900, Some(PaymentSource::PaymentMethod("pm_card_visa".into()))), &key())
        .await
        .unwrap();
    let k = key();
    let refund = CreateRefund { payment_intent: paid.id.clone(), amount: Some(400), metadata: Default::default() };
    let r1 = env.tp.create_refund(&refund, &k).await.unwrap();
    let r2 = env.tp.create_refund(&refund, &k).await.unwrap();
    assert_eq!(r1, r2);
    assert_eq!(env.tp.retrieve_payment_intent(&paid.id).await.unwrap().amount_refunded, 400);
    // A refused request keeps nothing: the key works once the request is fixed.
    let k = key();
    let bad = CreateRefund { payment_intent: paid.id.clone(), amount: Some(10_000), metadata: Default::default() };
    assert_eq!(refused(env.tp.create_refund(&bad, &k).await).0, "amount_too_large");
}

#[tokio::test]
async fn concurrent_calls_with_one_key_make_one_payment() {
    let env = Env::new().await;
    let cus = env.customer().await;
    let servers = [env.another_server().await, env.another_server().await, env.another_server().await];
    let k = key();
    let source = env.token("4242424242424242").await;
    let req = pay(&cus, 1000, Some(source));
    let results =
        futures::future::join_all(servers.iter().cycle().take(9).map(|tp| tp.create_payment_intent(&req, &k))).await;
    let first = results[0].as_ref().unwrap();
    for r in &results {
        assert_eq!(r.as_ref().unwrap(), first);
    }
    assert_eq!(env.events_about(&first.id).await, ["payment_intent.succeeded"]);
    assert_eq!(env.event_types().await.iter().filter(|t| *t == "payment_intent.succeeded").count(), 1);
}

#[tokio::test]
async fn state_survives_a_new_processor_on_the_same_store() {
    let env = Env::new().await;
    let cus = env.customer().await;
    let mut req = pay(&cus, 1000, Some(env.token("4242424242424242").await));
    req.capture_method = CaptureMethod::Manual;
    req.setup_future_usage = true;
    let pi = env.tp.create_payment_intent(&req, &key()).await.unwrap();
    let session = env.session(&cus, CaptureMethod::Automatic).await;

    let restarted = env.another_server().await;
    assert_eq!(restarted.retrieve_payment_intent(&pi.id).await.unwrap(), pi);
    assert_eq!(restarted.list_payment_methods(&cus).await.unwrap().len(), 1);
    assert_eq!(restarted.retrieve_checkout_session(&session.id).await.unwrap(), session);
    let captured = restarted.capture_payment_intent(&pi.id, None, &key()).await.unwrap();
    assert_eq!(captured.status, PaymentIntentStatus::Succeeded);
    assert_eq!(env.tp.retrieve_payment_intent(&pi.id).await.unwrap(), captured);
    // The webhook secret is shared by every server on the database.
    assert_eq!(TestProcessor::webhook_secret(&env.store).await.unwrap(), env.secret);
    assert!(env.secret.starts_with("whsec_") && env.secret.len() > 30);
}

#[tokio::test]
async fn the_failure_switch_fails_every_call_without_side_effects() {
    let env = Env::new().await;
    let cus = env.customer().await;
    let paid = env
        .tp
        .create_payment_intent(&pay(&cus, 1000, Some(PaymentSource::PaymentMethod("pm_card_visa".into()))), &key())
        .await
        .unwrap();
    let session = env.session(&cus, CaptureMethod::Automatic).await;
    let source = env.token("4242424242424242").await;
    let events = env.event_types().await;
    let k = key();

    env.tp.set_available(false);
    assert!(!env.tp.is_available());
    let down = |r: Result<(), ProcessorError>| assert!(matches!(r, Err(ProcessorError::Unavailable(_))), "{r:?}");
    let tp = &env.tp;
    down(tp.create_customer(&CreateCustomer::default(), &key()).await.map(drop));
    down(tp.create_payment_intent(&pay(&cus, 100, Some(source.clone())), &k).await.map(drop));
    let confirm = ConfirmPaymentIntent { source: source.clone(), return_url: None };
    down(tp.confirm_payment_intent(&paid.id, &confirm, &key()).await.map(drop));
    down(tp.retrieve_payment_intent(&paid.id).await.map(drop));
    down(tp.capture_payment_intent(&paid.id, None, &key()).await.map(drop));
    down(tp.cancel_payment_intent(&paid.id, &key()).await.map(drop));
    let refund = CreateRefund { payment_intent: paid.id.clone(), amount: None, metadata: Default::default() };
    down(tp.create_refund(&refund, &key()).await.map(drop));
    down(tp.list_payment_methods(&cus).await.map(drop));
    down(tp.retrieve_checkout_session(&session.id).await.map(drop));
    down(tp.expire_checkout_session(&session.id, &key()).await.map(drop));
    down(tp.pay_checkout_session(&session.id, &card("4242424242424242")).await.map(drop));
    down(tp.create_confirmation_token(&TokenSource::PaymentMethod("pm_card_visa".into())).await.map(drop));
    assert_eq!(env.event_types().await, events, "nothing happened");

    env.tp.set_available(true);
    // The key was not used up by the failed call, and the token is still fresh.
    let pi = env.tp.create_payment_intent(&pay(&cus, 100, Some(source)), &k).await.unwrap();
    assert_eq!(pi.status, PaymentIntentStatus::Succeeded);
    assert_eq!(env.tp.retrieve_payment_intent(&paid.id).await.unwrap().amount_refunded, 0);
    assert_eq!(env.tp.retrieve_checkout_session(&session.id).await.unwrap().status, CheckoutSessionStatus::Open);
}

#[tokio::test]
async fn ignoring_idempotency_keys_makes_a_repeated_call_charge_again_like_localstripe() {
    let env = Env::new().await;
    let cus = env.customer().await;
    let req = pay(&cus, 700, Some(PaymentSource::PaymentMethod("pm_card_visa".into())));
    let k = key();
    let first = env.tp.create_payment_intent(&req, &k).await.unwrap();
    assert_eq!(env.tp.create_payment_intent(&req, &k).await.unwrap(), first, "the key is honoured by default");

    env.tp.set_ignore_idempotency_keys(true);
    assert!(env.tp.ignores_idempotency_keys());
    let second = env.tp.create_payment_intent(&req, &k).await.unwrap();
    let third = env.tp.create_payment_intent(&req, &k).await.unwrap();
    assert!(first.id != second.id && second.id != third.id, "every repeat is a new charge");
    for pi in [&second, &third] {
        assert_eq!((pi.status, pi.amount_received), (PaymentIntentStatus::Succeeded, 700));
    }
    // Refunds too: the same key refunds again (up to what is left).
    let refund = CreateRefund { payment_intent: second.id.clone(), amount: Some(300), metadata: Default::default() };
    let rk = key();
    env.tp.create_refund(&refund, &rk).await.unwrap();
    env.tp.create_refund(&refund, &rk).await.unwrap();
    assert_eq!(env.tp.retrieve_payment_intent(&second.id).await.unwrap().amount_refunded, 600);

    env.tp.set_ignore_idempotency_keys(false);
    assert_eq!(env.tp.create_payment_intent(&req, &k).await.unwrap(), first, "the first result is still kept");
}

#[tokio::test]
async fn a_stalled_call_runs_on_resume_even_if_its_caller_stopped_waiting() {
    let env = Env::new().await;
    let cus = env.customer().await;
    let req = pay(&cus, 900, Some(PaymentSource::PaymentMethod("pm_card_visa".into())));
    env.tp.set_stalled(true);
    assert!(env.tp.is_stalled());
    // The caller gives up, as Kassa does at its deadline.
    let gave_up = tokio::time::timeout(Duration::from_millis(300), env.tp.create_payment_intent(&req, &key())).await;
    assert!(gave_up.is_err(), "a stalled call does not answer");
    let waiting = env.tp.retrieve_payment_intent("pi_none");
    assert!(tokio::time::timeout(Duration::from_millis(100), waiting).await.is_err(), "reads stall too");
    assert_eq!(env.event_types().await.iter().filter(|t| *t == "payment_intent.succeeded").count(), 0);

    env.tp.set_stalled(false);
    let mut made = Vec::new();
    for _ in 0..100 {
        made = env.tp.list_payment_intents(None, 10).await.unwrap().data;
        if !made.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(made.len(), 1, "the abandoned call took effect once resumed");
    assert_eq!((made[0].status, made[0].amount), (PaymentIntentStatus::Succeeded, 900));
    assert_eq!(env.events_about(&made[0].id).await, ["payment_intent.succeeded"]);
}

#[tokio::test]
async fn payment_intents_are_listed_newest_first_across_pages_with_their_refunds() {
    let env = Env::new().await;
    let cus = env.customer().await;
    let mut made = Vec::new();
    for amount in [100, 200, 300, 400, 500] {
        let mut req = pay(&cus, amount, Some(PaymentSource::PaymentMethod("pm_card_visa".into())));
        req.metadata.insert("kassa_payment_id".into(), format!("pay_{amount}"));
        made.push(env.tp.create_payment_intent(&req, &key()).await.unwrap());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let refund = CreateRefund { payment_intent: made[1].id.clone(), amount: Some(150), metadata: Default::default() };
    env.tp.create_refund(&refund, &key()).await.unwrap();

    let mut listed = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = env.tp.list_payment_intents(after.as_deref(), 2).await.unwrap();
        assert!(page.data.len() <= 2);
        listed.extend(page.data.clone());
        if !page.has_more {
            break;
        }
        after = page.data.last().map(|pi| pi.id.clone());
    }
    let ids: Vec<&str> = listed.iter().map(|pi| pi.id.as_str()).collect();
    let newest_first: Vec<&str> = made.iter().rev().map(|pi| pi.id.as_str()).collect();
    assert_eq!(ids, newest_first);
    let refunded = listed.iter().find(|pi| pi.id == made[1].id).unwrap();
    assert_eq!((refunded.amount_refunded, refunded.amount_received), (150, 200));
    assert_eq!(refunded.metadata.get("kassa_payment_id").map(String::as_str), Some("pay_200"));
    assert_eq!(listed[0], env.tp.retrieve_payment_intent(&made[4].id).await.unwrap());
}

// ---------------------------------------------------------------- checkout sessions

#[tokio::test]
async fn a_session_that_saves_the_card_needs_consent_and_saves_it_for_off_session_use() {
    let env = Env::new().await;
    let cus = env.customer().await;
    let req = CreateCheckoutSession {
        customer: cus.clone(),
        currency: "usd".into(),
        lines: vec![CheckoutLine { name: "Pro (every month)".into(), unit_amount: 1500, quantity: 1 }],
        success_url: "https://shop.test/welcome".into(),
        cancel_url: None,
        metadata: BTreeMap::new(),
        capture_method: CaptureMethod::Automatic,
        expires_at: env.now() + 3600,
        save_card: Some(SaveCard { consent_text: "Saved and charged $15.00 every month.".into() }),
    };
    // A card saved for later is captured at once, and says what the buyer agrees to.
    let manual = CreateCheckoutSession { capture_method: CaptureMethod::Manual, ..req.clone() };
    assert_eq!(refused(env.tp.create_checkout_session(&manual, &key()).await).0, "parameter_invalid");
    let blank = CreateCheckoutSession { save_card: Some(SaveCard { consent_text: " ".into() }), ..req.clone() };
    assert_eq!(refused(env.tp.create_checkout_session(&blank, &key()).await).0, "parameter_invalid");

    let session = env.tp.create_checkout_session(&req, &key()).await.unwrap();
    let page = env.tp.checkout_session(&session.id).await.unwrap();
    assert_eq!(page.payment_intent_data.setup_future_usage.as_deref(), Some("off_session"));
    assert_eq!(page.custom_text.unwrap().submit.unwrap().message, "Saved and charged $15.00 every month.");

    // Without consent: refused, nothing attempted (no PaymentIntent, no charge).
    let (code, param) = refused(env.tp.pay_checkout_session(&session.id, &card("4242424242424242")).await);
    assert_eq!((code.as_str(), param.as_deref()), ("consent_required", Some("consent")));
    assert_eq!(env.tp.checkout_session(&session.id).await.unwrap().payment_intent, None);
    assert_eq!(refused(env.tp.pay_checkout_session_by_bank_debit(&session.id).await).0, "payment_method_unavailable");

    // On the page, the card asks for 3-D Secure; once passed, the session completes.
    let paid = env.tp.pay_checkout_session_consenting(&session.id, &card("4000 0025 0000 3155"), true).await.unwrap();
    assert!(matches!(paid, CheckoutPayment::RequiresAction { .. }), "{paid:?}");
    let waiting = env.tp.checkout_session(&session.id).await.unwrap().payment_intent.unwrap();
    env.tp.complete_authentication(&waiting, true).await.unwrap();
    let done = env.tp.retrieve_checkout_session(&session.id).await.unwrap();
    assert_eq!(done.payment_status, CheckoutPaymentStatus::Paid);
    let pi = env.tp.retrieve_payment_intent(done.payment_intent.as_deref().unwrap()).await.unwrap();
    let pm = pi.payment_method.clone().unwrap();
    let saved = env.tp.list_payment_methods(&cus).await.unwrap();
    assert_eq!(saved.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), [pm.as_str()]);
    // Set up through a payment with consent: a card that asks for authentication unless set
    // up for off-session use is charged off-session without the customer.
    let later = CreatePaymentIntent {
        confirm: Some(PaymentSource::PaymentMethod(pm)),
        off_session: true,
        ..pay(&cus, 1500, None)
    };
    let renewal = env.tp.create_payment_intent(&later, &key()).await.unwrap();
    assert_eq!(renewal.status, PaymentIntentStatus::Succeeded);
}

#[tokio::test]
async fn a_checkout_session_is_paid_by_card_on_its_page() {
    let env = Env::new().await;
    let cus = env.customer().await;
    let session = env.session(&cus, CaptureMethod::Automatic).await;
    assert!(session.id.starts_with("cs_"));
    assert_eq!((session.status, session.payment_status), (CheckoutSessionStatus::Open, CheckoutPaymentStatus::Unpaid));
    assert_eq!(session.amount_total, 1200);
    assert_eq!(session.url.as_deref(), Some(format!("{PUBLIC_URL}/test-processor/checkout/{}", session.id).as_str()));
    assert_eq!(session.metadata["kassa_cart"], "cart_1");
    assert_eq!(session.payment_intent, None);
    let page = env.tp.checkout_session(&session.id).await.unwrap();
    assert_eq!(page.line_items.data.len(), 2);
    assert_eq!(page.line_items.data[0].amount_total, 900);

    // A decline leaves the session open, with the reason for the page.
    let declined = env.tp.pay_checkout_session(&session.id, &card("4000 0000 0000 9995")).await;
    assert!(
        matches!(&declined, Err(ProcessorError::Payment { error, .. }) if error.decline_code.as_deref() == Some("insufficient_funds"))
    );
    let open = env.tp.checkout_session(&session.id).await.unwrap();
    assert_eq!(open.status, CheckoutSessionStatus::Open);
    assert_eq!(env.tp.checkout_last_error(&open).await.unwrap().as_deref(), Some("Your card has insufficient funds."));
    // A bad card number is refused before anything happens.
    assert_eq!(
        refused(env.tp.pay_checkout_session(&session.id, &card("1234 5678 9012 3456")).await).0,
        "incorrect_number"
    );

    let paid = env.tp.pay_checkout_session(&session.id, &card("4242 4242 4242 4242")).await.unwrap();
    assert_eq!(
        paid,
        CheckoutPayment::Completed { redirect_url: format!("https://shop.test/thanks?session={}", session.id) }
    );
    let done = env.tp.retrieve_checkout_session(&session.id).await.unwrap();
    assert_eq!(
        (done.status, done.payment_status, done.url),
        (CheckoutSessionStatus::Complete, CheckoutPaymentStatus::Paid, None)
    );
    let pi = env.tp.retrieve_payment_intent(done.payment_intent.as_deref().unwrap()).await.unwrap();
    assert_eq!((pi.status, pi.amount_received), (PaymentIntentStatus::Succeeded, 1200));
    assert_eq!(pi.customer.as_deref(), Some(cus.as_str()));
    assert_eq!(pi.metadata["kassa_cart"], "cart_1", "session metadata is copied to its PaymentIntent");
    assert_eq!(env.events_about(&pi.id).await, ["payment_intent.payment_failed", "payment_intent.succeeded"]);
    assert_eq!(env.events_about(&session.id).await, ["checkout.session.completed"]);
    let completed =
        env.tp.events().await.unwrap().into_iter().find(|e| e["type"] == "checkout.session.completed").unwrap();
    assert_eq!(completed["data"]["object"]["payment_status"], "paid");
    assert_eq!(completed["data"]["object"]["payment_intent"], pi.id.as_str());

    let again = env.tp.pay_checkout_session(&session.id, &card("4242424242424242")).await;
    assert_eq!(refused(again).0, "checkout_session_unexpected_state");
    assert_eq!(
        refused(env.tp.expire_checkout_session(&session.id, &key()).await).0,
        "checkout_session_unexpected_state"
    );

    // Manual capture: the session completes with an authorization.
    let session = env.session(&cus, CaptureMethod::Manual).await;
    env.tp.pay_checkout_session(&session.id, &card("4242424242424242")).await.unwrap();
    let done = env.tp.retrieve_checkout_session(&session.id).await.unwrap();
    let pi = env.tp.retrieve_payment_intent(done.payment_intent.as_deref().unwrap()).await.unwrap();
    assert_eq!((pi.status, pi.amount_capturable), (PaymentIntentStatus::RequiresCapture, 1200));
}

#[tokio::test]
async fn a_checkout_session_goes_through_three_d_secure() {
    let env = Env::new().await;
    let cus = env.customer().await;
    let session = env.session(&cus, CaptureMethod::Automatic).await;
    let CheckoutPayment::RequiresAction { redirect_url } =
        env.tp.pay_checkout_session(&session.id, &card("4000 0027 6000 3184")).await.unwrap()
    else {
        panic!("expected 3-D Secure");
    };
    let pi_id = redirect_url.rsplit('/').next().unwrap().to_string();
    assert_eq!(redirect_url, format!("{PUBLIC_URL}/test-processor/authenticate/{pi_id}"));
    assert_eq!(env.tp.retrieve_checkout_session(&session.id).await.unwrap().status, CheckoutSessionStatus::Open);

    // Failing sends the customer back to the checkout page, which shows why.
    let failed = env.tp.complete_authentication(&pi_id, false).await.unwrap();
    assert_eq!(failed.redirect_url, session.url.clone());
    let open = env.tp.checkout_session(&session.id).await.unwrap();
    assert_eq!(open.status, CheckoutSessionStatus::Open);
    assert!(env.tp.checkout_last_error(&open).await.unwrap().unwrap().contains("unable to authenticate"));

    // Trying again on the same session reuses its PaymentIntent.
    let CheckoutPayment::RequiresAction { redirect_url } =
        env.tp.pay_checkout_session(&session.id, &card("4000002760003184")).await.unwrap()
    else {
        panic!("expected 3-D Secure");
    };
    assert!(redirect_url.ends_with(&pi_id));
    let approved = env.tp.complete_authentication(&pi_id, true).await.unwrap();
    assert_eq!(approved.redirect_url, Some(format!("https://shop.test/thanks?session={}", session.id)));
    let done = env.tp.retrieve_checkout_session(&session.id).await.unwrap();
    assert_eq!((done.status, done.payment_status), (CheckoutSessionStatus::Complete, CheckoutPaymentStatus::Paid));
    assert_eq!(done.payment_intent.as_deref(), Some(pi_id.as_str()));
    assert_eq!(
        env.events_about(&pi_id).await,
        [
            "payment_intent.requires_action",
            "payment_intent.payment_failed",
            "payment_intent.requires_action",
            "payment_intent.succeeded"
        ]
    );
    assert_eq!(env.events_about(&session.id).await, ["checkout.session.completed"]);
}

#[tokio::test]
async fn a_bank_debit_completes_unpaid_and_settles_later() {
    let env = Env::new().await;
    let cus = env.customer().await;
    let good = env.session(&cus, CaptureMethod::Automatic).await;
    let paid = env.tp.pay_checkout_session_by_bank_debit(&good.id).await.unwrap();
    assert_eq!(
        paid,
        CheckoutPayment::Completed { redirect_url: format!("https://shop.test/thanks?session={}", good.id) }
    );
    let submitted = env.tp.retrieve_checkout_session(&good.id).await.unwrap();
    assert_eq!(
        (submitted.status, submitted.payment_status),
        (CheckoutSessionStatus::Complete, CheckoutPaymentStatus::Unpaid)
    );
    let pi_id = submitted.payment_intent.clone().unwrap();
    assert_eq!(env.tp.retrieve_payment_intent(&pi_id).await.unwrap().status, PaymentIntentStatus::Processing);
    assert_eq!(env.events_about(&good.id).await, ["checkout.session.completed"]);

    let settled = env.tp.settle_async(&good.id, true).await.unwrap();
    assert_eq!(settled.payment_status, CheckoutPaymentStatus::Paid);
    let pi = env.tp.retrieve_payment_intent(&pi_id).await.unwrap();
    assert_eq!((pi.status, pi.amount_received), (PaymentIntentStatus::Succeeded, 1200));
    assert_eq!(
        env.events_about(&good.id).await,
        ["checkout.session.completed", "checkout.session.async_payment_succeeded"]
    );
    assert_eq!(env.events_about(&pi_id).await, ["payment_intent.processing", "payment_intent.succeeded"]);
    assert_eq!(refused(env.tp.settle_async(&good.id, true).await).0, "checkout_session_unexpected_state");

    let bad = env.session(&cus, CaptureMethod::Automatic).await;
    env.tp.pay_checkout_session_by_bank_debit(&bad.id).await.unwrap();
    let failed = env.tp.settle_async(&bad.id, false).await.unwrap();
    assert_eq!(
        (failed.status, failed.payment_status),
        (CheckoutSessionStatus::Complete, CheckoutPaymentStatus::Unpaid)
    );
    let pi = env.tp.retrieve_payment_intent(failed.payment_intent.as_deref().unwrap()).await.unwrap();
    assert_eq!(pi.status, PaymentIntentStatus::RequiresPaymentMethod);
    assert!(pi.last_payment_error.is_some());
    assert_eq!(
        env.events_about(&bad.id).await,
        ["checkout.session.completed", "checkout.session.async_payment_failed"]
    );

    let open = env.session(&cus, CaptureMethod::Automatic).await;
    assert_eq!(refused(env.tp.settle_async(&open.id, true).await).0, "checkout_session_unexpected_state");
    let manual = env.session(&cus, CaptureMethod::Manual).await;
    assert!(env.tp.pay_checkout_session_by_bank_debit(&manual.id).await.is_err());
}

#[tokio::test]
async fn checkout_sessions_expire_by_request_and_by_time() {
    let env = Env::new().await;
    let cus = env.customer().await;
    let session = env.session(&cus, CaptureMethod::Automatic).await;
    // An attempt leaves a PaymentIntent, which expiry cancels.
    assert!(env.tp.pay_checkout_session(&session.id, &card("4000000000000002")).await.is_err());
    let expired = env.tp.expire_checkout_session(&session.id, &key()).await.unwrap();
    assert_eq!((expired.status, expired.url), (CheckoutSessionStatus::Expired, None));
    let pi = env.tp.retrieve_payment_intent(expired.payment_intent.as_deref().unwrap()).await.unwrap();
    assert_eq!(pi.status, PaymentIntentStatus::Canceled);
    assert_eq!(env.events_about(&session.id).await, ["checkout.session.expired"]);
    assert_eq!(
        refused(env.tp.pay_checkout_session(&session.id, &card("4242424242424242")).await).0,
        "checkout_session_unexpected_state"
    );
    assert_eq!(
        refused(env.tp.pay_checkout_session_by_bank_debit(&session.id).await).0,
        "checkout_session_unexpected_state"
    );

    // Left alone, a session expires at its expires_at.
    let overdue = env.session(&cus, CaptureMethod::Automatic).await;
    let later = env.session(&cus, CaptureMethod::Automatic).await;
    let paid = env.session(&cus, CaptureMethod::Automatic).await;
    env.tp.pay_checkout_session(&paid.id, &card("4242424242424242")).await.unwrap();
    assert_eq!(env.tp.expire_overdue_sessions().await.unwrap(), 0);
    env.advance(3601);
    // Past its time it cannot be paid, even before the sweep.
    assert_eq!(
        refused(env.tp.pay_checkout_session(&overdue.id, &card("4242424242424242")).await).0,
        "checkout_session_unexpected_state"
    );
    let req = CreateCheckoutSession {
        customer: cus.clone(),
        currency: "usd".into(),
        lines: vec![CheckoutLine { name: "Tea".into(), unit_amount: 450, quantity: 1 }],
        success_url: "https://shop.test/thanks".into(),
        cancel_url: None,
        metadata: Default::default(),
        capture_method: CaptureMethod::Automatic,
        expires_at: env.now() + 7200,
        save_card: None,
    };
    let fresh = env.tp.create_checkout_session(&req, &key()).await.unwrap();
    assert_eq!(env.tp.expire_overdue_sessions().await.unwrap(), 2);
    assert_eq!(env.tp.expire_overdue_sessions().await.unwrap(), 0);
    for s in [&overdue, &later] {
        assert_eq!(env.tp.retrieve_checkout_session(&s.id).await.unwrap().status, CheckoutSessionStatus::Expired);
        assert_eq!(env.events_about(&s.id).await, ["checkout.session.expired"]);
    }
    assert_eq!(env.tp.retrieve_checkout_session(&paid.id).await.unwrap().status, CheckoutSessionStatus::Complete);
    assert_eq!(env.tp.retrieve_checkout_session(&fresh.id).await.unwrap().status, CheckoutSessionStatus::Open);
}

#[tokio::test]
async fn checkout_session_parameters_are_checked() {
    let env = Env::new().await;
    let cus = env.customer().await;
    let good = CreateCheckoutSession {
        customer: cus.clone(),
        currency: "jpy".into(),
        lines: vec![CheckoutLine { name: "Tea".into(), unit_amount: 450, quantity: 3 }],
        success_url: "https://shop.test/thanks".into(),
        cancel_url: None,
        metadata: Default::default(),
        capture_method: CaptureMethod::Automatic,
        expires_at: env.now() + 24 * 3600,
        save_card: None,
    };
    assert_eq!(env.tp.create_checkout_session(&good, &key()).await.unwrap().amount_total, 1350);
    let cases: Vec<(CreateCheckoutSession, &str)> = vec![
        (CreateCheckoutSession { customer: "".into(), ..good.clone() }, "customer"),
        (CreateCheckoutSession { customer: "cus_nobody".into(), ..good.clone() }, "customer"),
        (CreateCheckoutSession { currency: "zzz".into(), ..good.clone() }, "currency"),
        (CreateCheckoutSession { lines: vec![], ..good.clone() }, "line_items"),
        (
            CreateCheckoutSession {
                lines: vec![CheckoutLine { name: "x".into(), unit_amount: 1, quantity: 0 }],
                ..good.clone()
            },
            "line_items[0]",
        ),
        (
            CreateCheckoutSession {
                lines: vec![CheckoutLine { name: "x".into(), unit_amount: i64::MAX, quantity: 2 }],
                ..good.clone()
            },
            "line_items[0]",
        ),
        (CreateCheckoutSession { success_url: "/thanks".into(), ..good.clone() }, "success_url"),
        (CreateCheckoutSession { cancel_url: Some("nope".into()), ..good.clone() }, "cancel_url"),
        (CreateCheckoutSession { expires_at: env.now() + 60, ..good.clone() }, "expires_at"),
        (CreateCheckoutSession { expires_at: env.now() + 25 * 3600, ..good.clone() }, "expires_at"),
    ];
    for (req, param) in cases {
        assert_eq!(refused(env.tp.create_checkout_session(&req, &key()).await).1.as_deref(), Some(param));
    }
    assert!(matches!(env.tp.retrieve_checkout_session("cs_missing").await, Err(ProcessorError::NotFound(_))));
}

// ---------------------------------------------------------------- events

#[tokio::test]
async fn events_are_shaped_like_stripes_and_verified_by_parse_event() {
    let env = Env::new().await;
    let cus = env.customer().await;
    env.tp
        .create_payment_intent(&pay(&cus, 1000, Some(PaymentSource::PaymentMethod("pm_card_visa".into()))), &key())
        .await
        .unwrap();
    let events = env.tp.events().await.unwrap();
    assert_eq!(events.len(), 2);
    let event = &events[1];
    assert!(event["id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(event["object"], "event");
    assert_eq!(event["type"], "payment_intent.succeeded");
    assert_eq!(event["livemode"], false);
    assert_eq!(event["pending_webhooks"], 1);
    assert!(event["api_version"].as_str().is_some());
    assert!(event["created"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(event["data"]["object"]["object"], "payment_intent");
    assert_eq!(event["data"]["object"]["status"], "succeeded");
    assert_eq!(event["data"]["object"]["customer"], cus.as_str());

    let body = event.to_string();
    let now = env.now();
    let header = signature::sign(&env.secret, now, body.as_bytes());
    let parsed = env.tp.parse_event(body.as_bytes(), &header, now).unwrap();
    assert_eq!(parsed.id, event["id"].as_str().unwrap());
    assert_eq!(parsed.kind, "payment_intent.succeeded");
    assert_eq!(parsed.object["id"], event["data"]["object"]["id"]);
    assert_eq!(parsed.metadata("kassa_payment"), Some("pay_1"));

    let wrong = signature::sign("whsec_other", now, body.as_bytes());
    assert_eq!(env.tp.parse_event(body.as_bytes(), &wrong, now), Err(EventError::Signature(SignatureError::NoMatch)));
    assert_eq!(
        env.tp.parse_event(body.as_bytes(), &header, now + 301),
        Err(EventError::Signature(SignatureError::Expired(300)))
    );
    assert_eq!(env.tp.parse_event(body.as_bytes(), "", now), Err(EventError::Signature(SignatureError::MissingHeader)));
    let junk = b"{\"id\": 1}";
    let junk_header = signature::sign(&env.secret, now, junk);
    assert!(matches!(env.tp.parse_event(junk, &junk_header, now), Err(EventError::Malformed(_))));
}

// ---------------------------------------------------------------- delivery

#[derive(Clone, Default)]
struct Receiver {
    /// Every request, in arrival order: (event id, signature valid).
    received: Arc<Mutex<Vec<(String, bool)>>>,
    /// Answer 500 to this many requests first.
    fail_first: Arc<AtomicUsize>,
    secret: String,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = headers.get("stripe-signature").and_then(|v| v.to_str().ok());
    let valid = signature::verify(&r.secret, &body, header, real_now(), 300).is_ok()
        && headers.get("content-type").and_then(|v| v.to_str().ok()) == Some("application/json");
    let id = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["id"].as_str().map(str::to_string))
        .unwrap_or_default();
    r.received.lock().unwrap().push((id, valid));
    tokio::time::sleep(Duration::from_millis(2)).await;
    if r.fail_first.load(Ordering::SeqCst) > 0 {
        r.fail_first.fetch_sub(1, Ordering::SeqCst);
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    StatusCode::OK
}

/// A webhook endpoint on a free port; returns its URL.
async fn receiver(secret: &str, fail_first: usize) -> (Receiver, String) {
    let r =
        Receiver { secret: secret.into(), fail_first: Arc::new(AtomicUsize::new(fail_first)), ..Default::default() };
    let app = Router::new().route("/webhooks/stripe", post(receive)).with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks/stripe", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (r, url)
}

impl Receiver {
    fn ids(&self) -> Vec<String> {
        self.received.lock().unwrap().iter().map(|(id, _)| id.clone()).collect()
    }
    fn counts(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for id in self.ids() {
            *counts.entry(id).or_insert(0) += 1;
        }
        counts
    }
    fn all_signed(&self) -> bool {
        self.received.lock().unwrap().iter().all(|(_, ok)| *ok)
    }
}

async fn event_ids(env: &Env) -> Vec<String> {
    env.tp.events().await.unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect()
}

/// Delivers with `tp` until every event was acknowledged (or the time is up).
async fn deliver_all(env: &Env, tp: &TestProcessor, url: &str, chaos: bool) {
    let http = reqwest::Client::new();
    for _ in 0..500 {
        tp.deliver_due(&http, url, chaos).await.unwrap();
        let rows = kassa_sandbox::db::list_events(env.store.reader()).await.unwrap();
        if rows.iter().all(|r| r.delivered_at.is_some()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("events were not all delivered");
}

#[tokio::test]
async fn an_unacknowledged_event_is_retried_with_backoff_until_acknowledged() {
    let env = Env::new().await;
    env.customer().await;
    let (r, url) = receiver(&env.secret, 2).await;
    let http = reqwest::Client::new();
    let first = env.tp.deliver_due(&http, &url, false).await.unwrap();
    assert_eq!((first.claimed, first.delivered, first.failed), (1, 0, 1));
    // Not due again at once: the retry waits (20 ms, then 40 ms).
    assert_eq!(env.tp.deliver_due(&http, &url, false).await.unwrap().claimed, 0);
    deliver_all(&env, &env.tp, &url, false).await;
    let id = event_ids(&env).await.remove(0);
    assert_eq!(r.ids(), [id.clone(), id.clone(), id.clone()], "500, 500, then 200");
    assert!(r.all_signed(), "every attempt carries a valid Stripe-Signature");
    let rows = kassa_sandbox::db::list_events(env.store.reader()).await.unwrap();
    assert_eq!(rows[0].attempts, 3);
    // Acknowledged: never sent again.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..3 {
        assert_eq!(env.tp.deliver_due(&http, &url, false).await.unwrap(), Default::default());
    }
    assert_eq!(r.ids().len(), 3);
}

#[tokio::test]
async fn an_unreachable_endpoint_keeps_events_for_later() {
    let env = Env::new().await;
    env.customer().await;
    let http = reqwest::Client::new();
    let stats = env.tp.deliver_due(&http, "http://127.0.0.1:9/nothing-listens-here", false).await.unwrap();
    assert_eq!((stats.claimed, stats.failed), (1, 1));
    let (r, url) = receiver(&env.secret, 0).await;
    deliver_all(&env, &env.tp, &url, false).await;
    assert_eq!(r.ids(), event_ids(&env).await);
}

#[tokio::test]
async fn an_event_held_by_a_server_that_died_is_delivered_after_its_lease() {
    let env = Env::new().await;
    env.customer().await;
    let now_ms = env.now() * 1000;
    let held = kassa_sandbox::db::claim_due_events(&env.store, now_ms + 999, now_ms + 120_000, 10).await.unwrap();
    assert_eq!(held.len(), 1);
    let (r, url) = receiver(&env.secret, 0).await;
    let http = reqwest::Client::new();
    assert_eq!(env.tp.deliver_due(&http, &url, false).await.unwrap().claimed, 0, "another server holds it");
    env.advance(121);
    assert_eq!(env.tp.deliver_due(&http, &url, false).await.unwrap().delivered, 1);
    assert_eq!(r.ids(), event_ids(&env).await);
}

#[tokio::test]
async fn several_servers_delivering_at_once_deliver_each_event_once() {
    let env = Env::new().await;
    for _ in 0..10 {
        env.customer().await;
    }
    let (r, url) = receiver(&env.secret, 0).await;
    let mut servers = Vec::new();
    for _ in 0..3 {
        let mut config = Env::config(&env.secret, &env.offset);
        config.delivery_batch = 3;
        servers.push(TestProcessor::new(connect(&env.db.url).await, config));
    }
    // Events keep coming while the servers deliver.
    let producing = async {
        for _ in 0..20 {
            env.customer().await;
        }
    };
    let delivering = futures::future::join_all(servers.iter().map(|tp| async {
        let http = reqwest::Client::new();
        for _ in 0..60 {
            tp.deliver_due(&http, &url, false).await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }));
    futures::join!(producing, delivering);
    deliver_all(&env, &servers[0], &url, false).await;
    let expected = event_ids(&env).await;
    assert_eq!(expected.len(), 30);
    let counts = r.counts();
    assert_eq!(counts.len(), 30);
    assert!(expected.iter().all(|id| counts.get(id) == Some(&1)), "each event exactly once: {counts:?}");
}

#[tokio::test]
async fn chaos_mode_duplicates_reorders_and_still_delivers_everything() {
    let env = Env::new().await;
    for _ in 0..15 {
        env.customer().await;
    }
    let (r, url) = receiver(&env.secret, 0).await;
    deliver_all(&env, &env.tp, &url, true).await;
    let expected = event_ids(&env).await;
    let counts = r.counts();
    assert!(expected.iter().all(|id| counts.contains_key(id)), "every event arrives at least once");
    assert!(counts.values().any(|&n| n > 1), "some arrive twice: {counts:?}");
    let mut first_seen = Vec::new();
    for id in r.ids() {
        if !first_seen.contains(&id) {
            first_seen.push(id);
        }
    }
    assert_ne!(first_seen, expected, "not in creation order");
    assert!(r.all_signed());
}
