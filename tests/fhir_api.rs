//! The FHIR API over real HTTP, on SQLite and PostgreSQL: reads and paged searches, validated
//! writes, the concurrency guarantees (conditional create, If-Match), and OperationOutcomes for
//! malformed requests.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use iop_gateway::auth::{AuthError, Authenticator, OpenAccess, Principal};
use iop_gateway::fhir_api::PublicUrl;
use iop_gateway::http::{AppState, router};
use iop_gateway::mapping::MappingConfig;
use iop_gateway::seed::{self, SeedOptions};
use iop_gateway::store::Store;
use iop_gateway::validation::{Registry, Validator};
use reqwest::Method;
use serde_json::{Value, json};

const MRN_SYSTEM: &str = "https://iop-gateway.org/fhir/clinic/mrn";

/// A running gateway on a seeded database: its `/fhir` base URL.
struct App {
    base: String,
    client: reqwest::Client,
}

async fn spawn_app(store: &Store) -> App {
    spawn_app_with(store, Arc::new(OpenAccess)).await
}

async fn spawn_app_with(store: &Store, auth: Arc<dyn Authenticator>) -> App {
    seed::seed(
        store,
        SeedOptions {
            clients: 12,
            seed: 7,
            as_of: chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
        },
        |_, _| {},
    )
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let state = AppState::new(
        store.clone(),
        Arc::new(Validator::new(Arc::new(Registry::builtin()))),
        Arc::new(MappingConfig::default()),
        auth,
        PublicUrl::fixed(&format!("http://{address}")).unwrap(),
    )
    .with_limits(common::unthrottled());
    tokio::spawn(async move {
        axum::serve(listener, router(state)).await.unwrap();
    });
    App {
        base: format!("http://{address}/fhir"),
        client: reqwest::Client::new(),
    }
}

impl App {
    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}/{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
    /// Sends `body` as FHIR JSON to `path` (under /fhir), with extra headers: the status and
    /// the JSON answer (Null when there is none).
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, format!("{}/{path}", self.base))
            .header("content-type", "application/fhir+json")
            .json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
    async fn patient_count(&self) -> i64 {
        self.get("Patient?_summary=count").await.1["total"]
            .as_i64()
            .unwrap()
    }
}

fn assert_outcome(status: u16, body: &Value, expected: u16) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
}

/// A valid new Patient with the given MRN, made from an existing one.
async fn new_patient(app: &App, mrn: &str) -> Value {
    let (_, bundle) = app.get("Patient?_count=1").await;
    let mut patient = bundle["entry"][0]["resource"].clone();
    let object = patient.as_object_mut().unwrap();
    object.remove("id");
    object.remove("meta");
    patient["identifier"] = json!([{ "system": MRN_SYSTEM, "value": mrn }]);
    patient
}

async fn reads_and_paged_searches(store: &Store) {
    let app = spawn_app(store).await;
    let (status, metadata) = app.get("metadata").await;
    assert_eq!(status, 200);
    assert_eq!(metadata["fhirVersion"], "4.0.1");

    // Follow every next link: each Patient exactly once, as many as the count says.
    let total = app.patient_count().await;
    assert_eq!(total, 12, "the seeded clients");
    let link = |bundle: &Value, relation: &str| {
        bundle["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == relation)
            .map(|l| l["url"].as_str().unwrap().to_owned())
    };
    let ids_of = |bundle: &Value| -> Vec<String> {
        bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["search"]["mode"] == "match")
            .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let mut url = format!("{}/Patient?_count=5", app.base);
    let mut seen = HashSet::new();
    let mut in_order = Vec::new();
    let mut pages = 0;
    let last_page = loop {
        let bundle: Value = app
            .client
            .get(&url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        pages += 1;
        // The 42 CFR Part 2 notice rides along as an outcome entry where Part 2 records are.
        for entry in bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["search"]["mode"] != "outcome")
        {
            assert!(seen.insert(entry["resource"]["id"].as_str().unwrap().to_owned()));
            assert!(entry["fullUrl"].as_str().unwrap().starts_with("http://"));
        }
        in_order.extend(ids_of(&bundle));
        match link(&bundle, "next") {
            Some(next) => url = next,
            None => break bundle,
        }
    };
    assert_eq!(seen.len() as i64, total);
    assert!(pages >= 3, "{pages} pages of 5 for {total} patients");
    // And back again with the previous links: the same pages, in reverse.
    let mut backwards = ids_of(&last_page);
    let mut page = last_page;
    while let Some(prev) = link(&page, "previous") {
        page = app
            .client
            .get(&prev)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut ids = ids_of(&page);
        ids.extend(backwards);
        backwards = ids;
    }
    assert_eq!(backwards, in_order);

    // Read one, then its care plans, goals and encounters by patient.
    let id = seen.iter().next().unwrap().clone();
    let (status, patient) = app.get(&format!("Patient/{id}")).await;
    assert_eq!(status, 200);
    // Seeded Part 2 clients are at version 2: their labels came with their enrollment.
    let version = patient["meta"]["versionId"].as_str().unwrap();
    assert!(["1", "2"].contains(&version), "{version}");
    for kind in ["CarePlan", "Goal", "Encounter", "EpisodeOfCare", "Consent"] {
        let (status, bundle) = app.get(&format!("{kind}?patient=Patient/{id}")).await;
        assert_eq!(status, 200, "{bundle}");
        let entries: Vec<&Value> = bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["search"]["mode"] == "match")
            .collect();
        assert!(kind == "Consent" || !entries.is_empty(), "{kind} of {id}");
        for entry in entries {
            let subject = entry["resource"]["subject"]["reference"]
                .as_str()
                .or(entry["resource"]["patient"]["reference"].as_str())
                .unwrap_or_default();
            assert_eq!(subject, format!("Patient/{id}"), "{kind}");
        }
    }
    // 42 CFR Part 2: every resource about a client carries the client's labels, or none.
    let part2 = |r: &Value| r["meta"]["security"].to_string().contains("42CFRPart2");
    let mut labelled = 0;
    for patient_id in &seen {
        let (_, patient) = app.get(&format!("Patient/{patient_id}")).await;
        let (_, plans) = app.get(&format!("CarePlan?patient={patient_id}")).await;
        let plans: Vec<&Value> = plans["entry"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["search"]["mode"] == "match")
            .collect();
        assert!(!plans.is_empty(), "{patient_id} has a plan");
        for plan in plans {
            assert_eq!(part2(&plan["resource"]), part2(&patient), "{patient_id}");
        }
        labelled += usize::from(part2(&patient));
    }
    assert!(
        labelled > 0 && labelled < seen.len(),
        "{labelled} of {}",
        seen.len()
    );
    let (_, plans) = app.get(&format!("CarePlan?patient={id}")).await;
    let plan_id = plans["entry"][0]["resource"]["id"].as_str().unwrap();
    assert_eq!(app.get(&format!("CarePlan/{plan_id}")).await.0, 200);
    let (status, body) = app
        .get("Patient/0195a0b2-0000-7000-8000-00000000dead")
        .await;
    assert_outcome(status, &body, 404);
}

async fn invalid_writes_write_nothing(store: &Store) {
    let app = spawn_app(store).await;
    let before = app.patient_count().await;
    let mut patient = new_patient(&app, "BAD0001").await;
    patient.as_object_mut().unwrap().remove("gender");
    patient["birthDate"] = json!("1990-13-45");
    let (status, outcome) = app.send(Method::POST, "Patient", &patient, &[]).await;
    assert_outcome(status, &outcome, 422);
    let locations: Vec<&str> = outcome["issue"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["severity"] == "error")
        .filter_map(|i| i["expression"][0].as_str())
        .collect();
    assert!(locations.contains(&"Patient.gender"), "{locations:?}");
    assert!(locations.contains(&"Patient.birthDate"), "{locations:?}");
    assert_eq!(app.patient_count().await, before);
}

async fn concurrent_conditional_creates_make_one_patient(store: &Store) {
    let app = Arc::new(spawn_app(store).await);
    let before = app.patient_count().await;
    let patient = new_patient(&app, "RACE0001").await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let app = Arc::clone(&app);
        let patient = patient.clone();
        tasks.push(tokio::spawn(async move {
            let response = app
                .client
                .post(format!("{}/Patient", app.base))
                .header("content-type", "application/fhir+json")
                .header("if-none-exist", format!("identifier={MRN_SYSTEM}|RACE0001"))
                .json(&patient)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            (status, body["id"].as_str().unwrap_or_default().to_owned())
        }));
    }
    let mut created = 0;
    let mut ids = HashSet::new();
    for task in tasks {
        let (status, id) = task.await.unwrap();
        assert!(status == 200 || status == 201, "status {status}");
        if status == 201 {
            created += 1;
        }
        ids.insert(id);
    }
    assert_eq!(created, 1);
    assert_eq!(ids.len(), 1, "every answer names the same Patient");
    assert_eq!(app.patient_count().await, before + 1);
    let (_, found) = app
        .get(&format!("Patient?identifier={MRN_SYSTEM}|RACE0001"))
        .await;
    assert_eq!(found["entry"].as_array().unwrap().len(), 1);
}

async fn concurrent_updates_at_one_version_have_one_winner(store: &Store) {
    let app = Arc::new(spawn_app(store).await);
    let (_, bundle) = app.get("Patient?_count=1").await;
    let patient = bundle["entry"][0]["resource"].clone();
    let id = patient["id"].as_str().unwrap().to_owned();
    let mut tasks = Vec::new();
    for n in 0..20 {
        let app = Arc::clone(&app);
        let mut patient = patient.clone();
        let id = id.clone();
        patient["telecom"] = json!([{ "system": "phone", "value": format!("217-555-{:04}", 1000 + n), "use": "home" }]);
        tasks.push(tokio::spawn(async move {
            app.client
                .put(format!("{}/Patient/{id}", app.base))
                .header("content-type", "application/fhir+json")
                .header("if-match", "W/\"1\"")
                .json(&patient)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 412).count(),
        19,
        "{statuses:?}"
    );
    let (_, now) = app.get(&format!("Patient/{id}")).await;
    assert_eq!(now["meta"]["versionId"], "2");

    // History lists both versions, newest first; only the current one still has its content.
    let (status, history) = app.get(&format!("Patient/{id}/_history")).await;
    assert_eq!(status, 200, "{history}");
    let entries = history["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["response"]["etag"], "W/\"2\"");
    assert_eq!(entries[0]["resource"]["meta"]["versionId"], "2");
    assert_eq!(entries[1]["request"]["method"], "POST");
    assert!(entries[1].get("resource").is_none());
    let (status, older) = app.get(&format!("Patient/{id}/_history/1")).await;
    assert_outcome(status, &older, 404);
    let (_, type_history) = app.get("Patient/_history?_count=5").await;
    assert_eq!(type_history["entry"].as_array().unwrap().len(), 5);
    let next = type_history["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .unwrap();
    assert!(next["url"].as_str().unwrap().contains("_before="), "{next}");
    let response = app
        .client
        .delete(format!("{}/Patient/{id}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
}

async fn malformed_requests_get_operation_outcomes(store: &Store) {
    let app = spawn_app(store).await;
    let before = app.patient_count().await;
    let post = |body: Vec<u8>, content_type: &'static str, path: &'static str| {
        let client = app.client.clone();
        let url = format!("{}/{path}", app.base);
        async move {
            let response = client
                .post(url)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (s, b) = post(b"{not json".to_vec(), "application/fhir+json", "Patient").await;
    assert_outcome(s, &b, 400);
    let (s, b) = post(
        br#"{"resourceType":"CarePlan"}"#.to_vec(),
        "application/fhir+json",
        "Patient",
    )
    .await;
    assert_outcome(s, &b, 400);
    let (s, b) = post(b"<Patient/>".to_vec(), "application/fhir+xml", "Patient").await;
    assert_outcome(s, &b, 415);
    let huge = format!(
        r#"{{"resourceType":"Patient","text":"{}"}}"#,
        "x".repeat(8 * 1024 * 1024)
    );
    let (s, b) = post(huge.into_bytes(), "application/fhir+json", "Patient").await;
    assert_outcome(s, &b, 413);
    for (path, expected) in [
        ("Patient/not-a-uuid", 404),
        ("Patient?_id=nope", 400),
        ("Patient?_lastUpdated=yesterday", 400),
        ("Patient?_count=-1", 400),
        ("Patient?_cursor=xyz", 400),
        ("CarePlan?patient=Patient/xyz", 400),
        ("Spaceship", 404),
        ("Patient?_format=xml", 406),
    ] {
        let (status, body) = app.get(path).await;
        assert_outcome(status, &body, expected);
    }
    assert_eq!(app.patient_count().await, before);
}

async fn validate_operation_reports_issues(store: &Store) {
    let app = spawn_app(store).await;
    let mut patient = new_patient(&app, "VAL0001").await;
    patient["gender"] = json!("robot");
    let (_, outcome) = app
        .send(Method::POST, "Patient/$validate", &patient, &[])
        .await;
    let errors: Vec<&Value> = outcome["issue"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["severity"] == "error")
        .collect();
    assert_eq!(errors.len(), 1, "{outcome}");
    assert_eq!(errors[0]["expression"][0], "Patient.gender");

    // Valid R4, but the IOP RelatedPerson needs a name, a relationship and an identifier (its
    // misspelt profile id once made this pass with a warning).
    let contact =
        json!({ "resourceType": "RelatedPerson", "patient": { "reference": "Patient/x" } });
    let (status, outcome) = app
        .send(Method::POST, "RelatedPerson/$validate", &contact, &[])
        .await;
    assert_eq!(status, 200, "{outcome}");
    let refused: Vec<&str> = outcome["issue"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["severity"] == "error")
        .filter_map(|i| i["expression"][0].as_str())
        .collect();
    for element in [
        "RelatedPerson.name",
        "RelatedPerson.relationship",
        "RelatedPerson.identifier",
    ] {
        assert!(refused.contains(&element), "{element}: {outcome}");
    }
    // A profile asked for that is not loaded is an error, not a warning.
    let (_, outcome) = app
        .send(
            Method::POST,
            "Patient/$validate?profile=http://example.org/StructureDefinition/nope",
            &patient,
            &[],
        )
        .await;
    assert!(
        outcome["issue"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["severity"] == "error"
                && i["details"]["text"]
                    .as_str()
                    .unwrap()
                    .contains("nope is not loaded")),
        "{outcome}"
    );
    // So is one that constrains another type.
    let (_, outcome) = app
        .send(
            Method::POST,
            "Patient/$validate?profile=https://iop-gateway.org/fhir/StructureDefinition/iop-careplan",
            &patient,
            &[],
        )
        .await;
    assert!(
        outcome["issue"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["severity"] == "error"
                && i["details"]["text"]
                    .as_str()
                    .unwrap()
                    .contains("constrains CarePlan, not Patient")),
        "{outcome}"
    );
    // The CapabilityStatement names the profile that writes and $validate apply, per type.
    let (_, metadata) = app.get("metadata").await;
    for resource in metadata["rest"][0]["resource"].as_array().unwrap() {
        // The audit trail and referral feedback documents are the gateway's own, not clinic
        // resources with an IOP profile.
        if resource["type"] == "AuditEvent" || resource["type"] == "Bundle" {
            continue;
        }
        let profile = resource["supportedProfile"][0].as_str().unwrap_or_default();
        let id = profile.rsplit('/').next().unwrap_or_default();
        assert!(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("fhir-profiles/iop/StructureDefinition-{id}.json"))
                .exists(),
            "{}: {profile}",
            resource["type"]
        );
    }
}

fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/fhir")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A transaction creating a Patient and a support contact that refers to it by `urn:uuid`.
fn patient_and_contact(patient: &Value, break_contact: bool) -> Value {
    let mut contact = fixture("RelatedPerson-support-contact.json");
    let object = contact.as_object_mut().unwrap();
    object.remove("id");
    object.remove("meta");
    contact["patient"] = json!({ "reference": "urn:uuid:6a1f0000-0000-4000-8000-000000000001" });
    if break_contact {
        // A support contact needs a name (the inbound profile); a relationship is defaulted.
        contact.as_object_mut().unwrap().remove("name");
    }
    json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            { "fullUrl": "urn:uuid:6a1f0000-0000-4000-8000-000000000001", "resource": patient,
              "request": { "method": "POST", "url": "Patient" } },
            { "fullUrl": "urn:uuid:6a1f0000-0000-4000-8000-000000000002", "resource": contact,
              "request": { "method": "POST", "url": "RelatedPerson" } }
        ]
    })
}

async fn transactions_are_all_or_nothing(store: &Store) {
    let app = spawn_app(store).await;
    let before = app.patient_count().await;
    // The closures below hold the app by reference (their futures copy it).
    let app = &app;
    let post = |bundle: Value| async move { app.send(Method::POST, "", &bundle, &[]).await };
    // The contact breaks the profile: nothing is written, not even the Patient before it.
    let patient = new_patient(app, "TXN0001").await;
    let (status, outcome) = post(patient_and_contact(&patient, true)).await;
    assert_outcome(status, &outcome, 422);
    assert!(outcome.to_string().contains("entry[1]"), "{outcome}");
    assert_eq!(app.patient_count().await, before);

    let (status, response) = post(patient_and_contact(&patient, false)).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["type"], "transaction-response");
    let entries = response["entry"].as_array().unwrap();
    assert_eq!(entries[0]["response"]["status"], "201 Created");
    let patient_id = entries[0]["resource"]["id"].as_str().unwrap();
    assert_eq!(
        entries[1]["resource"]["patient"]["reference"],
        format!("Patient/{patient_id}"),
        "the urn:uuid reference now names the created Patient"
    );
    assert_eq!(app.patient_count().await, before + 1);
    let (_, contacts) = app
        .get(&format!("RelatedPerson?patient={patient_id}"))
        .await;
    assert_eq!(contacts["entry"].as_array().unwrap().len(), 1);

    // A batch: each entry on its own.
    let mut batch = patient_and_contact(&new_patient(app, "BAT0001").await, false);
    batch["type"] = json!("batch");
    batch["entry"][1]["resource"]["patient"] =
        json!({ "reference": format!("Patient/{patient_id}") });
    batch["entry"][0]["resource"]
        .as_object_mut()
        .unwrap()
        .remove("gender");
    let (status, response) = post(batch).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["entry"][0]["response"]["status"], "422");
    assert_eq!(response["entry"][1]["response"]["status"], "201 Created");
    assert_eq!(app.patient_count().await, before + 1);
}

async fn search_parameters_select_sort_and_include(store: &Store) {
    let app = spawn_app(store).await;
    let (_, patients) = app.get("Patient?_count=1").await;
    let id = patients["entry"][0]["resource"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Tokens: every returned resource has the status asked for; together they are all.
    let (_, all) = app
        .get(&format!("Encounter?patient={id}&_count=1000"))
        .await;
    let all = all["entry"].as_array().unwrap().clone();
    assert!(all.len() > 1, "a seeded client has sessions");
    let statuses: HashSet<&str> = all
        .iter()
        .map(|e| e["resource"]["status"].as_str().unwrap())
        .collect();
    let mut total = 0;
    for status in &statuses {
        let (_, some) = app
            .get(&format!(
                "Encounter?patient={id}&status={status}&_count=1000"
            ))
            .await;
        let some = some["entry"].as_array().unwrap();
        assert!(!some.is_empty(), "{status}");
        for entry in some {
            assert_eq!(entry["resource"]["status"], *status);
        }
        total += some.len();
    }
    assert_eq!(total, all.len());

    // Dates with prefixes, and _sort by date both ways.
    let (_, sorted) = app
        .get(&format!("Encounter?patient={id}&_sort=date&_count=1000"))
        .await;
    let starts: Vec<String> = sorted["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["resource"]["period"]["start"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(starts.len(), all.len());
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{starts:?}");
    let middle = &starts[starts.len() / 2][..10];
    let (_, later) = app
        .get(&format!(
            "Encounter?patient={id}&date=ge{middle}&_count=1000"
        ))
        .await;
    let later = later["entry"].as_array().unwrap();
    assert!(
        later.len() >= all.len() / 2,
        "{} of {}",
        later.len(),
        all.len()
    );
    for entry in later {
        assert!(entry["resource"]["period"]["start"].as_str().unwrap()[..10] >= *middle);
    }
    let (_, newest_first) = app
        .get(&format!("Encounter?patient={id}&_sort=-date&_count=3"))
        .await;
    assert_eq!(
        newest_first["entry"][0]["resource"]["period"]["start"],
        starts.last().unwrap().as_str()
    );
    // Paging a sorted search visits every match once.
    let mut url = format!("{}/Encounter?patient={id}&_sort=date&_count=4", app.base);
    let mut visited = Vec::new();
    loop {
        let page: Value = app
            .client
            .get(&url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        visited.extend(page["entry"].as_array().unwrap().iter().map(|e| {
            e["resource"]["period"]["start"]
                .as_str()
                .unwrap()
                .to_owned()
        }));
        match page["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
        {
            Some(next) => url = next["url"].as_str().unwrap().to_owned(),
            None => break,
        }
    }
    assert_eq!(visited, starts);

    // _include the subject, _revinclude the plans, _elements, _summary=count with a token.
    let (_, with_patient) = app
        .get(&format!("CarePlan?patient={id}&_include=CarePlan:subject"))
        .await;
    let included: Vec<&Value> = with_patient["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["search"]["mode"] == "include")
        .collect();
    assert_eq!(included.len(), 1);
    assert_eq!(included[0]["resource"]["id"], id.as_str());
    let (_, with_plans) = app
        .get(&format!("Patient?_id={id}&_revinclude=CarePlan:patient"))
        .await;
    let plans = with_plans["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["resource"]["resourceType"] == "CarePlan")
        .count();
    let (_, own_plans) = app.get(&format!("CarePlan?patient={id}&_count=1000")).await;
    let own_plans = own_plans["entry"].as_array().unwrap().len();
    assert!(own_plans > 0);
    assert_eq!(plans, own_plans);
    let (_, slim) = app.get(&format!("Patient?_id={id}&_elements=gender")).await;
    let slim = &slim["entry"][0]["resource"];
    assert!(slim.get("gender").is_some() && slim.get("name").is_none());
    assert_eq!(slim["meta"]["tag"][0]["code"], "SUBSETTED");
    let status = statuses.iter().next().unwrap();
    let (_, counted) = app
        .get(&format!(
            "Encounter?patient={id}&status={status}&_summary=count"
        ))
        .await;
    let expected = all
        .iter()
        .filter(|e| e["resource"]["status"] == *status)
        .count();
    assert_eq!(counted["total"].as_u64().unwrap(), expected as u64);
}

/// An authenticator that knows one token.
struct OneToken;

impl Authenticator for OneToken {
    fn authenticate(&self, headers: &reqwest::header::HeaderMap) -> Result<Principal, AuthError> {
        match headers.get("authorization").and_then(|h| h.to_str().ok()) {
            Some("Bearer let-me-in") => Ok(Principal {
                client_id: "test-client".into(),
                organization_id: None,
                purpose_of_use: None,
                scopes: iop_gateway::auth::Scopes::parse_strict("system/*.read").unwrap(),
                token_id: None,
                open_access: false,
                clinic_app: false,
            }),
            Some(_) => Err(AuthError::Rejected),
            None => Err(AuthError::Missing),
        }
    }
    fn describe(&self) -> String {
        "One bearer token.".into()
    }
}

async fn every_request_but_metadata_passes_the_authenticator(store: &Store) {
    let app = spawn_app_with(store, Arc::new(OneToken)).await;
    let (status, metadata) = app.get("metadata").await;
    assert_eq!(status, 200);
    assert_eq!(
        metadata["rest"][0]["security"]["description"],
        "One bearer token."
    );
    for path in [
        "Patient",
        "Patient/0195a0b2-0000-7000-8000-00000000dead",
        "Patient/_history",
    ] {
        let response = app
            .client
            .get(format!("{}/{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401, "{path}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["resourceType"], "OperationOutcome");
    }
    let response = app
        .client
        .get(format!("{}/Patient?_count=1", app.base))
        .bearer_auth("let-me-in")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

async fn conditional_writes_by_record_identifier(store: &Store) {
    let app = spawn_app(store).await;
    let (_, patients) = app.get("Patient?_count=1").await;
    let patient_id = patients["entry"][0]["resource"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut contact = fixture("RelatedPerson-support-contact.json");
    contact.as_object_mut().unwrap().remove("meta");
    contact["patient"] = json!({ "reference": format!("Patient/{patient_id}") });
    let id = "0195a0b2-0000-7000-8000-0000000c0de1";
    contact["id"] = json!(id);
    let system = "https://iop-gateway.org/fhir/clinic/support-contact";
    contact["identifier"] = json!([{ "use": "official", "system": system, "value": id }]);
    // The closures below hold the app by reference (their futures copy it).
    let app = &app;
    let path = format!("RelatedPerson?identifier={system}|{id}");
    let put = |body: Value| {
        let path = &path;
        async move { app.send(Method::PUT, path, &body, &[]).await.0 }
    };
    assert_eq!(put(contact.clone()).await, 201);
    assert_eq!(put(contact.clone()).await, 200);
    let (_, found) = app
        .get(&format!("RelatedPerson?identifier={system}|{id}"))
        .await;
    let entries = found["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["resource"]["meta"]["versionId"], "2");
    // If-None-Exist on the same identifier: the existing one, nothing new.
    let condition = format!("identifier={system}|{id}");
    let (status, _) = app
        .send(
            Method::POST,
            "RelatedPerson",
            &contact,
            &[("if-none-exist", &condition)],
        )
        .await;
    assert_eq!(status, 200);
    let (_, all) = app
        .get(&format!("RelatedPerson?patient={patient_id}&_count=1000"))
        .await;
    let same: Vec<&Value> = all["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["resource"]["id"] == id)
        .collect();
    assert_eq!(same.len(), 1);
}

/// Odd inputs anywhere in the API: never a 5xx, always an OperationOutcome or a Bundle.
async fn odd_inputs_never_cause_server_errors(store: &Store) {
    let app = spawn_app(store).await;
    let gets = [
        "Patient?_count=99999999999",
        "Patient?_count=",
        "Encounter?date=ge",
        "Encounter?date=ge2026-13-45",
        "Patient?_lastUpdated=gt2026-13-45T00:00:00Z",
        "Patient?_sort=-",
        "Patient?_sort=name",
        "Patient?_include=Foo",
        "CarePlan?_include=CarePlan:",
        "CarePlan?_include=CarePlan:nothing",
        "Patient?_revinclude=Spaceship:patient",
        "Patient?identifier=|",
        "Patient?identifier=",
        "CarePlan?patient=",
        "Patient?_elements=",
        "Patient?name=%00",
        "Patient?_cursor=~",
        "Patient?_before=abc",
        "CarePlan?status=,",
        "Patient?_summary=data",
        "Patient/%20",
        "Patient/_history?_cursor=abc",
        "Patient/_history?_count=abc",
        "Patient/0195a0b2-0000-7000-8000-00000000dead/_history",
        "Patient/0195a0b2-0000-7000-8000-00000000dead/_history/x",
        "CarePlan/0195a0b2-0000-7000-8000-00000000dead",
        "metadata?_format=xml",
    ];
    for path in gets {
        let (status, body) = app.get(path).await;
        assert!(status < 500, "{path}: {status} {body}");
        let kind = body["resourceType"].as_str().unwrap_or_default();
        assert!(
            kind == "OperationOutcome" || kind == "Bundle",
            "{path}: {body}"
        );
    }
    let posts: [(&str, &str); 8] = [
        (
            "",
            r#"{"resourceType":"Bundle","type":"transaction","entry":{}}"#,
        ),
        (
            "",
            r#"{"resourceType":"Bundle","type":"transaction","entry":[{}]}"#,
        ),
        ("", r#"{"resourceType":"Bundle","type":"history"}"#),
        (
            "",
            r#"{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"Patient/x"}}]}"#,
        ),
        ("", r#"[1,2,3]"#),
        ("Patient", r#"{"resourceType":"Patient","id":7,"name":"x"}"#),
        ("Patient", r#"null"#),
        ("Patient/$validate", r#"{"resourceType":"Parameters"}"#),
    ];
    for (path, body) in posts {
        let response = app
            .client
            .post(format!("{}/{path}", app.base))
            .header("content-type", "application/fhir+json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let shown: String = text.chars().take(300).collect();
        assert!(
            (400..500).contains(&status),
            "POST {path} {body}: {status} {shown}"
        );
        assert!(text.contains("OperationOutcome"), "POST {path}: {text}");
    }
}

async fn encounters_are_written_with_their_participants(store: &Store) {
    use iop_gateway::domain::{Id, Session, SessionParticipant};
    let app = spawn_app(store).await;
    // A family session of a seeded client: change its attendance, keep its participants.
    let (_, bundle) = app.get("Encounter?_count=200").await;
    let family = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"].clone())
        .find(|e| {
            e["participant"].as_array().is_some_and(|ps| {
                ps.iter().any(|p| {
                    p["individual"]["reference"]
                        .as_str()
                        .is_some_and(|r| r.starts_with("RelatedPerson/"))
                })
            })
        })
        .expect("a seeded session with a support contact");
    let id = family["id"].as_str().unwrap().to_owned();
    let version = family["meta"]["versionId"].as_str().unwrap().to_owned();
    // The closures below hold the app by reference (their futures copy it).
    let app = &app;
    let path = format!("Encounter/{id}");
    let put = |body: Value, if_match: String| {
        let path = &path;
        async move {
            app.send(Method::PUT, path, &body, &[("if-match", &if_match)])
                .await
        }
    };
    // The participant rows of the session, as the clinic database holds them.
    let session_id: Id<Session> = id.parse().unwrap();
    let rows = || async move {
        let mut contacts: Vec<String> = store
            .children::<SessionParticipant>(session_id)
            .await
            .unwrap()
            .into_iter()
            .map(|p| format!("RelatedPerson/{}", p.record.support_contact_id))
            .collect();
        contacts.sort();
        contacts
    };
    let related = |encounter: &Value| {
        let mut refs: Vec<String> = encounter["participant"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["individual"]["reference"].as_str())
            .filter(|r| r.starts_with("RelatedPerson/"))
            .map(str::to_owned)
            .collect();
        refs.sort();
        refs
    };
    let contacts = related(&family);
    assert_eq!(rows().await, contacts);
    let attendance = |encounter: &Value| {
        encounter["extension"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["url"].as_str().unwrap().ends_with("/iop-attendance"))
            .map(|e| e["valueCode"].clone())
            .unwrap()
    };
    // A real change: the client came late (or, if they did, was a no-show).
    let mut changed = family.clone();
    changed.as_object_mut().unwrap().remove("meta");
    let (came, status) = if attendance(&family) == "late" {
        ("no-show", "cancelled")
    } else {
        ("late", "finished")
    };
    for e in changed["extension"].as_array_mut().unwrap() {
        if e["url"].as_str().unwrap().ends_with("/iop-attendance") {
            e["valueCode"] = json!(came);
        }
    }
    changed["status"] = json!(status);
    let (status, stored) = put(changed.clone(), format!("W/\"{version}\"")).await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(attendance(&stored), came);
    assert_eq!(related(&stored), contacts, "participants survive an update");
    assert_eq!(rows().await, contacts, "participant rows survive an update");
    assert_ne!(stored["meta"]["versionId"], family["meta"]["versionId"]);
    let (status, outcome) = put(changed.clone(), format!("W/\"{version}\"")).await;
    assert_outcome(status, &outcome, 412);
    // Without its support contacts: their participant rows go.
    let mut without = changed;
    without["participant"] = json!(
        family["participant"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["individual"]["reference"]
                .as_str()
                .is_some_and(|r| r.starts_with("Practitioner/")))
            .collect::<Vec<_>>()
    );
    let version = stored["meta"]["versionId"].as_str().unwrap().to_owned();
    let (status, stored) = put(without, format!("W/\"{version}\"")).await;
    assert_eq!(status, 200, "{stored}");
    assert!(related(&stored).is_empty(), "{stored}");
    assert!(rows().await.is_empty());

    // A new session made from it: a new id, the same participants.
    let mut new = family.clone();
    let object = new.as_object_mut().unwrap();
    object.remove("id");
    object.remove("meta");
    object.remove("identifier");
    let (status, created) = app.send(Method::POST, "Encounter", &new, &[]).await;
    assert_eq!(status, 201);
    assert_ne!(created["id"], family["id"]);
    assert_eq!(created["participant"], family["participant"]);
}

async fn enrollments_are_updated_through_episodes_of_care(store: &Store) {
    let app = spawn_app(store).await;
    let (_, bundle) = app.get("EpisodeOfCare?status=active&_count=1").await;
    let episode = bundle["entry"][0]["resource"].clone();
    let id = episode["id"].as_str().unwrap().to_owned();
    // Put on hold, then read back: the change is stored, everything else as it was.
    let mut held = episode.clone();
    held.as_object_mut().unwrap().remove("meta");
    held["status"] = json!("onhold");
    let path = format!("EpisodeOfCare/{id}");
    assert_eq!(app.send(Method::PUT, &path, &held, &[]).await.0, 200);
    let (_, stored) = app.get(&format!("EpisodeOfCare/{id}")).await;
    assert_eq!(stored["status"], "onhold");
    let strip = |mut r: Value| {
        let object = r.as_object_mut().unwrap();
        object.remove("meta");
        object.remove("status");
        r
    };
    assert_eq!(strip(stored.clone()), strip(episode));
    // Finished without a discharge disposition: refused, nothing written. Sent back as read,
    // its `meta.profile` names the IOP profile, whose rule iop-eoc-1 refuses it; without `meta`
    // the inbound mapping does (a discharge needs its disposition).
    let mut finished = stored.clone();
    finished["status"] = json!("finished");
    let (status, outcome) = app.send(Method::PUT, &path, &finished, &[]).await;
    assert_outcome(status, &outcome, 422);
    assert!(outcome.to_string().contains("iop-eoc-1"), "{outcome}");
    finished.as_object_mut().unwrap().remove("meta");
    let (status, outcome) = app.send(Method::PUT, &path, &finished, &[]).await;
    assert_outcome(status, &outcome, 422);
    assert_eq!(
        outcome["issue"][0]["expression"][0], "EpisodeOfCare.extension(iop-discharge-disposition)",
        "{outcome}"
    );
    let (_, after) = app.get(&format!("EpisodeOfCare/{id}")).await;
    assert_eq!(after["status"], "onhold");
    assert_eq!(after["meta"]["versionId"], stored["meta"]["versionId"]);
}

async fn plans_and_goals_are_updated_not_created(store: &Store) {
    let app = spawn_app(store).await;
    let (_, bundle) = app.get("Goal?lifecycle-status=active&_count=1").await;
    let goal = bundle["entry"][0]["resource"].clone();
    let id = goal["id"].as_str().unwrap().to_owned();
    let mut done = goal.clone();
    done.as_object_mut().unwrap().remove("meta");
    done["lifecycleStatus"] = json!("completed");
    done["achievementStatus"] = json!({ "coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/goal-achievement",
        "code": "achieved", "display": "Achieved" }] });
    // The closures below hold the app by reference (their futures copy it).
    let app = &app;
    let send = |method: Method, path: String, body: Value| async move {
        app.send(method, &path, &body, &[]).await.0
    };
    assert_eq!(
        send(Method::PUT, format!("Goal/{id}"), done.clone()).await,
        200
    );
    let (_, stored) = app.get(&format!("Goal/{id}")).await;
    assert_eq!(stored["lifecycleStatus"], "completed");
    assert_eq!(stored["achievementStatus"]["coding"][0]["code"], "achieved");
    assert_eq!(
        stored["note"], goal["note"],
        "progress notes stay the clinic's"
    );
    assert_eq!(stored["subject"], goal["subject"]);
    let mut new = done;
    new.as_object_mut().unwrap().remove("id");
    assert_eq!(
        send(Method::POST, "Goal".into(), new).await,
        403,
        "only the clinic's own applications create goals"
    );

    // A treatment plan: its status and period change; goals and activities stay the clinic's.
    let (_, plans) = app.get("CarePlan?status=active&_count=10").await;
    let plan = plans["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"].clone())
        .find(|p| p.get("partOf").is_none())
        .expect("an active treatment plan");
    let plan_id = plan["id"].as_str().unwrap().to_owned();
    let mut completed = plan.clone();
    completed.as_object_mut().unwrap().remove("meta");
    completed["status"] = json!("completed");
    completed["period"]["end"] = json!("2026-11-20");
    completed["activity"] = json!([]);
    assert_eq!(
        send(
            reqwest::Method::PUT,
            format!("CarePlan/{plan_id}"),
            completed.clone()
        )
        .await,
        200
    );
    let (_, stored) = app.get(&format!("CarePlan/{plan_id}")).await;
    assert_eq!(stored["status"], "completed");
    assert_eq!(stored["period"]["end"], "2026-11-20");
    assert_eq!(stored["goal"], plan["goal"]);
    assert_eq!(
        stored["activity"].as_array().map(Vec::len),
        plan["activity"].as_array().map(Vec::len),
        "activities come from the clinic's interventions, not the request"
    );
    // Relapse prevention plans and new plans are the clinic's own applications' to write.
    let (_, family) = app
        .get(&format!(
            "CarePlan?patient={}",
            plan["subject"]["reference"]
                .as_str()
                .unwrap()
                .trim_start_matches("Patient/")
        ))
        .await;
    let relapse = family["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"].clone())
        .find(|p| p.get("partOf").is_some())
        .expect("every seeded treatment plan has a relapse prevention plan");
    // Sent back as read (valid against its profile): refused because it is a relapse plan.
    let relapse_id = relapse["id"].as_str().unwrap().to_owned();
    let (status, outcome) = app
        .send(
            Method::PUT,
            &format!("CarePlan/{relapse_id}"),
            &relapse,
            &[],
        )
        .await;
    assert_outcome(status, &outcome, 403);
    completed.as_object_mut().unwrap().remove("id");
    assert_eq!(send(Method::POST, "CarePlan".into(), completed).await, 403);
}

async fn referral_tasks_carry_intake_decisions(store: &Store) {
    let app = spawn_app(store).await;
    // An accepted referral that has led to no enrollment yet (once one exists, the Task follows
    // it): the Task is completed.
    let referral = common::app::accepted_referral(store).await;
    let (_, task) = app.get(&format!("Task/{referral}")).await;
    assert_eq!(task["status"], "accepted", "{task}");
    let id = task["id"].as_str().unwrap().to_owned();
    let mut completed = task.clone();
    completed.as_object_mut().unwrap().remove("meta");
    completed["status"] = json!("completed");
    completed["lastModified"] = json!("2026-11-24T15:00:00Z");
    // The closures below hold the app by reference (their futures copy it).
    let app = &app;
    let path = format!("Task/{id}");
    let put = |body: Value| {
        let path = &path;
        async move { app.send(Method::PUT, path, &body, &[]).await }
    };
    let (status, body) = put(completed.clone()).await;
    assert_eq!(status, 200, "{body}");
    let (_, stored) = app.get(&format!("Task/{id}")).await;
    assert_eq!(stored["status"], "completed");
    // The ServiceRequest of the same referral follows.
    let (_, request) = app.get(&format!("ServiceRequest/{id}")).await;
    assert_eq!(request["status"], "completed");
    // A Task status that is no referral state is refused, nothing written: by the IOP profile
    // when the Task names it (as read), else by the mapping.
    let mut odd = stored.clone();
    odd["status"] = json!("on-hold");
    let (status, outcome) = put(odd.clone()).await;
    assert_outcome(status, &outcome, 422);
    let issue = outcome["issue"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["severity"] == "error")
        .unwrap();
    assert_eq!(issue["expression"][0], "Task.status", "{outcome}");
    assert!(
        issue["details"]["text"]
            .as_str()
            .unwrap()
            .contains("iop-referral-task-status"),
        "the profile's value set: {outcome}"
    );
    odd.as_object_mut().unwrap().remove("meta");
    let (status, outcome) = put(odd).await;
    assert_outcome(status, &outcome, 422);
    assert_eq!(
        outcome["issue"][0]["expression"][0], "Task.status",
        "{outcome}"
    );
    let (_, after) = app.get(&format!("Task/{id}")).await;
    assert_eq!(after["status"], "completed");
    assert_eq!(after["meta"]["versionId"], stored["meta"]["versionId"]);
    let mut new = completed;
    new.as_object_mut().unwrap().remove("id");
    assert_eq!(app.send(Method::POST, "Task", &new, &[]).await.0, 405);
}

/// History is newest first across pages, `total` is the true count, and the current version is
/// always on the first page (however many changes came before).
async fn history_is_newest_first_paged_and_complete(store: &Store) {
    let app = spawn_app(store).await;
    let patient = new_patient(&app, "HIST-1").await;
    let (status, created) = app.send(Method::POST, "Patient", &patient, &[]).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    for phone in ["555-0101", "555-0102", "555-0103", "555-0104"] {
        let mut changed = created.clone();
        changed["telecom"] = json!([{ "system": "phone", "value": phone }]);
        let (status, body) = app
            .send(Method::PUT, &format!("Patient/{id}"), &changed, &[])
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let mut etags = Vec::new();
    let mut url = format!("{}/Patient/{id}/_history?_count=2", app.base);
    let mut pages = 0;
    loop {
        let page: Value = app
            .client
            .get(&url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(page["total"], 5, "{page}");
        let entries = page["entry"].as_array().unwrap();
        if pages == 0 {
            assert_eq!(entries[0]["resource"]["meta"]["versionId"], "5", "{page}");
        }
        etags.extend(
            entries
                .iter()
                .map(|e| e["response"]["etag"].as_str().unwrap().to_owned()),
        );
        pages += 1;
        match page["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
        {
            Some(next) => url = next["url"].as_str().unwrap().to_owned(),
            None => break,
        }
    }
    assert_eq!(
        etags,
        ["W/\"5\"", "W/\"4\"", "W/\"3\"", "W/\"2\"", "W/\"1\""]
    );
    assert_eq!(pages, 3);

    // Type history: every change once, newest first, as many as `total` says.
    let mut url = format!("{}/Patient/_history?_count=7", app.base);
    let mut seen = Vec::new();
    let mut total = None;
    loop {
        let page: Value = app
            .client
            .get(&url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        total = total.or(page["total"].as_u64());
        for e in page["entry"].as_array().unwrap() {
            seen.push((
                e["response"]["lastModified"].as_str().unwrap().to_owned(),
                e["fullUrl"].as_str().unwrap().to_owned(),
                e["response"]["etag"].as_str().unwrap().to_owned(),
            ));
        }
        match page["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
        {
            Some(next) => url = next["url"].as_str().unwrap().to_owned(),
            None => break,
        }
    }
    assert_eq!(Some(seen.len() as u64), total);
    assert!(seen.len() > 12, "12 seeded patients and 5 changes");
    assert!(seen.windows(2).all(|w| w[0].0 >= w[1].0), "newest first");
    let distinct: HashSet<_> = seen.iter().map(|(_, url, etag)| (url, etag)).collect();
    assert_eq!(distinct.len(), seen.len(), "no change twice");
}

/// A CarePlan's version follows what it shows (a review written in the clinic changes it), and
/// relapse prevention CarePlans have versions, ETags, vread and history of their own.
async fn care_plan_versions_follow_what_they_show(store: &Store) {
    use iop_gateway::domain::{Id, NonEmptyText, PlanReview, TreatmentPlan};
    let app = spawn_app(store).await;
    let etag_of =
        |response: &reqwest::Response| response.headers()["etag"].to_str().unwrap().to_owned();
    let (_, bundle) = app.get("CarePlan?_count=200").await;
    let plans = bundle["entry"].as_array().unwrap();
    let plan = plans
        .iter()
        .map(|e| &e["resource"])
        .find(|r| r.get("partOf").is_none())
        .unwrap()
        .clone();
    let relapse = plans
        .iter()
        .map(|e| &e["resource"])
        .find(|r| r.get("partOf").is_some())
        .expect("the seeded plans have relapse prevention plans")
        .clone();
    let id = plan["id"].as_str().unwrap();
    let read = app
        .client
        .get(format!("{}/CarePlan/{id}", app.base))
        .send()
        .await
        .unwrap();
    let old_etag = etag_of(&read);

    let plan_id: Id<TreatmentPlan> = Id::from_uuid(id.parse().unwrap());
    let stored = store.get(plan_id).await.unwrap().unwrap();
    store
        .insert(&PlanReview {
            id: Id::generate(),
            plan_id,
            reviewed_on: chrono::NaiveDate::from_ymd_opt(2031, 3, 3).unwrap(),
            reviewer_id: stored.record.author_id,
            summary: NonEmptyText::parse("weekly review").unwrap(),
        })
        .await
        .unwrap();
    let read = app
        .client
        .get(format!("{}/CarePlan/{id}", app.base))
        .send()
        .await
        .unwrap();
    let new_etag = etag_of(&read);
    assert_ne!(
        old_etag, new_etag,
        "a new review changes the CarePlan's version"
    );
    let mut update = plan.clone();
    update.as_object_mut().unwrap().remove("meta");
    let (status, body) = app
        .send(
            Method::PUT,
            &format!("CarePlan/{id}"),
            &update,
            &[("if-match", &old_etag)],
        )
        .await;
    assert_outcome(status, &body, 412);

    // The relapse plan: ETag, vread of its version, history with the current version.
    let relapse_id = relapse["id"].as_str().unwrap();
    let version = relapse["meta"]["versionId"]
        .as_str()
        .expect("a relapse plan has a versionId");
    let read = app
        .client
        .get(format!("{}/CarePlan/{relapse_id}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(etag_of(&read), format!("W/\"{version}\""));
    let (status, vread) = app
        .get(&format!("CarePlan/{relapse_id}/_history/{version}"))
        .await;
    assert_eq!(status, 200, "{vread}");
    assert_eq!(vread["id"], relapse_id);
    let (status, history) = app.get(&format!("CarePlan/{relapse_id}/_history")).await;
    assert_eq!(status, 200, "{history}");
    assert_eq!(
        history["entry"][0]["resource"]["id"], relapse_id,
        "{history}"
    );

    // _summary=count counts what the search returns: treatment and relapse plans.
    let mut walked = 0;
    let mut url = format!("{}/CarePlan?_count=7", app.base);
    loop {
        let page: Value = app
            .client
            .get(&url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        walked += page["entry"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["search"]["mode"] == "match")
            .count();
        match page["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
        {
            Some(next) => url = next["url"].as_str().unwrap().to_owned(),
            None => break,
        }
    }
    let (_, counted) = app.get("CarePlan?_summary=count").await;
    assert_eq!(counted["total"].as_u64(), Some(walked as u64));
    let patient = plan["subject"]["reference"].as_str().unwrap();
    let (_, of_patient) = app.get(&format!("CarePlan?patient={patient}")).await;
    let (_, counted) = app
        .get(&format!("CarePlan?patient={patient}&_summary=count"))
        .await;
    assert_eq!(
        counted["total"].as_u64(),
        Some(of_patient["entry"].as_array().unwrap().len() as u64)
    );
}

/// A stored resource of `resource_type` as an EHR would send it for a new record: no id, no
/// meta, only the given identifier.
async fn as_new(app: &App, resource_type: &str, identifier: Value) -> Value {
    let (_, bundle) = app.get(&format!("{resource_type}?_count=1")).await;
    let mut resource = bundle["entry"][0]["resource"].clone();
    let object = resource.as_object_mut().unwrap();
    object.remove("id");
    object.remove("meta");
    resource["identifier"] = json!([identifier]);
    resource
}

/// Runs `n` copies of a write at once; their statuses and the ids they answered with.
async fn race(
    app: &App,
    n: usize,
    method: Method,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> (Vec<u16>, HashSet<String>) {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (client, url, body) = (
            app.client.clone(),
            format!("{}/{path}", app.base),
            body.clone(),
        );
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let method = method.clone();
        tasks.push(tokio::spawn(async move {
            let mut request = client
                .request(method, url)
                .header("content-type", "application/fhir+json")
                .json(&body);
            for (k, v) in headers {
                request = request.header(k, v);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body["id"].as_str().unwrap_or_default().to_owned())
        }));
    }
    let mut statuses = Vec::new();
    let mut ids = HashSet::new();
    for task in tasks {
        let (status, id) = task.await.unwrap();
        statuses.push(status);
        ids.insert(id);
    }
    (statuses, ids)
}

async fn total(app: &App, resource_type: &str) -> i64 {
    app.get(&format!("{resource_type}?_summary=count")).await.1["total"]
        .as_i64()
        .unwrap()
}

/// An EHR writes with its own identifiers and retries with them: conditional creates and updates
/// match on any identifier a record came with (kept, and returned on reads), alone and inside
/// transactions, and 50 racing writers make exactly one record.
async fn conditional_writes_match_foreign_identifiers(store: &Store) {
    let app = spawn_app(store).await;
    let foreign = |value: &str| json!({ "system": "urn:ietf:rfc:3986", "value": value });

    // 50 racing conditional updates with a foreign identifier: one RelatedPerson.
    let value = format!("urn:uuid:{}", uuid::Uuid::new_v4());
    let contact = as_new(&app, "RelatedPerson", foreign(&value)).await;
    let before = total(&app, "RelatedPerson").await;
    let path = format!("RelatedPerson?identifier=urn:ietf:rfc:3986|{value}");
    let (statuses, ids) = race(&app, 50, Method::PUT, &path, &contact, &[]).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 201),
        "{statuses:?}"
    );
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(total(&app, "RelatedPerson").await, before + 1);
    let id = ids.into_iter().next().unwrap();
    let (_, read) = app.get(&format!("RelatedPerson/{id}")).await;
    assert!(
        read["identifier"]
            .as_array()
            .unwrap()
            .contains(&foreign(&value)),
        "{read}"
    );

    // 50 racing conditional creates of a Consent: one Consent, the rest answer with it.
    let value = format!("urn:uuid:{}", uuid::Uuid::new_v4());
    let consent = as_new(&app, "Consent", foreign(&value)).await;
    let before = total(&app, "Consent").await;
    let condition = format!("identifier=urn:ietf:rfc:3986|{value}");
    let (statuses, ids) = race(
        &app,
        50,
        Method::POST,
        "Consent",
        &consent,
        &[("if-none-exist", &condition)],
    )
    .await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(total(&app, "Consent").await, before + 1);

    // The same by the gateway's own record identifier: 50 racing creates, one RelatedPerson.
    let record_id = uuid::Uuid::now_v7().to_string();
    let system = "https://iop-gateway.org/fhir/clinic/support-contact";
    let mut own = as_new(
        &app,
        "RelatedPerson",
        json!({ "system": system, "value": record_id }),
    )
    .await;
    own["name"] = json!([{ "family": "Racer", "given": ["Pat"] }]);
    let before = total(&app, "RelatedPerson").await;
    let condition = format!("identifier={system}|{record_id}");
    let (statuses, ids) = race(
        &app,
        50,
        Method::POST,
        "RelatedPerson",
        &own,
        &[("if-none-exist", &condition)],
    )
    .await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(ids, HashSet::from([record_id.clone()]));
    assert_eq!(total(&app, "RelatedPerson").await, before + 1);

    // Inside a transaction: PUT Patient?identifier=<another system's MRN>, twice: one Patient.
    let mut patient = new_patient(&app, "EHR-77").await;
    patient["identifier"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "system": "urn:other:mrn", "value": "X-77" }));
    let bundle = json!({ "resourceType": "Bundle", "type": "transaction", "entry": [{
        "resource": patient,
        "request": { "method": "PUT", "url": "Patient?identifier=urn:other:mrn|X-77" }
    }]});
    let before = app.patient_count().await;
    let (status, first) = app.send(Method::POST, "", &bundle, &[]).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        first["entry"][0]["response"]["status"], "201 Created",
        "{first}"
    );
    let (status, second) = app.send(Method::POST, "", &bundle, &[]).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(
        second["entry"][0]["response"]["status"], "200 OK",
        "{second}"
    );
    assert_eq!(
        first["entry"][0]["resource"]["id"],
        second["entry"][0]["resource"]["id"]
    );
    assert_eq!(app.patient_count().await, before + 1);
    // An identifier that already names another record is a conflict, not a second owner.
    let mut other = new_patient(&app, "EHR-78").await;
    other["identifier"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "system": "urn:other:mrn", "value": "X-77" }));
    let (status, body) = app.send(Method::POST, "Patient", &other, &[]).await;
    assert_outcome(status, &body, 409);
    assert_eq!(app.patient_count().await, before + 1);
}

/// A value for search parameter `name` that the sample resource carries, when one is easy to
/// read off it (then the search must find the sample).
fn value_of(sample: &Value, name: &str, kind: &str) -> Option<String> {
    let first_code = |v: &Value| -> Option<String> {
        let v = if v.is_array() { &v[0] } else { v };
        v["coding"][0]["code"]
            .as_str()
            .or(v["code"].as_str())
            .map(str::to_owned)
    };
    match (name, kind) {
        ("_id", _) => sample["id"].as_str().map(str::to_owned),
        ("identifier", _) => Some(format!(
            "{}|{}",
            sample["identifier"][0]["system"].as_str()?,
            sample["identifier"][0]["value"].as_str()?
        )),
        ("patient" | "subject", _) => ["subject", "patient", "for", "beneficiary"]
            .iter()
            .find_map(|k| sample[k]["reference"].as_str())
            .map(str::to_owned),
        ("requester" | "owner", _) => sample[name]["reference"].as_str().map(str::to_owned),
        ("performer", _) => sample[name][0]["reference"].as_str().map(str::to_owned),
        ("status" | "intent" | "gender", _) => sample[name].as_str().map(str::to_owned),
        ("lifecycle-status", _) => sample["lifecycleStatus"].as_str().map(str::to_owned),
        ("category" | "class" | "type" | "relationship", _) => first_code(&sample[name]),
        ("family", _) => sample["name"][0]["family"].as_str().map(str::to_owned),
        ("given", _) => sample["name"][0]["given"][0].as_str().map(str::to_owned),
        ("name", _) => sample["name"][0]["family"].as_str().map(str::to_owned),
        _ => None,
    }
}

/// A well-formed value of a parameter's type (the search must accept it).
fn any_value(kind: &str, name: &str) -> String {
    match (kind, name) {
        (_, "_id") => uuid::Uuid::new_v4().to_string(),
        ("date", _) => "ge2000-01-01".into(),
        ("reference", _) => format!("Patient/{}", uuid::Uuid::new_v4()),
        ("string", _) => "a".into(),
        _ => "urn:example|x".into(),
    }
}

/// The CapabilityStatement cannot drift from the server: every interaction, conditional write,
/// search parameter, include and operation it declares for each type is exercised and works.
async fn every_declared_capability_works(store: &Store) {
    let app = spawn_app(store).await;
    let (_, capability) = app.get("metadata").await;
    let get_strict = |path: String| {
        let app = &app;
        async move {
            let response = app
                .client
                .get(format!("{}/{path}", app.base))
                .header("prefer", "handling=strict")
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let mut exercised = 0;
    for declared in capability["rest"][0]["resource"].as_array().unwrap() {
        // AuditEvent (read and search of the audit trail) is exercised by tests/auth.rs, Bundle
        // (the read of a fulfilled referral's feedback document) by tests/referrals.rs.
        if declared["type"] == "AuditEvent" || declared["type"] == "Bundle" {
            continue;
        }
        let t = declared["type"].as_str().unwrap();
        let (status, bundle) = app.get(&format!("{t}?_count=1")).await;
        assert_eq!(status, 200, "{t}: {bundle}");
        let sample = bundle["entry"][0]["resource"].clone();
        assert_eq!(
            sample["resourceType"], t,
            "{t}: the seeded database has one"
        );
        let id = sample["id"].as_str().unwrap().to_owned();
        let version = sample["meta"]["versionId"].as_str().unwrap().to_owned();
        let own_identifier = sample["identifier"]
            .as_array()
            .unwrap()
            .iter()
            // The clinic's record identifier: a system under identifier_base, the id as value.
            .find(|i| {
                i["system"]
                    .as_str()
                    .unwrap()
                    .starts_with(&MappingConfig::default().identifier_base)
                    && i["value"] == id.as_str()
            })
            .unwrap_or_else(|| panic!("{t} carries its record identifier"))
            .clone();
        let condition = format!("{}|{id}", own_identifier["system"].as_str().unwrap());
        let mut body = sample.clone();
        body.as_object_mut().unwrap().remove("meta");
        for interaction in declared["interaction"].as_array().unwrap() {
            let code = interaction["code"].as_str().unwrap();
            let (status, answer) = match code {
                "read" => app.get(&format!("{t}/{id}")).await,
                "vread" => app.get(&format!("{t}/{id}/_history/{version}")).await,
                "search-type" => app.get(t).await,
                "history-instance" => app.get(&format!("{t}/{id}/_history")).await,
                "history-type" => app.get(&format!("{t}/_history")).await,
                "update" => {
                    app.send(Method::PUT, &format!("{t}/{id}"), &body, &[])
                        .await
                }
                // A referral's two requests, exercised by tests/referrals.rs; plans and goals,
                // the clinic's own applications' to create, by tests/clinic_app.rs.
                "create" if ["ServiceRequest", "Task", "CarePlan", "Goal"].contains(&t) => continue,
                "create" => {
                    let mut new = body.clone();
                    new.as_object_mut().unwrap().remove("id");
                    if t == "Patient" {
                        new = new_patient(&app, "CAP-1").await;
                    } else {
                        // As an EHR sends it: its own identifier, not the clinic's.
                        new["identifier"] = json!([{ "system": "urn:example:ehr", "value": uuid::Uuid::new_v4().to_string() }]);
                    }
                    app.send(Method::POST, t, &new, &[]).await
                }
                other => panic!("{t}: the test does not know interaction {other}"),
            };
            let expected = if code == "create" { 201 } else { 200 };
            assert_eq!(status, expected, "{t} {code}: {answer}");
            exercised += 1;
        }
        if declared["conditionalCreate"] == true && !["CarePlan", "Goal"].contains(&t) {
            let header = format!("identifier={condition}");
            let (status, answer) = app
                .send(Method::POST, t, &body, &[("if-none-exist", &header)])
                .await;
            assert_eq!(status, 200, "{t} conditional create: {answer}");
            assert_eq!(answer["id"], id.as_str());
            exercised += 1;
        }
        if declared["conditionalUpdate"] == true {
            let (status, answer) = app
                .send(
                    Method::PUT,
                    &format!("{t}?identifier={condition}"),
                    &body,
                    &[],
                )
                .await;
            assert_eq!(status, 200, "{t} conditional update: {answer}");
            assert_eq!(answer["id"], id.as_str());
            exercised += 1;
        }
        let (_, sample) = app.get(&format!("{t}/{id}")).await;
        for param in declared["searchParam"].as_array().unwrap() {
            let (name, kind) = (
                param["name"].as_str().unwrap(),
                param["type"].as_str().unwrap(),
            );
            let value = any_value(kind, name);
            let query = serde_urlencoded::to_string([(name, value.as_str())]).unwrap();
            let (status, answer) = get_strict(format!("{t}?{query}")).await;
            assert_eq!(status, 200, "{t}?{name}: {answer}");
            if let Some(value) = value_of(&sample, name, kind) {
                let query =
                    serde_urlencoded::to_string([(name, value.as_str()), ("_count", "1000")])
                        .unwrap();
                let (status, answer) = get_strict(format!("{t}?{query}")).await;
                assert_eq!(status, 200, "{t}?{query}: {answer}");
                let found = answer["entry"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["resource"]["id"] == id.as_str());
                assert!(
                    found,
                    "{t}?{query} does not find the resource it was read off"
                );
            }
            exercised += 1;
        }
        for include in declared["searchInclude"].as_array().unwrap() {
            let (status, answer) =
                get_strict(format!("{t}?_include={}", include.as_str().unwrap())).await;
            assert_eq!(status, 200, "{t} _include {include}: {answer}");
            exercised += 1;
        }
        for include in declared["searchRevInclude"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let (status, answer) = get_strict(format!(
                "{t}?_id={id}&_revinclude={}",
                include.as_str().unwrap()
            ))
            .await;
            assert_eq!(status, 200, "{t} _revinclude {include}: {answer}");
            exercised += 1;
        }
        for operation in declared["operation"].as_array().unwrap() {
            if operation["name"] == "export" {
                // Bulk Data kick-off (the jobs themselves: tests/bulk.rs).
                let path = if t == "Patient" {
                    "Patient/$export".to_owned()
                } else {
                    format!("Group/{id}/$export")
                };
                let response = app
                    .client
                    .get(format!("{}/{path}", app.base))
                    .header("prefer", "respond-async")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 202, "{t} $export");
                exercised += 1;
                continue;
            }
            if operation["name"] == "add-review" {
                // The clinic's own applications' (tests/clinic_app.rs); this client is not one.
                let (status, answer) = app
                    .send(
                        Method::POST,
                        &format!("{t}/{id}/$add-review"),
                        &json!({ "resourceType": "Parameters" }),
                        &[],
                    )
                    .await;
                assert_eq!(status, 403, "{t} $add-review: {answer}");
                exercised += 1;
                continue;
            }
            assert_eq!(operation["name"], "validate");
            let (status, answer) = app
                .send(Method::POST, &format!("{t}/$validate"), &sample, &[])
                .await;
            assert_eq!(status, 200, "{t} $validate: {answer}");
            assert_eq!(answer["resourceType"], "OperationOutcome");
            exercised += 1;
        }
    }
    assert!(exercised > 150, "{exercised} capabilities exercised");
}

/// Every request's work has a bound: a Bundle's entries, and what includes add to a page (cut
/// with a warning entry, never an unbounded page).
async fn work_per_request_is_bounded(store: &Store) {
    let app = spawn_app(store).await;
    let patient = new_patient(&app, "BOUND-1").await;
    let entry = json!({ "resource": patient, "request": { "method": "POST", "url": "Patient" } });
    let bundle = json!({ "resourceType": "Bundle", "type": "batch", "entry": vec![entry; 501] });
    let before = app.patient_count().await;
    let (status, body) = app.send(Method::POST, "", &bundle, &[]).await;
    assert_outcome(status, &body, 413);
    assert_eq!(body["issue"][0]["code"], "too-costly");
    assert_eq!(app.patient_count().await, before, "nothing written");
    let (_, capability) = app.get("metadata").await;
    let documentation = capability["rest"][0]["documentation"].as_str().unwrap();
    assert!(
        documentation.contains("at most 500 entries"),
        "{documentation}"
    );

    // Every revinclude of every patient: more than the 1,000 a page may add (the seeded clinic
    // has about 440 resources about patients; 700 more support contacts, written in the clinic).
    let contact = store
        .page_where::<iop_gateway::domain::SupportContact>(&[], None, 1)
        .await
        .unwrap()
        .remove(0)
        .record;
    let more: Vec<_> = (0..700)
        .map(|_| {
            let mut c = contact.clone();
            c.id = iop_gateway::domain::Id::generate();
            c
        })
        .collect();
    let mut tx = store.begin().await.unwrap();
    tx.insert_many(&more).await.unwrap();
    tx.commit().await.unwrap();
    let types = [
        "Encounter",
        "Goal",
        "CarePlan",
        "RelatedPerson",
        "Consent",
        "EpisodeOfCare",
    ];
    let mut referring = 0;
    for t in types {
        referring += total(&app, t).await;
    }
    assert!(
        referring > 1_000,
        "the seeded clinic has {referring} resources about patients"
    );
    let query: String = types
        .iter()
        .map(|t| format!("&_revinclude={t}:patient"))
        .collect();
    let (status, page) = app.get(&format!("Patient?_count=1000{query}")).await;
    assert_eq!(status, 200, "{page}");
    let entries = page["entry"].as_array().unwrap();
    let included = entries
        .iter()
        .filter(|e| e["search"]["mode"] == "include")
        .count();
    assert_eq!(included, 1_000);
    let warning = entries
        .iter()
        .find(|e| e["search"]["mode"] == "outcome")
        .expect("a warning says the includes were cut");
    assert_eq!(warning["resource"]["issue"][0]["code"], "too-costly");
    // A page small enough gets every include and no warning.
    let (_, patients) = app.get("Patient?_count=1").await;
    let id = patients["entry"][0]["resource"]["id"].as_str().unwrap();
    let (_, small) = app
        .get(&format!("Patient?_id={id}&_revinclude=Encounter:patient"))
        .await;
    let encounters = app
        .get(&format!("Encounter?patient={id}&_summary=count"))
        .await
        .1["total"]
        .as_u64()
        .unwrap();
    let small = small["entry"].as_array().unwrap();
    assert_eq!(
        small
            .iter()
            .filter(|e| e["search"]["mode"] == "include")
            .count() as u64,
        encounters
    );
    assert!(small.iter().all(|e| e["search"]["mode"] != "outcome"));
}

on_both_backends!(
    work_per_request_is_bounded,
    every_declared_capability_works,
    conditional_writes_match_foreign_identifiers,
    history_is_newest_first_paged_and_complete,
    care_plan_versions_follow_what_they_show,
    referral_tasks_carry_intake_decisions,
    plans_and_goals_are_updated_not_created,
    enrollments_are_updated_through_episodes_of_care,
    encounters_are_written_with_their_participants,
    odd_inputs_never_cause_server_errors,
    conditional_writes_by_record_identifier,
    every_request_but_metadata_passes_the_authenticator,
    search_parameters_select_sort_and_include,
    transactions_are_all_or_nothing,
    reads_and_paged_searches,
    invalid_writes_write_nothing,
    concurrent_conditional_creates_make_one_patient,
    concurrent_updates_at_one_version_have_one_winner,
    malformed_requests_get_operation_outcomes,
    validate_operation_reports_issues,
);
