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
const RETRY_AFTER_SECONDS: u64 = 1;
/// A poll this soon after the previous one (twice as fast as asked, or faster) is told 429.
const TOO_SOON: std::time::Duration = std::time::Duration::from_millis(500);

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
    if let Level::Group(group) = &request.level {
        let members = group_members(state, group).await?;
        request.patients = if request.patients.is_empty() {
            members
        } else {
            request
                .patients
                .iter()
                .filter(|p| members.contains(p))
                .cloned()
                .collect()
        };
    }
    let origin = state.public_url.origin(headers);
    let raw_query = serde_urlencoded::to_string(query).unwrap_or_default();
    let path = match &request.level {
        Level::System => "/fhir/$export".to_owned(),
        Level::Patient => "/fhir/Patient/$export".to_owned(),
        Level::Group(id) => format!("/fhir/Group/{id}/$export"),
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
        // The clinic's own application exports as the clinic (see `access::gate`).
        open_access: principal.open_access || principal.clinic_app,
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

/// The clients of a therapy group: those enrolled in an episode with a session of the group.
/// 404 for a group that does not exist.
async fn group_members(state: &FhirState, group: &str) -> Result<Vec<String>, ApiError> {
    use crate::domain::{Enrollment, Id, Session, TherapyGroup};
    use crate::store::{Filter, SqlValue};
    let unknown = || ApiError::not_found(format!("Group/{group} is not known"));
    let id: Id<TherapyGroup> = group.parse().map_err(|_| unknown())?;
    state.store.get(id).await?.ok_or_else(unknown)?;
    let sessions = state
        .store
        .page_where::<Session>(
            &[Filter::equals("group_id", SqlValue::id(id))],
            None,
            u32::MAX,
        )
        .await?;
    let mut enrollments: Vec<Id<Enrollment>> =
        sessions.iter().map(|s| s.record.enrollment_id).collect();
    enrollments.sort_by_key(|e| e.to_string());
    enrollments.dedup();
    let mut members: Vec<String> = state
        .store
        .get_many(&enrollments)
        .await?
        .into_iter()
        .map(|e| e.record.client_id.to_string())
        .collect();
    members.sort();
    members.dedup();
    Ok(members)
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
            let now = std::time::Instant::now();
            let previous = {
                let mut polls = state.export_polls.lock().unwrap_or_else(|e| e.into_inner());
                polls.retain(|_, at| now.duration_since(*at) < std::time::Duration::from_secs(600));
                polls.insert(job.id.clone(), now)
            };
            if previous.is_some_and(|at| now.duration_since(at) < TOO_SOON) {
                let mut refused = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "throttled",
                    format!("poll the export status at most every {RETRY_AFTER_SECONDS} s"),
                )
                .into_response();
                refused
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
                return Ok(refused);
            }
            let mut response = StatusCode::ACCEPTED.into_response();
            let progress = job.progress.unwrap_or_else(|| job.state.code().to_owned());
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
