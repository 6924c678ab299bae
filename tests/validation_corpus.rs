//! A generated corpus of broken resources, derived from the fixtures and the IOP profiles by rules
//! whose right answer is known without the validator: remove a required element, put a code that
//! no value set holds into a required binding, break a date, add a property R4 does not have. Each
//! case asserts the exact set of error locations.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use iop_gateway::validation::{Registry, Validator};
use serde_json::{Value, json};

struct Case {
    name: String,
    resource: Value,
    expected: BTreeSet<String>,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn corpus() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("fixtures/fhir"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for file in files {
        let fixture: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let kind = fixture["resourceType"].as_str().unwrap().to_owned();
        let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
        let profile_id = fixture["meta"]["profile"][0]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned();
        let profile: Value = serde_json::from_str(
            &std::fs::read_to_string(repo().join(format!(
                "fhir-profiles/iop/StructureDefinition-{profile_id}.json"
            )))
            .unwrap(),
        )
        .unwrap();
        let one = |name: String, resource: Value, at: String| Case {
            name,
            resource,
            expected: BTreeSet::from([at]),
        };

        // The valid original: no errors.
        cases.push(Case {
            name: format!("{stem}: valid"),
            resource: fixture.clone(),
            expected: BTreeSet::new(),
        });
        // A property R4 does not define.
        let mut unknown = fixture.clone();
        unknown["notAnElement"] = json!(true);
        cases.push(one(
            format!("{stem}: unknown element"),
            unknown,
            format!("{kind}.notAnElement"),
        ));

        for element in profile["snapshot"]["element"].as_array().unwrap() {
            let path = element["path"].as_str().unwrap();
            let id = element["id"].as_str().unwrap();
            let Some(name) = path.strip_prefix(&format!("{kind}.")) else {
                continue;
            };
            // Top-level, unsliced, not a choice, present in the fixture.
            if name.contains('.')
                || id.contains(':')
                || name.ends_with("[x]")
                || fixture.get(name).is_none()
            {
                continue;
            }
            let types: Vec<&str> = element["type"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["code"].as_str())
                .collect();
            let location = format!("{kind}.{name}");
            if element["min"].as_u64().unwrap_or(0) >= 1
                && name != "extension"
                && name != "category"
            {
                let mut removed = fixture.clone();
                removed.as_object_mut().unwrap().remove(name);
                let mut case = one(
                    format!("{stem}: without required {name}"),
                    removed,
                    location.clone(),
                );
                // R4 ppc-1: a Consent needs a policy or a policyRule, so the resource fails it too.
                if kind == "Consent" && name == "policyRule" {
                    case.expected.insert("Consent".into());
                }
                cases.push(case);
            }
            let required_code = element["binding"]["strength"] == "required" && types == ["code"];
            if required_code && fixture[name].is_string() {
                let mut wrong = fixture.clone();
                wrong[name] = json!("not-a-code");
                cases.push(one(
                    format!("{stem}: {name} outside its value set"),
                    wrong,
                    location.clone(),
                ));
            }
            if (types == ["date"] || types == ["dateTime"]) && fixture[name].is_string() {
                let mut wrong = fixture.clone();
                wrong[name] = json!("2026-02-30T25:00");
                let mut case = one(
                    format!("{stem}: {name} not a date"),
                    wrong,
                    location.clone(),
                );
                // R4 inv-1: Task.lastModified >= authoredOn cannot hold for a value that is no date.
                if kind == "Task" && name == "lastModified" {
                    case.expected.insert("Task".into());
                }
                cases.push(case);
            }
            if types == ["boolean"] && fixture[name].is_boolean() {
                let mut wrong = fixture.clone();
                wrong[name] = json!("yes");
                cases.push(one(
                    format!("{stem}: {name} as a string"),
                    wrong,
                    location.clone(),
                ));
            }
            let repeats = element["base"]["max"].as_str().is_some_and(|m| m != "1");
            if repeats && fixture[name].as_array().is_some_and(|a| a.len() == 1) {
                let mut single = fixture.clone();
                single[name] = fixture[name][0].clone();
                cases.push(one(
                    format!("{stem}: {name} not an array"),
                    single,
                    location.clone(),
                ));
            }
        }
        // Every reference must point at an allowed type.
        if let Some(subject) = ["subject", "patient", "for"]
            .iter()
            .find(|k| fixture.get(**k).is_some())
        {
            let mut wrong = fixture.clone();
            wrong[*subject]["reference"] = json!("Medication/123");
            cases.push(one(
                format!("{stem}: {subject} refers to a Medication"),
                wrong,
                format!("{kind}.{subject}.reference"),
            ));
        }
    }
    cases
}

#[test]
fn corpus_cases_are_reported_exactly_where_they_break() {
    let validator = Validator::new(Arc::new(Registry::builtin()));
    let cases = corpus();
    assert!(cases.len() >= 150, "corpus has {} cases", cases.len());
    let mut wrong = Vec::new();
    for case in &cases {
        let found: BTreeSet<String> = validator
            .validate(&case.resource, &[])
            .into_iter()
            .filter(|i| i.is_error())
            .map(|i| i.expression)
            .collect();
        if found != case.expected {
            wrong.push(format!(
                "{}: expected {:?}, got {:?}",
                case.name, case.expected, found
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases wrong:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}

/// The independent validator (../shared/ehr-standin, Medplum's) gives the same verdict on every
/// case except two kinds, where the gateway is right and the stand-in is lenient by design (its
/// README: "not every terminology binding"):
/// - a code outside a *required* binding (`status: "not-a-code"`): FHIR R4 §4.1 "Required: to be
///   conformant, the concept in this element SHALL be from the specified value set";
/// - a reference to a type its `targetProfile` does not allow (`subject` → Medication): FHIR R4
///   §2.3 ElementDefinition.type.targetProfile.
///
/// Any other disagreement fails this test.
#[test]
fn verdicts_agree_with_the_independent_validator() {
    let shared = common::shared_dir();
    let run = shared.join("ehr-standin/run");
    let node = common::runs("node");
    if !run.exists() || !node {
        assert!(
            !common::in_ci(),
            "CI=true but the stand-in or Node.js is missing"
        );
        common::say("skipping verdict agreement: ../shared/ehr-standin or Node.js is missing");
        return;
    }
    let validator = Validator::new(Arc::new(Registry::builtin()));
    let mut cases = corpus();
    for (i, case) in cases.iter_mut().enumerate() {
        case.resource["id"] = json!(format!("case{i}"));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("corpus.ndjson");
    let lines: Vec<String> = cases.iter().map(|c| c.resource.to_string()).collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let output = std::process::Command::new(&run)
        .arg("validate")
        .arg("--profile")
        .arg(repo().join("fhir-profiles/iop"))
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut disagreements = Vec::new();
    let mut documented = 0;
    for (i, case) in cases.iter().enumerate() {
        let theirs_valid = stdout
            .lines()
            .any(|l| l.starts_with("ok ") && l.ends_with(&format!("/case{i}")));
        let ours_valid = !validator
            .validate(&case.resource, &[])
            .iter()
            .any(|i| i.is_error());
        let lenient_there = theirs_valid
            && !ours_valid
            && (case.name.contains("outside its value set") || case.name.contains(" refers to a "));
        if lenient_there {
            documented += 1;
            continue;
        }
        if theirs_valid != ours_valid {
            disagreements.push(format!(
                "{}: stand-in {}, gateway {}",
                case.name,
                if theirs_valid { "valid" } else { "invalid" },
                if ours_valid { "valid" } else { "invalid" }
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} disagreements:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    assert!(
        documented < cases.len() / 5,
        "{documented} documented disagreements: the stand-in checked almost nothing"
    );
}

/// Issue 16's measure: the official FHIR validator test cases (`../shared/fhir-test-cases`), scored
/// by their own runner against the HL7 reference validator's outcomes. At least 95% agreement
/// on the checks decidable offline, and no false alarm but two the runner's inputs cannot
/// decide: `contained-resource-bad-id-ignore` is run with the very command and file of
/// `contained-resource-bad-id`, which the reference calls invalid (its `validateContains`
/// setting is not passed), and `profile-slicing-multiple` requires profiles from a supporting
/// list whose files are not shipped (a profile not found is an error here, as in the reference).
#[test]
fn agrees_with_the_hl7_reference_validator_on_the_official_test_cases() {
    let runner = common::shared_dir().join("fhir-test-cases/agreement");
    let python = common::runs("python3");
    if !runner.exists() || !python {
        assert!(
            !common::in_ci(),
            "CI=true but ../shared/fhir-test-cases or python3 is missing"
        );
        common::say(
            "skipping the official test cases: ../shared/fhir-test-cases or python3 is missing",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mismatches_file = dir.path().join("mismatches.json");
    let output = std::process::Command::new(&runner)
        .arg(env!("CARGO_BIN_EXE_iop-gateway"))
        .arg("--out")
        .arg(&mismatches_file)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{printed}");
    let offline: f64 = printed
        .lines()
        .find_map(|l| l.strip_prefix("offline-decidable: "))
        .and_then(|l| l.split('%').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no offline-decidable line in {printed}"));
    common::say(printed.trim());
    assert!(offline >= 95.0, "{printed}");
    let mismatches: Vec<Value> =
        serde_json::from_slice(&std::fs::read(&mismatches_file).unwrap()).unwrap();
    let false_alarms: BTreeSet<&str> = mismatches
        .iter()
        .filter(|m| m["reference_invalid"] == json!(false))
        .filter_map(|m| m["case"].as_str())
        .collect();
    let undecidable = BTreeSet::from([
        "contained-resource-bad-id-ignore",
        "profile-slicing-multiple",
    ]);
    assert!(
        false_alarms.is_subset(&undecidable),
        "false alarms: {false_alarms:?}"
    );
}
