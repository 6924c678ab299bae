//! The generic row operations, written once for every `Record`, inside one database transaction.

use sqlx::AssertSqlSafe;
use sqlx::any::{Any, AnyArguments};
use sqlx::query::Query;

use super::record::{Child, Record, RowMeta, RowReader, SqlValue, Stored};
use super::{Backend, StoreError};
use crate::domain::{Id, Timestamp};

const BOOKKEEPING: [&str; 4] = ["id", "version", "created_at", "updated_at"];

/// Largest number of bound values in one statement: SQLite allows 32,766, PostgreSQL 65,535.
const MAX_BINDS: usize = 30_000;
const MAX_ROWS_PER_INSERT: usize = 1_000;

pub(crate) fn select_list<R: Record>() -> String {
    columns::<R>().join(", ")
}

/// Every column a record's row is read from, in `select_list` order.
pub(crate) fn columns<R: Record>() -> Vec<&'static str> {
    BOOKKEEPING.iter().chain(R::COLUMNS).copied().collect()
}

/// The records of a packed query's text (`packed::packing` of `select_list::<R>()`).
pub(crate) fn read_packed<R: Record>(text: Option<&str>) -> Result<Vec<Stored<R>>, StoreError> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    let columns = columns::<R>();
    let cells = super::packed::unpack(text, columns.len()).map_err(|e| StoreError::Corrupt {
        table: R::TABLE,
        id: String::new(),
        column: "*",
        reason: e.to_string(),
    })?;
    let mut stored = cells
        .chunks_exact(columns.len())
        .map(|cells| {
            let reader = RowReader::packed(R::TABLE, &columns, cells);
            Ok(Stored {
                meta: reader.meta()?,
                record: R::from_row(&reader)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    // The ids' order is their text's (lower-case hyphenated UUIDs), which keyset paging uses.
    stored.sort_unstable_by_key(|s| s.record.id());
    Ok(stored)
}

fn bind(query: Query<'_, Any, AnyArguments>, value: SqlValue) -> Query<'_, Any, AnyArguments> {
    match value {
        SqlValue::Text(v) => query.bind(v),
        SqlValue::Int(v) => query.bind(v),
    }
}

pub(crate) fn read_stored<R: Record>(row: &sqlx::any::AnyRow) -> Result<Stored<R>, StoreError> {
    let reader = RowReader::new(R::TABLE, row);
    Ok(Stored {
        meta: reader.meta()?,
        record: R::from_row(&reader)?,
    })
}

fn checked<R: Record>(record: &R) -> Result<(), StoreError> {
    record.check().map_err(|source| StoreError::Invalid {
        table: R::TABLE,
        source,
    })
}

/// The change log's secondary indexes (migration 0002), rebuilt after a bulk load.
const LOG_INDEXES: &str = "('change_log_row_idx', 'change_log_table_idx')";

/// Whether a bulk load takes the change log's history indexes away, to build them once at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogIndexes {
    Rebuild,
    Keep,
}

/// The version-deriving triggers and log indexes a bulk load took away: the statements that put
/// them back.
#[must_use = "resume them before commit"]
pub struct SuspendedTriggers(Vec<String>);

/// A write transaction on the clinic database. Dropping it without `commit` rolls back, so an
/// error half way leaves nothing behind.
pub struct Tx {
    pub(crate) inner: sqlx::Transaction<'static, Any>,
    pub(crate) backend: Backend,
}

impl Tx {
    pub(super) fn push_placeholder(&self, sql: &mut String, n: usize) {
        self.backend.push_placeholder(sql, n);
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        self.inner.commit().await.map_err(StoreError::Database)
    }

    /// Inserts one record at version 1.
    pub async fn insert<R: Record>(&mut self, record: &R) -> Result<RowMeta, StoreError> {
        checked(record)?;
        let now = Timestamp::now();
        let columns = select_list::<R>();
        let placeholders = (1..=R::COLUMNS.len() + 4)
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO {} ({columns}) VALUES ({placeholders})",
            R::TABLE
        );
        let mut query = sqlx::query(AssertSqlSafe(sql))
            .bind(record.id().to_string())
            .bind(1_i64)
            .bind(now.to_db_text())
            .bind(now.to_db_text());
        for value in record.values() {
            query = bind(query, value);
        }
        query
            .execute(&mut *self.inner)
            .await
            .map_err(|e| StoreError::on_write(R::TABLE, e))?;
        Ok(RowMeta {
            version: 1,
            created_at: now,
            updated_at: now,
        })
    }

    /// Inserts many records with multi-row statements (the seeder's path; same checks as `insert`).
    pub async fn insert_many<R: Record>(&mut self, records: &[R]) -> Result<(), StoreError> {
        self.insert_many_at(records, |_| None).await
    }

    /// `insert_many`, each record at the version and last change `kept(index)` gives (an import
    /// keeps what another copy of the database recorded), else at version 1, now.
    pub async fn insert_many_at<R: Record>(
        &mut self,
        records: &[R],
        kept: impl Fn(usize) -> Option<(i64, Timestamp)>,
    ) -> Result<(), StoreError> {
        let per_row = R::COLUMNS.len() + BOOKKEEPING.len();
        let rows_per_statement = (MAX_BINDS / per_row).min(MAX_ROWS_PER_INSERT);
        let now = Timestamp::now().to_db_text();
        let mut index = 0;
        let head = format!("INSERT INTO {} ({}) VALUES ", R::TABLE, select_list::<R>());
        for chunk in records.chunks(rows_per_statement) {
            let mut sql = String::with_capacity(head.len() + chunk.len() * per_row * 6);
            sql.push_str(&head);
            for row in 0..chunk.len() {
                sql.push_str(if row == 0 { "(" } else { ", (" });
                for column in 0..per_row {
                    if column > 0 {
                        sql.push_str(", ");
                    }
                    self.push_placeholder(&mut sql, row * per_row + column + 1);
                }
                sql.push(')');
            }
            // Only full-size statements are kept prepared: one per table is reused chunk after
            // chunk, while each odd-sized tail would take a slot of the statement cache (and
            // memory) for good.
            let mut query =
                sqlx::query(AssertSqlSafe(sql)).persistent(chunk.len() == rows_per_statement);
            for record in chunk {
                checked(record)?;
                let (version, created, updated) = match kept(index) {
                    Some((version, at)) => (version, at.to_db_text(), at.to_db_text()),
                    None => (1, now.clone(), now.clone()),
                };
                index += 1;
                query = query
                    .bind(record.id().to_string())
                    .bind(version)
                    .bind(created)
                    .bind(updated);
                for value in record.values() {
                    query = bind(query, value);
                }
            }
            query
                .execute(&mut *self.inner)
                .await
                .map_err(|e| StoreError::on_write(R::TABLE, e))?;
        }
        Ok(())
    }

    /// Replaces a record's columns if it is still at `expected_version`; bumps the version.
    pub async fn update<R: Record>(
        &mut self,
        record: &R,
        expected_version: i64,
    ) -> Result<RowMeta, StoreError> {
        checked(record)?;
        let now = Timestamp::now();
        let n = R::COLUMNS.len();
        let assignments = R::COLUMNS
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c} = ${}", i + 1))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "UPDATE {table} SET {assignments}, version = version + 1, updated_at = ${now_at} \
             WHERE id = ${id_at} AND version = ${version_at} RETURNING version, created_at",
            table = R::TABLE,
            now_at = n + 1,
            id_at = n + 2,
            version_at = n + 3,
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for value in record.values() {
            query = bind(query, value);
        }
        let row = query
            .bind(now.to_db_text())
            .bind(record.id().to_string())
            .bind(expected_version)
            .fetch_optional(&mut *self.inner)
            .await
            .map_err(|e| StoreError::on_write(R::TABLE, e))?;
        match row {
            Some(row) => {
                let reader = RowReader::new(R::TABLE, &row);
                Ok(RowMeta {
                    version: reader.int("version")?,
                    created_at: reader.parse("created_at")?,
                    updated_at: now,
                })
            }
            None => Err(self
                .missing_or_conflict::<R>(record.id(), expected_version)
                .await),
        }
    }

    /// Deletes a record if it is still at `expected_version`.
    pub async fn delete<R: Record>(
        &mut self,
        id: Id<R>,
        expected_version: i64,
    ) -> Result<(), StoreError> {
        let sql = format!("DELETE FROM {} WHERE id = $1 AND version = $2", R::TABLE);
        let done = sqlx::query(AssertSqlSafe(sql))
            .bind(id.to_string())
            .bind(expected_version)
            .execute(&mut *self.inner)
            .await
            .map_err(|e| StoreError::on_write(R::TABLE, e))?;
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(self.missing_or_conflict::<R>(id, expected_version).await)
        }
    }

    async fn missing_or_conflict<R: Record>(&mut self, id: Id<R>, expected: i64) -> StoreError {
        let sql = format!("SELECT version FROM {} WHERE id = $1", R::TABLE);
        let found: Result<Option<i64>, _> = sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&mut *self.inner)
            .await;
        match found {
            Ok(Some(actual)) => StoreError::VersionConflict {
                table: R::TABLE,
                id: id.to_string(),
                expected,
                actual,
            },
            Ok(None) => StoreError::NotFound {
                table: R::TABLE,
                id: id.to_string(),
            },
            Err(e) => StoreError::Database(e),
        }
    }

    /// For a bulk load of new records in this one transaction (the seed): the triggers that
    /// derive versions (migration 0002) and the change log's history indexes are taken away until
    /// `resume_version_bumps` (an index built once at the end is far cheaper than millions of
    /// random inserts into it). A
    /// resource's rows written with it in one transaction need no bumps (nobody saw its earlier
    /// versions), and bumping per child row made seeding 4-5 times slower. DDL is transactional
    /// on both backends: other connections never see the triggers missing, and a transaction that
    /// fails restores them with everything else.
    ///
    /// `LogIndexes::Keep` leaves the indexes in place: for a load that is one of several
    /// transactions (an import, a file each), rebuilding them over the whole log at the end of
    /// each would cost more than the inserts it saves, and more with every file.
    pub async fn suspend_version_bumps(
        &mut self,
        log_indexes: LogIndexes,
    ) -> Result<SuspendedTriggers, StoreError> {
        let names = "(name LIKE '%bump%' OR name LIKE '%labels%' OR name = 'label_changes_apply')";
        let mut suspended = Vec::new();
        match self.backend {
            Backend::Sqlite => {
                let sql = format!(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND {names}"
                );
                let rows = sqlx::query(AssertSqlSafe(sql))
                    .fetch_all(&mut *self.inner)
                    .await?;
                for row in &rows {
                    let name: String = sqlx::Row::try_get(row, "name")?;
                    let create: String = sqlx::Row::try_get(row, "sql")?;
                    sqlx::query(AssertSqlSafe(format!("DROP TRIGGER \"{name}\"")))
                        .execute(&mut *self.inner)
                        .await?;
                    suspended.push(create);
                }
            }
            Backend::Postgres => {
                let sql = format!(
                    "SELECT tgrelid::regclass::text AS tbl, tgname::text AS name FROM pg_trigger \
                     WHERE NOT tgisinternal AND {}",
                    names.replace("name", "tgname")
                );
                let rows = sqlx::query(AssertSqlSafe(sql))
                    .fetch_all(&mut *self.inner)
                    .await?;
                for row in &rows {
                    let table: String = sqlx::Row::try_get(row, "tbl")?;
                    let name: String = sqlx::Row::try_get(row, "name")?;
                    let on = format!("ALTER TABLE {table} ENABLE TRIGGER \"{name}\"");
                    sqlx::query(AssertSqlSafe(on.replace(" ENABLE ", " DISABLE ")))
                        .execute(&mut *self.inner)
                        .await?;
                    suspended.push(on);
                }
            }
        }
        if log_indexes == LogIndexes::Rebuild {
            let sql = match self.backend {
                Backend::Sqlite => format!(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND name IN {LOG_INDEXES}"
                ),
                Backend::Postgres => format!(
                    "SELECT indexname::text AS name, indexdef::text AS sql FROM pg_indexes \
                     WHERE indexname IN {LOG_INDEXES}"
                ),
            };
            for row in &sqlx::query(AssertSqlSafe(sql))
                .fetch_all(&mut *self.inner)
                .await?
            {
                let name: String = sqlx::Row::try_get(row, "name")?;
                let create: String = sqlx::Row::try_get(row, "sql")?;
                sqlx::query(AssertSqlSafe(format!("DROP INDEX \"{name}\"")))
                    .execute(&mut *self.inner)
                    .await?;
                suspended.push(create);
            }
        }
        Ok(SuspendedTriggers(suspended))
    }

    /// Puts back what `suspend_version_bumps` took away.
    pub async fn resume_version_bumps(
        &mut self,
        suspended: SuspendedTriggers,
    ) -> Result<(), StoreError> {
        for statement in suspended.0 {
            sqlx::query(AssertSqlSafe(statement))
                .execute(&mut *self.inner)
                .await?;
        }
        Ok(())
    }

    /// Which of `ids` name rows of `R` (in this transaction).
    pub async fn existing_ids<R: Record>(
        &mut self,
        ids: &[Id<R>],
    ) -> Result<std::collections::HashSet<Id<R>>, StoreError> {
        let mut found = std::collections::HashSet::new();
        for chunk in ids.chunks(MAX_ROWS_PER_INSERT) {
            let placeholders = (1..=chunk.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!("SELECT id FROM {} WHERE id IN ({placeholders})", R::TABLE);
            // As for `insert_many_at`: odd-sized lists are not kept prepared.
            let mut query =
                sqlx::query(AssertSqlSafe(sql)).persistent(chunk.len() == MAX_ROWS_PER_INSERT);
            for id in chunk {
                query = query.bind(id.to_string());
            }
            for row in query.fetch_all(&mut *self.inner).await? {
                let id: String = sqlx::Row::try_get(&row, "id")?;
                if let Ok(id) = id.parse() {
                    found.insert(id);
                }
            }
        }
        Ok(found)
    }

    /// The id of the client with this MRN, inside this transaction.
    pub async fn client_id_by_mrn(
        &mut self,
        mrn: &crate::domain::Mrn,
    ) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT id FROM clients WHERE mrn = $1")
            .bind(mrn.as_str().to_owned())
            .fetch_optional(&mut *self.inner)
            .await?)
    }

    /// Reads a record inside this transaction (sees its own uncommitted writes).
    pub async fn get<R: Record>(&mut self, id: Id<R>) -> Result<Option<Stored<R>>, StoreError> {
        let sql = format!(
            "SELECT {} FROM {} WHERE id = $1",
            select_list::<R>(),
            R::TABLE
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&mut *self.inner)
            .await?;
        row.as_ref().map(read_stored).transpose()
    }

    /// Reads a record to write it: on PostgreSQL the row is locked until this transaction ends
    /// (`FOR UPDATE`), so writers of one record queue and each reads the version the previous
    /// one left, instead of all reading one version and all but one failing. SQLite write
    /// transactions are serial already (`BEGIN IMMEDIATE`).
    pub async fn get_for_update<R: Record>(
        &mut self,
        id: Id<R>,
    ) -> Result<Option<Stored<R>>, StoreError> {
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "SELECT {} FROM {} WHERE id = $1{lock}",
            select_list::<R>(),
            R::TABLE
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&mut *self.inner)
            .await?;
        row.as_ref().map(read_stored).transpose()
    }

    /// The children of a parent, oldest first.
    pub async fn children<C: Child>(
        &mut self,
        parent: Id<C::Parent>,
    ) -> Result<Vec<Stored<C>>, StoreError> {
        let sql = format!(
            "SELECT {} FROM {} WHERE {} = $1 ORDER BY id",
            select_list::<C>(),
            C::TABLE,
            C::PARENT_COLUMN
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(parent.to_string())
            .fetch_all(&mut *self.inner)
            .await?;
        rows.iter().map(read_stored).collect()
    }
}

impl Backend {
    /// Writes the placeholder for bound value number `n` (1-based). PostgreSQL needs `$n`. SQLite
    /// gets anonymous `?`: it looks named and numbered parameters up by a linear scan, which makes
    /// a 6,000-value insert quadratic (it was 80% of seeding time). sqlx's QueryBuilder cannot be
    /// used instead: for the Any driver it writes `?`, which PostgreSQL does not parse.
    pub(super) fn push_placeholder(self, sql: &mut String, n: usize) {
        match self {
            Backend::Sqlite => sql.push('?'),
            Backend::Postgres => {
                sql.push('$');
                sql.push_str(&n.to_string());
            }
        }
    }

    /// Writes `rows` parenthesized rows of `columns` placeholders each, comma-separated: the
    /// VALUES list of a multi-row insert.
    pub(super) fn push_rows(self, sql: &mut String, rows: usize, columns: usize) {
        let mut n = 0;
        for row in 0..rows {
            sql.push_str(if row == 0 { "(" } else { ", (" });
            for column in 0..columns {
                if column > 0 {
                    sql.push_str(", ");
                }
                n += 1;
                self.push_placeholder(sql, n);
            }
            sql.push(')');
        }
    }
}
