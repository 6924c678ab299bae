//! Instance and type history from the clinic's change log. The clinic database keeps the current
//! row, not old versions: every change is listed (method, version, time), and the entry of the
//! current version carries the resource; older entries have no resource, and the Bundle says so.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::{
    ApiError, FhirState, base_url, check_accept, fhir_json, find, known_type, pretty, query,
};
use crate::store::{Change, Operation};

const MAX_ENTRIES: u32 = 1_000;

pub(super) async fn instance(
    State(state): State<FhirState>,
    Path((resource_type, id)): Path<(String, String)>,
    headers: HeaderMap,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = query(params)?;
    check_accept(&headers, &params)?;
    known_type(&resource_type)?;
    let table = crate::assemble::table(&resource_type).ok_or_else(ApiError::internal)?;
    let id = uuid::Uuid::parse_str(&id)
        .map_err(|_| ApiError::not_found(format!("{resource_type}/{id} is not known")))?
        .to_string();
    let changes = state
        .store
        .changes_of(table, Some(&id), 0, MAX_ENTRIES)
        .await?;
    if changes.is_empty() {
        return Err(ApiError::not_found(format!(
            "{resource_type}/{id} is not known"
        )));
    }
    let bundle = bundle(&state, &resource_type, changes, &headers).await?;
    Ok(fhir_json(StatusCode::OK, &bundle, pretty(&params)))
}

pub(super) async fn type_level(
    State(state): State<FhirState>,
    Path(resource_type): Path<String>,
    headers: HeaderMap,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = query(params)?;
    check_accept(&headers, &params)?;
    known_type(&resource_type)?;
    let table = crate::assemble::table(&resource_type).ok_or_else(ApiError::internal)?;
    let count = params
        .iter()
        .find(|(k, _)| k == "_count")
        .map(|(_, v)| v.parse::<u32>())
        .transpose()
        .map_err(|_| ApiError::bad_request("_count must be a whole number"))?
        .unwrap_or(100)
        .clamp(1, MAX_ENTRIES);
    let after = params
        .iter()
        .find(|(k, _)| k == "_cursor")
        .map(|(_, v)| v.parse::<i64>())
        .transpose()
        .map_err(|_| ApiError::bad_request("_cursor is not a history cursor of this server"))?
        .unwrap_or(0);
    let changes = state.store.changes_of(table, None, after, count).await?;
    let next = (changes.len() == count as usize)
        .then(|| changes.last().map(|c| c.seq))
        .flatten();
    let mut bundle = bundle(&state, &resource_type, changes, &headers).await?;
    if let Some(next) = next {
        bundle["link"] = json!([{
            "relation": "next",
            "url": format!("{}/{resource_type}/_history?_count={count}&_cursor={next}", base_url(&headers))
        }]);
    }
    Ok(fhir_json(StatusCode::OK, &bundle, pretty(&params)))
}

/// Newest first, as FHIR history is.
async fn bundle(
    state: &FhirState,
    resource_type: &str,
    mut changes: Vec<Change>,
    headers: &HeaderMap,
) -> Result<Value, ApiError> {
    changes.reverse();
    let base = base_url(headers);
    let mut current: std::collections::HashMap<String, Option<Value>> = Default::default();
    let mut entries = Vec::new();
    for change in &changes {
        if !current.contains_key(&change.row_id) {
            let resource = find(state, resource_type, &change.row_id).await?;
            current.insert(change.row_id.clone(), resource);
        }
        let resource = current[&change.row_id].as_ref().filter(|r| {
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
        let mut entry = json!({
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
    Ok(json!({
        "resourceType": "Bundle",
        "type": "history",
        "total": entries.len(),
        "entry": entries,
    }))
}
