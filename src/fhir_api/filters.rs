//! FHIR search parameters to store filters, per resource type. Which table column a parameter
//! reads is the FHIR facade's knowledge; the store only runs the filters.

use crate::domain::Timestamp;
use crate::mapping::MappingConfig;
use crate::store::{Filter, SqlValue};

/// The search parameters each type supports (beyond `_count`, `_cursor`, `_format`, ...).
pub fn supported(resource_type: &str) -> &'static [&'static str] {
    match resource_type {
        "Patient" => &["_id", "_lastUpdated", "identifier"],
        "RelatedPerson" | "EpisodeOfCare" | "CarePlan" | "Goal" | "Encounter" | "Consent" => {
            &["_id", "_lastUpdated", "identifier", "patient", "subject"]
        }
        // A referring hospital polls for its referrals' Tasks by requester or owner.
        "ServiceRequest" => &[
            "_id",
            "_lastUpdated",
            "identifier",
            "patient",
            "subject",
            "requester",
            "performer",
        ],
        "Task" => &[
            "_id",
            "_lastUpdated",
            "identifier",
            "patient",
            "subject",
            "requester",
            "owner",
        ],
        _ => &["_id", "_lastUpdated", "identifier"],
    }
}

/// The `{identifier_base}/{kind}` identifier system that carries a type's record id.
pub fn record_kind(resource_type: &str) -> &'static str {
    match resource_type {
        "Patient" => "client",
        "RelatedPerson" => "support-contact",
        "Consent" => "consent",
        "Encounter" => "session",
        "EpisodeOfCare" => "enrollment",
        "CarePlan" => "treatment-plan",
        "Goal" => "goal",
        "ServiceRequest" => "referral",
        "Task" => "referral-task",
        "Practitioner" => "staff",
        "Organization" => "organization",
        "HealthcareService" => "program",
        _ => "therapy-group",
    }
}

/// Why a search value cannot be used (400 under strict handling and for malformed values).
#[derive(Debug, PartialEq, Eq)]
pub struct SearchError(pub String);

/// The filter for one parameter and value.
pub fn filter(
    resource_type: &str,
    name: &str,
    value: &str,
    cfg: &MappingConfig,
) -> Result<Filter, SearchError> {
    if !supported(resource_type).contains(&name) {
        return Err(SearchError(format!(
            "{resource_type} does not support the search parameter {name}"
        )));
    }
    match name {
        "_id" => Ok(Filter::equals("id", SqlValue::text(uuid(name, value)?))),
        "_lastUpdated" => {
            let (op, rest) = prefix(value);
            if let Ok(at) = rest.parse::<Timestamp>() {
                return Ok(Filter::compare("updated_at", op, SqlValue::text(at)));
            }
            // A date (2026, 2026-11, 2026-11-05) means the whole period: instants are
            // fixed-width text, so a day's bound is its date text.
            let (start, end) = period(rest).ok_or_else(|| {
                SearchError(
                    "_lastUpdated needs a date or an instant with a time zone, like ge2026-01-01 or ge2026-01-01T00:00:00Z"
                        .into(),
                )
            })?;
            let at = |op, day: chrono::NaiveDate| {
                Filter::compare("updated_at", op, SqlValue::text(day.format("%Y-%m-%d")))
            };
            Ok(match op {
                ">=" => at(">=", start),
                ">" => at(">=", end),
                "<" => at("<", start),
                "<=" => at("<", end),
                _ => {
                    let table = crate::assemble::tables(resource_type)
                        .and_then(|t| t.first().copied())
                        .unwrap_or_default();
                    Filter::in_rows_all("id", table, "id", vec![at(">=", start), at("<", end)])
                }
            })
        }
        "identifier" => {
            let (system, code) = match value.split_once('|') {
                Some((system, code)) => (Some(system), code),
                None => (None, value),
            };
            let record_system = cfg.system(record_kind(resource_type));
            let mrn_system = cfg.system("mrn");
            // The record-id identifier every resource carries; for a Patient also the MRN.
            let nothing = || Ok(Filter::equals("id", SqlValue::text("")));
            match system {
                Some(s) if s == record_system => match uuid::Uuid::parse_str(code) {
                    Ok(id) => Ok(Filter::equals("id", SqlValue::text(id))),
                    Err(_) => nothing(),
                },
                Some(s) if resource_type == "Patient" && *s == mrn_system => {
                    Ok(Filter::equals("mrn", SqlValue::text(code)))
                }
                // Organizations and practitioners are known by their NPI.
                Some(s)
                    if s == crate::mapping::codes::NPI
                        && matches!(resource_type, "Organization" | "Practitioner") =>
                {
                    Ok(Filter::equals("npi", SqlValue::text(code)))
                }
                Some(s)
                    if resource_type == "HealthcareService" && *s == cfg.system("program-code") =>
                {
                    Ok(Filter::equals("code", SqlValue::text(code)))
                }
                None if resource_type == "Patient" => {
                    Ok(Filter::equals("mrn", SqlValue::text(code)))
                }
                None => match uuid::Uuid::parse_str(code) {
                    Ok(id) => Ok(Filter::equals("id", SqlValue::text(id))),
                    Err(_) => nothing(),
                },
                // Another system's identifier: the records that came in with it.
                Some(s) => {
                    let table = match resource_type {
                        "ServiceRequest" => crate::store::REFERRAL_REQUEST_IDENTIFIERS,
                        _ => crate::assemble::tables(resource_type)
                            .and_then(|t| t.first().copied())
                            .unwrap_or_default(),
                    };
                    Ok(Filter::in_rows_all(
                        "id",
                        "record_identifiers",
                        "record_id",
                        vec![
                            Filter::equals("table_name", SqlValue::text(table)),
                            Filter::equals("system", SqlValue::text(s)),
                            Filter::equals("value", SqlValue::text(code)),
                        ],
                    ))
                }
            }
        }
        "patient" | "subject" => {
            let id = value.strip_prefix("Patient/").unwrap_or(value);
            let client = SqlValue::text(uuid(name, id)?);
            Ok(by_client(resource_type, client))
        }
        // A referral goes from the requester (the referring organization) to the owner/performer.
        // Both are organizations here: a reference to another type matches nothing.
        "requester" | "owner" | "performer" => {
            let (kind, id) = value.rsplit_once('/').unwrap_or(("Organization", value));
            let column = if name == "requester" {
                "referring_org_id"
            } else {
                "receiving_org_id"
            };
            let id = uuid(name, id)?;
            Ok(match kind {
                "Organization" => Filter::equals(column, SqlValue::text(id)),
                _ => Filter::equals("id", SqlValue::text("")),
            })
        }
        other => Err(SearchError(format!(
            "{resource_type} does not support the search parameter {other}"
        ))),
    }
}

/// The rows of `resource_type` that belong to any of `clients` (ids): one query for a page's
/// `_revinclude`.
pub fn of_clients(resource_type: &str, clients: &[String]) -> Filter {
    let clients = Filter::one_of("client_id", clients.iter().map(SqlValue::text).collect());
    by_client_filter(resource_type, clients)
}

/// The rows of `resource_type` that belong to a client.
fn by_client(resource_type: &str, client: SqlValue) -> Filter {
    by_client_filter(resource_type, Filter::equals("client_id", client))
}

/// The rows of `resource_type` whose client matches `clients` (a filter on `client_id`).
fn by_client_filter(resource_type: &str, clients: Filter) -> Filter {
    let enrollments = || Filter::in_rows("enrollment_id", "enrollments", "id", clients.clone());
    match resource_type {
        "CarePlan" | "Encounter" => enrollments(),
        "Goal" => Filter::in_rows("plan_id", "treatment_plans", "id", enrollments()),
        _ => clients,
    }
}

fn uuid(name: &str, value: &str) -> Result<String, SearchError> {
    uuid::Uuid::parse_str(value)
        .map(|u| u.to_string())
        .map_err(|_| SearchError(format!("{name} must be a resource id (a UUID)")))
}

/// The days a FHIR date covers: [start, end).
fn period(value: &str) -> Option<(chrono::NaiveDate, chrono::NaiveDate)> {
    use chrono::{Months, NaiveDate};
    let parts: Vec<&str> = value.split('-').collect();
    let number = |s: &str, len: usize| {
        (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
    };
    match parts.as_slice() {
        [y] => {
            let start = NaiveDate::from_ymd_opt(number(y, 4)? as i32, 1, 1)?;
            Some((start, start.checked_add_months(Months::new(12))?))
        }
        [y, m] => {
            let start = NaiveDate::from_ymd_opt(number(y, 4)? as i32, number(m, 2)?, 1)?;
            Some((start, start.checked_add_months(Months::new(1))?))
        }
        [y, m, d] => {
            let start =
                NaiveDate::from_ymd_opt(number(y, 4)? as i32, number(m, 2)?, number(d, 2)?)?;
            Some((start, start.succ_opt()?))
        }
        _ => None,
    }
}

/// FHIR date prefixes: `ge2026-01-01...` → (">=", "2026-01-01...").
fn prefix(value: &str) -> (&'static str, &str) {
    for (p, op) in [
        ("ge", ">="),
        ("gt", ">"),
        ("le", "<="),
        ("lt", "<"),
        ("eq", "="),
    ] {
        if let Some(rest) = value.strip_prefix(p) {
            return (op, rest);
        }
    }
    ("=", value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_become_filters() {
        let cfg = MappingConfig {
            identifier_base: "https://x".into(),
        };
        let mrn = &cfg;
        assert!(filter("Patient", "_id", "not-a-uuid", mrn).is_err());
        assert!(filter("Patient", "_lastUpdated", "ge2026-13-01", mrn).is_err());
        assert!(filter("Patient", "_lastUpdated", "ge26-01-01", mrn).is_err());
        // A date is the whole day: gt means from the next day on.
        assert_eq!(
            filter("Patient", "_lastUpdated", "gt2026-01-31", mrn)
                .unwrap()
                .condition,
            crate::store::Condition::Compare(">=", SqlValue::text("2026-02-01"))
        );
        assert_eq!(
            filter("Patient", "_lastUpdated", "ge2026-01-01T00:00:00Z", mrn)
                .unwrap()
                .condition,
            crate::store::Condition::Compare(">=", SqlValue::text("2026-01-01T00:00:00.000000Z"))
        );
        assert_eq!(
            filter("Patient", "identifier", "https://x/mrn|M1", mrn).unwrap(),
            Filter::equals("mrn", SqlValue::text("M1"))
        );
        let id = "0195a0b2-0000-7000-8000-000000000001";
        assert_eq!(
            filter(
                "Consent",
                "identifier",
                &format!("https://x/consent|{id}"),
                mrn
            )
            .unwrap(),
            Filter::equals("id", SqlValue::text(id))
        );
        assert_eq!(
            filter(
                "Consent",
                "identifier",
                &format!("https://y/consent|{id}"),
                mrn
            )
            .unwrap(),
            // Another system's identifier: the consents that came in with it.
            Filter::in_rows_all(
                "id",
                "record_identifiers",
                "record_id",
                vec![
                    Filter::equals("table_name", SqlValue::text("consents")),
                    Filter::equals("system", SqlValue::text("https://y/consent")),
                    Filter::equals("value", SqlValue::text(id)),
                ]
            )
        );
        let id = "0195a0b2-0000-7000-8000-000000000001";
        assert_eq!(
            filter("Goal", "patient", &format!("Patient/{id}"), mrn)
                .unwrap()
                .column,
            "plan_id"
        );
        assert!(filter("Practitioner", "patient", id, mrn).is_err());
    }
}
