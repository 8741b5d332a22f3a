//! `kassa listen`: Kassa's events on a developer's machine, like `stripe listen`. It registers
//! a temporary webhook endpoint at a running Kassa pointing at a receiver of its own on a
//! loopback port, prints the endpoint's signing secret and each event as it arrives, and
//! forwards each one — body and `Stripe-Signature` unchanged, so the local app verifies it
//! with that secret — to `--forward-to`. The endpoint is deleted on Ctrl-C.
//!
//! The server must accept loopback URLs (`webhooks.allow_private_urls`, on with `--demo`).

use anyhow::{Context, bail};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct ListenArgs {
    /// Base URL of the Kassa server.
    #[arg(long, default_value = "http://127.0.0.1:7070")]
    pub url: String,
    /// Secret key (admin API).
    #[arg(long, env = "KASSA_SECRET_KEY")]
    pub secret_key: String,
    /// Where to forward each event (`http://localhost:3000/hooks`); without it events are
    /// only printed.
    #[arg(long)]
    pub forward_to: Option<String>,
    /// Event types to listen to, comma-separated (default: all).
    #[arg(long, value_delimiter = ',', default_value = "*")]
    pub events: Vec<String>,
    /// Print each event's whole JSON, not just a line.
    #[arg(long)]
    pub print_json: bool,
}

struct Forwarder {
    http: reqwest::Client,
    forward_to: Option<String>,
    print_json: bool,
}

pub async fn run(args: ListenArgs) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let own_url = format!("http://{}/", listener.local_addr()?);
    let http = reqwest::Client::new();
    let base = args.url.trim_end_matches('/').to_string();
    let created = http
        .post(format!("{base}/admin/webhook-endpoints"))
        .bearer_auth(&args.secret_key)
        .json(&json!({"url": own_url, "enabled_events": args.events, "description": "kassa listen"}))
        .send()
        .await
        .with_context(|| format!("cannot reach Kassa at {base}"))?;
    let status = created.status();
    let endpoint: Value = created.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let message = endpoint["error"]["message"].as_str().unwrap_or("unknown error");
        bail!(
            "Kassa refused the listening endpoint ({status}): {message}\n\
             (the server must allow loopback URLs: webhooks.allow_private_urls, on with `kassa serve --demo`)"
        );
    }
    let id = endpoint["id"].as_str().context("no endpoint id in Kassa's answer")?.to_string();
    let secret = endpoint["secret"].as_str().unwrap_or_default();
    println!("Ready! Your webhook signing secret is {secret} (^C to quit)");
    if let Some(to) = &args.forward_to {
        println!("Forwarding events to {to}");
    }
    let forwarder =
        Arc::new(Forwarder { http: http.clone(), forward_to: args.forward_to.clone(), print_json: args.print_json });
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
        let f = forwarder.clone();
        async move { f.handle(headers, body).await }
    });
    let served = axum::serve(listener, app).with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    });
    let outcome = served.await;
    let deleted =
        http.delete(format!("{base}/admin/webhook-endpoints/{id}")).bearer_auth(&args.secret_key).send().await;
    match deleted {
        Ok(r) if r.status().is_success() => println!("Deleted the listening endpoint {id}."),
        _ => eprintln!(
            "Could not delete the listening endpoint {id}; delete it with DELETE /admin/webhook-endpoints/{id}."
        ),
    }
    outcome.map_err(Into::into)
}

impl Forwarder {
    async fn handle(&self, headers: HeaderMap, body: Bytes) -> StatusCode {
        let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let (kind, id) = (event["type"].as_str().unwrap_or("?"), event["id"].as_str().unwrap_or("?"));
        println!("--> {kind} [{id}]");
        if self.print_json {
            println!("{}", serde_json::to_string_pretty(&event).unwrap_or_default());
        }
        let Some(to) = &self.forward_to else { return StatusCode::OK };
        let mut req = self.http.post(to).header("content-type", "application/json; charset=utf-8").body(body);
        if let Some(sig) = headers.get("stripe-signature") {
            req = req.header("stripe-signature", sig.clone());
        }
        match req.send().await {
            Ok(res) => {
                println!("<-- [{}] POST {to} [{id}]", res.status().as_u16());
                // The local app's failure is Kassa's to retry, as with any endpoint.
                if res.status().is_success() { StatusCode::OK } else { StatusCode::BAD_GATEWAY }
            }
            Err(e) => {
                println!("<-- [error] POST {to} [{id}]: {e}");
                StatusCode::BAD_GATEWAY
            }
        }
    }
}
