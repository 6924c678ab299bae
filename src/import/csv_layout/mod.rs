//! The spreadsheet layout (version 1, `docs/import.md`): one CSV file per record kind, for
//! clinics whose old system exports spreadsheets. A header row names the columns (in any order);
//! a row refers to its client by MRN, to a program by its code, to staff and organizations by
//! NPI, to a treatment plan by its client and first day, to a support contact by name. Codes are
//! the clinic's storage codes (`mother`, `on_hold`, `intensive_outpatient`, ...). A row is found
//! by its natural key (`lookups.rs`) in the database or earlier in the import, so a second import
//! of the same file finds its records. New records get new ids (never ids computed from the key:
//! those would let anyone who guesses a name or an MRN confirm it from an id).

mod lookups;
mod people;
mod plans;
mod sessions;

use std::collections::HashMap;
use std::path::Path;

use chrono::NaiveDate;

use super::rows::Row;
use super::{ImportError, Rejected};
use crate::domain::*;

pub use lookups::Lookups;

/// One file of the layout: its name, its required and optional columns, and how a row becomes
/// clinic rows.
struct Layout {
    file: &'static str,
    required: &'static [&'static str],
    optional: &'static [&'static str],
    row: fn(&Cells<'_>, &Lookups) -> Result<Row, String>,
}

/// The files, in the order they are imported (later ones refer to earlier ones).
const LAYOUTS: &[Layout] = &[
    Layout {
        file: "clients.csv",
        required: &["mrn", "given", "family", "birth_date", "gender"],
        optional: &[
            "phone",
            "email",
            "address_line",
            "city",
            "state",
            "postal_code",
            "language",
        ],
        row: people::client,
    },
    Layout {
        file: "support_contacts.csv",
        required: &[
            "client_mrn",
            "given",
            "family",
            "relationship",
            "roles",
            "since",
        ],
        optional: &["relationship_text", "phone", "email", "until"],
        row: people::contact,
    },
    Layout {
        file: "enrollments.csv",
        required: &[
            "client_mrn",
            "program_code",
            "admitted_on",
            "status",
            "level_of_care",
            "primary_clinician_npi",
        ],
        optional: &["discharged_on", "discharge_disposition"],
        row: people::enrollment,
    },
    Layout {
        file: "consents.csv",
        required: &[
            "client_mrn",
            "kind",
            "scope",
            "purpose",
            "signed_on",
            "valid_from",
        ],
        optional: &[
            "valid_until",
            "revoked_on",
            "recipient_organization_npi",
            "recipient_clinician_npi",
            "recipient_contact",
        ],
        row: people::consent,
    },
    Layout {
        file: "treatment_plans.csv",
        required: &["client_mrn", "starts_on", "status", "author_npi"],
        optional: &[
            "ends_on",
            "review_interval_days",
            "next_review_on",
            "program_code",
        ],
        row: plans::treatment_plan,
    },
    Layout {
        file: "interventions.csv",
        required: &[
            "client_mrn",
            "plan_starts_on",
            "modality",
            "sessions_per_week",
            "minutes_per_session",
        ],
        optional: &["staff_npi"],
        row: plans::intervention,
    },
    Layout {
        file: "goals.csv",
        required: &["client_mrn", "plan_starts_on", "description", "status"],
        optional: &["target_on", "achievement"],
        row: plans::goal,
    },
    Layout {
        file: "plan_reviews.csv",
        required: &[
            "client_mrn",
            "plan_starts_on",
            "reviewed_on",
            "reviewer_npi",
            "summary",
        ],
        optional: &[],
        row: plans::review,
    },
    Layout {
        file: "goal_progress.csv",
        required: &[
            "client_mrn",
            "plan_starts_on",
            "goal",
            "reviewed_on",
            "note",
        ],
        optional: &[],
        row: plans::progress_note,
    },
    Layout {
        file: "relapse_plan_items.csv",
        required: &["client_mrn", "plan_starts_on", "kind"],
        optional: &["text", "contact"],
        row: plans::relapse_item,
    },
    Layout {
        file: "sessions.csv",
        required: &[
            "client_mrn",
            "start",
            "session_type",
            "delivery",
            "minutes",
            "clinician_npi",
            "attendance",
        ],
        optional: &["modality", "group", "program_code", "contacts"],
        row: sessions::session,
    },
];

/// The files, in the order they are imported.
pub fn files() -> impl Iterator<Item = &'static str> {
    LAYOUTS.iter().map(|l| l.file)
}

pub fn is_file(name: &str) -> bool {
    files().any(|f| f == name)
}

/// A file's rows read: each with its line, as rows or the reason it cannot be.
pub struct Table {
    pub rows: Vec<(usize, Result<Row, String>)>,
}

/// Reads `dir/file`: the header checked (a missing required column or an unknown one refuses
/// the file), then each row mapped.
pub fn read(dir: &Path, file: &str, lookups: &mut Lookups) -> Result<Table, ImportError> {
    let layout = LAYOUTS
        .iter()
        .find(|l| l.file == file)
        .ok_or_else(|| ImportError::Layout(format!("{file} is not a file of the layout")))?;
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
    let (required, optional) = (layout.required, layout.optional);
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
                let row = (layout.row)(&Cells { cells: &cells }, lookups);
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

pub struct Cells<'a> {
    cells: &'a HashMap<&'a str, &'a str>,
}

impl Cells<'_> {
    pub fn get(&self, column: &str) -> Option<&str> {
        self.cells.get(column).copied()
    }
    pub fn required(&self, column: &str) -> Result<&str, String> {
        self.get(column)
            .ok_or_else(|| format!("column {column}: empty"))
    }
    pub fn parsed<T>(
        &self,
        column: &str,
        parse: impl FnOnce(&str) -> Result<T, DomainError>,
    ) -> Result<T, String> {
        parse(self.required(column)?).map_err(|e| format!("column {column}: {e}"))
    }
    pub fn optional<T>(
        &self,
        column: &str,
        parse: impl FnOnce(&str) -> Result<T, DomainError>,
    ) -> Result<Option<T>, String> {
        self.get(column)
            .map(|v| parse(v).map_err(|e| format!("column {column}: {e}")))
            .transpose()
    }
    pub fn date(&self, column: &str) -> Result<NaiveDate, String> {
        let value = self.required(column)?;
        NaiveDate::parse_from_str(value, "%Y-%m-%d")
            .map_err(|_| format!("column {column}: not a date (YYYY-MM-DD)"))
    }
    pub fn optional_date(&self, column: &str) -> Result<Option<NaiveDate>, String> {
        self.get(column).map(|_| self.date(column)).transpose()
    }
    pub fn code<T: std::str::FromStr>(&self, column: &str) -> Result<T, String> {
        let value = self.required(column)?;
        value
            .parse()
            .map_err(|_| format!("column {column}: not one of its codes (docs/import.md)"))
    }
}

impl Cells<'_> {
    pub fn optional_code<T: std::str::FromStr>(&self, column: &str) -> Result<Option<T>, String> {
        self.get(column).map(|_| self.code(column)).transpose()
    }
    pub fn number<T: std::str::FromStr>(&self, column: &str) -> Result<T, String> {
        self.required(column)?
            .parse()
            .map_err(|_| format!("column {column}: not a whole number in range"))
    }
    pub fn text(&self, column: &str) -> Result<NonEmptyText, String> {
        self.parsed(column, NonEmptyText::parse)
    }
}

/// The client a row names by `client_mrn`.
fn client_of(cell: &Cells<'_>, lookups: &Lookups) -> Result<Id<Client>, String> {
    let mrn = cell.required("client_mrn")?;
    lookups.clients.get(mrn).copied().ok_or_else(|| {
        "column client_mrn: no client has this MRN (in the database or clients.csv)".to_owned()
    })
}

/// The staff member a row names by NPI in `column`.
fn staff_of(cell: &Cells<'_>, column: &str, lookups: &Lookups) -> Result<Id<Staff>, String> {
    let npi = cell.required(column)?;
    lookups
        .staff
        .get(npi)
        .copied()
        .ok_or_else(|| format!("column {column}: no staff member has this NPI"))
}

/// The client's support contact named "Given Family" in `name` (in `column`).
fn contact_named(
    client: Id<Client>,
    name: &str,
    column: &str,
    lookups: &Lookups,
) -> Result<Id<SupportContact>, String> {
    match lookups
        .contact_names
        .get(&(
            client,
            name.split_whitespace().collect::<Vec<_>>().join(" "),
        ))
        .map(Vec::as_slice)
    {
        Some([one]) => Ok(*one),
        Some([_, _, ..]) => Err(format!(
            "column {column}: the client has two support contacts of this name"
        )),
        _ => Err(format!(
            "column {column}: the client has no support contact of this name (given family)"
        )),
    }
}

/// The client's enrollment open on `day` (in the program of `program_code`, when given).
fn enrollment_on(
    cell: &Cells<'_>,
    client: Id<Client>,
    day: NaiveDate,
    lookups: &Lookups,
) -> Result<Id<Enrollment>, String> {
    let all = lookups
        .client_enrollments
        .get(&client)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let candidates: Vec<Enrollment> = match cell.get("program_code") {
        Some(code) => {
            let program = lookups
                .programs
                .get(code)
                .ok_or_else(|| "column program_code: no program has this code".to_owned())?;
            all.iter()
                .filter(|e| e.program_id == *program)
                .cloned()
                .collect()
        }
        None => all.to_vec(),
    };
    enrollment_open_on(&candidates, day).ok_or_else(|| {
        "no single enrollment of the client is open that day (enrollments.csv; program_code chooses among several)".to_owned()
    })
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
