//! Issue 11, "Guest objects: predictable ids, no second factor": ids have a fresh random
//! part, and what a guest owns (cart, checkout session, order) opens with its client secret
//! only — 404 to everyone else, as if it did not exist.

use crate::checkout::{VISA, card_token, ready_cart, shop};
use crate::customers::{app_with_sign_in, claims, hs_token};
use crate::helpers::*;
use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashSet;

/// A secret of the right shape for `id` that is not its secret.
fn forged_secret(id: &str) -> String {
    format!("{id}_secret_{}", "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6")
}

/// A token of a verified sign-in (`sub`, `email`).
fn verified(sub: &str, email: &str) -> String {
    let mut c = claims(sub);
    c["email"] = email.into();
    c["email_verified"] = true.into();
    hs_token(c)
}

#[tokio::test]
async fn a_thousand_concurrent_carts_get_ids_no_neighbour_can_derive_and_lists_walk_them_once() {
    let app = spawn_app_with(|s| s.database.max_connections = 8).await;
    let (region, _) = crate::carts::us_region(&app).await;
    let carts: Vec<Value> = futures::stream::iter(0..1000)
        .map(|_| app.post("/store/carts", As::Store, json!({"region": region})))
        .buffer_unordered(64)
        .map(|r| r.ok())
        .collect()
        .await;
    let ids: Vec<String> = carts.iter().map(|c| c["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 1000);

    // Monotonic ids made in one millisecond differ by one in their random part; these must
    // be spread over the 80 bits.
    let mut parts: Vec<u128> =
        ids.iter().map(|id| kassa_domain::ids::random_part(id).expect("a prefixed ULID")).collect();
    parts.sort_unstable();
    let closest = parts.windows(2).map(|w| w[1] - w[0]).min().unwrap();
    assert!(closest > 1 << 16, "two random parts only {closest} apart");
    // Secrets are fresh too, and name their cart.
    let secrets: HashSet<String> = carts.iter().map(secret_of).collect();
    assert_eq!(secrets.len(), 1000);
    assert!(carts.iter().all(|c| secret_of(c).starts_with(&format!("{}_secret_", c["id"].as_str().unwrap()))));

    // Many of these share a millisecond, in no particular order; cursor pagination still
    // walks them exactly once, newest first, both ways (ids are unique: a total order).
    let object_id = |e: &Value| e["data"]["object"]["id"].as_str().unwrap().to_string();
    let mut seen = Vec::new();
    let mut events = Vec::new();
    loop {
        let cursor = events.last().map(|e: &String| format!("&starting_after={e}")).unwrap_or_default();
        let page = app.get(&format!("/admin/events?type=cart.created&limit=100{cursor}"), As::Admin).await.ok();
        let data = page["data"].as_array().unwrap();
        seen.extend(data.iter().map(object_id));
        events.extend(data.iter().map(|e| e["id"].as_str().unwrap().to_string()));
        if page["has_more"] == false {
            break;
        }
    }
    assert_eq!(seen.len(), 1000, "every cart once");
    assert_eq!(seen.iter().collect::<HashSet<_>>(), ids.iter().collect::<HashSet<_>>());
    assert!(events.windows(2).all(|w| w[0] > w[1]), "newest first, strictly");
    let shared_millis = events.windows(2).filter(|w| w[0][..14] == w[1][..14]).count();
    println!("{shared_millis} of 999 neighbouring events share their millisecond");
    // Backwards from the oldest, each page the one before.
    let mut back = vec![seen.last().unwrap().clone()];
    let mut before = events.last().unwrap().clone();
    loop {
        let page =
            app.get(&format!("/admin/events?type=cart.created&limit=100&ending_before={before}"), As::Admin).await.ok();
        let data = page["data"].as_array().unwrap();
        let mut newer: Vec<String> = data.iter().map(object_id).collect();
        newer.extend(back);
        back = newer;
        if page["has_more"] == false {
            break;
        }
        before = data.first().unwrap()["id"].as_str().unwrap().to_string();
    }
    assert_eq!(back, seen, "walking backwards meets every cart once, in the same order");
}

/// A guest's cart, paid through a hosted session's sibling: a cart with a checkout session
/// and, paid, an order. Returns (cart, session, order) as their creating answers show them.
async fn guest_purchase(app: &TestApp, email: &str) -> (Value, Value, Value) {
    let shop = shop(app, 10).await;
    let cart = ready_cart(app, &shop, email).await;
    let id = cart["id"].as_str().unwrap();
    let secret = secret_of(&cart);
    let session = app
        .post(
            &format!("/store/carts/{id}/checkout-sessions"),
            As::Guest(&secret),
            json!({"success_url": "https://shop.test/thanks"}),
        )
        .await
        .ok();
    let token = card_token(app, VISA).await;
    let paid =
        app.post(&format!("/store/carts/{id}/pay"), As::Guest(&secret), json!({"confirmation_token": token})).await;
    let order = paid.ok()["order"].clone();
    assert!(order["id"].as_str().unwrap().starts_with("ord_"));
    (cart, session, order)
}

#[tokio::test]
async fn a_guests_cart_session_and_order_are_404_without_their_secret_and_open_with_it() {
    let app = app_with_sign_in().await;
    let (region, _) = crate::carts::us_region(&app).await;
    let (cart, session, order) = guest_purchase(&app, "owner@example.com").await;
    let (cart_id, session_id, order_id) =
        (cart["id"].as_str().unwrap(), session["id"].as_str().unwrap(), order["id"].as_str().unwrap());
    let (cart_secret, session_secret) = (secret_of(&cart), secret_of(&session));
    // Another guest, with a valid secret of their own cart; and a signed-in stranger.
    let other = app.post("/store/carts", As::Store, json!({"region": region, "email": "other@example.com"})).await.ok();
    let other_secret = secret_of(&other);
    let stranger = hs_token(claims("stranger"));
    let forged_cart = forged_secret(cart_id);
    let forged_session = forged_secret(session_id);
    let mut last_char = cart_secret.clone();
    let flipped = if last_char.ends_with('a') { 'b' } else { 'a' };
    last_char.pop();
    last_char.push(flipped);

    let reads = [
        format!("/store/carts/{cart_id}"),
        format!("/store/checkout-sessions/{session_id}"),
        format!("/store/orders/{order_id}"),
    ];
    let outsiders = [
        ("anonymous", As::Store),
        ("another guest", As::Guest(&other_secret)),
        ("a signed-in stranger", As::Customer(&stranger)),
        ("a signed-in stranger with another guest's secret", As::CustomerWithSecret(&stranger, &other_secret)),
        ("a forged secret of the cart's shape", As::Guest(&forged_cart)),
        ("a forged secret of the session's shape", As::Guest(&forged_session)),
        ("the cart's secret with one character changed", As::Guest(&last_char)),
    ];
    // What a missing object answers, to compare with.
    let missing = app.get("/store/carts/cart_00000000000000000000000000", As::Store).await;
    assert_eq!(missing.status, 404);
    for path in &reads {
        for (who, how) in outsiders {
            let r = app.get(path, how).await;
            assert_eq!(r.status, 404, "{who} reading {path}: {}", r.text);
            assert_eq!(r.body["error"]["type"], missing.body["error"]["type"], "{who}: {}", r.text);
            assert_eq!(r.error_code(), missing.error_code(), "{who}: {}", r.text);
            assert!(!r.text.contains("owner@example.com"), "{who} learns nothing: {}", r.text);
            // In a link, the same.
            let q = app.get(&format!("{path}?client_secret={other_secret}"), As::Store).await;
            assert_eq!(q.status, 404, "{who} with a link: {}", q.text);
        }
    }

    // Changes are refused alike, and change nothing.
    let line = cart["items"][0]["id"].as_str().unwrap();
    let before = app.get(&format!("/store/carts/{cart_id}"), As::Guest(&cart_secret)).await.ok();
    for (who, how) in outsiders {
        for (method, path, body) in [
            (Method::POST, format!("/store/carts/{cart_id}"), Some(json!({"email": "thief@example.com"}))),
            (Method::POST, format!("/store/carts/{cart_id}/line-items"), Some(json!({"price": "price_x"}))),
            (Method::POST, format!("/store/carts/{cart_id}/line-items/{line}"), Some(json!({"quantity": 1}))),
            (Method::DELETE, format!("/store/carts/{cart_id}/line-items/{line}"), None),
            (Method::POST, format!("/store/carts/{cart_id}/pay"), Some(json!({"confirmation_token": "ctoken_x"}))),
            (
                Method::POST,
                format!("/store/carts/{cart_id}/checkout-sessions"),
                Some(json!({"success_url": "https://evil.test/"})),
            ),
        ] {
            let body = body.map(|b| b.to_string());
            let r = app.request(method.clone(), &path, how, body.as_deref(), None).await;
            assert_eq!(r.status, 404, "{who}: {method} {path}: {}", r.text);
        }
    }
    let after = app.get(&format!("/store/carts/{cart_id}"), As::Guest(&cart_secret)).await.ok();
    assert_eq!(after, before, "refused changes left the cart as it was");

    // With the secret: the header and the query parameter both open them.
    for (path, secret) in
        [(&reads[0], &cart_secret), (&reads[1], &session_secret), (&reads[1], &cart_secret), (&reads[2], &cart_secret)]
    {
        let by_header = app.get(path, As::Guest(secret)).await.ok();
        let by_link = app.get(&format!("{path}?client_secret={secret}"), As::Store).await.ok();
        assert_eq!(by_header["id"], by_link["id"]);
        assert!(by_header.get("client_secret").is_none(), "shown once, at creation: {by_header}");
        // A signed-in customer holding the secret gets in too (the secret is the capability).
        assert_eq!(app.get(path, As::CustomerWithSecret(&stranger, secret)).await.status, 200, "{path}");
    }
    assert_eq!(app.get(&reads[2], As::Guest(&cart_secret)).await.ok(), {
        let mut o = order.clone();
        o.as_object_mut().unwrap().remove("client_secret");
        o
    });
    // A session's secret opens that session only.
    assert_eq!(app.get(&reads[0], As::Guest(&session_secret)).await.status, 404);
    assert_eq!(app.get(&reads[2], As::Guest(&session_secret)).await.status, 404);

    // No secret reaches the merchant's events.
    let events = app.get("/admin/events?limit=100", As::Admin).await.ok();
    assert!(events["data"].as_array().unwrap().len() > 5);
    assert!(!events.to_string().contains("_secret_"), "{events}");
}

#[tokio::test]
async fn an_idempotent_replay_goes_only_to_a_holder_of_the_secret() {
    let app = spawn_app().await;
    let shop = shop(&app, 10).await;
    let cart = ready_cart(&app, &shop, "replay@example.com").await;
    let id = cart["id"].as_str().unwrap();
    let secret = secret_of(&cart);
    let token = card_token(&app, VISA).await;
    let body = json!({"confirmation_token": token});
    let path = format!("/store/carts/{id}/pay");
    let paid = app.post_idem(&path, As::Guest(&secret), body.clone(), "pay-once").await;
    assert_eq!(paid.status, 200, "{}", paid.text);
    // The same key and body without the secret (or with another) is not a replay of the
    // guest's answer (it would show the order and its address): it is refused like any other.
    for how in [As::Store, As::Guest(&forged_secret(id))] {
        let r = app.post_idem(&path, how, body.clone(), "pay-once").await;
        assert_eq!(r.status, 404, "{}", r.text);
        assert!(r.headers.get("idempotent-replayed").is_none());
    }
    let replay = app.post_idem(&path, As::Guest(&secret), body, "pay-once").await;
    assert_eq!(replay.text, paid.text);
    assert_eq!(replay.headers["idempotent-replayed"], "true");

    // Creating a cart again with the same key answers the same cart and secret.
    let region = &shop.region;
    let first = app.post_idem("/store/carts", As::Store, json!({"region": region}), "new-cart").await.ok();
    let again = app.post_idem("/store/carts", As::Store, json!({"region": region}), "new-cart").await.ok();
    assert_eq!(first, again);
    assert!(secret_of(&first).starts_with(first["id"].as_str().unwrap()));
}

#[tokio::test]
async fn a_signed_in_customer_reaches_their_own_cart_by_token_and_the_guest_past_after_verified_linking() {
    let app = app_with_sign_in().await;
    let (region, _) = crate::carts::us_region(&app).await;
    // Signed in: the token alone opens their cart; their secret opens it for them too.
    let alice = verified("alice", "alice@example.com");
    let mine = app.post("/store/carts", As::Customer(&alice), json!({"region": region})).await.ok();
    let mine_id = mine["id"].as_str().unwrap();
    assert_eq!(app.get(&format!("/store/carts/{mine_id}"), As::Customer(&alice)).await.status, 200);
    assert_eq!(app.get(&format!("/store/carts/{mine_id}"), As::Store).await.status, 404);
    assert_eq!(app.get(&format!("/store/carts/{mine_id}"), As::Customer(&hs_token(claims("bob")))).await.status, 404);

    // A guest buys, then signs in with the same email — unverified first: still a stranger.
    let (cart, session, order) = guest_purchase(&app, "Later@Example.com").await;
    let reads = [
        format!("/store/carts/{}", cart["id"].as_str().unwrap()),
        format!("/store/checkout-sessions/{}", session["id"].as_str().unwrap()),
        format!("/store/orders/{}", order["id"].as_str().unwrap()),
    ];
    let mut unverified = claims("someone-else");
    unverified["email"] = "later@example.com".into();
    let unverified = hs_token(unverified);
    for path in &reads {
        assert_eq!(app.get(path, As::Customer(&unverified)).await.status, 404, "{path}");
    }
    // Verified: the guest customer becomes this customer, and their past is theirs.
    let later = verified("later-user", "later@example.com");
    let me = app.get("/store/customers/me", As::Customer(&later)).await.ok();
    assert_eq!(me["id"], cart["customer"]);
    for path in &reads {
        let r = app.get(path, As::Customer(&later)).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
    }
    let listed = app.get("/store/orders", As::Customer(&later)).await.ok();
    assert_eq!(listed["data"][0]["id"], order["id"]);
    // Nobody else's guest objects, though.
    let (other_cart, _, other_order) = guest_purchase(&app, "not-later@example.com").await;
    for path in [
        format!("/store/carts/{}", other_cart["id"].as_str().unwrap()),
        format!("/store/orders/{}", other_order["id"].as_str().unwrap()),
    ] {
        assert_eq!(app.get(&path, As::Customer(&later)).await.status, 404, "{path}");
    }
}

#[tokio::test]
async fn the_openapi_document_says_where_the_secret_goes() {
    let app = spawn_app().await;
    let doc = app.get("/openapi.json", As::Nobody).await.ok();
    for (path, method) in [
        ("/store/carts/{id}", "get"),
        ("/store/carts/{id}", "post"),
        ("/store/carts/{id}/line-items", "post"),
        ("/store/carts/{id}/line-items/{line}", "post"),
        ("/store/carts/{id}/line-items/{line}", "delete"),
        ("/store/carts/{id}/pay", "post"),
        ("/store/carts/{id}/checkout-sessions", "post"),
        ("/store/checkout-sessions/{id}", "get"),
        ("/store/orders/{id}", "get"),
    ] {
        let params = doc["paths"][path][method]["parameters"].as_array().unwrap_or_else(|| panic!("{method} {path}"));
        let has = |name: &str, place: &str| params.iter().any(|p| p["name"] == name && p["in"] == place);
        assert!(has("Kassa-Client-Secret", "header"), "{method} {path}: {params:?}");
        assert!(has("client_secret", "query"), "{method} {path}: {params:?}");
    }
    for schema in ["Cart", "CheckoutSession"] {
        let props = &doc["components"]["schemas"][schema]["properties"];
        assert!(props["client_secret"].is_object(), "{schema}: {props}");
    }
}
