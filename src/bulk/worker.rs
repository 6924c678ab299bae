//! The export worker `serve` runs: it claims queued jobs (or jobs whose holder died: their lease
//! lapsed) from the database, runs a few at a time, renews each lease as it goes, and removes
//! the files of cancelled and expired jobs. Every replica runs one; the lease decides who runs
//! what, so a job runs once at a time and survives the death of the process running it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::files::JobFiles;
use super::run;
use crate::consent::Policy;
use crate::domain::{AuditInteraction, AuditOutcome, AuditRecord, Timestamp};
use crate::mapping::MappingConfig;
use crate::store::{Backend, ExportJob, Store};

#[derive(Debug, Clone)]
pub struct BulkSettings {
    /// Where the files are (shared by every replica).
    pub dir: PathBuf,
    /// How long a finished export's files are kept.
    pub keep_for: Duration,
    /// A lease not renewed for this long is taken over.
    pub lease: Duration,
    /// How often the worker looks for jobs.
    pub poll: Duration,
    /// Jobs run at once by this process.
    pub concurrency: usize,
    /// Workers (tasks) per running job, each exporting its own id range of a type.
    pub workers_per_job: usize,
}

impl Default for BulkSettings {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("iop-gateway-exports"),
            keep_for: Duration::from_secs(24 * 3600),
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(500),
            concurrency: 2,
            workers_per_job: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

impl BulkSettings {
    /// `workers` tasks per job where given. Else one and a half per core on SQLite and two per
    /// core on PostgreSQL: a task waits for its statements on the connection's thread (SQLite)
    /// or on round trips (PostgreSQL), and the cores idle unless another task is ready. On 2
    /// cores, SQLite: 2 tasks kept 1.57 cores busy, 3 tasks 1.71, 4 tasks 1.73 for 10 MB more
    /// memory; PostgreSQL: 4 tasks ran 31,000-33,000 resources/s against 26,000 with 2
    /// (docs/benchmarks.md).
    pub fn with_workers(self, workers: Option<u64>, backend: Backend) -> Self {
        let (times, per) = match backend {
            Backend::Sqlite => (3, 2),
            Backend::Postgres => (2, 1),
        };
        Self {
            workers_per_job: workers
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or((self.workers_per_job * times / per).max(1)),
            ..self
        }
    }
}

/// Starts the worker on the runtime; it runs as long as the process.
pub fn spawn(
    store: Store,
    mapping: Arc<MappingConfig>,
    policy: Arc<Policy>,
    settings: BulkSettings,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let worker = uuid::Uuid::new_v4().to_string();
        let slots = Arc::new(tokio::sync::Semaphore::new(settings.concurrency.max(1)));
        loop {
            if let Err(err) = remove_finished(&store, &settings).await {
                tracing::warn!(error = %err, "could not remove expired exports");
            }
            while let Ok(slot) = Arc::clone(&slots).try_acquire_owned() {
                // A holder per claim: if this run's lease ever lapsed and the job were claimed
                // again (even by this worker), the old run could no longer renew or finish it.
                let holder = format!("{worker}/{}", uuid::Uuid::new_v4());
                match store.claim_export_job(&holder, settings.lease).await {
                    Ok(Some(job)) => {
                        let (store, mapping, policy, settings, holder) = (
                            store.clone(),
                            Arc::clone(&mapping),
                            Arc::clone(&policy),
                            settings.clone(),
                            holder.clone(),
                        );
                        tokio::spawn(async move {
                            execute(&store, &mapping, &policy, &settings, &holder, job).await;
                            drop(slot);
                        });
                    }
                    Ok(None) => break,
                    Err(err) => {
                        tracing::warn!(error = %err, "could not claim an export job");
                        break;
                    }
                }
            }
            tokio::time::sleep(settings.poll).await;
        }
    })
}

/// Runs one claimed job to its end (done, failed, or given up because it is no longer ours).
pub async fn execute(
    store: &Store,
    mapping: &Arc<MappingConfig>,
    policy: &Policy,
    settings: &BulkSettings,
    holder: &str,
    job: ExportJob,
) {
    tracing::info!(job = %job.id, attempt = job.attempts, "export started");
    let started = std::time::Instant::now();
    // A heartbeat renews the lease three times per lease period, however long a page takes;
    // the run checks after each page that the job is still this holder's.
    let ours = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let progress = Arc::new(std::sync::Mutex::new(String::from("started")));
    let heartbeat = {
        let (store, ours, progress) = (store.clone(), Arc::clone(&ours), Arc::clone(&progress));
        let (id, holder, lease) = (job.id.clone(), holder.to_owned(), settings.lease);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                let now = progress.lock().unwrap_or_else(|e| e.into_inner()).clone();
                match store.renew_export_lease(&id, &holder, lease, &now).await {
                    Ok(true) => {}
                    // Not renewed is as good as lost: another replica may take the job once
                    // the lease lapses, so this run stops rather than write beside it.
                    Ok(false) | Err(_) => {
                        tracing::warn!(job = %id, "an export's lease was not renewed: stopping this run");
                        ours.store(false, std::sync::atomic::Ordering::SeqCst);
                        break;
                    }
                }
            }
        })
    };
    // The heartbeat stops with this function, also if the run panics.
    struct StopOnDrop(tokio::task::JoinHandle<()>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let heartbeat = StopOnDrop(heartbeat);
    let still_ours = |now: String| {
        *progress.lock().unwrap_or_else(|e| e.into_inner()) = now;
        let ours = ours.load(std::sync::atomic::Ordering::SeqCst);
        async move { Ok(ours) }
    };
    let result = run::run(
        store,
        mapping,
        policy.clone(),
        &settings.dir,
        &job,
        settings.workers_per_job,
        still_ours,
    )
    .await;
    drop(heartbeat);
    let expires = Timestamp::from(
        chrono::Utc::now()
            + chrono::Duration::from_std(settings.keep_for).unwrap_or(chrono::Duration::days(1)),
    );
    let outcome = match &result {
        Ok(written) => Ok(serde_json::to_string(written).unwrap_or_default()),
        Err(run::RunError::NoLongerOurs) => {
            tracing::info!(job = %job.id, "export stopped: cancelled or taken over");
            return;
        }
        Err(err) => {
            tracing::error!(job = %job.id, error = %err, "export failed");
            Err(err.to_string())
        }
    };
    match store
        .finish_export_job(&job.id, holder, outcome, expires)
        .await
    {
        Ok(true) => {}
        Ok(false) => return,
        Err(err) => {
            tracing::error!(job = %job.id, error = %err, "could not record the export's end");
            return;
        }
    }
    // The accounting of the disclosure: who, what types, how many of each.
    let record = completion_record(&job, result.as_ref().ok());
    if let Err(err) = store.append_audit(&record).await {
        tracing::error!(job = %job.id, error = %err, "could not audit the export");
    }
    tracing::info!(
        job = %job.id,
        resources = result.as_ref().map(|w| w.output.iter().map(|f| f.count).sum::<u64>()).unwrap_or(0),
        seconds = started.elapsed().as_secs_f64(),
        "export finished"
    );
}

fn completion_record(job: &ExportJob, written: Option<&run::Written>) -> AuditRecord {
    let counts: Vec<String> = written
        .map(|w| {
            w.output
                .iter()
                .map(|f| format!("{}={}", f.resource_type, f.count))
                .collect()
        })
        .unwrap_or_default();
    AuditRecord {
        id: uuid::Uuid::now_v7().to_string(),
        recorded: Timestamp::now(),
        interaction: AuditInteraction::Export,
        outcome: if written.is_some() {
            AuditOutcome::Success
        } else {
            AuditOutcome::Failed
        },
        outcome_desc: Some(format!("export {} wrote {}", job.id, counts.join(", "))),
        client_id: Some(job.client_id.clone()),
        organization_id: job.organization_id.clone(),
        purpose_of_use: job.purpose_of_use.clone(),
        token_id: None,
        request_id: None,
        source_address: None,
        resource_type: None,
        query: Some(job.request.clone()),
        entities: Vec::new(),
        consents: Vec::new(),
        patients: Vec::new(),
    }
}

/// Removes the files and rows of cancelled jobs and of finished jobs past their time.
async fn remove_finished(
    store: &Store,
    settings: &BulkSettings,
) -> Result<(), crate::store::StoreError> {
    for id in store.export_jobs_to_remove().await? {
        if let Some(files) = JobFiles::of(&settings.dir, &id)
            && let Err(err) = files.remove()
        {
            tracing::warn!(job = %id, error = %err, "could not remove an export's files");
            continue;
        }
        store.delete_export_job(&id).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on_cores(cores: usize) -> BulkSettings {
        BulkSettings {
            workers_per_job: cores,
            ..BulkSettings::default()
        }
    }

    #[test]
    fn tasks_per_job_follow_the_backend_unless_given() {
        // (cores, backend, --export-workers, tasks)
        for (cores, backend, given, tasks) in [
            (2, Backend::Sqlite, None, 3),
            (4, Backend::Sqlite, None, 6),
            (1, Backend::Sqlite, None, 1),
            (2, Backend::Postgres, None, 4),
            (2, Backend::Sqlite, Some(5), 5),
            (2, Backend::Postgres, Some(7), 7),
        ] {
            let settings = on_cores(cores).with_workers(given, backend);
            assert_eq!(settings.workers_per_job, tasks, "{cores} cores, {given:?}");
        }
    }
}
