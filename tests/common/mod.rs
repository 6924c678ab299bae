//! Test helpers: a fresh clinic database per test, on SQLite (a temp file) or PostgreSQL (a new
//! database, dropped afterwards). PostgreSQL tests skip with a printed reason when the server is
//! unreachable, unless `CI=true`, where they must run.
#![allow(dead_code)]

pub mod app;
pub mod graph;
pub mod process;
pub mod standin;

use std::io::Write;

use iop_gateway::store::Store;
use sqlx::{AssertSqlSafe, Connection};

pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub fn postgres_admin_url() -> String {
    std::env::var("IOP_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

/// Limits for servers that test what the API does, not how it throttles: a test's requests
/// come faster than a client's 100 per second (the rate limit's own tests set theirs).
pub fn unthrottled() -> iop_gateway::http::Limits {
    iop_gateway::http::Limits {
        rate_per_second: 1_000_000,
        rate_burst: 1_000_000,
        ..Default::default()
    }
}

/// The `shared/` folder beside the repository (`IOP_SHARED_DIR` overrides).
pub fn shared_dir() -> std::path::PathBuf {
    std::env::var_os("IOP_SHARED_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

/// The US Core 6.1.0 profiles every exported resource of its type must meet.
pub fn us_core_profiles() -> Vec<String> {
    [
        "patient",
        "practitioner",
        "organization",
        "careplan",
        "goal",
        "encounter",
        "relatedperson",
        "servicerequest",
    ]
    .iter()
    .map(|p| format!("http://hl7.org/fhir/us/core/StructureDefinition/us-core-{p}"))
    .collect()
}

/// The US Core 6.1.0 package in `shared/` (never copied into the repository).
pub fn us_core_tgz() -> std::path::PathBuf {
    shared_dir().join("fhir-packages/hl7.fhir.us.core-6.1.0.tgz")
}

/// Whether `program --version` runs and succeeds (a tool a test needs is installed).
pub fn runs(program: impl AsRef<std::ffi::OsStr>) -> bool {
    std::process::Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Prints past the test harness's output capture, so a skip is seen in a plain `cargo test`.
pub fn say(message: &str) {
    let _ = writeln!(std::io::stderr(), "{message}");
}

pub struct TestDb {
    pub url: String,
    pub store: Store,
    _dir: Option<tempfile::TempDir>,
    postgres_name: Option<String>,
}

impl TestDb {
    pub async fn cleanup(mut self) {
        self.store.close().await;
        if let Some(name) = self.postgres_name.take() {
            drop_postgres_database(&name).await;
        }
    }
}

impl Drop for TestDb {
    /// A test that panics never reaches `cleanup`: drop its PostgreSQL database here, on a thread
    /// of its own because this may run inside the test's async runtime.
    fn drop(&mut self) {
        if let Some(name) = self.postgres_name.take() {
            let _ = std::thread::spawn(move || {
                if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    runtime.block_on(drop_postgres_database(&name));
                }
            })
            .join();
        }
    }
}

/// A migrated store on a new SQLite file.
pub async fn sqlite() -> TestDb {
    let (url, dir) = sqlite_url();
    let store = Store::open(&url).await.expect("open sqlite store");
    TestDb {
        url,
        store,
        _dir: Some(dir),
        postgres_name: None,
    }
}

/// A URL for a new SQLite file in a temporary directory (the directory lives as long as the guard).
pub fn sqlite_url() -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    (
        format!("sqlite://{}", dir.path().join("clinic.db").display()),
        dir,
    )
}

/// A URL for a new, empty PostgreSQL database, or None (with a printed reason) when PostgreSQL is
/// unreachable outside CI.
pub async fn postgres_url() -> Option<(String, String)> {
    let admin = postgres_admin_url();
    let mut conn = match sqlx::PgConnection::connect(&admin).await {
        Ok(conn) => conn,
        Err(err) if !in_ci() => {
            say(&format!(
                "skipping PostgreSQL test: cannot reach {admin} ({err}); set CI=true to make this an error"
            ));
            return None;
        }
        Err(err) => panic!("CI=true and PostgreSQL is unreachable at {admin}: {err}"),
    };
    let name = format!("iop_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let _ = conn.close().await;
    let base = admin
        .rsplit_once('/')
        .map(|(base, _)| base.to_owned())
        .unwrap_or(admin);
    Some((format!("{base}/{name}"), name))
}

pub async fn drop_postgres_database(name: &str) {
    if let Ok(mut conn) = sqlx::PgConnection::connect(&postgres_admin_url()).await {
        let _ = sqlx::query(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await;
        let _ = conn.close().await;
    }
}

/// A migrated store on a new PostgreSQL database, or None when skipped.
pub async fn postgres() -> Option<TestDb> {
    let (url, name) = postgres_url().await?;
    let store = Store::open(&url).await.expect("open postgres store");
    Some(TestDb {
        url,
        store,
        _dir: None,
        postgres_name: Some(name),
    })
}

/// Runs each named `async fn(&Store)` once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = $crate::common::sqlite().await;
                    super::$name(&db.store).await;
                    db.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(db) = $crate::common::postgres().await else { return };
                    super::$name(&db.store).await;
                    db.cleanup().await;
                }
            )*
        }
    };
}
