//! The HTTP edge: liveness, readiness, and the FHIR API under `/fhir` (`crate::fhir_api`).
//!
//! Architecture invariant: handlers translate between HTTP and the layers below and hold no
//! business rules.

use std::net::SocketAddr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;

use std::sync::Arc;

use crate::auth::Authenticator;
use crate::fhir_api::{self, FhirState};
use crate::mapping::MappingConfig;
use crate::store::Store;
use crate::validation::Validator;

pub mod authenticate;
pub mod outcome;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub validator: Arc<Validator>,
    pub mapping: Arc<MappingConfig>,
    /// Who may use the FHIR API (`auth::OpenAccess` lets everyone in).
    pub auth: Arc<dyn Authenticator>,
    /// Where links and fullUrls point (`public_url`).
    pub public_url: fhir_api::PublicUrl,
}

/// Every route of the server, hardened (`outcome::harden`): errors are OperationOutcomes and a
/// panicking handler answers 500.
pub fn router(state: AppState) -> Router {
    let protected = fhir_api::protected_routes().route_layer(axum::middleware::from_fn_with_state(
        Arc::clone(&state.auth),
        authenticate::require,
    ));
    let fhir = fhir_api::router(
        FhirState {
            store: state.store.clone(),
            validator: Arc::clone(&state.validator),
            mapping: Arc::clone(&state.mapping),
            security: state.auth.describe().into(),
            public_url: Arc::new(state.public_url.clone()),
        },
        protected,
    );
    outcome::harden(
        Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .with_state(state)
            .merge(fhir),
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
