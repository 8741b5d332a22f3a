use crate::helpers::*;
use serde_json::json;

async fn product_count(app: &TestApp) -> usize {
    app.get("/admin/products?limit=100", As::Admin).await.ok()["data"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_replay_returns_the_same_answer_and_creates_nothing() {
    let app = spawn_app().await;
    let body = json!({"name": "Once", "metadata": {"a": "b"}});
    let first = app.post_idem("/admin/products", As::Admin, body.clone(), "key-1").await;
    assert_eq!(first.status, 200);
    assert!(first.headers.get("idempotent-replayed").is_none());
    let second = app.post_idem("/admin/products", As::Admin, body.clone(), "key-1").await;
    assert_eq!(second.status, first.status);
    assert_eq!(second.text, first.text, "byte-for-byte the same body");
    assert_eq!(second.headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(product_count(&app).await, 1);

    // The same key with another body, or on another path, is refused.
    let r = app.post_idem("/admin/products", As::Admin, json!({"name": "Twice"}), "key-1").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "idempotency_key_reused");
    assert_eq!(r.body["error"]["type"], "idempotency_error");
    let r = app.post_idem("/admin/regions", As::Admin, json!({"name": "Once", "currency": "usd"}), "key-1").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "idempotency_key_reused");
    assert_eq!(product_count(&app).await, 1);

    // Another key does the work again.
    app.post_idem("/admin/products", As::Admin, body, "key-2").await.ok();
    assert_eq!(product_count(&app).await, 2);
}

#[tokio::test]
async fn a_failed_request_stores_nothing_under_its_key() {
    let app = spawn_app().await;
    let body = json!({"product": "prod_00000000000000000000000000", "currency": "usd", "unit_amount": 5});
    let r = app.post_idem("/admin/prices", As::Admin, body.clone(), "k").await;
    assert_eq!(r.status, 400);
    // The key is free: a corrected request under it runs.
    let (product, _) = app.product_with_price("P", 1, None).await;
    let ok = app
        .post_idem("/admin/prices", As::Admin, json!({"product": product, "currency": "usd", "unit_amount": 5}), "k")
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
}

#[tokio::test]
async fn twenty_concurrent_requests_with_one_key_create_one_object() {
    let app = spawn_app().await;
    let body = json!({"name": "Contended"});
    let results = futures::future::join_all(
        (0..20).map(|_| app.post_idem("/admin/products", As::Admin, body.clone(), "same-key")),
    )
    .await;
    let mut ids = std::collections::HashSet::new();
    for r in &results {
        match r.status.as_u16() {
            200 => {
                ids.insert(r.id());
            }
            409 => assert_eq!(r.error_code(), "idempotency_key_in_use"),
            other => panic!("unexpected {other}: {}", r.text),
        }
    }
    assert_eq!(ids.len(), 1, "every success is the same object");
    assert_eq!(product_count(&app).await, 1);
}

#[tokio::test]
async fn keys_expire_after_the_retention() {
    let app = spawn_app().await;
    app.post_idem("/admin/products", As::Admin, json!({"name": "A"}), "old").await.ok();
    app.state.clock.advance(25 * 3600);
    // The cleanup job runs every 60 job intervals (3 s in tests).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let r = app.post_idem("/admin/products", As::Admin, json!({"name": "B"}), "old").await;
        if r.status == 200 {
            break;
        }
        assert_eq!(r.error_code(), "idempotency_key_reused");
        assert!(std::time::Instant::now() < deadline, "the key was never cleaned up");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn keys_are_scoped_to_the_api() {
    let app = spawn_app().await;
    let bad = "x".repeat(256);
    let r = app.post_idem("/admin/products", As::Admin, json!({"name": "A"}), &bad).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_param(), "Idempotency-Key");
}
