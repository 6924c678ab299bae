//! The spreadsheet layout (version 1, `docs/import.md`): `clients.csv`, `support_contacts.csv`
//! and `enrollments.csv`, for clinics whose old system exports spreadsheets. A header row names
//! the columns (in any order); a row refers to its client by MRN, to a program by its code and
//! to a clinician by NPI. Codes are the clinic's storage codes (`mother`, `on_hold`,
//! `intensive_outpatient`, ...). A row is found by its natural key — a client by MRN, a contact
//! by client, name and relationship, an enrollment by client, program and admission day — in the
//! database or earlier in the import, so a second import of the same file finds its records. New
//! records get new ids (never ids computed from the key: those would let anyone who guesses a name
//! or an MRN confirm it from an id).

use std::collections::HashMap;
use std::path::Path;

use chrono::NaiveDate;

use super::rows::Row;
use super::{ImportError, Rejected};
use crate::domain::*;
use crate::store::{Record, Store, StoreError};

/// The files, in the order they are imported.
pub const FILES: &[&str] = &["clients.csv", "support_contacts.csv", "enrollments.csv"];

/// A support contact's natural key: the client, the name and the relationship.
type ContactKey = (Id<Client>, String, String, &'static str);
/// An enrollment's natural key: the client, the program and the admission day.
type EnrollmentKey = (Id<Client>, Id<Program>, NaiveDate);

fn contact_key(contact: &SupportContact) -> ContactKey {
    (
        contact.client_id,
        contact.name.given.as_str().to_owned(),
        contact.name.family.as_str().to_owned(),
        contact.relationship.code(),
    )
}

fn enrollment_key(enrollment: &Enrollment) -> EnrollmentKey {
    (
        enrollment.client_id,
        enrollment.program_id,
        enrollment.admitted_on,
    )
}

/// Every record of `R`, a page at a time.
async fn each<R: Record>(store: &Store, mut f: impl FnMut(R)) -> Result<(), StoreError> {
    let mut after = None;
    loop {
        let page = store.page::<R>(after, 5_000).await?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = Some(last.record.id());
        for stored in page {
            f(stored.record);
        }
    }
}

/// A file's rows read: each with its line, as rows or the reason it cannot be.
pub struct Table {
    pub rows: Vec<(usize, Result<Row, String>)>,
}

/// The columns of each file, required ones first (`*` marks them in the docs).
fn columns(file: &str) -> (&'static [&'static str], &'static [&'static str]) {
    match file {
        "clients.csv" => (
            &["mrn", "given", "family", "birth_date", "gender"],
            &[
                "phone",
                "email",
                "address_line",
                "city",
                "state",
                "postal_code",
                "language",
            ],
        ),
        "support_contacts.csv" => (
            &[
                "client_mrn",
                "given",
                "family",
                "relationship",
                "roles",
                "since",
            ],
            &["relationship_text", "phone", "email", "until"],
        ),
        _ => (
            &[
                "client_mrn",
                "program_code",
                "admitted_on",
                "status",
                "level_of_care",
                "primary_clinician_npi",
            ],
            &["discharged_on", "discharge_disposition"],
        ),
    }
}

/// What rows look up in the database (and in the rows before them): clients by MRN, programs by
/// code, staff by NPI, contacts and enrollments by their natural keys.
#[derive(Default)]
pub struct Lookups {
    clients: HashMap<String, Id<Client>>,
    programs: HashMap<String, Id<Program>>,
    staff: HashMap<String, Id<Staff>>,
    contacts: HashMap<ContactKey, Id<SupportContact>>,
    enrollments: HashMap<EnrollmentKey, Id<Enrollment>>,
}

impl Lookups {
    pub async fn load(store: &Store) -> Result<Self, StoreError> {
        let mut lookups = Self::default();
        each::<Client>(store, |c| {
            lookups.clients.insert(c.mrn.as_str().to_owned(), c.id);
        })
        .await?;
        each::<Program>(store, |p| {
            lookups.programs.insert(p.code.as_str().to_owned(), p.id);
        })
        .await?;
        each::<Staff>(store, |s| {
            if let Some(npi) = &s.npi {
                lookups.staff.insert(npi.as_str().to_owned(), s.id);
            }
        })
        .await?;
        each::<SupportContact>(store, |c| {
            lookups.contacts.insert(contact_key(&c), c.id);
        })
        .await?;
        each::<Enrollment>(store, |e| {
            lookups.enrollments.insert(enrollment_key(&e), e.id);
        })
        .await?;
        Ok(lookups)
    }

    /// A record this import writes, found by its key in the rows after it.
    fn learn(&mut self, row: &Row) {
        match row {
            Row::Client(c) => {
                self.clients
                    .entry(c.mrn.as_str().to_owned())
                    .or_insert(c.id);
            }
            Row::Contact(c) => {
                self.contacts.entry(contact_key(c)).or_insert(c.id);
            }
            Row::Enrollment(e) => {
                self.enrollments.entry(enrollment_key(e)).or_insert(e.id);
            }
            _ => {}
        }
    }
}

/// Reads `dir/file`: the header checked (a missing required column or an unknown one refuses
/// the file), then each row mapped.
pub fn read(dir: &Path, file: &str, lookups: &mut Lookups) -> Result<Table, ImportError> {
    let path = dir.join(file);
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(&path)
        .map_err(|e| ImportError::Layout(format!("{file}: {e}")))?;
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| ImportError::Layout(format!("{file}: {e}")))?
        .iter()
        .map(str::to_owned)
        .collect();
    let (required, optional) = columns(file);
    if let Some(missing) = required.iter().find(|c| !header.iter().any(|h| h == *c)) {
        return Err(ImportError::Layout(format!(
            "{file}: the column {missing} is required (columns: {}; optional: {})",
            required.join(", "),
            optional.join(", ")
        )));
    }
    if let Some(unknown) = header
        .iter()
        .find(|h| !required.contains(&h.as_str()) && !optional.contains(&h.as_str()))
    {
        return Err(ImportError::Layout(format!(
            "{file}: {unknown} is not a column of this file (columns: {}, {})",
            required.join(", "),
            optional.join(", ")
        )));
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let (line, row) = match record {
            Ok(record) => {
                let line = record.position().map_or(0, |p| p.line() as usize);
                let cells: HashMap<&str, &str> = header
                    .iter()
                    .map(String::as_str)
                    .zip(record.iter())
                    .filter(|(_, v)| !v.is_empty())
                    .collect();
                let cell = Cells { cells: &cells };
                let row = match file {
                    "clients.csv" => client(&cell, lookups).map(Row::Client),
                    "support_contacts.csv" => contact(&cell, lookups).map(Row::Contact),
                    _ => enrollment(&cell, lookups).map(Row::Enrollment),
                };
                if let Ok(row) = &row {
                    lookups.learn(row);
                }
                (line, row)
            }
            Err(e) => (
                e.position().map_or(0, |p| p.line() as usize),
                Err(format!("not a CSV row: {e}")),
            ),
        };
        rows.push((line, row));
    }
    Ok(Table { rows })
}

struct Cells<'a> {
    cells: &'a HashMap<&'a str, &'a str>,
}

impl Cells<'_> {
    fn get(&self, column: &str) -> Option<&str> {
        self.cells.get(column).copied()
    }
    fn required(&self, column: &str) -> Result<&str, String> {
        self.get(column)
            .ok_or_else(|| format!("column {column}: empty"))
    }
    fn parsed<T>(
        &self,
        column: &str,
        parse: impl FnOnce(&str) -> Result<T, DomainError>,
    ) -> Result<T, String> {
        parse(self.required(column)?).map_err(|e| format!("column {column}: {e}"))
    }
    fn optional<T>(
        &self,
        column: &str,
        parse: impl FnOnce(&str) -> Result<T, DomainError>,
    ) -> Result<Option<T>, String> {
        self.get(column)
            .map(|v| parse(v).map_err(|e| format!("column {column}: {e}")))
            .transpose()
    }
    fn date(&self, column: &str) -> Result<NaiveDate, String> {
        let value = self.required(column)?;
        NaiveDate::parse_from_str(value, "%Y-%m-%d")
            .map_err(|_| format!("column {column}: not a date (YYYY-MM-DD)"))
    }
    fn optional_date(&self, column: &str) -> Result<Option<NaiveDate>, String> {
        self.get(column).map(|_| self.date(column)).transpose()
    }
    fn code<T: std::str::FromStr>(&self, column: &str) -> Result<T, String> {
        let value = self.required(column)?;
        value
            .parse()
            .map_err(|_| format!("column {column}: not one of its codes (docs/import.md)"))
    }
}

fn client(cell: &Cells<'_>, lookups: &Lookups) -> Result<Client, String> {
    let mrn = cell.parsed("mrn", Mrn::parse)?;
    // A client the database holds is that client (found as present, left as it is).
    let id = lookups
        .clients
        .get(mrn.as_str())
        .copied()
        .unwrap_or_else(Id::generate);
    let address = match (
        cell.get("address_line"),
        cell.get("city"),
        cell.get("state"),
        cell.get("postal_code"),
    ) {
        (None, None, None, None) => None,
        (Some(line), Some(city), Some(state), Some(zip)) => {
            Some(Address::parse(line, city, state, zip).map_err(|e| format!("address: {e}"))?)
        }
        _ => {
            return Err(
                "address: give all of address_line, city, state, postal_code, or none".into(),
            );
        }
    };
    Ok(Client {
        id,
        name: PersonName::parse(cell.required("given")?, cell.required("family")?)
            .map_err(|e| format!("name: {e}"))?,
        mrn,
        birth_date: cell.date("birth_date")?,
        gender: cell.code("gender")?,
        phone: cell.optional("phone", Phone::parse)?,
        email: cell.optional("email", Email::parse)?,
        address,
        language: cell.optional("language", LanguageTag::parse)?,
    })
}

fn client_of(cell: &Cells<'_>, lookups: &Lookups) -> Result<Id<Client>, String> {
    let mrn = cell.required("client_mrn")?;
    lookups.clients.get(mrn).copied().ok_or_else(|| {
        "column client_mrn: no client has this MRN (in the database or clients.csv)".to_owned()
    })
}

fn contact(cell: &Cells<'_>, lookups: &Lookups) -> Result<SupportContact, String> {
    let client_id = client_of(cell, lookups)?;
    let roles = cell.required("roles")?;
    let role = |name: &str| roles.split(';').any(|r| r.trim() == name);
    if let Some(unknown) = roles
        .split(';')
        .map(str::trim)
        .find(|r| !["family_therapy", "emergency_contact", "support_person"].contains(r))
    {
        return Err(format!(
            "column roles: {unknown} is not family_therapy, emergency_contact or support_person"
        ));
    }
    let name = PersonName::parse(cell.required("given")?, cell.required("family")?)
        .map_err(|e| format!("name: {e}"))?;
    let relationship: Relationship = cell.code("relationship")?;
    let mut contact = SupportContact {
        id: Id::generate(),
        client_id,
        name,
        relationship,
        relationship_text: cell.optional("relationship_text", NonEmptyText::parse)?,
        roles: SupportRoles::new(
            role("family_therapy"),
            role("emergency_contact"),
            role("support_person"),
        )
        .map_err(|e| format!("column roles: {e}"))?,
        phone: cell.optional("phone", Phone::parse)?,
        email: cell.optional("email", Email::parse)?,
        active: DateRange::new(cell.date("since")?, cell.optional_date("until")?)
            .map_err(|e| format!("columns since, until: {e}"))?,
    };
    contact.check().map_err(|e| e.to_string())?;
    if let Some(id) = lookups.contacts.get(&contact_key(&contact)) {
        contact.id = *id;
    }
    Ok(contact)
}

fn enrollment(cell: &Cells<'_>, lookups: &Lookups) -> Result<Enrollment, String> {
    let client_id = client_of(cell, lookups)?;
    let code = cell.required("program_code")?;
    let program_id = lookups
        .programs
        .get(code)
        .copied()
        .ok_or_else(|| "column program_code: no program has this code".to_owned())?;
    let npi = cell.required("primary_clinician_npi")?;
    let clinician =
        lookups.staff.get(npi).copied().ok_or_else(|| {
            "column primary_clinician_npi: no staff member has this NPI".to_owned()
        })?;
    let admitted_on = cell.date("admitted_on")?;
    let disposition: Option<DischargeDisposition> = cell
        .get("discharge_disposition")
        .map(|_| cell.code("discharge_disposition"))
        .transpose()?;
    let state = EnrollmentState::from_parts(
        cell.required("status")?,
        cell.optional_date("discharged_on")?,
        disposition,
    )
    .map_err(|e| format!("columns status, discharged_on, discharge_disposition: {e}"))?;
    let mut enrollment = Enrollment {
        id: Id::generate(),
        client_id,
        program_id,
        referral_id: None,
        referral_source_id: None,
        admitted_on,
        state,
        level_of_care: cell.code("level_of_care")?,
        primary_clinician_id: clinician,
    };
    enrollment.check().map_err(|e| e.to_string())?;
    if let Some(id) = lookups.enrollments.get(&enrollment_key(&enrollment)) {
        enrollment.id = *id;
    }
    Ok(enrollment)
}

/// Rows of `table`, split into what can be written and what was refused.
pub fn split(table: Table) -> (Vec<(usize, Row)>, Vec<Rejected>) {
    let mut rows = Vec::new();
    let mut rejected = Vec::new();
    for (line, row) in table.rows {
        match row {
            Ok(row) => rows.push((line, row)),
            Err(reason) => rejected.push(Rejected { line, reason }),
        }
    }
    (rows, rejected)
}
