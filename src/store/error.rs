use crate::domain::DomainError;

/// What can go wrong in the clinic store. Constraint violations are told apart by the database's
/// error kind, not by matching message text; messages carry table names and ids, never row values.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "unsupported database URL `{0}`: use sqlite://FILE (or sqlite::memory:) or postgres://USER@HOST:PORT/DB"
    )]
    UnsupportedUrl(String),
    #[error("cannot open the clinic database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("cannot bring the clinic database schema up to date: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{table} {id} does not exist")]
    NotFound { table: &'static str, id: String },
    #[error(
        "{table} {id} was changed by someone else: expected version {expected}, it is at version {actual}"
    )]
    VersionConflict {
        table: &'static str,
        id: String,
        expected: i64,
        actual: i64,
    },
    #[error("{table}: a record with the same key already exists ({detail})")]
    Duplicate { table: &'static str, detail: String },
    #[error("{table}: the record refers to another record that does not exist")]
    MissingReference { table: &'static str },
    #[error("{table}: the database refused the record as inconsistent ({detail})")]
    Rejected { table: &'static str, detail: String },
    #[error("{table}: invalid record: {source}")]
    Invalid {
        table: &'static str,
        source: DomainError,
    },
    #[error("stored {table} row {id} cannot be read: column {column}: {reason}")]
    Corrupt {
        table: &'static str,
        id: String,
        column: &'static str,
        reason: String,
    },
    #[error("clinic database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("the audit trail's writer stopped")]
    AuditWriterGone,
}

impl StoreError {
    /// Classifies a database error raised while writing `table`.
    pub(crate) fn on_write(table: &'static str, err: sqlx::Error) -> Self {
        use sqlx::error::ErrorKind;
        if let sqlx::Error::Database(db) = &err {
            // The constraint name (PostgreSQL) or message (SQLite) names columns, not values.
            let detail = db
                .constraint()
                .map(str::to_owned)
                .unwrap_or_else(|| db.message().to_owned());
            match db.kind() {
                ErrorKind::UniqueViolation => return Self::Duplicate { table, detail },
                ErrorKind::ForeignKeyViolation => return Self::MissingReference { table },
                ErrorKind::CheckViolation | ErrorKind::NotNullViolation => {
                    return Self::Rejected { table, detail };
                }
                _ => {}
            }
        }
        Self::Database(err)
    }

    /// True for conflicts a caller may resolve by re-reading and retrying.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::VersionConflict { .. } | Self::Duplicate { .. })
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        Self::Database(err)
    }
}
