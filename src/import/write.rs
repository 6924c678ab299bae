//! One file's rows written in one transaction: each new record with its parts, at the version
//! and time its resource carried; a record whose id is there already left as it is. Version
//! bumps are suspended as for a seed (nobody saw the rows' earlier versions), so the versions
//! are the exported ones, not the number of parts written.

use std::collections::HashMap;

use chrono::NaiveDate;

use super::rows::{Meta, Row};
use super::{ImportError, Rejected};
use crate::domain::*;
use crate::store::{Store, StoreError, SuspendedTriggers, Tx};

#[derive(Debug, Default)]
pub struct Written {
    pub imported: usize,
    pub present: usize,
    /// Lines whose records cannot be written (a progress note with no review that day).
    pub rejected: Vec<Rejected>,
}

/// The clinic organization, when the database holds exactly one (staff work for it).
pub async fn clinic_organization(
    store: &Store,
    resource_type: &str,
) -> Result<Option<Id<Organization>>, StoreError> {
    if !matches!(resource_type, "Practitioner" | "ServiceRequest") {
        return Ok(None);
    }
    let clinics = crate::disclose::clinic_organizations(store).await?;
    Ok(match clinics.as_slice() {
        [one] => one.parse().ok(),
        _ => None,
    })
}

/// One file's transaction: rows are written chunk by chunk as they are checked, and the file is
/// committed whole at the end (or dropped: rolled back).
pub struct FileWriter {
    tx: Tx,
    suspended: Option<SuspendedTriggers>,
    /// The reviews written so far: a goal's progress notes find theirs by plan and day.
    reviews: HashMap<(Id<TreatmentPlan>, NaiveDate), Id<PlanReview>>,
    pub written: Written,
}

impl FileWriter {
    pub async fn begin(store: &Store) -> Result<Self, StoreError> {
        let mut tx = store.begin().await?;
        let suspended = Some(tx.suspend_version_bumps().await?);
        Ok(Self {
            tx,
            suspended,
            reviews: HashMap::new(),
            written: Written::default(),
        })
    }

    pub async fn write(&mut self, rows: Vec<(usize, Row, Meta)>) -> Result<(), ImportError> {
        let tx = &mut self.tx;
        for (line, row, meta) in rows {
            let at_line = |source: StoreError| ImportError::Line { line, source };
            if exists(tx, &row).await.map_err(at_line)? {
                self.written.present += 1;
                continue;
            }
            match insert(tx, &row, &mut self.reviews).await {
                Ok(()) => {}
                Err(Problem::Store(e)) => return Err(at_line(e)),
                Err(Problem::Refused(reason)) => {
                    self.written.rejected.push(Rejected { line, reason });
                    continue;
                }
            }
            restore(tx, &row, meta).await.map_err(at_line)?;
            self.written.imported += 1;
        }
        Ok(())
    }

    pub async fn commit(mut self) -> Result<Written, StoreError> {
        if let Some(suspended) = self.suspended.take() {
            self.tx.resume_version_bumps(suspended).await?;
        }
        self.tx.commit().await?;
        Ok(self.written)
    }
}

enum Problem {
    Store(StoreError),
    /// Checked before writing, so the transaction goes on without the line.
    Refused(String),
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

async fn present<R: crate::store::Record>(tx: &mut Tx, id: Id<R>) -> Result<bool, StoreError> {
    Ok(tx.get(id).await?.is_some())
}

async fn exists(tx: &mut Tx, row: &Row) -> Result<bool, StoreError> {
    match row {
        Row::Organization(r) => present(tx, r.id).await,
        Row::Staff(r) => present(tx, r.id).await,
        Row::Program(r) => present(tx, r.id).await,
        Row::Group(r) => present(tx, r.id).await,
        Row::Client(r) => present(tx, r.id).await,
        Row::Contact(r) => present(tx, r.id).await,
        Row::Referral(r) => present(tx, r.id).await,
        Row::Enrollment(r) => present(tx, r.id).await,
        Row::Consent(r) => present(tx, r.id).await,
        Row::Plan(r) => present(tx, r.id).await,
        Row::RelapsePlan(r) => present(tx, r.relapse_plan.id).await,
        Row::Goal(r, _) => present(tx, r.id).await,
        Row::Session(r, _) => present(tx, r.id).await,
    }
}

async fn insert(
    tx: &mut Tx,
    row: &Row,
    reviews: &mut HashMap<(Id<TreatmentPlan>, NaiveDate), Id<PlanReview>>,
) -> Result<(), Problem> {
    match row {
        Row::Organization(r) => tx.insert(r).await.map(drop)?,
        Row::Staff(r) => tx.insert(r).await.map(drop)?,
        Row::Program(r) => tx.insert(r).await.map(drop)?,
        Row::Group(r) => tx.insert(r).await.map(drop)?,
        Row::Client(r) => tx.insert(r).await.map(drop)?,
        Row::Contact(r) => tx.insert(r).await.map(drop)?,
        Row::Referral(r) => tx.insert(r).await.map(drop)?,
        Row::Enrollment(r) => tx.insert(r).await.map(drop)?,
        Row::Consent(r) => tx.insert(r).await.map(drop)?,
        Row::Plan(plan) => {
            let Some(enrollment) = plan.enrollment_id else {
                return Err(Problem::Refused(
                    "CarePlan.supportingInfo: an imported plan names its EpisodeOfCare".into(),
                ));
            };
            tx.insert(&plan.plan(enrollment)).await?;
            for intervention in &plan.interventions {
                tx.insert(intervention).await?;
            }
            let changes = revise_reviews(plan.id, &[], &plan.reviews)
                .map_err(|e| Problem::Refused(format!("CarePlan.note: {e}")))?;
            for review in &changes.insert {
                tx.insert(review).await?;
                reviews.insert((plan.id, review.reviewed_on), review.id);
            }
        }
        Row::RelapsePlan(r) => {
            tx.insert(&r.relapse_plan).await?;
            for item in &r.items {
                tx.insert(item).await?;
            }
        }
        Row::Goal(record, plan_id) => {
            let goal = record.goal(*plan_id);
            let mut notes = Vec::new();
            for (index, entry) in record.progress.iter().enumerate() {
                let review = match reviews.get(&(*plan_id, entry.on)) {
                    Some(id) => Some(*id),
                    // The plan was imported before (a second run): its reviews are stored.
                    None => tx
                        .children::<PlanReview>(*plan_id)
                        .await?
                        .into_iter()
                        .find(|r| r.record.reviewed_on == entry.on)
                        .map(|r| r.record.id),
                };
                let review = review.ok_or_else(|| {
                    Problem::Refused(format!(
                        "Goal.note[{index}].time: its plan has no review that day"
                    ))
                })?;
                notes.push(GoalProgressNote {
                    id: Id::generate(),
                    goal_id: goal.id,
                    review_id: review,
                    note: entry.note.clone(),
                });
            }
            tx.insert(&goal).await?;
            for note in &notes {
                tx.insert(note).await?;
            }
        }
        Row::Session(session, contacts) => {
            tx.insert(session).await?;
            for contact in contacts {
                tx.insert(&SessionParticipant {
                    id: Id::generate(),
                    session_id: session.id,
                    support_contact_id: *contact,
                })
                .await?;
            }
        }
    }
    Ok(())
}

/// The main row at the version and time the resource carried.
async fn restore(tx: &mut Tx, row: &Row, meta: Meta) -> Result<(), StoreError> {
    let (Some(version), Some(updated)) = (meta.version, meta.updated) else {
        return Ok(());
    };
    match row {
        Row::Organization(r) => tx.restore_version(r.id, version, updated).await,
        Row::Staff(r) => tx.restore_version(r.id, version, updated).await,
        Row::Program(r) => tx.restore_version(r.id, version, updated).await,
        Row::Group(r) => tx.restore_version(r.id, version, updated).await,
        Row::Client(r) => tx.restore_version(r.id, version, updated).await,
        Row::Contact(r) => tx.restore_version(r.id, version, updated).await,
        Row::Referral(r) => tx.restore_version(r.id, version, updated).await,
        Row::Enrollment(r) => tx.restore_version(r.id, version, updated).await,
        Row::Consent(r) => tx.restore_version(r.id, version, updated).await,
        Row::Plan(r) => tx.restore_version(r.id, version, updated).await,
        Row::RelapsePlan(r) => {
            tx.restore_version(r.relapse_plan.id, version, updated)
                .await
        }
        Row::Goal(r, _) => tx.restore_version(r.id, version, updated).await,
        Row::Session(r, _) => tx.restore_version(r.id, version, updated).await,
    }
}
