//! Referral <-> IOP Referral ServiceRequest + IOP Referral Task (after HL7 BSeR).

use serde_json::Value;

use super::codes::{self, ProjectCode};
use super::read::{self, missing, opt_str, req_str};
use super::{MappingConfig, MappingError, Sensitivity, date, meta, reference};
use crate::domain::*;
use crate::json_build::fhir;

pub struct ReferralView<'a> {
    pub referral: &'a Referral,
    pub sensitivity: Sensitivity,
    /// What the clinic's records say of the care the referral led to (inbound referrals).
    pub progress: ReferralProgress,
}

/// BSeR's Task business statuses (`TaskBusinessStatusCS`, STU2).
pub const BSER_BUSINESS_STATUS: &str =
    "http://hl7.org/fhir/us/bser/CodeSystem/TaskBusinessStatusCS";

/// A referral's Task status and its BSeR business status, decided together so they never
/// disagree: (Task.status, business status code, display).
pub fn task_state(
    referral: &Referral,
    progress: &ReferralProgress,
) -> (&'static str, &'static str, &'static str) {
    const CREATED: (&str, &str) = ("2.0", "Service Request Created");
    const ACCEPTED: (&str, &str) = ("3.0", "Service Request Accepted");
    const DECLINED: (&str, &str) = ("4.0", "Service Request Declined");
    const SCHEDULED: (&str, &str) = ("5.1.1", "Service Request Event Scheduled");
    const UNATTENDED: (&str, &str) = ("5.1.2", "Scheduled Service Request Event Unattended");
    const EVENT_CANCELLED: (&str, &str) = ("5.1.3", "Scheduled Service Request Event Cancelled");
    const ATTENDED: (&str, &str) = ("5.1.4", "Service Request Event Completed");
    const CANCELLED: (&str, &str) = ("6.0", "Service Request Fulfillment Cancelled");
    const COMPLETED: (&str, &str) = ("7.0", "Service Request Fulfillment Completed");
    let (status, (code, display)) = match referral.status {
        ReferralStatus::Requested => ("requested", CREATED),
        ReferralStatus::Received => ("received", CREATED),
        ReferralStatus::Declined => ("rejected", DECLINED),
        ReferralStatus::Cancelled => ("cancelled", CANCELLED),
        ReferralStatus::Accepted | ReferralStatus::Completed => match &progress.enrollment {
            Some(EnrollmentState::Discharged { .. }) => ("completed", COMPLETED),
            Some(EnrollmentState::Cancelled) => ("cancelled", CANCELLED),
            Some(_) => match progress.last_attendance {
                Some(Attendance::Attended | Attendance::Late) => ("in-progress", ATTENDED),
                Some(Attendance::NoShow) => ("in-progress", UNATTENDED),
                Some(Attendance::Cancelled) => ("in-progress", EVENT_CANCELLED),
                Some(Attendance::Scheduled) | None if progress.session_scheduled => {
                    ("in-progress", SCHEDULED)
                }
                _ => ("accepted", ACCEPTED),
            },
            None if referral.status == ReferralStatus::Completed => ("completed", COMPLETED),
            None => ("accepted", ACCEPTED),
        },
    };
    (status, code, display)
}

fn service(r: &Referral) -> (&'static str, &'static str) {
    match (r.direction, r.kind) {
        (ReferralDirection::Inbound, _) => (
            "intensive-outpatient-program",
            "Intensive outpatient program",
        ),
        (ReferralDirection::Outbound, ReferralKind::StepDown) => (
            "outpatient-treatment",
            "Outpatient behavioral health treatment",
        ),
        (ReferralDirection::Outbound, ReferralKind::StepUp) => (
            "inpatient-treatment",
            "Inpatient or residential behavioral health treatment",
        ),
    }
}

/// The ServiceRequest's status follows its Task's.
fn request_status(task_status: &str) -> &'static str {
    match task_status {
        "completed" => "completed",
        "rejected" | "cancelled" => "revoked",
        _ => "active",
    }
}

pub fn service_request_to_fhir(cfg: &MappingConfig, view: &ReferralView<'_>) -> Value {
    let r = view.referral;
    let (code, display) = service(r);
    let mut request = fhir!({
        "resourceType": "ServiceRequest",
        "id": r.id.text(),
        "meta": meta("iop-referral-servicerequest", view.sensitivity),
        "identifier": [cfg.record_identifier("referral", r.id)],
        "status": request_status(task_state(r, &view.progress).0),
        "intent": "order",
        "category": [{ "coding": [r.kind.coding()] }],
        "code": { "coding": [codes::coding(&codes::code_system("iop-referral"), code, display)], "text": display },
        "subject": reference("Patient", r.client_id),
        "authoredOn": date(r.referred_on),
        "requester": reference("Organization", r.referring_org_id),
        "performer": [reference("Organization", r.receiving_org_id)],
        "reasonCode": [{ "text": r.reason.as_str() }],
    });
    // An outbound referral's transition summary: the plans and contacts sent along (the gate
    // decides on each; a withheld one is left as a display).
    let supporting: Vec<Value> = r
        .transition_summary
        .iter()
        .map(|item| match item {
            SummaryItem::TreatmentPlan(id) => fhir!({ "reference": format!("CarePlan/{id}"), "display": "Treatment plan, goals and progress" }),
            SummaryItem::RelapsePlan(id) => fhir!({ "reference": format!("CarePlan/{id}"), "display": "Relapse-prevention plan" }),
            SummaryItem::Contact(id) => fhir!({ "reference": format!("RelatedPerson/{id}"), "display": "Support contact" }),
        })
        .collect();
    if !supporting.is_empty() {
        request["supportingInfo"] = Value::Array(supporting);
    }
    if let Some(program) = r.program_id {
        request["extension"] = fhir!([{
            "url": codes::extension("iop-program"),
            "valueReference": reference("HealthcareService", program),
        }]);
    }
    request
}

pub fn task_to_fhir(cfg: &MappingConfig, view: &ReferralView<'_>) -> Value {
    let r = view.referral;
    let (status, code, display) = task_state(r, &view.progress);
    let mut task = fhir!({
        "resourceType": "Task",
        "id": r.id.text(),
        "meta": meta("iop-referral-task", view.sensitivity),
        "identifier": [cfg.record_identifier("referral-task", r.id)],
        "status": status,
        "businessStatus": {
            "coding": [codes::coding(BSER_BUSINESS_STATUS, code, display)],
            "text": display,
        },
        "code": { "coding": [codes::constant_coding!("http://hl7.org/fhir/CodeSystem/task-code", "fulfill", "Fulfill the focal request")] },
        "intent": "order",
        "focus": reference("ServiceRequest", r.id),
        "for": reference("Patient", r.client_id),
        "authoredOn": date(r.referred_on),
        "requester": reference("Organization", r.referring_org_id),
        "owner": reference("Organization", r.receiving_org_id),
    });
    if let Some(decided) = r.decided_on {
        task["lastModified"] = fhir!(date(decided));
    }
    if let Some(reason) = &r.status_reason {
        task["statusReason"] = fhir!({ "text": reason.as_str() });
    }
    let mut outputs = Vec::new();
    if let Some(EnrollmentState::Discharged { disposition, .. }) = &view.progress.enrollment {
        outputs.push(fhir!({
            "type": { "text": "Discharge disposition" },
            "valueCodeableConcept": { "coding": [disposition.coding()] },
        }));
    }
    // A fulfilled referral the clinic received answers with its feedback document (BSeR), which
    // the API serves at the referral's id, built for each reader as their consents allow.
    if status == "completed" && r.direction == ReferralDirection::Inbound {
        outputs.push(fhir!({
            "type": { "text": FEEDBACK_OUTPUT },
            "valueReference": { "reference": format!("Bundle/{}", r.id), "display": "Referral feedback document" },
        }));
    }
    if !outputs.is_empty() {
        task["output"] = Value::Array(outputs);
    }
    task
}

/// The type (text) of the Task output that names a referral's feedback document.
pub const FEEDBACK_OUTPUT: &str = "Referral feedback";

/// What a referral's Task says of it: its status and, once decided, the day it was decided.
/// A Task update (accept, decline, complete) changes only these on the stored referral.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskChanges {
    pub status: ReferralStatus,
    pub decided_on: Option<chrono::NaiveDate>,
    /// `statusReason.text` (required when declined).
    pub status_reason: Option<NonEmptyText>,
}

impl TaskChanges {
    pub fn apply(&self, stored: &Referral) -> Referral {
        Referral {
            status: self.status,
            decided_on: self.decided_on,
            status_reason: self.status_reason.clone(),
            ..stored.clone()
        }
    }
}

/// An incoming referral Task's decision. Without `lastModified`, a decision is dated
/// `recorded_on` (the day the clinic learns it).
pub fn task_changes_from_fhir(
    task: &Value,
    recorded_on: chrono::NaiveDate,
) -> Result<TaskChanges, MappingError> {
    task_changes(task, Some(recorded_on))
}

/// `recorded_on` None: a decision must carry its `lastModified` (a whole referral's Task).
fn task_changes(
    task: &Value,
    recorded_on: Option<chrono::NaiveDate>,
) -> Result<TaskChanges, MappingError> {
    read::expect_type(task, "Task")?;
    let status = match req_str(task, "status", "Task")? {
        "requested" | "draft" | "ready" => ReferralStatus::Requested,
        "received" => ReferralStatus::Received,
        "accepted" | "in-progress" => ReferralStatus::Accepted,
        "rejected" => ReferralStatus::Declined,
        "completed" => ReferralStatus::Completed,
        "cancelled" | "failed" => ReferralStatus::Cancelled,
        other => {
            return Err(MappingError::UnknownCode {
                path: "Task.status".into(),
                code: other.into(),
                expected:
                    "requested, received, accepted, rejected, in-progress, completed, cancelled"
                        .into(),
            });
        }
    };
    let pending = matches!(status, ReferralStatus::Requested | ReferralStatus::Received);
    let decided_on = if pending {
        None
    } else {
        Some(match read::opt_str(task, "lastModified") {
            Some(modified) => read::date(
                "Task.lastModified",
                &modified.chars().take(10).collect::<String>(),
            )?,
            None => recorded_on.ok_or_else(|| missing("Task.lastModified"))?,
        })
    };
    let status_reason = task
        .pointer("/statusReason/text")
        .and_then(Value::as_str)
        .map(|text| read::domain("Task.statusReason.text", NonEmptyText::parse(text)))
        .transpose()?;
    if status == ReferralStatus::Declined && status_reason.is_none() {
        return Err(missing(
            "Task.statusReason.text (a declined referral says why)",
        ));
    }
    Ok(TaskChanges {
        status,
        decided_on,
        status_reason,
    })
}

/// A referral from its ServiceRequest and Task. The Task's status is the referral's status;
/// the direction is inbound when `clinic_id` performs the request.
pub fn referral_from_fhir(
    request: &Value,
    task: &Value,
    clinic_id: Id<Organization>,
) -> Result<Referral, MappingError> {
    read::expect_type(request, "ServiceRequest")?;
    let TaskChanges {
        status,
        decided_on,
        status_reason,
    } = task_changes(task, None)?;
    let category = read::array(request, "category")
        .first()
        .ok_or_else(|| missing("ServiceRequest.category"))?;
    let system = codes::code_system(ReferralKind::SYSTEM_ID);
    let kind_code = read::code_in(category, &system)
        .ok_or_else(|| missing(format!("ServiceRequest.category.coding (system {system})")))?;
    let kind =
        ReferralKind::from_fhir_code(kind_code).ok_or_else(|| MappingError::UnknownCode {
            path: "ServiceRequest.category[0]".into(),
            code: kind_code.into(),
            expected: ReferralKind::expected(),
        })?;
    let requester = read::reference_id(
        request
            .get("requester")
            .ok_or_else(|| missing("ServiceRequest.requester"))?,
        "ServiceRequest.requester",
        "Organization",
    )?;
    let performer = read::array(request, "performer")
        .first()
        .ok_or_else(|| missing("ServiceRequest.performer"))?;
    let performer = read::reference_id(performer, "ServiceRequest.performer[0]", "Organization")?;
    let reason = read::array(request, "reasonCode")
        .first()
        .and_then(|c| opt_str(c, "text"))
        .ok_or_else(|| missing("ServiceRequest.reasonCode[0].text"))?;
    let program_url = codes::extension("iop-program");
    let program_id = read::array(request, "extension")
        .iter()
        .find(|e| opt_str(e, "url") == Some(program_url.as_str()))
        .map(|e| {
            let value = e
                .get("valueReference")
                .ok_or_else(|| missing("ServiceRequest.extension(iop-program).valueReference"))?;
            read::reference_id(
                value,
                "ServiceRequest.extension(iop-program).valueReference",
                "HealthcareService",
            )
        })
        .transpose()?;
    let authored = req_str(request, "authoredOn", "ServiceRequest")?;
    let referral = Referral {
        id: read::resource_id(request, "ServiceRequest")?,
        client_id: read::reference_id(
            request
                .get("subject")
                .ok_or_else(|| missing("ServiceRequest.subject"))?,
            "ServiceRequest.subject",
            "Patient",
        )?,
        direction: if performer == clinic_id {
            ReferralDirection::Inbound
        } else {
            ReferralDirection::Outbound
        },
        kind,
        status,
        reason: read::domain(
            "ServiceRequest.reasonCode[0].text",
            NonEmptyText::parse(reason),
        )?,
        referred_on: read::date(
            "ServiceRequest.authoredOn",
            &authored.chars().take(10).collect::<String>(),
        )?,
        decided_on,
        referring_org_id: requester,
        receiving_org_id: performer,
        program_id,
        status_reason,
        // The summary's records are not read back (a CarePlan may be either plan).
        transition_summary: Vec::new(),
    };
    referral
        .check()
        .map_err(|e| read::invalid("ServiceRequest", e))?;
    Ok(referral)
}
