//! `POST /auth/token` (SMART Backend Services) and `GET /fhir/.well-known/smart-configuration`.
//! The decision is `auth::grant`'s; this edge parses the form, answers RFC 6749 JSON and
//! audits every token issued or refused (fail closed: no audit, no token).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::request_log::LoggedClient;
use crate::assemble::RESOURCE_TYPES;
use crate::audit::{self, RequestContext};
use crate::auth::grant::{OAuthError, Refused};
use crate::domain::AuditOutcome;

pub use crate::auth::TOKEN_PATH;

fn token_url(state: &AppState, headers: &HeaderMap) -> String {
    format!("{}{TOKEN_PATH}", state.public_url.origin(headers))
}

fn oauth_error(error: OAuthError, description: &str) -> Response {
    let mut response = (
        StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST),
        Json(json!({ "error": error.code(), "error_description": description })),
    )
        .into_response();
    no_store(&mut response);
    response
}

fn no_store(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

pub async fn token(
    State(state): State<AppState>,
    context: Option<Extension<RequestContext>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let context = context.map(|Extension(c)| c).unwrap_or_default();
    let Some(service) = state.tokens.clone() else {
        return oauth_error(
            OAuthError::InvalidRequest,
            "this gateway runs with --open-access and issues no tokens",
        );
    };
    let address = context.source_address.clone().unwrap_or_default();
    if let Some(refused) = state.guard.rate_limited(&format!("token:{address}")) {
        return refused;
    }
    let form_encoded = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let form: Option<Vec<(String, String)>> = form_encoded
        .then(|| serde_urlencoded::from_bytes(&body).ok())
        .flatten();
    let Some(form) = form else {
        return oauth_error(
            OAuthError::InvalidRequest,
            "the token request is a form-encoded body (application/x-www-form-urlencoded)",
        );
    };
    let now = chrono::Utc::now().timestamp();
    let decision = service
        .exchange(&form, &token_url(&state, &headers), now)
        .await;
    let (record, response) = match decision {
        Ok(granted) => {
            let record = audit::token_record(
                &context,
                AuditOutcome::Success,
                None,
                Some(&granted.client),
                Some(granted.token.token_id.clone()),
            );
            metrics::counter!(crate::telemetry::TOKENS, "outcome" => "issued").increment(1);
            tracing::info!(client = %granted.client.client_id, expires_in = granted.token.expires_in, "access token issued");
            let mut response = Json(json!({
                "access_token": granted.token.token,
                "token_type": "bearer",
                "expires_in": granted.token.expires_in,
                "scope": granted.scopes.to_string(),
            }))
            .into_response();
            no_store(&mut response);
            response
                .extensions_mut()
                .insert(LoggedClient(granted.client.client_id.to_string()));
            (record, response)
        }
        Err(Refused {
            error: OAuthError::Unavailable,
            description,
            ..
        }) => return oauth_error(OAuthError::Unavailable, &description),
        Err(refused) => {
            metrics::counter!(crate::telemetry::TOKENS, "outcome" => "refused").increment(1);
            tracing::info!(client = refused.client_id.as_deref().unwrap_or("-"), error = refused.error.code(), reason = %refused.description, "token request refused");
            let mut record = audit::token_record(
                &context,
                AuditOutcome::Refused,
                Some(format!("{}: {}", refused.error.code(), refused.description)),
                None,
                None,
            );
            record.client_id = refused.client_id.clone();
            (record, oauth_error(refused.error, &refused.description))
        }
    };
    if let Err(err) = state.store.append_audit(&record).await {
        tracing::error!(error = %err, "the audit record of a token request could not be written");
        return oauth_error(
            OAuthError::Unavailable,
            "the audit trail could not be written; try again",
        );
    }
    response
}

/// SMART discovery: how a backend service gets a token here.
pub async fn smart_configuration(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if state.tokens.is_none() {
        return super::outcome::response(
            StatusCode::NOT_FOUND,
            "not-found",
            "this gateway runs with --open-access: no SMART authorization is configured",
        );
    }
    let mut scopes: Vec<String> = [
        "system/*.cruds",
        "system/*.rs",
        "system/*.read",
        "system/*.write",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    scopes.extend(RESOURCE_TYPES.iter().map(|t| format!("system/{t}.rs")));
    scopes.push("system/AuditEvent.rs".into());
    let body: Value = json!({
        "token_endpoint": token_url(&state, &headers),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "scopes_supported": scopes,
        "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
    });
    Json(body).into_response()
}
