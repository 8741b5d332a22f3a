//! The sandbox's migrations beside the store's in one `_sqlx_migrations` table: a fresh database
//! gets every table, a database migrated before the sandbox had its own migrator (one history
//! holding version 3) migrates on without a complaint, and migrating twice changes nothing.
//! A temp SQLite file, or a fresh PostgreSQL schema with `KASSA_TEST_DATABASE_URL=postgres://…`.

use kassa_store::db::ConnectOptions;
use kassa_store::{Backend, Store};
use sqlx::migrate::Migrator;
use std::time::Duration;

async fn connect(url: &str) -> Store {
    Store::connect(&ConnectOptions {
        url: url.into(),
        max_connections: 2,
        acquire_timeout: Duration::from_secs(10),
        sqlite_full_sync: false,
    })
    .await
    .unwrap()
}

/// A fresh database, and on PostgreSQL the admin store and schema to drop at the end.
async fn fresh(dir: &tempfile::TempDir) -> (Store, Option<(Store, String)>) {
    match std::env::var("KASSA_TEST_DATABASE_URL") {
        Ok(admin) if admin.starts_with("postgres") => {
            let schema = format!("tpm_{}", kassa_domain::ids::new_id("m").to_ascii_lowercase().replace('_', ""));
            let admin_store = connect(&admin).await;
            kassa_store::sql::query(&format!("CREATE SCHEMA {schema}")).execute(admin_store.writer()).await.unwrap();
            let sep = if admin.contains('?') { '&' } else { '?' };
            (connect(&format!("{admin}{sep}options[search_path]={schema}")).await, Some((admin_store, schema)))
        }
        _ => (connect(&format!("sqlite://{}", dir.path().join("kassa.db").display())).await, None),
    }
}

async fn cleanup(store: Store, admin: Option<(Store, String)>) {
    store.close().await;
    if let Some((admin, schema)) = admin {
        kassa_store::sql::query(&format!("DROP SCHEMA {schema} CASCADE")).execute(admin.writer()).await.unwrap();
    }
}

/// The history as Kassa applied it before the sandbox migrated its own tables: one migrator
/// with the store's files and the sandbox's version 3 among them (same files, same checksums).
fn history_before_the_split(backend: Backend) -> Migrator {
    let store = kassa_store::db::migrator(backend);
    let sandbox = kassa_sandbox::migrations::migrator(backend);
    let mut all: Vec<_> = store.iter().chain(sandbox.iter().filter(|m| m.version == 3)).cloned().collect();
    all.sort_by_key(|m| m.version);
    Migrator { migrations: all.into(), ignore_missing: false, locking: false, no_tx: false }
}

async fn versions(store: &Store) -> Vec<(i64, Vec<u8>)> {
    kassa_store::sql::query_as::<(i64, Vec<u8>)>("SELECT version, checksum FROM _sqlx_migrations ORDER BY version")
        .fetch_all(store.reader())
        .await
        .unwrap()
}

async fn count_tp_objects(store: &Store) -> i64 {
    kassa_store::sql::query_scalar::<i64>("SELECT COUNT(*) FROM tp_objects").fetch_one(store.reader()).await.unwrap()
}

#[tokio::test]
async fn a_fresh_database_gets_the_sandbox_tables_and_the_stores() {
    let dir = tempfile::tempdir().unwrap();
    let (store, admin) = fresh(&dir).await;
    kassa_sandbox::migrations::migrate_all(&store).await.unwrap();
    assert_eq!(count_tp_objects(&store).await, 0);
    let applied: Vec<i64> = versions(&store).await.into_iter().map(|(v, _)| v).collect();
    assert!(applied.contains(&3), "the sandbox's version 3 is applied: {applied:?}");
    assert!(applied.contains(&7), "the store's versions are applied: {applied:?}");
    // Again: nothing left to do, nothing refused.
    let before = versions(&store).await;
    kassa_sandbox::migrations::migrate_all(&store).await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(versions(&store).await, before);
    cleanup(store, admin).await;
}

#[tokio::test]
async fn a_database_migrated_before_the_split_migrates_on() {
    let dir = tempfile::tempdir().unwrap();
    let (store, admin) = fresh(&dir).await;
    history_before_the_split(store.backend()).run(store.writer()).await.unwrap();
    kassa_store::sql::query(
        "INSERT INTO tp_objects (id, kind, data, created, updated) VALUES ('cus_old', 'customer', '{}', 1, 1)",
    )
    .execute(store.writer())
    .await
    .unwrap();
    let before = versions(&store).await;

    kassa_sandbox::migrations::migrate_all(&store).await.unwrap();

    // Every version applied before keeps its checksum; the old processor objects are still there.
    let after = versions(&store).await;
    for applied in &before {
        assert!(after.contains(applied), "version {} changed or vanished", applied.0);
    }
    assert_eq!(count_tp_objects(&store).await, 1);
    cleanup(store, admin).await;
}
