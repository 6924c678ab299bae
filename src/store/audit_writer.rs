//! Group commit for the audit trail of reads and searches.
//!
//! Every disclosure is audited before it is sent, and a read is otherwise only reads: one
//! transaction per read would make every read a write that waits for the database's one writer
//! (SQLite) or for a commit of its own (PostgreSQL). Here one task per process writes the
//! records that arrived while its last commit ran, all in one transaction; each caller waits
//! until the commit that holds its record, so nothing is disclosed unaudited, yet a thousand
//! concurrent reads cost a handful of commits.

use std::sync::OnceLock;

use tokio::sync::{mpsc, oneshot};

use super::{Store, StoreError};
use crate::domain::AuditRecord;

/// The most records one commit holds (bounds a transaction's size and its callers' wait).
const MOST_PER_COMMIT: usize = 256;
/// Records waiting for the writer; callers past this wait for room (back-pressure).
const QUEUE: usize = 4096;

struct Pending {
    record: AuditRecord,
    written: oneshot::Sender<Result<(), StoreError>>,
}

/// Appends audit records in batches, one writer task per process (started on first use, so a
/// state built outside a runtime costs nothing).
#[derive(Clone)]
pub struct AuditWriter {
    store: Store,
    queue: std::sync::Arc<OnceLock<mpsc::Sender<Pending>>>,
}

impl std::fmt::Debug for AuditWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditWriter").finish_non_exhaustive()
    }
}

impl AuditWriter {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            queue: Default::default(),
        }
    }

    /// Returns once `record` is committed, with the error if it could not be.
    pub async fn append(&self, record: AuditRecord) -> Result<(), StoreError> {
        let queue = self.queue.get_or_init(|| {
            let (sender, receiver) = mpsc::channel(QUEUE);
            tokio::spawn(write_batches(self.store.clone(), receiver));
            sender
        });
        let (written, done) = oneshot::channel();
        // The writer ends only when every sender is gone: a send or an answer that fails means
        // its task died (a panic), and the request fails closed.
        if queue.send(Pending { record, written }).await.is_err() {
            return Err(StoreError::AuditWriterGone);
        }
        done.await.unwrap_or(Err(StoreError::AuditWriterGone))
    }
}

async fn write_batches(store: Store, mut queue: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MOST_PER_COMMIT);
    while queue.recv_many(&mut batch, MOST_PER_COMMIT).await > 0 {
        match write_all(&store, &batch).await {
            Ok(()) => {
                for pending in batch.drain(..) {
                    let _ = pending.written.send(Ok(()));
                }
            }
            // One bad record must not fail the others: each is tried on its own, and answered
            // with its own outcome.
            Err(err) if batch.len() > 1 => {
                tracing::warn!(error = %err, records = batch.len(), "an audit batch failed: writing its records one by one");
                for pending in batch.drain(..) {
                    let outcome = store.append_audit(&pending.record).await;
                    let _ = pending.written.send(outcome);
                }
            }
            Err(err) => {
                if let Some(pending) = batch.pop() {
                    let _ = pending.written.send(Err(err));
                }
            }
        }
    }
}

async fn write_all(store: &Store, batch: &[Pending]) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    for pending in batch {
        tx.append_audit(&pending.record).await?;
    }
    tx.commit().await
}
