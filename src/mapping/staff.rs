//! Staff -> IOP Practitioner, Organization -> IOP Organization.

use serde_json::{Value, json};

use super::codes::{self, ProjectCode};
use super::patient::{address, human_name};
use super::{MappingConfig, Sensitivity, meta};
use crate::domain::*;

pub fn practitioner_to_fhir(cfg: &MappingConfig, staff: &Staff) -> Value {
    let mut identifiers = vec![cfg.record_identifier("staff", staff.id)];
    if let Some(npi) = &staff.npi {
        identifiers.insert(0, json!({ "system": codes::NPI, "value": npi.as_str() }));
    }
    let text = match &staff.credentials {
        Some(c) => format!("{} ({})", staff.role.code_display().1, c.as_str()),
        None => staff.role.code_display().1.to_owned(),
    };
    let mut practitioner = json!({
        "resourceType": "Practitioner",
        "id": staff.id.to_string(),
        "meta": meta("iop-practitioner", Sensitivity::Normal),
        "identifier": identifiers,
        "active": staff.active,
        "name": [human_name(&staff.name)],
        "qualification": [{ "code": { "coding": [staff.role.coding()], "text": text } }],
    });
    let mut telecom = Vec::new();
    if let Some(p) = &staff.phone {
        telecom.push(json!({ "system": "phone", "value": p.as_str(), "use": "work" }));
    }
    if let Some(e) = &staff.email {
        telecom.push(json!({ "system": "email", "value": e.as_str(), "use": "work" }));
    }
    if !telecom.is_empty() {
        practitioner["telecom"] = json!(telecom);
    }
    practitioner
}

pub fn organization_to_fhir(cfg: &MappingConfig, org: &Organization) -> Value {
    let mut identifiers = vec![cfg.record_identifier("organization", org.id)];
    if let Some(npi) = &org.npi {
        identifiers.insert(0, json!({ "system": codes::NPI, "value": npi.as_str() }));
    }
    let mut organization = json!({
        "resourceType": "Organization",
        "id": org.id.to_string(),
        "meta": meta("iop-organization", Sensitivity::Normal),
        "identifier": identifiers,
        "active": true,
        "type": [{ "coding": [org.kind.coding()] }],
        "name": org.name.as_str(),
    });
    if let Some(p) = &org.phone {
        organization["telecom"] =
            json!([{ "system": "phone", "value": p.as_str(), "use": "work" }]);
    }
    if let Some(a) = &org.address {
        let mut a = address(a);
        a["use"] = json!("work");
        organization["address"] = json!([a]);
    }
    organization
}
