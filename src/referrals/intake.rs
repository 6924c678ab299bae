//! A referral received: validated, matched to a client, and stored with its intake record in one
//! transaction — or found to be a resend (nothing added), or left for review when the patient
//! could be several clients (nothing merged).

use serde_json::{Value, json};

use crate::domain::{
    AuditRecord, Client, ExternalIdentifier, HeldReferralRequest, Id, IntakeState, Mrn,
    NonEmptyText, Organization, OrganizationKind, PatientMatch, Referral, ReferralDirection,
    ReferralIntake, ReferralKind, ReferralStatus, match_patient,
};
use crate::fhir_api::{ApiError, FhirState};
use crate::mapping::{self, ReferralMessage};
use crate::store::{Record, StoreError, Tx};

use super::REQUEST_IDENTIFIERS;

/// How many clients born on the same day a match looks at (more would be a sign of test data or
/// an attack; the match is then ambiguous rather than slow).
const MAX_CANDIDATES: i64 = 50;
/// How often the intake transaction runs when a racing writer took a key (the resend of the same
/// message at the same moment; the retry finds it).
const ATTEMPTS: usize = 4;

/// What became of a referral message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Stored: the referral (its Task is `received`), for a client found or created.
    Stored {
        referral: Id<Referral>,
        client: Id<Client>,
        state: IntakeState,
    },
    /// The same referral (same message identifier or placer identifier) came before: nothing
    /// was added. The intake found, with its referral if it has one yet.
    AlreadyReceived(ReferralIntake),
    /// The patient could be several clients: it waits for a person (`referrals match`).
    AwaitingReview {
        intake: Id<ReferralIntake>,
        candidates: usize,
    },
}

/// Checks a referral message against the base definitions (every entry, references between
/// them) and its Patient against the inbound Patient profile; 422 with every issue otherwise.
pub fn validate(
    state: &FhirState,
    bundle: &Value,
    message: &ReferralMessage,
) -> Result<(), ApiError> {
    let mut issues = state.validator.validate(
        bundle,
        &["http://hl7.org/fhir/StructureDefinition/Bundle".to_owned()],
    );
    issues.extend(patient_issues(
        state,
        &message.patient,
        "the referral's Patient",
    ));
    if issues.iter().any(crate::validation::Issue::is_error) {
        return Err(ApiError::unprocessable(&issues));
    }
    Ok(())
}

/// The referred Patient against the inbound Patient profile, each location prefixed with
/// `which` (the Patient sits inside a Bundle or a ServiceRequest).
pub fn patient_issues(
    state: &FhirState,
    patient: &Value,
    which: &str,
) -> Vec<crate::validation::Issue> {
    let validator = &state.validator;
    let Some(profile) = validator.iop_profiles().inbound_of_type("Patient") else {
        return Vec::new();
    };
    validator
        .validate(patient, &[profile.to_owned()])
        .into_iter()
        .map(|mut issue| {
            issue.expression = format!("({which}) {}", issue.expression);
            issue
        })
        .collect()
}

/// Stores a validated referral message (`raw` as received), in one transaction. `held`: the
/// ServiceRequest held for this referral's Task (the RESTful way), which the intake takes over:
/// its id becomes the intake's and the referral's, and its row goes in the same transaction.
pub async fn receive(
    state: &FhirState,
    message: &ReferralMessage,
    raw: &Value,
    held: Option<Id<HeldReferralRequest>>,
    audit: impl Fn(&Value) -> Option<AuditRecord>,
) -> Result<Received, ApiError> {
    let intake_id: Id<ReferralIntake> =
        Id::from_uuid(held.map_or_else(uuid::Uuid::now_v7, |h| h.uuid()));
    for attempt in 1..=ATTEMPTS {
        let mut tx = state.store.begin().await?;
        match receive_in(&mut tx, state, message, raw, intake_id, held, &audit).await {
            Ok(received) => {
                if !matches!(received, Received::AlreadyReceived(_)) {
                    tx.commit().await?;
                }
                return Ok(received);
            }
            Err(Failure::Store(StoreError::Duplicate { .. })) if attempt < ATTEMPTS => continue,
            Err(failure) => return Err(failure.into()),
        }
    }
    Err(ApiError::internal())
}

/// What became of a referral's ServiceRequest sent on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// Held (under this id) until its Task arrives.
    New(Id<HeldReferralRequest>),
    /// The same ServiceRequest (same placer identifier) is held already: nothing added.
    AlreadyHeld(Id<HeldReferralRequest>),
    /// Its referral was received already (its ServiceRequest is the referral's): nothing added.
    AlreadyReferred(Id<Referral>),
}

/// Holds a referral's ServiceRequest (checked by the caller; `placer` its placer identifier)
/// until the Task that focuses it arrives; once per placer identifier.
pub async fn hold(
    state: &FhirState,
    request: &Value,
    placer: &ExternalIdentifier,
) -> Result<Held, ApiError> {
    let placer_key = NonEmptyText::parse(&key(placer)).map_err(|_| {
        ApiError::bad_request(
            "the placer identifier (ServiceRequest.identifier PLAC) is longer than 4,000 characters",
        )
    })?;
    for attempt in 1..=ATTEMPTS {
        let mut tx = state.store.begin().await?;
        if let Some(referral) = tx.record_by_identifier(REQUEST_IDENTIFIERS, placer).await? {
            let referral = referral.parse().map_err(|_| ApiError::internal())?;
            return Ok(Held::AlreadyReferred(referral));
        }
        if let Some(found) = tx.held_request_by_key(placer_key.as_str()).await? {
            return Ok(Held::AlreadyHeld(found.record.id));
        }
        let held = HeldReferralRequest {
            id: Id::from_uuid(uuid::Uuid::now_v7()),
            placer_key: placer_key.clone(),
            resource: request.to_string(),
        };
        match tx.insert(&held).await {
            Ok(_) => {
                tx.commit().await?;
                return Ok(Held::New(held.id));
            }
            // A resend racing this one took the key: the next attempt finds it.
            Err(StoreError::Duplicate { .. }) if attempt < ATTEMPTS => continue,
            Err(err) => return Err(err.into()),
        }
    }
    Err(ApiError::internal())
}

/// The ServiceRequest held under `id`, else the one held with `placer` as its identifier.
pub async fn held_request(
    state: &FhirState,
    id: Option<Id<HeldReferralRequest>>,
    placer: Option<&ExternalIdentifier>,
) -> Result<Option<(Id<HeldReferralRequest>, Value)>, ApiError> {
    let mut tx = state.store.begin().await?;
    let found = match (id, placer) {
        (Some(id), _) => tx.get(id).await?,
        (None, Some(placer)) => tx.held_request_by_key(&key(placer)).await?,
        (None, None) => None,
    };
    let Some(found) = found else { return Ok(None) };
    let resource = serde_json::from_str(&found.record.resource)
        .map_err(|_| ApiError::bad_request("the held ServiceRequest is not JSON"))?;
    Ok(Some((found.record.id, resource)))
}

/// The intake of a referral whose Task has this placer identifier, if it was received.
pub async fn intake_of_task(
    state: &FhirState,
    placer: &ExternalIdentifier,
) -> Result<Option<ReferralIntake>, ApiError> {
    let mut tx = state.store.begin().await?;
    Ok(tx
        .intake_by_keys(None, &key(placer))
        .await?
        .map(|found| found.record))
}

/// The Patient of a stored message (what `referrals show` compares with the candidates).
pub fn message_patient(intake: &ReferralIntake) -> Option<Value> {
    let raw: Value = serde_json::from_str(&intake.message).ok()?;
    read_any(&raw).ok().map(|m| m.patient)
}

/// Finishes an intake that waited for review with the client a person chose (or a new client).
pub async fn resolve_review(
    state: &FhirState,
    intake: Id<ReferralIntake>,
    client: Option<Id<Client>>,
    audit: impl Fn(&Value) -> Option<AuditRecord>,
) -> Result<Received, ApiError> {
    let mut tx = state.store.begin().await?;
    let stored = tx
        .get_for_update(intake)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no referral intake {intake}")))?;
    if stored.record.state != IntakeState::Review {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "business-rule",
            "this referral is not waiting for review",
        ));
    }
    let raw: Value = serde_json::from_str(&stored.record.message)
        .map_err(|_| ApiError::bad_request("the stored referral message is not JSON"))?;
    let message = read_any(&raw).map_err(|e| mapping_error(&e))?;
    let (client, state_after) = match client {
        Some(client) => {
            if tx.get(client).await?.is_none() {
                return Err(ApiError::not_found(format!("no client {client}")));
            }
            (client, IntakeState::Matched)
        }
        None => (
            create_client(&mut tx, state, &message, intake).await?,
            IntakeState::NewClient,
        ),
    };
    let referral = store_referral(&mut tx, &message, client, intake).await?;
    let intake_row = ReferralIntake {
        state: state_after,
        referral_id: Some(referral.id),
        candidates: Vec::new(),
        ..stored.record
    };
    tx.update(&intake_row, stored.meta.version).await?;
    if let Some(record) = audit(&task_stub(&referral)) {
        tx.append_audit(&record).await?;
    }
    tx.commit().await?;
    Ok(Received::Stored {
        referral: referral.id,
        client,
        state: state_after,
    })
}

/// A stored message read again: a `message` Bundle, or a transaction holding a referral.
fn read_any(raw: &Value) -> Result<ReferralMessage, mapping::MappingError> {
    if raw.get("type").and_then(Value::as_str) == Some("message") {
        mapping::referral_message(raw)
    } else {
        mapping::referral_transaction(raw).unwrap_or_else(|| {
            Err(mapping::MappingError::Missing {
                path: "Bundle.entry (a referral Task)".into(),
            })
        })
    }
}

enum Failure {
    Api(ApiError),
    Store(StoreError),
}
impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}
impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}
impl From<Failure> for ApiError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Api(e) => e,
            Failure::Store(e) => e.into(),
        }
    }
}

fn mapping_error(err: &mapping::MappingError) -> ApiError {
    ApiError::unprocessable(&[crate::validation::Issue {
        severity: crate::validation::Severity::Error,
        code: "invalid",
        message: err.to_string(),
        expression: err.path().to_owned(),
    }])
}

async fn receive_in(
    tx: &mut Tx,
    state: &FhirState,
    message: &ReferralMessage,
    raw: &Value,
    intake_id: Id<ReferralIntake>,
    held: Option<Id<HeldReferralRequest>>,
    audit: &impl Fn(&Value) -> Option<AuditRecord>,
) -> Result<Received, Failure> {
    // Keys longer than the store keeps are refused, never shortened (two referrals would share
    // one).
    let too_long =
        |what: &str| ApiError::bad_request(format!("the {what} is longer than 4,000 characters"));
    let placer_key = NonEmptyText::parse(&key(&message.placer))
        .map_err(|_| too_long("placer identifier (Task.identifier PLAC)"))?;
    let message_key = message
        .message_key
        .as_deref()
        .map(NonEmptyText::parse)
        .transpose()
        .map_err(|_| too_long("message identifier (Bundle.identifier)"))?;
    if let Some(found) = tx
        .intake_by_keys(
            message_key.as_ref().map(NonEmptyText::as_str),
            placer_key.as_str(),
        )
        .await?
    {
        return Ok(Received::AlreadyReceived(found.record));
    }
    // Two Tasks (different placer identifiers) for one held ServiceRequest: the first one made
    // the intake.
    if let Some(found) = tx.get(intake_id).await? {
        return Ok(Received::AlreadyReceived(found.record));
    }
    if let Some(held) = held
        && let Some(row) = tx.get(held).await?
    {
        tx.delete(held, row.meta.version).await?;
    }
    let matched = match client_by_identifier(tx, state, &message.patient).await? {
        Some(client) => PatientMatch::Exact(client),
        None => {
            let incoming = incoming_client(state, message, intake_id)?;
            let candidates = tx
                .clients_born_on(incoming.birth_date, MAX_CANDIDATES)
                .await?;
            match_patient(&incoming, &candidates)
        }
    };
    let new_intake = |state, referral_id, candidates| ReferralIntake {
        id: intake_id,
        message_key: message_key.clone(),
        placer_key: placer_key.clone(),
        state,
        referral_id,
        candidates,
        message: raw.to_string(),
        source_task: message.source_task.clone(),
        source_request: message.source_request.clone(),
    };
    let (client, intake_state) = match matched {
        PatientMatch::Exact(client) => (client, IntakeState::Linked),
        PatientMatch::NoMatch => (
            create_client(tx, state, message, intake_id).await?,
            IntakeState::NewClient,
        ),
        PatientMatch::Ambiguous(candidates) => {
            let count = candidates.len();
            tx.insert(&new_intake(IntakeState::Review, None, candidates))
                .await?;
            return Ok(Received::AwaitingReview {
                intake: intake_id,
                candidates: count,
            });
        }
    };
    let referral = store_referral(tx, message, client, intake_id).await?;
    tx.insert(&new_intake(intake_state, Some(referral.id), Vec::new()))
        .await?;
    if let Some(record) = audit(&task_stub(&referral)) {
        tx.append_audit(&record).await?;
    }
    Ok(Received::Stored {
        referral: referral.id,
        client,
        state: intake_state,
    })
}

fn key(identifier: &ExternalIdentifier) -> String {
    format!("{}|{}", identifier.system, identifier.value)
}

/// What the audit needs of a written referral: its Task's type, id and patient.
fn task_stub(referral: &Referral) -> Value {
    json!({
        "resourceType": "Task",
        "id": referral.id.to_string(),
        "for": { "reference": format!("Patient/{}", referral.client_id) },
    })
}

/// The client one of the Patient's identifiers already names: the clinic's MRN, or an
/// identifier another system gave the client before.
async fn client_by_identifier(
    tx: &mut Tx,
    state: &FhirState,
    patient: &Value,
) -> Result<Option<Id<Client>>, StoreError> {
    let mrn_system = state.mapping.system("mrn");
    for identifier in mapping::external_identifiers(&state.mapping, patient) {
        if let Some(id) = tx.record_by_identifier(Client::TABLE, &identifier).await? {
            return Ok(id.parse().ok());
        }
    }
    let listed = patient.get("identifier").and_then(Value::as_array);
    for identifier in listed.into_iter().flatten() {
        let system = identifier.get("system").and_then(Value::as_str);
        let value = identifier.get("value").and_then(Value::as_str);
        if let (Some(system), Some(value)) = (system, value)
            && system == mrn_system
            && let Ok(mrn) = Mrn::parse(value)
            && let Some(id) = tx.client_id_by_mrn(&mrn).await?
        {
            return Ok(id.parse().ok());
        }
    }
    Ok(None)
}

/// The referred patient as a new client of the clinic: a clinic MRN of its own (the sender's
/// identifiers are kept beside it, so the next referral finds the client by them).
fn incoming_client(
    state: &FhirState,
    message: &ReferralMessage,
    intake: Id<ReferralIntake>,
) -> Result<Client, ApiError> {
    let mut patient = message.patient.clone();
    let mrn = format!(
        "REF-{}",
        intake.uuid().simple().to_string()[..12].to_uppercase()
    );
    let own = json!({ "system": state.mapping.system("mrn"), "value": mrn });
    match patient.get_mut("identifier").and_then(Value::as_array_mut) {
        Some(list) => list.insert(0, own),
        None => patient["identifier"] = json!([own]),
    }
    patient["id"] = json!(intake.to_string());
    mapping::client_from_fhir(&state.mapping, &patient).map_err(|e| mapping_error(&e))
}

async fn create_client(
    tx: &mut Tx,
    state: &FhirState,
    message: &ReferralMessage,
    intake: Id<ReferralIntake>,
) -> Result<Id<Client>, ApiError> {
    let client = incoming_client(state, message, intake)?;
    tx.insert(&client).await?;
    let identifiers = mapping::external_identifiers(&state.mapping, &message.patient);
    tx.set_identifiers(Client::TABLE, &client.id.to_string(), &identifiers)
        .await?;
    Ok(client.id)
}

/// The referring organization: found by NPI or name, else recorded as a new inpatient provider.
async fn sender_organization(
    tx: &mut Tx,
    message: &ReferralMessage,
) -> Result<Id<Organization>, StoreError> {
    let sender = &message.sender;
    if let Some(id) = tx
        .partner_organization(sender.npi.as_deref(), sender.name.as_deref())
        .await?
    {
        return Ok(id);
    }
    let organization = Organization {
        id: Id::from_uuid(uuid::Uuid::now_v7()),
        kind: OrganizationKind::InpatientHospital,
        name: sender
            .name
            .as_deref()
            .and_then(|n| NonEmptyText::parse(n).ok())
            .unwrap_or_else(|| {
                NonEmptyText::parse("Referring organization (name not sent)").expect("a constant")
            }),
        npi: sender
            .npi
            .as_deref()
            .and_then(|n| NonEmptyText::parse(n).ok()),
        phone: None,
        address: None,
    };
    tx.insert(&organization).await?;
    Ok(organization.id)
}

/// The referral, received and not yet decided, with the sender's identifiers of its Task and
/// ServiceRequest (so the hospital finds them by its own identifiers).
async fn store_referral(
    tx: &mut Tx,
    message: &ReferralMessage,
    client: Id<Client>,
    intake: Id<ReferralIntake>,
) -> Result<Referral, ApiError> {
    let clinic = tx.clinic_organization().await?.ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "not-found",
            "the clinic database has no clinic organization to receive referrals",
        )
    })?;
    let referral = Referral {
        id: Id::from_uuid(intake.uuid()),
        client_id: client,
        direction: ReferralDirection::Inbound,
        kind: ReferralKind::StepDown,
        status: ReferralStatus::Received,
        reason: message.reason.clone(),
        referred_on: message.referred_on,
        decided_on: None,
        referring_org_id: sender_organization(tx, message).await?,
        receiving_org_id: clinic,
        program_id: None,
        status_reason: None,
        transition_summary: Vec::new(),
    };
    tx.insert(&referral).await?;
    let id = referral.id.to_string();
    tx.set_identifiers(Referral::TABLE, &id, &message.task_identifiers)
        .await?;
    tx.set_identifiers(REQUEST_IDENTIFIERS, &id, &message.request_identifiers)
        .await?;
    Ok(referral)
}
