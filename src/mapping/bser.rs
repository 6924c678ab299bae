//! An incoming referral as HL7 BSeR sends it: a `message` Bundle (MessageHeader with event
//! v2-0003#I12 and focus the Task, then the Task, its ServiceRequest, the Patient and the
//! referring Organization or PractitionerRole), or a `transaction` Bundle with the ServiceRequest
//! and the Task. Read here into what the intake needs, with the FHIRPath location of anything
//! missing or wrong; no I/O, no clinic ids.

use chrono::NaiveDate;
use serde_json::Value;

use super::MappingError;
use super::codes;
use super::read::{self, missing, opt_str};
use crate::domain::{ExternalIdentifier, NonEmptyText};
use crate::json_build::fhir;

pub const V2_0003: &str = "http://terminology.hl7.org/CodeSystem/v2-0003";
pub const TASK_CODE: &str = "http://hl7.org/fhir/CodeSystem/task-code";
pub const NPI: &str = "http://hl7.org/fhir/sid/us-npi";

/// A referral as received.
#[derive(Debug, Clone)]
pub struct ReferralMessage {
    /// The Bundle's identifier (`system|value`), when it has one.
    pub message_key: Option<String>,
    /// The MessageHeader's id (a response names it), for messages.
    pub header_id: Option<String>,
    /// The referring side's placer identifier of the referral (the Task's, else the
    /// ServiceRequest's): what makes a resend the same referral.
    pub placer: ExternalIdentifier,
    pub task_identifiers: Vec<ExternalIdentifier>,
    pub request_identifiers: Vec<ExternalIdentifier>,
    pub patient: Value,
    pub sender: Sender,
    pub reason: NonEmptyText,
    pub referred_on: NaiveDate,
    /// Where the referring side keeps the Task and the ServiceRequest (absolute URLs): their
    /// absolute `fullUrl`, else the MessageHeader's source endpoint and their ids.
    pub source_task: Option<String>,
    pub source_request: Option<String>,
    /// The ServiceRequest's supportingInfo that the Bundle holds (a Consent, a discharge summary
    /// document), counted for the answer; the intake does not store them.
    pub supporting: usize,
}

/// The organization that refers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    pub name: Option<String>,
    pub npi: Option<String>,
    pub identifiers: Vec<ExternalIdentifier>,
}

/// The entry of `bundle` a reference names: by `fullUrl` (`urn:uuid:`, absolute), or by
/// `Type/id` against each entry's resource.
pub fn resolve<'a>(bundle: &'a Value, reference: &str) -> Option<&'a Value> {
    let entries = read::array(bundle, "entry");
    entries
        .iter()
        .find(|e| opt_str(e, "fullUrl") == Some(reference))
        .or_else(|| {
            entries.iter().find(|e| {
                opt_str(e, "fullUrl").is_some_and(|url| {
                    reference.contains('/') && url.ends_with(&format!("/{reference}"))
                })
            })
        })
        .or_else(|| {
            let (kind, id) = reference.rsplit_once('/')?;
            let kind = kind.rsplit('/').next()?;
            entries.iter().find(|e| {
                e.get("resource").is_some_and(|r| {
                    opt_str(r, "resourceType") == Some(kind) && opt_str(r, "id") == Some(id)
                })
            })
        })
        .and_then(|e| e.get("resource"))
}

/// The resource a reference element (`{"reference": ...}`) at `path` names in the Bundle, which
/// must be of `expected` type.
fn referenced<'a>(
    bundle: &'a Value,
    element: Option<&Value>,
    path: &str,
    expected: &[&str],
) -> Result<&'a Value, MappingError> {
    let reference = element
        .and_then(|e| opt_str(e, "reference"))
        .ok_or_else(|| missing(format!("{path}.reference")))?;
    let resource = resolve(bundle, reference).ok_or_else(|| {
        read::invalid(
            path,
            "names no resource in the Bundle (BSeR sends the referral's resources together)",
        )
    })?;
    let kind = opt_str(resource, "resourceType").unwrap_or_default();
    if !expected.contains(&kind) {
        return Err(read::invalid(
            path,
            format!("must name a {}, not a {kind}", expected.join(" or ")),
        ));
    }
    Ok(resource)
}

fn identifiers(resource: &Value) -> Vec<ExternalIdentifier> {
    read::array(resource, "identifier")
        .iter()
        .filter_map(|i| {
            Some(ExternalIdentifier {
                system: opt_str(i, "system")?.to_owned(),
                value: opt_str(i, "value")?.to_owned(),
            })
        })
        .collect()
}

/// A referral's ServiceRequest asks for a decision: intent order, status active (or draft).
pub(super) fn check_request(request: &Value) -> Result<(), MappingError> {
    if opt_str(request, "intent") != Some("order") {
        return Err(read::invalid(
            "ServiceRequest.intent",
            "a referral's intent is order",
        ));
    }
    if !matches!(opt_str(request, "status"), Some("active" | "draft")) {
        return Err(read::invalid(
            "ServiceRequest.status",
            "a referral sent for a decision is active",
        ));
    }
    Ok(())
}

/// The placer identifier (typed v2-0203 PLAC) of a resource, if any.
pub(super) fn placer(resource: &Value) -> Option<ExternalIdentifier> {
    read::array(resource, "identifier")
        .iter()
        .find(|i| i.get("type").and_then(|t| read::code_in(t, codes::V2_0203)) == Some("PLAC"))
        .and_then(|i| {
            Some(ExternalIdentifier {
                system: opt_str(i, "system")?.to_owned(),
                value: opt_str(i, "value")?.to_owned(),
            })
        })
}

fn day(path: &str, text: &str) -> Result<NaiveDate, MappingError> {
    read::date(path, &text.chars().take(10).collect::<String>())
}

/// Reads a BSeR referral `message` Bundle.
pub fn referral_message(bundle: &Value) -> Result<ReferralMessage, MappingError> {
    read::expect_type(bundle, "Bundle")?;
    if opt_str(bundle, "type") != Some("message") {
        return Err(read::invalid(
            "Bundle.type",
            "$process-message takes a Bundle of type message",
        ));
    }
    let entries = read::array(bundle, "entry");
    let header = entries
        .first()
        .and_then(|e| e.get("resource"))
        .filter(|r| opt_str(r, "resourceType") == Some("MessageHeader"))
        .ok_or_else(|| {
            read::invalid(
                "Bundle.entry[0]",
                "a message Bundle starts with its MessageHeader",
            )
        })?;
    let event = header
        .get("eventCoding")
        .ok_or_else(|| missing("Bundle.entry[0].resource.eventCoding"))?;
    if opt_str(event, "system") != Some(V2_0003) || opt_str(event, "code") != Some("I12") {
        return Err(read::invalid(
            "Bundle.entry[0].resource.eventCoding",
            format!("the referral event is {V2_0003}#I12 (patient referral)"),
        ));
    }
    let focus = read::array(header, "focus").first();
    let task = referenced(
        bundle,
        focus,
        "Bundle.entry[0].resource.focus[0]",
        &["Task"],
    )?;
    let header_id = opt_str(header, "id")
        .ok_or_else(|| missing("Bundle.entry[0].resource.id (a response names it)"))?;
    let endpoint = header.get("source").and_then(|s| opt_str(s, "endpoint"));
    let mut message = referral_from_task(bundle, task, endpoint)?;
    message.header_id = Some(header_id.to_owned());
    if message.sender.name.is_none()
        && let Some(sender) = header.get("sender").and_then(|s| opt_str(s, "display"))
    {
        message.sender.name = Some(sender.to_owned());
    }
    Ok(message)
}

/// Reads the referral of a `transaction` (or `batch`) Bundle that holds its Task and
/// ServiceRequest; None when the Bundle holds no referral Task (an ordinary transaction).
pub fn referral_transaction(bundle: &Value) -> Option<Result<ReferralMessage, MappingError>> {
    let task = read::array(bundle, "entry")
        .iter()
        .filter_map(|e| e.get("resource"))
        .find(|r| {
            opt_str(r, "resourceType") == Some("Task")
                && r.get("code").and_then(|c| read::code_in(c, TASK_CODE)) == Some("fulfill")
                && read::array(r, "identifier").iter().any(|i| {
                    i.get("type").and_then(|t| read::code_in(t, codes::V2_0203)) == Some("PLAC")
                })
        })?;
    Some(referral_from_task(bundle, task, None))
}

/// Where the sender keeps `resource` of `bundle`: its entry's absolute `fullUrl` (without a
/// version), else `{endpoint}/{type}/{id}`.
fn source_url(bundle: &Value, resource: &Value, endpoint: Option<&str>) -> Option<String> {
    let entry = read::array(bundle, "entry")
        .iter()
        .find(|e| e.get("resource").is_some_and(|r| std::ptr::eq(r, resource)))?;
    let kind = opt_str(resource, "resourceType")?;
    if let Some(url) = opt_str(entry, "fullUrl")
        && (url.starts_with("http://") || url.starts_with("https://"))
    {
        let url = url.split("/_history/").next().unwrap_or(url);
        return url.contains(&format!("/{kind}/")).then(|| url.to_owned());
    }
    let id = opt_str(resource, "id")?;
    let endpoint = endpoint?.trim_end_matches('/');
    (endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        .then(|| format!("{endpoint}/{kind}/{id}"))
}

/// The referring side's Task after the clinic's decision: theirs, with the status, business
/// status, status reason and outputs of `ours` (the clinic's Task) — nothing else of theirs
/// changes, since the Task is theirs (BSeR: the recipient updates the initiator's Task).
pub fn task_status_update(theirs: &Value, ours: &Value) -> Value {
    let mut updated = theirs.clone();
    if let Some(object) = updated.as_object_mut() {
        object.remove("meta");
        object.remove("text");
        for key in [
            "status",
            "businessStatus",
            "statusReason",
            "output",
            "lastModified",
        ] {
            match ours.get(key) {
                Some(value) => {
                    object.insert(key.to_owned(), value.clone());
                }
                None => {
                    object.remove(key);
                }
            }
        }
    }
    updated
}

fn referral_from_task(
    bundle: &Value,
    task: &Value,
    endpoint: Option<&str>,
) -> Result<ReferralMessage, MappingError> {
    if opt_str(task, "intent") != Some("order") {
        return Err(read::invalid(
            "Task.intent",
            "a referral Task's intent is order",
        ));
    }
    if task.get("code").and_then(|c| read::code_in(c, TASK_CODE)) != Some("fulfill") {
        return Err(read::invalid(
            "Task.code",
            format!("a referral Task's code is {TASK_CODE}#fulfill"),
        ));
    }
    let request = referenced(bundle, task.get("focus"), "Task.focus", &["ServiceRequest"])?;
    let patient = referenced(bundle, task.get("for"), "Task.for", &["Patient"])?;
    let subject = referenced(
        bundle,
        request.get("subject"),
        "ServiceRequest.subject",
        &["Patient"],
    )?;
    if !std::ptr::eq(subject, patient) {
        return Err(read::invalid(
            "ServiceRequest.subject",
            "names another patient than Task.for",
        ));
    }
    check_request(request)?;
    let placer = placer(task).or_else(|| placer(request)).ok_or_else(|| {
        missing("Task.identifier (typed v2-0203 PLAC: the referring side's own identifier)")
    })?;
    let authored = opt_str(task, "authoredOn")
        .map(|a| ("Task.authoredOn", a))
        .or_else(|| opt_str(request, "authoredOn").map(|a| ("ServiceRequest.authoredOn", a)))
        .ok_or_else(|| missing("Task.authoredOn"))?;
    let referred_on = day(authored.0, authored.1)?;
    // The referring organization: the requester, or the organization of the requesting
    // PractitionerRole.
    let requester = task.get("requester").or_else(|| request.get("requester"));
    let requester = referenced(
        bundle,
        requester,
        "Task.requester",
        &["Organization", "PractitionerRole", "Practitioner"],
    )?;
    let organization = match opt_str(requester, "resourceType") {
        Some("Organization") => Some(requester),
        Some("PractitionerRole") => requester
            .get("organization")
            .and_then(|o| opt_str(o, "reference"))
            .and_then(|r| resolve(bundle, r)),
        _ => None,
    };
    let sender = match organization {
        Some(org) => Sender {
            name: opt_str(org, "name").map(str::to_owned),
            npi: identifiers(org)
                .into_iter()
                .find(|i| i.system == NPI)
                .map(|i| i.value),
            identifiers: identifiers(org),
        },
        None => Sender {
            name: None,
            npi: None,
            identifiers: Vec::new(),
        },
    };
    let reason = read::array(request, "reasonCode")
        .iter()
        .chain(request.get("code"))
        .find_map(|c| {
            opt_str(c, "text").or_else(|| {
                read::array(c, "coding")
                    .iter()
                    .find_map(|coding| opt_str(coding, "display"))
            })
        })
        .unwrap_or("Referral for intensive outpatient treatment");
    let supporting = read::array(request, "supportingInfo")
        .iter()
        .filter_map(|s| opt_str(s, "reference"))
        .filter(|r| resolve(bundle, r).is_some())
        .count();
    let message_key = bundle.get("identifier").and_then(|i| {
        Some(format!(
            "{}|{}",
            opt_str(i, "system")?,
            opt_str(i, "value")?
        ))
    });
    Ok(ReferralMessage {
        message_key,
        header_id: None,
        placer,
        task_identifiers: identifiers(task),
        request_identifiers: identifiers(request),
        patient: patient.clone(),
        sender,
        reason: read::domain(
            "ServiceRequest.reasonCode[0].text",
            NonEmptyText::parse(reason),
        )?,
        referred_on,
        source_task: source_url(bundle, task, endpoint),
        source_request: source_url(bundle, request, endpoint),
        supporting,
    })
}

/// The answer to a referral message (FHIR messaging): a `message` Bundle whose MessageHeader
/// answers the request's (`response.identifier`, `code` ok) and whose focus is the clinic's Task
/// for the referral (when one exists), with an OperationOutcome saying what happened. It names
/// the Task but does not carry it: reading it is a disclosure, with its scope and consent check.
pub fn response_message(
    request_header: &str,
    response_id: &str,
    task_id: Option<&str>,
    source_endpoint: &str,
    outcome: &Value,
    now: &str,
) -> Value {
    let header_url = format!("urn:uuid:{response_id}");
    let outcome_id = uuid::Uuid::new_v4().to_string();
    let mut header = fhir!({
        "resourceType": "MessageHeader",
        "id": response_id,
        "eventCoding": { "system": V2_0003, "code": "I12" },
        "source": { "endpoint": source_endpoint },
        "response": {
            "identifier": request_header,
            "code": "ok",
            "details": { "reference": format!("urn:uuid:{outcome_id}") },
        },
    });
    if let Some(task) = task_id {
        header["focus"] = fhir!([{ "reference": format!("Task/{task}") }]);
    }
    let mut outcome = outcome.clone();
    outcome["id"] = fhir!(outcome_id.as_str());
    fhir!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::new_v4().to_string(),
        "type": "message",
        "timestamp": now,
        "entry": [
            { "fullUrl": header_url, "resource": header },
            { "fullUrl": format!("urn:uuid:{outcome_id}"), "resource": outcome },
        ],
    })
}
