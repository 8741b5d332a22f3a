//! `kassa bench --scenario renewals`: subscription renewals falling due at once.
//!
//! Setup, through the admin API like any client (so the seeding goes through the same services
//! as production): one monthly price, `--subscriptions` subscriptions (5 per customer, each
//! customer with a saved `pm_card_visa`), their customers spread over `--clocks` test clocks
//! frozen at the same moment; each first invoice is paid when the subscription is made.
//!
//! Measured: every clock is advanced by one month at once (the clocks spread over the servers
//! given with `--url` and `--also-url`), so every subscription falls due at the same moment;
//! an advance answers when all of its clock's billing is done (renewal invoice made and paid
//! off-session at the test processor), and the servers' renewal jobs take part as they would
//! in production. Printed: renewals per second (subscriptions ÷ time until the last advance
//! answered), database round trips per renewal (all servers' `/metrics`), and, with
//! `--database-url`, the double-charge check: succeeded PaymentIntents at the test processor
//! per (subscription, period) and per invoice at most 1 (exactly 1 for each renewal), and one
//! invoice per (subscription, period).

use super::{Ctx, db_counters_at, read};
use anyhow::{Context, bail};
use futures::StreamExt;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Instant;

/// Subscriptions per customer.
const PER_CUSTOMER: usize = 5;
/// One month and a day: every monthly period ends within it, once.
const ADVANCE_SECS: i64 = 32 * 86_400;

pub struct Options {
    pub subscriptions: usize,
    pub clocks: usize,
    pub clients: usize,
    pub urls: Vec<String>,
    pub database_url: Option<String>,
}

async fn post(ctx: &Ctx, url: &str, path: &str, body: Value) -> anyhow::Result<Value> {
    let res = ctx.http.post(format!("{url}{path}")).bearer_auth(&ctx.sk).json(&body).send().await?;
    read(res).await.map_err(|e| anyhow::anyhow!("POST {path}: {e}"))
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_default().to_string()
}

pub async fn run(ctx: &Ctx, o: Options) -> anyhow::Result<()> {
    if o.subscriptions == 0 || o.clocks == 0 {
        bail!("--subscriptions and --clocks must be positive");
    }
    let start_time = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    let product = post(ctx, &ctx.url, "/admin/products", json!({"name": "Bench plan"}))
        .await
        .context("creating a product (is the secret key right?)")?;
    let price = id(&post(
        ctx,
        &ctx.url,
        "/admin/prices",
        json!({"product": id(&product), "currency": "usd", "unit_amount": 1000, "recurring": {"interval": "month", "interval_count": 1}}),
    )
    .await?);
    let mut clocks = Vec::new();
    for _ in 0..o.clocks {
        clocks.push(id(&post(ctx, &ctx.url, "/admin/test-clocks", json!({"frozen_time": start_time})).await?));
    }
    let customers = o.subscriptions.div_ceil(PER_CUSTOMER);
    let seeding = Instant::now();
    let seeded: Vec<anyhow::Result<usize>> = futures::stream::iter(0..customers)
        .map(|n| {
            let (clock, price) = (clocks[n % clocks.len()].clone(), price.clone());
            let url = o.urls[n % o.urls.len()].clone();
            async move {
                let c = id(&post(
                    ctx,
                    &url,
                    "/admin/customers",
                    json!({"email": format!("renew-{}-{n}@example.com", ctx.run), "test_clock": clock}),
                )
                .await?);
                post(
                    ctx,
                    &url,
                    &format!("/admin/customers/{c}/payment-methods"),
                    json!({"payment_method": "pm_card_visa", "default": true}),
                )
                .await?;
                let mut made = 0;
                for _ in 0..PER_CUSTOMER.min(o.subscriptions - n * PER_CUSTOMER) {
                    let s =
                        post(ctx, &url, "/admin/subscriptions", json!({"customer": c, "items": [{"price": price}]}))
                            .await?;
                    if s["status"] != "active" {
                        bail!("a new subscription is {} (expected active)", s["status"]);
                    }
                    made += 1;
                }
                Ok(made)
            }
        })
        .buffer_unordered(o.clients)
        .collect()
        .await;
    let mut made = 0;
    for r in seeded {
        made += r?;
    }
    println!("scenario      Renewals");
    println!(
        "seeded        {made} active subscriptions ({customers} customers on {} test clocks) in {:.1} s",
        clocks.len(),
        seeding.elapsed().as_secs_f64()
    );

    let mut before = Vec::new();
    for url in &o.urls {
        before.push(db_counters_at(&ctx.http, url).await);
    }
    let started = Instant::now();
    let target = start_time + ADVANCE_SECS;
    let advanced: Vec<anyhow::Result<()>> = futures::future::join_all(clocks.iter().enumerate().map(|(n, clock)| {
        let url = o.urls[n % o.urls.len()].clone();
        async move {
            let c =
                post(ctx, &url, &format!("/admin/test-clocks/{clock}/advance"), json!({"frozen_time": target})).await?;
            if c["frozen_time"] != target {
                bail!("clock {clock} is at {} after advancing", c["frozen_time"]);
            }
            Ok(())
        }
    }))
    .await;
    for r in advanced {
        match r {
            // A clock's advance gives up answering after a minute (502) while the servers go
            // on billing: with the database at hand, wait for the invoices instead.
            Err(e) if o.database_url.is_some() && e.to_string().ends_with(": 502") => {}
            other => other?,
        }
    }
    if let Some(db) = &o.database_url {
        wait_until_paid(db, made).await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut round_trips = 0.0;
    let mut statements = 0.0;
    let mut counted = true;
    for (url, b) in o.urls.iter().zip(before) {
        match (b, db_counters_at(&ctx.http, url).await) {
            (Some((s0, _, r0)), Some((s1, _, r1))) => {
                round_trips += r1 - r0;
                statements += s1 - s0;
            }
            _ => counted = false,
        }
    }
    println!("servers       {} ({})", o.urls.len(), o.urls.join(", "));
    println!(
        "renewed       {made} subscriptions due at once in {elapsed:.2} s: {:.1} renewals/s",
        made as f64 / elapsed
    );
    if counted {
        println!(
            "per renewal   {:.1} database round trips, {:.1} SQL statements (all servers, renewal invoice made and paid)",
            round_trips / made as f64,
            statements / made as f64
        );
    }
    match &o.database_url {
        Some(db) => double_charge_check(db, made).await?,
        None => println!("double charge not checked: pass --database-url (the servers' database) to count the charges"),
    }
    Ok(())
}

async fn connect(database_url: &str) -> anyhow::Result<kassa_store::Store> {
    Ok(kassa_store::Store::connect(&kassa_store::db::ConnectOptions {
        url: database_url.to_string(),
        max_connections: 2,
        acquire_timeout: std::time::Duration::from_secs(10),
        sqlite_full_sync: false,
    })
    .await?)
}

/// Waits (at most ten minutes) until `expected` renewal invoices are paid.
async fn wait_until_paid(database_url: &str, expected: usize) -> anyhow::Result<()> {
    let store = connect(database_url).await?;
    let deadline = Instant::now() + std::time::Duration::from_secs(600);
    loop {
        let paid: i64 = kassa_store::sql::query_scalar(
            "SELECT COUNT(*) FROM invoices WHERE billing_reason = 'subscription_cycle' AND status = 'paid'",
        )
        .fetch_one(store.reader())
        .await?;
        if paid as usize >= expected {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {paid} of {expected} renewals paid after ten minutes");
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    store.close().await;
    Ok(())
}

/// Succeeded PaymentIntents at the test processor (its `tp_objects` in Kassa's database) per
/// (subscription, period) of the invoices they paid: each must be exactly 1.
async fn double_charge_check(database_url: &str, expected: usize) -> anyhow::Result<()> {
    let store = connect(database_url).await?;
    let invoices: Vec<(String, String, i64, String)> = kassa_store::sql::query_as(
        "SELECT id, subscription, period_start, billing_reason FROM invoices WHERE subscription IS NOT NULL",
    )
    .fetch_all(store.reader())
    .await?;
    let invoices: HashMap<String, (String, i64, String)> =
        invoices.into_iter().map(|(i, s, p, r)| (i, (s, p, r))).collect();
    let intents: Vec<String> =
        kassa_store::sql::query_scalar("SELECT data FROM tp_objects WHERE kind = 'payment_intent'")
            .fetch_all(store.reader())
            .await?;
    // One invoice per period: the renewal invoices (and first invoices) per (subscription,
    // period) — the unique index promises it; counted here rather than trusted.
    let mut periods: HashMap<(&str, i64), usize> = HashMap::new();
    for (sub, period, reason) in invoices.values() {
        if reason != "subscription_update" {
            *periods.entry((sub.as_str(), *period)).or_default() += 1;
        }
    }
    let invoiced_twice = periods.values().filter(|n| **n > 1).count();
    let mut per_invoice: HashMap<String, usize> = HashMap::new();
    let mut charges: HashMap<(String, i64), usize> = HashMap::new();
    let mut renewals: HashMap<(String, i64), usize> = HashMap::new();
    for data in intents {
        let pi: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
        if pi["status"] != "succeeded" {
            continue;
        }
        let Some(invoice) = pi["metadata"]["kassa_invoice"].as_str() else { continue };
        *per_invoice.entry(invoice.to_string()).or_default() += 1;
        let Some((sub, period, reason)) = invoices.get(invoice) else {
            continue;
        };
        *charges.entry((sub.clone(), *period)).or_default() += 1;
        if reason == "subscription_cycle" {
            *renewals.entry((sub.clone(), *period)).or_default() += 1;
        }
    }
    let twice = charges.values().filter(|n| **n > 1).count();
    let invoices_charged_twice = per_invoice.values().filter(|n| **n > 1).count();
    let once = renewals.values().filter(|n| **n == 1).count();
    let ok = twice == 0 && invoices_charged_twice == 0 && invoiced_twice == 0 && once >= expected;
    println!(
        "double charge {twice} (subscription, period) pairs and {invoices_charged_twice} invoices charged more than once; \
         {invoiced_twice} periods invoiced more than once; {once} of {expected} renewals charged exactly once{}",
        if ok { ": OK" } else { ": FAILED" }
    );
    store.close().await;
    if !ok {
        bail!("the double-charge check failed");
    }
    Ok(())
}
