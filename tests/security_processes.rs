//! The secured gateway as separate `iop-gateway serve` processes: the logs of a whole session of
//! API traffic carry none of the seeded names, birth dates, MRNs or tokens; and two replicas on
//! one PostgreSQL database refuse an assertion replayed from one to the other and accept each
//! other's access tokens.

mod common;

use std::path::Path;
use std::process::Command;

use common::process::{Server, gateway, run, start_keeping_logs};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn fixture(name: &str) -> String {
    format!("{}/fixtures/auth/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Seeds `url` and registers client `ehr` (the fixture keys) for every scope.
/// The client acts for the clinic itself (on every client's care team).
async fn prepare(dir: &Path, url: &str, clients: &str) {
    let (ok, _, err) =
        run(gateway(dir).args(["--database-url", url, "seed", "--clients", clients]));
    assert!(ok, "{err}");
    let store = iop_gateway::store::Store::open(url).await.unwrap();
    let clinic = iop_gateway::disclose::clinic_organizations(&store)
        .await
        .unwrap()
        .remove(0);
    store.close().await;
    let (ok, _, err) = run(gateway(dir)
        .args(["--database-url", url, "clients", "add", "ehr", "--jwks"])
        .arg(fixture("client.jwks.json"))
        .args(["--scope", "system/*.cruds system/AuditEvent.rs"])
        .args(["--organization", &clinic]));
    assert!(ok, "{err}");
}

fn serve(dir: &Path, url: &str, extra: &[&str], log_level: &str) -> Command {
    let mut command = gateway(dir);
    command
        .env("IOP_LOG", log_level)
        .args(["--database-url", url, "serve", "--listen", "127.0.0.1:0"])
        .args(extra);
    command
}

/// A client assertion for `ehr`, signed ES384, addressed to `token_url`.
fn assertion(token_url: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    let mut header = Header::new(Algorithm::ES384);
    header.kid = Some("es384".into());
    let key = std::fs::read_to_string(fixture("es384.pem")).unwrap();
    jsonwebtoken::encode(
        &header,
        &json!({"iss": "ehr", "sub": "ehr", "aud": token_url, "exp": now + 240,
                "jti": uuid::Uuid::new_v4().to_string()}),
        &EncodingKey::from_ec_pem(key.as_bytes()).unwrap(),
    )
    .unwrap()
}

async fn exchange(http: &reqwest::Client, server: &Server, assertion: &str) -> (u16, Value) {
    let response = http
        .post(format!("{}/auth/token", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([
                ("grant_type", "client_credentials"),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", assertion),
                ("scope", "system/*.cruds system/AuditEvent.rs"),
            ])
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Reads, searches (with PHI as search values, by GET and POST), history, writes, a transaction,
/// `$validate`, refusals and token requests against a serving process at debug level: none of
/// the seeded or written names, birth dates, MRNs, phone numbers, or the tokens, appear in its logs.
#[tokio::test]
async fn logs_carry_no_names_birth_dates_identifiers_or_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("clinic.db").display());
    prepare(dir.path(), &url, "30").await;
    let (server, logs) = start_keeping_logs(serve(dir.path(), &url, &[], "debug"));
    let http = reqwest::Client::new();
    let signed = assertion(&format!("{}/auth/token", server.base));
    let (status, answer) = exchange(&http, &server, &signed).await;
    assert_eq!(status, 200, "{answer}");
    let token = answer["access_token"].as_str().unwrap().to_owned();
    let fhir = |path: &str| format!("{}/fhir/{path}", server.base);
    let get = |path: String| {
        let request = http.get(fhir(&path)).bearer_auth(&token);
        async move {
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let mut requests = 1;

    // Everything the API serves, type by type: a page, the first few read, one history.
    let mut resources = Vec::new();
    for kind in [
        "Patient",
        "RelatedPerson",
        "Consent",
        "Encounter",
        "EpisodeOfCare",
        "CarePlan",
        "Goal",
        "Task",
        "ServiceRequest",
        "Practitioner",
        "Organization",
        "HealthcareService",
        "Group",
    ] {
        let (status, bundle) = get(format!("{kind}?_count=100")).await;
        assert_eq!(status, 200, "{kind}: {bundle}");
        requests += 1;
        let page: Vec<Value> = bundle["entry"]
            .as_array()
            .unwrap_or_else(|| panic!("seeded {kind}s: {bundle}"))
            .iter()
            .map(|e| e["resource"].clone())
            .collect();
        for resource in page.iter().take(3) {
            let id = resource["id"].as_str().unwrap();
            assert_eq!(get(format!("{kind}/{id}")).await.0, 200);
            assert_eq!(get(format!("{kind}/{id}/_history")).await.0, 200);
            requests += 2;
        }
        resources.extend(page);
    }
    // The PHI among them: people's names, birth dates, identifiers other than record ids, phones.
    let mut phi: Vec<String> = Vec::new();
    for resource in &resources {
        if !["Patient", "RelatedPerson"].contains(&resource["resourceType"].as_str().unwrap()) {
            continue;
        }
        for name in resource["name"].as_array().into_iter().flatten() {
            phi.extend(name["family"].as_str().map(str::to_owned));
            for given in name["given"].as_array().into_iter().flatten() {
                phi.extend(given.as_str().map(str::to_owned));
            }
        }
        phi.extend(resource["birthDate"].as_str().map(str::to_owned));
        for identifier in resource["identifier"].as_array().into_iter().flatten() {
            if identifier["system"]
                .as_str()
                .is_some_and(|s| s.ends_with("/mrn"))
            {
                phi.extend(identifier["value"].as_str().map(str::to_owned));
            }
        }
        for telecom in resource["telecom"].as_array().into_iter().flatten() {
            phi.extend(telecom["value"].as_str().map(str::to_owned));
        }
    }
    let patient = resources
        .iter()
        .find(|r| r["resourceType"] == "Patient")
        .unwrap()
        .clone();
    let family = patient["name"][0]["family"].as_str().unwrap().to_owned();
    let given = patient["name"][0]["given"][0].as_str().unwrap().to_owned();
    let birth = patient["birthDate"].as_str().unwrap().to_owned();
    let mrn = patient["identifier"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["system"].as_str().unwrap().ends_with("/mrn"))
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .to_owned();
    // Searches whose values are PHI, by GET and by POST.
    for query in [
        format!("Patient?name={family}"),
        format!("Patient?family={family}&given={given}"),
        format!("Patient?birthdate={birth}"),
        format!("Patient?identifier=https://iop-gateway.org/fhir/clinic/mrn|{mrn}"),
        format!("RelatedPerson?name={family}"),
    ] {
        assert_eq!(get(query.clone()).await.0, 200, "{query}");
        requests += 1;
    }
    let posted = http
        .post(fhir("Patient/_search"))
        .bearer_auth(&token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([("name", family.as_str()), ("birthdate", birth.as_str())])
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    requests += 1;

    // Writes of a new person, by create, update, conditional update, transaction and $validate.
    let written = [
        "Quillon",
        "Marchbankes",
        "1977-03-14",
        "PHIMRN77314",
        "555-0177",
    ];
    phi.extend(written.iter().map(|s| s.to_string()));
    let person = json!({
        "resourceType": "Patient",
        "identifier": [{"system": "https://iop-gateway.org/fhir/clinic/mrn", "value": written[3]}],
        "name": [{"family": written[1], "given": [written[0]]}],
        "birthDate": written[2], "gender": "female",
        "telecom": [{"system": "phone", "value": written[4]}],
    });
    let send = |method: reqwest::Method, path: String, body: Value| {
        let request = http
            .request(method, fhir(&path))
            .bearer_auth(&token)
            .header("content-type", "application/fhir+json")
            .body(body.to_string());
        async move {
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let (status, created) = send(reqwest::Method::POST, "Patient".into(), person.clone()).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let mut changed = created.clone();
    changed["gender"] = json!("other");
    assert_eq!(
        send(reqwest::Method::PUT, format!("Patient/{id}"), changed)
            .await
            .0,
        200
    );
    let by_mrn = format!(
        "Patient?identifier=https://iop-gateway.org/fhir/clinic/mrn|{}",
        written[3]
    );
    assert_eq!(
        send(reqwest::Method::PUT, by_mrn, person.clone()).await.0,
        200
    );
    let mut refused = person.clone();
    refused["birthDate"] = json!(format!("{} tomorrow", written[2]));
    assert_eq!(
        send(reqwest::Method::POST, "Patient".into(), refused)
            .await
            .0,
        422
    );
    let mut other = person.clone();
    other["identifier"][0]["value"] = json!(format!("{}B", written[3]));
    let transaction = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": other, "request": {"method": "POST", "url": "Patient"}}]});
    assert_eq!(
        send(reqwest::Method::POST, String::new(), transaction)
            .await
            .0,
        200
    );
    let (status, _) = send(reqwest::Method::POST, "Patient/$validate".into(), person).await;
    assert_eq!(status, 200);
    requests += 6;
    // The audit trail of this patient, a forged token, a refused assertion.
    assert_eq!(get(format!("AuditEvent?patient={id}")).await.0, 200);
    let forged = format!("{token}x");
    let response = http
        .get(fhir("Patient"))
        .bearer_auth(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let replayed = exchange(&http, &server, &signed).await;
    assert_eq!(replayed.0, 401);
    requests += 3;

    // The logs of all that: request lines for every request, and no PHI, token or assertion.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    drop(server);
    let logs = logs.lock().unwrap().clone();
    let request_lines = logs.lines().filter(|l| l.contains("\"route\"")).count();
    assert!(
        request_lines >= requests,
        "a log line per request ({request_lines} of {requests}):\n{}",
        &logs[..logs.len().min(2000)]
    );
    phi.sort();
    phi.dedup();
    assert!(
        phi.len() > 60,
        "PHI gathered from the seeded data: {}",
        phi.len()
    );
    let mut found = Vec::new();
    for value in &phi {
        // Whole words, so a given name like "Ann" is not found inside "Announce".
        let pattern = regex::Regex::new(&format!(r"\b{}\b", regex::escape(value))).unwrap();
        if let Some(line) = logs.lines().find(|line| pattern.is_match(line)) {
            found.push(format!("{value:?} in {line}"));
        }
    }
    for secret in [&token, &forged, &signed] {
        if logs.contains(secret.as_str()) || logs.contains(&secret[secret.len() - 20..]) {
            found.push("a token or an assertion".to_owned());
        }
    }
    assert!(found.is_empty(), "PHI in the logs:\n{}", found.join("\n"));
}

/// Two replicas on one PostgreSQL database, behind one public URL: an assertion accepted by one
/// is refused by the other (the seen-`jti` set is the database's), racing replays get exactly one
/// token, and each accepts the other's access tokens.
#[tokio::test]
async fn replicas_share_replay_protection_and_tokens() {
    let Some((url, name)) = common::postgres_url().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path(), &url, "10").await;
    let public = ["--public-url", "https://gateway.clinic.example"];
    let (a, _) = start_keeping_logs(serve(dir.path(), &url, &public, "warn"));
    let (b, _) = start_keeping_logs(serve(dir.path(), &url, &public, "warn"));
    let http = reqwest::Client::new();
    let token_url = "https://gateway.clinic.example/auth/token";

    let once = assertion(token_url);
    let (status, answer) = exchange(&http, &a, &once).await;
    assert_eq!(status, 200, "{answer}");
    let (status, refused) = exchange(&http, &b, &once).await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (401, Some("invalid_client"))
    );

    // The same assertion sent to both at once: one token, never two.
    for _ in 0..10 {
        let racing = assertion(token_url);
        let (x, y) = tokio::join!(exchange(&http, &a, &racing), exchange(&http, &b, &racing));
        let mut statuses = [x.0, y.0];
        statuses.sort();
        assert_eq!(statuses, [200, 401], "{} / {}", x.1, y.1);
    }

    // A token from one replica is good at the other.
    let token = answer["access_token"].as_str().unwrap();
    for server in [&a, &b] {
        let response = http
            .get(format!("{}/fhir/Patient?_count=1", server.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    drop((a, b));
    common::drop_postgres_database(&name).await;
}
