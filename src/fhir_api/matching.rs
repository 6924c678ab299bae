//! Search parameters evaluated on the assembled FHIR resources: tokens (`status`, `category`,
//! `class`, ...), dates with prefixes and strings. They apply after the store's filters (id,
//! patient, `_lastUpdated`), so the store stays ignorant of FHIR codes, and what is matched is
//! exactly what the client would read.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    /// Any of `values` (`code`, `system|code`, `|code`) at any of `paths`.
    Token {
        paths: &'static [&'static str],
        values: Vec<(Option<String>, String)>,
    },
    /// A date, dateTime or Period at `paths` against a prefixed date.
    Date {
        paths: &'static [&'static str],
        prefix: &'static str,
        low: NaiveDateTime,
        high: NaiveDateTime,
    },
    /// A string at `paths` that starts with `value`, ignoring case.
    Text {
        paths: &'static [&'static str],
        value: String,
    },
}

enum Kind {
    Token,
    Date,
    Text,
}

/// The element paths and kind of a resource-level search parameter.
fn definition(resource_type: &str, name: &str) -> Option<(Kind, &'static [&'static str])> {
    use Kind::*;
    Some(match (resource_type, name) {
        ("Patient", "gender") => (Token, &["gender"]),
        ("Patient", "birthdate") => (Date, &["birthDate"]),
        ("Patient" | "Practitioner", "name") => (Text, &["name.family", "name.given", "name.text"]),
        ("Patient" | "Practitioner", "family") => (Text, &["name.family"]),
        ("Patient" | "Practitioner", "given") => (Text, &["name.given"]),
        ("Organization" | "HealthcareService" | "Group", "name") => (Text, &["name"]),
        ("CarePlan", "category") => (Token, &["category"]),
        ("CarePlan", "date") => (Date, &["period"]),
        ("Goal", "lifecycle-status") => (Token, &["lifecycleStatus"]),
        ("Goal", "target-date") => (Date, &["target.dueDate"]),
        ("Encounter", "class") => (Token, &["class"]),
        ("Encounter" | "EpisodeOfCare", "type") => (Token, &["type"]),
        ("Encounter" | "EpisodeOfCare", "date") => (Date, &["period"]),
        ("RelatedPerson", "relationship") => (Token, &["relationship"]),
        ("Consent", "category") => (Token, &["category"]),
        ("Consent", "date") => (Date, &["dateTime"]),
        ("ServiceRequest", "category") => (Token, &["category"]),
        ("ServiceRequest", "authored") => (Date, &["authoredOn"]),
        ("Task", "authored-on") => (Date, &["authoredOn"]),
        (
            "CarePlan" | "Encounter" | "EpisodeOfCare" | "Consent" | "ServiceRequest" | "Task",
            "status",
        ) => (Token, &["status"]),
        ("CarePlan" | "ServiceRequest" | "Task", "intent") => (Token, &["intent"]),
        _ => return None,
    })
}

/// The resource-level parameters of a type (for the CapabilityStatement and unknown-parameter
/// handling).
pub fn names(resource_type: &str) -> Vec<&'static str> {
    const ALL: &[&str] = &[
        "gender",
        "birthdate",
        "name",
        "family",
        "given",
        "category",
        "date",
        "lifecycle-status",
        "target-date",
        "class",
        "type",
        "relationship",
        "authored",
        "authored-on",
        "status",
        "intent",
    ];
    ALL.iter()
        .copied()
        .filter(|n| definition(resource_type, n).is_some())
        .collect()
}

pub fn kind_name(resource_type: &str, name: &str) -> &'static str {
    match definition(resource_type, name) {
        Some((Kind::Token, _)) => "token",
        Some((Kind::Date, _)) => "date",
        Some((Kind::Text, _)) => "string",
        None => "special",
    }
}

/// The predicate for `name=value`, None if `name` is not such a parameter of the type.
pub fn predicate(
    resource_type: &str,
    name: &str,
    value: &str,
) -> Option<Result<Predicate, String>> {
    let (kind, paths) = definition(resource_type, name)?;
    Some(match kind {
        Kind::Token => {
            let values: Vec<(Option<String>, String)> = value
                .split(',')
                .filter(|v| !v.is_empty())
                .map(|v| match v.split_once('|') {
                    Some((system, code)) => (Some(system.to_owned()), code.to_owned()),
                    None => (None, v.to_owned()),
                })
                .collect();
            if values.is_empty() {
                Err(format!("{name} needs a code"))
            } else {
                Ok(Predicate::Token { paths, values })
            }
        }
        Kind::Date => {
            let (prefix, rest) = split_prefix(value);
            range(rest)
                .map(|(low, high)| Predicate::Date {
                    paths,
                    prefix,
                    low,
                    high,
                })
                .ok_or_else(|| {
                    format!(
                        "{name} needs a date such as ge2026-01-01 (prefixes eq, ne, lt, le, gt, ge)"
                    )
                })
        }
        Kind::Text => Ok(Predicate::Text {
            paths,
            value: value.to_lowercase(),
        }),
    })
}

fn split_prefix(value: &str) -> (&'static str, &str) {
    for p in ["eq", "ne", "lt", "le", "gt", "ge", "sa", "eb"] {
        if let Some(rest) = value.strip_prefix(p) {
            let p: &'static str = match p {
                "eq" => "eq",
                "ne" => "ne",
                "lt" | "eb" => "lt",
                "le" => "le",
                "gt" | "sa" => "gt",
                _ => "ge",
            };
            return (p, rest);
        }
    }
    ("eq", value)
}

/// The range of instants a date of some precision covers: `2026-03` is all of March.
fn range(text: &str) -> Option<(NaiveDateTime, NaiveDateTime)> {
    let start_of = |d: NaiveDate| d.and_time(NaiveTime::MIN);
    match text.len() {
        4 => {
            let year: i32 = text.parse().ok()?;
            Some((
                start_of(NaiveDate::from_ymd_opt(year, 1, 1)?),
                start_of(NaiveDate::from_ymd_opt(year + 1, 1, 1)?),
            ))
        }
        7 => {
            let first = NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d").ok()?;
            let next = first.checked_add_months(chrono::Months::new(1))?;
            Some((start_of(first), start_of(next)))
        }
        10 => {
            let day = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
            Some((start_of(day), start_of(day.succ_opt()?)))
        }
        _ => {
            let at = chrono::DateTime::parse_from_rfc3339(text).ok()?.naive_utc();
            Some((at, at + chrono::Duration::seconds(1)))
        }
    }
}

/// The values at a dotted path (arrays flattened).
fn at<'a>(resource: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut current = vec![resource];
    for step in path.split('.') {
        let mut next = Vec::new();
        for node in current {
            match node.get(step) {
                Some(Value::Array(items)) => next.extend(items),
                Some(v) => next.push(v),
                None => {}
            }
        }
        current = next;
    }
    current
}

fn token_matches(node: &Value, system: Option<&str>, code: &str) -> bool {
    let coding_matches = |c: &Value| {
        c.get("code").and_then(Value::as_str) == Some(code)
            && system.is_none_or(|s| {
                let actual = c.get("system").and_then(Value::as_str).unwrap_or("");
                actual == s
            })
    };
    match node {
        Value::String(s) => s == code,
        Value::Object(map) if map.contains_key("coding") => map["coding"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(coding_matches)),
        Value::Object(_) => coding_matches(node),
        _ => false,
    }
}

/// The instants a date, dateTime or Period covers (an open Period end is the far future).
fn node_range(node: &Value) -> Option<(NaiveDateTime, NaiveDateTime)> {
    match node {
        Value::String(s) => range(s),
        Value::Object(period) => {
            let low = period
                .get("start")
                .and_then(Value::as_str)
                .and_then(range)
                .map(|r| r.0)
                .unwrap_or(NaiveDateTime::MIN);
            let high = period
                .get("end")
                .and_then(Value::as_str)
                .and_then(range)
                .map(|r| r.1)
                .unwrap_or(NaiveDateTime::MAX);
            Some((low, high))
        }
        _ => None,
    }
}

pub fn matches(predicate: &Predicate, resource: &Value) -> bool {
    match predicate {
        Predicate::Token { paths, values } => paths.iter().any(|path| {
            at(resource, path).iter().any(|node| {
                values
                    .iter()
                    .any(|(system, code)| token_matches(node, system.as_deref(), code))
            })
        }),
        Predicate::Date {
            paths,
            prefix,
            low,
            high,
        } => paths.iter().any(|path| {
            at(resource, path)
                .iter()
                .filter_map(|n| node_range(n))
                .any(|(r_low, r_high)| {
                    let within = *low <= r_low && r_high <= *high;
                    match *prefix {
                        "eq" => within,
                        "ne" => !within,
                        "gt" => r_high > *high,
                        "lt" => r_low < *low,
                        "ge" => r_high > *low,
                        _ => r_low < *high, // le
                    }
                })
        }),
        Predicate::Text { paths, value } => paths.iter().any(|path| {
            at(resource, path)
                .iter()
                .filter_map(|n| n.as_str())
                .any(|s| s.to_lowercase().starts_with(value.as_str()))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(t: &str, n: &str, v: &str) -> Predicate {
        predicate(t, n, v).unwrap().unwrap()
    }

    #[test]
    fn tokens_dates_and_strings() {
        let plan = json!({
            "resourceType": "CarePlan", "status": "active", "intent": "plan",
            "category": [{ "coding": [{ "system": "http://x", "code": "assess-plan" }] }],
            "period": { "start": "2026-03-10" }
        });
        assert!(matches(&p("CarePlan", "status", "active"), &plan));
        assert!(matches(&p("CarePlan", "status", "draft,active"), &plan));
        assert!(!matches(&p("CarePlan", "status", "completed"), &plan));
        assert!(matches(
            &p("CarePlan", "category", "http://x|assess-plan"),
            &plan
        ));
        assert!(!matches(
            &p("CarePlan", "category", "http://y|assess-plan"),
            &plan
        ));
        assert!(matches(&p("CarePlan", "date", "ge2026-03-01"), &plan));
        assert!(
            matches(&p("CarePlan", "date", "gt2026-03"), &plan),
            "open end lies after March"
        );
        assert!(!matches(&p("CarePlan", "date", "lt2026-03-10"), &plan));
        assert!(matches(&p("CarePlan", "date", "le2026-03-10"), &plan));
        let encounter = json!({ "period": { "start": "2026-03-10T10:00:00Z", "end": "2026-03-10T13:00:00Z" },
            "class": { "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB" } });
        assert!(matches(&p("Encounter", "date", "2026-03-10"), &encounter));
        assert!(!matches(&p("Encounter", "date", "2026-03-11"), &encounter));
        assert!(matches(&p("Encounter", "class", "AMB"), &encounter));
        let patient = json!({ "name": [{ "family": "Patel", "given": ["Sofia"] }], "birthDate": "1964-08-07" });
        assert!(matches(&p("Patient", "name", "pat"), &patient));
        assert!(matches(&p("Patient", "given", "SOF"), &patient));
        assert!(matches(&p("Patient", "birthdate", "1964"), &patient));
        assert!(
            predicate("Patient", "birthdate", "yesterday")
                .unwrap()
                .is_err()
        );
        assert!(predicate("Patient", "status", "x").is_none());
    }
}
