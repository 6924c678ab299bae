//! What the sync engine keeps (migration 0007): targets with their checkpoint and lease, the
//! identity map (a clinic resource and the target's copy), dead letters and run summaries.
//! Plain rows: what a FHIR type or a remote version means is the engine's business.
//!
//! The lease is a conditional UPDATE only one claimant can win (PostgreSQL re-reads the row after
//! a concurrent winner commits), so one sync run per target holds it at a time across replicas;
//! a holder that died lets its lease lapse. Writes that move a target's state (its checkpoint, its
//! pull position) are conditional on still holding the lease.

use std::time::Duration;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError};
use crate::domain::Timestamp;

const TARGETS: &str = "sync_targets";
const MAP: &str = "sync_resources";
const DEAD: &str = "sync_dead_letters";
const RUNS: &str = "sync_runs";

/// A sync target as stored. `credential_file` names where the secret is; the secret is not here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncTarget {
    pub name: String,
    pub base_url: String,
    /// `none`, `bearer` or `smart`.
    pub auth_kind: String,
    pub credential_file: Option<String>,
    pub smart_client_id: Option<String>,
    pub token_url: Option<String>,
    pub resources: Vec<String>,
    pub organization_id: Option<String>,
    /// `step-down`, `step-up` or `both`: a push refers the clients discharged that way since the
    /// target was added to its organization (`referrals::outbound::send_due`).
    pub send_transitions: Option<String>,
    pub interval_seconds: Option<i64>,
    pub push_checkpoint: i64,
    pub pull_since: Option<String>,
    pub lease_holder: Option<String>,
    pub lease_expires: Option<String>,
    pub next_run_at: Option<String>,
    pub last_run: Option<String>,
    pub created_at: String,
}

const TARGET_COLUMNS: &str = "name, base_url, auth_kind, credential_file, smart_client_id, \
     token_url, resources, organization_id, send_transitions, interval_seconds, push_checkpoint, \
     pull_since, lease_holder, lease_expires, next_run_at, last_run, created_at";

fn target_of(row: &AnyRow) -> Result<SyncTarget, StoreError> {
    let resources: String = row.try_get("resources")?;
    Ok(SyncTarget {
        name: row.try_get("name")?,
        base_url: row.try_get("base_url")?,
        auth_kind: row.try_get("auth_kind")?,
        credential_file: row.try_get("credential_file")?,
        smart_client_id: row.try_get("smart_client_id")?,
        token_url: row.try_get("token_url")?,
        resources: resources
            .split(',')
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        organization_id: row.try_get("organization_id")?,
        send_transitions: row.try_get("send_transitions")?,
        interval_seconds: row.try_get("interval_seconds")?,
        push_checkpoint: row.try_get("push_checkpoint")?,
        pull_since: row.try_get("pull_since")?,
        lease_holder: row.try_get("lease_holder")?,
        lease_expires: row.try_get("lease_expires")?,
        next_run_at: row.try_get("next_run_at")?,
        last_run: row.try_get("last_run")?,
        created_at: row.try_get("created_at")?,
    })
}

/// One clinic resource and the target's copy of it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncedResource {
    pub target: String,
    pub resource_type: String,
    pub local_id: String,
    pub remote_id: Option<String>,
    pub remote_version: Option<String>,
    pub synced_version: Option<i64>,
    pub remote_hash: Option<String>,
    pub create_sent_at: Option<String>,
}

const MAP_COLUMNS: &str = "target, resource_type, local_id, remote_id, remote_version, \
     synced_version, remote_hash, create_sent_at";

fn synced_of(row: &AnyRow) -> Result<SyncedResource, StoreError> {
    Ok(SyncedResource {
        target: row.try_get("target")?,
        resource_type: row.try_get("resource_type")?,
        local_id: row.try_get("local_id")?,
        remote_id: row.try_get("remote_id")?,
        remote_version: row.try_get("remote_version")?,
        synced_version: row.try_get("synced_version")?,
        remote_hash: row.try_get("remote_hash")?,
        create_sent_at: row.try_get("create_sent_at")?,
    })
}

/// A resource that could not be synced, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub target: String,
    /// `push` or `pull`.
    pub direction: String,
    pub resource_type: String,
    pub local_id: String,
    pub local_version: Option<i64>,
    pub http_status: Option<i64>,
    /// An OperationOutcome (JSON) or a message.
    pub reason: String,
    pub attempts: i64,
    pub first_failed: String,
    pub last_failed: String,
}

/// One run's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRun {
    pub id: String,
    pub target: String,
    pub direction: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub summary: Option<String>,
    pub error: Option<String>,
    /// Progress while it runs: changes looked at, of how many (written about once a second).
    pub done: Option<i64>,
    pub total: Option<i64>,
    /// When its progress was last written (a run whose process died stops writing).
    pub progress_at: Option<String>,
}

fn run_of(row: &sqlx::any::AnyRow) -> Result<SyncRun, StoreError> {
    Ok(SyncRun {
        id: row.try_get("id")?,
        target: row.try_get("target")?,
        direction: row.try_get("direction")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        summary: row.try_get("summary")?,
        error: row.try_get("error")?,
        done: row.try_get("done")?,
        total: row.try_get("total")?,
        progress_at: row.try_get("progress_at")?,
    })
}

const RUN_COLUMNS: &str =
    "id, target, direction, started_at, finished_at, summary, error, done, total, progress_at";

fn in_future(lease: Duration) -> String {
    let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60));
    Timestamp::from(Timestamp::now().as_datetime() + lease).to_db_text()
}

fn now() -> String {
    Timestamp::now().to_db_text()
}

impl Store {
    /// Adds a target; `Duplicate` when the name is taken.
    pub async fn insert_sync_target(&self, target: &SyncTarget) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sync_targets (name, base_url, auth_kind, credential_file, \
             smart_client_id, token_url, resources, organization_id, interval_seconds, \
             push_checkpoint, created_at, send_transitions) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $11)",
        )
        .bind(target.name.clone())
        .bind(target.base_url.clone())
        .bind(target.auth_kind.clone())
        .bind(target.credential_file.clone())
        .bind(target.smart_client_id.clone())
        .bind(target.token_url.clone())
        .bind(target.resources.join(","))
        .bind(target.organization_id.clone())
        .bind(target.interval_seconds)
        .bind(now())
        .bind(target.send_transitions.clone())
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::on_write(TARGETS, e))?;
        Ok(())
    }

    pub async fn sync_targets(&self) -> Result<Vec<SyncTarget>, StoreError> {
        let sql = format!("SELECT {TARGET_COLUMNS} FROM sync_targets ORDER BY name");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(target_of).collect()
    }

    pub async fn sync_target(&self, name: &str) -> Result<Option<SyncTarget>, StoreError> {
        let sql = format!("SELECT {TARGET_COLUMNS} FROM sync_targets WHERE name = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(target_of).transpose()
    }

    /// Removes a target with its identity map and dead letters. False when there is none.
    pub async fn remove_sync_target(&self, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        for table in [MAP, DEAD] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE target = $1"
            )))
            .bind(name.to_owned())
            .execute(&mut *tx)
            .await?;
        }
        let removed = sqlx::query("DELETE FROM sync_targets WHERE name = $1")
            .bind(name.to_owned())
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        tx.commit().await?;
        Ok(removed)
    }

    /// Takes the target's lease for `holder` if it is free, lapsed or already `holder`'s.
    pub async fn claim_sync_target(
        &self,
        name: &str,
        holder: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let claimed = sqlx::query(
            "UPDATE sync_targets SET lease_holder = $1, lease_expires = $2 WHERE name = $3 \
             AND (lease_holder IS NULL OR lease_expires < $4 OR lease_holder = $1)",
        )
        .bind(holder.to_owned())
        .bind(in_future(lease))
        .bind(name.to_owned())
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::on_write(TARGETS, e))?;
        Ok(claimed.rows_affected() == 1)
    }

    /// Extends `holder`'s lease. False when it is no longer theirs (it lapsed and was taken).
    pub async fn renew_sync_lease(
        &self,
        name: &str,
        holder: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let renewed = sqlx::query(
            "UPDATE sync_targets SET lease_expires = $1 WHERE name = $2 AND lease_holder = $3",
        )
        .bind(in_future(lease))
        .bind(name.to_owned())
        .bind(holder.to_owned())
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::on_write(TARGETS, e))?;
        Ok(renewed.rows_affected() == 1)
    }

    pub async fn release_sync_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sync_targets SET lease_holder = NULL, lease_expires = NULL \
             WHERE name = $1 AND lease_holder = $2",
        )
        .bind(name.to_owned())
        .bind(holder.to_owned())
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::on_write(TARGETS, e))?;
        Ok(())
    }

    /// Moves the push checkpoint forward (never back), if `holder` still holds the lease.
    pub async fn advance_push_checkpoint(
        &self,
        name: &str,
        holder: &str,
        seq: i64,
    ) -> Result<bool, StoreError> {
        let moved = sqlx::query(
            "UPDATE sync_targets SET push_checkpoint = $1 \
             WHERE name = $2 AND lease_holder = $3 AND push_checkpoint <= $1",
        )
        .bind(seq)
        .bind(name.to_owned())
        .bind(holder.to_owned())
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::on_write(TARGETS, e))?;
        Ok(moved.rows_affected() == 1)
    }

    /// Records where the next pull starts, if `holder` still holds the lease.
    pub async fn set_pull_since(
        &self,
        name: &str,
        holder: &str,
        since: &str,
    ) -> Result<bool, StoreError> {
        let set = sqlx::query(
            "UPDATE sync_targets SET pull_since = $1 WHERE name = $2 AND lease_holder = $3",
        )
        .bind(since.to_owned())
        .bind(name.to_owned())
        .bind(holder.to_owned())
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::on_write(TARGETS, e))?;
        Ok(set.rows_affected() == 1)
    }

    /// Targets with an interval whose next run is due.
    pub async fn due_sync_targets(&self) -> Result<Vec<SyncTarget>, StoreError> {
        let sql = format!(
            "SELECT {TARGET_COLUMNS} FROM sync_targets WHERE interval_seconds IS NOT NULL \
             AND (next_run_at IS NULL OR next_run_at <= $1) ORDER BY name"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(target_of).collect()
    }

    /// Takes the target's due run for this process: moves its next run to `next_run_at` if it
    /// is due now. Only one of several replicas wins a given run.
    pub async fn take_due_sync(&self, name: &str, next_run_at: &str) -> Result<bool, StoreError> {
        let taken = sqlx::query(
            "UPDATE sync_targets SET next_run_at = $1 WHERE name = $2 \
             AND (next_run_at IS NULL OR next_run_at <= $3)",
        )
        .bind(next_run_at.to_owned())
        .bind(name.to_owned())
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::on_write(TARGETS, e))?;
        Ok(taken.rows_affected() == 1)
    }

    /// Records the one-line outcome of the target's last scheduled run.
    pub async fn set_last_sync(&self, name: &str, last_run: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE sync_targets SET last_run = $1 WHERE name = $2")
            .bind(last_run.to_owned())
            .bind(name.to_owned())
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::on_write(TARGETS, e))?;
        Ok(())
    }

    // The identity map.

    pub async fn synced(
        &self,
        target: &str,
        resource_type: &str,
        local_id: &str,
    ) -> Result<Option<SyncedResource>, StoreError> {
        let sql = format!(
            "SELECT {MAP_COLUMNS} FROM sync_resources \
             WHERE target = $1 AND resource_type = $2 AND local_id = $3"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(target.to_owned())
            .bind(resource_type.to_owned())
            .bind(local_id.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(synced_of).transpose()
    }

    /// The identity-map entries of many resources of one type (one query): what a push looks
    /// up for a whole batch at once.
    pub async fn synced_many(
        &self,
        target: &str,
        resource_type: &str,
        local_ids: &[String],
    ) -> Result<std::collections::HashMap<String, SyncedResource>, StoreError> {
        let mut found = std::collections::HashMap::new();
        if local_ids.is_empty() {
            return Ok(found);
        }
        let sql = format!(
            "SELECT {MAP_COLUMNS} FROM sync_resources \
             WHERE target = $1 AND resource_type = $2 AND {}",
            self.backend().one_of_json_array("local_id", 3)
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(target.to_owned())
            .bind(resource_type.to_owned())
            .bind(super::json_array(local_ids))
            .fetch_all(&self.pool)
            .await?;
        for row in rows {
            let entry = synced_of(&row)?;
            found.insert(entry.local_id.clone(), entry);
        }
        Ok(found)
    }

    pub async fn synced_by_remote(
        &self,
        target: &str,
        resource_type: &str,
        remote_id: &str,
    ) -> Result<Option<SyncedResource>, StoreError> {
        let sql = format!(
            "SELECT {MAP_COLUMNS} FROM sync_resources \
             WHERE target = $1 AND resource_type = $2 AND remote_id = $3"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(target.to_owned())
            .bind(resource_type.to_owned())
            .bind(remote_id.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(synced_of).transpose()
    }

    /// Writes a map entry (all of it).
    pub async fn put_synced(&self, entry: &SyncedResource) -> Result<(), StoreError> {
        let sql = upsert_map_rows(1);
        bind_map_row(sqlx::query(sqlx::AssertSqlSafe(sql)), entry, now())
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::on_write(MAP, e))?;
        Ok(())
    }

    /// `put_synced` of many entries in one statement per 100 (one transaction): a batch's
    /// identity-map rows, before and after it is sent.
    pub async fn put_synced_many(&self, entries: &[SyncedResource]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let now = now();
        let mut tx = self.pool.begin().await?;
        for chunk in entries.chunks(100) {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(upsert_map_rows(chunk.len())));
            for entry in chunk {
                query = bind_map_row(query, entry, now.clone());
            }
            query
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::on_write(MAP, e))?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn forget_synced(
        &self,
        target: &str,
        resource_type: &str,
        local_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM sync_resources WHERE target = $1 AND resource_type = $2 AND local_id = $3",
        )
        .bind(target.to_owned())
        .bind(resource_type.to_owned())
        .bind(local_id.to_owned())
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::on_write(MAP, e))?;
        Ok(())
    }

    /// How many resources the target holds a copy of.
    pub async fn synced_count(&self, target: &str) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM sync_resources WHERE target = $1 AND remote_id IS NOT NULL",
        )
        .bind(target.to_owned())
        .fetch_one(&self.pool)
        .await?)
    }

    // Dead letters.

    /// Records a failure (again: one more attempt, the newest reason).
    pub async fn put_dead_letter(&self, letter: &DeadLetter) -> Result<(), StoreError> {
        let at = now();
        sqlx::query(
            "INSERT INTO sync_dead_letters (target, direction, resource_type, local_id, \
             local_version, http_status, reason, attempts, first_failed, last_failed) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8) \
             ON CONFLICT (target, direction, resource_type, local_id) DO UPDATE SET \
             local_version = excluded.local_version, http_status = excluded.http_status, \
             reason = excluded.reason, attempts = sync_dead_letters.attempts + 1, \
             last_failed = excluded.last_failed",
        )
        .bind(letter.target.clone())
        .bind(letter.direction.clone())
        .bind(letter.resource_type.clone())
        .bind(letter.local_id.clone())
        .bind(letter.local_version)
        .bind(letter.http_status)
        .bind(letter.reason.clone())
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::on_write(DEAD, e))?;
        Ok(())
    }

    /// Removes a dead letter (the resource went through). True when there was one.
    pub async fn clear_dead_letter(
        &self,
        target: &str,
        direction: &str,
        resource_type: &str,
        local_id: &str,
    ) -> Result<bool, StoreError> {
        let cleared = sqlx::query(
            "DELETE FROM sync_dead_letters WHERE target = $1 AND direction = $2 \
             AND resource_type = $3 AND local_id = $4",
        )
        .bind(target.to_owned())
        .bind(direction.to_owned())
        .bind(resource_type.to_owned())
        .bind(local_id.to_owned())
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::on_write(DEAD, e))?;
        Ok(cleared.rows_affected() > 0)
    }

    /// Dead letters, of one target or all, oldest failure first.
    /// How many dead letters a target has.
    pub async fn dead_letter_count(&self, target: &str) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM sync_dead_letters WHERE target = $1",
            )
            .bind(target.to_owned())
            .fetch_one(&self.pool)
            .await?,
        )
    }

    pub async fn dead_letters(&self, target: Option<&str>) -> Result<Vec<DeadLetter>, StoreError> {
        let which = if target.is_some() {
            "target = $1"
        } else {
            "1 = 1"
        };
        let sql = format!(
            "SELECT target, direction, resource_type, local_id, local_version, http_status, \
             reason, attempts, first_failed, last_failed FROM sync_dead_letters WHERE {which} \
             ORDER BY first_failed, resource_type, local_id"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(target) = target {
            query = query.bind(target.to_owned());
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                Ok(DeadLetter {
                    target: row.try_get("target")?,
                    direction: row.try_get("direction")?,
                    resource_type: row.try_get("resource_type")?,
                    local_id: row.try_get("local_id")?,
                    local_version: row.try_get("local_version")?,
                    http_status: row.try_get("http_status")?,
                    reason: row.try_get("reason")?,
                    attempts: row.try_get("attempts")?,
                    first_failed: row.try_get("first_failed")?,
                    last_failed: row.try_get("last_failed")?,
                })
            })
            .collect()
    }

    // Runs.

    pub async fn start_sync_run(
        &self,
        id: &str,
        target: &str,
        direction: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sync_runs (id, target, direction, started_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(id.to_owned())
        .bind(target.to_owned())
        .bind(direction.to_owned())
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::on_write(RUNS, e))?;
        Ok(())
    }

    pub async fn finish_sync_run(
        &self,
        id: &str,
        summary: &str,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sync_runs SET finished_at = $1, summary = $2, error = $3 WHERE id = $4",
        )
        .bind(now())
        .bind(summary.to_owned())
        .bind(error.map(str::to_owned))
        .bind(id.to_owned())
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::on_write(RUNS, e))?;
        Ok(())
    }

    /// The target's most recent runs, newest first.
    pub async fn sync_runs(&self, target: &str, limit: u32) -> Result<Vec<SyncRun>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM sync_runs WHERE target = $1 ORDER BY started_at DESC LIMIT $2"
        )))
        .bind(target.to_owned())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_of).collect()
    }

    /// One run, by id.
    pub async fn sync_run(&self, id: &str) -> Result<Option<SyncRun>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM sync_runs WHERE id = $1"
        )))
        .bind(id.to_owned())
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(run_of)
        .transpose()
    }

    /// Every target's runs started at or after `since`, oldest first (the console's chart).
    pub async fn sync_runs_since(&self, since: Timestamp) -> Result<Vec<SyncRun>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM sync_runs WHERE started_at >= $1 ORDER BY started_at"
        )))
        .bind(since.to_db_text())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_of).collect()
    }

    /// A running run's progress: `done` changes looked at of `total`, and its counts so far
    /// (a partial summary, replaced by the whole one when the run finishes; never after).
    pub async fn record_sync_progress(
        &self,
        id: &str,
        done: u64,
        total: u64,
        partial_summary: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sync_runs SET done = $1, total = $2, progress_at = $3, \
             summary = CASE WHEN finished_at IS NULL THEN COALESCE($4, summary) ELSE summary END \
             WHERE id = $5",
        )
        .bind(i64::try_from(done).unwrap_or(i64::MAX))
        .bind(i64::try_from(total).unwrap_or(i64::MAX))
        .bind(now())
        .bind(partial_summary.map(str::to_owned))
        .bind(id.to_owned())
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::on_write(RUNS, e))?;
        Ok(())
    }

    /// The newest change-log sequence number (0 when empty): a target's lag is this minus its
    /// checkpoint.
    /// The newest version the change log records of a row (any table), if it has one.
    pub async fn current_change_version(&self, row_id: &str) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar::<_, Option<i64>>(
            "SELECT MAX(row_version) FROM change_log WHERE row_id = $1",
        )
        .bind(row_id.to_owned())
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn newest_change(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(seq) FROM change_log")
                .fetch_one(&self.pool)
                .await?
                .unwrap_or(0),
        )
    }
}

/// The upsert of `rows` identity-map rows, nine values each (`bind_map_row`).
fn upsert_map_rows(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|row| {
            let columns: Vec<String> = (1..=9).map(|c| format!("${}", row * 9 + c)).collect();
            format!("({})", columns.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO sync_resources (target, resource_type, local_id, remote_id, \
         remote_version, synced_version, remote_hash, create_sent_at, updated_at) \
         VALUES {} \
         ON CONFLICT (target, resource_type, local_id) DO UPDATE SET \
         remote_id = excluded.remote_id, remote_version = excluded.remote_version, \
         synced_version = excluded.synced_version, remote_hash = excluded.remote_hash, \
         create_sent_at = excluded.create_sent_at, updated_at = excluded.updated_at",
        values.join(", ")
    )
}

fn bind_map_row<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    entry: &SyncedResource,
    now: String,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    query
        .bind(entry.target.clone())
        .bind(entry.resource_type.clone())
        .bind(entry.local_id.clone())
        .bind(entry.remote_id.clone())
        .bind(entry.remote_version.clone())
        .bind(entry.synced_version)
        .bind(entry.remote_hash.clone())
        .bind(entry.create_sent_at.clone())
        .bind(now)
}
