//! Reading the change log that the triggers write (syncs read it to know what to push).

use super::{Store, StoreError};
use crate::domain::Timestamp;
use sqlx::Row;

code_enum! {
    pub enum Operation {
        Insert => "insert",
        Update => "update",
        Delete => "delete",
    }
}

/// One changed row: which table, which record, what happened, at which version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub seq: i64,
    pub table: String,
    pub row_id: String,
    pub operation: Operation,
    pub row_version: i64,
    pub changed_at: Timestamp,
}

impl Store {
    /// Changes with a sequence number above `after`, oldest first, at most `limit`.
    pub async fn changes_after(&self, after: i64, limit: u32) -> Result<Vec<Change>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, table_name, row_id, operation, row_version, changed_at FROM change_log \
             WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let corrupt = |column: &'static str, reason: String| StoreError::Corrupt {
                    table: "change_log",
                    id: row.try_get::<i64, _>("seq").unwrap_or_default().to_string(),
                    column,
                    reason,
                };
                Ok(Change {
                    seq: row.try_get("seq")?,
                    table: row.try_get("table_name")?,
                    row_id: row.try_get("row_id")?,
                    operation: row.try_get::<String, _>("operation")?.parse().map_err(
                        |e: crate::domain::DomainError| corrupt("operation", e.to_string()),
                    )?,
                    row_version: row.try_get("row_version")?,
                    changed_at: row.try_get::<String, _>("changed_at")?.parse().map_err(
                        |e: crate::domain::DomainError| corrupt("changed_at", e.to_string()),
                    )?,
                })
            })
            .collect()
    }

    /// Number of change-log entries (for reports and tests).
    pub async fn change_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM change_log")
            .fetch_one(&self.pool)
            .await?)
    }
}
