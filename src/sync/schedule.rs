//! What `serve` runs: each target with an interval is pushed, then pulled, once per interval, by
//! whichever replica takes the due run (`Store::take_due_sync`), under the same lease as a run
//! from the command line.

use std::time::Duration;

use super::{Direction, Engine, RunOptions, SyncError, run};
use crate::domain::Timestamp;

#[derive(Debug, Clone)]
pub struct ScheduleSettings {
    /// How often the targets are looked at.
    pub poll: Duration,
    pub options: RunOptions,
}

impl Default for ScheduleSettings {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(5),
            options: RunOptions {
                // A target another process is syncing is left to it.
                wait_for_lease: Duration::ZERO,
                ..RunOptions::default()
            },
        }
    }
}

/// Runs due syncs until the task is dropped.
pub async fn run_scheduled(engine: Engine, settings: ScheduleSettings) {
    loop {
        if let Err(error) = run_due(&engine, &settings).await {
            tracing::warn!(%error, "scheduled syncs could not run; trying again");
        }
        tokio::time::sleep(settings.poll).await;
    }
}

async fn run_due(engine: &Engine, settings: &ScheduleSettings) -> Result<(), SyncError> {
    for target in engine.store.due_sync_targets().await? {
        let interval = Duration::from_secs(target.interval_seconds.unwrap_or(900).max(1) as u64);
        let next = chrono::Duration::from_std(interval).unwrap_or(chrono::Duration::minutes(15));
        let next_run_at = Timestamp::from(Timestamp::now().as_datetime() + next).to_db_text();
        if !engine
            .store
            .take_due_sync(&target.name, &next_run_at)
            .await?
        {
            continue;
        }
        let mut lines = Vec::new();
        for direction in [Direction::Push, Direction::Pull] {
            match run(
                engine,
                &target.name,
                direction,
                &settings.options,
                &|_, _| {},
            )
            .await
            {
                Ok(summary) => lines.push(summary.line()),
                Err(SyncError::Busy { .. }) => {
                    lines.push(format!("{}: another process was syncing", direction.name()))
                }
                Err(error) => lines.push(format!("{} failed: {error}", direction.name())),
            }
        }
        let at = Timestamp::now().to_db_text();
        engine
            .store
            .set_last_sync(&target.name, &format!("{at} {}", lines.join("; ")))
            .await?;
    }
    Ok(())
}
