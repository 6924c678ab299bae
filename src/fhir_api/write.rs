//! create, update, conditional create (`If-None-Exist`), conditional update
//! (`PUT /fhir/Patient?identifier=system|value`) and `$validate`.
//!
//! Order on every write: parse, check the type, validate against the IOP profile, map to a clinic
//! record, store in one transaction at the expected version. Nothing is written unless every step
//! passes. Two writers racing on the same identifier or version are settled by the database's
//! unique index and version check, never by a read-then-write in this process.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::capability::WRITABLE;
use super::{
    ApiError, FhirState, base_url, check_accept, fhir_json, find, known_type, pretty, query,
    version_headers,
};
use crate::domain::{
    Client, Consent, Enrollment, Goal, Id, Mrn, Referral, Session, SessionParticipant,
    SupportContact, TreatmentPlan,
};
use crate::mapping::{self, MappingConfig, MappingError, codes};
use crate::mapping::{GoalChanges, PlanChanges, TaskChanges};
use crate::store::Record;
use crate::store::{RowMeta, StoreError, Tx};
use crate::validation::{Issue, Severity, Validator};

/// The request body, or a 413/400 OperationOutcome.
pub(super) fn body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(status, "too-costly", "the request body is too large")
        } else {
            ApiError::bad_request("the request body could not be read")
        }
    })
}

/// 415 unless the body is declared as FHIR JSON (or plain JSON).
fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("application/fhir+json");
    if content_type.contains("json") {
        Ok(())
    } else {
        Err(ApiError::not_supported(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send resources as application/fhir+json",
        ))
    }
}

/// The body as a resource of `resource_type`.
fn parse_resource(body: &[u8], resource_type: &str) -> Result<Value, ApiError> {
    let resource: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body is not JSON: line {}, column {}",
            e.line(),
            e.column()
        ))
    })?;
    match resource.get("resourceType").and_then(Value::as_str) {
        Some(t) if t == resource_type => Ok(resource),
        Some(t) => Err(ApiError::bad_request(format!(
            "the body is a {t}, but the URL is for {resource_type}"
        ))),
        None => Err(ApiError::bad_request("the body has no resourceType")),
    }
}

fn writable(resource_type: &str) -> Result<(), ApiError> {
    known_type(resource_type)?;
    if WRITABLE.contains(&resource_type) {
        Ok(())
    } else {
        Err(ApiError::not_supported(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "{resource_type} is read-only through this API (writable: {})",
                WRITABLE.join(", ")
            ),
        ))
    }
}

/// Types that can be updated through the API but are created only with their plan, in the clinic.
/// (A referral's Task is created with its ServiceRequest: by the referral exchange.)
pub(super) const CREATED_IN_THE_CLINIC: &[&str] = &["CarePlan", "Goal", "Task"];

/// The id of a resource whose update changes a stored record (checked by the caller: the id is
/// the URL's, a UUID). A missing or malformed id names no record, so the update finds nothing.
fn resource_id<T>(resource: &Value) -> Id<T> {
    resource
        .get("id")
        .and_then(Value::as_str)
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| Id::from_uuid(uuid::Uuid::nil()))
}

pub(super) fn created_in_the_clinic(resource_type: &str) -> ApiError {
    let how = match resource_type {
        "Task" => {
            "a referral's Task is created with its ServiceRequest by the referral exchange; update an existing one (accept, decline, complete) with PUT"
        }
        "CarePlan" => "a treatment plan is created in the clinic; update an existing one with PUT",
        _ => {
            "a Goal is created with its treatment plan in the clinic; update an existing one with PUT"
        }
    };
    ApiError::not_supported(StatusCode::METHOD_NOT_ALLOWED, how)
}

/// The IOP profile a type is validated against on the way in.
fn iop_profile(resource_type: &str) -> String {
    let id = match resource_type {
        "Patient" => "iop-patient",
        "CarePlan" => "iop-careplan",
        "Goal" => "iop-goal",
        "Encounter" => "iop-encounter",
        "EpisodeOfCare" => "iop-episode-of-care",
        "RelatedPerson" => "iop-related-person",
        "Consent" => "iop-consent",
        "Practitioner" => "iop-practitioner",
        "Organization" => "iop-organization",
        "ServiceRequest" => "iop-referral-request",
        "Task" => "iop-referral-task",
        "HealthcareService" => "iop-program-service",
        "Group" => "iop-group",
        _ => "",
    };
    codes::profile(id)
}

/// A validated, mapped incoming resource: the clinic record it becomes.
pub(super) enum Inbound {
    Client(Client),
    Contact(SupportContact),
    Consent(Consent),
    /// A session and the support contacts who took part (its participant rows follow the list).
    Session(Session, Vec<Id<SupportContact>>),
    Enrollment(Enrollment),
    /// Changes to a stored goal (goals are created with their plan, in the clinic).
    Goal(Id<Goal>, GoalChanges),
    /// Changes to a stored treatment plan (plans are created in the clinic).
    Plan(Id<TreatmentPlan>, PlanChanges),
    /// A referral's Task: accepted, declined, completed... (the referral's status).
    Task(Id<Referral>, TaskChanges),
}

impl Inbound {
    /// The stored version of this record, or None if it does not exist yet.
    pub(super) async fn stored_version(&self, tx: &mut Tx) -> Result<Option<i64>, StoreError> {
        Ok(match self {
            Self::Client(r) => tx.get(r.id).await?.map(|s| s.meta.version),
            Self::Contact(r) => tx.get(r.id).await?.map(|s| s.meta.version),
            Self::Consent(r) => tx.get(r.id).await?.map(|s| s.meta.version),
            Self::Session(r, _) => tx.get(r.id).await?.map(|s| s.meta.version),
            Self::Enrollment(r) => tx.get(r.id).await?.map(|s| s.meta.version),
            Self::Goal(id, _) => tx.get(*id).await?.map(|s| s.meta.version),
            Self::Plan(id, _) => tx.get(*id).await?.map(|s| s.meta.version),
            Self::Task(id, _) => tx.get(*id).await?.map(|s| s.meta.version),
        })
    }

    pub(super) async fn insert(&self, tx: &mut Tx) -> Result<(), StoreError> {
        match self {
            Self::Client(r) => tx.insert(r).await?,
            Self::Contact(r) => tx.insert(r).await?,
            Self::Consent(r) => tx.insert(r).await?,
            Self::Enrollment(r) => tx.insert(r).await?,
            // Changes need a stored record; these are never created here (see CREATED_IN_THE_CLINIC).
            Self::Goal(id, _) => return Err(not_found(*id)),
            Self::Plan(id, _) => return Err(not_found(*id)),
            Self::Task(id, _) => return Err(not_found(*id)),
            Self::Session(session, contacts) => {
                tx.insert(session).await?;
                sync_participants(tx, session.id, contacts).await?;
                return Ok(());
            }
        };
        Ok(())
    }

    pub(super) async fn update(&self, tx: &mut Tx, expected: i64) -> Result<(), StoreError> {
        match self {
            Self::Client(r) => tx.update(r, expected).await?,
            Self::Contact(r) => tx.update(r, expected).await?,
            Self::Consent(r) => tx.update(r, expected).await?,
            // FHIR does not carry who referred the client: the stored value stays.
            Self::Enrollment(r) => {
                let mut r = r.clone();
                if let Some(stored) = tx.get(r.id).await? {
                    r.referral_source_id = stored.record.referral_source_id;
                }
                tx.update(&r, expected).await?
            }
            Self::Goal(id, changes) => {
                update_stored(tx, *id, expected, |g| changes.apply(g)).await?
            }
            Self::Plan(id, changes) => {
                update_stored(tx, *id, expected, |p| changes.apply(p)).await?
            }
            Self::Task(id, changes) => {
                update_stored(tx, *id, expected, |r| changes.apply(r)).await?
            }
            Self::Session(session, contacts) => {
                tx.update(session, expected).await?;
                sync_participants(tx, session.id, contacts).await?;
                return Ok(());
            }
        };
        Ok(())
    }
}

fn not_found<R: Record>(id: Id<R>) -> StoreError {
    StoreError::NotFound {
        table: R::TABLE,
        id: id.to_string(),
    }
}

/// Updates stored record `id` at version `expected` with what `change` makes of it.
async fn update_stored<R: Record>(
    tx: &mut Tx,
    id: Id<R>,
    expected: i64,
    change: impl FnOnce(&R) -> R,
) -> Result<RowMeta, StoreError> {
    let stored = tx.get(id).await?.ok_or_else(|| not_found(id))?;
    tx.update(&change(&stored.record), expected).await
}

/// Makes a session's participant rows the given contacts: removes the others, adds the new.
async fn sync_participants(
    tx: &mut Tx,
    session: Id<Session>,
    contacts: &[Id<SupportContact>],
) -> Result<(), StoreError> {
    let existing = tx.children::<SessionParticipant>(session).await?;
    for row in &existing {
        if !contacts.contains(&row.record.support_contact_id) {
            tx.delete(row.record.id, row.meta.version).await?;
        }
    }
    for contact in contacts {
        if !existing
            .iter()
            .any(|r| r.record.support_contact_id == *contact)
        {
            tx.insert(&SessionParticipant {
                id: Id::generate(),
                session_id: session,
                support_contact_id: *contact,
            })
            .await?;
        }
    }
    Ok(())
}

/// Validates against the IOP profile, then maps to a clinic record: 422 with every issue if
/// either refuses.
pub(super) fn inbound(
    state: &FhirState,
    resource_type: &str,
    resource: &Value,
) -> Result<Inbound, ApiError> {
    let issues = state
        .validator
        .validate(resource, &[iop_profile(resource_type)]);
    if issues.iter().any(Issue::is_error) {
        return Err(ApiError::unprocessable(&issues));
    }
    map_inbound(&state.mapping, resource_type, resource)
}

/// The body of a write to `resource_type` read as a handler reads it (a resource; for
/// `$validate` also a Parameters holding one), validated against the IOP profile when a
/// validator is given, and mapped to the clinic record it would become — without the database.
/// The entry point of the JSON reader and validator fuzz targets (`tests/fuzz.rs`).
#[doc(hidden)]
pub fn read_body(
    cfg: &MappingConfig,
    validator: Option<&Validator>,
    resource_type: &str,
    body: &[u8],
) -> Result<(), ApiError> {
    // `$validate`'s reader; its verdict does not decide what follows.
    let _ = parse_resource_or_parameters(body);
    let resource = parse_resource(body, resource_type)?;
    if let Some(validator) = validator {
        let issues = validator.validate(&resource, &[iop_profile(resource_type)]);
        if issues.iter().any(Issue::is_error) {
            return Err(ApiError::unprocessable(&issues));
        }
    }
    map_inbound(cfg, resource_type, &resource).map(|_| ())
}

/// A resource (checked by the caller) mapped to the clinic record it becomes.
fn map_inbound(
    cfg: &MappingConfig,
    resource_type: &str,
    resource: &Value,
) -> Result<Inbound, ApiError> {
    let mapped = match resource_type {
        "Patient" => mapping::client_from_fhir(cfg, resource).map(Inbound::Client),
        "RelatedPerson" => mapping::support_contact_from_fhir(resource).map(Inbound::Contact),
        "Consent" => mapping::consent_from_fhir(resource).map(Inbound::Consent),
        "EpisodeOfCare" => mapping::enrollment_from_fhir(resource).map(Inbound::Enrollment),
        "Goal" => mapping::goal_changes_from_fhir(resource)
            .map(|changes| Inbound::Goal(resource_id(resource), changes)),
        "CarePlan" => mapping::plan_changes_from_fhir(resource)
            .map(|changes| Inbound::Plan(resource_id(resource), changes)),
        "Task" => mapping::task_changes_from_fhir(resource)
            .map(|changes| Inbound::Task(resource_id(resource), changes)),
        "Encounter" => mapping::session_from_fhir(resource)
            .map(|(session, contacts)| Inbound::Session(session, contacts)),
        other => {
            return Err(ApiError::not_supported(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{other} is read-only through this API"),
            ));
        }
    };
    mapped.map_err(|e| mapping_error(&e))
}

fn mapping_error(err: &MappingError) -> ApiError {
    ApiError::unprocessable(&[Issue {
        severity: Severity::Error,
        code: "invalid",
        message: err.to_string(),
        expression: err.path().to_owned(),
    }])
}

/// `Prefer: return=minimal | representation | OperationOutcome` (representation by default).
fn respond(
    status: StatusCode,
    resource: &Value,
    headers: &HeaderMap,
    params: &[(String, String)],
) -> Response {
    let prefer = headers
        .get("prefer")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let mut response = if prefer.contains("return=minimal") {
        let mut r = fhir_json(status, &Value::Null, false);
        *r.body_mut() = axum::body::Body::empty();
        r
    } else if prefer.contains("return=OperationOutcome") {
        fhir_json(
            status,
            &json!({
                "resourceType": "OperationOutcome",
                "issue": [{ "severity": "information", "code": "informational", "diagnostics": "done" }]
            }),
            pretty(params),
        )
    } else {
        fhir_json(status, resource, pretty(params))
    };
    version_headers(&mut response, resource);
    let base = base_url(headers);
    if let (Some(t), Some(id), Some(v)) = (
        resource.get("resourceType").and_then(Value::as_str),
        resource.get("id").and_then(Value::as_str),
        resource.pointer("/meta/versionId").and_then(Value::as_str),
    ) && let Ok(location) = HeaderValue::from_str(&format!("{base}/{t}/{id}/_history/{v}"))
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// `W/"3"` or `"3"` → 3.
fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse::<i64>().ok())
        .map(Some)
        .ok_or_else(|| ApiError::bad_request("If-Match must be an ETag such as W/\"3\""))
}

/// `identifier=system|value` (from If-None-Exist or a conditional update's query) → the MRN, or
/// None when the system is not the clinic's MRN system (such an identifier matches nothing).
fn mrn_condition(state: &FhirState, pairs: &[(String, String)]) -> Result<Option<Mrn>, ApiError> {
    let Some((_, value)) = pairs.iter().find(|(k, _)| k == "identifier") else {
        return Err(ApiError::bad_request(
            "a conditional write needs identifier=system|value",
        ));
    };
    if let Some((name, _)) = pairs.iter().find(|(k, _)| k != "identifier") {
        return Err(ApiError::bad_request(format!(
            "conditional writes support only identifier, not {name}"
        )));
    }
    let (system, code) = value.split_once('|').unwrap_or(("", value));
    if !system.is_empty() && system != state.mapping.system("mrn") {
        return Ok(None);
    }
    Mrn::parse(code)
        .map(Some)
        .map_err(|_| ApiError::bad_request("the identifier value is not a valid MRN"))
}

/// `identifier={base}/{kind}|uuid`, the record-id identifier every resource carries → the id.
fn record_condition(
    state: &FhirState,
    resource_type: &str,
    pairs: &[(String, String)],
) -> Result<String, ApiError> {
    let system = state
        .mapping
        .system(super::search::record_kind(resource_type));
    let value = pairs
        .iter()
        .find(|(k, _)| k == "identifier")
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| {
            ApiError::bad_request("a conditional write needs identifier=system|value")
        })?;
    match value.split_once('|') {
        Some((s, id)) if s == system => {
            uuid::Uuid::parse_str(id)
                .map(|u| u.to_string())
                .map_err(|_| {
                    ApiError::bad_request("the identifier value must be a record id (a UUID)")
                })
        }
        _ => Err(ApiError::bad_request(format!(
            "conditional writes of {resource_type} match on the identifier system {system}"
        ))),
    }
}

/// Writes `resource` at `id`: an update if the record exists (at `If-Match` or its current
/// version), else a create at that id. Used by conditional writes keyed by the record id.
async fn put_at(
    state: &FhirState,
    resource_type: &str,
    mut resource: Value,
    id: &str,
    headers: &HeaderMap,
    params: &[(String, String)],
) -> Result<Response, ApiError> {
    if resource
        .get("id")
        .and_then(Value::as_str)
        .is_some_and(|b| b != id)
    {
        return Err(ApiError::bad_request(
            "the body's id is not the id the identifier names",
        ));
    }
    resource["id"] = json!(id);
    let record = inbound(state, resource_type, &resource)?;
    let mut tx = state.store.begin().await?;
    let existing = record.stored_version(&mut tx).await?;
    match existing {
        Some(version) => {
            record
                .update(&mut tx, if_match(headers)?.unwrap_or(version))
                .await?
        }
        None => record.insert(&mut tx).await?,
    }
    tx.commit().await?;
    let status = if existing.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(respond(
        status,
        &current(state, resource_type, id).await?,
        headers,
        params,
    ))
}

async fn current(state: &FhirState, resource_type: &str, id: &str) -> Result<Value, ApiError> {
    find(state, resource_type, id)
        .await?
        .ok_or_else(ApiError::internal)
}

/// Inserts or updates in one transaction. `expected`: the version an update must find (None:
/// insert). Returns whether it created.
async fn store(
    state: &FhirState,
    record: &Inbound,
    expected: Option<i64>,
) -> Result<(), StoreError> {
    let mut tx = state.store.begin().await?;
    match expected {
        None => record.insert(&mut tx).await?,
        Some(version) => record.update(&mut tx, version).await?,
    }
    tx.commit().await
}

pub(super) async fn create(
    State(state): State<FhirState>,
    Path(resource_type): Path<String>,
    headers: HeaderMap,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let params = query(params)?;
    check_accept(&headers, &params)?;
    writable(&resource_type)?;
    if CREATED_IN_THE_CLINIC.contains(&resource_type.as_str()) {
        return Err(created_in_the_clinic(&resource_type));
    }
    check_content_type(&headers)?;
    let body = self::body(body)?;
    let mut resource = parse_resource(&body, &resource_type)?;
    // The server assigns the id of a created resource (FHIR create ignores a client's id).
    let id = uuid::Uuid::now_v7().to_string();
    resource["id"] = json!(id);
    let pairs = match headers.get("if-none-exist") {
        Some(value) => {
            let text = value
                .to_str()
                .map_err(|_| ApiError::bad_request("If-None-Exist is not text"))?;
            let pairs: Vec<(String, String)> =
                serde_urlencoded::from_str(text.trim_start_matches('?'))
                    .map_err(|_| ApiError::bad_request("If-None-Exist is not a search query"))?;
            Some(pairs)
        }
        None => None,
    };
    if let Some(pairs) = &pairs
        && resource_type != "Patient"
    {
        // Keyed by the record id: an existing record is returned, else it is created at that id
        // (so a retried create never makes a second record). `put_at` validates.
        let id = record_condition(&state, &resource_type, pairs)?;
        if let Some(existing) = find(&state, &resource_type, &id).await? {
            return Ok(respond(StatusCode::OK, &existing, &headers, &params));
        }
        resource.as_object_mut().map(|r| r.remove("id"));
        return match put_at(&state, &resource_type, resource, &id, &headers, &params).await {
            Err(e)
                if e.status == StatusCode::PRECONDITION_FAILED
                    || e.status == StatusCode::CONFLICT =>
            {
                let existing = current(&state, &resource_type, &id).await?;
                Ok(respond(StatusCode::OK, &existing, &headers, &params))
            }
            other => other,
        };
    }
    let record = inbound(&state, &resource_type, &resource)?;
    let condition = pairs
        .map(|pairs| mrn_condition(&state, &pairs))
        .transpose()?;
    if let Some(Some(mrn)) = &condition
        && let Some(existing) = state.store.client_by_mrn(mrn).await?
    {
        let existing = existing.record.id.to_string();
        return Ok(respond(
            StatusCode::OK,
            &current(&state, &resource_type, &existing).await?,
            &headers,
            &params,
        ));
    }
    match store(&state, &record, None).await {
        Ok(()) => {
            tracing::info!(resource_type = resource_type.as_str(), %id, "created");
            Ok(respond(
                StatusCode::CREATED,
                &current(&state, &resource_type, &id).await?,
                &headers,
                &params,
            ))
        }
        // A concurrent create with the same identifier won: answer with its resource.
        Err(StoreError::Duplicate { .. })
            if condition.is_some()
                && let Inbound::Client(client) = &record =>
        {
            let existing = state
                .store
                .client_by_mrn(&client.mrn)
                .await?
                .ok_or_else(ApiError::internal)?;
            Ok(respond(
                StatusCode::OK,
                &current(&state, &resource_type, &existing.record.id.to_string()).await?,
                &headers,
                &params,
            ))
        }
        Err(err) => Err(err.into()),
    }
}

pub(super) async fn update(
    State(state): State<FhirState>,
    Path((resource_type, id)): Path<(String, String)>,
    headers: HeaderMap,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let params = query(params)?;
    check_accept(&headers, &params)?;
    writable(&resource_type)?;
    check_content_type(&headers)?;
    let body = self::body(body)?;
    let resource = parse_resource(&body, &resource_type)?;
    if resource.get("id").and_then(Value::as_str) != Some(id.as_str()) {
        return Err(ApiError::bad_request(
            "the body's id must be the id in the URL",
        ));
    }
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(ApiError::not_found(format!(
            "{resource_type}/{id} is not known"
        )));
    }
    let record = inbound(&state, &resource_type, &resource)?;
    let mut tx = state.store.begin().await?;
    let stored = record
        .stored_version(&mut tx)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("{resource_type}/{id} is not known")))?;
    let expected = if_match(&headers)?.unwrap_or(stored);
    record.update(&mut tx, expected).await?;
    tx.commit().await?;
    tracing::info!(resource_type = resource_type.as_str(), %id, "updated");
    Ok(respond(
        StatusCode::OK,
        &current(&state, &resource_type, &id).await?,
        &headers,
        &params,
    ))
}

/// `PUT /fhir/Patient?identifier=system|value`: updates the one match, or creates.
pub(super) async fn conditional_update(
    State(state): State<FhirState>,
    Path(resource_type): Path<String>,
    headers: HeaderMap,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let params = query(params)?;
    check_accept(&headers, &params)?;
    writable(&resource_type)?;
    check_content_type(&headers)?;
    let body = self::body(body)?;
    let mut resource = parse_resource(&body, &resource_type)?;
    let conditions: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "_format" | "_pretty"))
        .cloned()
        .collect();
    if resource_type != "Patient" {
        let id = record_condition(&state, &resource_type, &conditions)?;
        return put_at(&state, &resource_type, resource, &id, &headers, &params).await;
    }
    let mrn = mrn_condition(&state, &conditions)?.ok_or_else(|| {
        ApiError::bad_request("conditional update matches on the clinic's MRN identifier system")
    })?;
    // Two attempts: a create that loses a race to a concurrent create becomes an update.
    for _ in 0..2 {
        let existing = state.store.client_by_mrn(&mrn).await?;
        let id = match &existing {
            Some(found) => found.record.id,
            None => match resource.get("id").and_then(Value::as_str) {
                Some(id) => id
                    .parse()
                    .map_err(|_| ApiError::bad_request("a new Patient's id must be a UUID"))?,
                None => Id::<Client>::generate(),
            },
        };
        if let Some(body_id) = resource.get("id").and_then(Value::as_str)
            && body_id != id.to_string()
        {
            return Err(ApiError::bad_request(
                "the body's id is not the id of the Patient with this identifier",
            ));
        }
        resource["id"] = json!(id.to_string());
        let record = inbound(&state, &resource_type, &resource)?;
        if let Inbound::Client(client) = &record
            && client.mrn != mrn
        {
            return Err(ApiError::bad_request(
                "the body's MRN differs from the identifier in the URL",
            ));
        }
        let expected = match &existing {
            Some(found) => Some(if_match(&headers)?.unwrap_or(found.meta.version)),
            None => None,
        };
        match store(&state, &record, expected).await {
            Ok(()) => {
                let status = if expected.is_some() {
                    StatusCode::OK
                } else {
                    StatusCode::CREATED
                };
                return Ok(respond(
                    status,
                    &current(&state, &resource_type, &id.to_string()).await?,
                    &headers,
                    &params,
                ));
            }
            Err(StoreError::Duplicate { .. }) if expected.is_none() => {
                resource.as_object_mut().map(|r| r.remove("id"));
                continue;
            }
            Err(err) => return Err(err.into()),
        }
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "conflict",
        "the Patient changed concurrently; retry",
    ))
}

/// Deleting is not how the clinic retires records: a plan is completed, a consent revoked, a
/// contact ended — each an update that keeps the history. So every delete is refused, saying so.
pub(super) async fn delete(
    Path((resource_type, _id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    known_type(&resource_type)?;
    Err(ApiError::not_supported(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{resource_type} records are not deleted: the clinic keeps them; end them with an update (a Consent's status, a plan's status, a contact's period)"
        ),
    ))
}

/// `$validate`: always 200 with an OperationOutcome (the verdict is its content).
pub(super) fn validate_operation(
    state: &FhirState,
    resource_type: &str,
    headers: &HeaderMap,
    params: &[(String, String)],
    body: &[u8],
) -> Result<Response, ApiError> {
    check_accept(headers, params)?;
    known_type(resource_type)?;
    check_content_type(headers)?;
    let mut resource = parse_resource_or_parameters(body)?;
    if resource.get("resourceType").and_then(Value::as_str) != Some(resource_type) {
        return Err(ApiError::bad_request(format!(
            "$validate on {resource_type} needs a {resource_type}"
        )));
    }
    let mut required = vec![iop_profile(resource_type)];
    required.extend(
        params
            .iter()
            .filter(|(k, _)| k == "profile")
            .map(|(_, v)| v.clone()),
    );
    if resource.get("id").is_none() {
        resource["id"] = json!("validate");
    }
    let issues = state.validator.validate(&resource, &required);
    let mut outcome = crate::validation::operation_outcome(&issues);
    if issues.is_empty() {
        outcome["issue"] = json!([{ "severity": "information", "code": "informational", "diagnostics": "no issues" }]);
    }
    Ok(fhir_json(StatusCode::OK, &outcome, pretty(params)))
}

/// A resource, or a Parameters resource with a `resource` parameter (as `$validate` allows).
fn parse_resource_or_parameters(body: &[u8]) -> Result<Value, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body is not JSON: line {}, column {}",
            e.line(),
            e.column()
        ))
    })?;
    if value.get("resourceType").and_then(Value::as_str) == Some("Parameters") {
        return value
            .get("parameter")
            .and_then(Value::as_array)
            .and_then(|ps| {
                ps.iter()
                    .find(|p| p.get("name").and_then(Value::as_str) == Some("resource"))
            })
            .and_then(|p| p.get("resource"))
            .cloned()
            .ok_or_else(|| ApiError::bad_request("Parameters without a resource parameter"));
    }
    Ok(value)
}
