//! The referral exchange with inpatient step-down providers (HL7 BSeR): referrals received
//! (`intake`: `$process-message`, or a transaction holding the referral), matched to a client or
//! left for review, and the clinic's decisions on them (`decide`). A referral's Task then follows
//! the clinic's own records (`mapping::task_state`): accepted, sessions scheduled, attended or
//! missed, completed on discharge. The hospital learns of it by polling `Task` or by a sync push
//! to its target.

pub mod feedback;
pub mod intake;
pub mod outbound;

use chrono::NaiveDate;

use crate::domain::{Id, NonEmptyText, Referral, ReferralStatus};
use crate::store::{Store, StoreError, Stored};

pub use crate::store::REFERRAL_REQUEST_IDENTIFIERS as REQUEST_IDENTIFIERS;

/// Why a decision was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error("no referral {0}")]
    NotFound(String),
    #[error("{0}")]
    Refused(#[from] crate::domain::DomainError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Records the clinic's decision on a received referral (accept, decline with a reason, cancel)
/// at the referral's current version; its Task changes with it (and so the change log, the
/// hospital's polling and a sync push see it).
pub async fn decide(
    store: &Store,
    id: Id<Referral>,
    decision: ReferralStatus,
    reason: Option<NonEmptyText>,
    on: NaiveDate,
) -> Result<Stored<Referral>, DecideError> {
    let mut tx = store.begin().await?;
    let stored = tx
        .get_for_update(id)
        .await?
        .ok_or_else(|| DecideError::NotFound(id.to_string()))?;
    let decided = stored.record.decide(decision, on, reason)?;
    let meta = tx.update(&decided, stored.meta.version).await?;
    tx.commit().await?;
    Ok(Stored {
        record: decided,
        meta,
    })
}
