//! A running gateway over real HTTP on a seeded database, for API tests outside `fhir_api.rs`.

use std::sync::Arc;

use iop_gateway::auth::OpenAccess;
use iop_gateway::fhir_api::PublicUrl;
use iop_gateway::http::{AppState, router};
use iop_gateway::mapping::MappingConfig;
use iop_gateway::seed::{self, SeedOptions};
use iop_gateway::store::Store;
use iop_gateway::validation::{Registry, Validator};
use serde_json::Value;

/// The gateway's `/fhir` base URL and a client.
pub struct App {
    pub base: String,
    pub client: reqwest::Client,
}

/// Seeds 12 clients (seed 7, as of 2026-11-01) and serves on a free port.
pub async fn spawn_app(store: &Store) -> App {
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
        Arc::new(OpenAccess),
        PublicUrl::fixed(&format!("http://{address}")).unwrap(),
    );
    tokio::spawn(async move {
        axum::serve(listener, router(state)).await.unwrap();
    });
    App {
        base: format!("http://{address}/fhir"),
        client: reqwest::Client::new(),
    }
}

impl App {
    /// GET `path` (under /fhir): the status and the JSON answer (Null when there is none).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}/{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Sends `body` as FHIR JSON to `path` (under /fhir).
    pub async fn send(&self, method: reqwest::Method, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .request(method, format!("{}/{path}", self.base))
            .header("content-type", "application/fhir+json")
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The resources of a searchset at `path`, asserting it is not empty.
    pub async fn search(&self, path: &str) -> Vec<Value> {
        let (status, bundle) = self.get(path).await;
        assert_eq!(status, 200, "{bundle}");
        let found: Vec<Value> = bundle["entry"]
            .as_array()
            .map(|entries| entries.iter().map(|e| e["resource"].clone()).collect())
            .unwrap_or_default();
        assert!(!found.is_empty(), "{path} found nothing");
        found
    }
}
