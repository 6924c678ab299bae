//! Staff -> IOP Practitioner, Organization -> IOP Organization, Program -> IOP Program (HealthcareService),
//! therapy group -> IOP Therapy Group (Group).

use serde_json::Value;

use super::codes::{self, ProjectCode};
use super::patient::{address, human_name, read_address, read_name, read_telecom};
use super::{MappingConfig, MappingError, Sensitivity, meta, read, reference};
use crate::domain::*;
use crate::json_build::fhir;

pub fn practitioner_to_fhir(cfg: &MappingConfig, staff: &Staff) -> Value {
    let mut identifiers = vec![cfg.record_identifier("staff", staff.id)];
    if let Some(npi) = &staff.npi {
        identifiers.insert(0, fhir!({ "system": codes::NPI, "value": npi.as_str() }));
    }
    let text = match &staff.credentials {
        Some(c) => format!("{} ({})", staff.role.code_display().1, c.as_str()),
        None => staff.role.code_display().1.to_owned(),
    };
    let mut practitioner = fhir!({
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
        telecom.push(fhir!({ "system": "phone", "value": p.as_str(), "use": "work" }));
    }
    if let Some(e) = &staff.email {
        telecom.push(fhir!({ "system": "email", "value": e.as_str(), "use": "work" }));
    }
    if !telecom.is_empty() {
        practitioner["telecom"] = fhir!(telecom);
    }
    practitioner
}

pub fn organization_to_fhir(cfg: &MappingConfig, org: &Organization) -> Value {
    let mut identifiers = vec![cfg.record_identifier("organization", org.id)];
    if let Some(npi) = &org.npi {
        identifiers.insert(0, fhir!({ "system": codes::NPI, "value": npi.as_str() }));
    }
    let mut organization = fhir!({
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
            fhir!([{ "system": "phone", "value": p.as_str(), "use": "work" }]);
    }
    if let Some(a) = &org.address {
        let mut a = address(a);
        a["use"] = fhir!("work");
        organization["address"] = fhir!([a]);
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
    let characteristic = |code: &str, display: &str| fhir!({ "coding": [codes::coding(&characteristic_system, code, display)] });
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
        characteristics.push(fhir!({ "text": format!("ASAM level of care {}", level.as_str()) }));
    }
    let intensity = program.intensity;
    fhir!({
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

/// A therapy group: its program, name, modality and facilitator. Deliberately without members
/// (see the profile).
pub fn therapy_group_to_fhir(cfg: &MappingConfig, group: &TherapyGroup) -> Value {
    fhir!({
        "resourceType": "Group",
        "id": group.id.to_string(),
        "meta": meta("iop-group", Sensitivity::Normal),
        "extension": [{
            "url": codes::extension("iop-program"),
            "valueReference": reference("HealthcareService", group.program_id),
        }],
        "identifier": [cfg.record_identifier("therapy-group", group.id)],
        "active": true,
        "type": "person",
        "actual": true,
        "code": codes::modality_concept(group.modality),
        "name": group.name.as_str(),
        "managingEntity": reference("Practitioner", group.facilitator_id),
    })
}

/// The reference data of an import (the gateway's own export read back): an Organization.
pub fn organization_from_fhir(resource: &Value) -> Result<Organization, MappingError> {
    read::expect_type(resource, "Organization")?;
    let kind_code = read::array(resource, "type")
        .iter()
        .find_map(|t| read::code_in(t, &codes::code_system(OrganizationKind::SYSTEM_ID)))
        .ok_or_else(|| read::missing("Organization.type (the IOP organization type)"))?;
    let kind =
        OrganizationKind::from_fhir_code(kind_code).ok_or_else(|| MappingError::UnknownCode {
            path: "Organization.type".into(),
            code: kind_code.into(),
            expected: OrganizationKind::expected(),
        })?;
    let (phone, _) = read_telecom(resource, "Organization")?;
    let address = read::array(resource, "address")
        .first()
        .map(|a| read_address(a, "Organization.address[0]"))
        .transpose()?;
    Ok(Organization {
        id: read::resource_id(resource, "Organization")?,
        kind,
        name: read::domain(
            "Organization.name",
            NonEmptyText::parse(read::req_str(resource, "name", "Organization")?),
        )?,
        npi: npi(resource, "Organization")?,
        phone,
        address,
    })
}

fn npi(resource: &Value, path: &str) -> Result<Option<NonEmptyText>, MappingError> {
    read::array(resource, "identifier")
        .iter()
        .find(|i| read::opt_str(i, "system") == Some(codes::NPI))
        .map(|i| {
            read::domain(
                &format!("{path}.identifier(NPI)"),
                NonEmptyText::parse(read::opt_str(i, "value").unwrap_or_default()),
            )
        })
        .transpose()
}

/// A Practitioner as the gateway writes it; `organization_id` is the organization the staff
/// member works for, which a Practitioner does not name (the importer's clinic).
pub fn practitioner_from_fhir(
    resource: &Value,
    organization_id: Id<Organization>,
) -> Result<Staff, MappingError> {
    read::expect_type(resource, "Practitioner")?;
    let qualification = read::array(resource, "qualification")
        .first()
        .and_then(|q| q.get("code"))
        .ok_or_else(|| read::missing("Practitioner.qualification[0].code"))?;
    let role_code = read::code_in(qualification, &codes::code_system(StaffRole::SYSTEM_ID))
        .ok_or_else(|| read::missing("Practitioner.qualification[0].code (the IOP staff role)"))?;
    let role = StaffRole::from_fhir_code(role_code).ok_or_else(|| MappingError::UnknownCode {
        path: "Practitioner.qualification[0].code".into(),
        code: role_code.into(),
        expected: StaffRole::expected(),
    })?;
    // "Role (credentials)": what follows the role's display in brackets.
    let credentials = read::opt_str(qualification, "text")
        .and_then(|t| t.strip_suffix(')'))
        .and_then(|t| t.split_once(" ("))
        .map(|(_, c)| {
            read::domain(
                "Practitioner.qualification[0].code.text",
                NonEmptyText::parse(c),
            )
        })
        .transpose()?;
    let (phone, email) = read_telecom(resource, "Practitioner")?;
    Ok(Staff {
        id: read::resource_id(resource, "Practitioner")?,
        organization_id,
        name: read_name(resource, "Practitioner")?,
        role,
        credentials,
        npi: npi(resource, "Practitioner")?,
        email,
        phone,
        active: resource
            .get("active")
            .and_then(Value::as_bool)
            .unwrap_or(true),
    })
}

/// A program's HealthcareService read back.
pub fn program_from_fhir(cfg: &MappingConfig, resource: &Value) -> Result<Program, MappingError> {
    read::expect_type(resource, "HealthcareService")?;
    let code_system = cfg.system("program-code");
    let code = read::array(resource, "identifier")
        .iter()
        .find(|i| read::opt_str(i, "system") == Some(code_system.as_str()))
        .and_then(|i| read::opt_str(i, "value"))
        .ok_or_else(|| {
            read::missing(format!(
                "HealthcareService.identifier (system {code_system})"
            ))
        })?;
    let type_code = read::array(resource, "type")
        .iter()
        .find_map(|t| read::code_in(t, &codes::code_system("iop-program-type")))
        .ok_or_else(|| read::missing("HealthcareService.type (the IOP program type)"))?;
    let focus = match type_code {
        "mental-health-iop" => ProgramFocus::MentalHealth,
        "substance-use-iop" => ProgramFocus::SubstanceUse,
        "co-occurring-iop" => ProgramFocus::CoOccurring,
        other => {
            return Err(MappingError::UnknownCode {
                path: "HealthcareService.type".into(),
                code: other.into(),
                expected: "mental-health-iop, substance-use-iop, co-occurring-iop".into(),
            });
        }
    };
    let characteristic_system = codes::code_system("iop-program-characteristic");
    let characteristics: Vec<&str> = read::array(resource, "characteristic")
        .iter()
        .filter_map(|c| read::code_in(c, &characteristic_system))
        .collect();
    let population = if characteristics.contains(&"adolescent") {
        ProgramPopulation::Adolescent
    } else {
        ProgramPopulation::Adult
    };
    let delivery = if characteristics.contains(&"virtual") {
        ProgramDelivery::Virtual
    } else if characteristics.contains(&"hybrid") {
        ProgramDelivery::Hybrid
    } else {
        ProgramDelivery::InPerson
    };
    let asam_level = read::array(resource, "characteristic")
        .iter()
        .filter_map(|c| read::opt_str(c, "text"))
        .find_map(|t| t.strip_prefix("ASAM level of care "))
        .map(|l| {
            read::domain(
                "HealthcareService.characteristic.text",
                NonEmptyText::parse(l),
            )
        })
        .transpose()?;
    let per_week = |id: &str| -> Result<i64, MappingError> {
        let url = codes::extension(id);
        read::array(resource, "extension")
            .iter()
            .find(|e| read::opt_str(e, "url") == Some(url.as_str()))
            .and_then(|e| e.get("valuePositiveInt"))
            .and_then(Value::as_i64)
            .ok_or_else(|| read::missing(format!("HealthcareService.extension({id})")))
    };
    Ok(Program {
        id: read::resource_id(resource, "HealthcareService")?,
        code: read::domain("HealthcareService.identifier", NonEmptyText::parse(code))?,
        name: read::domain(
            "HealthcareService.name",
            NonEmptyText::parse(read::req_str(resource, "name", "HealthcareService")?),
        )?,
        population,
        focus,
        asam_level,
        part2: characteristics.contains(&"part2"),
        delivery,
        intensity: read::domain(
            "HealthcareService.extension",
            ProgramIntensity::new(
                per_week("iop-days-per-week")?,
                per_week("iop-hours-per-week")?,
            ),
        )?,
    })
}

/// A therapy group's Group read back.
pub fn therapy_group_from_fhir(resource: &Value) -> Result<TherapyGroup, MappingError> {
    read::expect_type(resource, "Group")?;
    let url = codes::extension("iop-program");
    let program = read::array(resource, "extension")
        .iter()
        .find(|e| read::opt_str(e, "url") == Some(url.as_str()))
        .and_then(|e| e.get("valueReference"))
        .ok_or_else(|| read::missing("Group.extension(iop-program)"))?;
    let code = resource
        .get("code")
        .ok_or_else(|| read::missing("Group.code"))?;
    let modality_code = read::code_in(code, &codes::code_system(Modality::SYSTEM_ID))
        .ok_or_else(|| read::missing("Group.code (the IOP modality)"))?;
    Ok(TherapyGroup {
        id: read::resource_id(resource, "Group")?,
        program_id: read::reference_id(
            program,
            "Group.extension(iop-program).valueReference",
            "HealthcareService",
        )?,
        name: read::domain(
            "Group.name",
            NonEmptyText::parse(read::req_str(resource, "name", "Group")?),
        )?,
        modality: Modality::from_fhir_code(modality_code).ok_or_else(|| {
            MappingError::UnknownCode {
                path: "Group.code".into(),
                code: modality_code.into(),
                expected: Modality::expected(),
            }
        })?,
        facilitator_id: read::reference_id(
            resource.get("managingEntity").unwrap_or(&Value::Null),
            "Group.managingEntity",
            "Practitioner",
        )?,
    })
}
