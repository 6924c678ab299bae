//! Who is asking: the `Authenticator` seam and the `Principal` it establishes. Every FHIR request
//! except `/fhir/metadata` passes an authenticator before any handler runs (the middleware is
//! `http::authenticate`). `OpenAccess` (the default today) lets everyone in; SMART Backend
//! Services (the security issue) plugs in here without touching the handlers.
//!
//! Knows nothing of the API it guards: no routes, no OperationOutcomes.

use axum::http::HeaderMap;

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
