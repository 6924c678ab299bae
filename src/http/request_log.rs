//! One log line per request, with no PHI: a request id (also sent back as `X-Request-Id`), the
//! client id, method, route template (never the raw URL: search values may be names or
//! identifiers), status and latency; and the request counters and latency histograms of
//! `/metrics` (`crate::telemetry`), labelled the same way. Also puts the `RequestContext` the audit needs into the
//! request.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

use crate::audit::RequestContext;

/// The client a response was for, left in its extensions by `authenticate` for the log line.
#[derive(Debug, Clone)]
pub struct LoggedClient(pub String);

pub const REQUEST_ID: &str = "x-request-id";

pub async fn track(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = uuid::Uuid::new_v4().to_string();
    let source_address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "(no route)".to_owned());
    request.extensions_mut().insert(RequestContext {
        request_id: request_id.clone(),
        source_address,
    });
    let mut response = next.run(request).await;
    let client = response
        .extensions()
        .get::<LoggedClient>()
        .map(|c| c.0.clone());
    let status = response.status().as_u16();
    let seconds = started.elapsed().as_secs_f64();
    // Any method string can arrive: only the standard ones become labels (bounded series).
    let method_label: &'static str = match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "OTHER",
    };
    metrics::counter!(
        crate::telemetry::HTTP_REQUESTS,
        "route" => route.clone(),
        "method" => method_label,
        "status" => status.to_string()
    )
    .increment(1);
    metrics::histogram!(
        crate::telemetry::HTTP_LATENCY,
        "route" => route.clone(),
        "method" => method_label
    )
    .record(seconds);
    tracing::info!(
        request_id = %request_id,
        client = client.as_deref().unwrap_or("-"),
        method = %method,
        route = %route,
        status,
        latency_ms = seconds * 1000.0,
        "request"
    );
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}
