//! FHIR messaging: `POST /fhir/$process-message` with a BSeR referral message (synchronous
//! only). The referral goes to `referrals::intake`; the answer is a response message naming the
//! clinic's Task for it, or an OperationOutcome (4xx) when the message is refused.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::access::{self, Caller};
use super::{ApiError, FhirState, base_url, check_accept, fhir_json, off_thread, pretty, write};
use crate::auth::Letter;
use crate::domain::{AuditInteraction, HeldReferralRequest, Id, IntakeState};
use crate::mapping::{self, ReferralMessage};
use crate::referrals::intake::{self, Received};

pub(super) async fn process_message(
    state: &FhirState,
    caller: &Caller,
    headers: &HeaderMap,
    params: &[(String, String)],
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    check_accept(headers, params)?;
    require_referral_scopes(state, caller).await?;
    if let Some((name, _)) = params.iter().find(|(k, v)| k == "async" && v == "true") {
        return Err(ApiError::not_supported(
            StatusCode::BAD_REQUEST,
            format!("{name}=true: messages are processed synchronously here; leave it out"),
        ));
    }
    write::check_content_type(headers)?;
    let body = write::body(state, body)?;
    let bundle: Value =
        serde_json::from_slice(&body).map_err(|_| ApiError::bad_request("the body is not JSON"))?;
    let message = mapping::referral_message(&bundle).map_err(|e| write::mapping_error(&e))?;
    let answer = receive(state, caller, &bundle, &message, None).await?;
    let header = message.header_id.as_deref().unwrap_or_default();
    let response = mapping::response_message(
        header,
        &uuid::Uuid::new_v4().to_string(),
        answer.task.as_deref(),
        &base_url(state, headers),
        &answer.outcome,
        &crate::domain::Timestamp::now().to_string(),
    );
    Ok(fhir_json(StatusCode::OK, &response, pretty(params)))
}

/// A referral sent the RESTful way: a `transaction` Bundle holding the referral Task (PLAC
/// identifier, code fulfill) and its ServiceRequest, Patient and requester. Taken whole by the
/// intake (as a message would be): the answer is a `transaction-response` whose Task and
/// ServiceRequest entries name the clinic's (201, or 200 when it was received before; 202 while
/// it waits for a patient-match review), and whose other entries say they were taken with it.
pub(super) async fn referral_transaction(
    state: &FhirState,
    caller: &Caller,
    params: &[(String, String)],
    bundle: &Value,
    message: &ReferralMessage,
) -> Result<Response, ApiError> {
    require_referral_scopes(state, caller).await?;
    let answer = receive(state, caller, bundle, message, None).await?;
    let code = answer.outcome["issue"][0]["code"]
        .as_str()
        .unwrap_or_default();
    let status = match (code, &answer.task) {
        (_, None) => "202 Accepted",
        ("duplicate", _) => "200 OK",
        _ => "201 Created",
    };
    let entries: Vec<Value> = bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|entry| {
            let kind = entry["resource"]["resourceType"].as_str().unwrap_or_default();
            match (kind, &answer.task) {
                ("Task" | "ServiceRequest", Some(id)) => json!({ "response": {
                    "status": status,
                    "location": format!("{kind}/{id}"),
                    "outcome": answer.outcome,
                }}),
                ("Task" | "ServiceRequest", None) => json!({ "response": {
                    "status": status,
                    "outcome": answer.outcome,
                }}),
                _ => json!({ "response": {
                    "status": "200 OK",
                    "outcome": outcome(
                        "information",
                        "informational",
                        "taken with the referral (the patient matched or recorded as a client; the rest kept with the referral as received)",
                    ),
                }}),
            }
        })
        .collect();
    let response = json!({
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": entries,
    });
    Ok(fhir_json(StatusCode::OK, &response, pretty(params)))
}

/// What the referral's answer says, whichever way it came.
pub(super) struct Answer {
    /// The clinic's Task for the referral (not yet, while it waits for review).
    pub task: Option<String>,
    pub outcome: Value,
}

/// Validates (off the async workers) and stores a referral, and says what happened.
pub(super) async fn receive(
    state: &FhirState,
    caller: &Caller,
    bundle: &Value,
    message: &ReferralMessage,
    held: Option<Id<HeldReferralRequest>>,
) -> Result<Answer, ApiError> {
    {
        let (state, bundle, message) = (state.clone(), bundle.clone(), message.clone());
        off_thread(move || intake::validate(&state, &bundle, &message)).await??;
    }
    let received = intake::receive(state, message, bundle, held, |task| {
        Some(caller.write_record(AuditInteraction::Create, "Task", &[task]))
    })
    .await?;
    Ok(match received {
        Received::Stored {
            referral,
            state: how,
            ..
        } => {
            tracing::info!(%referral, intake = how.code(), "referral received");
            let how = match how {
                IntakeState::NewClient => "for a new client",
                _ => "for a client the clinic knows",
            };
            Answer {
                task: Some(referral.to_string()),
                outcome: outcome(
                    "information",
                    "informational",
                    &format!(
                        "referral received {how}; its Task is received (BSeR 2.0) until the clinic decides"
                    ),
                ),
            }
        }
        Received::AlreadyReceived(found) => {
            tracing::info!(intake = %found.id, "referral received again; nothing added");
            Answer {
                task: found.referral_id.map(|r| r.to_string()),
                outcome: outcome(
                    "information",
                    "duplicate",
                    &format!(
                        "this referral was received before (intake {}); nothing was added",
                        found.id
                    ),
                ),
            }
        }
        Received::AwaitingReview { intake, candidates } => {
            tracing::info!(%intake, candidates, "referral waits for a patient-match review");
            Answer {
                task: None,
                outcome: outcome(
                    "warning",
                    "multiple-matches",
                    &format!(
                        "referral received (intake {intake}); the patient could be more than one of the clinic's clients, so it waits for the clinic to confirm who (nothing was merged)"
                    ),
                ),
            }
        }
    })
}

/// A referral creates a Task and a ServiceRequest: the caller needs both scopes.
pub(super) async fn require_referral_scopes(
    state: &FhirState,
    caller: &Caller,
) -> Result<(), ApiError> {
    for resource_type in ["Task", "ServiceRequest"] {
        access::require(
            state,
            caller,
            resource_type,
            Letter::Create,
            AuditInteraction::Create,
        )
        .await?;
    }
    Ok(())
}

pub(super) fn outcome(severity: &str, code: &str, text: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{ "severity": severity, "code": code, "diagnostics": text }],
    })
}
