//! Bulk Data `$export` over HTTP: the kick-off (`/fhir/$export`, `/fhir/Patient/$export`), the
//! status URL it answers with (`/bulk/{job}`: poll, or DELETE to cancel) and the files
//! (`/bulk/{job}/{Type}.ndjson`). The work is `crate::bulk`'s, run by the export worker.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::access::{self, Caller};
use super::{ApiError, FhirState, fhir_json};
use crate::audit::Event;
use crate::auth::Letter;
use crate::bulk::{ExportRequest, Level, Written};
use crate::domain::{AuditInteraction, Timestamp};
use crate::store::{ExportJob, JobState};

/// How long a client is asked to wait between polls.
const RETRY_AFTER_SECONDS: u64 = 2;

/// `$export` at `level`: checks the request and the caller's scopes, queues the job, and answers
/// 202 with the status URL.
pub(super) async fn kick_off(
    state: &FhirState,
    caller: &Caller,
    level: Level,
    headers: &HeaderMap,
    query: &[(String, String)],
    body: Option<&Value>,
) -> Result<Response, ApiError> {
    let header = |name: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",")
    };
    if !header("prefer").contains("respond-async") {
        return Err(ApiError::bad_request(
            "$export runs asynchronously: send Prefer: respond-async",
        ));
    }
    let accept = header("accept");
    if !accept.is_empty() && !accept.contains("application/fhir+json") && !accept.contains("*/*") {
        return Err(ApiError::bad_request(
            "$export answers application/fhir+json: send Accept: application/fhir+json",
        ));
    }
    let strict = header("prefer").contains("handling=strict");
    let params = crate::bulk::request::parameters(query, body)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut request: ExportRequest = crate::bulk::request::parse(level, &params, strict)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    // Types asked for by name need their read scope; otherwise the export holds what the
    // scopes allow (and nothing at all is a 403).
    let named = params.iter().any(|(k, _)| k == "_type");
    if named {
        for t in &request.types {
            access::require(state, caller, t, Letter::Read, AuditInteraction::Export).await?;
        }
    } else {
        request
            .types
            .retain(|t| caller.principal.scopes.permits(t, Letter::Read));
        if request.types.is_empty() {
            access::require(
                state,
                caller,
                "Patient",
                Letter::Read,
                AuditInteraction::Export,
            )
            .await?;
        }
    }
    let origin = state.public_url.origin(headers);
    let raw_query = serde_urlencoded::to_string(query).unwrap_or_default();
    let path = match request.level {
        Level::System => "/fhir/$export",
        Level::Patient => "/fhir/Patient/$export",
    };
    let request_url = if raw_query.is_empty() {
        format!("{origin}{path}")
    } else {
        format!("{origin}{path}?{raw_query}")
    };
    let principal = &caller.principal;
    let job = ExportJob {
        id: uuid::Uuid::new_v4().to_string(),
        client_id: principal.client_id.clone(),
        organization_id: principal.organization_id.clone(),
        purpose_of_use: principal.purpose_of_use.clone(),
        scopes: principal.scopes.to_string(),
        open_access: principal.open_access,
        request: request_url,
        params: serde_json::to_string(&request).map_err(|_| ApiError::internal())?,
        state: JobState::Queued,
        transaction_time: Timestamp::now(),
        created_at: Timestamp::now(),
        attempts: 0,
        progress: None,
        manifest: None,
        error: None,
        expires_at: None,
    };
    state.store.insert_export_job(&job).await?;
    let mut event = Event::success(AuditInteraction::Export, "Bulk").with_query(&params);
    event.resource_type = None;
    access::disclosed(state, caller, event, &[]).await?;
    tracing::info!(job = %job.id, client = %principal.client_id, types = request.types.len(), "export queued");
    let mut response = StatusCode::ACCEPTED.into_response();
    let location = format!("{origin}/bulk/{}", job.id);
    if let Ok(value) = HeaderValue::from_str(&location) {
        response
            .headers_mut()
            .insert(header::CONTENT_LOCATION, value);
    }
    Ok(response)
}

/// The caller's job `id`: another client's job is as absent as a job that never was.
async fn own_job(state: &FhirState, caller: &Caller, id: &str) -> Result<ExportJob, ApiError> {
    let gone = || {
        ApiError::not_found(format!(
            "no export {id} (cancelled, expired or never started)"
        ))
    };
    let job = state.store.export_job(id).await?.ok_or_else(gone)?;
    if job.client_id != caller.principal.client_id || job.state == JobState::Cancelled {
        return Err(gone());
    }
    Ok(job)
}

/// `GET /bulk/{id}`: 202 with progress while it runs, the manifest when it is done.
pub(super) async fn status(
    State(state): State<FhirState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let job = own_job(&state, &caller, &id).await?;
    match job.state {
        JobState::Queued | JobState::Running => {
            let mut response = StatusCode::ACCEPTED.into_response();
            let progress = job.progress.unwrap_or_else(|| "queued".to_owned());
            let h = response.headers_mut();
            if let Ok(value) = HeaderValue::from_str(&progress) {
                h.insert("x-progress", value);
            }
            h.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
            Ok(response)
        }
        JobState::Failed => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            "the export failed; start a new one",
        )),
        JobState::Cancelled => Err(ApiError::not_found("the export was cancelled")),
        JobState::Done => {
            let written: Written = job
                .manifest
                .as_deref()
                .and_then(|m| serde_json::from_str(m).ok())
                .ok_or_else(ApiError::internal)?;
            let origin = state.public_url.origin(&headers);
            let files = |list: &[crate::bulk::WrittenFile]| -> Vec<Value> {
                list.iter()
                    .map(|f| {
                        json!({
                            "type": f.resource_type,
                            "url": format!("{origin}/bulk/{}/{}", job.id, f.file),
                            "count": f.count,
                        })
                    })
                    .collect()
            };
            let mut manifest = json!({
                "transactionTime": job.transaction_time.as_datetime().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "request": job.request,
                "requiresAccessToken": true,
                "output": files(&written.output),
                "error": files(&written.error),
            });
            if written.part2 {
                manifest["extension"] = json!({
                    "https://iop-gateway.org/fhir/StructureDefinition/part2-notice":
                        crate::disclose::PART2_NOTICE
                });
            }
            let mut response = (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                manifest.to_string(),
            )
                .into_response();
            if let Some(expires) = job.expires_at {
                let http_date = expires
                    .as_datetime()
                    .format("%a, %d %b %Y %H:%M:%S GMT")
                    .to_string();
                if let Ok(value) = HeaderValue::from_str(&http_date) {
                    response.headers_mut().insert(header::EXPIRES, value);
                }
            }
            Ok(response)
        }
    }
}

/// `DELETE /bulk/{id}`: cancels a running export or forgets a finished one; its files go.
pub(super) async fn cancel(
    State(state): State<FhirState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    own_job(&state, &caller, &id).await?;
    state.store.cancel_export_job(&id).await?;
    if let Some(files) = crate::bulk::files::JobFiles::of(&state.export_dir, &id)
        && let Err(err) = files.remove()
    {
        // The worker removes them on its next round.
        tracing::warn!(job = %id, error = %err, "could not remove a cancelled export's files yet");
    }
    tracing::info!(job = %id, "export cancelled");
    Ok(fhir_json(
        StatusCode::ACCEPTED,
        &json!({
            "resourceType": "OperationOutcome",
            "issue": [{ "severity": "information", "code": "informational", "diagnostics": "the export was cancelled and its files removed" }]
        }),
        false,
    ))
}

/// `GET /bulk/{id}/{file}`: one of a finished export's files, to the client that asked for it.
pub(super) async fn file(
    State(state): State<FhirState>,
    caller: Caller,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let job = own_job(&state, &caller, &id).await?;
    let written: Option<Written> = job
        .manifest
        .as_deref()
        .and_then(|m| serde_json::from_str(m).ok());
    let listed = written.is_some_and(|w| w.output.iter().chain(&w.error).any(|f| f.file == name));
    let path = crate::bulk::files::JobFiles::of(&state.export_dir, &id)
        .and_then(|files| files.file(&name))
        .filter(|_| listed && job.state == JobState::Done)
        .ok_or_else(|| ApiError::not_found(format!("no file {name} in export {id}")))?;
    let opened = tokio::fs::File::open(&path)
        .await
        .map_err(|_| ApiError::not_found(format!("the file {name} of export {id} is gone")))?;
    let mut event = Event::success(AuditInteraction::Export, "Bulk");
    event.resource_type = None;
    event.outcome_desc = Some(format!("download of {name} from export {id}"));
    access::disclosed(&state, &caller, event, &[]).await?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(opened));
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/fhir+ndjson")],
        body,
    )
        .into_response())
}
