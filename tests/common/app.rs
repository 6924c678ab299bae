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

/// The gateway's `/fhir` base URL and a client (with its bearer token, when the server asks).
pub struct App {
    pub base: String,
    pub client: reqwest::Client,
    pub token: Option<String>,
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
    )
    .with_limits(super::unthrottled());
    tokio::spawn(async move {
        axum::serve(listener, router(state)).await.unwrap();
    });
    App {
        base: format!("http://{address}/fhir"),
        client: reqwest::Client::new(),
        token: None,
    }
}

/// The same database served with SMART bearer tokens, and a caller acting for `organization`
/// (purpose TREAT) with `scopes`: what a partner's system sees of it.
pub async fn spawn_as_organization(store: &Store, organization: &str, scopes: &str) -> App {
    spawn_as(store, organization, scopes, false).await
}

/// The same database served with SMART bearer tokens, and one of the clinic's own applications
/// (`clients add --clinic-app`) acting for the clinic with `scopes`.
pub async fn spawn_clinic_app(store: &Store, scopes: &str) -> App {
    let clinic = iop_gateway::disclose::clinic_organizations(store)
        .await
        .unwrap()
        .into_iter()
        .next()
        .unwrap();
    spawn_as(store, &clinic, scopes, true).await
}

async fn spawn_as(store: &Store, organization: &str, scopes: &str, clinic_app: bool) -> App {
    use iop_gateway::auth::{AccessTokens, BearerTokens, Scopes};
    use iop_gateway::domain::{ApiClient, ClientId, KeySource};
    let tokens = Arc::new(AccessTokens::load(store).await.unwrap());
    let name = format!("partner-{}", uuid::Uuid::new_v4().simple());
    let jwks = std::fs::read_to_string(format!(
        "{}/fixtures/auth/client.jwks.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    store
        .add_api_client(&ApiClient {
            client_id: ClientId::parse(&name).unwrap(),
            keys: KeySource::Inline(jwks),
            scopes: scopes.into(),
            organization_id: Some(organization.to_owned()),
            purpose_of_use: "TREAT".into(),
            enabled: true,
            clinic_app,
        })
        .await
        .unwrap();
    let client = store.api_client(&name).await.unwrap().unwrap();
    let token = tokens
        .issue(
            &client,
            &Scopes::parse_strict(scopes).unwrap(),
            3000,
            chrono::Utc::now().timestamp(),
        )
        .token;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let state = AppState::new(
        store.clone(),
        Arc::new(Validator::new(Arc::new(Registry::builtin()))),
        Arc::new(MappingConfig::default()),
        Arc::new(BearerTokens::new(tokens)),
        PublicUrl::fixed(&format!("http://{address}")).unwrap(),
    )
    .with_limits(super::unthrottled());
    tokio::spawn(async move {
        axum::serve(
            listener,
            router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap();
    });
    App {
        base: format!("http://{address}/fhir"),
        client: reqwest::Client::new(),
        token: Some(token),
    }
}

impl App {
    /// A request to `path` (under /fhir), with the bearer token when there is one.
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.client.request(method, format!("{}/{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// GET `path` (under /fhir): the status and the JSON answer (Null when there is none).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Sends `body` as FHIR JSON to `path` (under /fhir).
    pub async fn send(&self, method: reqwest::Method, path: &str, body: &Value) -> (u16, Value) {
        let (status, answer, _) = self.send_located(method, path, body).await;
        (status, answer)
    }

    /// POSTs `body` as FHIR JSON to `path`: the status, the JSON answer and the Location header.
    pub async fn post_located(&self, path: &str, body: &Value) -> (u16, Value, Option<String>) {
        self.send_located(reqwest::Method::POST, path, body).await
    }

    async fn send_located(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> (u16, Value, Option<String>) {
        let response = self
            .request(method, path)
            .header("content-type", "application/fhir+json")
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        (
            status,
            response.json().await.unwrap_or(Value::Null),
            location,
        )
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

/// A referral the clinic accepted that has led to no enrollment yet (a seeded accepted one has:
/// its Task follows the enrollment), for a seeded client: its id.
pub async fn accepted_referral(store: &Store) -> String {
    inbound_referral(store, iop_gateway::domain::ReferralStatus::Accepted).await
}

/// An inbound step-down referral from the seeded hospital, for the first seeded client, in
/// `status`: its id.
pub async fn inbound_referral(
    store: &Store,
    status: iop_gateway::domain::ReferralStatus,
) -> String {
    use iop_gateway::domain::{
        Client, Id, NonEmptyText, Organization, OrganizationKind, Referral, ReferralDirection,
        ReferralKind, ReferralStatus,
    };
    let client = store
        .page::<Client>(None, 1)
        .await
        .unwrap()
        .remove(0)
        .record;
    let organizations = store.page::<Organization>(None, 100).await.unwrap();
    let of_kind = |kind| {
        organizations
            .iter()
            .find(|o| o.record.kind == kind)
            .unwrap()
            .record
            .id
    };
    let referral = Referral {
        id: Id::from_uuid(uuid::Uuid::now_v7()),
        client_id: client.id,
        direction: ReferralDirection::Inbound,
        kind: ReferralKind::StepDown,
        status,
        reason: NonEmptyText::parse("Step-down after inpatient care").unwrap(),
        referred_on: chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
        decided_on: (status != ReferralStatus::Received)
            .then(|| chrono::NaiveDate::from_ymd_opt(2026, 11, 21).unwrap()),
        referring_org_id: of_kind(OrganizationKind::InpatientHospital),
        receiving_org_id: of_kind(OrganizationKind::Clinic),
        program_id: None,
        status_reason: None,
        transition_summary: Vec::new(),
    };
    store.insert(&referral).await.unwrap();
    referral.id.to_string()
}
