//! Who is asking and what they may do, inside the API: the caller (principal and request, put
//! in the request by the HTTP edge), the scope each interaction needs, and the audit record of
//! each disclosure or refusal. A refused scope is audited; an audit that cannot be written
//! fails the request (fail closed).

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde_json::Value;

use super::{ApiError, FhirState};
use crate::audit::{self, Event, RequestContext};
use crate::auth::{Letter, Principal};
use crate::disclose::{Audience, Gate, Verdict};
use crate::domain::{AuditInteraction, AuditOutcome, AuditRecord};
use crate::read_cache::Seen;

/// The authenticated caller of a FHIR request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub context: RequestContext,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // The authentication middleware puts the principal in; a route without it is a wiring
        // bug, answered 500 rather than served unauthenticated.
        let principal = parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| {
                tracing::error!("a protected route ran without an authenticated principal");
                ApiError::internal()
            })?;
        let context = parts
            .extensions
            .get::<RequestContext>()
            .cloned()
            .unwrap_or_default();
        Ok(Self { principal, context })
    }
}

impl Caller {
    fn record(&self, event: Event<'_>, resources: &[&Value]) -> AuditRecord {
        audit::record(&self.principal, &self.context, event, resources)
    }

    /// The audit record of a write of `resources`, for the write's own transaction.
    pub fn write_record(
        &self,
        interaction: AuditInteraction,
        resource_type: &str,
        resources: &[&Value],
    ) -> AuditRecord {
        self.record(Event::success(interaction, resource_type), resources)
    }
}

/// 403 unless the caller's scopes allow `letter` on `resource_type`; the refusal is audited.
pub async fn require(
    state: &FhirState,
    caller: &Caller,
    resource_type: &str,
    letter: Letter,
    interaction: AuditInteraction,
) -> Result<(), ApiError> {
    require_any(state, caller, resource_type, &[letter], interaction).await
}

/// 403 unless one of `letters` is allowed on `resource_type`.
pub async fn require_any(
    state: &FhirState,
    caller: &Caller,
    resource_type: &str,
    letters: &[Letter],
    interaction: AuditInteraction,
) -> Result<(), ApiError> {
    if letters
        .iter()
        .any(|l| caller.principal.scopes.permits(resource_type, *l))
    {
        return Ok(());
    }
    let wanted: String = letters.iter().map(|l| l.char()).collect();
    let message = format!(
        "the access token's scopes do not allow this: it needs system/{resource_type}.{wanted}"
    );
    let record = caller.record(
        Event {
            interaction,
            outcome: AuditOutcome::Refused,
            outcome_desc: Some(format!("scope system/{resource_type}.{wanted} not granted")),
            resource_type: Some(resource_type),
            query: None,
            consents: Vec::new(),
        },
        &[],
    );
    append(state, record).await?;
    tracing::info!(client = %caller.principal.client_id, resource_type, "refused: scope not granted");
    Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", message))
}

/// The disclosure gate for one request of this caller: the recipient is the client's
/// organization, the purpose its purpose of use (TREAT when none is registered). One of the
/// clinic's own applications is the clinic itself, not a recipient (42 CFR 2.12(c)(3):
/// communications within the program are not disclosures): unfiltered, and audited.
pub async fn gate(state: &FhirState, caller: &Caller) -> Result<Gate, ApiError> {
    let seen = fresh(state).await?;
    Ok(gate_as_of(state, caller, seen))
}

/// The read cache brought up to date with the change log, for this request.
pub async fn fresh(state: &FhirState) -> Result<Seen, ApiError> {
    Ok(state.read_cache.refresh(&state.store).await?)
}

/// `gate`, for a request that has brought the read cache up to date already (`fresh`).
pub fn gate_as_of(state: &FhirState, caller: &Caller, seen: Seen) -> Gate {
    let principal = &caller.principal;
    let audience = Audience::of(
        principal.open_access || principal.clinic_app,
        principal.organization_id.as_deref(),
        principal.purpose_of_use.as_deref(),
    );
    Gate::new(
        audience,
        (*state.consent_policy).clone(),
        chrono::Utc::now().date_naive(),
    )
    .with_cache(std::sync::Arc::clone(&state.read_cache), seen)
}

/// A resource the gate withholds is answered as if it did not exist (its existence must not
/// leak); the refusal is audited with the decision, for the clinic's eyes only.
pub async fn withheld(
    state: &FhirState,
    caller: &Caller,
    interaction: AuditInteraction,
    resource_type: &str,
    id: &str,
    verdict: &Verdict,
) -> ApiError {
    let record = caller.record(
        Event {
            interaction,
            outcome: AuditOutcome::Refused,
            outcome_desc: Some(format!(
                "withheld by consent: {}",
                verdict.why.as_deref().unwrap_or("denied")
            )),
            resource_type: Some(resource_type),
            query: None,
            consents: verdict.consent.iter().cloned().collect(),
        },
        &[],
    );
    if let Err(err) = append(state, record).await {
        return err;
    }
    ApiError::not_found(format!("{resource_type}/{id} is not known"))
}

/// Records that `resources` were disclosed to the caller, before they are sent.
pub async fn disclosed(
    state: &FhirState,
    caller: &Caller,
    event: Event<'_>,
    resources: &[&Value],
) -> Result<(), ApiError> {
    append(state, caller.record(event, resources)).await
}

async fn append(state: &FhirState, record: AuditRecord) -> Result<(), ApiError> {
    state.audit.append(record).await.map_err(|err| {
        tracing::error!(error = %err, "the audit record could not be written: request refused");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "transient",
            "the audit trail could not be written, so nothing is disclosed; try again",
        )
    })
}
