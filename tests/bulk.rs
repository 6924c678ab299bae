//! Bulk Data `$export` over real HTTP on both backends, with the export worker running: kick-off,
//! polling, the manifest, the files (checked against what the same client finds by searching),
//! scopes, consent, `_since`, `_type`, `_typeFilter`, Patient level, cancellation, another
//! client's files, a job taken over after its worker died, and refusals.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use iop_gateway::auth::{AccessTokens, BearerTokens, Scopes};
use iop_gateway::bulk::BulkSettings;
use iop_gateway::domain::{ApiClient, ClientId, KeySource};
use iop_gateway::fhir_api::PublicUrl;
use iop_gateway::http::{AppState, router};
use iop_gateway::mapping::MappingConfig;
use iop_gateway::seed::{self, SeedOptions};
use iop_gateway::store::Store;
use iop_gateway::validation::{Registry, Validator};
use serde_json::{Value, json};

struct Gateway {
    origin: String,
    http: reqwest::Client,
    store: Store,
    tokens: Arc<AccessTokens>,
    exports: tempfile::TempDir,
}

async fn clinic(store: &Store) -> String {
    iop_gateway::disclose::clinic_organizations(store)
        .await
        .unwrap()
        .remove(0)
}

async fn register(store: &Store, name: &str, scopes: &str, organization: Option<String>) {
    store
        .add_api_client(&ApiClient {
            client_id: ClientId::parse(name).unwrap(),
            keys: KeySource::Inline(r#"{"keys":[]}"#.into()),
            scopes: scopes.into(),
            organization_id: organization,
            purpose_of_use: "TREAT".into(),
            enabled: true,
            clinic_app: false,
        })
        .await
        .unwrap();
}

/// A seeded, secured gateway with the export worker, and clients: `ehr` (the clinic's EHR,
/// every read scope), `plans` (CarePlan only), `other` (like `ehr`, another client).
async fn spawn(store: &Store, lease: Duration) -> Gateway {
    spawn_with(store, lease, 40).await
}

async fn spawn_with(store: &Store, lease: Duration, clients: u32) -> Gateway {
    seed::seed(
        store,
        SeedOptions {
            clients,
            seed: 9,
            as_of: chrono::Utc::now().date_naive(),
        },
        |_, _| {},
    )
    .await
    .unwrap();
    let clinic = clinic(store).await;
    register(
        store,
        "ehr",
        "system/*.rs system/AuditEvent.rs",
        Some(clinic.clone()),
    )
    .await;
    register(store, "plans", "system/CarePlan.rs", Some(clinic.clone())).await;
    register(store, "other", "system/*.rs", Some(clinic)).await;
    let exports = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let tokens = Arc::new(AccessTokens::load(store).await.unwrap());
    let state = AppState::new(
        store.clone(),
        Arc::new(Validator::new(Arc::new(Registry::builtin()))),
        Arc::new(MappingConfig::default()),
        Arc::new(BearerTokens::new(Arc::clone(&tokens))),
        PublicUrl::fixed(&origin).unwrap(),
    )
    .with_bulk_worker(BulkSettings {
        dir: exports.path().to_owned(),
        lease,
        poll: Duration::from_millis(100),
        ..Default::default()
    });
    tokio::spawn(async move {
        axum::serve(
            listener,
            router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap()
    });
    Gateway {
        origin,
        http: reqwest::Client::new(),
        store: store.clone(),
        tokens,
        exports,
    }
}

impl Gateway {
    async fn token(&self, client: &str) -> String {
        let registered = self.store.api_client(client).await.unwrap().unwrap();
        self.tokens
            .issue(
                &registered,
                &Scopes::parse_strict(&registered.scopes).unwrap(),
                300,
                chrono::Utc::now().timestamp(),
            )
            .token
    }

    /// Kicks off `path` (`$export?...`); the status URL, or the refusal.
    async fn kick_off(&self, token: &str, path: &str) -> Result<String, (u16, Value)> {
        let response = self
            .http
            .get(format!("{}/fhir/{path}", self.origin))
            .bearer_auth(token)
            .header("accept", "application/fhir+json")
            .header("prefer", "respond-async")
            .send()
            .await
            .unwrap();
        if response.status() != 202 {
            let status = response.status().as_u16();
            return Err((status, response.json().await.unwrap_or(Value::Null)));
        }
        Ok(response.headers()["content-location"]
            .to_str()
            .unwrap()
            .to_owned())
    }

    /// Polls until the manifest comes (202s carry X-Progress and Retry-After), as often as
    /// Retry-After asks.
    async fn manifest(&self, token: &str, status_url: &str) -> Value {
        for _ in 0..100 {
            let response = self
                .http
                .get(status_url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            match response.status().as_u16() {
                202 | 429 => {
                    let wait: u64 = response.headers()["retry-after"]
                        .to_str()
                        .unwrap()
                        .parse()
                        .unwrap();
                    tokio::time::sleep(Duration::from_millis(wait * 1000 + 50)).await;
                }
                200 => return response.json().await.unwrap(),
                other => {
                    let job = status_url.rsplit('/').next().unwrap();
                    let stored = self.store.export_job(job).await.unwrap();
                    panic!(
                        "status {other}: {}\nthe job: {stored:?}",
                        response.text().await.unwrap()
                    )
                }
            }
        }
        panic!("the export did not finish");
    }

    /// Every line of every output file, by type, checked against the manifest's counts.
    async fn files(&self, token: &str, manifest: &Value) -> Vec<(String, Vec<Value>)> {
        let mut out = Vec::new();
        for file in manifest["output"].as_array().unwrap() {
            let url = file["url"].as_str().unwrap();
            assert!(url.starts_with(&self.origin), "absolute: {url}");
            let response = self.http.get(url).bearer_auth(token).send().await.unwrap();
            assert_eq!(response.status(), 200);
            assert_eq!(
                response.headers()["content-type"],
                "application/fhir+ndjson"
            );
            let text = response.text().await.unwrap();
            let lines: Vec<Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(lines.len() as u64, file["count"].as_u64().unwrap());
            let kind = file["type"].as_str().unwrap().to_owned();
            assert!(lines.iter().all(|r| r["resourceType"] == kind.as_str()));
            out.push((kind, lines));
        }
        out
    }

    /// The ids the client finds by searching `query`, following every page.
    async fn searched(&self, token: &str, query: &str) -> BTreeSet<String> {
        let mut ids = BTreeSet::new();
        let mut url = Some(format!("{}/fhir/{query}", self.origin));
        while let Some(next) = url {
            let bundle: Value = self
                .http
                .get(&next)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            for entry in bundle["entry"].as_array().into_iter().flatten() {
                if entry["search"]["mode"] == "match" {
                    ids.insert(entry["resource"]["id"].as_str().unwrap().to_owned());
                }
            }
            url = bundle["link"]
                .as_array()
                .and_then(|links| links.iter().find(|l| l["relation"] == "next"))
                .and_then(|l| l["url"].as_str().map(str::to_owned));
        }
        ids
    }
}

fn ids(lines: &[Value]) -> BTreeSet<String> {
    lines
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// A system export holds exactly what the same client finds by searching, type by type, each
/// resource valid; another client cannot read its status or files; the audit trail has it.
async fn system_export_is_what_the_client_may_see(store: &Store) {
    let gw = spawn(store, Duration::from_secs(30)).await;
    let token = gw.token("ehr").await;
    let status = gw.kick_off(&token, "$export").await.unwrap();
    assert!(status.starts_with(&gw.origin));
    let manifest = gw.manifest(&token, &status).await;
    assert_eq!(manifest["requiresAccessToken"], true);
    assert!(manifest["transactionTime"].as_str().unwrap().len() > 10);
    assert!(
        manifest["request"]
            .as_str()
            .unwrap()
            .ends_with("/fhir/$export")
    );
    assert!(manifest["error"].is_array());
    let files = gw.files(&token, &manifest).await;
    let validator = Validator::new(Arc::new(Registry::builtin()));
    let mut types = Vec::new();
    for (kind, lines) in &files {
        assert_eq!(
            ids(lines),
            gw.searched(&token, &format!("{kind}?_count=500")).await,
            "{kind}: the export holds what a search finds"
        );
        for resource in lines.iter().take(5) {
            let errors: Vec<String> = validator
                .validate(resource, &[])
                .iter()
                .filter(|i| i.is_error())
                .map(|i| format!("{}: {}", i.expression, i.message))
                .collect();
            assert!(errors.is_empty(), "{kind}/{}: {errors:?}", resource["id"]);
        }
        types.push(kind.clone());
    }
    for expected in ["Patient", "CarePlan", "Encounter", "Organization"] {
        assert!(types.contains(&expected.to_owned()), "{types:?}");
    }
    // The clinic's EHR sees no Part 2 client without a consent: fewer Patients than seeded.
    let patients = files.iter().find(|(k, _)| k == "Patient").unwrap().1.len();
    assert!(patients < 40 && patients > 0, "{patients}");
    // Another client: neither the status nor the files.
    let other = gw.token("other").await;
    let response = gw
        .http
        .get(&status)
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let file = manifest["output"][0]["url"].as_str().unwrap();
    let response = gw.http.get(file).bearer_auth(&other).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let response = gw.http.get(file).send().await.unwrap();
    assert_eq!(response.status(), 401);
    // The kick-off and the completion are in the audit trail.
    let audit: Value = gw
        .http
        .get(format!(
            "{}/fhir/AuditEvent?agent=ehr&_count=100",
            gw.origin
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let exports = audit["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["resource"]["outcomeDesc"]
                .as_str()
                .is_some_and(|d| d.contains("wrote") && d.contains("Patient="))
        })
        .count();
    assert_eq!(exports, 1, "the completion names what was written");
}

/// Scopes narrow an export; naming a type the token cannot read is 403.
async fn scopes_narrow_the_export(store: &Store) {
    let gw = spawn(store, Duration::from_secs(30)).await;
    let plans = gw.token("plans").await;
    let status = gw.kick_off(&plans, "$export").await.unwrap();
    let manifest = gw.manifest(&plans, &status).await;
    let types: Vec<&str> = manifest["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["CarePlan"]);
    let refused = gw
        .kick_off(&plans, "$export?_type=Patient")
        .await
        .unwrap_err();
    assert_eq!(refused.0, 403, "{}", refused.1);
}

/// `_since`, `_type`, `_typeFilter` and Patient level narrow what is written.
async fn parameters_narrow_the_export(store: &Store) {
    let gw = spawn(store, Duration::from_secs(30)).await;
    let token = gw.token("ehr").await;
    // _type and _typeFilter.
    let status = gw
        .kick_off(
            &token,
            "$export?_type=CarePlan,Goal&_typeFilter=CarePlan%3Fstatus%3Dactive",
        )
        .await
        .unwrap();
    let files = gw.files(&token, &gw.manifest(&token, &status).await).await;
    let kinds: Vec<&str> = files.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["CarePlan", "Goal"]);
    assert_eq!(
        ids(&files[0].1),
        gw.searched(&token, "CarePlan?status=active&_count=500")
            .await
    );
    assert!(files[0].1.iter().all(|p| p["status"] == "active"));
    // _since: five Patients changed after a point in time are exactly what comes back.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let all_patients = gw.searched(&token, "Patient?_count=500").await;
    let changed: Vec<String> = all_patients.iter().take(5).cloned().collect();
    for id in &changed {
        let url = format!("{}/fhir/Patient/{id}", gw.origin);
        let mut patient: Value = gw
            .http
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        patient["gender"] = json!(if patient["gender"] == "other" {
            "unknown"
        } else {
            "other"
        });
        let writer = gw.token_with("ehr", "system/Patient.cru").await;
        let response = gw
            .http
            .put(&url)
            .bearer_auth(&writer)
            .header("content-type", "application/fhir+json")
            .body(patient.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }
    let since = before.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let status = gw
        .kick_off(
            &token,
            &format!("$export?_type=Patient&_since={}", since.replace('+', "%2B")),
        )
        .await
        .unwrap();
    let files = gw.files(&token, &gw.manifest(&token, &status).await).await;
    assert_eq!(
        ids(&files[0].1),
        changed.into_iter().collect::<BTreeSet<_>>()
    );
    // Patient level for one patient: only that patient's compartment, and no staff.
    let patient = all_patients.iter().next().unwrap().clone();
    let response = gw
        .http
        .post(format!("{}/fhir/Patient/$export", gw.origin))
        .bearer_auth(&token)
        .header("prefer", "respond-async")
        .header("content-type", "application/fhir+json")
        .body(
            json!({"resourceType": "Parameters", "parameter": [
                {"name": "patient", "valueReference": {"reference": format!("Patient/{patient}")}}
            ]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let status = response.headers()["content-location"]
        .to_str()
        .unwrap()
        .to_owned();
    let files = gw.files(&token, &gw.manifest(&token, &status).await).await;
    for (kind, lines) in &files {
        assert!(!["Practitioner", "Organization"].contains(&kind.as_str()));
        for resource in lines {
            assert_eq!(
                iop_gateway::mapping::audit::patients_of(resource),
                std::slice::from_ref(&patient),
                "{kind}"
            );
        }
    }
    assert!(files.iter().any(|(k, _)| k == "Encounter"));

    // Group level: the clients of a therapy group with sessions, and only theirs (a group
    // some of whose clients this client may see).
    use iop_gateway::domain::{Enrollment, Session};
    let sessions = gw.store.page::<Session>(None, 100_000).await.unwrap();
    let visible = gw.searched(&token, "Patient?_count=500").await;
    let mut by_group: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    for session in &sessions {
        if let Some(group) = session.record.group_id {
            let enrollment = gw
                .store
                .get::<Enrollment>(session.record.enrollment_id)
                .await
                .unwrap()
                .unwrap();
            by_group
                .entry(group.to_string())
                .or_default()
                .insert(enrollment.record.client_id.to_string());
        }
    }
    let (group, members) = by_group
        .into_iter()
        .find(|(_, members)| members.iter().any(|m| visible.contains(m)))
        .expect("a seeded group with a client this client may see");
    let status = gw
        .kick_off(
            &token,
            &format!("Group/{group}/$export?_type=Patient,Encounter"),
        )
        .await
        .unwrap();
    let manifest = gw.manifest(&token, &status).await;
    assert!(
        manifest["request"]
            .as_str()
            .unwrap()
            .contains(&format!("/fhir/Group/{group}/$export"))
    );
    let files = gw.files(&token, &manifest).await;
    let exported: BTreeSet<String> = files
        .iter()
        .find(|(k, _)| k == "Patient")
        .map(|(_, lines)| ids(lines))
        .unwrap_or_default();
    assert_eq!(
        exported,
        members
            .intersection(&visible)
            .cloned()
            .collect::<BTreeSet<_>>(),
        "the group's clients this client may see"
    );
    assert!(!exported.is_empty());
    for (_, lines) in &files {
        for resource in lines {
            let patient = iop_gateway::mapping::audit::patients_of(resource);
            assert!(members.contains(&patient[0]));
        }
    }
    let unknown = gw
        .kick_off(&token, &format!("Group/{}/$export", uuid::Uuid::new_v4()))
        .await
        .unwrap_err();
    assert_eq!(unknown.0, 404);
    // Polling much faster than Retry-After asks is 429 (while the export has not finished).
    let status = gw.kick_off(&token, "$export").await.unwrap();
    let first = gw
        .http
        .get(&status)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .status();
    let second = gw
        .http
        .get(&status)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    if first == 202 && second.status() != 200 {
        assert_eq!(second.status(), 429);
        assert!(second.headers().contains_key("retry-after"));
    }
    gw.manifest(&token, &status).await;
}

/// Refusals are OperationOutcomes: no `Prefer: respond-async`, an output format, a parameter
/// under strict handling, `includeAssociatedData`.
async fn bad_kick_offs_are_refused(store: &Store) {
    let gw = spawn(store, Duration::from_secs(30)).await;
    let token = gw.token("ehr").await;
    let response = gw
        .http
        .get(format!("{}/fhir/$export", gw.origin))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400, "no Prefer: respond-async");
    for query in [
        "$export?_outputFormat=text/csv",
        "$export?includeAssociatedData=LatestProvenanceResources",
        "$export?_type=Observation",
        "$export?_since=yesterday",
    ] {
        let (status, outcome) = gw.kick_off(&token, query).await.unwrap_err();
        assert_eq!(status, 400, "{query}");
        assert_eq!(outcome["resourceType"], "OperationOutcome");
    }
    let response = gw
        .http
        .get(format!("{}/fhir/$export?foo=bar", gw.origin))
        .bearer_auth(&token)
        .header("prefer", "respond-async, handling=strict")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        400,
        "strict handling refuses what it would ignore"
    );
    // Leniently, the same parameter is reported in the manifest's error file.
    let status = gw
        .kick_off(&token, "$export?_type=Group&foo=bar")
        .await
        .unwrap();
    let manifest = gw.manifest(&token, &status).await;
    let error = manifest["error"][0]["url"].as_str().unwrap();
    let text = gw
        .http
        .get(error)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("foo"), "{text}");
}

/// A cancelled export answers 404 and its files are gone; a job whose worker died (its lease
/// lapsed) is taken over and finished.
async fn cancelled_and_abandoned_jobs(store: &Store) {
    let gw = spawn(store, Duration::from_millis(400)).await;
    let token = gw.token("ehr").await;
    let status = gw.kick_off(&token, "$export").await.unwrap();
    let manifest = gw.manifest(&token, &status).await;
    let job = status.rsplit('/').next().unwrap().to_owned();
    assert!(gw.exports.path().join(&job).exists());
    let response = gw
        .http
        .delete(&status)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let response = gw
        .http
        .get(&status)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.json::<Value>().await.unwrap()["resourceType"],
        "OperationOutcome"
    );
    let file = manifest["output"][0]["url"].as_str().unwrap();
    assert_eq!(
        gw.http
            .get(file)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert!(!gw.exports.path().join(&job).exists());
    // A worker claims a job and dies (when it wins the race with the gateway's worker): its
    // lease lapses and the running worker takes the job over and finishes it. The lease logic
    // itself is tested deterministically in `leases_decide_who_runs_a_job`.
    let status = gw.kick_off(&token, "$export?_type=Patient").await.unwrap();
    let job = status.rsplit('/').next().unwrap();
    let died = store
        .claim_export_job("a-worker-that-died", Duration::from_millis(1))
        .await
        .unwrap();
    let manifest = gw.manifest(&token, &status).await;
    assert!(manifest["output"][0]["count"].as_u64().unwrap() > 0);
    let finished = store.export_job(job).await.unwrap().unwrap();
    if died.is_some() {
        assert_eq!(
            finished.attempts, 2,
            "taken over after the dead worker's lease lapsed"
        );
    }
}

impl Gateway {
    async fn token_with(&self, client: &str, scopes: &str) -> String {
        let registered = self.store.api_client(client).await.unwrap().unwrap();
        let mut writer = registered.clone();
        writer.scopes = scopes.into();
        self.tokens
            .issue(
                &writer,
                &Scopes::parse_strict(scopes).unwrap(),
                300,
                chrono::Utc::now().timestamp(),
            )
            .token
    }
}

/// The lease decides who runs a job: one claimant of many wins; a held lease is not taken; a
/// lapsed one is (the holder died), and the old holder can then neither renew nor finish it.
async fn leases_decide_who_runs_a_job(store: &Store) {
    use iop_gateway::domain::Timestamp;
    use iop_gateway::store::{ExportJob, JobState};
    let job = |id: String| ExportJob {
        id,
        client_id: "ehr".into(),
        organization_id: None,
        purpose_of_use: None,
        scopes: "system/*.rs".into(),
        open_access: false,
        request: "http://x/fhir/$export".into(),
        params: "{}".into(),
        state: JobState::Queued,
        transaction_time: Timestamp::now(),
        created_at: Timestamp::now(),
        attempts: 0,
        progress: None,
        manifest: None,
        error: None,
        expires_at: None,
    };
    let id = uuid::Uuid::new_v4().to_string();
    store.insert_export_job(&job(id.clone())).await.unwrap();
    let lease = Duration::from_millis(300);
    // Eight claimants at once: exactly one wins.
    let claims = futures_join(store, lease).await;
    assert_eq!(claims.iter().filter(|c| c.is_some()).count(), 1);
    let first = claims.into_iter().flatten().next().unwrap();
    assert_eq!(first.0, id);
    let holder = first.1;
    assert!(
        store.claim_export_job("b", lease).await.unwrap().is_none(),
        "held"
    );
    assert!(
        store
            .renew_export_lease(&id, &holder, lease, "p")
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    let taken = store.claim_export_job("b", lease).await.unwrap().unwrap();
    assert_eq!((taken.id.as_str(), taken.attempts), (id.as_str(), 2));
    assert!(
        !store
            .renew_export_lease(&id, &holder, lease, "p")
            .await
            .unwrap()
    );
    let expires = Timestamp::now();
    assert!(
        !store
            .finish_export_job(&id, &holder, Ok("{}".into()), expires)
            .await
            .unwrap()
    );
    assert!(
        store
            .finish_export_job(&id, "b", Ok("{}".into()), expires)
            .await
            .unwrap()
    );
    assert_eq!(
        store.export_job(&id).await.unwrap().unwrap().state,
        JobState::Done
    );
    assert!(store.claim_export_job("c", lease).await.unwrap().is_none());
}

/// Eight claims of the one queued job at once: (job id, holder) of each that won.
async fn futures_join(store: &Store, lease: Duration) -> Vec<Option<(String, String)>> {
    let mut handles = Vec::new();
    for n in 0..8 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let holder = format!("claimant-{n}");
            store
                .claim_export_job(&holder, lease)
                .await
                .unwrap()
                .map(|j| (j.id, holder))
        }));
    }
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

/// 1,000 seeded clients: every type's line count (and ids) equal what the same client finds by
/// searching the API (the database's records as the consent gate lets this client see them).
async fn a_thousand_clients(store: &Store) {
    let gw = spawn_with(store, Duration::from_secs(30), 1_000).await;
    let token = gw.token("ehr").await;
    let status = gw.kick_off(&token, "$export").await.unwrap();
    let manifest = gw.manifest(&token, &status).await;
    let files = gw.files(&token, &manifest).await;
    assert!(files.len() >= 10, "{}", files.len());
    let mut total = 0;
    for (kind, lines) in &files {
        let searched = gw.searched(&token, &format!("{kind}?_count=1000")).await;
        assert_eq!(ids(lines), searched, "{kind}");
        total += lines.len();
    }
    assert!(total > 20_000, "{total} resources");
}

/// Every stored record of a type.
async fn every<R: iop_gateway::store::Record>(store: &Store) -> Vec<iop_gateway::store::Stored<R>> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = store.page::<R>(after, 500).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.record.id());
        all.extend(page);
    }
    all
}

/// Gives every session a random id, as real data has them (time-ordered as they were
/// written, a client's among everyone else's), where seeded ids keep each client's together.
async fn scatter_session_ids(store: &Store) {
    use iop_gateway::domain::{Id, Session, SessionParticipant};
    let sessions = every::<Session>(store).await;
    let participants = every::<SessionParticipant>(store).await;
    let mut tx = store.begin().await.unwrap();
    let mut moved = std::collections::HashMap::new();
    for old in &sessions {
        let session = Session {
            id: Id::from_uuid(uuid::Uuid::new_v4()),
            ..old.record.clone()
        };
        tx.insert(&session).await.unwrap();
        moved.insert(old.record.id, session.id);
    }
    for p in &participants {
        let participant = SessionParticipant {
            session_id: moved[&p.record.session_id],
            ..p.record.clone()
        };
        tx.update(&participant, p.meta.version).await.unwrap();
    }
    tx.commit().await.unwrap();
    // Moving a participant bumped its old session's version: delete at the current one.
    let old_ids: Vec<_> = sessions.iter().map(|s| s.record.id).collect();
    let mut tx = store.begin().await.unwrap();
    for chunk in old_ids.chunks(500) {
        for old in store.get_many(chunk).await.unwrap() {
            tx.delete(old.record.id, old.meta.version).await.unwrap();
        }
    }
    tx.commit().await.unwrap();
}

/// Sessions whose ids do not follow their clients (as in real data): the export, paged in
/// owner order over ranges of enrollments, still holds every session the client may see,
/// once.
async fn ids_in_write_order_export_whole(store: &Store) {
    let gw = spawn_with(store, Duration::from_secs(30), 200).await;
    scatter_session_ids(store).await;
    let token = gw.token("ehr").await;
    let status = gw
        .kick_off(&token, "$export?_type=Encounter")
        .await
        .unwrap();
    let manifest = gw.manifest(&token, &status).await;
    let files = gw.files(&token, &manifest).await;
    let (_, lines) = files.iter().find(|(k, _)| k == "Encounter").unwrap();
    let exported = ids(lines);
    assert_eq!(exported.len(), lines.len(), "each session once");
    assert!(lines.len() > 1_000, "{} sessions", lines.len());
    assert_eq!(exported, gw.searched(&token, "Encounter?_count=1000").await);
    // The ids really are scattered: the file, written in owner order, is not in id order.
    let in_file: Vec<&str> = lines.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert!(
        !in_file.is_sorted(),
        "the sessions' ids follow their owners"
    );
}

/// Identifiers other systems gave records (kept by the API's writes and referral intake) ride
/// on the exported resources, though the export asks only once per table whether there are
/// any, where the API looks them up on every page.
async fn identifiers_from_other_systems_ride_along(store: &Store) {
    use iop_gateway::domain::{Client, ExternalIdentifier, Session};
    use iop_gateway::store::Record;
    let gw = spawn_with(store, Duration::from_secs(30), 40).await;
    let token = gw.token("ehr").await;
    let patient = gw
        .searched(&token, "Patient?_count=1000")
        .await
        .pop_first()
        .unwrap();
    let encounter = gw
        .searched(&token, "Encounter?_count=1000")
        .await
        .pop_first()
        .unwrap();
    let given = |value: &str| ExternalIdentifier {
        system: "urn:oid:2.16.840.1.113883.3.4242".into(),
        value: value.into(),
    };
    let mut tx = store.begin().await.unwrap();
    tx.set_identifiers(Client::TABLE, &patient, &[given("MRN-7")])
        .await
        .unwrap();
    tx.set_identifiers(Session::TABLE, &encounter, &[given("VISIT-9")])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let status = gw
        .kick_off(&token, "$export?_type=Patient,Encounter,EpisodeOfCare")
        .await
        .unwrap();
    let files = gw.files(&token, &gw.manifest(&token, &status).await).await;
    let carrying = |kind: &str, value: &str| -> Vec<String> {
        let (_, lines) = files.iter().find(|(k, _)| k == kind).unwrap();
        lines
            .iter()
            .filter(|r| {
                r["identifier"].as_array().into_iter().flatten().any(|i| {
                    i["system"] == "urn:oid:2.16.840.1.113883.3.4242" && i["value"] == value
                })
            })
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(carrying("Patient", "MRN-7"), vec![patient]);
    assert_eq!(carrying("Encounter", "VISIT-9"), vec![encounter]);
    // A table with none: its file is whole all the same.
    let (_, episodes) = files.iter().find(|(k, _)| k == "EpisodeOfCare").unwrap();
    assert_eq!(
        ids(episodes),
        gw.searched(&token, "EpisodeOfCare?_count=1000").await
    );
}

on_both_backends!(
    identifiers_from_other_systems_ride_along,
    a_thousand_clients,
    ids_in_write_order_export_whole,
    leases_decide_who_runs_a_job,
    system_export_is_what_the_client_may_see,
    scopes_narrow_the_export,
    parameters_narrow_the_export,
    bad_kick_offs_are_refused,
    cancelled_and_abandoned_jobs
);

/// `kill -9` of the process running an export: started again, it takes the job over once the
/// lease lapses, and the manifest is complete — the same counts as a fresh export of the same
/// data.
#[tokio::test]
async fn an_export_survives_kill_dash_nine() {
    use common::process::{gateway, run, start_keeping_logs};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("clinic.db").display());
    let (ok, _, err) =
        run(gateway(dir.path()).args(["--database-url", &url, "seed", "--clients", "600"]));
    assert!(ok, "{err}");
    let store = Store::open(&url).await.unwrap();
    let clinic = clinic(&store).await;
    let jwks = format!(
        "{}/fixtures/auth/client.jwks.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let (ok, _, err) = run(gateway(dir.path()).args([
        "--database-url",
        &url,
        "clients",
        "add",
        "ehr",
        "--jwks",
        &jwks,
        "--scope",
        "system/*.rs",
        "--organization",
        &clinic,
    ]));
    assert!(ok, "{err}");
    let (ok, out, err) =
        run(gateway(dir.path()).args(["--database-url", &url, "token", "--client", "ehr"]));
    assert!(ok, "{err}");
    let token = out.lines().last().unwrap().trim().to_owned();
    let serve = || {
        let mut command = gateway(dir.path());
        command.args([
            "--database-url",
            &url,
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--export-lease-seconds",
            "2",
        ]);
        command.arg("--export-dir").arg(dir.path().join("exports"));
        start_keeping_logs(command).0
    };
    let http = reqwest::Client::new();
    let kick_off = |base: String| {
        let request = http
            .get(format!("{base}/fhir/$export"))
            .bearer_auth(&token)
            .header("prefer", "respond-async");
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 202);
            response.headers()["content-location"]
                .to_str()
                .unwrap()
                .to_owned()
        }
    };
    let poll = |status: String| {
        let request = http.get(status).bearer_auth(&token);
        async move {
            let response = request.send().await.unwrap();
            let progress = response
                .headers()
                .get("x-progress")
                .map(|p| p.to_str().unwrap().to_owned());
            (
                response.status().as_u16(),
                progress,
                response.text().await.unwrap(),
            )
        }
    };
    let first = serve();
    let status = kick_off(first.base.clone()).await;
    // Wait until it is writing, then kill -9 the process.
    let mut running = false;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        let (code, progress, _) = poll(status.clone()).await;
        if code == 202 && progress.is_some_and(|p| p.contains("written")) {
            running = true;
            break;
        }
        assert_ne!(
            code, 200,
            "the export finished before it could be killed: make it bigger"
        );
    }
    assert!(running, "the export started");
    drop(first); // SIGKILL: no shutdown, the lease is left to lapse
    let second = serve();
    // The status URL names the first process's address; the job is the same on the second.
    let job = status.rsplit('/').next().unwrap().to_owned();
    let again = format!("{}/bulk/{job}", second.base);
    let mut manifest = Value::Null;
    for _ in 0..300 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        let (code, _, body) = poll(again.clone()).await;
        if code == 200 {
            manifest = serde_json::from_str(&body).unwrap();
            break;
        }
        assert!([202, 429].contains(&code), "{code}: {body}");
    }
    assert!(
        manifest.is_object(),
        "the export finished after the restart"
    );
    let attempts = store.export_job(&job).await.unwrap().unwrap().attempts;
    assert_eq!(attempts, 2, "run again after the kill");
    // A fresh export of the same data has the same counts, and the files hold what they say.
    let fresh_status = kick_off(second.base.clone()).await;
    let mut fresh = Value::Null;
    for _ in 0..300 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        let (code, _, body) = poll(fresh_status.clone()).await;
        if code == 200 {
            fresh = serde_json::from_str(&body).unwrap();
            break;
        }
    }
    let counts = |m: &Value| -> Vec<(String, u64)> {
        m["output"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["type"].as_str().unwrap().to_owned(),
                    f["count"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(counts(&manifest), counts(&fresh));
    for file in manifest["output"].as_array().unwrap() {
        let url = file["url"].as_str().unwrap().replace(
            status.trim_end_matches(&format!("/bulk/{job}")),
            &second.base,
        );
        let text = http
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(
            text.lines().count() as u64,
            file["count"].as_u64().unwrap(),
            "{url}"
        );
    }
    drop(second);
    store.close().await;
}
