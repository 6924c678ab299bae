//! The authentication middleware: runs the configured `Authenticator` before every protected
//! route, and answers 401 with an OperationOutcome and `WWW-Authenticate` when it refuses.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::outcome;
use crate::auth::Authenticator;

/// The request goes on with its `Principal` in the extensions, or is refused here.
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
                outcome::response(StatusCode::UNAUTHORIZED, "login", &err.to_string());
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
    }
}
