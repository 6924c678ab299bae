//! Small helpers for reading incoming FHIR JSON with FHIRPath locations in errors.

use std::str::FromStr;

use serde_json::Value;

use super::MappingError;
use crate::domain::DomainError;

pub fn missing(path: impl Into<String>) -> MappingError {
    MappingError::Missing { path: path.into() }
}

pub fn invalid(path: impl Into<String>, reason: impl ToString) -> MappingError {
    MappingError::Invalid {
        path: path.into(),
        reason: reason.to_string(),
    }
}

pub fn opt_str<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

pub fn req_str<'a>(value: &'a Value, key: &str, path: &str) -> Result<&'a str, MappingError> {
    opt_str(value, key).ok_or_else(|| missing(format!("{path}.{key}")))
}

/// Parses with a domain constructor, reporting its refusal at `path`.
pub fn domain<T>(path: &str, result: Result<T, DomainError>) -> Result<T, MappingError> {
    result.map_err(|e| invalid(path, e))
}

pub fn parse<T: FromStr>(path: &str, text: &str) -> Result<T, MappingError>
where
    T::Err: std::fmt::Display,
{
    text.parse::<T>().map_err(|e| invalid(path, e))
}

pub fn date(path: &str, text: &str) -> Result<chrono::NaiveDate, MappingError> {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| invalid(path, "not a full date (YYYY-MM-DD)"))
}

pub fn array<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The `Type/id` reference's id, checked to be of `expected` type.
pub fn reference_id<T>(
    value: &Value,
    path: &str,
    expected: &str,
) -> Result<crate::domain::Id<T>, MappingError> {
    let reference = req_str(value, "reference", path)?;
    let (kind, id) = reference
        .split_once('/')
        .ok_or_else(|| invalid(format!("{path}.reference"), "not Type/id"))?;
    if kind != expected {
        return Err(invalid(
            format!("{path}.reference"),
            format!("must refer to a {expected}"),
        ));
    }
    parse(&format!("{path}.reference"), id)
}

/// The first coding of `concept` in `system`.
pub fn code_in<'a>(concept: &'a Value, system: &str) -> Option<&'a str> {
    array(concept, "coding")
        .iter()
        .find(|c| opt_str(c, "system") == Some(system))
        .and_then(|c| opt_str(c, "code"))
}

/// The id of a resource: its `id`, which must be a clinic record id (a UUID).
pub fn resource_id<T>(
    resource: &Value,
    resource_type: &str,
) -> Result<crate::domain::Id<T>, MappingError> {
    let id = req_str(resource, "id", resource_type)?;
    parse(&format!("{resource_type}.id"), id)
}

pub fn expect_type(resource: &Value, resource_type: &str) -> Result<(), MappingError> {
    match opt_str(resource, "resourceType") {
        Some(t) if t == resource_type => Ok(()),
        _ => Err(invalid("resourceType", format!("expected {resource_type}"))),
    }
}
