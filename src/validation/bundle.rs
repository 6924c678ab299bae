//! The entries of a Bundle by the addresses a reference can use, so that references between
//! entries (`urn:uuid:...`, `Patient/123`, absolute URLs) resolve inside the Bundle.

use std::collections::HashMap;

use serde_json::Value as Json;

#[derive(Debug, Default)]
pub struct BundleIndex {
    /// `Bundle.type`: a transaction or batch must resolve every `urn:uuid:` it uses.
    kind: String,
    resources: Vec<Json>,
    by_address: HashMap<String, usize>,
}

impl BundleIndex {
    /// Indexes `bundle.entry[].resource` by `fullUrl` and, where the resource has an id, by
    /// `Type/id` (what a relative reference in the same Bundle names).
    pub fn of(bundle: &Json) -> Self {
        let mut index = Self {
            kind: bundle
                .get("type")
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_owned(),
            ..Self::default()
        };
        let entries = bundle.get("entry").and_then(Json::as_array);
        for entry in entries.into_iter().flatten() {
            let Some(resource) = entry.get("resource") else {
                continue;
            };
            let at = index.resources.len();
            index.resources.push(resource.clone());
            if let Some(full_url) = entry.get("fullUrl").and_then(Json::as_str) {
                index.by_address.entry(full_url.to_owned()).or_insert(at);
            }
            if let (Some(kind), Some(id)) = (
                resource.get("resourceType").and_then(Json::as_str),
                resource.get("id").and_then(Json::as_str),
            ) {
                index.by_address.entry(format!("{kind}/{id}")).or_insert(at);
            }
        }
        index
    }

    /// The entry a reference names: by exact `fullUrl`, else by its trailing `Type/id`
    /// (a version suffix `/_history/n` is ignored).
    pub fn resolve(&self, reference: &str) -> Option<&Json> {
        if let Some(at) = self.by_address.get(reference) {
            return self.resources.get(*at);
        }
        let unversioned = match reference.find("/_history/") {
            Some(cut) => &reference[..cut],
            None => reference,
        };
        let mut parts = unversioned.rsplit('/');
        let id = parts.next()?;
        let kind = parts.next()?;
        self.by_address
            .get(&format!("{kind}/{id}"))
            .and_then(|at| self.resources.get(*at))
    }

    /// A transaction or batch: its entries are processed, so every `urn:uuid:` must name one.
    pub fn is_processed(&self) -> bool {
        matches!(
            self.kind.as_str(),
            "transaction" | "batch" | "transaction-response" | "batch-response"
        )
    }

    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }
}
