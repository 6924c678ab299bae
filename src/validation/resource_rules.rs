//! Rules about a resource as a whole that no element definition states: element ids unique
//! within a resource, narrative `#` links that resolve, the Bundle rules of the specification's
//! Bundle page (absolute `fullUrl`, search results, link relations), and the vital signs profiles
//! the specification requires of an Observation. Pure: a resource in, findings out.

use std::collections::{HashMap, HashSet};
use std::fmt::Display;

use serde_json::Value as Json;

use crate::json_member::in_map;

use super::outcome::Severity;

/// One finding: severity, issue code, location (FHIRPath-like, below `at`), message.
pub struct Finding {
    pub severity: Severity,
    pub code: &'static str,
    pub expression: String,
    pub message: String,
}

fn error(expression: String, message: String) -> Finding {
    Finding {
        severity: Severity::Error,
        code: "invalid",
        expression,
        message,
    }
}

/// The findings for `resource` (at `at`, e.g. `Bundle` or `Bundle.entry[2].resource`; rendered
/// only for a finding).
pub fn check(resource: &Json, at: impl Display) -> Vec<Finding> {
    let mut findings = Vec::new();
    duplicate_element_ids(resource, &at, &mut findings);
    narrative_links(resource, &at, &mut findings);
    if resource.get("resourceType").and_then(Json::as_str) == Some("Bundle") {
        bundle(resource, &at, &mut findings);
    }
    findings
}

/// The R4 specification requires an Observation that carries a vital sign's code to conform to
/// that vital sign's profile (Observation, "Vital Signs"); the reference validator applies it.
const VITAL_SIGNS: &[(&str, &str, &str)] = &[
    ("http://loinc.org", "85353-1", "vitalspanel"),
    ("http://loinc.org", "9279-1", "resprate"),
    ("http://loinc.org", "8867-4", "heartrate"),
    ("http://loinc.org", "2708-6", "oxygensat"),
    ("http://loinc.org", "59408-5", "oxygensat"),
    ("http://loinc.org", "8310-5", "bodytemp"),
    ("http://snomed.info/sct", "276885007", "bodytemp"),
    ("http://loinc.org", "8302-2", "bodyheight"),
    ("http://loinc.org", "9843-4", "headcircum"),
    ("http://loinc.org", "29463-7", "bodyweight"),
    ("http://loinc.org", "39156-5", "bmi"),
    ("http://loinc.org", "85354-9", "bp"),
];

/// Profiles the specification itself requires of `resource` (the vital signs profiles).
pub fn required_by_specification(resource: &Json) -> Vec<String> {
    if resource.get("resourceType").and_then(Json::as_str) != Some("Observation") {
        return Vec::new();
    }
    let codings = super::at(resource, &["code", "coding"]).and_then(Json::as_array);
    let mut profiles = Vec::new();
    for coding in codings.into_iter().flatten() {
        let system = coding.get("system").and_then(Json::as_str);
        let code = coding.get("code").and_then(Json::as_str);
        for (_, _, profile) in VITAL_SIGNS
            .iter()
            .filter(|(s, c, _)| system == Some(*s) && code == Some(*c))
        {
            let url = format!("http://hl7.org/fhir/StructureDefinition/{profile}");
            if !profiles.contains(&url) {
                profiles.push(url);
            }
        }
    }
    profiles
}

/// Element ids (`"id"` on anything but the resource itself) are unique within a resource:
/// internal references (`#id`) and narrative links name them. Nested resources are their own
/// scope. Every resource passes here, so the ids are first gathered without locations; only a
/// resource with a duplicate is walked again to say where.
fn duplicate_element_ids(resource: &Json, at: &impl Display, findings: &mut Vec<Finding>) {
    let Json::Object(map) = resource else {
        return;
    };
    let mut seen = HashSet::new();
    let mut duplicates = HashSet::new();
    let own = map
        .iter()
        .filter(|(key, _)| *key != "id" && *key != "contained");
    for (_, value) in own.clone() {
        element_ids(value, &mut |id| {
            if !seen.insert(id) {
                duplicates.insert(id);
            }
        });
    }
    if duplicates.is_empty() {
        return;
    }
    let mut first_seen = HashSet::new();
    for (key, value) in own {
        locate_duplicates(
            value,
            format!("{at}.{key}"),
            &duplicates,
            &mut first_seen,
            findings,
        );
    }
}

/// Calls `found` with each element id in `value`, not descending into nested resources.
/// Every object of every resource passes here: one scan of its keys finds both its id and
/// whether it is a nested resource, and only objects and arrays are descended into.
fn element_ids<'a>(value: &'a Json, found: &mut impl FnMut(&'a str)) {
    match value {
        Json::Array(items) => items
            .iter()
            .filter(|item| is_container(item))
            .for_each(|item| element_ids(item, found)),
        Json::Object(map) => {
            let mut id = None;
            for (key, child) in map {
                match key.as_str() {
                    // A nested resource (Bundle.entry.resource, Parameters.parameter.resource)
                    // has ids of its own.
                    "resourceType" => return,
                    "id" => id = child.as_str(),
                    _ => {}
                }
            }
            if let Some(id) = id {
                found(id);
            }
            for (key, child) in map {
                if is_container(child) && key != "id" {
                    element_ids(child, found);
                }
            }
        }
        _ => {}
    }
}

fn is_container(value: &Json) -> bool {
    matches!(value, Json::Array(_) | Json::Object(_))
}

/// Reports the second and later occurrences of each duplicated id, where they are.
fn locate_duplicates<'a>(
    value: &'a Json,
    location: String,
    duplicates: &HashSet<&str>,
    first_seen: &mut HashSet<&'a str>,
    findings: &mut Vec<Finding>,
) {
    match value {
        Json::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                locate_duplicates(
                    item,
                    format!("{location}[{i}]"),
                    duplicates,
                    first_seen,
                    findings,
                );
            }
        }
        Json::Object(map) if in_map(map, "resourceType").is_none() => {
            if let Some(id) = in_map(map, "id").and_then(Json::as_str)
                && duplicates.contains(id)
                && !first_seen.insert(id)
            {
                findings.push(error(
                    location.clone(),
                    format!(
                        "Duplicate id value '{id}': element ids must be unique within a resource"
                    ),
                ));
            }
            for (key, child) in map {
                if key != "id" {
                    locate_duplicates(
                        child,
                        format!("{location}.{key}"),
                        duplicates,
                        first_seen,
                        findings,
                    );
                }
            }
        }
        _ => {}
    }
}

/// Every `#x` link of the narrative names something in the resource: an element or contained
/// resource with id `x`, or an anchor (`id`, `name`) of the narrative itself.
fn narrative_links(resource: &Json, at: &impl Display, findings: &mut Vec<Finding>) {
    // The xhtml check has parsed the narrative already; parse it again only if it may link.
    let Some(div) = super::at(resource, &["text", "div"])
        .and_then(Json::as_str)
        .filter(|div| div.contains('#'))
    else {
        return;
    };
    // A narrative that does not parse is reported by the xhtml check.
    let Some((links, mut anchors)) = super::xhtml::links_and_anchors(div) else {
        return;
    };
    if links.is_empty() {
        return;
    }
    all_ids(resource, &mut anchors);
    for link in links {
        if !anchors.contains(&link) {
            findings.push(error(
                format!("{at}.text.div"),
                format!(
                    "Hyperlink '#{link}' in the narrative does not resolve: no element, contained resource or anchor of this resource has that id"
                ),
            ));
        }
    }
}

fn all_ids(value: &Json, ids: &mut Vec<String>) {
    match value {
        Json::Array(items) => items.iter().for_each(|i| all_ids(i, ids)),
        Json::Object(map) => {
            for (key, child) in map {
                match (key.as_str(), child) {
                    ("id", Json::String(id)) => ids.push(id.clone()),
                    _ => all_ids(child, ids),
                }
            }
        }
        _ => {}
    }
}

/// Whether a URL is absolute (has a scheme: `http:`, `urn:`), as `fullUrl` must be.
fn is_absolute(url: &str) -> bool {
    match url.split_once(':') {
        Some((scheme, _)) => {
            !scheme.is_empty()
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        }
        None => false,
    }
}

/// Link relations only a search (or history) Bundle may carry: paging.
const PAGING_RELATIONS: [&str; 5] = ["first", "previous", "prev", "next", "last"];

fn bundle(bundle: &Json, at: &impl Display, findings: &mut Vec<Finding>) {
    let kind = bundle
        .get("type")
        .and_then(Json::as_str)
        .unwrap_or_default();
    let links = bundle.get("link").and_then(Json::as_array);
    let mut relations: HashMap<&str, usize> = HashMap::new();
    for (i, link) in links.into_iter().flatten().enumerate() {
        let Some(relation) = link.get("relation").and_then(Json::as_str) else {
            continue;
        };
        if !matches!(kind, "searchset" | "history") && PAGING_RELATIONS.contains(&relation) {
            findings.push(error(
                format!("{at}.link[{i}].relation"),
                format!(
                    "The link relationship type '{relation}' is for paging search and history Bundles; it is not allowed in a {kind} Bundle"
                ),
            ));
        }
        if let Some(first) = relations.insert(relation, i) {
            findings.push(error(
                format!("{at}.link[{i}]"),
                format!(
                    "Duplicate link relation '{relation}' (also at link[{first}]): a Bundle has at most one link of each relation"
                ),
            ));
        }
    }
    let search_types = links
        .into_iter()
        .flatten()
        .find(|l| l.get("relation").and_then(Json::as_str) == Some("self"))
        .and_then(|l| l.get("url").and_then(Json::as_str))
        .and_then(searched_types);
    let entries = bundle.get("entry").and_then(Json::as_array);
    for (i, entry) in entries.into_iter().flatten().enumerate() {
        let here = format!("{at}.entry[{i}]");
        if let Some(full_url) = entry.get("fullUrl").and_then(Json::as_str)
            && !is_absolute(full_url)
        {
            findings.push(error(
                format!("{here}.fullUrl"),
                format!("The fullUrl must be an absolute URL (not '{full_url}')"),
            ));
        }
        if kind == "searchset"
            && let Some(resource) = entry.get("resource")
        {
            search_entry(entry, resource, &here, search_types.as_deref(), findings);
        }
    }
}

/// The resource types a search URL asks for: `Patient?name=x` → [Patient]; `?_type=A,B` → [A, B];
/// None when the URL says nothing usable (a system search without `_type`).
fn searched_types(url: &str) -> Option<Vec<String>> {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let from_type = query
        .split('&')
        .find_map(|p| p.strip_prefix("_type="))
        .map(|types| types.split(',').map(str::to_owned).collect::<Vec<_>>());
    let last = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    let is_type = last.starts_with(|c: char| c.is_ascii_uppercase())
        && last.chars().all(|c| c.is_ascii_alphabetic());
    if is_type {
        Some(vec![last.to_owned()])
    } else {
        from_type
    }
}

fn search_entry(
    entry: &Json,
    resource: &Json,
    here: &str,
    search_types: Option<&[String]>,
    findings: &mut Vec<Finding>,
) {
    let mode = super::at(entry, &["search", "mode"])
        .and_then(Json::as_str)
        .unwrap_or("match");
    let resource_type = resource
        .get("resourceType")
        .and_then(Json::as_str)
        .unwrap_or_default();
    let at = format!("{here}.resource");
    match mode {
        "outcome" if resource_type != "OperationOutcome" => findings.push(error(
            at,
            format!("An entry with search.mode 'outcome' must be an OperationOutcome, not a {resource_type}"),
        )),
        "outcome" => {}
        _ => {
            if resource_type != "OperationOutcome" && resource.get("id").is_none() {
                findings.push(error(at.clone(), "Search results must have ids".into()));
            }
            if mode == "match"
                && let Some(types) = search_types
                && !types.iter().any(|t| t == resource_type)
            {
                findings.push(error(
                    at,
                    format!(
                        "A {resource_type} does not match the search, which asks for {}",
                        types.join(", ")
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn messages(resource: &Json) -> Vec<String> {
        check(resource, "Bundle")
            .into_iter()
            .map(|f| format!("{}: {}", f.expression, f.message))
            .collect()
    }

    #[test]
    fn relative_full_urls_duplicate_element_ids_and_paging_links_in_documents_are_errors() {
        let bundle = json!({
            "resourceType": "Bundle", "type": "document",
            "link": [{"relation": "self", "url": "x"}, {"relation": "next", "url": "y"}],
            "entry": [
                {"id": "e", "fullUrl": "Patient/1", "resource": {"resourceType": "Patient", "id": "1",
                    "name": [{"id": "n"}, {"id": "n"}]}},
                {"id": "e", "fullUrl": "urn:uuid:7c9e6679-7425-40de-944b-e07fc1f90ae7",
                    "resource": {"resourceType": "Patient", "id": "2"}}
            ]
        });
        let found = messages(&bundle);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(
            found.iter().any(
                |m| m.starts_with("Bundle.link[1].relation: The link relationship type 'next'")
            )
        );
        assert!(
            found
                .iter()
                .any(|m| m.starts_with("Bundle.entry[1]: Duplicate id value 'e'"))
        );
        assert!(
            found
                .iter()
                .any(|m| m.contains("absolute URL (not 'Patient/1')"))
        );
        // The Patient's own duplicate name ids are its own resource's concern.
        let patient = &bundle["entry"][0]["resource"];
        let own = check(patient, "Patient");
        assert_eq!(own.len(), 1);
        assert_eq!(own[0].expression, "Patient.name[1]");
    }

    #[test]
    fn narrative_links_resolve_to_element_ids_contained_resources_or_anchors() {
        let div = r##"<div xmlns="http://www.w3.org/1999/xhtml"><a name="top"/><a href="#top">t</a><a href="#n1">n</a><a href="#med">m</a><a href="#Patient_2">p</a></div>"##;
        let patient = json!({
            "resourceType": "Patient", "text": {"status": "generated", "div": div},
            "name": [{"id": "n1"}], "contained": [{"resourceType": "Medication", "id": "med"}]
        });
        let found = check(&patient, "Patient");
        assert_eq!(found.len(), 1);
        assert!(found[0].message.starts_with("Hyperlink '#Patient_2'"));
    }

    #[test]
    fn search_results_need_ids_and_the_searched_type() {
        let bundle = json!({
            "resourceType": "Bundle", "type": "searchset",
            "link": [{"relation": "self", "url": "http://x/fhir/Patient?name=a"}],
            "entry": [
                {"fullUrl": "http://x/fhir/Patient/1", "resource": {"resourceType": "Patient", "id": "1"},
                    "search": {"mode": "match"}},
                {"fullUrl": "http://x/fhir/Observation/2", "resource": {"resourceType": "Observation"},
                    "search": {"mode": "match"}},
                {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient", "id": "3"},
                    "search": {"mode": "outcome"}},
                {"fullUrl": "urn:uuid:2", "resource": {"resourceType": "OperationOutcome"},
                    "search": {"mode": "outcome"}}
            ]
        });
        let found = messages(&bundle);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(found[0].contains("entry[1].resource: Search results must have ids"));
        assert!(found[1].contains("does not match the search, which asks for Patient"));
        assert!(found[2].contains("entry[2].resource: An entry with search.mode 'outcome'"));
        assert_eq!(
            searched_types("base?_type=A,B"),
            Some(vec!["A".into(), "B".into()])
        );
        assert_eq!(searched_types("http://x/fhir?name=a"), None);
    }
}
