//! `GET /fhir/AuditEvent`: the accounting of disclosures, searchable by `patient`, `agent` (the
//! client id), `date`, `type` and `subtype`, newest first. Needs `system/AuditEvent.rs`; reading
//! the trail is itself audited.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::access::{self, Caller};
use super::{ApiError, DEFAULT_COUNT, FhirState, MAX_COUNT, base_url, fhir_json, pretty};
use crate::audit::Event;
use crate::auth::Letter;
use crate::domain::{AuditInteraction, AuditRecord, Timestamp};
use crate::json_build::fhir;
use crate::mapping::audit::{self as fhir_audit, AuditSource};
use crate::store::{AuditQuery, Comparison};

pub(super) const TYPE: &str = "AuditEvent";

pub(super) async fn read(
    state: &FhirState,
    caller: &Caller,
    id: &str,
    params: &[(String, String)],
) -> Result<Response, ApiError> {
    access::require(state, caller, TYPE, Letter::Read, AuditInteraction::Read).await?;
    let records = state
        .store
        .audit_page(&AuditQuery {
            id: Some(id.to_owned()),
            limit: 1,
            ..Default::default()
        })
        .await?;
    let record = records
        .first()
        .ok_or_else(|| ApiError::not_found(format!("AuditEvent/{id} is not known")))?;
    let resource = fhir_audit::audit_event(record, &source(state));
    access::disclosed(
        state,
        caller,
        Event::success(AuditInteraction::Read, TYPE),
        &[&resource],
    )
    .await?;
    Ok(fhir_json(StatusCode::OK, &resource, pretty(params)))
}

fn source(state: &FhirState) -> AuditSource {
    AuditSource {
        observer: "iop-gateway".into(),
        site: state.mapping.identifier_base.clone(),
    }
}

pub(super) async fn search(
    state: &FhirState,
    caller: &Caller,
    headers: &HeaderMap,
    params: &[(String, String)],
) -> Result<Response, ApiError> {
    access::require(
        state,
        caller,
        TYPE,
        Letter::Search,
        AuditInteraction::Search,
    )
    .await?;
    let mut query = AuditQuery {
        limit: DEFAULT_COUNT,
        ..Default::default()
    };
    for (name, value) in params {
        match name.as_str() {
            "patient" => {
                let id = value.strip_prefix("Patient/").unwrap_or(value);
                query.patient = Some(id.to_owned());
            }
            "agent" => query.client_id = Some(value.clone()),
            "date" => query.recorded.extend(date(value)?),
            "type" | "subtype" => {
                let wanted = interactions(name, value);
                query.interactions = Some(match query.interactions.take() {
                    None => wanted,
                    Some(had) => had.into_iter().filter(|i| wanted.contains(i)).collect(),
                });
            }
            "_count" => {
                query.limit = value
                    .parse::<u32>()
                    .ok()
                    .filter(|c| *c >= 1)
                    .ok_or_else(|| ApiError::bad_request("_count must be a positive integer"))?
                    .min(MAX_COUNT);
            }
            "_cursor" => query.before = Some(cursor(value)?),
            "_format" | "_pretty" => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "AuditEvent search supports patient, agent, date, type, subtype and _count, not {other}"
                )));
            }
        }
    }
    let limit = query.limit;
    query.limit = limit + 1;
    let mut records = state.store.audit_page(&query).await?;
    let more = records.len() > limit as usize;
    records.truncate(limit as usize);
    let source = source(state);
    let resources: Vec<Value> = records
        .iter()
        .map(|r| fhir_audit::audit_event(r, &source))
        .collect();
    let disclosed: Vec<&Value> = resources.iter().collect();
    access::disclosed(
        state,
        caller,
        Event::success(AuditInteraction::Search, TYPE).with_query(params),
        &disclosed,
    )
    .await?;
    let base = base_url(state, headers);
    let own: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k != "_cursor")
        .cloned()
        .collect();
    let link = |extra: Option<String>| {
        let mut pairs = own.clone();
        if let Some(c) = extra {
            pairs.push(("_cursor".into(), c));
        }
        format!(
            "{base}/AuditEvent?{}",
            serde_urlencoded::to_string(&pairs).unwrap_or_default()
        )
    };
    let mut links = vec![
        fhir!({ "relation": "self", "url": link(params.iter().find(|(k, _)| k == "_cursor").map(|(_, v)| v.clone())) }),
    ];
    if more && let Some(last) = records.last() {
        links.push(fhir!({ "relation": "next", "url": link(Some(cursor_of(last))) }));
    }
    let entries: Vec<Value> = resources
        .into_iter()
        .map(|r| {
            fhir!({
                "fullUrl": format!("{base}/AuditEvent/{}", r["id"].as_str().unwrap_or_default()),
                "resource": r,
                "search": { "mode": "match" }
            })
        })
        .collect();
    Ok(fhir_json(
        StatusCode::OK,
        &fhir!({ "resourceType": "Bundle", "type": "searchset", "link": links, "entry": entries }),
        pretty(params),
    ))
}

fn cursor_of(record: &AuditRecord) -> String {
    format!("{}~{}", record.recorded.to_db_text(), record.id)
}

fn cursor(value: &str) -> Result<(Timestamp, String), ApiError> {
    let bad = || ApiError::bad_request("_cursor is not one this server gave");
    let (at, id) = value.split_once('~').ok_or_else(bad)?;
    Ok((at.parse().map_err(|_| bad())?, id.to_owned()))
}

/// `date=ge2026-12-01` (prefixes eq, lt, le, gt, ge; a date covers its whole day).
fn date(value: &str) -> Result<Vec<(Comparison, Timestamp)>, ApiError> {
    let bad =
        || ApiError::bad_request("date must be a date or date-time, prefixed eq, lt, le, gt or ge");
    let (prefix, text) = match value.get(..2) {
        Some(p @ ("eq" | "lt" | "le" | "gt" | "ge")) => (p, &value[2..]),
        _ => ("eq", value),
    };
    let (start, end) = match chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        Ok(day) => {
            let start = day.and_hms_opt(0, 0, 0).ok_or_else(bad)?.and_utc();
            let end = start + chrono::Duration::days(1) - chrono::Duration::microseconds(1);
            (Timestamp::from(start), Timestamp::from(end))
        }
        Err(_) => {
            let at: Timestamp = text.parse().map_err(|_| bad())?;
            (at, at)
        }
    };
    Ok(match prefix {
        "lt" => vec![(Comparison::Lt, start)],
        "le" => vec![(Comparison::Le, end)],
        "gt" => vec![(Comparison::Gt, end)],
        "ge" => vec![(Comparison::Ge, start)],
        _ => vec![(Comparison::Ge, start), (Comparison::Le, end)],
    })
}

/// `type=rest` / `type=110114` and `subtype=read|search|create|...` as interactions.
fn interactions(name: &str, value: &str) -> Vec<AuditInteraction> {
    let mut out = Vec::new();
    for token in value.split(',') {
        let code = token.rsplit('|').next().unwrap_or(token);
        let matched: Vec<AuditInteraction> = AuditInteraction::ALL
            .into_iter()
            .filter(|i| {
                let (t, s) = fhir_audit::type_and_subtype(*i);
                if name == "type" {
                    t.1 == code
                } else {
                    s.1 == code
                }
            })
            .collect();
        out.extend(matched);
    }
    out
}
