//! Typed configuration: defaults ← `kassa.toml` (or the file in `KASSA_CONFIG`) ← environment.
//!
//! Environment variables are `KASSA_<SECTION>__<KEY>` (`KASSA_SERVER__PORT=8080`), plus the
//! conventional `DATABASE_URL` and `PORT`. [`Settings::load`] validates everything a running
//! server needs, so a missing or malformed secret stops `kassa serve` at start with a message
//! naming the variable, never at the first webhook.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use kassa_domain::Currency;
use kassa_domain::credits::{FeeSchedule, MAX_CREDITS};
use kassa_domain::money::{DEFAULT_MAX_AMOUNT, MAX_AMOUNT};
use kassa_domain::tax::Percentage;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub log: LogSettings,
    pub processor: ProcessorSettings,
    pub customer_auth: CustomerAuthSettings,
    pub checkout: CheckoutSettings,
    pub credits: CreditSettings,
    pub jobs: JobSettings,
    pub rate_limits: RateLimitSettings,
    pub webhooks: WebhookSettings,
    #[serde(default)]
    pub billing: BillingSettings,
}

/// Subscriptions' billing (issue 15): the dunning of failed renewals.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingSettings {
    /// Days after each failed attempt of a renewal invoice before it is tried again (Stripe's
    /// custom retry schedule); after the last, dunning ends with `after_last_retry`.
    pub retry_days: Vec<u32>,
    /// `cancel` (the subscription ends) or `unpaid` (it stays, billing nothing more).
    pub after_last_retry: AfterLastRetrySetting,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AfterLastRetrySetting {
    #[default]
    Cancel,
    Unpaid,
}

impl Default for BillingSettings {
    fn default() -> Self {
        BillingSettings { retry_days: vec![1, 3, 5], after_last_retry: AfterLastRetrySetting::Cancel }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    /// 0 picks a free port (tests).
    pub port: u16,
    /// The address browsers reach Kassa at (hosted checkout pages, 3-D Secure returns).
    /// Defaults to `http://<host>:<port>` of the bound socket.
    pub public_url: Option<String>,
    /// Largest request body in bytes.
    pub body_limit: usize,
    /// Seconds to finish in-flight requests after SIGTERM/Ctrl-C.
    pub shutdown_grace_secs: u64,
    /// Origins allowed to call the store API from browsers (`https://shop.example`); `*`
    /// allows any. The store API authenticates by headers, never cookies, so `*` opens
    /// nothing a script elsewhere could not do from a server.
    pub cors_origins: Vec<String>,
    /// Origins allowed to call the admin API from browsers: none by default, because secret
    /// keys do not belong in browsers. List the origin of a dashboard served elsewhere.
    pub admin_cors_origins: Vec<String>,
    /// Reverse proxies (addresses or CIDR networks) trusted to name the client in
    /// `X-Forwarded-For`. None by default: the client is the connection's peer.
    pub trusted_proxies: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://kassa.db` (default, created if missing) or `postgres://…`.
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout_secs: u64,
    /// SQLite: `normal` (WAL's usual level: a commit survives a crash of Kassa, and may be
    /// lost to a power cut) or `full` (every commit is fsynced; slower). PostgreSQL has its
    /// own `synchronous_commit`.
    pub sqlite_synchronous: SqliteSync,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSync {
    Normal,
    Full,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    /// An `EnvFilter` directive (`info`, `kassa=debug,tower_http=info`); `RUST_LOG` wins.
    pub level: String,
    /// Log a backtrace with every internal error. For debugging only: capturing costs on
    /// every error, and the first one printed loads the binary's debug info into memory.
    /// `RUST_BACKTRACE` alone does not turn this on.
    pub backtraces: bool,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProcessorKind {
    Test,
    Stripe,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessorSettings {
    pub kind: ProcessorKind,
    /// Seconds any one processor call may take, all retries included; past it the caller gets
    /// 502 `processor_unavailable` and the outcome is left to the webhook and reconciliation.
    pub call_deadline_secs: u64,
    pub stripe: StripeSettings,
    pub test: TestProcessorSettings,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StripeSettings {
    /// `sk_live_…` or `sk_test_…`; required when the processor is `stripe`.
    #[serde(serialize_with = "expose")]
    pub secret_key: Option<SecretString>,
    /// `whsec_…` of the endpoint that posts to `/webhooks/stripe`; required with `stripe`.
    #[serde(serialize_with = "expose")]
    pub webhook_secret: Option<SecretString>,
    /// Another secret accepted during rotation.
    #[serde(serialize_with = "expose")]
    pub previous_webhook_secret: Option<SecretString>,
    /// `https://api.stripe.com`; tests point it at localstripe.
    pub base_url: String,
    /// The pinned `Stripe-Version`.
    pub api_version: String,
    pub max_network_retries: u32,
    pub timeout_secs: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestProcessorSettings {
    /// Where the test processor delivers its events; defaults to this server's own
    /// `/webhooks/stripe`.
    pub webhook_url: Option<String>,
    /// Duplicate, delay and reorder event deliveries (for tests of exactly-once handling).
    pub chaos: bool,
    /// Milliseconds between delivery rounds.
    pub delivery_interval_ms: u64,
    /// Ignore `Idempotency-Key`s, as localstripe does (and as Stripe does once a key expired):
    /// a repeated call makes a second charge. For tests and demos of duplicate charges.
    pub ignore_idempotency_keys: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CustomerAuthSettings {
    /// HS256 shared secret of the merchant's auth system.
    #[serde(serialize_with = "expose")]
    pub jwt_hs256_secret: Option<SecretString>,
    /// PEM file with an RS256 or EdDSA public key.
    pub jwt_public_key_file: Option<PathBuf>,
    /// JWKS file (RS256/EdDSA keys, chosen by `kid`).
    pub jwks_file: Option<PathBuf>,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud`, when set.
    pub audience: Option<String>,
    /// Clock skew allowed on `exp`/`nbf`, seconds.
    pub leeway_secs: u64,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum CaptureMode {
    #[default]
    Automatic,
    Manual,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutSettings {
    /// Days of inactivity after which an open cart expires.
    pub cart_ttl_days: u64,
    /// Hosted checkout sessions expire after this many hours.
    pub session_ttl_hours: u64,
    /// `automatic` captures at payment; `manual` authorizes and leaves capture to the admin.
    pub capture: CaptureMode,
    /// The largest amount in minor units of a price, a shipping rate, a cart's total and so of
    /// a charge (default 99,999,999: Stripe's eight digits; at most 999,999,999,999).
    pub max_amount: i64,
    /// The shop's name on the hosted pages (as Stripe Checkout shows the account's name).
    pub merchant_name: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreditSettings {
    pub currency: String,
    /// Minor units of `currency` one credit is worth.
    pub unit_amount: i64,
    /// The processor's percentage fee the top-up is grossed up by (`"2.9"`).
    pub fee_percent: String,
    /// The processor's fixed fee per charge, in minor units.
    pub fee_fixed: i64,
    /// Largest top-up, in credits.
    pub max_credits: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSettings {
    /// Run background jobs in this process (turn off on API-only replicas).
    pub enabled: bool,
    /// Milliseconds between rounds of each periodic job.
    pub interval_ms: u64,
    /// Hours an idempotency key is kept (Stripe keeps them 24 h).
    pub idempotency_retention_hours: u64,
}

/// Token buckets per API key (SPEC §2): a key may send `burst` requests at once and
/// `per_second` sustained; above that, 429 `rate_limit_error` with `Retry-After`. Each server
/// process keeps its own buckets.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    pub enabled: bool,
    /// Admin API: sustained requests per second per secret key.
    pub admin_per_second: u32,
    /// Admin API: requests a secret key may send at once (the bucket's size).
    pub admin_burst: u32,
    /// Store API: sustained requests per second per publishable key and client address.
    pub store_per_second: u32,
    /// Store API: requests a publishable key may send at once from one client address.
    pub store_burst: u32,
    /// Failed authentications (an unknown or revoked API key) a client address may make per
    /// minute, sustained; past that, every API-key request from it is refused (429) until
    /// `Retry-After`, whatever key it sends, so guessing keys gets nowhere.
    pub failed_auth_per_minute: u32,
    /// Failed authentications a client address may make at once (a misconfigured client
    /// retrying is not locked out at its first mistakes).
    pub failed_auth_burst: u32,
}

/// Webhooks to the merchant (SPEC §9).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Accept endpoint URLs on loopback, private and link-local addresses. Off by default, so
    /// the admin API cannot be turned into a scanner of the server's own network; `--demo`
    /// and tests turn it on.
    pub allow_private_urls: bool,
    /// 32 random bytes, base64 or hex (`openssl rand -base64 32`): the key endpoint signing
    /// secrets are sealed with (XChaCha20-Poly1305), so a database dump alone does not reveal
    /// them. Without it (nor `secret_key_file`) secrets are stored unsealed and the server says
    /// so at start.
    #[serde(serialize_with = "expose")]
    pub secret_key: Option<SecretString>,
    /// A file holding that key instead (the same formats).
    pub secret_key_file: Option<PathBuf>,
    /// Milliseconds an endpoint has to answer one delivery (connect to last byte).
    pub timeout_ms: u64,
    /// Milliseconds to wait after each failed attempt; the delivery gives up after the last.
    /// Each wait is jittered by ±20 %. The default sums to about three days, like Stripe's.
    pub retry_schedule_ms: Vec<u64>,
    /// Hours the secret before a roll keeps signing beside the new one (a roll may ask for
    /// another window, up to a week).
    pub roll_window_hours: u64,
    /// Deliveries in flight at once in this server.
    pub max_in_flight: usize,
    /// Deliveries in flight at once to one endpoint, so a slow endpoint cannot take them all.
    pub max_in_flight_per_endpoint: usize,
    /// Days the delivery log is kept.
    pub retention_days: u64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        const MINUTE: u64 = 60_000;
        const HOUR: u64 = 60 * MINUTE;
        WebhookSettings {
            allow_private_urls: false,
            secret_key: None,
            secret_key_file: None,
            timeout_ms: 10_000,
            retry_schedule_ms: vec![
                MINUTE,
                5 * MINUTE,
                30 * MINUTE,
                HOUR,
                3 * HOUR,
                6 * HOUR,
                12 * HOUR,
                24 * HOUR,
                24 * HOUR,
            ],
            roll_window_hours: 24,
            max_in_flight: 256,
            max_in_flight_per_endpoint: 32,
            retention_days: 30,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            server: ServerSettings {
                host: "127.0.0.1".into(),
                port: 7070,
                public_url: None,
                body_limit: 256 * 1024,
                shutdown_grace_secs: 10,
                cors_origins: vec!["*".into()],
                admin_cors_origins: Vec::new(),
                trusted_proxies: Vec::new(),
            },
            database: DatabaseSettings {
                url: "sqlite://kassa.db".into(),
                max_connections: 16,
                acquire_timeout_secs: 10,
                sqlite_synchronous: SqliteSync::Normal,
            },
            log: LogSettings { format: LogFormat::Human, level: "info".into(), backtraces: false },
            processor: ProcessorSettings {
                kind: ProcessorKind::Test,
                call_deadline_secs: 20,
                stripe: StripeSettings {
                    secret_key: None,
                    webhook_secret: None,
                    previous_webhook_secret: None,
                    base_url: "https://api.stripe.com".into(),
                    api_version: "2024-06-20".into(),
                    max_network_retries: 2,
                    timeout_secs: 30,
                },
                test: TestProcessorSettings {
                    webhook_url: None,
                    chaos: false,
                    delivery_interval_ms: 200,
                    ignore_idempotency_keys: false,
                },
            },
            customer_auth: CustomerAuthSettings::default(),
            checkout: CheckoutSettings {
                cart_ttl_days: 7,
                session_ttl_hours: 24,
                capture: CaptureMode::Automatic,
                max_amount: DEFAULT_MAX_AMOUNT,
                merchant_name: None,
            },
            credits: CreditSettings {
                currency: "usd".into(),
                unit_amount: 1,
                fee_percent: "2.9".into(),
                fee_fixed: 30,
                max_credits: 1_000_000,
            },
            jobs: JobSettings { enabled: true, interval_ms: 1000, idempotency_retention_hours: 24 },
            // Stripe allows 100 operations per second per account in live mode. A secret key
            // is the merchant's own backend (often several app servers sharing it): twice
            // that, with room for a burst. A publishable key is public, so its buckets are per
            // client address too: a browser needs a few requests a second, a storefront
            // rendering on its server (one address) more, hence 100/s.
            rate_limits: RateLimitSettings {
                enabled: true,
                admin_per_second: 200,
                admin_burst: 400,
                store_per_second: 100,
                store_burst: 200,
                failed_auth_per_minute: 10,
                failed_auth_burst: 20,
            },
            webhooks: WebhookSettings::default(),
            billing: BillingSettings::default(),
        }
    }
}

/// A configuration problem, naming the setting and the environment variable that sets it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Parse(String),
    #[error("{setting} (environment variable {env}): {problem}")]
    Invalid { setting: &'static str, env: &'static str, problem: String },
}

impl Settings {
    /// Loads defaults, then the TOML file (`KASSA_CONFIG`, else `./kassa.toml` when present),
    /// then the environment; then validates.
    pub fn load() -> Result<Settings, ConfigError> {
        let file = std::env::var("KASSA_CONFIG").unwrap_or_else(|_| "kassa.toml".into());
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if std::path::Path::new(&file).exists() {
            figment = figment.merge(Toml::file(&file));
        } else if std::env::var("KASSA_CONFIG").is_ok() {
            return Err(ConfigError::Parse(format!("KASSA_CONFIG names {file}, which does not exist")));
        }
        figment = figment
            .merge(Env::prefixed("KASSA_").filter(|k| is_setting(k.as_str())).split("__"))
            .merge(Env::raw().only(&["database_url"]).map(|_| "database.url".into()))
            .merge(Env::raw().only(&["port"]).map(|_| "server.port".into()));
        let settings: Settings = figment.extract().map_err(|e| ConfigError::Parse(describe(e)))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what serde cannot: required secrets for the chosen processor, URLs, fees.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.database.url.starts_with("sqlite:")
            || self.database.url.starts_with("postgres://")
            || self.database.url.starts_with("postgresql://"))
        {
            return Err(ConfigError::Invalid {
                setting: "database.url",
                env: "DATABASE_URL",
                problem: "must start with sqlite: or postgres://".into(),
            });
        }
        if let Some(url) = &self.server.public_url {
            check_http_url(url).map_err(|problem| ConfigError::Invalid {
                setting: "server.public_url",
                env: "KASSA_SERVER__PUBLIC_URL",
                problem,
            })?;
        }
        if !(1..=300).contains(&self.processor.call_deadline_secs) {
            return Err(ConfigError::Invalid {
                setting: "processor.call_deadline_secs",
                env: "KASSA_PROCESSOR__CALL_DEADLINE_SECS",
                problem: "must be between 1 and 300 seconds".into(),
            });
        }
        if self.processor.kind == ProcessorKind::Stripe {
            let s = &self.processor.stripe;
            match &s.secret_key {
                Some(k) if k.expose_secret().starts_with("sk_") || k.expose_secret().starts_with("rk_") => {}
                Some(_) => {
                    return Err(ConfigError::Invalid {
                        setting: "processor.stripe.secret_key",
                        env: "KASSA_PROCESSOR__STRIPE__SECRET_KEY",
                        problem: "must be a Stripe secret or restricted key (sk_… or rk_…)".into(),
                    });
                }
                None => {
                    return Err(ConfigError::Invalid {
                        setting: "processor.stripe.secret_key",
                        env: "KASSA_PROCESSOR__STRIPE__SECRET_KEY",
                        problem: "is required when the processor is stripe".into(),
                    });
                }
            }
            for (secret, setting, env) in [
                (&s.webhook_secret, "processor.stripe.webhook_secret", "KASSA_PROCESSOR__STRIPE__WEBHOOK_SECRET"),
                (
                    &s.previous_webhook_secret,
                    "processor.stripe.previous_webhook_secret",
                    "KASSA_PROCESSOR__STRIPE__PREVIOUS_WEBHOOK_SECRET",
                ),
            ] {
                match secret {
                    Some(w) if w.expose_secret().starts_with("whsec_") && w.expose_secret().len() > 6 => {}
                    Some(_) => {
                        return Err(ConfigError::Invalid {
                            setting,
                            env,
                            problem: "must be a webhook signing secret (whsec_…)".into(),
                        });
                    }
                    None if setting == "processor.stripe.webhook_secret" => {
                        return Err(ConfigError::Invalid {
                            setting,
                            env,
                            problem: "is required when the processor is stripe: without it no \
                                      webhook can be verified"
                                .into(),
                        });
                    }
                    None => {}
                }
            }
            check_http_url(&s.base_url).map_err(|problem| ConfigError::Invalid {
                setting: "processor.stripe.base_url",
                env: "KASSA_PROCESSOR__STRIPE__BASE_URL",
                problem,
            })?;
        }
        if let Some(url) = &self.processor.test.webhook_url {
            check_http_url(url).map_err(|problem| ConfigError::Invalid {
                setting: "processor.test.webhook_url",
                env: "KASSA_PROCESSOR__TEST__WEBHOOK_URL",
                problem,
            })?;
        }
        let auth = &self.customer_auth;
        if let Some(s) = &auth.jwt_hs256_secret
            && s.expose_secret().len() < 32
        {
            return Err(ConfigError::Invalid {
                setting: "customer_auth.jwt_hs256_secret",
                env: "KASSA_CUSTOMER_AUTH__JWT_HS256_SECRET",
                problem: "must be at least 32 bytes".into(),
            });
        }
        for (file, setting, env) in [
            (
                &auth.jwt_public_key_file,
                "customer_auth.jwt_public_key_file",
                "KASSA_CUSTOMER_AUTH__JWT_PUBLIC_KEY_FILE",
            ),
            (&auth.jwks_file, "customer_auth.jwks_file", "KASSA_CUSTOMER_AUTH__JWKS_FILE"),
        ] {
            if let Some(f) = file
                && !f.exists()
            {
                return Err(ConfigError::Invalid { setting, env, problem: format!("{} does not exist", f.display()) });
            }
        }
        self.credit_fee().map_err(|problem| ConfigError::Invalid {
            setting: "credits.fee_percent",
            env: "KASSA_CREDITS__FEE_PERCENT",
            problem,
        })?;
        self.credit_currency().map_err(|problem| ConfigError::Invalid {
            setting: "credits.currency",
            env: "KASSA_CREDITS__CURRENCY",
            problem,
        })?;
        if self.credits.unit_amount <= 0 {
            return Err(ConfigError::Invalid {
                setting: "credits.unit_amount",
                env: "KASSA_CREDITS__UNIT_AMOUNT",
                problem: "must be a positive number of minor units".into(),
            });
        }
        if !(1..=MAX_CREDITS).contains(&self.credits.max_credits) {
            return Err(ConfigError::Invalid {
                setting: "credits.max_credits",
                env: "KASSA_CREDITS__MAX_CREDITS",
                problem: format!("must be between 1 and {MAX_CREDITS}"),
            });
        }
        for (origins, setting, env, any_allowed) in [
            (&self.server.cors_origins, "server.cors_origins", "KASSA_SERVER__CORS_ORIGINS", true),
            (&self.server.admin_cors_origins, "server.admin_cors_origins", "KASSA_SERVER__ADMIN_CORS_ORIGINS", false),
        ] {
            for origin in origins {
                if origin == "*" && any_allowed {
                    continue;
                }
                if origin == "*" {
                    return Err(ConfigError::Invalid {
                        setting,
                        env,
                        problem: "must list the dashboard's origins: `*` would invite secret keys into any web page"
                            .into(),
                    });
                }
                normalize_origin(origin).map_err(|problem| ConfigError::Invalid { setting, env, problem })?;
            }
        }
        self.trusted_proxies().map_err(|problem| ConfigError::Invalid {
            setting: "server.trusted_proxies",
            env: "KASSA_SERVER__TRUSTED_PROXIES",
            problem,
        })?;
        let r = &self.rate_limits;
        for (value, setting, env) in [
            (r.admin_per_second, "rate_limits.admin_per_second", "KASSA_RATE_LIMITS__ADMIN_PER_SECOND"),
            (r.admin_burst, "rate_limits.admin_burst", "KASSA_RATE_LIMITS__ADMIN_BURST"),
            (r.store_per_second, "rate_limits.store_per_second", "KASSA_RATE_LIMITS__STORE_PER_SECOND"),
            (r.store_burst, "rate_limits.store_burst", "KASSA_RATE_LIMITS__STORE_BURST"),
            (
                r.failed_auth_per_minute,
                "rate_limits.failed_auth_per_minute",
                "KASSA_RATE_LIMITS__FAILED_AUTH_PER_MINUTE",
            ),
            (r.failed_auth_burst, "rate_limits.failed_auth_burst", "KASSA_RATE_LIMITS__FAILED_AUTH_BURST"),
        ] {
            if r.enabled && value == 0 {
                return Err(ConfigError::Invalid {
                    setting,
                    env,
                    problem: "must be at least 1 (turn limits off with rate_limits.enabled = false)".into(),
                });
            }
        }
        if !(1..=MAX_AMOUNT).contains(&self.checkout.max_amount) {
            return Err(ConfigError::Invalid {
                setting: "checkout.max_amount",
                env: "KASSA_CHECKOUT__MAX_AMOUNT",
                problem: format!("must be between 1 and {MAX_AMOUNT} (minor units)"),
            });
        }
        if !(1..=3650).contains(&self.checkout.cart_ttl_days) {
            return Err(ConfigError::Invalid {
                setting: "checkout.cart_ttl_days",
                env: "KASSA_CHECKOUT__CART_TTL_DAYS",
                problem: "must be between 1 and 3650".into(),
            });
        }
        if !(1..=87_600).contains(&self.jobs.idempotency_retention_hours) {
            return Err(ConfigError::Invalid {
                setting: "jobs.idempotency_retention_hours",
                env: "KASSA_JOBS__IDEMPOTENCY_RETENTION_HOURS",
                problem: "must be between 1 and 87600 (ten years)".into(),
            });
        }
        self.validate_webhooks()?;
        if !(1..=24).contains(&self.checkout.session_ttl_hours) {
            return Err(ConfigError::Invalid {
                setting: "checkout.session_ttl_hours",
                env: "KASSA_CHECKOUT__SESSION_TTL_HOURS",
                problem: "must be between 1 and 24 (Stripe's limits)".into(),
            });
        }
        Ok(())
    }

    fn validate_webhooks(&self) -> Result<(), ConfigError> {
        let w = &self.webhooks;
        let invalid = |setting, env, problem: &str| ConfigError::Invalid { setting, env, problem: problem.into() };
        if !(100..=60_000).contains(&w.timeout_ms) {
            return Err(invalid("webhooks.timeout_ms", "KASSA_WEBHOOKS__TIMEOUT_MS", "must be between 100 and 60000"));
        }
        if w.retry_schedule_ms.len() > 100 || w.retry_schedule_ms.iter().any(|&ms| ms > 7 * 86_400_000) {
            return Err(invalid(
                "webhooks.retry_schedule_ms",
                "KASSA_WEBHOOKS__RETRY_SCHEDULE_MS",
                "at most 100 waits, each at most a week",
            ));
        }
        if !(1..=168).contains(&w.roll_window_hours) {
            return Err(invalid(
                "webhooks.roll_window_hours",
                "KASSA_WEBHOOKS__ROLL_WINDOW_HOURS",
                "must be between 1 and 168",
            ));
        }
        if w.max_in_flight == 0 || w.max_in_flight_per_endpoint == 0 {
            return Err(invalid("webhooks.max_in_flight", "KASSA_WEBHOOKS__MAX_IN_FLIGHT", "must be at least 1"));
        }
        if !(1..=3650).contains(&w.retention_days) {
            return Err(invalid(
                "webhooks.retention_days",
                "KASSA_WEBHOOKS__RETENTION_DAYS",
                "must be between 1 and 3650",
            ));
        }
        self.webhook_secret_key().map_err(|problem| ConfigError::Invalid {
            setting: "webhooks.secret_key",
            env: "KASSA_WEBHOOKS__SECRET_KEY",
            problem,
        })?;
        Ok(())
    }

    /// The key webhook secrets are sealed with, from `webhooks.secret_key` or
    /// `webhooks.secret_key_file`; `None` when neither is set.
    pub fn webhook_secret_key(&self) -> Result<Option<[u8; 32]>, String> {
        use base64::Engine;
        let w = &self.webhooks;
        let text = match (&w.secret_key, &w.secret_key_file) {
            (Some(_), Some(_)) => return Err("set secret_key or secret_key_file, not both".into()),
            (Some(k), None) => k.expose_secret().trim().to_string(),
            (None, Some(f)) => std::fs::read_to_string(f)
                .map_err(|e| format!("cannot read webhooks.secret_key_file {}: {e}", f.display()))?
                .trim()
                .to_string(),
            (None, None) => return Ok(None),
        };
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(&text).map_err(|e| e.to_string())?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(&text)
                .map_err(|_| "must be 32 bytes in base64 or hex (openssl rand -base64 32)".to_string())?
        };
        <[u8; 32]>::try_from(bytes.as_slice()).map(Some).map_err(|_| format!("must be 32 bytes, not {}", bytes.len()))
    }

    pub fn credit_fee(&self) -> Result<FeeSchedule, String> {
        let percent: Percentage = self.credits.fee_percent.parse().map_err(|e| format!("{e}"))?;
        if percent.ppm() >= 1_000_000 {
            return Err("must be below 100".into());
        }
        if self.credits.fee_fixed < 0 {
            return Err("credits.fee_fixed must not be negative".into());
        }
        Ok(FeeSchedule { percent, fixed: self.credits.fee_fixed })
    }

    /// The networks of `server.trusted_proxies` (a bare address is a network of one).
    pub fn trusted_proxies(&self) -> Result<Vec<ipnet::IpNet>, String> {
        self.server
            .trusted_proxies
            .iter()
            .map(|p| {
                let p = p.trim();
                p.parse::<ipnet::IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| format!("`{p}` is not an IP address or CIDR network (`10.0.0.0/8`)"))
            })
            .collect()
    }

    pub fn credit_currency(&self) -> Result<Currency, String> {
        Currency::parse(&self.credits.currency).map_err(|e| e.to_string())
    }

    /// The credit settings as the values top-ups compute with, parsed once when the server
    /// starts (see `AppState::credit_terms`), never per request.
    pub fn credit_terms(&self) -> Result<CreditTerms, ConfigError> {
        let invalid = |setting, env, problem| ConfigError::Invalid { setting, env, problem };
        let currency = self.credit_currency().map_err(|p| invalid("credits.currency", "KASSA_CREDITS__CURRENCY", p))?;
        let fee = self.credit_fee().map_err(|p| invalid("credits.fee_percent", "KASSA_CREDITS__FEE_PERCENT", p))?;
        Ok(CreditTerms { currency, fee })
    }
}

/// What a top-up is charged in and grossed up by.
#[derive(Clone, Copy, Debug)]
pub struct CreditTerms {
    pub currency: Currency,
    pub fee: FeeSchedule,
}

/// Settings serialize only to seed figment with defaults (where secrets are absent); secrets
/// never reach logs, since `SecretString`'s `Debug` hides them.
fn expose<S: serde::Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    v.as_ref().map(|x| x.expose_secret()).serialize(s)
}

/// An origin as browsers send it in `Origin` (`https://shop.example`, `http://localhost:3000`:
/// scheme, host and a port other than the scheme's default; no path).
pub fn normalize_origin(s: &str) -> Result<String, String> {
    let url = url::Url::parse(s).map_err(|e| format!("`{s}` is not an origin: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!("`{s}` must be an http(s) origin such as https://shop.example"));
    }
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        return Err(format!("`{s}` must be an origin (scheme, host, port) without a path"));
    }
    Ok(url.origin().ascii_serialization())
}

fn check_http_url(s: &str) -> Result<(), String> {
    match url::Url::parse(s) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        Ok(_) => Err(format!("`{s}` must be an absolute http(s) URL")),
        Err(e) => Err(format!("`{s}` is not a URL: {e}")),
    }
}

/// Settings are `KASSA_<SECTION>__<KEY>`; every such variable is read (an unknown section or
/// key, such as a typo in `KASSA_SERVR__PORT`, stops the server). `KASSA_…` variables without
/// `__` are not settings: the API keys `kassa serve` asks to export, the config file path,
/// test switches.
fn is_setting(key: &str) -> bool {
    key.contains("__")
}

/// The variable that set the setting at `path`: the conventional `PORT` and `DATABASE_URL`
/// win over `KASSA_SERVER__PORT` and `KASSA_DATABASE__URL` when they are set.
fn env_of(path: &[String]) -> String {
    let alias = match path.join(".").as_str() {
        "server.port" => Some("PORT"),
        "database.url" => Some("DATABASE_URL"),
        _ => None,
    };
    match alias {
        Some(alias) if std::env::var_os(alias).is_some() => alias.to_string(),
        _ => format!("KASSA_{}", path.join("__").to_uppercase()),
    }
}

/// Figment's error, with the environment variable that would set the offending key.
fn describe(e: figment::Error) -> String {
    let mut out = Vec::new();
    for err in e {
        let path = err.path.join(".");
        if path.is_empty() {
            out.push(err.to_string());
        } else if let Some(figment::Source::File(file)) = err.metadata.as_ref().and_then(|m| m.source.as_ref()) {
            let env = format!("KASSA_{}", err.path.join("__").to_uppercase());
            out.push(format!("{path} (in {}; environment variable {env}): {}", file.display(), err.kind));
        } else {
            out.push(format!("{path} (environment variable {}): {}", env_of(&err.path), err.kind));
        }
    }
    out.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripe_without_webhook_secret_is_refused_naming_the_variable() {
        let mut s = Settings::default();
        s.processor.kind = ProcessorKind::Stripe;
        s.processor.stripe.secret_key = Some("sk_test_123".into());
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("KASSA_PROCESSOR__STRIPE__WEBHOOK_SECRET"), "{err}");
        s.processor.stripe.webhook_secret = Some("nope".into());
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("whsec_"), "{err}");
        s.processor.stripe.webhook_secret = Some("whsec_abc".into());
        assert!(s.validate().is_ok());
    }

    /// Settings that are multiplied into timestamps are bounded, so none can overflow.
    #[test]
    fn bounds_of_numeric_settings() {
        let mut s = Settings::default();
        s.checkout.cart_ttl_days = u64::MAX;
        assert!(s.validate().unwrap_err().to_string().contains("KASSA_CHECKOUT__CART_TTL_DAYS"));
        let mut s = Settings::default();
        s.jobs.idempotency_retention_hours = u64::MAX;
        assert!(s.validate().unwrap_err().to_string().contains("KASSA_JOBS__IDEMPOTENCY_RETENTION_HOURS"));
        let mut s = Settings::default();
        s.checkout.max_amount = kassa_domain::money::MAX_AMOUNT + 1;
        assert!(s.validate().unwrap_err().to_string().contains("KASSA_CHECKOUT__MAX_AMOUNT"));
        let mut s = Settings::default();
        s.credits.max_credits = i64::MAX;
        assert!(s.validate().unwrap_err().to_string().contains("KASSA_CREDITS__MAX_CREDITS"));
    }

    #[test]
    fn origins_and_proxies_are_checked() {
        assert_eq!(normalize_origin("https://Shop.Example:443/").unwrap(), "https://shop.example");
        assert_eq!(normalize_origin("http://localhost:3000").unwrap(), "http://localhost:3000");
        assert!(normalize_origin("https://shop.example/cart").is_err());
        assert!(normalize_origin("shop.example").is_err());
        let mut s = Settings::default();
        s.server.admin_cors_origins = vec!["*".into()];
        assert!(s.validate().unwrap_err().to_string().contains("KASSA_SERVER__ADMIN_CORS_ORIGINS"));
        s.server.admin_cors_origins = vec!["https://dashboard.example".into()];
        s.server.trusted_proxies = vec!["10.0.0.0/8".into(), "::1".into(), "192.168.1.7".into()];
        s.validate().unwrap();
        assert_eq!(s.trusted_proxies().unwrap().len(), 3);
        s.server.trusted_proxies = vec!["proxy.internal".into()];
        assert!(s.validate().unwrap_err().to_string().contains("KASSA_SERVER__TRUSTED_PROXIES"));
    }

    #[test]
    fn rate_limits_must_be_positive_unless_off() {
        let mut s = Settings::default();
        s.rate_limits.store_burst = 0;
        assert!(s.validate().unwrap_err().to_string().contains("KASSA_RATE_LIMITS__STORE_BURST"));
        s.rate_limits.enabled = false;
        s.validate().unwrap();
    }

    #[test]
    fn the_processor_deadline_is_bounded_and_named() {
        let mut s = Settings::default();
        assert_eq!(s.processor.call_deadline_secs, 20);
        s.processor.call_deadline_secs = 0;
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("KASSA_PROCESSOR__CALL_DEADLINE_SECS"), "{err}");
        s.processor.call_deadline_secs = 2;
        assert!(s.validate().is_ok());
    }

    /// Dotted paths of the leaves of a JSON tree (`server.port`), with their values.
    fn leaves(v: &serde_json::Value, prefix: &str, out: &mut Vec<(String, serde_json::Value)>) {
        match v.as_object() {
            Some(map) => {
                for (k, v) in map {
                    let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    leaves(v, &path, out);
                }
            }
            None => out.push((prefix.to_string(), v.clone())),
        }
    }

    /// docs/kassa.example.toml lists every setting (`#key = …` for those without a default),
    /// names none that does not exist, and shows the defaults as they are.
    #[test]
    fn the_example_file_lists_every_setting_with_its_default() {
        let example = include_str!("../../../docs/kassa.example.toml");
        let uncommented: String = example
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest) if rest.starts_with(|c: char| c.is_ascii_lowercase()) => rest,
                _ => l,
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let all: Settings = Figment::from(Toml::string(&uncommented))
            .extract()
            .unwrap_or_else(|e| panic!("the example names an unknown setting or lacks one: {}", describe(e)));
        let mut listed = Vec::new();
        leaves(&serde_json::to_value(&all).unwrap(), "", &mut listed);
        let mut defaults = Vec::new();
        leaves(&serde_json::to_value(Settings::default()).unwrap(), "", &mut defaults);
        let listed: Vec<&String> = listed.iter().map(|(k, _)| k).collect();
        for (key, _) in &defaults {
            assert!(listed.contains(&key), "docs/kassa.example.toml lacks `{key}`");
        }
        let mut active = Vec::new();
        let active_tree: serde_json::Value = Figment::from(Toml::string(example)).extract().unwrap();
        leaves(&active_tree, "", &mut active);
        for (key, value) in active {
            let default = defaults.iter().find(|(k, _)| *k == key).map(|(_, v)| v);
            assert_eq!(
                default,
                Some(&value),
                "docs/kassa.example.toml shows `{key}` with another value than its default"
            );
        }
    }

    #[test]
    fn defaults_are_valid() {
        Settings::default().validate().unwrap();
    }
}
