use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn no_key_wrong_kind_and_unknown_keys_are_refused() {
    let app = spawn_app().await;
    let r = app.get("/admin/products", As::Nobody).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body["error"]["type"], "authentication_error");

    let r = app.get("/admin/products", As::Bearer(&app.publishable_key.clone())).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.body["error"]["type"], "permission_error");

    let r = app.get("/admin/products", As::Bearer("sk_not_a_real_key_at_all_000000000000000")).await;
    assert_eq!(r.status, 401);

    let r = app.get("/store/products", As::Nobody).await;
    assert_eq!(r.status, 401);
    let r = app.request(reqwest::Method::GET, "/store/products", As::Nobody, None, None).await;
    assert_eq!(r.status, 401);
    // A secret key where browsers send a publishable one.
    let r = app
        .http
        .get(format!("{}/store/products", app.address))
        .header("kassa-publishable-key", &app.secret_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    assert_eq!(app.get("/store/products", As::Store).await.status, 200);
    // Basic auth with the key as user name, like `curl -u sk_…:`.
    let r = app
        .http
        .get(format!("{}/admin/products", app.address))
        .basic_auth(&app.secret_key, Some(""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn revoked_keys_stop_working_at_once() {
    let app = spawn_app().await;
    let key =
        kassa_server::services::keys::create(&app.state.store, kassa_server::services::keys::KeyKind::Secret, None, 0)
            .await
            .unwrap();
    assert_eq!(app.get("/admin/products", As::Bearer(&key.secret)).await.status, 200);
    assert!(app.state.api_keys.revoke(&app.state.store, &key.row.id, 1, None).await.unwrap());
    let r = app.get("/admin/products", As::Bearer(&key.secret)).await;
    assert_eq!(r.status, 401);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("revoked"));
    // Nothing was created by a refused write.
    let r = app.post("/admin/products", As::Bearer(&key.secret), json!({"name": "x"})).await;
    assert_eq!(r.status, 401);
    let list = app.get("/admin/products", As::Admin).await.ok();
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn keys_are_stored_hashed() {
    let app = spawn_app().await;
    let rows = kassa_store::api_keys::list(app.state.store.reader()).await.unwrap();
    assert_eq!(rows.len(), 2);
    for r in rows {
        assert_ne!(r.secret_hash, app.secret_key);
        assert_ne!(r.secret_hash, app.publishable_key);
        assert_eq!(r.secret_hash.len(), 64);
        assert!(!r.secret_hash.contains("sk_"));
    }
}

#[tokio::test]
async fn keys_revoked_by_another_process_stop_working_within_a_second() {
    let app = spawn_app().await;
    let key =
        kassa_server::services::keys::create(&app.state.store, kassa_server::services::keys::KeyKind::Secret, None, 0)
            .await
            .unwrap();
    assert_eq!(app.get("/admin/products", As::Bearer(&key.secret)).await.status, 200);
    // `kassa keys revoke` in another process writes the row directly.
    assert!(kassa_store::api_keys::revoke(app.state.store.writer(), &key.row.id, 1).await.unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(app.get("/admin/products", As::Bearer(&key.secret)).await.status, 401);
}
