//! Identifiers other systems give the clinic's records: which of an incoming resource's
//! identifiers are theirs (every system not under the clinic's `identifier_base`), and adding
//! the stored ones back to what the gateway emits.

use serde_json::Value;

use super::MappingConfig;
use crate::domain::ExternalIdentifier;
use crate::json_build::fhir;

/// The identifiers of `resource` in systems that are not the clinic's own, each once.
pub fn external_identifiers(cfg: &MappingConfig, resource: &Value) -> Vec<ExternalIdentifier> {
    let own = format!("{}/", cfg.identifier_base.trim_end_matches('/'));
    let mut out: Vec<ExternalIdentifier> = Vec::new();
    for identifier in resource
        .get("identifier")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (Some(system), Some(value)) = (
            identifier.get("system").and_then(Value::as_str),
            identifier.get("value").and_then(Value::as_str),
        ) else {
            continue;
        };
        let found = ExternalIdentifier {
            system: system.to_owned(),
            value: value.to_owned(),
        };
        if !system.starts_with(&own) && !out.contains(&found) {
            out.push(found);
        }
    }
    out
}

/// Appends `identifiers` to `resource.identifier` (those it does not carry already).
pub fn add_external_identifiers(resource: &mut Value, identifiers: &[ExternalIdentifier]) {
    if identifiers.is_empty() {
        return;
    }
    if !resource.get("identifier").is_some_and(Value::is_array) {
        resource["identifier"] = fhir!([]);
    }
    let Some(list) = resource["identifier"].as_array_mut() else {
        return;
    };
    for identifier in identifiers {
        let present = list.iter().any(|i| {
            i.get("system").and_then(Value::as_str) == Some(identifier.system.as_str())
                && i.get("value").and_then(Value::as_str) == Some(identifier.value.as_str())
        });
        if !present {
            list.push(
                fhir!({ "system": identifier.system.as_str(), "value": identifier.value.as_str() }),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn own_systems_are_not_external_and_round_trip_adds_each_once() {
        let cfg = MappingConfig::default();
        let resource = json!({ "identifier": [
            { "system": cfg.system("mrn"), "value": "A1" },
            { "system": "urn:oid:2.16.840.1.113883.19.5", "value": "12345" },
            { "system": "urn:oid:2.16.840.1.113883.19.5", "value": "12345" },
            { "value": "no system" },
        ]});
        let external = external_identifiers(&cfg, &resource);
        assert_eq!(
            external,
            [ExternalIdentifier {
                system: "urn:oid:2.16.840.1.113883.19.5".into(),
                value: "12345".into()
            }]
        );
        let mut emitted = json!({ "identifier": [{ "system": cfg.system("mrn"), "value": "A1" }] });
        add_external_identifiers(&mut emitted, &external);
        add_external_identifiers(&mut emitted, &external);
        assert_eq!(emitted["identifier"].as_array().unwrap().len(), 2);
        assert_eq!(external_identifiers(&cfg, &emitted), external);
    }
}
