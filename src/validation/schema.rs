//! Structural pre-check with the FHIR R4 JSON Schema (`jsonschema` crate).
//!
//! The schema is the one published with the R4 definitions (`fhir-profiles/r4-schema/`), with two
//! changes made here, not in the file: definitions it names but lacks are added
//! (`#/definitions/Resource` as the list of resources; anything else, such as `integer64`, as an
//! unconstrained schema, since the walk checks those elements); and its root — a 146-way `oneOf` that can only say "matches none" — becomes a dispatch on
//! `resourceType`, so that errors point into the resource's own definition.

use serde_json::{Value as Json, json};

static SCHEMA: &str = include_str!("../../fhir-profiles/r4-schema/fhir.schema.json");

pub struct StructuralSchema {
    validator: jsonschema::Validator,
}

impl StructuralSchema {
    pub fn load() -> Result<Self, String> {
        let published: Json = serde_json::from_str(SCHEMA).map_err(|e| e.to_string())?;
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
        let mapping = published
            .pointer("/discriminator/mapping")
            .and_then(Json::as_object)
            .cloned()
            .unwrap_or_default();
        let dispatch: Vec<Json> = mapping
            .iter()
            .map(|(resource_type, reference)| {
                json!({
                    "if": { "properties": { "resourceType": { "const": resource_type } }, "required": ["resourceType"] },
                    "then": { "$ref": reference },
                })
            })
            .collect();
        let root =
            json!({ "definitions": definitions, "required": ["resourceType"], "allOf": dispatch });
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft7)
            .build(&root)
            .map_err(|e| e.to_string())?;
        Ok(Self { validator })
    }

    /// Is `resource_type` a resource type of FHIR R4 (per the schema's list of resources)?
    pub fn knows(resource_type: &str) -> bool {
        static TYPES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        TYPES
            .get_or_init(|| {
                serde_json::from_str::<Json>(SCHEMA)
                    .ok()
                    .and_then(|s| {
                        s.pointer("/discriminator/mapping")
                            .and_then(Json::as_object)
                            .map(|m| m.keys().cloned().collect())
                    })
                    .unwrap_or_default()
            })
            .iter()
            .any(|t| t == resource_type)
    }

    /// The schema violations: (FHIRPath-style location, schema keyword). Values are not quoted.
    pub fn check(&self, resource: &Json) -> Vec<(String, String)> {
        if self.validator.is_valid(resource) {
            return Vec::new();
        }
        let root = resource
            .get("resourceType")
            .and_then(Json::as_str)
            .unwrap_or("Resource")
            .to_owned();
        self.validator
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
                        location.push('.');
                        location.push_str(&segment.replace("~1", "/").replace("~0", "~"));
                    }
                }
                (location, error.kind().keyword().to_owned())
            })
            .collect()
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
        let schema = StructuralSchema::load().expect("R4 schema compiles");
        let good = json!({ "resourceType": "Patient", "id": "p1", "gender": "female" });
        assert!(schema.check(&good).is_empty());
        let bad = json!({ "resourceType": "Patient", "gender": 3, "name": [{ "given": "Alex" }] });
        let locations: Vec<String> = schema.check(&bad).into_iter().map(|(l, _)| l).collect();
        assert!(
            locations.contains(&"Patient.gender".to_owned()),
            "{locations:?}"
        );
        assert!(
            locations.contains(&"Patient.name[0].given".to_owned()),
            "{locations:?}"
        );
    }
}
