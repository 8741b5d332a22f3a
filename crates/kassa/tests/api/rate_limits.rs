//! Rate limits (SPEC §2) through HTTP, with low limits: a burst over the limit gets 429
//! `rate_limit_error` with `Retry-After`, one under it gets none; buckets are per secret key on
//! the admin API and per publishable key and client address on the store API.

use crate::helpers::*;
use kassa_server::services::keys::{self, KeyKind};
use reqwest::header::HeaderMap;
use std::net::IpAddr;
use std::time::Duration;

/// One token a second, three at once.
const RATE: u32 = 1;
const BURST: usize = 3;

async fn spawn_limited(configure: impl FnOnce(&mut kassa_server::config::Settings)) -> TestApp {
    spawn_app_with(|s| {
        s.rate_limits.admin_per_second = RATE;
        s.rate_limits.admin_burst = BURST as u32;
        s.rate_limits.store_per_second = RATE;
        s.rate_limits.store_burst = BURST as u32;
        configure(s);
    })
    .await
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: serde_json::Value,
}

/// `n` concurrent requests built by `request`.
async fn burst(n: usize, request: impl Fn() -> reqwest::RequestBuilder) -> Vec<Answer> {
    let sends = (0..n).map(|_| {
        let req = request();
        async move {
            let res = req.send().await.expect("request sent");
            let (status, headers) = (res.status().as_u16(), res.headers().clone());
            Answer { status, headers, body: res.json().await.unwrap_or_default() }
        }
    });
    futures::future::join_all(sends).await
}

fn count(answers: &[Answer], status: u16) -> usize {
    answers.iter().filter(|a| a.status == status).count()
}

/// A 429 as SPEC §2 and Stripe have it.
#[track_caller]
fn assert_rate_limited(a: &Answer) {
    assert_eq!(a.status, 429);
    assert_eq!(a.body["error"]["type"], "rate_limit_error", "{}", a.body);
    assert_eq!(a.body["error"]["code"], "rate_limit", "{}", a.body);
    assert!(a.body["error"]["message"].as_str().unwrap().contains("Too many requests"), "{}", a.body);
    // One token a second: the next one is at most a second away.
    assert_eq!(a.headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
}

async fn rate_limited_total(app: &TestApp, api: &str) -> u64 {
    let metrics = app.get("/metrics", As::Nobody).await.text;
    let line = format!("kassa_rate_limited_total{{api=\"{api}\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(&line)).map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn a_secret_key_over_its_burst_gets_429_with_retry_after_and_another_key_does_not() {
    let app = spawn_limited(|_| {}).await;
    let admin = |key: String| {
        let (http, url) = (app.http.clone(), format!("{}/admin/products", app.address));
        move || http.get(&url).bearer_auth(&key)
    };
    let before = rate_limited_total(&app, "admin").await;

    // Over the burst: the first BURST pass (one more if a token came back meanwhile).
    let answers = burst(BURST + 4, admin(app.secret_key.clone())).await;
    let (passed, limited) = (count(&answers, 200), count(&answers, 429));
    assert_eq!(passed + limited, BURST + 4);
    assert!((BURST..=BURST + 1).contains(&passed), "{passed} passed");
    answers.iter().filter(|a| a.status == 429).for_each(assert_rate_limited);

    // Another secret key has its own bucket: a burst up to the limit all passes, while the
    // first key is still limited.
    let other = keys::create(&app.state.store, KeyKind::Secret, None, app.state.clock.now()).await.unwrap().secret;
    let answers = burst(BURST, admin(other)).await;
    assert_eq!(count(&answers, 200), BURST, "a burst under the limit is never refused");
    assert_eq!(app.get("/admin/products", As::Admin).await.status, 429);

    // Retry-After is honest: after it, the key passes again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.get("/admin/products", As::Admin).await.ok();

    // Counted in /metrics (the recorder is shared by the tests of this process: at least ours)
    // (our 429s: the burst's and the one after it).
    let counted = rate_limited_total(&app, "admin").await - before;
    assert!(counted > limited as u64, "{counted} counted, {limited} + 1 refused");

    // Routes without an API key are not limited by one.
    for path in ["/health", "/ready", "/metrics"] {
        let answers = burst(BURST + 4, || app.http.get(format!("{}{path}", app.address))).await;
        assert_eq!(count(&answers, 200), BURST + 4, "{path}");
    }
}

#[tokio::test]
async fn the_store_api_limits_a_publishable_key_per_client_address() {
    // Behind a trusted proxy (this test's own loopback address), X-Forwarded-For names the client.
    let app = spawn_limited(|s| s.server.trusted_proxies = vec!["127.0.0.1".into()]).await;
    let from = |client: &'static str, key: String| {
        let (http, url) = (app.http.clone(), format!("{}/store/products", app.address));
        move || http.get(&url).header("kassa-publishable-key", &key).header("x-forwarded-for", client)
    };
    let pk = app.publishable_key.clone();

    let answers = burst(BURST + 4, from("203.0.113.1", pk.clone())).await;
    assert!((BURST..=BURST + 1).contains(&count(&answers, 200)), "{} passed", count(&answers, 200));
    answers.iter().filter(|a| a.status == 429).for_each(assert_rate_limited);
    assert!(count(&answers, 429) >= 3);

    // Another client with the same key, and the same client with another key, are not limited.
    let answers = burst(BURST, from("203.0.113.2", pk.clone())).await;
    assert_eq!(count(&answers, 200), BURST);
    let other = keys::create(&app.state.store, KeyKind::Publishable, None, app.state.clock.now()).await.unwrap().secret;
    let answers = burst(BURST, from("203.0.113.1", other)).await;
    assert_eq!(count(&answers, 200), BURST);

    // A client cannot pick a fresh address by sending X-Forwarded-For itself: the proxy appends
    // the address it saw, and that one counts.
    let answers = burst(2, from("198.51.100.77, 203.0.113.1", pk.clone())).await;
    assert_eq!(count(&answers, 429), 2);
}

#[tokio::test]
async fn without_trusted_proxies_the_client_is_the_connections_peer() {
    let app = spawn_limited(|_| {}).await;
    let pk = app.publishable_key.clone();
    let url = format!("{}/store/products", app.address);
    // X-Forwarded-For from an untrusted peer is ignored: new values do not give new buckets.
    let forwarded = std::sync::atomic::AtomicUsize::new(0);
    let answers = burst(BURST + 4, || {
        let n = forwarded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        app.http.get(&url).header("kassa-publishable-key", &pk).header("x-forwarded-for", format!("198.51.100.{n}"))
    })
    .await;
    assert!(count(&answers, 429) >= 3, "{} limited", count(&answers, 429));

    // Another peer address (Linux routes all of 127.0.0.0/8 to loopback) has its own bucket.
    let local: IpAddr = "127.0.0.2".parse().unwrap();
    let elsewhere = reqwest::Client::builder().local_address(local).build().unwrap();
    let answers = burst(BURST, || elsewhere.get(&url).header("kassa-publishable-key", &pk)).await;
    assert_eq!(count(&answers, 200), BURST);
}

#[tokio::test]
async fn limits_can_be_switched_off() {
    let app = spawn_limited(|s| s.rate_limits.enabled = false).await;
    let answers =
        burst(BURST * 4, || app.http.get(format!("{}/admin/products", app.address)).bearer_auth(&app.secret_key)).await;
    assert_eq!(count(&answers, 200), BURST * 4);
}

/// Guessing API keys: past `failed_auth_burst` failed authentications an address gets 429 with
/// `Retry-After` for every API-key request — a right guess included, so guessing learns
/// nothing — on both APIs; a valid key from another address is never refused.
#[tokio::test]
async fn failed_authentications_are_limited_per_client_address() {
    // Behind a trusted proxy (this test's own loopback address), X-Forwarded-For names the client.
    let app = spawn_app_with(|s| {
        s.server.trusted_proxies = vec!["127.0.0.1".into()];
        s.rate_limits.failed_auth_per_minute = 60;
        s.rate_limits.failed_auth_burst = BURST as u32;
    })
    .await;
    let admin = |client: &'static str, key: String| {
        let (http, url) = (app.http.clone(), format!("{}/admin/products", app.address));
        move || http.get(&url).bearer_auth(&key).header("x-forwarded-for", client)
    };
    let guess = || format!("sk_{}", rand_suffix());
    let before = rate_limited_total(&app, "failed_auth").await;

    // One guess at a time, as a brute force goes: BURST answered 401, then 429.
    for _ in 0..BURST {
        let answers = burst(1, admin("203.0.113.9", guess())).await;
        assert_eq!(answers[0].status, 401, "{}", answers[0].body);
    }
    let answers = burst(3, admin("203.0.113.9", guess())).await;
    answers.iter().for_each(assert_rate_limited);
    assert!(answers[0].body["error"]["message"].as_str().unwrap().contains("failed authentications"));
    // The right key from that address is refused too, and so is the store API.
    assert_rate_limited(&burst(1, admin("203.0.113.9", app.secret_key.clone())).await[0]);
    let pk = app.publishable_key.clone();
    let store = burst(1, || {
        app.http
            .get(format!("{}/store/products", app.address))
            .header("kassa-publishable-key", &pk)
            .header("x-forwarded-for", "203.0.113.9")
    })
    .await;
    assert_rate_limited(&store[0]);
    assert!(rate_limited_total(&app, "failed_auth").await - before >= 5);

    // Another address: its valid key passes, its own guesses are its own.
    let answers = burst(BURST, admin("198.51.100.20", app.secret_key.clone())).await;
    assert_eq!(count(&answers, 200), BURST);
    assert_eq!(burst(1, admin("198.51.100.20", guess())).await[0].status, 401);

    // Retry-After is honest: a second later one failure's worth has refilled.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(burst(1, admin("203.0.113.9", app.secret_key.clone())).await[0].status, 200);
}
