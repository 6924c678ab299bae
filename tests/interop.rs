//! Interoperability: FHIR client libraries this project did not write drive the running gateway
//! over HTTP from their own processes — `fhir-kit-client` (npm) and `fhirpy` (PyPI): metadata,
//! read, search following every page, create, conditional update, transaction. The scripts are in
//! `tests/interop/`; `.ci/run` installs the libraries (`npm ci`, a Python venv in target/).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use iop_gateway::auth::OpenAccess;
use iop_gateway::fhir_api::PublicUrl;
use iop_gateway::http::{AppState, router};
use iop_gateway::mapping::MappingConfig;
use iop_gateway::seed::{self, SeedOptions};
use iop_gateway::store::Store;
use iop_gateway::validation::{Registry, Validator};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The interpreter and script of each client, or why it cannot run here.
fn clients() -> Vec<(&'static str, PathBuf, PathBuf)> {
    let python = std::env::var_os("IOP_INTEROP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/interop-venv/bin/python"));
    vec![
        (
            "fhir-kit-client",
            PathBuf::from("node"),
            repo().join("tests/interop/fhir-kit-client.mjs"),
        ),
        (
            "fhirpy",
            python,
            repo().join("tests/interop/fhirpy_client.py"),
        ),
    ]
}

fn installed() -> Result<(), String> {
    if !repo()
        .join("tests/interop/node_modules/fhir-kit-client")
        .exists()
    {
        return Err("fhir-kit-client is not installed (npm ci --prefix tests/interop)".into());
    }
    let python = &clients()[1].1;
    let fhirpy = Command::new(python)
        .args(["-c", "import fhirpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !fhirpy {
        return Err(format!(
            "fhirpy is not importable by {} (python3 -m venv target/interop-venv && target/interop-venv/bin/pip install -r tests/interop/requirements.txt)",
            python.display()
        ));
    }
    Ok(())
}

async fn client_libraries_read_search_and_write(store: &Store) {
    if let Err(reason) = installed() {
        assert!(!common::in_ci(), "CI=true but {reason}");
        common::say(&format!("skipping interoperability test: {reason}"));
        return;
    }
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/fhir", listener.local_addr().unwrap());
    let state = AppState::new(
        store.clone(),
        Arc::new(Validator::new(Arc::new(Registry::builtin()))),
        Arc::new(MappingConfig::default()),
        Arc::new(OpenAccess),
        PublicUrl::fixed(base.trim_end_matches("/fhir")).unwrap(),
    );
    tokio::spawn(async move { axum::serve(listener, router(state)).await.unwrap() });
    for (name, interpreter, script) in clients() {
        let base = base.clone();
        let output = tokio::task::spawn_blocking(move || {
            Command::new(interpreter).arg(script).arg(base).output()
        })
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{name}: cannot start: {e}"));
        assert!(
            output.status.success(),
            "{name} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        common::say(String::from_utf8_lossy(&output.stdout).trim());
    }
}

on_both_backends!(client_libraries_read_search_and_write);
