//! Structural pre-check with the FHIR R4 JSON Schema (`jsonschema` crate).
//!
//! The schema is the one published with the R4 definitions (`fhir-profiles/r4-schema/`), with two
//! changes made here, not in the file: definitions it names but lacks are added
//! (`#/definitions/Resource` as the list of resources; anything else, such as `integer64`, as an
//! unconstrained schema, since the walk checks those elements); and its root — a 146-way `oneOf` that can only say "matches none" — is replaced by one
//! validator per resource type (compiled on first use), so that errors point into the
//! resource's own definition.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use serde_json::{Value as Json, json};

use super::registry::is_r4_type;

static SCHEMA: &str = include_str!("../../fhir-profiles/r4-schema/fhir.schema.json");

pub struct StructuralSchema {
    /// The schema's definitions, with the missing ones added.
    definitions: Json,
    /// `#/definitions/X` of each resource type.
    mapping: serde_json::Map<String, Json>,
    /// One compiled validator per resource type, built on first use: a single root schema that
    /// dispatches with 146 `if`/`then` pairs costs more than the walk itself. Each type's cell
    /// is filled once: threads that need the type meanwhile wait for that one compilation
    /// rather than each compiling (and throwing away) their own, which cost a push more than
    /// all its validation.
    validators: RwLock<HashMap<String, Arc<OnceLock<Compiled>>>>,
}

/// A type's compiled schema (None: the schema does not define the type), or why it does not compile.
type Compiled = Result<Option<Arc<jsonschema::Validator>>, String>;

impl StructuralSchema {
    pub fn load() -> Result<Self, String> {
        Self::from_text(SCHEMA)
    }

    fn from_text(text: &str) -> Result<Self, String> {
        let published: Json = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut definitions = published.get("definitions").cloned().unwrap_or_default();
        let mut missing = Vec::new();
        collect_missing_refs(&definitions, &definitions, &mut missing);
        for name in missing {
            definitions[name.as_str()] = if name == "Resource" {
                json!({ "$ref": "#/definitions/ResourceList" })
            } else {
                json!({})
            };
        }
        // The published schema also lists its publisher's own resource types (Medplum's
        // `Project`, `AccessPolicyResource`, ...): not FHIR R4's, so not resources here. Left in,
        // they made a nested `{"resourceType": "Patient"}` match two of `ResourceList`'s `oneOf`.
        let mut mapping = published
            .pointer("/discriminator/mapping")
            .and_then(Json::as_object)
            .cloned()
            .unwrap_or_default();
        mapping.retain(|name, _| is_r4_type(name));
        if let Some(Json::Array(list)) = definitions.pointer_mut("/ResourceList/oneOf") {
            list.retain(|reference| {
                reference
                    .get("$ref")
                    .and_then(Json::as_str)
                    .and_then(|r| r.strip_prefix("#/definitions/"))
                    .is_some_and(is_r4_type)
            });
        }
        Ok(Self {
            definitions,
            mapping,
            validators: RwLock::new(HashMap::new()),
        })
    }

    fn compile(&self, resource_type: &str) -> Result<Option<jsonschema::Validator>, String> {
        let Some(reference) = self.mapping.get(resource_type) else {
            return Ok(None);
        };
        let root = json!({ "definitions": self.definitions, "$ref": reference });
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft7)
            .build(&root)
            .map(Some)
            .map_err(|e| e.to_string())
    }

    /// The type's compiled schema (None for a type the schema does not define), or why it
    /// does not compile.
    fn validator(&self, resource_type: &str) -> Compiled {
        let found = self
            .validators
            .read()
            .ok()
            .and_then(|v| v.get(resource_type).cloned());
        let cell = match found {
            Some(cell) => cell,
            None => match self.validators.write() {
                Ok(mut validators) => {
                    Arc::clone(validators.entry(resource_type.to_owned()).or_default())
                }
                // A poisoned lock (a panic elsewhere): compile for this call alone.
                Err(_) => Arc::new(OnceLock::new()),
            },
        };
        cell.get_or_init(|| {
            self.compile(resource_type)
                .map(|v| v.map(Arc::new))
                .map_err(|e| format!("the {resource_type} schema does not compile ({e})"))
        })
        .clone()
    }

    /// Is `resource_type` a resource type of FHIR R4 (per the schema's list of resources)?
    pub fn knows(resource_type: &str) -> bool {
        static TYPES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        TYPES
            .get_or_init(|| {
                serde_json::from_str::<Json>(SCHEMA)
                    .ok()
                    .and_then(|s| {
                        super::at(&s, &["discriminator", "mapping"])
                            .and_then(Json::as_object)
                            .map(|m| m.keys().filter(|t| is_r4_type(t)).cloned().collect())
                    })
                    .unwrap_or_default()
            })
            .iter()
            .any(|t| t == resource_type)
    }

    /// The schema violations: (FHIRPath-style location, schema keyword). Values are not quoted.
    /// Resources without a known `resourceType` are left to the walk, which reports them. An
    /// error when the type's schema does not compile (the check did not run).
    pub fn check(&self, resource: &Json) -> Result<Vec<(String, String)>, String> {
        let Some(root) = resource.get("resourceType").and_then(Json::as_str) else {
            return Ok(Vec::new());
        };
        let Some(validator) = self.validator(root)? else {
            return Ok(Vec::new());
        };
        if validator.is_valid(resource) {
            return Ok(Vec::new());
        }
        let root = root.to_owned();
        Ok(validator
            .iter_errors(resource)
            .map(|error| {
                let mut location = root.clone();
                for segment in error
                    .instance_path()
                    .as_str()
                    .split('/')
                    .filter(|s| !s.is_empty())
                {
                    if segment.chars().all(|c| c.is_ascii_digit()) {
                        location.push_str(&format!("[{segment}]"));
                    } else {
                        // `_birthDate` (a primitive's id and extensions) is located at
                        // `birthDate`, as the walk locates it.
                        let segment = segment.strip_prefix('_').unwrap_or(segment);
                        location.push('.');
                        location.push_str(&segment.replace("~1", "/").replace("~0", "~"));
                    }
                }
                (location, error.kind().keyword().to_owned())
            })
            .collect())
    }
}

/// Names of `#/definitions/X` references whose target is not defined.
fn collect_missing_refs(node: &Json, definitions: &Json, out: &mut Vec<String>) {
    match node {
        Json::Object(map) => {
            if let Some(name) = map
                .get("$ref")
                .and_then(Json::as_str)
                .and_then(|r| r.strip_prefix("#/definitions/"))
                && definitions.get(name).is_none()
                && !out.iter().any(|n| n == name)
            {
                out.push(name.to_owned());
            }
            map.values()
                .for_each(|v| collect_missing_refs(v, definitions, out));
        }
        Json::Array(items) => items
            .iter()
            .for_each(|v| collect_missing_refs(v, definitions, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_schema_compiles_and_points_into_the_resource() {
        let schema = StructuralSchema::load().expect("R4 schema loads");
        for resource_type in [
            "Patient",
            "Practitioner",
            "Organization",
            "HealthcareService",
            "Group",
            "CarePlan",
            "Goal",
            "Encounter",
            "EpisodeOfCare",
            "RelatedPerson",
            "Consent",
            "ServiceRequest",
            "Task",
            "Bundle",
            "OperationOutcome",
        ] {
            assert!(
                schema.compile(resource_type).unwrap().is_some(),
                "{resource_type} compiles"
            );
        }
        let good = json!({ "resourceType": "Patient", "id": "p1", "gender": "female" });
        assert!(schema.check(&good).unwrap().is_empty());
        let bad = json!({ "resourceType": "Patient", "gender": 3, "name": [{ "given": "Alex" }] });
        let locations: Vec<String> = schema
            .check(&bad)
            .unwrap()
            .into_iter()
            .map(|(l, _)| l)
            .collect();
        assert!(
            locations.contains(&"Patient.gender".to_owned()),
            "{locations:?}"
        );
        assert!(
            locations.contains(&"Patient.name[0].given".to_owned()),
            "{locations:?}"
        );
    }

    #[test]
    fn a_schema_that_does_not_compile_says_so() {
        // A resource type whose definition is not a schema (`type` must be a string or a list).
        let broken = r##"{ "discriminator": { "mapping": { "Patient": "#/definitions/Patient" } },
            "definitions": { "Patient": { "type": 5 } } }"##;
        let schema = StructuralSchema::from_text(broken).expect("the JSON reads");
        let patient = json!({ "resourceType": "Patient" });
        let err = schema.check(&patient).expect_err("no silent pass");
        assert!(err.contains("Patient schema does not compile"), "{err}");
        // Cached as the same failure, not as "nothing to check".
        assert!(schema.check(&patient).is_err());
        assert!(StructuralSchema::from_text("not JSON").is_err());
    }
}
