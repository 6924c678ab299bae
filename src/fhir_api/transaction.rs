//! `POST /fhir` with a `transaction` Bundle (all entries in one database transaction: all or
//! nothing, `urn:uuid:` references between entries resolved to the ids given) or a `batch`
//! Bundle (each entry on its own).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::access::{self, Caller};
use super::capability::WRITABLE;
use super::upsert::{self, Done, Failure, Target};
use super::write;
use super::{ApiError, FhirState, check_accept, fhir_json, find, pretty, query};
use crate::auth::Letter;
use crate::domain::{AuditInteraction, ExternalIdentifier};
use crate::json_build::fhir;
use crate::store::Tx;

/// Entries of one transaction or batch Bundle at most (stated in the CapabilityStatement): a
/// transaction holds its database transaction open while it writes them.
pub(super) const MAX_BUNDLE_ENTRIES: usize = 500;

/// One entry's planned write.
struct Planned {
    resource_type: String,
    target: Target,
    /// The id references to this entry get before its record is found: final for POST and
    /// PUT Type/id; for a conditional entry, the id of the record it would create.
    id: String,
    resource: Value,
    if_match: Option<i64>,
    /// The identifier of a conditional update (a Patient's MRN must match it).
    condition: Option<ExternalIdentifier>,
}

pub(super) async fn bundle(
    State(state): State<FhirState>,
    caller: Caller,
    headers: HeaderMap,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let params = query(params)?;
    check_accept(&headers, &params)?;
    let body = write::body(&state, body)?;
    let bundle: Value =
        serde_json::from_slice(&body).map_err(|_| ApiError::bad_request("the body is not JSON"))?;
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(ApiError::bad_request("POST /fhir takes a Bundle"));
    }
    let entries = match bundle.get("entry") {
        None => Vec::new(),
        Some(Value::Array(entries)) => entries.clone(),
        Some(_) => return Err(ApiError::bad_request("Bundle.entry must be an array")),
    };
    if entries.len() > MAX_BUNDLE_ENTRIES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-costly",
            format!(
                "a Bundle takes at most {MAX_BUNDLE_ENTRIES} entries; this one has {}: split it",
                entries.len()
            ),
        ));
    }
    // A referral sent the RESTful way goes to the referral intake whole.
    if bundle.get("type").and_then(Value::as_str) == Some("transaction")
        && let Some(message) = crate::mapping::referral_transaction(&bundle)
    {
        let message = message.map_err(|e| write::mapping_error(&e))?;
        return super::messaging::referral_transaction(&state, &caller, &params, &bundle, &message)
            .await;
    }
    match bundle.get("type").and_then(Value::as_str) {
        Some("transaction") => transaction(&state, &caller, &entries, &params).await,
        Some("batch") => batch(&state, &caller, &entries, &params).await,
        _ => Err(ApiError::bad_request(
            "Bundle.type must be transaction or batch",
        )),
    }
}

/// The scope letters an entry's write needs: `c` when it may create, `u` when it may update.
fn letters(target: &Target) -> &'static [Letter] {
    match target {
        Target::New(_) | Target::IfNoneExist(..) => &[Letter::Create],
        Target::Existing(_) => &[Letter::Update],
        Target::Id(_) | Target::Matching(..) => &[Letter::Update, Letter::Create],
    }
}

/// 403 unless the caller may make the entry's write.
async fn check_scopes(state: &FhirState, caller: &Caller, plan: &Planned) -> Result<(), ApiError> {
    if matches!(plan.target, Target::New(_) | Target::IfNoneExist(..)) {
        write::check_create(caller, &plan.resource_type)?;
    }
    for letter in letters(&plan.target) {
        access::require(
            state,
            caller,
            &plan.resource_type,
            *letter,
            interaction(*letter),
        )
        .await?;
    }
    Ok(())
}

fn interaction(letter: Letter) -> AuditInteraction {
    match letter {
        Letter::Create => AuditInteraction::Create,
        _ => AuditInteraction::Update,
    }
}

/// Reads each entry's request and assigns ids; `fullUrl`s map to `Type/id`.
fn plan(entry: &Value, index: usize) -> Result<(Planned, Option<String>), ApiError> {
    let fail = |message: String| ApiError::bad_request(format!("entry[{index}]: {message}"));
    let method = entry
        .pointer("/request/method")
        .and_then(Value::as_str)
        .ok_or_else(|| fail("request.method is missing".into()))?;
    let url = entry
        .pointer("/request/url")
        .and_then(Value::as_str)
        .ok_or_else(|| fail("request.url is missing".into()))?;
    let resource = entry
        .get("resource")
        .cloned()
        .ok_or_else(|| fail("resource is missing".into()))?;
    let resource_type = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let path = url.split('?').next().unwrap_or(url);
    let (url_type, url_id) = match path.split_once('/') {
        Some((t, id)) => (t, Some(id)),
        None => (path, None),
    };
    if url_type != resource_type {
        return Err(fail(format!(
            "request.url is for {url_type} but the resource is a {resource_type}"
        )));
    }
    if !WRITABLE.contains(&resource_type.as_str()) {
        return Err(ApiError::not_supported(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "entry[{index}]: {resource_type} is read-only (writable: {})",
                WRITABLE.join(", ")
            ),
        ));
    }
    let if_match = entry
        .pointer("/request/ifMatch")
        .and_then(Value::as_str)
        .map(|v| {
            v.trim_start_matches("W/")
                .trim_matches('"')
                .parse::<i64>()
                .map_err(|_| fail("request.ifMatch must be an ETag such as W/\"3\"".into()))
        })
        .transpose()?;
    let new_id = || uuid::Uuid::now_v7().to_string();
    let if_none_exist = entry
        .pointer("/request/ifNoneExist")
        .and_then(Value::as_str)
        .map(|query| {
            serde_urlencoded::from_str::<Vec<(String, String)>>(query.trim_start_matches('?'))
                .map_err(|_| fail("request.ifNoneExist is not a search query".into()))
                .and_then(|pairs| upsert::condition(&pairs).map_err(|e| prefixed(index, e)))
        })
        .transpose()?;
    let url_query = url.split_once('?').map(|(_, q)| q);
    let (target, condition) = match (method, url_id, url_query) {
        ("POST", None, _) if resource_type == "Task" => {
            return Err(write::task_created_by_referrals());
        }
        ("POST", None, None) => match if_none_exist {
            Some(condition) => (Target::IfNoneExist(condition, new_id()), None),
            None => (Target::New(new_id()), None),
        },
        ("PUT", Some(id), None) => {
            let id = uuid::Uuid::parse_str(id)
                .map_err(|_| fail("a PUT url names Type/id with a UUID id".into()))?;
            (Target::Id(id.to_string()), None)
        }
        ("PUT", None, Some(query)) => {
            let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
                .map_err(|_| fail("request.url's query is not a search query".into()))?;
            let condition = upsert::condition(&pairs).map_err(|e| prefixed(index, e))?;
            (
                Target::Matching(condition.clone(), new_id()),
                Some(condition),
            )
        }
        (method, _, _) => {
            return Err(ApiError::not_supported(
                StatusCode::METHOD_NOT_ALLOWED,
                format!(
                    "entry[{index}]: {method} {url} is not supported in a Bundle (POST Type, PUT Type/id, PUT Type?identifier=system|value)"
                ),
            ));
        }
    };
    let id = match &target {
        Target::New(id)
        | Target::Id(id)
        | Target::Existing(id)
        | Target::IfNoneExist(_, id)
        | Target::Matching(_, id) => id.clone(),
    };
    let full_url = entry
        .get("fullUrl")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok((
        Planned {
            resource_type,
            target,
            id,
            resource,
            if_match,
            condition,
        },
        full_url,
    ))
}

/// Replaces every `reference` that names a Bundle entry's `fullUrl` with `Type/id`.
fn resolve_references(value: &mut Value, targets: &HashMap<String, String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if key == "reference"
                    && let Some(target) = child.as_str().and_then(|r| targets.get(r))
                {
                    *child = Value::String(target.clone());
                } else {
                    resolve_references(child, targets);
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|i| resolve_references(i, targets)),
        _ => {}
    }
}

fn entry_failed(index: usize, mut error: ApiError) -> ApiError {
    if let Some(issues) = error.outcome["issue"].as_array_mut() {
        issues.insert(
            0,
            fhir!({
                "severity": "error",
                "code": "processing",
                "diagnostics": format!("entry[{index}] failed; the transaction wrote nothing")
            }),
        );
    }
    error
}

/// An entry's error, said to be that entry's.
fn prefixed(index: usize, mut error: ApiError) -> ApiError {
    if let Some(issue) = error.outcome["issue"].get_mut(0)
        && let Some(text) = issue["diagnostics"].as_str()
    {
        issue["diagnostics"] = fhir!(format!("entry[{index}]: {text}"));
    }
    error
}

async fn transaction(
    state: &FhirState,
    caller: &Caller,
    entries: &[Value],
    params: &[(String, String)],
) -> Result<Response, ApiError> {
    let mut planned = Vec::new();
    let mut targets = HashMap::new();
    for (index, entry) in entries.iter().enumerate() {
        let (plan, full_url) = plan(entry, index)?;
        check_scopes(state, caller, &plan)
            .await
            .map_err(|e| entry_failed(index, e))?;
        if let Some(full_url) = full_url {
            targets.insert(full_url, format!("{}/{}", plan.resource_type, plan.id));
        }
        planned.push(plan);
    }
    // Validated before the transaction opens (the costly part), with references as they will
    // be unless a conditional entry finds an existing record (then only their ids change).
    for (index, plan) in planned.iter_mut().enumerate() {
        resolve_references(&mut plan.resource, &targets);
        if !plan.target.is_conditional() {
            plan.resource["id"] = fhir!(plan.id.as_str());
        }
        write::validated_off_thread(state, &plan.resource_type, &plan.resource)
            .await
            .map_err(|e| entry_failed(index, e))?;
    }
    // One database transaction: any failure rolls every entry back (the Tx is dropped); a race
    // lost to another writer of the same identifier runs it again.
    let if_match = planned.iter().any(|p| p.if_match.is_some());
    for attempt in 1..=upsert::ATTEMPTS {
        let mut tx = state.store.begin().await?;
        match write_all(&mut tx, state, caller, &planned).await {
            Ok(done) => {
                tx.commit().await?;
                tracing::info!(entries = planned.len(), "transaction committed");
                let mut response_entries = Vec::new();
                for ((resource_type, id), done) in done {
                    response_entries.push(response_entry(state, &resource_type, &id, done).await?);
                }
                return Ok(fhir_json(
                    StatusCode::OK,
                    &fhir!({ "resourceType": "Bundle", "type": "transaction-response", "entry": response_entries }),
                    pretty(params),
                ));
            }
            Err((_, failure)) if failure.is_race(if_match) && attempt < upsert::ATTEMPTS => {
                continue;
            }
            Err((index, failure)) => return Err(entry_failed(index, failure.into())),
        }
    }
    Err(ApiError::internal())
}

/// The order entries are written in: what others refer to first (a client before their
/// enrollment, a plan before the goals it lists and its relapse plan). FHIR leaves the order of
/// a transaction's writes to the server; its response keeps the request's order.
fn write_rank(plan: &Planned) -> u8 {
    match plan.resource_type.as_str() {
        "Patient" => 0,
        "RelatedPerson" | "EpisodeOfCare" => 1,
        "CarePlan" if !crate::mapping::is_relapse_plan(&plan.resource) => 2,
        "Consent" => 2,
        "Goal" | "CarePlan" | "Encounter" => 3,
        _ => 4,
    }
}

/// Goal id -> the treatment plan (its final id) whose CarePlan entry lists it.
fn goal_plans(
    planned: &[Planned],
    located: &[upsert::Located],
    moved: &HashMap<String, String>,
) -> HashMap<String, crate::domain::Id<crate::domain::TreatmentPlan>> {
    let mut plans = HashMap::new();
    for (plan, found) in planned.iter().zip(located) {
        if plan.resource_type != "CarePlan" || crate::mapping::is_relapse_plan(&plan.resource) {
            continue;
        }
        let Ok(plan_id) = found.id.parse() else {
            continue;
        };
        for goal in plan.resource["goal"].as_array().into_iter().flatten() {
            let Some(reference) = goal["reference"].as_str() else {
                continue;
            };
            let reference = moved
                .get(reference)
                .map(String::as_str)
                .unwrap_or(reference);
            if let Some(id) = reference.strip_prefix("Goal/") {
                plans.insert(id.to_owned(), plan_id);
            }
        }
    }
    plans
}

/// Finds every entry's record, points references at the records conditional entries found,
/// then writes each entry (in `write_rank` order): what each became, in the entries' order, or
/// the failing entry's index.
async fn write_all(
    tx: &mut Tx,
    state: &FhirState,
    caller: &Caller,
    planned: &[Planned],
) -> Result<Vec<((String, String), Done)>, (usize, Failure)> {
    let mut writer = write::Writer::of(caller);
    let mut located = Vec::new();
    let mut moved = HashMap::new();
    for (index, plan) in planned.iter().enumerate() {
        let found = upsert::locate(
            tx,
            state,
            &writer,
            &plan.resource_type,
            &plan.resource,
            &plan.target,
        )
        .await
        .map_err(|f| (index, f))?;
        if found.id != plan.id {
            moved.insert(
                format!("{}/{}", plan.resource_type, plan.id),
                format!("{}/{}", plan.resource_type, found.id),
            );
        }
        located.push(found);
    }
    if writer.clinic_app {
        writer.goal_plans = goal_plans(planned, &located, &moved);
    }
    let mut order: Vec<usize> = (0..planned.len()).collect();
    order.sort_by_key(|&i| write_rank(&planned[i]));
    let mut done = vec![None; planned.len()];
    for index in order {
        let (plan, found) = (&planned[index], &located[index]);
        let mut resource = plan.resource.clone();
        resolve_references(&mut resource, &moved);
        resource["id"] = fhir!(found.id.as_str());
        if found.found {
            // The record exists (a conditional create matched): it is disclosed, not written.
            let record =
                caller.write_record(AuditInteraction::Read, &plan.resource_type, &[&resource]);
            tx.append_audit(&record)
                .await
                .map_err(|e| (index, e.into()))?;
            done[index] = Some(((plan.resource_type.clone(), found.id.clone()), Done::Found));
            continue;
        }
        let result = upsert::write(
            tx,
            state,
            &writer,
            &plan.resource_type,
            &resource,
            found,
            upsert::Expected {
                if_match: plan.if_match,
                condition: plan.condition.as_ref(),
            },
        )
        .await
        .map_err(|f| (index, f))?;
        let interaction = match result {
            Done::Created => AuditInteraction::Create,
            _ => AuditInteraction::Update,
        };
        let record = caller.write_record(interaction, &plan.resource_type, &[&resource]);
        tx.append_audit(&record)
            .await
            .map_err(|e| (index, e.into()))?;
        done[index] = Some(((plan.resource_type.clone(), found.id.clone()), result));
    }
    Ok(done.into_iter().flatten().collect())
}

async fn response_entry(
    state: &FhirState,
    resource_type: &str,
    id: &str,
    done: Done,
) -> Result<Value, ApiError> {
    let status = match done {
        Done::Created => "201 Created",
        Done::Updated | Done::Found => "200 OK",
    };
    let resource = find(state, resource_type, id).await?;
    let version = resource
        .as_ref()
        .and_then(|r| r.pointer("/meta/versionId"))
        .and_then(Value::as_str)
        .unwrap_or("1")
        .to_owned();
    let mut entry = fhir!({
        "response": {
            "status": status,
            "location": format!("{resource_type}/{id}/_history/{version}"),
            "etag": format!("W/\"{version}\""),
        }
    });
    if let Some(resource) = resource {
        entry["resource"] = resource;
    }
    Ok(entry)
}

/// Each entry on its own: a failure is that entry's response, the others still happen.
async fn batch(
    state: &FhirState,
    caller: &Caller,
    entries: &[Value],
    params: &[(String, String)],
) -> Result<Response, ApiError> {
    let mut response_entries = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let outcome = async {
            let (mut plan, _) = plan(entry, index)?;
            check_scopes(state, caller, &plan).await?;
            if !plan.target.is_conditional() {
                plan.resource["id"] = fhir!(plan.id.as_str());
            }
            write::validated_off_thread(state, &plan.resource_type, &plan.resource).await?;
            for attempt in 1..=upsert::ATTEMPTS {
                let mut tx = state.store.begin().await?;
                match write_all(&mut tx, state, caller, std::slice::from_ref(&plan)).await {
                    Ok(mut done) => {
                        tx.commit().await?;
                        let ((resource_type, id), done) = done.remove(0);
                        return response_entry(state, &resource_type, &id, done).await;
                    }
                    Err((_, failure))
                        if failure.is_race(plan.if_match.is_some())
                            && attempt < upsert::ATTEMPTS => {}
                    Err((_, failure)) => return Err(ApiError::from(failure)),
                }
            }
            Err(ApiError::internal())
        }
        .await;
        response_entries.push(match outcome {
            Ok(entry) => entry,
            Err(error) => fhir!({
                "response": {
                    "status": error.status.as_u16().to_string(),
                    "outcome": error.outcome,
                }
            }),
        });
    }
    Ok(fhir_json(
        StatusCode::OK,
        &fhir!({ "resourceType": "Bundle", "type": "batch-response", "entry": response_entries }),
        pretty(params),
    ))
}
