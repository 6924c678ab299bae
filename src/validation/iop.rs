//! The IOP profile of each resource type: one table, derived from the IOP StructureDefinitions
//! that ship with the gateway (their `type`), used by API writes, `$validate`, `iop-gateway
//! validate` and the CapabilityStatement's `supportedProfile`.
//!
//! A type with one IOP profile has that one. Where several IOP profiles constrain one type, the
//! type's profile is the one every other builds on: derives from (through `baseDefinition`) or
//! refers to (a `targetProfile`). The relapse prevention plan and the treatment plan are siblings
//! under US Core CarePlan, but a relapse prevention plan is `partOf` an IOP CarePlan, so
//! CarePlan's profile is `iop-careplan`; the others apply to a resource that names them in
//! `meta.profile`. A type where no profile is built on by all the others gets no entry (a unit
//! test keeps every API type in the table).

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_json::Value as Json;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IopProfiles {
    /// Profile URLs by resource type, the type's profile first: what the gateway emits.
    by_type: BTreeMap<String, Vec<String>>,
    /// The inbound profile of each writable type (`iop-inbound-*`): what a write must carry,
    /// lighter than what the gateway emits (fhir-profiles/README.md).
    inbound: BTreeMap<String, String>,
}

/// Inbound profiles are named so (`StructureDefinition.id`).
const INBOUND_PREFIX: &str = "iop-inbound-";

/// The few fields of a definition the table is derived from. Read straight from the file's
/// bytes (serde skips the rest without building it): the whole IOP set as JSON trees added
/// about 8 MB to a server's start-up memory peak, for a table a server needs on every start.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DefinitionSummary {
    resource_type: Option<String>,
    id: Option<String>,
    url: Option<String>,
    kind: Option<String>,
    derivation: Option<String>,
    #[serde(rename = "type")]
    constrained_type: Option<String>,
    base_definition: Option<String>,
    snapshot: Option<Snapshot>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Snapshot {
    element: Vec<Element>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Element {
    #[serde(rename = "type")]
    types: Vec<ElementType>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ElementType {
    target_profile: Vec<String>,
}

impl DefinitionSummary {
    /// The summary of a definition file's bytes; None if it is not a JSON object of that shape.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }

    /// The summary of a parsed definition.
    pub fn of(definition: &Json) -> Option<Self> {
        Self::deserialize(definition).ok()
    }

    /// Does some element allow a reference only to instances of `target`?
    fn refers_to(&self, target: &str) -> bool {
        self.snapshot
            .iter()
            .flat_map(|s| &s.element)
            .flat_map(|e| &e.types)
            .flat_map(|t| &t.target_profile)
            .any(|p| p == target)
    }
}

impl IopProfiles {
    /// The table from the IOP StructureDefinitions (anything else given is ignored).
    pub fn derive<'a>(definitions: impl IntoIterator<Item = &'a DefinitionSummary>) -> Self {
        let mut by_url: HashMap<&str, &DefinitionSummary> = HashMap::new();
        let mut candidates: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let mut inbound = BTreeMap::new();
        for sd in definitions {
            let Some(url) = sd.url.as_deref() else {
                continue;
            };
            by_url.insert(url, sd);
            if sd.resource_type.as_deref() == Some("StructureDefinition")
                && sd.kind.as_deref() == Some("resource")
                && sd.derivation.as_deref() == Some("constraint")
                && let Some(t) = sd.constrained_type.as_deref()
            {
                if sd
                    .id
                    .as_deref()
                    .is_some_and(|id| id.starts_with(INBOUND_PREFIX))
                {
                    inbound.insert(t.to_owned(), url.to_owned());
                } else {
                    candidates.entry(t).or_default().push(url);
                }
            }
        }
        let mut by_type = BTreeMap::new();
        for (resource_type, mut urls) in candidates {
            urls.sort_unstable();
            let primary = urls.iter().copied().find(|p| {
                urls.iter()
                    .all(|o| o == p || derives_from(o, p, &by_url) || by_url[o].refers_to(p))
            });
            let Some(primary) = primary else { continue };
            let mut ordered = vec![primary.to_owned()];
            ordered.extend(
                urls.iter()
                    .filter(|u| **u != primary)
                    .map(|u| u.to_string()),
            );
            by_type.insert(resource_type.to_owned(), ordered);
        }
        Self { by_type, inbound }
    }

    /// The inbound profile of `resource_type`: what a write of it must carry.
    pub fn inbound_of_type(&self, resource_type: &str) -> Option<&str> {
        self.inbound.get(resource_type).map(String::as_str)
    }

    /// The IOP profile of `resource_type`, if the gateway has one.
    pub fn of_type(&self, resource_type: &str) -> Option<&str> {
        self.by_type
            .get(resource_type)
            .and_then(|urls| urls.first())
            .map(String::as_str)
    }

    /// Every IOP profile of `resource_type`, the type's profile first.
    pub fn all_of_type(&self, resource_type: &str) -> &[String] {
        self.by_type.get(resource_type).map_or(&[], Vec::as_slice)
    }

    /// The IOP profile that applies to `resource`: an IOP profile of its type that its
    /// `meta.profile` names (a relapse prevention plan), else its type's profile.
    pub fn of_resource(&self, resource: &Json) -> Option<&str> {
        let resource_type = resource.get("resourceType").and_then(Json::as_str)?;
        let all = self.all_of_type(resource_type);
        let declared = super::at(resource, &["meta", "profile"])
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter_map(Json::as_str)
            .map(|p| p.split('|').next().unwrap_or(p));
        for url in declared {
            if let Some(found) = all.iter().find(|a| *a == url) {
                return Some(found);
            }
        }
        self.of_type(resource_type)
    }
}

/// Does `url` derive (at any distance) from `ancestor`, within the given definitions?
fn derives_from(url: &str, ancestor: &str, by_url: &HashMap<&str, &DefinitionSummary>) -> bool {
    let mut at = url;
    for _ in 0..16 {
        let Some(base) = by_url.get(at).and_then(|sd| sd.base_definition.as_deref()) else {
            return false;
        };
        if base == ancestor {
            return true;
        }
        at = base;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sd(id: &str, base: &str, refers: Option<&str>) -> DefinitionSummary {
        let targets: Vec<&str> = refers.into_iter().collect();
        let definition = json!({
            "resourceType": "StructureDefinition", "url": format!("u:{id}"), "kind": "resource",
            "derivation": "constraint", "type": "CarePlan", "baseDefinition": base,
            "snapshot": { "element": [{ "id": "CarePlan.partOf",
                "type": [{ "code": "Reference", "targetProfile": targets }] }] }
        });
        DefinitionSummary::of(&definition).expect("a definition")
    }

    #[test]
    fn the_profile_others_derive_from_or_refer_to_is_the_types() {
        let core = "http://hl7.org/fhir/StructureDefinition/CarePlan";
        let derived = [sd("b", core, None), sd("a", "u:b", None)];
        assert_eq!(
            IopProfiles::derive(&derived).of_type("CarePlan"),
            Some("u:b")
        );
        let referring = [sd("b", core, None), sd("a", core, Some("u:b"))];
        let table = IopProfiles::derive(&referring);
        assert_eq!(table.of_type("CarePlan"), Some("u:b"));
        assert_eq!(table.all_of_type("CarePlan"), ["u:b", "u:a"]);
        // Siblings that neither derive from nor refer to each other: no guess.
        let siblings = [sd("b", core, None), sd("a", core, None)];
        assert_eq!(IopProfiles::derive(&siblings).of_type("CarePlan"), None);
    }

    #[test]
    fn a_declared_iop_profile_of_the_type_applies_to_its_resource() {
        let core = "http://hl7.org/fhir/StructureDefinition/CarePlan";
        let table = IopProfiles::derive(&[sd("b", core, None), sd("a", core, Some("u:b"))]);
        let plain = json!({ "resourceType": "CarePlan" });
        assert_eq!(table.of_resource(&plain), Some("u:b"));
        let part =
            json!({ "resourceType": "CarePlan", "meta": { "profile": ["x:other", "u:a|1"] } });
        assert_eq!(table.of_resource(&part), Some("u:a"));
        assert_eq!(table.of_resource(&json!({ "resourceType": "Basic" })), None);
    }
}
