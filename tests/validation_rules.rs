//! Validator rules that the IOP profiles themselves do not exercise: type and profile
//! discriminators, ordered and closed slicing, extension contexts, references between the
//! entries of a Bundle. The profiles here are built in the test from the R4 Bundle snapshot.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use iop_gateway::validation::{BundleIndex, Issue, Registry, Validator};
use serde_json::{Value, json};

const IOP_PATIENT: &str = "https://iop-gateway.org/fhir/StructureDefinition/iop-patient";

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/fhir")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn error_locations(issues: &[Issue]) -> BTreeSet<String> {
    issues
        .iter()
        .filter(|i| i.is_error())
        .map(|i| i.expression.clone())
        .collect()
}

fn error_messages(issues: &[Issue]) -> Vec<String> {
    issues
        .iter()
        .filter(|i| i.is_error())
        .map(|i| format!("{}: {}", i.expression, i.message))
        .collect()
}

/// A profile on Bundle whose `entry` is sliced by `discriminator` on `entry.resource`, with
/// the given slices `(name, min, max, resource type element)`.
fn bundle_profile(
    url: &str,
    discriminator: Value,
    rules: &str,
    ordered: bool,
    slices: &[(&str, u64, &str, Value)],
) -> Value {
    let registry = Registry::builtin();
    let base = registry.type_definition("Bundle").unwrap();
    let mut elements: Vec<Value> = Vec::new();
    for element in base["snapshot"]["element"].as_array().unwrap() {
        let mut element = element.clone();
        let id = element["id"].as_str().unwrap().to_owned();
        if id == "Bundle.entry" {
            element["slicing"] = json!({
                "discriminator": [discriminator.clone()],
                "rules": rules,
                "ordered": ordered
            });
        }
        elements.push(element);
        if id == "Bundle.entry.response" {
            // The slices follow the sliced element's own children, each with all of them.
            let entry_children: Vec<Value> = base["snapshot"]["element"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["id"].as_str().unwrap().starts_with("Bundle.entry."))
                .cloned()
                .collect();
            for (name, min, max, resource_type) in slices {
                elements.push(json!({
                    "id": format!("Bundle.entry:{name}"),
                    "path": "Bundle.entry",
                    "sliceName": name,
                    "min": min,
                    "max": max,
                    "base": { "path": "Bundle.entry", "min": 0, "max": "*" }
                }));
                for child in &entry_children {
                    let mut child = child.clone();
                    let child_id = child["id"].as_str().unwrap().replacen(
                        "Bundle.entry.",
                        &format!("Bundle.entry:{name}."),
                        1,
                    );
                    if child_id == format!("Bundle.entry:{name}.resource") {
                        child["min"] = json!(1);
                        child["type"] = json!([resource_type]);
                    }
                    child["id"] = json!(child_id);
                    elements.push(child);
                }
            }
        }
    }
    json!({
        "resourceType": "StructureDefinition",
        "url": url,
        "name": "TestBundle",
        "status": "draft",
        "kind": "resource",
        "abstract": false,
        "type": "Bundle",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Bundle",
        "derivation": "constraint",
        "snapshot": { "element": elements }
    })
}

fn collection(url: &str, resources: &[Value]) -> Value {
    json!({
        "resourceType": "Bundle",
        "meta": { "profile": [url] },
        "type": "collection",
        "entry": resources
            .iter()
            .map(|r| json!({ "fullUrl": format!("urn:uuid:{}", uuid_for(r)), "resource": r }))
            .collect::<Vec<_>>()
    })
}

fn uuid_for(resource: &Value) -> String {
    let name = format!("{}/{}", resource["resourceType"], resource["id"]);
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, name.as_bytes()).to_string()
}

fn validator_with(profiles: Vec<Value>) -> Validator {
    let mut registry = Registry::builtin();
    for profile in profiles {
        registry.add(profile);
    }
    Validator::new(Arc::new(registry))
}

#[test]
fn type_discriminator_with_ordered_closed_slicing() {
    let url = "https://example.org/StructureDefinition/patient-then-plans";
    let validator = validator_with(vec![bundle_profile(
        url,
        json!({ "type": "type", "path": "resource" }),
        "closed",
        true,
        &[
            ("patient", 1, "1", json!({ "code": "Patient" })),
            ("plan", 0, "*", json!({ "code": "CarePlan" })),
        ],
    )]);
    let patient = fixture("Patient-client.json");
    let plan = fixture("CarePlan-treatment-plan.json");
    let goal = fixture("Goal-goal.json");

    let mut second_plan = plan.clone();
    second_plan["id"] = json!("second-plan");
    let good = collection(url, &[patient.clone(), plan.clone(), second_plan]);
    let issues = validator.validate(&good, &[]);
    assert!(error_messages(&issues).is_empty(), "{issues:#?}");

    let reversed = collection(url, &[plan.clone(), patient.clone()]);
    let issues = validator.validate(&reversed, &[]);
    assert_eq!(
        error_locations(&issues),
        BTreeSet::from(["Bundle.entry[1]".to_owned()]),
        "{:#?}",
        error_messages(&issues)
    );
    assert!(error_messages(&issues)[0].contains("out of order"));

    let stray = collection(url, &[patient.clone(), goal]);
    let issues = validator.validate(&stray, &[]);
    assert_eq!(
        error_locations(&issues),
        BTreeSet::from(["Bundle.entry[1]".to_owned()]),
        "{:#?}",
        error_messages(&issues)
    );
    assert!(error_messages(&issues)[0].contains("closed"));

    let no_patient = collection(url, &[plan]);
    let issues = validator.validate(&no_patient, &[]);
    assert_eq!(
        error_messages(&issues),
        vec!["Bundle.entry: slice patient needs at least 1 value(s), found 0"]
    );
}

#[test]
fn open_at_end_slicing_wants_unsliced_values_last() {
    let url = "https://example.org/StructureDefinition/patient-first";
    let validator = validator_with(vec![bundle_profile(
        url,
        json!({ "type": "type", "path": "resource" }),
        "openAtEnd",
        false,
        &[("patient", 0, "1", json!({ "code": "Patient" }))],
    )]);
    let patient = fixture("Patient-client.json");
    let goal = fixture("Goal-goal.json");
    let issues = validator.validate(&collection(url, &[patient.clone(), goal.clone()]), &[]);
    assert!(error_messages(&issues).is_empty(), "{issues:#?}");
    let issues = validator.validate(&collection(url, &[goal, patient]), &[]);
    assert_eq!(
        error_locations(&issues),
        BTreeSet::from(["Bundle.entry[1]".to_owned()]),
        "{:#?}",
        error_messages(&issues)
    );
}

#[test]
fn profile_discriminator_checks_the_value_against_the_profile() {
    let url = "https://example.org/StructureDefinition/needs-iop-client";
    let validator = validator_with(vec![bundle_profile(
        url,
        json!({ "type": "profile", "path": "resource" }),
        "open",
        false,
        &[(
            "client",
            1,
            "1",
            json!({ "code": "Patient", "profile": [IOP_PATIENT] }),
        )],
    )]);
    let patient = fixture("Patient-client.json");
    let issues = validator.validate(&collection(url, std::slice::from_ref(&patient)), &[]);
    assert!(error_messages(&issues).is_empty(), "{issues:#?}");

    // A Patient that breaks the IOP profile (no identifier) is in no slice: the slice is empty.
    let mut plain = patient;
    plain.as_object_mut().unwrap().remove("identifier");
    plain.as_object_mut().unwrap().remove("meta");
    let issues = validator.validate(&collection(url, &[plain]), &[]);
    assert_eq!(
        error_messages(&issues),
        vec!["Bundle.entry: slice client needs at least 1 value(s), found 0"]
    );
}

#[test]
fn extensions_are_only_allowed_in_their_declared_context() {
    let validator = validator_with(Vec::new());
    let plan = fixture("CarePlan-treatment-plan.json");
    let next_review = plan["extension"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["url"].as_str().unwrap().ends_with("iop-next-review"))
        .cloned()
        .expect("the treatment plan fixture carries its next review date");
    let mut patient = fixture("Patient-client.json");
    patient["extension"] = json!([next_review]);
    let issues = validator.validate(&patient, &[]);
    let messages = error_messages(&issues);
    assert_eq!(
        error_locations(&issues),
        BTreeSet::from(["Patient.extension[0]".to_owned()]),
        "{messages:#?}"
    );
    assert!(
        messages[0].contains("allows it on CarePlan"),
        "{messages:?}"
    );
}

/// An extension is walked against its definition by its slice's type profile and again as an
/// extension; the second walk is skipped (the same walk), and what is wrong inside it is still
/// reported, once, where it is.
#[test]
fn what_is_wrong_inside_a_profiled_extension_is_reported_once() {
    let validator = validator_with(Vec::new());
    let mut plan = fixture("CarePlan-treatment-plan.json");
    let extensions = plan["extension"].as_array_mut().unwrap();
    let (at, next_review) = extensions
        .iter_mut()
        .enumerate()
        .find(|(_, e)| e["url"].as_str().unwrap().ends_with("iop-next-review"))
        .expect("the treatment plan fixture carries its next review date");
    let (value_name, _) = next_review
        .as_object()
        .unwrap()
        .iter()
        .find(|(name, _)| name.starts_with("value"))
        .map(|(name, value)| (name.clone(), value.clone()))
        .unwrap();
    next_review[&value_name] = json!("next Tuesday");
    let issues = validator.validate(&plan, &[]);
    let location = format!("CarePlan.extension[{at}].{value_name}");
    let here: Vec<&Issue> = issues
        .iter()
        .filter(|i| i.is_error() && i.expression == location)
        .collect();
    assert_eq!(here.len(), 1, "{:#?}", error_messages(&issues));
    assert!(here[0].message.contains("not a valid"), "{here:#?}");
}

/// tim-4 and tim-5 (`x.exists() implies x >= 0`) are decided without the FHIRPath evaluator
/// for numbers: a negative duration or period fails them, a positive one or none passes.
#[test]
fn a_timings_duration_and_period_may_not_be_negative() {
    let validator = validator_with(Vec::new());
    let request = |repeat: Value| {
        json!({
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "order",
            "subject": { "reference": "Patient/p" },
            "occurrenceTiming": { "repeat": repeat }
        })
    };
    let failed = |repeat: Value| -> Vec<String> {
        validator
            .validate(&request(repeat), &[])
            .iter()
            .filter(|i| i.is_error() && i.expression.ends_with("occurrenceTiming.repeat"))
            .map(|i| i.message.clone())
            .collect()
    };
    let negative =
        failed(json!({ "duration": -1.5, "durationUnit": "h", "period": -2, "periodUnit": "d" }));
    assert!(
        negative.iter().any(|m| m.contains("tim-4")),
        "{negative:#?}"
    );
    assert!(
        negative.iter().any(|m| m.contains("tim-5")),
        "{negative:#?}"
    );
    assert_eq!(
        failed(json!({ "duration": 1.5, "durationUnit": "h", "period": 0, "periodUnit": "d" })),
        Vec::<String>::new()
    );
    assert_eq!(failed(json!({ "frequency": 1 })), Vec::<String>::new());
}

#[test]
fn references_between_bundle_entries_resolve() {
    let validator = validator_with(Vec::new());
    let patient = fixture("Patient-client.json");
    let goal = fixture("Goal-goal.json");
    let mut plan = fixture("CarePlan-treatment-plan.json");
    let transaction = |plan: &Value| {
        json!({
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                { "fullUrl": "urn:uuid:0b5e8a4e-0000-4000-8000-000000000001", "resource": patient,
                  "request": { "method": "POST", "url": "Patient" } },
                { "fullUrl": "urn:uuid:0b5e8a4e-0000-4000-8000-000000000002", "resource": goal,
                  "request": { "method": "POST", "url": "Goal" } },
                { "fullUrl": "urn:uuid:0b5e8a4e-0000-4000-8000-000000000003", "resource": plan,
                  "request": { "method": "POST", "url": "CarePlan" } }
            ]
        })
    };
    plan["subject"]["reference"] = json!("urn:uuid:0b5e8a4e-0000-4000-8000-000000000001");
    let bundle = transaction(&plan);
    assert!(error_messages(&validator.validate(&bundle, &[])).is_empty());
    // The same entry checked on its own, as the CLI does, with the Bundle's index.
    let index = BundleIndex::of(&bundle);
    assert!(error_messages(&validator.validate_entry(&plan, &index, &[])).is_empty());

    plan["subject"]["reference"] = json!("urn:uuid:0b5e8a4e-0000-4000-8000-00000000ffff");
    let issues = validator.validate(&transaction(&plan), &[]);
    assert_eq!(
        error_messages(&issues),
        vec![
            "Bundle.entry[2].resource.subject.reference: no entry of the Bundle has fullUrl urn:uuid:0b5e8a4e-0000-4000-8000-00000000ffff"
        ]
    );

    // Resolved to a Goal: the CarePlan's subject must be a Patient (or Group).
    plan["subject"]["reference"] = json!("urn:uuid:0b5e8a4e-0000-4000-8000-000000000002");
    let issues = validator.validate(&transaction(&plan), &[]);
    let messages = error_messages(&issues);
    assert!(
        messages.iter().any(|m| m
            .starts_with("Bundle.entry[2].resource.subject.reference: must refer to")
            && m.ends_with("not Goal")),
        "{messages:#?}"
    );
}

#[test]
fn unknown_extensions_are_errors_unless_a_loaded_profile_names_them() {
    let validator = validator_with(Vec::new());
    let mut patient = fixture("Patient-client.json");
    let unknown =
        json!({ "url": "https://example.com/ext/favourite-colour", "valueString": "teal" });
    // On the resource and on a primitive (`_birthDate`), as the HL7 reference validator has it.
    patient["extension"] = json!([unknown.clone()]);
    patient["_birthDate"] = json!({ "extension": [unknown] });
    let issues = validator.validate(&patient, &[]);
    assert_eq!(
        error_locations(&issues),
        BTreeSet::from([
            "Patient.extension[0]".to_owned(),
            "Patient.birthDate.extension[0]".to_owned()
        ]),
        "{:#?}",
        error_messages(&issues)
    );
    // US Core's race extension is not loaded, but the IOP Patient profile names it: a warning.
    let mut patient = fixture("Patient-client.json");
    patient["extension"] = json!([{
        "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
        "extension": [{ "url": "text", "valueString": "Unknown" }]
    }]);
    let issues = validator.validate(&patient, &[]);
    assert!(
        error_messages(&issues).is_empty(),
        "{:#?}",
        error_messages(&issues)
    );
    assert!(
        issues
            .iter()
            .any(|i| i.message.contains("us-core-race is named by a profile")),
        "{issues:#?}"
    );
}

#[test]
fn min_and_max_values_compare_quantities_after_ucum_conversion() {
    let registry = Registry::builtin();
    let mut profile = registry
        .type_definition("Observation")
        .unwrap()
        .as_ref()
        .clone();
    profile["url"] = json!("https://example.org/fhir/StructureDefinition/weight-limits");
    profile["derivation"] = json!("constraint");
    profile["baseDefinition"] = json!("http://hl7.org/fhir/StructureDefinition/Observation");
    for element in profile["snapshot"]["element"].as_array_mut().unwrap() {
        if element["id"] == "Observation.value[x]" {
            let ucum = "http://unitsofmeasure.org";
            element["minValueQuantity"] = json!({ "value": 0, "system": ucum, "code": "kg" });
            element["maxValueQuantity"] = json!({ "value": 10, "system": ucum, "code": "kg" });
        }
    }
    let validator = validator_with(vec![profile]);
    let observation = |grams: f64| {
        json!({
            "resourceType": "Observation", "status": "final",
            "meta": { "profile": ["https://example.org/fhir/StructureDefinition/weight-limits"] },
            "code": { "text": "weight" },
            "valueQuantity": { "value": grams, "system": "http://unitsofmeasure.org", "code": "g" }
        })
    };
    assert!(error_messages(&validator.validate(&observation(9000.0), &[])).is_empty());
    let too_heavy = error_messages(&validator.validate(&observation(11000.0), &[]));
    assert!(
        too_heavy.len() == 1 && too_heavy[0].contains("greater than the specified maxValue"),
        "{too_heavy:#?}"
    );
    let negative = error_messages(&validator.validate(&observation(-1.0), &[]));
    assert!(
        negative.len() == 1 && negative[0].contains("less than"),
        "{negative:#?}"
    );
}

#[test]
fn an_observation_with_a_vital_sign_code_is_held_to_its_vital_signs_profile() {
    let validator = validator_with(Vec::new());
    // A body weight without a value in kg or lb (the bodyweight profile binds its unit).
    let weight = json!({
        "resourceType": "Observation", "status": "final",
        "category": [{ "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs" }] }],
        "code": { "coding": [{ "system": "http://loinc.org", "code": "29463-7" }] },
        "subject": { "reference": "Patient/1" },
        "effectiveDateTime": "2026-12-01",
        "valueQuantity": { "value": 70, "unit": "m", "system": "http://unitsofmeasure.org", "code": "m" }
    });
    let messages = error_messages(&validator.validate(&weight, &[]));
    assert!(
        messages.len() == 1 && messages[0].starts_with("Observation.valueQuantity.code"),
        "{messages:#?}"
    );
    let mut in_kg = weight.clone();
    in_kg["valueQuantity"]["code"] = json!("kg");
    in_kg["valueQuantity"]["unit"] = json!("kg");
    let messages = error_messages(&validator.validate(&in_kg, &[]));
    assert!(messages.is_empty(), "{messages:#?}");
}

#[test]
fn a_profile_slicing_by_an_element_that_is_not_there_is_refused() {
    let validator = validator_with(Vec::new());
    let profile = |discriminator: &str| {
        json!({
            "resourceType": "StructureDefinition",
            "url": "https://example.org/fhir/StructureDefinition/agent-ids",
            "name": "AgentIds", "status": "draft", "kind": "resource", "abstract": false,
            "type": "AuditEvent", "derivation": "constraint",
            "baseDefinition": "http://hl7.org/fhir/StructureDefinition/AuditEvent",
            "differential": { "element": [
                { "id": "AuditEvent.agent", "path": "AuditEvent.agent",
                  "slicing": { "discriminator": [{ "type": "pattern", "path": "type" }], "rules": "open" } },
                { "id": "AuditEvent.agent.extension", "path": "AuditEvent.agent.extension",
                  "slicing": { "discriminator": [{ "type": "value", "path": discriminator }], "rules": "open" } }
            ] }
        })
    };
    // `url` is an element of Extension (and `type` one of the agent backbone): fine.
    let fine = error_messages(&validator.validate(&profile("url"), &[]));
    assert!(
        !fine.iter().any(|m| m.contains("discriminator")),
        "{fine:#?}"
    );
    // An Extension has no `type`: its slices could never be told apart.
    let wrong = error_messages(&validator.validate(&profile("type"), &[]));
    assert!(
        wrong
            .iter()
            .any(|m| m.contains("discriminator names no element") && m.contains("'type'")),
        "{wrong:#?}"
    );
}

/// A Parameters profile whose `parameter.resource` names Patient profiles: the nested resource
/// is held to them (to one of them where several are named), and a profile of another type
/// does not fit it.
#[test]
fn resources_nested_in_parameters_meet_the_profiles_their_element_names() {
    let patient_profile = |name: &str, must_have: &str| {
        json!({
            "resourceType": "StructureDefinition",
            "url": format!("https://example.org/fhir/StructureDefinition/{name}"),
            "name": name, "status": "draft", "kind": "resource", "abstract": false,
            "type": "Patient", "derivation": "constraint",
            "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
            "differential": { "element": [
                { "id": format!("Patient.{must_have}"), "path": format!("Patient.{must_have}"), "min": 1 }
            ] }
        })
    };
    let parameters_profile = |name: &str, profiles: &[&str]| {
        let profiles: Vec<String> = profiles
            .iter()
            .map(|p| format!("https://example.org/fhir/StructureDefinition/{p}"))
            .collect();
        json!({
            "resourceType": "StructureDefinition",
            "url": format!("https://example.org/fhir/StructureDefinition/{name}"),
            "name": name, "status": "draft", "kind": "resource", "abstract": false,
            "type": "Parameters", "derivation": "constraint",
            "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Parameters",
            "differential": { "element": [
                { "id": "Parameters.parameter.resource", "path": "Parameters.parameter.resource",
                  "type": [{ "code": "Resource", "profile": profiles }] }
            ] }
        })
    };
    let validator = validator_with(vec![
        patient_profile("named-patient", "name"),
        patient_profile("born-patient", "birthDate"),
        parameters_profile("one-profile", &["named-patient"]),
        parameters_profile("either-profile", &["named-patient", "born-patient"]),
        parameters_profile("unloaded-profile", &["no-such-patient"]),
        json!({
            "resourceType": "StructureDefinition",
            "url": "https://example.org/fhir/StructureDefinition/named-group",
            "name": "NamedGroup", "status": "draft", "kind": "resource", "abstract": false,
            "type": "Group", "derivation": "constraint",
            "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Group",
            "differential": { "element": [
                { "id": "Group.name", "path": "Group.name", "min": 1 }
            ] }
        }),
        parameters_profile("patient-or-group", &["named-group", "named-patient"]),
        parameters_profile("group-only", &["named-group"]),
    ]);
    let url = |name: &str| format!("https://example.org/fhir/StructureDefinition/{name}");
    let parameters = |patient: Value| json!({ "resourceType": "Parameters", "parameter": [{ "name": "who", "resource": patient }] });
    let born = parameters(json!({ "resourceType": "Patient", "birthDate": "1980-02-03" }));
    let named = parameters(json!({ "resourceType": "Patient", "name": [{ "family": "Doe" }] }));

    let missing_name = error_messages(&validator.validate(&born, &[url("one-profile")]));
    assert!(
        missing_name.iter().any(|m| m.contains("needs at least 1")),
        "{missing_name:#?}"
    );
    let fine = error_messages(&validator.validate(&named, &[url("one-profile")]));
    assert!(fine.is_empty(), "{fine:#?}");
    // Of two profiles, meeting one is enough.
    let either = error_messages(&validator.validate(&born, &[url("either-profile")]));
    assert!(either.is_empty(), "{either:#?}");
    let neither = parameters(json!({ "resourceType": "Patient", "gender": "other" }));
    let none = error_messages(&validator.validate(&neither, &[url("either-profile")]));
    assert!(
        none.iter()
            .any(|m| m.contains("meets none of the profiles")),
        "{none:#?}"
    );
    // Profiles for other resource types are another choice, not a failure; where only those are
    // named, the resource fits none.
    let chosen = error_messages(&validator.validate(&named, &[url("patient-or-group")]));
    assert!(chosen.is_empty(), "{chosen:#?}");
    let wrong_type = error_messages(&validator.validate(&named, &[url("group-only")]));
    assert!(
        wrong_type
            .iter()
            .any(|m| m.contains("a Patient is here") && m.contains("named-group")),
        "{wrong_type:#?}"
    );
    // A profile the element names but that is not loaded is never a silent pass.
    let unloaded = error_messages(&validator.validate(&named, &[url("unloaded-profile")]));
    assert!(
        unloaded
            .iter()
            .any(|m| m.contains("no-such-patient") && m.contains("not loaded")),
        "{unloaded:#?}"
    );
}

/// An element naming several profiles for its data type: the value meets one of them, or it is
/// an error that says so (`ElementDefinition.type.profile`: "at least one of them").
#[test]
fn a_value_meets_one_of_the_data_type_profiles_its_element_names() {
    let identifier_profile = |name: &str, must_have: &str| {
        json!({
            "resourceType": "StructureDefinition",
            "url": format!("https://example.org/fhir/StructureDefinition/{name}"),
            "name": name, "status": "draft", "kind": "complex-type", "abstract": false,
            "type": "Identifier", "derivation": "constraint",
            "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Identifier",
            "differential": { "element": [
                { "id": format!("Identifier.{must_have}"), "path": format!("Identifier.{must_have}"), "min": 1 }
            ] }
        })
    };
    let patient_profile = json!({
        "resourceType": "StructureDefinition",
        "url": "https://example.org/fhir/StructureDefinition/identified-patient",
        "name": "IdentifiedPatient", "status": "draft", "kind": "resource", "abstract": false,
        "type": "Patient", "derivation": "constraint",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
        "differential": { "element": [
            { "id": "Patient.identifier", "path": "Patient.identifier",
              "type": [{ "code": "Identifier", "profile": [
                  "https://example.org/fhir/StructureDefinition/system-identifier",
                  "https://example.org/fhir/StructureDefinition/valued-identifier"
              ] }] }
        ] }
    });
    let validator = validator_with(vec![
        identifier_profile("system-identifier", "system"),
        identifier_profile("valued-identifier", "value"),
        patient_profile,
    ]);
    let required = ["https://example.org/fhir/StructureDefinition/identified-patient".to_owned()];
    let patient =
        |identifier: Value| json!({ "resourceType": "Patient", "identifier": [identifier] });
    let valued =
        error_messages(&validator.validate(&patient(json!({ "value": "123" })), &required));
    assert!(valued.is_empty(), "{valued:#?}");
    let neither =
        error_messages(&validator.validate(&patient(json!({ "use": "usual" })), &required));
    assert!(
        neither
            .iter()
            .any(|m| m.contains("meets none of the profiles")),
        "{neither:#?}"
    );
    assert!(
        neither.iter().any(|m| m.contains("needs at least 1")),
        "{neither:#?}"
    );
}

/// A Patient profile with a full snapshot: the base's, with `change` applied to its elements.
fn patient_profile_from_base(url: &str, change: impl Fn(&mut Value)) -> Value {
    let registry = Registry::builtin();
    let mut profile = (**registry.type_definition("Patient").unwrap()).clone();
    profile["url"] = json!(url);
    profile["derivation"] = json!("constraint");
    profile["baseDefinition"] = json!("http://hl7.org/fhir/StructureDefinition/Patient");
    for element in profile["snapshot"]["element"].as_array_mut().unwrap() {
        change(element);
    }
    profile
}

#[test]
fn the_base_rules_hold_on_a_profiled_resource_whether_or_not_the_profile_repeats_them() {
    // One profile repeats every rule of Patient; the other binds gender to a value set of its
    // own, by example only, and drops the invariant pat-1 from contacts: the base's binding
    // and invariant must still be applied beside it.
    let same = "https://example.org/fhir/StructureDefinition/same-as-patient";
    let loosened = "https://example.org/fhir/StructureDefinition/loosened-patient";
    let validator = validator_with(vec![
        patient_profile_from_base(same, |_| {}),
        patient_profile_from_base(loosened, |element| {
            if element["id"] == "Patient.gender" {
                element["binding"] = json!({ "strength": "example", "valueSet": "https://example.org/fhir/ValueSet/any" });
            }
            if element["id"] == "Patient.contact" {
                element["constraint"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|c| c["key"] != "pat-1");
            }
        }),
    ]);
    for url in [same, loosened] {
        let patient = json!({
            "resourceType": "Patient",
            "meta": { "profile": [url] },
            "gender": "robot",
            "birthDate": "1990-13-01",
            "generalPractitioner": [{ "reference": "Group/1" }],
            "contact": [{ "gender": "female" }]
        });
        let errors = error_locations(&validator.validate(&patient, &[]));
        for expected in [
            "Patient.gender",
            "Patient.birthDate",
            "Patient.generalPractitioner[0].reference",
            "Patient.contact[0]",
        ] {
            assert!(
                errors.contains(expected),
                "{url}: {expected} in {errors:#?}"
            );
        }
    }
}

#[test]
fn a_reference_whose_target_profiles_are_not_loaded_still_keeps_to_the_base_targets() {
    // The IOP CarePlan's subject names US Core's Patient profile, which is not built in: the
    // reference must still be to a Patient or a Group, as the base CarePlan says.
    let validator = validator_with(vec![]);
    let mut care_plan = fixture("CarePlan-treatment-plan.json");
    assert!(
        error_messages(&validator.validate(&care_plan, &[])).is_empty(),
        "the fixture is valid"
    );
    care_plan["subject"] =
        json!({ "reference": "Practitioner/b1fdb51b-3f7f-50cb-8145-f93aeb842ffe" });
    let errors = error_messages(&validator.validate(&care_plan, &[]));
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("CarePlan.subject.reference: must refer to Patient or Group")),
        "{errors:#?}"
    );
}

#[test]
fn a_resource_id_extension_url_and_stray_properties_are_checked_by_the_walk_itself() {
    // R4 types these as FHIRPath System strings; their FHIR types (`id` for a resource's own
    // id, `uri` for an extension's url) decide their format. The walk says so at the element,
    // not only the JSON Schema behind it.
    let validator = validator_with(vec![]);
    let location = json!({
        "resourceType": "Location",
        "id": "org_1",
        "name": "Day room",
        "extension": [{ "url": "http://example.org/an extension", "valueString": "x" }],
        "fhir_comments": ["DSTU2 JSON"]
    });
    let errors = error_messages(&validator.validate(&location, &[]));
    for expected in [
        "Location.id: is not a valid id",
        "Location.extension[0].url: is not a valid uri",
        "Location.fhir_comments: unknown element `fhir_comments`",
    ] {
        assert!(
            errors.iter().any(|e| e.starts_with(expected)),
            "{expected} in {errors:#?}"
        );
    }
    let long_id = json!({ "resourceType": "Location", "id": "a".repeat(65), "name": "Day room" });
    let errors = error_messages(&validator.validate(&long_id, &[]));
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("Location.id: is not a valid id")),
        "{errors:#?}"
    );
    let fine = json!({ "resourceType": "Location", "id": "a".repeat(64), "name": "Day room" });
    assert!(error_messages(&validator.validate(&fine, &[])).is_empty());
}

#[test]
fn an_element_a_profile_unfolds_keeps_the_invariants_of_its_type() {
    // The IOP CarePlan unfolds CarePlan.period (its snapshot lists Period's elements) without
    // copying Period's own per-1; with the base walk left out for such a profile, per-1 must
    // still come from the type.
    let validator = validator_with(vec![]);
    let mut care_plan = fixture("CarePlan-treatment-plan.json");
    care_plan["period"] = json!({ "start": "2026-11-20", "end": "2026-10-01" });
    let errors = error_messages(&validator.validate(&care_plan, &[]));
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("CarePlan.period: per-1")),
        "{errors:#?}"
    );
}

#[test]
fn a_binding_to_a_value_set_that_is_not_loaded_still_keeps_to_the_base_binding() {
    // The IOP CarePlan binds text.status to US Core's narrative status value set, which is not
    // built in: the code must still come from R4's narrative-status, which it narrows.
    let validator = validator_with(vec![]);
    let mut care_plan = fixture("CarePlan-treatment-plan.json");
    care_plan["text"]["status"] = json!("bogus");
    let errors = error_messages(&validator.validate(&care_plan, &[]));
    assert!(
        errors.iter().any(|e| e.starts_with("CarePlan.text.status: #bogus is not in ValueSet http://hl7.org/fhir/ValueSet/narrative-status")),
        "{errors:#?}"
    );
}

#[test]
fn a_reference_naming_a_target_profile_that_is_not_loaded_allows_what_its_base_allows() {
    // generalPractitioner narrowed to an Organization or a practitioner profile that is not
    // loaded: which type that profile is for is not known, so a Practitioner must not be
    // refused; a Patient, which the base does not allow, still is.
    let url = "https://example.org/fhir/StructureDefinition/gp-patient";
    let validator = validator_with(vec![patient_profile_from_base(url, |element| {
        if element["id"] == "Patient.generalPractitioner" {
            element["type"] = json!([{ "code": "Reference", "targetProfile": [
                "https://example.org/fhir/StructureDefinition/not-loaded-practitioner",
                "http://hl7.org/fhir/StructureDefinition/Organization"
            ] }]);
        }
    })]);
    let patient = |reference: &str| {
        json!({
            "resourceType": "Patient",
            "meta": { "profile": [url] },
            "generalPractitioner": [{ "reference": reference }]
        })
    };
    let practitioner = error_messages(&validator.validate(&patient("Practitioner/1"), &[]));
    assert!(practitioner.is_empty(), "{practitioner:#?}");
    let other = error_messages(&validator.validate(&patient("Patient/1"), &[]));
    assert!(
        other
            .iter()
            .any(|e| e.starts_with("Patient.generalPractitioner[0].reference: must refer to")),
        "{other:#?}"
    );
}

/// The errors a validation found, leaving out the JSON Schema safety net's own.
fn walk_errors(issues: &[Issue]) -> Vec<String> {
    error_messages(issues)
        .into_iter()
        .filter(|e| !e.contains("JSON Schema"))
        .collect()
}

#[test]
fn a_primitives_id_and_extensions_are_walked_as_any_elements_are() {
    // `_birthDate` holds the id and extensions of `birthDate`; before, only extensions with a
    // string url were looked at, and only against their definitions.
    let validator = validator_with(vec![]);
    let patient = |extras: Value| {
        let mut p = json!({ "resourceType": "Patient", "birthDate": "1975",
            "address": [{ "line": ["Musterweg 2"] }] });
        p.as_object_mut()
            .unwrap()
            .extend(extras.as_object().unwrap().clone());
        p
    };
    let birth_time = "http://hl7.org/fhir/StructureDefinition/patient-birthTime";
    let fine = patient(json!({
        "_birthDate": { "id": "b", "extension": [{ "url": birth_time, "valueDateTime": "1975-01-01T10:00:00Z" }] },
        "address": [{ "line": ["Musterweg 2", "3. Etage"], "_line": [null, { "id": "l2" }] }]
    }));
    assert_eq!(
        walk_errors(&validator.validate(&fine, &[])),
        Vec::<String>::new()
    );
    for (extras, expected) in [
        (
            json!({ "_birthDate": { "extension": 5 } }),
            "Patient.birthDate.extension: must be an array",
        ),
        (
            json!({ "_birthDate": { "extension": [{ "url": 5, "valueString": "x" }] } }),
            "Patient.birthDate.extension[0].url: must be a JSON string",
        ),
        (
            json!({ "_birthDate": { "extension": [{ "url": birth_time, "valueDateTime": 7 }] } }),
            "Patient.birthDate.extension[0].valueDateTime",
        ),
        (
            json!({ "_birthDate": { "id": 3 } }),
            "Patient.birthDate.id: must be a string",
        ),
        (
            json!({ "_birthDate": { "coding": [] } }),
            "Patient.birthDate.coding: unknown element `coding`",
        ),
        (
            json!({ "_birthDate": "x" }),
            "Patient.birthDate: must be a JSON object",
        ),
        (
            json!({ "_birthDate": [{}] }),
            "Patient.birthDate: `_birthDate` must be a single object",
        ),
        (
            json!({ "address": [{ "line": ["a"], "_line": { "id": "x" } }] }),
            "Patient.address[0].line: `_line` must be an array",
        ),
    ] {
        let errors = walk_errors(&validator.validate(&patient(extras.clone()), &[]));
        assert!(
            errors.iter().any(|e| e.starts_with(expected)),
            "{expected} for {extras} in {errors:#?}"
        );
    }
}

#[test]
fn a_resource_of_its_type_alone_is_valid_where_nested_and_a_publishers_own_type_is_not_fhir() {
    let validator = validator_with(vec![]);
    // The R4 JSON Schema as published with the definitions also lists Medplum's own resource
    // types; one of them matched `{"resourceType": "Patient"}` too, and the schema's `oneOf`
    // failed a Bundle holding such an entry.
    let bundle = json!({ "resourceType": "Bundle", "type": "collection", "entry": [
        { "fullUrl": "urn:uuid:b7b795c0-9343-41b4-910b-361c93d5497c", "resource": { "resourceType": "Patient" } }
    ] });
    assert_eq!(
        error_messages(&validator.validate(&bundle, &[])),
        Vec::<String>::new()
    );
    let project = json!({ "resourceType": "Project", "name": "x" });
    assert!(
        error_messages(&validator.validate(&project, &[]))
            .iter()
            .any(|e| e.contains("Project is not a FHIR R4 resource type")),
    );
    let contained = json!({ "resourceType": "Patient",
        "contained": [{ "resourceType": "Bot", "id": "b" }],
        "generalPractitioner": [{ "reference": "#b" }] });
    assert!(
        error_messages(&validator.validate(&contained, &[]))
            .iter()
            .any(|e| e.starts_with("Patient.contained[0]: Bot is not a FHIR R4 resource type")),
    );
    // A nested value that is no resource is reported where it is.
    let untyped = json!({ "resourceType": "Parameters", "parameter": [
        { "name": "a", "resource": { "id": "1" } },
        { "name": "b", "resource": { "resourceType": 7 } }
    ] });
    let errors = error_messages(&validator.validate(&untyped, &[]));
    for expected in [
        "Parameters.parameter[0].resource: not a FHIR resource: resourceType is missing",
        "Parameters.parameter[1].resource: not a FHIR resource: resourceType is not a string",
    ] {
        assert!(
            errors.iter().any(|e| e == expected),
            "{expected} in {errors:#?}"
        );
    }
}
