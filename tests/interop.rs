//! Interoperability: FHIR client libraries this project did not write drive the running gateway
//! over HTTP from their own processes — `fhir-kit-client` (npm) and `fhirpy` (PyPI): metadata,
//! read, search following every page, create, conditional update, transaction, each with an
//! access token (the gateway is closed by default); and `smart-fetch` (PyPI), a SMART Backend
//! Services client, which gets its own token at the token endpoint with an assertion it signs
//! (a PEM key, named by its RFC 7638 thumbprint) and then reads and crawls. The scripts are in
//! `tests/interop/`; `.ci/run` installs the libraries (`npm ci`, a Python venv in target/).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use iop_gateway::auth::grant::TokenService;
use iop_gateway::auth::keys::KeyCache;
use iop_gateway::auth::{AccessTokens, BearerTokens, Scopes};
use iop_gateway::domain::{ApiClient, ClientId, KeySource};
use iop_gateway::fhir_api::PublicUrl;
use iop_gateway::http::{AppState, router};
use iop_gateway::mapping::MappingConfig;
use iop_gateway::outbound::Outbound;
use iop_gateway::seed::{self, SeedOptions};
use iop_gateway::store::Store;
use iop_gateway::validation::{Registry, Validator};
use serde_json::Value;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> PathBuf {
    std::env::var_os("IOP_INTEROP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/interop-venv/bin/python"))
}

/// The interpreter and script of each token-carrying client.
fn clients() -> Vec<(&'static str, PathBuf, PathBuf)> {
    vec![
        (
            "fhir-kit-client",
            PathBuf::from("node"),
            repo().join("tests/interop/fhir-kit-client.mjs"),
        ),
        (
            "fhirpy",
            python(),
            repo().join("tests/interop/fhirpy_client.py"),
        ),
    ]
}

fn smart_fetch() -> PathBuf {
    python().with_file_name("smart-fetch")
}

/// Why the clients cannot run here, if they cannot.
fn installed() -> Result<(), String> {
    if !repo()
        .join("tests/interop/node_modules/fhir-kit-client")
        .exists()
    {
        return Err("fhir-kit-client is not installed (npm ci --prefix tests/interop)".into());
    }
    let fhirpy = Command::new(python())
        .args(["-c", "import fhirpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    let smart_fetch = common::runs(smart_fetch());
    if !fhirpy || !smart_fetch {
        return Err(format!(
            "fhirpy or smart-fetch is missing beside {} (python3 -m venv target/interop-venv && target/interop-venv/bin/pip install -r tests/interop/requirements.txt)",
            python().display()
        ));
    }
    Ok(())
}

fn fixture(name: &str) -> PathBuf {
    repo().join("fixtures/auth").join(name)
}

/// A secured gateway (SMART Backend Services) on a seeded store, with client `interop`
/// registered for every scope. Returns the FHIR base URL.
async fn spawn_secured(store: &Store) -> String {
    seed::seed(
        store,
        SeedOptions {
            clients: 12,
            seed: 11,
            as_of: chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
        },
        |_, _| {},
    )
    .await
    .unwrap();
    store
        .add_api_client(&ApiClient {
            client_id: ClientId::parse("interop").unwrap(),
            keys: KeySource::Inline(std::fs::read_to_string(fixture("client.jwks.json")).unwrap()),
            scopes: "system/*.cruds".into(),
            organization_id: iop_gateway::disclose::clinic_organizations(store)
                .await
                .unwrap()
                .into_iter()
                .next(),
            purpose_of_use: "TREAT".into(),
            enabled: true,
            clinic_app: false,
        })
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let tokens = Arc::new(AccessTokens::load(store).await.unwrap());
    let service = TokenService::new(
        store.clone(),
        KeyCache::new(Outbound::new()),
        Arc::clone(&tokens),
        300,
    );
    let state = AppState::new(
        store.clone(),
        Arc::new(Validator::new(Arc::new(Registry::builtin()))),
        Arc::new(MappingConfig::default()),
        Arc::new(BearerTokens::new(tokens)),
        PublicUrl::fixed(&origin).unwrap(),
    )
    .with_tokens(Arc::new(service))
    .with_bulk_worker(iop_gateway::bulk::BulkSettings {
        // Kept for the life of the test process (the worker writes there until it ends).
        dir: tempfile::tempdir().unwrap().keep(),
        poll: std::time::Duration::from_millis(100),
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
    format!("{origin}/fhir")
}

/// Runs a client process off the async runtime; panics with its output unless it succeeds.
async fn run(name: &str, mut command: Command) -> String {
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{name}: cannot start: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{name} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

async fn client_libraries_read_search_and_write(store: &Store) {
    if let Err(reason) = installed() {
        assert!(!common::in_ci(), "CI=true but {reason}");
        common::say(&format!("skipping interoperability test: {reason}"));
        return;
    }
    let base = spawn_secured(store).await;
    let registered = store.api_client("interop").await.unwrap().unwrap();
    let token = AccessTokens::load(store)
        .await
        .unwrap()
        .issue(
            &registered,
            &Scopes::parse_strict("system/*.cruds").unwrap(),
            300,
            chrono::Utc::now().timestamp(),
        )
        .token;
    for (name, interpreter, script) in clients() {
        let mut command = Command::new(interpreter);
        command.arg(script).arg(&base).arg(&token);
        common::say(run(name, command).await.trim());
    }
}

/// smart-fetch authenticates as SMART Backend Services (discovery, a signed assertion, a token)
/// and reads one resource, then crawls one patient's records type by type (smart-fetch crawls
/// only the types it knows: Patient, Encounter, EpisodeOfCare among ours).
async fn smart_fetch_authenticates_reads_and_crawls(store: &Store) {
    if let Err(reason) = installed() {
        assert!(!common::in_ci(), "CI=true but {reason}");
        common::say(&format!("skipping smart-fetch test: {reason}"));
        return;
    }
    let base = spawn_secured(store).await;
    let auth = |command: &mut Command| {
        command
            .args(["--smart-client-id", "interop", "--smart-key"])
            .arg(fixture("es384.pem"))
            .args(["--fhir-url", &base]);
    };
    // A client with a treatment plan, so enrolled, with sessions for the crawl to find.
    let patient = first_patient_with_a_plan(store).await;

    let mut single = Command::new(smart_fetch());
    single.args(["single", &format!("Patient/{patient}"), "--compact"]);
    auth(&mut single);
    let read: Value = serde_json::from_str(run("smart-fetch single", single).await.trim())
        .expect("smart-fetch printed the Patient");
    assert_eq!(read["resourceType"], "Patient");
    assert_eq!(read["id"], patient.as_str());

    let out = tempfile::tempdir().unwrap();
    let mut crawl = Command::new(smart_fetch());
    crawl.arg("crawl").arg(out.path()).args([
        "--id-list",
        &patient,
        "--type",
        "Patient,Encounter,EpisodeOfCare",
        "--no-compression",
    ]);
    auth(&mut crawl);
    run("smart-fetch crawl", crawl).await;
    // smart-fetch records failures in error/ and still exits 0: that folder must not exist.
    assert!(
        !out.path().join("error").exists(),
        "smart-fetch wrote errors: {:?}",
        std::fs::read_dir(out.path().join("error")).map(|d| d.count())
    );
    let mut found: std::collections::BTreeMap<String, usize> = Default::default();
    for file in walk(out.path()) {
        // Resource files are named by type (Patient.ndjson...); smart-fetch also logs to ndjson.
        let by_type = file
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(|c: char| c.is_ascii_uppercase()));
        if by_type && file.extension().is_some_and(|e| e == "ndjson") {
            for line in std::fs::read_to_string(&file).unwrap().lines() {
                let resource: Value = serde_json::from_str(line).unwrap();
                let kind = resource["resourceType"].as_str().unwrap().to_owned();
                if kind == "Encounter" {
                    assert_eq!(
                        resource["subject"]["reference"],
                        format!("Patient/{patient}").as_str()
                    );
                }
                *found.entry(kind).or_default() += 1;
            }
        }
    }
    assert_eq!(found.get("Patient"), Some(&1), "{found:?}");
    assert!(
        found.get("EpisodeOfCare").is_some_and(|n| *n >= 1),
        "{found:?}"
    );
    assert!(found.get("Encounter").is_some_and(|n| *n >= 1), "{found:?}");
    common::say(&format!("smart-fetch: ok ({found:?})"));
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// A client with a plan in a program that is not a Part 2 program (the clinic's EHR sees such a
/// client's records without a consent).
async fn first_patient_with_a_plan(store: &Store) -> String {
    use iop_gateway::domain::{Enrollment, Program, TreatmentPlan};
    for plan in store.page::<TreatmentPlan>(None, 1000).await.unwrap() {
        let enrollment = store
            .get::<Enrollment>(plan.record.enrollment_id)
            .await
            .unwrap()
            .unwrap();
        let program = store
            .get::<Program>(enrollment.record.program_id)
            .await
            .unwrap()
            .unwrap();
        let client = enrollment.record.client_id;
        let of_client = iop_gateway::store::Filter::equals(
            "client_id",
            iop_gateway::store::SqlValue::id(client),
        );
        let mut part2 = program.record.part2;
        for other in store
            .page_where::<Enrollment>(&[of_client], None, 100)
            .await
            .unwrap()
        {
            let program = store.get::<Program>(other.record.program_id).await.unwrap();
            part2 |= program.is_some_and(|p| p.record.part2);
        }
        if !part2 {
            return client.to_string();
        }
    }
    panic!("a seeded client outside Part 2 programs")
}

/// smart-fetch's Bulk Data client: kick-off, polling, download of every file, with its own
/// SMART Backend Services token; what it wrote is what a search finds.
async fn smart_fetch_bulk_exports(store: &Store) {
    if let Err(reason) = installed() {
        assert!(!common::in_ci(), "CI=true but {reason}");
        common::say(&format!("skipping smart-fetch bulk test: {reason}"));
        return;
    }
    let base = spawn_secured(store).await;
    let out = tempfile::tempdir().unwrap();
    let mut bulk = Command::new(smart_fetch());
    bulk.arg("bulk")
        .arg(out.path())
        .args(["--type", "Patient,Encounter,EpisodeOfCare"])
        .args(["--smart-client-id", "interop", "--smart-key"])
        .arg(fixture("es384.pem"))
        .args(["--fhir-url", &base]);
    run("smart-fetch bulk", bulk).await;
    assert!(
        !out.path().join("error").exists(),
        "smart-fetch recorded errors"
    );
    let mut found: std::collections::BTreeMap<String, usize> = Default::default();
    for file in walk(out.path()) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with(|c: char| c.is_ascii_uppercase()) || !name.ends_with(".ndjson.gz") {
            continue;
        }
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(std::fs::File::open(&file).unwrap()),
            &mut text,
        )
        .unwrap();
        for line in text.lines() {
            let resource: Value = serde_json::from_str(line).unwrap();
            *found
                .entry(resource["resourceType"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    // What the same client finds by searching.
    let registered = store.api_client("interop").await.unwrap().unwrap();
    let token = AccessTokens::load(store)
        .await
        .unwrap()
        .issue(
            &registered,
            &Scopes::parse_strict("system/*.rs").unwrap(),
            300,
            chrono::Utc::now().timestamp(),
        )
        .token;
    for kind in ["Patient", "Encounter", "EpisodeOfCare"] {
        let bundle: Value = reqwest::Client::new()
            .get(format!("{base}/{kind}?_summary=count"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let expected = bundle["total"].as_u64().unwrap() as usize;
        assert_eq!(
            found.get(kind).copied().unwrap_or(0),
            expected,
            "{kind}: {found:?}"
        );
        assert!(expected > 0);
    }
    common::say(&format!("smart-fetch bulk: ok ({found:?})"));
}

on_both_backends!(
    smart_fetch_bulk_exports,
    client_libraries_read_search_and_write,
    smart_fetch_authenticates_reads_and_crawls
);
