use std::borrow::Cow;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique or check constraint refused the write; the caller decides what it means.
    #[error("constraint `{constraint}` refused the write")]
    Constraint { constraint: Cow<'static, str> },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is malformed: {0}")]
    Corrupt(String),
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
        StoreError::Database(e)
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

    pub fn is_constraint(&self) -> bool {
        matches!(self, StoreError::Constraint { .. })
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}
