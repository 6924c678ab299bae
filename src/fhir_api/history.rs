//! Instance and type history from the clinic's change log, newest first (as FHIR says), paged
//! with `next` links (`_before`: the sequence number below which the next page starts), `total`
//! the true number of changes. The clinic database keeps the current row, not old versions: every
//! change is listed (method, version, time), and the entry of the current version carries the
//! resource; older entries have no resource. The resources of a page are loaded in one batch.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::access::{self, Caller};
use super::{
    ApiError, FhirState, base_url, check_accept, fhir_json, find_many, known_type, pretty, query,
};
use crate::audit::Event;
use crate::auth::Letter;
use crate::disclose::{Audience, Gate};
use crate::domain::AuditInteraction;
use crate::json_build::fhir;
use crate::store::{Change, Operation};

const DEFAULT_ENTRIES: u32 = 100;
const MAX_ENTRIES: u32 = 1_000;

pub(super) async fn instance(
    State(state): State<FhirState>,
    caller: Caller,
    Path((resource_type, id)): Path<(String, String)>,
    headers: HeaderMap,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = query(params)?;
    check_accept(&headers, &params)?;
    known_type(&resource_type)?;
    access::require(
        &state,
        &caller,
        &resource_type,
        Letter::Read,
        AuditInteraction::History,
    )
    .await?;
    let id = uuid::Uuid::parse_str(&id)
        .map_err(|_| ApiError::not_found(format!("{resource_type}/{id} is not known")))?
        .to_string();
    // The history of a resource the caller may not see is 404, as if it did not exist.
    let mut gate = access::gate(&state, &caller).await?;
    if *gate.audience() != Audience::Unfiltered {
        let current = super::find(&state, &resource_type, &id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("{resource_type}/{id} is not known")))?;
        let verdict = gate.permits(&state.store, &current).await?;
        if !verdict.permit {
            return Err(access::withheld(
                &state,
                &caller,
                AuditInteraction::History,
                &resource_type,
                &id,
                &verdict,
            )
            .await);
        }
    }
    let bundle = history(
        &state,
        &mut gate,
        &resource_type,
        Some(&id),
        &params,
        &headers,
    )
    .await?;
    if bundle["total"] == 0 {
        return Err(ApiError::not_found(format!(
            "{resource_type}/{id} is not known"
        )));
    }
    audit_page(&state, &caller, &gate, &resource_type, &bundle).await?;
    Ok(fhir_json(StatusCode::OK, &bundle, pretty(&params)))
}

pub(super) async fn type_level(
    State(state): State<FhirState>,
    caller: Caller,
    Path(resource_type): Path<String>,
    headers: HeaderMap,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = query(params)?;
    check_accept(&headers, &params)?;
    known_type(&resource_type)?;
    access::require(
        &state,
        &caller,
        &resource_type,
        Letter::Read,
        AuditInteraction::History,
    )
    .await?;
    let mut gate = access::gate(&state, &caller).await?;
    let bundle = history(&state, &mut gate, &resource_type, None, &params, &headers).await?;
    audit_page(&state, &caller, &gate, &resource_type, &bundle).await?;
    Ok(fhir_json(StatusCode::OK, &bundle, pretty(&params)))
}

/// Records the resources a history page carries as disclosed.
async fn audit_page(
    state: &FhirState,
    caller: &Caller,
    gate: &Gate,
    resource_type: &str,
    bundle: &Value,
) -> Result<(), ApiError> {
    let resources: Vec<&Value> = bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("resource"))
        .collect();
    access::disclosed(
        state,
        caller,
        Event::success(AuditInteraction::History, resource_type)
            .with_consents(gate.consents_used()),
        &resources,
    )
    .await
}

/// One page of the history of a type, or of one resource (`id`).
async fn history(
    state: &FhirState,
    gate: &mut Gate,
    resource_type: &str,
    id: Option<&str>,
    params: &[(String, String)],
    headers: &HeaderMap,
) -> Result<Value, ApiError> {
    let tables = crate::assemble::tables(resource_type).ok_or_else(ApiError::internal)?;
    let number = |name: &str, what: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.parse::<u32>().map(i64::from))
            .transpose()
            .map_err(|_| ApiError::bad_request(format!("{name} must be {what}")))
    };
    let count = number("_count", "a whole number")?.map_or(DEFAULT_ENTRIES, |c| {
        c.clamp(1, i64::from(MAX_ENTRIES)) as u32
    });
    let before = params
        .iter()
        .find(|(k, _)| k == "_before")
        .map(|(_, v)| v.parse::<i64>())
        .transpose()
        .map_err(|_| ApiError::bad_request("_before is not a history cursor of this server"))?;
    if let Some(unknown) = params
        .iter()
        .map(|(k, _)| k.as_str())
        .find(|k| !matches!(*k, "_count" | "_before" | "_format" | "_pretty"))
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "not-supported",
            format!("history does not support the parameter {unknown}; it takes _count"),
        ));
    }
    let total = state.store.count_changes(tables, id).await?;
    let base = base_url(state, headers);
    // A page the gate empties is followed by the next, so no empty page has a `next` link.
    let mut from = before;
    let (mut bundle, next) = loop {
        let changes = state
            .store
            .changes_newest_first(tables, id, from, count)
            .await?;
        let next = (changes.len() == count as usize)
            .then(|| changes.last().map(|c| c.seq))
            .flatten();
        let bundle = entries(state, gate, resource_type, &changes, &base).await?;
        let empty = bundle["entry"].as_array().is_none_or(Vec::is_empty);
        match next {
            Some(seq) if empty => from = Some(seq),
            _ => break (bundle, next),
        }
    };
    // A type's history shows only the changes of resources the caller may see, so the true
    // count of all changes would tell of the others: it is left out for a filtered caller.
    if id.is_some() || *gate.audience() == Audience::Unfiltered {
        bundle["total"] = fhir!(total);
    }
    let own = match id {
        Some(id) => format!("{base}/{resource_type}/{id}/_history"),
        None => format!("{base}/{resource_type}/_history"),
    };
    let mut links = vec![fhir!({ "relation": "self", "url": match before {
        Some(b) => format!("{own}?_count={count}&_before={b}"),
        None => format!("{own}?_count={count}"),
    } })];
    if let Some(next) = next {
        links.push(
            fhir!({ "relation": "next", "url": format!("{own}?_count={count}&_before={next}") }),
        );
    }
    bundle["link"] = fhir!(links);
    Ok(bundle)
}

/// The history Bundle of `changes` (already newest first); the resources they are current for,
/// loaded in one batch.
async fn entries(
    state: &FhirState,
    gate: &mut Gate,
    resource_type: &str,
    changes: &[Change],
    base: &str,
) -> Result<Value, ApiError> {
    let ids: Vec<String> = changes.iter().map(|c| c.row_id.clone()).collect();
    let loaded = find_many(state, resource_type, &ids).await?;
    // Changes of what the gate withholds (or of what no longer exists) are not listed for a
    // filtered caller: even a change's id would tell that the resource exists.
    let filtered = *gate.audience() != Audience::Unfiltered;
    let resources: Vec<Value> = loaded.values().cloned().collect();
    gate.load(&state.store, &resources).await?;
    let mut current = std::collections::HashMap::new();
    for (id, resource) in loaded {
        if let Some(admitted) = gate.admit_loaded(resource) {
            current.insert(id, admitted);
        }
    }
    let mut entries = Vec::new();
    for change in changes {
        if filtered && !current.contains_key(&change.row_id) {
            continue;
        }
        let resource = current.get(&change.row_id).filter(|r| {
            r.pointer("/meta/versionId").and_then(Value::as_str)
                == Some(change.row_version.to_string().as_str())
        });
        let (method, status) = match change.operation {
            Operation::Insert => ("POST", "201 Created"),
            Operation::Update => ("PUT", "200 OK"),
            Operation::Delete => ("DELETE", "204 No Content"),
        };
        let url = match change.operation {
            Operation::Insert => resource_type.to_owned(),
            _ => format!("{resource_type}/{}", change.row_id),
        };
        let mut entry = fhir!({
            "fullUrl": format!("{base}/{resource_type}/{}", change.row_id),
            "request": { "method": method, "url": url },
            "response": {
                "status": status,
                "etag": format!("W/\"{}\"", change.row_version),
                "lastModified": change.changed_at.to_string(),
            }
        });
        if let Some(resource) = resource {
            entry["resource"] = resource.clone();
        }
        entries.push(entry);
    }
    Ok(fhir!({
        "resourceType": "Bundle",
        "type": "history",
        "entry": entries,
    }))
}
