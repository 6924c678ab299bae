//! What reads keep across requests of one process, never served stale: the rows the disclosure
//! gate decides with (each client's consents, enrollments and referrals, and the clinic's own
//! organizations), assembled resources and search pages (before the gate: each request still
//! decides for its own recipient, purpose and day, and redacts its own copy). Assembled
//! resources are kept for the day they were assembled on (a consent's status depends on it).
//!
//! Every request first brings the cache up to date with the change log (`refresh`): a change to
//! a table the gate reads empties the gate's part, any change empties the resources. So a
//! consent revoked or a record changed on any replica is seen by the next request on every
//! replica. Requests that arrive while a read of the change log runs share the next one (it
//! starts after they arrived, so it sees everything committed before them); with nobody
//! writing it finds nothing. Rows loaded by a request that raced a change are not kept: the
//! part's generation moved while they were read.
//!
//! On PostgreSQL a change's sequence number can become visible after a higher one (it is taken
//! when the transaction writes, not when it commits); as in sync, the applied checkpoint stops
//! before such a gap until it is older than `COMMIT_GRACE`, and what lies past it is read again.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{Duration, NaiveDate, Utc};
use serde_json::Value;

use crate::assemble::Page;
use crate::domain::{Consent, Enrollment, Organization, Program, Referral};
use crate::store::{HeldConnection, Record, Store, StoreError};
use crate::sync::checkpoint::safe_checkpoint;

/// Tables whose rows the gate's decisions read: a change to any of them empties the gate's part.
const GATE_TABLES: [&str; 5] = [
    Consent::TABLE,
    Enrollment::TABLE,
    Referral::TABLE,
    Organization::TABLE,
    Program::TABLE,
];
/// How long a gap in the change log is waited for before it is taken as a rollback.
const COMMIT_GRACE: Duration = Duration::seconds(60);
/// Change-log rows read at once; a full page is followed by the next before the request goes on.
const CHANGES_PER_READ: u32 = 5_000;
/// Clients and resources kept at most; past it that part starts again (memory stays bounded).
const MOST_CLIENTS: usize = 20_000;
const MOST_RESOURCES: usize = 10_000;
/// Search pages kept at most, and resources in them at most; larger pages are not kept.
const MOST_PAGES: usize = 5_000;
const MOST_PAGE_RESOURCES: usize = 20_000;
const LARGEST_PAGE_KEPT: usize = 100;
/// How far back the first read of the change log starts: a transaction still open then is
/// taken to have rolled back (the cache is empty, so nothing older can be stale in it).
const PRIMING_CHANGES: u32 = 1_000;

/// One client's rows that the gate decides with.
#[derive(Debug, Default)]
pub struct ClientRows {
    pub consents: Vec<Consent>,
    pub enrollments: Vec<Enrollment>,
    pub referrals: Vec<Referral>,
}

/// Which state of the cache a request saw: what it loads is kept only if no change emptied
/// that part of the cache since.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seen {
    gate: u64,
    resources: u64,
    day: NaiveDate,
}

impl Seen {
    /// The day the request assembles resources as of (what is kept is kept for that day).
    pub fn day(&self) -> NaiveDate {
        self.day
    }
}

#[derive(Default)]
pub struct ReadCache {
    inner: Mutex<Inner>,
    /// One read of the change log at a time; requests that arrive while one runs share the next.
    /// It runs on a connection of its own (taken on first use), as every request waits for it.
    reading: tokio::sync::Mutex<Option<HeldConnection>>,
    /// Reads of the change log started so far, and the number of the last one finished.
    reads_started: AtomicU64,
    read_finished: AtomicU64,
}

#[derive(Default)]
struct Inner {
    /// Every change up to this sequence number has been applied (None: not read yet).
    checkpoint: Option<i64>,
    /// Changes above the checkpoint already applied (past a gap).
    applied: BTreeSet<i64>,
    seen: Seen,
    clinic: Option<Arc<Vec<String>>>,
    clients: HashMap<String, Arc<ClientRows>>,
    resources: HashMap<(String, String), Arc<Value>>,
    pages: HashMap<String, Arc<Page>>,
    page_resources: usize,
}

impl Inner {
    fn forget_resources(&mut self) {
        self.resources.clear();
        self.pages.clear();
        self.page_resources = 0;
        self.seen.resources += 1;
    }
}

impl std::fmt::Debug for ReadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadCache").finish_non_exhaustive()
    }
}

impl ReadCache {
    /// Applies the changes committed before this call; returns the state the request then reads
    /// and keeps under.
    pub async fn refresh(&self, store: &Store) -> Result<Seen, StoreError> {
        let arrived_after = self.reads_started.load(Ordering::SeqCst);
        let mut reading = self.reading.lock().await;
        if self.read_finished.load(Ordering::SeqCst) > arrived_after {
            return Ok(self.lock().seen);
        }
        let held = reading.get_or_insert_with(|| HeldConnection::new(store.clone()));
        let number = self.reads_started.fetch_add(1, Ordering::SeqCst) + 1;
        // Every change committed before this request is applied before it reads: a consent
        // revoked behind a large import must not wait for the next request.
        let mut after = None;
        let seen = loop {
            let (seen, next) = self.read_changes(store, held, after).await?;
            match next {
                Some(last) => after = Some(last),
                None => break seen,
            }
        };
        self.read_finished.store(number, Ordering::SeqCst);
        Ok(seen)
    }

    /// Applies one page of the change log: from the checkpoint, or past `after` (the last change
    /// of the page before). Returns the last change's number if the page was full (more may follow).
    async fn read_changes(
        &self,
        store: &Store,
        held: &mut HeldConnection,
        after: Option<i64>,
    ) -> Result<(Seen, Option<i64>), StoreError> {
        let checkpoint = self.lock().checkpoint;
        let checkpoint = match checkpoint {
            Some(at) => at,
            None => {
                let newest = store
                    .changes_newest_first(&[], None, None, PRIMING_CHANGES)
                    .await?;
                // Start below the newest changes, so that gaps among them are waited for.
                newest.last().map_or(0, |oldest| oldest.seq - 1)
            }
        };
        let start = after.unwrap_or(checkpoint);
        let changes = held.changes_after(start, CHANGES_PER_READ).await?;
        let mut inner = self.lock();
        let from = inner.checkpoint.unwrap_or(checkpoint);
        let (mut changed, mut gate_changed) = (false, false);
        for change in &changes {
            if change.seq <= from || !inner.applied.insert(change.seq) {
                continue;
            }
            changed = true;
            gate_changed |= GATE_TABLES.contains(&change.table.as_str());
        }
        let today = Utc::now().date_naive();
        if changed || inner.seen.day != today {
            inner.forget_resources();
            inner.seen.day = today;
        }
        if gate_changed {
            inner.clinic = None;
            inner.clients.clear();
            inner.seen.gate += 1;
        }
        let seen: Vec<_> = changes
            .iter()
            .map(|c| (c.seq, c.changed_at.as_datetime()))
            .collect();
        // The checkpoint moves only over a page that starts at it; past a gap it waits, and the
        // changes applied beyond it are remembered in `applied`.
        if start == from {
            let safe = safe_checkpoint(from, &seen, Utc::now(), COMMIT_GRACE);
            inner.checkpoint = Some(safe);
            inner.applied.retain(|seq| *seq > safe);
        }
        let full = changes.len() >= CHANGES_PER_READ as usize;
        Ok((
            inner.seen,
            full.then(|| seen.last().map(|(seq, _)| *seq)).flatten(),
        ))
    }

    pub fn clinic(&self) -> Option<Arc<Vec<String>>> {
        self.lock().clinic.clone()
    }

    pub fn keep_clinic(&self, seen: Seen, clinic: Arc<Vec<String>>) {
        let mut inner = self.lock();
        if inner.seen.gate == seen.gate {
            inner.clinic = Some(clinic);
        }
    }

    pub fn client(&self, id: &str) -> Option<Arc<ClientRows>> {
        self.lock().clients.get(id).cloned()
    }

    pub fn keep_client(&self, seen: Seen, id: String, rows: Arc<ClientRows>) {
        let mut inner = self.lock();
        if inner.seen.gate != seen.gate {
            return;
        }
        if inner.clients.len() >= MOST_CLIENTS {
            inner.clients.clear();
        }
        inner.clients.insert(id, rows);
    }

    /// An assembled resource, as the clinic store holds it now (before any gate).
    pub fn resource(&self, resource_type: &str, id: &str) -> Option<Arc<Value>> {
        self.lock()
            .resources
            .get(&(resource_type.to_owned(), id.to_owned()))
            .cloned()
    }

    pub fn keep_resource(&self, seen: Seen, resource_type: &str, id: &str, resource: Arc<Value>) {
        let mut inner = self.lock();
        if inner.seen.resources != seen.resources {
            return;
        }
        if inner.resources.len() >= MOST_RESOURCES {
            inner.resources.clear();
        }
        inner
            .resources
            .insert((resource_type.to_owned(), id.to_owned()), resource);
    }

    /// A search page as the assembler made it (before any gate), by its key (`page_key`).
    pub fn page(&self, key: &str) -> Option<Arc<Page>> {
        self.lock().pages.get(key).cloned()
    }

    pub fn keep_page(&self, seen: Seen, key: String, page: Arc<Page>) {
        let size = page.resources.len();
        if size > LARGEST_PAGE_KEPT {
            return;
        }
        let mut inner = self.lock();
        if inner.seen.resources != seen.resources {
            return;
        }
        if inner.pages.len() >= MOST_PAGES || inner.page_resources + size > MOST_PAGE_RESOURCES {
            inner.pages.clear();
            inner.page_resources = 0;
        }
        inner.page_resources += size;
        inner.pages.insert(key, page);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Never held across an await; a poisoned lock still holds consistent data.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}
