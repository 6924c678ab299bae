//! What a sync run did, counted as it goes (shared by its concurrent sends) and reported at the
//! end as a `Summary`.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

#[derive(Debug, Default)]
pub struct Counters {
    pub created: AtomicU64,
    pub updated: AtomicU64,
    pub deleted: AtomicU64,
    pub unchanged: AtomicU64,
    /// Not sent: consent keeps them from the target's organization.
    pub withheld: AtomicU64,
    /// Put in the dead-letter list (invalid at the source, or refused by the target).
    pub rejected: AtomicU64,
    /// Lost answers and unrecorded creates settled by reading the target.
    pub reconciled: AtomicU64,
    /// 409/412 answers: the target's version re-read and the write applied again.
    pub conflicts: AtomicU64,
    /// Searches by identifier that found several copies at the target (made by someone else).
    pub duplicates_at_target: AtomicU64,
    /// Pull: resources that exist at the target but are not about the clinic's clients.
    pub skipped: AtomicU64,
    /// Pull: the clinic edited the record since the last sync; its edit was kept.
    pub conflicts_kept_local: AtomicU64,
    /// Resources looked at (the progress bar's position).
    pub processed: AtomicU64,
}

impl Counters {
    pub fn add(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// A run's report (`sync push|pull` prints it; `--json` as is; `sync_runs.summary` keeps it).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct Summary {
    pub target: String,
    pub direction: String,
    pub dry_run: bool,
    pub created: u64,
    pub updated: u64,
    pub deleted: u64,
    pub unchanged: u64,
    pub withheld: u64,
    pub rejected: u64,
    pub reconciled: u64,
    pub conflicts: u64,
    pub duplicates_at_target: u64,
    pub skipped: u64,
    pub conflicts_kept_local: u64,
    /// Requests to the target, and how many were retries or waits for `Retry-After`.
    pub requests: u64,
    pub retried: u64,
    pub throttled: u64,
    pub token_renewals: u64,
    /// The push checkpoint after the run (change-log sequence number).
    pub checkpoint: i64,
    pub seconds: f64,
    /// Why the run stopped early, if it did.
    pub error: Option<String>,
}

impl Summary {
    pub fn count_from(&mut self, counters: &Counters) {
        let get = Counters::get;
        self.created = get(&counters.created);
        self.updated = get(&counters.updated);
        self.deleted = get(&counters.deleted);
        self.unchanged = get(&counters.unchanged);
        self.withheld = get(&counters.withheld);
        self.rejected = get(&counters.rejected);
        self.reconciled = get(&counters.reconciled);
        self.conflicts = get(&counters.conflicts);
        self.duplicates_at_target = get(&counters.duplicates_at_target);
        self.skipped = get(&counters.skipped);
        self.conflicts_kept_local = get(&counters.conflicts_kept_local);
    }

    /// `sent` as the reports name it: created, updated and deleted.
    pub fn sent(&self) -> u64 {
        self.created + self.updated + self.deleted
    }

    /// One line for people and logs.
    pub fn line(&self) -> String {
        let mut line = format!(
            "{} {}{}: {} sent ({} created, {} updated, {} deleted), {} unchanged, {} withheld by consent, {} rejected, {} retried, {} reconciled, {} conflicts, in {:.1} s",
            self.direction,
            self.target,
            if self.dry_run { " (dry run)" } else { "" },
            self.sent(),
            self.created,
            self.updated,
            self.deleted,
            self.unchanged,
            self.withheld,
            self.rejected,
            self.retried,
            self.reconciled,
            self.conflicts,
            self.seconds
        );
        if self.direction == "pull" {
            line.push_str(&format!(
                "; {} not about the clinic's clients, {} kept the clinic's edit",
                self.skipped, self.conflicts_kept_local
            ));
        }
        if self.duplicates_at_target > 0 {
            line.push_str(&format!(
                "; the target holds duplicates of {} resources (not made by this gateway)",
                self.duplicates_at_target
            ));
        }
        if let Some(error) = &self.error {
            line.push_str(&format!("; stopped: {error}"));
        }
        line
    }
}
