//! The FHIR R4 REST API (mounted at `/fhir`): a facade over the clinic database. Reads are
//! assembled live from clinic rows (`assemble`), writes are validated against the IOP profiles,
//! mapped into clinic records and stored with optimistic concurrency.
//!
//! An edge: HTTP in and out. Which rows a search selects is `search.rs`; what a resource says
//! is the mapping's; what is valid is the validator's.

mod capability;
mod error;
mod history;
mod matching;
mod search;
mod transaction;
mod write;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

pub use error::ApiError;

use crate::assemble::{Assembler, RESOURCE_TYPES};
use crate::http::auth::Authenticator;
use crate::mapping::MappingConfig;
use crate::store::Store;
use crate::validation::Validator;

pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

/// Largest request body accepted (a transaction Bundle of a few hundred resources fits).
const MAX_BODY: usize = 4 * 1024 * 1024;
const DEFAULT_COUNT: u32 = 50;
const MAX_COUNT: u32 = 1000;

#[derive(Clone)]
pub struct FhirState {
    pub store: Store,
    pub validator: Arc<Validator>,
    pub mapping: Arc<MappingConfig>,
}

/// The API's routes, under `/fhir` (with and without a trailing slash for the base itself:
/// client libraries differ). Unknown paths answer 404 with an OperationOutcome.
pub fn router(state: FhirState, auth: Arc<dyn Authenticator>) -> Router {
    let protected = Router::new()
        .route("/fhir", axum::routing::post(transaction::bundle))
        .route("/fhir/", axum::routing::post(transaction::bundle))
        .route(
            "/fhir/{resource_type}",
            get(search_get)
                .post(write::create)
                .put(write::conditional_update),
        )
        .route(
            "/fhir/{resource_type}/{id}",
            get(read)
                .put(write::update)
                .post(operation)
                .delete(write::delete),
        )
        .route("/fhir/{resource_type}/_history", get(history::type_level))
        .route(
            "/fhir/{resource_type}/{id}/_history",
            get(history::instance),
        )
        .route("/fhir/{resource_type}/{id}/_history/{version}", get(vread))
        .route_layer(axum::middleware::from_fn_with_state(
            auth,
            crate::http::auth::require,
        ));
    // The CapabilityStatement is public (clients read it to learn how to authenticate).
    Router::new()
        .route("/fhir/metadata", get(metadata))
        .merge(protected)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .fallback(|| async { ApiError::not_found("no such FHIR endpoint") })
        .with_state(state)
}

/// `http://host/fhir` as the client addressed us (for absolute links and fullUrls).
fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|p| *p == "https")
        .unwrap_or("http");
    format!("{scheme}://{host}/fhir")
}

/// 406 for clients that want XML: only JSON is served.
fn check_accept(headers: &HeaderMap, params: &[(String, String)]) -> Result<(), ApiError> {
    let format = params
        .iter()
        .find(|(k, _)| k == "_format")
        .map(|(_, v)| v.as_str());
    let wants_xml = |v: &str| v.contains("xml") && !v.contains("json") && !v.contains("*/*");
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if format.is_some_and(|f| f.contains("xml")) || wants_xml(accept) {
        return Err(ApiError::not_supported(
            StatusCode::NOT_ACCEPTABLE,
            "this server speaks FHIR JSON only (application/fhir+json)",
        ));
    }
    Ok(())
}

fn known_type(resource_type: &str) -> Result<(), ApiError> {
    if RESOURCE_TYPES.contains(&resource_type) {
        Ok(())
    } else {
        Err(ApiError::not_supported(
            StatusCode::NOT_FOUND,
            format!(
                "resource type {resource_type} is not served here; types: {}",
                RESOURCE_TYPES.join(", ")
            ),
        ))
    }
}

/// A FHIR JSON response; `_pretty=true` indents it.
fn fhir_json(status: StatusCode, body: &Value, pretty: bool) -> Response {
    let text = if pretty {
        serde_json::to_string_pretty(body).unwrap_or_default()
    } else {
        body.to_string()
    };
    let mut response = (status, text).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    response
}

fn pretty(params: &[(String, String)]) -> bool {
    params.iter().any(|(k, v)| k == "_pretty" && v == "true")
}

fn query(
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Vec<(String, String)>, ApiError> {
    params
        .map(|Query(p)| p)
        .map_err(|_| ApiError::bad_request("the query string is not valid URL encoding"))
}

/// `ETag` and `Last-Modified` from the resource's meta.
fn version_headers(response: &mut Response, resource: &Value) {
    if let Some(version) = resource.pointer("/meta/versionId").and_then(Value::as_str)
        && let Ok(value) = HeaderValue::from_str(&format!("W/\"{version}\""))
    {
        response.headers_mut().insert(header::ETAG, value);
    }
    if let Some(updated) = resource
        .pointer("/meta/lastUpdated")
        .and_then(Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        && let Ok(value) = HeaderValue::from_str(
            &updated
                .with_timezone(&chrono::Utc)
                .format("%a, %d %b %Y %H:%M:%S GMT")
                .to_string(),
        )
    {
        response.headers_mut().insert(header::LAST_MODIFIED, value);
    }
}

async fn assembler(state: &FhirState) -> Result<Assembler<'_>, ApiError> {
    Ok(Assembler::new(
        &state.store,
        &state.mapping,
        chrono::Utc::now().date_naive(),
    )
    .await?)
}

async fn metadata(
    headers: HeaderMap,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = query(params)?;
    check_accept(&headers, &params)?;
    Ok(fhir_json(
        StatusCode::OK,
        &capability::statement(&base_url(&headers)),
        pretty(&params),
    ))
}

/// The current version of one resource, or None.
async fn find(state: &FhirState, resource_type: &str, id: &str) -> Result<Option<Value>, ApiError> {
    let Ok(uuid) = uuid::Uuid::parse_str(id) else {
        return Ok(None);
    };
    let id = uuid.to_string();
    let assembler = assembler(state).await?;
    let by_id = [crate::store::Filter::equals(
        "id",
        crate::store::SqlValue::text(&id),
    )];
    let page = assembler.page(resource_type, &by_id, None, 1).await?;
    let found = page
        .resources
        .into_iter()
        .find(|r| r.get("id").and_then(Value::as_str) == Some(id.as_str()));
    if found.is_some() || resource_type != "CarePlan" {
        return Ok(found);
    }
    // A relapse prevention plan is a CarePlan assembled with its treatment plan.
    let relapse = state
        .store
        .get::<crate::domain::RelapsePreventionPlan>(crate::domain::Id::from_uuid(uuid))
        .await?;
    let Some(relapse) = relapse else {
        return Ok(None);
    };
    let by_plan = [crate::store::Filter::equals(
        "id",
        crate::store::SqlValue::text(relapse.record.plan_id),
    )];
    let page = assembler.page("CarePlan", &by_plan, None, 1).await?;
    Ok(page
        .resources
        .into_iter()
        .find(|r| r.get("id").and_then(Value::as_str) == Some(id.as_str())))
}

async fn read(
    State(state): State<FhirState>,
    Path((resource_type, id)): Path<(String, String)>,
    headers: HeaderMap,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = query(params)?;
    check_accept(&headers, &params)?;
    known_type(&resource_type)?;
    let resource = find(&state, &resource_type, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("{resource_type}/{id} is not known")))?;
    let mut response = fhir_json(StatusCode::OK, &resource, pretty(&params));
    version_headers(&mut response, &resource);
    Ok(response)
}

/// Only the current version is kept (the clinic database is not a version store): a vread of
/// it succeeds, of an older one answers 404 with a clear reason.
async fn vread(
    State(state): State<FhirState>,
    Path((resource_type, id, version)): Path<(String, String, String)>,
    headers: HeaderMap,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = query(params)?;
    check_accept(&headers, &params)?;
    known_type(&resource_type)?;
    let resource = find(&state, &resource_type, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("{resource_type}/{id} is not known")))?;
    if resource.pointer("/meta/versionId").and_then(Value::as_str) != Some(version.as_str()) {
        return Err(ApiError::not_found(format!(
            "{resource_type}/{id} version {version} is not available: only the current version is kept"
        )));
    }
    let mut response = fhir_json(StatusCode::OK, &resource, pretty(&params));
    version_headers(&mut response, &resource);
    Ok(response)
}

async fn search_get(
    State(state): State<FhirState>,
    Path(resource_type): Path<String>,
    headers: HeaderMap,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = query(params)?;
    search(&state, &resource_type, &headers, params).await
}

/// `POST /fhir/Type/_search` (form-encoded parameters) and `POST /fhir/Type/$validate`.
async fn operation(
    State(state): State<FhirState>,
    Path((resource_type, operation)): Path<(String, String)>,
    headers: HeaderMap,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let mut params = query(params)?;
    let body = write::body(body)?;
    match operation.as_str() {
        "_search" => {
            let form: Vec<(String, String)> =
                serde_urlencoded::from_bytes(&body).map_err(|_| {
                    ApiError::bad_request("a _search body is form-encoded search parameters")
                })?;
            params.extend(form);
            search(&state, &resource_type, &headers, params).await
        }
        "$validate" => write::validate_operation(&state, &resource_type, &headers, &params, &body),
        _ => Err(ApiError::not_supported(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "POST to {resource_type}/{operation} is not supported; use POST {resource_type} to create"
            ),
        )),
    }
}

/// Rows scanned at most per search request when resource-level parameters filter (a page may
/// then hold fewer matches than `_count`, with a `next` link to go on).
const SCAN_LIMIT: usize = 5_000;
/// Matches sorted at most for `_sort` (beyond, the client is asked to narrow the search).
const SORT_LIMIT: usize = 10_000;

/// What a search request asks for, parsed and checked.
struct SearchRequest {
    filters: Vec<crate::store::Filter>,
    predicates: Vec<matching::Predicate>,
    count: u32,
    cursor: Option<String>,
    summary_count: bool,
    sort: Option<(String, bool)>,
    includes: Vec<(String, String)>,
    revincludes: Vec<(String, String)>,
    elements: Vec<String>,
    ignored: Vec<String>,
}

fn parse_search(
    state: &FhirState,
    resource_type: &str,
    params: &[(String, String)],
    strict: bool,
) -> Result<SearchRequest, ApiError> {
    let mut request = SearchRequest {
        filters: Vec::new(),
        predicates: Vec::new(),
        count: DEFAULT_COUNT,
        cursor: None,
        summary_count: false,
        sort: None,
        includes: Vec::new(),
        revincludes: Vec::new(),
        elements: Vec::new(),
        ignored: Vec::new(),
    };
    let type_param = |value: &str, what: &str| -> Result<(String, String), ApiError> {
        value
            .split_once(':')
            .map(|(t, p)| (t.to_owned(), p.to_owned()))
            .filter(|(t, _)| RESOURCE_TYPES.contains(&t.as_str()))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{what} takes Type:parameter, like CarePlan:subject"
                ))
            })
    };
    for (name, value) in params {
        match name.as_str() {
            // `_count=0` asks for the total only (as `_summary=count`).
            "_count" => match value.parse::<u32>() {
                Ok(0) => request.summary_count = true,
                Ok(count) => request.count = count.min(MAX_COUNT),
                Err(_) => return Err(ApiError::bad_request("_count must be a whole number")),
            },
            "_cursor" => {
                let id = value.rsplit('~').next().unwrap_or_default();
                uuid::Uuid::parse_str(id).map_err(|_| {
                    ApiError::bad_request("_cursor is not a paging cursor of this server")
                })?;
                request.cursor = Some(value.clone());
            }
            "_summary" if value == "count" => request.summary_count = true,
            "_sort" => {
                let (key, descending) = match value.strip_prefix('-') {
                    Some(key) => (key, true),
                    None => (value.as_str(), false),
                };
                if key != "_lastUpdated" && matching::kind_name(resource_type, key) != "date" {
                    return Err(ApiError::bad_request(format!(
                        "{resource_type} sorts by _lastUpdated or its date parameters"
                    )));
                }
                request.sort = Some((key.to_owned(), descending));
            }
            "_include" => request.includes.push(type_param(value, "_include")?),
            "_revinclude" => request.revincludes.push(type_param(value, "_revinclude")?),
            "_elements" => request
                .elements
                .extend(value.split(',').map(|e| e.trim().to_owned())),
            "_format" | "_pretty" => {}
            _ if search::supported(resource_type).contains(&name.as_str()) => request.filters.push(
                search::filter(resource_type, name, value, &state.mapping)
                    .map_err(|e| ApiError::bad_request(e.0))?,
            ),
            _ => match matching::predicate(resource_type, name, value) {
                Some(predicate) => request
                    .predicates
                    .push(predicate.map_err(ApiError::bad_request)?),
                None if strict => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "not-supported",
                        format!("{resource_type} does not support the search parameter {name}"),
                    ));
                }
                None => request.ignored.push(name.clone()),
            },
        }
    }
    Ok(request)
}

/// The sort key of a resource for `_sort` (an ISO date or instant, which sort as text).
fn sort_key(resource_type: &str, resource: &Value, key: &str) -> String {
    if key == "_lastUpdated" {
        return resource
            .pointer("/meta/lastUpdated")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
    }
    let path = match (resource_type, key) {
        ("Patient", _) => "birthDate",
        ("Goal", _) => "target.0.dueDate",
        ("Consent", _) => "dateTime",
        ("ServiceRequest" | "Task", _) => "authoredOn",
        _ => "period.start",
    };
    let mut node = resource;
    for step in path.split('.') {
        node = match step.parse::<usize>() {
            Ok(i) => node.get(i).unwrap_or(&Value::Null),
            Err(_) => node.get(step).unwrap_or(&Value::Null),
        };
    }
    node.as_str().unwrap_or_default().to_owned()
}

/// Keeps only the listed top-level elements (and what every resource needs), tagged SUBSETTED.
fn subset(resource: &mut Value, elements: &[String]) {
    if let Some(map) = resource.as_object_mut() {
        map.retain(|k, _| {
            matches!(k.as_str(), "resourceType" | "id" | "meta") || elements.iter().any(|e| e == k)
        });
    }
    let tag = json!({ "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED" });
    match resource["meta"]["tag"].as_array_mut() {
        Some(tags) => tags.push(tag),
        None => resource["meta"]["tag"] = json!([tag]),
    }
}

/// The references a resource holds in the element a parameter names (`patient` also looks at
/// `subject`, `for` and `beneficiary`).
fn references_at(resource: &Value, parameter: &str) -> Vec<(String, String)> {
    let own = [parameter];
    let elements: &[&str] = match parameter {
        "patient" => &["patient", "subject", "for", "beneficiary"],
        "based-on" => &["basedOn"],
        "part-of" => &["partOf"],
        "episode-of-care" => &["episodeOfCare"],
        _ => &own,
    };
    let mut out = Vec::new();
    for element in elements {
        let values = match resource.get(*element) {
            Some(Value::Array(items)) => items.iter().collect(),
            Some(v) => vec![v],
            None => Vec::new(),
        };
        for value in values {
            if let Some((t, id)) = value
                .get("reference")
                .and_then(Value::as_str)
                .and_then(|r| r.split_once('/'))
                && RESOURCE_TYPES.contains(&t)
            {
                out.push((t.to_owned(), id.to_owned()));
            }
        }
    }
    out
}

async fn search(
    state: &FhirState,
    resource_type: &str,
    headers: &HeaderMap,
    params: Vec<(String, String)>,
) -> Result<Response, ApiError> {
    check_accept(headers, &params)?;
    known_type(resource_type)?;
    let strict = headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("handling=strict"));
    let request = parse_search(state, resource_type, &params, strict)?;
    let base = base_url(headers);
    let assembler = assembler(state).await?;
    let mut bundle = json!({ "resourceType": "Bundle", "type": "searchset" });
    if request.summary_count && request.predicates.is_empty() {
        bundle["total"] = json!(assembler.count(resource_type, &request.filters).await?);
        return Ok(fhir_json(StatusCode::OK, &bundle, pretty(&params)));
    }
    let matches = |r: &Value| {
        r.get("resourceType").and_then(Value::as_str) == Some(resource_type)
            && request.predicates.iter().all(|p| matching::matches(p, r))
    };
    // Rows in id order after the cursor, filtered, until the page is full or the scan limit.
    let mut found: Vec<Value> = Vec::new();
    let mut next_cursor: Option<String> = None;
    if request.sort.is_none() && !request.summary_count {
        let mut after = request.cursor.clone();
        let mut scanned = 0;
        loop {
            let want = request.count as usize - found.len();
            let page = assembler
                .page(
                    resource_type,
                    &request.filters,
                    after.as_deref(),
                    want as u32,
                )
                .await?;
            scanned += want;
            found.extend(page.resources.into_iter().filter(|r| matches(r)));
            after = page.last_row.clone();
            if !page.full {
                break;
            }
            if found.len() >= request.count as usize || scanned >= SCAN_LIMIT {
                next_cursor = after;
                break;
            }
        }
    } else {
        // Sorting and counting with resource-level parameters need every match.
        let mut after: Option<String> = None;
        loop {
            let page = assembler
                .page(resource_type, &request.filters, after.as_deref(), 500)
                .await?;
            found.extend(page.resources.into_iter().filter(|r| matches(r)));
            if found.len() > SORT_LIMIT {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "too-costly",
                    format!(
                        "more than {SORT_LIMIT} matches to sort or count; narrow the search (for example by patient)"
                    ),
                ));
            }
            match (page.full, page.last_row) {
                (true, Some(last)) => after = Some(last),
                _ => break,
            }
        }
        if request.summary_count {
            bundle["total"] = json!(found.len());
            return Ok(fhir_json(StatusCode::OK, &bundle, pretty(&params)));
        }
        let (key, descending) = request.sort.clone().unwrap_or_default();
        let keyed = |r: &Value| {
            format!(
                "{}~{}",
                sort_key(resource_type, r, &key),
                r["id"].as_str().unwrap_or_default()
            )
        };
        found.sort_by_key(|r| keyed(r));
        if descending {
            found.reverse();
        }
        if let Some(cursor) = &request.cursor {
            found.retain(|r| {
                if descending {
                    keyed(r) < *cursor
                } else {
                    keyed(r) > *cursor
                }
            });
        }
        if found.len() > request.count as usize {
            found.truncate(request.count as usize);
            next_cursor = found.last().map(keyed);
        }
    }
    let own: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k != "_cursor")
        .cloned()
        .collect();
    let link = |cursor: Option<&str>| {
        let mut pairs = own.clone();
        if let Some(c) = cursor {
            pairs.push(("_cursor".into(), c.to_owned()));
        }
        let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        if query.is_empty() {
            format!("{base}/{resource_type}")
        } else {
            format!("{base}/{resource_type}?{query}")
        }
    };
    let mut links = vec![json!({ "relation": "self", "url": link(request.cursor.as_deref()) })];
    if let Some(next) = &next_cursor {
        links.push(json!({ "relation": "next", "url": link(Some(next)) }));
    }
    bundle["link"] = json!(links);
    // _include and _revinclude: referenced and referring resources, each once.
    let mut included: Vec<Value> = Vec::new();
    let mut seen: std::collections::HashSet<String> = found
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap_or_default(),
                r["id"].as_str().unwrap_or_default()
            )
        })
        .collect();
    for (source_type, parameter) in &request.includes {
        if source_type != resource_type {
            continue;
        }
        for resource in &found {
            for (t, id) in references_at(resource, parameter) {
                if seen.insert(format!("{t}/{id}"))
                    && let Some(target) = find(state, &t, &id).await?
                {
                    included.push(target);
                }
            }
        }
    }
    for (source_type, parameter) in &request.revincludes {
        if resource_type != "Patient" || !matches!(parameter.as_str(), "patient" | "subject") {
            continue;
        }
        known_type(source_type)?;
        for patient in &found {
            let id = patient["id"].as_str().unwrap_or_default();
            let filter = search::filter(source_type, "patient", id, &state.mapping)
                .map_err(|e| ApiError::bad_request(e.0))?;
            let page = assembler
                .page(source_type, std::slice::from_ref(&filter), None, MAX_COUNT)
                .await?;
            for r in page.resources {
                let key = format!(
                    "{}/{}",
                    r["resourceType"].as_str().unwrap_or_default(),
                    r["id"].as_str().unwrap_or_default()
                );
                if seen.insert(key) {
                    included.push(r);
                }
            }
        }
    }
    let entry = |mut r: Value, mode: &str| {
        if !request.elements.is_empty() && mode == "match" {
            subset(&mut r, &request.elements);
        }
        let full_url = format!(
            "{base}/{}/{}",
            r["resourceType"].as_str().unwrap_or_default(),
            r["id"].as_str().unwrap_or_default()
        );
        json!({ "fullUrl": full_url, "resource": r, "search": { "mode": mode } })
    };
    let mut entries: Vec<Value> = found.into_iter().map(|r| entry(r, "match")).collect();
    entries.extend(included.into_iter().map(|r| entry(r, "include")));
    if !request.ignored.is_empty() {
        entries.push(json!({
            "resource": {
                "resourceType": "OperationOutcome",
                "issue": [{
                    "severity": "warning",
                    "code": "not-supported",
                    "diagnostics": format!("search parameters ignored (not supported for {resource_type}): {}", request.ignored.join(", "))
                }]
            },
            "search": { "mode": "outcome" }
        }));
    }
    bundle["entry"] = json!(entries);
    Ok(fhir_json(StatusCode::OK, &bundle, pretty(&params)))
}
