//! The billing portal (issue 15): a session's page shows the customer's subscriptions,
//! invoices and card; its forms update the card (3-D Secure included) and cancel at the
//! period end, once per form, only for that customer, and only while the link is live.

use crate::helpers::{As, TestApp, spawn_app};
use serde_json::{Value, json};

/// 2027-01-31T00:00:00Z.
const JAN_31_2027: i64 = 1_801_353_600;
const DAY: i64 = 86_400;

async fn recurring_price(app: &TestApp, unit_amount: i64) -> String {
    let product = app.post("/admin/products", As::Admin, json!({"name": format!("Plan {unit_amount}")})).await.ok();
    let body = json!({"product": product["id"], "currency": "usd", "unit_amount": unit_amount,
                      "recurring": {"interval": "month"}, "nickname": format!("Plan {unit_amount}")});
    app.post("/admin/prices", As::Admin, body).await.ok()["id"].as_str().unwrap().to_string()
}

/// A customer (on a test clock when given) with a saved Visa and an active subscription:
/// (customer, subscription).
async fn subscribed(app: &TestApp, amount: i64, clock: Option<&str>) -> (String, String) {
    let price = recurring_price(app, amount).await;
    let mut body = json!({"email": format!("{}@example.com", crate::helpers::rand_suffix())});
    if let Some(c) = clock {
        body["test_clock"] = json!(c);
    }
    let customer = app.post("/admin/customers", As::Admin, body).await.ok()["id"].as_str().unwrap().to_string();
    let path = format!("/admin/customers/{customer}/payment-methods");
    app.post(&path, As::Admin, json!({"payment_method": "pm_card_visa", "default": true})).await.ok();
    let body = json!({"customer": customer, "items": [{"price": price}]});
    let sub = app.post("/admin/subscriptions", As::Admin, body).await.ok();
    assert_eq!(sub["status"], "active");
    (customer, sub["id"].as_str().unwrap().to_string())
}

async fn portal(app: &TestApp, customer: &str) -> String {
    let r = app.post(&format!("/admin/customers/{customer}/portal-sessions"), As::Admin, json!({})).await.ok();
    r["url"].as_str().unwrap().to_string()
}

/// A client that does not follow redirects (the pages answer 303).
fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn post_form(url: &str, fields: &[(&str, &str)]) -> (u16, String, String) {
    let r = browser().post(url).form(fields).send().await.unwrap();
    let location = r.headers().get("location").map(|l| l.to_str().unwrap().to_string()).unwrap_or_default();
    (r.status().as_u16(), location, r.text().await.unwrap())
}

async fn page(url: &str) -> (u16, String) {
    let r = browser().get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// A form of the page: its action and hidden fields.
#[derive(Clone, Debug)]
struct Form {
    action: String,
    nonce: String,
    csrf: String,
}

fn attr(tag: &str, name: &str) -> String {
    let key = format!("{name}=\"");
    let start = tag.find(&key).map(|i| i + key.len()).unwrap_or_else(|| panic!("no {name} in {tag}"));
    tag[start..].split('"').next().unwrap().to_string()
}

/// The forms of a page whose action ends with `suffix`.
fn forms(html: &str, suffix: &str) -> Vec<Form> {
    html.split("<form ")
        .skip(1)
        .filter_map(|f| {
            let form = f.split("</form>").next().unwrap();
            let action = attr(form, "action");
            if !action.ends_with(suffix) {
                return None;
            }
            let field = |name: &str| {
                let at = form.find(&format!("name=\"{name}\"")).unwrap();
                let tag = &form[form[..at].rfind('<').unwrap()..];
                attr(tag.split('>').next().unwrap(), "value")
            };
            Some(Form { nonce: field("nonce"), csrf: field("csrf_token"), action })
        })
        .collect()
}

async fn form_of(app: &TestApp, url: &str, suffix: &str) -> Form {
    let (status, html) = page(url).await;
    assert_eq!(status, 200, "{html}");
    let found = forms(&html, suffix);
    assert_eq!(found.len(), 1, "one form ending {suffix}: {html}");
    let mut f = found[0].clone();
    f.action = format!("{}{}", app.address, f.action);
    f
}

async fn submit(form: &Form, extra: &[(&str, &str)]) -> (u16, String, String) {
    let mut fields = vec![("nonce", form.nonce.as_str()), ("csrf_token", form.csrf.as_str())];
    fields.extend_from_slice(extra);
    post_form(&form.action, &fields).await
}

async fn subscription(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/admin/subscriptions/{id}"), As::Admin).await.ok()
}

async fn events_of(app: &TestApp, object: &str, suffix: &str) -> usize {
    let events = app.get(&format!("/admin/events?object={object}&limit=100"), As::Admin).await.ok();
    events["data"].as_array().unwrap().iter().filter(|e| e["type"].as_str().unwrap().ends_with(suffix)).count()
}

/// The PaymentIntents the portal made to verify cards, with their statuses.
async fn verifications(app: &TestApp) -> Vec<kassa_processors::PaymentIntent> {
    let page = app.state.processor.list_payment_intents(None, 100).await.unwrap();
    page.data.into_iter().filter(|pi| pi.metadata.contains_key("kassa_billing_portal_session")).collect()
}

fn absolute(app: &TestApp, url: &str) -> String {
    if url.starts_with('/') { format!("{}{url}", app.address) } else { url.to_string() }
}

const CARD: [(&str, &str); 3] = [("number", "5555 5555 5555 4444"), ("exp", "12/34"), ("cvc", "123")];
const CARD_3DS: [(&str, &str); 3] = [("number", "4000 0025 0000 3155"), ("exp", "12/34"), ("cvc", "123")];

/// The session object, its idempotent creation, and the page: subscription, invoices, card.
#[tokio::test]
async fn a_portal_session_opens_a_page_with_the_customer_s_billing() {
    let app = spawn_app().await;
    let (customer, sub) = subscribed(&app, 1500, None).await;
    let path = format!("/admin/customers/{customer}/portal-sessions");
    let body = json!({"return_url": "https://shop.example/account"});
    let s = app.post_idem(&path, As::Admin, body.clone(), "portal-1").await.ok();
    assert_eq!(s["object"], "billing_portal.session");
    assert_eq!(s["customer"], customer.as_str());
    assert_eq!(s["return_url"], "https://shop.example/account");
    assert!(s["id"].as_str().unwrap().starts_with("bps_"));
    assert_eq!(s["expires_at"].as_i64().unwrap() - s["created"].as_i64().unwrap(), 3600);
    let url = s["url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&format!("{}/billing-portal/{}_secret_", app.address, s["id"].as_str().unwrap())), "{url}");
    let again = app.post_idem(&path, As::Admin, body, "portal-1").await.ok();
    assert_eq!((again["id"].clone(), again["url"].clone()), (s["id"].clone(), s["url"].clone()), "the key replays");
    let other = app.post(&path, As::Admin, json!({})).await.ok();
    assert_ne!(other["url"], s["url"]);
    assert_eq!(other["return_url"], Value::Null);

    // Bad input: 4xx, nothing made.
    assert_eq!(app.post(&path, As::Admin, json!({"return_url": "javascript:alert(1)"})).await.status.as_u16(), 400);
    assert_eq!(app.post(&path, As::Admin, json!({"colour": "red"})).await.status.as_u16(), 400);
    let unknown = "/admin/customers/cus_01jzzzzzzzzzzzzzzzzzzzzzzz/portal-sessions";
    assert_eq!(app.post(unknown, As::Admin, json!({})).await.status.as_u16(), 404);
    assert_eq!(app.post(&path, As::Store, json!({})).await.status.as_u16(), 401);

    let (status, html) = page(&url).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains(&format!("subscription-{sub}")), "{html}");
    assert!(html.contains("Plan 1500") && html.contains("$15.00") && html.contains("per month"), "{html}");
    assert!(html.contains("active") && html.contains("Cancel at period end"), "{html}");
    assert!(html.contains("visa ending in 4242"), "{html}");
    let invoice = subscription(&app, &sub).await["latest_invoice"].as_str().unwrap().to_string();
    assert!(html.contains(&format!("invoice-{invoice}")) && html.contains("paid"), "{html}");
    assert!(html.contains("href=\"https://shop.example/account\""), "{html}");
}

/// Cancel at the period end from the portal, shown by the admin API; a double submit changes
/// once; "Don't cancel" takes it back; a forged form changes nothing.
#[tokio::test]
async fn the_portal_cancels_at_period_end_once_and_resumes() {
    let app = spawn_app().await;
    let (customer, sub) = subscribed(&app, 900, None).await;
    let url = portal(&app, &customer).await;
    let cancel = form_of(&app, &url, "/cancel").await;

    // A forged token (or another session's) changes nothing.
    let mut forged = cancel.clone();
    forged.csrf = "0".repeat(64);
    assert_eq!(submit(&forged, &[]).await.0, 403);
    let other_url = portal(&app, &customer).await;
    let other_form = form_of(&app, &other_url, "/cancel").await;
    let mixed = Form { action: cancel.action.clone(), ..other_form };
    assert_eq!(submit(&mixed, &[]).await.0, 403, "a form of another session");
    assert_eq!(subscription(&app, &sub).await["cancel_at_period_end"], false);
    let updated_before = events_of(&app, &sub, "subscription.updated").await;

    // The same form twice, at once: one change, one event.
    let (a, b) = tokio::join!(submit(&cancel, &[]), submit(&cancel, &[]));
    assert_eq!((a.0, b.0), (303, 303));
    assert!(a.1.ends_with(&url[url.find("/billing-portal/").unwrap()..]), "back to the page: {}", a.1);
    let s = subscription(&app, &sub).await;
    assert_eq!((s["cancel_at_period_end"].as_bool(), s["status"].as_str()), (Some(true), Some("active")));
    assert_eq!(events_of(&app, &sub, "subscription.updated").await, updated_before + 1);

    let (_, html) = page(&url).await;
    assert!(html.contains("Cancels on") && html.contains("Don't cancel"), "{html}");
    let end = chrono::DateTime::from_timestamp(s["current_period_end"].as_i64().unwrap(), 0).unwrap();
    assert!(html.contains(&format!("Cancels on {}.", end.format("%Y-%m-%d"))), "the period's last day: {html}");
    let resume = form_of(&app, &url, "/resume").await;
    assert_eq!(submit(&resume, &[]).await.0, 303);
    assert_eq!(submit(&resume, &[]).await.0, 303);
    assert_eq!(subscription(&app, &sub).await["cancel_at_period_end"], false);
    assert_eq!(events_of(&app, &sub, "subscription.updated").await, updated_before + 2);
    // The old cancel form, posted again later, does nothing either.
    assert_eq!(submit(&cancel, &[]).await.0, 303);
    assert_eq!(subscription(&app, &sub).await["cancel_at_period_end"], false);

    // Canceled now by the merchant: the portal offers nothing, and an old form is refused
    // by the same rule as the admin API.
    let fresh = form_of(&app, &url, "/cancel").await;
    app.post(&format!("/admin/subscriptions/{sub}/cancel"), As::Admin, json!({})).await.ok();
    let (status, _, html) = submit(&fresh, &[]).await;
    assert_eq!(status, 409, "{html}");
    assert!(html.contains("role=\"alert\""), "{html}");
    let (_, html) = page(&url).await;
    assert!(!html.contains("Cancel at period end") && html.contains("canceled"), "{html}");
}

/// Unknown, wrong, partial and expired links: the same 404 page; their forms change nothing.
#[tokio::test]
async fn expired_and_forged_links_open_nothing_and_change_nothing() {
    let app = spawn_app().await;
    let (customer, sub) = subscribed(&app, 700, None).await;
    let url = portal(&app, &customer).await;
    let token = url.rsplit('/').next().unwrap().to_string();
    let (id, secret) = token.split_once("_secret_").unwrap();
    assert_eq!(secret.len(), 32);
    let cancel = form_of(&app, &url, "/cancel").await;
    let base = format!("{}/billing-portal", app.address);
    let other = portal(&app, &customer).await;
    let other_secret = other.rsplit('/').next().unwrap().split_once("_secret_").unwrap().1.to_string();
    for wrong in [
        format!("{id}_secret_{}", "a".repeat(32)),
        format!("{id}_secret_"),
        id.to_string(),
        token[..token.len() - 1].to_string(),
        format!("{id}_secret_{other_secret}"),
        format!("bps_01jzzzzzzzzzzzzzzzzzzzzzzz_secret_{secret}"),
        format!("{customer}_secret_{secret}"),
    ] {
        let (status, html) = page(&format!("{base}/{wrong}")).await;
        assert_eq!(status, 404, "{wrong}");
        assert!(html.contains("expired or is not valid"), "{html}");
        let action = cancel.action.replace(&token, &wrong);
        let (status, _, _) = submit(&Form { action, ..cancel.clone() }, &[]).await;
        assert_eq!(status, 404, "{wrong}");
        let (status, _, _) = post_form(&format!("{base}/{wrong}/card"), &CARD).await;
        assert_eq!(status, 404, "{wrong}");
    }
    assert_eq!(page(&format!("{base}/bps_%00_secret_x")).await.0, 400, "a NUL is refused before any lookup");
    assert_eq!(subscription(&app, &sub).await["cancel_at_period_end"], false);

    // An hour later the link is dead: the page says so, its forms change nothing.
    let card = form_of(&app, &url, "/card").await;
    app.state.clock.advance(3601);
    let (status, html) = page(&url).await;
    assert_eq!(status, 404);
    assert!(html.contains("expired or is not valid"), "{html}");
    assert_eq!(submit(&cancel, &[]).await.0, 404);
    assert_eq!(submit(&card, &CARD).await.0, 404);
    let s = subscription(&app, &sub).await;
    assert_eq!(s["cancel_at_period_end"], false);
    let methods = app.get(&format!("/admin/customers/{customer}/payment-methods"), As::Admin).await.ok();
    assert_eq!(methods["data"].as_array().unwrap().len(), 1);
    assert!(verifications(&app).await.is_empty());
}

/// A session of customer A cannot act on customer B's subscription (the same 404 as none),
/// and uses up nothing doing so.
#[tokio::test]
async fn a_portal_session_cannot_act_on_another_customer_s_subscription() {
    let app = spawn_app().await;
    let (a, sub_a) = subscribed(&app, 500, None).await;
    let (_, sub_b) = subscribed(&app, 600, None).await;
    let url = portal(&app, &a).await;
    let (_, html) = page(&url).await;
    assert!(html.contains(&sub_a) && !html.contains(&sub_b), "{html}");
    let cancel = form_of(&app, &url, "/cancel").await;
    for target in [sub_b.as_str(), "sub_01jzzzzzzzzzzzzzzzzzzzzzzz", "nonsense"] {
        let action = cancel.action.replace(&sub_a, target);
        let (status, _, _) = submit(&Form { action: action.clone(), ..cancel.clone() }, &[]).await;
        assert_eq!(status, 404, "{target}");
        let resume = action.replace("/cancel", "/resume");
        assert_eq!(submit(&Form { action: resume, ..cancel.clone() }, &[]).await.0, 404, "{target}");
    }
    assert_eq!(subscription(&app, &sub_b).await["cancel_at_period_end"], false);
    // The form was not used up: it still cancels A's own subscription.
    assert_eq!(submit(&cancel, &[]).await.0, 303);
    assert_eq!(subscription(&app, &sub_a).await["cancel_at_period_end"], true);
    assert_eq!(subscription(&app, &sub_b).await["cancel_at_period_end"], false);
}

/// Updating the card: a plain card at once; a card that asks for authentication through the
/// 3-D Secure challenge. Each becomes the customer's and the subscription's default, the old
/// card stays saved, the checks are voided (nothing charged), a form posted twice verifies
/// once, and the next renewal charges the new card off-session.
#[tokio::test]
async fn the_portal_updates_the_card_with_3d_secure() {
    let app = spawn_app().await;
    let clock = app.post("/admin/test-clocks", As::Admin, json!({"frozen_time": JAN_31_2027})).await.ok()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (customer, sub) = subscribed(&app, 2000, Some(&clock)).await;
    let old = subscription(&app, &sub).await["default_payment_method"].clone();
    let url = portal(&app, &customer).await;
    let methods_path = format!("/admin/customers/{customer}/payment-methods");

    // A mistyped card: the page again, nothing changed, nothing verified.
    let card = form_of(&app, &url, "/card").await;
    let (status, _, html) = submit(&card, &[("number", "5555 5555 5555 4444"), ("exp", "13/99")]).await;
    assert_eq!(status, 400, "{html}");
    assert!(verifications(&app).await.is_empty());

    // A plain card, posted twice: verified once, the default now.
    let card = form_of(&app, &url, "/card").await;
    let (a, b) = tokio::join!(submit(&card, &CARD), submit(&card, &CARD));
    assert_eq!((a.0, b.0), (303, 303), "{} {}", a.2, b.2);
    let checks = verifications(&app).await;
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].status, kassa_processors::PaymentIntentStatus::Canceled, "the check is voided");
    let methods = app.get(&methods_path, As::Admin).await.ok();
    let data = methods["data"].as_array().unwrap();
    assert_eq!(data.len(), 2, "the old card stays saved: {methods}");
    let default: Vec<&Value> = data.iter().filter(|m| m["default"] == true).collect();
    assert_eq!(default.len(), 1);
    assert_eq!(default[0]["card"]["last4"], "4444");
    let mastercard = default[0]["id"].clone();
    assert_eq!(subscription(&app, &sub).await["default_payment_method"], mastercard);
    assert_ne!(mastercard, old);
    let (_, html) = page(&url).await;
    assert!(html.contains("mastercard ending in 4444"), "{html}");

    // A card that asks for authentication: to the challenge, which returns to the page.
    let card = form_of(&app, &url, "/card").await;
    let (status, challenge, html) = submit(&card, &CARD_3DS).await;
    assert_eq!(status, 303, "{html}");
    assert!(challenge.contains("/test-processor/authenticate/pi_"), "{challenge}");
    assert_eq!(subscription(&app, &sub).await["default_payment_method"], mastercard, "not before the challenge");
    let (status, back, _) = post_form(&absolute(&app, &challenge), &[("outcome", "complete")]).await;
    assert_eq!(status, 303);
    assert!(back.starts_with(&url), "back to the portal: {back}");
    let (status, html) = page(&back).await;
    assert_eq!(status, 200);
    assert!(html.contains("Your card is updated") && html.contains("visa ending in 3155"), "{html}");
    // Loading the page again finishes nothing twice.
    let updated = events_of(&app, &sub, "subscription.updated").await;
    page(&url).await;
    assert_eq!(events_of(&app, &sub, "subscription.updated").await, updated);

    let s = subscription(&app, &sub).await;
    let methods = app.get(&methods_path, As::Admin).await.ok();
    let data = methods["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    let new = data.iter().find(|m| m["default"] == true).unwrap();
    assert_eq!(new["card"]["last4"], "3155");
    assert_eq!(s["default_payment_method"], new["id"]);
    let checks = verifications(&app).await;
    assert_eq!(checks.len(), 2);
    assert!(
        checks.iter().all(|pi| pi.status == kassa_processors::PaymentIntentStatus::Canceled && pi.amount_received == 0)
    );

    // A failed challenge leaves the card as it was.
    let card = form_of(&app, &url, "/card").await;
    let (_, challenge, _) = submit(&card, &CARD_3DS).await;
    post_form(&absolute(&app, &challenge), &[("outcome", "fail")]).await;
    let (_, html) = page(&url).await;
    assert!(html.contains("visa ending in 3155") && html.contains("id=\"portal-message\""), "{html}");
    assert_eq!(subscription(&app, &sub).await["default_payment_method"], new["id"]);

    // The renewal charges the new card off-session: it was set up with the authentication.
    let period_end = s["current_period_end"].as_i64().unwrap();
    app.post(&format!("/admin/test-clocks/{clock}/advance"), As::Admin, json!({"frozen_time": period_end + DAY}))
        .await
        .ok();
    let s = subscription(&app, &sub).await;
    assert_eq!(s["status"], "active");
    let inv = app.get(&format!("/admin/invoices/{}", s["latest_invoice"].as_str().unwrap()), As::Admin).await.ok();
    assert_eq!((inv["status"].as_str(), inv["billing_reason"].as_str()), (Some("paid"), Some("subscription_cycle")));
    let pi = app.state.processor.retrieve_payment_intent(inv["payment_intent"].as_str().unwrap()).await.unwrap();
    assert_eq!(pi.payment_method.as_deref(), new["id"].as_str());
}
