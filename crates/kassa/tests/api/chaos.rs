//! 200 checkouts while the test processor's chaos mode duplicates, delays and reorders its
//! webhook deliveries: every succeeded payment has exactly one order, no order lacks a
//! secured payment, and stock equals the start minus what was sold.

use crate::checkout::{DECLINED, THREE_DS, VISA, answer_challenge, card_token, eventually, ready_cart, shop};
use crate::helpers::*;
use serde_json::{Value, json};
use std::collections::HashMap;

const CHECKOUTS: usize = 200;
const STOCK: i64 = 10_000;

#[derive(Clone, Copy, Debug)]
enum Plan {
    Card,
    Declined,
    /// 3-D Secure, approved, then pay is called again.
    ChallengeThenPay,
    /// 3-D Secure, approved, and only the webhook finishes it.
    ChallengeThenWebhook,
    /// 3-D Secure, failed.
    ChallengeFailed,
}

async fn checkout(app: &TestApp, shop: &crate::checkout::Shop, n: usize, plan: Plan) {
    let cart = ready_cart(app, shop, &format!("chaos{}@example.com", n % 17)).await;
    let id = cart["id"].as_str().unwrap();
    let secret = secret_of(&cart);
    let number = match plan {
        Plan::Card => VISA,
        Plan::Declined => DECLINED,
        _ => THREE_DS,
    };
    let token = card_token(app, number).await;
    let body = json!({"confirmation_token": token});
    let r = app.post(&format!("/store/carts/{id}/pay"), As::Guest(&secret), body.clone()).await;
    match plan {
        Plan::Card => assert_eq!(r.status, 200, "{}", r.text),
        Plan::Declined => assert_eq!(r.status, 402, "{}", r.text),
        _ => {
            let url = r.ok()["next_action"]["redirect_url"].as_str().unwrap().to_string();
            let outcome = if matches!(plan, Plan::ChallengeFailed) { "fail" } else { "complete" };
            answer_challenge(app, &url, outcome).await;
            if matches!(plan, Plan::ChallengeThenPay) {
                let r = app.post(&format!("/store/carts/{id}/pay"), As::Guest(&secret), body).await;
                assert_eq!(r.status, 200, "{}", r.text);
            }
        }
    }
}

#[tokio::test]
async fn two_hundred_checkouts_under_chaotic_webhooks_stay_exactly_once() {
    let app = spawn_app_with(|s| {
        s.processor.test.chaos = true;
        s.processor.test.delivery_interval_ms = 50;
        s.database.max_connections = 8;
    })
    .await;
    let shop = shop(&app, STOCK).await;
    let plans = [
        Plan::Card,
        Plan::Card,
        Plan::Card,
        Plan::Declined,
        Plan::ChallengeThenPay,
        Plan::ChallengeThenWebhook,
        Plan::ChallengeFailed,
    ];
    for chunk in (0..CHECKOUTS).collect::<Vec<_>>().chunks(10) {
        futures::future::join_all(chunk.iter().map(|n| checkout(&app, &shop, *n, plans[n % plans.len()]))).await;
    }

    // Let chaos finish delivering (duplicates and delayed events included).
    let db = app.state.store.reader();
    eventually("all events delivered and all payments settled", || async {
        let undelivered: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tp_events WHERE delivered_at IS NULL").fetch_one(db).await.unwrap();
        let open: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM payments WHERE status IN ('pending', 'requires_action', 'processing', 'void_pending')")
            .fetch_one(db)
            .await
            .unwrap();
        undelivered == 0 && open == 0
    })
    .await;
    let deliveries: i64 =
        sqlx::query_scalar("SELECT CAST(COALESCE(SUM(deliveries), 0) AS BIGINT) FROM processor_events")
            .fetch_one(db)
            .await
            .unwrap();
    // Kassa records the events it acts on; it acknowledges others (customer.created) unrecorded.
    let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tp_events WHERE type NOT LIKE 'customer.%'")
        .fetch_one(db)
        .await
        .unwrap();
    let handled: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM processor_events").fetch_one(db).await.unwrap();
    assert_eq!(handled, events, "every event arrived and was recorded once");
    assert!(deliveries > events, "chaos delivered duplicates: {deliveries} deliveries of {events} events");

    let payments: Vec<(String, String)> =
        sqlx::query_as("SELECT id, status FROM payments").fetch_all(db).await.unwrap();
    let orders: Vec<(String, String, String)> =
        sqlx::query_as("SELECT id, payment, cart FROM orders").fetch_all(db).await.unwrap();
    let status: HashMap<&str, &str> = payments.iter().map(|(i, s)| (i.as_str(), s.as_str())).collect();
    let mut orders_per_payment: HashMap<&str, usize> = HashMap::new();
    let mut orders_per_cart: HashMap<&str, usize> = HashMap::new();
    for (_, payment, cart) in &orders {
        *orders_per_payment.entry(payment).or_default() += 1;
        *orders_per_cart.entry(cart).or_default() += 1;
        assert!(
            matches!(status.get(payment.as_str()), Some(&"succeeded") | Some(&"authorized")),
            "an order without a secured payment"
        );
    }
    for (id, s) in &payments {
        if s == "succeeded" || s == "authorized" {
            assert_eq!(orders_per_payment.get(id.as_str()), Some(&1), "payment {id} has no order or several");
        }
    }
    assert!(orders_per_cart.values().all(|n| *n == 1));
    let expected_orders = (0..CHECKOUTS)
        .filter(|n| matches!(plans[n % plans.len()], Plan::Card | Plan::ChallengeThenPay | Plan::ChallengeThenWebhook))
        .count();
    assert_eq!(orders.len(), expected_orders);

    // Every charge the processor took belongs to a payment with an order.
    let tp = &app.state.processor;
    for (id, s) in &payments {
        let p: Value = app.get(&format!("/admin/payments/{id}"), As::Admin).await.ok();
        if let Some(pi) = p["processor_payment_intent"].as_str() {
            let pi = tp.retrieve_payment_intent(pi).await.unwrap();
            assert_eq!(
                pi.status == kassa_processors::PaymentIntentStatus::Succeeded,
                s == "succeeded",
                "{id}: {s} vs {:?}",
                pi.status
            );
        }
    }

    // Stock: start minus sold; what open (declined) carts hold is reserved.
    let sold: i64 =
        sqlx::query_scalar("SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT) FROM order_lines WHERE product = $1")
            .bind(&shop.tracked.0)
            .fetch_one(db)
            .await
            .unwrap();
    let held: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(l.reserved), 0) AS BIGINT) FROM cart_lines l JOIN carts c ON c.id = l.cart \
         WHERE c.status = 'open' AND l.product = $1",
    )
    .bind(&shop.tracked.0)
    .fetch_one(db)
    .await
    .unwrap();
    let inventory = app.get(&format!("/admin/products/{}", shop.tracked.0), As::Admin).await.ok()["inventory"].clone();
    assert_eq!(sold, 2 * expected_orders as i64);
    assert_eq!(inventory["quantity"], STOCK - sold);
    assert_eq!(inventory["reserved"], held);
}
