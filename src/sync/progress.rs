//! A run's progress written to its `sync_runs` row about once a second — changes looked at of
//! how many, and the counts so far (requests, retries and waits included) as a partial summary — so that whichever replica serves the
//! console can show it (the run itself may be on another).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::Direction;
use super::counters::{Counters, Summary};
use crate::store::Store;

const EVERY: Duration = Duration::from_secs(1);

pub struct Recorder {
    latest: Arc<(AtomicU64, AtomicU64)>,
    writer: tokio::task::JoinHandle<()>,
    store: Store,
    run_id: String,
}

impl Recorder {
    pub fn start(
        store: &Store,
        run_id: &str,
        counters: Arc<Counters>,
        fhir: crate::outbound::target::FhirTarget,
        target: &str,
        direction: Direction,
    ) -> Self {
        let latest = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
        let writer = {
            let (latest, store, run_id) = (Arc::clone(&latest), store.clone(), run_id.to_owned());
            let mut summary = Summary {
                target: target.to_owned(),
                direction: direction.name().to_owned(),
                ..Default::default()
            };
            tokio::spawn(async move {
                let mut written = String::new();
                loop {
                    tokio::time::sleep(EVERY).await;
                    summary.count_from(&counters);
                    let stats = fhir.stats();
                    summary.requests = stats.requests_sent;
                    summary.retried = stats.retried;
                    summary.throttled = stats.throttled;
                    let (done, total) = (
                        latest.0.load(Ordering::Relaxed),
                        latest.1.load(Ordering::Relaxed),
                    );
                    let now = format!(
                        "{done} {total} {}",
                        serde_json::to_string(&summary).unwrap_or_default()
                    );
                    if now == written {
                        continue;
                    }
                    let partial = serde_json::to_string(&summary).unwrap_or_default();
                    // Progress is a courtesy: a failed write is tried again next second.
                    if store
                        .record_sync_progress(&run_id, done, total, Some(&partial))
                        .await
                        .is_ok()
                    {
                        written = now;
                    }
                }
            })
        };
        Self {
            latest,
            writer,
            store: store.clone(),
            run_id: run_id.to_owned(),
        }
    }

    pub fn set(&self, done: u64, total: u64) {
        self.latest.0.store(done, Ordering::Relaxed);
        self.latest.1.store(total, Ordering::Relaxed);
    }

    /// Stops the writer and records where the run ended (its summary follows).
    pub async fn finish(self) {
        self.writer.abort();
        let (done, total) = (
            self.latest.0.load(Ordering::Relaxed),
            self.latest.1.load(Ordering::Relaxed),
        );
        if let Err(error) = self
            .store
            .record_sync_progress(&self.run_id, done, total, None)
            .await
        {
            tracing::warn!(%error, "could not record a sync run's last progress");
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.writer.abort();
    }
}
