//! Reading the change log that the triggers write (syncs read it to know what to push).

use super::{Store, StoreError};
use crate::domain::Timestamp;
use sqlx::AnyConnection;
use sqlx::Row;
use sqlx::any::Any;

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
        let tables: Vec<&str> = table.into_iter().collect();
        let at = Position::After(after);
        self.select_changes(&tables, row_id, at, limit).await
    }

    /// Changes to the given tables (and, if given, one row), newest first: from the newest, or
    /// below the sequence number `before`; at most `limit`. What history pages read.
    pub async fn changes_newest_first(
        &self,
        tables: &[&str],
        row_id: Option<&str>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Change>, StoreError> {
        let at = Position::Before(before.unwrap_or(i64::MAX));
        self.select_changes(tables, row_id, at, limit).await
    }

    /// How many changes the given tables (and, if given, one row) have had.
    pub async fn count_changes(
        &self,
        tables: &[&str],
        row_id: Option<&str>,
    ) -> Result<i64, StoreError> {
        let (condition, binds) = change_condition(tables, row_id, 1);
        let sql = format!("SELECT COUNT(*) FROM change_log WHERE {condition}");
        let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql));
        for value in binds {
            query = query.bind(value);
        }
        Ok(query.fetch_one(&self.pool).await?)
    }

    async fn select_changes(
        &self,
        tables: &[&str],
        row_id: Option<&str>,
        at: Position,
        limit: u32,
    ) -> Result<Vec<Change>, StoreError> {
        select_changes(&self.pool, tables, row_id, at, limit).await
    }

    /// Number of change-log entries (for reports and tests).
    pub async fn change_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM change_log")
            .fetch_one(&self.pool)
            .await?)
    }
}

/// `Store::changes_after` on a connection of its own (`HeldConnection`).
pub(super) async fn changes_after_on(
    connection: &mut AnyConnection,
    after: i64,
    limit: u32,
) -> Result<Vec<Change>, StoreError> {
    select_changes(connection, &[], None, Position::After(after), limit).await
}

async fn select_changes<'e, E>(
    executor: E,
    tables: &[&str],
    row_id: Option<&str>,
    at: Position,
    limit: u32,
) -> Result<Vec<Change>, StoreError>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let (condition, binds) = change_condition(tables, row_id, 3);
    let (seq, order) = match at {
        Position::After(_) => ("seq > $1", "seq"),
        Position::Before(_) => ("seq < $1", "seq DESC"),
    };
    let sql = format!(
        "SELECT seq, table_name, row_id, operation, row_version, changed_at FROM change_log \
             WHERE {seq} AND {condition} ORDER BY {order} LIMIT $2"
    );
    let (Position::After(at) | Position::Before(at)) = at;
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(at)
        .bind(i64::from(limit));
    for value in binds {
        query = query.bind(value);
    }
    let rows = query.fetch_all(executor).await?;
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
                operation: row
                    .try_get::<String, _>("operation")?
                    .parse()
                    .map_err(|e: crate::domain::DomainError| corrupt("operation", e.to_string()))?,
                row_version: row.try_get("row_version")?,
                changed_at: row.try_get::<String, _>("changed_at")?.parse().map_err(
                    |e: crate::domain::DomainError| corrupt("changed_at", e.to_string()),
                )?,
            })
        })
        .collect()
}

/// Where a page of changes starts (exclusive).
#[derive(Clone, Copy)]
enum Position {
    After(i64),
    Before(i64),
}

/// `table_name IN (...) AND row_id = ...` with placeholders numbered from `first`, and the values
/// to bind in order (TRUE when nothing narrows).
fn change_condition(tables: &[&str], row_id: Option<&str>, first: usize) -> (String, Vec<String>) {
    let mut parts = Vec::new();
    let mut binds: Vec<String> = Vec::new();
    if !tables.is_empty() {
        let marks: Vec<String> = (0..tables.len())
            .map(|i| format!("${}", first + i))
            .collect();
        parts.push(format!("table_name IN ({})", marks.join(", ")));
        binds.extend(tables.iter().map(|t| (*t).to_owned()));
    }
    if let Some(row_id) = row_id {
        parts.push(format!("row_id = ${}", first + binds.len()));
        binds.push(row_id.to_owned());
    }
    if parts.is_empty() {
        parts.push("1 = 1".to_owned());
    }
    (parts.join(" AND "), binds)
}
