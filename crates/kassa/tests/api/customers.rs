use crate::helpers::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

pub const HS_SECRET: &str = "test-secret-of-the-merchants-auth-system-0123456789";
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jwt");

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A customer token signed like the merchant's auth system would.
pub fn hs_token(claims: Value) -> String {
    encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(HS_SECRET.as_bytes())).unwrap()
}

pub fn claims(sub: &str) -> Value {
    json!({"sub": sub, "exp": now() + 600, "iss": "https://auth.shop.test", "aud": "kassa"})
}

/// A server that accepts HS256 customer tokens from `https://auth.shop.test` for `kassa`.
pub async fn app_with_sign_in() -> TestApp {
    spawn_app_with(|s| {
        s.customer_auth.jwt_hs256_secret = Some(HS_SECRET.into());
        s.customer_auth.issuer = Some("https://auth.shop.test".into());
        s.customer_auth.audience = Some("kassa".into());
    })
    .await
}

async fn customer_count(app: &TestApp) -> usize {
    app.get("/admin/customers?limit=100", As::Admin).await.ok()["data"].as_array().unwrap().len()
}

/// A default pricing model whose default price is free: new customers must get both.
pub async fn free_plan(app: &TestApp) -> (String, String) {
    let model = app.post("/admin/pricing-models", As::Admin, json!({"name": "Plans"})).await.ok();
    let model_id = model["id"].as_str().unwrap().to_string();
    let (product, _) = app.product_with_price("Plan", 900, None).await;
    let free = app
        .post(
            "/admin/prices",
            As::Admin,
            json!({"product": product, "currency": "usd", "unit_amount": 0, "recurring": {"interval": "month"}, "pricing_model": model_id}),
        )
        .await
        .ok();
    let free_id = free["id"].as_str().unwrap().to_string();
    app.post(&format!("/admin/pricing-models/{model_id}"), As::Admin, json!({"default_price": free_id})).await.ok();
    (model_id, free_id)
}

/// The processor customers the test processor holds.
pub async fn processor_customers(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM tp_objects WHERE kind = 'customer'")
        .fetch_one(app.state.store.reader())
        .await
        .unwrap()
}

/// Waits for the customer's processor customer (created in the background after the
/// customer) and returns it.
pub async fn processor_customer_of(app: &TestApp, customer: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let c = app.get(&format!("/admin/customers/{customer}"), As::Admin).await.ok();
        if let Some(pc) = c["processor_customer"].as_str() {
            return pc.to_string();
        }
        assert!(std::time::Instant::now() < deadline, "no processor customer for {customer}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The side effects every creation path owes (SPEC §3): pricing model, free subscription,
/// `customer.created` and `subscription.created` events, and the processor customer (with the
/// Kassa customer's id in its metadata).
pub async fn assert_created_with_side_effects(app: &TestApp, customer: &Value, model: &str, free_price: &str) {
    let id = customer["id"].as_str().unwrap();
    let pc = processor_customer_of(app, id).await;
    let at_processor = app.state.test_processor.clone().unwrap().object(&pc).await.unwrap();
    assert_eq!(at_processor["metadata"]["kassa_customer_id"], id);
    assert_eq!(customer["pricing_model"], model, "{customer}");
    let subs = app.get(&format!("/admin/customers/{id}/subscriptions"), As::Admin).await.ok();
    let subs = subs["data"].as_array().unwrap();
    assert_eq!(subs.len(), 1, "one free subscription");
    assert_eq!(subs[0]["price"], free_price);
    assert_eq!(subs[0]["status"], "active");
    assert!(subs[0]["current_period_end"].as_i64().unwrap() > subs[0]["current_period_start"].as_i64().unwrap());
    let events = app.get(&format!("/admin/events?object={id}&type=customer.created"), As::Admin).await.ok();
    assert_eq!(events["data"].as_array().unwrap().len(), 1);
    let sub_id = subs[0]["id"].as_str().unwrap();
    let events = app.get(&format!("/admin/events?object={sub_id}&type=subscription.created"), As::Admin).await.ok();
    assert_eq!(events["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn admin_created_customers_get_every_side_effect() {
    let app = spawn_app().await;
    let (model, free) = free_plan(&app).await;
    let c = app.post("/admin/customers", As::Admin, json!({"email": "Ada@Example.com", "name": "Ada"})).await.ok();
    assert!(c["id"].as_str().unwrap().starts_with("cus_"));
    assert_eq!(c["guest"], false);
    assert_created_with_side_effects(&app, &c, &model, &free).await;

    // An explicit pricing model wins over the default; it has no free price: no subscription.
    let other = app.post("/admin/pricing-models", As::Admin, json!({"name": "Other"})).await.ok();
    let c2 = app
        .post("/admin/customers", As::Admin, json!({"email": "b@example.com", "pricing_model": other["id"]}))
        .await
        .ok();
    assert_eq!(c2["pricing_model"], other["id"]);
    let subs = app.get(&format!("/admin/customers/{}/subscriptions", c2["id"].as_str().unwrap()), As::Admin).await.ok();
    assert_eq!(subs["data"].as_array().unwrap().len(), 0);

    for (body, param) in [
        (json!({"email": "not-an-email"}), "email"),
        (json!({"pricing_model": "pmod_00000000000000000000000000"}), "pricing_model"),
        (json!({"nickname": "x"}), "nickname"),
    ] {
        let r = app.post("/admin/customers", As::Admin, body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert_eq!(r.error_param(), param);
    }
    let dup = app.post("/admin/customers", As::Admin, json!({"external_id": "u1"})).await.ok();
    let r = app.post("/admin/customers", As::Admin, json!({"external_id": "u1"})).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.error_code(), "customer_exists");
    assert!(r.body["error"]["message"].as_str().unwrap().contains(dup["id"].as_str().unwrap()));
    assert_eq!(customer_count(&app).await, 3);

    let updated = app
        .post(&format!("/admin/customers/{}", c["id"].as_str().unwrap()), As::Admin, json!({"name": "Ada L."}))
        .await
        .ok();
    assert_eq!(updated["name"], "Ada L.");
    assert_eq!(updated["email"], "Ada@Example.com");
    let by_email = app.get("/admin/customers?email=ada@example.COM", As::Admin).await.ok();
    assert_eq!(by_email["data"].as_array().unwrap().len(), 1);
}

/// The processor customer is durable work, not a spawned task: a customer created while the
/// processor is down gets it later from the background job, without any payment asking, and
/// exactly once.
#[tokio::test]
async fn a_processor_customer_missed_at_creation_is_made_later_by_the_job() {
    let app = spawn_app().await;
    let tp = app.state.test_processor.clone().unwrap();
    tp.set_available(false);
    let c = app.post("/admin/customers", As::Admin, json!({"email": "later@example.com"})).await.ok();
    let id = c["id"].as_str().unwrap();
    // The job tried and failed (processor down); it waits before trying again.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let now = app.get(&format!("/admin/customers/{id}"), As::Admin).await.ok();
    assert!(now["processor_customer"].is_null(), "{now}");
    assert_eq!(processor_customers(&app).await, 0);

    tp.set_available(true);
    app.state.clock.advance(120);
    let pc = processor_customer_of(&app, id).await;
    assert!(pc.starts_with("cus_"), "{pc}");
    assert_eq!(processor_customers(&app).await, 1);
}

#[tokio::test]
async fn first_sight_of_a_signed_in_customer_creates_them_once() {
    let app = app_with_sign_in().await;
    let (model, free) = free_plan(&app).await;
    let token = hs_token(
        json!({"sub": "user-42", "email": "grace@example.com", "name": "Grace", "exp": now() + 600, "iss": "https://auth.shop.test", "aud": "kassa"}),
    );
    let me = app.get("/store/customers/me", As::Customer(&token)).await.ok();
    assert_eq!(me["external_id"], "user-42");
    assert_eq!(me["email"], "grace@example.com");
    assert_eq!(me["name"], "Grace");
    assert_created_with_side_effects(&app, &me, &model, &free).await;
    let again = app.get("/store/customers/me", As::Customer(&token)).await.ok();
    assert_eq!(again["id"], me["id"]);
    assert_eq!(customer_count(&app).await, 1);
    // Without a token there is no "me".
    assert_eq!(app.get("/store/customers/me", As::Store).await.status, 401);
}

#[tokio::test]
async fn fifty_concurrent_first_sights_make_one_customer() {
    let app = app_with_sign_in().await;
    let token = hs_token(claims("racer"));
    let results =
        futures::future::join_all((0..50).map(|_| app.get("/store/customers/me", As::Customer(&token)))).await;
    let ids: std::collections::HashSet<String> =
        results.into_iter().map(|r| r.ok()["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(customer_count(&app).await, 1);
    let events = app.get("/admin/events?type=customer.created", As::Admin).await.ok();
    assert_eq!(events["data"].as_array().unwrap().len(), 1);
    processor_customer_of(&app, ids.iter().next().unwrap()).await;
    assert_eq!(processor_customers(&app).await, 1, "one processor customer");
}

#[tokio::test]
async fn bad_tokens_are_401_and_create_nothing() {
    let app = app_with_sign_in().await;
    let t = now();
    let other_key = EncodingKey::from_secret(b"another-secret-another-secret-another-secret");
    let bad = [
        ("expired", hs_token(json!({"sub": "a", "exp": t - 120, "iss": "https://auth.shop.test", "aud": "kassa"}))),
        (
            "not yet valid",
            hs_token(
                json!({"sub": "b", "exp": t + 600, "nbf": t + 300, "iss": "https://auth.shop.test", "aud": "kassa"}),
            ),
        ),
        (
            "wrong audience",
            hs_token(json!({"sub": "c", "exp": t + 600, "iss": "https://auth.shop.test", "aud": "someone-else"})),
        ),
        ("wrong issuer", hs_token(json!({"sub": "d", "exp": t + 600, "iss": "https://evil.test", "aud": "kassa"}))),
        ("no exp", hs_token(json!({"sub": "e", "iss": "https://auth.shop.test", "aud": "kassa"}))),
        ("wrongly signed", encode(&Header::new(Algorithm::HS256), &claims("f"), &other_key).unwrap()),
        ("alg none", {
            use base64::Engine;
            let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
            format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), b64(&claims("g")))
        }),
        (
            "alg swapped to HS512",
            encode(&Header::new(Algorithm::HS512), &claims("h"), &EncodingKey::from_secret(HS_SECRET.as_bytes()))
                .unwrap(),
        ),
        ("garbage", "not.a.token".to_string()),
    ];
    for (why, token) in bad {
        let r = app.get("/store/customers/me", As::Customer(&token)).await;
        assert_eq!(r.status, 401, "{why}: {}", r.text);
        assert_eq!(r.body["error"]["type"], "authentication_error", "{why}");
    }
    assert_eq!(customer_count(&app).await, 0, "nothing was created");
}

#[tokio::test]
async fn rs256_eddsa_and_jwks_keys_are_accepted() {
    let rsa_private = std::fs::read(format!("{FIXTURES}/rsa_private.pem")).unwrap();
    let ed_private = std::fs::read(format!("{FIXTURES}/ed25519_private.pem")).unwrap();

    let app =
        spawn_app_with(|s| s.customer_auth.jwt_public_key_file = Some(format!("{FIXTURES}/rsa_public.pem").into()))
            .await;
    let t = encode(
        &Header::new(Algorithm::RS256),
        &json!({"sub": "rsa-user", "exp": now() + 60}),
        &EncodingKey::from_rsa_pem(&rsa_private).unwrap(),
    )
    .unwrap();
    assert_eq!(app.get("/store/customers/me", As::Customer(&t)).await.ok()["external_id"], "rsa-user");
    // An HS256 token "signed" with the public key must not pass (algorithm confusion).
    let public = std::fs::read(format!("{FIXTURES}/rsa_public.pem")).unwrap();
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "x", "exp": now() + 60}),
        &EncodingKey::from_secret(&public),
    )
    .unwrap();
    assert_eq!(app.get("/store/customers/me", As::Customer(&forged)).await.status, 401);

    let app =
        spawn_app_with(|s| s.customer_auth.jwt_public_key_file = Some(format!("{FIXTURES}/ed25519_public.pem").into()))
            .await;
    let t = encode(
        &Header::new(Algorithm::EdDSA),
        &json!({"sub": "ed-user", "exp": now() + 60}),
        &EncodingKey::from_ed_pem(&ed_private).unwrap(),
    )
    .unwrap();
    assert_eq!(app.get("/store/customers/me", As::Customer(&t)).await.ok()["external_id"], "ed-user");

    let app = spawn_app_with(|s| s.customer_auth.jwks_file = Some(format!("{FIXTURES}/jwks.json").into())).await;
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa-1".into());
    let t = encode(
        &header,
        &json!({"sub": "jwks-user", "exp": now() + 60}),
        &EncodingKey::from_rsa_pem(&rsa_private).unwrap(),
    )
    .unwrap();
    assert_eq!(app.get("/store/customers/me", As::Customer(&t)).await.ok()["external_id"], "jwks-user");
    header.kid = Some("unknown".into());
    let t = encode(
        &header,
        &json!({"sub": "jwks-user", "exp": now() + 60}),
        &EncodingKey::from_rsa_pem(&rsa_private).unwrap(),
    )
    .unwrap();
    assert_eq!(app.get("/store/customers/me", As::Customer(&t)).await.status, 401);
}

#[tokio::test]
async fn tokens_are_refused_when_sign_in_is_not_configured() {
    let app = spawn_app().await;
    let r = app.get("/store/customers/me", As::Customer(&hs_token(claims("u")))).await;
    assert_eq!(r.status, 401);
}
