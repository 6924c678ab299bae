//! The HTTP edge: liveness, readiness, and the FHIR API under `/fhir` (`crate::fhir_api`).
//!
//! Architecture invariant: handlers translate between HTTP and the layers below and hold no
//! business rules.

use std::net::SocketAddr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;

use std::sync::Arc;

use crate::auth::Authenticator;
use crate::auth::grant::TokenService;
use crate::fhir_api::{self, FhirState};
use crate::mapping::MappingConfig;
use crate::store::Store;
use crate::validation::Validator;

pub mod authenticate;
pub mod limits;
pub mod outcome;
pub mod request_log;
pub mod token;

pub use limits::{Guard, Limits};

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub validator: Arc<Validator>,
    pub mapping: Arc<MappingConfig>,
    /// Who may use the FHIR API.
    pub auth: Arc<dyn Authenticator>,
    /// The token endpoint's service (None with open access: no tokens are issued).
    pub tokens: Option<Arc<TokenService>>,
    /// Where links and fullUrls point (`public_url`).
    pub public_url: fhir_api::PublicUrl,
    pub guard: Arc<Guard>,
    /// What the mental-health policy permits where no consent decides.
    pub consent_policy: Arc<crate::consent::Policy>,
    /// Bulk Data exports: where their files are, how long they are kept.
    pub bulk: crate::bulk::BulkSettings,
}

impl AppState {
    /// A server with default limits and no token endpoint (`auth` decides who gets in).
    pub fn new(
        store: Store,
        validator: Arc<Validator>,
        mapping: Arc<MappingConfig>,
        auth: Arc<dyn Authenticator>,
        public_url: fhir_api::PublicUrl,
    ) -> Self {
        Self {
            store,
            validator,
            mapping,
            auth,
            tokens: None,
            public_url,
            guard: Guard::new(Limits::default()),
            consent_policy: Arc::new(crate::consent::Policy::default()),
            bulk: crate::bulk::BulkSettings::default(),
        }
    }

    /// Bulk Data settings, and the export worker started for them (on the current runtime).
    pub fn with_bulk_worker(mut self, settings: crate::bulk::BulkSettings) -> Self {
        self.bulk = settings.clone();
        crate::bulk::worker::spawn(
            self.store.clone(),
            Arc::clone(&self.mapping),
            Arc::clone(&self.consent_policy),
            settings,
        );
        self
    }

    pub fn with_consent_policy(mut self, policy: crate::consent::Policy) -> Self {
        self.consent_policy = Arc::new(policy);
        self
    }

    pub fn with_tokens(mut self, tokens: Arc<TokenService>) -> Self {
        self.tokens = Some(tokens);
        self
    }

    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.guard = Guard::new(limits);
        self
    }
}

/// Every route of the server, hardened (`outcome::harden`): errors are OperationOutcomes and a
/// panicking handler answers 500; every request bounded (`limits`) and logged (`request_log`).
pub fn router(state: AppState) -> Router {
    let gate = authenticate::Gate {
        authenticator: Arc::clone(&state.auth),
        guard: Arc::clone(&state.guard),
    };
    let protected = fhir_api::protected_routes().route_layer(axum::middleware::from_fn_with_state(
        gate,
        authenticate::require,
    ));
    let limits = state.guard.limits;
    let fhir = fhir_api::router(
        FhirState {
            store: state.store.clone(),
            audit: crate::store::AuditWriter::new(state.store.clone()),
            read_cache: Default::default(),
            validator: Arc::clone(&state.validator),
            mapping: Arc::clone(&state.mapping),
            security: fhir_api::Security {
                description: state.auth.describe().into(),
                smart: state.auth.is_smart() && state.tokens.is_some(),
            },
            public_url: Arc::new(state.public_url.clone()),
            max_json_depth: limits.max_json_depth,
            consent_policy: Arc::clone(&state.consent_policy),
            export_dir: Arc::new(state.bulk.dir.clone()),
            export_polls: Default::default(),
        },
        protected,
        limits.max_body_bytes,
    );
    let guard = Arc::clone(&state.guard);
    outcome::harden(
        Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route(token::TOKEN_PATH, post(token::token))
            .route(
                "/fhir/.well-known/smart-configuration",
                get(token::smart_configuration),
            )
            .with_state(state)
            .merge(fhir)
            .layer(axum::middleware::from_fn_with_state(guard, limits::bound))
            .layer(axum::middleware::from_fn(request_log::track)),
    )
}

/// The process is up (no dependencies checked: a load balancer should not restart us for a
/// database outage).
async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// The process can serve: the clinic database answers and its schema is in place.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({ "status": "ready", "database": "ok" })),
        ),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "database": "unreachable" })),
            )
        }
    }
}

/// Serves until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Serves HTTPS (rustls) with the PEM certificate chain and private key given, until
/// `shutdown` resolves, then finishes in-flight requests (up to 30 s).
pub async fn serve_tls(
    listener: TcpListener,
    state: AppState,
    cert: &std::path::Path,
    key: &std::path::Path,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key).await?;
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(std::time::Duration::from_secs(30)));
    });
    axum_server::from_tcp_rustls(listener.into_std()?, config)?
        .handle(handle)
        .serve(router(state).into_make_service_with_connect_info::<SocketAddr>())
        .await
}
