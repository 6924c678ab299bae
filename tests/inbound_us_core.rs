//! What EHRs really send is accepted: US Core 6.1.0's own examples of every writable type (from
//! `../shared/fhir-packages`, narrative, extensions and US Core `meta.profile` included), posted
//! over real HTTP on SQLite and PostgreSQL, are stored and read back with the defaults
//! `fhir-profiles/README.md` states. Only references (to records of the seeded test database) and
//! foreign ids are adjusted. Consent, EpisodeOfCare and Task have no US Core example: those are
//! written as an EHR builds them, with no IOP extension or code the EHR could not know.

mod common;

use std::collections::HashMap;
use std::io::Read;

use common::app::{App, spawn_app};
use iop_gateway::store::Store;
use reqwest::Method;
use serde_json::{Value, json};

/// US Core's example resources by file name (`Patient-example`), or None (skipped) outside CI.
fn us_core_examples() -> Option<HashMap<String, Value>> {
    let tgz = common::us_core_tgz();
    if !tgz.exists() {
        assert!(!common::in_ci(), "CI=true but {} is missing", tgz.display());
        common::say(&format!(
            "skipping US Core inbound test: {} is missing",
            tgz.display()
        ));
        return None;
    }
    let file = std::fs::File::open(&tgz).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut examples = HashMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let Some(name) = path
            .strip_prefix("package/example/")
            .and_then(|n| n.strip_suffix(".json"))
            .map(str::to_owned)
        else {
            continue;
        };
        let mut text = String::new();
        entry.read_to_string(&mut text).unwrap();
        examples.insert(name, serde_json::from_str(&text).unwrap());
    }
    Some(examples)
}

fn today() -> String {
    chrono::Utc::now().date_naive().to_string()
}

fn id_of(reference: &Value) -> String {
    reference["reference"]
        .as_str()
        .unwrap()
        .split_once('/')
        .unwrap()
        .1
        .to_owned()
}

/// Posts `resource` (its foreign id dropped: the server assigns one): 201, then reads it back.
async fn create(app: &App, mut resource: Value) -> Value {
    let kind = resource["resourceType"].as_str().unwrap().to_owned();
    resource.as_object_mut().unwrap().remove("id");
    let (status, created) = app.send(Method::POST, &kind, &resource).await;
    assert_eq!(status, 201, "{kind}: {created}");
    let id = created["id"].as_str().unwrap();
    let (status, read) = app.get(&format!("{kind}/{id}")).await;
    assert_eq!(status, 200, "{read}");
    read
}

/// Puts `resource` at the stored record `id` (an update): 200, then reads it back.
async fn update(app: &App, mut resource: Value, id: &str) -> Value {
    let kind = resource["resourceType"].as_str().unwrap().to_owned();
    resource["id"] = json!(id);
    let (status, updated) = app
        .send(Method::PUT, &format!("{kind}/{id}"), &resource)
        .await;
    assert_eq!(status, 200, "{kind}: {updated}");
    let (status, read) = app.get(&format!("{kind}/{id}")).await;
    assert_eq!(status, 200, "{read}");
    read
}

fn codes(concept: &Value) -> Vec<&str> {
    concept["coding"]
        .as_array()
        .map(|c| c.iter().filter_map(|c| c["code"].as_str()).collect())
        .unwrap_or_default()
}

async fn us_core_examples_are_accepted_and_read_back(store: &Store) {
    let Some(examples) = us_core_examples() else {
        return;
    };
    let app = spawn_app(store).await;

    // Patient: its MRN is the EHR's (typed MR, the EHR's system); the current name and address
    // are the ones without an end, the old ones are not.
    let patient = create(&app, examples["Patient-example"].clone()).await;
    let patient_ref =
        json!({ "reference": format!("Patient/{}", patient["id"].as_str().unwrap()) });
    assert_eq!(patient["identifier"][0]["value"], "1032702", "{patient}");
    assert_eq!(patient["name"][0]["family"], "Baxter");
    assert_eq!(patient["name"][0]["given"][0], "Amy");
    assert_eq!(patient["birthDate"], "1987-02-20");
    assert_eq!(patient["gender"], "female");
    assert_eq!(patient["address"][0]["line"][0], "183 Mountain View St");

    // RelatedPerson: a niece (not one of the clinic's eleven codes), no role, no period.
    let mut niece = examples["RelatedPerson-shaw-niece"].clone();
    niece["patient"] = patient_ref.clone();
    let niece = create(&app, niece).await;
    let relationships = niece["relationship"].as_array().unwrap();
    assert_eq!(codes(&relationships[0]), ["EXT"], "{niece}");
    assert_eq!(relationships[0]["text"], "niece");
    assert!(
        relationships.iter().any(|r| codes(r) == ["support-person"]),
        "no role means support person: {niece}"
    );
    assert_eq!(niece["period"]["start"], today().as_str());
    assert_eq!(niece["name"][0]["family"], "van Putten");
    assert_eq!(niece["active"], true);
    // A brother: the sibling class, "brother" kept as the text.
    let mut brother = examples["RelatedPerson-shaw-niece"].clone();
    brother["patient"] = patient_ref.clone();
    brother["relationship"][0]["coding"][0]["code"] = json!("BRO");
    brother["relationship"][0]["coding"][0]["display"] = json!("brother");
    let brother = create(&app, brother).await;
    assert_eq!(codes(&brother["relationship"][0]), ["SIB"], "{brother}");
    assert_eq!(brother["relationship"][0]["text"], "brother");

    // An active enrollment of a seeded client, for what must point at clinic records.
    let episode = app
        .search("EpisodeOfCare?status=active&_count=1")
        .await
        .remove(0);
    let client_ref = episode["patient"].clone();
    let clinician_ref = episode["careManager"].clone();
    let clinic_ref = episode["managingOrganization"].clone();

    // Encounter: an office visit (CPT type, no IOP extensions, no length). The clinic needs the
    // enrollment and the clinician, so those two references are added.
    let mut visit = examples["Encounter-example-1"].clone();
    visit["subject"] = client_ref.clone();
    visit["episodeOfCare"] =
        json!([{ "reference": format!("EpisodeOfCare/{}", episode["id"].as_str().unwrap()) }]);
    visit["participant"] = json!([{ "individual": clinician_ref }]);
    let visit = create(&app, visit).await;
    assert_eq!(visit["status"], "finished", "{visit}");
    assert_eq!(visit["class"]["code"], "AMB");
    assert_eq!(visit["length"]["value"], 60);
    assert!(codes(&visit["type"][0]).contains(&"individual"), "{visit}");
    let attendance = visit["extension"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["url"].as_str().unwrap().ends_with("iop-attendance"))
        .unwrap();
    assert_eq!(attendance["valueCode"], "attended");

    // Consent (no US Core example): an EHR's plain privacy consent releasing records to the
    // clinic, no kind, purpose or period.
    let consent = create(
        &app,
        json!({
            "resourceType": "Consent",
            "status": "active",
            "scope": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy" }] },
            "category": [{ "coding": [{ "system": "http://loinc.org", "code": "64292-6" }] }],
            "patient": client_ref,
            "dateTime": "2026-10-01T09:30:00-05:00",
            "policyRule": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN" }] },
            "provision": { "actor": [{
                "role": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP" }] },
                "reference": clinic_ref,
            }] },
        }),
    )
    .await;
    assert_eq!(consent["status"], "active", "{consent}");
    assert_eq!(consent["dateTime"], "2026-10-01");
    assert_eq!(consent["provision"]["period"]["start"], "2026-10-01");
    assert_eq!(consent["provision"]["purpose"][0]["code"], "TREAT");
    assert!(
        consent["category"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| codes(c) == ["release-of-information"]),
        "{consent}"
    );

    // EpisodeOfCare (no US Core example): a second enrollment of the same client, sent back
    // as the EHR read the first, without identifiers or discharge details.
    let mut second = episode.clone();
    for key in ["id", "meta", "identifier", "referralRequest", "text"] {
        second.as_object_mut().unwrap().remove(key);
    }
    second["status"] = json!("planned");
    second["period"] = json!({ "start": "2026-12-01" });
    let second = create(&app, second).await;
    assert_eq!(second["status"], "planned", "{second}");
    assert_eq!(second["period"]["start"], "2026-12-01");
    assert_eq!(second["patient"], client_ref);

    // CarePlan (update only): US Core's colonoscopy plan at a stored treatment plan: the status
    // changes, what US Core does not carry (period, review interval, goals) stays as stored.
    let plans = app
        .search(&format!(
            "CarePlan?patient={}&_count=100",
            id_of(&client_ref)
        ))
        .await;
    let stored_plan = plans
        .iter()
        .find(|p| p.get("partOf").is_none())
        .expect("a treatment plan");
    let mut plan = examples["CarePlan-colonoscopy"].clone();
    plan["subject"] = client_ref.clone();
    plan["status"] = json!(if stored_plan["status"] == "active" {
        "completed"
    } else {
        "active"
    });
    let plan_id = stored_plan["id"].as_str().unwrap();
    let updated_plan = update(&app, plan.clone(), plan_id).await;
    assert_eq!(updated_plan["status"], plan["status"], "{updated_plan}");
    assert_eq!(updated_plan["period"], stored_plan["period"]);
    assert_eq!(updated_plan["goal"], stored_plan["goal"]);
    assert_eq!(updated_plan["extension"], stored_plan["extension"]);

    // Goal (update only): US Core's goal at a stored goal of that plan.
    let goal_id = id_of(&stored_plan["goal"][0]);
    let mut goal = examples["Goal-goal-1"].clone();
    goal["subject"] = client_ref.clone();
    let goal = update(&app, goal, &goal_id).await;
    assert_eq!(goal["lifecycleStatus"], "active", "{goal}");
    assert_eq!(
        goal["description"]["text"],
        "Patient is targeting a pulse oximetry of 92% and a weight of 195 lbs"
    );
    assert_eq!(goal["target"][0]["dueDate"], "2016-04-05");

    // Task (update only, no US Core example): an EHR completes a referral's Task, without
    // lastModified: the decision is dated the day it was recorded.
    // (A referral accepted that has led to no enrollment: once one exists, the Task follows it.)
    let referral = common::app::accepted_referral(store).await;
    let stored_task = app.search(&format!("Task?_id={referral}")).await.remove(0);
    assert_eq!(stored_task["status"], "accepted");
    let task_id = stored_task["id"].as_str().unwrap();
    let task = update(
        &app,
        json!({
            "resourceType": "Task",
            "status": "completed",
            "intent": "order",
            "focus": stored_task["focus"],
            "for": stored_task["for"],
        }),
        task_id,
    )
    .await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["lastModified"], today().as_str());
}

/// The inbound profile is applied (not only the mapping): what it requires (the patient of a
/// RelatedPerson, a client's birth date) is refused with the profile's finding, nothing written.
async fn what_the_inbound_profiles_require_is_refused(store: &Store) {
    let Some(examples) = us_core_examples() else {
        return;
    };
    let app = spawn_app(store).await;
    let contacts = app.get("RelatedPerson?_summary=count").await.1["total"].clone();
    let mut no_patient = examples["RelatedPerson-shaw-niece"].clone();
    no_patient.as_object_mut().unwrap().remove("patient");
    no_patient.as_object_mut().unwrap().remove("id");
    let (status, outcome) = app.send(Method::POST, "RelatedPerson", &no_patient).await;
    assert_eq!(status, 422, "{outcome}");
    assert!(
        outcome["issue"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["expression"][0] == "RelatedPerson.patient"),
        "{outcome}"
    );
    let mut no_birth_date = examples["Patient-example"].clone();
    no_birth_date.as_object_mut().unwrap().remove("birthDate");
    no_birth_date.as_object_mut().unwrap().remove("id");
    let (status, outcome) = app.send(Method::POST, "Patient", &no_birth_date).await;
    assert_eq!(status, 422, "{outcome}");
    assert!(
        outcome["issue"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["expression"][0] == "Patient.birthDate"
                && i["details"]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("at least 1")),
        "{outcome}"
    );
    // Refused, nothing written.
    assert_eq!(app.get("Patient?_summary=count").await.1["total"], 12);
    assert_eq!(
        app.get("RelatedPerson?_summary=count").await.1["total"],
        contacts
    );
}

on_both_backends!(
    us_core_examples_are_accepted_and_read_back,
    what_the_inbound_profiles_require_is_refused
);

/// Every writable type has its inbound profile built in, for the type it is named after, and the
/// profile table the write path reads lists it as that type's inbound profile.
#[test]
fn every_writable_type_has_its_inbound_profile() {
    let registry = iop_gateway::validation::Registry::builtin();
    for kind in [
        "Patient",
        "RelatedPerson",
        "Consent",
        "Encounter",
        "EpisodeOfCare",
        "CarePlan",
        "Goal",
        "Task",
    ] {
        let url = format!(
            "https://iop-gateway.org/fhir/StructureDefinition/iop-inbound-{}",
            kind.to_ascii_lowercase()
        );
        let profile = registry
            .structure_definition(&url)
            .unwrap_or_else(|| panic!("{url} is not built in"));
        assert_eq!(profile["type"], kind);
        // The write path takes it from the profile table, apart from the emitted profiles.
        let table = registry.iop_profiles();
        assert_eq!(table.inbound_of_type(kind), Some(url.as_str()));
        assert!(!table.all_of_type(kind).contains(&url), "{kind}");
    }
}
