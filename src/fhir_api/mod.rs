//! The FHIR R4 REST API (mounted at `/fhir`): a facade over the clinic database. Reads are
//! assembled live from clinic rows (`assemble`), writes are validated against the inbound profiles,
//! mapped into clinic records and stored with optimistic concurrency.
//!
//! An edge: HTTP in and out. Which rows a search selects is `search.rs`; what a resource says
//! is the mapping's; what is valid is the validator's.

mod access;
mod audit_events;
mod bulk;
mod capability;
mod error;
mod feedback;
mod filters;
/// The store filter for the rows of a type that belong to these clients (Patient ids).
pub use filters::of_clients;
mod add_review;
mod clinic_records;
mod history;
mod matching;
mod messaging;
mod referral_rest;
mod searchset;
mod transaction;
mod upsert;
mod write;

use std::borrow::Cow;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;

pub use access::Caller;
pub use error::ApiError;
#[doc(hidden)]
pub use searchset::{TypeFilter, search_in};
#[doc(hidden)]
pub use write::{Ingested, ingest, read_body};

use crate::assemble::{Assembler, RESOURCE_TYPES};
use crate::audit::Event;
use crate::auth::Letter;
use crate::domain::AuditInteraction;
use crate::mapping::MappingConfig;
use crate::read_cache::Seen;
use crate::store::{AuditWriter, Store};
use crate::validation::Validator;

pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

const DEFAULT_COUNT: u32 = 50;
const MAX_COUNT: u32 = 1000;

#[derive(Clone)]
pub struct FhirState {
    pub store: Store,
    /// Audit records of reads and searches, committed in groups (`AuditWriter`).
    pub audit: AuditWriter,
    /// Gate rows and assembled resources kept across requests (`read_cache`).
    pub read_cache: Arc<crate::read_cache::ReadCache>,
    pub validator: Arc<Validator>,
    pub mapping: Arc<MappingConfig>,
    /// What the CapabilityStatement says of security (from the authenticator).
    pub security: Security,
    pub public_url: Arc<PublicUrl>,
    /// Deepest JSON nesting accepted in a body.
    pub max_json_depth: usize,
    /// The clinic's consent policy for what no consent decides.
    pub consent_policy: Arc<crate::consent::Policy>,
    /// Where Bulk Data export files are (shared by every replica).
    pub export_dir: Arc<std::path::PathBuf>,
    /// When each running export was last polled here (to answer 429 to a client polling much
    /// faster than `Retry-After` asks; kept per replica).
    pub export_polls: Arc<std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>>,
}

impl FhirState {
    /// The API's state for writing by its rules without serving (a sync pull): no public URL,
    /// no Bulk Data.
    pub fn for_ingest(
        store: Store,
        validator: Arc<Validator>,
        mapping: Arc<MappingConfig>,
        consent_policy: Arc<crate::consent::Policy>,
    ) -> Self {
        Self {
            audit: AuditWriter::new(store.clone()),
            read_cache: Default::default(),
            store,
            validator,
            mapping,
            security: Security {
                description: "".into(),
                smart: false,
            },
            public_url: Arc::new(PublicUrl::FromRequest),
            max_json_depth: 64,
            consent_policy,
            export_dir: Arc::new(std::path::PathBuf::new()),
            export_polls: Default::default(),
        }
    }
}

/// Security as the CapabilityStatement states it.
#[derive(Debug, Clone)]
pub struct Security {
    pub description: Arc<str>,
    /// SMART Backend Services with this gateway's token endpoint.
    pub smart: bool,
}

/// The base of every link, `fullUrl` and `Location` the API writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicUrl {
    /// The configured address (`https://fhir.clinic.example`; `/fhir` is appended).
    Fixed(String),
    /// The request's `Host` and `X-Forwarded-Proto`: only behind a proxy that sets them, since a
    /// client could otherwise choose the links it is given.
    FromRequest,
}

impl PublicUrl {
    /// A fixed public URL, checked: http or https, no query or fragment.
    pub fn fixed(url: &str) -> Option<Self> {
        let url = url.trim_end_matches('/');
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))?;
        let ok = !rest.is_empty() && !rest.contains(['?', '#', ' ']);
        ok.then(|| Self::Fixed(url.to_owned()))
    }
}

/// The routes that need an authenticated caller (the HTTP edge puts the authenticator in front
/// of them), under `/fhir` (with and without a trailing slash for the base itself: client
/// libraries differ).
pub fn protected_routes() -> Router<FhirState> {
    Router::new()
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
        .route(
            "/fhir/{resource_type}/{id}/{operation}",
            get(instance_operation).post(instance_operation),
        )
        .route("/bulk/{job}", get(bulk::status).delete(bulk::cancel))
        .route("/bulk/{job}/{file}", get(bulk::file))
}

/// `/fhir/Group/{id}/$export`, the one instance-level operation.
async fn instance_operation(
    State(state): State<FhirState>,
    caller: Caller,
    method: axum::http::Method,
    Path((resource_type, id, operation)): Path<(String, String, String)>,
    headers: HeaderMap,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let params = query(params)?;
    if resource_type == "CarePlan" && operation == "$add-review" {
        if method != axum::http::Method::POST {
            return Err(ApiError::not_supported(
                StatusCode::METHOD_NOT_ALLOWED,
                "$add-review is POSTed with a Parameters body",
            ));
        }
        check_accept(&headers, &params)?;
        return add_review::add_review(&state, &caller, &id, &headers, &params, body).await;
    }
    if resource_type != "Group" || operation != "$export" {
        return Err(ApiError::not_found(format!(
            "no operation {operation} on {resource_type}/{id}"
        )));
    }
    let body = bulk_body(body)?;
    bulk::kick_off(
        &state,
        &caller,
        crate::bulk::Level::Group(id),
        &headers,
        &params,
        body.as_ref(),
    )
    .await
}

/// A POST kick-off's body: empty, or a `Parameters` resource.
fn bulk_body(body: Result<Bytes, BytesRejection>) -> Result<Option<Value>, ApiError> {
    let bytes = body.map_err(|_| ApiError::bad_request("the request body could not be read"))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|_| ApiError::bad_request("a POST $export body is a Parameters resource in JSON"))
}

/// The API: the public CapabilityStatement (clients read it to learn how to authenticate) and
/// `protected` (the protected routes, guarded). Unknown paths answer 404 with an
/// OperationOutcome.
pub fn router(state: FhirState, protected: Router<FhirState>, max_body: usize) -> Router {
    Router::new()
        .route("/fhir/metadata", get(metadata))
        .merge(protected)
        .layer(DefaultBodyLimit::max(max_body))
        .fallback(|| async { ApiError::not_found("no such FHIR endpoint") })
        .with_state(state)
}

impl PublicUrl {
    /// `https://fhir.clinic.example`: where the gateway's routes are, for this request.
    pub fn origin(&self, headers: &HeaderMap) -> String {
        match self {
            Self::Fixed(url) => url.clone(),
            Self::FromRequest => request_origin(headers),
        }
    }
}

/// `{public_url}/fhir`: the base of absolute links and fullUrls.
fn base_url(state: &FhirState, headers: &HeaderMap) -> String {
    format!("{}/fhir", state.public_url.origin(headers))
}

/// `http://host` as the client addressed us.
fn request_origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|p| *p == "https")
        .unwrap_or("http");
    format!("{scheme}://{host}")
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

/// An assembler for one request; "today" (for consent and contact status) is the request's day.
fn assembler(state: &FhirState) -> Assembler<'_> {
    assembler_on(state, chrono::Utc::now().date_naive())
}

/// An assembler as of `day`: a request that reads through the read cache assembles as of the
/// day the cache keeps resources for (`Seen::day`).
fn assembler_on(state: &FhirState, day: chrono::NaiveDate) -> Assembler<'_> {
    Assembler::new(&state.store, &state.mapping, day)
}

async fn metadata(
    State(state): State<FhirState>,
    headers: HeaderMap,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = query(params)?;
    check_accept(&headers, &params)?;
    Ok(fhir_json(
        StatusCode::OK,
        &capability::statement(
            &base_url(&state, &headers),
            &state.security,
            &state.public_url.origin(&headers),
            state.validator.iop_profiles(),
        ),
        pretty(&params),
    ))
}

/// Runs CPU-bound work (validation of a body or a Bundle) on tokio's blocking pool, so that one
/// big request does not stall the async workers that serve every other request.
async fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(|err| {
        tracing::error!(panicked = err.is_panic(), "a blocking task failed");
        ApiError::internal()
    })
}

/// The current version of one resource, or None.
async fn find(state: &FhirState, resource_type: &str, id: &str) -> Result<Option<Value>, ApiError> {
    let mut found = find_many(state, resource_type, &[id.to_owned()]).await?;
    Ok(found.remove(id))
}

/// `find` through the read cache, brought up to date for this request (`seen`).
async fn find_cached(
    state: &FhirState,
    seen: Seen,
    resource_type: &str,
    id: &str,
) -> Result<Option<Arc<Value>>, ApiError> {
    if let Some(kept) = state.read_cache.resource(resource_type, id) {
        return Ok(Some(kept));
    }
    let found = assembler_on(state, seen.day())
        .by_ids(resource_type, &[id.to_owned()])
        .await?
        .remove(id)
        .map(Arc::new);
    if let Some(resource) = &found {
        state
            .read_cache
            .keep_resource(seen, resource_type, id, Arc::clone(resource));
    }
    Ok(found)
}

async fn find_many(
    state: &FhirState,
    resource_type: &str,
    ids: &[String],
) -> Result<std::collections::HashMap<String, Value>, ApiError> {
    Ok(assembler(state).by_ids(resource_type, ids).await?)
}

async fn read(
    State(state): State<FhirState>,
    caller: Caller,
    Path((resource_type, id)): Path<(String, String)>,
    headers: HeaderMap,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = query(params)?;
    if resource_type == "Patient" && id == "$export" {
        return bulk::kick_off(
            &state,
            &caller,
            crate::bulk::Level::Patient,
            &headers,
            &params,
            None,
        )
        .await;
    }
    check_accept(&headers, &params)?;
    if resource_type == audit_events::TYPE {
        return audit_events::read(&state, &caller, &id, &params).await;
    }
    if resource_type == "Bundle" {
        return feedback::read(&state, &caller, &id, &params).await;
    }
    known_type(&resource_type)?;
    access::require(
        &state,
        &caller,
        &resource_type,
        Letter::Read,
        AuditInteraction::Read,
    )
    .await?;
    let seen = access::fresh(&state).await?;
    let resource = find_cached(&state, seen, &resource_type, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("{resource_type}/{id} is not known")))?;
    let (resource, consents) = disclosable(
        &state,
        &caller,
        seen,
        AuditInteraction::Read,
        &resource_type,
        &id,
        &resource,
    )
    .await?;
    access::disclosed(
        &state,
        &caller,
        Event::success(AuditInteraction::Read, &resource_type).with_consents(&consents),
        &[&resource],
    )
    .await?;
    let mut response = fhir_json(StatusCode::OK, &resource, pretty(&params));
    version_headers(&mut response, &resource);
    Ok(response)
}

/// `resource` as this caller may see it (references to what it may not see removed) and the
/// consents that allowed it; a withheld resource is 404, as if it did not exist.
async fn disclosable<'a>(
    state: &FhirState,
    caller: &Caller,
    seen: Seen,
    interaction: AuditInteraction,
    resource_type: &str,
    id: &str,
    resource: &'a Value,
) -> Result<(Cow<'a, Value>, Vec<String>), ApiError> {
    let mut gate = access::gate_as_of(state, caller, seen);
    let verdict = gate.permits(&state.store, resource).await?;
    if !verdict.permit {
        return Err(
            access::withheld(state, caller, interaction, resource_type, id, &verdict).await,
        );
    }
    // The kept resource is shared: it is copied only where the gate takes something out.
    Ok((
        gate.redacted(resource),
        verdict.consent.into_iter().collect(),
    ))
}

/// Only the current version is kept (the clinic database is not a version store): a vread of
/// it succeeds, of an older one answers 404 with a clear reason.
async fn vread(
    State(state): State<FhirState>,
    caller: Caller,
    Path((resource_type, id, version)): Path<(String, String, String)>,
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
        AuditInteraction::Vread,
    )
    .await?;
    let seen = access::fresh(&state).await?;
    let resource = find_cached(&state, seen, &resource_type, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("{resource_type}/{id} is not known")))?;
    let (resource, consents) = disclosable(
        &state,
        &caller,
        seen,
        AuditInteraction::Vread,
        &resource_type,
        &id,
        &resource,
    )
    .await?;
    if resource.pointer("/meta/versionId").and_then(Value::as_str) != Some(version.as_str()) {
        return Err(ApiError::not_found(format!(
            "{resource_type}/{id} version {version} is not available: only the current version is kept"
        )));
    }
    access::disclosed(
        &state,
        &caller,
        Event::success(AuditInteraction::Vread, &resource_type).with_consents(&consents),
        &[&resource],
    )
    .await?;
    let mut response = fhir_json(StatusCode::OK, &resource, pretty(&params));
    version_headers(&mut response, &resource);
    Ok(response)
}

async fn search_get(
    State(state): State<FhirState>,
    caller: Caller,
    Path(resource_type): Path<String>,
    headers: HeaderMap,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = query(params)?;
    if resource_type == "$export" {
        return bulk::kick_off(
            &state,
            &caller,
            crate::bulk::Level::System,
            &headers,
            &params,
            None,
        )
        .await;
    }
    search_any(&state, &caller, &resource_type, &headers, params).await
}

/// A search of the clinic's resources, or of the audit trail.
async fn search_any(
    state: &FhirState,
    caller: &Caller,
    resource_type: &str,
    headers: &HeaderMap,
    params: Vec<(String, String)>,
) -> Result<Response, ApiError> {
    if resource_type == audit_events::TYPE {
        check_accept(headers, &params)?;
        return audit_events::search(state, caller, headers, &params).await;
    }
    searchset::search(state, caller, resource_type, headers, params).await
}

/// `POST /fhir/Type/_search` (form-encoded parameters) and `POST /fhir/Type/$validate`.
async fn operation(
    State(state): State<FhirState>,
    caller: Caller,
    Path((resource_type, operation)): Path<(String, String)>,
    headers: HeaderMap,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let mut params = query(params)?;
    if resource_type == "Patient" && operation == "$export" {
        let body = bulk_body(body)?;
        return bulk::kick_off(
            &state,
            &caller,
            crate::bulk::Level::Patient,
            &headers,
            &params,
            body.as_ref(),
        )
        .await;
    }
    let body = write::body(&state, body)?;
    match operation.as_str() {
        "_search" => {
            let form: Vec<(String, String)> =
                serde_urlencoded::from_bytes(&body).map_err(|_| {
                    ApiError::bad_request("a _search body is form-encoded search parameters")
                })?;
            params.extend(form);
            search_any(&state, &caller, &resource_type, &headers, params).await
        }
        // Validation is CPU-bound: off the async workers, so a large body stalls no one else.
        "$validate" => {
            known_type(&resource_type)?;
            access::require_any(
                &state,
                &caller,
                &resource_type,
                &[Letter::Create, Letter::Update],
                AuditInteraction::Validate,
            )
            .await?;
            off_thread(move || {
                write::validate_operation(&state, &resource_type, &headers, &params, &body)
            })
            .await?
        }
        _ => Err(ApiError::not_supported(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "POST to {resource_type}/{operation} is not supported; use POST {resource_type} to create"
            ),
        )),
    }
}
