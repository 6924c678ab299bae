//! Treatment plan -> IOP CarePlan (+ IOP Goal); relapse-prevention plan -> IOP Relapse Prevention Plan.

use serde_json::Value;

use super::codes::{self, ProjectCode};
use super::narrative::Narrative;
use super::read;
use super::{MappingConfig, MappingError, Sensitivity, date, meta, period, reference};
use crate::domain::*;
use crate::json_build::fhir;

/// A treatment plan with what its CarePlan shows.
pub struct PlanView<'a> {
    pub plan: &'a TreatmentPlan,
    pub client_id: Id<Client>,
    pub goals: &'a [Goal],
    pub interventions: &'a [Intervention],
    pub reviews: &'a [PlanReview],
    pub sensitivity: Sensitivity,
}

fn plan_status(s: PlanStatus) -> &'static str {
    match s {
        PlanStatus::Draft => "draft",
        PlanStatus::Active => "active",
        PlanStatus::Completed => "completed",
        PlanStatus::Revoked => "revoked",
    }
}

/// CarePlan.activity.detail.status for the activities of a plan in this state.
fn activity_status(s: PlanStatus) -> &'static str {
    match s {
        PlanStatus::Draft => "not-started",
        PlanStatus::Active => "in-progress",
        PlanStatus::Completed => "completed",
        PlanStatus::Revoked => "cancelled",
    }
}

fn frequency_text(i: &Intervention) -> String {
    let times = if i.sessions_per_week == 1 {
        "once".to_owned()
    } else {
        format!("{} times", i.sessions_per_week)
    };
    format!(
        "{}: {times} a week, {} minutes",
        i.modality.code_display().1,
        i.minutes_per_session
    )
}

pub fn plan_to_fhir(cfg: &MappingConfig, view: &PlanView<'_>) -> Value {
    let plan = view.plan;
    let mut narrative = Narrative::default();
    narrative
        .heading("Individual treatment plan")
        .paragraph(&format!(
            "Status: {}. Period: {} to {}. Reviewed every {} days.",
            plan_status(plan.status),
            date(plan.period.start()),
            plan.period.end().map(date).unwrap_or_else(|| "open".into()),
            plan.review_interval_days
        ))
        .heading("Goals")
        .list(view.goals.iter().map(|g| g.description.as_str().to_owned()))
        .heading("Interventions")
        .list(view.interventions.iter().map(frequency_text));
    let mut care_plan = fhir!({
        "resourceType": "CarePlan",
        "id": plan.id.text(),
        "meta": meta("iop-careplan", view.sensitivity),
        "text": narrative.to_text(),
        "extension": [{
            "url": codes::extension("iop-review-interval"),
            "valueDuration": { "value": plan.review_interval_days, "unit": "d", "system": "http://unitsofmeasure.org", "code": "d" },
        }],
        "identifier": [cfg.record_identifier("treatment-plan", plan.id)],
        "status": plan_status(plan.status),
        "intent": "plan",
        "category": [
            { "coding": [codes::constant_coding!(codes::US_CORE_CAREPLAN_CATEGORY, "assess-plan", "Assessment and Plan of Treatment")] },
            { "coding": [codes::constant_coding!(codes::code_system("iop-careplan-category"), "treatment-plan", "Individual treatment plan")] },
        ],
        "subject": reference("Patient", view.client_id),
        "period": period(plan.period.start(), plan.period.end()),
        "author": reference("Practitioner", plan.author_id),
        // The enrollment the plan belongs to (a client may have more than one over time).
        "supportingInfo": [reference("EpisodeOfCare", plan.enrollment_id)],
    });
    if let Some(next) = plan.next_review_on {
        care_plan["extension"]
            .as_array_mut()
            .expect("array")
            .push(fhir!({
                "url": codes::extension("iop-next-review"),
                "valueDate": date(next),
            }));
    }
    if !view.goals.is_empty() {
        care_plan["goal"] = fhir!(
            view.goals
                .iter()
                .map(|g| reference("Goal", g.id))
                .collect::<Vec<_>>()
        );
    }
    let activities: Vec<Value> = view
        .interventions
        .iter()
        .map(|i| {
            let mut detail = fhir!({
                "code": codes::modality_concept(i.modality),
                "status": activity_status(plan.status),
                "scheduledTiming": { "repeat": {
                    "frequency": i.sessions_per_week, "period": 1, "periodUnit": "wk",
                    "duration": i.minutes_per_session, "durationUnit": "min",
                } },
                "description": frequency_text(i),
            });
            if let Some(staff) = i.staff_id {
                detail["performer"] = fhir!([reference("Practitioner", staff)]);
            }
            fhir!({ "detail": detail })
        })
        .collect();
    if !activities.is_empty() {
        care_plan["activity"] = fhir!(activities);
    }
    let notes: Vec<Value> = view
        .reviews
        .iter()
        .map(|r| fhir!({ "authorReference": reference("Practitioner", r.reviewer_id), "time": date(r.reviewed_on), "text": r.summary.as_str() }))
        .collect();
    if !notes.is_empty() {
        care_plan["note"] = fhir!(notes);
    }
    care_plan
}

fn goal_status(s: GoalStatus) -> &'static str {
    match s {
        GoalStatus::Proposed => "proposed",
        GoalStatus::Active => "active",
        GoalStatus::OnHold => "on-hold",
        GoalStatus::Completed => "completed",
        GoalStatus::Cancelled => "cancelled",
    }
}

fn achievement(a: GoalAchievement) -> (&'static str, &'static str) {
    match a {
        GoalAchievement::InProgress => ("in-progress", "In Progress"),
        GoalAchievement::Improving => ("improving", "Improving"),
        GoalAchievement::Worsening => ("worsening", "Worsening"),
        GoalAchievement::NoChange => ("no-change", "No Change"),
        GoalAchievement::Achieved => ("achieved", "Achieved"),
        GoalAchievement::NotAchieved => ("not-achieved", "Not Achieved"),
    }
}

/// A goal; `progress` pairs each progress note with the review it came from.
pub fn goal_to_fhir(
    cfg: &MappingConfig,
    goal: &Goal,
    client_id: Id<Client>,
    progress: &[(&GoalProgressNote, &PlanReview)],
    sensitivity: Sensitivity,
) -> Value {
    let mut resource = fhir!({
        "resourceType": "Goal",
        "id": goal.id.text(),
        "meta": meta("iop-goal", sensitivity),
        "identifier": [cfg.record_identifier("goal", goal.id)],
        "lifecycleStatus": goal_status(goal.status),
        "description": { "text": goal.description.as_str() },
        "subject": reference("Patient", client_id),
    });
    if let Some(a) = goal.achievement {
        let (code, display) = achievement(a);
        resource["achievementStatus"] = fhir!({
            "coding": [codes::coding("http://terminology.hl7.org/CodeSystem/goal-achievement", code, display)]
        });
    }
    if let Some(due) = goal.target_on {
        resource["target"] = fhir!([{ "dueDate": date(due) }]);
    }
    if !progress.is_empty() {
        resource["note"] = fhir!(
            progress
                .iter()
                .map(|(note, review)| fhir!({
                    "authorReference": reference("Practitioner", review.reviewer_id),
                    "time": date(review.reviewed_on),
                    "text": note.note.as_str(),
                }))
                .collect::<Vec<_>>()
        );
    }
    resource
}

/// A relapse-prevention plan with its items and the state of the plan it belongs to.
pub struct RelapsePlanView<'a> {
    pub relapse_plan: &'a RelapsePreventionPlan,
    pub plan: &'a TreatmentPlan,
    pub client_id: Id<Client>,
    pub items: &'a [RelapsePlanItem],
    /// Names of the support contacts the items refer to, for the narrative.
    pub contact_names: &'a [(Id<SupportContact>, PersonName)],
    pub sensitivity: Sensitivity,
}

pub fn relapse_plan_to_fhir(cfg: &MappingConfig, view: &RelapsePlanView<'_>) -> Value {
    let mut items: Vec<&RelapsePlanItem> = view.items.iter().collect();
    items.sort_by_key(|i| i.position);
    let texts = |kind: RelapseItemKind| -> Vec<String> {
        items
            .iter()
            .filter(|i| i.kind == kind)
            .filter_map(|i| i.text.as_ref().map(|t| t.as_str().to_owned()))
            .collect()
    };
    let (triggers, warnings, skills) = (
        texts(RelapseItemKind::Trigger),
        texts(RelapseItemKind::WarningSign),
        texts(RelapseItemKind::CopingSkill),
    );
    let contact_name = |id: Id<SupportContact>| {
        view.contact_names
            .iter()
            .find(|(c, _)| *c == id)
            .map(|(_, n)| format!("{} {}", n.given.as_str(), n.family.as_str()))
            .unwrap_or_else(|| "support contact".to_owned())
    };
    let contacts: Vec<Id<SupportContact>> =
        items.iter().filter_map(|i| i.support_contact_id).collect();
    let mut narrative = Narrative::default();
    narrative
        .heading("Relapse-prevention plan")
        .heading("Triggers")
        .list(triggers.clone())
        .heading("Early warning signs")
        .list(warnings.clone())
        .heading("Coping skills")
        .list(skills.clone())
        .heading("Support contacts to call")
        .list(contacts.iter().map(|c| contact_name(*c)));
    let mut extensions: Vec<Value> = triggers
        .iter()
        .map(|t| fhir!({ "url": codes::extension("iop-relapse-trigger"), "valueString": t.as_str() }))
        .collect();
    extensions.extend(
        warnings.iter().map(
            |w| fhir!({ "url": codes::extension("iop-relapse-warning-sign"), "valueString": w.as_str() }),
        ),
    );
    let status = activity_status(view.plan.status);
    let modality = |code: &str, display: &str| fhir!({ "coding": [codes::coding(&codes::code_system("iop-modality"), code, display)] });
    let mut activities: Vec<Value> = skills
        .iter()
        .map(|s| fhir!({ "detail": { "code": modality("coping-skill", "Coping skill"), "status": status, "description": s.as_str() } }))
        .collect();
    activities.extend(contacts.iter().map(|c| {
        fhir!({ "detail": {
            "code": modality("call-support-contact", "Call a support contact"),
            "status": status,
            "performer": [reference("RelatedPerson", *c)],
        } })
    }));
    let mut resource = fhir!({
        "resourceType": "CarePlan",
        "id": view.relapse_plan.id.text(),
        "meta": meta("iop-relapse-prevention-plan", view.sensitivity),
        "text": narrative.to_text(),
        "identifier": [cfg.record_identifier("relapse-prevention-plan", view.relapse_plan.id)],
        "partOf": [reference("CarePlan", view.plan.id)],
        "status": plan_status(view.plan.status),
        "intent": "plan",
        "category": [
            { "coding": [codes::constant_coding!(codes::US_CORE_CAREPLAN_CATEGORY, "assess-plan", "Assessment and Plan of Treatment")] },
            { "coding": [codes::constant_coding!(codes::code_system("iop-careplan-category"), "relapse-prevention-plan", "Relapse-prevention plan")] },
        ],
        "subject": reference("Patient", view.client_id),
        "period": { "start": date(view.relapse_plan.created_on) },
    });
    if !extensions.is_empty() {
        resource["extension"] = fhir!(extensions);
    }
    if !activities.is_empty() {
        resource["activity"] = fhir!(activities);
    }
    resource
}

/// What an incoming Goal may change of a stored goal: its description, target date, lifecycle
/// and achievement status. The plan it belongs to and its progress notes (written by the plan's
/// reviews) are the clinic's and stay as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoalChanges {
    pub description: NonEmptyText,
    pub target_on: Option<chrono::NaiveDate>,
    pub status: GoalStatus,
    pub achievement: Option<GoalAchievement>,
}

impl GoalChanges {
    pub fn apply(&self, stored: &Goal) -> Goal {
        Goal {
            description: self.description.clone(),
            target_on: self.target_on,
            status: self.status,
            achievement: self.achievement,
            ..stored.clone()
        }
    }
}

/// The achievement a FHIR goal-achievement code names.
pub(super) fn achievement_of_code(code: &str) -> Option<GoalAchievement> {
    [
        GoalAchievement::InProgress,
        GoalAchievement::Improving,
        GoalAchievement::Worsening,
        GoalAchievement::NoChange,
        GoalAchievement::Achieved,
        GoalAchievement::NotAchieved,
    ]
    .into_iter()
    .find(|a| achievement(*a).0 == code)
}

const GOAL_ACHIEVEMENT_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/goal-achievement";

pub fn goal_changes_from_fhir(resource: &Value) -> Result<GoalChanges, MappingError> {
    read::expect_type(resource, "Goal")?;
    let lifecycle = read::req_str(resource, "lifecycleStatus", "Goal")?;
    let status = [
        GoalStatus::Proposed,
        GoalStatus::Active,
        GoalStatus::OnHold,
        GoalStatus::Completed,
        GoalStatus::Cancelled,
    ]
    .into_iter()
    .find(|s| goal_status(*s) == lifecycle)
    .ok_or_else(|| MappingError::UnknownCode {
        path: "Goal.lifecycleStatus".into(),
        code: lifecycle.into(),
        expected: "proposed, active, on-hold, completed, cancelled".into(),
    })?;
    // US Core allows a coded description; its display (or code) is the clinic's text then.
    let description = resource
        .pointer("/description/text")
        .and_then(Value::as_str)
        .or_else(|| {
            read::array(
                resource.get("description").unwrap_or(&Value::Null),
                "coding",
            )
            .iter()
            .find_map(|c| read::opt_str(c, "display").or_else(|| read::opt_str(c, "code")))
        })
        .ok_or_else(|| read::missing("Goal.description.text"))?;
    let target_on = read::array(resource, "target")
        .first()
        .and_then(|t| read::opt_str(t, "dueDate"))
        .map(|d| read::date("Goal.target[0].dueDate", d))
        .transpose()?;
    let achievement = match resource.get("achievementStatus") {
        None => None,
        Some(concept) => {
            let code = read::code_in(concept, GOAL_ACHIEVEMENT_SYSTEM).ok_or_else(|| {
                read::missing(format!(
                    "Goal.achievementStatus.coding (system {GOAL_ACHIEVEMENT_SYSTEM})"
                ))
            })?;
            Some(
                achievement_of_code(code).ok_or_else(|| MappingError::UnknownCode {
                    path: "Goal.achievementStatus".into(),
                    code: code.into(),
                    expected:
                        "in-progress, improving, worsening, no-change, achieved, not-achieved"
                            .into(),
                })?,
            )
        }
    };
    Ok(GoalChanges {
        description: read::domain("Goal.description.text", NonEmptyText::parse(description))?,
        target_on,
        status,
        achievement,
    })
}

/// What an incoming treatment-plan CarePlan may change of a stored plan: its status, period,
/// review interval and next review date. Goals, interventions, reviews and the narrative are the
/// clinic's (they come from its own records) and stay as they are. `None` keeps what is stored:
/// an EHR's US Core CarePlan need not carry a period, and knows nothing of the IOP extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanChanges {
    pub status: PlanStatus,
    pub period: Option<DateRange>,
    pub review_interval_days: Option<u16>,
    /// `Some(None)`: no next review any more; `None`: as stored.
    pub next_review_on: Option<Option<chrono::NaiveDate>>,
}

impl PlanChanges {
    pub fn apply(&self, stored: &TreatmentPlan) -> TreatmentPlan {
        TreatmentPlan {
            status: self.status,
            period: self.period.unwrap_or(stored.period),
            review_interval_days: self
                .review_interval_days
                .unwrap_or(stored.review_interval_days),
            next_review_on: self.next_review_on.unwrap_or(stored.next_review_on),
            ..stored.clone()
        }
    }
}

fn extension<'a>(resource: &'a Value, id: &str) -> Option<&'a Value> {
    let url = codes::extension(id);
    read::array(resource, "extension")
        .iter()
        .find(|e| read::opt_str(e, "url") == Some(url.as_str()))
}

pub fn plan_changes_from_fhir(resource: &Value) -> Result<PlanChanges, MappingError> {
    read::expect_type(resource, "CarePlan")?;
    if resource.get("partOf").is_some() {
        return Err(read::invalid(
            "CarePlan.partOf",
            "a relapse prevention plan is kept with its treatment plan in the clinic; it is read-only here",
        ));
    }
    let status_code = read::req_str(resource, "status", "CarePlan")?;
    let status = [
        PlanStatus::Draft,
        PlanStatus::Active,
        PlanStatus::Completed,
        PlanStatus::Revoked,
    ]
    .into_iter()
    .find(|s| plan_status(*s) == status_code)
    .ok_or_else(|| MappingError::UnknownCode {
        path: "CarePlan.status".into(),
        code: status_code.into(),
        expected: "draft, active, completed, revoked".into(),
    })?;
    let period = resource
        .get("period")
        .map(|period| {
            let start = read::date(
                "CarePlan.period.start",
                read::req_str(period, "start", "CarePlan.period")?,
            )?;
            let end = read::opt_str(period, "end")
                .map(|e| read::date("CarePlan.period.end", e))
                .transpose()?;
            read::domain("CarePlan.period", DateRange::new(start, end))
        })
        .transpose()?;
    let interval_ext = extension(resource, "iop-review-interval");
    let next_ext = extension(resource, "iop-next-review");
    let review_interval_days = interval_ext
        .map(|e| {
            let days = e
                .pointer("/valueDuration/value")
                .and_then(Value::as_u64)
                .ok_or_else(|| {
                    read::missing("CarePlan.extension(iop-review-interval).valueDuration.value")
                })?;
            u16::try_from(days)
                .map_err(|_| read::invalid("CarePlan.extension(iop-review-interval)", "too long"))
        })
        .transpose()?;
    let next_review = next_ext
        .map(|e| {
            read::date(
                "CarePlan.extension(iop-next-review).valueDate",
                read::opt_str(e, "valueDate").unwrap_or_default(),
            )
        })
        .transpose()?;
    // A sender that speaks the IOP extensions says "no next review" by leaving that one out.
    let next_review_on = (interval_ext.is_some() || next_ext.is_some()).then_some(next_review);
    Ok(PlanChanges {
        status,
        period,
        review_interval_days,
        next_review_on,
    })
}
