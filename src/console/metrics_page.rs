//! `GET /metrics`: the Prometheus text exposition. Counters and histograms come from the
//! process's recorder (`crate::telemetry`); the gauges of what the database holds are read now,
//! so any replica reports the same dead letters, lag and export jobs. On the console's address
//! only, without sign-in (what a Prometheus scraper expects), and without PHI or ids.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ConsoleState;
use crate::store::{JobState, StoreError};

pub async fn render(State(state): State<ConsoleState>) -> Response {
    let Some(handle) = crate::telemetry::handle() else {
        return (
            StatusCode::NOT_FOUND,
            "metrics go to the recorder this process installed, not to /metrics\n",
        )
            .into_response();
    };
    if let Err(error) = database_gauges(&state).await {
        tracing::warn!(%error, "metrics: the clinic database did not answer");
        metrics::gauge!("iop_database_up").set(0.0);
    } else {
        metrics::gauge!("iop_database_up").set(1.0);
    }
    handle.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response()
}

async fn database_gauges(state: &ConsoleState) -> Result<(), StoreError> {
    let store = &state.store;
    let newest = store.newest_change().await?;
    for target in store.sync_targets().await? {
        let dead = store.dead_letters(Some(&target.name)).await?.len();
        metrics::gauge!("iop_sync_dead_letters", "target" => target.name.clone()).set(dead as f64);
        metrics::gauge!("iop_sync_lag_changes", "target" => target.name.clone())
            .set((newest - target.push_checkpoint).max(0) as f64);
    }
    let counts = store.export_job_counts().await?;
    for state in [
        JobState::Queued,
        JobState::Running,
        JobState::Done,
        JobState::Failed,
        JobState::Cancelled,
    ] {
        let n = counts
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n);
        metrics::gauge!("iop_export_jobs", "state" => state.to_string()).set(n as f64);
    }
    let (open, idle) = store.pool_use();
    metrics::gauge!("iop_database_connections", "state" => "open").set(f64::from(open));
    metrics::gauge!("iop_database_connections", "state" => "idle").set(idle as f64);
    Ok(())
}
