//! A referral sent the RESTful way in two requests (HL7 BSeR's basic RESTful submit):
//! `POST /fhir/ServiceRequest` (its Patient and requester contained) is checked and held;
//! `POST /fhir/Task` whose focus names it (`ServiceRequest/{id}` as answered, or its placer
//! identifier) completes the referral, which goes to the same intake as a message
//! (`referrals::intake`): validated whole, once, matched, stored in one transaction with the
//! held request. The ServiceRequest needs `system/ServiceRequest.c`; the Task, which makes the
//! referral, also `system/Task.c`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::Value;

use super::access::{self, Caller};
use super::messaging::{self, outcome};
use super::{ApiError, FhirState, base_url, fhir_json, off_thread, pretty, write};
use crate::auth::Letter;
use crate::domain::AuditInteraction;
use crate::mapping;
use crate::referrals::intake::{self, Held};

/// `POST /fhir/ServiceRequest` or `POST /fhir/Task` (a referral's; any other Task is created in
/// the clinic).
pub(super) async fn create(
    state: &FhirState,
    caller: &Caller,
    resource_type: &str,
    headers: &HeaderMap,
    params: &[(String, String)],
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    if resource_type == "ServiceRequest" {
        // Held only: the Task that completes the referral needs both scopes.
        access::require(
            state,
            caller,
            "ServiceRequest",
            Letter::Create,
            AuditInteraction::Create,
        )
        .await?;
        let resource = parsed(state, headers, body, resource_type)?;
        return request(state, headers, params, resource).await;
    }
    access::require(
        state,
        caller,
        "Task",
        Letter::Create,
        AuditInteraction::Create,
    )
    .await?;
    let resource = parsed(state, headers, body, resource_type)?;
    let Some(placer) = mapping::referral_task_placer(&resource) else {
        return Err(write::task_created_by_referrals());
    };
    messaging::require_referral_scopes(state, caller).await?;
    task(state, caller, headers, params, &resource, &placer).await
}

fn parsed(
    state: &FhirState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    resource_type: &str,
) -> Result<Value, ApiError> {
    write::check_content_type(headers)?;
    let body = write::body(state, body)?;
    write::parse_resource(&body, resource_type)
}

/// The ServiceRequest, checked (its shape, the R4 definitions, its Patient against the inbound
/// Patient profile) and held: 201 with where it is, 200 when it was sent before.
async fn request(
    state: &FhirState,
    headers: &HeaderMap,
    params: &[(String, String)],
    request: Value,
) -> Result<Response, ApiError> {
    let placer = mapping::held_request_key(&request).map_err(|e| write::mapping_error(&e))?;
    let request = {
        let state = state.clone();
        off_thread(move || validate_request(&state, &request).map(|()| request)).await??
    };
    let base = base_url(state, headers);
    let (status, id, answer) = match intake::hold(state, &request, &placer).await? {
        Held::New(id) => {
            tracing::info!(held = %id, "referral ServiceRequest held for its Task");
            (
                StatusCode::CREATED,
                id.to_string(),
                outcome(
                    "information",
                    "informational",
                    &format!(
                        "ServiceRequest received; it is held until its Task arrives (POST Task with focus ServiceRequest/{id}), then the referral is received whole"
                    ),
                ),
            )
        }
        Held::AlreadyHeld(id) => (
            StatusCode::OK,
            id.to_string(),
            outcome(
                "information",
                "duplicate",
                "this ServiceRequest was received before and waits for its Task; nothing was added",
            ),
        ),
        Held::AlreadyReferred(referral) => (
            StatusCode::OK,
            referral.to_string(),
            outcome(
                "information",
                "duplicate",
                "this ServiceRequest's referral was received before; nothing was added",
            ),
        ),
    };
    Ok(located(
        fhir_json(status, &answer, pretty(params)),
        &format!("{base}/ServiceRequest/{id}"),
    ))
}

/// The ServiceRequest against the R4 definitions (its contained resources with it) and its
/// contained Patient against the inbound Patient profile.
fn validate_request(state: &FhirState, request: &Value) -> Result<(), ApiError> {
    let mut issues = state.validator.validate(
        request,
        &["http://hl7.org/fhir/StructureDefinition/ServiceRequest".to_owned()],
    );
    if let Some(patient) = mapping::held_request_patient(request) {
        issues.extend(intake::patient_issues(
            state,
            patient,
            "the contained Patient",
        ));
    }
    if issues.iter().any(crate::validation::Issue::is_error) {
        return Err(ApiError::unprocessable(&issues));
    }
    Ok(())
}

/// The Task: with the ServiceRequest its focus names, the referral, received whole — 201 with
/// the clinic's Task, 200 when it was received before, 202 while the patient match waits for
/// review. A focus that names no ServiceRequest held here is 422 (send it first).
async fn task(
    state: &FhirState,
    caller: &Caller,
    headers: &HeaderMap,
    params: &[(String, String)],
    task: &Value,
    placer: &crate::domain::ExternalIdentifier,
) -> Result<Response, ApiError> {
    let (focus_id, focus_identifier) = mapping::focus_of(task);
    let held_id = focus_id.as_deref().and_then(|id| id.parse().ok());
    let held = intake::held_request(state, held_id, focus_identifier.as_ref()).await?;
    let base = base_url(state, headers);
    let Some((held_id, request)) = held else {
        // Sent again after its referral was received: the intake found by its placer identifier.
        if let Some(found) = intake::intake_of_task(state, placer).await? {
            let answer = outcome(
                "information",
                "duplicate",
                &format!(
                    "this referral was received before (intake {}); nothing was added",
                    found.id
                ),
            );
            let response = fhir_json(StatusCode::OK, &answer, pretty(params));
            return Ok(match found.referral_id {
                Some(referral) => located(response, &format!("{base}/Task/{referral}")),
                None => response,
            });
        }
        return Err(ApiError::unprocessable(&[crate::validation::Issue {
            severity: crate::validation::Severity::Error,
            code: "not-found",
            message: "names no ServiceRequest received here: POST the referral's ServiceRequest first and name it as answered (ServiceRequest/{id}) or by its placer identifier, or send both in one transaction".into(),
            expression: "Task.focus".into(),
        }]));
    };
    let (bundle, message) = mapping::restful_referral(task, &request, &held_id.to_string())
        .map_err(|e| write::mapping_error(&e))?;
    let answer = messaging::receive(state, caller, &bundle, &message, Some(held_id)).await?;
    let code = answer.outcome["issue"][0]["code"]
        .as_str()
        .unwrap_or_default();
    let status = match (code, &answer.task) {
        (_, None) => StatusCode::ACCEPTED,
        ("duplicate", _) => StatusCode::OK,
        _ => StatusCode::CREATED,
    };
    let response = fhir_json(status, &answer.outcome, pretty(params));
    Ok(match &answer.task {
        Some(id) => located(response, &format!("{base}/Task/{id}")),
        None => response,
    })
}

fn located(mut response: Response, location: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}
