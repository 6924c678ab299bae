//! `POST /fhir` with a `transaction` Bundle (all entries in one database transaction: all or
//! nothing, `urn:uuid:` references between entries resolved to the ids given) or a `batch`
//! Bundle (each entry on its own).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::capability::WRITABLE;
use super::write::{self, Inbound};
use super::{ApiError, FhirState, check_accept, fhir_json, find, pretty, query};

/// One entry's planned write.
struct Planned {
    resource_type: String,
    id: String,
    resource: Value,
    /// PUT: update (or create at this id); POST: create.
    put: bool,
    if_match: Option<i64>,
}

pub(super) async fn bundle(
    State(state): State<FhirState>,
    headers: HeaderMap,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let params = query(params)?;
    check_accept(&headers, &params)?;
    let body = write::body(body)?;
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
    match bundle.get("type").and_then(Value::as_str) {
        Some("transaction") => transaction(&state, &entries, &params).await,
        Some("batch") => batch(&state, &entries, &params).await,
        _ => Err(ApiError::bad_request(
            "Bundle.type must be transaction or batch",
        )),
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
    let (url_type, url_id) = match url.split_once('/') {
        Some((t, id)) => (t, Some(id)),
        None => (url.split('?').next().unwrap_or(url), None),
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
    let (id, put) = match (method, url_id) {
        ("POST", None) if write::CREATED_IN_THE_CLINIC.contains(&resource_type.as_str()) => {
            return Err(write::created_in_the_clinic(&resource_type));
        }
        ("POST", None) => (uuid::Uuid::now_v7().to_string(), false),
        ("PUT", Some(id)) => {
            let id = uuid::Uuid::parse_str(id)
                .map_err(|_| fail("a PUT url names Type/id with a UUID id".into()))?;
            (id.to_string(), true)
        }
        (method, _) => {
            return Err(ApiError::not_supported(
                StatusCode::METHOD_NOT_ALLOWED,
                format!(
                    "entry[{index}]: {method} {url} is not supported in a Bundle (POST Type, PUT Type/id)"
                ),
            ));
        }
    };
    let full_url = entry
        .get("fullUrl")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok((
        Planned {
            resource_type,
            id,
            resource,
            put,
            if_match,
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
            json!({
                "severity": "error",
                "code": "processing",
                "diagnostics": format!("entry[{index}] failed; the transaction wrote nothing")
            }),
        );
    }
    error
}

async fn transaction(
    state: &FhirState,
    entries: &[Value],
    params: &[(String, String)],
) -> Result<Response, ApiError> {
    let mut planned = Vec::new();
    let mut targets = HashMap::new();
    for (index, entry) in entries.iter().enumerate() {
        let (plan, full_url) = plan(entry, index)?;
        if let Some(full_url) = full_url {
            targets.insert(full_url, format!("{}/{}", plan.resource_type, plan.id));
        }
        planned.push(plan);
    }
    let mut records: Vec<Inbound> = Vec::new();
    for (index, plan) in planned.iter_mut().enumerate() {
        resolve_references(&mut plan.resource, &targets);
        plan.resource["id"] = json!(plan.id);
        let record = write::inbound(state, &plan.resource_type, &plan.resource)
            .map_err(|e| entry_failed(index, e))?;
        records.push(record);
    }
    // One database transaction: any failure rolls every entry back (the Tx is dropped).
    let mut tx = state.store.begin().await?;
    let mut statuses = Vec::new();
    for (index, (plan, record)) in planned.iter().zip(&records).enumerate() {
        let stored = if plan.put {
            record
                .stored_version(&mut tx)
                .await
                .map_err(|e| entry_failed(index, e.into()))?
        } else {
            None
        };
        let result = match stored {
            Some(version) => {
                record
                    .update(&mut tx, plan.if_match.unwrap_or(version))
                    .await
            }
            None if plan.if_match.is_some() => {
                return Err(entry_failed(
                    index,
                    ApiError::not_found(format!(
                        "{}/{} does not exist, so ifMatch cannot hold",
                        plan.resource_type, plan.id
                    )),
                ));
            }
            None => record.insert(&mut tx).await,
        };
        result.map_err(|e| entry_failed(index, e.into()))?;
        statuses.push(if stored.is_some() {
            "200 OK"
        } else {
            "201 Created"
        });
    }
    tx.commit().await?;
    tracing::info!(entries = planned.len(), "transaction committed");
    let mut response_entries = Vec::new();
    for (plan, status) in planned.iter().zip(statuses) {
        response_entries.push(response_entry(state, plan, status).await?);
    }
    Ok(fhir_json(
        StatusCode::OK,
        &json!({ "resourceType": "Bundle", "type": "transaction-response", "entry": response_entries }),
        pretty(params),
    ))
}

async fn response_entry(
    state: &FhirState,
    plan: &Planned,
    status: &str,
) -> Result<Value, ApiError> {
    let resource = find(state, &plan.resource_type, &plan.id).await?;
    let version = resource
        .as_ref()
        .and_then(|r| r.pointer("/meta/versionId"))
        .and_then(Value::as_str)
        .unwrap_or("1")
        .to_owned();
    let mut entry = json!({
        "response": {
            "status": status,
            "location": format!("{}/{}/_history/{version}", plan.resource_type, plan.id),
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
    entries: &[Value],
    params: &[(String, String)],
) -> Result<Response, ApiError> {
    let mut response_entries = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let outcome = async {
            let (mut plan, _) = plan(entry, index)?;
            plan.resource["id"] = json!(plan.id);
            let record = write::inbound(state, &plan.resource_type, &plan.resource)?;
            let mut tx = state.store.begin().await?;
            let stored = if plan.put {
                record.stored_version(&mut tx).await?
            } else {
                None
            };
            match stored {
                Some(version) => {
                    record
                        .update(&mut tx, plan.if_match.unwrap_or(version))
                        .await?
                }
                None => record.insert(&mut tx).await?,
            }
            tx.commit().await?;
            let status = if stored.is_some() {
                "200 OK"
            } else {
                "201 Created"
            };
            response_entry(state, &plan, status).await
        }
        .await;
        response_entries.push(match outcome {
            Ok(entry) => entry,
            Err(error) => json!({
                "response": {
                    "status": error.status.as_u16().to_string(),
                    "outcome": error.outcome,
                }
            }),
        });
    }
    Ok(fhir_json(
        StatusCode::OK,
        &json!({ "resourceType": "Bundle", "type": "batch-response", "entry": response_entries }),
        pretty(params),
    ))
}
