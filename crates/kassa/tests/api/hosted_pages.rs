//! Kassa's hosted checkout (test processor) from a buyer who clicks Pay twice: one payment,
//! one order, and both answers go to the merchant's success URL.

use crate::checkout::{VISA, eventually, orders_of_cart, ready_cart, shop};
use crate::helpers::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn a_hosted_checkout_submitted_twice_at_once_makes_one_payment_and_one_order() {
    let app = spawn_app().await;
    let shop = shop(&app, 10).await;
    let cart = ready_cart(&app, &shop, "double-click@example.com").await;
    let cart_id = cart["id"].as_str().unwrap();
    let session = app
        .post(
            &format!("/store/carts/{cart_id}/checkout-sessions"),
            As::Guest(&secret_of(&cart)),
            json!({"success_url": "https://shop.test/thanks", "cancel_url": "https://shop.test/cart"}),
        )
        .await
        .ok();
    let (sid, url) = (session["id"].as_str().unwrap(), session["url"].as_str().unwrap());

    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let form = [("method", "card"), ("number", VISA), ("exp", "12/34"), ("cvc", "123")];
    let (a, b) = tokio::join!(client.post(url).form(&form).send(), client.post(url).form(&form).send());
    let thanks = format!("https://shop.test/thanks?session_id={sid}&client_secret={}", secret_of(&session));
    for res in [a.unwrap(), b.unwrap()] {
        assert_eq!(res.status(), 303);
        assert_eq!(res.headers()["location"].to_str().unwrap(), thanks);
    }

    eventually("the order", || async { orders_of_cart(&app, cart_id).await.len() == 1 }).await;
    // The webhooks that follow (one set per payment) change nothing.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let orders = orders_of_cart(&app, cart_id).await;
    assert_eq!(orders.len(), 1);
    let customer = orders[0]["customer"].as_str().unwrap();
    let payments = app.get(&format!("/admin/payments?customer={customer}"), As::Admin).await.ok();
    let succeeded: Vec<_> =
        payments["data"].as_array().unwrap().iter().filter(|p| p["status"] == "succeeded").collect();
    assert_eq!(succeeded.len(), 1, "{payments}");
    // At the processor: one successful PaymentIntent for this session.
    let events = app.state.test_processor.as_ref().unwrap().events().await.unwrap();
    let charged = events
        .iter()
        .filter(|e| {
            e["type"] == "payment_intent.succeeded" && e["data"]["object"]["metadata"]["kassa_checkout_session"] == sid
        })
        .count();
    assert_eq!(charged, 1);
}
