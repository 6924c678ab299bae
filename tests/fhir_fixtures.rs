//! The FHIR examples in `fixtures/fhir/` are what the mapping makes of a hand-built client: one or
//! more per IOP profile. A change in mapping output fails here until the fixtures are regenerated
//! (`UPDATE_FIXTURES=1 cargo test --test fhir_fixtures`) and the diff reviewed. The incoming
//! directions (Patient, RelatedPerson, Consent, Encounter, referral) must read them back unchanged.

mod common;

use std::path::PathBuf;

use common::graph::{day, fixed_id, graph, text};
use iop_gateway::domain::*;
use iop_gateway::mapping::*;
use serde_json::Value;

const AS_OF: &str = "2026-11-20";

fn fixtures() -> Vec<(&'static str, Value)> {
    let g = graph("IOP0000042");
    let cfg = MappingConfig::default();
    let as_of = day(AS_OF);
    let part2 = Sensitivity::of_programs([&g.program]);
    let mut roi = g.consents[1].clone();
    roi.id = fixed_id("fixtures", "roi");
    roi.kind = ConsentKind::ReleaseOfInformation;
    roi.scope = InformationScope::AllExceptSubstanceUse;
    roi.purpose = ConsentPurpose::CareCoordination;
    roi.revoked_on = None;
    roi.valid = DateRange::new(day("2026-09-03"), Some(day("2027-09-03"))).unwrap();
    let review_notes = [(&g.note, &g.review)];
    let contact_names = [(g.contact.id, g.contact.name.clone())];
    let participants = [g.participant.support_contact_id];
    let outbound = Referral {
        id: fixed_id("fixtures", "outbound"),
        direction: ReferralDirection::Outbound,
        kind: ReferralKind::StepDown,
        status: ReferralStatus::Requested,
        decided_on: None,
        referring_org_id: g.clinic.id,
        receiving_org_id: g.hospital.id,
        program_id: None,
        reason: text("Step-down to outpatient therapy and medication management"),
        referred_on: day("2026-11-18"),
        ..g.referral.clone()
    };
    // The inbound referral led to the graph's enrollment, whose last recorded session was attended.
    let inbound_progress = ReferralProgress {
        enrollment: Some(g.enrollment.state),
        last_attendance: Some(Attendance::Attended),
        session_scheduled: true,
    };
    vec![
        ("Patient-client", client_to_fhir(&cfg, &g.client, part2)),
        (
            "Practitioner-clinician",
            practitioner_to_fhir(&cfg, &g.clinician),
        ),
        ("Organization-clinic", organization_to_fhir(&cfg, &g.clinic)),
        (
            "Organization-hospital",
            organization_to_fhir(&cfg, &g.hospital),
        ),
        ("Group-therapy-group", therapy_group_to_fhir(&cfg, &g.group)),
        (
            "HealthcareService-program",
            program_to_fhir(&cfg, &g.program, g.clinic.id),
        ),
        (
            "CarePlan-treatment-plan",
            plan_to_fhir(
                &cfg,
                &PlanView {
                    plan: &g.plan,
                    client_id: g.client.id,
                    goals: std::slice::from_ref(&g.goal),
                    interventions: std::slice::from_ref(&g.intervention),
                    reviews: std::slice::from_ref(&g.review),
                    sensitivity: part2,
                },
            ),
        ),
        (
            "CarePlan-relapse-prevention-plan",
            relapse_plan_to_fhir(
                &cfg,
                &RelapsePlanView {
                    relapse_plan: &g.relapse,
                    plan: &g.plan,
                    client_id: g.client.id,
                    items: &g.relapse_items,
                    contact_names: &contact_names,
                    sensitivity: part2,
                },
            ),
        ),
        (
            "Goal-goal",
            goal_to_fhir(&cfg, &g.goal, g.client.id, &review_notes, part2),
        ),
        (
            "Encounter-group-session",
            session_to_fhir(
                &cfg,
                &SessionView {
                    session: &g.sessions[0],
                    client_id: g.client.id,
                    participants: &[],
                    sensitivity: part2,
                },
            ),
        ),
        (
            "Encounter-family-session",
            session_to_fhir(
                &cfg,
                &SessionView {
                    session: &g.sessions[1],
                    client_id: g.client.id,
                    participants: &participants,
                    sensitivity: part2,
                },
            ),
        ),
        (
            "EpisodeOfCare-enrollment",
            episode_to_fhir(
                &cfg,
                &EpisodeView {
                    enrollment: &g.enrollment,
                    program: &g.program,
                    clinic_id: g.clinic.id,
                    sensitivity: part2,
                },
            ),
        ),
        (
            "RelatedPerson-support-contact",
            support_contact_to_fhir(&cfg, &g.contact, part2, as_of),
        ),
        (
            "Consent-family-participation",
            consent_to_fhir(&cfg, &g.consents[0], g.clinic.id, part2, as_of),
        ),
        (
            "Consent-part2-disclosure-revoked",
            consent_to_fhir(&cfg, &g.consents[1], g.clinic.id, part2, as_of),
        ),
        (
            "Consent-release-of-information",
            consent_to_fhir(&cfg, &roi, g.clinic.id, part2, as_of),
        ),
        (
            "ServiceRequest-inbound-referral",
            service_request_to_fhir(
                &cfg,
                &ReferralView {
                    referral: &g.referral,
                    sensitivity: part2,
                    progress: inbound_progress.clone(),
                },
            ),
        ),
        (
            "Task-inbound-referral",
            task_to_fhir(
                &cfg,
                &ReferralView {
                    referral: &g.referral,
                    sensitivity: part2,
                    progress: inbound_progress.clone(),
                },
            ),
        ),
        (
            "ServiceRequest-outbound-referral",
            service_request_to_fhir(
                &cfg,
                &ReferralView {
                    referral: &outbound,
                    sensitivity: part2,
                    progress: Default::default(),
                },
            ),
        ),
        (
            "Task-outbound-referral",
            task_to_fhir(
                &cfg,
                &ReferralView {
                    referral: &outbound,
                    sensitivity: part2,
                    progress: Default::default(),
                },
            ),
        ),
    ]
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/fhir")
}

#[test]
fn fixtures_are_what_the_mapping_makes() {
    let update = std::env::var("UPDATE_FIXTURES").is_ok_and(|v| v == "1");
    std::fs::create_dir_all(dir()).unwrap();
    for (name, resource) in fixtures() {
        let path = dir().join(format!("{name}.json"));
        if update {
            std::fs::write(
                &path,
                serde_json::to_string_pretty(&resource).unwrap() + "\n",
            )
            .unwrap();
            continue;
        }
        let stored: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!(
                    "{}: {e}; run UPDATE_FIXTURES=1 cargo test --test fhir_fixtures",
                    path.display()
                )
            }))
            .unwrap();
        assert_eq!(
            stored, resource,
            "{name} differs from the mapping's output; regenerate and review the diff"
        );
    }
}

#[test]
fn every_profile_has_an_example() {
    let profiles: std::collections::BTreeSet<String> = fixtures()
        .iter()
        .flat_map(|(_, r)| {
            r["meta"]["profile"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    for id in [
        "iop-patient",
        "iop-practitioner",
        "iop-organization",
        "iop-program-service",
        "iop-group",
        "iop-careplan",
        "iop-relapse-prevention-plan",
        "iop-goal",
        "iop-encounter",
        "iop-episodeofcare",
        "iop-relatedperson",
        "iop-consent",
        "iop-referral-servicerequest",
        "iop-referral-task",
    ] {
        assert!(
            profiles.contains(&format!(
                "https://iop-gateway.org/fhir/StructureDefinition/{id}"
            )),
            "no example of {id}"
        );
    }
}

#[test]
fn part2_resources_carry_ds4p_security_labels() {
    for (name, resource) in fixtures() {
        let labels: Vec<&str> = resource["meta"]["security"]
            .as_array()
            .map(|a| a.iter().map(|c| c["code"].as_str().unwrap()).collect())
            .unwrap_or_default();
        let about_client = !matches!(
            resource["resourceType"].as_str(),
            Some("Practitioner" | "Organization" | "HealthcareService" | "Group")
        );
        if about_client {
            assert_eq!(labels, ["R", "42CFRPart2", "SUD", "NORDSCLCD"], "{name}");
        } else {
            assert!(labels.is_empty(), "{name}");
        }
    }
}

#[test]
fn incoming_resources_read_back_to_the_same_records() {
    let g = graph("IOP0000042");
    let cfg = MappingConfig::default();
    let all: std::collections::HashMap<_, _> = fixtures().into_iter().collect();
    assert_eq!(
        client_from_fhir(&cfg, &all["Patient-client"]).unwrap(),
        g.client
    );
    assert_eq!(
        support_contact_from_fhir(&all["RelatedPerson-support-contact"], day(AS_OF)).unwrap(),
        g.contact
    );
    assert_eq!(
        consent_from_fhir(&all["Consent-family-participation"], day(AS_OF)).unwrap(),
        g.consents[0]
    );
    assert_eq!(
        consent_from_fhir(&all["Consent-part2-disclosure-revoked"], day(AS_OF)).unwrap(),
        g.consents[1]
    );
    assert_eq!(
        consent_from_fhir(&all["Consent-release-of-information"], day(AS_OF))
            .unwrap()
            .scope,
        InformationScope::AllExceptSubstanceUse
    );
    let (session, participants) = session_from_fhir(&all["Encounter-family-session"]).unwrap();
    assert_eq!(session, g.sessions[1]);
    assert_eq!(participants, vec![g.contact.id]);
    assert_eq!(
        session_from_fhir(&all["Encounter-group-session"])
            .unwrap()
            .0,
        g.sessions[0]
    );
    let referral = referral_from_fhir(
        &all["ServiceRequest-inbound-referral"],
        &all["Task-inbound-referral"],
        g.clinic.id,
    )
    .unwrap();
    assert_eq!(referral, g.referral);
}

#[test]
fn narrative_is_escaped_xhtml() {
    let all: std::collections::HashMap<_, _> = fixtures().into_iter().collect();
    let div = all["CarePlan-treatment-plan"]["text"]["div"]
        .as_str()
        .unwrap();
    assert!(
        div.starts_with("<div xmlns=\"http://www.w3.org/1999/xhtml\">") && div.ends_with("</div>")
    );
    assert!(div.contains("Abstain from alcohol; attend 2 mutual-help meetings a week"));
    assert!(div.contains("Group therapy: 3 times a week, 180 minutes"));
}
