//! The one doorway from Kassa to SQL: builds statements and counts them.
//!
//! Counting is how the benchmark reports statements and transactions per checkout, so every
//! statement of the store goes through [`query`] / [`query_as`] / [`query_scalar`].

use sqlx::any::{Any, AnyArguments, AnyRow};
use sqlx::query::{Query, QueryAs, QueryScalar};
use std::sync::atomic::{AtomicU64, Ordering};

// Process-wide on purpose: every statement of every pool passes here, and the bench and the
// statement-count test read the totals of the process (no per-server state reaches this far).
static STATEMENTS: AtomicU64 = AtomicU64::new(0);
static TRANSACTIONS: AtomicU64 = AtomicU64::new(0);
static COMMITS: AtomicU64 = AtomicU64::new(0);
static ROLLBACKS: AtomicU64 = AtomicU64::new(0);
static PINGS: AtomicU64 = AtomicU64::new(0);

/// Statements and transactions this process has sent since it started.
pub fn counters() -> (u64, u64) {
    (STATEMENTS.load(Ordering::Relaxed), TRANSACTIONS.load(Ordering::Relaxed))
}

/// Every exchange with the database this process started, by kind: what a database on
/// another host (or a CPU-bound one on this host) costs per request is mostly their number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoundTrips {
    pub statements: u64,
    /// `BEGIN` of write transactions.
    pub begins: u64,
    pub commits: u64,
    /// Explicit ones and those of a transaction dropped unfinished.
    pub rollbacks: u64,
    /// The pool's liveness checks of idle connections before handing them out.
    pub pings: u64,
}

impl RoundTrips {
    pub fn total(&self) -> u64 {
        self.statements + self.begins + self.commits + self.rollbacks + self.pings
    }

    /// `(kind, count)` pairs, for `/metrics`.
    pub fn by_kind(&self) -> [(&'static str, u64); 5] {
        [
            ("statement", self.statements),
            ("begin", self.begins),
            ("commit", self.commits),
            ("rollback", self.rollbacks),
            ("ping", self.pings),
        ]
    }
}

pub fn round_trips() -> RoundTrips {
    RoundTrips {
        statements: STATEMENTS.load(Ordering::Relaxed),
        begins: TRANSACTIONS.load(Ordering::Relaxed),
        commits: COMMITS.load(Ordering::Relaxed),
        rollbacks: ROLLBACKS.load(Ordering::Relaxed),
        pings: PINGS.load(Ordering::Relaxed),
    }
}

pub(crate) fn count_transaction() {
    TRANSACTIONS.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn count_commit() {
    COMMITS.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn count_rollback() {
    ROLLBACKS.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn count_ping() {
    PINGS.fetch_add(1, Ordering::Relaxed);
}

pub fn query(sql: &str) -> Query<'_, Any, AnyArguments<'_>> {
    STATEMENTS.fetch_add(1, Ordering::Relaxed);
    sqlx::query(sql)
}

pub fn query_as<'q, T>(sql: &'q str) -> QueryAs<'q, Any, T, AnyArguments<'q>>
where
    T: for<'r> sqlx::FromRow<'r, AnyRow>,
{
    STATEMENTS.fetch_add(1, Ordering::Relaxed);
    sqlx::query_as(sql)
}

pub fn query_scalar<'q, T>(sql: &'q str) -> QueryScalar<'q, Any, T, AnyArguments<'q>>
where
    (T,): for<'r> sqlx::FromRow<'r, AnyRow>,
{
    STATEMENTS.fetch_add(1, Ordering::Relaxed);
    sqlx::query_scalar(sql)
}

/// JSON text column → value.
pub fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> crate::Result<T> {
    Ok(serde_json::from_str(text)?)
}

/// Value → JSON text column.
pub fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("in-memory values serialize")
}

/// A page request of a cursor-paginated list (Stripe's `limit`, `starting_after`,
/// `ending_before`). Lists run newest first, by id, which sorts by creation time.
#[derive(Clone, Debug, Default)]
pub struct Page {
    pub limit: i64,
    pub starting_after: Option<String>,
    pub ending_before: Option<String>,
}

/// One page of a list and whether more follow in the direction of travel.
#[derive(Clone, Debug)]
pub struct Listed<T> {
    pub data: Vec<T>,
    pub has_more: bool,
}

impl<T> Listed<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Listed<U> {
        Listed { data: self.data.into_iter().map(f).collect(), has_more: self.has_more }
    }
}

/// Runs `select` (a `SELECT … FROM table` without WHERE) with equality `filters` and the page.
/// Filter columns are trusted identifiers from this crate; values are bound.
pub async fn list_page<'e, T, E>(db: E, select: &str, filters: &[(&str, &str)], page: &Page) -> crate::Result<Listed<T>>
where
    T: for<'r> sqlx::FromRow<'r, AnyRow> + Send + Unpin,
    E: sqlx::Executor<'e, Database = Any>,
{
    let mut sql = String::from(select);
    let mut binds: Vec<&str> = Vec::new();
    let clause = |cond: String, sql: &mut String| {
        sql.push_str(if sql.contains(" WHERE ") { " AND " } else { " WHERE " });
        sql.push_str(&cond);
    };
    for (col, value) in filters {
        binds.push(value);
        clause(format!("{col} = ${}", binds.len()), &mut sql);
    }
    let backwards = page.starting_after.is_none() && page.ending_before.is_some();
    if let Some(after) = &page.starting_after {
        binds.push(after);
        clause(format!("id < ${}", binds.len()), &mut sql);
    } else if let Some(before) = &page.ending_before {
        binds.push(before);
        clause(format!("id > ${}", binds.len()), &mut sql);
    }
    sql.push_str(if backwards { " ORDER BY id ASC" } else { " ORDER BY id DESC" });
    sql.push_str(&format!(" LIMIT {}", page.limit + 1));
    let mut q = query_as::<T>(&sql);
    for b in binds {
        q = q.bind(b);
    }
    let mut data = q.fetch_all(db).await?;
    let has_more = data.len() as i64 > page.limit;
    data.truncate(page.limit as usize);
    if backwards {
        data.reverse();
    }
    Ok(Listed { data, has_more })
}

/// A column list (`"a, b"`) qualified by a table alias (`"t.a, t.b"`), for joins.
pub fn qualified(alias: &str, columns: &str) -> String {
    columns.split(',').map(|c| format!("{alias}.{}", c.trim())).collect::<Vec<_>>().join(", ")
}

/// `$first, $first+1, …` for an `IN (…)` list of `n` values.
pub fn placeholders(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// `statement` with every placeholder `$n` renumbered `$(n + by)`, to run it as a part (a
/// CTE) of a statement whose earlier parts bind `by` values.
pub(crate) fn shift_placeholders(statement: &str, by: usize) -> String {
    let mut out = String::with_capacity(statement.len() + 16);
    let mut chars = statement.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        out.push(c);
        if c != '$' {
            continue;
        }
        let start = i + 1;
        let mut end = start;
        while let Some(&(j, d)) = chars.peek() {
            if !d.is_ascii_digit() {
                break;
            }
            end = j + 1;
            chars.next();
        }
        if end > start {
            let n: usize = statement[start..end].parse().expect("digits");
            out.push_str(&(n + by).to_string());
        }
    }
    out
}

/// A boolean column. SQLite has no boolean type (Kassa's SQLite schema stores 0/1 in
/// INTEGER columns, which is all sqlx's Any driver can read from SQLite) while PostgreSQL
/// has BOOLEAN; this decodes either. Row structs read it with `#[sqlx(try_from = "DbBool")]`.
pub struct DbBool(pub bool);

impl From<DbBool> for bool {
    fn from(b: DbBool) -> bool {
        b.0
    }
}

impl sqlx::Type<Any> for DbBool {
    fn type_info() -> sqlx::any::AnyTypeInfo {
        <bool as sqlx::Type<Any>>::type_info()
    }
    fn compatible(ty: &sqlx::any::AnyTypeInfo) -> bool {
        use sqlx::any::AnyTypeInfoKind as K;
        matches!(ty.kind(), K::Bool | K::SmallInt | K::Integer | K::BigInt)
    }
}

impl<'r> sqlx::Decode<'r, Any> for DbBool {
    fn decode(value: sqlx::any::AnyValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        use sqlx::ValueRef;
        if value.type_info().kind() == sqlx::any::AnyTypeInfoKind::Bool {
            Ok(DbBool(<bool as sqlx::Decode<Any>>::decode(value)?))
        } else {
            Ok(DbBool(<i64 as sqlx::Decode<Any>>::decode(value)? != 0))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_shift() {
        assert_eq!(super::shift_placeholders("a = $1, b = $12 WHERE id = $2", 20), "a = $21, b = $32 WHERE id = $22");
    }
}
