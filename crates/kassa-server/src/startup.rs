//! Building and running a server: database, keys, processor, router, jobs, shutdown.

use crate::api::rate_limit::RateLimits;
use crate::clock::Clock;
use crate::config::{ProcessorKind, Settings};
use crate::services::identity::CustomerTokens;
use crate::services::keys::{self, NewKey};
use crate::state::AppState;
use anyhow::Context;
use kassa_processors::Processor;
use kassa_processors::deadline::WithDeadline;
use kassa_processors::stripe::{StripeConfig, StripeProcessor};
use kassa_sandbox::{TestProcessor, TestProcessorConfig};
use kassa_store::Store;
use kassa_store::db::ConnectOptions;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What `build` may do besides serving.
#[derive(Clone, Copy, Debug, Default)]
pub struct BuildOptions {
    /// Seed the demo catalog.
    pub demo: bool,
}

/// A server bound to its port, ready to run.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    /// Keys created on the very first start, to be shown once.
    pub bootstrap_keys: Option<(NewKey, NewKey)>,
}

pub async fn connect_store(settings: &Settings) -> anyhow::Result<Store> {
    let store = Store::connect(&ConnectOptions {
        url: settings.database.url.clone(),
        max_connections: settings.database.max_connections,
        acquire_timeout: Duration::from_secs(settings.database.acquire_timeout_secs),
        sqlite_full_sync: settings.database.sqlite_synchronous == crate::config::SqliteSync::Full,
    })
    .await
    .map_err(|e| {
        anyhow::anyhow!(
            "database.url (environment variable DATABASE_URL): cannot open the database at {}: {}",
            redact(&settings.database.url),
            e.connection_problem()
        )
    })?;
    Ok(store)
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(_) => url.to_string(),
        // Not a URL the parser takes (a port out of range, say): still never print a password.
        Err(_) => match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                let userinfo = &url[scheme + 3..at];
                let user = userinfo.split(':').next().unwrap_or_default();
                let hidden = if userinfo.contains(':') { ":***" } else { "" };
                format!("{}{user}{hidden}{}", &url[..scheme + 3], &url[at..])
            }
            _ => url.to_string(),
        },
    }
}

impl Application {
    pub async fn build(settings: Settings, options: BuildOptions) -> anyhow::Result<Application> {
        Self::build_with_clock(settings, options, Clock::default()).await
    }

    pub async fn build_with_clock(
        settings: Settings,
        options: BuildOptions,
        clock: Clock,
    ) -> anyhow::Result<Application> {
        crate::failpoint::refuse_if_set()?;
        // The port first: a start that cannot serve must not create the first API keys (they
        // are printed once, and a start that fails right after would lose them).
        let addr = format!("{}:{}", settings.server.host, settings.server.port);
        let listener = TcpListener::bind(&addr).await.map_err(|e| {
            anyhow::anyhow!(
                "server.host/server.port (environment variables KASSA_SERVER__HOST, PORT or KASSA_SERVER__PORT): \
                 cannot listen on {addr}: {e}"
            )
        })?;
        let local = listener.local_addr()?;
        let (store, customer_tokens) = open(&settings).await?;
        let bootstrap_keys = keys::bootstrap(&store, clock.now()).await?;
        if options.demo {
            crate::demo::seed(&store, clock.now()).await.context("seeding the demo catalog")?;
        }
        let state = assemble(settings, store, customer_tokens, local, clock).await?;
        Ok(Application { listener, state, bootstrap_keys })
    }

    /// The state of a server without serving (for operator commands such as `kassa
    /// reconcile`); the test processor's pages are not reachable meanwhile.
    pub async fn offline_state(settings: Settings) -> anyhow::Result<AppState> {
        let (store, customer_tokens) = open(&settings).await?;
        let local: SocketAddr = ([127, 0, 0, 1], settings.server.port).into();
        assemble(settings, store, customer_tokens, local, Clock::default()).await
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then stops taking connections, lets in-flight
    /// requests finish (up to the grace period) and stops the jobs.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut jobs = if self.state.settings.jobs.enabled {
            crate::jobs::spawn_all(&self.state, stop_rx.clone())
        } else {
            tokio::task::JoinSet::new()
        };
        let grace = Duration::from_secs(self.state.settings.server.shutdown_grace_secs);
        let router = crate::api::router(self.state.clone());
        // After the router, which installs the metrics recorder.
        let pool_gauges = tokio::spawn(crate::metrics::sample_pools(self.state.store.clone()));
        let backlog_gauges = tokio::spawn(crate::jobs::backlog::sample(
            self.state.clone(),
            crate::jobs::backlog::sampling_interval(&self.state),
        ));
        let mut stop_rx_server = stop_rx.clone();
        let server = axum::serve(self.listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move {
                let _ = stop_rx_server.wait_for(|s| *s).await;
            });
        let stop = tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests");
            let _ = stop_tx.send(true);
        });
        let mut server = std::pin::pin!(server.into_future());
        let mut stop_rx_wait = stop_rx.clone();
        let stopping = async move {
            let _ = stop_rx_wait.wait_for(|s| *s).await;
        };
        tokio::select! {
            r = &mut server => r?,
            _ = stopping => {
                if tokio::time::timeout(grace, &mut server).await.is_err() {
                    tracing::warn!("grace period over; dropping remaining connections");
                }
            }
        }
        stop.abort();
        pool_gauges.abort();
        backlog_gauges.abort();
        while jobs.join_next().await.is_some() {}
        self.state.store.close().await;
        Ok(())
    }
}

/// Checks the customer-token keys (a bad key file stops the start before anything else),
/// opens the database and migrates it.
async fn open(settings: &Settings) -> anyhow::Result<(Store, Option<Arc<CustomerTokens>>)> {
    let customer_tokens = CustomerTokens::from_settings(&settings.customer_auth)?.map(Arc::new);
    let store = connect_store(settings).await?;
    kassa_sandbox::migrations::migrate_all(&store).await.context("applying migrations")?;
    Ok((store, customer_tokens))
}

/// The shared state of a server reachable at `local`.
async fn assemble(
    mut settings: Settings,
    store: Store,
    customer_tokens: Option<Arc<CustomerTokens>>,
    local: SocketAddr,
    clock: Clock,
) -> anyhow::Result<AppState> {
    let public_url: Arc<str> =
        settings.server.public_url.clone().unwrap_or_else(|| format!("http://{local}")).trim_end_matches('/').into();
    let (processor, test_processor) = build_processor(&mut settings, &store, &public_url, local, &clock).await?;
    // Every call answers within the deadline, however the processor behaves.
    let deadline = Duration::from_secs(settings.processor.call_deadline_secs);
    let processor: Arc<dyn Processor> = Arc::new(WithDeadline::new(processor, deadline));
    let rate_limits = Arc::new(RateLimits::from_settings(&settings)?);
    let credit_terms = settings.credit_terms()?;
    Ok(AppState {
        store,
        processor,
        test_processor,
        settings: Arc::new(settings),
        clock,
        public_url,
        customer_tokens,
        rate_limits,
        jobs: Default::default(),
        api_keys: Default::default(),
        processor_customers: Default::default(),
        credit_terms,
    })
}

/// The configured processor; for the `test` one also the processor itself (hosted pages,
/// controls, delivery), with its webhook URL resolved into `settings`.
async fn build_processor(
    settings: &mut Settings,
    store: &Store,
    public_url: &Arc<str>,
    local: SocketAddr,
    clock: &Clock,
) -> anyhow::Result<(Arc<dyn Processor>, Option<Arc<TestProcessor>>)> {
    match settings.processor.kind {
        ProcessorKind::Test => {
            // Events go to this server's own `/webhooks/stripe` unless configured otherwise.
            let host =
                if local.ip().is_unspecified() { SocketAddr::new([127, 0, 0, 1].into(), local.port()) } else { local };
            settings.processor.test.webhook_url.get_or_insert_with(|| format!("http://{host}/webhooks/stripe"));
            let secret =
                TestProcessor::webhook_secret(store).await.context("loading the test processor's webhook secret")?;
            let clock = clock.clone();
            let config = TestProcessorConfig::new(public_url.to_string(), secret, Arc::new(move || clock.now()));
            let test_processor = Arc::new(TestProcessor::new(store.clone(), config));
            test_processor.set_ignore_idempotency_keys(settings.processor.test.ignore_idempotency_keys);
            Ok((test_processor.clone(), Some(test_processor)))
        }
        ProcessorKind::Stripe => {
            let s = &settings.processor.stripe;
            let secret_key = s.secret_key.clone().context("processor.stripe.secret_key is required")?;
            let webhook_secrets = s.webhook_secret.iter().chain(s.previous_webhook_secret.iter()).cloned().collect();
            let mut config = StripeConfig::new(secret_key, webhook_secrets);
            config.base_url = s.base_url.clone();
            config.api_version = s.api_version.clone();
            config.max_network_retries = s.max_network_retries;
            config.timeout = Duration::from_secs(s.timeout_secs);
            Ok((Arc::new(StripeProcessor::new(config).context("configuring the Stripe processor")?), None))
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
