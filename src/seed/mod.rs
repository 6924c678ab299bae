//! `iop-gateway seed`: deterministic, realistic synthetic IOP data at any size (10–100,000 clients).
//!
//! The same seed, client count and as-of date always give the same rows (ids included). Generation
//! runs on its own thread and hands batches to the writer; the whole run is one transaction, so a
//! failed or interrupted seed leaves the database as it was. A database is seeded at most once: the
//! `seed_runs` row records what was seeded, and a repeat run adds nothing.

mod client;
mod clinic;
mod ids;
mod vocab;

use std::sync::Arc;

use chrono::NaiveDate;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::domain::Client;
use crate::store::{LogIndexes, SeedRun, Store, StoreError, Tx};
pub use client::Batch;
pub use clinic::Clinic;

pub const MIN_CLIENTS: u32 = 10;
pub const MAX_CLIENTS: u32 = 100_000;
/// Clients generated and written per batch.
const BATCH_CLIENTS: u32 = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedOptions {
    pub clients: u32,
    pub seed: u64,
    /// "Today" for the synthetic data: admissions lie before it, scheduled sessions after it.
    pub as_of: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeedOutcome {
    Seeded {
        clients: u32,
        rows: u64,
    },
    /// The database already holds exactly this seed run; nothing was added.
    AlreadySeeded(SeedRun),
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("--clients must be between {MIN_CLIENTS} and {MAX_CLIENTS}, not {0}")]
    ClientCount(u32),
    #[error(
        "this database was already seeded with --clients {} --seed {}; seed fills a database once. \
         Seed a new database instead (for example --database-url sqlite://other.db)",
        .0.clients, .0.seed
    )]
    SeededDifferently(SeedRun),
    #[error(
        "this database already holds {0} clients that seed did not write; seed only fills an empty database"
    )]
    NotEmpty(i64),
    #[error("another seed run claimed this database first; nothing was added")]
    Concurrent,
    #[error("the data generator stopped unexpectedly")]
    Generator,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Seeds `store`, calling `progress(done, total)` after each batch of clients.
pub async fn seed(
    store: &Store,
    options: SeedOptions,
    mut progress: impl FnMut(u32, u32),
) -> Result<SeedOutcome, SeedError> {
    if !(MIN_CLIENTS..=MAX_CLIENTS).contains(&options.clients) {
        return Err(SeedError::ClientCount(options.clients));
    }
    match store.seed_run().await? {
        Some(run) if run.seed == options.seed && run.clients == options.clients => {
            return Ok(SeedOutcome::AlreadySeeded(run));
        }
        Some(run) => return Err(SeedError::SeededDifferently(run)),
        None => {}
    }
    let existing = store.count::<Client>().await?;
    if existing > 0 {
        return Err(SeedError::NotEmpty(existing));
    }

    let root = ChaCha8Rng::seed_from_u64(options.seed);
    let mut clinic_rng = root.clone();
    clinic_rng.set_stream(u64::MAX);
    let clinic = Arc::new(Clinic::generate(&mut clinic_rng, options.clients));

    let mut tx = store.begin().await?;
    let run = SeedRun {
        seed: options.seed,
        clients: options.clients,
        as_of: options.as_of,
    };
    match tx.record_seed_run(&run).await {
        Err(StoreError::Duplicate { .. }) => return Err(SeedError::Concurrent),
        other => other?,
    }
    // Every record is new and written in this one transaction: no version bumps (see there).
    let suspended = tx.suspend_version_bumps(LogIndexes::Rebuild).await?;
    let mut rows = write_clinic(&mut tx, &clinic).await?;

    // Generate on a plain thread (CPU work) while this task writes the previous batch.
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<(u32, Batch)>(2);
    let generator_clinic = Arc::clone(&clinic);
    let generator = std::thread::spawn(move || {
        let mut start = 0;
        while start < options.clients {
            let end = (start + BATCH_CLIENTS).min(options.clients);
            let mut batch = Batch::default();
            for index in start..end {
                client::generate(&generator_clinic, &root, index, options.as_of, &mut batch);
            }
            if sender.blocking_send((end, batch)).is_err() {
                return; // the writer failed and hung up
            }
            start = end;
        }
    });
    while let Some((done, batch)) = receiver.recv().await {
        rows += write_batch(&mut tx, &batch).await?;
        progress(done, options.clients);
    }
    generator.join().map_err(|_| SeedError::Generator)?;
    tx.resume_version_bumps(suspended).await?;
    tx.commit().await?;
    // Fresh statistics: without them PostgreSQL plans the first queries on the new rows as if the
    // tables were empty (a patient's care plans took 150 ms instead of 2 ms on 100,000 clients).
    store.analyze().await?;
    Ok(SeedOutcome::Seeded {
        clients: options.clients,
        rows,
    })
}

async fn write_clinic(tx: &mut Tx, clinic: &Clinic) -> Result<u64, StoreError> {
    tx.insert_many(&clinic.organizations).await?;
    tx.insert_many(&clinic.staff).await?;
    tx.insert_many(&clinic.programs).await?;
    tx.insert_many(&clinic.groups).await?;
    Ok((clinic.organizations.len()
        + clinic.staff.len()
        + clinic.programs.len()
        + clinic.groups.len()) as u64)
}

/// Writes a batch parents first, so every reference points at a row already written.
async fn write_batch(tx: &mut Tx, b: &Batch) -> Result<u64, StoreError> {
    tx.insert_many(&b.clients).await?;
    tx.insert_many(&b.contacts).await?;
    tx.insert_many(&b.referrals).await?;
    tx.insert_many(&b.enrollments).await?;
    tx.insert_many(&b.plans).await?;
    tx.insert_many(&b.goals).await?;
    tx.insert_many(&b.interventions).await?;
    tx.insert_many(&b.reviews).await?;
    tx.insert_many(&b.notes).await?;
    tx.insert_many(&b.relapse_plans).await?;
    tx.insert_many(&b.relapse_items).await?;
    tx.insert_many(&b.consents).await?;
    tx.insert_many(&b.sessions).await?;
    tx.insert_many(&b.participants).await?;
    Ok(b.rows() as u64)
}
