//! Clinic <-> FHIR R4: pure functions from domain records to IOP-profiled FHIR resources and back.
//!
//! Architecture invariant: no I/O here. Callers (the edges) load what a resource needs — a
//! "view" such as `PlanView` — and hand it in; functions return `serde_json::Value` resources or
//! domain records. One module per resource family; `codes.rs` holds every code system and the
//! tables between domain vocabularies and FHIR codes, so a code is defined once.

pub mod audit;
mod bser;
mod bser_rest;
pub mod codes;
mod consent;
mod encounter;
mod error;
mod feedback;
mod identifiers;
mod narrative;
mod patient;
mod plan;
mod plan_record;
mod read;
mod referral;
mod related_person;
mod staff;

pub use bser::{
    ReferralMessage, Sender, referral_message, referral_transaction, response_message,
    task_status_update,
};
pub use bser_rest::{
    focus_of, held_request_key, held_request_patient, referral_task_placer, restful_referral,
};
pub use consent::{consent_from_fhir, consent_to_fhir};
pub use encounter::{
    EpisodeView, SessionView, enrollment_from_fhir, episode_to_fhir, session_from_fhir,
    session_to_fhir,
};
pub use error::MappingError;
pub use feedback::{BSER_CODES, FeedbackInput, feedback_document};
pub use identifiers::{add_external_identifiers, external_identifiers};
pub use patient::{client_from_fhir, client_to_fhir};
pub use plan::{
    GoalChanges, PlanChanges, PlanView, RelapsePlanView, goal_changes_from_fhir, goal_to_fhir,
    plan_changes_from_fhir, plan_to_fhir, relapse_plan_to_fhir,
};
pub use plan_record::{
    DEFAULT_REVIEW_INTERVAL_DAYS, GoalProgress, GoalRecord, PlanRecord, RelapsePlanRecord,
    ReviewRequest, goal_record_from_fhir, is_relapse_plan, plan_record_from_fhir,
    relapse_plan_record_from_fhir, review_from_parameters,
};
pub use referral::{
    BSER_BUSINESS_STATUS, FEEDBACK_OUTPUT, ReferralView, TaskChanges, referral_from_fhir,
    service_request_to_fhir, task_changes_from_fhir, task_state, task_to_fhir,
};
pub use related_person::{support_contact_from_fhir, support_contact_to_fhir};
pub use staff::{
    organization_from_fhir, organization_to_fhir, practitioner_from_fhir, practitioner_to_fhir,
    program_from_fhir, program_to_fhir, therapy_group_from_fhir, therapy_group_to_fhir,
};

use serde_json::Value;

use crate::domain::{Id, Program};
use crate::json_build::fhir;

/// Per-clinic settings of the mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingConfig {
    /// Base of the clinic's identifier systems: `{base}/mrn` for MRNs, `{base}/{kind}` for record
    /// ids. External systems match on these to update idempotently, so a clinic sets it once.
    pub identifier_base: String,
}

impl Default for MappingConfig {
    fn default() -> Self {
        Self {
            identifier_base: "https://iop-gateway.org/fhir/clinic".to_owned(),
        }
    }
}

impl MappingConfig {
    pub fn system(&self, kind: &str) -> String {
        [self.identifier_base.trim_end_matches('/'), "/", kind].concat()
    }
    /// The identifier system of the records behind `resource_type`, where one kind of record
    /// is behind it (a CarePlan is a treatment plan or a relapse prevention plan: none).
    pub fn record_system(&self, resource_type: &str) -> Option<String> {
        let kind = match resource_type {
            "Organization" => "organization",
            "Practitioner" => "staff",
            "HealthcareService" => "program",
            "Group" => "therapy-group",
            "Patient" => "client",
            "RelatedPerson" => "support-contact",
            "EpisodeOfCare" => "enrollment",
            "Goal" => "goal",
            "Encounter" => "session",
            "Consent" => "consent",
            "ServiceRequest" => "referral",
            "Task" => "referral-task",
            _ => return None,
        };
        Some(self.system(kind))
    }
    /// The clinic's record identifier a resource carries (system and value): the one whose value
    /// is its id, in a system under `identifier_base`.
    pub fn own_identifier(&self, resource: &Value) -> Option<(String, String)> {
        let id = resource.get("id")?.as_str()?;
        let base = format!("{}/", self.identifier_base.trim_end_matches('/'));
        resource
            .get("identifier")?
            .as_array()?
            .iter()
            .find_map(|identifier| {
                let system = identifier.get("system")?.as_str()?;
                let value = identifier.get("value")?.as_str()?;
                (value == id && system.starts_with(&base))
                    .then(|| (system.to_owned(), value.to_owned()))
            })
    }
    /// The business identifier every resource carries: the clinic record's stable id.
    fn record_identifier<T>(&self, kind: &str, id: Id<T>) -> Value {
        fhir!({ "use": "official", "system": self.system(kind), "value": id.text() })
    }
}

/// Whether a resource reveals substance-use treatment under 42 CFR Part 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sensitivity {
    Normal,
    /// Derived from a Part 2 program: labelled restricted, 42CFRPart2, SUD and no-redisclosure (HL7 DS4P).
    Part2,
}

impl Sensitivity {
    /// A client's records are Part 2 records when any of the client's programs is a Part 2 program:
    /// even that they are a client reveals substance-use treatment.
    pub fn of_programs<'a>(programs: impl IntoIterator<Item = &'a Program>) -> Self {
        if programs.into_iter().any(|p| p.part2) {
            Self::Part2
        } else {
            Self::Normal
        }
    }
}

/// `meta` with the IOP profile and, for Part 2 records, the DS4P security labels.
fn meta(profile: &str, sensitivity: Sensitivity) -> Value {
    let mut meta = fhir!({ "profile": [codes::profile(profile)] });
    if let Some(labels) = security_labels(sensitivity) {
        meta["security"] = labels;
    }
    meta
}

/// The DS4P security labels of Part 2 records (none for others): (system, code, display).
const PART2_LABELS: [(&str, &str, &str); 4] = [
    (codes::CONFIDENTIALITY, "R", "restricted"),
    (codes::ACT_CODE, "42CFRPart2", "42 CFR Part2"),
    (
        codes::ACT_CODE,
        "SUD",
        "substance use disorder information sensitivity",
    ),
    // Part 2 forbids redisclosure without the client's consent (42 CFR 2.32).
    (
        codes::ACT_CODE,
        "NORDSCLCD",
        "no redisclosure without consent directive",
    ),
];

/// The codes of the security labels a resource of `sensitivity` carries (what the disclosure
/// gate reads back from `meta.security`, and may ask before a resource is built).
pub fn security_label_codes(sensitivity: Sensitivity) -> impl Iterator<Item = &'static str> {
    let labels: &[_] = match sensitivity {
        Sensitivity::Part2 => &PART2_LABELS,
        Sensitivity::Normal => &[],
    };
    labels.iter().map(|(_, code, _)| *code)
}

/// The DS4P security labels of Part 2 records (none for others); built once and cloned after,
/// as `codes::constant_coding`.
fn security_labels(sensitivity: Sensitivity) -> Option<Value> {
    static PART2: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    (sensitivity == Sensitivity::Part2).then(|| {
        PART2
            .get_or_init(|| {
                Value::Array(
                    PART2_LABELS
                        .iter()
                        .map(|(system, code, display)| codes::coding(system, code, display))
                        .collect(),
                )
            })
            .clone()
    })
}

fn reference<T>(resource_type: &str, id: Id<T>) -> Value {
    fhir!({ "reference": id.prefixed(&[resource_type, "/"]) })
}

fn date(d: chrono::NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// A FHIR Period of dates; `end` is left out while open.
fn period(start: chrono::NaiveDate, end: Option<chrono::NaiveDate>) -> Value {
    let mut period = fhir!({ "start": date(start) });
    if let Some(end) = end {
        period["end"] = fhir!(date(end));
    }
    period
}
