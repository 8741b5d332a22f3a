//! `kassa bench`: a bounded load generator for a running server.
//!
//! N clients loop over one scenario for T seconds, each on its own keep-alive connection.
//! It prints operations per second, latency percentiles, errors by status, and the SQL
//! statements and transactions per operation read from the server's `/metrics`.

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

mod renewals;
mod webhooks;

#[derive(Args, Clone)]
pub struct BenchArgs {
    /// Base URL of the server.
    #[arg(long, default_value = "http://127.0.0.1:7070")]
    pub url: String,
    /// Secret key (admin API).
    #[arg(long, env = "KASSA_SECRET_KEY")]
    pub secret_key: String,
    /// Publishable key (store API).
    #[arg(long, env = "KASSA_PUBLISHABLE_KEY")]
    pub publishable_key: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Seconds to run (after setup and warm-up).
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Seconds of warm-up before measuring.
    #[arg(long, default_value_t = 1)]
    pub warmup: u64,
    #[arg(long, value_enum, default_value_t = Scenario::CatalogRead)]
    pub scenario: Scenario,
    /// Checkout scenarios: write `<cart id> <order id>` of every checkout answered 200 to
    /// this file (warm-up included), for checks against the database afterwards.
    #[arg(long)]
    pub record: Option<std::path::PathBuf>,
    /// Also receive Kassa's webhooks on a local port (an endpoint for every event is
    /// registered, and deleted after): report deliveries per second and the delay from commit
    /// to delivery of each operation's event. The server must accept loopback URLs
    /// (`webhooks.allow_private_urls`, on with `--demo`).
    #[arg(long)]
    pub webhooks: bool,
    /// Renewals: how many subscriptions fall due at once.
    #[arg(long, default_value_t = 10_000)]
    pub subscriptions: usize,
    /// Renewals: test clocks the customers are spread over (advanced at once).
    #[arg(long, default_value_t = 20)]
    pub clocks: usize,
    /// Renewals: more servers sharing the first one's database (repeatable); the seeding and
    /// the clocks are spread over all of them.
    #[arg(long)]
    pub also_url: Vec<String>,
    /// Dashboard scenarios: first insert this many orders straight into the database
    /// (PostgreSQL only, bulk SQL; the rows reference no cart or payment, so use a database
    /// made for the bench). 0 seeds nothing.
    #[arg(long, default_value_t = 0)]
    pub seed_orders: i64,
    /// The servers' database (the server's `KASSA_DATABASE_URL`): where `--seed-orders`
    /// writes, and where renewals check for double charges (charges at the test processor per
    /// subscription and period).
    #[arg(long, env = "KASSA_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Dashboard scenarios: a dashboard user (made with `kassa users create`).
    #[arg(long, env = "KASSA_BENCH_DASHBOARD_EMAIL", default_value = "")]
    pub dashboard_email: String,
    #[arg(long, env = "KASSA_BENCH_DASHBOARD_PASSWORD", default_value = "")]
    pub dashboard_password: String,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Scenario {
    /// List products with prices, then read one product (store API).
    CatalogRead,
    /// Create a product and a price for it (admin API).
    CatalogWrite,
    /// A full guest checkout: create a cart, add two items, set email and address, choose
    /// shipping, get a confirmation token for 4242…, pay → order. One operation = 7 requests.
    Checkout,
    /// The same purchase as `checkout` from a client that creates the cart complete (items,
    /// email, address, shipping) in one call: cart, token, pay = 3 requests.
    CheckoutCompact,
    /// One account: a top-up (create the session, pay it on the hosted page; the credits
    /// arrive by webhook) or a debit, alternately.
    Credits,
    /// Create a product (admin API): one event each, for `--webhooks`' delivery rate.
    Events,
    /// `--subscriptions` subscriptions falling due at once, renewed and paid off-session by
    /// the servers (`--url`, `--also-url`): renewals/s until all are renewed (a one-shot run:
    /// `--duration` does not apply). See `bench/renewals.rs`.
    Renewals,
    /// The dashboard's orders list, first page (signed in as a dashboard user).
    DashboardOrders,
    /// The dashboard's orders list searched by a buyer's email.
    DashboardSearch,
    /// One order's dashboard page.
    DashboardOrder,
}

impl Scenario {
    fn dashboard(self) -> bool {
        matches!(self, Scenario::DashboardOrders | Scenario::DashboardSearch | Scenario::DashboardOrder)
    }
}

/// What every client shares: the HTTP client and the ids the setup created.
#[derive(Clone)]
struct Ctx {
    http: reqwest::Client,
    url: String,
    sk: String,
    pk: String,
    products: Vec<String>,
    /// Checkout: the region, its shipping option and the prices to buy.
    region: String,
    shipping: String,
    prices: Vec<String>,
    /// Credits: the account and its email.
    customer: String,
    email: String,
    run: String,
    /// Dashboard: the session cookie, the buyers' emails and order ids to look up.
    cookie: String,
    emails: Vec<String>,
    login: (String, String),
}

impl Ctx {
    async fn admin_post(&self, path: &str, body: Value) -> Result<Value, String> {
        let res = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.sk)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("network: {e}"))?;
        read(res).await
    }

    async fn store_post(&self, path: &str, body: Value) -> Result<Value, String> {
        let res = self
            .http
            .post(format!("{}{path}", self.url))
            .header("kassa-publishable-key", &self.pk)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("network: {e}"))?;
        read(res).await
    }

    /// A store call about a guest's cart, with the cart's client secret (as a browser sends it).
    async fn guest_post(&self, path: &str, client_secret: &str, body: Value) -> Result<Value, String> {
        let res = self
            .http
            .post(format!("{}{path}", self.url))
            .header("kassa-publishable-key", &self.pk)
            .header("kassa-client-secret", client_secret)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("network: {e}"))?;
        read(res).await
    }

    /// A dashboard page, signed in; only its status is checked.
    async fn page(&self, path: &str) -> Result<String, String> {
        let res = self
            .http
            .get(format!("{}{path}", self.url))
            .header(reqwest::header::COOKIE, &self.cookie)
            .send()
            .await
            .map_err(|e| format!("network: {e}"))?;
        let status = res.status();
        let body = res.text().await.map_err(|e| format!("network: {e}"))?;
        if status.is_success() { Ok(body) } else { Err(status.as_u16().to_string()) }
    }

    async fn store_get(&self, path: &str) -> Result<Value, String> {
        let res = self
            .http
            .get(format!("{}{path}", self.url))
            .header("kassa-publishable-key", &self.pk)
            .send()
            .await
            .map_err(|e| format!("network: {e}"))?;
        read(res).await
    }
}

async fn read(res: reqwest::Response) -> Result<Value, String> {
    let status = res.status();
    let body: Value = res.json().await.map_err(|e| format!("{status}: unreadable body: {e}"))?;
    if status.is_success() { Ok(body) } else { Err(format!("{}", status.as_u16())) }
}

async fn setup(ctx: &mut Ctx, scenario: Scenario) -> anyhow::Result<()> {
    let must = |r: Result<Value, String>| r.map_err(anyhow::Error::msg);
    if matches!(scenario, Scenario::Checkout | Scenario::CheckoutCompact) {
        let region = must(
            ctx.admin_post(
                "/admin/regions",
                json!({"name": "Bench", "currency": "usd", "countries": ["US"],
            "tax_rates": [{"name": "Sales tax", "percentage": "8.875"}]}),
            )
            .await,
        )
        .context("creating a region (is the secret key right?)")?;
        ctx.region = region["id"].as_str().unwrap_or_default().to_string();
        let ship = must(
            ctx.admin_post("/admin/shipping-options", json!({"name": "Standard", "region": ctx.region, "amount": 500}))
                .await,
        )?;
        ctx.shipping = ship["id"].as_str().unwrap_or_default().to_string();
        // Twenty products with tracked stock: a shop's catalog, not one hot row.
        for i in 0..20 {
            let p = must(
                ctx.admin_post(
                    "/admin/products",
                    json!({"name": format!("Bench item {i}"), "inventory": {"quantity": 100_000_000}}),
                )
                .await,
            )?;
            let price = must(
                ctx.admin_post(
                    "/admin/prices",
                    json!({"product": p["id"], "currency": "usd", "unit_amount": 500 + 100 * i}),
                )
                .await,
            )?;
            ctx.prices.push(price["id"].as_str().unwrap_or_default().to_string());
        }
    }
    if scenario == Scenario::Credits {
        ctx.email = format!("bench-credits-{}@example.com", ctx.run);
        let c = must(ctx.admin_post("/admin/customers", json!({"email": ctx.email})).await)?;
        ctx.customer = c["id"].as_str().unwrap_or_default().to_string();
    }
    if scenario.dashboard() {
        dashboard_setup(ctx).await?;
    }
    if scenario == Scenario::CatalogRead {
        for i in 0..20 {
            let p = ctx
                .admin_post("/admin/products", json!({"name": format!("Bench product {i}")}))
                .await
                .map_err(anyhow::Error::msg)
                .context("creating a product (is the secret key right?)")?;
            let id = p["id"].as_str().unwrap_or_default().to_string();
            ctx.admin_post("/admin/prices", json!({"product": id, "currency": "usd", "unit_amount": 1000 + i}))
                .await
                .map_err(anyhow::Error::msg)?;
            ctx.products.push(id);
        }
    }
    Ok(())
}

/// Signs in to the dashboard and picks the orders and emails to look up from its first pages.
async fn dashboard_setup(ctx: &mut Ctx) -> anyhow::Result<()> {
    let (email, password) = ctx.login.clone();
    let res = ctx.http.get(format!("{}/dashboard/login", ctx.url)).send().await?;
    let pre: Vec<String> = res
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_string))
        .collect();
    let login = res.text().await?;
    let csrf = between(&login, "name=\"csrf_token\" value=\"", "\"").context("no csrf token on the login page")?;
    let res = ctx
        .http
        .post(format!("{}/dashboard/login", ctx.url))
        .header(reqwest::header::COOKIE, pre.join("; "))
        .form(&[("csrf_token", csrf.as_str()), ("email", email.as_str()), ("password", password.as_str())])
        .send()
        .await?;
    let cookie = res
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_string))
        .find(|c| c.starts_with("kassa_dashboard="))
        .context("signing in to the dashboard failed (KASSA_BENCH_DASHBOARD_EMAIL/PASSWORD?)")?;
    ctx.cookie = cookie;
    // Orders spread over the list: the ids and emails of the first pages.
    let mut after = String::new();
    for _ in 0..8 {
        let page = ctx.page(&format!("/dashboard/orders{after}")).await.map_err(anyhow::Error::msg)?;
        let ids: Vec<String> = page
            .split("href=\"/dashboard/orders/")
            .skip(1)
            .filter_map(|r| r.split('"').next().map(str::to_string))
            .collect();
        let Some(last) = ids.last().cloned() else { break };
        ctx.products.extend(ids);
        ctx.emails.extend(
            page.split("data-label=\"Email\">").skip(1).filter_map(|r| r.split('<').next().map(str::to_string)),
        );
        after = format!("?starting_after={last}");
    }
    if ctx.products.is_empty() {
        bail!("the dashboard lists no orders: seed some with --seed-orders");
    }
    Ok(())
}

fn between(text: &str, start: &str, end: &str) -> Option<String> {
    let from = text.find(start)? + start.len();
    text[from..].split(end).next().map(str::to_string)
}

/// One operation; a checkout answers `<cart id> <order id>` of the order it made.
async fn op(ctx: &Ctx, scenario: Scenario, n: usize) -> Result<Option<String>, String> {
    match scenario {
        Scenario::CatalogRead => {
            ctx.store_get("/store/products?limit=10").await?;
            let id = &ctx.products[n % ctx.products.len()];
            ctx.store_get(&format!("/store/products/{id}")).await?;
            Ok(None)
        }
        Scenario::CatalogWrite => {
            let p = ctx.admin_post("/admin/products", json!({"name": format!("Bench write {n}")})).await?;
            let id = p["id"].as_str().unwrap_or_default();
            ctx.admin_post("/admin/prices", json!({"product": id, "currency": "usd", "unit_amount": 999})).await?;
            Ok(None)
        }
        Scenario::Events => {
            let p = ctx.admin_post("/admin/products", json!({"name": format!("Bench event {n}")})).await?;
            Ok(p["id"].as_str().map(str::to_string))
        }
        Scenario::Renewals => Err("renewals is a one-shot run (bench::renewals)".into()),
        Scenario::DashboardOrders => ctx.page("/dashboard/orders").await.map(|_| None),
        Scenario::DashboardSearch => {
            let email = &ctx.emails[n % ctx.emails.len()];
            let q: String = email.replace('@', "%40");
            ctx.page(&format!("/dashboard/orders?q={q}")).await.map(|_| None)
        }
        Scenario::DashboardOrder => {
            let id = &ctx.products[n % ctx.products.len()];
            ctx.page(&format!("/dashboard/orders/{id}")).await.map(|_| None)
        }
        Scenario::Checkout => checkout(ctx, n).await.map(Some),
        Scenario::CheckoutCompact => checkout_compact(ctx, n).await.map(Some),
        Scenario::Credits if n.is_multiple_of(2) => top_up(ctx).await.map(|()| None),
        Scenario::Credits => {
            let path = format!("/admin/customers/{}/credits/debit", ctx.customer);
            let res = ctx
                .http
                .post(format!("{}{path}", ctx.url))
                .bearer_auth(&ctx.sk)
                .header("idempotency-key", format!("bench-{}-{n}", ctx.run))
                .json(&json!({"amount": 10}))
                .send()
                .await
                .map_err(|e| format!("network: {e}"))?;
            match res.status().as_u16() {
                // Spending more than the top-ups brought in is refused, atomically: expected.
                200 | 409 => Ok(None),
                s => Err(s.to_string()),
            }
        }
    }
}

/// The id and client secret of a cart just created.
fn cart_credentials(cart: &Value) -> Result<(String, String), String> {
    match (cart["id"].as_str(), cart["client_secret"].as_str()) {
        (Some(id), Some(secret)) => Ok((id.to_string(), secret.to_string())),
        _ => Err("cart without id or client_secret".into()),
    }
}

/// `<cart id> <order id>` of a paid cart.
fn paid_order(cart: &str, paid: &Value) -> Result<String, String> {
    match paid["order"]["id"].as_str() {
        Some(order) => Ok(format!("{cart} {order}")),
        None => Err("paid without an order".into()),
    }
}

async fn checkout(ctx: &Ctx, n: usize) -> Result<String, String> {
    let cart = ctx.store_post("/store/carts", json!({"region": ctx.region})).await?;
    let (id, secret) = cart_credentials(&cart)?;
    let a = &ctx.prices[n % ctx.prices.len()];
    let b = &ctx.prices[(n / ctx.prices.len() + n + 1) % ctx.prices.len()];
    ctx.guest_post(&format!("/store/carts/{id}/line-items"), &secret, json!({"price": a})).await?;
    ctx.guest_post(&format!("/store/carts/{id}/line-items"), &secret, json!({"price": b, "quantity": 2})).await?;
    ctx.guest_post(
        &format!("/store/carts/{id}"),
        &secret,
        json!({"email": format!("bench-{}-{n}@example.com", ctx.run),
               "shipping_address": {"line1": "1 Main St", "city": "New York", "postal_code": "10001", "country": "US"}}),
    )
    .await?;
    ctx.guest_post(&format!("/store/carts/{id}"), &secret, json!({"shipping_option": ctx.shipping})).await?;
    let token = ctx
        .store_post(
            "/test-processor/v1/confirmation_tokens",
            json!({"card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}}),
        )
        .await?;
    let paid =
        ctx.guest_post(&format!("/store/carts/{id}/pay"), &secret, json!({"confirmation_token": token["id"]})).await?;
    paid_order(&id, &paid)
}

async fn checkout_compact(ctx: &Ctx, n: usize) -> Result<String, String> {
    let a = &ctx.prices[n % ctx.prices.len()];
    let b = &ctx.prices[(n / ctx.prices.len() + n + 1) % ctx.prices.len()];
    let cart = ctx
        .store_post(
            "/store/carts",
            json!({"region": ctx.region, "email": format!("bench-{}-{n}@example.com", ctx.run),
                   "items": [{"price": a}, {"price": b, "quantity": 2}], "shipping_option": ctx.shipping,
                   "shipping_address": {"line1": "1 Main St", "city": "New York", "postal_code": "10001", "country": "US"}}),
        )
        .await?;
    let (id, secret) = cart_credentials(&cart)?;
    let token = ctx
        .store_post(
            "/test-processor/v1/confirmation_tokens",
            json!({"card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}}),
        )
        .await?;
    let paid =
        ctx.guest_post(&format!("/store/carts/{id}/pay"), &secret, json!({"confirmation_token": token["id"]})).await?;
    paid_order(&id, &paid)
}

async fn top_up(ctx: &Ctx) -> Result<(), String> {
    let s = ctx
        .store_post(
            "/store/credits/sessions",
            json!({"credits": 20, "success_url": "https://bench.test/ok", "email": ctx.email}),
        )
        .await?;
    let url = s["url"].as_str().unwrap_or_default();
    let res = ctx
        .http
        .post(url)
        .form(&[("method", "card"), ("number", "4242424242424242"), ("exp", "12/34"), ("cvc", "123")])
        .send()
        .await
        .map_err(|e| format!("network: {e}"))?;
    // The page answers 303 to the success URL; reqwest follows it to an unreachable host.
    if res.status().is_success() || res.status().is_redirection() {
        Ok(())
    } else {
        Err(res.status().as_u16().to_string())
    }
}

/// `kassa_db_statements_total`, `kassa_db_transactions_total` and the sum of
/// `kassa_db_round_trips_total` (all kinds) of the server.
async fn db_counters(ctx: &Ctx) -> Option<(f64, f64, f64)> {
    db_counters_at(&ctx.http, &ctx.url).await
}

/// [`db_counters`] of the server at `url`.
async fn db_counters_at(http: &reqwest::Client, url: &str) -> Option<(f64, f64, f64)> {
    let text = http.get(format!("{url}/metrics")).send().await.ok()?.text().await.ok()?;
    let value = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    let round_trips: f64 = text
        .lines()
        .filter(|l| l.starts_with("kassa_db_round_trips_total{"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .sum();
    Some((value("kassa_db_statements_total ")?, value("kassa_db_transactions_total ")?, round_trips))
}

struct ClientResult {
    hist: Histogram<u64>,
    errors: BTreeMap<String, u64>,
    /// `<cart id> <order id>` of every checkout answered 200.
    orders: Vec<String>,
    /// With `--webhooks`: each measured operation's event (type, object id) and when its
    /// answer came.
    committed: Vec<(String, String, Instant)>,
}

/// `--seed-orders`: bulk orders straight into the database, timed.
async fn seed(args: &BenchArgs, run: &str) -> anyhow::Result<()> {
    let url = args.database_url.clone().context("--seed-orders needs --database-url (or KASSA_DATABASE_URL)")?;
    let opts = kassa_store::db::ConnectOptions {
        url,
        max_connections: 2,
        acquire_timeout: Duration::from_secs(30),
        sqlite_full_sync: false,
    };
    let store = kassa_store::db::Store::connect(&opts).await?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    let started = Instant::now();
    let n = kassa_store::bench_seed::seed_orders(&store, args.seed_orders, run, now)
        .await?
        .context("--seed-orders needs PostgreSQL")?;
    println!("seeded {n} orders (one line each) in {:.1} s", started.elapsed().as_secs_f64());
    store.close().await;
    Ok(())
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.clients == 0 || args.duration == 0 {
        bail!("--clients and --duration must be positive");
    }
    // Redirects are not followed: the hosted page's 303 leads to the merchant's site.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients * 2)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let run = format!("{:x}", rand::random::<u32>());
    let mut ctx = Ctx {
        http,
        url: args.url.trim_end_matches('/').to_string(),
        sk: args.secret_key.clone(),
        pk: args.publishable_key.clone(),
        products: Vec::new(),
        region: String::new(),
        shipping: String::new(),
        prices: Vec::new(),
        customer: String::new(),
        email: String::new(),
        run,
        cookie: String::new(),
        emails: Vec::new(),
        login: (args.dashboard_email.clone(), args.dashboard_password.clone()),
    };
    if args.scenario == Scenario::Renewals {
        let mut urls = vec![ctx.url.clone()];
        urls.extend(args.also_url.iter().map(|u| u.trim_end_matches('/').to_string()));
        let options = renewals::Options {
            subscriptions: args.subscriptions,
            clocks: args.clocks,
            clients: args.clients,
            urls,
            database_url: args.database_url.clone(),
        };
        return renewals::run(&ctx, options).await;
    }
    if args.seed_orders > 0 {
        seed(&args, &ctx.run).await?;
    }
    setup(&mut ctx, args.scenario).await?;
    let hooks = if args.webhooks { Some(webhooks::Receiver::start(&ctx.http, &ctx.url, &ctx.sk).await?) } else { None };
    let track_events = args.webhooks;

    let warmup_end = Instant::now() + Duration::from_secs(args.warmup);
    let end = warmup_end + Duration::from_secs(args.duration);
    let mut before = None;
    let mut tasks = Vec::new();
    for c in 0..args.clients {
        let ctx = ctx.clone();
        let scenario = args.scenario;
        tasks.push(tokio::spawn(async move {
            let mut r = ClientResult {
                hist: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
                errors: BTreeMap::new(),
                orders: Vec::new(),
                committed: Vec::new(),
            };
            let mut n = c * 1_000_000;
            loop {
                let start = Instant::now();
                if start >= end {
                    break;
                }
                let outcome = op(&ctx, scenario, n).await;
                n += 1;
                if let Ok(Some(order)) = &outcome {
                    r.orders.push(order.clone());
                    if track_events && start >= warmup_end {
                        r.committed.push(committed_event(scenario, order, Instant::now()));
                    }
                }
                if start < warmup_end {
                    continue;
                }
                match outcome {
                    Ok(_) => {
                        let _ = r.hist.record(start.elapsed().as_micros().max(1) as u64);
                    }
                    Err(e) => *r.errors.entry(e).or_default() += 1,
                }
            }
            r
        }));
    }
    tokio::time::sleep_until(warmup_end.into()).await;
    if before.is_none() {
        before = db_counters(&ctx).await;
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut orders = Vec::new();
    let mut committed = Vec::new();
    for t in tasks {
        let r = t.await?;
        hist.add(&r.hist)?;
        orders.extend(r.orders);
        committed.extend(r.committed);
        for (k, v) in r.errors {
            *errors.entry(k).or_default() += v;
        }
    }
    let after = db_counters(&ctx).await;
    if let Some(path) = &args.record {
        let text: String = orders.iter().map(|o| format!("{o}\n")).collect();
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let ok = hist.len();
    let failed: u64 = errors.values().sum();
    let secs = args.duration as f64;
    println!("scenario      {:?}", args.scenario);
    println!("clients       {}", args.clients);
    println!("duration      {} s (after {} s warm-up)", args.duration, args.warmup);
    println!("operations    {ok} ok, {failed} failed");
    println!("throughput    {:.1} ops/s", ok as f64 / secs);
    println!(
        "latency       p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        hist.value_at_quantile(0.50) as f64 / 1000.0,
        hist.value_at_quantile(0.90) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        hist.max() as f64 / 1000.0
    );
    if let (Some((s0, t0, r0)), Some((s1, t1, r1))) = (before, after) {
        let ops = (ok + failed).max(1) as f64;
        // Counters include the tail of warm-up requests still in flight; close enough.
        println!(
            "per operation {:.1} database round trips, {:.1} SQL statements, {:.2} write transactions",
            (r1 - r0) / ops,
            (s1 - s0) / ops,
            (t1 - t0) / ops
        );
    }
    if !errors.is_empty() {
        println!("errors        {errors:?}");
    }
    if errors.contains_key("429") {
        println!(
            "              429: the server's rate limits; measure one started with KASSA_RATE_LIMITS__ENABLED=false"
        );
    }
    if let Some(hooks) = hooks {
        hooks.report(&ctx.http, &ctx.url, &ctx.sk, &committed, (warmup_end, end), Duration::from_secs(10)).await?;
    }
    if args.scenario == Scenario::Credits {
        // Let the last webhooks land, then check the account's books.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let b = ctx
            .http
            .get(format!("{}/admin/customers/{}/credits?limit=1", ctx.url, ctx.customer))
            .bearer_auth(&ctx.sk)
            .send()
            .await?
            .json::<Value>()
            .await?;
        println!(
            "balance       {} credits (never below zero; equals the ledger's sum: see kassa's tests)",
            b["balance"]
        );
    }
    Ok(())
}

/// The event an operation's answer stands for: `order.created` of a checkout's order
/// (`<cart id> <order id>`), or `product.created` of the `events` scenario's product.
fn committed_event(scenario: Scenario, done: &str, at: Instant) -> (String, String, Instant) {
    match scenario {
        Scenario::Events => ("product.created".into(), done.to_string(), at),
        _ => ("order.created".into(), done.split_whitespace().nth(1).unwrap_or_default().to_string(), at),
    }
}
