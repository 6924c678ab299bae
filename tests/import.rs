//! `import`: a seeded clinic exported, imported into an empty database (SQLite and PostgreSQL)
//! and exported again gives the same files, byte for byte (ids, versions and times included);
//! importing twice changes nothing; a file with a bad line is refused whole with the line and
//! the reason, or with `keep_going` imported without it.

mod common;

use std::path::Path;
use std::sync::Arc;

use iop_gateway::domain::*;
use iop_gateway::export::{ExportOptions, export, parse_types};
use iop_gateway::import::{ImportError, ImportOptions, import};
use iop_gateway::mapping::MappingConfig;
use iop_gateway::seed::{SeedOptions, seed};
use iop_gateway::store::Store;
use iop_gateway::validation::{Registry, Validator};

fn as_of() -> chrono::NaiveDate {
    "2026-11-20".parse().unwrap()
}

async fn export_to(store: &Store, out: &Path) {
    let mut options = ExportOptions {
        out: out.to_owned(),
        types: parse_types(&[]).unwrap(),
        as_of: as_of(),
        mapping: MappingConfig::default(),
        gate: None,
    };
    export(store, &mut options).await.unwrap();
}

fn validator() -> Arc<Validator> {
    Arc::new(Validator::new(Arc::new(Registry::builtin())))
}

fn options(dir: &Path, keep_going: bool) -> ImportOptions {
    ImportOptions {
        dir: dir.to_owned(),
        keep_going,
        mapping: MappingConfig::default(),
    }
}

/// A clinic of `clients` seeded on SQLite and exported into `dir`.
async fn seeded_export(clients: u32, dir: &Path) {
    let source = common::sqlite().await;
    seed(
        &source.store,
        SeedOptions {
            clients,
            seed: 11,
            as_of: chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
        },
        |_, _| {},
    )
    .await
    .unwrap();
    export_to(&source.store, dir).await;
    source.cleanup().await;
}

async fn export_import_export_gives_the_same_files(store: &Store) {
    let first = tempfile::tempdir().unwrap();
    seeded_export(25, first.path()).await;
    let reports = import(store, validator(), &options(first.path(), false), |_| {})
        .await
        .unwrap();
    let imported: usize = reports.iter().map(|r| r.imported).sum();
    let lines: usize = std::fs::read_dir(first.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.ends_with("Task.ndjson"))
        .map(|p| std::fs::read_to_string(p).unwrap().lines().count())
        .sum();
    assert_eq!(imported, lines, "every resource is a record ({reports:?})");
    assert!(reports.iter().all(|r| r.rejected.is_empty()), "{reports:?}");

    let second = tempfile::tempdir().unwrap();
    export_to(store, second.path()).await;
    let mut compared = 0;
    for entry in std::fs::read_dir(first.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        let before = std::fs::read(&path).unwrap();
        let after = std::fs::read(second.path().join(name)).unwrap();
        assert!(
            before == after,
            "{name:?} differs after export -> import -> export"
        );
        compared += 1;
    }
    assert_eq!(compared, 13, "every type's file was compared");

    // A second import finds every record and writes nothing (the change log stays as it is).
    let log_before = store.change_count().await.unwrap();
    let again = import(store, validator(), &options(first.path(), false), |_| {})
        .await
        .unwrap();
    assert_eq!(again.iter().map(|r| r.imported).sum::<usize>(), 0);
    assert_eq!(again.iter().map(|r| r.present).sum::<usize>(), lines);
    assert_eq!(store.change_count().await.unwrap(), log_before);
}

async fn a_bad_line_refuses_its_file_or_is_left_out(store: &Store) {
    let source = tempfile::tempdir().unwrap();
    seeded_export(10, source.path()).await;
    let dir = tempfile::tempdir().unwrap();
    for file in ["Organization.ndjson", "Patient.ndjson"] {
        std::fs::copy(source.path().join(file), dir.path().join(file)).unwrap();
    }
    // Line 3 loses the Patient's gender, line 5 is not JSON.
    let patients = dir.path().join("Patient.ndjson");
    let mut lines: Vec<String> = std::fs::read_to_string(&patients)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let mut third: serde_json::Value = serde_json::from_str(&lines[2]).unwrap();
    third.as_object_mut().unwrap().remove("gender");
    lines[2] = third.to_string();
    lines[4] = "{ not json".to_owned();
    std::fs::write(&patients, lines.join("\n")).unwrap();

    let mut seen = Vec::new();
    let refused = import(store, validator(), &options(dir.path(), false), |r| {
        seen.push(r.clone())
    })
    .await;
    assert!(
        matches!(&refused, Err(ImportError::Refused { file, count: 2 }) if file == "Patient.ndjson"),
        "{refused:?}"
    );
    let report = seen.last().unwrap();
    assert_eq!(
        report.rejected.iter().map(|r| r.line).collect::<Vec<_>>(),
        vec![3, 5]
    );
    assert!(
        report.rejected[0].reason.contains("Patient.gender"),
        "{report:?}"
    );
    assert_eq!(
        store.count::<Client>().await.unwrap(),
        0,
        "nothing of a refused file is written"
    );
    assert_eq!(
        store.count::<Organization>().await.unwrap(),
        8,
        "the files before it are"
    );

    let reports = import(store, validator(), &options(dir.path(), true), |_| {})
        .await
        .unwrap();
    let patient = reports.iter().find(|r| r.file == "Patient.ndjson").unwrap();
    assert_eq!(patient.rejected.len(), 2);
    assert_eq!(patient.imported, 8);
    assert_eq!(store.count::<Client>().await.unwrap(), 8);

    // A line repeated within a chunk and across chunks (2,048 lines) is one record.
    let original = std::fs::read_to_string(source.path().join("Patient.ndjson")).unwrap();
    let left_out = original.lines().nth(2).unwrap();
    let repeated = tempfile::tempdir().unwrap();
    std::fs::write(
        repeated.path().join("Patient.ndjson"),
        format!("{left_out}\n").repeat(2_100),
    )
    .unwrap();
    let reports = import(store, validator(), &options(repeated.path(), false), |_| {})
        .await
        .unwrap();
    assert_eq!((reports[0].imported, reports[0].present), (1, 2_099));
    assert_eq!(store.count::<Client>().await.unwrap(), 9);
}

fn example() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/import-example")
}

async fn the_csv_example_imports_and_a_bad_row_is_refused(store: &Store) {
    let reports = import(store, validator(), &options(&example(), false), |_| {})
        .await
        .unwrap();
    let imported = |file: &str| reports.iter().find(|r| r.file == file).unwrap().imported;
    assert_eq!(imported("clients.csv"), 3);
    assert_eq!(imported("support_contacts.csv"), 3);
    assert_eq!(imported("enrollments.csv"), 3);
    assert_eq!(imported("consents.csv"), 2);
    assert_eq!(imported("treatment_plans.csv"), 2);
    assert_eq!(imported("interventions.csv"), 3);
    assert_eq!(imported("goals.csv"), 3);
    assert_eq!(imported("plan_reviews.csv"), 2);
    assert_eq!(imported("goal_progress.csv"), 3);
    assert_eq!(imported("relapse_plan_items.csv"), 4);
    assert_eq!(imported("sessions.csv"), 3);
    let client = store
        .client_by_mrn(&Mrn::parse("LEG-000102").unwrap())
        .await
        .unwrap()
        .expect("the client of the CSV row");
    assert_eq!(client.record.name.family.as_str(), "Okafor");
    let enrollments = store
        .children::<Enrollment>(client.record.id)
        .await
        .unwrap();
    assert_eq!(enrollments.len(), 1);
    assert!(matches!(
        enrollments[0].record.state,
        EnrollmentState::Discharged {
            disposition: DischargeDisposition::StepDownOutpatient,
            ..
        }
    ));
    // The plan of LEG-000101 with its parts, found where the rows said.
    let quinlan = store
        .client_by_mrn(&Mrn::parse("LEG-000101").unwrap())
        .await
        .unwrap()
        .unwrap()
        .record;
    let enrollment = &store.children::<Enrollment>(quinlan.id).await.unwrap()[0].record;
    let plans = store
        .children::<TreatmentPlan>(enrollment.id)
        .await
        .unwrap();
    assert_eq!(plans.len(), 1);
    let plan = &plans[0].record;
    assert_eq!(plan.review_interval_days, 7);
    assert_eq!(
        store.children::<Intervention>(plan.id).await.unwrap().len(),
        2
    );
    let reviews = store.children::<PlanReview>(plan.id).await.unwrap();
    assert_eq!(reviews.len(), 2);
    let goals = store.children::<Goal>(plan.id).await.unwrap();
    assert_eq!(goals.len(), 2);
    let relapse = store
        .children::<RelapsePreventionPlan>(plan.id)
        .await
        .unwrap();
    let items = store
        .children::<RelapsePlanItem>(relapse[0].record.id)
        .await
        .unwrap();
    let kinds: Vec<_> = items
        .iter()
        .map(|i| (i.record.position, i.record.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            (0, RelapseItemKind::Trigger),
            (1, RelapseItemKind::WarningSign),
            (2, RelapseItemKind::CopingSkill),
            (3, RelapseItemKind::SupportContact),
        ]
    );
    let sessions = store.children::<Session>(enrollment.id).await.unwrap();
    assert_eq!(sessions.len(), 2);
    let family = sessions
        .iter()
        .find(|s| s.record.session_type == SessionType::Family)
        .unwrap();
    assert_eq!(
        store
            .children::<SessionParticipant>(family.record.id)
            .await
            .unwrap()
            .len(),
        1
    );
    // What the spreadsheets brought is valid FHIR in the IOP profiles: it exports, and the
    // export imports whole into another database.
    let exported = tempfile::tempdir().unwrap();
    export_to(store, exported.path()).await;
    let other = common::sqlite().await;
    let reports = import(
        &other.store,
        validator(),
        &options(exported.path(), false),
        |_| {},
    )
    .await
    .unwrap();
    let file = |name: &str| reports.iter().find(|r| r.file == name).unwrap();
    assert_eq!(
        file("CarePlan.ndjson").imported,
        3,
        "two plans, one relapse plan"
    );
    assert_eq!(file("Goal.ndjson").imported, 3);
    assert_eq!(file("Encounter.ndjson").imported, 3);
    assert_eq!(file("Consent.ndjson").imported, 2);
    other.cleanup().await;

    // Again: every row finds its record.
    let again = import(store, validator(), &options(&example(), false), |_| {})
        .await
        .unwrap();
    assert_eq!(again.iter().map(|r| r.imported).sum::<usize>(), 0);

    // A file with a bad row: refused whole, with the row's line and reason.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("clients.csv"),
        "mrn,given,family,birth_date,gender\nLEG-000201,Rae,Lind,1990-02-03,female\nLEG-000202,Tomas,Berg,03/04/1990,male\n",
    )
    .unwrap();
    let mut seen = Vec::new();
    let refused = import(store, validator(), &options(dir.path(), false), |r| {
        seen.push(r.clone())
    })
    .await;
    assert!(
        matches!(refused, Err(ImportError::Refused { count: 1, .. })),
        "{refused:?}"
    );
    let rejected = &seen.last().unwrap().rejected[0];
    assert_eq!(rejected.line, 3);
    assert!(rejected.reason.contains("birth_date"), "{rejected:?}");
    assert!(
        store
            .client_by_mrn(&Mrn::parse("LEG-000201").unwrap())
            .await
            .unwrap()
            .is_none(),
        "nothing of the refused file is written"
    );
    // An unknown column refuses the file before any row is read.
    std::fs::write(
        dir.path().join("clients.csv"),
        "mrn,given,family,birth_date,gender,shoe_size\n",
    )
    .unwrap();
    let unknown = import(store, validator(), &options(dir.path(), false), |_| {}).await;
    assert!(
        matches!(&unknown, Err(ImportError::Layout(m)) if m.contains("shoe_size")),
        "{unknown:?}"
    );
    // A row naming a plan the client does not have: refused with the column that names it.
    let plans = tempfile::tempdir().unwrap();
    std::fs::write(
        plans.path().join("plan_reviews.csv"),
        "client_mrn,plan_starts_on,reviewed_on,reviewer_npi,summary\nLEG-000101,2026-09-09,2026-09-16,1977026206,Week two.\n",
    )
    .unwrap();
    let mut seen = Vec::new();
    let refused = import(store, validator(), &options(plans.path(), false), |r| {
        seen.push(r.clone())
    })
    .await;
    assert!(matches!(
        refused,
        Err(ImportError::Refused { count: 1, .. })
    ));
    let rejected = &seen.last().unwrap().rejected[0];
    assert_eq!(rejected.line, 2);
    assert!(rejected.reason.contains("plan_starts_on"), "{rejected:?}");
}

on_both_backends!(
    export_import_export_gives_the_same_files,
    a_bad_line_refuses_its_file_or_is_left_out,
    the_csv_example_imports_and_a_bad_row_is_refused,
);
