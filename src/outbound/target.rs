//! The FHIR client the sync engine talks to an external EHR (a "target") with: retries with
//! backoff and `Retry-After`, a concurrency cap and rate limit, a circuit breaker, and SMART
//! Backend Services tokens. One [`FhirTarget`] is shared by all the tasks of a sync run.
//!
//! A write whose answer is lost is never resent here ([`TargetError::OutcomeUnknown`]): the
//! caller reconciles. Logs name the target, method, resource type, status, attempt and time —
//! never a query string (identifier searches carry MRNs), a body or a token.

mod retry;
mod smart;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, ETAG, HeaderMap, LAST_MODIFIED, LOCATION, RETRY_AFTER,
};
use reqwest::{Method, Url};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::time::Instant;

pub use smart::SigningKey;

use retry::{Admission, Breaker};

/// Largest answer read from a target.
pub const MAX_ANSWER: usize = 32 * 1024 * 1024;

const FHIR_JSON: &str = "application/fhir+json";

/// How requests to a target are authorized.
pub enum TargetAuth {
    None,
    /// A fixed bearer token (read from a file by the caller).
    Bearer(String),
    /// SMART Backend Services: a client assertion signed with `key` buys access tokens at
    /// `token_url` (else the one `{base}/.well-known/smart-configuration` names).
    Smart {
        client_id: String,
        key: SigningKey,
        token_url: Option<String>,
        scope: String,
    },
}

impl fmt::Debug for TargetAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetAuth::None => f.write_str("None"),
            TargetAuth::Bearer(_) => f.write_str("Bearer([redacted])"),
            TargetAuth::Smart {
                client_id,
                key,
                token_url,
                scope,
            } => f
                .debug_struct("Smart")
                .field("client_id", client_id)
                .field("key", key)
                .field("token_url", token_url)
                .field("scope", scope)
                .finish(),
        }
    }
}

/// How hard the gateway may push one target, and how patiently it retries.
#[derive(Debug, Clone)]
pub struct TargetLimits {
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Requests (attempts) per second, if limited.
    pub rate_per_second: Option<u32>,
    /// Attempts per request for retryable failures.
    pub max_attempts: u32,
    /// Exponential backoff with full jitter from here, capped at `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// Per attempt, from connecting to the end of the answer.
    pub request_timeout: Duration,
    /// Consecutive failed requests (after their retries) that open the circuit.
    pub breaker_threshold: u32,
    /// How long the circuit stays open before one trial request.
    pub breaker_cooldown: Duration,
}

impl Default for TargetLimits {
    fn default() -> Self {
        Self {
            concurrency: 4,
            rate_per_second: None,
            max_attempts: 8,
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(30),
        }
    }
}

/// Counters of one target since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetStats {
    /// Attempts sent (each retry and each resend after a 401 counts).
    pub requests_sent: u64,
    /// Attempts that were retries.
    pub retried: u64,
    /// 429 and 503 answers (each one waited on).
    pub throttled: u64,
    /// Access tokens obtained to replace an earlier one (near expiry or after a 401).
    pub token_renewals: u64,
    /// Times the circuit opened.
    pub circuit_opened: u64,
}

/// What the sync needs to know of a target's CapabilityStatement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Resource types that support conditional update.
    pub conditional_update: HashSet<String>,
    /// Resource types that support conditional create.
    pub conditional_create: HashSet<String>,
    /// Resource types whose update may create a resource at an id the client chooses.
    pub update_create: HashSet<String>,
    /// Whether transaction Bundles are supported.
    pub transaction: bool,
    /// Whether batch Bundles are supported.
    pub batch: bool,
    /// Resource type -> search parameter names (e.g. "_lastUpdated", "identifier").
    pub search_params: HashMap<String, HashSet<String>>,
}

impl Capabilities {
    /// Reads a CapabilityStatement: its first `rest` of mode server (else the first `rest`).
    pub fn from_statement(statement: &Value) -> Result<Capabilities, TargetError> {
        if statement.get("resourceType").and_then(Value::as_str) != Some("CapabilityStatement") {
            return Err(TargetError::Protocol {
                reason: "metadata did not answer a CapabilityStatement".into(),
            });
        }
        let rests = statement
            .get("rest")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let rest = rests
            .iter()
            .find(|r| r.get("mode").and_then(Value::as_str) == Some("server"))
            .or_else(|| rests.first());
        let mut capabilities = Capabilities::default();
        let Some(rest) = rest else {
            return Ok(capabilities);
        };
        let array = |v: &Value, name: &str| v.get(name).and_then(Value::as_array).cloned();
        for resource in array(rest, "resource").unwrap_or_default() {
            let Some(kind) = resource.get("type").and_then(Value::as_str) else {
                continue;
            };
            let flag = |name: &str| resource.get(name).and_then(Value::as_bool) == Some(true);
            if flag("conditionalUpdate") {
                capabilities.conditional_update.insert(kind.to_owned());
            }
            if flag("conditionalCreate") {
                capabilities.conditional_create.insert(kind.to_owned());
            }
            if flag("updateCreate") {
                capabilities.update_create.insert(kind.to_owned());
            }
            let names = array(&resource, "searchParam")
                .unwrap_or_default()
                .iter()
                .filter_map(|p| p.get("name").and_then(Value::as_str).map(str::to_owned))
                .collect();
            capabilities.search_params.insert(kind.to_owned(), names);
        }
        let interactions = array(rest, "interaction").unwrap_or_default();
        let has = |code: &str| {
            interactions
                .iter()
                .any(|i| i.get("code").and_then(Value::as_str) == Some(code))
        };
        capabilities.transaction = has("transaction");
        capabilities.batch = has("batch");
        Ok(capabilities)
    }
}

/// One request to a target.
#[derive(Clone)]
pub struct FhirRequest {
    pub method: Method,
    /// Relative to the base ("Patient/123", "Patient?identifier=..", "" for a transaction) or
    /// absolute (a `next` link; it must be on the target's origin).
    pub url: String,
    pub body: Option<Value>,
    /// Sent verbatim, e.g. `W/"3"`.
    pub if_match: Option<String>,
    pub if_none_exist: Option<String>,
}

impl FhirRequest {
    pub fn new(method: Method, url: impl Into<String>, body: Option<Value>) -> Self {
        Self {
            method,
            url: url.into(),
            body,
            if_match: None,
            if_none_exist: None,
        }
    }

    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::GET, url, None)
    }

    pub fn post(url: impl Into<String>, body: Value) -> Self {
        Self::new(Method::POST, url, Some(body))
    }

    pub fn put(url: impl Into<String>, body: Value) -> Self {
        Self::new(Method::PUT, url, Some(body))
    }

    pub fn delete(url: impl Into<String>) -> Self {
        Self::new(Method::DELETE, url, None)
    }

    pub fn if_match(mut self, etag: impl Into<String>) -> Self {
        self.if_match = Some(etag.into());
        self
    }

    pub fn if_none_exist(mut self, query: impl Into<String>) -> Self {
        self.if_none_exist = Some(query.into());
        self
    }
}

/// Neither the URL (its query may carry identifiers) nor the body.
impl fmt::Debug for FhirRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FhirRequest")
            .field("method", &self.method)
            .field("resource", &resource_of(&self.url))
            .field("body", &self.body.is_some())
            .finish_non_exhaustive()
    }
}

/// A target's answer for the caller to judge.
#[derive(Clone, PartialEq)]
pub struct FhirResponse {
    pub status: u16,
    pub etag: Option<String>,
    pub location: Option<String>,
    /// The body when it is JSON (None when empty, or — for 4xx and for writes — not JSON).
    pub body: Option<Value>,
    pub last_modified: Option<String>,
}

/// Not the body.
impl fmt::Debug for FhirResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FhirResponse")
            .field("status", &self.status)
            .field("etag", &self.etag)
            .field("location", &self.location)
            .field("last_modified", &self.last_modified)
            .field(
                "body",
                &self
                    .body
                    .as_ref()
                    .and_then(|b| b.get("resourceType"))
                    .and_then(Value::as_str),
            )
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// A write was sent and no answer came (connection closed, reset, timeout after sending, or
    /// a 504 from a gateway in front of the target): it may or may not have been applied. Never
    /// retried inside `send` — the caller reconciles.
    #[error("the outcome of the write is unknown: {reason}")]
    OutcomeUnknown { reason: String },
    /// Retries exhausted on 429/503/5xx/connection refused: nothing (known) applied.
    #[error("the target is unavailable: {reason}")]
    Unavailable { reason: String },
    /// The circuit is open: nothing was sent. `until_secs` is the Unix time (seconds) at which
    /// a trial request will be let through.
    #[error("the circuit to the target is open until {until_secs} (Unix seconds)")]
    CircuitOpen { until_secs: u64 },
    /// Token endpoint refused, bad key, discovery failed, or the target refused the token.
    #[error("authorization at the target failed: {reason}")]
    Auth { reason: String },
    #[error("target configuration: {reason}")]
    Config { reason: String },
    /// The answer was not JSON when JSON was expected, too large, a link off the target, etc.
    #[error("the target's answer is unusable: {reason}")]
    Protocol { reason: String },
}

impl TargetError {
    /// Whether the target failed to answer (what the circuit breaker counts).
    fn target_failed(&self) -> bool {
        matches!(
            self,
            TargetError::Unavailable { .. } | TargetError::OutcomeUnknown { .. }
        )
    }
}

enum Auth {
    None,
    Bearer(String),
    Smart(Box<smart::Smart>),
}

struct Counters {
    sent: AtomicU64,
    retried: AtomicU64,
    throttled: AtomicU64,
    renewals: AtomicU64,
    opened: AtomicU64,
}

struct Inner {
    name: String,
    /// Without trailing slash.
    base: String,
    base_url: Url,
    http: reqwest::Client,
    auth: Auth,
    limits: TargetLimits,
    permits: Semaphore,
    rate: Option<DefaultDirectRateLimiter>,
    /// No request is sent before this (set by `Retry-After`).
    not_before: Mutex<Option<Instant>>,
    breaker: Breaker,
    counters: Counters,
}

/// An external FHIR server. Cheap to clone; the clones share limits, token and circuit.
#[derive(Clone)]
pub struct FhirTarget {
    inner: Arc<Inner>,
}

impl fmt::Debug for FhirTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FhirTarget")
            .field("name", &self.inner.name)
            .field("base", &self.inner.base)
            .finish_non_exhaustive()
    }
}

/// How one attempt went.
enum Attempt {
    Answered {
        status: u16,
        headers: HeaderMap,
        /// Err: the body could not be read (lost, too large).
        body: Result<Vec<u8>, String>,
    },
    /// Not connected: nothing was sent.
    NotConnected(String),
    /// Sent (at least partly), no answer.
    Lost(String),
}

impl FhirTarget {
    pub fn new(
        name: &str,
        base_url: &str,
        auth: TargetAuth,
        limits: TargetLimits,
    ) -> Result<Self, TargetError> {
        let config = |reason: &str| TargetError::Config {
            reason: format!("target {name}: {reason}"),
        };
        let base = base_url.trim().trim_end_matches('/').to_owned();
        let parsed = Url::parse(&base).map_err(|_| config("the base URL does not parse"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(config("the base URL must be http(s)://host/..."));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(config("the base URL must have no query or fragment"));
        }
        if limits.concurrency == 0 || limits.max_attempts == 0 || limits.breaker_threshold == 0 {
            return Err(config(
                "concurrency, max_attempts and breaker_threshold must be at least 1",
            ));
        }
        if limits.request_timeout.is_zero() {
            return Err(config("request_timeout must be more than zero"));
        }
        let rate = match limits.rate_per_second {
            None => None,
            Some(n) => {
                let n = NonZeroU32::new(n).ok_or_else(|| config("rate_per_second must be > 0"))?;
                Some(RateLimiter::direct(Quota::per_second(n)))
            }
        };
        let auth = match auth {
            TargetAuth::None => Auth::None,
            TargetAuth::Bearer(token) => {
                let token = token.trim().to_owned();
                if token.is_empty() || reqwest::header::HeaderValue::from_str(&token).is_err() {
                    return Err(config("the bearer token is empty or not a header value"));
                }
                Auth::Bearer(token)
            }
            TargetAuth::Smart {
                client_id,
                key,
                token_url,
                scope,
            } => {
                if client_id.is_empty() {
                    return Err(config("the SMART client_id is empty"));
                }
                if let Some(url) = &token_url
                    && Url::parse(url).is_err()
                {
                    return Err(config("the SMART token URL does not parse"));
                }
                Auth::Smart(Box::new(smart::Smart::new(
                    client_id, key, token_url, scope,
                )))
            }
        };
        let http = reqwest::Client::builder()
            .connect_timeout(limits.request_timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("iop-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|_| config("the HTTP client could not be built"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                name: name.to_owned(),
                base,
                base_url: parsed,
                http,
                auth,
                permits: Semaphore::new(limits.concurrency),
                rate,
                not_before: Mutex::new(None),
                breaker: Breaker::new(limits.breaker_threshold, limits.breaker_cooldown),
                limits,
                counters: Counters {
                    sent: AtomicU64::new(0),
                    retried: AtomicU64::new(0),
                    throttled: AtomicU64::new(0),
                    renewals: AtomicU64::new(0),
                    opened: AtomicU64::new(0),
                },
            }),
        })
    }

    /// The base URL, without trailing slash.
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// GETs `metadata` and reads what the sync needs.
    pub async fn capabilities(&self) -> Result<Capabilities, TargetError> {
        let response = self.send(FhirRequest::get("metadata")).await?;
        if response.status != 200 {
            return Err(TargetError::Protocol {
                reason: format!("metadata answered {}", response.status),
            });
        }
        let body = response.body.ok_or_else(|| TargetError::Protocol {
            reason: "metadata answered no JSON".into(),
        })?;
        Capabilities::from_statement(&body)
    }

    pub fn stats(&self) -> TargetStats {
        let c = &self.inner.counters;
        TargetStats {
            requests_sent: c.sent.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
            throttled: c.throttled.load(Ordering::Relaxed),
            token_renewals: c.renewals.load(Ordering::Relaxed),
            circuit_opened: c.opened.load(Ordering::Relaxed),
        }
    }

    /// Sends a request, retrying what is safe to retry. Every HTTP answer the caller must judge
    /// (2xx, 3xx, 4xx but 401) is `Ok`.
    pub async fn send(&self, request: FhirRequest) -> Result<FhirResponse, TargetError> {
        let inner = &*self.inner;
        let url = inner.resolve(&request.url)?;
        let admit = inner
            .breaker
            .admit()
            .map_err(|until| TargetError::CircuitOpen {
                until_secs: retry::unix_seconds(until),
            })?;
        let admission = Admission::new(&inner.breaker, admit);
        let result = inner.attempts(&request, url).await;
        let failed = result
            .as_ref()
            .err()
            .is_some_and(TargetError::target_failed);
        if admission.finish(failed) {
            inner.counters.opened.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                target_name = %inner.name,
                cooldown_s = inner.limits.breaker_cooldown.as_secs_f64(),
                "circuit opened: the target keeps failing"
            );
        }
        result
    }
}

/// The first path segment of a relative URL, if it looks like a resource type or operation:
/// what logs may say about a request.
fn resource_of(relative: &str) -> &str {
    let path = relative.split(['?', '#']).next().unwrap_or_default();
    let segment = path.trim_start_matches('/').split('/').next().unwrap_or("");
    if segment.is_empty() {
        "(base)"
    } else if segment.len() <= 64
        && segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '$' | '_' | '-' | '.'))
    {
        segment
    } else {
        "(other)"
    }
}

/// Reads do not change the target: safe to resend when their answer was lost.
fn is_read(method: &Method, url: &Url) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        || (*method == Method::POST && url.path().trim_end_matches('/').ends_with("/_search"))
}

impl Inner {
    /// The absolute URL of a request; absolute links must stay on the target's origin (the
    /// token goes with them).
    fn resolve(&self, url: &str) -> Result<Url, TargetError> {
        let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            let parsed = Url::parse(url).map_err(|_| TargetError::Protocol {
                reason: "a link from the target does not parse".into(),
            })?;
            if parsed.origin() != self.base_url.origin() {
                return Err(TargetError::Protocol {
                    reason: format!(
                        "a link points off target {} (another scheme, host or port)",
                        self.name
                    ),
                });
            }
            return Ok(parsed);
        }
        let relative = url.trim_start_matches('/');
        let joined = if relative.is_empty() {
            self.base.clone()
        } else {
            format!("{}/{relative}", self.base)
        };
        Url::parse(&joined).map_err(|_| TargetError::Config {
            reason: "a request URL does not parse".into(),
        })
    }

    /// The resource type of an absolute URL on this target, for logs.
    fn resource_type<'a>(&self, url: &'a Url) -> &'a str {
        let base_path = self.base_url.path().trim_end_matches('/');
        let path = url.path().strip_prefix(base_path).unwrap_or(url.path());
        resource_of(path)
    }

    fn smart_ctx(&self) -> smart::Ctx<'_> {
        smart::Ctx {
            http: &self.http,
            name: &self.name,
            base: &self.base,
            limits: &self.limits,
        }
    }

    async fn bearer(&self) -> Result<Option<String>, TargetError> {
        match &self.auth {
            Auth::None => Ok(None),
            Auth::Bearer(token) => Ok(Some(token.clone())),
            Auth::Smart(smart) => {
                let (token, renewed) = smart.token(&self.smart_ctx()).await?;
                if renewed {
                    self.counters.renewals.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Some(token))
            }
        }
    }

    /// Waits until `Retry-After` allows sending to this target.
    async fn wait_turn(&self) {
        loop {
            let not_before = *self.not_before.lock().unwrap_or_else(|p| p.into_inner());
            match not_before {
                Some(at) if at > Instant::now() => tokio::time::sleep_until(at).await,
                _ => return,
            }
        }
    }

    fn hold_back_until(&self, at: Instant) {
        let mut not_before = self.not_before.lock().unwrap_or_else(|p| p.into_inner());
        if not_before.is_none_or(|current| current < at) {
            *not_before = Some(at);
        }
    }

    async fn attempts(&self, request: &FhirRequest, url: Url) -> Result<FhirResponse, TargetError> {
        let method = &request.method;
        let resource = self.resource_type(&url);
        let read = is_read(method, &url);
        let body = match &request.body {
            Some(body) => Some(serde_json::to_vec(body).map_err(|_| TargetError::Config {
                reason: "the request body does not serialize".into(),
            })?),
            None => None,
        };
        // A JSON Patch is an array; everything else sent is a FHIR resource.
        let content_type = match &request.body {
            Some(Value::Array(_)) if *method == Method::PATCH => "application/json-patch+json",
            _ => FHIR_JSON,
        };
        let mut attempt = 0u32;
        let mut resent_after_401 = false;
        loop {
            attempt += 1;
            let token = self.bearer().await?;
            self.wait_turn().await;
            let permit = self
                .permits
                .acquire()
                .await
                .map_err(|_| TargetError::Config {
                    reason: "the target was shut down".into(),
                })?;
            if let Some(rate) = &self.rate {
                rate.until_ready().await;
            }
            self.wait_turn().await;
            let mut builder = self
                .http
                .request(method.clone(), url.clone())
                .timeout(self.limits.request_timeout)
                .header(ACCEPT, FHIR_JSON);
            if let Some(token) = &token {
                builder = builder.header(AUTHORIZATION, format!("Bearer {token}"));
            }
            if let Some(body) = &body {
                builder = builder
                    .header(CONTENT_TYPE, content_type)
                    .body(body.clone());
            }
            if let Some(etag) = &request.if_match {
                builder = builder.header("if-match", etag.as_str());
            }
            if let Some(query) = &request.if_none_exist {
                builder = builder.header("if-none-exist", query.as_str());
            }
            let started = Instant::now();
            self.counters.sent.fetch_add(1, Ordering::Relaxed);
            let outcome = one_attempt(builder).await;
            drop(permit);
            let ms = started.elapsed().as_millis() as u64;

            let (problem, wait_at_least) = match outcome {
                Attempt::Answered {
                    status,
                    headers,
                    body,
                } => {
                    tracing::debug!(target_name = %self.name, %method, resource, status, attempt, ms, "target answered");
                    match status {
                        401 => {
                            if let (Auth::Smart(smart), Some(token), false) =
                                (&self.auth, &token, resent_after_401)
                            {
                                resent_after_401 = true;
                                smart.refused(token).await;
                                continue;
                            }
                            return Err(TargetError::Auth {
                                reason: if resent_after_401 {
                                    "the target answered 401 to a renewed token".into()
                                } else {
                                    "the target answered 401".into()
                                },
                            });
                        }
                        429 | 503 => {
                            self.counters.throttled.fetch_add(1, Ordering::Relaxed);
                            let wait = headers
                                .get(RETRY_AFTER)
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| retry::retry_after(v, SystemTime::now()));
                            if let Some(wait) = wait {
                                self.hold_back_until(Instant::now() + wait);
                            }
                            (format!("answered {status}"), wait)
                        }
                        504 if !read => {
                            return Err(TargetError::OutcomeUnknown {
                                reason: "a gateway answered 504: the write may have been applied"
                                    .into(),
                            });
                        }
                        500 | 502 | 504 => (format!("answered {status}"), None),
                        _ => match self.answer(status, &headers, body, read)? {
                            Ok(response) => return Ok(response),
                            Err(Retry(problem)) => (problem, None),
                        },
                    }
                }
                Attempt::NotConnected(reason) => {
                    tracing::debug!(target_name = %self.name, %method, resource, attempt, ms, "target not reached");
                    (reason, None)
                }
                Attempt::Lost(reason) => {
                    tracing::debug!(target_name = %self.name, %method, resource, attempt, ms, "answer lost");
                    if !read {
                        tracing::warn!(target_name = %self.name, %method, resource, attempt, "a write's answer was lost: its outcome is unknown");
                        return Err(TargetError::OutcomeUnknown { reason });
                    }
                    (reason, None)
                }
            };
            if attempt >= self.limits.max_attempts {
                tracing::warn!(target_name = %self.name, %method, resource, attempts = attempt, "giving up");
                return Err(TargetError::Unavailable {
                    reason: format!("{problem}, after {attempt} attempts"),
                });
            }
            let wait = retry::backoff(attempt, self.limits.base_backoff, self.limits.max_backoff)
                .max(wait_at_least.unwrap_or_default());
            self.counters.retried.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                target_name = %self.name, %method, resource, attempt,
                wait_ms = wait.as_millis() as u64, problem = %problem, "retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// An answer to return, or the reason to retry it (a read whose body was lost).
    fn answer(
        &self,
        status: u16,
        headers: &HeaderMap,
        body: Result<Vec<u8>, String>,
        read: bool,
    ) -> Result<Result<FhirResponse, Retry>, TargetError> {
        let header = |name| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let success = (200..300).contains(&status);
        let body = match body {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => None,
            Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(value) => Some(value),
                // A read's answer must be JSON; a write's status says what happened.
                Err(_) if success && read => {
                    return Err(TargetError::Protocol {
                        reason: format!("answered {status} with a body that is not JSON"),
                    });
                }
                Err(_) => None,
            },
            // Nothing to retry: the same answer would come again.
            Err(reason) if read && reason == TOO_LARGE => {
                return Err(TargetError::Protocol { reason });
            }
            Err(reason) if read => return Ok(Err(Retry(reason))),
            Err(_) => None,
        };
        Ok(Ok(FhirResponse {
            status,
            etag: header(ETAG),
            location: header(LOCATION).or_else(|| header(reqwest::header::CONTENT_LOCATION)),
            body,
            last_modified: header(LAST_MODIFIED),
        }))
    }
}

/// A retryable problem with an answer.
struct Retry(String);

const TOO_LARGE: &str = "the answer is larger than 32 MiB";

async fn one_attempt(builder: reqwest::RequestBuilder) -> Attempt {
    let mut response = match builder.send().await {
        Ok(response) => response,
        Err(e) if e.is_connect() => {
            return Attempt::NotConnected(format!("not reached: {}", e.without_url()));
        }
        Err(e) if e.is_timeout() => return Attempt::Lost("timed out".into()),
        Err(e) => return Attempt::Lost(format!("no answer: {}", e.without_url())),
    };
    let status = response.status().as_u16();
    let headers = std::mem::take(response.headers_mut());
    let mut body = Vec::new();
    let body = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_ANSWER {
                    break Err(TOO_LARGE.to_owned());
                }
            }
            Ok(None) => break Ok(body),
            Err(e) if e.is_timeout() => break Err("timed out reading the answer".to_owned()),
            Err(e) => break Err(format!("answer cut off: {}", e.without_url())),
        }
    };
    Attempt::Answered {
        status,
        headers,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_types_for_logs() {
        assert_eq!(resource_of("Patient?identifier=urn:mrn|123"), "Patient");
        assert_eq!(resource_of("/Patient/123/_history/2"), "Patient");
        assert_eq!(resource_of(""), "(base)");
        assert_eq!(resource_of("$export"), "$export");
        assert_eq!(resource_of("a b"), "(other)");
    }

    #[test]
    fn links_must_stay_on_the_target() {
        let target = FhirTarget::new(
            "t",
            "https://ehr.example/fhir/R4/",
            TargetAuth::None,
            TargetLimits::default(),
        )
        .unwrap();
        assert_eq!(target.base_url(), "https://ehr.example/fhir/R4");
        let inner = &target.inner;
        let url = inner.resolve("Patient?identifier=x%7C1").unwrap();
        assert_eq!(
            url.as_str(),
            "https://ehr.example/fhir/R4/Patient?identifier=x%7C1"
        );
        assert_eq!(inner.resource_type(&url), "Patient");
        assert_eq!(
            inner.resolve("").unwrap().as_str(),
            "https://ehr.example/fhir/R4"
        );
        let next = inner
            .resolve("https://ehr.example/fhir/R4/Patient?_offset=20")
            .unwrap();
        assert_eq!(inner.resource_type(&next), "Patient");
        assert!(matches!(
            inner.resolve("https://elsewhere.example/fhir/R4/Patient"),
            Err(TargetError::Protocol { .. })
        ));
        assert!(matches!(
            inner.resolve("http://ehr.example/fhir/R4/Patient"),
            Err(TargetError::Protocol { .. })
        ));
        assert!(is_read(
            &Method::POST,
            &inner.resolve("Patient/_search").unwrap()
        ));
        assert!(!is_read(&Method::POST, &inner.resolve("Patient").unwrap()));
    }
}
