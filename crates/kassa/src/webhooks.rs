//! `kassa webhooks …`: webhook endpoints of a running server from the command line.
//! `kassa webhooks test <endpoint>` asks the server to send the endpoint a signed
//! `webhook_endpoint.test` event (`POST /admin/webhook-endpoints/{id}/test`), waits for the
//! attempt in the delivery log and prints it: the status code and latency, or the error. It
//! exits non-zero when the endpoint did not acknowledge the event, so it can gate a deploy.

use anyhow::{Context, bail};
use serde_json::Value;
use std::time::{Duration, Instant};

#[derive(clap::Subcommand, Debug)]
pub enum WebhooksCommand {
    /// Send a signed test event to one endpoint and print what it answered.
    Test(TestArgs),
}

#[derive(clap::Args, Debug)]
pub struct TestArgs {
    /// The endpoint's id (`we_…`).
    pub endpoint: String,
    /// Base URL of the Kassa server.
    #[arg(long, default_value = "http://127.0.0.1:7070")]
    pub url: String,
    /// Secret key (admin API).
    #[arg(long, env = "KASSA_SECRET_KEY")]
    pub secret_key: String,
    /// How long to wait for the attempt, in seconds (the server's `webhooks.timeout_ms`
    /// bounds the attempt itself).
    #[arg(long, default_value_t = 30)]
    pub wait: u64,
}

pub async fn run(command: WebhooksCommand) -> anyhow::Result<()> {
    match command {
        WebhooksCommand::Test(args) => test(args).await,
    }
}

async fn test(args: TestArgs) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let base = args.url.trim_end_matches('/').to_string();
    let endpoint = &args.endpoint;
    if endpoint.is_empty() || !endpoint.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        bail!("{endpoint:?} is not a webhook endpoint id (we_…; see GET /admin/webhook-endpoints)");
    }
    let sent = admin(&args.secret_key, http.post(format!("{base}/admin/webhook-endpoints/{endpoint}/test")))
        .await
        .with_context(|| format!("cannot reach Kassa at {base}"))?;
    let event = sent["id"].as_str().context("the server's answer has no event id")?.to_string();
    println!("sent test event {event} to {}", args.endpoint);
    let deadline = Instant::now() + Duration::from_secs(args.wait);
    let attempt = loop {
        let log = admin(&args.secret_key, http.get(format!("{base}/admin/events/{event}/deliveries"))).await?;
        if let Some(attempt) = log["data"].as_array().and_then(|d| d.last()) {
            break attempt.clone();
        }
        if Instant::now() > deadline {
            bail!(
                "no attempt of {event} within {} s (is the endpoint enabled, and the server's job runner on?)",
                args.wait
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let url = attempt["url"].as_str().unwrap_or("?");
    let latency = attempt["latency_ms"].as_i64().unwrap_or(0);
    let status = attempt["status_code"].as_i64().map(|s| s.to_string()).unwrap_or_else(|| "no answer".into());
    if attempt["succeeded"] == true {
        println!("{url} answered {status} in {latency} ms");
        return Ok(());
    }
    let error = attempt["error"].as_str().unwrap_or("failed");
    println!("{url} answered {status} in {latency} ms: {error}");
    if let Some(body) = attempt["response_body"].as_str().filter(|b| !b.is_empty()) {
        println!("response body: {body}");
    }
    bail!("the endpoint did not acknowledge the test event (it is retried on the endpoint's schedule)")
}

/// Sends an admin request and returns its JSON, or fails with the server's error message.
async fn admin(secret_key: &str, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
    let response = request.bearer_auth(secret_key).send().await?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let message = body["error"]["message"].as_str().unwrap_or("unknown error");
        bail!("Kassa answered {status}: {message}");
    }
    Ok(body)
}
