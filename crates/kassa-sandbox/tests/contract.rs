//! The processor contract: the same test functions run against the built-in test processor
//! (this crate, on a temp SQLite file or with `KASSA_TEST_DATABASE_URL=postgres://…` a fresh
//! PostgreSQL schema) and against the Stripe client talking to localstripe (needs
//! `KASSA_TEST_PYTHON`, see `.ci/python-env`; that half is `#[ignore]`d, run with
//! `-- --include-ignored`, as CI does with `KASSA_REQUIRE_EXTERNAL=1`).
//!
//! Each contract test is written once below, against [`Harness`]: the [`Processor`] plus what
//! a test needs from the processor's side (its test cards, the customer's part of a 3-D Secure
//! challenge, webhook deliveries). `contract!` at the end runs every one of them on both, as
//! `on_sandbox::<name>` and `on_localstripe::<name>`.
//!
//! Where localstripe differs from Stripe, the contract asserts what Kassa relies on and both
//! do; what only Stripe does is covered by recorded answers (`kassa-processors/tests/
//! stripe_fixtures.rs`). Idempotency-key replay is such a case: localstripe ignores the key, so
//! that contract test runs on processors that honour keys and says so where it skips.

#[path = "../../kassa-processors/tests/support/mod.rs"]
mod support;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::http::HeaderMap;
use kassa_processors::signature::SignatureError;
use kassa_processors::stripe::StripeProcessor;
use kassa_processors::*;
use kassa_sandbox::{CardInput, TestProcessor, TestProcessorConfig, TokenSource};
use kassa_store::Store;
use kassa_store::db::ConnectOptions;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// What a contract test needs besides the [`Processor`].
#[async_trait]
trait Harness: Send + Sync {
    fn processor(&self) -> &dyn Processor;
    /// A payment source for a test card number, the way a browser would hand it over.
    async fn card(&self, number: &str) -> PaymentSource;
    /// A card that is declined when charged.
    fn declined_card(&self) -> &'static str;
    /// The customer completes (`approve`) or fails the 3-D Secure challenge.
    async fn authenticate(&self, pi: &str, approve: bool);
    /// Whether a repeated `Idempotency-Key` replays the first result (localstripe ignores it).
    fn honours_idempotency_keys(&self) -> bool;
    /// Starts delivering webhook events to a local listener.
    async fn listen(&self) -> Deliveries;
    /// Lets pending deliveries go out (the sandbox delivers in rounds).
    async fn deliver(&self, url: &str);
    /// The same processor with another webhook secret.
    async fn stranger(&self) -> Box<dyn Processor>;
}

const VISA: &str = "4242424242424242";
const THREE_D_SECURE: &str = "4000002760003184";

fn key(name: &str) -> IdempotencyKey {
    IdempotencyKey::new(format!("kassa_contract_{name}_{}", kassa_domain::ids::new_id("k")))
}

fn metadata(pairs: &[(&str, &str)]) -> Metadata {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

async fn customer(h: &dyn Harness) -> String {
    let req = CreateCustomer {
        email: Some("ada@example.com".into()),
        name: Some("Ada Lovelace".into()),
        ..Default::default()
    };
    h.processor().create_customer(&req, &key("customer")).await.unwrap().id
}

fn intent(customer: &str, amount: i64, source: PaymentSource) -> CreatePaymentIntent {
    CreatePaymentIntent {
        amount,
        currency: "eur".into(),
        customer: customer.into(),
        metadata: metadata(&[("kassa_payment_id", "pay_01CONTRACT")]),
        capture_method: CaptureMethod::Automatic,
        setup_future_usage: false,
        confirm: Some(source),
        off_session: false,
        return_url: None,
    }
}

async fn paid(h: &dyn Harness, amount: i64) -> PaymentIntent {
    let cus = customer(h).await;
    let source = h.card(VISA).await;
    h.processor().create_payment_intent(&intent(&cus, amount, source), &key("pay")).await.unwrap()
}

async fn authorized(h: &dyn Harness, amount: i64) -> PaymentIntent {
    let cus = customer(h).await;
    let source = h.card(VISA).await;
    let req = CreatePaymentIntent { capture_method: CaptureMethod::Manual, ..intent(&cus, amount, source) };
    let pi = h.processor().create_payment_intent(&req, &key("authorize")).await.unwrap();
    assert_eq!(pi.status, PaymentIntentStatus::RequiresCapture, "{pi:?}");
    assert_eq!((pi.amount_capturable, pi.amount_received), (amount, 0));
    pi
}

// ---------------------------------------------------------------- the contract

async fn creates_a_customer(h: &dyn Harness) {
    let req = CreateCustomer {
        email: Some("ada@example.com".into()),
        name: Some("Ada Lovelace".into()),
        metadata: metadata(&[("kassa_customer_id", "cus_01KASSA")]),
    };
    let created = h.processor().create_customer(&req, &key("customer")).await.unwrap();
    assert!(created.id.starts_with("cus_"), "{created:?}");
    assert_eq!(created.email.as_deref(), Some("ada@example.com"));
}

async fn a_payment_intent_confirmed_at_creation_succeeds(h: &dyn Harness) {
    let cus = customer(h).await;
    let source = h.card(VISA).await;
    let pi = h.processor().create_payment_intent(&intent(&cus, 2500, source), &key("pay")).await.unwrap();
    assert!(pi.id.starts_with("pi_"), "{pi:?}");
    assert_eq!(pi.status, PaymentIntentStatus::Succeeded);
    assert_eq!((pi.amount, pi.amount_received, pi.amount_capturable, pi.amount_refunded), (2500, 2500, 0, 0));
    assert_eq!(pi.currency, "eur");
    assert_eq!(pi.customer.as_deref(), Some(cus.as_str()));
    assert_eq!(pi.capture_method, CaptureMethod::Automatic);
    assert_eq!(pi.metadata.get("kassa_payment_id").map(String::as_str), Some("pay_01CONTRACT"));
    assert!(pi.latest_charge.as_deref().is_some_and(|c| c.starts_with("ch_")), "{pi:?}");
    assert!(pi.last_payment_error.is_none() && pi.next_action.is_none());

    let again = h.processor().retrieve_payment_intent(&pi.id).await.unwrap();
    assert_eq!((again.status, again.amount_received), (PaymentIntentStatus::Succeeded, 2500));
}

async fn a_declined_card_is_a_payment_error(h: &dyn Harness) {
    let cus = customer(h).await;
    let source = h.card(h.declined_card()).await;
    let err = h.processor().create_payment_intent(&intent(&cus, 1000, source), &key("decline")).await.unwrap_err();
    match err {
        ProcessorError::Payment { error, payment_intent } => {
            assert_eq!(error.code, "card_declined");
            assert!(!error.message.is_empty());
            // Stripe returns the PaymentIntent with the error (localstripe the charge instead);
            // where it is there, no money was taken.
            if let Some(pi) = payment_intent {
                assert_eq!(pi.status, PaymentIntentStatus::RequiresPaymentMethod);
                assert_eq!(pi.amount_received, 0);
            }
        }
        other => panic!("expected a payment error, got {other:?}"),
    }
}

async fn three_d_secure_requires_action_until_authenticated(h: &dyn Harness) {
    let cus = customer(h).await;
    let source = h.card(THREE_D_SECURE).await;
    let pi = h.processor().create_payment_intent(&intent(&cus, 4200, source), &key("3ds")).await.unwrap();
    assert_eq!(pi.status, PaymentIntentStatus::RequiresAction, "{pi:?}");
    assert_eq!(pi.amount_received, 0);

    h.authenticate(&pi.id, true).await;
    let done = h.processor().retrieve_payment_intent(&pi.id).await.unwrap();
    assert_eq!((done.status, done.amount_received), (PaymentIntentStatus::Succeeded, 4200));
}

async fn a_failed_authentication_takes_nothing(h: &dyn Harness) {
    let cus = customer(h).await;
    let source = h.card(THREE_D_SECURE).await;
    let pi = h.processor().create_payment_intent(&intent(&cus, 4200, source), &key("3ds")).await.unwrap();
    h.authenticate(&pi.id, false).await;
    let failed = h.processor().retrieve_payment_intent(&pi.id).await.unwrap();
    assert_eq!((failed.status, failed.amount_received), (PaymentIntentStatus::RequiresPaymentMethod, 0));
    assert_eq!(failed.last_payment_error.unwrap().code, "payment_intent_authentication_failure");
}

async fn manual_capture_of_the_whole_amount(h: &dyn Harness) {
    let pi = authorized(h, 1800).await;
    let captured = h.processor().capture_payment_intent(&pi.id, None, &key("capture")).await.unwrap();
    assert_eq!(captured.status, PaymentIntentStatus::Succeeded);
    assert_eq!((captured.amount_received, captured.amount_capturable, captured.amount_refunded), (1800, 0, 0));
}

async fn a_partial_capture_takes_part_and_releases_the_rest(h: &dyn Harness) {
    let pi = authorized(h, 1000).await;
    let captured = h.processor().capture_payment_intent(&pi.id, Some(600), &key("capture")).await.unwrap();
    assert_eq!(captured.status, PaymentIntentStatus::Succeeded);
    assert_eq!((captured.amount_received, captured.amount_capturable), (600, 0));
    // What was released is not a refund of the money received.
    let again = h.processor().retrieve_payment_intent(&pi.id).await.unwrap();
    assert_eq!((again.amount_received, again.amount_refunded), (600, 0));
}

async fn refunds_part_then_the_rest(h: &dyn Harness) {
    let pi = paid(h, 1000).await;
    let part =
        CreateRefund { payment_intent: pi.id.clone(), amount: Some(300), metadata: metadata(&[("kassa_refund", "1")]) };
    let refund = h.processor().create_refund(&part, &key("refund")).await.unwrap();
    assert!(refund.id.starts_with("re_"), "{refund:?}");
    assert_eq!((refund.amount, refund.status), (300, RefundStatus::Succeeded));
    assert_eq!(refund.payment_intent.as_deref(), Some(pi.id.as_str()));
    assert_eq!(h.processor().retrieve_payment_intent(&pi.id).await.unwrap().amount_refunded, 300);

    // Named explicitly: localstripe refunds the whole charge again when no amount is given
    // after a partial refund (Stripe refunds what is left).
    let rest = CreateRefund { payment_intent: pi.id.clone(), amount: Some(700), metadata: Metadata::new() };
    let refund = h.processor().create_refund(&rest, &key("refund_rest")).await.unwrap();
    assert_eq!(refund.amount, 700);
    assert_eq!(h.processor().retrieve_payment_intent(&pi.id).await.unwrap().amount_refunded, 1000);
}

async fn a_refund_without_amount_gives_back_everything(h: &dyn Harness) {
    let pi = paid(h, 1250).await;
    let all = CreateRefund { payment_intent: pi.id.clone(), amount: None, metadata: Metadata::new() };
    let refund = h.processor().create_refund(&all, &key("refund_all")).await.unwrap();
    assert_eq!((refund.amount, refund.status), (1250, RefundStatus::Succeeded));
    let after = h.processor().retrieve_payment_intent(&pi.id).await.unwrap();
    assert_eq!((after.amount_received, after.amount_refunded), (1250, 1250));
}

async fn cancels_an_authorization(h: &dyn Harness) {
    let pi = authorized(h, 900).await;
    let canceled = h.processor().cancel_payment_intent(&pi.id, &key("cancel")).await.unwrap();
    assert_eq!(canceled.status, PaymentIntentStatus::Canceled);
    assert_eq!(canceled.amount_received, 0);
    let again = h.processor().retrieve_payment_intent(&pi.id).await.unwrap();
    assert_eq!(again.status, PaymentIntentStatus::Canceled);
}

async fn an_idempotency_key_replays_the_first_result(h: &dyn Harness) {
    if !h.honours_idempotency_keys() {
        println!("skipped: this processor ignores Idempotency-Key (localstripe); see stripe_fixtures.rs");
        return;
    }
    let cus = customer(h).await;
    let source = h.card(VISA).await;
    let req = intent(&cus, 1500, source);
    let k = key("replay");
    let first = h.processor().create_payment_intent(&req, &k).await.unwrap();
    let second = h.processor().create_payment_intent(&req, &k).await.unwrap();
    assert_eq!(first.id, second.id, "a replay makes no second charge");
    assert_eq!(second.amount_received, 1500);
    // The same key with other parameters is refused and changes nothing.
    let other = CreatePaymentIntent { amount: 1600, ..req };
    match h.processor().create_payment_intent(&other, &k).await {
        Err(ProcessorError::InvalidRequest { code, .. }) => assert_eq!(code.as_deref(), Some("idempotency_error")),
        r => panic!("expected idempotency_error, got {r:?}"),
    }
    let listed = h.processor().list_payment_intents(None, 10).await.unwrap();
    assert_eq!(listed.data.iter().filter(|p| p.customer.as_deref() == Some(cus.as_str())).count(), 1);
}

async fn lists_payment_intents_a_page_at_a_time(h: &dyn Harness) {
    let cus = customer(h).await;
    let mut made = Vec::new();
    for amount in [1100, 1200, 1300] {
        let mut req = intent(&cus, amount, h.card(VISA).await);
        req.metadata.insert("kassa_payment_id".into(), format!("pay_{amount}"));
        made.push(h.processor().create_payment_intent(&req, &key("list")).await.unwrap());
    }
    let refund = CreateRefund { payment_intent: made[1].id.clone(), amount: None, metadata: Metadata::new() };
    h.processor().create_refund(&refund, &key("list_refund")).await.unwrap();

    let mut listed = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..10 {
        let page = h.processor().list_payment_intents(after.as_deref(), 2).await.unwrap();
        assert!(page.data.len() <= 2, "{page:?}");
        listed.extend(page.data.clone());
        if !page.has_more {
            break;
        }
        after = page.data.last().map(|pi| pi.id.clone());
    }
    // Every one once (Stripe lists newest first, localstripe in creation order).
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
    }
}

async fn webhook_deliveries_verify_with_the_endpoint_secret_only(h: &dyn Harness) {
    let mut deliveries = h.listen().await;
    let pi = paid(h, 990).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let (signature, body, event) = loop {
        h.deliver(&deliveries.url).await;
        let next = tokio::time::timeout(Duration::from_millis(200), deliveries.rx.recv()).await;
        assert!(tokio::time::Instant::now() < deadline, "no payment_intent.succeeded delivery within 15 s");
        let Ok(Some((headers, body))) = next else { continue };
        let signature = headers.get("stripe-signature").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        // Every delivery is signed with the endpoint's secret.
        let event = h.processor().parse_event(&body, &signature, support::now()).unwrap();
        if event.kind == "payment_intent.succeeded" && event.object_id() == Some(pi.id.as_str()) {
            break (signature, body, event);
        }
    };
    assert!(event.id.starts_with("evt_"));
    assert_eq!(event.metadata("kassa_payment_id"), Some("pay_01CONTRACT"));

    let mut tampered = body.to_vec();
    let at = tampered.iter().position(|b| *b == b'9').expect("the amount is in the body");
    tampered[at] = b'1';
    assert_eq!(
        h.processor().parse_event(&tampered, &signature, support::now()).unwrap_err(),
        EventError::Signature(SignatureError::NoMatch)
    );
    assert_eq!(
        h.stranger().await.parse_event(&body, &signature, support::now()).unwrap_err(),
        EventError::Signature(SignatureError::NoMatch)
    );
    assert!(h.processor().parse_event(&body, "", support::now()).is_err(), "an unsigned delivery is refused");
    assert!(
        h.processor().parse_event(&body, &signature, support::now() + 3600).is_err(),
        "a delivery signed an hour ago is refused"
    );
}

// ---------------------------------------------------------------- webhook listener

struct Deliveries {
    url: String,
    rx: mpsc::UnboundedReceiver<(HeaderMap, Bytes)>,
}

async fn webhook_listener() -> Deliveries {
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
    Deliveries { url, rx }
}

// ---------------------------------------------------------------- the sandbox

/// The sandbox on a database of its own, dropped with it.
struct Sandbox {
    tp: TestProcessor,
    store: Store,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

async fn connect(url: &str) -> Store {
    Store::connect(&ConnectOptions {
        url: url.into(),
        max_connections: 4,
        acquire_timeout: Duration::from_secs(10),
        sqlite_full_sync: false,
    })
    .await
    .unwrap()
}

impl Sandbox {
    async fn start() -> Sandbox {
        let (url, dir, postgres) = match std::env::var("KASSA_TEST_DATABASE_URL") {
            Ok(admin) if admin.starts_with("postgres") => {
                let schema = format!("tpc_{}", kassa_domain::ids::new_id("c").to_ascii_lowercase().replace('_', ""));
                let store = connect(&admin).await;
                kassa_store::sql::query(&format!("CREATE SCHEMA {schema}")).execute(store.writer()).await.unwrap();
                store.close().await;
                let sep = if admin.contains('?') { '&' } else { '?' };
                (format!("{admin}{sep}options[search_path]={schema}"), None, Some((admin, schema)))
            }
            _ => {
                let dir = tempfile::tempdir().unwrap();
                (format!("sqlite://{}", dir.path().join("kassa.db").display()), Some(dir), None)
            }
        };
        let store = connect(&url).await;
        kassa_sandbox::migrations::migrate_all(&store).await.unwrap();
        let secret = TestProcessor::webhook_secret(&store).await.unwrap();
        let tp = TestProcessor::new(store.clone(), Self::config(&secret));
        Sandbox { tp, store, _dir: dir, postgres }
    }

    fn config(secret: &str) -> TestProcessorConfig {
        let mut config = TestProcessorConfig::new("http://kassa.test", secret, Arc::new(support::now));
        config.retry_base_ms = 20;
        config
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some((admin, schema)) = self.postgres.take() {
            let _ = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
                    let store = connect(&admin).await;
                    let _ = kassa_store::sql::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                        .execute(store.writer())
                        .await;
                    store.close().await;
                })
            })
            .join();
        }
    }
}

#[async_trait]
impl Harness for Sandbox {
    fn processor(&self) -> &dyn Processor {
        &self.tp
    }

    async fn card(&self, number: &str) -> PaymentSource {
        let card = CardInput { number: number.into(), exp_month: 12, exp_year: 2040, cvc: Some("123".into()) };
        let token = self.tp.create_confirmation_token(&TokenSource::Card(card)).await.unwrap();
        PaymentSource::ConfirmationToken(token["id"].as_str().unwrap().to_string())
    }

    fn declined_card(&self) -> &'static str {
        "4000000000000002"
    }

    async fn authenticate(&self, pi: &str, approve: bool) {
        self.tp.complete_authentication(pi, approve).await.unwrap();
    }

    fn honours_idempotency_keys(&self) -> bool {
        true
    }

    async fn listen(&self) -> Deliveries {
        webhook_listener().await
    }

    async fn deliver(&self, url: &str) {
        self.tp.deliver_due(&reqwest::Client::new(), url, false).await.unwrap();
    }

    async fn stranger(&self) -> Box<dyn Processor> {
        Box::new(TestProcessor::new(self.store.clone(), Self::config("whsec_someone_else")))
    }
}

// ---------------------------------------------------------------- Stripe on localstripe

struct OnLocalStripe {
    ls: support::LocalStripe,
    p: StripeProcessor,
}

impl OnLocalStripe {
    /// localstripe, or `None` (the test is skipped) without `KASSA_TEST_PYTHON`.
    fn start() -> Option<OnLocalStripe> {
        let ls = support::LocalStripe::start(&support::python()?);
        let p = ls.processor();
        Some(OnLocalStripe { ls, p })
    }
}

#[async_trait]
impl Harness for OnLocalStripe {
    fn processor(&self) -> &dyn Processor {
        &self.p
    }

    async fn card(&self, number: &str) -> PaymentSource {
        PaymentSource::PaymentMethod(self.ls.card(number).await)
    }

    fn declined_card(&self) -> &'static str {
        // Attaches, then declines when charged.
        "4000000000000341"
    }

    async fn authenticate(&self, pi: &str, approve: bool) {
        let path = format!("/v1/payment_intents/{pi}");
        let client_secret = self.ls.get(&path).await["client_secret"].as_str().unwrap().to_owned();
        let success = if approve { "true" } else { "false" };
        self.ls
            .post(&format!("{path}/_authenticate"), &[("client_secret", &client_secret), ("success", success)])
            .await;
    }

    fn honours_idempotency_keys(&self) -> bool {
        false
    }

    async fn listen(&self) -> Deliveries {
        let deliveries = webhook_listener().await;
        self.ls.post("/_config/webhooks/kassa", &[("url", &deliveries.url), ("secret", support::WEBHOOK_SECRET)]).await;
        deliveries
    }

    async fn deliver(&self, _url: &str) {}

    async fn stranger(&self) -> Box<dyn Processor> {
        Box::new(support::processor_with_secrets(&self.ls.base_url, &["whsec_someone_else"]))
    }
}

// ---------------------------------------------------------------- both

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod on_sandbox {
            $(
                #[tokio::test]
                async fn $name() {
                    let h = super::Sandbox::start().await;
                    super::$name(&h).await;
                }
            )*
        }
        mod on_localstripe {
            $(
                #[tokio::test]
                #[ignore = "needs localstripe: set KASSA_TEST_PYTHON (see README Testing)"]
                async fn $name() {
                    let Some(h) = super::OnLocalStripe::start() else { return };
                    super::$name(&h).await;
                }
            )*
        }
    };
}

contract!(
    creates_a_customer,
    a_payment_intent_confirmed_at_creation_succeeds,
    a_declined_card_is_a_payment_error,
    three_d_secure_requires_action_until_authenticated,
    a_failed_authentication_takes_nothing,
    manual_capture_of_the_whole_amount,
    a_partial_capture_takes_part_and_releases_the_rest,
    refunds_part_then_the_rest,
    a_refund_without_amount_gives_back_everything,
    cancels_an_authorization,
    an_idempotency_key_replays_the_first_result,
    lists_payment_intents_a_page_at_a_time,
    webhook_deliveries_verify_with_the_endpoint_secret_only,
);
