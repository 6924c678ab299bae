//! The CapabilityStatement: generated from the tables the handlers use, so it states what is
//! really implemented.

use serde_json::{Value, json};

use super::{filters, matching};
use crate::assemble::RESOURCE_TYPES;
use crate::validation::IopProfiles;

/// Types whose instances can be created and updated through the API (inbound mapping exists and
/// is wired); the rest are read-only.
pub const WRITABLE: &[&str] = &[
    "Patient",
    "RelatedPerson",
    "Consent",
    "Encounter",
    "EpisodeOfCare",
    "Goal",
    "CarePlan",
    "Task",
];

/// `profiles`: the validator's table of IOP profiles, the ones writes and `$validate` apply.
pub fn statement(
    base: &str,
    security: &super::Security,
    origin: &str,
    profiles: &IopProfiles,
) -> Value {
    let mut resources: Vec<Value> = RESOURCE_TYPES
        .iter()
        .map(|t| {
            let mut interactions = vec![
                json!({"code": "read"}),
                json!({"code": "vread"}),
                json!({"code": "search-type"}),
                json!({"code": "history-instance"}),
                json!({"code": "history-type"}),
            ];
            if *t == "ServiceRequest" || *t == "Task" {
                interactions.push(json!({
                    "code": "create",
                    "documentation": "A referral sent the RESTful way (HL7 BSeR): its ServiceRequest (placer identifier typed PLAC, its Patient and requester contained) is held, then the Task (code fulfill, placer identifier) whose focus names it completes the referral. Needs system/ServiceRequest.c and system/Task.c."
                }));
            } else if super::write::CLINIC_APP_CREATES.contains(t) {
                interactions.push(json!({
                    "code": "create",
                    "documentation": "Only the clinic's own applications (clients registered with --clinic-app) create, and write whole, treatment plans (with interventions as activity and reviews as note, the enrollment as supportingInfo), relapse-prevention plans (partOf the treatment plan) and goals (in a transaction Bundle with the CarePlan that lists them); other clients get 403 and may update status, period and goal progress only."
                }));
            } else if WRITABLE.contains(t) {
                interactions.push(json!({"code": "create"}));
            }
            if WRITABLE.contains(t) {
                interactions.push(json!({"code": "update"}));
            }
            let mut params: Vec<Value> = filters::supported(t)
                .iter()
                .map(|p| {
                    let kind = match *p {
                        "_lastUpdated" => "date",
                        "_id" => "token",
                        "identifier" => "token",
                        _ => "reference",
                    };
                    json!({ "name": p, "type": kind })
                })
                .collect();
            params.extend(
                matching::names(t)
                    .into_iter()
                    .map(|p| json!({ "name": p, "type": matching::kind_name(t, p) })),
            );
            // Any reference element can be followed; these are the ones clients ask for.
            let mut includes: Vec<String> = ["patient", "subject"]
                .iter()
                .filter(|p| filters::supported(t).contains(p))
                .map(|p| format!("{t}:{p}"))
                .collect();
            if *t == "CarePlan" {
                includes.push("CarePlan:goal".into());
            }
            let mut resource = json!({
                "type": t,
                "interaction": interactions,
                "versioning": "versioned",
                "readHistory": false,
                "updateCreate": false,
                "conditionalRead": "not-supported",
                "conditionalDelete": "not-supported",
                "searchParam": params,
                "searchInclude": includes,
                "supportedProfile": profiles.all_of_type(t),
                "operation": [{
                    "name": "validate",
                    "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"
                }]
            });
            if *t == "CarePlan" {
                resource["operation"]
                    .as_array_mut()
                    .expect("an array")
                    .push(json!({
                        "name": "add-review",
                        "definition": format!("{}/OperationDefinition/CarePlan-add-review", crate::mapping::codes::CANONICAL),
                        "documentation": "POST CarePlan/[id]/$add-review (clinic applications only): a Parameters with date (default today), reviewer (Reference(Practitioner)), summary (string), nextReview (date; default the date plus the plan's review interval) and per goal a progress (parts goal, note, achievement code). One transaction; answers the CarePlan with its new version."
                    }));
            }
            if *t == "Group" {
                resource["operation"]
                    .as_array_mut()
                    .expect("an array")
                    .push(json!({
                        "name": "export",
                        "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"
                    }));
            }
            if *t == "Patient" {
                resource["operation"]
                    .as_array_mut()
                    .expect("an array")
                    .push(json!({
                        "name": "export",
                        "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"
                    }));
                resource["searchRevInclude"] = json!(
                    RESOURCE_TYPES
                        .iter()
                        .filter(|r| filters::supported(r).contains(&"patient"))
                        .map(|r| format!("{r}:patient"))
                        .collect::<Vec<_>>()
                );
            }
            // Conditional writes match `identifier=system|value`: the clinic's record id, the
            // MRN (Patient), or any identifier a record came with (`upsert`).
            if WRITABLE.contains(t) {
                resource["conditionalCreate"] = json!(*t != "Task");
                resource["conditionalUpdate"] = json!(true);
            }
            resource
        })
        .collect();
    // The accounting of disclosures (needs system/AuditEvent.rs).
    let search_param = |name: &str, kind: &str| json!({ "name": name, "type": kind, "definition": format!("http://hl7.org/fhir/SearchParameter/AuditEvent-{name}") });
    resources.push(json!({
        "type": "AuditEvent",
        "profile": "http://hl7.org/fhir/StructureDefinition/AuditEvent",
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "searchParam": [
            search_param("patient", "reference"),
            search_param("agent", "reference"),
            search_param("date", "date"),
            search_param("type", "token"),
            search_param("subtype", "token"),
        ],
    }));
    // Referral feedback documents (needs system/Bundle.r), built for each reader.
    resources.push(json!({
        "type": "Bundle",
        "profile": "http://hl7.org/fhir/StructureDefinition/Bundle",
        "interaction": [{
            "code": "read",
            "documentation": "The feedback document (HL7 BSeR) of a fulfilled referral the clinic received, at the referral's id, as its completed Task's output names it; built when read, with what the reader's consents allow."
        }],
    }));
    let mut security_json = json!({ "description": &*security.description });
    if security.smart {
        security_json["service"] = json!([{ "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
            "code": "SMART-on-FHIR"
        }] }]);
        security_json["extension"] = json!([{
            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
            "extension": [{ "url": "token", "valueUri": format!("{origin}{}", crate::auth::TOKEN_PATH) }]
        }]);
    }
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-25",
        "kind": "instance",
        "software": { "name": "iop-gateway", "version": env!("CARGO_PKG_VERSION") },
        "implementation": { "description": "IOP clinic FHIR facade", "url": base },
        "fhirVersion": "4.0.1",
        "instantiates": ["http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"],
        "format": ["application/fhir+json", "application/json"],
        "rest": [{
            "mode": "server",
            "operation": [{
                "name": "export",
                "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"
            }, {
                "name": "process-message",
                "definition": "http://hl7.org/fhir/OperationDefinition/MessageHeader-process-message"
            }],
            "security": security_json,
            "documentation": format!(
                "Transaction and batch Bundles take at most {} entries. A search page holds at most {} matches (_count) and {} resources added by _include/_revinclude (a warning entry says when it was cut). Sorting or counting with resource-level parameters reads at most {} records (400 too-costly beyond). Conditional create and update match identifier=system|value: the clinic's record id, the MRN (Patient), or any identifier a record came with.",
                super::transaction::MAX_BUNDLE_ENTRIES,
                super::MAX_COUNT,
                super::searchset::MAX_INCLUDED,
                super::searchset::SORT_SCAN_LIMIT
            ),
            "resource": resources
        }],
        // Referrals arrive as HL7 BSeR messages (event v2-0003#I12), answered synchronously.
        "messaging": [{
            "documentation": "Referrals in (HL7 BSeR): POST [base]/$process-message with a message Bundle whose MessageHeader has event http://terminology.hl7.org/CodeSystem/v2-0003#I12 and focus the referral Task; synchronous only."
        }]
    })
}
