//! create, update, conditional create (`If-None-Exist`), conditional update
//! (`PUT /fhir/Patient?identifier=system|value`) and `$validate`.
//!
//! Order on every write: parse, check the type, validate against the inbound profile, map to a clinic
//! record, store in one transaction at the expected version. Nothing is written unless every step
//! passes. Two writers racing on the same identifier or version are settled by the database's
//! unique index and version check, never by a read-then-write in this process.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::access::{self, Caller};
use super::capability::WRITABLE;
use super::clinic_records;
use super::upsert::{self, Done, Failure, Target};
use super::{
    ApiError, FhirState, base_url, check_accept, fhir_json, find, known_type, pretty, query,
    version_headers,
};
use crate::audit::Event;
use crate::auth::Letter;
use crate::domain::{
    AuditInteraction, Client, Consent, DateRange, Enrollment, Goal, Id, Referral, Session,
    SessionParticipant, SupportContact, TreatmentPlan,
};
use crate::mapping::{self, MappingConfig, MappingError};
use crate::mapping::{GoalChanges, PlanChanges, TaskChanges};
use crate::store::Record;
use crate::store::{RowMeta, StoreError, Tx};
use crate::validation::{Issue, Severity, Validator};

/// The request body, or a 413/400 OperationOutcome.
pub(super) fn body(
    state: &FhirState,
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, ApiError> {
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(status, "too-costly", "the request body is too large")
        } else {
            ApiError::bad_request("the request body could not be read")
        }
    })?;
    if nesting_depth(&body) > state.max_json_depth {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "too-costly",
            format!(
                "the body nests JSON deeper than {} levels",
                state.max_json_depth
            ),
        ));
    }
    Ok(body)
}

/// The deepest nesting of JSON arrays and objects in `bytes`, counted without parsing (brackets
/// inside strings do not count), so a hostile body costs one pass before any parser sees it.
fn nesting_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// 415 unless the body is declared as FHIR JSON (or plain JSON).
pub(super) fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
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
pub(super) fn parse_resource(body: &[u8], resource_type: &str) -> Result<Value, ApiError> {
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

/// Types that only the clinic's own applications create (and write whole); other clients
/// update what `PlanChanges`/`GoalChanges` allow.
pub(super) const CLINIC_APP_CREATES: &[&str] = &["CarePlan", "Goal"];

/// 403 unless the caller may create `resource_type` (see `CLINIC_APP_CREATES`).
pub(super) fn check_create(caller: &Caller, resource_type: &str) -> Result<(), ApiError> {
    if CLINIC_APP_CREATES.contains(&resource_type) && !caller.principal.clinic_app {
        let what = match resource_type {
            "Goal" => "a goal",
            _ => "a treatment plan",
        };
        return Err(clinic_records::clinic_apps_only(what));
    }
    Ok(())
}

/// Who writes, and what the rest of their transaction says: how an incoming resource maps.
#[derive(Debug, Default, Clone)]
pub(super) struct Writer {
    /// One of the clinic's own applications: its plans and goals are written whole.
    pub clinic_app: bool,
    /// Goal id -> the treatment plan listing it, from the CarePlans of the same transaction
    /// (a Goal belongs to the plan that lists it: FHIR's Goal does not name its plan).
    pub goal_plans: std::collections::HashMap<String, Id<TreatmentPlan>>,
}

impl Writer {
    pub(super) fn of(caller: &Caller) -> Self {
        Self {
            clinic_app: caller.principal.clinic_app,
            goal_plans: Default::default(),
        }
    }
}

/// The id of a resource whose update changes a stored record: a record id (a UUID), else 400
/// (never a stand-in id that could name some record).
fn resource_id<T>(resource: &Value) -> Result<Id<T>, ApiError> {
    resource
        .get("id")
        .and_then(Value::as_str)
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| ApiError::bad_request("the resource's id must be a record id (a UUID)"))
}

/// A referral's Task is created with its ServiceRequest, by the referral exchange.
pub(super) fn task_created_by_referrals() -> ApiError {
    ApiError::not_supported(
        StatusCode::METHOD_NOT_ALLOWED,
        "a referral's Task is created with its ServiceRequest by the referral exchange; update an existing one (accept, decline, complete) with PUT",
    )
}

/// The IOP profile a type is validated against on the way in: the validator registry's table
/// (`validation::IopProfiles`). Every API type has one (a test keeps it so); were one missing,
/// the write fails rather than pass unchecked.
fn iop_profile(state: &FhirState, resource_type: &str) -> Result<String, ApiError> {
    let table = state.validator.iop_profiles();
    table
        .of_type(resource_type)
        .map(str::to_owned)
        .ok_or_else(|| {
            tracing::error!(resource_type, "no IOP profile for this type");
            ApiError::internal()
        })
}

/// The inbound profile a written resource is validated against: US Core (or the base resource)
/// plus only what the clinic record cannot do without (`fhir-profiles/fsh/input/fsh/inbound.fsh`).
/// The IOP profiles constrain what the gateway emits, not what an EHR must send.
fn inbound_profile(state: &FhirState, resource_type: &str) -> Option<String> {
    if !WRITABLE.contains(&resource_type) {
        return None;
    }
    let table = state.validator.iop_profiles();
    table.inbound_of_type(resource_type).map(str::to_owned)
}

/// A validated, mapped incoming resource: the clinic record it becomes.
pub(super) enum Inbound {
    Client(Client),
    /// A support contact, and whether the resource gave its start (else an update keeps the
    /// stored one: "since the day it was recorded" holds for a new contact only).
    Contact(SupportContact, bool),
    Consent(Consent),
    /// A session and the support contacts who took part (its participant rows follow the list).
    Session(Session, Vec<Id<SupportContact>>),
    Enrollment(Enrollment),
    /// Changes to a stored goal (goals are created with their plan, in the clinic).
    Goal(Id<Goal>, GoalChanges),
    /// Changes to a stored treatment plan (plans are created in the clinic).
    Plan(Id<TreatmentPlan>, PlanChanges),
    /// A clinic application's whole treatment plan.
    ClinicPlan(mapping::PlanRecord),
    /// A clinic application's whole goal, and the plan of the transaction that lists it.
    ClinicGoal(mapping::GoalRecord, Option<Id<TreatmentPlan>>),
    /// A clinic application's whole relapse-prevention plan.
    ClinicRelapsePlan(mapping::RelapsePlanRecord),
    /// A referral's Task: accepted, declined, completed... (the referral's status).
    Task(Id<Referral>, TaskChanges),
}

impl Inbound {
    /// The stored version of this record, or None if it does not exist yet; the row stays
    /// locked for this transaction's write (`Tx::get_for_update`).
    pub(super) async fn stored_version(&self, tx: &mut Tx) -> Result<Option<i64>, StoreError> {
        Ok(match self {
            Self::Client(r) => tx.get_for_update(r.id).await?.map(|s| s.meta.version),
            Self::Contact(r, _) => tx.get_for_update(r.id).await?.map(|s| s.meta.version),
            Self::Consent(r) => tx.get_for_update(r.id).await?.map(|s| s.meta.version),
            Self::Session(r, _) => tx.get_for_update(r.id).await?.map(|s| s.meta.version),
            Self::Enrollment(r) => tx.get_for_update(r.id).await?.map(|s| s.meta.version),
            Self::Goal(id, _) => tx.get_for_update(*id).await?.map(|s| s.meta.version),
            Self::Plan(id, _) => tx.get_for_update(*id).await?.map(|s| s.meta.version),
            Self::Task(id, _) => tx.get_for_update(*id).await?.map(|s| s.meta.version),
            Self::ClinicPlan(r) => tx.get_for_update(r.id).await?.map(|s| s.meta.version),
            Self::ClinicGoal(r, _) => tx.get_for_update(r.id).await?.map(|s| s.meta.version),
            Self::ClinicRelapsePlan(r) => tx
                .get_for_update(r.relapse_plan.id)
                .await?
                .map(|s| s.meta.version),
        })
    }

    /// The table whose records the resource's identifiers name.
    pub(super) fn table(&self) -> Option<&'static str> {
        match self {
            Self::ClinicRelapsePlan(_) => Some(crate::domain::RelapsePreventionPlan::TABLE),
            _ => None,
        }
    }

    pub(super) async fn insert(&self, tx: &mut Tx) -> Result<(), Failure> {
        match self {
            Self::ClinicPlan(r) => return clinic_records::insert_plan(tx, r).await,
            Self::ClinicGoal(r, plan) => return clinic_records::insert_goal(tx, r, *plan).await,
            Self::ClinicRelapsePlan(r) => return clinic_records::insert_relapse_plan(tx, r).await,
            Self::Client(r) => tx.insert(r).await?,
            Self::Contact(r, _) => tx.insert(r).await?,
            Self::Consent(r) => tx.insert(r).await?,
            Self::Enrollment(r) => tx.insert(r).await?,
            // Changes need a stored record; these are never created here (see CREATED_IN_THE_CLINIC).
            Self::Goal(id, _) => return Err(not_found(*id).into()),
            Self::Plan(id, _) => return Err(not_found(*id).into()),
            Self::Task(id, _) => return Err(not_found(*id).into()),
            Self::Session(session, contacts) => {
                tx.insert(session).await?;
                sync_participants(tx, session.id, contacts).await?;
                return Ok(());
            }
        };
        Ok(())
    }

    pub(super) async fn update(&self, tx: &mut Tx, expected: i64) -> Result<(), Failure> {
        match self {
            Self::ClinicPlan(r) => return clinic_records::update_plan(tx, r, expected).await,
            Self::ClinicGoal(r, plan) => {
                return clinic_records::update_goal(tx, r, *plan, expected).await;
            }
            Self::ClinicRelapsePlan(r) => {
                return clinic_records::update_relapse_plan(tx, r, expected).await;
            }
            Self::Client(r) => tx.update(r, expected).await?,
            Self::Contact(r, start_given) => {
                let mut r = r.clone();
                if !start_given && let Some(stored) = tx.get(r.id).await? {
                    let start = stored.record.active.start();
                    if let Ok(active) = DateRange::new(start, r.active.end()) {
                        r.active = active;
                    }
                }
                tx.update(&r, expected).await?
            }
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

/// Validates an incoming resource against its inbound profile (what the clinic record needs;
/// the mapping defaults the rest): 422 with every issue if it fails.
/// The costly step of a write, done before any transaction opens.
pub(super) fn validated(
    state: &FhirState,
    resource_type: &str,
    resource: &Value,
) -> Result<(), ApiError> {
    let issues = state
        .validator
        .validate(resource, &[inbound_profile_of(state, resource_type)?]);
    if issues.iter().any(Issue::is_error) {
        return Err(ApiError::unprocessable(&issues));
    }
    Ok(())
}

/// The inbound profile of a writable type; a read-only type is refused with 405.
fn inbound_profile_of(state: &FhirState, resource_type: &str) -> Result<String, ApiError> {
    inbound_profile(state, resource_type).ok_or_else(|| {
        ApiError::not_supported(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{resource_type} is read-only through this API"),
        )
    })
}

/// `validated`, on the blocking pool (see `off_thread`).
pub(super) async fn validated_off_thread(
    state: &FhirState,
    resource_type: &str,
    resource: &Value,
) -> Result<(), ApiError> {
    let (state, resource_type, resource) =
        (state.clone(), resource_type.to_owned(), resource.clone());
    super::off_thread(move || validated(&state, &resource_type, &resource)).await?
}

/// Maps a validated incoming resource to the clinic record it becomes (422 if it cannot be).
pub(super) fn mapped(
    state: &FhirState,
    writer: &Writer,
    resource_type: &str,
    resource: &Value,
) -> Result<Inbound, ApiError> {
    map_inbound(&state.mapping, writer, resource_type, resource)
}

/// The body of a write to `resource_type` read as a handler reads it (a resource; for
/// `$validate` also a Parameters holding one), validated against the inbound profile when a
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
        let profile = validator
            .iop_profiles()
            .inbound_of_type(resource_type)
            .ok_or_else(|| ApiError::bad_request("not a writable type"))?;
        let issues = validator.validate(&resource, &[profile.to_owned()]);
        if issues.iter().any(Issue::is_error) {
            return Err(ApiError::unprocessable(&issues));
        }
    }
    map_inbound(cfg, &Writer::default(), resource_type, &resource).map(|_| ())
}

/// A resource (checked by the caller) mapped to the clinic record it becomes; what an EHR leaves
/// out is defaulted, dated today.
fn map_inbound(
    cfg: &MappingConfig,
    writer: &Writer,
    resource_type: &str,
    resource: &Value,
) -> Result<Inbound, ApiError> {
    let today = chrono::Utc::now().date_naive();
    let mapped = match resource_type {
        "Goal" if writer.clinic_app => mapping::goal_record_from_fhir(resource).map(|record| {
            let plan = writer.goal_plans.get(&record.id.to_string()).copied();
            Inbound::ClinicGoal(record, plan)
        }),
        "CarePlan" if writer.clinic_app && mapping::is_relapse_plan(resource) => {
            mapping::relapse_plan_record_from_fhir(resource).map(Inbound::ClinicRelapsePlan)
        }
        "CarePlan" if writer.clinic_app => {
            mapping::plan_record_from_fhir(resource).map(Inbound::ClinicPlan)
        }
        "CarePlan" if mapping::is_relapse_plan(resource) => {
            return Err(clinic_records::clinic_apps_only(
                "a relapse-prevention plan",
            ));
        }
        "Patient" => mapping::client_from_fhir(cfg, resource).map(Inbound::Client),
        "RelatedPerson" => mapping::support_contact_from_fhir(resource, today).map(|contact| {
            let start_given = resource.pointer("/period/start").is_some();
            Inbound::Contact(contact, start_given)
        }),
        "Consent" => mapping::consent_from_fhir(resource, today).map(Inbound::Consent),
        "EpisodeOfCare" => mapping::enrollment_from_fhir(resource).map(Inbound::Enrollment),
        "Goal" => {
            let id = resource_id(resource)?;
            mapping::goal_changes_from_fhir(resource).map(|changes| Inbound::Goal(id, changes))
        }
        "CarePlan" => {
            let id = resource_id(resource)?;
            mapping::plan_changes_from_fhir(resource).map(|changes| Inbound::Plan(id, changes))
        }
        "Task" => {
            let id = resource_id(resource)?;
            mapping::task_changes_from_fhir(resource, today)
                .map(|changes| Inbound::Task(id, changes))
        }
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

pub(super) fn mapping_error(err: &MappingError) -> ApiError {
    ApiError::unprocessable(&[Issue {
        severity: Severity::Error,
        code: "invalid",
        message: err.to_string(),
        expression: err.path().to_owned(),
    }])
}

/// `Prefer: return=minimal | representation | OperationOutcome` (representation by default).
fn respond(
    state: &FhirState,
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
    let base = base_url(state, headers);
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
pub(super) fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
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

async fn current(state: &FhirState, resource_type: &str, id: &str) -> Result<Value, ApiError> {
    find(state, resource_type, id)
        .await?
        .ok_or_else(ApiError::internal)
}

/// Validates `resource`, then writes it in one transaction, found as `target` says; runs the
/// transaction again when a racing writer took its identifier first (the retry finds it).
async fn run(
    state: &FhirState,
    caller: &Caller,
    resource_type: &str,
    resource: Value,
    target: Target,
    headers: &HeaderMap,
    params: &[(String, String)],
) -> Result<Response, ApiError> {
    validated_off_thread(state, resource_type, &resource).await?;
    let if_match = if_match(headers)?;
    let writer = Writer::of(caller);
    let condition = match &target {
        Target::Matching(identifier, _) => Some(identifier.clone()),
        _ => None,
    };
    for attempt in 1..=upsert::ATTEMPTS {
        let mut tx = state.store.begin().await?;
        let outcome = async {
            let located =
                upsert::locate(&mut tx, state, &writer, resource_type, &resource, &target).await?;
            if located.found {
                return Ok((located.id, Done::Found));
            }
            let done = upsert::write(
                &mut tx,
                state,
                &writer,
                resource_type,
                &resource,
                &located,
                upsert::Expected {
                    if_match,
                    condition: condition.as_ref(),
                },
            )
            .await?;
            // The accounting of the write, in its transaction: both happen or neither.
            let mut written = resource.clone();
            written["id"] = json!(located.id);
            let interaction = match done {
                Done::Created => AuditInteraction::Create,
                _ => AuditInteraction::Update,
            };
            tx.append_audit(&caller.write_record(interaction, resource_type, &[&written]))
                .await?;
            tx.commit().await?;
            Ok::<_, Failure>((located.id, done))
        }
        .await;
        match outcome {
            Ok((id, done)) => {
                return answer_written(state, caller, resource_type, &id, done, headers, params)
                    .await;
            }
            Err(failure) if failure.is_race(if_match.is_some()) && attempt < upsert::ATTEMPTS => {
                continue;
            }
            Err(failure) => return Err(failure.into()),
        }
    }
    Err(ApiError::internal())
}

/// The answer to a write of `resource_type/id`: the record as stored now, through the caller's
/// gate (a withheld one has no body), with its ETag; `Prefer` decides the body.
pub(super) async fn answer_written(
    state: &FhirState,
    caller: &Caller,
    resource_type: &str,
    id: &str,
    done: Done,
    headers: &HeaderMap,
    params: &[(String, String)],
) -> Result<Response, ApiError> {
    let status = match done {
        Done::Created => StatusCode::CREATED,
        Done::Updated | Done::Found => StatusCode::OK,
    };
    let mut resource = current(state, resource_type, id).await?;
    // What is echoed passes the gate too. A withheld answer has no body (and, for
    // an existing record a conditional create found, no Location either).
    let mut gate = access::gate(state, caller).await?;
    if !gate.permits(&state.store, &resource).await?.permit {
        tracing::info!(resource_type, %id, ?done, "written; the answer withheld by consent");
        let mut response = fhir_json(status, &Value::Null, false);
        *response.body_mut() = axum::body::Body::empty();
        if done != Done::Found {
            version_headers(&mut response, &resource);
        }
        return Ok(response);
    }
    gate.redact(&mut resource);
    if done == Done::Found {
        // Nothing written: the existing record is disclosed as it is.
        access::disclosed(
            state,
            caller,
            Event::success(AuditInteraction::Read, resource_type),
            &[&resource],
        )
        .await?;
    } else {
        tracing::info!(resource_type, %id, ?done, "written");
    }
    Ok(respond(state, status, &resource, headers, params))
}

pub(super) async fn create(
    State(state): State<FhirState>,
    caller: Caller,
    Path(resource_type): Path<String>,
    headers: HeaderMap,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let params = query(params)?;
    if resource_type == "$process-message" {
        return super::messaging::process_message(&state, &caller, &headers, &params, body).await;
    }
    if resource_type == "$export" {
        let body = super::bulk_body(body)?;
        return super::bulk::kick_off(
            &state,
            &caller,
            crate::bulk::Level::System,
            &headers,
            &params,
            body.as_ref(),
        )
        .await;
    }
    check_accept(&headers, &params)?;
    // A referral sent the RESTful way: its ServiceRequest, then its Task.
    if matches!(resource_type.as_str(), "ServiceRequest" | "Task") {
        return super::referral_rest::create(
            &state,
            &caller,
            &resource_type,
            &headers,
            &params,
            body,
        )
        .await;
    }
    known_type(&resource_type)?;
    access::require(
        &state,
        &caller,
        &resource_type,
        Letter::Create,
        AuditInteraction::Create,
    )
    .await?;
    writable(&resource_type)?;
    check_create(&caller, &resource_type)?;
    check_content_type(&headers)?;
    let body = self::body(&state, body)?;
    let mut resource = parse_resource(&body, &resource_type)?;
    // The server assigns the id of a created resource (FHIR create ignores a client's id).
    let id = uuid::Uuid::now_v7().to_string();
    resource["id"] = json!(id);
    let target = match headers.get("if-none-exist") {
        Some(value) => {
            let text = value
                .to_str()
                .map_err(|_| ApiError::bad_request("If-None-Exist is not text"))?;
            let pairs: Vec<(String, String)> =
                serde_urlencoded::from_str(text.trim_start_matches('?'))
                    .map_err(|_| ApiError::bad_request("If-None-Exist is not a search query"))?;
            Target::IfNoneExist(upsert::condition(&pairs)?, id)
        }
        None => Target::New(id),
    };
    run(
        &state,
        &caller,
        &resource_type,
        resource,
        target,
        &headers,
        &params,
    )
    .await
}

pub(super) async fn update(
    State(state): State<FhirState>,
    caller: Caller,
    Path((resource_type, id)): Path<(String, String)>,
    headers: HeaderMap,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let params = query(params)?;
    check_accept(&headers, &params)?;
    known_type(&resource_type)?;
    access::require(
        &state,
        &caller,
        &resource_type,
        Letter::Update,
        AuditInteraction::Update,
    )
    .await?;
    writable(&resource_type)?;
    check_content_type(&headers)?;
    let body = self::body(&state, body)?;
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
    run(
        &state,
        &caller,
        &resource_type,
        resource,
        Target::Existing(id),
        &headers,
        &params,
    )
    .await
}

/// `PUT /fhir/Type?identifier=system|value`: updates the record the identifier names (the
/// clinic's record id, the MRN, or an identifier another system gave it), or creates it.
pub(super) async fn conditional_update(
    State(state): State<FhirState>,
    caller: Caller,
    Path(resource_type): Path<String>,
    headers: HeaderMap,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let params = query(params)?;
    check_accept(&headers, &params)?;
    known_type(&resource_type)?;
    // It updates the record found, or creates one: both letters.
    for letter in [Letter::Update, Letter::Create] {
        access::require(
            &state,
            &caller,
            &resource_type,
            letter,
            AuditInteraction::Update,
        )
        .await?;
    }
    writable(&resource_type)?;
    check_content_type(&headers)?;
    let body = self::body(&state, body)?;
    let resource = parse_resource(&body, &resource_type)?;
    let conditions: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "_format" | "_pretty"))
        .cloned()
        .collect();
    let target = Target::Matching(
        upsert::condition(&conditions)?,
        uuid::Uuid::now_v7().to_string(),
    );
    run(
        &state,
        &caller,
        &resource_type,
        resource,
        target,
        &headers,
        &params,
    )
    .await
}

/// Deleting is not how the clinic retires records: a plan is completed, a consent revoked, a
/// contact ended — each an update that keeps the history. So every delete is refused, saying so.
pub(super) async fn delete(
    State(state): State<FhirState>,
    caller: Caller,
    Path((resource_type, _id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    known_type(&resource_type)?;
    access::require(
        &state,
        &caller,
        &resource_type,
        Letter::Delete,
        AuditInteraction::Delete,
    )
    .await?;
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
    // The IOP profile of its type, or the one of its type it names (a relapse prevention plan).
    let table = state.validator.iop_profiles();
    let mut required: Vec<String> = match table.of_resource(&resource) {
        Some(profile) => vec![profile.to_owned()],
        None => vec![iop_profile(state, resource_type)?],
    };
    required.extend(
        params
            .iter()
            .filter(|(k, _)| k == "profile")
            .map(|(_, v)| v.clone()),
    );
    if resource.get("id").is_none() {
        resource["id"] = json!("validate");
    }
    let mut issues = state.validator.validate(&resource, &required);
    // The walk applies a profile to resources of its type only: one asked for here that
    // constrains another type is an error, not a silent pass.
    for (_, url) in params.iter().filter(|(k, _)| k == "profile") {
        let registry = state.validator.registry();
        let constrains = registry
            .structure_definition(url)
            .and_then(|sd| sd.get("type"))
            .and_then(Value::as_str);
        if let Some(other) = constrains.filter(|t| *t != resource_type) {
            issues.push(Issue {
                severity: Severity::Error,
                code: "not-supported",
                message: format!("profile {url} constrains {other}, not {resource_type}"),
                expression: resource_type.to_owned(),
            });
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_counted_outside_strings() {
        assert_eq!(nesting_depth(br#"{"a": [1, {"b": "[[[{"}]}"#), 3);
        assert_eq!(nesting_depth(br#"{"a": "\"[["}"#), 1);
        assert_eq!(nesting_depth(b"[[[[]]]]"), 4);
    }

    #[test]
    fn a_malformed_id_names_no_record() {
        let bad: Result<Id<Goal>, _> = resource_id(&json!({ "id": "not-a-uuid" }));
        assert_eq!(bad.unwrap_err().status, StatusCode::BAD_REQUEST);
        assert!(resource_id::<Goal>(&json!({})).is_err());
        let id = uuid::Uuid::now_v7();
        assert_eq!(
            resource_id::<Goal>(&json!({ "id": id.to_string() })).unwrap(),
            Id::from_uuid(id)
        );
    }
}

/// What `ingest` did: the clinic record's id and version, and whether it was created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingested {
    pub id: String,
    pub version: i64,
    pub created: bool,
}

/// Writes a resource that came from another system (a sync pull) as the API writes it: validated
/// against the inbound profile, found by `identifier` (the other system's id for it) or created,
/// in one transaction retried when a racing writer took the identifier. With `if_match`, an
/// update happens only at that clinic version (a conflict otherwise: the clinic's edit stands).
/// The caller's references must already be the clinic's.
pub async fn ingest(
    state: &FhirState,
    resource_type: &str,
    resource: Value,
    identifier: crate::domain::ExternalIdentifier,
    if_match: Option<i64>,
) -> Result<Ingested, ApiError> {
    writable(resource_type)?;
    validated_off_thread(state, resource_type, &resource).await?;
    let target = Target::Matching(identifier.clone(), uuid::Uuid::new_v4().to_string());
    // What another system sends changes what an external client's update may change.
    let writer = Writer::default();
    for attempt in 1..=upsert::ATTEMPTS {
        let mut tx = state.store.begin().await?;
        let outcome = async {
            let located =
                upsert::locate(&mut tx, state, &writer, resource_type, &resource, &target).await?;
            let expected = if located.stored.is_some() {
                if_match
            } else {
                None
            };
            let done = upsert::write(
                &mut tx,
                state,
                &writer,
                resource_type,
                &resource,
                &located,
                upsert::Expected {
                    if_match: expected,
                    condition: Some(&identifier),
                },
            )
            .await?;
            tx.commit().await?;
            Ok::<_, Failure>((located.id, done))
        }
        .await;
        match outcome {
            Ok((id, done)) => {
                let current = current(state, resource_type, &id).await?;
                let version = current
                    .pointer("/meta/versionId")
                    .and_then(Value::as_str)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                return Ok(Ingested {
                    id,
                    version,
                    created: done == Done::Created,
                });
            }
            Err(failure) if failure.is_race(if_match.is_some()) && attempt < upsert::ATTEMPTS => {
                continue;
            }
            Err(failure) => return Err(failure.into()),
        }
    }
    Err(ApiError::internal())
}
