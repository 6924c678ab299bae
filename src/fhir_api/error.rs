//! Every API error is a FHIR OperationOutcome with a 4xx/5xx status. Messages name elements and
//! parameters, never values from the request (they may be PHI).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::validation::{Issue, operation_outcome};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub outcome: Value,
}

impl ApiError {
    /// One issue: `code` from the FHIR issue-type value set, a message an integrator can act on.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            outcome: json!({
                "resourceType": "OperationOutcome",
                "issue": [{ "severity": "error", "code": code, "diagnostics": message.into() }]
            }),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", message)
    }
    pub fn not_supported(status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(status, "not-supported", message)
    }
    /// The resource failed validation or mapping: 422 with the issues.
    pub fn unprocessable(issues: &[Issue]) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            outcome: operation_outcome(issues),
        }
    }
    /// The issues' diagnostics, one per line (for a command line).
    pub fn message(&self) -> String {
        self.outcome["issue"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| {
                let text = i["diagnostics"].as_str().unwrap_or_default();
                match i["expression"][0].as_str() {
                    Some(at) => format!("{at}: {text}"),
                    None => text.to_owned(),
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            "the gateway could not complete the request; the error is in its log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.outcome.to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(super::FHIR_JSON),
        );
        response
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(err: crate::store::StoreError) -> Self {
        use crate::store::StoreError as E;
        match err {
            E::VersionConflict { .. } => Self::new(
                StatusCode::PRECONDITION_FAILED,
                "conflict",
                "the resource has changed since the version given in If-Match; read it again",
            ),
            E::Duplicate { table, .. } => Self::new(
                StatusCode::CONFLICT,
                "duplicate",
                format!("a {table} record with the same identifier already exists"),
            ),
            E::MissingReference { table } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                format!("the {table} record refers to a resource that does not exist"),
            ),
            // The detail names a constraint or columns, never values.
            E::Rejected { table, detail } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invariant",
                format!(
                    "the clinic database refused the {table} record as inconsistent ({detail})"
                ),
            ),
            E::Invalid { table, source } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                format!("{table}: {source}"),
            ),
            E::NotFound { table, .. } => Self::not_found(format!("no such {table} record")),
            other => {
                tracing::error!(error = %other, "store error");
                Self::internal()
            }
        }
    }
}

impl From<crate::assemble::AssembleError> for ApiError {
    fn from(err: crate::assemble::AssembleError) -> Self {
        use crate::assemble::AssembleError as E;
        match err {
            E::UnknownType(t) => Self::not_supported(
                StatusCode::NOT_FOUND,
                format!("resource type {t} is not served here"),
            ),
            E::NoClinic => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "transient",
                "the clinic database has no clinic organization yet",
            ),
            E::Store(e) => e.into(),
        }
    }
}
