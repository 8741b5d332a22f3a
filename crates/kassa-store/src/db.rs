use crate::config_cache::ConfigCache;
use crate::webhook_subscriptions::SubscriptionsCache;
use crate::{Result, StoreError, sql};
use sqlx::any::AnyPoolOptions;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor, Transaction};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The database: a pool for reads and a pool for writes.
///
/// On SQLite the writer pool holds exactly one connection: SQLite has one writer at a time
/// anyway, and queueing writers in the pool (instead of letting several connections fight
/// over the lock with `busy_timeout`) keeps tail latency low. Readers use their own
/// connections, which WAL lets run beside the writer. On PostgreSQL both are the same pool.
///
/// Rule that follows from the single SQLite writer: never acquire a second write connection
/// while holding a [`Tx`] — that waits for itself.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    writer: AnyPool,
    reader: AnyPool,
    /// Configuration kept in memory (see `config_cache`), shared by this store's clones.
    config: Arc<ConfigCache>,
    /// Transactions with events this store committed (see [`Store::events_committed`]).
    events_committed: Arc<std::sync::atomic::AtomicU64>,
    /// The enabled webhook endpoints' subscriptions (see `webhook_subscriptions`).
    webhook_subscriptions: Arc<SubscriptionsCache>,
}

/// Options for [`Store::connect`].
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    pub url: String,
    /// Connections per pool (PostgreSQL) or reader connections (SQLite).
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// SQLite only: fsync every commit (`FULL`: survives power loss) or only at checkpoints
    /// (`NORMAL`: survives process crashes, may lose the last commits on power loss).
    pub sqlite_full_sync: bool,
}

impl Store {
    pub async fn connect(opts: &ConnectOptions) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = backend_of(&opts.url)?;
        match backend {
            Backend::Postgres => {
                // One plain connection first: the pool retries a refused connection until its
                // acquire timeout and then reports only "pool timed out", while this answers at
                // once with the cause (connection refused, unknown host, bad password).
                let probe = tokio::time::timeout(opts.acquire_timeout, AnyConnection::connect(&opts.url))
                    .await
                    .map_err(|_| sqlx::Error::PoolTimedOut)??;
                let _ = probe.close().await;
                let pool = liveness(AnyPoolOptions::new())
                    .max_connections(opts.max_connections)
                    .acquire_timeout(opts.acquire_timeout)
                    .connect(&opts.url)
                    .await?;
                Ok(Store {
                    backend,
                    writer: pool.clone(),
                    reader: pool,
                    config: Arc::default(),
                    events_committed: Arc::default(),
                    webhook_subscriptions: Arc::default(),
                })
            }
            Backend::Sqlite => {
                let url = sqlite_url_creating(&opts.url);
                let full = opts.sqlite_full_sync;
                let writer = sqlite_pool(1, opts.acquire_timeout, full).connect(&url).await?;
                let reader = sqlite_pool(opts.max_connections.max(1), opts.acquire_timeout, full).connect(&url).await?;
                Ok(Store {
                    backend,
                    writer,
                    reader,
                    config: Arc::default(),
                    events_committed: Arc::default(),
                    webhook_subscriptions: Arc::default(),
                })
            }
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The enabled webhook endpoints' subscriptions kept in memory; the fan-out files what it
    /// reads there.
    pub fn webhook_subscriptions(&self) -> &SubscriptionsCache {
        &self.webhook_subscriptions
    }

    /// How many transactions that recorded events awaiting the webhook fan-out this store has
    /// committed: a request after which it did not move has nothing for the dispatcher to do
    /// (events no enabled endpoint wants are inserted already fanned out).
    pub fn events_committed(&self) -> u64 {
        self.events_committed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Pool for statements that only read.
    pub fn reader(&self) -> &AnyPool {
        &self.reader
    }

    /// Pool for single statements that write outside a transaction.
    pub fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so a transaction that reads before it writes never fails to
    /// upgrade its lock; on PostgreSQL it is a plain READ COMMITTED transaction.
    ///
    /// The wait is measured (sqlx does not expose a pool's waiters): tasks inside this call
    /// are [`waiting_to_begin`], and each call's time — a writer connection from the pool
    /// (and, on SQLite, the write lock) plus the BEGIN round trip — is the histogram
    /// `kassa_db_begin_wait_seconds`. A long wait means the writer pool is exhausted.
    pub async fn begin(&self) -> Result<Tx> {
        let waiting = WaitingToBegin::enter();
        let inner = match self.backend {
            Backend::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.writer.begin().await?,
        };
        metrics::histogram!("kassa_db_begin_wait_seconds").record(waiting.started.elapsed().as_secs_f64());
        drop(waiting);
        sql::count_transaction();
        Ok(Tx {
            inner: Some(inner),
            backend: self.backend,
            outcomes: Vec::new(),
            events: Vec::new(),
            config: self.config.clone(),
            config_version: None,
            config_assumed: false,
            events_committed: self.events_committed.clone(),
            webhook_subscriptions: self.webhook_subscriptions.clone(),
        })
    }

    /// Applies the migrations of this backend that have not run yet.
    ///
    /// The migrator's advisory lock is off (PostgreSQL-compatible distributed databases lack
    /// advisory locks); two servers migrating at once make one of them fail, and it retries
    /// against the schema the other one finished.
    ///
    /// The built-in test processor (`kassa-sandbox`) owns its tables and migrations (version 3,
    /// and 1001 on) in the same `_sqlx_migrations` table, so this migrator ignores versions it
    /// does not know. Its migrations must run first: this store's 0007 indexes its `tp_objects`
    /// (`kassa_sandbox::migrations::migrate_all` runs both in that order).
    pub async fn migrate(&self) -> Result<()> {
        let migrator = migrator(self.backend);
        let mut attempt = 0;
        loop {
            match migrator.run(&self.writer).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt < 3 => {
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, "migration failed, retrying");
                    tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// SQLite: writes a consistent copy of the database to `path` (`VACUUM INTO`, which reads
    /// one snapshot while writers go on, and leaves a compact file that opens as is). The file
    /// must not exist. PostgreSQL has `pg_dump` for this.
    pub async fn backup_sqlite(&self, path: &str) -> Result<()> {
        if self.backend != Backend::Sqlite {
            return Err(StoreError::Corrupt("backup_sqlite needs a SQLite database".into()));
        }
        sql::query("VACUUM INTO $1").bind(path).execute(&self.reader).await?;
        Ok(())
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<()> {
        sql::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

/// The store's migrations of this backend, as [`Store::migrate`] runs them: without the
/// advisory lock, ignoring applied versions it does not know (the sandbox's, see `migrate`).
pub fn migrator(backend: Backend) -> sqlx::migrate::Migrator {
    let mut migrator = match backend {
        Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
        Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
    };
    migrator.set_locking(false);
    migrator.set_ignore_missing(true);
    migrator
}

fn backend_of(url: &str) -> Result<Backend> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Backend::Postgres)
    } else if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else {
        Err(StoreError::Database(sqlx::Error::Configuration(
            "DATABASE_URL must start with sqlite: or postgres://".into(),
        )))
    }
}

/// Adds `mode=rwc` so a fresh machine gets its database file created on first start.
fn sqlite_url_creating(url: &str) -> String {
    if url.contains("mode=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

/// Whether the pool pings an idle connection before handing it out (sqlx's
/// `test_before_acquire`, on by default): off. The ping is one more round trip per acquire
/// (about a third of a checkout's on PostgreSQL), and it buys nothing: a connection that broke
/// while idle makes the request's first statement fail instead (a 500 for that one request,
/// which is safe to retry: it wrote nothing), and sqlx then closes the connection rather than
/// returning it to the pool, so the next request gets a fresh one. Idle connections are also
/// closed after `idle_timeout` (10 min) and all after `max_lifetime` (30 min).
const PING_BEFORE_ACQUIRE: bool = false;

fn liveness(options: AnyPoolOptions) -> AnyPoolOptions {
    let options = options.test_before_acquire(PING_BEFORE_ACQUIRE);
    if !PING_BEFORE_ACQUIRE {
        return options;
    }
    // Counted where sqlx pings: for idle connections, just before this hook.
    options.before_acquire(|_conn, _meta| {
        Box::pin(async {
            sql::count_ping();
            Ok(true)
        })
    })
}

fn sqlite_pool(max: u32, acquire_timeout: Duration, full_sync: bool) -> AnyPoolOptions {
    // WAL: readers run beside the writer. The sync level: see `ConnectOptions`.
    let pragmas: &'static str = if full_sync {
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;"
    } else {
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;"
    };
    liveness(AnyPoolOptions::new())
        .max_connections(max)
        .min_connections(1)
        .acquire_timeout(acquire_timeout)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                conn.execute(pragmas).await?;
                Ok(())
            })
        })
}

/// A write transaction. Dropping it without [`Tx::commit`] rolls it back.
pub struct Tx {
    /// `None` once committed or rolled back.
    inner: Option<Transaction<'static, Any>>,
    backend: Backend,
    /// The events recorded in this transaction, logged once it commits (one `info` line per
    /// business outcome, never for work that rolled back).
    outcomes: Vec<crate::events::Outcome>,
    /// Events recorded in this transaction, inserted together (one statement) just before it
    /// commits: nothing reads an event in the transaction that records it.
    events: Vec<crate::events::Pending>,
    config: Arc<ConfigCache>,
    /// The configuration version this transaction observed (see `config_cache`).
    config_version: Option<i64>,
    /// `config_version` is assumed (the newest this server has seen), not observed yet: a
    /// later statement of the transaction must observe the same value (see
    /// [`Tx::assume_config_version`]).
    config_assumed: bool,
    events_committed: Arc<std::sync::atomic::AtomicU64>,
    webhook_subscriptions: Arc<SubscriptionsCache>,
}

impl Tx {
    /// The connection to run statements on: `query(..).execute(tx.conn())`.
    pub fn conn(&mut self) -> &mut AnyConnection {
        self.inner.as_mut().expect("a Tx is used only until it commits or rolls back")
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// ` FOR UPDATE` on PostgreSQL; nothing on SQLite, where the transaction already holds
    /// the database's only write lock.
    pub fn for_update(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        }
    }

    pub async fn commit(mut self) -> Result<()> {
        if self.config_assumed {
            let v: i64 =
                sql::query_scalar("SELECT version FROM config_version WHERE id = 1").fetch_one(self.conn()).await?;
            self.observe_config_version(v)?;
        }
        let events = std::mem::take(&mut self.events);
        let unwanted_at =
            self.webhook_subscriptions.unwanted_at(events.iter().filter(|e| e.for_fan_out()).map(|e| e.kind()));
        let share_lock = match self.backend {
            Backend::Postgres => " FOR SHARE",
            Backend::Sqlite => "",
        };
        let awaiting_fan_out = crate::events::insert_all(self.conn(), share_lock, &events, unwanted_at).await?;
        let inner = self.inner.take().expect("committed once");
        sql::count_commit();
        inner.commit().await?;
        if awaiting_fan_out {
            self.events_committed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        for outcome in &self.outcomes {
            outcome.log();
        }
        Ok(())
    }

    pub(crate) fn record_outcome(&mut self, outcome: crate::events::Outcome) {
        self.outcomes.push(outcome);
    }

    pub(crate) fn defer_event(&mut self, event: crate::events::Pending) {
        self.events.push(event);
    }

    pub(crate) fn config(&self) -> &ConfigCache {
        &self.config
    }

    /// Notes the configuration version read within one of this transaction's statements; the
    /// first observation counts (later ones may only be newer, and the transaction's copies
    /// are at least as new as the first). When the version was assumed, this is the check of
    /// the assumption: a newer version aborts the transaction, to be run again (retryable).
    pub(crate) fn observe_config_version(&mut self, version: i64) -> Result<()> {
        if !self.config_assumed {
            self.config_version.get_or_insert(version);
            return Ok(());
        }
        self.config_assumed = false;
        if Some(version) != self.config_version {
            // Copies used so far may predate a change: run again, at the version now known.
            self.config.saw(version);
            self.config_version = Some(version);
            return Err(StoreError::Retryable(sqlx::Error::Protocol(
                "the configuration changed while the transaction used copies of it".into(),
            )));
        }
        Ok(())
    }

    /// Uses the newest configuration version this server has seen instead of reading it, to
    /// save the read for a transaction whose first write observes the version anyway (a
    /// cart's creation: `carts::insert_with_lines`). Copies are then used as of that version,
    /// and the observation must confirm it before commit: a newer version aborts the
    /// transaction as retryable, and nothing stale is written. [`Tx::commit`] reads the version
    /// itself if no statement confirmed it. Does nothing once a version is known.
    pub fn assume_config_version(&mut self) {
        if self.config_version.is_some() {
            return;
        }
        if let Some(v) = self.config.version() {
            self.config_version = Some(v);
            self.config_assumed = true;
        }
    }

    /// The configuration version this transaction observed, reading it now if it has not.
    pub(crate) async fn config_version(&mut self) -> Result<i64> {
        if let Some(v) = self.config_version {
            return Ok(v);
        }
        let v: i64 =
            sql::query_scalar("SELECT version FROM config_version WHERE id = 1").fetch_one(self.conn()).await?;
        self.config_version = Some(v);
        Ok(v)
    }

    /// Rolls back now. Dropping a `Tx` also rolls back, but only when its connection is next
    /// used; until then the transaction's row locks stay held.
    pub async fn rollback(mut self) -> Result<()> {
        let inner = self.inner.take().expect("rolled back once");
        sql::count_rollback();
        inner.rollback().await?;
        Ok(())
    }
}

impl Drop for Tx {
    /// Counts the `ROLLBACK` sqlx sends for a transaction dropped unfinished.
    fn drop(&mut self) {
        if self.inner.is_some() {
            sql::count_rollback();
        }
    }
}

/// `FOR UPDATE SKIP LOCKED` for job queues on PostgreSQL; nothing on SQLite (one writer).
pub fn skip_locked(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    }
}

/// Unix seconds.
pub type Timestamp = i64;

/// Tasks in [`Store::begin`] now, waiting for a writer connection (see there).
static WAITING_TO_BEGIN: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// How many tasks of this process wait to begin a write transaction now.
pub fn waiting_to_begin() -> i64 {
    WAITING_TO_BEGIN.load(std::sync::atomic::Ordering::Relaxed)
}

/// Counts a task in [`WAITING_TO_BEGIN`] until dropped (also when its future is dropped).
struct WaitingToBegin {
    started: std::time::Instant,
}

impl WaitingToBegin {
    fn enter() -> WaitingToBegin {
        WAITING_TO_BEGIN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        WaitingToBegin { started: std::time::Instant::now() }
    }
}

impl Drop for WaitingToBegin {
    fn drop(&mut self) {
        WAITING_TO_BEGIN.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}
