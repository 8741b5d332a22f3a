//! Bad input gets a 400 naming the parameter and changes nothing, on SQLite and PostgreSQL
//! alike: U+0000 in every string the API takes (JSON bodies, the hosted pages' forms, query
//! parameters, path parameters), every integer at its bound + 1 and at the ends of `i64`; and a
//! body over the limit (413) leaves the client able to go on.

use crate::checkout::{THREE_DS, VISA, card_token, eventually};
use crate::customers::{HS_SECRET, claims, hs_token};
use crate::helpers::*;
use kassa_server::config::CaptureMode;
use serde_json::{Value, json};

/// Objects of every kind, made through the API, for the cases to aim at.
struct World {
    token: String,
    product: String,
    price: String,
    region: String,
    shipping: String,
    pricing_model: String,
    customer: String,
    cart: String,
    line: String,
    order: String,
    session: String,
    /// The session's hosted page (its path).
    page: String,
    intent: String,
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_string()
}

/// A shop with manual capture (so its order can still be captured) and a signed-in shopper.
async fn world() -> (TestApp, World) {
    let app = spawn_app_with(|s| {
        s.customer_auth.jwt_hs256_secret = Some(HS_SECRET.into());
        s.customer_auth.issuer = Some("https://auth.shop.test".into());
        s.customer_auth.audience = Some("kassa".into());
        s.checkout.capture = CaptureMode::Manual;
    })
    .await;
    let token = hs_token(claims("bad-input-shopper"));
    let me = As::Customer(&token);
    let pricing_model = id(&app.post("/admin/pricing-models", As::Admin, json!({"name": "Plans"})).await.ok());
    let region = id(&app
        .post(
            "/admin/regions",
            As::Admin,
            json!({"name": "US", "currency": "usd", "countries": ["US"], "tax_rates": [{"name": "Tax", "percentage": "10"}]}),
        )
        .await
        .ok());
    let shipping = id(&app
        .post("/admin/shipping-options", As::Admin, json!({"name": "Post", "region": region, "amount": 500}))
        .await
        .ok());
    let (product, price) = app.product_with_price("Mug", 100, Some(50)).await;
    let customer = id(&app.post("/admin/customers", As::Admin, json!({"email": "credits@example.com"})).await.ok());
    app.post(&format!("/admin/customers/{customer}/credits/adjust"), As::Admin, json!({"amount": 5, "reason": "gift"}))
        .await
        .ok();
    let new_cart = |n: i64| {
        json!({"region": region, "email": "shopper@example.com", "items": [{"price": price, "quantity": n}],
               "shipping_address": {"line1": "1 Main St", "city": "Springfield", "country": "US"}})
    };
    // A paid cart (the order), an open one (with a line) and one with a hosted checkout session.
    let paid = id(&app.post("/store/carts", me, new_cart(2)).await.ok());
    let t = card_token(&app, VISA).await;
    let result = app.post(&format!("/store/carts/{paid}/pay"), me, json!({"confirmation_token": t})).await.ok();
    let order = result["order"]["id"].as_str().unwrap_or_else(|| panic!("no order: {result}")).to_string();
    let open = app.post("/store/carts", me, new_cart(1)).await.ok();
    let (cart, line) = (id(&open), open["items"][0]["id"].as_str().unwrap().to_string());
    let hosted = id(&app.post("/store/carts", me, new_cart(1)).await.ok());
    let session = app
        .post(
            &format!("/store/carts/{hosted}/checkout-sessions"),
            me,
            json!({"success_url": "https://shop.example/ok", "cancel_url": "https://shop.example/cart"}),
        )
        .await
        .ok();
    let page = session["url"].as_str().unwrap().trim_start_matches(&app.address).to_string();
    let session = id(&session);
    // A payment waiting for 3-D Secure: its challenge page takes a form.
    let challenged = id(&app.post("/store/carts", me, new_cart(1)).await.ok());
    let t = card_token(&app, THREE_DS).await;
    let r = app
        .post(
            &format!("/store/carts/{challenged}/pay"),
            me,
            json!({"confirmation_token": t, "return_url": "https://shop.example/back"}),
        )
        .await
        .ok();
    let url = r["next_action"]["redirect_url"].as_str().unwrap_or_else(|| panic!("no challenge: {r}"));
    let intent = url.rsplit('/').next().unwrap().split('?').next().unwrap().to_string();
    // Processor customers are made in the background; the snapshots must not see that happen.
    eventually("every customer has its processor customer", || async {
        let list = app.get("/admin/customers?limit=100", As::Admin).await.ok();
        list["data"].as_array().unwrap().iter().all(|c| c["processor_customer"].is_string())
    })
    .await;
    let w = World {
        token,
        product,
        price,
        region,
        shipping,
        pricing_model,
        customer,
        cart,
        line,
        order,
        session,
        page,
        intent,
    };
    (app, w)
}

/// Who calls a path: the admin API with the secret key, the rest as the signed-in shopper.
fn caller<'a>(path: &str, w: &'a World) -> As<'a> {
    if path.starts_with("/admin/") || path.starts_with("/test-processor/v1/c") && !path.contains("confirmation") {
        As::Admin
    } else {
        As::Customer(&w.token)
    }
}

#[track_caller]
fn assert_refused(r: &Res, param: &str, what: &str) {
    assert_eq!(r.status, 400, "{what}: {}", r.text);
    assert_eq!(r.body["error"]["type"], "invalid_request_error", "{what}: {}", r.text);
    assert_eq!(r.error_param(), param, "{what}: {}", r.text);
}

/// What the shop holds, as the API shows it: equal before and after refused requests means
/// nothing was stored. (Timestamps such as `updated` are part of it.)
async fn snapshot(app: &TestApp, w: &World) -> Vec<Value> {
    let me = As::Customer(&w.token);
    let mut all = Vec::new();
    for (path, who) in [
        (format!("/admin/products/{}", w.product), As::Admin),
        ("/admin/products?limit=100".to_string(), As::Admin),
        ("/admin/prices?limit=100".to_string(), As::Admin),
        ("/admin/pricing-models?limit=100".to_string(), As::Admin),
        ("/admin/regions?limit=100".to_string(), As::Admin),
        ("/admin/shipping-options?limit=100".to_string(), As::Admin),
        ("/admin/customers?limit=100".to_string(), As::Admin),
        (format!("/admin/customers/{}/credits?limit=100", w.customer), As::Admin),
        ("/admin/orders?limit=100".to_string(), As::Admin),
        (format!("/admin/orders/{}/refunds", w.order), As::Admin),
        (format!("/store/carts/{}", w.cart), me),
        (format!("/store/checkout-sessions/{}", w.session), me),
    ] {
        let r = app.get(&path, who).await;
        assert!(r.status.is_success(), "{path}: {}", r.text);
        all.push(r.body);
    }
    all
}

fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// No text anywhere in the shop, nor in any recorded event, holds a U+0000.
async fn assert_no_nul_stored(app: &TestApp, w: &World) {
    let mut answers = snapshot(app, w).await;
    let mut after = String::new();
    loop {
        let r = app.get(&format!("/admin/events?limit=100{after}"), As::Admin).await.ok();
        let data = r["data"].as_array().unwrap().clone();
        answers.push(r.clone());
        if r["has_more"] != true || data.is_empty() {
            break;
        }
        after = format!("&starting_after={}", id(data.last().unwrap()));
    }
    for a in answers {
        assert!(!has_nul(&a), "a NUL was stored: {a}");
    }
}

// ---------------------------------------------------------------- U+0000

/// Every path and query parameter of every documented operation, from `/openapi.json`.
#[tokio::test]
async fn u0000_in_any_path_or_query_parameter_is_a_400_naming_it() {
    let (app, w) = world().await;
    let before = snapshot(&app, &w).await;
    let doc = app.get("/openapi.json", As::Nobody).await.ok();
    let mut cases = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Ok(method) = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()) else { continue };
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let in_path: Vec<&str> =
                params.iter().filter(|p| p["in"] == "path").map(|p| p["name"].as_str().unwrap()).collect();
            let fill = |nul: Option<&str>| {
                in_path.iter().fold(path.clone(), |p, name| {
                    let value = if Some(*name) == nul { "a%00b" } else { "x_00000000000000000000000000" };
                    p.replace(&format!("{{{name}}}"), value)
                })
            };
            let body = (method == reqwest::Method::POST).then_some("{}");
            for p in &params {
                let name = p["name"].as_str().unwrap();
                let target = match p["in"].as_str() {
                    Some("path") => fill(Some(name)),
                    Some("query") => format!("{}?{name}=a%00b", fill(None)),
                    _ => continue,
                };
                let r = app.request(method.clone(), &target, caller(path, &w), body, None).await;
                assert_refused(&r, name, &format!("{method} {target}"));
                cases += 1;
            }
        }
    }
    assert!(cases >= 70, "only {cases} parameters were tried");
    // The issue's own examples, and a path parameter that is not UTF-8.
    let r = app.get("/admin/orders?starting_after=%00x", As::Admin).await;
    assert_refused(&r, "starting_after", "list cursor");
    let r = app.get("/admin/customers?email=a%00b%40example.com", As::Admin).await;
    assert_refused(&r, "email", "list filter");
    let r = app.get("/admin/customers/cus_%ff", As::Admin).await;
    assert_refused(&r, "id", "a path parameter that is not UTF-8");
    let r = app.get(&format!("/admin/orders?starting_after={}", w.order), As::Admin).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(snapshot(&app, &w).await, before);
    assert_no_nul_stored(&app, &w).await;
}

/// Follows `$ref`s of the document.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => resolve(doc, doc.pointer(r.trim_start_matches('#')).unwrap_or(&Value::Null)),
        None => schema,
    }
}

/// The paths (`items[0].price`, `metadata.k`) of every string a request body schema has.
fn string_fields(doc: &Value, schema: &Value, path: &str, out: &mut Vec<String>, depth: usize) {
    if depth > 8 {
        return;
    }
    let schema = resolve(doc, schema);
    for key in ["oneOf", "anyOf", "allOf"] {
        for s in schema[key].as_array().into_iter().flatten() {
            string_fields(doc, s, path, out, depth + 1);
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let join = |k: &str| if path.is_empty() { k.to_string() } else { format!("{path}.{k}") };
    if types.contains(&"string") && !path.is_empty() && !out.iter().any(|p| p == path) {
        out.push(path.to_string());
    }
    for (k, v) in schema["properties"].as_object().into_iter().flatten() {
        string_fields(doc, v, &join(k), out, depth + 1);
    }
    if schema["additionalProperties"].is_object() {
        string_fields(doc, &schema["additionalProperties"], &join("k"), out, depth + 1);
    }
    if types.contains(&"array") {
        string_fields(doc, &schema["items"], &format!("{path}[0]"), out, depth + 1);
    }
}

/// A body holding `value` at `path` (`items[0].price`) and nothing else.
fn body_at(path: &str, value: Value) -> Value {
    let mut segments: Vec<&str> = path.split('.').collect();
    let last = segments.pop().unwrap();
    let leaf = match last.strip_suffix("[0]") {
        Some(name) => json!({ name: [value] }),
        None => json!({ last: value }),
    };
    segments.into_iter().rev().fold(leaf, |inner, seg| match seg.strip_suffix("[0]") {
        Some(name) => json!({ name: [inner] }),
        None => json!({ seg: inner }),
    })
}

/// Every string field of every JSON request body in `/openapi.json`, one at a time.
#[tokio::test]
async fn u0000_in_any_string_of_a_json_body_is_a_400_naming_it() {
    let (app, w) = world().await;
    let before = snapshot(&app, &w).await;
    let doc = app.get("/openapi.json", As::Nobody).await.ok();
    let mut cases = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let Some(op) = item.get("post") else { continue };
        let Some(schema) = op.pointer("/requestBody/content/application~1json/schema") else { continue };
        let mut fields = Vec::new();
        string_fields(&doc, schema, "", &mut fields, 0);
        let target = path.replace("{id}", "x_00000000000000000000000000").replace("{line}", "li_0");
        for field in fields {
            let body = body_at(&field, json!("a\u{0}b")).to_string();
            assert!(body.contains("\\u0000"), "{body}");
            let r = app.request(reqwest::Method::POST, &target, caller(path, &w), Some(&body), None).await;
            assert_refused(&r, &field, &format!("POST {path} {body}"));
            cases += 1;
        }
    }
    assert!(cases >= 60, "only {cases} string fields were tried");
    // A NUL in a metadata key names the key; an escaped backslash before "u0000" is no NUL.
    let r = app.post("/admin/products", As::Admin, json!({"name": "Mug", "metadata": {"a\u{0}b": "v"}})).await;
    assert_refused(&r, "metadata.a\\u0000b", "a metadata key");
    let r = app.post("/admin/products", As::Admin, json!({"name": "C:\\u0000"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["name"], "C:\\u0000");
    let after = snapshot(&app, &w).await;
    // Only the product made on purpose above is new.
    assert_eq!(after[1]["data"].as_array().unwrap().len(), before[1]["data"].as_array().unwrap().len() + 1);
    assert_eq!(
        [&after[0], &after[2], &after[3], &after[4], &after[5]],
        [&before[0], &before[2], &before[3], &before[4], &before[5]]
    );
    assert_eq!(after[6..], before[6..]);
    assert_no_nul_stored(&app, &w).await;
}

/// Whole, otherwise valid requests with one NUL, and the hosted pages' forms: refused, and the
/// objects they aimed at are as they were.
#[tokio::test]
async fn u0000_in_real_requests_changes_nothing() {
    let (app, w) = world().await;
    let me = As::Customer(&w.token);
    let before = snapshot(&app, &w).await;
    let nul = "a\u{0}b";
    let address = |line1: &str| json!({"line1": line1, "city": "Springfield", "country": "US"});
    let cases: Vec<(String, As, Value, &str)> = vec![
        ("/admin/products".into(), As::Admin, json!({"name": nul, "description": "d"}), "name"),
        (format!("/admin/products/{}", w.product), As::Admin, json!({"description": nul}), "description"),
        (format!("/admin/products/{}", w.product), As::Admin, json!({"metadata": {"k": nul}}), "metadata.k"),
        (
            "/admin/prices".into(),
            As::Admin,
            json!({"product": w.product, "currency": "usd", "unit_amount": 1, "nickname": nul}),
            "nickname",
        ),
        (format!("/admin/prices/{}", w.price), As::Admin, json!({"nickname": nul}), "nickname"),
        (format!("/admin/pricing-models/{}", w.pricing_model), As::Admin, json!({"name": nul}), "name"),
        (format!("/admin/regions/{}", w.region), As::Admin, json!({"name": nul}), "name"),
        (
            format!("/admin/regions/{}", w.region),
            As::Admin,
            json!({"tax_rates": [{"name": nul, "percentage": "5"}]}),
            "tax_rates[0].name",
        ),
        (format!("/admin/shipping-options/{}", w.shipping), As::Admin, json!({"name": nul}), "name"),
        ("/admin/customers".into(), As::Admin, json!({"email": "a\u{0}@example.com"}), "email"),
        ("/admin/customers".into(), As::Admin, json!({"name": nul}), "name"),
        (format!("/admin/customers/{}", w.customer), As::Admin, json!({"name": nul}), "name"),
        (
            format!("/admin/customers/{}/credits/adjust", w.customer),
            As::Admin,
            json!({"amount": 1, "reason": nul}),
            "reason",
        ),
        (
            format!("/admin/customers/{}/credits/debit", w.customer),
            As::Admin,
            json!({"amount": 1, "reason": nul}),
            "reason",
        ),
        (format!("/admin/orders/{}/refunds", w.order), As::Admin, json!({"amount": 1, "reason": nul}), "reason"),
        (
            "/store/carts".into(),
            me,
            json!({"region": w.region, "shipping_address": address(nul)}),
            "shipping_address.line1",
        ),
        (
            "/store/carts".into(),
            me,
            json!({"region": w.region, "items": [{"price": w.price}, {"price": nul}]}),
            "items[1].price",
        ),
        (format!("/store/carts/{}", w.cart), me, json!({"email": "x\u{0}@example.com"}), "email"),
        (format!("/store/carts/{}", w.cart), me, json!({"billing_address": address(nul)}), "billing_address.line1"),
        (format!("/store/carts/{}", w.cart), me, json!({"metadata": {"gift": nul}}), "metadata.gift"),
        (format!("/store/carts/{}/line-items", w.cart), me, json!({"price": nul}), "price"),
        (
            format!("/store/carts/{}/pay", w.cart),
            me,
            json!({"payment_method": "pm_card_visa", "return_url": format!("https://x.example/{nul}")}),
            "return_url",
        ),
        (format!("/store/carts/{}/checkout-sessions", w.cart), me, json!({"success_url": nul}), "success_url"),
        (
            "/store/credits/sessions".into(),
            me,
            json!({"credits": 10, "success_url": "https://x.example", "cancel_url": nul}),
            "cancel_url",
        ),
        (
            "/test-processor/v1/confirmation_tokens".into(),
            As::Store,
            json!({"card": {"number": "4242\u{0}4242424242424242", "exp_month": 1, "exp_year": 2040}}),
            "card.number",
        ),
    ];
    for (path, who, body, param) in cases {
        let r = app.post(&path, who, body.clone()).await;
        assert_refused(&r, param, &format!("POST {path} {body}"));
    }
    assert_eq!(snapshot(&app, &w).await, before);

    // The hosted pages re-render with the problem (their forms come from browsers).
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let form = |path: String, body: &'static str| {
        let http = no_redirects.clone();
        let url = format!("{}{path}", app.address);
        async move {
            let r = http
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, page) = form(w.page.clone(), "method=card&number=4242%004242&exp=12%2F34&cvc=123").await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("number must not contain U+0000"), "{page}");
    let (status, page) = form(format!("/test-processor/authenticate/{}", w.intent), "outcome=complete%00").await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("outcome must not contain U+0000"), "{page}");
    // Both still work: the session is open, the payment still waits for its challenge.
    let s = app.get(&format!("/store/checkout-sessions/{}", w.session), me).await.ok();
    assert_eq!(s["status"], "open");
    let (status, _) = form(format!("/test-processor/authenticate/{}", w.intent), "outcome=fail").await;
    assert!(matches!(status, 200 | 303), "{status}");

    // A customer token whose claims hold a NUL signs nobody in (and creates nobody).
    let customers = app.get("/admin/customers?limit=100", As::Admin).await.ok()["data"].as_array().unwrap().len();
    let bad = hs_token(claims("sub\u{0}x"));
    let r = app.get("/store/customers/me", As::Customer(&bad)).await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(
        app.get("/admin/customers?limit=100", As::Admin).await.ok()["data"].as_array().unwrap().len(),
        customers
    );
    assert_no_nul_stored(&app, &w).await;
}

// ---------------------------------------------------------------- integer bounds

const MAX: i64 = i64::MAX;
const MIN: i64 = i64::MIN;

/// Every integer of the API at its bound + 1 (and − 1 below), at 2^63 − 1 and at −2^63.
#[tokio::test]
async fn every_integer_past_its_bound_is_a_400_naming_it() {
    let (app, w) = world().await;
    let me = As::Customer(&w.token);
    let before = snapshot(&app, &w).await;
    let (p, c, o) = (w.product.clone(), w.customer.clone(), w.order.clone());
    // (path, caller, body for a value, param, values past the bounds)
    type Body = Box<dyn Fn(i64) -> Value>;
    let price = w.price.clone();
    let region = w.region.clone();
    let cases: Vec<(String, As, Body, &str, Vec<i64>)> = vec![
        (
            "/admin/products".into(),
            As::Admin,
            Box::new(|v| json!({"name": "x", "inventory": {"quantity": v}})),
            "inventory.quantity",
            vec![1_000_000_001, MAX, -1, MIN],
        ),
        (
            format!("/admin/products/{p}"),
            As::Admin,
            Box::new(|v| json!({"inventory": {"quantity": v}})),
            "inventory.quantity",
            vec![1_000_000_001, MAX, -1, MIN],
        ),
        (
            "/admin/prices".into(),
            As::Admin,
            {
                let p = p.clone();
                Box::new(move |v| json!({"product": p, "currency": "usd", "unit_amount": v}))
            },
            "unit_amount",
            vec![100_000_000, MAX, -1, MIN],
        ),
        (
            "/admin/prices".into(),
            As::Admin,
            {
                let p = p.clone();
                Box::new(
                    move |v| json!({"product": p, "currency": "usd", "unit_amount": 1, "recurring": {"interval": "month", "interval_count": v}}),
                )
            },
            "recurring.interval_count",
            vec![366, MAX, 0, MIN],
        ),
        (
            "/admin/shipping-options".into(),
            As::Admin,
            {
                let r = region.clone();
                Box::new(move |v| json!({"name": "x", "region": r, "amount": v}))
            },
            "amount",
            vec![100_000_000, MAX, -1, MIN],
        ),
        (
            format!("/admin/shipping-options/{}", w.shipping),
            As::Admin,
            Box::new(|v| json!({"amount": v})),
            "amount",
            vec![100_000_000, MAX, -1, MIN],
        ),
        (
            "/store/carts".into(),
            me,
            {
                let (r, pr) = (region.clone(), price.clone());
                Box::new(move |v| json!({"region": r, "items": [{"price": pr, "quantity": v}]}))
            },
            "items[0].quantity",
            vec![1_000_001, MAX, 0, MIN],
        ),
        (
            format!("/store/carts/{}/line-items", w.cart),
            me,
            {
                let pr = price.clone();
                Box::new(move |v| json!({"price": pr, "quantity": v}))
            },
            "quantity",
            vec![1_000_001, MAX, 0, MIN],
        ),
        (
            format!("/store/carts/{}/line-items/{}", w.cart, w.line),
            me,
            Box::new(|v| json!({"quantity": v})),
            "quantity",
            vec![1_000_001, MAX, -1, MIN],
        ),
        (
            "/store/credits/sessions".into(),
            me,
            Box::new(|v| json!({"credits": v, "success_url": "https://shop.example"})),
            "credits",
            vec![1_000_001, MAX, 0, MIN],
        ),
        (
            format!("/admin/customers/{c}/credits/debit"),
            As::Admin,
            Box::new(|v| json!({"amount": v})),
            "amount",
            vec![1_000_000_000_000, MAX, 0, MIN],
        ),
        (
            format!("/admin/customers/{c}/credits/adjust"),
            As::Admin,
            Box::new(|v| json!({"amount": v, "reason": "r"})),
            "amount",
            vec![1_000_000_000_000, MAX, -1_000_000_000_000, MIN],
        ),
        (
            format!("/admin/orders/{o}/capture"),
            As::Admin,
            Box::new(|v| json!({"amount": v})),
            "amount",
            vec![100_000_000, MAX, 0, MIN],
        ),
        (
            format!("/admin/orders/{o}/refunds"),
            As::Admin,
            Box::new(|v| json!({"amount": v})),
            "amount",
            vec![100_000_000, MAX, 0, MIN],
        ),
        (
            "/test-processor/v1/confirmation_tokens".into(),
            As::Store,
            Box::new(|v| json!({"card": {"number": VISA, "exp_month": v, "exp_year": 2040}})),
            "card.exp_month",
            vec![13, MAX, 0, MIN],
        ),
        (
            "/test-processor/v1/confirmation_tokens".into(),
            As::Store,
            Box::new(|v| json!({"card": {"number": VISA, "exp_month": 1, "exp_year": v}})),
            "card.exp_year",
            vec![10_000, MAX, -1, MIN],
        ),
    ];
    for (path, who, body, param, values) in &cases {
        for v in values {
            let r = app.post(path, *who, body(*v)).await;
            assert_refused(&r, param, &format!("POST {path} {}", body(*v)));
        }
        // Past i64 altogether (2^63 and −2^63 − 1): still the parameter's 400.
        for raw in ["9223372036854775808", "-9223372036854775809", "1e30"] {
            let text = body(7_777_777).to_string().replace("7777777", raw);
            let r = app.request(reqwest::Method::POST, path, *who, Some(&text), None).await;
            assert_refused(&r, param, &format!("POST {path} {text}"));
        }
    }
    for list in ["/admin/products", "/admin/events", "/store/products", "/admin/customers", "/store/orders"] {
        let who = if list.starts_with("/store") { me } else { As::Admin };
        for v in ["101", "0", "9223372036854775807", "-9223372036854775808", "9223372036854775808"] {
            let r = app.get(&format!("{list}?limit={v}"), who).await;
            assert_refused(&r, "limit", &format!("{list}?limit={v}"));
        }
    }
    assert_eq!(snapshot(&app, &w).await, before);
}

/// The issue's own 500: a huge adjustment on a positive balance. And the balance itself is
/// bounded: an adjustment within bounds that would take it past the largest balance is a 409.
#[tokio::test]
async fn credit_balances_never_overflow() {
    let (app, w) = world().await;
    let path = format!("/admin/customers/{}/credits/adjust", w.customer);
    let r = app.post(&path, As::Admin, json!({"amount": i64::MAX, "reason": "overflow"})).await;
    assert_refused(&r, "amount", "2^63 − 1 credits");
    let top = 999_999_999_999_i64;
    let r = app.post(&path, As::Admin, json!({"amount": top, "reason": "too much"})).await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.error_code(), "credit_balance_limit");
    let r = app.post(&path, As::Admin, json!({"amount": top - 5, "reason": "all of it"})).await.ok();
    assert_eq!(r["balance_after"], top);
    let r = app.post(&path, As::Admin, json!({"amount": 1, "reason": "one more"})).await;
    assert_eq!(r.error_code(), "credit_balance_limit", "{}", r.text);
    let r = app
        .post(&format!("/admin/customers/{}/credits/debit", w.customer), As::Admin, json!({"amount": top}))
        .await
        .ok();
    assert_eq!(r["balance_after"], 0);
    let credits = app.get(&format!("/admin/customers/{}/credits?limit=100", w.customer), As::Admin).await.ok();
    assert_eq!(credits["balance"], 0);
    let sum: i64 = credits["entries"].as_array().unwrap().iter().map(|e| e["amount"].as_i64().unwrap()).sum();
    assert_eq!(sum, 0, "the balance is the ledger's sum");
}

/// A cart may not reach a total the processor could not charge; the bound is a setting, and
/// the document says which.
#[tokio::test]
async fn cart_totals_stay_within_the_largest_amount() {
    let (app, w) = world().await;
    let me = As::Customer(&w.token);
    let (_, sticker) = app.product_with_price("Sticker", 100, None).await;
    let carts = app.get("/admin/events?type=cart.created&limit=100", As::Admin).await.ok();
    // 1,000,000 stickers at 100 = 100,000,000 > 99,999,999.
    let r = app
        .post("/store/carts", me, json!({"region": w.region, "items": [{"price": sticker, "quantity": 1_000_000}]}))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!((r.error_code(), r.error_param()), ("amount_too_large", "items[0].quantity"));
    assert_eq!(app.get("/admin/events?type=cart.created&limit=100", As::Admin).await.ok(), carts);

    let cart = app.post("/store/carts", me, json!({"region": w.region, "items": [{"price": sticker}]})).await.ok();
    let (cart_id, line) = (id(&cart), cart["items"][0]["id"].as_str().unwrap().to_string());
    let line_path = format!("/store/carts/{cart_id}/line-items/{line}");
    let r = app.post(&line_path, me, json!({"quantity": 1_000_000})).await;
    assert_eq!((r.error_code(), r.error_param()), ("amount_too_large", "quantity"), "{}", r.text);
    // The lines fit (95,000,000), the 10 % tax on top does not: refused as a whole.
    let r = app.post(&line_path, me, json!({"quantity": 950_000})).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.error_code(), "amount_too_large", "{}", r.text);
    let r = app
        .post(&format!("/store/carts/{cart_id}/line-items"), me, json!({"price": sticker, "quantity": 999_999}))
        .await;
    assert_eq!((r.error_code(), r.error_param()), ("amount_too_large", "quantity"), "{}", r.text);
    // The cart is as it was created (whose answer alone shows the client secret).
    let mut as_created = cart.clone();
    as_created.as_object_mut().unwrap().remove("client_secret");
    assert_eq!(app.get(&format!("/store/carts/{cart_id}"), me).await.ok(), as_created);
    // Right at the bound: 909,090 × 100 = 90,909,000, with tax 99,999,900.
    let full = app.post(&line_path, me, json!({"quantity": 909_090})).await.ok();
    assert_eq!(full["total"], 99_999_900);

    // A merchant selling dearer goods raises the bound; the document follows.
    let big = spawn_app_with(|s| s.checkout.max_amount = 10_000_000_000).await;
    let doc = big.get("/openapi.json", As::Nobody).await.ok();
    assert_eq!(doc["components"]["schemas"]["CreatePrice"]["properties"]["unit_amount"]["maximum"], 10_000_000_000_i64);
    let (product, _) = big.product_with_price("Machine", 5_000_000_000, None).await;
    let r = big
        .post(
            "/admin/prices",
            As::Admin,
            json!({"product": product, "currency": "usd", "unit_amount": 10_000_000_001_i64}),
        )
        .await;
    assert_refused(&r, "unit_amount", "over the configured bound");
    let doc = app.get("/openapi.json", As::Nobody).await.ok();
    assert_eq!(doc["components"]["schemas"]["CreatePrice"]["properties"]["unit_amount"]["maximum"], 99_999_999);
}

// ---------------------------------------------------------------- 413 and keep-alive

/// A body over the limit is a 413 that says `Connection: close`, so a client's next request goes
/// on a new connection and works, instead of failing on one the server is closing.
#[tokio::test]
async fn a_413_leaves_the_client_able_to_go_on() {
    let app = spawn_app_with(|s| s.server.body_limit = 64 * 1024).await;
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(1024 * 1024));
    // A pooled client, as a real one is: the answer after the 413 arrives.
    let client = reqwest::Client::new();
    for round in 0..3 {
        let r = client
            .post(format!("{}/admin/products", app.address))
            .bearer_auth(&app.secret_key)
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(r.status(), 413);
        assert_eq!(r.headers()["connection"], "close");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "request_too_large");
        let r = client.get(format!("{}/admin/products", app.address)).bearer_auth(&app.secret_key).send().await;
        let r = r.unwrap_or_else(|e| panic!("round {round}: the request after the 413 failed: {e}"));
        assert_eq!(r.status(), 200);
        // Refused before reading the body (no key): the same.
        let r = client.post(format!("{}/admin/products", app.address)).body(big.clone()).send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()["connection"], "close");
        let r = client.get(format!("{}/health", app.address)).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(app.get("/admin/products", As::Admin).await.ok()["data"], json!([]));

    // On the wire: the 413 says close and the server closes; a body that was read keeps the
    // connection open for the next request.
    let addr = app.address.trim_start_matches("http://").to_string();
    let key = app.secret_key.clone();
    tokio::task::spawn_blocking(move || raw_connections(&addr, &key, &big)).await.unwrap();
}

fn raw_connections(addr: &str, key: &str, big: &str) {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;
    let read_head = |s: &mut TcpStream| -> String {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match s.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => break,
            }
        }
        String::from_utf8_lossy(&head).to_lowercase()
    };
    let read_body = |s: &mut TcpStream, head: &str| {
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).unwrap();
    };

    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let request = format!(
        "POST /admin/products HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        big.len()
    );
    s.write_all(request.as_bytes()).unwrap();
    // The server stops reading at its limit; write the rest from another thread, as it may block.
    let mut writer = s.try_clone().unwrap();
    let rest = big.to_string();
    let sending = std::thread::spawn(move || {
        let _ = writer.write_all(rest.as_bytes());
    });
    let head = read_head(&mut s);
    assert!(head.starts_with("http/1.1 413"), "{head}");
    assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
    read_body(&mut s, &head);
    // Closed after the answer (EOF or a reset; never a hang).
    let mut rest = [0u8; 16];
    assert!(!matches!(s.read(&mut rest), Ok(n) if n > 0), "the server kept talking");
    drop(s);
    let _ = sending.join();

    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for i in 0..2 {
        let body = format!("{{\"name\": \"Mug {i}\"}}");
        let request = format!(
            "POST /admin/products HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(request.as_bytes()).unwrap();
        let head = read_head(&mut s);
        assert!(head.starts_with("http/1.1 200"), "request {i} on one connection: {head}");
        assert!(!head.contains("connection: close"), "{head}");
        read_body(&mut s, &head);
    }
}
