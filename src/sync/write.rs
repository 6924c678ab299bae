//! Writing one resource to a target so that a retry, a lost answer or a crash never makes a
//! second copy and never loses an update, whatever the target supports.
//!
//! - A resource the identity map knows is updated at its remote id with `If-Match` (the version
//!   last seen); 409/412 re-reads the target's version and applies again (the clinic is the
//!   system of record for what it pushes); 404/410 means the copy is gone: create again.
//! - A new resource is created at the clinic's id (`PUT Type/id`, where the target lets clients
//!   choose ids: a resend is the same write), else by conditional update on the clinic's
//!   identifier, else by POST — after recording in the map that a create was sent, so a crash
//!   between sending and recording is found and settled by a search on the identifier first.
//! - A write whose answer was lost is reconciled by identifier (or by re-reading the remote id)
//!   before anything is sent again.

use serde_json::Value;

use super::CreateWith;
use super::counters::Counters;
use crate::json_build::fhir;
use crate::outbound::target::{Capabilities, FhirRequest, FhirResponse, FhirTarget, TargetError};
use crate::store::{Store, StoreError, SyncedResource};

/// Writes of one resource tried at most (lost answers and version races included).
const ATTEMPTS: usize = 6;

/// What the target made of a write.
#[derive(Debug)]
pub enum Written {
    /// Made at the target, with the target's id of it.
    Created(String),
    /// Changed at the target, with the target's id of it.
    Updated(String),
    /// Refused with this status and the target's OperationOutcome (or what it said).
    Refused(u16, Value),
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the target's answers did not settle after {ATTEMPTS} attempts")]
    Unsettled,
}

/// One resource's write: the body to send (references already the target's) and who it is.
pub struct Outgoing<'a> {
    pub target: &'a str,
    pub resource_type: &'a str,
    pub local_id: &'a str,
    pub local_version: i64,
    /// The clinic's identifier (system, value) the target can find the resource by.
    pub identifier: (String, String),
    pub body: Value,
}

pub struct Writer<'a> {
    pub fhir: &'a FhirTarget,
    pub capabilities: &'a Capabilities,
    pub store: &'a Store,
    pub counters: &'a Counters,
    pub create_with: CreateWith,
}

impl Writer<'_> {
    /// Writes `out` and records the target's copy in the identity map.
    pub async fn write(&self, out: &Outgoing<'_>) -> Result<Written, WriteError> {
        let mut entry = self
            .store
            .synced(out.target, out.resource_type, out.local_id)
            .await?
            .unwrap_or_else(|| blank_entry(out));
        // A create was sent before and its answer never recorded: find what it made first.
        if entry.remote_id.is_none() && entry.create_sent_at.is_some() {
            self.counters.add(&self.counters.reconciled);
            if let Some((id, version)) = self.find_by_identifier(out).await? {
                entry.remote_id = Some(id);
                entry.remote_version = version;
                self.store.put_synced(&entry).await?;
            }
        }
        // Created: the target had no confirmed copy before this write.
        let created = entry.synced_version.is_none();
        for _ in 0..ATTEMPTS {
            let how = self.create_with(out.resource_type);
            if entry.remote_id.is_none() && how == CreateWith::ClientId {
                // Recorded before sending: after a crash the next run updates the same id.
                entry.remote_id = Some(out.local_id.to_owned());
                entry.remote_version = None;
                self.store.put_synced(&entry).await?;
            }
            let answer = match &entry.remote_id {
                Some(remote_id) => self.update(out, remote_id, &entry).await,
                None if how == CreateWith::Conditional => self.conditional_update(out).await,
                None => {
                    entry.create_sent_at = Some(crate::domain::Timestamp::now().to_db_text());
                    self.store.put_synced(&entry).await?;
                    self.post(out).await
                }
            };
            match answer {
                Ok(response) if (200..300).contains(&response.status) => {
                    let remote_id = response_id(&response)
                        .or_else(|| entry.remote_id.clone())
                        .ok_or_else(|| TargetError::Protocol {
                            reason: "a write answered without the resource's id".into(),
                        })?;
                    entry.remote_version = response_version(&response);
                    entry.remote_id = Some(remote_id.clone());
                    entry.synced_version = Some(out.local_version);
                    entry.create_sent_at = None;
                    self.store.put_synced(&entry).await?;
                    return Ok(if created {
                        Written::Created(remote_id)
                    } else {
                        Written::Updated(remote_id)
                    });
                }
                Ok(response)
                    if matches!(response.status, 409 | 412) && entry.remote_id.is_some() =>
                {
                    // Someone else's version is current at the target (or our last write's
                    // answer was lost): read it and apply ours on top.
                    self.counters.add(&self.counters.conflicts);
                    let remote_id = entry.remote_id.clone().unwrap_or_default();
                    match self.read_version(out.resource_type, &remote_id).await? {
                        Some(version) => entry.remote_version = Some(version),
                        None => forget_remote(&mut entry),
                    }
                }
                Ok(response)
                    if matches!(response.status, 404 | 410) && entry.remote_id.is_some() =>
                {
                    // The target no longer has it: make it again.
                    forget_remote(&mut entry);
                    self.store.put_synced(&entry).await?;
                }
                Ok(response) => {
                    let reason = response.body.unwrap_or_else(|| {
                        fhir!({ "resourceType": "OperationOutcome", "issue": [{ "severity": "error", "code": "processing", "diagnostics": format!("the target answered {}", response.status) }] })
                    });
                    // Nothing was created: a later create need not search first.
                    if entry.remote_id.is_none() && entry.create_sent_at.is_some() {
                        entry.create_sent_at = None;
                        self.store.put_synced(&entry).await?;
                    }
                    return Ok(Written::Refused(response.status, reason));
                }
                Err(TargetError::OutcomeUnknown { .. }) => {
                    // Lost answer: find out what happened before sending anything again.
                    self.counters.add(&self.counters.reconciled);
                    match &entry.remote_id {
                        Some(remote_id) => {
                            let remote_id = remote_id.clone();
                            match self.read_version(out.resource_type, &remote_id).await? {
                                Some(version) => entry.remote_version = Some(version),
                                None => forget_remote(&mut entry),
                            }
                        }
                        None => {
                            if let Some((id, version)) = self.find_by_identifier(out).await? {
                                // It was made. Its content is what we sent: record it.
                                entry.remote_id = Some(id.clone());
                                entry.remote_version = version;
                                entry.synced_version = Some(out.local_version);
                                entry.create_sent_at = None;
                                self.store.put_synced(&entry).await?;
                                return Ok(Written::Created(id));
                            }
                        }
                    }
                }
                Err(other) => return Err(other.into()),
            }
        }
        Err(WriteError::Unsettled)
    }

    /// Writes resources whose target ids are known in advance (the clinic's ids, or the identity
    /// map's) as `PUT`s in one `batch` Bundle: one request for many, each entry answered on its
    /// own. A lost answer re-reads the versions (a batch of reads) and sends the batch again —
    /// every entry is a `PUT` to a fixed id, so a resend makes nothing twice. An entry answered
    /// 409/412/404/410 or 5xx, and every entry when the batch itself is refused, is written on
    /// its own by [`Writer::write`].
    pub async fn write_batch(&self, outs: &[Outgoing<'_>]) -> Result<Vec<Written>, WriteError> {
        // The batch's identity-map rows, read and (for what is new) recorded in one go each.
        let mut known = match outs.first() {
            Some(first) => {
                let ids: Vec<String> = outs.iter().map(|o| o.local_id.to_owned()).collect();
                self.store
                    .synced_many(first.target, first.resource_type, &ids)
                    .await?
            }
            None => Default::default(),
        };
        let mut entries = Vec::with_capacity(outs.len());
        let mut intents = Vec::new();
        for out in outs {
            let mut entry = known
                .remove(out.local_id)
                .unwrap_or_else(|| blank_entry(out));
            if entry.remote_id.is_none() {
                // Recorded before sending: after a crash the next run updates the same id.
                entry.remote_id = Some(out.local_id.to_owned());
                entry.remote_version = None;
                intents.push(entry.clone());
            }
            entries.push(entry);
        }
        self.store.put_synced_many(&intents).await?;
        let created: Vec<bool> = entries.iter().map(|e| e.synced_version.is_none()).collect();
        let mut answers = None;
        for _ in 0..ATTEMPTS {
            match self
                .fhir
                .send(FhirRequest::post("", put_batch(outs, &entries)))
                .await
            {
                Ok(response) if response.status == 200 => {
                    answers = Some(batch_answers(&response, outs.len())?);
                    break;
                }
                Ok(_) => break,
                Err(TargetError::OutcomeUnknown { .. }) => {
                    self.counters.add(&self.counters.reconciled);
                    let versions = self.read_versions(outs, &entries).await?;
                    for (entry, version) in entries.iter_mut().zip(versions) {
                        entry.remote_version = version;
                    }
                }
                Err(other) => return Err(other.into()),
            }
        }
        // What the target confirmed is recorded together, before anything is retried alone.
        let mut confirmed = Vec::new();
        for (i, out) in outs.iter().enumerate() {
            if let Some(answer) = answers.as_ref().map(|a: &Vec<BatchAnswer>| &a[i])
                && (200..300).contains(&answer.status)
            {
                let entry = &mut entries[i];
                entry.remote_version = answer.version.clone();
                entry.synced_version = Some(out.local_version);
                entry.create_sent_at = None;
                confirmed.push(entry.clone());
            }
        }
        self.store.put_synced_many(&confirmed).await?;
        let mut written = Vec::with_capacity(outs.len());
        for (i, out) in outs.iter().enumerate() {
            let answer = answers.as_ref().map(|a: &Vec<BatchAnswer>| &a[i]);
            match answer {
                Some(answer) if (200..300).contains(&answer.status) => {
                    // Set before the batch was sent (the clinic's id, or the map's).
                    let remote_id = entries[i].remote_id.clone().unwrap_or_default();
                    written.push(if created[i] {
                        Written::Created(remote_id)
                    } else {
                        Written::Updated(remote_id)
                    });
                }
                Some(answer)
                    if (400..500).contains(&answer.status)
                        && !matches!(answer.status, 404 | 409 | 410 | 412 | 429) =>
                {
                    written.push(Written::Refused(answer.status, answer.outcome.clone()));
                }
                _ => written.push(self.write(out).await?),
            }
        }
        Ok(written)
    }

    /// The target's current versions of the batch's resources (None: it has none), read in one
    /// batch of reads.
    async fn read_versions(
        &self,
        outs: &[Outgoing<'_>],
        entries: &[SyncedResource],
    ) -> Result<Vec<Option<String>>, WriteError> {
        let reads: Vec<Value> = outs
            .iter()
            .zip(entries)
            .map(|(out, entry)| {
                fhir!({ "request": { "method": "GET", "url": format!("{}/{}", out.resource_type, entry.remote_id.as_deref().unwrap_or(out.local_id)) } })
            })
            .collect();
        let bundle = fhir!({ "resourceType": "Bundle", "type": "batch", "entry": reads });
        for _ in 0..ATTEMPTS {
            match self.fhir.send(FhirRequest::post("", bundle.clone())).await {
                Ok(response) if response.status == 200 => {
                    return Ok(batch_answers(&response, outs.len())?
                        .into_iter()
                        .map(|a| if a.status == 200 { a.version } else { None })
                        .collect());
                }
                Ok(response) => {
                    return Err(TargetError::Protocol {
                        reason: format!("a batch of reads answered {}", response.status),
                    }
                    .into());
                }
                // A read is safe to send again.
                Err(TargetError::OutcomeUnknown { .. }) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(WriteError::Unsettled)
    }

    /// How a resource of this type that the target lacks is created: as the run says, or
    /// (`auto`) the safest way the target's CapabilityStatement offers.
    pub fn create_with(&self, resource_type: &str) -> CreateWith {
        let caps = self.capabilities;
        let client_id = caps.update_create.contains(resource_type);
        let conditional = caps.conditional_update.contains(resource_type);
        match self.create_with {
            CreateWith::Auto if client_id => CreateWith::ClientId,
            CreateWith::Auto if conditional => CreateWith::Conditional,
            CreateWith::Auto => CreateWith::Post,
            // Chosen by the operator, who may know the target better than its statement.
            chosen => chosen,
        }
    }

    async fn update(
        &self,
        out: &Outgoing<'_>,
        remote_id: &str,
        entry: &SyncedResource,
    ) -> Result<FhirResponse, TargetError> {
        let mut body = out.body.clone();
        body["id"] = fhir!(remote_id);
        self.fhir
            .send(FhirRequest {
                method: reqwest::Method::PUT,
                url: format!("{}/{remote_id}", out.resource_type),
                body: Some(body),
                if_match: entry.remote_version.as_ref().map(|v| format!("W/\"{v}\"")),
                if_none_exist: None,
            })
            .await
    }

    async fn conditional_update(&self, out: &Outgoing<'_>) -> Result<FhirResponse, TargetError> {
        self.fhir
            .send(FhirRequest {
                method: reqwest::Method::PUT,
                url: format!(
                    "{}?identifier={}",
                    out.resource_type,
                    token_query(&out.identifier)
                ),
                body: Some(out.body.clone()),
                if_match: None,
                if_none_exist: None,
            })
            .await
    }

    async fn post(&self, out: &Outgoing<'_>) -> Result<FhirResponse, TargetError> {
        self.fhir
            .send(FhirRequest {
                method: reqwest::Method::POST,
                url: out.resource_type.to_owned(),
                body: Some(out.body.clone()),
                if_match: None,
                if_none_exist: None,
            })
            .await
    }

    /// The target's resource carrying the clinic identifier, if any (the oldest when the target
    /// holds several: counted, since this gateway never made two).
    async fn find_by_identifier(
        &self,
        out: &Outgoing<'_>,
    ) -> Result<Option<(String, Option<String>)>, TargetError> {
        let response = self
            .fhir
            .send(FhirRequest {
                method: reqwest::Method::GET,
                url: format!(
                    "{}?identifier={}",
                    out.resource_type,
                    token_query(&out.identifier)
                ),
                body: None,
                if_match: None,
                if_none_exist: None,
            })
            .await?;
        if response.status != 200 {
            return Err(TargetError::Protocol {
                reason: format!("a search by identifier answered {}", response.status),
            });
        }
        let matches: Vec<&Value> = response
            .body
            .as_ref()
            .and_then(|b| b.get("entry"))
            .and_then(Value::as_array)
            .map(|entries| {
                entries
                    .iter()
                    .filter_map(|e| e.get("resource"))
                    .filter(|r| {
                        r.get("resourceType").and_then(Value::as_str) == Some(out.resource_type)
                    })
                    .collect()
            })
            .unwrap_or_default();
        if matches.len() > 1 {
            self.counters.add(&self.counters.duplicates_at_target);
            tracing::warn!(
                resource_type = out.resource_type,
                copies = matches.len(),
                "the target holds several resources with one clinic identifier"
            );
        }
        Ok(matches.first().and_then(|resource| {
            let id = resource.get("id")?.as_str()?.to_owned();
            Some((id, meta_version(resource)))
        }))
    }

    /// The target's current version of a resource; None when it is gone.
    async fn read_version(
        &self,
        resource_type: &str,
        remote_id: &str,
    ) -> Result<Option<String>, TargetError> {
        let response = self
            .fhir
            .send(FhirRequest {
                method: reqwest::Method::GET,
                url: format!("{resource_type}/{remote_id}"),
                body: None,
                if_match: None,
                if_none_exist: None,
            })
            .await?;
        match response.status {
            200 => Ok(response_version(&response)),
            404 | 410 => Ok(None),
            status => Err(TargetError::Protocol {
                reason: format!("reading a resource back answered {status}"),
            }),
        }
    }
}

/// A `batch` Bundle of `PUT`s, each at the id the identity map holds, with `If-Match` where
/// the target's version is known.
fn put_batch(outs: &[Outgoing<'_>], entries: &[SyncedResource]) -> Value {
    let entry: Vec<Value> = outs
        .iter()
        .zip(entries)
        .map(|(out, entry)| {
            let id = entry.remote_id.as_deref().unwrap_or(out.local_id);
            let mut body = out.body.clone();
            body["id"] = fhir!(id);
            let mut request =
                fhir!({ "method": "PUT", "url": format!("{}/{id}", out.resource_type) });
            if let Some(version) = &entry.remote_version {
                request["ifMatch"] = fhir!(format!("W/\"{version}\""));
            }
            fhir!({ "resource": body, "request": request })
        })
        .collect();
    fhir!({ "resourceType": "Bundle", "type": "batch", "entry": entry })
}

/// One entry of a batch-response.
struct BatchAnswer {
    status: u16,
    version: Option<String>,
    outcome: Value,
}

/// The entries of a batch-response, in the order of the request's (as FHIR requires).
fn batch_answers(
    response: &FhirResponse,
    expected: usize,
) -> Result<Vec<BatchAnswer>, TargetError> {
    let entries = response
        .body
        .as_ref()
        .filter(|b| b.get("resourceType").and_then(Value::as_str) == Some("Bundle"))
        .and_then(|b| b.get("entry"))
        .and_then(Value::as_array)
        .filter(|e| e.len() == expected)
        .ok_or_else(|| TargetError::Protocol {
            reason: format!("a batch of {expected} was not answered entry for entry"),
        })?;
    Ok(entries
        .iter()
        .map(|e| {
            let answer = e.get("response").cloned().unwrap_or(Value::Null);
            // "201 Created" or "201"
            let status = answer
                .get("status")
                .and_then(Value::as_str)
                .and_then(|s| s.split_whitespace().next())
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let version = answer
                .get("etag")
                .and_then(Value::as_str)
                .map(|e| e.trim().trim_start_matches("W/").trim_matches('"').to_owned())
                .filter(|v| !v.is_empty())
                .or_else(|| e.get("resource").and_then(meta_version));
            let outcome = answer
                .get("outcome")
                .or_else(|| e.get("resource").filter(|r| r["resourceType"] == "OperationOutcome"))
                .cloned()
                .unwrap_or_else(|| fhir!({ "resourceType": "OperationOutcome", "issue": [{ "severity": "error", "code": "processing", "diagnostics": format!("the target answered {status}") }] }));
            BatchAnswer { status, version, outcome }
        })
        .collect())
}

/// Deletes the target's copy of a resource the clinic deleted. True when there was one.
pub async fn delete(
    fhir: &FhirTarget,
    store: &Store,
    target: &str,
    resource_type: &str,
    local_id: &str,
) -> Result<bool, WriteError> {
    let Some(entry) = store.synced(target, resource_type, local_id).await? else {
        return Ok(false);
    };
    if let Some(remote_id) = &entry.remote_id {
        for attempt in 0..ATTEMPTS {
            let answer = fhir
                .send(FhirRequest {
                    method: reqwest::Method::DELETE,
                    url: format!("{resource_type}/{remote_id}"),
                    body: None,
                    if_match: None,
                    if_none_exist: None,
                })
                .await;
            match answer {
                // A delete is idempotent: a lost answer is simply sent again.
                Err(TargetError::OutcomeUnknown { .. }) if attempt + 1 < ATTEMPTS => continue,
                Err(other) => return Err(other.into()),
                Ok(response)
                    if (200..300).contains(&response.status)
                        || matches!(response.status, 404 | 410) =>
                {
                    break;
                }
                Ok(response) => {
                    return Err(TargetError::Protocol {
                        reason: format!("a delete answered {}", response.status),
                    }
                    .into());
                }
            }
        }
    }
    store.forget_synced(target, resource_type, local_id).await?;
    Ok(entry.remote_id.is_some())
}

/// An identity-map entry for a resource the map does not know yet.
fn blank_entry(out: &Outgoing<'_>) -> SyncedResource {
    SyncedResource {
        target: out.target.to_owned(),
        resource_type: out.resource_type.to_owned(),
        local_id: out.local_id.to_owned(),
        ..Default::default()
    }
}

fn forget_remote(entry: &mut SyncedResource) {
    entry.remote_id = None;
    entry.remote_version = None;
    entry.synced_version = None;
    entry.create_sent_at = None;
}

/// `system|value`, percent-encoded for a query.
fn token_query((system, value): &(String, String)) -> String {
    let token = format!("{system}|{value}");
    url_encode(&token)
}

fn url_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// The id of the resource a write made or changed: the answer's body, else its `Location`.
fn response_id(response: &FhirResponse) -> Option<String> {
    if let Some(id) = response
        .body
        .as_ref()
        .and_then(|b| b.get("id"))
        .and_then(Value::as_str)
    {
        return Some(id.to_owned());
    }
    // Location: [base/]Type/id[/_history/v]
    let location = response.location.as_deref()?;
    let path = location.split("/_history/").next()?;
    path.rsplit('/').next().map(str::to_owned)
}

/// The version of the resource an answer carries: its `ETag` (W/"3"), else `meta.versionId`.
fn response_version(response: &FhirResponse) -> Option<String> {
    response
        .etag
        .as_deref()
        .map(|e| {
            e.trim()
                .trim_start_matches("W/")
                .trim_matches('"')
                .to_owned()
        })
        .filter(|v| !v.is_empty())
        .or_else(|| response.body.as_ref().and_then(meta_version))
}

fn meta_version(resource: &Value) -> Option<String> {
    resource
        .pointer("/meta/versionId")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(etag: Option<&str>, location: Option<&str>, body: Option<Value>) -> FhirResponse {
        FhirResponse {
            status: 201,
            etag: etag.map(str::to_owned),
            location: location.map(str::to_owned),
            body,
            last_modified: None,
        }
    }

    #[test]
    fn the_id_and_version_come_from_the_body_or_the_headers() {
        let with_body = answer(
            None,
            None,
            Some(json!({ "id": "abc", "meta": { "versionId": "7" } })),
        );
        assert_eq!(response_id(&with_body).as_deref(), Some("abc"));
        assert_eq!(response_version(&with_body).as_deref(), Some("7"));
        let bare = answer(
            Some("W/\"2\""),
            Some("http://ehr.example/fhir/Patient/xyz/_history/2"),
            None,
        );
        assert_eq!(response_id(&bare).as_deref(), Some("xyz"));
        assert_eq!(response_version(&bare).as_deref(), Some("2"));
    }

    #[test]
    fn identifier_tokens_are_encoded() {
        let token = token_query(&("https://c.example/fhir/client".into(), "a b".into()));
        assert_eq!(token, "https%3A%2F%2Fc.example%2Ffhir%2Fclient%7Ca%20b");
    }
}
