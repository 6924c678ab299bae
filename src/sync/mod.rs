//! The sync engine: push the clinic's changes to EHR FHIR endpoints ("targets") and pull what
//! the clinic takes from them, so that retries, lost answers, crashes and several replicas never
//! lose or double anything.
//!
//! - `plan.rs` — what a window of the change log asks to send, in dependency order (pure).
//! - `checkpoint.rs` — how far the durable checkpoint may move past gaps (pure).
//! - `references.rs` — references rewritten between clinic and target ids (pure).
//! - `write.rs` — one resource written idempotently (conditional update, or identity map with
//!   `If-Match`; lost answers reconciled by identifier).
//! - `push.rs`, `pull.rs` — the two runs; `lease.rs` — one run per target at a time;
//!   `connect.rs` — a target's settings as an outbound client (`outbound::target`);
//!   `counters.rs` — what a run reports; `schedule.rs` — what `serve` runs per interval.
//!
//! What leaves passes the disclosure gate with the target's organization as the recipient.

pub(crate) mod checkpoint;
mod connect;
mod counters;
mod lease;
mod plan;
mod progress;
mod pull;
mod push;
mod references;
mod referral_status;
mod schedule;
mod write;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub use connect::SMART_SCOPE;
pub use counters::Summary;
pub use plan::PUSH_ORDER;
pub use pull::PULL_TYPES;
pub use schedule::{ScheduleSettings, run_scheduled};

use crate::consent::Policy;
use crate::disclose::{Audience, Gate};
use crate::mapping::MappingConfig;
use crate::outbound::target::TargetLimits;
use crate::store::{Store, StoreError};
use crate::validation::Validator;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("no sync target is named {0} (see `targets list`)")]
    NoTarget(String),
    #[error("another process is syncing target {target} and did not finish within {waited} s")]
    Busy { target: String, waited: u64 },
    #[error("the lease on target {0} was lost (another process took the target over)")]
    LeaseLost(String),
    #[error("target {target}: {reason}")]
    Target { target: String, reason: String },
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Assemble(#[from] crate::assemble::AssembleError),
}

/// What every run needs from the gateway.
#[derive(Clone)]
pub struct Engine {
    pub store: Store,
    pub mapping: Arc<MappingConfig>,
    pub validator: Arc<Validator>,
    pub policy: Arc<Policy>,
}

/// How a run behaves.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Look and report, send and record nothing.
    pub dry_run: bool,
    /// The target's lease: how long it lasts without renewal (a dead holder's lapses after it).
    pub lease: Duration,
    /// How long to wait for another process's run of the same target.
    pub wait_for_lease: Duration,
    /// How old a gap in the change log must be before the checkpoint passes it.
    pub commit_grace: chrono::Duration,
    /// Push: send the dead-letter list again first.
    pub retry_dead_letters: bool,
    /// Push, with `retry_dead_letters`: only this letter (resource type, clinic id).
    pub retry_only: Option<(String, String)>,
    /// Push: how a resource new to the target is created.
    pub create_with: CreateWith,
    /// Push: send resources whose target ids are known in `batch` Bundles where the target
    /// takes them.
    pub batch: bool,
    /// Pull: the target's edit wins over the clinic's (default: the clinic's stands).
    pub remote_wins: bool,
    pub limits: TargetLimits,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            lease: Duration::from_secs(30),
            wait_for_lease: Duration::from_secs(600),
            commit_grace: chrono::Duration::minutes(10),
            retry_dead_letters: false,
            retry_only: None,
            create_with: CreateWith::Auto,
            batch: true,
            remote_wins: false,
            limits: TargetLimits::default(),
        }
    }
}

/// How a push creates a resource the target does not have yet. Each way is safe against lost
/// answers and crashes; they differ in what the target must support and in what a retry costs.
/// A way named explicitly is used even where the CapabilityStatement does not list it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CreateWith {
    /// The first of the others the target's CapabilityStatement offers for the type.
    Auto,
    /// `PUT Type/{clinic id}` (`updateCreate`): a resend is the same write; nothing to search.
    ClientId,
    /// `PUT Type?identifier=...` (`conditionalUpdate`): the target finds it by identifier.
    Conditional,
    /// `POST` with the target's ids, kept in the identity map; a create whose answer was lost
    /// is looked up by identifier before anything is sent again.
    Post,
}

/// Which way a run goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Push,
    Pull,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Self::Push => "push",
            Self::Pull => "pull",
        }
    }
}

/// Runs one push or pull of `target` under its lease, records the run, and reports it. A run
/// stopped by the target (down, refusing the credentials) or by a lost lease still reports what
/// it did, with the reason in `error`; the checkpoint holds what was confirmed.
pub async fn run(
    engine: &Engine,
    target: &str,
    direction: Direction,
    options: &RunOptions,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Summary, SyncError> {
    let started = Instant::now();
    let config = engine
        .store
        .sync_target(target)
        .await?
        .ok_or_else(|| SyncError::NoTarget(target.to_owned()))?;
    let fhir = connect::connect(&config, options.limits.clone())?;
    let lease = if options.dry_run {
        None
    } else {
        Some(
            lease::Lease::acquire(&engine.store, target, options.lease, options.wait_for_lease)
                .await?,
        )
    };
    // Read again under the lease: the checkpoint is what the previous holder left.
    let config = engine
        .store
        .sync_target(target)
        .await?
        .ok_or_else(|| SyncError::NoTarget(target.to_owned()))?;
    let run_id = uuid::Uuid::new_v4().to_string();
    if !options.dry_run {
        engine
            .store
            .start_sync_run(&run_id, target, direction.name())
            .await?;
    }
    let counters = Arc::new(counters::Counters::default());
    // Progress and the counts so far go to the run's row too, so the console of every replica
    // can show them while the run goes on.
    let recorder = (!options.dry_run).then(|| {
        progress::Recorder::start(
            &engine.store,
            &run_id,
            Arc::clone(&counters),
            fhir.clone(),
            target,
            direction,
        )
    });
    let progress = &|done: u64, total: u64| {
        if let Some(recorder) = &recorder {
            recorder.set(done, total);
        }
        progress(done, total);
    };
    let today = chrono::Utc::now().date_naive();
    let outcome: Result<i64, SyncError> = async {
        let capabilities = fhir.capabilities().await.map_err(|e| SyncError::Target {
            target: target.to_owned(),
            reason: e.to_string(),
        })?;
        match direction {
            Direction::Push => {
                let types: Vec<String> = config
                    .resources
                    .iter()
                    .filter(|t| takes(&capabilities, t))
                    .cloned()
                    .collect();
                let recipient = recipient_of(engine, &config).await?;
                // A step-down (or step-up) provider's target: the transitions due are referred
                // first, so this push sends them.
                if !options.dry_run && config.send_transitions.is_some() {
                    let due = crate::referrals::outbound::send_due(&engine.store, &config, today)
                        .await
                        .map_err(|e| SyncError::Config(e.to_string()))?;
                    if !due.is_empty() {
                        tracing::info!(
                            target_name = target,
                            referrals = due.len(),
                            "transition referrals recorded"
                        );
                    }
                }
                let dead = engine
                    .store
                    .dead_letters(Some(target))
                    .await?
                    .into_iter()
                    .filter(|l| l.direction == "push")
                    .map(|l| (l.resource_type, l.local_id))
                    .collect();
                let run = push::PushRun {
                    engine,
                    target: &config,
                    fhir: &fhir,
                    capabilities: &capabilities,
                    types,
                    options,
                    lease: lease.as_ref(),
                    counters: &counters,
                    gate: tokio::sync::Mutex::new(Gate::new(
                        recipient,
                        (*engine.policy).clone(),
                        today,
                    )),
                    today,
                    locks: Default::default(),
                    dead,
                    rejected: Default::default(),
                    dry_sent: Default::default(),
                    known: Default::default(),
                    rejudged: Default::default(),
                    sourced: engine
                        .store
                        .referrals_sourced_at(&config.base_url)
                        .await?
                        .into_iter()
                        .map(|s| (s.referral_id.to_string(), s))
                        .collect(),
                };
                run.run(progress).await
            }
            Direction::Pull => {
                let run = pull::PullRun {
                    engine,
                    state: crate::fhir_api::FhirState::for_ingest(
                        engine.store.clone(),
                        Arc::clone(&engine.validator),
                        Arc::clone(&engine.mapping),
                        Arc::clone(&engine.policy),
                    ),
                    target: &config,
                    fhir: &fhir,
                    capabilities: &capabilities,
                    options,
                    lease: lease.as_ref(),
                    counters: &counters,
                    today,
                };
                run.run().await.map(|()| config.push_checkpoint)
            }
        }
    }
    .await;
    let mut summary = Summary {
        target: target.to_owned(),
        direction: direction.name().to_owned(),
        dry_run: options.dry_run,
        ..Default::default()
    };
    summary.count_from(&counters);
    let stats = fhir.stats();
    summary.requests = stats.requests_sent;
    summary.retried = stats.retried;
    summary.throttled = stats.throttled;
    summary.token_renewals = stats.token_renewals;
    summary.seconds = started.elapsed().as_secs_f64();
    match outcome {
        Ok(checkpoint) => summary.checkpoint = checkpoint,
        Err(SyncError::Store(error)) => {
            if let Some(lease) = lease {
                lease.release().await;
            }
            return Err(SyncError::Store(error));
        }
        Err(error) => {
            summary.checkpoint = engine
                .store
                .sync_target(target)
                .await?
                .map(|t| t.push_checkpoint)
                .unwrap_or_default();
            summary.error = Some(error.to_string());
        }
    }
    if let Some(recorder) = recorder {
        recorder.finish().await;
    }
    if !options.dry_run {
        let encoded = serde_json::to_string(&summary).unwrap_or_default();
        engine
            .store
            .finish_sync_run(&run_id, &encoded, summary.error.as_deref())
            .await?;
    }
    if let Some(lease) = lease {
        lease.release().await;
    }
    if !options.dry_run {
        record_metrics(&summary);
    }
    tracing::info!(
        target_name = target,
        direction = direction.name(),
        sent = summary.sent(),
        unchanged = summary.unchanged,
        rejected = summary.rejected,
        seconds = summary.seconds,
        "sync run finished"
    );
    Ok(summary)
}

/// The target's CapabilityStatement as it answers now (with its authentication, retries and
/// circuit breaker, as a run would ask).
pub async fn target_statement(store: &Store, target: &str) -> Result<Value, SyncError> {
    let config = store
        .sync_target(target)
        .await?
        .ok_or_else(|| SyncError::NoTarget(target.to_owned()))?;
    let fhir = connect::connect(&config, TargetLimits::default())?;
    let failed = |reason: String| SyncError::Target {
        target: target.to_owned(),
        reason,
    };
    let response = fhir
        .send(crate::outbound::target::FhirRequest::get("metadata"))
        .await
        .map_err(|e| failed(e.to_string()))?;
    match (response.status, response.body) {
        (200, Some(body)) => Ok(body),
        (status, _) => Err(failed(format!("metadata answered HTTP {status}"))),
    }
}

/// A finished run's counts in `/metrics` (labels: the target's name, never a record's).
fn record_metrics(summary: &Summary) {
    use crate::telemetry::{SYNC_RESOURCES, SYNC_RUNS};
    for (result, count) in [
        ("sent", summary.sent()),
        ("rejected", summary.rejected),
        ("retried", summary.retried),
        ("reconciled", summary.reconciled),
    ] {
        metrics::counter!(
            SYNC_RESOURCES,
            "target" => summary.target.clone(),
            "direction" => summary.direction.clone(),
            "result" => result
        )
        .increment(count);
    }
    metrics::counter!(
        SYNC_RUNS,
        "target" => summary.target.clone(),
        "direction" => summary.direction.clone(),
        "outcome" => if summary.error.is_some() { "stopped" } else { "ok" }
    )
    .increment(1);
}

/// Whom consent judges a target's disclosures for: its organization, or the clinic's own when
/// none is named (the clinic's own EHR), with the purpose treatment.
async fn recipient_of(
    engine: &Engine,
    target: &crate::store::SyncTarget,
) -> Result<Audience, SyncError> {
    let organization = match &target.organization_id {
        Some(id) => id.clone(),
        None => crate::disclose::clinic_organizations(&engine.store)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| {
                SyncError::Config("the clinic database has no clinic organization".into())
            })?,
    };
    Ok(Audience::of(false, Some(&organization), Some("TREAT")))
}

/// Whether a target's CapabilityStatement has the type (one that lists none is taken to have all).
fn takes(capabilities: &crate::outbound::target::Capabilities, resource_type: &str) -> bool {
    capabilities.search_params.is_empty() || capabilities.search_params.contains_key(resource_type)
}

/// An OperationOutcome with one error issue.
pub(crate) fn message_outcome(message: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{ "severity": "error", "code": "processing", "diagnostics": message }]
    })
}
