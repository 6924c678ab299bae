//! `minValue[x]` and `maxValue[x]` of an element definition: numbers, dates and times, and
//! Quantities (converted through UCUM when the units differ, as the HL7 validator does).

use std::cmp::Ordering;

use serde_json::Value as Json;

const UCUM: &str = "http://unitsofmeasure.org";

/// Which end of the range a limit is.
#[derive(Clone, Copy)]
pub enum Bound {
    Min,
    Max,
}

/// Why a value could not be held to its limit (reported as a warning: never a silent pass).
#[derive(Debug)]
pub struct Incomparable(pub String);

/// `Ok(None)` when `value` respects `limit`, `Ok(Some(message))` when it does not, `Err` when
/// the two cannot be compared.
pub fn check(value: &Json, limit: &Json, bound: Bound) -> Result<Option<String>, Incomparable> {
    let (order, shown_value, shown_limit) = match (value, limit) {
        (Json::Number(v), Json::Number(l)) => {
            let (v, l) = (
                v.as_f64().unwrap_or(f64::NAN),
                l.as_f64().unwrap_or(f64::NAN),
            );
            (v.partial_cmp(&l), v.to_string(), l.to_string())
        }
        (Json::String(v), Json::String(l)) => (compare_temporal(v, l), v.clone(), l.clone()),
        (Json::Object(_), Json::Object(_)) => quantity_order(value, limit)?,
        _ => {
            return Err(Incomparable(
                "the value and the limit are of different kinds".into(),
            ));
        }
    };
    let Some(order) = order else {
        return Err(Incomparable(format!(
            "{shown_value} and {shown_limit} cannot be compared"
        )));
    };
    Ok(match (bound, order) {
        (Bound::Min, Ordering::Less) => Some(format!(
            "The value in the instance ({shown_value}) is less than the specified minValue ({shown_limit})"
        )),
        (Bound::Max, Ordering::Greater) => Some(format!(
            "The value in the instance ({shown_value}) is greater than the specified maxValue ({shown_limit})"
        )),
        _ => None,
    })
}

/// Dates, date-times, instants and times of the same form compare as text; instants with time
/// zones compare as points in time.
fn compare_temporal(value: &str, limit: &str) -> Option<Ordering> {
    let instant = |s: &str| chrono::DateTime::parse_from_rfc3339(s).ok();
    if let (Some(v), Some(l)) = (instant(value), instant(limit)) {
        return Some(v.cmp(&l));
    }
    (value.len() == limit.len()).then(|| value.cmp(limit))
}

type Shown = (Option<Ordering>, String, String);

fn quantity_order(value: &Json, limit: &Json) -> Result<Shown, Incomparable> {
    fn number(q: &Json) -> Option<f64> {
        q.get("value").and_then(Json::as_f64)
    }
    fn code(q: &Json) -> Option<&str> {
        q.get("code").and_then(Json::as_str)
    }
    fn system(q: &Json) -> Option<&str> {
        q.get("system").and_then(Json::as_str)
    }
    let (Some(v), Some(l)) = (number(value), number(limit)) else {
        return Err(Incomparable("a quantity without a value".into()));
    };
    let shown = |n: f64, q: &Json| match code(q) {
        Some(c) => format!("{n} {c}"),
        None => n.to_string(),
    };
    let (shown_value, shown_limit) = (shown(v, value), shown(l, limit));
    if code(value) == code(limit) && system(value) == system(limit) {
        return Ok((v.partial_cmp(&l), shown_value, shown_limit));
    }
    match (code(value), code(limit), system(value), system(limit)) {
        (Some(from), Some(to), Some(UCUM), Some(UCUM)) => match ucum::convert(v, from, to) {
            Ok(converted) => Ok((
                converted.partial_cmp(&l),
                shown_value,
                format!("{shown_limit}, after UCUM conversion"),
            )),
            Err(err) => Err(Incomparable(format!(
                "{from} cannot be converted to {to}: {err}"
            ))),
        },
        _ => Err(Incomparable(format!(
            "{shown_value} and {shown_limit} are in different units that are not both UCUM"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kg(value: f64, code: &str) -> Json {
        json!({"value": value, "system": UCUM, "code": code})
    }

    #[test]
    fn quantities_compare_after_ucum_conversion() {
        let zero_kg = kg(0.0, "kg");
        assert!(
            check(&kg(-1.0, "g"), &zero_kg, Bound::Min)
                .unwrap()
                .is_some()
        );
        assert!(
            check(&kg(1.0, "g"), &zero_kg, Bound::Min)
                .unwrap()
                .is_none()
        );
        assert!(
            check(&kg(11000.0, "g"), &kg(10.0, "kg"), Bound::Max)
                .unwrap()
                .is_some()
        );
        assert!(
            check(&kg(9000.0, "g"), &kg(10.0, "kg"), Bound::Max)
                .unwrap()
                .is_none()
        );
        assert!(check(&kg(1.0, "m"), &zero_kg, Bound::Min).is_err());
    }

    #[test]
    fn numbers_and_dates_compare_in_kind() {
        assert!(check(&json!(5), &json!(1), Bound::Min).unwrap().is_none());
        assert!(check(&json!(0.5), &json!(1), Bound::Min).unwrap().is_some());
        let limit = json!("2020-01-01");
        assert!(
            check(&json!("2019-12-31"), &limit, Bound::Min)
                .unwrap()
                .is_some()
        );
        assert!(check(&json!("2019-12-31T10:00:00Z"), &limit, Bound::Min).is_err());
        assert!(
            check(
                &json!("2020-01-01T10:00:00+10:00"),
                &json!("2020-01-01T01:00:00Z"),
                Bound::Max
            )
            .unwrap()
            .is_none()
        );
    }
}
