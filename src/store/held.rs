//! A connection kept out of the pool by a task that runs one statement after another for the
//! life of the process: the read cache's check of the change log and the audit trail's group
//! commit, each of which every read waits for. Through the pool each of their statements also
//! cost an acquire and, on release, a ping (sqlx tests every connection it takes back): more
//! hops to SQLite's connection thread, or round trips to PostgreSQL.

use sqlx::AnyConnection;

use super::access::{AUDIT, AUDITS_PER_STATEMENT, audit_insert};
use super::change_log::changes_after_on;
use super::{Change, Store, StoreError};
use crate::domain::AuditRecord;

pub struct HeldConnection {
    store: Store,
    connection: Option<AnyConnection>,
}

impl std::fmt::Debug for HeldConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldConnection")
            .field("held", &self.connection.is_some())
            .finish()
    }
}

impl HeldConnection {
    /// Takes a connection from `store`'s pool on first use (and again after an error).
    pub fn new(store: Store) -> Self {
        Self {
            store,
            connection: None,
        }
    }

    /// `Store::changes_after`.
    pub async fn changes_after(
        &mut self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<Change>, StoreError> {
        let Some(connection) = self.connection().await? else {
            return self.store.changes_after(after, limit).await;
        };
        let changes = changes_after_on(connection, after, limit).await;
        self.forget_after_error(&changes);
        changes
    }

    /// `Store::append_audits`: up to 256 records in one statement, atomic on its own.
    pub async fn append_audits(&mut self, records: &[AuditRecord]) -> Result<(), StoreError> {
        let backend = self.store.backend();
        let connection = match self.connection().await? {
            Some(connection) if !records.is_empty() && records.len() <= AUDITS_PER_STATEMENT => {
                connection
            }
            _ => return self.store.append_audits(records).await,
        };
        let written = audit_insert(backend, records)
            .execute(connection)
            .await
            .map(drop)
            .map_err(|e| StoreError::on_write(AUDIT, e));
        self.forget_after_error(&written);
        written
    }

    /// The held connection, or None where one cannot be held apart: a pool of one connection
    /// (an in-memory database, which would be a different database on a second connection).
    async fn connection(&mut self) -> Result<Option<&mut AnyConnection>, StoreError> {
        if !self.store.can_hold_a_connection() {
            return Ok(None);
        }
        if self.connection.is_none() {
            self.connection = Some(self.store.pool.acquire().await?.detach());
        }
        Ok(self.connection.as_mut())
    }

    /// After an error the connection may be broken (a PostgreSQL restart): the next statement
    /// takes a new one.
    fn forget_after_error<T>(&mut self, result: &Result<T, StoreError>) {
        if result.is_err() {
            self.connection = None;
        }
    }
}
