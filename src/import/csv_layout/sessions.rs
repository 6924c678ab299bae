//! Rows of `sessions.csv`: a session of the client's enrollment open on its day, with its
//! attendance and, for family sessions, the support contacts who took part.

use super::lookups::Lookups;
use super::{Cells, client_of, contact_named, enrollment_on, staff_of};
use crate::domain::*;
use crate::import::rows::Row;

pub fn session(cell: &Cells<'_>, lookups: &Lookups) -> Result<Row, String> {
    let client = client_of(cell, lookups)?;
    let start: Timestamp = cell
        .required("start")?
        .parse()
        .map_err(|_| "column start: not a time (RFC 3339, 2026-10-05T15:00:00Z)".to_owned())?;
    let enrollment_id = enrollment_on(cell, client, start.as_datetime().date_naive(), lookups)?;
    let group_id = match cell.get("group") {
        None => None,
        Some(name) => match lookups.groups.get(name).map(Vec::as_slice) {
            Some([one]) => Some(*one),
            Some([_, _, ..]) => {
                return Err("column group: two therapy groups have this name".into());
            }
            _ => return Err("column group: no therapy group has this name".into()),
        },
    };
    let contacts = cell
        .get("contacts")
        .into_iter()
        .flat_map(|names| names.split(';'))
        .map(|name| contact_named(client, name, "contacts", lookups))
        .collect::<Result<Vec<_>, _>>()?;
    let minutes: i64 = cell.number("minutes")?;
    let session = Session {
        id: lookups
            .sessions
            .get(&(enrollment_id, start))
            .copied()
            .unwrap_or_else(Id::generate),
        enrollment_id,
        session_type: cell.code("session_type")?,
        modality: cell.optional_code("modality")?,
        delivery: cell.code("delivery")?,
        scheduled_start: start,
        length: SessionLength::minutes(minutes).map_err(|e| format!("column minutes: {e}"))?,
        clinician_id: staff_of(cell, "clinician_npi", lookups)?,
        attendance: cell.code("attendance")?,
        group_id,
    };
    session
        .check()
        .map_err(|e| format!("columns session_type, group: {e}"))?;
    Ok(Row::Session(session, contacts))
}
