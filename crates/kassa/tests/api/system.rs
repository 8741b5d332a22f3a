use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn health_ready_and_metrics() {
    let app = spawn_app().await;
    let r = app.get("/health", As::Nobody).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], "ok");
    let r = app.get("/ready", As::Nobody).await;
    assert_eq!(r.status, 200);
    app.get("/admin/products", As::Admin).await.ok();
    let r = app.get("/metrics", As::Nobody).await;
    assert_eq!(r.status, 200);
    assert!(
        r.text.contains("http_requests_total{method=\"GET\",route=\"/admin/products\",status=\"200\"}"),
        "{}",
        r.text
    );
    assert!(
        r.text.contains("http_request_duration_seconds_bucket{method=\"GET\",route=\"/admin/products\""),
        "{}",
        r.text
    );
    assert!(r.text.contains("kassa_db_statements_total "));
    assert!(r.text.contains("kassa_db_transactions_total "));
}

#[tokio::test]
async fn ready_reports_an_unreachable_database() {
    let app = spawn_app().await;
    app.state.store.close().await;
    let r = app.get("/ready", As::Nobody).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.body["status"], "unavailable");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json_errors() {
    let app = spawn_app().await;
    let r = app.get("/admin/nothing-here", As::Admin).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "route_not_found");
    let r = app.request(reqwest::Method::DELETE, "/admin/products", As::Admin, None, None).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.body["error"]["type"], "invalid_request_error");
}

/// Every documented operation is served, and the document lists every route the API has:
/// routes are only registered through `utoipa_axum::routes!`, which documents them.
#[tokio::test]
async fn openapi_documents_every_route() {
    let app = spawn_app().await;
    let doc = app.get("/openapi.json", As::Nobody).await.ok();
    let paths = doc["paths"].as_object().expect("paths");
    for expected in [
        "/health",
        "/ready",
        "/metrics",
        "/openapi.json",
        "/admin/products",
        "/admin/products/{id}",
        "/admin/prices",
        "/admin/prices/{id}",
        "/admin/pricing-models",
        "/admin/pricing-models/{id}",
        "/admin/regions",
        "/admin/regions/{id}",
        "/admin/shipping-options",
        "/admin/shipping-options/{id}",
        "/admin/events",
        "/admin/events/{id}",
        "/store/products",
        "/store/products/{id}",
        "/store/regions",
        "/store/shipping-options",
    ] {
        assert!(paths.contains_key(expected), "{expected} is not documented");
    }
    let mut operations = 0;
    for (path, item) in paths {
        for method in ["get", "post", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            operations += 1;
            let concrete = path.replace("{id}", "x_00000000000000000000000000");
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = app.request(m, &concrete, As::Admin, (method == "post").then_some("{}"), None).await;
            assert_ne!(r.error_code(), "route_not_found", "{method} {path} is documented but not served");
            assert_ne!(r.status, 405, "{method} {path} is documented but not served");
        }
        let op = item.as_object().unwrap().values().next().unwrap();
        assert!(op.get("responses").is_some(), "{path} has no responses");
    }
    assert!(operations >= 30, "only {operations} operations documented");
    assert!(doc["components"]["securitySchemes"]["secret_key"].is_object());
    let _ = json!({});
}

/// `kassa serve` prints `export KASSA_SECRET_KEY=… KASSA_PUBLISHABLE_KEY=…`; a shell that did
/// that must still be able to run `kassa`. Unknown `KASSA_*` settings (typos) are still refused.
#[test]
fn the_exported_api_keys_are_not_taken_for_settings() {
    let dir = tempfile::tempdir().unwrap();
    let kassa = |extra: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kassa"));
        cmd.arg("migrate")
            .current_dir(dir.path())
            .env_clear()
            .env("DATABASE_URL", format!("sqlite://{}", dir.path().join("kassa.db").display()));
        cmd.envs(extra.iter().copied());
        cmd.output().unwrap()
    };
    let out = kassa(&[("KASSA_SECRET_KEY", "sk_test_exported"), ("KASSA_PUBLISHABLE_KEY", "pk_test_exported")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = kassa(&[("KASSA_SERVR__PORT", "8080")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("KASSA_SERVR"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Settings come from a TOML file too, and a wrong or missing required value stops `kassa`
/// at start with a message naming the setting and its variable — never at the first webhook.
#[test]
fn configuration_from_a_file_is_validated_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let run = |toml: &str, extra: &[(&str, &str)]| {
        let file = dir.path().join("kassa.toml");
        std::fs::write(&file, toml).unwrap();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kassa"));
        cmd.arg("migrate").current_dir(dir.path()).env_clear().env("KASSA_CONFIG", &file);
        cmd.envs(extra.iter().copied());
        cmd.output().unwrap()
    };
    let db = dir.path().join("from-file.db");
    let out = run(&format!("[database]\nurl = \"sqlite://{}\"\n", db.display()), &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(db.exists(), "the database named in the file was created");

    let stripe_without_webhook_secret =
        "[processor]\nkind = \"stripe\"\n[processor.stripe]\nsecret_key = \"sk_test_123\"\n";
    let out = run(stripe_without_webhook_secret, &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("KASSA_PROCESSOR__STRIPE__WEBHOOK_SECRET"), "{err}");
    // The environment completes (and overrides) the file.
    let out = run(
        stripe_without_webhook_secret,
        &[
            ("KASSA_PROCESSOR__STRIPE__WEBHOOK_SECRET", "whsec_abc"),
            ("DATABASE_URL", &format!("sqlite://{}", db.display())),
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let out = run("[server]\nport = \"eighty\"\n", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("KASSA_SERVER__PORT"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Client generators and schemathesis name methods after `operationId`: every one is unique.
#[tokio::test]
async fn every_operation_id_is_unique() {
    let app = spawn_app().await;
    let doc = app.get("/openapi.json", As::Nobody).await.ok();
    let mut seen = std::collections::BTreeMap::<String, Vec<String>>::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if let Some(id) = op.get("operationId").and_then(|v| v.as_str()) {
                seen.entry(id.to_string()).or_default().push(format!("{method} {path}"));
            }
        }
    }
    let twice: Vec<_> = seen.iter().filter(|(_, at)| at.len() > 1).collect();
    assert!(twice.is_empty(), "operation ids used more than once: {twice:?}");
    assert!(seen.len() > 50, "the document lists its operations");
}
