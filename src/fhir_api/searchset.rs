//! Search: parameters parsed and checked, rows selected by store filters and resource-level
//! predicates, paged by keyset cursors (or sorted), with `_include`/`_revinclude`, `_elements`
//! and `_summary=count`, returned as a `searchset` Bundle.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use std::collections::HashSet;

use serde_json::Value;

use super::access::{self, Caller};
use super::{
    ApiError, DEFAULT_COUNT, FhirState, MAX_COUNT, assembler_on, base_url, check_accept, fhir_json,
    filters, find_many, known_type, matching, pretty,
};
use crate::assemble::{Assembler, Keyset, Page, RESOURCE_TYPES};
use crate::audit::Event;
use crate::auth::Letter;
use crate::disclose::Audience;
use crate::domain::AuditInteraction;
use crate::json_build::fhir;
use crate::mapping::MappingConfig;
use crate::read_cache::Seen;
use crate::store::Filter;

/// Rows scanned at most per search request when resource-level parameters filter (a page may
/// then hold fewer matches than `_count`, with a `next` link to go on).
const SCAN_LIMIT: usize = 5_000;
/// Matches sorted at most for `_sort` (beyond, the client is asked to narrow the search).
const SORT_LIMIT: usize = 10_000;
/// Rows read at most to sort or count with resource-level parameters: past it the search is
/// refused as too costly (400) rather than scan a whole table.
pub(super) const SORT_SCAN_LIMIT: usize = 20_000;
/// Resources `_include` and `_revinclude` add to one page at most; past it the page says it
/// was cut (a warning entry) and the client pages smaller.
pub(super) const MAX_INCLUDED: usize = 1_000;

/// What a search request asks for, parsed and checked.
struct SearchRequest {
    filters: Vec<crate::store::Filter>,
    predicates: Vec<matching::Predicate>,
    count: u32,
    cursor: Option<String>,
    /// `_before`: the page just before this row id (what a `previous` link asks for).
    before: Option<String>,
    summary_count: bool,
    sort: Option<(String, bool)>,
    includes: Vec<(String, String)>,
    revincludes: Vec<(String, String)>,
    elements: Vec<String>,
    ignored: Vec<String>,
}

fn parse_search(
    cfg: &MappingConfig,
    resource_type: &str,
    params: &[(String, String)],
    strict: bool,
) -> Result<SearchRequest, ApiError> {
    let mut request = SearchRequest {
        filters: Vec::new(),
        predicates: Vec::new(),
        count: DEFAULT_COUNT,
        cursor: None,
        before: None,
        summary_count: false,
        sort: None,
        includes: Vec::new(),
        revincludes: Vec::new(),
        elements: Vec::new(),
        ignored: Vec::new(),
    };
    let type_param = |value: &str, what: &str| -> Result<(String, String), ApiError> {
        value
            .split_once(':')
            .map(|(t, p)| (t.to_owned(), p.to_owned()))
            .filter(|(t, _)| RESOURCE_TYPES.contains(&t.as_str()))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{what} takes Type:parameter, like CarePlan:subject"
                ))
            })
    };
    for (name, value) in params {
        match name.as_str() {
            // `_count=0` asks for the total only (as `_summary=count`).
            "_count" => match value.parse::<u32>() {
                Ok(0) => request.summary_count = true,
                Ok(count) => request.count = count.min(MAX_COUNT),
                Err(_) => return Err(ApiError::bad_request("_count must be a whole number")),
            },
            "_cursor" => {
                let id = value.rsplit('~').next().unwrap_or_default();
                uuid::Uuid::parse_str(id).map_err(|_| {
                    ApiError::bad_request("_cursor is not a paging cursor of this server")
                })?;
                request.cursor = Some(value.clone());
            }
            "_before" => {
                let id = uuid::Uuid::parse_str(value).map_err(|_| {
                    ApiError::bad_request("_before is not a paging cursor of this server")
                })?;
                request.before = Some(id.to_string());
            }
            "_summary" if value == "count" => request.summary_count = true,
            "_sort" => {
                let (key, descending) = match value.strip_prefix('-') {
                    Some(key) => (key, true),
                    None => (value.as_str(), false),
                };
                if key != "_lastUpdated" && matching::kind_name(resource_type, key) != "date" {
                    return Err(ApiError::bad_request(format!(
                        "{resource_type} sorts by _lastUpdated or its date parameters"
                    )));
                }
                request.sort = Some((key.to_owned(), descending));
            }
            "_include" => request.includes.push(type_param(value, "_include")?),
            "_revinclude" => request.revincludes.push(type_param(value, "_revinclude")?),
            "_elements" => request
                .elements
                .extend(value.split(',').map(|e| e.trim().to_owned())),
            "_format" | "_pretty" => {}
            _ if filters::supported(resource_type).contains(&name.as_str()) => {
                request.filters.push(
                    filters::filter(resource_type, name, value, cfg)
                        .map_err(|e| ApiError::bad_request(e.0))?,
                )
            }
            _ => match matching::predicate(resource_type, name, value) {
                Some(predicate) => request
                    .predicates
                    .push(predicate.map_err(ApiError::bad_request)?),
                None if strict => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "not-supported",
                        format!("{resource_type} does not support the search parameter {name}"),
                    ));
                }
                None => request.ignored.push(name.clone()),
            },
        }
    }
    Ok(request)
}

/// `Type/id` of a resource.
fn key_of(resource: &Value) -> String {
    format!(
        "{}/{}",
        resource["resourceType"].as_str().unwrap_or_default(),
        resource["id"].as_str().unwrap_or_default()
    )
}

/// A search query string for `resource_type` parsed as a request would be, then the part of the
/// search that needs no database (resource-level predicates, `_sort` keys, `_elements`, the
/// references `_include` follows) run over `resources`: the matches, sorted and subsetted.
/// The entry point of the search fuzz target (`tests/fuzz.rs`); no I/O.
#[doc(hidden)]
pub fn search_in(
    cfg: &MappingConfig,
    resource_type: &str,
    query: &str,
    strict: bool,
    resources: &[Value],
) -> Result<Vec<Value>, ApiError> {
    let params: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|_| ApiError::bad_request("the query string is not form-encoded"))?;
    known_type(resource_type)?;
    let request = parse_search(cfg, resource_type, &params, strict)?;
    let mut found: Vec<Value> = resources
        .iter()
        .filter(|r| request.predicates.iter().all(|p| matching::matches(p, r)))
        .cloned()
        .collect();
    if let Some((key, descending)) = &request.sort {
        found.sort_by_key(|r| sort_key(resource_type, r, key));
        if *descending {
            found.reverse();
        }
    }
    found.truncate(request.count as usize);
    for resource in &mut found {
        for (_, parameter) in &request.includes {
            references_at(resource, parameter);
        }
        if !request.elements.is_empty() {
            subset(resource, &request.elements);
        }
    }
    Ok(found)
}

/// The sort key of a resource for `_sort` (an ISO date or instant, which sort as text).
fn sort_key(resource_type: &str, resource: &Value, key: &str) -> String {
    if key == "_lastUpdated" {
        return resource
            .pointer("/meta/lastUpdated")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
    }
    let path = match (resource_type, key) {
        ("Patient", _) => "birthDate",
        ("Goal", _) => "target.0.dueDate",
        ("Consent", _) => "dateTime",
        ("ServiceRequest" | "Task", _) => "authoredOn",
        _ => "period.start",
    };
    let mut node = resource;
    for step in path.split('.') {
        node = match step.parse::<usize>() {
            Ok(i) => node.get(i).unwrap_or(&Value::Null),
            Err(_) => node.get(step).unwrap_or(&Value::Null),
        };
    }
    node.as_str().unwrap_or_default().to_owned()
}

/// Keeps only the listed top-level elements (and what every resource needs), tagged SUBSETTED.
fn subset(resource: &mut Value, elements: &[String]) {
    if let Some(map) = resource.as_object_mut() {
        map.retain(|k, _| {
            matches!(k.as_str(), "resourceType" | "id" | "meta") || elements.iter().any(|e| e == k)
        });
    }
    let tag = fhir!({ "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED" });
    match resource["meta"]["tag"].as_array_mut() {
        Some(tags) => tags.push(tag),
        None => resource["meta"]["tag"] = fhir!([tag]),
    }
}

/// The references a resource holds in the element a parameter names (`patient` also looks at
/// `subject`, `for` and `beneficiary`).
fn references_at(resource: &Value, parameter: &str) -> Vec<(String, String)> {
    let own = [parameter];
    let elements: &[&str] = match parameter {
        "patient" => &["patient", "subject", "for", "beneficiary"],
        "based-on" => &["basedOn"],
        "part-of" => &["partOf"],
        "episode-of-care" => &["episodeOfCare"],
        _ => &own,
    };
    let mut out = Vec::new();
    for element in elements {
        let values = match resource.get(*element) {
            Some(Value::Array(items)) => items.iter().collect(),
            Some(v) => vec![v],
            None => Vec::new(),
        };
        for value in values {
            if let Some((t, id)) = value
                .get("reference")
                .and_then(Value::as_str)
                .and_then(|r| r.split_once('/'))
                && RESOURCE_TYPES.contains(&t)
            {
                out.push((t.to_owned(), id.to_owned()));
            }
        }
    }
    out
}

/// `Assembler::page` through the read cache (brought up to date for this request: `seen`).
async fn cached_page(
    state: &FhirState,
    seen: Seen,
    assembler: &Assembler<'_>,
    resource_type: &str,
    filters: &[Filter],
    keyset: Keyset<'_>,
    limit: u32,
) -> Result<Page, ApiError> {
    let key = format!("{resource_type} {filters:?} {keyset:?} {limit}");
    if let Some(kept) = state.read_cache.page(&key) {
        return Ok(Page::clone(&kept));
    }
    let page = assembler
        .page(resource_type, filters, keyset, limit)
        .await?;
    state
        .read_cache
        .keep_page(seen, key, std::sync::Arc::new(page.clone()));
    Ok(page)
}

pub(super) async fn search(
    state: &FhirState,
    caller: &Caller,
    resource_type: &str,
    headers: &HeaderMap,
    params: Vec<(String, String)>,
) -> Result<Response, ApiError> {
    check_accept(headers, &params)?;
    known_type(resource_type)?;
    let strict = headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("handling=strict"));
    let request = parse_search(&state.mapping, resource_type, &params, strict)?;
    access::require(
        state,
        caller,
        resource_type,
        Letter::Search,
        AuditInteraction::Search,
    )
    .await?;
    for (source_type, _) in &request.revincludes {
        if known_type(source_type).is_ok() {
            access::require(
                state,
                caller,
                source_type,
                Letter::Search,
                AuditInteraction::Search,
            )
            .await?;
        }
    }
    let event = Event::success(AuditInteraction::Search, resource_type).with_query(&params);
    let base = base_url(state, headers);
    let seen = access::fresh(state).await?;
    let assembler = assembler_on(state, seen.day());
    let mut bundle = fhir!({ "resourceType": "Bundle", "type": "searchset" });
    // Every resource found or included passes the gate; counts are of what it lets through.
    let mut gate = access::gate_as_of(state, caller, seen);
    let unfiltered = *gate.audience() == Audience::Unfiltered;
    if request.summary_count && request.predicates.is_empty() && unfiltered {
        bundle["total"] = fhir!(assembler.count(resource_type, &request.filters).await?);
        access::disclosed(state, caller, event, &[]).await?;
        return Ok(fhir_json(StatusCode::OK, &bundle, pretty(&params)));
    }
    let matches = |r: &Value| {
        r.get("resourceType").and_then(Value::as_str) == Some(resource_type)
            && request.predicates.iter().all(|p| matching::matches(p, r))
    };
    // Rows in id order after (or, for a `prev` link, before) the cursor, filtered, until the page
    // is full or the scan limit is reached.
    let mut found: Vec<Value> = Vec::new();
    let mut next_cursor: Option<String> = None;
    let mut prev_cursor: Option<String> = None;
    if request.sort.is_none() && !request.summary_count {
        let backwards = request.before.is_some();
        let mut at = request.before.clone().or(request.cursor.clone());
        let mut first_row: Option<String> = None;
        let mut last_row: Option<String> = None;
        let mut scanned = 0;
        let mut more = false;
        loop {
            let want = request.count as usize - found.len();
            let keyset = match (&at, backwards) {
                (Some(before), true) => Keyset::Before(before),
                (after, _) => Keyset::After(after.as_deref()),
            };
            let page = cached_page(
                state,
                seen,
                &assembler,
                resource_type,
                &request.filters,
                keyset,
                want as u32,
            )
            .await?;
            scanned += want;
            let matched: Vec<Value> = page.resources.into_iter().filter(|r| matches(r)).collect();
            let matched = gate.admit(&state.store, matched).await?;
            if backwards {
                found.splice(0..0, matched);
                first_row = page.first_row.clone().or(first_row);
                last_row = last_row.or(page.last_row.clone());
                at = page.first_row.clone();
            } else {
                found.extend(matched);
                first_row = first_row.or(page.first_row.clone());
                last_row = page.last_row.clone().or(last_row);
                at = page.last_row.clone();
            }
            if !page.full || at.is_none() {
                break;
            }
            // Past the scan limit a page may be short, but never empty with a `next` link.
            if found.len() >= request.count as usize || (scanned >= SCAN_LIMIT && !found.is_empty())
            {
                more = true;
                break;
            }
        }
        // Forward: `next` when rows may follow, `prev` when this is not the first page.
        // Backward: `next` after this page always, `prev` when rows may precede.
        if backwards {
            next_cursor = last_row.clone();
            prev_cursor = more.then_some(first_row).flatten();
        } else {
            next_cursor = more.then_some(last_row).flatten();
            prev_cursor = request.cursor.as_ref().and(first_row);
        }
    } else {
        // Sorting and counting with resource-level parameters need every match: bounded by the
        // rows read and the matches kept.
        let mut after: Option<String> = None;
        let mut scanned = 0;
        let too_costly = |what: String| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "too-costly",
                format!("{what}; narrow the search (for example by patient)"),
            )
        };
        loop {
            if scanned >= SORT_SCAN_LIMIT {
                return Err(too_costly(format!(
                    "sorting or counting here reads more than {SORT_SCAN_LIMIT} records"
                )));
            }
            scanned += 500;
            let page = assembler
                .page(
                    resource_type,
                    &request.filters,
                    Keyset::After(after.as_deref()),
                    500,
                )
                .await?;
            let matched: Vec<Value> = page.resources.into_iter().filter(|r| matches(r)).collect();
            found.extend(gate.admit(&state.store, matched).await?);
            if found.len() > SORT_LIMIT {
                return Err(too_costly(format!(
                    "more than {SORT_LIMIT} matches to sort or count"
                )));
            }
            match (page.full, page.last_row) {
                (true, Some(last)) => after = Some(last),
                _ => break,
            }
        }
        if request.summary_count {
            bundle["total"] = fhir!(found.len());
            access::disclosed(state, caller, event, &[]).await?;
            return Ok(fhir_json(StatusCode::OK, &bundle, pretty(&params)));
        }
        let (key, descending) = request.sort.clone().unwrap_or_default();
        let keyed = |r: &Value| {
            format!(
                "{}~{}",
                sort_key(resource_type, r, &key),
                r["id"].as_str().unwrap_or_default()
            )
        };
        found.sort_by_key(|r| keyed(r));
        if descending {
            found.reverse();
        }
        if let Some(cursor) = &request.cursor {
            found.retain(|r| {
                if descending {
                    keyed(r) < *cursor
                } else {
                    keyed(r) > *cursor
                }
            });
        }
        if found.len() > request.count as usize {
            found.truncate(request.count as usize);
            next_cursor = found.last().map(keyed);
        }
    }
    let own: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k != "_cursor" && k != "_before")
        .cloned()
        .collect();
    let link_to = |key: &str, cursor: Option<&str>| {
        let mut pairs = own.clone();
        if let Some(c) = cursor {
            pairs.push((key.to_owned(), c.to_owned()));
        }
        let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        if query.is_empty() {
            format!("{base}/{resource_type}")
        } else {
            format!("{base}/{resource_type}?{query}")
        }
    };
    let link = |cursor: Option<&str>| link_to("_cursor", cursor);
    let own_link = match &request.before {
        Some(before) => link_to("_before", Some(before)),
        None => link(request.cursor.as_deref()),
    };
    let mut links = vec![fhir!({ "relation": "self", "url": own_link })];
    if let Some(next) = &next_cursor {
        links.push(fhir!({ "relation": "next", "url": link(Some(next)) }));
    }
    if let Some(prev) = &prev_cursor {
        links.push(fhir!({ "relation": "previous", "url": link_to("_before", Some(prev)) }));
    }
    bundle["link"] = fhir!(links);
    // _include and _revinclude: referenced and referring resources, each once, loaded in one
    // batch per type, at most MAX_INCLUDED.
    let mut seen: HashSet<String> = found.iter().map(key_of).collect();
    let mut wanted: Vec<(String, String)> = Vec::new();
    for (source_type, parameter) in &request.includes {
        if source_type != resource_type {
            continue;
        }
        for resource in &found {
            for (t, id) in references_at(resource, parameter) {
                if seen.insert(format!("{t}/{id}")) {
                    wanted.push((t, id));
                }
            }
        }
    }
    let mut truncated = wanted.len() > MAX_INCLUDED;
    wanted.truncate(MAX_INCLUDED);
    let mut included: Vec<Value> = Vec::new();
    let mut by_type: Vec<(String, Vec<String>)> = Vec::new();
    for (t, id) in wanted {
        match by_type.iter_mut().find(|(bt, _)| *bt == t) {
            Some((_, ids)) => ids.push(id),
            None => by_type.push((t, vec![id])),
        }
    }
    // An included resource is read by reference: its type needs the read scope.
    for (t, _) in &by_type {
        access::require(state, caller, t, Letter::Read, AuditInteraction::Search).await?;
    }
    for (t, ids) in &by_type {
        let mut loaded = find_many(state, t, ids).await?;
        let batch: Vec<Value> = ids.iter().filter_map(|id| loaded.remove(id)).collect();
        included.extend(gate.admit(&state.store, batch).await?);
    }
    let patients: Vec<String> = if resource_type == "Patient" {
        found
            .iter()
            .filter_map(|p| p["id"].as_str().map(str::to_owned))
            .collect()
    } else {
        Vec::new()
    };
    for (source_type, parameter) in &request.revincludes {
        if patients.is_empty() || !matches!(parameter.as_str(), "patient" | "subject") {
            continue;
        }
        known_type(source_type)?;
        if !filters::supported(source_type).contains(&"patient") {
            continue;
        }
        let room = MAX_INCLUDED.saturating_sub(included.len());
        if room == 0 {
            truncated = true;
            break;
        }
        let filter = filters::of_clients(source_type, &patients);
        let page = assembler
            .page(
                source_type,
                std::slice::from_ref(&filter),
                Keyset::After(None),
                room as u32 + 1,
            )
            .await?;
        for r in gate.admit(&state.store, page.resources).await? {
            if seen.insert(key_of(&r)) {
                if included.len() >= MAX_INCLUDED {
                    truncated = true;
                    break;
                }
                included.push(r);
            }
        }
    }
    let disclosed: Vec<&Value> = found.iter().chain(&included).collect();
    let event = event.with_consents(gate.consents_used());
    access::disclosed(state, caller, event, &disclosed).await?;
    let entry = |mut r: Value, mode: &str| {
        if !request.elements.is_empty() && mode == "match" {
            subset(&mut r, &request.elements);
        }
        let full_url = format!(
            "{base}/{}/{}",
            r["resourceType"].as_str().unwrap_or_default(),
            r["id"].as_str().unwrap_or_default()
        );
        fhir!({ "fullUrl": full_url, "resource": r, "search": { "mode": mode } })
    };
    let mut entries: Vec<Value> = found.into_iter().map(|r| entry(r, "match")).collect();
    entries.extend(included.into_iter().map(|r| entry(r, "include")));
    if truncated {
        entries.push(fhir!({
            "resource": {
                "resourceType": "OperationOutcome",
                "issue": [{
                    "severity": "warning",
                    "code": "too-costly",
                    "diagnostics": format!("_include/_revinclude added the first {MAX_INCLUDED} resources only; ask for smaller pages (_count) to get the rest")
                }]
            },
            "search": { "mode": "outcome" }
        }));
    }
    if gate.part2_disclosed() {
        entries.push(crate::disclose::part2_notice_entry());
    }
    if !request.ignored.is_empty() {
        entries.push(fhir!({
            "resource": {
                "resourceType": "OperationOutcome",
                "issue": [{
                    "severity": "warning",
                    "code": "not-supported",
                    "diagnostics": format!("search parameters ignored (not supported for {resource_type}): {}", request.ignored.join(", "))
                }]
            },
            "search": { "mode": "outcome" }
        }));
    }
    bundle["entry"] = fhir!(entries);
    Ok(fhir_json(StatusCode::OK, &bundle, pretty(&params)))
}

/// A search run by something other than a search request (a Bulk Data `_typeFilter`): the
/// store filters and the resource-level predicates of a query string for one type.
pub struct TypeFilter {
    filters: Vec<crate::store::Filter>,
    predicates: Vec<matching::Predicate>,
}

impl TypeFilter {
    /// `query` as a search of `resource_type` would read it (under strict handling: an
    /// unknown parameter is an error, never silently dropped).
    pub fn parse(cfg: &MappingConfig, resource_type: &str, query: &str) -> Result<Self, String> {
        let params: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|_| format!("{resource_type}?{query} is not a search query"))?;
        let request = parse_search(cfg, resource_type, &params, true).map_err(|e| {
            let why = e.outcome["issue"][0]["diagnostics"]
                .as_str()
                .unwrap_or("not a search this server runs")
                .to_owned();
            format!("{resource_type}?{query}: {why}")
        })?;
        Ok(Self {
            filters: request.filters,
            predicates: request.predicates,
        })
    }
    pub fn filters(&self) -> &[crate::store::Filter] {
        &self.filters
    }
    pub fn matches(&self, resource: &Value) -> bool {
        self.predicates
            .iter()
            .all(|p| matching::matches(p, resource))
    }
}
