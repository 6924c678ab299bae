//! The clinic store: the clinic's system of record in SQLite or PostgreSQL, through one code base.
//!
//! Architecture invariant: the store knows the domain types and SQL, and nothing of FHIR or HTTP.
//! Both backends run the same SQL through sqlx's `Any` driver; the schema differs only in the
//! change-log triggers (see `migrations/`). Every write goes through `Tx`, and every changed row is
//! written to `change_log` by a trigger in the same transaction.

mod access;
mod audit_writer;
mod change_log;
mod error;
mod export_jobs;
mod filter;
mod held;
mod identifiers;
mod operators;
mod packed;
mod record;
mod referrals;
mod seed_run;
mod sync_state;
mod tables;
mod tx;

use std::str::FromStr;
use std::sync::Once;
use std::time::Duration;

use sqlx::AnyConnection;
use sqlx::AnyPool;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Executor};

pub use access::{AuditQuery, Comparison};
pub use audit_writer::AuditWriter;
pub use change_log::{Change, Operation};
pub use error::StoreError;
pub use export_jobs::{ExportJob, JobState};
pub use filter::{Condition, Filter};
pub use held::HeldConnection;
pub use operators::ConsoleSession;
pub use record::{Child, Record, RowMeta, RowReader, SqlValue, Stored};
pub use referrals::{REFERRAL_REQUEST_IDENTIFIERS, SourcedReferral};
pub use seed_run::SeedRun;
pub use sync_state::{DeadLetter, SyncRun, SyncTarget, SyncedResource};
pub use tx::{LogIndexes, SuspendedTriggers, Tx};

use crate::domain::{Client, Id, Mrn};

/// Which database engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// `column` is one of the strings of the JSON array bound as parameter `n`. One parameter
    /// however long the list, rather than `IN ($1, $2, ...)`: SQLite finds each bound parameter
    /// by a linear search of the statement's names, so a list of a parameter per value costs
    /// the square of its length; and one statement text for every length, prepared once.
    pub(crate) fn one_of_json_array(self, column: &str, n: usize) -> String {
        match self {
            Self::Sqlite => format!("{column} IN (SELECT value FROM json_each(${n}))"),
            // `= ANY(ARRAY(...))`, not `IN (SELECT ...)`: the planner guesses a set-returning
            // function's rows and chose a sequential scan with a hash join; an array is looked up
            // in the column's index.
            Self::Postgres => {
                format!("{column} = ANY(ARRAY(SELECT json_array_elements_text(${n}::json)))")
            }
        }
    }

    pub fn of_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl(redact_url(url)))
        }
    }
}

/// `values` as a JSON array, to bind where `Backend::one_of_json_array` reads it.
pub(crate) fn json_array(values: &[String]) -> String {
    serde_json::Value::from(values).to_string()
}

/// A one-column query with its values bound in order.
fn scalar<'q, O>(
    sql: String,
    binds: &[SqlValue],
) -> sqlx::query::QueryScalar<'q, sqlx::Any, O, sqlx::any::AnyArguments>
where
    (O,): for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
{
    let mut query = sqlx::query_scalar(AssertSqlSafe(sql));
    for value in binds.iter().cloned() {
        query = match value {
            SqlValue::Text(v) => query.bind(v),
            SqlValue::Int(v) => query.bind(v),
        };
    }
    query
}

/// Where a keyset page starts.
#[derive(Debug, Clone, Copy)]
enum Bound<'b> {
    /// `column <op> value`
    Column(&'static str, &'static str, &'b str),
    /// `(column, id) > (owner, id)`: past a row in owner order.
    OwnerAfter(&'static str, &'b str, &'b str),
}

/// `WHERE` over every filter and an optional keyset bound, with the values to bind in order;
/// empty when there is no condition.
fn where_clause(
    backend: Backend,
    filters: &[Filter],
    bound: Option<Bound<'_>>,
) -> (String, Vec<SqlValue>) {
    let mut binds = Vec::new();
    let mut conditions: Vec<String> = filters
        .iter()
        .map(|f| f.to_sql(backend, &mut binds))
        .collect();
    match bound {
        None => {}
        Some(Bound::Column(column, op, value)) => {
            binds.push(SqlValue::text(value));
            conditions.push(format!("{column} {op} ${}", binds.len()));
        }
        Some(Bound::OwnerAfter(column, owner, id)) => {
            binds.push(SqlValue::text(owner));
            binds.push(SqlValue::text(id));
            let n = binds.len();
            conditions.push(format!("({column}, id) > (${}, ${n})", n - 1));
        }
    }
    if conditions.is_empty() {
        (String::new(), binds)
    } else {
        (format!("WHERE {}", conditions.join(" AND ")), binds)
    }
}

/// The URL without its password, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// SQLite files are created on first use (zero set-up) unless the URL says otherwise.
fn with_create_mode(url: &str) -> String {
    if url.contains(":memory:") || url.contains("mode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

/// What a connection pool is for; it decides the SQLite settings (PostgreSQL needs none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Serving and syncing: WAL so that readers never block the writer, a few connections.
    Online,
    /// One large write (`seed`, `import`): a single connection with a rollback journal, which on
    /// a new database writes the data once instead of to the WAL and again at checkpoint (seeding
    /// 100,000 clients went from 71 s to about 45 s). WAL is restored when the pool closes.
    Bulk,
}

impl Workload {
    fn sqlite_pragmas(self) -> &'static str {
        // Every connection: a busy timeout so that concurrent writers queue instead of failing,
        // foreign keys on (SQLite's default is off). Serving keeps SQLite's 2 MiB page cache per
        // connection (the OS caches the file too): 8 MiB on each of four connections was a third
        // of an export's peak memory for a few percent of its time. A large write gets 64 MiB.
        match self {
            Self::Online => {
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
                 PRAGMA busy_timeout = 10000; PRAGMA cache_size = -2048; PRAGMA temp_store = MEMORY;"
            }
            Self::Bulk => {
                "PRAGMA journal_mode = TRUNCATE; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
                 PRAGMA busy_timeout = 10000; PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY;"
            }
        }
    }
}

/// How long a PostgreSQL connection may sit idle in the pool before it is pinged on acquire.
const PING_AFTER_IDLE: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    workload: Workload,
}

impl Store {
    /// Opens a pool on `url` (`sqlite://FILE`, `sqlite::memory:`, `postgres://...`). Does not migrate.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_for(url, Workload::Online).await
    }

    pub async fn connect_for(url: &str, workload: Workload) -> Result<Self, StoreError> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let backend = Backend::of_url(url)?;
        let url = match backend {
            Backend::Sqlite => with_create_mode(url),
            Backend::Postgres => url.to_owned(),
        };
        // sqlx reports a statement slower than a second as a WARN with its SQL: on a busy machine
        // that puts a second line beside a command's one-line error. Slow statements are an
        // operator's question: at INFO (`IOP_LOG=info` shows them).
        let options = AnyConnectOptions::from_str(&url)
            .map_err(StoreError::Connect)?
            .log_slow_statements(tracing::log::LevelFilter::Info, Duration::from_secs(1));
        // One direct connection first: a pool retries until its timeout and then reports only
        // "timed out", while this fails at once with the real cause (refused, no such database).
        AnyConnection::connect_with(&options)
            .await
            .map_err(StoreError::Connect)?
            .close()
            .await
            .map_err(StoreError::Connect)?;
        let pool_options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        let pool = match backend {
            Backend::Sqlite => {
                // An in-memory database lives in one connection; a file can have a few readers.
                let max = if url.contains(":memory:") || workload == Workload::Bulk {
                    1
                } else {
                    4
                };
                let pragmas = workload.sqlite_pragmas();
                pool_options
                    .max_connections(max)
                    // A file has no server to drop the connection: sqlx's ping before every
                    // acquire was one more hop to the connection's thread per statement.
                    .test_before_acquire(false)
                    .after_connect(move |conn, _| {
                        Box::pin(async move { conn.execute(pragmas).await.map(|_| ()) })
                    })
                    .connect_with(options)
                    .await
            }
            Backend::Postgres => {
                pool_options
                    .max_connections(16)
                    // sqlx pings a connection before every acquire: a round trip per statement,
                    // 7% of the gateway's CPU in a Bulk export. A connection that ran a statement
                    // moments ago is as alive as a ping would show; one idle a while is pinged,
                    // and dropped (another taken) if the server has gone.
                    .test_before_acquire(false)
                    .before_acquire(|conn, meta| {
                        Box::pin(async move {
                            if meta.idle_for >= PING_AFTER_IDLE {
                                conn.ping().await?;
                            }
                            Ok(true)
                        })
                    })
                    .connect_with(options)
                    .await
            }
        }
        .map_err(StoreError::Connect)?;
        Ok(Self {
            pool,
            backend,
            workload,
        })
    }

    /// Connects and brings the schema up to date (what every command does on start).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_for(url, Workload::Online).await
    }

    pub async fn open_for(url: &str, workload: Workload) -> Result<Self, StoreError> {
        let store = Self::connect_for(url, workload).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Whether a connection can be kept apart from the pool (`HeldConnection`): not where the
    /// pool is one connection (an in-memory database, a bulk load).
    pub(crate) fn can_hold_a_connection(&self) -> bool {
        self.pool.options().get_max_connections() > 1
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies the migrations in `migrations/<backend>/` that have not run yet.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Sqlite => {
                sqlx::migrate!("./migrations/sqlite")
                    .run(&self.pool)
                    .await?
            }
            Backend::Postgres => {
                sqlx::migrate!("./migrations/postgres")
                    .run(&self.pool)
                    .await?
            }
        }
        Ok(())
    }

    /// Runs one SQL statement as given. For tests that play a writer outside the gateway (the
    /// append-only audit check); nothing in the gateway calls it.
    #[doc(hidden)]
    pub async fn execute_raw(&self, sql: &str) -> Result<u64, StoreError> {
        Ok(sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// Connections open in the pool, and how many of them are idle (for `/metrics`).
    pub fn pool_use(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }

    /// Checks that the database answers and the schema is in place (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT COUNT(*) FROM seed_runs")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Closes the pool. A bulk pool first puts an SQLite file back into WAL mode for online use.
    pub async fn close(&self) {
        if self.backend == Backend::Sqlite
            && self.workload == Workload::Bulk
            && let Err(err) = sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&self.pool)
                .await
        {
            tracing::warn!(error = %err, "could not switch the SQLite file back to WAL mode");
        }
        self.pool.close().await;
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`),
    /// so two writers queue on the busy timeout instead of deadlocking on a lock upgrade.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        let inner = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(Tx {
            inner,
            backend: self.backend,
        })
    }

    pub async fn insert<R: Record>(&self, record: &R) -> Result<RowMeta, StoreError> {
        let mut tx = self.begin().await?;
        let meta = tx.insert(record).await?;
        tx.commit().await?;
        Ok(meta)
    }

    pub async fn update<R: Record>(
        &self,
        record: &R,
        expected_version: i64,
    ) -> Result<RowMeta, StoreError> {
        let mut tx = self.begin().await?;
        let meta = tx.update(record, expected_version).await?;
        tx.commit().await?;
        Ok(meta)
    }

    pub async fn delete<R: Record>(
        &self,
        id: Id<R>,
        expected_version: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        tx.delete(id, expected_version).await?;
        tx.commit().await
    }

    pub async fn get<R: Record>(&self, id: Id<R>) -> Result<Option<Stored<R>>, StoreError> {
        let sql = format!(
            "SELECT {} FROM {} WHERE id = $1",
            tx::select_list::<R>(),
            R::TABLE
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(tx::read_stored).transpose()
    }

    /// The children of a parent, oldest first (ids are time-ordered UUIDs).
    pub async fn children<C: Child>(
        &self,
        parent: Id<C::Parent>,
    ) -> Result<Vec<Stored<C>>, StoreError> {
        let sql = format!(
            "SELECT {} FROM {} WHERE {} = $1 ORDER BY id",
            tx::select_list::<C>(),
            C::TABLE,
            C::PARENT_COLUMN
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(parent.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(tx::read_stored).collect()
    }

    /// The records with these ids (any order; missing ids are left out).
    pub async fn get_many<R: Record>(&self, ids: &[Id<R>]) -> Result<Vec<Stored<R>>, StoreError> {
        self.where_in::<R>("id", ids.iter().map(ToString::to_string).collect())
            .await
    }

    /// The children of many parents at once, in id order (one query for a page of parents).
    pub async fn children_of_many<C: Child>(
        &self,
        parents: &[Id<C::Parent>],
    ) -> Result<Vec<Stored<C>>, StoreError> {
        self.where_in::<C>(
            C::PARENT_COLUMN,
            parents.iter().map(ToString::to_string).collect(),
        )
        .await
    }

    async fn where_in<R: Record>(
        &self,
        column: &'static str,
        values: Vec<String>,
    ) -> Result<Vec<Stored<R>>, StoreError> {
        if values.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {} FROM {} WHERE {}",
            tx::select_list::<R>(),
            R::TABLE,
            self.backend.one_of_json_array(column, 1)
        );
        let packed: Option<String> = sqlx::query_scalar(AssertSqlSafe(self.packing::<R>(&sql)))
            .bind(json_array(&values))
            .fetch_one(&self.pool)
            .await?;
        tx::read_packed(packed.as_deref())
    }

    /// The statement that returns the rows of `inner` (a SELECT of `select_list::<R>()`) packed
    /// into one value (`packed.rs`: many rows cost the driver one); `tx::read_packed` reads
    /// them back in id order.
    fn packing<R: Record>(&self, inner: &str) -> String {
        packed::packing(self.backend, &tx::columns::<R>(), inner)
    }

    /// A page of records in id order, after `after` (keyset paging; for exports and syncs).
    pub async fn page<R: Record>(
        &self,
        after: Option<Id<R>>,
        limit: u32,
    ) -> Result<Vec<Stored<R>>, StoreError> {
        let sql = format!(
            "SELECT {} FROM {} WHERE id > $1 ORDER BY id LIMIT $2",
            tx::select_list::<R>(),
            R::TABLE
        );
        let after = after.map(|id| id.to_string()).unwrap_or_default();
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(tx::read_stored).collect()
    }

    /// A page of the records matching every filter, in id order after `after` (keyset paging:
    /// stable while rows are added or changed during paging).
    pub async fn page_where<R: Record>(
        &self,
        filters: &[Filter],
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Stored<R>>, StoreError> {
        let bound = after.map(|id| Bound::Column("id", ">", id));
        self.page_by_key::<R>(filters, bound, "id", limit).await
    }

    /// Like `page_where`, but the `limit` rows just before `before` (keyset paging backwards, for
    /// `previous` links); returned in id order.
    pub async fn page_where_before<R: Record>(
        &self,
        filters: &[Filter],
        before: &str,
        limit: u32,
    ) -> Result<Vec<Stored<R>>, StoreError> {
        let bound = Some(Bound::Column("id", "<", before));
        self.page_by_key::<R>(filters, bound, "id DESC", limit)
            .await
    }

    /// Like `page_where`, but in owner order (`Record::OWNER_COLUMN`, then id): one owner's
    /// rows come together, after the row `after` (its owner and id; a record without an owner
    /// column is its own owner, and this is id order). For reading all of a type where each
    /// row's owner costs a lookup (an export's consent decisions are per client).
    pub async fn page_in_owner_order<R: Record>(
        &self,
        filters: &[Filter],
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<Stored<R>>, StoreError> {
        let Some(owner) = R::OWNER_COLUMN else {
            return self
                .page_where::<R>(filters, after.map(|(_, id)| id), limit)
                .await;
        };
        let bound = after.map(|(after_owner, id)| Bound::OwnerAfter(owner, after_owner, id));
        let order = format!("{owner}, id");
        let mut stored = self.page_by_key::<R>(filters, bound, &order, limit).await?;
        stored.sort_unstable_by_key(|s| (s.record.owner(), s.record.id()));
        Ok(stored)
    }

    /// Up to `limit` rows past `bound` in `order`, returned in id order.
    async fn page_by_key<R: Record>(
        &self,
        filters: &[Filter],
        bound: Option<Bound<'_>>,
        order: &str,
        limit: u32,
    ) -> Result<Vec<Stored<R>>, StoreError> {
        let (condition, binds) = where_clause(self.backend, filters, bound);
        let sql = format!(
            "SELECT {} FROM {} {condition} ORDER BY {order} LIMIT {limit}",
            tx::select_list::<R>(),
            R::TABLE,
        );
        let sql = self.packing::<R>(&sql);
        let packed: Option<String> = scalar(sql, &binds).fetch_one(&self.pool).await?;
        tx::read_packed(packed.as_deref())
    }

    /// Refreshes the query planner's statistics (after bulk loads). On PostgreSQL only tables
    /// that hold rows: statistics of an empty table say "empty" until autovacuum next analyzes
    /// it, and the audit trail, empty after a seed, then grows under sequential scans, the
    /// foreign-key checks of every audit write among them (each connection caches that plan).
    /// A table never analyzed is planned as if it held some pages, which picks its indexes.
    pub async fn analyze(&self) -> Result<(), StoreError> {
        if self.backend != Backend::Postgres {
            sqlx::query("ANALYZE").execute(&self.pool).await?;
            return Ok(());
        }
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() \
             ORDER BY tablename",
        )
        .fetch_all(&self.pool)
        .await?;
        for table in tables {
            let quoted = format!("\"{}\"", table.replace('"', "\"\""));
            let sql = format!("SELECT EXISTS (SELECT 1 FROM {quoted})");
            let filled: bool = sqlx::query_scalar(AssertSqlSafe(sql))
                .fetch_one(&self.pool)
                .await?;
            if filled {
                sqlx::query(AssertSqlSafe(format!("ANALYZE {quoted}")))
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// How many records match every filter.
    pub async fn count_where<R: Record>(&self, filters: &[Filter]) -> Result<i64, StoreError> {
        let (condition, binds) = where_clause(self.backend, filters, None);
        let sql = format!("SELECT COUNT(*) FROM {} {condition}", R::TABLE);
        let mut query = sqlx::query_scalar(AssertSqlSafe(sql));
        for value in binds {
            query = match value {
                SqlValue::Text(v) => query.bind(v),
                SqlValue::Int(v) => query.bind(v),
            };
        }
        Ok(query.fetch_one(&self.pool).await?)
    }

    /// Values of `column` that cut the rows of `table` matching `filters`, in that column's
    /// order, into `parts` runs of about the same length: each value is the first of a run
    /// after the first (on a column other than the id, all rows of one value fall in one run,
    /// so runs are less even). Fewer (none) when there are too few rows to be worth cutting.
    /// For sharing one long scan among workers; values need not be evenly spread (time-ordered
    /// UUIDs are not). Each split is sought from the one before, so that all of them cost one
    /// pass over the rows, however many parts.
    pub async fn splits(
        &self,
        table: &'static str,
        column: &'static str,
        filters: &[Filter],
        parts: usize,
        at_least_per_part: i64,
    ) -> Result<Vec<String>, StoreError> {
        let (condition, binds) = where_clause(self.backend, filters, None);
        let rows: i64 = scalar(format!("SELECT COUNT(*) FROM {table} {condition}"), &binds)
            .fetch_one(&self.pool)
            .await?;
        let parts = (parts as i64).min(rows / at_least_per_part.max(1)).max(1);
        let mut splits: Vec<String> = Vec::new();
        let mut previous_offset = 0;
        for part in 1..parts {
            let offset = rows * part / parts;
            let (condition, binds) = where_clause(
                self.backend,
                filters,
                splits
                    .last()
                    .map(|value| Bound::Column(column, ">=", value.as_str())),
            );
            let skip = if splits.is_empty() {
                offset
            } else {
                offset - previous_offset
            };
            let value: Option<String> = scalar(
                format!(
                    "SELECT {column} FROM {table} {condition} ORDER BY {column} \
                     LIMIT 1 OFFSET {skip}"
                ),
                &binds,
            )
            .fetch_optional(&self.pool)
            .await?;
            let Some(value) = value else { break };
            if splits.last() != Some(&value) {
                splits.push(value);
                previous_offset = offset;
            }
        }
        Ok(splits)
    }

    /// The ids of the rows of `table` matching every filter, in id order.
    pub async fn ids_where(
        &self,
        table: &'static str,
        filters: &[Filter],
    ) -> Result<Vec<String>, StoreError> {
        let (condition, binds) = where_clause(self.backend, filters, None);
        Ok(scalar(
            format!("SELECT id FROM {table} {condition} ORDER BY id"),
            &binds,
        )
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn count<R: Record>(&self) -> Result<i64, StoreError> {
        let sql = format!("SELECT COUNT(*) FROM {}", R::TABLE);
        Ok(sqlx::query_scalar(AssertSqlSafe(sql))
            .fetch_one(&self.pool)
            .await?)
    }

    pub async fn client_by_mrn(&self, mrn: &Mrn) -> Result<Option<Stored<Client>>, StoreError> {
        let sql = format!(
            "SELECT {} FROM clients WHERE mrn = $1",
            tx::select_list::<Client>()
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(mrn.as_str().to_owned())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(tx::read_stored).transpose()
    }
}
