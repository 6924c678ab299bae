//! One write of one resource inside a transaction, shared by single writes, transaction and
//! batch entries: find the record (by id, or by an identifier: the clinic's record id, the MRN, or
//! any identifier another system gave it before), then create or update it at the expected
//! version, and keep the identifiers it came with.
//!
//! Races are settled by the database: a create inserts, and the unique keys (the primary key,
//! the MRN, `record_identifiers`) refuse the loser with `StoreError::Duplicate`; the caller rolls
//! back and runs the whole transaction again (`ATTEMPTS`), when the winner is found.

use serde_json::{Value, json};

use super::write::{self, Inbound, Writer};
use super::{ApiError, FhirState};
use crate::domain::{ExternalIdentifier, Mrn};
use crate::mapping;
use crate::store::{StoreError, Tx};

/// How often a write is tried when racing writers take its identifier (the first retry finds the
/// winner; more are for a crowd).
pub(super) const ATTEMPTS: usize = 4;

impl Target {
    /// Whether the record is found by an identifier (the body's id is then not the client's to set).
    pub(super) fn is_conditional(&self) -> bool {
        matches!(self, Self::IfNoneExist(..) | Self::Matching(..))
    }
}

/// How a write finds its record.
#[derive(Debug, Clone)]
pub(super) enum Target {
    /// `POST Type`: a new record with this (server-assigned) id.
    New(String),
    /// `PUT Type/id` in a Bundle: that record, created at that id if it does not exist.
    Id(String),
    /// `PUT Type/id`: that record, which must exist (404 otherwise).
    Existing(String),
    /// `POST` with `If-None-Exist`: the record the identifier names is returned unchanged, or a
    /// new one is created (at this id unless the identifier is the clinic's record id).
    IfNoneExist(ExternalIdentifier, String),
    /// `PUT Type?identifier=`: the record the identifier names is updated, or created.
    Matching(ExternalIdentifier, String),
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Done {
    Created,
    Updated,
    /// A conditional create found its record: nothing written.
    Found,
}

/// A write failed: at the API (answer it) or in the store (a `Duplicate` is worth a retry).
#[derive(Debug)]
pub(super) enum Failure {
    Api(ApiError),
    Store(StoreError),
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}
impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}
impl From<Failure> for ApiError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Api(e) => e,
            Failure::Store(StoreError::Duplicate {
                table: "record_identifiers",
                ..
            }) => ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "duplicate",
                "an identifier of this resource already identifies another record",
            ),
            Failure::Store(e) => e.into(),
        }
    }
}

impl Failure {
    /// Another writer got there first, and a retry will find what it wrote: a unique key refused
    /// a create, or (when the client named no version with If-Match) the version read changed.
    pub(super) fn is_race(&self, if_match: bool) -> bool {
        match self {
            Self::Store(StoreError::Duplicate { .. }) => true,
            Self::Store(StoreError::VersionConflict { .. }) => !if_match,
            _ => false,
        }
    }
}

/// `identifier=system|value` of a conditional write: the only condition supported.
pub(super) fn condition(pairs: &[(String, String)]) -> Result<ExternalIdentifier, ApiError> {
    if let Some((name, _)) = pairs.iter().find(|(k, _)| k != "identifier") {
        return Err(ApiError::bad_request(format!(
            "conditional writes support only identifier=system|value, not {name}"
        )));
    }
    let values: Vec<&str> = pairs.iter().map(|(_, v)| v.as_str()).collect();
    match values.as_slice() {
        [value] => match value.split_once('|') {
            Some((system, value)) if !system.is_empty() && !value.is_empty() => {
                Ok(ExternalIdentifier {
                    system: system.to_owned(),
                    value: value.to_owned(),
                })
            }
            _ => Err(ApiError::bad_request(
                "a conditional write names its identifier as system|value (both given)",
            )),
        },
        [] => Err(ApiError::bad_request(
            "a conditional write needs identifier=system|value",
        )),
        _ => Err(ApiError::bad_request(
            "a conditional write takes one identifier",
        )),
    }
}

/// The id of the record `identifier` names, if one exists (seen inside `tx`), and whether the
/// identifier is the clinic's own record id (then a new record takes that id).
async fn resolve(
    tx: &mut Tx,
    state: &FhirState,
    resource_type: &str,
    identifier: &ExternalIdentifier,
) -> Result<(Option<String>, Option<String>), Failure> {
    let record_system = state
        .mapping
        .system(super::filters::record_kind(resource_type));
    if identifier.system == record_system {
        let id = uuid::Uuid::parse_str(&identifier.value)
            .map_err(|_| {
                ApiError::bad_request("the identifier value must be a record id (a UUID)")
            })?
            .to_string();
        return Ok((None, Some(id)));
    }
    if resource_type == "Patient" && identifier.system == state.mapping.system("mrn") {
        let mrn = Mrn::parse(&identifier.value)
            .map_err(|_| ApiError::bad_request("the identifier value is not a valid MRN"))?;
        return Ok((tx.client_id_by_mrn(&mrn).await?, None));
    }
    let table = table_of(resource_type)?;
    Ok((tx.record_by_identifier(table, identifier).await?, None))
}

fn table_of(resource_type: &str) -> Result<&'static str, ApiError> {
    crate::assemble::tables(resource_type)
        .and_then(|t| t.first().copied())
        .ok_or_else(ApiError::internal)
}

/// Where a write goes: the record's id, the stored version found (None: it will be created),
/// and whether a conditional create found its record (then nothing is written).
#[derive(Debug, Clone)]
pub(super) struct Located {
    pub id: String,
    pub stored: Option<i64>,
    pub found: bool,
}

/// Finds where a write goes.
pub(super) async fn locate(
    tx: &mut Tx,
    state: &FhirState,
    writer: &Writer,
    resource_type: &str,
    resource: &Value,
    target: &Target,
) -> Result<Located, Failure> {
    let body_id = resource.get("id").and_then(Value::as_str);
    let (id, conditional_create) = match target {
        Target::New(id) | Target::Id(id) | Target::Existing(id) => (id.clone(), false),
        Target::IfNoneExist(identifier, new_id) | Target::Matching(identifier, new_id) => {
            let (found, record_id) = resolve(tx, state, resource_type, identifier).await?;
            let id = match (found, record_id) {
                (Some(found), _) => found,
                (None, Some(record_id)) => record_id,
                (None, None) => match (target, body_id) {
                    // A conditional update that creates keeps the body's id, as FHIR allows.
                    (Target::Matching(..), Some(body)) => uuid::Uuid::parse_str(body)
                        .map_err(|_| ApiError::bad_request("a new resource's id must be a UUID"))?
                        .to_string(),
                    _ => new_id.clone(),
                },
            };
            if let (Target::Matching(..), Some(body)) = (target, body_id)
                && body != id
            {
                return Err(ApiError::bad_request(
                    "the body's id is not the id of the resource this identifier names",
                )
                .into());
            }
            (id, matches!(target, Target::IfNoneExist(..)))
        }
    };
    let mut probe = resource.clone();
    probe["id"] = json!(id);
    let stored = write::mapped(state, writer, resource_type, &probe)?
        .stored_version(tx)
        .await?;
    if let (Target::Existing(_), None) = (target, stored) {
        return Err(ApiError::not_found(format!("{resource_type}/{id} is not known")).into());
    }
    Ok(Located {
        found: conditional_create && stored.is_some(),
        id,
        stored,
    })
}

/// What a write expects of the record it finds: the version the client named (`If-Match`), and
/// the identifier a conditional update named (a Patient's MRN must be it).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Expected<'a> {
    pub if_match: Option<i64>,
    pub condition: Option<&'a ExternalIdentifier>,
}

/// Writes `resource` (validated already, its references final) as the record `id`: updates it at
/// `if_match` or the version found, or creates it; then keeps its external identifiers.
pub(super) async fn write(
    tx: &mut Tx,
    state: &FhirState,
    writer: &Writer,
    resource_type: &str,
    resource: &Value,
    located: &Located,
    expected: Expected<'_>,
) -> Result<Done, Failure> {
    let (if_match, mrn_condition) = (expected.if_match, expected.condition);
    let (id, stored) = (located.id.as_str(), located.stored);
    let mut resource = resource.clone();
    resource["id"] = json!(id);
    let record = write::mapped(state, writer, resource_type, &resource)?;
    if let (Some(condition), Inbound::Client(client)) = (mrn_condition, &record)
        && condition.system == state.mapping.system("mrn")
        && client.mrn.as_str() != condition.value
    {
        return Err(
            ApiError::bad_request("the body's MRN differs from the identifier in the URL").into(),
        );
    }
    let done = match (stored, if_match) {
        (Some(version), expected) => {
            record.update(tx, expected.unwrap_or(version)).await?;
            Done::Updated
        }
        (None, Some(_)) => {
            return Err(ApiError::not_found(format!(
                "{resource_type}/{id} does not exist, so If-Match cannot hold"
            ))
            .into());
        }
        (None, None) => {
            record.insert(tx).await?;
            Done::Created
        }
    };
    let identifiers = mapping::external_identifiers(&state.mapping, &resource);
    let table = match record.table() {
        Some(table) => table,
        None => table_of(resource_type)?,
    };
    tx.set_identifiers(table, id, &identifiers).await?;
    Ok(done)
}
