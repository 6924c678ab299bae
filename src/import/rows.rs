//! One imported resource as the clinic rows it becomes (the mapping's reverse functions), with
//! what the import learned from the files before it: the clinic organization staff belong to,
//! the plan each goal's CarePlan lists it in.

use std::collections::HashMap;

use serde_json::Value;

use crate::domain::*;
use crate::mapping::{self, GoalRecord, MappingConfig, PlanRecord, RelapsePlanRecord};

/// The rows one resource becomes.
pub enum Row {
    Organization(Organization),
    Staff(Staff),
    Program(Program),
    Group(TherapyGroup),
    Client(Client),
    Contact(SupportContact),
    Referral(Referral),
    Enrollment(Enrollment),
    Consent(Consent),
    Plan(PlanRecord),
    RelapsePlan(RelapsePlanRecord),
    /// A goal and the treatment plan that lists it.
    Goal(GoalRecord, Id<TreatmentPlan>),
    Session(Session, Vec<Id<SupportContact>>),
    // The parts of a plan, one per row (the spreadsheet layout; FHIR carries them in the plan).
    TreatmentPlan(TreatmentPlan),
    Intervention(Intervention),
    Review(PlanReview),
    ProgressNote(GoalProgressNote),
    /// An item, and its relapse-prevention plan when this row creates it.
    RelapseItem(RelapsePlanItem, Option<RelapsePreventionPlan>),
}

/// A resource's version and last change, kept by the import.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    pub version: Option<i64>,
    pub updated: Option<Timestamp>,
}

pub fn meta(resource: &Value) -> Meta {
    Meta {
        version: resource
            .pointer("/meta/versionId")
            .and_then(Value::as_str)
            .and_then(|v| v.parse().ok())
            .filter(|v| *v >= 1),
        updated: resource
            .pointer("/meta/lastUpdated")
            .and_then(Value::as_str)
            .and_then(|t| t.parse().ok()),
    }
}

/// What the files before this one told the import.
#[derive(Debug, Default, Clone)]
pub struct Context {
    /// The clinic's own organization (staff work for it; a referral it receives is inbound).
    pub clinic: Option<Id<Organization>>,
    /// Goal id -> the treatment plan whose CarePlan lists it.
    pub goal_plans: HashMap<Id<Goal>, Id<TreatmentPlan>>,
}

impl Context {
    pub fn learn(&mut self, row: &Row) {
        if let Row::Plan(plan) = row {
            for goal in &plan.goals {
                self.goal_plans.insert(*goal, plan.id);
            }
        }
    }

    fn clinic(&self) -> Result<Id<Organization>, String> {
        self.clinic.ok_or_else(|| {
            "the clinic's Organization is not known: import Organization.ndjson with one organization of type clinic".to_owned()
        })
    }
}

/// `resource` (valid against its IOP profile) as rows; the reason when it cannot be.
pub fn row(
    cfg: &MappingConfig,
    context: &Context,
    tasks: &HashMap<String, String>,
    resource: &Value,
) -> Result<Row, String> {
    let today = chrono::Utc::now().date_naive();
    let resource_type = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mapped = match resource_type {
        "Organization" => mapping::organization_from_fhir(resource).map(Row::Organization),
        "Practitioner" => {
            mapping::practitioner_from_fhir(resource, context.clinic()?).map(Row::Staff)
        }
        "HealthcareService" => mapping::program_from_fhir(cfg, resource).map(Row::Program),
        "Group" => mapping::therapy_group_from_fhir(resource).map(Row::Group),
        "Patient" => mapping::client_from_fhir(cfg, resource).map(Row::Client),
        "RelatedPerson" => mapping::support_contact_from_fhir(resource, today).map(Row::Contact),
        "ServiceRequest" => {
            let id = resource
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let task = tasks
                .get(id)
                .ok_or_else(|| "its Task (the same id) is not in Task.ndjson".to_owned())?;
            let task: Value = serde_json::from_str(task)
                .map_err(|_| "its Task in Task.ndjson is not JSON".to_owned())?;
            mapping::referral_from_fhir(resource, &task, context.clinic()?).map(|mut referral| {
                referral.transition_summary = transition_summary(resource);
                Row::Referral(referral)
            })
        }
        "EpisodeOfCare" => mapping::enrollment_from_fhir(resource).map(Row::Enrollment),
        "Consent" => mapping::consent_from_fhir(resource, today).map(Row::Consent),
        "CarePlan" if mapping::is_relapse_plan(resource) => {
            mapping::relapse_plan_record_from_fhir(resource).map(Row::RelapsePlan)
        }
        "CarePlan" => mapping::plan_record_from_fhir(resource).map(Row::Plan),
        "Goal" => {
            let record = mapping::goal_record_from_fhir(resource).map_err(|e| e.to_string())?;
            let plan = context.goal_plans.get(&record.id).copied().ok_or_else(|| {
                "no CarePlan in CarePlan.ndjson lists this Goal (a goal belongs to the plan that lists it)".to_owned()
            })?;
            return Ok(Row::Goal(record, plan));
        }
        "Encounter" => mapping::session_from_fhir(resource)
            .map(|(session, contacts)| Row::Session(session, contacts)),
        other => return Err(format!("{other} is not imported")),
    };
    mapped.map_err(|e| e.to_string())
}

/// An outbound referral's transition summary, from the `supportingInfo` the gateway writes
/// (its display says which plan a CarePlan is).
fn transition_summary(request: &Value) -> Vec<SummaryItem> {
    let Some(items) = request.get("supportingInfo").and_then(Value::as_array) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let reference = item.get("reference")?.as_str()?;
            let display = item.get("display").and_then(Value::as_str);
            if let Some(id) = reference.strip_prefix("RelatedPerson/") {
                return Some(SummaryItem::Contact(id.parse().ok()?));
            }
            let id = reference.strip_prefix("CarePlan/")?;
            Some(if display == Some("Relapse-prevention plan") {
                SummaryItem::RelapsePlan(id.parse().ok()?)
            } else {
                SummaryItem::TreatmentPlan(id.parse().ok()?)
            })
        })
        .collect()
}
