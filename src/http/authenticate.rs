//! The authentication middleware: runs the configured `Authenticator` before every protected
//! route, then the client's rate limit. Refusals: 401 with an OperationOutcome and
//! `WWW-Authenticate: Bearer`; 429 with `Retry-After`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::limits::Guard;
use super::outcome;
use super::request_log::LoggedClient;
use crate::auth::{AuthError, Authenticator};

#[derive(Clone)]
pub struct Gate {
    pub authenticator: Arc<dyn Authenticator>,
    pub guard: Arc<Guard>,
}

/// The request goes on with its `Principal` in the extensions, or is refused here.
pub async fn require(State(gate): State<Gate>, mut request: Request, next: Next) -> Response {
    match gate.authenticator.authenticate(request.headers()) {
        Ok(principal) => {
            let client = principal.client_id.clone();
            if let Some(mut refused) = gate.guard.rate_limited(&format!("client:{client}")) {
                refused.extensions_mut().insert(LoggedClient(client));
                return refused;
            }
            request.extensions_mut().insert(principal);
            let mut response = next.run(request).await;
            response.extensions_mut().insert(LoggedClient(client));
            response
        }
        Err(err) => {
            tracing::info!(reason = %err, "request refused by the authenticator");
            let mut response =
                outcome::response(StatusCode::UNAUTHORIZED, "login", &err.to_string());
            let challenge = match err {
                AuthError::Missing => "Bearer",
                AuthError::Expired => {
                    "Bearer error=\"invalid_token\", error_description=\"expired\""
                }
                AuthError::Rejected => "Bearer error=\"invalid_token\"",
            };
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
            response
        }
    }
}
