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
        self.changes_where(None, None, after, limit).await
    }

    /// Changes to one table (and, if given, one row), oldest first, after `after`, at most `limit`.
    pub async fn changes_of(
        &self,
        table: &str,
        row_id: Option<&str>,
        after: i64,
        limit: u32,
    ) -> Result<Vec<Change>, StoreError> {
        self.changes_where(Some(table), row_id, after, limit).await
    }

    async fn changes_where(
        &self,
        table: Option<&str>,
        row_id: Option<&str>,
        after: i64,
        limit: u32,
    ) -> Result<Vec<Change>, StoreError> {
        let mut sql = String::from(
            "SELECT seq, table_name, row_id, operation, row_version, changed_at FROM change_log \
             WHERE seq > $1",
        );
        if table.is_some() {
            sql.push_str(" AND table_name = $3");
        }
        if row_id.is_some() {
            sql.push_str(" AND row_id = $4");
        }
        sql.push_str(" ORDER BY seq LIMIT $2");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(after)
            .bind(i64::from(limit));
        if let Some(table) = table {
            query = query.bind(table.to_owned());
        }
        if let Some(row_id) = row_id {
            query = query.bind(row_id.to_owned());
        }
        let rows = query.fetch_all(&self.pool).await?;
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
