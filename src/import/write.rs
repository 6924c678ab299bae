//! One file's rows written in one transaction, a chunk at a time: each new record with its parts,
//! at the version and time its resource carried; a record whose id is there already left as it
//! is. A chunk costs one existence query per table and one multi-row insert per table, not a
//! statement per row. Version bumps are suspended as for a seed (nobody saw the rows' earlier
//! versions), so the versions are the exported ones, not the number of parts written.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;

use super::rows::{Meta, Row};
use super::{ImportError, Rejected};
use crate::domain::*;
use crate::store::{LogIndexes, Record, Store, StoreError, SuspendedTriggers, Tx};

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

/// Reviews by plan and day.
pub type Reviews = HashMap<(Id<TreatmentPlan>, NaiveDate), Id<PlanReview>>;

/// One file's transaction: rows are written chunk by chunk as they are checked, and the file is
/// committed whole at the end (or dropped: rolled back).
pub struct FileWriter {
    tx: Tx,
    suspended: Option<SuspendedTriggers>,
    /// The reviews written so far: a goal's progress notes find theirs by plan and day.
    reviews: Reviews,
    pub written: Written,
}

impl FileWriter {
    /// `reviews` are those the files before wrote (a goal's notes find them without a query).
    pub async fn begin(store: &Store, reviews: Reviews) -> Result<Self, StoreError> {
        let mut tx = store.begin().await?;
        let suspended = Some(tx.suspend_version_bumps(LogIndexes::Keep).await?);
        Ok(Self {
            tx,
            suspended,
            reviews,
            written: Written::default(),
        })
    }

    pub async fn write(&mut self, rows: Vec<(usize, Row, Meta)>) -> Result<(), ImportError> {
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
            return Ok(());
        };
        let lines = (first.0, last.0);
        // The query sees what earlier chunks of this file wrote (the same transaction), so a
        // line repeated later in the file is present; only repeats within the chunk remain.
        let present = present_ids(&mut self.tx, &rows).await?;
        let mut in_chunk = HashSet::with_capacity(rows.len());
        let mut batch = Batch::default();
        for (line, row, meta) in rows {
            let id = main_id(&row);
            if present.contains(&id) || !in_chunk.insert(id) {
                self.written.present += 1;
                continue;
            }
            match batch.add(&mut self.tx, &mut self.reviews, row, meta).await {
                Ok(()) => self.written.imported += 1,
                Err(Problem::Store(e)) => return Err(ImportError::Line { line, source: e }),
                Err(Problem::Refused(reason)) => {
                    self.written.rejected.push(Rejected { line, reason })
                }
            }
        }
        batch
            .insert(&mut self.tx)
            .await
            .map_err(|source| ImportError::Lines {
                first: lines.0,
                last: lines.1,
                source,
            })
    }

    /// Commits the file; gives back what it wrote and the reviews known so far.
    pub async fn commit(mut self) -> Result<(Written, Reviews), StoreError> {
        if let Some(suspended) = self.suspended.take() {
            self.tx.resume_version_bumps(suspended).await?;
        }
        self.tx.commit().await?;
        Ok((self.written, self.reviews))
    }
}

enum Problem {
    Store(StoreError),
    /// Checked before writing, so the file goes on without the line.
    Refused(String),
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

fn main_id(row: &Row) -> String {
    match row {
        Row::Organization(r) => r.id.to_string(),
        Row::Staff(r) => r.id.to_string(),
        Row::Program(r) => r.id.to_string(),
        Row::Group(r) => r.id.to_string(),
        Row::Client(r) => r.id.to_string(),
        Row::Contact(r) => r.id.to_string(),
        Row::Referral(r) => r.id.to_string(),
        Row::Enrollment(r) => r.id.to_string(),
        Row::Consent(r) => r.id.to_string(),
        Row::Plan(r) => r.id.to_string(),
        Row::RelapsePlan(r) => r.relapse_plan.id.to_string(),
        Row::Goal(r, _) => r.id.to_string(),
        Row::Session(r, _) => r.id.to_string(),
        Row::TreatmentPlan(r) => r.id.to_string(),
        Row::Intervention(r) => r.id.to_string(),
        Row::Review(r) => r.id.to_string(),
        Row::ProgressNote(r) => r.id.to_string(),
        Row::RelapseItem(r, _) => r.id.to_string(),
    }
}

/// The ids among `rows` the database holds: one query per table.
async fn present_ids(
    tx: &mut Tx,
    rows: &[(usize, Row, Meta)],
) -> Result<HashSet<String>, StoreError> {
    async fn of<R: Record>(
        tx: &mut Tx,
        ids: Vec<Id<R>>,
        into: &mut HashSet<String>,
    ) -> Result<(), StoreError> {
        if !ids.is_empty() {
            into.extend(tx.existing_ids(&ids).await?.iter().map(Id::to_string));
        }
        Ok(())
    }
    let mut found = HashSet::new();
    macro_rules! ids {
        ($variant:ident, $r:ident => $id:expr) => {
            rows.iter()
                .filter_map(|(_, row, _)| match row {
                    Row::$variant($r, ..) => Some($id),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
    }
    of(tx, ids!(Organization, r => r.id), &mut found).await?;
    of(tx, ids!(Staff, r => r.id), &mut found).await?;
    of(tx, ids!(Program, r => r.id), &mut found).await?;
    of(tx, ids!(Group, r => r.id), &mut found).await?;
    of(tx, ids!(Client, r => r.id), &mut found).await?;
    of(tx, ids!(Contact, r => r.id), &mut found).await?;
    of(tx, ids!(Referral, r => r.id), &mut found).await?;
    of(tx, ids!(Enrollment, r => r.id), &mut found).await?;
    of(tx, ids!(Consent, r => r.id), &mut found).await?;
    of(tx, ids!(Plan, r => r.id), &mut found).await?;
    of(tx, ids!(RelapsePlan, r => r.relapse_plan.id), &mut found).await?;
    of(tx, ids!(Goal, r => r.id), &mut found).await?;
    of(tx, ids!(Session, r => r.id), &mut found).await?;
    of(tx, ids!(TreatmentPlan, r => r.id), &mut found).await?;
    of(tx, ids!(Intervention, r => r.id), &mut found).await?;
    of(tx, ids!(Review, r => r.id), &mut found).await?;
    of(tx, ids!(ProgressNote, r => r.id), &mut found).await?;
    of(tx, ids!(RelapseItem, r => r.id), &mut found).await?;
    Ok(found)
}

/// A kept version and time, when the resource carried both.
fn kept(meta: Meta) -> Option<(i64, Timestamp)> {
    Some((meta.version?, meta.updated?))
}

/// Records of one type and the versions they keep.
struct Kept<R> {
    records: Vec<R>,
    meta: Vec<Option<(i64, Timestamp)>>,
}

impl<R: Record> Default for Kept<R> {
    fn default() -> Self {
        Self {
            records: Vec::new(),
            meta: Vec::new(),
        }
    }
}

impl<R: Record> Kept<R> {
    fn push(&mut self, record: R, meta: Meta) {
        self.records.push(record);
        self.meta.push(kept(meta));
    }

    async fn insert(&self, tx: &mut Tx) -> Result<(), StoreError> {
        if self.records.is_empty() {
            return Ok(());
        }
        tx.insert_many_at(&self.records, |i| self.meta[i]).await
    }
}

/// A chunk's records by table, inserted in the order they refer to each other.
#[derive(Default)]
struct Batch {
    organizations: Kept<Organization>,
    staff: Kept<Staff>,
    programs: Kept<Program>,
    groups: Kept<TherapyGroup>,
    clients: Kept<Client>,
    contacts: Kept<SupportContact>,
    referrals: Kept<Referral>,
    enrollments: Kept<Enrollment>,
    consents: Kept<Consent>,
    plans: Kept<TreatmentPlan>,
    interventions: Vec<Intervention>,
    reviews: Vec<PlanReview>,
    relapse_plans: Kept<RelapsePreventionPlan>,
    relapse_items: Vec<RelapsePlanItem>,
    goals: Kept<Goal>,
    notes: Vec<GoalProgressNote>,
    sessions: Kept<Session>,
    participants: Vec<SessionParticipant>,
}

impl Batch {
    async fn add(
        &mut self,
        tx: &mut Tx,
        reviews: &mut Reviews,
        row: Row,
        meta: Meta,
    ) -> Result<(), Problem> {
        match row {
            Row::Organization(r) => self.organizations.push(r, meta),
            Row::Staff(r) => self.staff.push(r, meta),
            Row::Program(r) => self.programs.push(r, meta),
            Row::Group(r) => self.groups.push(r, meta),
            Row::Client(r) => self.clients.push(r, meta),
            Row::Contact(r) => self.contacts.push(r, meta),
            Row::Referral(r) => self.referrals.push(r, meta),
            Row::Enrollment(r) => self.enrollments.push(r, meta),
            Row::Consent(r) => self.consents.push(r, meta),
            Row::Plan(plan) => {
                let Some(enrollment) = plan.enrollment_id else {
                    return Err(Problem::Refused(
                        "CarePlan.supportingInfo: an imported plan names its EpisodeOfCare".into(),
                    ));
                };
                let changes = revise_reviews(plan.id, &[], &plan.reviews)
                    .map_err(|e| Problem::Refused(format!("CarePlan.note: {e}")))?;
                for review in &changes.insert {
                    reviews.insert((plan.id, review.reviewed_on), review.id);
                }
                self.plans.push(plan.plan(enrollment), meta);
                self.interventions.extend(plan.interventions);
                self.reviews.extend(changes.insert);
            }
            Row::RelapsePlan(r) => {
                self.relapse_plans.push(r.relapse_plan, meta);
                self.relapse_items.extend(r.items);
            }
            Row::Goal(record, plan_id) => {
                let goal = record.goal(plan_id);
                for (index, entry) in record.progress.iter().enumerate() {
                    if !reviews.contains_key(&(plan_id, entry.on)) {
                        // The plan was imported before (an earlier run): its reviews are stored.
                        for stored in tx.children::<PlanReview>(plan_id).await? {
                            reviews
                                .entry((plan_id, stored.record.reviewed_on))
                                .or_insert(stored.record.id);
                        }
                    }
                    let review = reviews.get(&(plan_id, entry.on)).copied().ok_or_else(|| {
                        Problem::Refused(format!(
                            "Goal.note[{index}].time: its plan has no review that day"
                        ))
                    })?;
                    self.notes.push(GoalProgressNote {
                        id: Id::generate(),
                        goal_id: goal.id,
                        review_id: review,
                        note: entry.note.clone(),
                    });
                }
                self.goals.push(goal, meta);
            }
            Row::TreatmentPlan(r) => self.plans.push(r, meta),
            Row::Intervention(r) => self.interventions.push(r),
            Row::Review(r) => {
                reviews.insert((r.plan_id, r.reviewed_on), r.id);
                self.reviews.push(r);
            }
            Row::ProgressNote(r) => self.notes.push(r),
            Row::RelapseItem(item, relapse_plan) => {
                if let Some(relapse_plan) = relapse_plan {
                    self.relapse_plans.push(relapse_plan, meta);
                }
                self.relapse_items.push(item);
            }
            Row::Session(session, contacts) => {
                self.participants
                    .extend(contacts.into_iter().map(|contact| SessionParticipant {
                        id: Id::generate(),
                        session_id: session.id,
                        support_contact_id: contact,
                    }));
                self.sessions.push(session, meta);
            }
        }
        Ok(())
    }

    async fn insert(&self, tx: &mut Tx) -> Result<(), StoreError> {
        self.organizations.insert(tx).await?;
        self.staff.insert(tx).await?;
        self.programs.insert(tx).await?;
        self.groups.insert(tx).await?;
        self.clients.insert(tx).await?;
        self.contacts.insert(tx).await?;
        self.referrals.insert(tx).await?;
        self.enrollments.insert(tx).await?;
        self.consents.insert(tx).await?;
        self.plans.insert(tx).await?;
        tx.insert_many(&self.interventions).await?;
        tx.insert_many(&self.reviews).await?;
        self.relapse_plans.insert(tx).await?;
        tx.insert_many(&self.relapse_items).await?;
        self.goals.insert(tx).await?;
        tx.insert_many(&self.notes).await?;
        self.sessions.insert(tx).await?;
        tx.insert_many(&self.participants).await?;
        Ok(())
    }
}
