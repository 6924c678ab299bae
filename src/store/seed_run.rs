//! The record of the one seed run a database may have had, so that seeding twice adds nothing.

use chrono::NaiveDate;
use sqlx::Row;

use super::{Store, StoreError, Tx};
use crate::domain::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedRun {
    pub seed: u64,
    pub clients: u32,
    pub as_of: NaiveDate,
}

impl Store {
    pub async fn seed_run(&self) -> Result<Option<SeedRun>, StoreError> {
        let row = sqlx::query("SELECT seed, clients, as_of FROM seed_runs")
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let bad = |column: &'static str| StoreError::Corrupt {
            table: "seed_runs",
            id: "1".into(),
            column,
            reason: "out of range".into(),
        };
        Ok(Some(SeedRun {
            seed: u64::try_from(row.try_get::<i64, _>("seed")?).map_err(|_| bad("seed"))?,
            clients: u32::try_from(row.try_get::<i64, _>("clients")?)
                .map_err(|_| bad("clients"))?,
            as_of: row
                .try_get::<String, _>("as_of")?
                .parse()
                .map_err(|_| bad("as_of"))?,
        }))
    }
}

impl Tx {
    /// Claims the database for a seed run. The table holds at most one row, so of two concurrent
    /// seeders the second fails here (`StoreError::Duplicate`) and rolls back.
    pub async fn record_seed_run(&mut self, run: &SeedRun) -> Result<(), StoreError> {
        let seed = i64::try_from(run.seed).map_err(|_| StoreError::Invalid {
            table: "seed_runs",
            source: crate::domain::DomainError::Malformed {
                field: "seed",
                rule: "at most 2^63 - 1",
            },
        })?;
        sqlx::query("INSERT INTO seed_runs (singleton, seed, clients, as_of, completed_at) VALUES (1, $1, $2, $3, $4)")
            .bind(seed)
            .bind(i64::from(run.clients))
            .bind(run.as_of.to_string())
            .bind(Timestamp::now().to_db_text())
            .execute(&mut *self.inner)
            .await
            .map_err(|e| StoreError::on_write("seed_runs", e))?;
        Ok(())
    }
}
