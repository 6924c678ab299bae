//! FHIRPath values: items of a collection are either nodes of the resource (with their FHIR type
//! where known) or System values (Boolean, String, Integer, Decimal, Date, DateTime, Time,
//! Quantity).

use std::cmp::Ordering;

use rust_decimal::Decimal;
use serde_json::Value as Json;

use super::decimal;

/// A partial date, date-time or time: components down to the precision given, and the time-zone
/// offset in minutes where the text had one.
#[derive(Debug, Clone, PartialEq)]
pub struct Temporal {
    /// year, month, day, hour, minute, second, millisecond — as many as were given.
    pub parts: Vec<i64>,
    pub offset: Option<i64>,
    /// Whether the value is a time of day (parts start at the hour).
    pub time_only: bool,
}

impl Temporal {
    pub fn parse_date_time(text: &str) -> Option<Self> {
        let (date, time) = match text.split_once('T') {
            Some((d, t)) => (d, Some(t)),
            None => (text, None),
        };
        let mut parts = Vec::new();
        for (i, piece) in date.split('-').enumerate() {
            let expected = if i == 0 { 4 } else { 2 };
            if piece.len() != expected || !piece.chars().all(|c| c.is_ascii_digit()) || i > 2 {
                return None;
            }
            parts.push(piece.parse().ok()?);
        }
        let mut offset = None;
        if let Some(time) = time
            && !time.is_empty()
        {
            let (clock, zone) = split_zone(time)?;
            offset = zone;
            if parts.len() != 3 {
                return None;
            }
            parts.extend(parse_clock(clock)?);
        }
        Some(Self {
            parts,
            offset,
            time_only: false,
        })
    }

    pub fn parse_time(text: &str) -> Option<Self> {
        let (clock, zone) = split_zone(text)?;
        if zone.is_some() {
            return None;
        }
        Some(Self {
            parts: parse_clock(clock)?,
            offset: None,
            time_only: true,
        })
    }

    pub fn is_date_only(&self) -> bool {
        !self.time_only && self.parts.len() <= 3
    }

    /// Components in UTC where an offset is known (for comparing instants).
    fn normalized(&self) -> Vec<i64> {
        let Some(offset) = self.offset else {
            return self.parts.clone();
        };
        if self.parts.len() < 5 {
            return self.parts.clone();
        }
        let date = chrono::NaiveDate::from_ymd_opt(
            self.parts[0] as i32,
            self.parts[1] as u32,
            self.parts[2] as u32,
        );
        let Some(date) = date else {
            return self.parts.clone();
        };
        let Some(time) =
            chrono::NaiveTime::from_hms_opt(self.parts[3] as u32, self.parts[4] as u32, 0)
        else {
            return self.parts.clone();
        };
        let utc = date.and_time(time) - chrono::Duration::minutes(offset);
        use chrono::{Datelike, Timelike};
        let mut out = vec![
            i64::from(utc.year()),
            i64::from(utc.month()),
            i64::from(utc.day()),
            i64::from(utc.hour()),
            i64::from(utc.minute()),
        ];
        out.extend_from_slice(&self.parts[5..]);
        out
    }

    /// Ordering where the precisions allow it; None when the answer depends on missing parts.
    pub fn compare(&self, other: &Self) -> Option<Ordering> {
        let (a, b) = (self.normalized(), other.normalized());
        // With hours given, a time-zone offset on one side only leaves the order open.
        let has_hours = |t: &Temporal| t.time_only || t.parts.len() > 3;
        if has_hours(self) && has_hours(other) && self.offset.is_some() != other.offset.is_some() {
            return None;
        }
        // Seconds and milliseconds count as one precision.
        let seconds_and_millis = if self.time_only { 4 } else { 7 };
        let precision = |p: &Vec<i64>| {
            if p.len() == seconds_and_millis {
                p.len() - 1
            } else {
                p.len()
            }
        };
        for i in 0..a.len().min(b.len()) {
            if a[i] != b[i] {
                return Some(a[i].cmp(&b[i]));
            }
        }
        if precision(&a) == precision(&b) {
            let at = seconds_and_millis - 1;
            let (ma, mb) = (
                a.get(at).copied().unwrap_or(0),
                b.get(at).copied().unwrap_or(0),
            );
            Some(ma.cmp(&mb))
        } else {
            None
        }
    }
}

fn split_zone(text: &str) -> Option<(&str, Option<i64>)> {
    if let Some(clock) = text.strip_suffix('Z') {
        return Some((clock, Some(0)));
    }
    if let Some(at) = text.rfind(['+', '-']) {
        let (clock, zone) = text.split_at(at);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        // `+hh:mm`, two digits each (as the grammar says): any other length is no offset, and
        // cannot overflow.
        let (h, m) = zone[1..].split_once(':')?;
        // Two digits each (as FHIR writes them): a longer run could overflow the minutes.
        let two_digits = |t: &str| t.len() == 2 && t.bytes().all(|b| b.is_ascii_digit());
        if !two_digits(h) || !two_digits(m) {
            return None;
        }
        return Some((
            clock,
            Some(sign * (h.parse::<i64>().ok()? * 60 + m.parse::<i64>().ok()?)),
        ));
    }
    Some((text, None))
}

fn parse_clock(text: &str) -> Option<Vec<i64>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    let mut parts = Vec::new();
    for (i, piece) in text.split(':').enumerate() {
        // hour, minute, second: a fourth component is no time (and no eighth date part).
        if i > 2 {
            return None;
        }
        if i < 2 {
            if piece.len() != 2 || !piece.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            parts.push(piece.parse().ok()?);
        } else {
            let (s, ms) = match piece.split_once('.') {
                Some((s, ms)) => (s, Some(ms)),
                None => (piece, None),
            };
            if s.len() != 2 || !s.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            parts.push(s.parse().ok()?);
            if let Some(ms) = ms {
                if ms.is_empty() || !ms.chars().all(|c| c.is_ascii_digit()) {
                    return None;
                }
                let padded: String = ms.chars().chain(std::iter::repeat('0')).take(3).collect();
                parts.push(padded.parse().ok()?);
            }
        }
    }
    Some(parts)
}

#[derive(Debug, Clone)]
pub enum Item<'a> {
    /// A node of the input, with its FHIR type name where known (`Quantity`, `Patient`, `string`).
    Node(&'a Json, Option<&'a str>),
    /// A primitive node with its `_name` sibling, which holds its `id` and `extension`
    /// (`birthDate` with `_birthDate`); the value is JSON null where only extensions were given.
    Extended(&'a Json, &'a Json, Option<&'a str>),
    Boolean(bool),
    String(String),
    Integer(i64),
    /// A decimal with its digits as written (`1.50` keeps two).
    Decimal(Decimal),
    Date(Temporal),
    DateTime(Temporal),
    Time(Temporal),
    Quantity(Decimal, String),
    /// What `type()` returns: a namespace (`System`, `FHIR`) and a type name.
    TypeInfo(&'static str, String),
}

/// A FHIRPath collection.
pub type Value<'a> = Vec<Item<'a>>;

const DATE_TYPES: &[&str] = &["date"];
const DATE_TIME_TYPES: &[&str] = &["dateTime", "instant"];

impl<'a> Item<'a> {
    /// The System value of a primitive node (a JSON string, number or boolean), or the item itself.
    pub fn primitive(&self) -> Item<'a> {
        match self {
            Item::Extended(value, _, ty) => Item::Node(value, *ty).primitive(),
            Item::Node(Json::Bool(b), _) => Item::Boolean(*b),
            Item::Node(Json::Number(n), ty) => match (n.as_i64(), *ty) {
                (Some(i), ty) if ty != Some("decimal") => Item::Integer(i),
                // Beyond a decimal's 28 digits the node stays a node: it compares with nothing.
                _ => decimal::from_json(n).map_or_else(|| self.clone(), Item::Decimal),
            },
            Item::Node(Json::String(s), ty) => match *ty {
                Some(t) if DATE_TYPES.contains(&t) => Temporal::parse_date_time(s)
                    .map(Item::Date)
                    .unwrap_or(Item::String(s.clone())),
                Some(t) if DATE_TIME_TYPES.contains(&t) => Temporal::parse_date_time(s)
                    .map(Item::DateTime)
                    .unwrap_or(Item::String(s.clone())),
                Some("time") => Temporal::parse_time(s)
                    .map(Item::Time)
                    .unwrap_or(Item::String(s.clone())),
                _ => Item::String(s.clone()),
            },
            Item::Node(node @ Json::Object(map), ty)
                if ty.as_deref() == Some("Quantity")
                    || (map.contains_key("value")
                        && (map.contains_key("code") || map.contains_key("unit"))) =>
            {
                let value = match node.get("value") {
                    Some(Json::Number(n)) => decimal::from_json(n),
                    _ => None,
                };
                let unit = node
                    .get("code")
                    .or_else(|| node.get("unit"))
                    .and_then(Json::as_str)
                    .unwrap_or("1");
                match value {
                    Some(v) => Item::Quantity(v, unit.to_owned()),
                    None => self.clone(),
                }
            }
            other => other.clone(),
        }
    }

    pub fn as_string(&self) -> Option<String> {
        match self.primitive() {
            Item::String(s) => Some(s),
            _ => None,
        }
    }

    /// The FHIRPath type name of this item (System or FHIR namespace).
    pub fn type_name(&self) -> (&'static str, String) {
        match self {
            Item::Extended(value, _, ty) => Item::Node(value, *ty).type_name(),
            Item::Node(node, ty) => {
                let name = ty.or_else(|| node.get("resourceType").and_then(Json::as_str));
                let name = name.unwrap_or(match node {
                    Json::Bool(_) => "boolean",
                    Json::Number(n) if n.is_i64() => "integer",
                    Json::Number(_) => "decimal",
                    Json::String(_) => "string",
                    _ => "Element",
                });
                // A model may type a node as a System value (`Element.id` is a `System.String`).
                if let Some(system) = name.strip_prefix("System.") {
                    return ("System", system.to_owned());
                }
                // A backbone element is typed by its path (`Patient.contact`) to find its children.
                let name = if name.contains('.') {
                    "BackboneElement"
                } else {
                    name
                };
                ("FHIR", name.to_owned())
            }
            Item::Boolean(_) => ("System", "Boolean".into()),
            Item::String(_) => ("System", "String".into()),
            Item::Integer(_) => ("System", "Integer".into()),
            Item::Decimal(_) => ("System", "Decimal".into()),
            Item::Date(_) => ("System", "Date".into()),
            Item::DateTime(_) => ("System", "DateTime".into()),
            Item::Time(_) => ("System", "Time".into()),
            Item::Quantity(..) => ("System", "Quantity".into()),
            Item::TypeInfo(..) => ("System", "SimpleTypeInfo".into()),
        }
    }
}

/// Calendar duration units and their UCUM equivalents, for comparing quantities.
pub fn canonical_unit(unit: &str) -> &str {
    match unit {
        "year" | "years" => "a",
        "month" | "months" => "mo",
        "week" | "weeks" => "wk",
        "day" | "days" => "d",
        "hour" | "hours" => "h",
        "minute" | "minutes" => "min",
        "second" | "seconds" => "s",
        "millisecond" | "milliseconds" => "ms",
        other => other,
    }
}

/// Converts a value in `unit` to a base unit where a simple factor is known (mass, length, time):
/// exact, so `4040 'mg'` is `4.040 'g'`.
pub fn to_base(value: Decimal, unit: &str) -> Option<(Decimal, String)> {
    let factor = |u: &str| -> Option<(Decimal, &'static str)> {
        let power_of_ten = |exponent: u32| Decimal::new(1, exponent);
        Some(match u {
            "g" => (Decimal::ONE, "g"),
            "mg" => (power_of_ten(3), "g"),
            "kg" => (Decimal::ONE_THOUSAND, "g"),
            "ug" => (power_of_ten(6), "g"),
            "m" => (Decimal::ONE, "m"),
            "cm" => (power_of_ten(2), "m"),
            "mm" => (power_of_ten(3), "m"),
            "km" => (Decimal::ONE_THOUSAND, "m"),
            "s" => (Decimal::ONE, "s"),
            "ms" => (power_of_ten(3), "s"),
            "min" => (Decimal::from(60), "s"),
            "h" => (Decimal::from(3600), "s"),
            "d" => (Decimal::from(86400), "s"),
            "wk" => (Decimal::from(604800), "s"),
            _ => return None,
        })
    };
    let unit = canonical_unit(unit);
    Some(match factor(unit) {
        Some((f, base)) => (value.checked_mul(f)?, base.to_owned()),
        None => (value, unit.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_times_and_offsets_are_no_values() {
        // Found by tests/fuzz.rs: a fourth clock component made an eighth date-time part, which
        // date arithmetic sliced out of a 7-part array; a long offset overflowed hours * 60.
        assert_eq!(
            Temporal::parse_date_time("1973-12-25T00:00:00.00010:00"),
            None
        );
        assert_eq!(Temporal::parse_time("10:00:00:00"), None);
        assert_eq!(
            Temporal::parse_date_time("1973-12-25T00:00:00.000+1234567890987654321:00"),
            None
        );
        assert_eq!(Temporal::parse_date_time("1973-12-25T00:00+1:00"), None);
        let t = Temporal::parse_date_time("1973-12-25T00:00:00.000+10:30").unwrap();
        assert_eq!((t.parts.len(), t.offset), (7, Some(630)));
    }
}
