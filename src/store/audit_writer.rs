//! Group commit for the audit trail of reads and searches.
//!
//! Every disclosure is audited before it is sent, and a read is otherwise only reads: one
//! transaction per read would make every read a write that waits for the database's one writer
//! (SQLite) or for a commit of its own (PostgreSQL). Here one task per process writes the
//! records that arrived while its last commit ran, all in one statement; each caller waits
//! until the commit that holds its record, so nothing is disclosed unaudited, yet a thousand
//! concurrent reads cost a handful of commits.

use std::sync::OnceLock;

use tokio::sync::{mpsc, oneshot};

use super::{HeldConnection, Store, StoreError};
use crate::domain::AuditRecord;
use crate::telemetry;

/// The most records one commit holds (bounds a statement's size and its callers' wait; up to
/// 256, a batch is one statement).
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
    // Every read and search waits for this task's statements: they run on a connection of its own.
    let mut held = HeldConnection::new(store.clone());
    let mut batch = Vec::with_capacity(MOST_PER_COMMIT);
    while queue.recv_many(&mut batch, MOST_PER_COMMIT).await > 0 {
        let (records, answers): (Vec<_>, Vec<_>) =
            batch.drain(..).map(|p| (p.record, p.written)).unzip();
        let started = std::time::Instant::now();
        let written = held.append_audits(&records).await;
        if written.is_ok() {
            count_commit(records.len());
            metrics::histogram!(telemetry::AUDIT_COMMIT_LATENCY).record(started.elapsed());
        }
        match written {
            Ok(()) => {
                for answer in answers {
                    let _ = answer.send(Ok(()));
                }
            }
            // One bad record must not fail the others: each is tried on its own, and answered
            // with its own outcome.
            Err(err) if records.len() > 1 => {
                tracing::warn!(error = %err, records = records.len(), "an audit batch failed: writing its records one by one");
                for (record, answer) in records.iter().zip(answers) {
                    let written = store.append_audit(record).await;
                    if written.is_ok() {
                        count_commit(1);
                    }
                    let _ = answer.send(written);
                }
            }
            Err(err) => {
                if let Some(answer) = answers.into_iter().next() {
                    let _ = answer.send(Err(err));
                }
            }
        }
    }
}

/// Counts a commit of `records` for `/metrics`: what every read and search waits for, so
/// operators see the trail's pace beside the requests'.
fn count_commit(records: usize) {
    metrics::counter!(telemetry::AUDIT_COMMITS).increment(1);
    metrics::counter!(telemetry::AUDIT_RECORDS).increment(records as u64);
}
