//! Rows of `treatment_plans.csv` and of the files that name a plan by its client and first day
//! (`plan_starts_on`): interventions, goals, weekly reviews, goal progress notes, and the items of
//! the plan's relapse-prevention plan.

use super::lookups::{Lookups, relapse_item_key};
use super::{Cells, client_of, contact_named, enrollment_on, staff_of};
use crate::domain::*;
use crate::import::rows::Row;
use crate::mapping::{GoalChanges, GoalRecord};

/// The review interval when the row gives none: IOP plans are reviewed weekly.
const WEEKLY: u16 = 7;

pub fn treatment_plan(cell: &Cells<'_>, lookups: &Lookups) -> Result<Row, String> {
    let client = client_of(cell, lookups)?;
    let starts_on = cell.date("starts_on")?;
    let review_interval_days = match cell.get("review_interval_days") {
        Some(_) => cell.number("review_interval_days")?,
        None => WEEKLY,
    };
    let plan = TreatmentPlan {
        id: lookups
            .plans
            .get(&(client, starts_on))
            .copied()
            .unwrap_or_else(Id::generate),
        enrollment_id: enrollment_on(cell, client, starts_on, lookups)?,
        status: cell.code("status")?,
        period: DateRange::new(starts_on, cell.optional_date("ends_on")?)
            .map_err(|e| format!("columns starts_on, ends_on: {e}"))?,
        author_id: staff_of(cell, "author_npi", lookups)?,
        review_interval_days,
        next_review_on: cell.optional_date("next_review_on")?,
    };
    plan.check()
        .map_err(|e| format!("column review_interval_days: {e}"))?;
    Ok(Row::TreatmentPlan(plan))
}

/// The treatment plan a row names by `client_mrn` and `plan_starts_on`.
fn plan_of(cell: &Cells<'_>, lookups: &Lookups) -> Result<Id<TreatmentPlan>, String> {
    let client = client_of(cell, lookups)?;
    let starts_on = cell.date("plan_starts_on")?;
    lookups.plans.get(&(client, starts_on)).copied().ok_or_else(|| {
        "column plan_starts_on: the client has no treatment plan starting that day (in the database or treatment_plans.csv)".to_owned()
    })
}

pub fn intervention(cell: &Cells<'_>, lookups: &Lookups) -> Result<Row, String> {
    let plan_id = plan_of(cell, lookups)?;
    let modality: Modality = cell.code("modality")?;
    let intervention = Intervention {
        id: lookups
            .interventions
            .get(&(plan_id, modality.code()))
            .copied()
            .unwrap_or_else(Id::generate),
        plan_id,
        modality,
        sessions_per_week: cell.number("sessions_per_week")?,
        minutes_per_session: cell.number("minutes_per_session")?,
        staff_id: cell
            .get("staff_npi")
            .map(|_| staff_of(cell, "staff_npi", lookups))
            .transpose()?,
    };
    intervention.check().map_err(|e| e.to_string())?;
    Ok(Row::Intervention(intervention))
}

pub fn goal(cell: &Cells<'_>, lookups: &Lookups) -> Result<Row, String> {
    let client_id = client_of(cell, lookups)?;
    let plan_id = plan_of(cell, lookups)?;
    let description = cell.text("description")?;
    let id = lookups
        .goals
        .get(&(plan_id, description.as_str().to_owned()))
        .copied()
        .unwrap_or_else(Id::generate);
    let record = GoalRecord {
        id,
        client_id,
        changes: GoalChanges {
            description,
            target_on: cell.optional_date("target_on")?,
            status: cell.code("status")?,
            achievement: cell.optional_code("achievement")?,
        },
        progress: Vec::new(),
    };
    Ok(Row::Goal(record, plan_id))
}

pub fn review(cell: &Cells<'_>, lookups: &Lookups) -> Result<Row, String> {
    let plan_id = plan_of(cell, lookups)?;
    let reviewed_on = cell.date("reviewed_on")?;
    Ok(Row::Review(PlanReview {
        id: lookups
            .reviews
            .get(&(plan_id, reviewed_on))
            .copied()
            .unwrap_or_else(Id::generate),
        plan_id,
        reviewed_on,
        reviewer_id: staff_of(cell, "reviewer_npi", lookups)?,
        summary: cell.text("summary")?,
    }))
}

/// A review's note on one goal: the goal by its description, the review by its day.
pub fn progress_note(cell: &Cells<'_>, lookups: &Lookups) -> Result<Row, String> {
    let plan_id = plan_of(cell, lookups)?;
    let goal_id = lookups
        .goals
        .get(&(plan_id, cell.required("goal")?.to_owned()))
        .copied()
        .ok_or_else(|| {
            "column goal: the plan has no goal with this description (goals.csv)".to_owned()
        })?;
    let review_id = lookups
        .reviews
        .get(&(plan_id, cell.date("reviewed_on")?))
        .copied()
        .ok_or_else(|| {
            "column reviewed_on: the plan has no review that day (plan_reviews.csv)".to_owned()
        })?;
    Ok(Row::ProgressNote(GoalProgressNote {
        id: lookups
            .notes
            .get(&(goal_id, review_id))
            .copied()
            .unwrap_or_else(Id::generate),
        goal_id,
        review_id,
        note: cell.text("note")?,
    }))
}

/// One item of the plan's relapse-prevention plan, which the first item creates (on the plan's
/// first day). Items keep the order of the rows.
pub fn relapse_item(cell: &Cells<'_>, lookups: &Lookups) -> Result<Row, String> {
    let client = client_of(cell, lookups)?;
    let plan_id = plan_of(cell, lookups)?;
    let (relapse_plan_id, position, new_plan) = match lookups.relapse_plans.get(&plan_id) {
        Some(slot) => (slot.id, slot.next_position, None),
        None => {
            let created = RelapsePreventionPlan {
                id: Id::generate(),
                plan_id,
                created_on: cell.date("plan_starts_on")?,
            };
            (created.id, 0, Some(created))
        }
    };
    let kind: RelapseItemKind = cell.code("kind")?;
    let (text, support_contact_id) = match (kind, cell.get("text"), cell.get("contact")) {
        (RelapseItemKind::SupportContact, None, Some(name)) => {
            (None, Some(contact_named(client, name, "contact", lookups)?))
        }
        (RelapseItemKind::SupportContact, _, _) => {
            return Err("a support_contact item gives contact (given family), not text".into());
        }
        (_, Some(_), None) => (Some(cell.text("text")?), None),
        (_, _, _) => {
            return Err(
                "a trigger, warning_sign or coping_skill item gives text, not contact".into(),
            );
        }
    };
    let mut item = RelapsePlanItem {
        id: Id::generate(),
        relapse_plan_id,
        kind,
        position,
        text,
        support_contact_id,
    };
    item.check().map_err(|e| e.to_string())?;
    if let Some(id) = lookups.relapse_items.get(&relapse_item_key(&item)) {
        item.id = *id;
    }
    Ok(Row::RelapseItem(item, new_plan))
}
