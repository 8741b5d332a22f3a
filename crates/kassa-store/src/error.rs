use std::borrow::Cow;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique or check constraint refused the write; the caller decides what it means.
    #[error("constraint `{constraint}` refused the write")]
    Constraint { constraint: Cow<'static, str> },
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// The database aborted the transaction to resolve a conflict with another one
    /// (PostgreSQL `40001` serialization failure or `40P01` deadlock; SQLite `SQLITE_BUSY`).
    /// Nothing of it was written: running the whole transaction again is safe.
    #[error("transaction aborted by a concurrent one, retry it: {0}")]
    Retryable(sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is malformed: {0}")]
    Corrupt(String),
}

/// SQLSTATEs and SQLite result codes that mean "run the transaction again": PostgreSQL's
/// serialization failure and deadlock, SQLite's `SQLITE_BUSY` (5) and `SQLITE_BUSY_SNAPSHOT`
/// (517).
const RETRYABLE_CODES: [&str; 4] = ["40001", "40P01", "5", "517"];

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e
            && db.code().is_some_and(|c| RETRYABLE_CODES.contains(&c.as_ref()))
        {
            return StoreError::Retryable(e);
        }
        StoreError::Database(e)
    }
}

impl StoreError {
    /// Maps constraint violations to [`StoreError::Constraint`], everything else unchanged.
    pub fn from_sqlx(e: sqlx::Error) -> StoreError {
        if let sqlx::Error::Database(db) = &e {
            use sqlx::error::ErrorKind::*;
            if matches!(db.kind(), UniqueViolation | CheckViolation | ForeignKeyViolation | NotNullViolation) {
                let constraint = db
                    .constraint()
                    .map(|c| Cow::Owned(c.to_string()))
                    .unwrap_or_else(|| Cow::Owned(db.message().to_string()));
                return StoreError::Constraint { constraint };
            }
        }
        StoreError::from(e)
    }

    /// Why opening the database failed, in an operator's words: the cause without sqlx's
    /// wrapper (`Connection refused (os error 111)`, `invalid port number`, `password
    /// authentication failed …`) and what to check.
    pub fn connection_problem(&self) -> String {
        match self {
            StoreError::Database(sqlx::Error::Io(io)) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                format!("connection refused ({io}): is the database running, and are its host and port right?")
            }
            StoreError::Database(sqlx::Error::Io(io)) => io.to_string(),
            StoreError::Database(sqlx::Error::PoolTimedOut) => {
                "no answer within database.acquire_timeout_secs: is the host reachable?".to_string()
            }
            StoreError::Database(sqlx::Error::Configuration(c)) => format!("the URL is malformed: {c}"),
            StoreError::Database(sqlx::Error::Database(db)) => db.message().to_string(),
            other => other.to_string(),
        }
    }

    /// Whether the transaction lost a race the database resolved by aborting it (see
    /// [`StoreError::Retryable`]).
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Retryable(_))
    }

    pub fn is_constraint(&self) -> bool {
        matches!(self, StoreError::Constraint { .. })
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}
