//! The sync engine against the EHR stand-in (`../shared/ehr-standin`, a Medplum FHIR server in
//! its own process), driven as clinic IT drives it: `iop-gateway targets add` and
//! `iop-gateway sync push|pull` as processes. Every test checks the target's end state by
//! reading it back: each expected resource exactly once (counted by the clinic identifier), no
//! other, and every reference resolving to the target's own ids.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::process::{gateway, run};
use common::standin::{StandIn, identifier_counts};
use iop_gateway::assemble::Assembler;
use iop_gateway::disclose::{Audience, Gate};
use iop_gateway::mapping::MappingConfig;
use iop_gateway::seed::{self, SeedOptions};
use iop_gateway::store::Store;
use serde_json::{Value, json};

const CLINIC_SYSTEMS: &str = "https://iop-gateway.org/fhir/clinic/";
/// The types the stand-in takes of those the gateway makes (it has no HealthcareService).
const STANDIN_TYPES: [&str; 12] = [
    "Organization",
    "Practitioner",
    "Group",
    "Patient",
    "RelatedPerson",
    "ServiceRequest",
    "Task",
    "EpisodeOfCare",
    "Goal",
    "CarePlan",
    "Encounter",
    "Consent",
];

async fn seeded(store: &Store, clients: u32) {
    seed::seed(
        store,
        SeedOptions {
            clients,
            seed: 7,
            as_of: chrono::NaiveDate::from_ymd_opt(2026, 11, 2).unwrap(),
        },
        |_, _| {},
    )
    .await
    .unwrap();
}

fn cli(db_url: &str, dir: &Path) -> Command {
    let mut command = gateway(dir);
    command.env("IOP_DATABASE_URL", db_url);
    command
}

fn add_target(db_url: &str, dir: &Path, standin: &StandIn, extra: &[&str]) {
    let (ok, out, err) = run(cli(db_url, dir)
        .args(["targets", "add", "ehr", "--base-url", &standin.base])
        .args(extra));
    assert!(ok, "targets add: {out}{err}");
}

/// `sync push|pull --target ehr --json`: success and the summary.
fn sync(db_url: &str, dir: &Path, direction: &str, extra: &[&str]) -> (bool, Value) {
    let (ok, out, err) = run(cli(db_url, dir)
        .args(["sync", direction, "--target", "ehr", "--json"])
        .args(extra));
    let summary: Value = serde_json::from_str(&out)
        .unwrap_or_else(|_| panic!("sync {direction} printed no summary: {out}\n{err}"));
    (ok, summary)
}

/// What the stand-in should hold: the resources consent lets the clinic's own EHR have (the
/// target's recipient by default), by type and clinic id.
async fn expected(store: &Store) -> BTreeMap<String, BTreeSet<String>> {
    let mapping = MappingConfig::default();
    let today = chrono::Utc::now().date_naive();
    let clinic = iop_gateway::disclose::clinic_organizations(store)
        .await
        .unwrap()
        .remove(0);
    let mut gate = Gate::new(
        Audience::of(false, Some(&clinic), Some("TREAT")),
        Default::default(),
        today,
    );
    let assembler = Assembler::new(store, &mapping, today);
    let mut out = BTreeMap::new();
    for resource_type in STANDIN_TYPES {
        let mut ids = BTreeSet::new();
        let mut after: Option<String> = None;
        loop {
            let page = assembler
                .page(
                    resource_type,
                    &[],
                    iop_gateway::assemble::Keyset::After(after.as_deref()),
                    500,
                )
                .await
                .unwrap();
            for resource in gate.admit(store, page.resources).await.unwrap() {
                ids.insert(resource["id"].as_str().unwrap().to_owned());
            }
            match (page.full, page.last_row) {
                (true, Some(last)) => after = Some(last),
                _ => break,
            }
        }
        out.insert(resource_type.to_owned(), ids);
    }
    out
}

/// The stand-in holds each expected resource once and nothing else, and every reference in it
/// resolves to a resource it holds. Returns the stand-in's resources by type.
async fn assert_holds_exactly(
    standin: &StandIn,
    expected: &BTreeMap<String, BTreeSet<String>>,
) -> HashMap<String, Vec<Value>> {
    let mut held = HashMap::new();
    let mut ids: BTreeSet<(String, String)> = BTreeSet::new();
    for (resource_type, want) in expected {
        let resources = standin.all(resource_type).await;
        let counts = identifier_counts(&resources, CLINIC_SYSTEMS);
        let doubled: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            doubled.is_empty(),
            "{resource_type}: {} resources at the target more than once, e.g. {:?}",
            doubled.len(),
            doubled.first()
        );
        let have: BTreeSet<String> = counts.keys().cloned().collect();
        let missing: Vec<_> = want.difference(&have).collect();
        let extra: Vec<_> = have.difference(want).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{resource_type}: {} missing (e.g. {:?}), {} not expected (e.g. {:?})",
            missing.len(),
            missing.first(),
            extra.len(),
            extra.first()
        );
        assert_eq!(
            resources.len(),
            want.len(),
            "{resource_type}: other resources at the target"
        );
        for r in &resources {
            ids.insert((resource_type.clone(), r["id"].as_str().unwrap().to_owned()));
        }
        held.insert(resource_type.clone(), resources);
    }
    let mut dangling = Vec::new();
    for resources in held.values() {
        for resource in resources {
            for reference in references(resource) {
                let (t, id) = reference.split_once('/').unwrap();
                if STANDIN_TYPES.contains(&t) && !ids.contains(&(t.to_owned(), id.to_owned())) {
                    dangling.push(reference);
                }
            }
        }
    }
    assert!(
        dangling.is_empty(),
        "{} references do not resolve at the target, e.g. {:?}",
        dangling.len(),
        dangling.first()
    );
    held
}

/// Every resource the target holds passes the independent validator (Medplum's, in the
/// stand-in) against R4 and the IOP profiles it claims: what a batch write put there is
/// checked as strictly as a single write.
fn assert_valid_there(held: &HashMap<String, Vec<Value>>) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("held.ndjson");
    let lines: Vec<String> = held.values().flatten().map(Value::to_string).collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let profiles = Path::new(env!("CARGO_MANIFEST_DIR")).join("fhir-profiles/iop");
    let output = Command::new(common::standin::runner().unwrap())
        .arg("validate")
        .arg("--profile")
        .arg(&profiles)
        .arg(&file)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    let last = out.lines().last().unwrap_or_default().to_owned();
    assert!(
        output.status.success() && last == format!("{} passed, 0 failed", lines.len()),
        "resources at the target are not valid: {last}\n{}",
        out.lines()
            .filter(|l| l.starts_with("invalid"))
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn references(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    match value {
        Value::Object(object) => {
            if let Some(Value::String(r)) = object.get("reference")
                && r.contains('/')
                && !r.starts_with("http")
            {
                out.push(r.clone());
            }
            for child in object.values() {
                out.extend(references(child));
            }
        }
        Value::Array(items) => items.iter().for_each(|i| out.extend(references(i))),
        _ => {}
    }
    out
}

fn writes(standin: &StandIn) -> usize {
    standin
        .requests()
        .iter()
        .filter(|(_, method, _, _)| method != "GET")
        .count()
}

fn total(expected: &BTreeMap<String, BTreeSet<String>>) -> u64 {
    expected.values().map(|ids| ids.len() as u64).sum()
}

#[tokio::test]
async fn a_push_of_200_clients_puts_each_resource_there_once_and_a_repeat_sends_nothing() {
    let Some(standin) = StandIn::start(&[]).await else {
        return;
    };
    let db = common::sqlite().await;
    seeded(&db.store, 200).await;
    let dir = tempfile::tempdir().unwrap();
    add_target(&db.url, dir.path(), &standin, &[]);
    let expected = expected(&db.store).await;

    let (ok, summary) = sync(&db.url, dir.path(), "push", &["--concurrency", "8"]);
    assert!(ok, "push: {summary}");
    assert_eq!(
        summary["created"].as_u64(),
        Some(total(&expected)),
        "{summary}"
    );
    assert_eq!(summary["rejected"], 0);
    assert!(
        summary["withheld"].as_u64().unwrap() > 0,
        "Part 2 records are held back: {summary}"
    );
    let held = assert_holds_exactly(&standin, &expected).await;
    assert_valid_there(&held);

    let before = writes(&standin);
    let (ok, again) = sync(&db.url, dir.path(), "push", &[]);
    assert!(ok);
    assert_eq!(again["created"], 0, "{again}");
    assert_eq!(again["updated"], 0, "{again}");
    assert_eq!(
        writes(&standin),
        before,
        "a repeat push wrote to the target"
    );

    let (_, status, _) = run(cli(&db.url, dir.path()).args(["sync", "status", "--json"]));
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status[0]["lag"], 0, "{status}");
    assert_eq!(status[0]["held"].as_u64(), Some(total(&expected)));
    db.cleanup().await;
}

/// Runs `sync push` as a process and kills it with SIGKILL after `after`; true if it was
/// killed (false: it finished first).
fn push_killed_after(db_url: &str, dir: &Path, after: Duration, extra: &[&str]) -> bool {
    let mut child = cli(db_url, dir)
        .args(["sync", "push", "--target", "ehr", "--json"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while started.elapsed() < after {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    true
}

#[tokio::test]
async fn outages_rate_limits_lost_answers_and_kill_9_end_like_a_clean_push() {
    let Some(standin) = StandIn::start(&[
        ("EHR_FAIL_EVERY", "5"),
        ("EHR_RATE_LIMIT", "50"),
        ("EHR_DROP_EVERY", "7"),
    ])
    .await
    else {
        return;
    };
    let db = common::sqlite().await;
    seeded(&db.store, 200).await;
    let dir = tempfile::tempdir().unwrap();
    add_target(&db.url, dir.path(), &standin, &[]);
    let expected = expected(&db.store).await;
    let fast = ["--lease-seconds", "3", "--concurrency", "4"];
    let mut kills = 0;
    for after in [4, 6, 8] {
        if push_killed_after(&db.url, dir.path(), Duration::from_secs(after), &fast) {
            kills += 1;
        }
    }
    assert_eq!(
        kills, 3,
        "the push finished before it could be killed three times"
    );
    let (ok, summary) = sync(&db.url, dir.path(), "push", &fast);
    assert!(ok, "push after three kills: {summary}");
    assert!(
        summary["reconciled"].as_u64().unwrap() > 0,
        "lost answers were reconciled: {summary}"
    );
    assert!(summary["retried"].as_u64().unwrap() > 0, "{summary}");
    assert_holds_exactly(&standin, &expected).await;
    let dropped = standin.requests().iter().filter(|r| r.3 == 0).count();
    assert!(dropped > 0, "the stand-in dropped answers");

    let before = writes(&standin);
    let (ok, again) = sync(&db.url, dir.path(), "push", &fast);
    assert!(ok);
    assert_eq!(
        (again["created"].as_u64(), again["updated"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(
        writes(&standin),
        before,
        "a repeat push wrote to the target"
    );
    db.cleanup().await;
}

/// Changes a client's phone and a plan's status: what a clinic does between syncs.
async fn clinic_edits(
    store: &Store,
    expected: &BTreeMap<String, BTreeSet<String>>,
) -> (String, String) {
    use iop_gateway::domain::{Client, Phone, PlanStatus, TreatmentPlan};
    use iop_gateway::store::{Filter, SqlValue};
    let client = store
        .page_where::<Client>(&[], None, 1000)
        .await
        .unwrap()
        .into_iter()
        .find(|c| expected["Patient"].contains(&c.record.id.to_string()))
        .unwrap();
    let mut record = client.record.clone();
    record.phone = Some(Phone::parse("555-0199").unwrap());
    store.update(&record, client.meta.version).await.unwrap();
    let active = [Filter::equals("status", SqlValue::text("active"))];
    let plan = store
        .page_where::<TreatmentPlan>(&active, None, 1000)
        .await
        .unwrap()
        .into_iter()
        .find(|p| expected["CarePlan"].contains(&p.record.id.to_string()))
        .unwrap();
    let mut changed = plan.record.clone();
    changed.status = PlanStatus::Completed;
    store.update(&changed, plan.meta.version).await.unwrap();
    (client.record.id.to_string(), plan.record.id.to_string())
}

#[tokio::test]
async fn without_conditional_writes_and_with_if_match_the_identity_map_updates_in_place() {
    let Some(standin) =
        StandIn::start(&[("EHR_NO_CONDITIONAL", "1"), ("EHR_REQUIRE_IF_MATCH", "1")]).await
    else {
        return;
    };
    let db = common::sqlite().await;
    seeded(&db.store, 30).await;
    let dir = tempfile::tempdir().unwrap();
    add_target(&db.url, dir.path(), &standin, &[]);
    // The target's own ids, kept in the identity map (not the clinic's ids at the target).
    let post = ["--create-with", "post"];
    let (ok, summary) = sync(&db.url, dir.path(), "push", &post);
    assert!(ok, "{summary}");
    let expected = expected(&db.store).await;
    let held = assert_holds_exactly(&standin, &expected).await;
    assert!(
        held["Patient"]
            .iter()
            .all(|p| p["id"] != clinic_id(p).as_str()),
        "the target chose the ids"
    );

    let (client, plan) = clinic_edits(&db.store, &expected).await;
    let (ok, summary) = sync(&db.url, dir.path(), "push", &post);
    assert!(ok, "{summary}");
    assert_eq!(summary["created"], 0, "{summary}");
    assert!(summary["updated"].as_u64().unwrap() >= 2, "{summary}");
    let held = assert_holds_exactly(&standin, &expected).await;
    let patient = held["Patient"]
        .iter()
        .find(|p| identifier_counts(&[(*p).clone()], CLINIC_SYSTEMS).contains_key(&client))
        .unwrap();
    assert!(
        patient.to_string().contains("555-0199"),
        "the new phone reached the target"
    );
    let careplan = held["CarePlan"]
        .iter()
        .find(|p| identifier_counts(&[(*p).clone()], CLINIC_SYSTEMS).contains_key(&plan))
        .unwrap();
    assert_eq!(careplan["status"], "completed");
    db.cleanup().await;
}

/// The resource of a type in the clinic database that carries this identifier, rendered as the
/// API renders it.
async fn local_with_identifier(
    store: &Store,
    resource_type: &str,
    system: &str,
    value: &str,
) -> Option<Value> {
    let mapping = MappingConfig::default();
    let assembler = Assembler::new(store, &mapping, chrono::Utc::now().date_naive());
    let mut after: Option<String> = None;
    loop {
        let page = assembler
            .page(
                resource_type,
                &[],
                iop_gateway::assemble::Keyset::After(after.as_deref()),
                500,
            )
            .await
            .unwrap();
        let found = page.resources.into_iter().find(|r| {
            r["identifier"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|i| i["system"] == system && i["value"] == value)
        });
        if found.is_some() {
            return found;
        }
        match (page.full, page.last_row) {
            (true, Some(last)) => after = Some(last),
            _ => return None,
        }
    }
}

/// The clinic id a resource at the target carries (its clinic identifier's value).
fn clinic_id(resource: &Value) -> String {
    identifier_counts(std::slice::from_ref(resource), CLINIC_SYSTEMS)
        .into_keys()
        .next()
        .unwrap()
}

#[tokio::test]
async fn a_pull_brings_in_contacts_and_consents_made_at_the_ehr_and_a_second_pull_changes_nothing()
{
    let Some(standin) = StandIn::start(&[]).await else {
        return;
    };
    let db = common::sqlite().await;
    seeded(&db.store, 20).await;
    let dir = tempfile::tempdir().unwrap();
    add_target(&db.url, dir.path(), &standin, &[]);
    let (ok, summary) = sync(&db.url, dir.path(), "push", &[]);
    assert!(ok, "{summary}");

    // At the EHR, staff record a client's sister and her consent to take part in treatment.
    let patient = standin.all("Patient").await.remove(0);
    let client = clinic_id(&patient);
    let patient_ref = format!("Patient/{}", patient["id"].as_str().unwrap());
    let sister = standin
        .create(&json!({
            "resourceType": "RelatedPerson",
            "active": true,
            "patient": { "reference": patient_ref },
            "relationship": [{ "coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "SIS" }] }],
            "name": [{ "family": "Okafor", "given": ["Ada"] }],
            "telecom": [{ "system": "phone", "value": "555-301-4242" }]
        }))
        .await;
    let sister_id = sister["id"].as_str().unwrap().to_owned();
    let consent = standin
        .create(&json!({
            "resourceType": "Consent",
            "status": "active",
            "scope": { "coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy" }] },
            "category": [{ "coding": [{ "system": "http://loinc.org", "code": "59284-0" }] }],
            "patient": { "reference": patient_ref },
            "dateTime": "2026-11-20",
            "policyRule": { "coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN" }] },
            "provision": {
                "type": "permit",
                "period": { "start": "2026-11-20", "end": "2027-05-20" },
                "actor": [{
                    "role": { "coding": [{
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                        "code": "IRCP" }] },
                    "reference": { "reference": format!("RelatedPerson/{sister_id}") }
                }]
            }
        }))
        .await;
    let consent_id = consent["id"].as_str().unwrap().to_owned();

    let (ok, summary) = sync(&db.url, dir.path(), "pull", &[]);
    assert!(ok, "pull: {summary}");
    assert_eq!(summary["created"], 2, "{summary}");
    assert_eq!(summary["rejected"], 0, "{summary}");

    let system = |t: &str| format!("{}/{t}", standin.base);
    let contact = local_with_identifier(
        &db.store,
        "RelatedPerson",
        &system("RelatedPerson"),
        &sister_id,
    )
    .await
    .expect("the sister is a support contact in the clinic database");
    assert_eq!(contact["name"][0]["family"], "Okafor");
    assert_eq!(contact["patient"]["reference"], format!("Patient/{client}"));
    let local_consent =
        local_with_identifier(&db.store, "Consent", &system("Consent"), &consent_id)
            .await
            .expect("the consent is in the clinic database");
    assert_eq!(
        local_consent["patient"]["reference"],
        format!("Patient/{client}")
    );
    assert_eq!(
        local_consent["provision"]["actor"][0]["reference"]["reference"],
        format!("RelatedPerson/{}", contact["id"].as_str().unwrap()),
        "the consent names the clinic's record of the sister"
    );

    let (ok, again) = sync(&db.url, dir.path(), "pull", &[]);
    assert!(ok, "{again}");
    assert_eq!(
        (again["created"].as_u64(), again["updated"].as_u64()),
        (Some(0), Some(0)),
        "{again}"
    );

    // What came from the target is not pushed back to it.
    let before = writes(&standin);
    let (ok, push) = sync(&db.url, dir.path(), "push", &[]);
    assert!(ok, "{push}");
    assert_eq!(
        (push["created"].as_u64(), push["updated"].as_u64()),
        (Some(0), Some(0)),
        "{push}"
    );
    assert_eq!(
        writes(&standin),
        before,
        "a pulled resource was pushed back"
    );

    // Both sides change the sister's phone: the clinic's edit stands, reported as a conflict;
    // with --remote-wins the EHR's is taken.
    use iop_gateway::domain::{Phone, SupportContact};
    let local_id: iop_gateway::domain::Id<SupportContact> =
        contact["id"].as_str().unwrap().parse().unwrap();
    let stored = db.store.get(local_id).await.unwrap().unwrap();
    let mut edited = stored.record.clone();
    edited.phone = Some(Phone::parse("555-301-1111").unwrap());
    db.store.update(&edited, stored.meta.version).await.unwrap();
    let mut remote = standin
        .get_json(&format!("{}/RelatedPerson/{sister_id}", standin.base))
        .await;
    remote["telecom"] = json!([{ "system": "phone", "value": "555-301-2222" }]);
    standin.update(&remote).await;
    let (ok, pulled) = sync(&db.url, dir.path(), "pull", &[]);
    assert!(ok, "{pulled}");
    assert_eq!(pulled["conflicts_kept_local"], 1, "{pulled}");
    let phone = async |store: &Store| {
        let contact = store.get(local_id).await.unwrap().unwrap();
        contact.record.phone.unwrap().to_string()
    };
    assert_eq!(
        phone(&db.store).await,
        "555-301-1111",
        "the clinic's edit stands"
    );
    let (ok, pulled) = sync(&db.url, dir.path(), "pull", &["--remote-wins"]);
    assert!(ok, "{pulled}");
    assert_eq!(pulled["updated"], 1, "{pulled}");
    assert_eq!(
        phone(&db.store).await,
        "555-301-2222",
        "the EHR's edit, when it is to win"
    );
    db.cleanup().await;
}

#[tokio::test]
async fn after_a_429_with_retry_after_2_no_request_reaches_the_target_for_2_seconds() {
    let Some(standin) = StandIn::start(&[("EHR_RATE_LIMIT", "5"), ("EHR_RETRY_AFTER", "2")]).await
    else {
        return;
    };
    let db = common::sqlite().await;
    seeded(&db.store, 10).await;
    let dir = tempfile::tempdir().unwrap();
    add_target(
        &db.url,
        dir.path(),
        &standin,
        &["--resources", "Organization,Patient"],
    );
    // One request per resource, one at a time: enough requests to be throttled, and none in
    // flight when a 429 arrives.
    let (ok, summary) = sync(
        &db.url,
        dir.path(),
        "push",
        &["--concurrency", "1", "--no-batch"],
    );
    assert!(ok, "{summary}");
    assert!(summary["throttled"].as_u64().unwrap() > 0, "{summary}");

    let mut log = standin.requests();
    log.sort_by(|a, b| a.0.total_cmp(&b.0));
    let throttled: Vec<usize> = (0..log.len()).filter(|&i| log[i].3 == 429).collect();
    assert!(!throttled.is_empty(), "the stand-in answered 429");
    for i in throttled {
        if let Some(next) = log.get(i + 1) {
            let gap = next.0 - log[i].0;
            assert!(
                gap >= 1995.0,
                "a request came {gap:.0} ms after a 429 with Retry-After: 2"
            );
        }
    }
    db.cleanup().await;
}

#[tokio::test]
async fn a_target_that_requires_smart_backend_services_gets_its_tokens_renewed_mid_run() {
    let keys = tempfile::tempdir().unwrap();
    let jwks = keys.path().join("jwks");
    std::fs::create_dir(&jwks).unwrap();
    let mut clients = Vec::new();
    for client_id in ["iop-gateway", "test-reader"] {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let pem = pair.serialize_pem();
        let key =
            iop_gateway::outbound::target::SigningKey::from_file_bytes(pem.as_bytes()).unwrap();
        std::fs::write(
            jwks.join(format!("{client_id}.jwks")),
            json!({ "keys": [key.public_jwk()] }).to_string(),
        )
        .unwrap();
        std::fs::write(keys.path().join(format!("{client_id}.pem")), &pem).unwrap();
        clients.push((client_id, pem, key.kid().to_owned()));
    }
    let Some(mut standin) = StandIn::start(&[
        ("EHR_SMART_JWKS", jwks.to_str().unwrap()),
        // Short enough that the push (about two seconds here) outlives several tokens: one is
        // renewed once half its life is gone.
        ("EHR_TOKEN_SECONDS", "2"),
    ])
    .await
    else {
        return;
    };
    let (reader_id, reader_pem, reader_kid) = clients.pop().unwrap();
    standin.reader = Some(common::standin::SmartReader {
        client_id: reader_id.to_owned(),
        key_pem: reader_pem,
        kid: reader_kid,
    });
    let db = common::sqlite().await;
    seeded(&db.store, 60).await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("iop-gateway.pem");
    add_target(
        &db.url,
        dir.path(),
        &standin,
        &[
            "--smart-client-id",
            "iop-gateway",
            "--smart-key",
            key_file.to_str().unwrap(),
        ],
    );
    let (ok, summary) = sync(&db.url, dir.path(), "push", &["--concurrency", "4"]);
    assert!(ok, "{summary}");
    assert!(summary["token_renewals"].as_u64().unwrap() > 0, "{summary}");
    assert_eq!(summary["rejected"], 0, "{summary}");
    let expected = expected(&db.store).await;
    assert_holds_exactly(&standin, &expected).await;
    let refused = standin.requests().iter().filter(|r| r.3 == 401).count();
    let (_, list, _) = run(cli(&db.url, dir.path()).args(["targets", "list"]));
    assert!(!list.contains("PRIVATE KEY"), "targets list shows no key");
    common::say(&format!(
        "SMART push: {refused} requests answered 401 and were retried with a new token"
    ));
    db.cleanup().await;
}

#[tokio::test]
async fn four_gateway_processes_pushing_one_target_from_postgresql_send_each_resource_once() {
    let Some(db) = common::postgres().await else {
        return;
    };
    let Some(standin) = StandIn::start(&[]).await else {
        return;
    };
    seeded(&db.store, 60).await;
    let dir = tempfile::tempdir().unwrap();
    add_target(&db.url, dir.path(), &standin, &[]);
    let expected = expected(&db.store).await;
    let children: Vec<_> = (0..4)
        .map(|_| {
            cli(&db.url, dir.path())
                .args([
                    "sync",
                    "push",
                    "--target",
                    "ehr",
                    "--json",
                    "--lease-seconds",
                    "5",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut created = 0;
    for child in children {
        let output = child.wait_with_output().unwrap();
        let out = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{out}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let summary: Value = serde_json::from_str(&out).unwrap();
        created += summary["created"].as_u64().unwrap();
    }
    assert_eq!(
        created,
        total(&expected),
        "four processes created each resource once between them"
    );
    assert_holds_exactly(&standin, &expected).await;
    db.cleanup().await;
}

#[tokio::test]
async fn on_postgresql_a_change_committed_late_with_a_lower_seq_still_reaches_the_target() {
    use iop_gateway::domain::{Client, Phone};
    let Some(db) = common::postgres().await else {
        return;
    };
    let Some(standin) = StandIn::start(&[]).await else {
        return;
    };
    seeded(&db.store, 40).await;
    let dir = tempfile::tempdir().unwrap();
    add_target(&db.url, dir.path(), &standin, &[]);
    let expected = expected(&db.store).await;
    let clients: Vec<_> = db
        .store
        .page_where::<Client>(&[], None, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| expected["Patient"].contains(&c.record.id.to_string()))
        .take(11)
        .collect();
    let phone = |i: usize| format!("555-02{i:02}");

    let push = cli(&db.url, dir.path())
        .args(["sync", "push", "--target", "ehr", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A slow transaction takes its change-log seq first and commits last...
    let mut slow = db.store.begin().await.unwrap();
    let mut first = clients[0].record.clone();
    first.phone = Some(Phone::parse(&phone(0)).unwrap());
    slow.update(&first, clients[0].meta.version).await.unwrap();
    // ...while other edits commit during the push.
    for (i, client) in clients.iter().enumerate().skip(1) {
        let mut record = client.record.clone();
        record.phone = Some(Phone::parse(&phone(i)).unwrap());
        db.store.update(&record, client.meta.version).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let output = push.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    slow.commit().await.unwrap();

    let (ok, summary) = sync(&db.url, dir.path(), "push", &[]);
    assert!(ok, "{summary}");
    let held = assert_holds_exactly(&standin, &expected).await;
    for (i, client) in clients.iter().enumerate() {
        let id = client.record.id.to_string();
        let patient = held["Patient"].iter().find(|p| clinic_id(p) == id).unwrap();
        assert!(
            patient.to_string().contains(&phone(i)),
            "client {i}'s new phone is at the target"
        );
    }
    db.cleanup().await;
}

/// `sync dead-letters --json` of the target `ehr`.
fn dead_letters(db_url: &str, dir: &Path) -> Vec<Value> {
    let (ok, out, err) =
        run(cli(db_url, dir).args(["sync", "dead-letters", "--target", "ehr", "--json"]));
    assert!(ok, "{err}");
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn a_record_the_gateway_cannot_read_waits_in_the_dead_letters_until_it_is_fixed() {
    let Some(standin) = StandIn::start(&[]).await else {
        return;
    };
    let db = common::sqlite().await;
    seeded(&db.store, 10).await;
    let dir = tempfile::tempdir().unwrap();
    add_target(&db.url, dir.path(), &standin, &[]);
    let expected = expected(&db.store).await;
    // Someone edits the clinic database by hand, around the gateway's rules.
    let goal = expected["Goal"].iter().next().unwrap().clone();
    db.store
        .execute_raw(&format!(
            "UPDATE plan_goals SET description = '   ', version = version + 1 WHERE id = '{goal}'"
        ))
        .await
        .unwrap();

    let (ok, summary) = sync(&db.url, dir.path(), "push", &[]);
    assert!(
        !ok,
        "a push that left dead letters exits non-zero: {summary}"
    );
    assert!(summary["error"].is_null(), "the rest went on: {summary}");
    let letters = dead_letters(&db.url, dir.path());
    let letter = letters
        .iter()
        .find(|l| l["resourceType"] == "Goal" && l["id"] == goal.as_str())
        .unwrap_or_else(|| panic!("the unreadable goal is a dead letter: {letters:?}"));
    assert!(letter["status"].is_null(), "never sent: {letter}");
    assert!(
        letter["reason"].to_string().contains("cannot read"),
        "the reason says why: {letter}"
    );
    let at_target = identifier_counts(&standin.all("Goal").await, CLINIC_SYSTEMS);
    assert!(
        !at_target.contains_key(&goal),
        "the invalid goal did not reach the target"
    );
    assert!(
        at_target.len() >= expected["Goal"].len() - 1,
        "the other goals went"
    );
    assert_eq!(
        standin.all("Patient").await.len(),
        expected["Patient"].len(),
        "the patients went"
    );

    // Fixed at the source: the next push sends it and clears the letter.
    db.store
        .execute_raw(&format!(
            "UPDATE plan_goals SET description = 'Walk every morning', version = version + 1 WHERE id = '{goal}'"
        ))
        .await
        .unwrap();
    let (_, summary) = sync(&db.url, dir.path(), "push", &[]);
    assert_eq!(summary["rejected"], 0, "{summary}");
    // What only read the goal (the relapse-prevention plan) has no new version: --retry.
    let (ok, out, err) = run(cli(&db.url, dir.path()).args([
        "sync",
        "dead-letters",
        "--target",
        "ehr",
        "--retry",
        "--json",
    ]));
    assert!(ok, "{out}{err}");
    let letters = dead_letters(&db.url, dir.path());
    assert!(letters.is_empty(), "{letters:?}");
    let goals = standin.all("Goal").await;
    let sent = goals
        .iter()
        .find(|g| clinic_id(g) == goal)
        .expect("the fixed goal is at the target");
    assert!(sent.to_string().contains("Walk every morning"));
    db.cleanup().await;
}

#[tokio::test]
async fn what_the_target_refuses_is_a_dead_letter_with_its_outcome_and_retry_sends_it_once_fixed() {
    let Some(refusing) = StandIn::start(&[("EHR_NO_CONDITIONAL", "1")]).await else {
        return;
    };
    let port = refusing.port;
    let db = common::sqlite().await;
    seeded(&db.store, 10).await;
    let dir = tempfile::tempdir().unwrap();
    add_target(&db.url, dir.path(), &refusing, &["--resources", "Patient"]);
    let expected = expected(&db.store).await;

    // The operator insists on conditional writes; this target does not do them.
    let (ok, summary) = sync(
        &db.url,
        dir.path(),
        "push",
        &["--create-with", "conditional"],
    );
    assert!(!ok, "{summary}");
    let patients = expected["Patient"].len();
    assert_eq!(
        summary["rejected"].as_u64(),
        Some(patients as u64),
        "{summary}"
    );
    let letters = dead_letters(&db.url, dir.path());
    assert_eq!(letters.len(), patients);
    for letter in &letters {
        assert_eq!(letter["status"], 400, "{letter}");
        assert_eq!(
            letter["reason"]["resourceType"], "OperationOutcome",
            "{letter}"
        );
        assert!(
            letter["reason"]
                .to_string()
                .contains("conditional create/update is not supported"),
            "the target's own words: {letter}"
        );
    }
    assert!(refusing.all("Patient").await.is_empty());
    drop(refusing);

    // The target is replaced by one that takes them (same address); --retry sends the letters.
    let fixed = StandIn::start_at(port, &[]).await.unwrap();
    let (ok, out, err) = run(cli(&db.url, dir.path()).args([
        "sync",
        "dead-letters",
        "--target",
        "ehr",
        "--retry",
        "--json",
    ]));
    assert!(ok, "{out}{err}");
    let summary: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        summary["created"].as_u64(),
        Some(patients as u64),
        "{summary}"
    );
    assert!(dead_letters(&db.url, dir.path()).is_empty());
    let at_target = identifier_counts(&fixed.all("Patient").await, CLINIC_SYSTEMS);
    assert_eq!(
        at_target.keys().cloned().collect::<BTreeSet<_>>(),
        expected["Patient"],
        "each patient once"
    );
    assert!(at_target.values().all(|n| *n == 1));
    db.cleanup().await;
}
