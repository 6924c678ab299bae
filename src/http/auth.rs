//! The authentication seam of the FHIR API. Every request except `/fhir/metadata` passes an
//! `Authenticator` before any handler runs; the handlers see the `Principal` it established.
//! `OpenAccess` (the default today) lets everyone in; SMART Backend Services (the security
//! issue) plugs in here without touching the handlers.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::fhir_api::ApiError;

/// Who is asking, as the authenticator established it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// A client id or user id: logged, never a name.
    pub subject: String,
    /// SMART scopes granted (`system/*.read`, ...).
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no credentials: send Authorization: Bearer <token>")]
    Missing,
    #[error("the credentials were not accepted")]
    Rejected,
}

pub trait Authenticator: Send + Sync + 'static {
    fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, AuthError>;
    /// What the CapabilityStatement says of security (`rest.security.description`).
    fn describe(&self) -> String;
}

/// Everyone is let in with every scope. For demos and trusted networks only; `serve` says so in
/// its log on start.
pub struct OpenAccess;

impl Authenticator for OpenAccess {
    fn authenticate(&self, _headers: &HeaderMap) -> Result<Principal, AuthError> {
        Ok(Principal {
            subject: "anonymous".into(),
            scopes: vec!["system/*.*".into()],
        })
    }
    fn describe(&self) -> String {
        "No authentication is configured: every caller is let in. Serve on a trusted network only."
            .into()
    }
}

/// The middleware: 401 with an OperationOutcome and `WWW-Authenticate`, or the request goes on
/// with its `Principal` in the extensions.
pub async fn require(
    State(authenticator): State<Arc<dyn Authenticator>>,
    mut request: Request,
    next: Next,
) -> Response {
    match authenticator.authenticate(request.headers()) {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(err) => {
            tracing::info!(reason = %err, "request refused by the authenticator");
            let mut response =
                ApiError::new(StatusCode::UNAUTHORIZED, "login", err.to_string()).into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
    }
}
