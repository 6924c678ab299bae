//! `GET /fhir/Bundle/{id}`: the feedback document of a referral the clinic received and
//! fulfilled (HL7 BSeR), at the referral's id — the one its Task's output names. It is not
//! stored: it is built for each reader from the stay the referral led to, as the reader's
//! consents allow (`referrals::feedback`), so a consent revoked today shows today. A referral
//! without one (not fulfilled, sent by the clinic, withheld from this reader) is 404.

use axum::http::StatusCode;
use axum::response::Response;

use super::access::{self, Caller};
use super::{ApiError, FhirState, assembler, fhir_json, find, pretty};
use crate::audit::Event;
use crate::auth::Letter;
use crate::domain::AuditInteraction;
use crate::referrals::feedback;

pub(super) async fn read(
    state: &FhirState,
    caller: &Caller,
    id: &str,
    params: &[(String, String)],
) -> Result<Response, ApiError> {
    access::require(
        state,
        caller,
        "Bundle",
        Letter::Read,
        AuditInteraction::Read,
    )
    .await?;
    let not_found = || {
        ApiError::not_found(format!(
            "Bundle/{id} is not known: the Bundles served here are the feedback documents of fulfilled referrals, at the referral's id"
        ))
    };
    let task = find(state, "Task", id)
        .await?
        .filter(feedback::has_feedback)
        .ok_or_else(not_found)?;
    let mut gate = access::gate(state, caller).await?;
    let verdict = gate.permits(&state.store, &task).await?;
    if !verdict.permit {
        return Err(access::withheld(
            state,
            caller,
            AuditInteraction::Read,
            "Bundle",
            id,
            &verdict,
        )
        .await);
    }
    let mut task = task;
    gate.redact(&mut task);
    let assembler = assembler(state);
    let stay = feedback::stay(&state.store, &assembler, &mut gate, id, &task).await?;
    let document = stay.document(
        &state.mapping,
        id,
        task["for"].clone(),
        task["focus"].clone(),
    );
    let mut consents = gate.consents_used().to_vec();
    consents.extend(verdict.consent);
    let mut sources = vec![&task];
    sources.extend(stay.sources());
    access::disclosed(
        state,
        caller,
        Event::success(AuditInteraction::Read, "Bundle").with_consents(&consents),
        &sources,
    )
    .await?;
    tracing::info!(referral = %id, parts = sources.len(), "referral feedback document read");
    Ok(fhir_json(StatusCode::OK, &document, pretty(params)))
}
