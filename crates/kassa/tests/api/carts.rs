use crate::customers::{app_with_sign_in, hs_token};
use crate::helpers::*;
use serde_json::{Value, json};

/// A US region with 8.875 % exclusive tax and a $5 shipping option.
pub async fn us_region(app: &Api) -> (String, String) {
    let region = app
        .post(
            "/admin/regions",
            As::Admin,
            json!({"name": "US", "currency": "usd", "countries": ["US"], "tax_rates": [{"name": "Sales tax", "percentage": "8.875"}]}),
        )
        .await
        .ok();
    let region = region["id"].as_str().unwrap().to_string();
    let ship = app
        .post("/admin/shipping-options", As::Admin, json!({"name": "Standard", "region": region, "amount": 500}))
        .await
        .ok();
    (region, ship["id"].as_str().unwrap().to_string())
}

pub fn address() -> Value {
    json!({"name": "Ada Lovelace", "line1": "1 Main St", "city": "New York", "postal_code": "10001", "country": "us"})
}

async fn product_state(app: &Api, id: &str) -> Value {
    app.get(&format!("/admin/products/{id}"), As::Admin).await.ok()["inventory"].clone()
}

#[tokio::test]
async fn cart_totals_are_computed_on_the_server() {
    let app = spawn_app().await;
    let (region, ship) = us_region(&app).await;
    let (_, shirt) = app.product_with_price("Shirt", 2500, None).await;
    let (_, mug) = app.product_with_price("Mug", 1250, None).await;
    let cart = app
        .post(
            "/store/carts",
            As::Store,
            json!({"region": region, "email": "ada@example.com", "items": [{"price": shirt, "quantity": 2}]}),
        )
        .await
        .ok();
    let id = cart["id"].as_str().unwrap();
    assert!(id.starts_with("cart_"));
    let secret = secret_of(&cart);
    let guest = As::Guest(&secret);
    assert_eq!(cart["status"], "open");
    assert_eq!(cart["currency"], "usd");
    assert_eq!(cart["subtotal"], 5000);
    assert_eq!(cart["tax_total"], 444, "8.875 % of 5000 = 443.75");
    assert_eq!(cart["total"], 5444);
    assert!(cart["customer"].as_str().unwrap().starts_with("cus_"), "the email made a guest customer");
    let v0 = cart["version"].as_i64().unwrap();

    let cart = app.post(&format!("/store/carts/{id}/line-items"), guest, json!({"price": mug})).await.ok();
    assert_eq!(cart["items"].as_array().unwrap().len(), 2);
    assert_eq!(cart["subtotal"], 6250);
    assert!(cart["version"].as_i64().unwrap() > v0);
    let cart = app
        .post(&format!("/store/carts/{id}"), guest, json!({"shipping_option": ship, "shipping_address": address()}))
        .await
        .ok();
    assert_eq!(cart["shipping_total"], 500);
    assert_eq!(cart["tax_total"], 599, "8.875 % of 6750 = 599.06");
    assert_eq!(cart["total"], 7349);
    assert_eq!(cart["shipping_address"]["country"], "US");

    // Adding the same price again raises the quantity.
    let cart =
        app.post(&format!("/store/carts/{id}/line-items"), guest, json!({"price": mug, "quantity": 2})).await.ok();
    let mug_line = cart["items"].as_array().unwrap().iter().find(|l| l["price"] == mug.as_str()).unwrap().clone();
    assert_eq!(mug_line["quantity"], 3);
    let line = mug_line["id"].as_str().unwrap();
    let cart = app.post(&format!("/store/carts/{id}/line-items/{line}"), guest, json!({"quantity": 1})).await.ok();
    assert_eq!(cart["subtotal"], 6250);
    let cart = app
        .request(reqwest::Method::DELETE, &format!("/store/carts/{id}/line-items/{line}"), guest, None, None)
        .await
        .ok();
    assert_eq!(cart["items"].as_array().unwrap().len(), 1);
    assert_eq!(cart["subtotal"], 5000);
    let got = app.get(&format!("/store/carts/{id}"), guest).await.ok();
    assert_eq!(got, cart, "reading returns what the last change answered");
}

#[tokio::test]
async fn inclusive_tax_and_currencies_without_decimals() {
    let app = spawn_app().await;
    let region = app
        .post("/admin/regions", As::Admin, json!({"name": "Japan", "currency": "jpy", "tax_rates": [{"name": "Consumption tax", "percentage": "10"}], "tax_inclusive": true}))
        .await
        .ok();
    let product = app.post("/admin/products", As::Admin, json!({"name": "Tea"})).await.ok();
    let price = app
        .post("/admin/prices", As::Admin, json!({"product": product["id"], "currency": "jpy", "unit_amount": 1100}))
        .await
        .ok();
    let cart = app
        .post(
            "/store/carts",
            As::Store,
            json!({"region": region["id"], "items": [{"price": price["id"], "quantity": 3}]}),
        )
        .await
        .ok();
    assert_eq!(cart["subtotal"], 3300);
    assert_eq!(cart["tax_total"], 300);
    assert_eq!(cart["total"], 3300, "inclusive tax is inside the prices");
}

#[tokio::test]
async fn bad_cart_input_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let (region, _) = us_region(&app).await;
    let (product, usd) = app.product_with_price("Shirt", 2500, None).await;
    let eur = app
        .post("/admin/prices", As::Admin, json!({"product": product, "currency": "eur", "unit_amount": 2300}))
        .await
        .ok();
    let monthly = app
        .post(
            "/admin/prices",
            As::Admin,
            json!({"product": product, "currency": "usd", "unit_amount": 900, "recurring": {"interval": "month"}}),
        )
        .await
        .ok();
    let cart = app.post("/store/carts", As::Store, json!({"region": region, "items": [{"price": usd}]})).await.ok();
    let id = cart["id"].as_str().unwrap().to_string();
    let secret = secret_of(&cart);
    let guest = As::Guest(&secret);
    let cases = [
        (json!({"price": eur["id"]}), "price"),
        (json!({"price": monthly["id"]}), "price"),
        (json!({"price": "price_00000000000000000000000000"}), "price"),
        (json!({"price": usd, "quantity": 0}), "quantity"),
        (json!({"price": usd, "quantity": -2}), "quantity"),
        (json!({"price": usd, "quantity": 10_000_000}), "quantity"),
        (json!({"price": usd, "quantity": 1.5}), "quantity"),
        (json!({"price": usd, "unit_amount": 1}), "unit_amount"),
    ];
    for (body, param) in cases {
        let r = app.post(&format!("/store/carts/{id}/line-items"), guest, body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert_eq!(r.error_param(), param, "{body}: {}", r.text);
    }
    for (body, param) in [
        (json!({"email": "nope"}), "email"),
        (json!({"shipping_address": {"line1": "x", "city": "y", "country": "FR"}}), "shipping_address.country"),
        (json!({"shipping_address": {"line1": "x", "city": "y", "country": "USA"}}), "shipping_address.country"),
        (json!({"shipping_address": {"city": "y", "country": "US"}}), "shipping_address.line1"),
        (json!({"shipping_option": "shipopt_00000000000000000000000000"}), "shipping_option"),
        (json!({"total": 1}), "total"),
    ] {
        let r = app.post(&format!("/store/carts/{id}"), guest, body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert_eq!(r.error_param(), param, "{body}: {}", r.text);
    }
    let after = app.get(&format!("/store/carts/{id}"), guest).await.ok();
    let mut created = cart.clone();
    created.as_object_mut().unwrap().remove("client_secret"); // shown in the creating answer only
    assert_eq!(after, created, "refused changes left the cart as it was");
    let r = app.post("/store/carts", As::Store, json!({"region": "reg_00000000000000000000000000"})).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_param(), "region");
    assert_eq!(app.get("/store/carts/cart_00000000000000000000000000", As::Store).await.status, 404);
    assert_eq!(app.get("/store/carts/cart_00000000000000000000000000", guest).await.status, 404);
}

#[tokio::test]
async fn stock_is_reserved_by_open_carts_and_released_on_expiry() {
    let app = spawn_app_with(|s| s.checkout.cart_ttl_days = 7).await;
    let (region, _) = us_region(&app).await;
    let (product, price) = app.product_with_price("Limited", 1000, Some(5)).await;
    let a = app
        .post("/store/carts", As::Store, json!({"region": region, "items": [{"price": price, "quantity": 3}]}))
        .await
        .ok();
    assert_eq!(product_state(&app, &product).await, json!({"quantity": 5, "reserved": 3, "available": 2}));
    let b = app.post("/store/carts", As::Store, json!({"region": region})).await.ok();
    let b_id = b["id"].as_str().unwrap();
    let (a_secret, b_secret) = (secret_of(&a), secret_of(&b));
    let (as_a, as_b) = (As::Guest(&a_secret), As::Guest(&b_secret));
    let r = app.post(&format!("/store/carts/{b_id}/line-items"), as_b, json!({"price": price, "quantity": 3})).await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.error_code(), "insufficient_inventory");
    app.post(&format!("/store/carts/{b_id}/line-items"), as_b, json!({"price": price, "quantity": 2})).await.ok();
    assert_eq!(product_state(&app, &product).await["available"], 0);
    // Lowering a line gives the difference back.
    let a_id = a["id"].as_str().unwrap();
    let line = a["items"][0]["id"].as_str().unwrap();
    app.post(&format!("/store/carts/{a_id}/line-items/{line}"), as_a, json!({"quantity": 1})).await.ok();
    assert_eq!(product_state(&app, &product).await, json!({"quantity": 5, "reserved": 3, "available": 2}));
    // The admin cannot count the stock below what carts hold.
    let r = app.post(&format!("/admin/products/{product}"), As::Admin, json!({"inventory": {"quantity": 2}})).await;
    assert_eq!(r.status, 409);

    // Seven idle days later the expiry job releases everything.
    app.state.clock.advance(7 * 86_400 + 60);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let a_now = app.get(&format!("/store/carts/{a_id}"), as_a).await.ok();
        let b_now = app.get(&format!("/store/carts/{b_id}"), as_b).await.ok();
        if a_now["status"] == "expired" && b_now["status"] == "expired" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "carts never expired");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(product_state(&app, &product).await, json!({"quantity": 5, "reserved": 0, "available": 5}));
    let r = app.post(&format!("/store/carts/{a_id}/line-items"), as_a, json!({"price": price})).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.error_code(), "cart_not_open");
    let events = app.get(&format!("/admin/events?type=cart.expired&object={a_id}"), As::Admin).await.ok();
    assert_eq!(events["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn concurrent_adds_never_oversell() {
    let app = spawn_app().await;
    let (region, _) = us_region(&app).await;
    let (product, price) = app.product_with_price("Scarce", 1000, Some(10)).await;
    let mut carts = Vec::new();
    for _ in 0..25 {
        let cart = app.post("/store/carts", As::Store, json!({"region": region})).await.ok();
        carts.push((format!("/store/carts/{}/line-items", cart["id"].as_str().unwrap()), secret_of(&cart)));
    }
    let results = futures::future::join_all(
        carts.iter().map(|(path, secret)| app.post(path, As::Guest(secret), json!({"price": price}))),
    )
    .await;
    let ok = results.iter().filter(|r| r.status == 200).count();
    assert!(results.iter().all(|r| r.status == 200 || r.status == 409), "only 200 or 409");
    assert_eq!(ok, 10);
    assert_eq!(product_state(&app, &product).await, json!({"quantity": 10, "reserved": 10, "available": 0}));
}

/// Carts created complete with items reserve stock of the same products in opposite orders,
/// many at once: row locks are taken in one order (product id), and a transaction the
/// database still aborts runs again inside the server, so no request fails and the stock adds
/// up (PostgreSQL used to answer `deadlock detected` as a 500 here).
#[tokio::test]
async fn carts_with_the_same_products_in_opposite_orders_never_fail() {
    let app = spawn_app().await;
    let (region, _) = us_region(&app).await;
    let mut products = Vec::new();
    for name in ["Alpha", "Beta", "Gamma"] {
        products.push(app.product_with_price(name, 100, Some(1_000_000)).await);
    }
    let price = |i: usize| products[i].1.clone();
    let orders: [&[usize]; 4] = [&[0, 1, 2], &[2, 1, 0], &[1, 0], &[0, 2, 1]];
    let (rounds, per_round) = (15, 8);
    let mut units = [0i64; 3];
    for round in 0..rounds {
        let bodies: Vec<Value> = (0..per_round)
            .map(|i| {
                let order = orders[(round + i) % orders.len()];
                let items: Vec<Value> = order.iter().map(|&p| json!({"price": price(p), "quantity": 1 + p})).collect();
                json!({"region": region, "items": items})
            })
            .collect();
        for i in 0..per_round {
            for &p in orders[(round + i) % orders.len()] {
                units[p] += 1 + p as i64;
            }
        }
        let results =
            futures::future::join_all(bodies.into_iter().map(|b| app.post("/store/carts", As::Store, b))).await;
        for r in results {
            assert_eq!(r.status, 200, "round {round}: {}", r.text);
        }
    }
    for (i, (product, _)) in products.iter().enumerate() {
        let reserved = units[i];
        assert_eq!(
            product_state(&app, product).await,
            json!({"quantity": 1_000_000, "reserved": reserved, "available": 1_000_000 - reserved})
        );
    }
}

#[tokio::test]
async fn fifty_concurrent_guest_requests_make_one_customer() {
    let app = spawn_app().await;
    let (region, _) = us_region(&app).await;
    let results = futures::future::join_all(
        (0..50).map(|_| app.post("/store/carts", As::Store, json!({"region": region, "email": "Guest@Example.com"}))),
    )
    .await;
    let customers: std::collections::HashSet<String> =
        results.into_iter().map(|r| r.ok()["customer"].as_str().unwrap().to_string()).collect();
    assert_eq!(customers.len(), 1, "one guest customer per email, not one per checkout");
    crate::customers::processor_customer_of(&app, customers.iter().next().unwrap()).await;
    assert_eq!(crate::customers::processor_customers(&app).await, 1, "one processor customer");
    let list = app.get("/admin/customers?email=guest@example.com", As::Admin).await.ok();
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["guest"], true);
    let events = app.get("/admin/events?type=customer.created", As::Admin).await.ok();
    assert_eq!(events["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_customer_sees_only_their_own_carts() {
    let app = app_with_sign_in().await;
    let (region, _) = us_region(&app).await;
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 600;
    let alice = hs_token(json!({"sub": "alice", "exp": exp, "iss": "https://auth.shop.test", "aud": "kassa"}));
    let bob = hs_token(json!({"sub": "bob", "exp": exp, "iss": "https://auth.shop.test", "aud": "kassa"}));
    let cart = app.post("/store/carts", As::Customer(&alice), json!({"region": region})).await.ok();
    let id = cart["id"].as_str().unwrap();
    assert_eq!(app.get(&format!("/store/carts/{id}"), As::Customer(&alice)).await.status, 200);
    for who in [As::Customer(&bob), As::Store] {
        assert_eq!(app.get(&format!("/store/carts/{id}"), who).await.status, 404);
        let r = app.post(&format!("/store/carts/{id}"), who, json!({"metadata": {"x": "y"}})).await;
        assert_eq!(r.status, 404);
        let r = app.post(&format!("/store/carts/{id}/pay"), who, json!({"confirmation_token": "ctoken_x"})).await;
        assert_eq!(r.status, 404);
    }
}

#[tokio::test]
async fn signing_in_with_a_guests_verified_email_keeps_their_carts() {
    let app = app_with_sign_in().await;
    let (region, _) = us_region(&app).await;
    let cart = app.post("/store/carts", As::Store, json!({"region": region, "email": "Linked@Example.com"})).await.ok();
    let guest = cart["customer"].as_str().unwrap().to_string();
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 600;
    let token = hs_token(
        json!({"sub": "linked-user", "email": "linked@example.com", "email_verified": true, "exp": exp, "iss": "https://auth.shop.test", "aud": "kassa"}),
    );
    let me = app.get("/store/customers/me", As::Customer(&token)).await.ok();
    assert_eq!(me["id"], guest.as_str(), "the guest became the signed-in customer");
    assert_eq!(me["guest"], false);
    assert_eq!(me["external_id"], "linked-user");
    let list = app.get("/admin/customers?email=linked@example.com", As::Admin).await.ok();
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "no second customer");
    // An unverified email does not take over a guest.
    app.post("/store/carts", As::Store, json!({"region": region, "email": "other@example.com"})).await.ok();
    let t2 = hs_token(
        json!({"sub": "other-user", "email": "other@example.com", "email_verified": false, "exp": exp, "iss": "https://auth.shop.test", "aud": "kassa"}),
    );
    let other = app.get("/store/customers/me", As::Customer(&t2)).await.ok();
    assert_eq!(other["guest"], false);
    let list = app.get("/admin/customers?email=other@example.com", As::Admin).await.ok();
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    let _ = cart;
}

#[tokio::test]
async fn guest_customers_get_every_side_effect_too() {
    let app = spawn_app().await;
    let (model, free) = crate::customers::free_plan(&app).await;
    let (region, _) = us_region(&app).await;
    let cart = app.post("/store/carts", As::Store, json!({"region": region, "email": "sidefx@example.com"})).await.ok();
    let customer = app.get(&format!("/admin/customers/{}", cart["customer"].as_str().unwrap()), As::Admin).await.ok();
    assert_eq!(customer["guest"], true);
    crate::customers::assert_created_with_side_effects(&app, &customer, &model, &free).await;
}

#[tokio::test]
async fn lines_keep_the_order_they_were_added_in_through_to_the_order() {
    // Ids made in one request share their millisecond and sort at random; lines must not.
    let app = spawn_app().await;
    let shop = crate::checkout::shop(&app, 100).await;
    let mut prices = Vec::new();
    for n in 0..8 {
        prices.push(app.product_with_price(&format!("Item {n}"), 100 + n, None).await.1);
    }
    let items: Vec<Value> = prices.iter().map(|p| json!({"price": p})).collect();
    let cart = app
        .post(
            "/store/carts",
            As::Store,
            json!({"region": shop.region, "email": "order@example.com", "items": items, "shipping_address": address()}),
        )
        .await
        .ok();
    let id = cart["id"].as_str().unwrap();
    let secret = secret_of(&cart);
    let added = app
        .post(&format!("/store/carts/{id}/line-items"), As::Guest(&secret), json!({"price": shop.untracked.1}))
        .await
        .ok();
    let mut expected = prices.clone();
    expected.push(shop.untracked.1.clone());
    let prices_of = |v: &Value| -> Vec<String> {
        v["items"].as_array().unwrap().iter().map(|l| l["price"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(prices_of(&cart), expected[..8]);
    assert_eq!(prices_of(&added), expected);
    assert_eq!(prices_of(&app.get(&format!("/store/carts/{id}"), As::Guest(&secret)).await.ok()), expected);
    let mut ready = added.clone();
    ready["client_secret"] = secret.clone().into();
    let paid = crate::checkout::pay(&app, &ready, crate::checkout::VISA).await.ok();
    assert_eq!(prices_of(&paid["order"]), expected);
    let order = paid["order"]["id"].as_str().unwrap();
    assert_eq!(prices_of(&app.get(&format!("/store/orders/{order}"), As::Guest(&secret)).await.ok()), expected);
    assert_eq!(prices_of(&app.get(&format!("/admin/orders/{order}"), As::Admin).await.ok()), expected);
}
