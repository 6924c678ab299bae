//! The `iop-gateway` binary as a user runs it: real processes, real files, real HTTP.

mod common;

use std::path::Path;
use std::process::Command;

use common::process::{gateway, run, start};

#[test]
fn help_lists_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, _) = run(gateway(dir.path()).arg("--help"));
    assert!(ok);
    for word in [
        "migrate",
        "seed",
        "serve",
        "demo",
        "--database-url",
        "IOP_DATABASE_URL",
        "iop-gateway.toml",
    ] {
        assert!(out.contains(word), "--help mentions {word}:\n{out}");
    }
}

/// The foundation issue's check, as written: `seed --clients 1000` succeeds, and a second run adds
/// nothing and says so.
fn seed_twice(dir: &Path, url: &str) {
    let args = ["--database-url", url, "seed", "--clients", "1000"];
    let (ok, out, err) = run(gateway(dir).args(args));
    assert!(ok, "{err}");
    assert!(out.starts_with("seeded 1000 clients"), "{out}");
    let (ok, out, _) = run(gateway(dir).args(args));
    assert!(
        ok && out.contains("already seeded with --clients 1000 --seed 42"),
        "{out}"
    );
}

#[test]
fn seed_twice_on_sqlite_adds_nothing_the_second_time() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("x.db").display());
    seed_twice(dir.path(), &url);
    let (ok, _, err) =
        run(gateway(dir.path()).args(["--database-url", &url, "seed", "--clients", "30"]));
    assert!(!ok);
    assert!(
        err.starts_with("error: this database was already seeded"),
        "{err}"
    );
}

#[test]
fn bad_input_gets_one_clear_line_and_a_failure_status() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[&[&str]] = &[
        &["--database-url", "mysql://x", "migrate"],
        &[
            "--database-url",
            "postgres://nobody@127.0.0.1:1/none",
            "migrate",
        ],
        &["seed", "--clients", "5"],
        &[
            "--database-url",
            "sqlite:///nonexistent-dir/x/y.db",
            "migrate",
        ],
    ];
    for args in cases {
        let (ok, _, err) = run(gateway(dir.path()).args(*args));
        assert!(!ok, "{args:?} should fail");
        let lines: Vec<_> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{args:?}: one line, got:\n{err}");
        assert!(lines[0].starts_with("error: "), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    let (ok, _, err) = run(gateway(dir.path()).args([
        "--database-url",
        "postgres://u:secret@127.0.0.1:1/x",
        "migrate",
    ]));
    assert!(
        !ok && !err.contains("secret") && err.contains("u:***@"),
        "passwords are not shown: {err}"
    );
    let (ok, _, err) = run(gateway(dir.path()).args(["seed", "--clients", "lots"]));
    assert!(!ok && err.contains("invalid value"), "{err}");
}

#[test]
fn flags_beat_environment_beat_config_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("iop-gateway.toml"),
        "database_url = \"sqlite://from-file.db\"\n",
    )
    .unwrap();
    assert!(run(gateway(dir.path()).arg("migrate")).0);
    assert!(dir.path().join("from-file.db").exists());
    assert!(
        run(gateway(dir.path())
            .env("IOP_DATABASE_URL", "sqlite://from-env.db")
            .arg("migrate"))
        .0
    );
    assert!(dir.path().join("from-env.db").exists());
    let (ok, out, _) = run(gateway(dir.path())
        .env("IOP_DATABASE_URL", "sqlite://from-env.db")
        .args(["--database-url", "sqlite://from-flag.db", "migrate"]));
    assert!(ok && out.contains("from-flag.db"), "{out}");
    assert!(dir.path().join("from-flag.db").exists());

    std::fs::write(
        dir.path().join("iop-gateway.toml"),
        "databse_url = \"typo\"\n",
    )
    .unwrap();
    let (ok, _, err) = run(gateway(dir.path()).arg("migrate"));
    assert!(
        !ok && err.contains("iop-gateway.toml") && err.contains("databse_url"),
        "{err}"
    );
}

#[tokio::test]
async fn serve_answers_health_and_readiness_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("served.db");
    let mut command = gateway(dir.path());
    command.args([
        "--database-url",
        &format!("sqlite://{}", db.display()),
        "serve",
        "--listen",
        "127.0.0.1:0",
    ]);
    let (server, _) = start(command);
    let client = reqwest::Client::new();
    let health = client
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = client
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");

    // Take the database away: readiness must say so, liveness must not.
    std::fs::remove_file(&db).unwrap();
    std::fs::create_dir(&db).unwrap();
    let mut saw_unready = false;
    for _ in 0..20 {
        let ready = client
            .get(format!("{}/readyz", server.base))
            .send()
            .await
            .unwrap();
        if ready.status() == 503 {
            saw_unready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // An open SQLite connection may keep reading the unlinked file; then readiness stays true,
    // which is also correct. What must never happen is an error status from /healthz.
    let health = client
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        health.status(),
        200,
        "liveness ignores the database (unready seen: {saw_unready})"
    );
}

#[tokio::test]
async fn demo_seeds_fifty_clients_once_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("iop-gateway.toml"),
        "listen = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let (server, printed) = start(gateway(dir.path()).arg_owned("demo"));
    assert!(
        printed.iter().any(|l| l.starts_with("seeded 50 clients")),
        "{printed:?}"
    );
    assert!(dir.path().join("iop-gateway.db").exists());
    let health = reqwest::get(format!("{}/healthz", server.base))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    drop(server);

    // IOP_LISTEN beats the config file for demo as for serve (the file's address is unusable).
    std::fs::write(
        dir.path().join("iop-gateway.toml"),
        "listen = \"not-an-address\"\n",
    )
    .unwrap();
    let mut command = gateway(dir.path());
    command.env("IOP_LISTEN", "127.0.0.1:0");
    let (server, printed) = start(command.arg_owned("demo"));
    assert!(
        !printed.iter().any(|l| l.starts_with("seeded")),
        "the second demo reuses the database: {printed:?}"
    );
    let ready = reqwest::get(format!("{}/readyz", server.base))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn seed_works_on_postgres_from_the_command_line() {
    let Some((url, name)) = common::postgres_url().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    seed_twice(dir.path(), &url);
    common::drop_postgres_database(&name).await;
}

/// `validate` applies the IOP profile of each resource's type, whether or not its `meta.profile`
/// names it: a RelatedPerson that base R4 accepts is invalid for lack of what IOP requires.
#[test]
fn validate_checks_what_resources_name_and_with_iop_the_iop_profile_of_each_type() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = |name: &str| -> serde_json::Value {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/fhir")
            .join(name);
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let mut good = fixture("RelatedPerson-support-contact.json");
    good.as_object_mut().unwrap().remove("meta");
    good["id"] = serde_json::json!("good");
    let bare = serde_json::json!({
        "resourceType": "RelatedPerson", "id": "bare", "patient": { "reference": "Patient/x" }
    });
    let relapse = fixture("CarePlan-relapse-prevention-plan.json");
    let lines = [good.to_string(), bare.to_string(), relapse.to_string()];
    let file = dir.path().join("in.ndjson");
    std::fs::write(&file, lines.join("\n")).unwrap();
    // Without --iop, R4 and what each resource names: the bare RelatedPerson is valid R4.
    let output = gateway(dir.path())
        .arg("validate")
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.ends_with("3 passed, 0 failed\n"), "{stdout}");
    let output = gateway(dir.path())
        .args(["validate", "--iop"])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("ok RelatedPerson/good"), "{stdout}");
    assert!(stdout.contains("invalid RelatedPerson/bare"), "{stdout}");
    assert!(stdout.contains("at RelatedPerson.name"), "{stdout}");
    // The relapse prevention plan is checked against its own profile, not the treatment plan's.
    assert!(
        stdout.contains(&format!("ok CarePlan/{}", relapse["id"].as_str().unwrap())),
        "{stdout}"
    );
    assert!(stdout.ends_with("2 passed, 1 failed\n"), "{stdout}");
}

/// FHIR XML is read as well as JSON: a resource to check, and a profile given with `--package`
/// (the profile's own elements in XML, `id` as an attribute). What is not FHIR XML gets a fatal
/// verdict of its own, and the run goes on.
#[test]
fn validate_reads_fhir_xml_resources_and_packages() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("born-patient.xml");
    std::fs::write(
        &profile,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<StructureDefinition xmlns="http://hl7.org/fhir">
  <url value="https://example.org/fhir/StructureDefinition/born-patient"/>
  <name value="BornPatient"/>
  <status value="draft"/>
  <kind value="resource"/>
  <abstract value="false"/>
  <type value="Patient"/>
  <baseDefinition value="http://hl7.org/fhir/StructureDefinition/Patient"/>
  <derivation value="constraint"/>
  <differential>
    <element id="Patient.birthDate">
      <path value="Patient.birthDate"/>
      <min value="1"/>
    </element>
  </differential>
</StructureDefinition>"#,
    )
    .unwrap();
    let patient = |id: &str, birth: &str| {
        format!(
            r#"<Patient xmlns="http://hl7.org/fhir">
  <id value="{id}"/>
  <meta><profile value="https://example.org/fhir/StructureDefinition/born-patient"/></meta>
  <active value="true"/>
  {birth}
</Patient>"#
        )
    };
    let born = dir.path().join("born.xml");
    std::fs::write(&born, patient("born", r#"<birthDate value="1980-02-03"/>"#)).unwrap();
    let unborn = dir.path().join("unborn.xml");
    std::fs::write(&unborn, patient("unborn", "")).unwrap();
    let odd = dir.path().join("odd.xml");
    std::fs::write(&odd, patient("odd", r#"<shoeSize value="9"/>"#)).unwrap();

    let output = gateway(dir.path())
        .arg("validate")
        .arg("--package")
        .arg(&profile)
        .args([&born, &unborn, &odd])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("ok Patient/born"), "{stdout}");
    assert!(stdout.contains("invalid Patient/unborn"), "{stdout}");
    assert!(stdout.contains("at Patient.birthDate"), "{stdout}");
    assert!(
        stdout.contains("Patient.shoeSize is not an element of FHIR R4"),
        "{stdout}"
    );
    assert!(stdout.ends_with("1 passed, 2 failed\n"), "{stdout}");
}

trait ArgOwned {
    fn arg_owned(self, arg: &str) -> Self;
}

impl ArgOwned for Command {
    fn arg_owned(mut self, arg: &str) -> Self {
        self.arg(arg);
        self
    }
}

/// `clients add` refuses private keys and unknown scopes; `token` grants the intersection of
/// asked and registered, prints the token alone on its last line, and accounts for it.
#[tokio::test]
async fn clients_and_tokens_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/auth");
    let jwks = fixtures.join("client.jwks.json");
    let private = fixtures.join("client.private.jwks.json");
    let add = |file: &Path, scope: &str| {
        run(gateway(dir.path())
            .args(["--database-url", &url, "clients", "add", "ehr", "--jwks"])
            .arg(file)
            .args(["--scope", scope]))
    };
    let (ok, _, err) = add(&private, "system/*.rs");
    assert!(!ok && err.contains("private key"), "{err}");
    let (ok, _, err) = add(&jwks, "patient/*.read");
    assert!(!ok && err.contains("scope"), "{err}");
    let (ok, out, err) = add(&jwks, "system/Patient.rs");
    assert!(ok, "{err}");
    assert!(out.contains("registered client ehr"), "{out}");
    let (ok, out, err) = run(gateway(dir.path()).args([
        "--database-url",
        &url,
        "token",
        "--client",
        "ehr",
        "--scope",
        "system/*.rs",
    ]));
    assert!(ok, "{err}");
    assert!(err.contains("scopes system/Patient.rs"), "{err}");
    let token = out.lines().last().unwrap();
    assert_eq!(token.split('.').count(), 3, "a JWT alone: {out}");
    let (ok, _, _) =
        run(gateway(dir.path()).args(["--database-url", &url, "clients", "disable", "ehr"]));
    assert!(ok);
    let (ok, _, err) =
        run(gateway(dir.path()).args(["--database-url", &url, "token", "--client", "ehr"]));
    assert!(!ok && err.contains("disabled"), "{err}");
    let store = iop_gateway::store::Store::open(&url).await.unwrap();
    let tokens = store
        .audit_page(&iop_gateway::store::AuditQuery {
            interactions: Some(vec![iop_gateway::domain::AuditInteraction::Token]),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(tokens.len(), 1, "the issued token is accounted for");
    assert_eq!(tokens[0].client_id.as_deref(), Some("ehr"));
    store.close().await;
}

/// `consent explain`: a Part 2 client's records are permitted to the organization its Part 2
/// consent names (by that consent) and denied to the clinic's own EHR (by the Part 2 rule), one
/// line per record with the reason.
#[tokio::test]
async fn consent_explain_names_the_consent_or_rule() {
    use iop_gateway::domain::{Consent, ConsentKind, ConsentRecipient};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let (ok, _, err) = run(gateway(dir.path()).args([
        "--database-url",
        &url,
        "seed",
        "--clients",
        "30",
        "--as-of",
        "2026-11-01",
    ]));
    assert!(ok, "{err}");
    let store = iop_gateway::store::Store::open(&url).await.unwrap();
    let consents = store.page::<Consent>(None, 10_000).await.unwrap();
    let as_of = chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
    let part2 = consents
        .iter()
        .map(|c| &c.record)
        .find(|c| c.kind == ConsentKind::Part2Disclosure && c.in_force_on(as_of))
        .expect("a seeded Part 2 consent in force");
    let ConsentRecipient::Organization(hospital) = part2.recipient else {
        panic!("a Part 2 consent names an organization")
    };
    let clinic = iop_gateway::disclose::clinic_organizations(&store)
        .await
        .unwrap()
        .remove(0);
    store.close().await;
    let explain = |recipient: &str| {
        run(gateway(dir.path()).args([
            "--database-url",
            &url,
            "consent",
            "explain",
            "--client",
            &part2.client_id.to_string(),
            "--recipient",
            recipient,
            "--as-of",
            "2026-11-01",
        ]))
    };
    let (ok, out, err) = explain(&hospital.to_string());
    assert!(ok, "{err}");
    let patient_line = out
        .lines()
        .find(|l| l.contains(&format!("Patient/{}", part2.client_id)))
        .expect("a line for the Patient");
    assert!(patient_line.starts_with("permit"), "{patient_line}");
    assert!(
        patient_line.contains(&part2.id.to_string()),
        "{patient_line}"
    );
    assert!(
        patient_line.contains("42 CFR 2.32 notice"),
        "{patient_line}"
    );
    let (ok, out, err) = explain(&clinic);
    assert!(ok, "{err}");
    let decided: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("permit") || l.starts_with("deny"))
        .collect();
    assert!(decided.len() > 3, "{out}");
    for line in decided {
        assert!(line.starts_with("deny"), "{line}");
        assert!(
            line.contains("Part 2") || line.contains("support contact"),
            "{line}"
        );
    }
    assert!(out.trim_end().ends_with("denied"), "{out}");
    // An unknown client is a clear error.
    let (ok, _, err) = run(gateway(dir.path()).args([
        "--database-url",
        &url,
        "consent",
        "explain",
        "--client",
        "00000000-0000-7000-8000-000000000000",
        "--recipient",
        &clinic,
    ]));
    assert!(!ok);
    assert!(err.contains("no client"), "{err}");
}
