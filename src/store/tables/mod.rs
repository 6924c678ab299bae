//! `Record` impls: which columns each clinic table has and how its values convert.
//! Mirrors `domain/`, one file per domain file.

mod consent;
mod people;
mod plan;
mod program;
mod referral;
mod session;

use super::StoreError;
use super::record::RowReader;
use crate::domain::{Address, PersonName};

/// The four address columns shared by clients and organizations: all present or all NULL.
pub(super) fn read_address(r: &RowReader<'_>) -> Result<Option<Address>, StoreError> {
    match (
        r.opt_text("address_line")?,
        r.opt_text("city")?,
        r.opt_text("state")?,
        r.opt_text("postal_code")?,
    ) {
        (Some(line), Some(city), Some(state), Some(zip)) => r
            .domain("address_line", Address::parse(&line, &city, &state, &zip))
            .map(Some),
        (None, None, None, None) => Ok(None),
        _ => Err(r.inconsistent("address_line", "partial address")),
    }
}

pub(super) fn address_values(address: Option<&Address>) -> [super::SqlValue; 4] {
    use super::SqlValue;
    [
        SqlValue::opt_text(address.map(Address::line)),
        SqlValue::opt_text(address.map(Address::city)),
        SqlValue::opt_text(address.map(Address::state)),
        SqlValue::opt_text(address.map(Address::postal_code)),
    ]
}

pub(super) fn read_name(r: &RowReader<'_>) -> Result<PersonName, StoreError> {
    r.domain(
        "given_name",
        PersonName::parse(&r.text("given_name")?, &r.text("family_name")?),
    )
}
