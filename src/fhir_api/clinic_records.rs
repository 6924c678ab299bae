//! The clinic's own records written whole by one of its applications (`clients add
//! --clinic-app`): treatment plans with their interventions and reviews, goals with their
//! progress notes, relapse-prevention plans with their items. Each function runs inside the
//! write's transaction (`upsert`), so a plan and its parts are written together or not at all;
//! what changes is decided by `domain::revise_*` (pure), and the main row's version moves with
//! every part by the store's triggers.
//!
//! The checks across records that the database cannot make are here, each a 422 at the
//! FHIRPath of the field: a plan's enrollment is its client's, a goal's plan and a relapse plan's
//! contacts are the same client's, a progress note belongs to a review of that day.

use axum::http::StatusCode;

use super::ApiError;
use super::upsert::Failure;
use crate::domain::*;
use crate::mapping::{GoalRecord, PlanRecord, RelapsePlanRecord};
use crate::store::{Child, Record, StoreError, Stored, Tx};
use crate::validation::{Issue, Severity};

/// 422 at `expression`.
pub(super) fn refused(expression: &str, message: impl Into<String>) -> Failure {
    Failure::Api(ApiError::unprocessable(&[Issue {
        severity: Severity::Error,
        code: "business-rule",
        message: message.into(),
        expression: expression.to_owned(),
    }]))
}

/// 403: the write is the clinic's own applications' to make.
pub(super) fn clinic_apps_only(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!(
            "{what} is recorded by the clinic's own applications (a client registered with clients add --clinic-app); this client may not"
        ),
    )
}

fn not_found<R: Record>(id: Id<R>) -> Failure {
    Failure::Store(StoreError::NotFound {
        table: R::TABLE,
        id: id.to_string(),
    })
}

/// The client a treatment plan is about (through its enrollment).
async fn client_of_plan(tx: &mut Tx, plan: &TreatmentPlan) -> Result<Id<Client>, Failure> {
    let enrollment = tx
        .get(plan.enrollment_id)
        .await?
        .ok_or_else(|| not_found(plan.enrollment_id))?;
    Ok(enrollment.record.client_id)
}

/// The enrollment a plan belongs to: the one it names (the client's), else the client's one
/// enrollment open on the plan's first day.
async fn enrollment_of(tx: &mut Tx, record: &PlanRecord) -> Result<Id<Enrollment>, Failure> {
    if let Some(id) = record.enrollment_id {
        let enrollment = tx.get(id).await?.ok_or_else(|| {
            refused(
                "CarePlan.supportingInfo",
                "the EpisodeOfCare it names is not known",
            )
        })?;
        if enrollment.record.client_id != record.client_id {
            return Err(refused(
                "CarePlan.supportingInfo",
                "the EpisodeOfCare it names is another client's",
            ));
        }
        return Ok(id);
    }
    let enrollments: Vec<Enrollment> = tx
        .children::<Enrollment>(record.client_id)
        .await?
        .into_iter()
        .map(|s| s.record)
        .collect();
    enrollment_open_on(&enrollments, record.period.start()).ok_or_else(|| {
        refused(
            "CarePlan.supportingInfo",
            "name the plan's EpisodeOfCare in supportingInfo: the client has no single enrollment open on the plan's first day",
        )
    })
}

pub(super) async fn insert_plan(tx: &mut Tx, record: &PlanRecord) -> Result<(), Failure> {
    let enrollment = enrollment_of(tx, record).await?;
    tx.insert(&record.plan(enrollment)).await?;
    tx.insert_many(&record.interventions).await?;
    let changes = revise_reviews(record.id, &[], &record.reviews)
        .map_err(|e| refused("CarePlan.note", e.to_string()))?;
    for review in &changes.insert {
        tx.insert(review).await?;
    }
    Ok(())
}

pub(super) async fn update_plan(
    tx: &mut Tx,
    record: &PlanRecord,
    expected: i64,
) -> Result<(), Failure> {
    let stored = tx
        .get(record.id)
        .await?
        .ok_or_else(|| not_found(record.id))?;
    if client_of_plan(tx, &stored.record).await? != record.client_id {
        return Err(refused("CarePlan.subject", "a plan stays with its client"));
    }
    let enrollment = record.enrollment_id.unwrap_or(stored.record.enrollment_id);
    if enrollment != stored.record.enrollment_id {
        return Err(refused(
            "CarePlan.supportingInfo",
            "a plan stays with its enrollment",
        ));
    }
    tx.update(&record.plan(enrollment), expected).await?;
    replace_parts(tx, record.id, &record.interventions, same_interventions).await?;
    let reviews: Vec<PlanReview> = tx
        .children::<PlanReview>(record.id)
        .await?
        .into_iter()
        .map(|s| s.record)
        .collect();
    let changes = revise_reviews(record.id, &reviews, &record.reviews)
        .map_err(|e| refused("CarePlan.note", e.to_string()))?;
    for review in &changes.update {
        update_child(tx, review).await?;
    }
    for review in &changes.insert {
        tx.insert(review).await?;
    }
    Ok(())
}

/// Makes a record's parts without an identity of their own (interventions, relapse-plan
/// items) `wanted`: when `same` says they differ, the stored ones go and the wanted ones come.
async fn replace_parts<P: Child + Clone>(
    tx: &mut Tx,
    parent: Id<P::Parent>,
    wanted: &[P],
    same: fn(&[P], &[P]) -> bool,
) -> Result<(), Failure> {
    let stored = tx.children::<P>(parent).await?;
    let records: Vec<P> = stored.iter().map(|s| s.record.clone()).collect();
    if !same(&records, wanted) {
        for old in &stored {
            tx.delete(old.record.id(), old.meta.version).await?;
        }
        tx.insert_many(wanted).await?;
    }
    Ok(())
}

/// Updates a part of a record at the version it has in this transaction.
async fn update_child<R: Record>(tx: &mut Tx, record: &R) -> Result<(), Failure> {
    let id = record.id();
    let stored = tx.get(id).await?.ok_or_else(|| not_found(id))?;
    tx.update(record, stored.meta.version).await?;
    Ok(())
}

/// The plan a goal is written with: the CarePlan of the same transaction that lists it, which
/// must be the stored one's for a stored goal, and whose client must be the goal's.
async fn plan_of_goal(
    tx: &mut Tx,
    record: &GoalRecord,
    listed_by: Option<Id<TreatmentPlan>>,
    stored: Option<&Goal>,
) -> Result<TreatmentPlan, Failure> {
    let plan_id = match (listed_by, stored) {
        (Some(listed), Some(goal)) if listed != goal.plan_id => {
            return Err(refused("Goal", "a goal stays with its treatment plan"));
        }
        (Some(listed), _) => listed,
        (None, Some(goal)) => goal.plan_id,
        (None, None) => {
            return Err(refused(
                "Goal",
                "a Goal belongs to the treatment plan that lists it: create it in a transaction Bundle with the CarePlan (new, or updated) whose goal refers to it",
            ));
        }
    };
    let plan = tx
        .get(plan_id)
        .await?
        .ok_or_else(|| refused("Goal", "the CarePlan that lists it is not a treatment plan"))?
        .record;
    if client_of_plan(tx, &plan).await? != record.client_id {
        return Err(refused(
            "Goal.subject",
            "a goal is about the client of its treatment plan",
        ));
    }
    Ok(plan)
}

/// Writes a goal's progress notes: each the plan's review of its day.
async fn write_progress(
    tx: &mut Tx,
    goal: &Goal,
    record: &GoalRecord,
    stored: &[Stored<GoalProgressNote>],
) -> Result<(), Failure> {
    let reviews: Vec<PlanReview> = tx
        .children::<PlanReview>(goal.plan_id)
        .await?
        .into_iter()
        .map(|s| s.record)
        .collect();
    let stored_notes: Vec<GoalProgressNote> = stored.iter().map(|s| s.record.clone()).collect();
    let changes = revise_progress(goal, &reviews, &stored_notes, &record.progress).map_err(|i| {
        refused(
            &format!("Goal.note[{i}].time"),
            "a progress note belongs to a review of its plan on that day: add the review first (CarePlan/[id]/$add-review)",
        )
    })?;
    for id in &changes.remove {
        if let Some(old) = stored.iter().find(|s| s.record.id == *id) {
            tx.delete(old.record.id, old.meta.version).await?;
        }
    }
    for note in &changes.update {
        update_child(tx, note).await?;
    }
    for note in &changes.insert {
        tx.insert(note).await?;
    }
    Ok(())
}

pub(super) async fn insert_goal(
    tx: &mut Tx,
    record: &GoalRecord,
    listed_by: Option<Id<TreatmentPlan>>,
) -> Result<(), Failure> {
    let plan = plan_of_goal(tx, record, listed_by, None).await?;
    let goal = record.goal(plan.id);
    tx.insert(&goal).await?;
    write_progress(tx, &goal, record, &[]).await
}

pub(super) async fn update_goal(
    tx: &mut Tx,
    record: &GoalRecord,
    listed_by: Option<Id<TreatmentPlan>>,
    expected: i64,
) -> Result<(), Failure> {
    let stored = tx
        .get(record.id)
        .await?
        .ok_or_else(|| not_found(record.id))?;
    let plan = plan_of_goal(tx, record, listed_by, Some(&stored.record)).await?;
    let goal = record.goal(plan.id);
    tx.update(&goal, expected).await?;
    let notes = tx.children::<GoalProgressNote>(goal.id).await?;
    write_progress(tx, &goal, record, &notes).await
}

/// The checks of a relapse-prevention plan against its treatment plan and contacts.
async fn check_relapse_plan(tx: &mut Tx, record: &RelapsePlanRecord) -> Result<(), Failure> {
    let plan = tx
        .get(record.relapse_plan.plan_id)
        .await?
        .ok_or_else(|| {
            refused(
                "CarePlan.partOf",
                "the treatment plan it names is not known",
            )
        })?
        .record;
    if client_of_plan(tx, &plan).await? != record.client_id {
        return Err(refused(
            "CarePlan.subject",
            "a relapse-prevention plan is about the client of its treatment plan",
        ));
    }
    for item in &record.items {
        let Some(contact) = item.support_contact_id else {
            continue;
        };
        let stored = tx.get(contact).await?;
        if stored.is_none_or(|c| c.record.client_id != record.client_id) {
            return Err(refused(
                "CarePlan.activity.detail.performer",
                "a support contact to call is one of the client's own support contacts",
            ));
        }
    }
    Ok(())
}

pub(super) async fn insert_relapse_plan(
    tx: &mut Tx,
    record: &RelapsePlanRecord,
) -> Result<(), Failure> {
    check_relapse_plan(tx, record).await?;
    let existing = tx
        .children::<RelapsePreventionPlan>(record.relapse_plan.plan_id)
        .await?;
    if !existing.is_empty() {
        return Err(Failure::Api(ApiError::new(
            StatusCode::CONFLICT,
            "duplicate",
            "the treatment plan has a relapse-prevention plan already: update that one",
        )));
    }
    tx.insert(&record.relapse_plan).await?;
    tx.insert_many(&record.items).await?;
    Ok(())
}

pub(super) async fn update_relapse_plan(
    tx: &mut Tx,
    record: &RelapsePlanRecord,
    expected: i64,
) -> Result<(), Failure> {
    let id = record.relapse_plan.id;
    let stored = tx.get(id).await?.ok_or_else(|| not_found(id))?;
    if stored.record.plan_id != record.relapse_plan.plan_id {
        return Err(refused(
            "CarePlan.partOf",
            "a relapse-prevention plan stays with its treatment plan",
        ));
    }
    check_relapse_plan(tx, record).await?;
    tx.update(&record.relapse_plan, expected).await?;
    replace_parts(tx, id, &record.items, same_relapse_items).await
}
