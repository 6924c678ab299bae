//! The gateway's own validator: fixtures are valid, broken resources are reported at the right
//! element. (Issue 4 is in progress; this suite grows with it.)

use std::path::PathBuf;
use std::sync::Arc;

use iop_gateway::validation::{Issue, Registry, Validator};
use serde_json::{Value, json};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn validator() -> Validator {
    Validator::new(Arc::new(Registry::builtin()))
}

fn fixture(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(repo().join("fixtures/fhir").join(name)).unwrap())
        .unwrap()
}

fn errors(issues: &[Issue]) -> Vec<String> {
    issues
        .iter()
        .filter(|i| i.is_error())
        .map(|i| format!("{}: {}", i.expression, i.message))
        .collect()
}

#[test]
fn every_fixture_is_valid() {
    let validator = validator();
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(repo().join("fixtures/fhir")).unwrap() {
        let path = entry.unwrap().path();
        let resource: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let found = errors(&validator.validate(&resource, &[]));
        if !found.is_empty() {
            failures.push(format!(
                "{}: {found:#?}",
                path.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Each case: a fixture, a change, and the exact locations of the errors it must cause.
#[test]
fn broken_resources_are_reported_where_they_break() {
    let validator = validator();
    type Change = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, &str, Change, Vec<&str>)> = vec![
        (
            "missing required element",
            "Patient-client.json",
            Box::new(|r| {
                r.as_object_mut().unwrap().remove("gender");
            }),
            vec!["Patient.gender"],
        ),
        (
            "unknown element",
            "Patient-client.json",
            Box::new(|r| r["nickname"] = json!("x")),
            vec!["Patient.nickname"],
        ),
        (
            "bad date",
            "Patient-client.json",
            Box::new(|r| r["birthDate"] = json!("1990-13-45")),
            vec!["Patient.birthDate"],
        ),
        (
            "required binding",
            "Patient-client.json",
            Box::new(|r| r["gender"] = json!("f")),
            vec!["Patient.gender"],
        ),
        (
            "array where single",
            "Patient-client.json",
            Box::new(|r| r["birthDate"] = json!(["1990-04-12"])),
            vec!["Patient.birthDate"],
        ),
        (
            "single where array",
            "Patient-client.json",
            Box::new(|r| r["name"] = r["name"][0].clone()),
            vec!["Patient.name"],
        ),
        (
            "status code",
            "CarePlan-treatment-plan.json",
            Box::new(|r| r["activity"][0]["detail"]["status"] = json!("ongoing")),
            vec!["CarePlan.activity[0].detail.status"],
        ),
        (
            "missing narrative",
            "CarePlan-treatment-plan.json",
            Box::new(|r| {
                r.as_object_mut().unwrap().remove("text");
            }),
            vec!["CarePlan.text"],
        ),
        (
            "unsafe narrative",
            "CarePlan-treatment-plan.json",
            Box::new(|r| {
                r["text"]["div"] = json!(
                    "<div xmlns=\"http://www.w3.org/1999/xhtml\"><script>alert(1)</script></div>"
                )
            }),
            vec!["CarePlan.text.div"],
        ),
        (
            "reference target",
            "CarePlan-treatment-plan.json",
            Box::new(|r| r["subject"]["reference"] = json!("Practitioner/abc")),
            vec!["CarePlan.subject.reference"],
        ),
        (
            "missing IOP slice",
            "CarePlan-treatment-plan.json",
            Box::new(|r| {
                r["category"].as_array_mut().unwrap().remove(1);
            }),
            vec!["CarePlan.category"],
        ),
        (
            "attendance extension missing",
            "Encounter-group-session.json",
            Box::new(|r| {
                r.as_object_mut().unwrap().remove("extension");
            }),
            vec!["Encounter.extension"],
        ),
        (
            "no-show must be cancelled",
            "Encounter-group-session.json",
            Box::new(|r| r["extension"][0]["valueCode"] = json!("no-show")),
            vec!["Encounter"],
        ),
        (
            "virtual class only AMB/VR",
            "Encounter-group-session.json",
            Box::new(|r| r["class"]["code"] = json!("EMER")),
            vec!["Encounter.class"],
        ),
        (
            "finished episode needs disposition",
            "EpisodeOfCare-enrollment.json",
            Box::new(|r| r["status"] = json!("finished")),
            vec!["EpisodeOfCare"],
        ),
        (
            "consent provision type fixed",
            "Consent-family-participation.json",
            Box::new(|r| r["provision"]["type"] = json!("deny")),
            vec!["Consent.provision.type"],
        ),
        (
            "task status outside the referral lifecycle",
            "Task-inbound-referral.json",
            Box::new(|r| r["status"] = json!("draft")),
            vec!["Task.status"],
        ),
        (
            "choice type not allowed",
            "Goal-goal.json",
            Box::new(|r| r["target"][0] = json!({ "dueDuration": { "value": 3, "unit": "wk" } })),
            vec!["Goal.target[0].dueDuration"],
        ),
    ];
    let mut wrong = Vec::new();
    for (name, file, change, expected) in cases {
        let mut resource = fixture(file);
        change(&mut resource);
        let issues = validator.validate(&resource, &[]);
        let mut locations: Vec<&str> = issues
            .iter()
            .filter(|i| i.is_error())
            .map(|i| i.expression.as_str())
            .collect();
        locations.sort();
        locations.dedup();
        if locations != expected {
            wrong.push(format!(
                "{name}: expected {expected:?}, got {:?}",
                errors(&issues)
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

mod common;

/// US Core 6.1.0 from `../shared` (never copied into the repository), or None outside CI.
fn us_core_package() -> Option<PathBuf> {
    let tgz = common::us_core_tgz();
    if tgz.exists() {
        return Some(tgz);
    }
    assert!(!common::in_ci(), "CI=true but {} is missing", tgz.display());
    common::say(&format!(
        "skipping US Core validation: {} is missing",
        tgz.display()
    ));
    None
}

#[tokio::test]
async fn a_seeded_export_is_valid_against_iop_and_us_core() {
    use iop_gateway::export::{ExportOptions, RESOURCE_TYPES, export, parse_types};
    use iop_gateway::mapping::MappingConfig;
    use iop_gateway::seed::{SeedOptions, seed};

    let Some(package) = us_core_package() else {
        return;
    };
    let mut registry = Registry::builtin();
    let loaded = iop_gateway::fhir_packages::load(&mut registry, &package).unwrap();
    assert!(loaded > 50, "US Core package: {loaded} resources");
    let validator = Validator::new(Arc::new(registry));
    let required = common::us_core_profiles();

    let db = common::sqlite().await;
    let as_of = "2026-11-20".parse().unwrap();
    seed(
        &db.store,
        SeedOptions {
            clients: 60,
            seed: 11,
            as_of,
        },
        |_, _| {},
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut options = ExportOptions {
        out: dir.path().to_owned(),
        types: parse_types(&[]).unwrap(),
        as_of,
        mapping: MappingConfig::default(),
        gate: None,
    };
    export(&db.store, &mut options).await.unwrap();
    let mut checked = 0;
    let mut failures = Vec::new();
    for resource_type in RESOURCE_TYPES {
        let text =
            std::fs::read_to_string(dir.path().join(format!("{resource_type}.ndjson"))).unwrap();
        for line in text.lines() {
            let resource: Value = serde_json::from_str(line).unwrap();
            let found = errors(&validator.validate(&resource, &required));
            checked += 1;
            if !found.is_empty() && failures.len() < 10 {
                failures.push(format!("{resource_type}/{}: {found:?}", resource["id"]));
            }
        }
    }
    assert!(checked > 1_000, "{checked}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    db.cleanup().await;
}

#[test]
fn us_core_profiles_apply_when_required() {
    let Some(package) = us_core_package() else {
        return;
    };
    let mut registry = Registry::builtin();
    iop_gateway::fhir_packages::load(&mut registry, &package).unwrap();
    let validator = Validator::new(Arc::new(registry));
    // A plain R4 Patient without identifier: fine for R4, invalid for US Core Patient.
    let patient = json!({ "resourceType": "Patient", "id": "p1", "gender": "female", "name": [{ "family": "Moreno" }] });
    assert!(errors(&validator.validate(&patient, &[])).is_empty());
    let us_core = ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient".to_owned()];
    let found = validator.validate(&patient, &us_core);
    assert!(
        found
            .iter()
            .any(|i| i.is_error() && i.expression == "Patient.identifier"),
        "{:?}",
        errors(&found)
    );
    // A declared profile that is not loaded is a warning, not a silent pass.
    let mut unknown = patient.clone();
    unknown["meta"] = json!({ "profile": ["http://example.org/StructureDefinition/nope"] });
    assert!(
        validator
            .validate(&unknown, &[])
            .iter()
            .any(|i| i.expression == "Patient.meta.profile" && !i.is_error())
    );
}

/// Where this validator and the EHR stand-in's (Medplum's) disagree, this one is right: Medplum
/// does not evaluate US Core's us-core-17 (NPI Luhn check), which caught invalid NPIs in the
/// seeded data (fixed in the seeder). The stand-in passes this Practitioner; we must not.
#[test]
fn npi_check_digits_are_checked_unlike_the_stand_in() {
    let Some(package) = us_core_package() else {
        return;
    };
    let mut registry = Registry::builtin();
    iop_gateway::fhir_packages::load(&mut registry, &package).unwrap();
    let validator = Validator::new(Arc::new(registry));
    let mut practitioner = fixture("Practitioner-clinician.json");
    practitioner["identifier"][0] =
        json!({ "system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567890" });
    let found = errors(&validator.validate(&practitioner, &[]));
    assert!(
        found
            .iter()
            .any(|e| e.starts_with("Practitioner.identifier[0]: us-core-17")),
        "{found:?}"
    );
    practitioner["identifier"][0]["value"] = json!("1234567893");
    assert!(errors(&validator.validate(&practitioner, &[])).is_empty());
}

/// A primitive's `_x` (its id and extensions) is walked like any element: once only the JSON
/// Schema behind the walk looked into it (more in `tests/validation_rules.rs`).
#[test]
fn a_primitives_id_and_extensions_are_checked_by_the_walk() {
    let validator = validator();
    let mut patient = fixture("Patient-client.json");
    patient["_birthDate"] = json!({ "notAnElement": 1 });
    let found = errors(&validator.validate(&patient, &[]));
    assert!(
        found
            .iter()
            .any(|e| e.starts_with("Patient.birthDate.notAnElement: unknown element")),
        "{found:?}"
    );
    assert!(
        !found.iter().any(|e| e.contains("JSON Schema")),
        "{found:?}"
    );
}

/// Every R4 type is built in (not only those the IOP profiles use); non-types are errors.
#[test]
fn other_resource_types_are_checked_in_full_or_refused() {
    let validator = validator();
    let observation = json!({ "resourceType": "Observation", "id": "o1", "status": "final", "code": { "text": "x" } });
    let issues = validator.validate(&observation, &[]);
    assert!(
        errors(&issues).is_empty() && !issues.iter().any(|i| i.code == "not-supported"),
        "{issues:?}"
    );
    let broken =
        json!({ "resourceType": "Observation", "id": "o1", "status": 7, "code": { "text": "x" } });
    let found = errors(&validator.validate(&broken, &[]));
    assert!(
        found.len() == 1 && found[0].starts_with("Observation.status: "),
        "the bad status, found once: {found:?}"
    );
    let nonsense = json!({ "resourceType": "Spaceship", "id": "s1" });
    assert!(!errors(&validator.validate(&nonsense, &[])).is_empty());
}

/// A server derives the table from the definitions' few fields it needs, without loading the
/// registry: the same table as the full registry's, with a profile for every API type.
#[test]
fn the_lean_iop_table_is_the_registrys() {
    let lean = iop_gateway::validation::Registry::builtin_iop_profiles();
    assert_eq!(&lean, validator().registry().iop_profiles());
    for resource_type in iop_gateway::assemble::RESOURCE_TYPES {
        assert!(
            lean.of_type(resource_type).is_some(),
            "{resource_type} has no IOP profile"
        );
    }
}

/// The one table of IOP profiles covers every type the API serves, and the profile it names is
/// really applied: for each type, a resource that base R4 accepts but that breaks a rule only
/// the IOP profile has (the fixture without `meta`, so nothing but the table applies it) is
/// refused with the table's profile, and the intact one is accepted with it.
#[test]
fn every_api_type_is_checked_against_its_iop_profile() {
    let validator = validator();
    let table = validator.registry().iop_profiles();
    type Break = fn(&mut Value);
    let cases: [(&str, &str, Break); 13] = [
        ("Patient", "Patient-client.json", |r| drop(r, "birthDate")),
        ("CarePlan", "CarePlan-treatment-plan.json", |r| {
            drop(r, "period")
        }),
        (
            "Goal",
            "Goal-goal.json",
            |r| r["target"][0] = json!({ "dueDuration": { "value": 4, "system": "http://unitsofmeasure.org", "code": "wk" } }),
        ),
        ("Encounter", "Encounter-group-session.json", |r| {
            drop(r, "length")
        }),
        ("EpisodeOfCare", "EpisodeOfCare-enrollment.json", |r| {
            drop(r, "careManager")
        }),
        ("RelatedPerson", "RelatedPerson-support-contact.json", |r| {
            drop(r, "name")
        }),
        ("Consent", "Consent-release-of-information.json", |r| {
            drop(r, "dateTime")
        }),
        ("Practitioner", "Practitioner-clinician.json", |r| {
            drop(r, "name")
        }),
        ("Organization", "Organization-clinic.json", |r| {
            drop(r, "type")
        }),
        ("HealthcareService", "HealthcareService-program.json", |r| {
            drop(r, "providedBy")
        }),
        ("Group", "Group-therapy-group.json", |r| drop(r, "code")),
        (
            "ServiceRequest",
            "ServiceRequest-inbound-referral.json",
            |r| drop(r, "authoredOn"),
        ),
        ("Task", "Task-inbound-referral.json", |r| drop(r, "owner")),
    ];
    fn drop(r: &mut Value, key: &str) {
        assert!(r.as_object_mut().unwrap().remove(key).is_some(), "{key}");
    }
    let api_types: Vec<&str> = cases.iter().map(|c| c.0).collect();
    for t in iop_gateway::assemble::RESOURCE_TYPES {
        assert!(api_types.contains(t), "{t} has a case here");
    }
    for (resource_type, name, break_it) in cases {
        let profile = table
            .of_type(resource_type)
            .unwrap_or_else(|| panic!("{resource_type} has an IOP profile"));
        let mut fixture = fixture(name);
        assert_eq!(
            fixture["meta"]["profile"][0], profile,
            "{resource_type}: the table names the profile the mapping emits"
        );
        fixture.as_object_mut().unwrap().remove("meta");
        let required = [profile.to_owned()];
        assert_eq!(
            errors(&validator.validate(&fixture, &required)),
            Vec::<String>::new(),
            "{resource_type}: the intact fixture passes its profile"
        );
        let mut broken = fixture.clone();
        break_it(&mut broken);
        assert_eq!(
            errors(&validator.validate(&broken, &[])),
            Vec::<String>::new(),
            "{resource_type}: the broken one is still valid R4"
        );
        assert!(
            !errors(&validator.validate(&broken, &required)).is_empty(),
            "{resource_type}: {profile} refuses the broken one"
        );
    }
    // The relapse prevention plan is a CarePlan too: it applies when the resource names it.
    let relapse = fixture("CarePlan-relapse-prevention-plan.json");
    assert_eq!(
        table.of_resource(&relapse),
        relapse["meta"]["profile"][0].as_str()
    );
    assert_eq!(
        table.all_of_type("CarePlan")[0],
        table.of_type("CarePlan").unwrap()
    );
    assert_eq!(table.all_of_type("CarePlan").len(), 2);
}
