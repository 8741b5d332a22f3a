//! The single-shot pay path is on Kassa's hot path: the round trips it costs are counted here.
//! Its own test binary, because the statement counters are per process and the other tests
//! run in parallel.

use kassa_processors::*;
use kassa_sandbox::{CardInput, TestProcessor, TestProcessorConfig, TokenSource};
use kassa_store::Store;
use kassa_store::db::ConnectOptions;
use kassa_store::sql::round_trips;
use std::sync::Arc;
use std::time::Duration;

async fn connect(url: &str) -> Store {
    Store::connect(&ConnectOptions {
        url: url.into(),
        max_connections: 5,
        acquire_timeout: Duration::from_secs(10),
        sqlite_full_sync: false,
    })
    .await
    .unwrap()
}

/// (round trips, of which `BEGIN`s) that `f` cost.
async fn cost<T>(f: impl Future<Output = T>) -> (T, u64, u64) {
    let before = round_trips();
    let out = f.await;
    let after = round_trips();
    (out, after.total() - before.total(), after.begins - before.begins)
}

#[tokio::test]
async fn each_processor_call_of_a_checkout_is_one_write_statement_without_a_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let (url, schema) = match std::env::var("KASSA_TEST_DATABASE_URL") {
        Ok(admin) if admin.starts_with("postgres") => {
            let schema = format!("tps_{}", kassa_domain::ids::new_id("s").replace('_', ""));
            let store = connect(&admin).await;
            kassa_store::sql::query(&format!("CREATE SCHEMA {schema}")).execute(store.writer()).await.unwrap();
            let sep = if admin.contains('?') { '&' } else { '?' };
            (format!("{admin}{sep}options[search_path]={schema}"), Some((store, schema)))
        }
        _ => (format!("sqlite://{}", dir.path().join("kassa.db").display()), None),
    };
    let store = connect(&url).await;
    kassa_sandbox::migrations::migrate_all(&store).await.unwrap();
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let tp =
        TestProcessor::new(store.clone(), TestProcessorConfig::new("http://kassa.test", "whsec_test", Arc::new(now)));
    // A customer: its object, its event and its stored result, one statement.
    let (customer, trips, begins) =
        cost(tp.create_customer(&CreateCustomer::default(), &IdempotencyKey::new("cus-1"))).await;
    let customer = customer.unwrap();
    assert_eq!((trips, begins), (1, 0));
    // Its replay: the write finds the key taken (and writes nothing), then reads the result.
    let (replayed, trips, begins) =
        cost(tp.create_customer(&CreateCustomer::default(), &IdempotencyKey::new("cus-1"))).await;
    assert_eq!(replayed.unwrap().id, customer.id);
    assert_eq!((trips, begins), (2, 0));

    let card = CardInput { number: "4242424242424242".into(), exp_month: 12, exp_year: 2040, cvc: None };
    let (token, trips, begins) = cost(tp.create_confirmation_token(&TokenSource::Card(card))).await;
    let token = token.unwrap();
    assert_eq!((trips, begins), (1, 0));
    let req = CreatePaymentIntent {
        amount: 1000,
        currency: "usd".into(),
        customer: customer.id,
        metadata: Default::default(),
        capture_method: CaptureMethod::Automatic,
        setup_future_usage: false,
        confirm: Some(PaymentSource::ConfirmationToken(token["id"].as_str().unwrap().into())),
        off_session: false,
        return_url: None,
    };
    let key = IdempotencyKey::new("pay-1");

    // The token and the customer are what this server wrote: no read, one write (the
    // objects, the event, the stored result, checked against the versions it wrote).
    let (pi, trips, begins) = cost(tp.create_payment_intent(&req, &key)).await;
    assert_eq!(pi.unwrap().status, PaymentIntentStatus::Succeeded);
    assert_eq!((trips, begins), (1, 0));

    // A replay reads the stored result and nothing else.
    let (pi, trips, begins) = cost(tp.create_payment_intent(&req, &key)).await;
    assert!(pi.is_ok());
    assert_eq!((trips, begins), (1, 0));

    // On a server that did not write them: one read (the key's stored result, the token and
    // the customer), one write.
    let card = CardInput { number: "4242424242424242".into(), exp_month: 12, exp_year: 2040, cvc: None };
    let token = tp.create_confirmation_token(&TokenSource::Card(card)).await.unwrap();
    let other =
        TestProcessor::new(store.clone(), TestProcessorConfig::new("http://kassa.test", "whsec_test", Arc::new(now)));
    let req = CreatePaymentIntent {
        confirm: Some(PaymentSource::ConfirmationToken(token["id"].as_str().unwrap().into())),
        ..req
    };
    let (pi, trips, begins) = cost(other.create_payment_intent(&req, &IdempotencyKey::new("pay-2"))).await;
    assert_eq!(pi.unwrap().status, PaymentIntentStatus::Succeeded);
    assert_eq!((trips, begins), (2, 0));

    // A delivery round: one statement claims the due events (customer.created and two
    // payment_intent.succeeded), one lets go of them all, delivered or to be retried.
    let acknowledged = axum::Router::new().route("/hook", axum::routing::post(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, acknowledged).await.unwrap() });
    let http = reqwest::Client::new();
    let (stats, trips, begins) = cost(tp.deliver_due(&http, &url, false)).await;
    assert_eq!((stats.unwrap().delivered, trips, begins), (3, 2, 0));
    // Nothing due: the claim finds nothing, and that is all.
    let (stats, trips, _) = cost(tp.deliver_due(&http, &url, false)).await;
    assert_eq!((stats.unwrap().claimed, trips), (0, 1));

    store.close().await;
    if let Some((admin, schema)) = schema {
        kassa_store::sql::query(&format!("DROP SCHEMA {schema} CASCADE")).execute(admin.writer()).await.unwrap();
    }
}
