//! The two dialects' migrations must build the same database: the same tables with the same
//! columns, of comparable types. Compared two ways:
//! - SQLite as migrated against the PostgreSQL migrations as written (parsed here): always;
//! - SQLite as migrated against PostgreSQL as migrated (its catalog): with
//!   `KASSA_TEST_DATABASE_URL`, shown as ignored without it.
//!
//! Also the data a migration rewrites: 0011 (pricing models' id prefix), on each database.
//!
//! A `harness = false` test binary (libtest-mimic), so that a check needing PostgreSQL is
//! reported as ignored, not as passed, when no PostgreSQL is configured.

use libtest_mimic::{Arguments, Failed, Trial};
use sqlx::migrate::Migrator;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, Executor, Row};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// table → column → type family.
type Schema = BTreeMap<String, BTreeMap<String, Family>>;

/// What a column's values are, as far as both dialects can agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Text,
    Integer,
    /// PostgreSQL's `BOOLEAN`; SQLite stores it as an integer (see [`comparable`]).
    Boolean,
    Real,
    Bytes,
    Other,
}

fn family(declared: &str) -> Family {
    let t = declared.trim().to_ascii_lowercase();
    match t.split('(').next().unwrap_or_default().trim() {
        "text" | "varchar" | "character varying" | "char" | "character" => Family::Text,
        "integer" | "int" | "bigint" | "smallint" | "int2" | "int4" | "int8" => Family::Integer,
        "boolean" | "bool" => Family::Boolean,
        "real" | "double precision" | "float4" | "float8" | "double" => Family::Real,
        "blob" | "bytea" => Family::Bytes,
        _ => Family::Other,
    }
}

/// Whether a SQLite column holds what the PostgreSQL column holds, the way the store reads
/// it: booleans are integers on SQLite (`DbBool`).
fn comparable(sqlite: Family, postgres: Family) -> bool {
    sqlite != Family::Other && (sqlite == postgres || (sqlite == Family::Integer && postgres == Family::Boolean))
}

fn migrations(dialect: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(dialect)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime")
}

fn fail(e: impl std::fmt::Display) -> Failed {
    Failed::from(e.to_string())
}

async fn migrator(dir: &Path) -> Result<Migrator, Failed> {
    let mut migrator = Migrator::new(dir.to_path_buf()).await.map_err(fail)?;
    migrator.set_locking(false);
    Ok(migrator)
}

// ---------------------------------------------------------------- SQLite

async fn migrate_sqlite(dir: &Path) -> Result<SqliteConnection, Failed> {
    let opts = SqliteConnectOptions::from_str("sqlite::memory:").map_err(fail)?.foreign_keys(true);
    let mut conn = SqliteConnection::connect_with(&opts).await.map_err(fail)?;
    migrator(dir).await?.run(&mut conn).await.map_err(fail)?;
    Ok(conn)
}

async fn sqlite_schema(conn: &mut SqliteConnection) -> Result<Schema, Failed> {
    let rows = sqlx::query(
        "SELECT m.name, p.name, p.type FROM sqlite_master AS m JOIN pragma_table_info(m.name) AS p \
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND m.name <> '_sqlx_migrations'",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(fail)?;
    let mut schema = Schema::new();
    for r in rows {
        let (table, column, ty): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        schema.entry(table).or_default().insert(column, family(&ty));
    }
    Ok(schema)
}

// ---------------------------------------------------------------- PostgreSQL

fn postgres_url() -> Option<String> {
    std::env::var("KASSA_TEST_DATABASE_URL").ok().filter(|u| u.starts_with("postgres"))
}

/// Runs `check` on a connection whose `search_path` is a new, empty schema, dropped after, so
/// the check neither sees nor touches other tests' tables.
async fn in_fresh_schema<F>(check: F) -> Result<(), Failed>
where
    F: AsyncFnOnce(&mut PgConnection, &str) -> Result<(), Failed>,
{
    let url = postgres_url().ok_or_else(|| fail("KASSA_TEST_DATABASE_URL is not set"))?;
    let mut conn = PgConnection::connect(&url).await.map_err(fail)?;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let schema = format!("migrations_{}_{nanos}", std::process::id());
    conn.execute(format!("CREATE SCHEMA {schema}; SET search_path TO {schema}").as_str()).await.map_err(fail)?;
    let result = check(&mut conn, &schema).await;
    conn.execute(format!("DROP SCHEMA {schema} CASCADE").as_str()).await.map_err(fail)?;
    result
}

async fn postgres_schema(conn: &mut PgConnection, schema: &str) -> Result<Schema, Failed> {
    let rows = sqlx::query(
        "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_schema = $1 AND table_name <> '_sqlx_migrations'",
    )
    .bind(schema)
    .fetch_all(&mut *conn)
    .await
    .map_err(fail)?;
    let mut out = Schema::new();
    for r in rows {
        let (table, column, ty): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        out.entry(table).or_default().insert(column, family(&ty));
    }
    Ok(out)
}

// ---------------------------------------------------------------- the PostgreSQL files, parsed

/// The tables and columns the PostgreSQL migrations create, read from their text: `CREATE
/// TABLE`, `ALTER TABLE … ADD / DROP / RENAME COLUMN`, `… RENAME TO`, `DROP TABLE`. Another
/// `ALTER TABLE` that is not about constraints fails the test, so the parser grows with the
/// migrations instead of silently missing a change.
fn parse_postgres(dir: &Path) -> Result<Schema, Failed> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(fail)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    let mut schema = Schema::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(fail)?;
        let text: Vec<&str> = text.lines().map(|l| l.split("--").next().unwrap_or_default()).collect();
        for statement in text.join("\n").split(';') {
            parse_statement(&mut schema, statement)
                .map_err(|e| fail(format!("{}: {e}: {}", file.display(), statement.trim())))?;
        }
    }
    Ok(schema)
}

fn parse_statement(schema: &mut Schema, statement: &str) -> Result<(), String> {
    let words: Vec<&str> = statement.split_whitespace().collect();
    let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
    let upper: Vec<&str> = upper.iter().map(String::as_str).collect();
    let word = |i: usize| words.get(i).map(|w| w.trim_matches('"').to_string()).ok_or("statement ends early");
    // `IF [NOT] EXISTS` moves the name along.
    let skip_if = |at: usize| match upper.get(at..at + 2) {
        Some(["IF", "EXISTS"]) => at + 2,
        Some(["IF", "NOT"]) => at + 3,
        _ => at,
    };
    match upper.as_slice() {
        ["CREATE", "TABLE", ..] => {
            let name = word(skip_if(2))?.split('(').next().unwrap_or_default().to_string();
            let (open, close) = (statement.find('(').ok_or("no (")?, statement.rfind(')').ok_or("no )")?);
            let columns = schema.entry(name).or_default();
            for part in split_top_level(&statement[open + 1..close]) {
                let mut w = part.split_whitespace();
                let (Some(column), Some(ty)) = (w.next(), w.next()) else { continue };
                let keyword = column.to_ascii_uppercase();
                if ["PRIMARY", "UNIQUE", "CHECK", "FOREIGN", "CONSTRAINT", "EXCLUDE"].contains(&keyword.as_str()) {
                    continue;
                }
                let ty = if ty.eq_ignore_ascii_case("double") { "double precision" } else { ty };
                columns.insert(column.trim_matches('"').to_string(), family(ty));
            }
        }
        ["ALTER", "TABLE", ..] => {
            let at = skip_if(2);
            let table = word(at)?;
            let op = &upper[at + 1..];
            match op {
                ["ADD", "COLUMN", ..] => {
                    let c = skip_if(at + 3);
                    schema.entry(table).or_default().insert(word(c)?, family(&word(c + 1)?));
                }
                ["DROP", "COLUMN", ..] => {
                    schema.entry(table).or_default().remove(&word(skip_if(at + 3))?);
                }
                ["RENAME", "COLUMN", _, "TO", _] => {
                    let columns = schema.entry(table).or_default();
                    let ty = columns.remove(&word(at + 3)?).ok_or("no such column")?;
                    columns.insert(word(at + 5)?, ty);
                }
                ["RENAME", "TO", _] => {
                    let columns = schema.remove(&table).unwrap_or_default();
                    schema.insert(word(at + 3)?, columns);
                }
                ["ADD", "CONSTRAINT", ..] | ["DROP", "CONSTRAINT", ..] => {}
                _ => return Err("this test's parser does not know the statement".into()),
            }
        }
        ["DROP", "TABLE", ..] => {
            schema.remove(&word(skip_if(2))?);
        }
        _ => {}
    }
    Ok(())
}

/// `a TEXT, b NUMERIC(10, 2), CHECK (x IN (1, 2))` → its parts at parenthesis depth 0.
fn split_top_level(s: &str) -> Vec<String> {
    let (mut parts, mut cur, mut depth) = (Vec::new(), String::new(), 0);
    for ch in s.chars() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    parts.push(cur);
    parts.into_iter().map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect()
}

// ---------------------------------------------------------------- comparing

fn compare(sqlite: &Schema, postgres: &Schema, postgres_name: &str) -> Result<(), Failed> {
    if sqlite.len() < 10 || postgres.len() < 10 {
        return Err(fail(format!("too few tables found: {} and {}", sqlite.len(), postgres.len())));
    }
    let mut problems = Vec::new();
    for table in sqlite.keys().chain(postgres.keys()).collect::<BTreeSet<_>>() {
        let (s, p) = (sqlite.get(table), postgres.get(table));
        let (Some(s), Some(p)) = (s, p) else {
            let only = if s.is_some() { "SQLite" } else { postgres_name };
            problems.push(format!("table {table}: only on {only}"));
            continue;
        };
        for column in s.keys().chain(p.keys()).collect::<BTreeSet<_>>() {
            match (s.get(column), p.get(column)) {
                (Some(_), None) => problems.push(format!("{table}.{column}: only on SQLite")),
                (None, Some(_)) => problems.push(format!("{table}.{column}: only on {postgres_name}")),
                (Some(a), Some(b)) if !comparable(*a, *b) => {
                    problems.push(format!("{table}.{column}: {a:?} on SQLite, {b:?} on {postgres_name}"))
                }
                _ => {}
            }
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(fail(problems.join("\n"))) }
}

fn sqlite_matches_postgres_as_written() -> Result<(), Failed> {
    runtime().block_on(async {
        let sqlite = sqlite_schema(&mut migrate_sqlite(&migrations("sqlite")).await?).await?;
        compare(&sqlite, &parse_postgres(&migrations("postgres"))?, "PostgreSQL (as written)")
    })
}

fn sqlite_matches_postgres_as_migrated() -> Result<(), Failed> {
    runtime().block_on(async {
        let sqlite = sqlite_schema(&mut migrate_sqlite(&migrations("sqlite")).await?).await?;
        in_fresh_schema(async |pg: &mut PgConnection, schema: &str| {
            migrator(&migrations("postgres")).await?.run(&mut *pg).await.map_err(fail)?;
            compare(&sqlite, &postgres_schema(pg, schema).await?, "PostgreSQL")
        })
        .await
    })
}

// ---------------------------------------------------------------- 0011: pricing models' prefix

/// A folder with the migrations of `dialect` numbered below `version`, to stop a database there.
fn migrations_before(dialect: &str, version: u32) -> Result<tempfile::TempDir, Failed> {
    let dir = tempfile::tempdir().map_err(fail)?;
    for entry in std::fs::read_dir(migrations(dialect)).map_err(fail)? {
        let path = entry.map_err(fail)?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        if name.split('_').next().and_then(|n| n.parse::<u32>().ok()).is_some_and(|n| n < version) {
            std::fs::copy(&path, dir.path().join(&name)).map_err(fail)?;
        }
    }
    Ok(dir)
}

/// Rows as 0010 left them, with the old prefix (statements valid on both databases). The
/// `card` in the event is a payment method (Stripe's `pm_`), which must stay as it is.
const BEFORE: &[&str] = &[
    "INSERT INTO pricing_models (id, name, is_default, default_price, created, updated) \
     VALUES ('pm_01jdmodel00000000000000000', 'Default', TRUE, NULL, 1, 1), \
            ('pm_01jdother00000000000000000', 'Other', FALSE, NULL, 1, 1)",
    "INSERT INTO products (id, name, active, track_inventory, created, updated) \
     VALUES ('prod_1', 'Thing', TRUE, FALSE, 1, 1)",
    "INSERT INTO prices (id, product, pricing_model, currency, unit_amount, type, active, created) \
     VALUES ('price_1', 'prod_1', 'pm_01jdother00000000000000000', 'usd', 100, 'one_time', TRUE, 1)",
    "INSERT INTO customers (id, guest, email_verified, pricing_model, metadata, created, updated) \
     VALUES ('cus_1', FALSE, FALSE, 'pm_01jdmodel00000000000000000', '{}', 1, 1)",
    r#"INSERT INTO events (id, type, object_id, data, created) VALUES
       ('evt_1', 'pricing_model.created', 'pm_01jdmodel00000000000000000', '{"id":"pm_01jdmodel00000000000000000"}', 1),
       ('evt_2', 'customer.created', 'cus_1', '{"id":"cus_1","pricing_model":"pm_01jdmodel00000000000000000","other":"pm_01jdother00000000000000000","card":"pm_01jdcard000000000000000000"}', 1)"#,
    r#"INSERT INTO idempotency_keys (scope, key, fingerprint, response_status, response_body, created)
       VALUES ('admin', 'k1', 'f', 200, '{"pricing_model":"pm_01jdother00000000000000000"}', 1)"#,
];

/// What the rows read after 0011, identical on both databases.
const AFTER: &[(&str, &str)] = &[
    ("SELECT id FROM pricing_models WHERE is_default", "pmod_01jdmodel00000000000000000"),
    ("SELECT id FROM pricing_models WHERE NOT is_default", "pmod_01jdother00000000000000000"),
    ("SELECT pricing_model FROM prices WHERE id = 'price_1'", "pmod_01jdother00000000000000000"),
    ("SELECT pricing_model FROM customers WHERE id = 'cus_1'", "pmod_01jdmodel00000000000000000"),
    ("SELECT object_id FROM events WHERE id = 'evt_1'", "pmod_01jdmodel00000000000000000"),
    ("SELECT data FROM events WHERE id = 'evt_1'", r#"{"id":"pmod_01jdmodel00000000000000000"}"#),
    (
        "SELECT data FROM events WHERE id = 'evt_2'",
        r#"{"id":"cus_1","pricing_model":"pmod_01jdmodel00000000000000000","other":"pmod_01jdother00000000000000000","card":"pm_01jdcard000000000000000000"}"#,
    ),
    (
        "SELECT response_body FROM idempotency_keys WHERE key = 'k1'",
        r#"{"pricing_model":"pmod_01jdother00000000000000000"}"#,
    ),
];

/// A price naming an old id, refused when the foreign key is in place.
const DANGLING: &str = "INSERT INTO prices (id, product, pricing_model, currency, unit_amount, type, active, created) \
     VALUES ('price_2', 'prod_1', 'pm_01jdother00000000000000000', 'usd', 1, 'one_time', TRUE, 1)";

/// Runs 0001–0010 on `$conn`, inserts [`BEFORE`], runs the rest, checks [`AFTER`] and that
/// the foreign keys hold. (A macro: the same steps on two connection types.)
macro_rules! rewrites_old_ids {
    ($conn:expr, $dialect:expr) => {{
        let conn = $conn;
        let before = migrations_before($dialect, 11)?;
        migrator(before.path()).await?.run(&mut *conn).await.map_err(fail)?;
        for s in BEFORE {
            conn.execute(*s).await.map_err(|e| fail(format!("{s}: {e}")))?;
        }
        migrator(&migrations($dialect)).await?.run(&mut *conn).await.map_err(fail)?;
        for (q, want) in AFTER {
            let row = sqlx::query(q).fetch_one(&mut *conn).await.map_err(|e| fail(format!("{q}: {e}")))?;
            let got: String = row.try_get(0).map_err(fail)?;
            if got != *want {
                return Err(fail(format!("{q}\n  got  {got}\n  want {want}")));
            }
        }
        if conn.execute(DANGLING).await.is_ok() {
            return Err(fail("prices.pricing_model lost its foreign key"));
        }
        Ok(())
    }};
}

fn pricing_model_ids_get_their_own_prefix_on_sqlite() -> Result<(), Failed> {
    runtime().block_on(async {
        let opts = SqliteConnectOptions::from_str("sqlite::memory:").map_err(fail)?.foreign_keys(true);
        let mut conn = SqliteConnection::connect_with(&opts).await.map_err(fail)?;
        rewrites_old_ids!(&mut conn, "sqlite")
    })
}

fn pricing_model_ids_get_their_own_prefix_on_postgres() -> Result<(), Failed> {
    runtime().block_on(in_fresh_schema(async |pg: &mut PgConnection, _schema: &str| rewrites_old_ids!(pg, "postgres")))
}

fn main() {
    let args = Arguments::from_args();
    let no_postgres = postgres_url().is_none();
    let trials = vec![
        Trial::test("sqlite_matches_postgres_as_written", sqlite_matches_postgres_as_written),
        Trial::test("sqlite_matches_postgres_as_migrated", sqlite_matches_postgres_as_migrated)
            .with_ignored_flag(no_postgres),
        Trial::test(
            "pricing_model_ids_get_their_own_prefix_on_sqlite",
            pricing_model_ids_get_their_own_prefix_on_sqlite,
        ),
        Trial::test(
            "pricing_model_ids_get_their_own_prefix_on_postgres",
            pricing_model_ids_get_their_own_prefix_on_postgres,
        )
        .with_ignored_flag(no_postgres),
    ];
    libtest_mimic::run(&args, trials).exit();
}
