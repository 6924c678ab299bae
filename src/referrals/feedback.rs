//! The feedback document of a fulfilled referral (HL7 BSeR), as one recipient may see it: the
//! stay the referral led to (its EpisodeOfCare, sessions, plans and goals), each part passed
//! through that recipient's disclosure gate, then `mapping::feedback_document`. Shared by the
//! FHIR API (`GET /fhir/Bundle/{referral id}`) and the sync push that writes it at the
//! referring side.

use serde_json::Value;

use crate::assemble::{AssembleError, Assembler, Keyset};
use crate::disclose::Gate;
use crate::domain::Organization;
use crate::mapping::{FEEDBACK_OUTPUT, FeedbackInput, MappingConfig, feedback_document};
use crate::store::{Filter, SqlValue, Store};

/// At most this many sessions, plans or goals go into a feedback document.
const STAY_LIMIT: u32 = 1000;

/// What the feedback document is made of: what the gate admitted of the stay a referral led to.
pub struct Stay {
    pub episode: Option<Value>,
    pub encounters: Vec<Value>,
    pub plans: Vec<Value>,
    pub goals: Vec<Value>,
    /// Who writes it: the Task's owner (the clinic), by name.
    pub author: String,
    /// Whether the Task or any part drawn on is a Part 2 record (the document then carries the
    /// §2.32 notice and the labels).
    pub part2: bool,
}

/// Whether a referral's Task (the clinic's) has a feedback document: it was received (the
/// clinic is its owner) and is fulfilled.
pub fn has_feedback(task: &Value) -> bool {
    task["status"] == "completed" && feedback_output(task).is_some()
}

/// The Task's output that names its feedback document.
fn feedback_output(task: &Value) -> Option<&Value> {
    task.get("output")?
        .as_array()?
        .iter()
        .find(|o| o["type"]["text"] == FEEDBACK_OUTPUT)
}

/// What `gate`'s recipient may see of the stay referral `referral` (whose clinic Task is `task`)
/// led to.
pub async fn stay(
    store: &Store,
    assembler: &Assembler<'_>,
    gate: &mut Gate,
    referral: &str,
    task: &Value,
) -> Result<Stay, AssembleError> {
    let of_referral = || Filter::equals("referral_id", SqlValue::text(referral));
    let of_enrollments = || Filter::in_rows("enrollment_id", "enrollments", "id", of_referral());
    let plans_of = || Filter::in_rows("plan_id", "treatment_plans", "id", of_enrollments());
    let mut parts = Vec::new();
    for (resource_type, filter) in [
        ("EpisodeOfCare", of_referral()),
        ("Encounter", of_enrollments()),
        ("CarePlan", of_enrollments()),
        ("Goal", plans_of()),
    ] {
        let page = assembler
            .page(resource_type, &[filter], Keyset::After(None), STAY_LIMIT)
            .await?;
        parts.push(gate.admit(store, page.resources).await?);
    }
    let author = match task
        .pointer("/owner/reference")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("Organization/"))
        .and_then(|id| id.parse().ok())
    {
        Some(id) => store
            .get::<Organization>(id)
            .await?
            .map(|o| o.record.name.to_string()),
        None => None,
    };
    let goals = parts.pop().unwrap_or_default();
    let plans = parts.pop().unwrap_or_default();
    let encounters = parts.pop().unwrap_or_default();
    let episode = parts.pop().unwrap_or_default().into_iter().last();
    let mut stay = Stay {
        episode,
        encounters,
        plans,
        goals,
        author: author.unwrap_or_else(|| "The IOP clinic".into()),
        part2: is_part2(task),
    };
    stay.part2 |= stay.sources().into_iter().any(is_part2);
    Ok(stay)
}

impl Stay {
    /// The feedback document; `subject` and `request` are the references the recipient knows
    /// the patient and the ServiceRequest by.
    pub fn document(
        &self,
        mapping: &MappingConfig,
        referral: &str,
        subject: Value,
        request: Value,
    ) -> Value {
        let now = crate::domain::Timestamp::now().to_string();
        feedback_document(
            mapping,
            &FeedbackInput {
                referral_id: referral,
                subject,
                request,
                episode: self.episode.as_ref(),
                encounters: &self.encounters,
                plans: &self.plans,
                goals: &self.goals,
                author: &self.author,
                now: &now,
                part2_notice: self.part2.then_some(crate::disclose::PART2_NOTICE),
            },
        )
    }

    /// Every resource the document draws on (for the audit of its disclosure).
    pub fn sources(&self) -> Vec<&Value> {
        self.episode
            .iter()
            .chain(&self.encounters)
            .chain(&self.plans)
            .chain(&self.goals)
            .collect()
    }
}

/// Whether a resource carries the 42 CFR Part 2 label (the mapping puts it on every record of
/// a client in a Part 2 program).
fn is_part2(resource: &Value) -> bool {
    resource
        .pointer("/meta/security")
        .and_then(Value::as_array)
        .is_some_and(|labels| labels.iter().any(|l| l["code"] == "42CFRPart2"))
}
