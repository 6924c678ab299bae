//! Every error answer of the HTTP edge is a FHIR OperationOutcome, whoever produced it: the
//! handlers (`fhir_api::ApiError`), axum itself (a wrong method, an undecodable path, an unknown
//! route, an extractor's rejection) or a panic. `harden` wraps a router so that nothing else
//! leaves: clients of a FHIR server parse OperationOutcomes, not text/plain.

use std::any::Any;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::fhir_api::FHIR_JSON;

/// An OperationOutcome with one error issue (`code` from the FHIR issue-type value set).
pub fn response(status: StatusCode, code: &str, diagnostics: &str) -> Response {
    let body = json!({
        "resourceType": "OperationOutcome",
        "issue": [{ "severity": "error", "code": code, "diagnostics": diagnostics }]
    });
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    response
}

/// Wraps `router` so that every error answer is an OperationOutcome and a panicking handler
/// becomes a logged 500 (the connection is not dropped).
pub fn harden(router: Router) -> Router {
    router
        .layer(axum::middleware::from_fn(as_operation_outcome))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(on_panic))
}

/// Replaces the body of an error answer that is not JSON (axum's own rejections are text/plain
/// or empty) with an OperationOutcome, keeping the status and headers such as `Allow`. The
/// rejection's own text is not passed on: it can quote the request (a path, a query value).
async fn as_operation_outcome(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let (code, diagnostics) = explain(status, parts.headers.get(header::ALLOW));
    let replacement = self::response(status, code, &diagnostics);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    Response::from_parts(parts, replacement.into_body())
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.starts_with("application/fhir+json") || v.starts_with("application/json")
        })
}

/// What the status means to a FHIR client, in words it can act on.
fn explain(status: StatusCode, allow: Option<&HeaderValue>) -> (&'static str, String) {
    match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed = allow.and_then(|a| a.to_str().ok()).unwrap_or("none");
            (
                "not-supported",
                format!("this method is not supported here; allowed: {allowed}"),
            )
        }
        StatusCode::NOT_FOUND => ("not-found", "no such FHIR endpoint".to_owned()),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "too-costly",
            "the request body is larger than this server accepts".to_owned(),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "not-supported",
            "send FHIR JSON (Content-Type: application/fhir+json)".to_owned(),
        ),
        s if s.is_server_error() => (
            "exception",
            "the gateway could not complete the request; the error is in its log".to_owned(),
        ),
        _ => (
            "invalid",
            "the request could not be read: its path, query string, headers or body are malformed (for example, percent-encoding that is not UTF-8)".to_owned(),
        ),
    }
}

/// A panic in a handler: logged (without its message, which may quote data) and answered 500.
fn on_panic(_payload: Box<dyn Any + Send + 'static>) -> Response<Body> {
    tracing::error!("a request handler panicked; answered 500");
    self::response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "exception",
        "the gateway could not complete the request; the error is in its log",
    )
}
