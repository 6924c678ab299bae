//! The accounting of disclosures: one `AuditRecord` per request that reads, searches, changes
//! or could have disclosed PHI, and per token issued or refused (HIPAA, 42 CFR Part 2 §2.25).
//! Records are built here from who asked and what was given; the store keeps them append-only;
//! `mapping::audit` shows them as IHE BALP AuditEvents.

use serde_json::Value;

use crate::auth::Principal;
use crate::domain::{ApiClient, AuditInteraction, AuditOutcome, AuditRecord, Timestamp};
use crate::mapping;

/// The request an audit record is about, as the HTTP edge saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    /// Also sent back in the `X-Request-Id` header.
    pub request_id: String,
    /// The peer's IP address.
    pub source_address: Option<String>,
}

/// What one audited request did.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub interaction: AuditInteraction,
    pub outcome: AuditOutcome,
    pub outcome_desc: Option<String>,
    pub resource_type: Option<&'a str>,
    pub query: Option<String>,
    /// The consents that allowed what is disclosed (from the disclosure gate).
    pub consents: Vec<String>,
}

impl<'a> Event<'a> {
    pub fn success(interaction: AuditInteraction, resource_type: &'a str) -> Self {
        Self {
            interaction,
            outcome: AuditOutcome::Success,
            outcome_desc: None,
            resource_type: Some(resource_type),
            query: None,
            consents: Vec::new(),
        }
    }
    pub fn with_consents(mut self, consents: &[String]) -> Self {
        self.consents = consents.to_vec();
        self
    }
    pub fn with_query(mut self, params: &[(String, String)]) -> Self {
        self.query = Some(serde_urlencoded::to_string(params).unwrap_or_default());
        self
    }
}

/// The record of `event` by `principal`, disclosing or changing `resources`.
pub fn record(
    principal: &Principal,
    context: &RequestContext,
    event: Event<'_>,
    resources: &[&Value],
) -> AuditRecord {
    let mut entities = Vec::new();
    let mut patients = Vec::new();
    for resource in resources {
        if let (Some(t), Some(id)) = (
            resource.get("resourceType").and_then(Value::as_str),
            resource.get("id").and_then(Value::as_str),
        ) {
            entities.push(format!("{t}/{id}"));
        }
        patients.extend(mapping::audit::patients_of(resource));
    }
    patients.sort();
    patients.dedup();
    AuditRecord {
        id: uuid::Uuid::now_v7().to_string(),
        recorded: Timestamp::now(),
        interaction: event.interaction,
        outcome: event.outcome,
        outcome_desc: event.outcome_desc,
        client_id: Some(principal.client_id.clone()),
        organization_id: principal.organization_id.clone(),
        purpose_of_use: principal.purpose_of_use.clone(),
        token_id: principal.token_id.clone(),
        request_id: Some(context.request_id.clone()),
        source_address: context.source_address.clone(),
        resource_type: event.resource_type.map(str::to_owned),
        query: event.query,
        entities,
        consents: event.consents,
        patients,
    }
}

/// The record of a token issued (with its id) or refused, for `client` when one is known.
pub fn token_record(
    context: &RequestContext,
    outcome: AuditOutcome,
    outcome_desc: Option<String>,
    client: Option<&ApiClient>,
    token_id: Option<String>,
) -> AuditRecord {
    AuditRecord {
        client_id: client.map(|c| c.client_id.to_string()),
        organization_id: client.and_then(|c| c.organization_id.clone()),
        purpose_of_use: client.map(|c| c.purpose_of_use.clone()),
        token_id,
        ..request_record(context, AuditInteraction::Token, outcome, outcome_desc)
    }
}

/// The record of a console operator's sign-in (`None`: a refused one, whose typed name is not
/// kept) or action, with the operator as `operator:NAME`.
pub fn operator_record(
    context: &RequestContext,
    operator: Option<&str>,
    interaction: AuditInteraction,
    outcome: AuditOutcome,
    outcome_desc: Option<String>,
) -> AuditRecord {
    AuditRecord {
        client_id: operator.map(|name| format!("operator:{name}")),
        ..request_record(context, interaction, outcome, outcome_desc)
    }
}

/// A record of one request that disclosed nothing: who and what are filled in by the caller.
fn request_record(
    context: &RequestContext,
    interaction: AuditInteraction,
    outcome: AuditOutcome,
    outcome_desc: Option<String>,
) -> AuditRecord {
    AuditRecord {
        id: uuid::Uuid::now_v7().to_string(),
        recorded: Timestamp::now(),
        interaction,
        outcome,
        outcome_desc,
        client_id: None,
        organization_id: None,
        purpose_of_use: None,
        token_id: None,
        request_id: (!context.request_id.is_empty()).then(|| context.request_id.clone()),
        source_address: context.source_address.clone(),
        resource_type: None,
        query: None,
        entities: Vec::new(),
        consents: Vec::new(),
        patients: Vec::new(),
    }
}
