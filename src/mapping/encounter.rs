//! Session <-> IOP Encounter; enrollment -> IOP EpisodeOfCare.

use chrono::{Duration, SecondsFormat};
use serde_json::Value;

use super::codes::{self, ProjectCode};
use super::read::{self, invalid, missing, opt_str, req_str};
use super::{MappingConfig, MappingError, Sensitivity, meta, reference};
use crate::domain::*;
use crate::json_build::fhir;

/// A session with the client it belongs to and the support contacts who took part.
pub struct SessionView<'a> {
    pub session: &'a Session,
    pub client_id: Id<Client>,
    pub participants: &'a [Id<SupportContact>],
    pub sensitivity: Sensitivity,
}

fn instant(t: Timestamp) -> String {
    t.as_datetime().to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn encounter_status(a: Attendance) -> &'static str {
    match a {
        Attendance::Scheduled => "planned",
        Attendance::Attended | Attendance::Late => "finished",
        Attendance::NoShow | Attendance::Cancelled => "cancelled",
    }
}

/// The SNOMED CT therapy code of a session type, where it has one.
fn session_snomed(t: SessionType) -> Option<(&'static str, &'static str)> {
    match t {
        SessionType::Individual => codes::modality_snomed(Modality::IndividualTherapy),
        SessionType::Group => codes::modality_snomed(Modality::GroupTherapy),
        SessionType::Family => codes::modality_snomed(Modality::FamilyTherapy),
        _ => None,
    }
}

fn session_type_concept(t: SessionType) -> Value {
    let mut codings = vec![t.coding()];
    if let Some((code, display)) = session_snomed(t) {
        codings.push(codes::coding(codes::SNOMED, code, display));
    }
    fhir!({ "coding": codings, "text": t.code_display().1 })
}

pub fn session_to_fhir(cfg: &MappingConfig, view: &SessionView<'_>) -> Value {
    let s = view.session;
    let start = s.scheduled_start.as_datetime();
    let end = start + Duration::minutes(i64::from(s.length.as_minutes()));
    let (class_code, class_display) = match s.delivery {
        SessionDelivery::InPerson => ("AMB", "ambulatory"),
        SessionDelivery::Virtual => ("VR", "virtual"),
    };
    let mut extensions = vec![
        fhir!({ "url": codes::extension("iop-attendance"), "valueCode": s.attendance.code_display().0 }),
    ];
    if let Some(group) = s.group_id {
        extensions.push(fhir!({
            "url": codes::extension("iop-therapy-group"),
            "valueReference": reference("Group", group),
        }));
    }
    let mut participants = vec![fhir!({
        "type": [{ "coding": [codes::constant_coding!(codes::PARTICIPATION_TYPE, "PPRF", "primary performer")] }],
        "individual": reference("Practitioner", s.clinician_id),
    })];
    participants.extend(view.participants.iter().map(|c| {
        fhir!({
            "type": [{ "coding": [codes::constant_coding!(codes::PARTICIPATION_TYPE, "PART", "Participation")] }],
            "individual": reference("RelatedPerson", *c),
        })
    }));
    let mut encounter = fhir!({
        "resourceType": "Encounter",
        "id": s.id.text(),
        "meta": meta("iop-encounter", view.sensitivity),
        "extension": extensions,
        "identifier": [cfg.record_identifier("session", s.id)],
        "status": encounter_status(s.attendance),
        "class": codes::coding(codes::ACT_CODE, class_code, class_display),
        "type": [session_type_concept(s.session_type)],
        "subject": reference("Patient", view.client_id),
        "episodeOfCare": [reference("EpisodeOfCare", s.enrollment_id)],
        "participant": participants,
        "period": { "start": instant(s.scheduled_start), "end": instant(Timestamp::from(end)) },
        "length": { "value": s.length.as_minutes(), "unit": "min", "system": "http://unitsofmeasure.org", "code": "min" },
    });
    if let Some(m) = s.modality {
        encounter["serviceType"] = codes::modality_concept(m);
    }
    encounter
}

fn extension_of<'a>(resource: &'a Value, id: &str) -> Option<&'a Value> {
    let url = codes::extension(id);
    read::array(resource, "extension")
        .iter()
        .find(|e| opt_str(e, "url") == Some(url.as_str()))
}

fn project_code<C: ProjectCode>(concept: &Value, path: &str) -> Result<C, MappingError> {
    let system = codes::code_system(C::SYSTEM_ID);
    let code = read::code_in(concept, &system)
        .ok_or_else(|| missing(format!("{path}.coding (system {system})")))?;
    C::from_fhir_code(code).ok_or_else(|| MappingError::UnknownCode {
        path: path.into(),
        code: code.into(),
        expected: C::expected(),
    })
}

fn has_project_code<C: ProjectCode>(concept: &Value) -> bool {
    read::code_in(concept, &codes::code_system(C::SYSTEM_ID)).is_some()
}

/// An incoming Encounter as a session and the support contacts who took part.
pub fn session_from_fhir(
    encounter: &Value,
) -> Result<(Session, Vec<Id<SupportContact>>), MappingError> {
    read::expect_type(encounter, "Encounter")?;
    let attendance = match extension_of(encounter, "iop-attendance")
        .map(|e| opt_str(e, "valueCode"))
    {
        Some(code) => {
            let code =
                code.ok_or_else(|| missing("Encounter.extension(iop-attendance).valueCode"))?;
            Attendance::from_fhir_code(code).ok_or_else(|| MappingError::UnknownCode {
                path: "Encounter.extension(iop-attendance).valueCode".into(),
                code: code.into(),
                expected: Attendance::expected(),
            })?
        }
        // An EHR says what happened with `status` alone.
        None => match req_str(encounter, "status", "Encounter")? {
            "finished" => Attendance::Attended,
            "cancelled" => Attendance::Cancelled,
            "planned" | "arrived" | "triaged" | "in-progress" | "onleave" => Attendance::Scheduled,
            other => {
                return Err(MappingError::UnknownCode {
                    path: "Encounter.status".into(),
                    code: other.into(),
                    expected:
                        "planned, arrived, triaged, in-progress, onleave, finished, cancelled"
                            .into(),
                });
            }
        },
    };
    let delivery = match encounter.get("class").and_then(|c| opt_str(c, "code")) {
        Some("AMB") => SessionDelivery::InPerson,
        Some("VR") => SessionDelivery::Virtual,
        Some(other) => {
            return Err(MappingError::UnknownCode {
                path: "Encounter.class".into(),
                code: other.into(),
                expected: "AMB, VR".into(),
            });
        }
        None => return Err(missing("Encounter.class")),
    };
    let group = extension_of(encounter, "iop-therapy-group");
    let types = read::array(encounter, "type");
    let session_type = match types.iter().position(has_project_code::<SessionType>) {
        Some(i) => project_code::<SessionType>(&types[i], &format!("Encounter.type[{i}]"))?,
        // Another system's visit type (CPT, SNOMED CT): the SNOMED CT therapy codes the gateway
        // emits, else a group session when it names its group, else an individual session.
        None => types
            .iter()
            .find_map(|t| {
                <SessionType as ProjectCode>::ALL
                    .iter()
                    .copied()
                    .find(|st| {
                        session_snomed(*st)
                            .is_some_and(|(code, _)| read::code_in(t, codes::SNOMED) == Some(code))
                    })
            })
            .unwrap_or(if group.is_some() {
                SessionType::Group
            } else {
                SessionType::Individual
            }),
    };
    // A service type of another system says nothing the clinic records.
    let modality = encounter
        .get("serviceType")
        .filter(|c| has_project_code::<Modality>(c))
        .map(|c| project_code::<Modality>(c, "Encounter.serviceType"))
        .transpose()?;
    let period = encounter
        .get("period")
        .ok_or_else(|| missing("Encounter.period"))?;
    let start: Timestamp = read::parse(
        "Encounter.period.start",
        req_str(period, "start", "Encounter.period")?,
    )?;
    let minutes = match encounter
        .get("length")
        .and_then(|l| l.get("value"))
        .and_then(Value::as_i64)
    {
        Some(m) => m,
        None => {
            let end: Timestamp = read::parse(
                "Encounter.period.end",
                req_str(period, "end", "Encounter.period")?,
            )?;
            (end.as_datetime() - start.as_datetime()).num_minutes()
        }
    };
    let episode = read::array(encounter, "episodeOfCare")
        .first()
        .ok_or_else(|| missing("Encounter.episodeOfCare"))?;
    let mut clinician = None;
    let mut contacts = Vec::new();
    for (i, p) in read::array(encounter, "participant").iter().enumerate() {
        let path = format!("Encounter.participant[{i}].individual");
        let Some(individual) = p.get("individual") else {
            continue;
        };
        match opt_str(individual, "reference")
            .and_then(|r| r.split_once('/'))
            .map(|(t, _)| t)
        {
            Some("Practitioner") if clinician.is_none() => {
                clinician = Some(read::reference_id(individual, &path, "Practitioner")?)
            }
            Some("RelatedPerson") => {
                contacts.push(read::reference_id(individual, &path, "RelatedPerson")?)
            }
            _ => {}
        }
    }
    let group_id = group
        .map(|e| {
            let path = "Encounter.extension(iop-therapy-group).valueReference";
            read::reference_id(
                e.get("valueReference").ok_or_else(|| missing(path))?,
                path,
                "Group",
            )
        })
        .transpose()?;
    let session = Session {
        id: read::resource_id(encounter, "Encounter")?,
        enrollment_id: read::reference_id(episode, "Encounter.episodeOfCare[0]", "EpisodeOfCare")?,
        session_type,
        modality,
        delivery,
        scheduled_start: start,
        length: read::domain("Encounter.length", SessionLength::minutes(minutes))?,
        clinician_id: clinician
            .ok_or_else(|| missing("Encounter.participant.individual (a Practitioner)"))?,
        attendance,
        group_id,
    };
    session.check().map_err(|e| invalid("Encounter", e))?;
    Ok((session, contacts))
}

/// An enrollment with its program and the clinic that manages it.
pub struct EpisodeView<'a> {
    pub enrollment: &'a Enrollment,
    pub program: &'a Program,
    pub clinic_id: Id<Organization>,
    pub sensitivity: Sensitivity,
}

pub fn episode_to_fhir(cfg: &MappingConfig, view: &EpisodeView<'_>) -> Value {
    let e = view.enrollment;
    let status = match e.state {
        EnrollmentState::Planned => "planned",
        EnrollmentState::Active => "active",
        EnrollmentState::OnHold => "onhold",
        EnrollmentState::Discharged { .. } => "finished",
        EnrollmentState::Cancelled => "cancelled",
    };
    let mut extensions = vec![fhir!({
        "url": codes::extension("iop-program"),
        "valueReference": reference("HealthcareService", view.program.id),
    })];
    if let Some(disposition) = e.state.disposition() {
        extensions.push(fhir!({
            "url": codes::extension("iop-discharge-disposition"),
            "valueCodeableConcept": { "coding": [disposition.coding()] },
        }));
    }
    let period = super::period(e.admitted_on, e.state.discharged_on());
    let mut episode = fhir!({
        "resourceType": "EpisodeOfCare",
        "id": e.id.text(),
        "meta": meta("iop-episodeofcare", view.sensitivity),
        "extension": extensions,
        "identifier": [cfg.record_identifier("enrollment", e.id)],
        "status": status,
        "type": [{ "coding": [e.level_of_care.coding()], "text": format!("{} ({})", view.program.name.as_str(), view.program.code.as_str()) }],
        "patient": reference("Patient", e.client_id),
        "managingOrganization": reference("Organization", view.clinic_id),
        "period": period,
        "careManager": reference("Practitioner", e.primary_clinician_id),
    });
    if let Some(referral) = e.referral_id {
        episode["referralRequest"] = fhir!([reference("ServiceRequest", referral)]);
    }
    episode
}

/// An incoming EpisodeOfCare as an enrollment. `referral_source_id` is not carried in FHIR: a new
/// enrollment has none, an update keeps the stored one (the caller's job).
pub fn enrollment_from_fhir(episode: &Value) -> Result<Enrollment, MappingError> {
    read::expect_type(episode, "EpisodeOfCare")?;
    let program = extension_of(episode, "iop-program")
        .and_then(|e| e.get("valueReference"))
        .ok_or_else(|| missing("EpisodeOfCare.extension(iop-program)"))?;
    let program_id = read::reference_id(
        program,
        "EpisodeOfCare.extension(iop-program).valueReference",
        "HealthcareService",
    )?;
    let patient = episode
        .get("patient")
        .ok_or_else(|| missing("EpisodeOfCare.patient"))?;
    let manager = episode
        .get("careManager")
        .ok_or_else(|| missing("EpisodeOfCare.careManager"))?;
    let period = episode
        .get("period")
        .ok_or_else(|| missing("EpisodeOfCare.period"))?;
    let admitted_on = read::date(
        "EpisodeOfCare.period.start",
        read::req_str(period, "start", "EpisodeOfCare.period")?,
    )?;
    let ended_on = opt_str(period, "end")
        .map(|end| read::date("EpisodeOfCare.period.end", end))
        .transpose()?;
    let level_of_care = read::array(episode, "type")
        .iter()
        .find_map(|t| project_code::<LevelOfCare>(t, "EpisodeOfCare.type").ok())
        .ok_or_else(|| {
            missing(format!(
                "EpisodeOfCare.type (system {})",
                codes::code_system(LevelOfCare::SYSTEM_ID)
            ))
        })?;
    let status = read::req_str(episode, "status", "EpisodeOfCare")?;
    let state = match status {
        "planned" => EnrollmentState::Planned,
        "active" => EnrollmentState::Active,
        "onhold" => EnrollmentState::OnHold,
        "cancelled" => EnrollmentState::Cancelled,
        "finished" => {
            let disposition = extension_of(episode, "iop-discharge-disposition")
                .and_then(|e| e.get("valueCodeableConcept"))
                .ok_or_else(|| missing("EpisodeOfCare.extension(iop-discharge-disposition)"))?;
            EnrollmentState::Discharged {
                on: ended_on.ok_or_else(|| missing("EpisodeOfCare.period.end"))?,
                disposition: project_code(
                    disposition,
                    "EpisodeOfCare.extension(iop-discharge-disposition).valueCodeableConcept",
                )?,
            }
        }
        other => {
            return Err(MappingError::UnknownCode {
                path: "EpisodeOfCare.status".into(),
                code: other.into(),
                expected: "planned, active, onhold, finished, cancelled".into(),
            });
        }
    };
    let referral_id = read::array(episode, "referralRequest")
        .first()
        .map(|r| read::reference_id(r, "EpisodeOfCare.referralRequest[0]", "ServiceRequest"))
        .transpose()?;
    let enrollment = Enrollment {
        id: read::resource_id(episode, "EpisodeOfCare")?,
        client_id: read::reference_id(patient, "EpisodeOfCare.patient", "Patient")?,
        program_id,
        referral_id,
        referral_source_id: None,
        admitted_on,
        state,
        level_of_care,
        primary_clinician_id: read::reference_id(
            manager,
            "EpisodeOfCare.careManager",
            "Practitioner",
        )?,
    };
    enrollment
        .check()
        .map_err(|e| invalid("EpisodeOfCare", e))?;
    Ok(enrollment)
}
