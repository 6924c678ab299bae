//! `POST /fhir/CarePlan/[id]/$add-review`: the weekly review of a treatment plan, by one of the
//! clinic's own applications. A `Parameters` body (`mapping::review_from_parameters`): the day
//! (default today), the reviewer, the summary, the next review (default the day plus the plan's
//! interval), and per goal a progress note and optionally its new achievement status.
//!
//! One transaction: the plan's next review (at `If-Match` when given), the review, each goal's
//! note and achievement, and the audit record. The answer is the CarePlan as it is now: its
//! version and ETag moved, and the review is one of its `note`s, each note a `Goal.note`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::access::{self, Caller};
use super::clinic_records::{self, refused};
use super::upsert::{Done, Failure};
use super::{ApiError, FhirState, write};
use crate::auth::Letter;
use crate::domain::*;
use crate::mapping::{self, ReviewRequest};
use crate::store::{StoreError, Tx};

pub(super) async fn add_review(
    state: &FhirState,
    caller: &Caller,
    id: &str,
    headers: &HeaderMap,
    params: &[(String, String)],
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    access::require(
        state,
        caller,
        "CarePlan",
        Letter::Update,
        AuditInteraction::Update,
    )
    .await?;
    if !caller.principal.clinic_app {
        return Err(clinic_records::clinic_apps_only("a plan's review"));
    }
    write::check_content_type(headers)?;
    let body = write::body(state, body)?;
    let parameters: Value = serde_json::from_slice(&body)
        .map_err(|_| ApiError::bad_request("the body is not JSON: send a Parameters resource"))?;
    let today = chrono::Utc::now().date_naive();
    let request = mapping::review_from_parameters(&parameters, today)
        .map_err(|e| write::mapping_error(&e))?;
    let plan_id: Id<TreatmentPlan> = id
        .parse()
        .map_err(|_| ApiError::not_found(format!("CarePlan/{id} is not a treatment plan")))?;
    let if_match = write::if_match(headers)?;
    let mut tx = state.store.begin().await?;
    let subject = record_review(&mut tx, plan_id, &request, if_match)
        .await
        .map_err(ApiError::from)?;
    let written = json!({
        "resourceType": "CarePlan",
        "id": plan_id.to_string(),
        "subject": { "reference": format!("Patient/{subject}") },
    });
    tx.append_audit(&caller.write_record(AuditInteraction::Update, "CarePlan", &[&written]))
        .await?;
    tx.commit().await?;
    tracing::info!(%plan_id, goals = request.progress.len(), "plan review recorded");
    write::answer_written(
        state,
        caller,
        "CarePlan",
        &plan_id.to_string(),
        Done::Updated,
        headers,
        params,
    )
    .await
}

/// Writes the review inside `tx`; the plan's client.
async fn record_review(
    tx: &mut Tx,
    plan_id: Id<TreatmentPlan>,
    request: &ReviewRequest,
    if_match: Option<i64>,
) -> Result<Id<Client>, Failure> {
    let stored = tx.get_for_update(plan_id).await?.ok_or_else(|| {
        Failure::Api(ApiError::not_found(format!(
            "CarePlan/{plan_id} is not a treatment plan"
        )))
    })?;
    let plan = stored.record;
    let day = request.review.on;
    let reviews = tx.children::<PlanReview>(plan_id).await?;
    if reviews.iter().any(|r| r.record.reviewed_on == day) {
        return Err(Failure::Api(ApiError::new(
            StatusCode::CONFLICT,
            "duplicate",
            "the plan has a review on that day already: change it with PUT CarePlan (its note)",
        )));
    }
    // The plan first, at the version the caller saw: the parts written next move it on.
    let next = request
        .next_review_on
        .unwrap_or(day + chrono::Days::new(u64::from(plan.review_interval_days)));
    let reviewed = TreatmentPlan {
        next_review_on: Some(next),
        ..plan.clone()
    };
    tx.update(&reviewed, if_match.unwrap_or(stored.meta.version))
        .await?;
    let review = request.review.clone().into_review(plan_id);
    tx.insert(&review).await?;
    for (index, progress) in request.progress.iter().enumerate() {
        let goal = tx
            .get(progress.goal_id)
            .await?
            .filter(|g| g.record.plan_id == plan_id)
            .ok_or_else(|| {
                refused(
                    &format!("Parameters.parameter(progress)[{index}].part(goal)"),
                    "not a goal of this plan",
                )
            })?;
        tx.insert(&GoalProgressNote {
            id: Id::generate(),
            goal_id: goal.record.id,
            review_id: review.id,
            note: progress.note.clone(),
        })
        .await?;
        if let Some(achievement) = progress.achievement {
            // The note's insert moved the goal's version: read it again.
            let current = tx.get(goal.record.id).await?.ok_or(StoreError::NotFound {
                table: "goals",
                id: goal.record.id.to_string(),
            })?;
            tx.update(
                &Goal {
                    achievement: Some(achievement),
                    ..current.record
                },
                current.meta.version,
            )
            .await?;
        }
    }
    let enrollment = tx
        .get(plan.enrollment_id)
        .await?
        .ok_or(StoreError::NotFound {
            table: "enrollments",
            id: plan.enrollment_id.to_string(),
        })?;
    Ok(enrollment.record.client_id)
}
