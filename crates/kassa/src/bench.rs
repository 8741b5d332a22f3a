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
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Scenario {
    /// List products with prices, then read one product (store API).
    CatalogRead,
    /// Create a product and a price for it (admin API).
    CatalogWrite,
}

/// What every client shares: the HTTP client and the ids the setup created.
#[derive(Clone)]
struct Ctx {
    http: reqwest::Client,
    url: String,
    sk: String,
    pk: String,
    products: Vec<String>,
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

async fn op(ctx: &Ctx, scenario: Scenario, n: usize) -> Result<(), String> {
    match scenario {
        Scenario::CatalogRead => {
            ctx.store_get("/store/products?limit=10").await?;
            let id = &ctx.products[n % ctx.products.len()];
            ctx.store_get(&format!("/store/products/{id}")).await?;
            Ok(())
        }
        Scenario::CatalogWrite => {
            let p = ctx.admin_post("/admin/products", json!({"name": format!("Bench write {n}")})).await?;
            let id = p["id"].as_str().unwrap_or_default();
            ctx.admin_post("/admin/prices", json!({"product": id, "currency": "usd", "unit_amount": 999})).await?;
            Ok(())
        }
    }
}

/// `kassa_db_statements_total` and `kassa_db_transactions_total` of the server.
async fn db_counters(ctx: &Ctx) -> Option<(f64, f64)> {
    let text = ctx.http.get(format!("{}/metrics", ctx.url)).send().await.ok()?.text().await.ok()?;
    let value = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    Some((value("kassa_db_statements_total")?, value("kassa_db_transactions_total")?))
}

struct ClientResult {
    hist: Histogram<u64>,
    errors: BTreeMap<String, u64>,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.clients == 0 || args.duration == 0 {
        bail!("--clients and --duration must be positive");
    }
    let http = reqwest::Client::builder().pool_max_idle_per_host(args.clients * 2).build()?;
    let mut ctx = Ctx {
        http,
        url: args.url.trim_end_matches('/').to_string(),
        sk: args.secret_key.clone(),
        pk: args.publishable_key.clone(),
        products: Vec::new(),
    };
    setup(&mut ctx, args.scenario).await?;

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
            };
            let mut n = c * 1_000_000;
            loop {
                let start = Instant::now();
                if start >= end {
                    break;
                }
                let outcome = op(&ctx, scenario, n).await;
                n += 1;
                if start < warmup_end {
                    continue;
                }
                match outcome {
                    Ok(()) => {
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
    for t in tasks {
        let r = t.await?;
        hist.add(&r.hist)?;
        for (k, v) in r.errors {
            *errors.entry(k).or_default() += v;
        }
    }
    let after = db_counters(&ctx).await;
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
    if let (Some((s0, t0)), Some((s1, t1))) = (before, after) {
        let ops = (ok + failed).max(1) as f64;
        // Counters include the tail of warm-up requests still in flight; close enough.
        println!("per operation {:.1} SQL statements, {:.2} write transactions", (s1 - s0) / ops, (t1 - t0) / ops);
    }
    if !errors.is_empty() {
        println!("errors        {errors:?}");
    }
    Ok(())
}
