//! A pull run: what the clinic takes from a target (support contacts, consents, sessions) for
//! the clinic's clients, read incrementally (`_lastUpdated` where the target searches by it, else
//! every page, unchanged copies recognised by version or content hash), following every `next`
//! link as the target writes it. Each resource's references become the clinic's ids, and it is
//! written by the API's own rules (`fhir_api::ingest`: validated, found by identifier or
//! created). The identity map then records the clinic version it became, so a push never sends
//! it back; a record the clinic changed since the last sync is a conflict, and the clinic's edit
//! stands (unless the run says the target wins).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::counters::Counters;
use super::lease::Lease;
use super::references::{self, Resolved};
use super::{Engine, RunOptions, SyncError};
use crate::assemble::Assembler;
use crate::domain::ExternalIdentifier;
use crate::fhir_api::FhirState;
use crate::outbound::target::{Capabilities, FhirRequest, FhirTarget};
use crate::store::{DeadLetter, SyncTarget, SyncedResource};

/// The types a pull takes, and where each names its client. A Task comes back only as the
/// status of a referral the clinic sent (one the identity map knows): the receiver's decision.
pub const PULL_TYPES: [(&str, &str); 4] = [
    ("RelatedPerson", "patient"),
    ("Consent", "patient"),
    ("Encounter", "subject"),
    ("Task", "for"),
];

/// Resources asked per page.
const PAGE: u32 = 100;
/// Pages followed at most per type and run (a target whose `next` links loop is stopped).
const MAX_PAGES: usize = 10_000;

pub(super) struct PullRun<'r> {
    pub engine: &'r Engine,
    pub state: FhirState,
    pub target: &'r SyncTarget,
    pub fhir: &'r FhirTarget,
    pub capabilities: &'r Capabilities,
    pub options: &'r RunOptions,
    pub lease: Option<&'r Lease>,
    pub counters: &'r Counters,
    pub today: chrono::NaiveDate,
}

impl PullRun<'_> {
    pub async fn run(&self) -> Result<(), SyncError> {
        let mut since: BTreeMap<String, String> = self
            .target
            .pull_since
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        for (resource_type, client_path) in PULL_TYPES {
            if !self.target.resources.iter().any(|t| t == resource_type) {
                continue;
            }
            let incremental = self
                .capabilities
                .search_params
                .get(resource_type)
                .is_some_and(|p| p.contains("_lastUpdated"));
            let mut url = match since.get(resource_type).filter(|_| incremental) {
                // `ge`: a resource changed in the same instant as the newest seen is not missed
                // (the one seen is recognised as unchanged).
                Some(from) => format!(
                    "{resource_type}?_lastUpdated=ge{}&_count={PAGE}",
                    encode(from)
                ),
                None => format!("{resource_type}?_count={PAGE}"),
            };
            let mut newest: Option<String> = since.get(resource_type).cloned();
            for _ in 0..MAX_PAGES {
                self.check_lease()?;
                let response = self
                    .fhir
                    .send(FhirRequest {
                        method: reqwest::Method::GET,
                        url: url.clone(),
                        body: None,
                        if_match: None,
                        if_none_exist: None,
                    })
                    .await
                    .map_err(|e| self.target_error(e.to_string()))?;
                if response.status != 200 {
                    return Err(self.target_error(format!(
                        "a search of {resource_type} answered {}",
                        response.status
                    )));
                }
                let bundle = response.body.unwrap_or(Value::Null);
                for resource in bundle
                    .get("entry")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e.get("resource"))
                    .filter(|r| r["resourceType"] == resource_type)
                {
                    if let Some(updated) = resource
                        .pointer("/meta/lastUpdated")
                        .and_then(Value::as_str)
                        && newest.as_deref().is_none_or(|n| updated > n)
                    {
                        newest = Some(updated.to_owned());
                    }
                    self.take(resource_type, client_path, resource.clone())
                        .await?;
                }
                match next_link(&bundle) {
                    Some(next) => url = next,
                    None => break,
                }
            }
            if let Some(newest) = newest
                && !self.options.dry_run
            {
                since.insert(resource_type.to_owned(), newest);
                let holder = self.lease.map(Lease::holder).unwrap_or_default();
                let encoded = serde_json::to_string(&since).unwrap_or_default();
                if !self
                    .engine
                    .store
                    .set_pull_since(&self.target.name, holder, &encoded)
                    .await?
                {
                    return Err(SyncError::LeaseLost(self.target.name.clone()));
                }
            }
        }
        Ok(())
    }

    /// Takes one resource from the target into the clinic database.
    async fn take(
        &self,
        resource_type: &str,
        client_path: &str,
        resource: Value,
    ) -> Result<(), SyncError> {
        let store = &self.engine.store;
        let name = &self.target.name;
        self.counters.add(&self.counters.processed);
        let Some(remote_id) = resource["id"].as_str().map(str::to_owned) else {
            self.counters.add(&self.counters.skipped);
            return Ok(());
        };
        let remote_version = resource
            .pointer("/meta/versionId")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let hash = content_hash(&resource);
        let mapped = store
            .synced_by_remote(name, resource_type, &remote_id)
            .await?;
        if let Some(entry) = &mapped {
            let same_version = remote_version.is_some() && entry.remote_version == remote_version;
            if same_version || entry.remote_hash.as_deref() == Some(hash.as_str()) {
                self.counters.add(&self.counters.unchanged);
                return Ok(());
            }
        }
        // A Task is taken only as the status of a referral the clinic sent there.
        if resource_type == "Task" && mapped.is_none() {
            self.counters.add(&self.counters.skipped);
            return Ok(());
        }
        // Only what is about the clinic's clients (as the target knows them) comes in.
        let client = resource
            .get(client_path)
            .and_then(|r| r.get("reference"))
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("Patient/"))
            .map(str::to_owned);
        let local_client = match client {
            Some(patient) => store
                .synced_by_remote(name, "Patient", &patient)
                .await?
                .map(|e| e.local_id),
            None => None,
        };
        if local_client.is_none() {
            self.counters.add(&self.counters.skipped);
            return Ok(());
        }
        // The clinic's edit since the last sync stands (a conflict, reported).
        let mut if_match = None;
        if let Some(entry) = &mapped {
            let assembler = Assembler::new(store, &self.engine.mapping, self.today);
            let local = assembler
                .by_ids(resource_type, std::slice::from_ref(&entry.local_id))
                .await?;
            let local_version = local
                .get(&entry.local_id)
                .and_then(|r| r.pointer("/meta/versionId"))
                .and_then(Value::as_str)
                .and_then(|v| v.parse::<i64>().ok());
            if local_version.is_some() && local_version != entry.synced_version {
                if !self.options.remote_wins {
                    self.counters.add(&self.counters.conflicts_kept_local);
                    tracing::info!(target_name = %name, resource_type, id = %entry.local_id, "conflict: the clinic's edit is kept");
                    return Ok(());
                }
                if_match = local_version;
            } else {
                if_match = entry.synced_version;
            }
        }
        let body = self.to_clinic(resource_type, resource, &remote_id).await?;
        // Found again by the id the clinic gave it (when it has one) or by the target's id.
        let identifier = match &mapped {
            Some(entry) => self
                .engine
                .mapping
                .record_system(resource_type)
                .map(|system| ExternalIdentifier {
                    system,
                    value: entry.local_id.clone(),
                })
                .unwrap_or_else(|| self.remote_identifier(resource_type, &remote_id)),
            None => self.remote_identifier(resource_type, &remote_id),
        };
        if self.options.dry_run {
            let counter = if mapped.is_some() {
                &self.counters.updated
            } else {
                &self.counters.created
            };
            self.counters.add(counter);
            return Ok(());
        }
        match crate::fhir_api::ingest(&self.state, resource_type, body, identifier, if_match).await
        {
            Ok(ingested) => {
                store
                    .put_synced(&SyncedResource {
                        target: name.clone(),
                        resource_type: resource_type.to_owned(),
                        local_id: ingested.id.clone(),
                        remote_id: Some(remote_id.clone()),
                        remote_version,
                        synced_version: Some(ingested.version),
                        remote_hash: Some(hash),
                        create_sent_at: None,
                    })
                    .await?;
                store
                    .clear_dead_letter(name, "pull", resource_type, &remote_id)
                    .await?;
                let counter = if ingested.created {
                    &self.counters.created
                } else {
                    &self.counters.updated
                };
                self.counters.add(counter);
                Ok(())
            }
            Err(error) if matches!(error.status.as_u16(), 409 | 412) => {
                self.counters.add(&self.counters.conflicts_kept_local);
                Ok(())
            }
            Err(error) if error.status.is_client_error() => {
                self.counters.add(&self.counters.rejected);
                let now = crate::domain::Timestamp::now().to_db_text();
                store
                    .put_dead_letter(&DeadLetter {
                        target: name.clone(),
                        direction: "pull".into(),
                        resource_type: resource_type.to_owned(),
                        // A pulled resource without a clinic record is known by the target's id.
                        local_id: remote_id,
                        local_version: None,
                        http_status: Some(i64::from(error.status.as_u16())),
                        reason: error.outcome.to_string(),
                        attempts: 1,
                        first_failed: now.clone(),
                        last_failed: now,
                    })
                    .await?;
                Ok(())
            }
            Err(error) => Err(SyncError::Config(format!(
                "writing a pulled {resource_type} failed ({})",
                error.status
            ))),
        }
    }

    /// The resource with the clinic's ids in its references (one to something the clinic does
    /// not know keeps only its display), the target's meta dropped and the target's id kept as
    /// an identifier.
    async fn to_clinic(
        &self,
        resource_type: &str,
        mut resource: Value,
        remote_id: &str,
    ) -> Result<Value, SyncError> {
        let store = &self.engine.store;
        let mut local = std::collections::HashMap::new();
        for (ref_type, ref_id) in references::references(&resource) {
            let found = store
                .synced_by_remote(&self.target.name, &ref_type, &ref_id)
                .await?
                .map(|e| e.local_id);
            local.insert((ref_type, ref_id), found);
        }
        references::rewrite(&mut resource, &mut |t, id| match local
            .get(&(t.to_owned(), id.to_owned()))
            .cloned()
            .flatten()
        {
            Some(local_id) => Resolved::Remote(local_id),
            None => Resolved::DisplayOnly,
        });
        if let Some(object) = resource.as_object_mut() {
            object.remove("id");
            object.remove("meta");
        }
        let remote = self.remote_identifier(resource_type, remote_id);
        let identifiers = resource
            .as_object_mut()
            .map(|o| o.entry("identifier").or_insert_with(|| json!([])));
        if let Some(Value::Array(list)) = identifiers
            && !list.iter().any(|i| i["system"] == remote.system.as_str())
        {
            list.push(json!({ "system": remote.system, "value": remote.value }));
        }
        Ok(resource)
    }

    /// The identifier a target's resource is known by in the clinic: `{base URL}/{Type}` and its id.
    fn remote_identifier(&self, resource_type: &str, remote_id: &str) -> ExternalIdentifier {
        ExternalIdentifier {
            system: format!("{}/{resource_type}", self.fhir.base_url()),
            value: remote_id.to_owned(),
        }
    }

    fn check_lease(&self) -> Result<(), SyncError> {
        match self.lease {
            Some(lease) if lease.is_lost() => Err(SyncError::LeaseLost(self.target.name.clone())),
            _ => Ok(()),
        }
    }

    fn target_error(&self, reason: String) -> SyncError {
        SyncError::Target {
            target: self.target.name.clone(),
            reason,
        }
    }
}

/// The `next` link of a searchset, as the target wrote it (absolute, offset-based or not).
fn next_link(bundle: &Value) -> Option<String> {
    bundle
        .get("link")?
        .as_array()?
        .iter()
        .find(|l| l["relation"] == "next")?
        .get("url")?
        .as_str()
        .map(str::to_owned)
}

/// A hash of what a resource says, without its meta (targets that cannot be searched by
/// `_lastUpdated` are read in full every time; unchanged copies are recognised by it).
fn content_hash(resource: &Value) -> String {
    use sha2::{Digest, Sha256};
    let mut without_meta = resource.clone();
    if let Some(object) = without_meta.as_object_mut() {
        object.remove("meta");
    }
    let digest = Sha256::digest(without_meta.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn encode(value: &str) -> String {
    value.replace('+', "%2B").replace(':', "%3A")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_next_link_as_written() {
        let bundle = json!({ "link": [
            { "relation": "self", "url": "http://ehr/fhir/RelatedPerson?_count=2" },
            { "relation": "next", "url": "http://ehr/fhir/RelatedPerson?_count=2&_offset=2" }
        ]});
        assert_eq!(
            next_link(&bundle).as_deref(),
            Some("http://ehr/fhir/RelatedPerson?_count=2&_offset=2")
        );
        assert_eq!(next_link(&json!({ "link": [] })), None);
    }

    #[test]
    fn the_hash_ignores_meta() {
        let a = json!({ "resourceType": "Consent", "id": "1", "meta": { "versionId": "1" }, "status": "active" });
        let b = json!({ "resourceType": "Consent", "id": "1", "meta": { "versionId": "2" }, "status": "active" });
        let c = json!({ "resourceType": "Consent", "id": "1", "status": "inactive" });
        assert_eq!(content_hash(&a), content_hash(&b));
        assert_ne!(content_hash(&a), content_hash(&c));
    }
}
