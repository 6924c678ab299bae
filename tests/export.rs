//! `export` writes every mapped record once, as valid NDJSON, on both backends; and what it writes
//! passes an independent validator against the IOP and US Core 6.1.0 profiles.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use iop_gateway::domain::*;
use iop_gateway::export::{
    ExportError, ExportOptions, PART2_NOTICE_FILE, RESOURCE_TYPES, export, parse_types,
};
use iop_gateway::mapping::MappingConfig;
use iop_gateway::seed::{SeedOptions, seed};
use iop_gateway::store::Store;
use serde_json::Value;

fn as_of() -> chrono::NaiveDate {
    "2026-11-20".parse().unwrap()
}

async fn seeded_export(store: &Store, clients: u32, out: &Path) -> Vec<(String, u64)> {
    seed(
        store,
        SeedOptions {
            clients,
            seed: 3,
            as_of: as_of(),
        },
        |_, _| {},
    )
    .await
    .unwrap();
    let mut options = ExportOptions {
        out: out.to_owned(),
        types: parse_types(&[]).unwrap(),
        as_of: as_of(),
        mapping: MappingConfig::default(),
        gate: None,
    };
    export(store, &mut options).await.unwrap()
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn every_record_is_exported_once(store: &Store) {
    let dir = tempfile::tempdir().unwrap();
    let counts = seeded_export(store, 40, dir.path()).await;
    let count = |t: &str| counts.iter().find(|(k, _)| k == t).unwrap().1 as i64;
    assert_eq!(count("Patient"), store.count::<Client>().await.unwrap());
    assert_eq!(count("Encounter"), store.count::<Session>().await.unwrap());
    assert_eq!(
        count("EpisodeOfCare"),
        store.count::<Enrollment>().await.unwrap()
    );
    assert_eq!(
        count("CarePlan"),
        store.count::<TreatmentPlan>().await.unwrap()
            + store.count::<RelapsePreventionPlan>().await.unwrap()
    );
    assert_eq!(count("Goal"), store.count::<Goal>().await.unwrap());
    assert_eq!(
        count("RelatedPerson"),
        store.count::<SupportContact>().await.unwrap()
    );
    assert_eq!(count("Consent"), store.count::<Consent>().await.unwrap());
    assert_eq!(
        count("ServiceRequest"),
        store.count::<Referral>().await.unwrap()
    );
    assert_eq!(count("Task"), store.count::<Referral>().await.unwrap());
    for resource_type in RESOURCE_TYPES {
        let resources = lines(&dir.path().join(format!("{resource_type}.ndjson")));
        assert_eq!(
            resources.len() as u64,
            counts.iter().find(|(k, _)| k == resource_type).unwrap().1
        );
        let ids: HashSet<_> = resources
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            ids.len(),
            resources.len(),
            "{resource_type}: ids are unique"
        );
        assert!(
            resources
                .iter()
                .all(|r| r["resourceType"] == *resource_type)
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "no partial files remain");

    // Part 2 labels exactly on the records of Part 2 clients (any enrollment in a Part 2
    // program), on every type; none on the clinic's own (staff, programs, groups).
    let part2_programs: HashSet<String> = store
        .page::<Program>(None, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|p| p.record.part2)
        .map(|p| p.record.id.to_string())
        .collect();
    let mut part2_clients = HashSet::new();
    let mut after = None;
    loop {
        let page = store.page::<Enrollment>(after, 500).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.record.id);
        for e in &page {
            if part2_programs.contains(&e.record.program_id.to_string()) {
                part2_clients.insert(format!("Patient/{}", e.record.client_id));
            }
        }
    }
    let part2_label = |r: &Value| r["meta"]["security"].to_string().contains("42CFRPart2");
    let mut labelled = 0;
    for resource_type in RESOURCE_TYPES {
        for r in lines(&dir.path().join(format!("{resource_type}.ndjson"))) {
            let client = if *resource_type == "Patient" {
                Some(format!("Patient/{}", r["id"].as_str().unwrap()))
            } else {
                ["subject", "patient", "for"]
                    .iter()
                    .find_map(|k| r[*k]["reference"].as_str())
                    .filter(|c| c.starts_with("Patient/"))
                    .map(str::to_owned)
            };
            let expected = client.is_some_and(|c| part2_clients.contains(&c));
            assert_eq!(part2_label(&r), expected, "{resource_type}/{}", r["id"]);
            labelled += usize::from(expected);
        }
    }
    let patients = lines(&dir.path().join("Patient.ndjson")).len();
    assert!(
        !part2_clients.is_empty() && part2_clients.len() < patients && labelled > patients,
        "{} of {patients} clients under Part 2, {labelled} records labelled",
        part2_clients.len()
    );
}

on_both_backends!(every_record_is_exported_once);

#[tokio::test]
async fn types_can_be_chosen_and_unknown_ones_are_refused() {
    let db = common::sqlite().await;
    seed(
        &db.store,
        SeedOptions {
            clients: 10,
            seed: 1,
            as_of: as_of(),
        },
        |_, _| {},
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let types = parse_types(&["careplan".into(), "Encounter".into()]).unwrap();
    assert_eq!(types, ["CarePlan", "Encounter"]);
    let mut options = ExportOptions {
        out: dir.path().to_owned(),
        types,
        as_of: as_of(),
        mapping: MappingConfig::default(),
        gate: None,
    };
    export(&db.store, &mut options).await.unwrap();
    let mut written: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    written.sort();
    assert_eq!(written, ["CarePlan.ndjson", "Encounter.ndjson"]);
    assert!(
        matches!(parse_types(&["Observation".into()]), Err(ExportError::UnknownType(t)) if t == "Observation")
    );
    db.cleanup().await;
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/ehr-standin/run`, or None (with a printed reason) where Node is missing outside CI.
fn standin() -> Option<PathBuf> {
    let run = common::shared_dir().join("ehr-standin/run");
    let node = common::runs("node");
    match (run.exists() && node, common::in_ci()) {
        (true, _) => Some(run),
        (false, false) => {
            common::say(
                "skipping independent validation: ../shared/ehr-standin/run or Node.js is missing; set CI=true to make this an error",
            );
            None
        }
        (false, true) => panic!("CI=true but ../shared/ehr-standin/run or Node.js is missing"),
    }
}

/// US Core 6.1.0 unpacked under target/ (from ../shared, never copied into the repository).
fn us_core() -> PathBuf {
    let dir = repo().join("target/uscore-6.1.0");
    if !dir.join("package").exists() {
        std::fs::create_dir_all(&dir).unwrap();
        let tgz = common::us_core_tgz();
        let status = Command::new("tar")
            .arg("xzf")
            .arg(&tgz)
            .arg("-C")
            .arg(&dir)
            .status()
            .unwrap();
        assert!(status.success(), "unpack {}", tgz.display());
    }
    dir.join("package")
}

fn validate(run: &Path, files: &[PathBuf]) -> String {
    let mut command = Command::new(run);
    command
        .arg("validate")
        .arg("--profile")
        .arg(repo().join("fhir-profiles/iop"))
        .arg("--profile")
        .arg(us_core());
    for profile in common::us_core_profiles() {
        command.arg("--require").arg(profile);
    }
    let output = command.args(files).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let invalid: Vec<_> = stdout.lines().filter(|l| !l.starts_with("ok ")).collect();
    assert!(
        output.status.success(),
        "independent validator: {}\n{}",
        invalid.join("\n"),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn fixtures_pass_the_independent_validator() {
    let Some(run) = standin() else { return };
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("fixtures/fhir"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let out = validate(&run, &files);
    assert!(
        out.contains(&format!("{} passed, 0 failed", files.len())),
        "{out}"
    );
}

#[tokio::test]
async fn a_seeded_export_passes_the_independent_validator() {
    let Some(run) = standin() else { return };
    let db = common::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let counts = seeded_export(&db.store, 200, dir.path()).await;
    let total: u64 = counts.iter().map(|(_, c)| c).sum();
    let files: Vec<PathBuf> = RESOURCE_TYPES
        .iter()
        .map(|t| dir.path().join(format!("{t}.ndjson")))
        .collect();
    let out = validate(&run, &files);
    assert!(
        out.contains(&format!("{total} passed, 0 failed")),
        "{}",
        out.lines().last().unwrap_or_default()
    );
    db.cleanup().await;
}

/// An export for a recipient passes the disclosure gate: an organization no consent names and
/// not on any care team gets nothing about any client; the organization a Part 2 consent names
/// gets Part 2 records of exactly the clients whose consents name it, with the §2.32 notice file.
async fn export_for_a_recipient_is_what_consents_allow(store: &Store) {
    use iop_gateway::consent::{PurposeOfUse, Recipient};
    use iop_gateway::disclose::{Audience, Gate};
    use iop_gateway::domain::{Consent, ConsentKind, ConsentRecipient};
    let dir = tempfile::tempdir().unwrap();
    let all = seeded_export(store, 40, dir.path()).await;
    assert!(all.iter().any(|(t, n)| t == "Patient" && *n == 40));
    let consents = store.page::<Consent>(None, 10_000).await.unwrap();
    let part2 = consents
        .iter()
        .find(|c| c.record.kind == ConsentKind::Part2Disclosure && c.record.in_force_on(as_of()))
        .expect("a seeded Part 2 consent in force");
    let ConsentRecipient::Organization(hospital) = part2.record.recipient else {
        panic!("a Part 2 consent names an organization");
    };
    let released_to_hospital: std::collections::BTreeSet<String> = consents
        .iter()
        .filter(|c| {
            c.record.recipient == ConsentRecipient::Organization(hospital)
                && c.record.in_force_on(as_of())
        })
        .map(|c| c.record.client_id.to_string())
        .collect();
    let for_recipient = |org: String, out: &Path| ExportOptions {
        out: out.to_owned(),
        types: parse_types(&[]).unwrap(),
        as_of: as_of(),
        mapping: MappingConfig::default(),
        gate: Some(Gate::new(
            Audience::Recipient {
                recipient: Recipient::Organization(org),
                purpose: PurposeOfUse::Treat,
            },
            Default::default(),
            as_of(),
        )),
    };
    // A stranger: only the clinic's staff, organizations, programs and groups.
    let stranger = tempfile::tempdir().unwrap();
    let counts = export(
        store,
        &mut for_recipient(uuid::Uuid::new_v4().to_string(), stranger.path()),
    )
    .await
    .unwrap();
    for (resource_type, count) in &counts {
        let about_clients = !["Practitioner", "Organization", "HealthcareService", "Group"]
            .contains(&resource_type.as_str());
        assert!(
            !about_clients || *count == 0,
            "{resource_type}: {count} exported to a stranger"
        );
    }
    assert!(!stranger.path().join(PART2_NOTICE_FILE).exists());
    // The hospital: Part 2 records only of the clients who consented to it, and the notice.
    let to_hospital = tempfile::tempdir().unwrap();
    export(
        store,
        &mut for_recipient(hospital.to_string(), to_hospital.path()),
    )
    .await
    .unwrap();
    let mut part2_clients = std::collections::BTreeSet::new();
    for resource_type in ["Patient", "CarePlan", "Encounter", "EpisodeOfCare", "Goal"] {
        for resource in lines(&to_hospital.path().join(format!("{resource_type}.ndjson"))) {
            let labelled = resource["meta"]["security"]
                .as_array()
                .is_some_and(|l| l.iter().any(|c| c["code"] == "42CFRPart2"));
            if labelled {
                let patient = iop_gateway::mapping::audit::patients_of(&resource);
                assert_eq!(patient.len(), 1);
                assert!(
                    released_to_hospital.contains(&patient[0]),
                    "{resource_type} of client {} reached the hospital without a consent",
                    patient[0]
                );
                part2_clients.insert(patient[0].clone());
            }
        }
    }
    assert!(
        part2_clients.contains(&part2.record.client_id.to_string()),
        "the consenting client's Part 2 records were exported"
    );
    let notice = std::fs::read_to_string(to_hospital.path().join(PART2_NOTICE_FILE)).unwrap();
    assert!(notice.contains("42 CFR part 2"));
}

/// The gate's question before a row is assembled (`Assembler::page_for`) leaves out exactly
/// what `admit` would withhold of the assembled resources: for every type and several
/// audiences, what is admitted either way is the same, and for some the rows left out are many.
async fn rows_left_out_before_assembly_are_what_the_gate_withholds(store: &Store) {
    use iop_gateway::assemble::{Assembler, Keyset};
    use iop_gateway::consent::{PurposeOfUse, Recipient};
    use iop_gateway::disclose::{Audience, Gate, clinic_organizations};
    let dir = tempfile::tempdir().unwrap();
    seeded_export(store, 40, dir.path()).await;
    let consents = store.page::<Consent>(None, 10_000).await.unwrap();
    let named: Vec<String> = consents
        .iter()
        .filter_map(|c| match c.record.recipient {
            ConsentRecipient::Organization(org) => Some(org.to_string()),
            _ => None,
        })
        .collect();
    let clinic = clinic_organizations(store).await.unwrap()[0].clone();
    let as_recipient = |org: &str, purpose: PurposeOfUse| Audience::Recipient {
        recipient: Recipient::Organization(org.to_owned()),
        purpose,
    };
    let audiences = [
        as_recipient(&clinic, PurposeOfUse::Treat),
        as_recipient(&named[0], PurposeOfUse::Treat),
        as_recipient(&named[named.len() / 2], PurposeOfUse::from_code("HPAYMT")),
        as_recipient(&uuid::Uuid::new_v4().to_string(), PurposeOfUse::Treat),
        Audience::Nobody,
        Audience::Unfiltered,
    ];
    let mapping = MappingConfig::default();
    let assembler = Assembler::new(store, &mapping, as_of());
    let mut left_out = 0;
    for audience in audiences {
        for resource_type in RESOURCE_TYPES {
            let gate = || Gate::new(audience.clone(), Default::default(), as_of());
            let (mut after_all, mut after_asked) = (gate(), gate());
            let mut after: Option<String> = None;
            loop {
                let keyset = Keyset::After(after.as_deref());
                let all = assembler.page(resource_type, &[], keyset, 7).await.unwrap();
                let asked = assembler
                    .page_for(Some(&mut after_asked), resource_type, &[], keyset, 7)
                    .await
                    .unwrap();
                assert_eq!(
                    (&all.last_row, all.full),
                    (&asked.last_row, asked.full),
                    "{resource_type}: the cursor is of every row read"
                );
                left_out += all.resources.len() - asked.resources.len();
                let admitted = after_all.admit(store, all.resources).await.unwrap();
                let admitted_asked = after_asked.admit(store, asked.resources).await.unwrap();
                assert_eq!(admitted, admitted_asked, "{resource_type} for {audience:?}");
                match all.last_row {
                    Some(last) if all.full => after = Some(last),
                    _ => break,
                }
            }
        }
    }
    assert!(left_out > 100, "only {left_out} resources were left out");
}

mod for_recipients {
    use super::*;
    on_both_backends!(export_for_a_recipient_is_what_consents_allow);
}

mod asked_before_assembly {
    use super::*;
    on_both_backends!(rows_left_out_before_assembly_are_what_the_gate_withholds);
}
