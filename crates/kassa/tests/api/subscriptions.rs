//! Subscriptions and invoices through the admin API (issue 15): a year of renewals on a test
//! clock, dunning of a card that declines, proration by hand, two servers racing, bad input.

use crate::helpers::{As, TestApp, spawn_app};
use kassa_server::config::Settings;
use kassa_server::startup::{Application, BuildOptions};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// 2027-01-31T00:00:00Z: a month-end anchor.
const JAN_31_2027: i64 = 1_801_353_600;
const DAY: i64 = 86_400;

async fn recurring_price(app: &TestApp, unit_amount: i64, credits: i64) -> String {
    let product = app.post("/admin/products", As::Admin, json!({"name": format!("Plan {unit_amount}")})).await.ok();
    let price = app
        .post(
            "/admin/prices",
            As::Admin,
            json!({"product": product["id"], "currency": "usd", "unit_amount": unit_amount,
                   "recurring": {"interval": "month"}, "credits_per_period": credits}),
        )
        .await
        .ok();
    assert_eq!(price["credits_per_period"], credits);
    price["id"].as_str().unwrap().to_string()
}

async fn clock(app: &TestApp, at: i64) -> String {
    app.post("/admin/test-clocks", As::Admin, json!({"frozen_time": at})).await.ok()["id"].as_str().unwrap().to_string()
}

async fn customer_on(app: &TestApp, clock: Option<&str>) -> String {
    let mut body = json!({"email": format!("{}@example.com", crate::helpers::rand_suffix())});
    if let Some(c) = clock {
        body["test_clock"] = json!(c);
    }
    let c = app.post("/admin/customers", As::Admin, body).await.ok();
    assert_eq!(c["test_clock"].as_str(), clock);
    c["id"].as_str().unwrap().to_string()
}

async fn attach(app: &TestApp, customer: &str, pm: &str) -> String {
    let r = app
        .post(
            &format!("/admin/customers/{customer}/payment-methods"),
            As::Admin,
            json!({"payment_method": pm, "default": true}),
        )
        .await
        .ok();
    assert_eq!(r["object"], "payment_method");
    assert_eq!(r["customer"], customer);
    assert_eq!(r["default"], true);
    r["id"].as_str().unwrap().to_string()
}

async fn advance(app: &TestApp, clock: &str, to: i64) {
    let r = app.post(&format!("/admin/test-clocks/{clock}/advance"), As::Admin, json!({"frozen_time": to})).await.ok();
    assert_eq!(r["frozen_time"], to);
}

async fn invoices_of(app: &TestApp, subscription: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after = String::new();
    loop {
        let page =
            app.get(&format!("/admin/invoices?subscription={subscription}&limit=100{after}"), As::Admin).await.ok();
        let data = page["data"].as_array().unwrap().clone();
        let more = page["has_more"].as_bool().unwrap();
        if let Some(last) = data.last() {
            after = format!("&starting_after={}", last["id"].as_str().unwrap());
        }
        all.extend(data);
        if !more {
            break;
        }
    }
    all.reverse(); // oldest first
    all
}

/// Succeeded charges at the processor, by Kassa invoice.
async fn charges_by_invoice(app: &TestApp) -> BTreeMap<String, usize> {
    let mut by_invoice = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = app.state.processor.list_payment_intents(after.as_deref(), 100).await.unwrap();
        for pi in &page.data {
            if pi.status == kassa_processors::PaymentIntentStatus::Succeeded
                && let Some(inv) = pi.metadata.get("kassa_invoice")
            {
                *by_invoice.entry(inv.clone()).or_insert(0) += 1;
            }
        }
        match page.data.last() {
            Some(last) if page.has_more => after = Some(last.id.clone()),
            _ => break,
        }
    }
    by_invoice
}

/// The types of the events about `objects`, grouped by the time they were recorded at (the
/// customer's clock) in time order; within one moment, sorted (ids made in one millisecond
/// do not order the events of one transaction).
async fn event_types_about(app: &TestApp, objects: &[&str]) -> Vec<(i64, Vec<String>)> {
    let mut all = Vec::new();
    let mut after = String::new();
    loop {
        let page = app.get(&format!("/admin/events?limit=100{after}"), As::Admin).await.ok();
        let data = page["data"].as_array().unwrap().clone();
        if let Some(last) = data.last() {
            after = format!("&starting_after={}", last["id"].as_str().unwrap());
        }
        all.extend(data);
        if !page["has_more"].as_bool().unwrap() {
            break;
        }
    }
    let mut by_time: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for e in all.iter().filter(|e| objects.contains(&e["data"]["object"]["id"].as_str().unwrap_or_default())) {
        by_time.entry(e["created"].as_i64().unwrap()).or_default().push(e["type"].as_str().unwrap().to_string());
    }
    by_time
        .into_iter()
        .map(|(t, mut kinds)| {
            kinds.sort();
            (t, kinds)
        })
        .collect()
}

fn ymd(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).unwrap().format("%Y-%m-%d").to_string()
}

#[tokio::test]
async fn a_year_on_a_test_clock_renews_twelve_times_each_charged_once_with_its_credits() {
    let app = spawn_app().await;
    const CREDITS: i64 = 50;
    let price = recurring_price(&app, 1000, CREDITS).await;
    let clock = clock(&app, JAN_31_2027).await;
    let customer = customer_on(&app, Some(&clock)).await;
    attach(&app, &customer, "pm_card_visa").await;
    let sub = app
        .post("/admin/subscriptions", As::Admin, json!({"customer": customer, "items": [{"price": price}]}))
        .await
        .ok();
    assert_eq!(sub["status"], "active", "{sub}");
    assert_eq!(sub["current_period_start"], JAN_31_2027);
    assert_eq!(ymd(sub["current_period_end"].as_i64().unwrap()), "2027-02-28");
    let sub_id = sub["id"].as_str().unwrap().to_string();
    // Another customer, on no clock, is not billed by the advance.
    let bystander = customer_on(&app, None).await;
    attach(&app, &bystander, "pm_card_visa").await;
    let other = app
        .post("/admin/subscriptions", As::Admin, json!({"customer": bystander, "items": [{"price": price}]}))
        .await
        .ok();

    advance(&app, &clock, JAN_31_2027 + 365 * DAY).await; // 2028-01-31

    let invoices = invoices_of(&app, &sub_id).await;
    assert_eq!(invoices.len(), 13, "the first invoice and 12 renewals");
    let renewals: Vec<&Value> = invoices.iter().filter(|i| i["billing_reason"] == "subscription_cycle").collect();
    assert_eq!(renewals.len(), 12);
    for inv in &invoices {
        assert_eq!(inv["status"], "paid", "{inv}");
        assert_eq!((inv["amount_due"].as_i64(), inv["amount_paid"].as_i64()), (Some(1000), Some(1000)));
        assert_eq!(inv["attempt_count"], 1);
        assert_eq!(inv["credits"], CREDITS);
    }
    // Month-end anchoring: every renewal starts on the last day of its month (Jan 31 anchor).
    let starts: Vec<String> = renewals.iter().map(|i| ymd(i["period_start"].as_i64().unwrap())).collect();
    assert_eq!(
        starts,
        [
            "2027-02-28",
            "2027-03-31",
            "2027-04-30",
            "2027-05-31",
            "2027-06-30",
            "2027-07-31",
            "2027-08-31",
            "2027-09-30",
            "2027-10-31",
            "2027-11-30",
            "2027-12-31",
            "2028-01-31"
        ]
    );
    let sub = app.get(&format!("/admin/subscriptions/{sub_id}"), As::Admin).await.ok();
    assert_eq!(sub["status"], "active");
    assert_eq!(ymd(sub["current_period_end"].as_i64().unwrap()), "2028-02-29");
    assert_eq!(sub["latest_invoice"], invoices.last().unwrap()["id"]);

    // One charge per invoice at the processor, and none for anything else.
    let charges = charges_by_invoice(&app).await;
    let ours: BTreeSet<&str> = invoices.iter().map(|i| i["id"].as_str().unwrap()).collect();
    for id in &ours {
        assert_eq!(charges.get(*id), Some(&1), "invoice {id} charged once");
    }
    assert_eq!(charges.len(), 14, "13 invoices of the clock's customer and the bystander's first");

    // Credits: one ledger entry per paid invoice, the balance their sum.
    let credits = app.get(&format!("/admin/customers/{customer}/credits?limit=100"), As::Admin).await.ok();
    assert_eq!(credits["balance"], 13 * CREDITS);
    let entries = credits["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 13);
    let sources: BTreeSet<&str> = entries.iter().map(|e| e["source"].as_str().unwrap()).collect();
    assert_eq!(
        sources,
        ours.iter().map(|i| format!("invoice:{i}")).collect::<BTreeSet<_>>().iter().map(|s| s.as_str()).collect()
    );

    // The bystander, on real time, still has only its first invoice.
    assert_eq!(invoices_of(&app, other["id"].as_str().unwrap()).await.len(), 1);

    // Advancing again bills nothing twice.
    advance(&app, &clock, JAN_31_2027 + 365 * DAY + 1).await;
    assert_eq!(invoices_of(&app, &sub_id).await.len(), 13);
}

/// Missed periods are billed one by one, as Stripe does when a test clock jumps: a free price's
/// periods each get their own invoice, paid at $0 when made, without a processor call — also
/// for a customer with no saved card; the credits of each period are granted once.
#[tokio::test]
async fn free_periods_missed_at_once_are_each_invoiced_and_paid_without_a_charge() {
    let app = spawn_app().await;
    let price = recurring_price(&app, 0, 7).await;
    let clock = clock(&app, JAN_31_2027).await;
    let customer = customer_on(&app, Some(&clock)).await;
    let body = json!({"customer": customer, "items": [{"price": price, "quantity": 3}]});
    let sub = app.post("/admin/subscriptions", As::Admin, body).await.ok();
    assert_eq!(sub["status"], "active", "{sub}");
    let sub_id = sub["id"].as_str().unwrap().to_string();

    advance(&app, &clock, JAN_31_2027 + 92 * DAY).await; // 2027-05-03: Feb 28, Mar 31, Apr 30 missed

    let invoices = invoices_of(&app, &sub_id).await;
    assert_eq!(invoices.len(), 4, "the first invoice and one per missed period");
    let starts: Vec<String> = invoices.iter().map(|i| ymd(i["period_start"].as_i64().unwrap())).collect();
    assert_eq!(starts, ["2027-01-31", "2027-02-28", "2027-03-31", "2027-04-30"]);
    for inv in &invoices {
        assert_eq!(inv["status"], "paid", "{inv}");
        assert_eq!((inv["amount_due"].as_i64(), inv["amount_paid"].as_i64()), (Some(0), Some(0)));
        assert_eq!(inv["payment_intent"], Value::Null, "no processor call for a $0 invoice");
    }
    assert!(charges_by_invoice(&app).await.is_empty());
    let s = app.get(&format!("/admin/subscriptions/{sub_id}"), As::Admin).await.ok();
    assert_eq!(s["status"], "active");
    assert_eq!(ymd(s["current_period_end"].as_i64().unwrap()), "2027-05-31");
    let credits = app.get(&format!("/admin/customers/{customer}/credits?limit=100"), As::Admin).await.ok();
    assert_eq!(credits["balance"], 4 * 3 * 7, "7 credits × quantity 3 per paid period, once each");
    let paid = event_types_about(&app, &invoices.iter().map(|i| i["id"].as_str().unwrap()).collect::<Vec<_>>())
        .await
        .into_iter()
        .flat_map(|(_, kinds)| kinds)
        .filter(|k| k == "invoice.paid")
        .count();
    assert_eq!(paid, 4);
}

#[tokio::test]
async fn a_card_that_declines_goes_past_due_retries_on_schedule_then_cancels() {
    let app = spawn_app().await;
    let price = recurring_price(&app, 2000, 0).await;
    let clock = clock(&app, JAN_31_2027).await;
    let customer = customer_on(&app, Some(&clock)).await;
    let pm = attach(&app, &customer, "pm_card_chargeCustomerFail").await;
    let listed = app.get(&format!("/admin/customers/{customer}/payment-methods"), As::Admin).await.ok();
    assert_eq!(listed["data"][0]["id"], pm.as_str());
    assert_eq!(listed["data"][0]["card"]["last4"], "0341");
    let sub = app
        .post(
            "/admin/subscriptions",
            As::Admin,
            json!({"customer": customer, "items": [{"price": price}], "trial_period_days": 7}),
        )
        .await
        .ok();
    assert_eq!(sub["status"], "trialing");
    assert_eq!(sub["trial_end"], JAN_31_2027 + 7 * DAY);
    let sub_id = sub["id"].as_str().unwrap().to_string();
    let trial_end = JAN_31_2027 + 7 * DAY;

    // The trial ends: the first charge declines.
    advance(&app, &clock, trial_end).await;
    let sub = app.get(&format!("/admin/subscriptions/{sub_id}"), As::Admin).await.ok();
    assert_eq!(sub["status"], "past_due");
    let inv = app.get(&format!("/admin/invoices/{}", sub["latest_invoice"].as_str().unwrap()), As::Admin).await.ok();
    let inv_id = inv["id"].as_str().unwrap().to_string();
    assert_eq!((inv["status"].as_str(), inv["attempt_count"].as_i64()), (Some("open"), Some(1)));
    assert_eq!(inv["last_payment_error"]["decline_code"], "generic_decline");
    assert_eq!(inv["next_payment_attempt"], trial_end + DAY, "retried 1 day later");

    // The schedule: 1, 3, 5 days after each failed attempt.
    let mut at = trial_end;
    for (attempts, wait) in [(2, 1), (3, 3)] {
        at += wait * DAY;
        // Just before the retry nothing happens.
        advance(&app, &clock, at - 1).await;
        assert_eq!(app.get(&format!("/admin/invoices/{inv_id}"), As::Admin).await.ok()["attempt_count"], attempts - 1);
        advance(&app, &clock, at).await;
        let inv = app.get(&format!("/admin/invoices/{inv_id}"), As::Admin).await.ok();
        assert_eq!(inv["attempt_count"], attempts);
        assert_eq!(inv["status"], "open");
        let next = [0, 0, 3, 5][attempts as usize];
        assert_eq!(inv["next_payment_attempt"], at + next * DAY);
    }
    // The last retry, 5 days later, fails too: canceled.
    advance(&app, &clock, at + 5 * DAY + 3600).await;
    let inv = app.get(&format!("/admin/invoices/{inv_id}"), As::Admin).await.ok();
    assert_eq!((inv["attempt_count"].as_i64(), inv["status"].as_str()), (Some(4), Some("uncollectible")));
    assert_eq!(inv["next_payment_attempt"], Value::Null);
    let sub = app.get(&format!("/admin/subscriptions/{sub_id}"), As::Admin).await.ok();
    assert_eq!(sub["status"], "canceled");
    assert_eq!(sub["canceled_at"], at + 5 * DAY);
    // Nothing more is billed after the end.
    advance(&app, &clock, at + 90 * DAY).await;
    assert_eq!(invoices_of(&app, &sub_id).await.len(), 2, "the trial's invoice and the failed one");
    assert!(charges_by_invoice(&app).await.is_empty(), "nothing was ever charged");

    let first = invoices_of(&app, &sub_id).await[0]["id"].as_str().unwrap().to_string();
    let events = event_types_about(&app, &[&sub_id, &inv_id, &first]).await;
    let day = |n: i64, kinds: &[&str]| {
        let mut kinds: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
        kinds.sort();
        (n, kinds)
    };
    assert_eq!(
        events,
        [
            day(JAN_31_2027, &["subscription.created", "invoice.created", "invoice.paid"]),
            // The trial ends (active), the period advances with its invoice, whose charge
            // fails: past_due.
            day(
                trial_end,
                &[
                    "subscription.updated",
                    "invoice.created",
                    "subscription.updated",
                    "invoice.payment_failed",
                    "subscription.updated"
                ]
            ),
            day(trial_end + DAY, &["invoice.payment_failed"]),
            day(trial_end + 4 * DAY, &["invoice.payment_failed"]),
            day(
                trial_end + 9 * DAY,
                &["invoice.payment_failed", "invoice.marked_uncollectible", "subscription.deleted"]
            ),
        ],
        "events in order"
    );
}

/// A card that always asks for 3-D Secure cannot pay off-session: the renewal records
/// `invoice.payment_action_required` and the subscription goes past due.
#[tokio::test]
async fn a_renewal_needing_authentication_asks_for_the_customer() {
    let app = spawn_app().await;
    let price = recurring_price(&app, 1500, 0).await;
    let clock = clock(&app, JAN_31_2027).await;
    let customer = customer_on(&app, Some(&clock)).await;
    attach(&app, &customer, "pm_card_threeDSecure2Required").await;
    let sub = app
        .post(
            "/admin/subscriptions",
            As::Admin,
            json!({"customer": customer, "items": [{"price": price}], "trial_period_days": 1}),
        )
        .await
        .ok();
    let sub_id = sub["id"].as_str().unwrap().to_string();
    advance(&app, &clock, JAN_31_2027 + DAY).await;
    let sub = app.get(&format!("/admin/subscriptions/{sub_id}"), As::Admin).await.ok();
    assert_eq!(sub["status"], "past_due");
    let inv_id = sub["latest_invoice"].as_str().unwrap().to_string();
    let inv = app.get(&format!("/admin/invoices/{inv_id}"), As::Admin).await.ok();
    assert_eq!(inv["last_payment_error"]["code"], "authentication_required");
    assert_eq!(inv["status"], "open");
    let kinds = app.get(&format!("/admin/events?object={inv_id}&limit=100"), As::Admin).await.ok();
    let kinds: BTreeSet<&str> = kinds["data"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(kinds.contains("invoice.payment_action_required"), "{kinds:?}");
    assert!(kinds.contains("invoice.payment_failed"), "{kinds:?}");
    let past_due = app.get(&format!("/admin/subscriptions?status=past_due&customer={customer}"), As::Admin).await.ok();
    assert_eq!(past_due["data"][0]["id"], sub_id.as_str());
}

#[tokio::test]
async fn an_upgrade_mid_period_is_prorated_to_the_second_and_a_downgrade_waits_for_the_period_end() {
    let app = spawn_app().await;
    let basic = recurring_price(&app, 1000, 0).await;
    let pro = recurring_price(&app, 2500, 0).await;
    let april = 1_806_537_600; // 2027-04-01T00:00:00Z; the period is April, 30 days.
    assert_eq!(ymd(april), "2027-04-01");
    let clock = clock(&app, april).await;
    let customer = customer_on(&app, Some(&clock)).await;
    attach(&app, &customer, "pm_card_visa").await;
    let sub = app
        .post("/admin/subscriptions", As::Admin, json!({"customer": customer, "items": [{"price": basic}]}))
        .await
        .ok();
    let sub_id = sub["id"].as_str().unwrap().to_string();
    assert_eq!(sub["current_period_end"], april + 30 * DAY);

    // 10 days and 7 seconds in, upgrade: 20 days minus 7 seconds of the 30 are left.
    let at = april + 10 * DAY + 7;
    advance(&app, &clock, at).await;
    let sub =
        app.post(&format!("/admin/subscriptions/{sub_id}"), As::Admin, json!({"items": [{"price": pro}]})).await.ok();
    assert_eq!(sub["price"], pro.as_str());
    assert_eq!(sub["status"], "active");
    let inv = app.get(&format!("/admin/invoices/{}", sub["latest_invoice"].as_str().unwrap()), As::Admin).await.ok();
    assert_eq!(inv["billing_reason"], "subscription_update");
    // By hand: remaining = 1,727,993 s of 2,592,000 s.
    //   credit = round(1000 × 1727993 / 2592000) = round(666.664…) = 667
    //   charge = round(2500 × 1727993 / 2592000) = round(1666.660…) = 1667
    let (remaining, period) = (20 * DAY - 7, 30 * DAY);
    assert_eq!((remaining, period), (1_727_993, 2_592_000));
    let lines = inv["lines"]["data"].as_array().unwrap();
    let amounts: Vec<i64> = lines.iter().map(|l| l["amount"].as_i64().unwrap()).collect();
    assert_eq!(amounts, [-667, 1667]);
    assert!(lines.iter().all(|l| l["proration"] == true));
    assert_eq!(inv["amount_due"], 1000);
    assert_eq!(inv["status"], "paid", "an upgrade is charged at once");
    assert_eq!(charges_by_invoice(&app).await.get(inv["id"].as_str().unwrap()), Some(&1));

    // Downgrade: nothing now; the next period bills the basic price.
    let sub =
        app.post(&format!("/admin/subscriptions/{sub_id}"), As::Admin, json!({"items": [{"price": basic}]})).await.ok();
    assert_eq!(sub["price"], pro.as_str());
    assert_eq!(sub["pending_update"]["price"], basic.as_str());
    assert_eq!(invoices_of(&app, &sub_id).await.len(), 2);
    advance(&app, &clock, april + 30 * DAY).await;
    let sub = app.get(&format!("/admin/subscriptions/{sub_id}"), As::Admin).await.ok();
    assert_eq!(sub["price"], basic.as_str());
    assert_eq!(sub["pending_update"], Value::Null);
    let renewal =
        app.get(&format!("/admin/invoices/{}", sub["latest_invoice"].as_str().unwrap()), As::Admin).await.ok();
    assert_eq!((renewal["amount_due"].as_i64(), renewal["status"].as_str()), (Some(1000), Some("paid")));

    // Cancel at the period end, resume, cancel again: it ends at the period end.
    let s = app
        .post(&format!("/admin/subscriptions/{sub_id}/cancel"), As::Admin, json!({"at_period_end": true}))
        .await
        .ok();
    assert_eq!(s["cancel_at_period_end"], true);
    let s = app.post(&format!("/admin/subscriptions/{sub_id}/resume"), As::Admin, json!({})).await.ok();
    assert_eq!(s["cancel_at_period_end"], false);
    app.post(&format!("/admin/subscriptions/{sub_id}/cancel"), As::Admin, json!({"at_period_end": true})).await.ok();
    let end = sub["current_period_end"].as_i64().unwrap();
    advance(&app, &clock, end + 1).await;
    let s = app.get(&format!("/admin/subscriptions/{sub_id}"), As::Admin).await.ok();
    assert_eq!(s["status"], "canceled");
    assert_eq!(invoices_of(&app, &sub_id).await.len(), 3, "no invoice after the end");
    let again = app.post(&format!("/admin/subscriptions/{sub_id}/resume"), As::Admin, json!({})).await;
    assert_eq!((again.status.as_u16(), again.error_code()), (409, "subscription_canceled"));
}

#[tokio::test]
async fn bad_input_names_the_parameter_and_stores_nothing() {
    let app = spawn_app().await;
    let price = recurring_price(&app, 1000, 0).await;
    let (_, one_time) = app.product_with_price("One-off", 500, None).await;
    let customer = customer_on(&app, None).await;
    let stranger = customer_on(&app, None).await;
    attach(&app, &customer, "pm_card_visa").await;
    let strangers_pm = attach(&app, &stranger, "pm_card_visa").await;
    let unknown_price = "price_01jd0000000000000000000000";
    let cases: Vec<(Value, &str)> = vec![
        (json!({"customer": customer, "items": [{"price": unknown_price}]}), "items[0].price"),
        (json!({"customer": customer, "items": [{"price": "nope\u{0}"}]}), "items[0].price"),
        (json!({"customer": customer, "items": [{"price": one_time}]}), "items[0].price"),
        (json!({"customer": customer, "items": [{"price": price, "quantity": 0}]}), "items[0].quantity"),
        (json!({"customer": customer, "items": [{"price": price, "quantity": i64::MAX}]}), "items[0].quantity"),
        (json!({"customer": customer, "items": [{"price": price, "quantity": -1}]}), "items[0].quantity"),
        (json!({"customer": customer, "items": []}), "items"),
        (
            json!({"customer": customer, "items": [{"price": price}], "trial_period_days": i64::MAX}),
            "trial_period_days",
        ),
        (
            json!({"customer": customer, "items": [{"price": price}], "default_payment_method": strangers_pm}),
            "default_payment_method",
        ),
        (
            json!({"customer": customer, "items": [{"price": price}], "default_payment_method": "pm_card_visa"}),
            "default_payment_method",
        ),
        (json!({"customer": "cus_01jd0000000000000000000000", "items": [{"price": price}]}), "customer"),
        (
            json!({"customer": stranger, "items": [{"price": price}], "default_payment_method": "x"}),
            "default_payment_method",
        ),
    ];
    for (body, param) in cases {
        let r = app.post("/admin/subscriptions", As::Admin, body.clone()).await;
        assert_eq!(r.status.as_u16(), 400, "{body}: {}", r.text);
        assert_eq!(r.error_param(), param, "{body}: {}", r.text);
    }
    let listed = app.get("/admin/subscriptions?limit=100", As::Admin).await.ok();
    assert_eq!(listed["data"].as_array().unwrap().len(), 0, "nothing stored");
    let invoices = app.get("/admin/invoices?limit=100", As::Admin).await.ok();
    assert_eq!(invoices["data"].as_array().unwrap().len(), 0);
    for filter in ["status=paidish", "customer=nope", "subscription=cus_x"] {
        let r = app.get(&format!("/admin/invoices?{filter}"), As::Admin).await;
        assert_eq!(r.status.as_u16(), 400, "{filter}");
    }
    let r = app
        .post(
            &format!("/admin/customers/{customer}/payment-methods"),
            As::Admin,
            json!({"payment_method": "pm_card_nope"}),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.error_param()), (400, "payment_method"));
    let r = app.post("/admin/customers", As::Admin, json!({"test_clock": "clock_01jd0000000000000000000000"})).await;
    assert_eq!((r.status.as_u16(), r.error_param()), (400, "test_clock"));
    let c = clock(&app, JAN_31_2027).await;
    let r =
        app.post(&format!("/admin/test-clocks/{c}/advance"), As::Admin, json!({"frozen_time": JAN_31_2027 - 1})).await;
    assert_eq!((r.status.as_u16(), r.error_param()), (400, "frozen_time"));
}

/// Two servers on one database, each with its job runner, advance the same clock at once:
/// every period is invoiced once and charged once.
#[tokio::test]
async fn two_servers_racing_never_charge_a_period_twice() {
    // The test processor's chaos mode on: its webhooks arrive twice, late and out of order.
    let app = crate::helpers::spawn_app_with(|s| s.processor.test.chaos = true).await;
    let mut settings: Settings = (*app.state.settings).clone();
    settings.server.port = 0;
    let second = Application::build(settings, BuildOptions::default()).await.expect("second server builds");
    let second_address = format!("http://{}", second.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let second = tokio::spawn(async move {
        second
            .run_until_stopped(async move {
                let _ = stopped.await;
            })
            .await
            .unwrap()
    });
    let other = crate::helpers::remote(&second_address, &app.api.secret_key, &app.api.publishable_key);
    let price = recurring_price(&app, 700, 3).await;
    let clock = clock(&app, JAN_31_2027).await;
    let mut subs = Vec::new();
    for _ in 0..5 {
        let customer = customer_on(&app, Some(&clock)).await;
        attach(&app, &customer, "pm_card_visa").await;
        let s = app
            .post("/admin/subscriptions", As::Admin, json!({"customer": customer, "items": [{"price": price}]}))
            .await
            .ok();
        subs.push(s["id"].as_str().unwrap().to_string());
    }
    // A year, step by step, both servers advancing at once (and both runners working).
    for month in 1..=12 {
        let to = JAN_31_2027 + month * 31 * DAY;
        let path = format!("/admin/test-clocks/{clock}/advance");
        let (a, b) = tokio::join!(
            app.post(&path, As::Admin, json!({"frozen_time": to})),
            other.post(&path, As::Admin, json!({"frozen_time": to}))
        );
        // One of them may find the clock moved already by the other: that is a 400, not a charge.
        assert!(a.status.is_success() || b.status.is_success(), "{} / {}", a.text, b.text);
    }
    let charges = charges_by_invoice(&app).await;
    let mut invoices = 0;
    for s in &subs {
        let list = invoices_of(&app, s).await;
        assert_eq!(list.len(), 13, "the first invoice and 12 renewals");
        let periods: BTreeSet<i64> = list.iter().map(|i| i["period_start"].as_i64().unwrap()).collect();
        assert_eq!(periods.len(), 13, "one invoice per period");
        for inv in &list {
            assert_eq!(inv["status"], "paid");
            assert_eq!(charges.get(inv["id"].as_str().unwrap()), Some(&1), "charged once: {inv}");
        }
        invoices += list.len();
    }
    assert_eq!(charges.values().sum::<usize>(), invoices, "no charge without its invoice");
    let _ = stop.send(());
    let _ = second.await;
}

/// A create sent twice with one `Idempotency-Key` (a client retrying after a timeout) starts
/// one subscription and charges once.
#[tokio::test]
async fn a_retried_create_starts_one_subscription_and_charges_once() {
    let app = spawn_app().await;
    let price = recurring_price(&app, 1200, 0).await;
    let customer = customer_on(&app, None).await;
    attach(&app, &customer, "pm_card_visa").await;
    let body = json!({"customer": customer, "items": [{"price": price, "quantity": 2}]});
    let first = app.post_idem("/admin/subscriptions", As::Admin, body.clone(), "create-sub-1").await.ok();
    let again = app.post_idem("/admin/subscriptions", As::Admin, body, "create-sub-1").await.ok();
    assert_eq!(first["id"], again["id"]);
    assert_eq!(first["status"], "active");
    assert_eq!(first["items"]["data"][0]["quantity"], 2);
    let listed = app.get(&format!("/admin/subscriptions?customer={customer}"), As::Admin).await.ok();
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    let invoices = invoices_of(&app, first["id"].as_str().unwrap()).await;
    assert_eq!(invoices.len(), 1);
    assert_eq!(invoices[0]["amount_paid"], 2400);
    assert_eq!(charges_by_invoice(&app).await.get(invoices[0]["id"].as_str().unwrap()), Some(&1));
}

/// 4000 0025 0000 3155 asks for authentication unless it was set up for off-session use; one
/// attached directly was not, so the first off-session charge needs the customer: the
/// subscription stays `incomplete`, its invoice open, and nothing is charged.
#[tokio::test]
async fn a_card_not_set_up_for_off_session_leaves_the_subscription_incomplete() {
    let app = spawn_app().await;
    let price = recurring_price(&app, 900, 0).await;
    let customer = customer_on(&app, None).await;
    attach(&app, &customer, "pm_card_authenticationRequiredOnSetup").await;
    let sub = app
        .post("/admin/subscriptions", As::Admin, json!({"customer": customer, "items": [{"price": price}]}))
        .await
        .ok();
    assert_eq!(sub["status"], "incomplete");
    let inv = app.get(&format!("/admin/invoices/{}", sub["latest_invoice"].as_str().unwrap()), As::Admin).await.ok();
    assert_eq!((inv["status"].as_str(), inv["attempt_count"].as_i64()), (Some("open"), Some(1)));
    assert_eq!(inv["last_payment_error"]["code"], "authentication_required");
    assert_eq!(inv["next_payment_attempt"], Value::Null, "a first invoice is not retried by itself");
    let events =
        app.get(&format!("/admin/events?object={}&limit=100", inv["id"].as_str().unwrap()), As::Admin).await.ok();
    assert!(events["data"].as_array().unwrap().iter().any(|e| e["type"] == "invoice.payment_action_required"));
    assert!(charges_by_invoice(&app).await.is_empty());
}

const HOUR: i64 = 3_600;
const CARD_VISA: [(&str, &str); 3] = [("number", "4242 4242 4242 4242"), ("exp", "12/34"), ("cvc", "123")];

/// Stripe's `incomplete_expired`: a subscription whose first invoice is not paid within 23
/// hours of its start ends (never billed again) and its invoice is voided; its hosted page
/// then takes no payment. One whose first invoice is paid in time stays active.
#[tokio::test]
async fn an_incomplete_subscription_expires_after_23_hours_and_its_invoice_is_voided() {
    let app = spawn_app().await;
    let price = recurring_price(&app, 900, 5).await;
    let clock = clock(&app, JAN_31_2027).await;
    let start = |customer: String| {
        let app = &app;
        let body = json!({"customer": customer, "items": [{"price": price}]});
        async move {
            let sub = app.post("/admin/subscriptions", As::Admin, body).await.ok();
            assert_eq!(sub["status"], "incomplete");
            let inv = app.get(&format!("/admin/invoices/{}", sub["latest_invoice"].as_str().unwrap()), As::Admin).await;
            (sub["id"].as_str().unwrap().to_string(), inv.ok())
        }
    };
    let lapsing = customer_on(&app, Some(&clock)).await;
    attach(&app, &lapsing, "pm_card_authenticationRequiredOnSetup").await;
    let (sub_id, inv) = start(lapsing.clone()).await;
    let inv_id = inv["id"].as_str().unwrap().to_string();
    assert_eq!(inv["status"], "open");
    let url = inv["hosted_invoice_url"].as_str().unwrap().to_string();
    // Another customer on the clock pays its first invoice on the page within the 23 hours.
    let paying = customer_on(&app, Some(&clock)).await;
    attach(&app, &paying, "pm_card_authenticationRequiredOnSetup").await;
    let (paid_sub, paid_inv) = start(paying).await;

    advance(&app, &clock, JAN_31_2027 + 22 * HOUR).await;
    let s = app.get(&format!("/admin/subscriptions/{sub_id}"), As::Admin).await.ok();
    assert_eq!(s["status"], "incomplete", "not yet expired after 22 hours");
    assert_eq!(app.get(&format!("/admin/invoices/{inv_id}"), As::Admin).await.ok()["status"], "open");
    let (status, _, _) = form(paid_inv["hosted_invoice_url"].as_str().unwrap(), &CARD_VISA).await;
    assert_eq!(status, 303);
    assert_eq!(app.get(&format!("/admin/subscriptions/{paid_sub}"), As::Admin).await.ok()["status"], "active");

    advance(&app, &clock, JAN_31_2027 + 23 * HOUR).await;
    let s = app.get(&format!("/admin/subscriptions/{sub_id}"), As::Admin).await.ok();
    assert_eq!(s["status"], "incomplete_expired");
    assert_eq!(s["canceled_at"], JAN_31_2027 + 23 * HOUR);
    let i = app.get(&format!("/admin/invoices/{inv_id}"), As::Admin).await.ok();
    assert_eq!((i["status"].as_str(), i["amount_paid"].as_i64()), (Some("void"), Some(0)));
    assert_eq!(i["next_payment_attempt"], Value::Null);
    let listed = app.get("/admin/subscriptions?status=incomplete_expired", As::Admin).await.ok();
    let ids: Vec<&str> = listed["data"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [sub_id.as_str()]);

    // Its hosted page takes no payment any more.
    let (status, back, _) = form(&url, &CARD_VISA).await;
    assert_eq!((status, back.contains("/test-processor/")), (303, false));
    let (status, html) = page(&url).await;
    assert_eq!(status, 200);
    assert!(html.contains("not payable (void)") && !html.contains("Pay with card"), "{html}");
    assert_eq!(app.get(&format!("/admin/invoices/{inv_id}"), As::Admin).await.ok()["status"], "void");
    // Ended: it cannot be changed, canceled or resumed.
    let r = app.post(&format!("/admin/subscriptions/{sub_id}/cancel"), As::Admin, json!({})).await;
    assert_eq!(r.status, 409);
    let r = app.post(&format!("/admin/subscriptions/{sub_id}/resume"), As::Admin, json!({})).await;
    assert_eq!(r.status, 409);

    // A month and more later: never renewed, never charged; the paid one renewed.
    advance(&app, &clock, JAN_31_2027 + 40 * DAY).await;
    let s = app.get(&format!("/admin/subscriptions/{sub_id}"), As::Admin).await.ok();
    assert_eq!(s["status"], "incomplete_expired");
    assert_eq!(invoices_of(&app, &sub_id).await.len(), 1);
    assert_eq!(invoices_of(&app, &paid_sub).await.len(), 2);
    let charges = charges_by_invoice(&app).await;
    assert!(!charges.contains_key(&inv_id), "the expired subscription was never charged: {charges:?}");
    assert_eq!(charges.get(paid_inv["id"].as_str().unwrap()), Some(&1));
    let credits = app.get(&format!("/admin/customers/{lapsing}"), As::Admin).await.ok();
    assert_eq!(credits["credit_balance"], 0, "no credits for a period never paid");

    let events = event_types_about(&app, &[&sub_id, &inv_id]).await;
    let at = |t: i64, kinds: &[&str]| {
        let mut kinds: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
        kinds.sort();
        (t, kinds)
    };
    assert_eq!(
        events,
        [
            at(
                JAN_31_2027,
                &[
                    "subscription.created",
                    "invoice.created",
                    "invoice.payment_failed",
                    "invoice.payment_action_required"
                ]
            ),
            at(JAN_31_2027 + 23 * HOUR, &["subscription.deleted", "invoice.voided"]),
        ],
        "events in order"
    );
    let deleted = app.get(&format!("/admin/events?object={sub_id}&limit=100"), As::Admin).await.ok();
    let deleted = deleted["data"].as_array().unwrap().iter().find(|e| e["type"] == "subscription.deleted").cloned();
    assert_eq!(deleted.unwrap()["data"]["object"]["status"], "incomplete_expired");
}

/// The expiry runs on the job (real time, no test clock) exactly once, even with sweeps racing
/// (the server's own job and two more at once, as on several servers sharing the database).
#[tokio::test]
async fn incomplete_subscriptions_expire_on_the_job_exactly_once_with_sweeps_racing() {
    let app = spawn_app().await;
    let price = recurring_price(&app, 500, 0).await;
    let mut subs = Vec::new();
    for _ in 0..3 {
        let customer = customer_on(&app, None).await;
        attach(&app, &customer, "pm_card_authenticationRequiredOnSetup").await;
        let body = json!({"customer": customer, "items": [{"price": price}]});
        let sub = app.post("/admin/subscriptions", As::Admin, body).await.ok();
        assert_eq!(sub["status"], "incomplete");
        subs.push(sub["id"].as_str().unwrap().to_string());
    }
    // The server's clock goes on with real time: a minute short of 23 hours, none is due yet.
    app.state.clock.advance(23 * HOUR - 60);
    let job = |state: kassa_server::state::AppState| async move {
        kassa_server::services::subscriptions::expire_incomplete(&state, None, 100).await.unwrap()
    };
    assert_eq!(job(app.state.clone()).await, 0, "not yet");
    for sub in &subs {
        assert_eq!(app.get(&format!("/admin/subscriptions/{sub}"), As::Admin).await.ok()["status"], "incomplete");
    }
    app.state.clock.advance(60);
    let (a, b) = tokio::join!(job(app.state.clone()), job(app.state.clone()));
    assert!(a + b <= 3, "each expired once at most: {a} + {b}");
    assert_eq!(job(app.state.clone()).await, 0, "all expired by the racing sweeps and the job");
    for sub in &subs {
        // The server's own job may hold one still, about to commit.
        let mut s = Value::Null;
        for _ in 0..100 {
            s = app.get(&format!("/admin/subscriptions/{sub}"), As::Admin).await.ok();
            if s["status"] != "incomplete" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(s["status"], "incomplete_expired");
        let deleted = app.get(&format!("/admin/events?object={sub}&limit=100"), As::Admin).await.ok();
        let n = deleted["data"].as_array().unwrap().iter().filter(|e| e["type"] == "subscription.deleted").count();
        assert_eq!(n, 1);
        assert_eq!(invoices_of(&app, sub).await[0]["status"], "void");
    }
}

/// An `incomplete` subscription that expires while a payment attempt of its first invoice is
/// under way (claimed, no outcome written) does not lose that charge: as with a cancel, the
/// invoice stays open for the attempt's outcome, which the job writes with the same key —
/// paid (recorded once; the subscription stays expired) or, declined, voided.
#[tokio::test]
async fn an_expiry_during_a_first_payment_attempt_keeps_its_outcome() {
    let app = spawn_app().await;
    let price = recurring_price(&app, 800, 0).await;
    let mut open = Vec::new();
    for later_card in ["pm_card_visa", "pm_card_authenticationRequiredOnSetup"] {
        let customer = customer_on(&app, None).await;
        attach(&app, &customer, "pm_card_authenticationRequiredOnSetup").await;
        let body = json!({"customer": customer, "items": [{"price": price}]});
        let sub = app.post("/admin/subscriptions", As::Admin, body).await.ok();
        assert_eq!(sub["status"], "incomplete");
        let sub_id = sub["id"].as_str().unwrap().to_string();
        let pm = attach(&app, &customer, later_card).await;
        let body = json!({"default_payment_method": pm});
        app.post(&format!("/admin/subscriptions/{sub_id}"), As::Admin, body).await.ok();
        let inv = sub["latest_invoice"].as_str().unwrap().to_string();
        claim_without_outcome(&app, &inv).await;
        open.push((sub_id, inv));
    }
    app.state.clock.advance(23 * HOUR);
    kassa_server::services::subscriptions::expire_incomplete(&app.state, None, 100).await.unwrap();
    for (sub, inv) in &open {
        // The server's own job may be expiring it (the sweep above skipped it), about to commit.
        let mut s = Value::Null;
        for _ in 0..100 {
            s = app.get(&format!("/admin/subscriptions/{sub}"), As::Admin).await.ok();
            if s["status"] != "incomplete" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(s["status"], "incomplete_expired");
        let i = app.get(&format!("/admin/invoices/{inv}"), As::Admin).await.ok();
        assert_eq!(i["status"], "open", "an attempt under way keeps its invoice open for its outcome");
    }
    assert!(charges_by_invoice(&app).await.is_empty());

    // The claim runs out (its server died): the job makes the same attempt and writes it.
    app.state.clock.advance(kassa_server::services::invoices::ATTEMPT_LEASE_SECS + 1);
    let status = |inv: String| {
        let app = &app;
        async move {
            for _ in 0..200 {
                let i = app.get(&format!("/admin/invoices/{inv}"), As::Admin).await.ok();
                if i["status"] != "open" {
                    return i;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            panic!("invoice {inv} still open");
        }
    };
    let paid = status(open[0].1.clone()).await;
    assert_eq!((paid["status"].as_str(), paid["amount_paid"].as_i64()), (Some("paid"), Some(800)));
    let voided = status(open[1].1.clone()).await;
    assert_eq!((voided["status"].as_str(), voided["attempt_count"].as_i64()), (Some("void"), Some(2)));
    assert_eq!(charges_by_invoice(&app).await, BTreeMap::from([(open[0].1.clone(), 1)]));
    for (sub, _) in &open {
        let s = app.get(&format!("/admin/subscriptions/{sub}"), As::Admin).await.ok();
        assert_eq!(s["status"], "incomplete_expired", "a late payment does not revive it");
    }
}

/// Marks an invoice's payment attempt as claimed by a server that has not written its outcome
/// (its charge under way, or made by a server that died before recording it).
async fn claim_without_outcome(app: &TestApp, invoice: &str) {
    let until = app.state.clock.now() + kassa_server::services::invoices::ATTEMPT_LEASE_SECS;
    kassa_store::sql::query("UPDATE invoices SET lease_until = $1 WHERE id = $2")
        .bind(until)
        .bind(invoice)
        .execute(app.state.store.writer())
        .await
        .unwrap();
}

/// Canceling while an invoice's payment attempt is under way does not lose the charge: the
/// invoice stays open for that attempt's outcome, which the job writes with the same
/// processor key — paid (recorded, charged once) or, declined, voided and not retried.
#[tokio::test]
async fn a_cancel_during_a_payment_attempt_keeps_its_outcome() {
    let app = spawn_app().await;
    let price = recurring_price(&app, 1500, 0).await;
    let clock = clock(&app, JAN_31_2027).await;
    let customer = customer_on(&app, Some(&clock)).await;
    let failing = attach(&app, &customer, "pm_card_chargeCustomerFail").await;
    let start = |pm: String| {
        let body = json!({"customer": customer, "items": [{"price": price}], "trial_period_days": 1,
                          "default_payment_method": pm});
        let app = &app;
        async move { app.post("/admin/subscriptions", As::Admin, body).await.ok()["id"].as_str().unwrap().to_string() }
    };
    let (paying, declining) = (start(failing.clone()).await, start(failing.clone()).await);
    advance(&app, &clock, JAN_31_2027 + DAY).await; // both first charges decline: past_due
    let visa = attach(&app, &customer, "pm_card_visa").await;
    app.post(&format!("/admin/subscriptions/{paying}"), As::Admin, json!({"default_payment_method": visa})).await.ok();

    let mut open = Vec::new();
    for sub in [&paying, &declining] {
        let s = app.get(&format!("/admin/subscriptions/{sub}"), As::Admin).await.ok();
        assert_eq!(s["status"], "past_due");
        let inv = s["latest_invoice"].as_str().unwrap().to_string();
        claim_without_outcome(&app, &inv).await;
        let canceled = app.post(&format!("/admin/subscriptions/{sub}/cancel"), As::Admin, json!({})).await.ok();
        assert_eq!(canceled["status"], "canceled");
        let i = app.get(&format!("/admin/invoices/{inv}"), As::Admin).await.ok();
        assert_eq!(i["status"], "open", "an attempt under way keeps its invoice open for its outcome");
        assert_eq!(i["next_payment_attempt"], JAN_31_2027 + DAY, "due at once, to finish the attempt");
        open.push(inv);
    }
    assert!(charges_by_invoice(&app).await.is_empty());

    // The claim runs out (its server died): the job makes the same attempt and writes it.
    app.state.clock.advance(kassa_server::services::invoices::ATTEMPT_LEASE_SECS + 1);
    advance(&app, &clock, JAN_31_2027 + DAY + 1).await;
    let paid = app.get(&format!("/admin/invoices/{}", open[0]), As::Admin).await.ok();
    assert_eq!((paid["status"].as_str(), paid["amount_paid"].as_i64()), (Some("paid"), Some(1500)));
    let voided = app.get(&format!("/admin/invoices/{}", open[1]), As::Admin).await.ok();
    assert_eq!(voided["status"], "void", "a canceled subscription's declined attempt is not retried");
    assert_eq!(charges_by_invoice(&app).await, BTreeMap::from([(open[0].clone(), 1)]));
    for sub in [&paying, &declining] {
        let s = app.get(&format!("/admin/subscriptions/{sub}"), As::Admin).await.ok();
        assert_eq!(s["status"], "canceled");
    }
    let events = app.get(&format!("/admin/events?object={}&limit=100", open[0]), As::Admin).await.ok();
    assert!(events["data"].as_array().unwrap().iter().any(|e| e["type"] == "invoice.paid"));

    // Much later, nothing more is attempted.
    advance(&app, &clock, JAN_31_2027 + 60 * DAY).await;
    assert_eq!(charges_by_invoice(&app).await.len(), 1);
    let voided = app.get(&format!("/admin/invoices/{}", open[1]), As::Admin).await.ok();
    assert_eq!(voided["attempt_count"], 2);
}

/// A client that does not follow redirects (the pages answer 303).
fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn form(url: &str, fields: &[(&str, &str)]) -> (u16, String, String) {
    let r = browser().post(url).form(fields).send().await.unwrap();
    let location = r.headers().get("location").map(|l| l.to_str().unwrap().to_string()).unwrap_or_default();
    (r.status().as_u16(), location, r.text().await.unwrap())
}

async fn page(url: &str) -> (u16, String) {
    let r = browser().get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// A subscription past due because its renewal's card asks for authentication off-session:
/// (subscription, invoice).
async fn past_due_for_authentication(app: &TestApp, amount: i64) -> (String, Value) {
    let price = recurring_price(app, amount, 0).await;
    let clock = clock(app, JAN_31_2027).await;
    let customer = customer_on(app, Some(&clock)).await;
    attach(app, &customer, "pm_card_threeDSecure2Required").await;
    let body = json!({"customer": customer, "items": [{"price": price}], "trial_period_days": 1});
    let sub = app.post("/admin/subscriptions", As::Admin, body).await.ok()["id"].as_str().unwrap().to_string();
    advance(app, &clock, JAN_31_2027 + DAY).await;
    let s = app.get(&format!("/admin/subscriptions/{sub}"), As::Admin).await.ok();
    assert_eq!(s["status"], "past_due");
    let inv = app.get(&format!("/admin/invoices/{}", s["latest_invoice"].as_str().unwrap()), As::Admin).await.ok();
    assert_eq!(inv["last_payment_error"]["code"], "authentication_required");
    (sub, inv)
}

const CARD_3DS: [(&str, &str); 3] = [("number", "4000 0000 0000 3220"), ("exp", "12/34"), ("cvc", "123")];

/// The hosted invoice page: the customer pays a renewal that needed authentication with a
/// card and 3-D Secure; the invoice is paid once, the subscription active again; a second
/// submit charges nothing; a wrong secret opens nothing.
#[tokio::test]
async fn a_renewal_needing_authentication_is_paid_on_its_hosted_invoice_page() {
    let app = spawn_app().await;
    let (sub, inv) = past_due_for_authentication(&app, 1200).await;
    let inv_id = inv["id"].as_str().unwrap().to_string();
    let url = inv["hosted_invoice_url"].as_str().expect("an open invoice has its page").to_string();
    let secret = url.rsplit('/').next().unwrap().to_string();
    assert!(secret.starts_with(&format!("{inv_id}_secret_")) && secret.len() >= inv_id.len() + 8 + 32);

    // Only the exact secret opens the page; every miss is the same 404.
    let base = format!("{}/invoice-pages", app.address);
    let other = app.post("/admin/customers", As::Admin, json!({"email": "x@example.com"})).await.ok();
    for wrong in [
        format!("{inv_id}_secret_{}", "a".repeat(32)),
        format!("{inv_id}_secret_"),
        inv_id.clone(),
        secret[..secret.len() - 1].to_string(),
        format!("{}_secret_{}", other["id"].as_str().unwrap(), &secret[inv_id.len() + 8..]),
    ] {
        assert_eq!(page(&format!("{base}/{wrong}")).await.0, 404, "{wrong}");
        assert_eq!(form(&format!("{base}/{wrong}"), &CARD_3DS).await.0, 404, "{wrong}");
    }
    assert_eq!(page(&format!("{base}/in_%00_secret_x")).await.0, 400, "a NUL is refused before any lookup");
    let (status, html) = page(&url).await;
    assert_eq!(status, 200);
    assert!(html.contains("$12.00") && html.contains("Pay with card"), "{html}");

    // A card with a bad expiry: the page again, nothing charged.
    let (status, _, html) = form(&url, &[("number", "4242424242424242"), ("exp", "13/99")]).await;
    assert_eq!(status, 400, "{html}");

    // The card asks for 3-D Secure: to the challenge, which returns to the page.
    let (status, challenge, _) = form(&url, &CARD_3DS).await;
    assert_eq!(status, 303);
    assert!(challenge.contains("/test-processor/authenticate/pi_"), "{challenge}");
    let challenge = if challenge.starts_with('/') { format!("{}{challenge}", app.address) } else { challenge };
    assert!(charges_by_invoice(&app).await.is_empty());
    let (status, back, _) = form(&challenge, &[("outcome", "complete")]).await;
    assert_eq!(status, 303);
    assert!(back.starts_with(&format!("{url}?payment_intent=pi_")), "back to the page: {back}");
    let (status, html) = page(&url).await;
    assert_eq!(status, 200);
    assert!(html.contains("This invoice is paid"), "{html}");

    let paid = app.get(&format!("/admin/invoices/{inv_id}"), As::Admin).await.ok();
    assert_eq!((paid["status"].as_str(), paid["amount_paid"].as_i64()), (Some("paid"), Some(1200)));
    let s = app.get(&format!("/admin/subscriptions/{sub}"), As::Admin).await.ok();
    assert_eq!(s["status"], "active");
    let events = app.get(&format!("/admin/events?object={inv_id}&limit=100"), As::Admin).await.ok();
    let paid_events = events["data"].as_array().unwrap().iter().filter(|e| e["type"] == "invoice.paid").count();
    assert_eq!(paid_events, 1);
    assert_eq!(charges_by_invoice(&app).await, BTreeMap::from([(inv_id.clone(), 1)]));

    // A second submit (and a second answer to the challenge) pays nothing again.
    let (status, _, _) = form(&url, &[("number", "4242 4242 4242 4242"), ("exp", "12/34"), ("cvc", "123")]).await;
    assert_eq!(status, 303);
    form(&challenge, &[("outcome", "complete")]).await;
    assert_eq!(charges_by_invoice(&app).await, BTreeMap::from([(inv_id, 1)]));
}

/// The job's retry does not charge besides a page payment waiting for 3-D Secure: it cancels
/// that payment first, so the customer finishing the challenge afterwards charges nothing.
/// A card the customer gets wrong on the page does not count in dunning.
#[tokio::test]
async fn a_retry_racing_a_page_payment_waiting_for_authentication_charges_once_at_most() {
    let app = spawn_app().await;
    let (sub, inv) = past_due_for_authentication(&app, 700).await;
    let inv_id = inv["id"].as_str().unwrap().to_string();
    let url = inv["hosted_invoice_url"].as_str().unwrap().to_string();
    let next = inv["next_payment_attempt"].as_i64().unwrap();

    let (status, _, html) = form(&url, &[("number", "4000 0000 0000 0002"), ("exp", "12/34"), ("cvc", "123")]).await;
    assert_eq!(status, 402, "a declined card: the page again: {html}");
    assert!(html.contains("role=\"alert\""));
    let after = app.get(&format!("/admin/invoices/{inv_id}"), As::Admin).await.ok();
    assert_eq!(after["next_payment_attempt"], next, "the job's schedule is unchanged");
    assert_eq!(app.get(&format!("/admin/subscriptions/{sub}"), As::Admin).await.ok()["status"], "past_due");

    let (status, challenge, _) = form(&url, &CARD_3DS).await;
    assert_eq!(status, 303);
    let challenge = if challenge.starts_with('/') { format!("{}{challenge}", app.address) } else { challenge };
    // The job's retry comes first: the saved card still needs authentication off-session.
    let clock =
        app.get(&format!("/admin/customers/{}", inv["customer"].as_str().unwrap()), As::Admin).await.ok()["test_clock"]
            .as_str()
            .unwrap()
            .to_string();
    advance(&app, &clock, next).await;
    let (status, _, _) = form(&challenge, &[("outcome", "complete")]).await;
    assert!(status == 409 || status == 303 || status == 200, "{status}");
    page(&url).await;
    assert!(charges_by_invoice(&app).await.is_empty(), "the page payment was canceled before the retry");
    let after = app.get(&format!("/admin/invoices/{inv_id}"), As::Admin).await.ok();
    assert_eq!(after["status"], "open");

    // Paid on the page after all: once.
    let (_, challenge, _) = form(&url, &CARD_3DS).await;
    let challenge = if challenge.starts_with('/') { format!("{}{challenge}", app.address) } else { challenge };
    form(&challenge, &[("outcome", "complete")]).await;
    page(&url).await;
    assert_eq!(charges_by_invoice(&app).await, BTreeMap::from([(inv_id.clone(), 1)]));
    assert_eq!(app.get(&format!("/admin/subscriptions/{sub}"), As::Admin).await.ok()["status"], "active");
}
