//! The sandbox's own tables (`tp_*`), migrated by its own migrator.
//!
//! Design: the sandbox's migrations live in `crates/kassa-sandbox/migrations/{sqlite,postgres}`
//! and share sqlx's `_sqlx_migrations` table with the store's, in version ranges that never
//! meet: the store numbers from 1, the sandbox owns 3 (its tables, created before it was a crate
//! of its own; the file moved here byte for byte, so databases that applied it keep a matching
//! checksum) and numbers every later one from 1001. Each migrator ignores the other's versions
//! (`set_ignore_missing`).
//!
//! Order: the sandbox's migrations run before the store's. The store's 0007, history that can no
//! longer change, adds an index to `tp_objects`, so on a fresh database the table must exist by
//! then. [`migrate`] in this crate and `kassa_server::startup::migrate` keep that order.

use kassa_store::{Backend, Store, StoreError};
use sqlx::migrate::Migrator;
use std::time::Duration;

/// This backend's sandbox migrations, ignoring the store's versions.
pub fn migrator(backend: Backend) -> Migrator {
    let mut migrator = match backend {
        Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
        Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
    };
    migrator.set_ignore_missing(true);
    // No advisory lock, as with the store's (PostgreSQL-compatible distributed databases lack it).
    migrator.set_locking(false);
    migrator
}

/// Applies the sandbox's migrations that have not run yet (retrying, as the store does, when
/// another server migrates at the same moment).
pub async fn migrate(store: &Store) -> Result<(), StoreError> {
    let migrator = migrator(store.backend());
    let mut attempt = 0;
    loop {
        match migrator.run(store.writer()).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt < 3 => {
                attempt += 1;
                tracing::warn!(error = %e, attempt, "sandbox migration failed, retrying");
                tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The sandbox's tables, then the store's: every table a server with the `test` processor uses.
pub async fn migrate_all(store: &Store) -> Result<(), StoreError> {
    migrate(store).await?;
    store.migrate().await
}
