//! Support contact <-> IOP RelatedPerson (US Core RelatedPerson 6.1.0 and stricter).

use chrono::NaiveDate;
use serde_json::Value;

use super::codes;
use super::patient::{human_name, read_name, read_telecom};
use super::read::{self, domain, invalid, missing, opt_str};
use super::{MappingConfig, MappingError, Sensitivity, meta, reference};
use crate::domain::*;
use crate::json_build::fhir;

/// `as_of` decides `active`: a contact is active until the end of their active period.
pub fn support_contact_to_fhir(
    cfg: &MappingConfig,
    contact: &SupportContact,
    sensitivity: Sensitivity,
    as_of: NaiveDate,
) -> Value {
    let relation = match codes::relationship_role_code(contact.relationship) {
        Some((code, display)) => {
            let mut concept = fhir!({ "coding": [codes::coding(codes::ROLE_CODE, code, display)] });
            if let Some(text) = &contact.relationship_text {
                concept["text"] = fhir!(text.as_str());
            }
            concept
        }
        None => {
            fhir!({ "text": contact.relationship_text.as_ref().map(|t| t.as_str()).unwrap_or("other") })
        }
    };
    let mut relationships = vec![relation];
    let roles = contact.roles;
    if roles.emergency_contact() {
        relationships
            .push(fhir!({ "coding": [codes::constant_coding!(codes::V2_0131, "C", "Emergency Contact")] }));
    }
    let role_system = codes::code_system("iop-support-role");
    if roles.family_therapy_participant() {
        relationships.push(fhir!({ "coding": [codes::coding(&role_system, "family-therapy-participant", "Family therapy participant")] }));
    }
    if roles.support_person() {
        relationships.push(
            fhir!({ "coding": [codes::coding(&role_system, "support-person", "Support person")] }),
        );
    }
    let period = super::period(contact.active.start(), contact.active.end());
    let mut person = fhir!({
        "resourceType": "RelatedPerson",
        "id": contact.id.text(),
        "meta": meta("iop-relatedperson", sensitivity),
        "identifier": [cfg.record_identifier("support-contact", contact.id)],
        "active": contact.active.contains(as_of),
        "patient": reference("Patient", contact.client_id),
        "relationship": relationships,
        "name": [human_name(&contact.name)],
        "period": period,
    });
    let mut telecom = Vec::new();
    if let Some(p) = &contact.phone {
        telecom.push(fhir!({ "system": "phone", "value": p.as_str() }));
    }
    if let Some(e) = &contact.email {
        telecom.push(fhir!({ "system": "email", "value": e.as_str() }));
    }
    if !telecom.is_empty() {
        person["telecom"] = fhir!(telecom);
    }
    person
}

/// An incoming RelatedPerson as a support contact. What an EHR rarely sends is defaulted (see
/// fhir-profiles/README.md): any v3 PersonalRelationshipRoleType code is read as its class (the
/// code's display kept as the relationship text where the class is broader), no relationship is
/// "other, not stated", no role is "support person", and no `period.start` is `recorded_on`.
pub fn support_contact_from_fhir(
    person: &Value,
    recorded_on: NaiveDate,
) -> Result<SupportContact, MappingError> {
    read::expect_type(person, "RelatedPerson")?;
    let role_system = codes::code_system("iop-support-role");
    let mut relationship = None;
    let mut uncoded = None;
    let (mut family_therapy, mut emergency, mut support) = (false, false, false);
    for (i, concept) in read::array(person, "relationship").iter().enumerate() {
        let path = format!("RelatedPerson.relationship[{i}]");
        if let Some(code) = read::code_in(concept, codes::ROLE_CODE) {
            let class =
                codes::relationship_class(code).ok_or_else(|| MappingError::UnknownCode {
                    path: path.clone(),
                    code: code.into(),
                    expected: "a v3 PersonalRelationshipRoleType code (MTH, BRO, AUNT, FRND, ...)"
                        .into(),
                })?;
            // A code finer than its class (BRO for sibling) survives as the text.
            let text = opt_str(concept, "text").or_else(|| {
                (codes::relationship_from_role_code(code) != Some(class))
                    .then(|| coding_display(concept, codes::ROLE_CODE).unwrap_or(code))
            });
            relationship.get_or_insert((class, text));
        } else if read::code_in(concept, codes::V2_0131) == Some("C") {
            emergency = true;
        } else if let Some(code) = read::code_in(concept, &role_system) {
            match code {
                "family-therapy-participant" => family_therapy = true,
                "support-person" => support = true,
                other => {
                    return Err(MappingError::UnknownCode {
                        path,
                        code: other.into(),
                        expected: "family-therapy-participant, support-person".into(),
                    });
                }
            }
        } else if uncoded.is_none() {
            // Text alone, or a code of another system: kept as what the client called it.
            uncoded = opt_str(concept, "text").or_else(|| {
                read::array(concept, "coding")
                    .iter()
                    .find_map(|c| opt_str(c, "display"))
            });
        }
    }
    let (relationship, text) =
        relationship.unwrap_or((Relationship::Other, Some(uncoded.unwrap_or("not stated"))));
    let relationship_text = text
        .map(|t| domain("RelatedPerson.relationship.text", NonEmptyText::parse(t)))
        .transpose()?;
    if !(family_therapy || emergency || support) {
        support = true;
    }
    let period = person.get("period");
    let end = period
        .and_then(|p| opt_str(p, "end"))
        .map(|e| read::date("RelatedPerson.period.end", e))
        .transpose()?;
    let start = match period.and_then(|p| opt_str(p, "start")) {
        Some(start) => read::date("RelatedPerson.period.start", start)?,
        // A contact recorded after it ended starts when it ended.
        None => end.map_or(recorded_on, |end| end.min(recorded_on)),
    };
    let (phone, email) = read_telecom(person, "RelatedPerson")?;
    let contact = SupportContact {
        id: read::resource_id(person, "RelatedPerson")?,
        client_id: read::reference_id(
            person
                .get("patient")
                .ok_or_else(|| missing("RelatedPerson.patient"))?,
            "RelatedPerson.patient",
            "Patient",
        )?,
        name: read_name(person, "RelatedPerson")?,
        relationship,
        relationship_text,
        roles: domain(
            "RelatedPerson.relationship",
            SupportRoles::new(family_therapy, emergency, support),
        )?,
        phone,
        email,
        active: domain("RelatedPerson.period", DateRange::new(start, end))?,
    };
    contact
        .check()
        .map_err(|e| invalid("RelatedPerson.relationship", e))?;
    Ok(contact)
}

fn coding_display<'a>(concept: &'a Value, system: &str) -> Option<&'a str> {
    read::array(concept, "coding")
        .iter()
        .find(|c| opt_str(c, "system") == Some(system))
        .and_then(|c| opt_str(c, "display"))
}
