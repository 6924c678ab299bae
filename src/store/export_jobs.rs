//! Bulk export jobs: rows any replica can claim. A claim is a lease (holder and expiry) set by a
//! conditional UPDATE that only one claimant can win — on PostgreSQL the second UPDATE re-reads
//! the row after the first commits and finds it taken — so a job runs once at a time, and a job
//! whose holder died (its lease lapsed) is claimed again and started over.

use std::time::Duration;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError};
use crate::domain::Timestamp;

const JOBS: &str = "bulk_exports";

code_enum! {
    pub enum JobState {
        Queued => "queued",
        Running => "running",
        Done => "done",
        Failed => "failed",
        Cancelled => "cancelled",
    }
}

/// One export job as stored. `params` and `manifest` are JSON the store does not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportJob {
    pub id: String,
    pub client_id: String,
    pub organization_id: Option<String>,
    pub purpose_of_use: Option<String>,
    pub scopes: String,
    pub open_access: bool,
    pub request: String,
    pub params: String,
    pub state: JobState,
    pub transaction_time: Timestamp,
    pub created_at: Timestamp,
    pub attempts: i64,
    pub progress: Option<String>,
    pub manifest: Option<String>,
    pub error: Option<String>,
    pub expires_at: Option<Timestamp>,
}

const COLUMNS: &str = "id, client_id, organization_id, purpose_of_use, scopes, open_access, \
     request, params, state, transaction_time, created_at, attempts, progress, manifest, error, \
     expires_at";

fn job_of(row: &AnyRow) -> Result<ExportJob, StoreError> {
    let id: String = row.try_get("id")?;
    let bad = |column: &'static str| StoreError::Corrupt {
        table: JOBS,
        id: id.clone(),
        column,
        reason: "unreadable".into(),
    };
    let time = |column: &'static str| -> Result<Timestamp, StoreError> {
        row.try_get::<String, _>(column)?
            .parse()
            .map_err(|_| bad(column))
    };
    let state: String = row.try_get("state")?;
    Ok(ExportJob {
        client_id: row.try_get("client_id")?,
        organization_id: row.try_get("organization_id")?,
        purpose_of_use: row.try_get("purpose_of_use")?,
        scopes: row.try_get("scopes")?,
        open_access: row.try_get::<i64, _>("open_access")? == 1,
        request: row.try_get("request")?,
        params: row.try_get("params")?,
        state: state.parse().map_err(|_| bad("state"))?,
        transaction_time: time("transaction_time")?,
        created_at: time("created_at")?,
        attempts: row.try_get("attempts")?,
        progress: row.try_get("progress")?,
        manifest: row.try_get("manifest")?,
        error: row.try_get("error")?,
        expires_at: row
            .try_get::<Option<String>, _>("expires_at")?
            .map(|t| t.parse().map_err(|_| bad("expires_at")))
            .transpose()?,
        id,
    })
}

fn after(lease: Duration) -> String {
    let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60));
    Timestamp::from(Timestamp::now().as_datetime() + lease).to_db_text()
}

impl Store {
    /// How many export jobs are in each state (states without jobs left out).
    pub async fn export_job_counts(&self) -> Result<Vec<(JobState, i64)>, StoreError> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM bulk_exports GROUP BY state")
            .fetch_all(&self.pool)
            .await?;
        let mut counts = Vec::new();
        for row in rows {
            let state: String = row.try_get("state")?;
            if let Ok(state) = state.parse() {
                counts.push((state, row.try_get::<i64, _>("n")?));
            }
        }
        Ok(counts)
    }

    pub async fn insert_export_job(&self, job: &ExportJob) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO bulk_exports (id, client_id, organization_id, purpose_of_use, scopes, \
             open_access, request, params, state, transaction_time, created_at, attempts) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0)",
        )
        .bind(job.id.clone())
        .bind(job.client_id.clone())
        .bind(job.organization_id.clone())
        .bind(job.purpose_of_use.clone())
        .bind(job.scopes.clone())
        .bind(i64::from(job.open_access))
        .bind(job.request.clone())
        .bind(job.params.clone())
        .bind(job.state.code().to_owned())
        .bind(job.transaction_time.to_db_text())
        .bind(job.created_at.to_db_text())
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::on_write(JOBS, e))?;
        Ok(())
    }

    pub async fn export_job(&self, id: &str) -> Result<Option<ExportJob>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM bulk_exports WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_of).transpose()
    }

    /// Claims the oldest job that is queued, or running under a lapsed lease, for `holder`;
    /// None when there is none (or another replica won it).
    pub async fn claim_export_job(
        &self,
        holder: &str,
        lease: Duration,
    ) -> Result<Option<ExportJob>, StoreError> {
        let now = Timestamp::now().to_db_text();
        let claimable = "(state = 'queued' OR (state = 'running' AND lease_expires < $1))";
        let candidate = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT id FROM bulk_exports WHERE {claimable} ORDER BY created_at, id LIMIT 1"
        )))
        .bind(now.clone())
        .fetch_optional(&self.pool)
        .await?;
        let Some(candidate) = candidate else {
            return Ok(None);
        };
        let id: String = candidate.try_get("id")?;
        let won = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE bulk_exports SET state = 'running', lease_holder = $2, lease_expires = $3, \
             attempts = attempts + 1 WHERE id = $4 AND {claimable}"
        )))
        .bind(now)
        .bind(holder.to_owned())
        .bind(after(lease))
        .bind(id.clone())
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::on_write(JOBS, e))?
        .rows_affected()
            == 1;
        if !won {
            return Ok(None);
        }
        self.export_job(&id).await
    }

    /// Extends `holder`'s lease and records progress. False when the job is no longer this
    /// holder's to run (cancelled, or its lease lapsed and another replica took it).
    pub async fn renew_export_lease(
        &self,
        id: &str,
        holder: &str,
        lease: Duration,
        progress: &str,
    ) -> Result<bool, StoreError> {
        let renewed = sqlx::query(
            "UPDATE bulk_exports SET lease_expires = $1, progress = $2 \
             WHERE id = $3 AND lease_holder = $4 AND state = 'running'",
        )
        .bind(after(lease))
        .bind(progress.to_owned())
        .bind(id.to_owned())
        .bind(holder.to_owned())
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::on_write(JOBS, e))?;
        Ok(renewed.rows_affected() == 1)
    }

    /// Marks `holder`'s job done (with its manifest) or failed (with `error`). False when it was
    /// no longer this holder's.
    pub async fn finish_export_job(
        &self,
        id: &str,
        holder: &str,
        outcome: Result<String, String>,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        let (state, manifest, error) = match outcome {
            Ok(manifest) => (JobState::Done, Some(manifest), None),
            Err(error) => (JobState::Failed, None, Some(error)),
        };
        let finished = sqlx::query(
            "UPDATE bulk_exports SET state = $1, manifest = $2, error = $3, expires_at = $4, \
             lease_holder = NULL, lease_expires = NULL, progress = NULL \
             WHERE id = $5 AND lease_holder = $6 AND state = 'running'",
        )
        .bind(state.code().to_owned())
        .bind(manifest)
        .bind(error)
        .bind(expires_at.to_db_text())
        .bind(id.to_owned())
        .bind(holder.to_owned())
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::on_write(JOBS, e))?;
        Ok(finished.rows_affected() == 1)
    }

    /// Cancels a job that is not finished, or forgets a finished one (its files are the
    /// caller's to remove). False when there is no such job.
    pub async fn cancel_export_job(&self, id: &str) -> Result<bool, StoreError> {
        let cancelled = sqlx::query(
            "UPDATE bulk_exports SET state = 'cancelled', lease_holder = NULL, \
             lease_expires = NULL, manifest = NULL WHERE id = $1 AND state <> 'cancelled'",
        )
        .bind(id.to_owned())
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::on_write(JOBS, e))?;
        Ok(cancelled.rows_affected() == 1)
    }

    /// Jobs whose files should go: finished jobs past their expiry, and cancelled jobs.
    pub async fn export_jobs_to_remove(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM bulk_exports WHERE state = 'cancelled' \
             OR (state IN ('done', 'failed') AND expires_at < $1)",
        )
        .bind(Timestamp::now().to_db_text())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>("id").map_err(StoreError::from))
            .collect()
    }

    pub async fn delete_export_job(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM bulk_exports WHERE id = $1")
            .bind(id.to_owned())
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::on_write(JOBS, e))?;
        Ok(())
    }
}
