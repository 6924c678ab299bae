//! Rows of `clients.csv`, `support_contacts.csv`, `enrollments.csv` and `consents.csv`.

use super::lookups::{Lookups, consent_key, contact_key, enrollment_key};
use super::{Cells, client_of, contact_named, staff_of};
use crate::domain::*;
use crate::import::rows::Row;

pub fn client(cell: &Cells<'_>, lookups: &Lookups) -> Result<Row, String> {
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
    Ok(Row::Client(Client {
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
    }))
}

pub fn contact(cell: &Cells<'_>, lookups: &Lookups) -> Result<Row, String> {
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
    Ok(Row::Contact(contact))
}

pub fn enrollment(cell: &Cells<'_>, lookups: &Lookups) -> Result<Row, String> {
    let client_id = client_of(cell, lookups)?;
    let code = cell.required("program_code")?;
    let program_id = lookups
        .programs
        .get(code)
        .copied()
        .ok_or_else(|| "column program_code: no program has this code".to_owned())?;
    let clinician = staff_of(cell, "primary_clinician_npi", lookups)?;
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
    Ok(Row::Enrollment(enrollment))
}

pub fn consent(cell: &Cells<'_>, lookups: &Lookups) -> Result<Row, String> {
    let client_id = client_of(cell, lookups)?;
    let scope = match cell.required("scope")? {
        "all" => InformationScope::All,
        "all_except_substance_use" => InformationScope::AllExceptSubstanceUse,
        list => InformationScope::categories(
            list.split(';')
                .map(|c| {
                    c.trim().parse().map_err(|_| {
                        "column scope: all, all_except_substance_use, or categories separated by ; (docs/import.md)".to_owned()
                    })
                })
                .collect::<Result<_, String>>()?,
        )
        .map_err(|e| format!("column scope: {e}"))?,
    };
    let recipients = [
        cell.get("recipient_organization_npi").map(|npi| {
            lookups
                .organizations
                .get(npi)
                .map(|id| ConsentRecipient::Organization(*id))
                .ok_or_else(|| {
                    "column recipient_organization_npi: no organization has this NPI".to_owned()
                })
        }),
        cell.get("recipient_clinician_npi").map(|_| {
            staff_of(cell, "recipient_clinician_npi", lookups).map(ConsentRecipient::Clinician)
        }),
        cell.get("recipient_contact").map(|name| {
            contact_named(client_id, name, "recipient_contact", lookups)
                .map(ConsentRecipient::SupportContact)
        }),
    ];
    let mut named = recipients.into_iter().flatten();
    let recipient = match (named.next(), named.next()) {
        (Some(one), None) => one?,
        _ => {
            return Err("give exactly one of recipient_organization_npi, recipient_clinician_npi, recipient_contact".into());
        }
    };
    let mut consent = Consent {
        id: Id::generate(),
        client_id,
        kind: cell.code("kind")?,
        scope,
        recipient,
        purpose: cell.code("purpose")?,
        valid: DateRange::new(cell.date("valid_from")?, cell.optional_date("valid_until")?)
            .map_err(|e| format!("columns valid_from, valid_until: {e}"))?,
        signed_on: cell.date("signed_on")?,
        revoked_on: cell.optional_date("revoked_on")?,
    };
    consent.check().map_err(|e| e.to_string())?;
    if let Some(id) = lookups.consents.get(&consent_key(&consent)) {
        consent.id = *id;
    }
    Ok(Row::Consent(consent))
}
