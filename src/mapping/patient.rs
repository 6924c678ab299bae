//! Client <-> IOP Patient (US Core Patient 6.1.0 and stricter).

use serde_json::Value;

use super::codes;
use super::read::{self, domain, missing, opt_str, req_str};
use super::{MappingConfig, MappingError, Sensitivity, meta};
use crate::domain::*;
use crate::json_build::fhir;

fn telecom(phone: Option<&Phone>, email: Option<&Email>) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(p) = phone {
        out.push(fhir!({ "system": "phone", "value": p.as_str(), "use": "home" }));
    }
    if let Some(e) = email {
        out.push(fhir!({ "system": "email", "value": e.as_str() }));
    }
    out
}

pub(super) fn address(a: &Address) -> Value {
    fhir!({ "use": "home", "line": [a.line()], "city": a.city(), "state": a.state(), "postalCode": a.postal_code(), "country": "US" })
}

pub(super) fn human_name(name: &PersonName) -> Value {
    fhir!({ "use": "official", "family": name.family.as_str(), "given": [name.given.as_str()] })
}

pub fn client_to_fhir(cfg: &MappingConfig, client: &Client, sensitivity: Sensitivity) -> Value {
    let mut patient = fhir!({
        "resourceType": "Patient",
        "id": client.id.text(),
        "meta": meta("iop-patient", sensitivity),
        "identifier": [
            {
                "use": "usual",
                "type": { "coding": [codes::constant_coding!(codes::V2_0203, "MR", "Medical record number")], "text": "MRN" },
                "system": cfg.system("mrn"),
                "value": client.mrn.as_str(),
            },
            cfg.record_identifier("client", client.id),
        ],
        "active": true,
        "name": [human_name(&client.name)],
        "gender": client.gender.code(),
        "birthDate": super::date(client.birth_date),
    });
    let telecom = telecom(client.phone.as_ref(), client.email.as_ref());
    if !telecom.is_empty() {
        patient["telecom"] = fhir!(telecom);
    }
    if let Some(a) = &client.address {
        patient["address"] = fhir!([address(a)]);
    }
    if let Some(language) = &client.language {
        patient["communication"] = fhir!([{
            "language": { "coding": [{ "system": "urn:ietf:bcp:47", "code": language.as_str() }] },
            "preferred": true,
        }]);
    }
    patient
}

/// Reads the contact details shared by Patient and RelatedPerson.
pub(super) fn read_telecom(
    resource: &Value,
    path: &str,
) -> Result<(Option<Phone>, Option<Email>), MappingError> {
    let mut phone = None;
    let mut email = None;
    for (i, t) in read::array(resource, "telecom").iter().enumerate() {
        let at = format!("{path}.telecom[{i}].value");
        match (opt_str(t, "system"), opt_str(t, "value")) {
            (Some("phone"), Some(v)) if phone.is_none() => {
                phone = Some(domain(&at, Phone::parse(v))?)
            }
            (Some("email"), Some(v)) if email.is_none() => {
                email = Some(domain(&at, Email::parse(v))?)
            }
            _ => {}
        }
    }
    Ok((phone, email))
}

/// The current one of a list of names or addresses (EHRs keep old ones, marked `use: old` or
/// with an ended period), else the first; with its index.
fn current(items: &[Value]) -> Option<(usize, &Value)> {
    let is_current =
        |v: &Value| opt_str(v, "use") != Some("old") && v.pointer("/period/end").is_none();
    items
        .iter()
        .enumerate()
        .find(|(_, v)| is_current(v))
        .or_else(|| items.iter().enumerate().next())
}

pub(super) fn read_name(resource: &Value, path: &str) -> Result<PersonName, MappingError> {
    let (n, name) =
        current(read::array(resource, "name")).ok_or_else(|| missing(format!("{path}.name")))?;
    let at = format!("{path}.name[{n}]");
    let family = req_str(name, "family", &at)?;
    let given = read::array(name, "given")
        .first()
        .and_then(Value::as_str)
        .ok_or_else(|| missing(format!("{at}.given")))?;
    domain(&at, PersonName::parse(given, family))
}

pub fn client_from_fhir(cfg: &MappingConfig, patient: &Value) -> Result<Client, MappingError> {
    read::expect_type(patient, "Patient")?;
    let mrn_system = cfg.system("mrn");
    let identifiers = read::array(patient, "identifier");
    // The clinic's MRN, else the sender's MRN (an identifier typed v2-0203 MR), as EHRs send it.
    let mrn = identifiers
        .iter()
        .enumerate()
        .find(|(_, i)| opt_str(i, "system") == Some(mrn_system.as_str()))
        .or_else(|| {
            identifiers.iter().enumerate().find(|(_, i)| {
                i.get("type").and_then(|t| read::code_in(t, codes::V2_0203)) == Some("MR")
            })
        })
        .ok_or_else(|| {
            missing(format!(
                "Patient.identifier (system {mrn_system}, or typed MR)"
            ))
        })
        .and_then(|(n, i)| {
            domain(
                &format!("Patient.identifier[{n}].value"),
                Mrn::parse(req_str(i, "value", "Patient.identifier")?),
            )
        })?;
    let gender = req_str(patient, "gender", "Patient")?;
    let gender = gender
        .parse::<Gender>()
        .map_err(|_| MappingError::UnknownCode {
            path: "Patient.gender".into(),
            code: gender.into(),
            expected: "male, female, other, unknown".into(),
        })?;
    let (phone, email) = read_telecom(patient, "Patient")?;
    let address = match current(read::array(patient, "address")) {
        Some((n, a)) => Some(read_address(a, &format!("Patient.address[{n}]"))?),
        None => None,
    };
    let language = read::array(patient, "communication")
        .first()
        .and_then(|c| c.get("language"))
        .and_then(|l| read::code_in(l, "urn:ietf:bcp:47"))
        .map(|code| {
            domain(
                "Patient.communication[0].language",
                LanguageTag::parse(code),
            )
        })
        .transpose()?;
    Ok(Client {
        id: read::resource_id(patient, "Patient")?,
        mrn,
        name: read_name(patient, "Patient")?,
        birth_date: read::date(
            "Patient.birthDate",
            req_str(patient, "birthDate", "Patient")?,
        )?,
        gender,
        phone,
        email,
        address,
        language,
    })
}

pub(super) fn read_address(a: &Value, path: &str) -> Result<Address, MappingError> {
    let line = read::array(a, "line")
        .first()
        .and_then(Value::as_str)
        .ok_or_else(|| missing(format!("{path}.line")))?;
    domain(
        path,
        Address::parse(
            line,
            req_str(a, "city", path)?,
            req_str(a, "state", path)?,
            req_str(a, "postalCode", path)?,
        ),
    )
}
