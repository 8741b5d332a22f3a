//! The single-shot pay path is on Kassa's hot path: the statements it costs are counted here.
//! Its own test binary, because the statement counters are per process and the other tests
//! run in parallel.

use kassa_processors::*;
use kassa_sandbox::{CardInput, TestProcessor, TestProcessorConfig, TokenSource};
use kassa_store::Store;
use kassa_store::db::ConnectOptions;
use kassa_store::sql::counters;
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

/// (statements, transactions) that `f` ran.
async fn cost<T>(f: impl Future<Output = T>) -> (T, u64, u64) {
    let (s0, t0) = counters();
    let out = f.await;
    let (s1, t1) = counters();
    (out, s1 - s0, t1 - t0)
}

#[tokio::test]
async fn a_single_shot_payment_is_one_transaction_of_five_statements() {
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
    let customer = tp.create_customer(&CreateCustomer::default(), &IdempotencyKey::new("cus-1")).await.unwrap();
    let card = CardInput { number: "4242424242424242".into(), exp_month: 12, exp_year: 2040, cvc: None };
    let token = tp.create_confirmation_token(&TokenSource::Card(card)).await.unwrap();
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

    // Idempotency check, token and customer (locked), objects upsert, event, stored result.
    let (pi, statements, transactions) = cost(tp.create_payment_intent(&req, &key)).await;
    assert_eq!(pi.unwrap().status, PaymentIntentStatus::Succeeded);
    assert_eq!((statements, transactions), (5, 1));

    // A replay reads the stored result and nothing else.
    let (pi, statements, transactions) = cost(tp.create_payment_intent(&req, &key)).await;
    assert!(pi.is_ok());
    assert_eq!((statements, transactions), (1, 1));

    store.close().await;
    if let Some((admin, schema)) = schema {
        kassa_store::sql::query(&format!("DROP SCHEMA {schema} CASCADE")).execute(admin.writer()).await.unwrap();
    }
}
