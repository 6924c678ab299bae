//! A Bulk Data kick-off request, read and checked (pure): which level, which types, since when,
//! for which patients, narrowed by which searches; what is not supported is refused under
//! `Prefer: handling=strict` and otherwise reported in the manifest's `error` files.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::assemble::RESOURCE_TYPES;
use crate::domain::Timestamp;

use crate::disclose::NOT_ABOUT_A_CLIENT;

/// The output formats Bulk Data 2.0 names for NDJSON (all the same here).
const NDJSON: [&str; 3] = ["application/fhir+ndjson", "application/ndjson", "ndjson"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Level {
    /// `/fhir/$export`: everything the client may see.
    System,
    /// `/fhir/Patient/$export`: the patient compartments (of `patient`, or of every client).
    Patient,
    /// `/fhir/Group/{id}/$export`: the compartments of a therapy group's clients (resolved to
    /// `patients` at kick-off).
    Group(String),
}

/// What an export is to contain. Stored with the job as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRequest {
    pub level: Level,
    /// In the order they are written.
    pub types: Vec<String>,
    /// Only resources changed after this instant (as the store writes instants).
    pub since: Option<String>,
    /// Patient ids (Patient level), empty for all.
    pub patients: Vec<String>,
    /// `_typeFilter`: per type, search queries (a resource is kept when it matches any).
    pub type_filters: Vec<(String, String)>,
    /// Parameters ignored (reported in the manifest's error file).
    pub ignored: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KickOffError(pub String);

fn refuse(message: impl Into<String>) -> KickOffError {
    KickOffError(message.into())
}

/// The kick-off's parameters: the query string's, and for POST those of a `Parameters` body
/// (`valueString`, `valueInstant`, `valueReference` for `patient`).
pub fn parameters(
    query: &[(String, String)],
    body: Option<&Value>,
) -> Result<Vec<(String, String)>, KickOffError> {
    let mut all = query.to_vec();
    if let Some(body) = body {
        if body.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
            return Err(refuse("a POST kick-off body is a Parameters resource"));
        }
        for parameter in body
            .get("parameter")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = parameter
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| refuse("every Parameters.parameter needs a name"))?;
            let value = [
                "valueString",
                "valueInstant",
                "valueDateTime",
                "valueCode",
                "valueUri",
            ]
            .iter()
            .find_map(|k| parameter.get(*k).and_then(Value::as_str))
            .map(str::to_owned)
            .or_else(|| {
                parameter
                    .pointer("/valueReference/reference")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .ok_or_else(|| refuse(format!("parameter {name} has no value this server reads")))?;
            all.push((name.to_owned(), value));
        }
    }
    Ok(all)
}

/// Reads a kick-off's parameters for `level`.
pub fn parse(
    level: Level,
    params: &[(String, String)],
    strict: bool,
) -> Result<ExportRequest, KickOffError> {
    let mut request = ExportRequest {
        level: level.clone(),
        types: Vec::new(),
        since: None,
        patients: Vec::new(),
        type_filters: Vec::new(),
        ignored: Vec::new(),
    };
    let available: Vec<&str> = RESOURCE_TYPES
        .iter()
        .copied()
        .filter(|t| level == Level::System || !NOT_ABOUT_A_CLIENT.contains(t))
        .collect();
    for (name, value) in params {
        match name.as_str() {
            "_type" => {
                for t in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                    let known = available.iter().find(|k| **k == t).ok_or_else(|| {
                        refuse(format!(
                            "_type {t} is not exported at this level; it exports {}",
                            available.join(", ")
                        ))
                    })?;
                    if !request.types.iter().any(|k| k == known) {
                        request.types.push((*known).to_owned());
                    }
                }
            }
            "_since" => {
                let since: Timestamp = value.parse().map_err(|_| {
                    refuse("_since is an instant with a time zone, like 2026-11-01T00:00:00Z")
                })?;
                request.since = Some(since.to_db_text());
            }
            "_outputFormat" => {
                if !NDJSON.contains(&value.as_str()) {
                    return Err(refuse(format!(
                        "_outputFormat {value} is not supported: this server writes {}",
                        NDJSON.join(", ")
                    )));
                }
            }
            "_typeFilter" => {
                for filter in value.split(',') {
                    let (t, query) = filter.split_once('?').ok_or_else(|| {
                        refuse("_typeFilter is Type?search, like CarePlan?status=active")
                    })?;
                    if !available.contains(&t) {
                        return Err(refuse(format!(
                            "_typeFilter names {t}, which is not exported"
                        )));
                    }
                    request.type_filters.push((t.to_owned(), query.to_owned()));
                }
            }
            "patient" if level != Level::System => {
                let id = value.strip_prefix("Patient/").unwrap_or(value);
                let id = uuid::Uuid::parse_str(id)
                    .map_err(|_| refuse(format!("patient {value} is not a Patient reference")))?;
                request.patients.push(id.to_string());
            }
            "includeAssociatedData" => {
                return Err(refuse(
                    "includeAssociatedData is not supported: no associated data (provenance) is kept",
                ));
            }
            "_format" | "_pretty" => {}
            other if strict => {
                return Err(refuse(format!(
                    "the parameter {other} is not supported by this server's $export"
                )));
            }
            other => request.ignored.push(other.to_owned()),
        }
    }
    if request.types.is_empty() {
        request.types = available.iter().map(|t| t.to_string()).collect();
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_what_the_specification_names() {
        let r = parse(
            Level::Patient,
            &p(&[
                ("_type", "CarePlan,Goal"),
                ("_since", "2026-11-01T00:00:00Z"),
                ("_outputFormat", "application/ndjson"),
                ("_typeFilter", "CarePlan?status=active"),
                ("patient", "Patient/0195a0b2-0000-7000-8000-000000000001"),
                ("foo", "bar"),
            ]),
            false,
        )
        .unwrap();
        assert_eq!(r.types, ["CarePlan", "Goal"]);
        assert!(r.since.is_some());
        assert_eq!(r.patients.len(), 1);
        assert_eq!(
            r.type_filters,
            [("CarePlan".into(), "status=active".into())]
        );
        assert_eq!(r.ignored, ["foo"]);
    }

    #[test]
    fn refuses_what_it_cannot_do() {
        for bad in [
            ("_outputFormat", "text/csv"),
            ("_since", "yesterday"),
            ("_type", "Observation"),
            ("includeAssociatedData", "LatestProvenanceResources"),
            ("_typeFilter", "CarePlan"),
        ] {
            assert!(parse(Level::System, &p(&[bad]), false).is_err(), "{bad:?}");
        }
        // Patient level has no staff or organizations; strict refuses what it would ignore.
        assert!(parse(Level::Patient, &p(&[("_type", "Practitioner")]), false).is_err());
        assert!(parse(Level::System, &p(&[("foo", "bar")]), true).is_err());
        assert_eq!(parse(Level::Patient, &[], false).unwrap().types.len(), 9);
    }
}
