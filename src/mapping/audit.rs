//! Audit in FHIR: which patients a resource is about (for the accounting of disclosures), and
//! audit records as IHE Basic Audit Log Patterns (BALP) AuditEvents.

use base64::Engine;
use serde_json::Value;

use crate::domain::{AuditInteraction, AuditRecord};
use crate::json_build::fhir;
use crate::json_member::member;

const BALP: &str = "https://profiles.ihe.net/ITI/BALP/StructureDefinition";
const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const EVENT_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-event-type";
const INTERACTION: &str = "http://hl7.org/fhir/restful-interaction";
const ENTITY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
const OBJECT_ROLE: &str = "http://terminology.hl7.org/CodeSystem/object-role";
const UAT: &str = "https://profiles.ihe.net/ITI/BALP/CodeSystem/UserAgentTypes";
const ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
/// The identifier system of OAuth client ids in audit agents.
pub const CLIENT_ID_SYSTEM: &str = "urn:ietf:params:oauth:client-id";
/// The identifier system of console operators (staff, recorded as `operator:NAME`) in audit agents.
pub const OPERATOR_SYSTEM: &str = "urn:iop-gateway:console-operator";

/// An audit record's agent as an identifier: an operator by name, else an OAuth client id.
fn agent_identifier(client_id: &str) -> Value {
    match client_id.strip_prefix("operator:") {
        Some(name) => fhir!({ "system": OPERATOR_SYSTEM, "value": name }),
        None => fhir!({ "system": CLIENT_ID_SYSTEM, "value": client_id }),
    }
}

/// The system that records the events (AuditEvent.source).
#[derive(Debug, Clone)]
pub struct AuditSource {
    pub observer: String,
    /// The clinic (its identifier base).
    pub site: String,
}

/// AuditEvent.type and .subtype of an interaction, each `(system, code, display)`: FHIR
/// `rest` with its restful interaction, or DICOM User Authentication / Login for tokens.
pub fn type_and_subtype(
    interaction: AuditInteraction,
) -> (
    (&'static str, &'static str, &'static str),
    (&'static str, &'static str, &'static str),
) {
    let rest = (EVENT_TYPE, "rest", "Restful Operation");
    let sub = |code, display| (INTERACTION, code, display);
    match interaction {
        AuditInteraction::Read => (rest, sub("read", "read")),
        AuditInteraction::Vread => (rest, sub("vread", "vread")),
        AuditInteraction::History => (rest, sub("history", "history")),
        AuditInteraction::Search => (rest, sub("search", "search")),
        AuditInteraction::Create => (rest, sub("create", "create")),
        AuditInteraction::Update => (rest, sub("update", "update")),
        AuditInteraction::Delete => (rest, sub("delete", "delete")),
        AuditInteraction::Validate | AuditInteraction::Export => {
            (rest, sub("operation", "operation"))
        }
        AuditInteraction::Token | AuditInteraction::SignIn => (
            (DCM, "110114", "User Authentication"),
            (DCM, "110122", "Login"),
        ),
        // An operator's action: the console runs an operation on the gateway's own records.
        AuditInteraction::Console => (
            (DCM, "110100", "Application Activity"),
            sub("operation", "operation"),
        ),
    }
}

/// The BALP profile an event follows, when one fits.
fn profile(record: &AuditRecord) -> Option<&'static str> {
    // BALP profiles fix outcome 0 and carry one patient at most.
    if record.outcome != crate::domain::AuditOutcome::Success {
        return None;
    }
    let patient = match record.patients.len() {
        0 => false,
        1 => true,
        _ if record.interaction == AuditInteraction::Search => false,
        _ => return None,
    };
    Some(match (record.interaction, patient) {
        (AuditInteraction::Read | AuditInteraction::Vread, true) => "IHE.BasicAudit.PatientRead",
        (AuditInteraction::Read | AuditInteraction::Vread, false) => "IHE.BasicAudit.Read",
        (AuditInteraction::Search, true) => "IHE.BasicAudit.PatientQuery",
        (AuditInteraction::Search, false) => "IHE.BasicAudit.Query",
        (AuditInteraction::Create, true) => "IHE.BasicAudit.PatientCreate",
        (AuditInteraction::Create, false) => "IHE.BasicAudit.Create",
        (AuditInteraction::Update, true) => "IHE.BasicAudit.PatientUpdate",
        (AuditInteraction::Update, false) => "IHE.BasicAudit.Update",
        (AuditInteraction::Delete, true) => "IHE.BasicAudit.PatientDelete",
        (AuditInteraction::Delete, false) => "IHE.BasicAudit.Delete",
        (
            AuditInteraction::History
            | AuditInteraction::Validate
            | AuditInteraction::Token
            | AuditInteraction::Export
            | AuditInteraction::SignIn
            | AuditInteraction::Console,
            _,
        ) => {
            return None;
        }
    })
}

/// An audit record as an AuditEvent (IHE BALP where a BALP profile fits).
pub fn audit_event(record: &AuditRecord, source: &AuditSource) -> Value {
    let ((ts, tc, td), (ss, sc, sd)) = type_and_subtype(record.interaction);
    // BALP: on a read the client receives the data (Destination), otherwise it is the Source.
    let reads = matches!(
        record.interaction,
        AuditInteraction::Read | AuditInteraction::Vread | AuditInteraction::History
    );
    let source_role =
        fhir!({ "coding": [{ "system": DCM, "code": "110153", "display": "Source Role ID" }] });
    let destination_role = fhir!({ "coding": [{ "system": DCM, "code": "110152", "display": "Destination Role ID" }] });
    let (client_role, server_role) = if reads {
        (destination_role, source_role)
    } else {
        (source_role, destination_role)
    };
    let mut client = fhir!({ "type": client_role, "requestor": record.token_id.is_none() });
    if let Some(id) = &record.client_id {
        client["who"] = fhir!({ "identifier": agent_identifier(id) });
    }
    if let Some(org) = &record.organization_id {
        client["who"]["reference"] = fhir!(format!("Organization/{org}"));
    }
    if let Some(address) = &record.source_address {
        client["network"] = fhir!({ "address": address.as_str(), "type": "2" });
    }
    // The consents that authorized the disclosure to this client (42 CFR Part 2 §2.24).
    if !record.consents.is_empty() {
        client["policy"] = fhir!(
            record
                .consents
                .iter()
                .map(|c| format!("Consent/{c}"))
                .collect::<Vec<_>>()
        );
    }
    let purpose = record
        .purpose_of_use
        .as_ref()
        .map(|p| fhir!([{ "coding": [{ "system": ACT_REASON, "code": p.as_str() }] }]));
    let server = fhir!({
        "type": server_role,
        "who": { "display": source.observer.as_str() },
        "requestor": false,
    });
    let mut agents = vec![client, server];
    if let Some(jti) = &record.token_id {
        // BALP OAUTHaccessTokenUse.Minimal: the token's id (never the token) on the agent the
        // token stands for, with its purpose of use.
        let mut token_user = fhir!({
            "type": { "coding": [{ "system": UAT, "code": "UserOauthAgent" }] },
            "requestor": true,
            "policy": [format!("urn:ietf:params:oauth:jti:{jti}")],
        });
        if let Some(client_id) = &record.client_id {
            token_user["who"] = fhir!({ "identifier": { "system": CLIENT_ID_SYSTEM, "value": client_id.as_str() } });
        }
        if let Some(purpose) = &purpose {
            token_user["purposeOfUse"] = purpose.clone();
        }
        agents.push(token_user);
    }
    let mut entities: Vec<Value> = record
        .patients
        .iter()
        .map(|p| {
            fhir!({
                "what": { "reference": format!("Patient/{p}") },
                "type": { "system": ENTITY_TYPE, "code": "1", "display": "Person" },
                "role": { "system": OBJECT_ROLE, "code": "1", "display": "Patient" },
            })
        })
        .collect();
    for entity in &record.entities {
        if entity.starts_with("Patient/") && record.patients.iter().any(|p| entity[8..] == **p) {
            continue;
        }
        entities.push(fhir!({
            "what": { "reference": entity.as_str() },
            "type": { "system": ENTITY_TYPE, "code": "2", "display": "System Object" },
            "role": { "system": OBJECT_ROLE, "code": "4", "display": "Domain Resource" },
        }));
    }
    if let Some(query) = &record.query {
        let mut entity = fhir!({
            "type": { "system": ENTITY_TYPE, "code": "2", "display": "System Object" },
            "role": { "system": OBJECT_ROLE, "code": "24", "display": "Query" },
            "query": base64::engine::general_purpose::STANDARD.encode(query),
        });
        if let Some(t) = &record.resource_type {
            entity["description"] = fhir!(format!("{t}?{query}"));
        }
        entities.push(entity);
    }
    let mut event = fhir!({
        "resourceType": "AuditEvent",
        "id": record.id.as_str(),
        "type": { "system": ts, "code": tc, "display": td },
        "subtype": [{ "system": ss, "code": sc, "display": sd }],
        "action": record.action(),
        "recorded": record.recorded.as_datetime().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "outcome": record.outcome.code().to_string(),
        "agent": agents,
        "source": {
            "site": source.site.as_str(),
            "observer": { "display": source.observer.as_str() },
            "type": [{ "system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4", "display": "Application Server" }],
        },
    });
    if let Some(profile) = profile(record) {
        event["meta"] = fhir!({ "profile": [format!("{BALP}/{profile}")] });
    }
    if let Some(desc) = &record.outcome_desc {
        event["outcomeDesc"] = fhir!(desc.as_str());
    }
    if let Some(purpose) = purpose {
        event["purposeOfEvent"] = purpose;
    }
    if !entities.is_empty() {
        event["entity"] = fhir!(entities);
    }
    event
}

/// The Patient ids `resource` is about: itself for a Patient, else its subject, patient,
/// beneficiary or `for` reference, and a Group's members.
pub fn patients_of(resource: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if member(resource, "resourceType").and_then(Value::as_str) == Some("Patient") {
        if let Some(id) = member(resource, "id").and_then(Value::as_str) {
            out.push(id.to_owned());
        }
        return out;
    }
    let mut push = |reference: Option<&Value>| {
        if let Some(id) = reference
            .and_then(|r| member(r, "reference"))
            .and_then(Value::as_str)
            .and_then(patient_id)
        {
            out.push(id.to_owned());
        }
    };
    for field in ["subject", "patient", "beneficiary", "for"] {
        push(member(resource, field));
    }
    if let Some(members) = member(resource, "member").and_then(Value::as_array) {
        for group_member in members {
            push(member(group_member, "entity"));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// `Patient/x` or `https://host/fhir/Patient/x` → `x`.
fn patient_id(reference: &str) -> Option<&str> {
    let mut parts = reference.rsplitn(3, '/');
    let id = parts.next()?;
    (parts.next()? == "Patient" && !id.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patients_come_from_the_resource_or_its_references() {
        assert_eq!(
            patients_of(&json!({"resourceType": "Patient", "id": "p1"})),
            ["p1"]
        );
        assert_eq!(
            patients_of(&json!({"resourceType": "Task", "for": {"reference": "Patient/p2"}})),
            ["p2"]
        );
        assert_eq!(
            patients_of(&json!({"resourceType": "Group", "member": [
                {"entity": {"reference": "http://x/fhir/Patient/p3"}},
                {"entity": {"reference": "Practitioner/s1"}}
            ]})),
            ["p3"]
        );
        assert!(patients_of(&json!({"resourceType": "Organization", "id": "o"})).is_empty());
    }
}
