//! How a domain type becomes a row and back: the `Record` trait and its small helpers.
//!
//! Every clinic table has the same bookkeeping columns (`id`, `version`, `created_at`,
//! `updated_at`); a `Record` names its own columns and converts its values, and the generic store
//! code in `tx.rs` writes the SQL once for all of them.

use std::borrow::Cow;
use std::str::FromStr;

use chrono::NaiveDate;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::StoreError;
use super::packed::Cell;
use crate::domain::{Coded, DomainError, Id, Timestamp};

/// A value bound to a statement. NULLs carry their type: PostgreSQL refuses a text NULL for a
/// BIGINT column.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Text(Option<String>),
    Int(Option<i64>),
}

impl SqlValue {
    pub fn text(value: impl ToString) -> Self {
        Self::Text(Some(value.to_string()))
    }
    pub fn opt_text<T: ToString>(value: Option<T>) -> Self {
        Self::Text(value.map(|v| v.to_string()))
    }
    pub fn int(value: impl Into<i64>) -> Self {
        Self::Int(Some(value.into()))
    }
    pub fn opt_int<T: Into<i64>>(value: Option<T>) -> Self {
        Self::Int(value.map(Into::into))
    }
    pub fn bool(value: bool) -> Self {
        Self::Int(Some(i64::from(value)))
    }
    pub fn code<C: Coded>(value: C) -> Self {
        Self::text(value.code())
    }
    pub fn opt_code<C: Coded>(value: Option<C>) -> Self {
        Self::Text(value.map(|v| v.code().to_owned()))
    }
    pub fn date(value: NaiveDate) -> Self {
        Self::text(value.format("%Y-%m-%d"))
    }
    pub fn opt_date(value: Option<NaiveDate>) -> Self {
        Self::Text(value.map(|v| v.format("%Y-%m-%d").to_string()))
    }
    pub fn id<T>(value: Id<T>) -> Self {
        Self::text(value)
    }
    pub fn opt_id<T>(value: Option<Id<T>>) -> Self {
        Self::opt_text(value)
    }
}

/// A clinic table row as a domain value.
pub trait Record: Sized + Send + Sync + 'static {
    /// Table name (also the `table_name` in the change log).
    const TABLE: &'static str;
    /// The record's own columns, in the order `values` returns them (bookkeeping columns excluded).
    const COLUMNS: &'static [&'static str];

    /// In the tables of what belongs to one client, the column naming the row's owner (its
    /// client, enrollment or plan): `Store::page_in_owner_order` reads an owner's rows together,
    /// which ids do not (a client's rows get ids as they are written, among everyone else's).
    /// None: a row is its own owner.
    const OWNER_COLUMN: Option<&'static str> = None;

    fn id(&self) -> Id<Self>;
    /// The row's value of `OWNER_COLUMN`; its id where there is none.
    fn owner(&self) -> uuid::Uuid {
        self.id().uuid()
    }
    fn values(&self) -> Vec<SqlValue>;
    fn from_row(row: &RowReader<'_>) -> Result<Self, StoreError>;

    /// Rules across fields that the types alone cannot hold; run before every write.
    fn check(&self) -> Result<(), DomainError> {
        Ok(())
    }
}

/// A record that belongs to a parent (a support contact to its client, a goal to its plan).
pub trait Child: Record {
    type Parent;
    const PARENT_COLUMN: &'static str;
}

/// The bookkeeping every row carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowMeta {
    pub version: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A record as stored: the domain value and its bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored<R> {
    pub meta: RowMeta,
    pub record: R,
}

/// Reads typed columns from a row and reports unreadable data as `StoreError::Corrupt` with the
/// table, row id and column.
pub struct RowReader<'r> {
    table: &'static str,
    row: Source<'r>,
}

/// Where a row's values are: a driver row, or a row of a packed query (`packed.rs`) with the
/// names of its columns.
enum Source<'r> {
    Driver(&'r AnyRow),
    Packed {
        columns: &'r [&'static str],
        cells: &'r [Cell<'r>],
    },
}

impl<'r> RowReader<'r> {
    pub(crate) fn new(table: &'static str, row: &'r AnyRow) -> Self {
        Self {
            table,
            row: Source::Driver(row),
        }
    }

    /// A row of a packed query whose values are `cells`, of the columns named `columns`.
    pub(crate) fn packed(
        table: &'static str,
        columns: &'r [&'static str],
        cells: &'r [Cell<'r>],
    ) -> Self {
        Self {
            table,
            row: Source::Packed { columns, cells },
        }
    }

    fn corrupt(&self, column: &'static str, reason: impl ToString) -> StoreError {
        let id = match &self.row {
            Source::Driver(row) => row.try_get::<String, _>("id").unwrap_or_default(),
            Source::Packed { .. } => match self.cell("id") {
                Ok(Cell::Text(id)) => id.to_string(),
                _ => String::new(),
            },
        };
        StoreError::Corrupt {
            table: self.table,
            id,
            column,
            reason: reason.to_string(),
        }
    }

    /// The value of `column` in a packed row (none in a driver row).
    fn cell(&self, column: &'static str) -> Result<&Cell<'r>, StoreError> {
        let found = match &self.row {
            Source::Packed { columns, cells } => columns
                .iter()
                .position(|c| *c == column)
                .and_then(|i| cells.get(i)),
            Source::Driver(_) => None,
        };
        found.ok_or_else(|| StoreError::Corrupt {
            table: self.table,
            id: String::new(),
            column,
            reason: "no such column in the row".into(),
        })
    }

    /// `column`'s text without a copy where the row allows it.
    fn opt_str(&self, column: &'static str) -> Result<Option<Cow<'_, str>>, StoreError> {
        match &self.row {
            Source::Driver(row) => row
                .try_get::<Option<String>, _>(column)
                .map(|s| s.map(Cow::Owned))
                .map_err(|e| self.corrupt(column, e)),
            Source::Packed { .. } => match self.cell(column)? {
                Cell::Null => Ok(None),
                Cell::Text(text) => Ok(Some(Cow::Borrowed(text.as_ref()))),
            },
        }
    }

    pub fn opt_text(&self, column: &'static str) -> Result<Option<String>, StoreError> {
        Ok(self.opt_str(column)?.map(Cow::into_owned))
    }
    pub fn text(&self, column: &'static str) -> Result<String, StoreError> {
        self.opt_text(column)?
            .ok_or_else(|| self.corrupt(column, "unexpected NULL"))
    }
    pub fn opt_int(&self, column: &'static str) -> Result<Option<i64>, StoreError> {
        match &self.row {
            Source::Driver(row) => row
                .try_get::<Option<i64>, _>(column)
                .map_err(|e| self.corrupt(column, e)),
            Source::Packed { .. } => match self.cell(column)? {
                Cell::Null => Ok(None),
                // A packed integer is its decimal text.
                Cell::Text(text) => text
                    .parse()
                    .map(Some)
                    .map_err(|_| self.corrupt(column, "not an integer")),
            },
        }
    }
    pub fn int(&self, column: &'static str) -> Result<i64, StoreError> {
        self.opt_int(column)?
            .ok_or_else(|| self.corrupt(column, "unexpected NULL"))
    }
    /// An integer that must fit `T` (a count, a length).
    pub fn small<T: TryFrom<i64>>(&self, column: &'static str) -> Result<T, StoreError> {
        T::try_from(self.int(column)?).map_err(|_| self.corrupt(column, "out of range"))
    }
    pub fn bool(&self, column: &'static str) -> Result<bool, StoreError> {
        match self.int(column)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(self.corrupt(column, "not 0 or 1")),
        }
    }
    pub fn opt_parse<T: FromStr>(&self, column: &'static str) -> Result<Option<T>, StoreError>
    where
        T::Err: std::fmt::Display,
    {
        self.opt_str(column)?
            .map(|s| s.parse::<T>().map_err(|e| self.corrupt(column, e)))
            .transpose()
    }
    /// A column parsed with its domain type's `FromStr` (ids, codes, MRNs, timestamps, ...).
    pub fn parse<T: FromStr>(&self, column: &'static str) -> Result<T, StoreError>
    where
        T::Err: std::fmt::Display,
    {
        self.opt_parse(column)?
            .ok_or_else(|| self.corrupt(column, "unexpected NULL"))
    }
    pub fn date(&self, column: &'static str) -> Result<NaiveDate, StoreError> {
        self.opt_date(column)?
            .ok_or_else(|| self.corrupt(column, "unexpected NULL"))
    }
    pub fn opt_date(&self, column: &'static str) -> Result<Option<NaiveDate>, StoreError> {
        self.opt_str(column)?
            .map(|s| parse_date(&s).map_err(|e| self.corrupt(column, e)))
            .transpose()
    }
    /// Reports columns that disagree with each other.
    pub fn inconsistent(&self, column: &'static str, reason: &'static str) -> StoreError {
        self.corrupt(column, reason)
    }
    /// Wraps a domain constructor's refusal as corrupt data in `column`.
    pub fn domain<T>(
        &self,
        column: &'static str,
        result: Result<T, DomainError>,
    ) -> Result<T, StoreError> {
        result.map_err(|e| self.corrupt(column, e))
    }

    pub(crate) fn meta(&self) -> Result<RowMeta, StoreError> {
        Ok(RowMeta {
            version: self.int("version")?,
            created_at: self.parse("created_at")?,
            updated_at: self.parse("updated_at")?,
        })
    }
}

/// A date as the store writes it (`YYYY-MM-DD`), digit by digit; any other text through chrono,
/// which gives the same answer more slowly (its pattern interpreter was 1% of an export).
fn parse_date(text: &str) -> Result<NaiveDate, chrono::ParseError> {
    let b = text.as_bytes();
    if b.len() == 10 && b[4] == b'-' && b[7] == b'-' {
        let number = |digits: &[u8]| {
            digits.iter().try_fold(0u32, |n, d| {
                d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
            })
        };
        if let (Some(y), Some(m), Some(d)) = (number(&b[..4]), number(&b[5..7]), number(&b[8..]))
            && let Some(date) = i32::try_from(y)
                .ok()
                .and_then(|y| NaiveDate::from_ymd_opt(y, m, d))
        {
            return Ok(date);
        }
    }
    text.parse()
}

#[cfg(test)]
mod date_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the digits, the same answer as chrono's parser.
        #[test]
        fn dates_parse_as_chrono_parses_them(y in 0u32..10_000, m in 0u32..14, d in 0u32..33, sep in "[-/]") {
            let text = format!("{y:04}{sep}{m:02}{sep}{d:02}");
            prop_assert_eq!(parse_date(&text).ok(), text.parse::<NaiveDate>().ok());
        }
    }

    #[test]
    fn other_spellings_still_parse_through_chrono() {
        for text in ["2026-1-05", "+2026-01-05", "2026-01-05x", "", "abcd-ef-gh"] {
            assert_eq!(
                parse_date(text).ok(),
                text.parse::<NaiveDate>().ok(),
                "{text}"
            );
        }
    }
}
