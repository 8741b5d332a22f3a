//! The merchant's dashboard over HTTP: sign-in (and its throttle), the session cookie's
//! flags, CSRF (403, nothing changes), roles (a viewer's forged refund is 403), a partial
//! refund done once for a double submission and recorded naming the user, sign out
//! everywhere; subscriptions and invoices listed, filtered and shown, a subscription canceled
//! at the period end once for a double submission, resumed, canceled now.

use crate::checkout::{VISA, pay, ready_cart, shop};
use crate::helpers::*;
use kassa_server::services::dashboard::{Role, users};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

const PASSWORD: &str = "correct horse battery";

/// A browser without redirects, keeping the dashboard's cookies by hand.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

struct Page {
    status: StatusCode,
    html: String,
    headers: reqwest::header::HeaderMap,
}

impl Page {
    fn location(&self) -> &str {
        self.headers.get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    fn set_cookies(&self) -> Vec<String> {
        self.headers.get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_string()).collect()
    }

    /// The value of the first hidden input `name`.
    fn field(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.html.find(&marker).unwrap_or_else(|| panic!("no {name} in {}", self.html)) + marker.len();
        self.html[start..].split('"').next().unwrap().to_string()
    }
}

impl Browser {
    fn new(app: &TestApp) -> Browser {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Browser { http, base: app.api.address.clone(), cookies: Vec::new() }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    fn keep(&mut self, page: &Page) {
        for c in page.set_cookies() {
            let pair = c.split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            self.cookies.retain(|(name, _)| name != k);
            if !v.is_empty() {
                self.cookies.push((k.to_string(), v.to_string()));
            }
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let res = req.header(COOKIE, self.cookie_header()).send().await.expect("request sent");
        let page = Page { status: res.status(), headers: res.headers().clone(), html: res.text().await.unwrap() };
        self.keep(&page);
        page
    }

    async fn get(&mut self, path: &str) -> Page {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let req = self.http.post(format!("{}{path}", self.base)).form(form);
        self.send(req).await
    }

    async fn sign_in(&mut self, email: &str, password: &str) -> Page {
        let login = self.get("/dashboard/login").await;
        assert_eq!(login.status, 200);
        let csrf = login.field("csrf_token");
        self.post("/dashboard/login", &[("csrf_token", &csrf), ("email", email), ("password", password)]).await
    }

    /// The CSRF token of the signed-in session, as its pages carry it.
    async fn csrf(&mut self) -> String {
        self.get("/dashboard/orders").await.field("csrf_token")
    }
}

async fn user(app: &TestApp, email: &str, role: Role) {
    users::create(&app.state.store, email, role, PASSWORD, app.state.clock.now()).await.expect("user created");
}

/// A paid (captured) order of `email`; returns its id and total.
async fn paid_order(app: &TestApp, email: &str) -> (String, i64) {
    let shop = shop(&app.api, 10).await;
    let cart = ready_cart(&app.api, &shop, email).await;
    let paid = pay(&app.api, &cart, VISA).await.ok();
    let order = &paid["order"];
    (order["id"].as_str().unwrap().to_string(), order["total"].as_i64().unwrap())
}

#[tokio::test]
async fn sign_in_refuses_a_wrong_password_and_sets_a_strict_http_only_cookie() {
    let app = spawn_app().await;
    user(&app, "Owner@Example.com", Role::Owner).await;
    let mut b = Browser::new(&app);

    assert_eq!(b.get("/dashboard").await.location(), "/dashboard/login");
    let wrong = b.sign_in("owner@example.com", "not the password").await;
    assert_eq!(wrong.status, 401, "{}", wrong.html);
    assert!(wrong.html.contains("Wrong email or password"));
    assert!(!b.cookies.iter().any(|(k, _)| k == "kassa_dashboard"));
    let unknown = b.sign_in("nobody@example.com", PASSWORD).await;
    assert_eq!(unknown.status, 401);

    let ok = b.sign_in("owner@example.com", PASSWORD).await;
    assert_eq!(ok.status, 303, "{}", ok.html);
    assert_eq!(ok.location(), "/dashboard");
    let session = ok.set_cookies().into_iter().find(|c| c.starts_with("kassa_dashboard=")).expect("session cookie");
    assert!(session.contains("HttpOnly"), "{session}");
    assert!(session.contains("SameSite=Strict"), "{session}");
    assert!(session.contains("Path=/dashboard"), "{session}");
    assert!(!session.contains("Secure"), "plain HTTP: {session}");
    let overview = b.get("/dashboard").await;
    assert_eq!(overview.status, 200);
    assert!(overview.html.contains("owner@example.com"));
    let csp = overview.headers.get("content-security-policy").unwrap().to_str().unwrap();
    assert!(csp.contains("script-src") || csp.contains("default-src 'none'"), "{csp}");

    // Behind a TLS-terminating proxy the cookie is Secure.
    let mut proxied = Browser::new(&app);
    let login = proxied.get("/dashboard/login").await;
    let csrf = login.field("csrf_token");
    let req = proxied
        .http
        .post(format!("{}/dashboard/login", proxied.base))
        .header("x-forwarded-proto", "https")
        .form(&[("csrf_token", csrf.as_str()), ("email", "owner@example.com"), ("password", PASSWORD)]);
    let ok = proxied.send(req).await;
    assert_eq!(ok.status, 303);
    assert!(ok.set_cookies().iter().any(|c| c.starts_with("kassa_dashboard=") && c.contains("; Secure")));
}

#[tokio::test]
async fn repeated_failed_sign_ins_are_slowed_down() {
    let app = spawn_app().await;
    user(&app, "owner@example.com", Role::Owner).await;
    let mut b = Browser::new(&app);
    for _ in 0..users::FREE_FAILURES {
        assert_eq!(b.sign_in("owner@example.com", "guess guess guess").await.status, 401);
    }
    // Now even the right password waits: the attempt is refused unchecked.
    let slowed = b.sign_in("owner@example.com", PASSWORD).await;
    assert_eq!(slowed.status, 429, "{}", slowed.html);
    assert!(!b.cookies.iter().any(|(k, _)| k == "kassa_dashboard"));
}

#[tokio::test]
async fn a_post_without_the_csrf_token_is_403_and_changes_nothing() {
    let app = spawn_app().await;
    user(&app, "staff@example.com", Role::Staff).await;
    let (order, _) = paid_order(&app, "buyer@example.com").await;
    let mut b = Browser::new(&app);
    assert_eq!(b.sign_in("staff@example.com", PASSWORD).await.status, 303);

    let form = [("idempotency_key", "k1"), ("confirm", "yes"), ("amount", "1.00")];
    let forged = b.post(&format!("/dashboard/orders/{order}/refund"), &form).await;
    assert_eq!(forged.status, 403, "{}", forged.html);
    let wrong = [("csrf_token", "0000"), ("idempotency_key", "k2"), ("confirm", "yes"), ("amount", "1.00")];
    assert_eq!(b.post(&format!("/dashboard/orders/{order}/refund"), &wrong).await.status, 403);
    let o = app.api.get(&format!("/admin/orders/{order}"), As::Admin).await.ok();
    assert_eq!(o["amount_refunded"], 0);
    let refunds = app.api.get(&format!("/admin/orders/{order}/refunds"), As::Admin).await.ok();
    assert_eq!(refunds.as_array().unwrap().len(), 0);
    // Signing out is a form too.
    assert_eq!(b.post("/dashboard/logout", &[]).await.status, 403);
    assert_eq!(b.get("/dashboard").await.status, 200, "still signed in");
}

#[tokio::test]
async fn a_viewer_sees_no_refund_button_and_a_forged_refund_is_403() {
    let app = spawn_app().await;
    user(&app, "viewer@example.com", Role::Viewer).await;
    let (order, _) = paid_order(&app, "buyer@example.com").await;
    let mut b = Browser::new(&app);
    assert_eq!(b.sign_in("viewer@example.com", PASSWORD).await.status, 303);

    let page = b.get(&format!("/dashboard/orders/{order}")).await;
    assert_eq!(page.status, 200);
    assert!(!page.html.contains("/refund\""), "no refund form for a viewer");
    let csrf = b.csrf().await;
    let form = [("csrf_token", csrf.as_str()), ("idempotency_key", "k1"), ("confirm", "yes"), ("amount", "1.00")];
    let forged = b.post(&format!("/dashboard/orders/{order}/refund"), &form).await;
    assert_eq!(forged.status, 403, "{}", forged.html);
    let o = app.api.get(&format!("/admin/orders/{order}"), As::Admin).await.ok();
    assert_eq!(o["amount_refunded"], 0);
    // The refused attempt is in the audit trail, naming the viewer.
    let audit = app.api.get("/admin/events?type=dashboard.order.refund.refused", As::Admin).await.ok();
    assert_eq!(audit["data"][0]["data"]["object"]["user"]["email"], "viewer@example.com");
    // The owner's pages are closed to the viewer.
    assert_eq!(b.get("/dashboard/api-keys").await.status, 403);
}

#[tokio::test]
async fn a_partial_refund_submitted_twice_refunds_once_and_names_the_user() {
    let app = spawn_app().await;
    user(&app, "staff@example.com", Role::Staff).await;
    let (order, total) = paid_order(&app, "Buyer@Example.com").await;
    let mut b = Browser::new(&app);
    assert_eq!(b.sign_in("staff@example.com", PASSWORD).await.status, 303);

    // Found by email, whatever its case.
    let found = b.get("/dashboard/orders?q=buyer%40example.com").await;
    assert!(found.html.contains(&order), "{}", found.html);

    let page = b.get(&format!("/dashboard/orders/{order}")).await;
    let (csrf, key) = (page.field("csrf_token"), page.field("idempotency_key"));
    let form =
        [("csrf_token", csrf.as_str()), ("idempotency_key", key.as_str()), ("confirm", "yes"), ("amount", "5.00")];
    let path = format!("/dashboard/orders/{order}/refund");
    let (first, second) = tokio::join!(
        async {
            let mut b2 = Browser { http: b.http.clone(), base: b.base.clone(), cookies: b.cookies.clone() };
            b2.post(&path, &form).await
        },
        async {
            let mut b3 = Browser { http: b.http.clone(), base: b.base.clone(), cookies: b.cookies.clone() };
            b3.post(&path, &form).await
        }
    );
    assert_eq!(first.status, 303, "{}", first.html);
    assert_eq!(second.status, 303, "{}", second.html);
    let again = b.post(&path, &form).await;
    assert_eq!(again.status, 303);
    assert!(again.location().ends_with("done=repeat"));

    let o = app.api.get(&format!("/admin/orders/{order}"), As::Admin).await.ok();
    assert_eq!(o["amount_refunded"], 500);
    assert_eq!(o["payment_status"], "partially_refunded");
    let refunds = app.api.get(&format!("/admin/orders/{order}/refunds"), As::Admin).await.ok();
    assert_eq!(refunds.as_array().unwrap().len(), 1);
    let shown = b.get(&format!("/dashboard/orders/{order}")).await;
    assert!(shown.html.contains("$5.00"), "{}", shown.html);

    let audit = app.api.get(&format!("/admin/events?type=dashboard.order.refund&object={order}"), As::Admin).await.ok();
    let events = audit["data"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{audit}");
    assert_eq!(events[0]["data"]["object"]["user"]["email"], "staff@example.com");
    assert_eq!(events[0]["data"]["object"]["detail"]["params"]["amount"], 500);

    // Never above what was captured: the service refuses, the page says why, nothing changes.
    let page = b.get(&format!("/dashboard/orders/{order}")).await;
    let key = page.field("idempotency_key");
    let too_much = format!("{}.00", total);
    let form = [
        ("csrf_token", csrf.as_str()),
        ("idempotency_key", key.as_str()),
        ("confirm", "yes"),
        ("amount", too_much.as_str()),
    ];
    let refused = b.post(&path, &form).await;
    assert_eq!(refused.status, 400, "{}", refused.html);
    let o = app.api.get(&format!("/admin/orders/{order}"), As::Admin).await.ok();
    assert_eq!(o["amount_refunded"], 500);
}

#[tokio::test]
async fn sign_out_everywhere_ends_every_session_of_the_user() {
    let app = spawn_app().await;
    user(&app, "owner@example.com", Role::Owner).await;
    let mut laptop = Browser::new(&app);
    let mut phone = Browser::new(&app);
    assert_eq!(laptop.sign_in("owner@example.com", PASSWORD).await.status, 303);
    assert_eq!(phone.sign_in("owner@example.com", PASSWORD).await.status, 303);
    let stolen = phone.cookies.clone();

    let csrf = laptop.csrf().await;
    let out = laptop.post("/dashboard/logout-everywhere", &[("csrf_token", &csrf)]).await;
    assert_eq!(out.status, 303);
    assert_eq!(laptop.get("/dashboard").await.location(), "/dashboard/login");
    assert_eq!(phone.get("/dashboard").await.location(), "/dashboard/login");
    phone.cookies = stolen;
    assert_eq!(phone.get("/dashboard/orders").await.status, 303, "the old token opens nothing");
    let audit = app.api.get("/admin/events?type=dashboard.user.signed_out_everywhere", As::Admin).await.ok();
    assert_eq!(audit["data"][0]["data"]["object"]["user"]["email"], "owner@example.com");
}

#[tokio::test]
async fn customer_text_is_escaped_and_every_page_renders() {
    let app = spawn_app().await;
    user(&app, "owner@example.com", Role::Owner).await;
    let customer = app
        .api
        .post(
            "/admin/customers",
            As::Admin,
            serde_json::json!({"email": "x@example.com", "name": "<img src=x onerror=alert(1)>"}),
        )
        .await
        .ok();
    let (order, _) = paid_order(&app, "buyer@example.com").await;
    let mut b = Browser::new(&app);
    assert_eq!(b.sign_in("owner@example.com", PASSWORD).await.status, 303);
    // The date range (its end also bounds the id): today's order is within, not before 2000.
    assert!(b.get("/dashboard/orders?from=2000-01-01&to=2999-12-31").await.html.contains(&order));
    assert!(!b.get("/dashboard/orders?to=2000-01-01").await.html.contains(&order));
    let id = customer["id"].as_str().unwrap();
    let page = b.get(&format!("/dashboard/customers/{id}")).await;
    assert_eq!(page.status, 200);
    assert!(page.html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(!page.html.contains("<img src=x"));
    for path in [
        "/dashboard",
        "/dashboard/orders",
        "/dashboard/customers",
        "/dashboard/subscriptions",
        "/dashboard/invoices",
        "/dashboard/payments",
        "/dashboard/events",
        "/dashboard/catalog",
        "/dashboard/webhook-endpoints",
        "/dashboard/api-keys",
        "/dashboard/users",
    ] {
        let p = b.get(path).await;
        assert_eq!(p.status, 200, "{path}: {}", p.html);
    }
    assert_eq!(b.get("/dashboard/orders?status=nonsense").await.status, 400);
    assert_eq!(b.get("/dashboard/orders/ord_nope").await.status, 404);
}

#[tokio::test]
async fn capture_part_then_fulfil_and_cancel_from_the_order_page() {
    let app = spawn_app_with(|s| s.checkout.capture = kassa_server::config::CaptureMode::Manual).await;
    user(&app, "staff@example.com", Role::Staff).await;
    let shop = shop(&app.api, 10).await;
    let cart = ready_cart(&app.api, &shop, "capture@example.com").await;
    let order = pay(&app.api, &cart, VISA).await.ok()["order"]["id"].as_str().unwrap().to_string();
    let mut b = Browser::new(&app);
    assert_eq!(b.sign_in("staff@example.com", PASSWORD).await.status, 303);

    let act = |path: &'static str| format!("/dashboard/orders/{order}/{path}");
    let page = b.get(&format!("/dashboard/orders/{order}")).await;
    assert!(page.html.contains("/capture\""), "an authorized order offers capture");
    let (csrf, key) = (page.field("csrf_token"), page.field("idempotency_key"));
    // Unconfirmed: refused, nothing captured.
    let unconfirmed =
        b.post(&act("capture"), &[("csrf_token", &csrf), ("idempotency_key", &key), ("amount", "10.00")]).await;
    assert_eq!(unconfirmed.status, 400, "{}", unconfirmed.html);
    assert_eq!(app.api.get(&format!("/admin/orders/{order}"), As::Admin).await.ok()["amount_captured"], 0);
    let form =
        [("csrf_token", csrf.as_str()), ("idempotency_key", "capture-1"), ("confirm", "yes"), ("amount", "10.00")];
    let captured = b.post(&act("capture"), &form).await;
    assert_eq!(captured.status, 303, "{}", captured.html);
    let o = app.api.get(&format!("/admin/orders/{order}"), As::Admin).await.ok();
    assert_eq!(o["amount_captured"], 1000);
    assert_eq!(o["payment_status"], "captured");

    let fulfilled =
        b.post(&act("fulfill"), &[("csrf_token", &csrf), ("idempotency_key", "fulfil-1"), ("confirm", "yes")]).await;
    assert_eq!(fulfilled.status, 303, "{}", fulfilled.html);
    assert_eq!(app.api.get(&format!("/admin/orders/{order}"), As::Admin).await.ok()["fulfillment_status"], "fulfilled");
    // A fulfilled order cannot be canceled: the service refuses, the page says so.
    let cancel =
        b.post(&act("cancel"), &[("csrf_token", &csrf), ("idempotency_key", "cancel-1"), ("confirm", "yes")]).await;
    assert_eq!(cancel.status, 409, "{}", cancel.html);
    assert_eq!(app.api.get(&format!("/admin/orders/{order}"), As::Admin).await.ok()["status"], "completed");
    let audit = app.api.get(&format!("/admin/events?object={order}"), As::Admin).await.ok();
    let kinds: Vec<&str> = audit["data"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    for kind in ["dashboard.order.capture", "dashboard.order.fulfill", "dashboard.order.cancel.failed"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
}

#[test]
fn kassa_users_create_takes_the_password_from_the_environment_and_refuses_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("kassa.db").display());
    let kassa = |args: &[&str], password: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kassa"));
        cmd.current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DATABASE_URL", &db)
            .args(args)
            .stdin(std::process::Stdio::null());
        if let Some(p) = password {
            cmd.env("KASSA_USER_PASSWORD", p);
        }
        let out = cmd.output().expect("kassa runs");
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };
    let (ok, text) = kassa(&["users", "create", "--email", "Ada@Example.com", "--role", "staff"], Some(PASSWORD));
    assert!(ok, "{text}");
    assert!(text.contains("ada@example.com staff"), "{text}");
    let (ok, text) = kassa(&["users", "create", "--email", "ada@example.com", "--role", "owner"], Some(PASSWORD));
    assert!(!ok && text.contains("exists"), "{text}");
    let (ok, text) = kassa(&["users", "create", "--email", "bob@example.com", "--role", "viewer"], Some("short"));
    assert!(!ok && text.contains("10 to 1024"), "{text}");
    // No password anywhere (standard input is empty): refused, nothing created.
    let (ok, _) = kassa(&["users", "create", "--email", "eve@example.com", "--role", "viewer"], None);
    assert!(!ok);
    let (ok, list) = kassa(&["users", "list"], None);
    assert!(ok, "{list}");
    assert!(list.contains("ada@example.com") && !list.contains("bob@") && !list.contains("eve@"), "{list}");
    assert!(!list.contains("argon2"), "{list}");
}

/// A monthly $10.00 subscription of a new customer (card on file); returns (customer, subscription).
async fn subscribed(app: &TestApp, email: &str) -> (String, String) {
    use serde_json::json;
    let product = app.api.post("/admin/products", As::Admin, json!({"name": "Plan"})).await.ok();
    let price = app
        .api
        .post(
            "/admin/prices",
            As::Admin,
            json!({"product": product["id"], "currency": "usd", "unit_amount": 1000, "recurring": {"interval": "month"}}),
        )
        .await
        .ok();
    let customer = app.api.post("/admin/customers", As::Admin, json!({"email": email})).await.ok();
    let customer = customer["id"].as_str().unwrap().to_string();
    let pm = json!({"payment_method": "pm_card_visa", "default": true});
    app.api.post(&format!("/admin/customers/{customer}/payment-methods"), As::Admin, pm).await.ok();
    let sub = app
        .api
        .post("/admin/subscriptions", As::Admin, json!({"customer": customer, "items": [{"price": price["id"]}]}))
        .await
        .ok();
    assert_eq!(sub["status"], "active", "{sub}");
    (customer, sub["id"].as_str().unwrap().to_string())
}

/// Every value of the hidden inputs `name`, in page order.
fn fields(page: &Page, name: &str) -> Vec<String> {
    let marker = format!("name=\"{name}\" value=\"");
    page.html.split(&marker).skip(1).map(|rest| rest.split('"').next().unwrap().to_string()).collect()
}

#[tokio::test]
async fn subscriptions_and_invoices_are_listed_filtered_and_shown_and_a_viewer_cannot_cancel() {
    let app = spawn_app().await;
    user(&app, "viewer@example.com", Role::Viewer).await;
    let (alice, older) = subscribed(&app, "alice@example.com").await;
    let (_bob, newer) = subscribed(&app, "bob@example.com").await;
    let mut b = Browser::new(&app);
    assert_eq!(b.sign_in("viewer@example.com", PASSWORD).await.status, 303);

    let all = b.get("/dashboard/subscriptions").await;
    assert_eq!(all.status, 200);
    assert!(all.html.contains(&older) && all.html.contains(&newer), "{}", all.html);
    assert!(all.html.contains("href=\"/dashboard/subscriptions\""), "in the navigation");
    let mine = b.get(&format!("/dashboard/subscriptions?customer={alice}")).await;
    assert!(mine.html.contains(&older) && !mine.html.contains(&newer), "{}", mine.html);
    let canceled = b.get("/dashboard/subscriptions?status=canceled").await;
    assert!(!canceled.html.contains(&older) && !canceled.html.contains(&newer));
    let next = b.get(&format!("/dashboard/subscriptions?starting_after={newer}")).await;
    assert!(next.html.contains(&older) && !next.html.contains(&format!(">{newer}<")), "{}", next.html);
    assert_eq!(b.get("/dashboard/subscriptions?status=nonsense").await.status, 400);
    assert_eq!(b.get("/dashboard/subscriptions?customer=ord_1").await.status, 400);
    assert_eq!(b.get("/dashboard/subscriptions/sub_nope").await.status, 404);

    let api_sub = app.api.get(&format!("/admin/subscriptions/{older}"), As::Admin).await.ok();
    let invoice = api_sub["latest_invoice"].as_str().unwrap().to_string();
    let page = b.get(&format!("/dashboard/subscriptions/{older}")).await;
    assert_eq!(page.status, 200);
    assert!(page.html.contains(&invoice), "latest invoice and the invoices list");
    assert!(!page.html.contains("/cancel\""), "no cancel form for a viewer");
    assert!(!page.html.contains("/resume\""), "no resume form for a viewer");

    let invoices = b.get(&format!("/dashboard/invoices?customer={alice}")).await;
    assert_eq!(invoices.status, 200);
    assert!(invoices.html.contains(&invoice), "{}", invoices.html);
    assert_eq!(b.get("/dashboard/invoices?status=draft").await.status, 200);
    assert_eq!(b.get("/dashboard/invoices?status=nonsense").await.status, 400);
    let inv = b.get(&format!("/dashboard/invoices/{invoice}")).await;
    assert_eq!(inv.status, 200);
    assert!(inv.html.contains("$10.00") && inv.html.contains(&older), "{}", inv.html);
    assert!(inv.html.contains("id=\"attempt-count\">1<"), "{}", inv.html);
    assert_eq!(b.get("/dashboard/invoices/in_nope").await.status, 404);

    let customer = b.get(&format!("/dashboard/customers/{alice}")).await;
    assert!(customer.html.contains(&format!("/dashboard/subscriptions/{older}")), "{}", customer.html);
    assert!(customer.html.contains(&format!("/dashboard/invoices?customer={alice}")));

    // A forged cancel is refused, changes nothing, and is in the audit trail.
    let csrf = b.csrf().await;
    let form =
        [("csrf_token", csrf.as_str()), ("idempotency_key", "k1"), ("confirm", "yes"), ("at_period_end", "false")];
    let forged = b.post(&format!("/dashboard/subscriptions/{older}/cancel"), &form).await;
    assert_eq!(forged.status, 403, "{}", forged.html);
    let s = app.api.get(&format!("/admin/subscriptions/{older}"), As::Admin).await.ok();
    assert_eq!((s["status"].as_str(), s["cancel_at_period_end"].as_bool()), (Some("active"), Some(false)));
    let audit = app.api.get("/admin/events?type=dashboard.subscription.cancel.refused", As::Admin).await.ok();
    assert_eq!(audit["data"][0]["data"]["object"]["user"]["email"], "viewer@example.com");
}

#[tokio::test]
async fn staff_cancel_at_period_end_twice_is_done_once_then_resume_then_cancel_now() {
    let app = spawn_app().await;
    user(&app, "staff@example.com", Role::Staff).await;
    let (_, sub) = subscribed(&app, "carol@example.com").await;
    let mut b = Browser::new(&app);
    assert_eq!(b.sign_in("staff@example.com", PASSWORD).await.status, 303);
    let path = format!("/dashboard/subscriptions/{sub}");
    let api = format!("/admin/subscriptions/{sub}");

    // The forms: cancel at period end, then cancel now.
    let page = b.get(&path).await;
    let (csrf, keys) = (page.field("csrf_token"), fields(&page, "idempotency_key"));
    assert_eq!(keys.len(), 2, "{}", page.html);
    let cancel = format!("{path}/cancel");
    let unconfirmed = [("csrf_token", csrf.as_str()), ("idempotency_key", keys[0].as_str()), ("at_period_end", "true")];
    assert_eq!(b.post(&cancel, &unconfirmed).await.status, 400);
    assert_eq!(app.api.get(&api, As::Admin).await.ok()["cancel_at_period_end"], false);

    let form = [
        ("csrf_token", csrf.as_str()),
        ("idempotency_key", keys[0].as_str()),
        ("confirm", "yes"),
        ("at_period_end", "true"),
    ];
    let (first, second) = tokio::join!(
        async {
            let mut b2 = Browser { http: b.http.clone(), base: b.base.clone(), cookies: b.cookies.clone() };
            b2.post(&cancel, &form).await
        },
        async {
            let mut b3 = Browser { http: b.http.clone(), base: b.base.clone(), cookies: b.cookies.clone() };
            b3.post(&cancel, &form).await
        }
    );
    assert_eq!((first.status, second.status), (StatusCode::SEE_OTHER, StatusCode::SEE_OTHER));
    let again = b.post(&cancel, &form).await;
    assert!(again.location().ends_with("done=repeat"), "{}", again.location());
    let s = app.api.get(&api, As::Admin).await.ok();
    assert_eq!((s["status"].as_str(), s["cancel_at_period_end"].as_bool()), (Some("active"), Some(true)));
    let audit =
        app.api.get(&format!("/admin/events?type=dashboard.subscription.cancel&object={sub}"), As::Admin).await.ok();
    let events = audit["data"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{audit}");
    assert_eq!(events[0]["data"]["object"]["user"]["email"], "staff@example.com");
    assert_eq!(events[0]["data"]["object"]["detail"]["params"]["at_period_end"], true);

    // Now the page offers resume (and cancel now).
    let page = b.get(&format!("{path}?done=cancel_at_period_end")).await;
    assert!(page.html.contains("id=\"cancel-at-period-end\">yes<"), "{}", page.html);
    assert!(page.html.contains("will be canceled at the end of its period"));
    let keys = fields(&page, "idempotency_key");
    let resume = [("csrf_token", csrf.as_str()), ("idempotency_key", keys[0].as_str()), ("confirm", "yes")];
    let done = b.post(&format!("{path}/resume"), &resume).await;
    assert_eq!(done.status, 303, "{}", done.html);
    assert_eq!(app.api.get(&api, As::Admin).await.ok()["cancel_at_period_end"], false);
    let resumed =
        app.api.get(&format!("/admin/events?type=dashboard.subscription.resume&object={sub}"), As::Admin).await.ok();
    assert_eq!(resumed["data"].as_array().unwrap().len(), 1);
    // Resuming what is not set to cancel changes nothing (the service's resume is a no-op then).
    let page = b.get(&path).await;
    let keys = fields(&page, "idempotency_key");
    let resume = [("csrf_token", csrf.as_str()), ("idempotency_key", keys[0].as_str()), ("confirm", "yes")];
    let noop = b.post(&format!("{path}/resume"), &resume).await;
    assert_eq!(noop.status, 303, "{}", noop.html);
    assert_eq!(app.api.get(&api, As::Admin).await.ok()["cancel_at_period_end"], false);

    let now = [
        ("csrf_token", csrf.as_str()),
        ("idempotency_key", keys[1].as_str()),
        ("confirm", "yes"),
        ("at_period_end", "false"),
    ];
    assert_eq!(b.post(&cancel, &now).await.status, 303);
    let s = app.api.get(&api, As::Admin).await.ok();
    assert_eq!(s["status"], "canceled", "{s}");
    let page = b.get(&path).await;
    assert!(!page.html.contains("/cancel\""), "a canceled subscription offers no action: {}", page.html);
}

/// An owner creates an API key (its secret shown once, usable at once), a double submission
/// creates one; revoking it refuses the key at once; both recorded naming the owner.
#[tokio::test]
async fn an_owner_creates_a_key_once_for_a_double_submission_then_revokes_it() {
    let app = spawn_app().await;
    user(&app, "owner@example.com", Role::Owner).await;
    let mut b = Browser::new(&app);
    assert_eq!(b.sign_in("owner@example.com", PASSWORD).await.status, 303);
    let page = b.get("/dashboard/api-keys").await;
    let (csrf, key) = (page.field("csrf_token"), page.field("idempotency_key"));
    let before = kassa_store::api_keys::list(app.state.store.reader()).await.unwrap().len();
    let form = [("csrf_token", csrf.as_str()), ("idempotency_key", key.as_str()), ("kind", "secret"), ("name", "CI")];
    let created = b.post("/dashboard/api-keys", &form).await;
    assert_eq!(created.status, 200, "{}", created.html);
    let marker = "id=\"new-secret\">";
    let start = created.html.find(marker).expect("the secret is shown") + marker.len();
    let secret = created.html[start..].split('<').next().unwrap().to_string();
    assert!(secret.starts_with("sk_"), "{secret}");
    let again = b.post("/dashboard/api-keys", &form).await;
    assert_eq!(again.status, 303, "the repeated form creates nothing: {}", again.html);
    assert!(!again.html.contains(&secret), "the secret is not shown again");
    let keys = kassa_store::api_keys::list(app.state.store.reader()).await.unwrap();
    assert_eq!(keys.len(), before + 1, "one key for two submissions");
    let id = keys.iter().find(|k| k.name.as_deref() == Some("CI")).unwrap().id.clone();
    let with_new_key = |secret: &str| {
        reqwest::Client::new().get(format!("{}/admin/products", app.api.address)).bearer_auth(secret.to_string()).send()
    };
    assert_eq!(with_new_key(&secret).await.unwrap().status(), 200, "the new key works at once");

    let revoke = [("csrf_token", csrf.as_str()), ("idempotency_key", "revoke-ci-key"), ("confirm", "yes")];
    let revoked = b.post(&format!("/dashboard/api-keys/{id}/revoke"), &revoke).await;
    assert_eq!(revoked.status, 303, "{}", revoked.html);
    assert_eq!(with_new_key(&secret).await.unwrap().status(), 401, "a revoked key is refused at once");
    for (kind, object) in [("dashboard.api_key.create", "api_keys"), ("dashboard.api_key.revoke", id.as_str())] {
        let audit = app.api.get(&format!("/admin/events?type={kind}&object={object}"), As::Admin).await.ok();
        let events = audit["data"].as_array().unwrap();
        assert_eq!(events.len(), 1, "{kind}: {audit}");
        assert_eq!(events[0]["data"]["object"]["user"]["email"], "owner@example.com");
    }
    assert!(!app.api.get("/admin/events?type=dashboard.api_key.create", As::Admin).await.text.contains(&secret));
}

/// The audit event of an action commits with the action: a server that stops dead right after
/// a dashboard refund committed (failpoint `dashboard.after_action`, in the real binary) has
/// recorded both the refund and who made it — no refund without its audit event.
#[tokio::test]
async fn a_refund_and_its_audit_event_commit_together_even_if_the_server_dies_right_after() {
    let (_db, url) = TestDb::fresh().await;
    let server = start_binary(&url, &[("KASSA_FAILPOINTS", "dashboard.after_action")]);
    let (sk, pk) = server.keys();
    let api = remote(&server.address, &sk, &pk);
    let store = kassa_store::Store::connect(&kassa_store::db::ConnectOptions {
        url: url.clone(),
        max_connections: 2,
        acquire_timeout: std::time::Duration::from_secs(10),
        sqlite_full_sync: false,
    })
    .await
    .unwrap();
    users::create(&store, "staff@example.com", Role::Staff, PASSWORD, 0).await.expect("user created");
    let shop = shop(&api, 10).await;
    let cart = ready_cart(&api, &shop, "buyer@example.com").await;
    let order = pay(&api, &cart, VISA).await.ok()["order"]["id"].as_str().unwrap().to_string();

    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut b = Browser { http, base: server.address.clone(), cookies: Vec::new() };
    assert_eq!(b.sign_in("staff@example.com", PASSWORD).await.status, 303);
    let page = b.get(&format!("/dashboard/orders/{order}")).await;
    let (csrf, key) = (page.field("csrf_token"), page.field("idempotency_key"));
    let form = [("csrf_token", csrf.as_str()), ("idempotency_key", &key), ("confirm", "yes"), ("amount", "5.00")];
    let path = format!("/dashboard/orders/{order}/refund");
    let hung = tokio::time::timeout(std::time::Duration::from_secs(5), b.post(&path, &form)).await;
    assert!(hung.is_err(), "the action stops at the failpoint, after it committed");

    let refunds = api.get(&format!("/admin/orders/{order}/refunds"), As::Admin).await.ok();
    assert_eq!(refunds.as_array().unwrap().len(), 1, "{refunds}");
    assert_eq!(refunds[0]["amount"], 500);
    let audit = api.get(&format!("/admin/events?type=dashboard.order.refund&object={order}"), As::Admin).await.ok();
    let events = audit["data"].as_array().unwrap();
    assert_eq!(events.len(), 1, "the refund's audit event is there: {audit}");
    assert_eq!(events[0]["data"]["object"]["user"]["email"], "staff@example.com");
    assert_eq!(events[0]["data"]["object"]["detail"]["params"]["amount"], 500);
}
