//! The `kassa` binary: a thin command line over `kassa-server`.

mod backup;
mod bench;
mod keys;
mod listen;
mod users;
mod webhooks;

use anyhow::Context;
use clap::{Parser, Subcommand};
use kassa_server::config::Settings;
use kassa_server::startup::{self, Application, BuildOptions};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "kassa", version, about = "Self-hostable checkout and payments server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (SQLite and the test processor unless configured otherwise).
    Serve {
        /// Seed a small demo catalog (a region, three products, a shipping option).
        #[arg(long)]
        demo: bool,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Create, list and revoke API keys.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Compare payments with the processor and repair: apply outcomes missed by webhooks,
    /// find charges Kassa does not keep (duplicates) and give them back with the voided
    /// payments, retry pending refunds.
    Reconcile {
        /// How far back to look at the processor's PaymentIntents, in days.
        #[arg(long, default_value_t = kassa_server::jobs::commerce::RECONCILE_DAYS)]
        days: u32,
    },
    /// Copy the SQLite database, while servers run, into a new file (a consistent snapshot,
    /// made with `VACUUM INTO`). PostgreSQL: use `pg_dump` (see docs/deploy.md).
    Backup {
        /// The file to write; it must not exist yet.
        file: std::path::PathBuf,
    },
    /// Create and list the people who sign in to the dashboard (`/dashboard`).
    Users {
        #[command(subcommand)]
        command: users::UsersCommand,
    },
    /// Drive the HTTP API with concurrent clients and print throughput and latency.
    Bench(bench::BenchArgs),
    /// Print Kassa's events as they happen and forward them, signed, to a local URL (like
    /// `stripe listen`): registers a temporary webhook endpoint at a running server.
    Listen(listen::ListenArgs),
    /// Webhook endpoints of a running server: `kassa webhooks test <endpoint>` sends it a
    /// signed test event and prints what it answered.
    Webhooks {
        #[command(subcommand)]
        command: webhooks::WebhooksCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Settings before anything else runs: an operator's mistake stops here with the setting's
    // name, and the backtrace switch is set while this is the only thread.
    let settings = match &cli.command {
        Command::Bench(_) | Command::Listen(_) => None,
        _ => match Settings::load() {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("kassa: {e}");
                return ExitCode::from(2);
            }
        },
    };
    if let Some(settings) = &settings {
        kassa_server::telemetry::configure_backtraces(&settings.log);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kassa: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Errors end here as one line with their causes (`kassa: …: …`), never with a backtrace:
    // what reaches this point is a setting, a database or a port to fix, not a bug to debug.
    match runtime.block_on(run(cli, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kassa: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, settings: Option<Settings>) -> anyhow::Result<()> {
    let (command, settings) = match (cli.command, settings) {
        (Command::Bench(args), _) => return bench::run(args).await,
        (Command::Listen(args), _) => return listen::run(args).await,
        (Command::Webhooks { command }, _) => return webhooks::run(command).await,
        (command, Some(settings)) => (command, settings),
        (_, None) => unreachable!("settings are loaded for every command but bench and listen"),
    };
    kassa_server::telemetry::init(&settings.log);
    match command {
        Command::Serve { demo } => serve(settings, demo).await,
        Command::Migrate => {
            let store = startup::connect_store(&settings).await?;
            kassa_sandbox::migrations::migrate_all(&store).await.context("applying migrations")?;
            println!("migrations applied to {}", startup::redact(&settings.database.url));
            Ok(())
        }
        Command::Keys { command } => keys::run(settings, command).await,
        Command::Users { command } => users::run(settings, command).await,
        Command::Backup { file } => backup::run(settings, &file).await,
        Command::Reconcile { days } => {
            let state = Application::offline_state(settings).await?;
            let r = kassa_server::jobs::commerce::reconcile(&state, days).await?;
            print_reconciled(&r, days);
            Ok(())
        }
        Command::Bench(_) | Command::Listen(_) => unreachable!("handled above"),
        Command::Webhooks { .. } => unreachable!("handled above"),
    }
}

/// The report of `kassa reconcile`, one fact per line (tests read it too).
fn print_reconciled(r: &kassa_server::jobs::commerce::Reconciled, days: u32) {
    println!("checked {} open payments, {} changed", r.checked, r.changed);
    println!(
        "scanned {} PaymentIntents at the processor (last {days} days): {} pending payments found their outcome, \
         {} duplicate charges found",
        r.intents_scanned, r.found_outcome, r.duplicates_found
    );
    println!("duplicate charges (last {days} days): {}", r.duplicates.len());
    for d in &r.duplicates {
        println!(
            "  {} {} {} {} duplicate of {} {}",
            d.id,
            d.processor_payment_intent.as_deref().unwrap_or("-"),
            d.amount,
            d.currency,
            d.duplicate_of.as_deref().unwrap_or("-"),
            d.status
        );
    }
    println!("gave back {} payments; retried {} pending refunds", r.given_back, r.refunds_retried);
    println!("left to give back: {}", r.left_to_give_back.len());
    for p in &r.left_to_give_back {
        // Leased: a running server is giving it back right now (or its last try failed and it
        // waits for the lease to run out before the next).
        let held = p.lease_until.filter(|until| *until > r.finished).map(|_| ", in progress").unwrap_or_default();
        println!(
            "  {} {} {} {} ({}{held})",
            p.id,
            p.processor_payment_intent.as_deref().unwrap_or("-"),
            p.amount,
            p.currency,
            p.void_reason.as_deref().unwrap_or("-")
        );
    }
    if !r.unknown.is_empty() {
        println!(
            "{} payments never reached a known outcome (no PaymentIntent at the processor); the next pay call of \
             their cart resolves them: {}",
            r.unknown.len(),
            r.unknown.join(", ")
        );
    }
}

async fn serve(mut settings: Settings, demo: bool) -> anyhow::Result<()> {
    // The demo runs on a laptop, where webhook receivers listen on localhost.
    settings.webhooks.allow_private_urls |= demo;
    let started = std::time::Instant::now();
    let db = startup::redact(&settings.database.url);
    let processor = format!("{:?}", settings.processor.kind).to_lowercase();
    let app = Application::build(settings, BuildOptions { demo }).await?;
    if let Some((secret, publishable)) = &app.bootstrap_keys {
        println!("Kassa created its first API keys. They are shown once; keep them safe.");
        println!("  secret key (admin API):       {}", secret.secret);
        println!("  publishable key (store API):  {}", publishable.secret);
        println!("  export KASSA_SECRET_KEY={} KASSA_PUBLISHABLE_KEY={}", secret.secret, publishable.secret);
    }
    let public_url = app.state().public_url.clone();
    if demo {
        let state = app.state();
        let (email, password) = kassa_server::services::dashboard::users::demo_owner(&state.store, state.clock.now())
            .await
            .map_err(|e| anyhow::anyhow!("creating the demo dashboard user: {e}"))?;
        println!("dashboard: {public_url}/dashboard user {email} password {password}");
    }
    println!(
        "Kassa listening on {public_url} (database {db}, processor {processor}{}) — ready in {} ms",
        if demo { ", demo catalog" } else { "" },
        started.elapsed().as_millis()
    );
    app.run_until_stopped(startup::shutdown_signal()).await
}
