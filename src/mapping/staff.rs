//! Staff -> IOP Practitioner, Organization -> IOP Organization, Program -> IOP Program (HealthcareService),
//! therapy group -> IOP Therapy Group (Group).

use serde_json::{Value, json};

use super::codes::{self, ProjectCode};
use super::patient::{address, human_name};
use super::{MappingConfig, Sensitivity, meta, reference};
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

/// A program as the HealthcareService that EpisodeOfCare and referrals point at.
pub fn program_to_fhir(
    cfg: &MappingConfig,
    program: &Program,
    clinic_id: Id<Organization>,
) -> Value {
    let system = codes::code_system("iop-program-type");
    let program_type = match program.focus {
        ProgramFocus::MentalHealth => (
            "mental-health-iop",
            "Mental-health intensive outpatient program",
        ),
        ProgramFocus::SubstanceUse => (
            "substance-use-iop",
            "Substance-use intensive outpatient program",
        ),
        ProgramFocus::CoOccurring => (
            "co-occurring-iop",
            "Co-occurring disorders intensive outpatient program",
        ),
    };
    let characteristic_system = codes::code_system("iop-program-characteristic");
    let characteristic = |code: &str, display: &str| json!({ "coding": [codes::coding(&characteristic_system, code, display)] });
    let mut characteristics = vec![
        match program.population {
            ProgramPopulation::Adult => characteristic("adult", "Adults"),
            ProgramPopulation::Adolescent => characteristic("adolescent", "Adolescents"),
        },
        match program.delivery {
            ProgramDelivery::InPerson => characteristic("in-person", "In person"),
            ProgramDelivery::Virtual => characteristic("virtual", "Virtual"),
            ProgramDelivery::Hybrid => characteristic("hybrid", "In person and virtual"),
        },
    ];
    if program.part2 {
        characteristics.push(characteristic("part2", "Covered by 42 CFR Part 2"));
    }
    if let Some(level) = &program.asam_level {
        characteristics.push(json!({ "text": format!("ASAM level of care {}", level.as_str()) }));
    }
    let intensity = program.intensity;
    json!({
        "resourceType": "HealthcareService",
        "id": program.id.to_string(),
        "meta": meta("iop-program-service", Sensitivity::Normal),
        "extension": [
            { "url": codes::extension("iop-days-per-week"), "valuePositiveInt": intensity.days_per_week() },
            { "url": codes::extension("iop-hours-per-week"), "valuePositiveInt": intensity.hours_per_week() },
        ],
        "identifier": [
            { "use": "usual", "system": cfg.system("program-code"), "value": program.code.as_str() },
            cfg.record_identifier("program", program.id),
        ],
        "active": true,
        "providedBy": reference("Organization", clinic_id),
        "type": [{ "coding": [codes::coding(&system, program_type.0, program_type.1)] }],
        "name": program.name.as_str(),
        "characteristic": characteristics,
    })
}

/// A therapy group: name, modality and facilitator. Deliberately without members (see the profile).
pub fn therapy_group_to_fhir(cfg: &MappingConfig, group: &TherapyGroup) -> Value {
    json!({
        "resourceType": "Group",
        "id": group.id.to_string(),
        "meta": meta("iop-group", Sensitivity::Normal),
        "identifier": [cfg.record_identifier("therapy-group", group.id)],
        "active": true,
        "type": "person",
        "actual": true,
        "code": codes::modality_concept(group.modality),
        "name": group.name.as_str(),
        "managingEntity": reference("Practitioner", group.facilitator_id),
    })
}
