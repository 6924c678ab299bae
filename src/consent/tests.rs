//! Unit tests: one or more per rule of the decision.

use chrono::NaiveDate;
use uuid::Uuid;

use super::*;
use crate::domain::{
    Client, Consent, ConsentKind, ConsentPurpose, ConsentRecipient, DateRange, Enrollment, Id,
    InformationCategory, InformationScope, Organization, SupportContact,
};

fn day(s: &str) -> NaiveDate {
    s.parse().expect("a test date")
}
fn today() -> NaiveDate {
    day("2026-03-01")
}
fn org_id(n: u128) -> Id<Organization> {
    Id::from_uuid(Uuid::from_u128(n))
}
fn org(n: u128) -> String {
    org_id(n).to_string()
}
fn contact(n: u128) -> Id<SupportContact> {
    Id::from_uuid(Uuid::from_u128(0x100 + n))
}
fn consent_id(n: u128) -> Id<Consent> {
    Id::from_uuid(Uuid::from_u128(0x1000 + n))
}

/// A clinic-style permit to one organization.
fn to_org(n: u128, signed: &str, provision: Provision) -> ConsentDirective {
    ConsentDirective {
        id: consent_id(n),
        kind: ConsentKind::ReleaseOfInformation,
        status: DirectiveStatus::Active,
        period: DateRange::open(day(signed)),
        signed_on: day(signed),
        revoked_on: None,
        provision,
    }
}
fn permit_org(o: u128) -> Provision {
    Provision {
        actors: vec![Actor::Organization(org(o))],
        ..Provision::permit()
    }
}

fn plan() -> ResourceFacts {
    ResourceFacts {
        resource_type: "CarePlan".to_owned(),
        data_class: Some(InformationCategory::TreatmentPlan),
        labels: Labels::default(),
    }
}
fn part2_plan() -> ResourceFacts {
    ResourceFacts {
        labels: Labels {
            part2: true,
            sud_counselling_note: false,
        },
        ..plan()
    }
}
fn counselling_note() -> ResourceFacts {
    ResourceFacts {
        resource_type: "DocumentReference".to_owned(),
        data_class: None,
        labels: Labels {
            part2: true,
            sud_counselling_note: true,
        },
    }
}

/// Organizations 1 (the clinic) and 2 (the referral source) are the care team; 3 is not.
const CARE_TEAM: fn() -> Vec<String> = || vec![org(1), org(2)];

fn ask<'a>(
    resource: ResourceFacts,
    recipient: Recipient,
    purpose: PurposeOfUse,
    care_team: &'a [String],
) -> Request<'a> {
    Request {
        resource,
        recipient,
        purpose,
        today: today(),
        care_team,
    }
}
fn to(o: u128) -> Recipient {
    Recipient::Organization(org(o))
}

fn decided_by(decision: &Decision) -> Option<(Id<Consent>, Vec<usize>)> {
    match &decision.basis {
        Basis::Consent(c) => Some((c.id, c.provision.clone())),
        Basis::Rule(_) => None,
    }
}

#[test]
fn consent_not_in_force_is_ignored() {
    let team = CARE_TEAM();
    let request = ask(plan(), to(3), PurposeOfUse::Treat, &team);
    let base = to_org(1, "2026-01-05", permit_org(3));
    let policy = Policy::default();
    assert!(decide(&request, std::slice::from_ref(&base), &policy).permit);

    let draft = ConsentDirective {
        status: DirectiveStatus::Draft,
        ..base.clone()
    };
    let expired = ConsentDirective {
        period: DateRange::new(day("2026-01-05"), Some(day("2026-02-28"))).expect("range"),
        ..base.clone()
    };
    let future = ConsentDirective {
        period: DateRange::open(day("2026-03-02")),
        ..base.clone()
    };
    let signed_tomorrow = ConsentDirective {
        signed_on: day("2026-03-02"),
        period: DateRange::open(day("2026-01-01")),
        ..base.clone()
    };
    for directive in [draft, expired, future, signed_tomorrow] {
        let decision = decide(&request, &[directive], &policy);
        assert!(!decision.permit, "{decision}");
        assert_eq!(
            decision.basis,
            Basis::Rule(Rule::NotOnCareTeam {
                organization: org(3)
            })
        );
    }
    // Both ends of the period are inclusive.
    let ends_today = ConsentDirective {
        period: DateRange::new(day("2026-01-05"), Some(today())).expect("range"),
        ..base.clone()
    };
    let starts_today = ConsentDirective {
        period: DateRange::open(today()),
        signed_on: today(),
        ..base
    };
    assert!(decide(&request, &[ends_today], &policy).permit);
    assert!(decide(&request, &[starts_today], &policy).permit);
}

#[test]
fn consent_revoked_today_no_longer_counts() {
    let team = CARE_TEAM();
    let request = ask(plan(), to(3), PurposeOfUse::Treat, &team);
    let mut directive = to_org(1, "2026-01-05", permit_org(3));
    directive.revoked_on = Some(day("2026-03-02"));
    assert!(
        decide(
            &request,
            std::slice::from_ref(&directive),
            &Policy::default()
        )
        .permit
    );
    directive.revoked_on = Some(today());
    assert!(!decide(&request, &[directive], &Policy::default()).permit);
}

#[test]
fn consent_nested_deny_excepts_sud_data_from_a_permit() {
    let team = CARE_TEAM();
    let all_but_sud = to_org(
        1,
        "2026-01-05",
        Provision {
            exceptions: vec![Provision {
                kind: None, // the opposite of its parent: a deny
                security_labels: vec![SecurityLabel::Sud],
                ..Provision::default()
            }],
            ..permit_org(3)
        },
    );
    let policy = Policy::default();
    let normal = decide(
        &ask(plan(), to(3), PurposeOfUse::Treat, &team),
        std::slice::from_ref(&all_but_sud),
        &policy,
    );
    assert!(normal.permit);
    assert_eq!(decided_by(&normal), Some((consent_id(1), vec![])));
    let sud = decide(
        &ask(part2_plan(), to(3), PurposeOfUse::Treat, &team),
        &[all_but_sud],
        &policy,
    );
    assert!(!sud.permit);
    assert_eq!(decided_by(&sud), Some((consent_id(1), vec![0])));
}

#[test]
fn consent_exception_to_an_exception_permits_again() {
    let team = CARE_TEAM();
    // Everything to organization 3, except Part 2 records, except Part 2 attendance.
    let directive = to_org(
        1,
        "2026-01-05",
        Provision {
            exceptions: vec![Provision {
                security_labels: vec![SecurityLabel::Part2],
                exceptions: vec![Provision {
                    data_classes: vec![InformationCategory::Attendance.into()],
                    ..Provision::default()
                }],
                ..Provision::deny()
            }],
            ..permit_org(3)
        },
    );
    let attendance = ResourceFacts {
        resource_type: "Encounter".to_owned(),
        data_class: Some(InformationCategory::Attendance),
        ..part2_plan()
    };
    let policy = Policy::default();
    let permitted = decide(
        &ask(attendance, to(3), PurposeOfUse::Treat, &team),
        std::slice::from_ref(&directive),
        &policy,
    );
    assert!(permitted.permit);
    assert_eq!(decided_by(&permitted), Some((consent_id(1), vec![0, 0])));
    let denied = decide(
        &ask(part2_plan(), to(3), PurposeOfUse::Treat, &team),
        &[directive],
        &policy,
    );
    assert!(!denied.permit);
    assert_eq!(decided_by(&denied), Some((consent_id(1), vec![0])));
}

#[test]
fn consent_purposes_narrow_a_provision() {
    let team = CARE_TEAM();
    let directive = to_org(
        1,
        "2026-01-05",
        Provision {
            purposes: vec![PurposeOfUse::Hpaymt],
            ..permit_org(3)
        },
    );
    let policy = Policy::default();
    let payment = ask(plan(), to(3), PurposeOfUse::Hpaymt, &team);
    assert!(decide(&payment, std::slice::from_ref(&directive), &policy).permit);
    let treatment = ask(plan(), to(3), PurposeOfUse::Treat, &team);
    let decision = decide(&treatment, &[directive], &policy);
    assert!(!decision.permit);
    assert_eq!(decided_by(&decision), None);
}

#[test]
fn consent_resource_types_narrow_a_provision() {
    let team = CARE_TEAM();
    let directive = to_org(
        1,
        "2026-01-05",
        Provision {
            resource_types: vec!["Encounter".to_owned()],
            ..permit_org(3)
        },
    );
    let policy = Policy::default();
    let encounter = ResourceFacts {
        resource_type: "Encounter".to_owned(),
        ..plan()
    };
    let request = ask(encounter, to(3), PurposeOfUse::Treat, &team);
    assert!(decide(&request, std::slice::from_ref(&directive), &policy).permit);
    let request = ask(plan(), to(3), PurposeOfUse::Treat, &team);
    assert!(!decide(&request, &[directive], &policy).permit);
}

#[test]
fn consent_most_recent_of_disagreeing_directives_decides() {
    let team = CARE_TEAM();
    let request = ask(plan(), to(3), PurposeOfUse::Treat, &team);
    let policy = Policy::default();
    let older_permit = to_org(1, "2026-01-05", permit_org(3));
    let newer_deny = to_org(
        2,
        "2026-02-01",
        Provision {
            kind: Some(ProvisionType::Deny),
            ..permit_org(3)
        },
    );
    let decision = decide(
        &request,
        &[older_permit.clone(), newer_deny.clone()],
        &policy,
    );
    assert!(!decision.permit);
    assert_eq!(decided_by(&decision), Some((consent_id(2), vec![])));

    let newest_permit = to_org(3, "2026-02-15", permit_org(3));
    let decision = decide(&request, &[newest_permit, newer_deny.clone()], &policy);
    assert!(decision.permit);
    assert_eq!(decided_by(&decision), Some((consent_id(3), vec![])));

    // Signed the same day: the greater id decides, in whatever order they come.
    let same_day_permit = to_org(9, "2026-02-01", permit_org(3));
    for directives in [
        [newer_deny.clone(), same_day_permit.clone()],
        [same_day_permit.clone(), newer_deny.clone()],
    ] {
        assert_eq!(
            decided_by(&decide(&request, &directives, &policy)),
            Some((consent_id(9), vec![]))
        );
    }
}

#[test]
fn consent_a_deny_for_a_care_team_organization_beats_the_policy() {
    let team = CARE_TEAM();
    let request = ask(plan(), to(2), PurposeOfUse::Treat, &team);
    let deny = to_org(
        1,
        "2026-01-05",
        Provision {
            kind: Some(ProvisionType::Deny),
            ..permit_org(2)
        },
    );
    assert!(decide(&request, &[], &Policy::default()).permit);
    let decision = decide(&request, &[deny], &Policy::default());
    assert!(!decision.permit);
    assert_eq!(decided_by(&decision), Some((consent_id(1), vec![])));
}

#[test]
fn consent_part2_without_a_consent_is_denied_even_to_the_care_team() {
    let team = CARE_TEAM();
    let request = ask(part2_plan(), to(1), PurposeOfUse::Treat, &team);
    let decision = decide(&request, &[], &Policy::default());
    assert!(!decision.permit);
    assert_eq!(
        decision.basis,
        Basis::Rule(Rule::Part2WithoutConsent { recipient: to(1) })
    );
    // A consent for treatment plans that does not name substance-use records releases none.
    let plans_only = to_org(
        1,
        "2026-01-05",
        Provision {
            data_classes: vec![InformationCategory::TreatmentPlan.into()],
            ..permit_org(1)
        },
    );
    assert!(!decide(&request, &[plans_only], &Policy::default()).permit);
}

#[test]
fn consent_single_tpo_consent_permits_payment_of_part2_data() {
    let team = CARE_TEAM();
    // §2.31: one consent for all future treatment, payment and health care operations.
    let tpo = ConsentDirective {
        kind: ConsentKind::Part2Disclosure,
        ..to_org(
            1,
            "2025-06-01",
            Provision {
                purposes: vec![
                    PurposeOfUse::Treat,
                    PurposeOfUse::Hpaymt,
                    PurposeOfUse::Hoperat,
                ],
                ..permit_org(3)
            },
        )
    };
    let policy = Policy::default();
    for purpose in [
        PurposeOfUse::Treat,
        PurposeOfUse::Hpaymt,
        PurposeOfUse::Hoperat,
    ] {
        let request = ask(part2_plan(), to(3), purpose, &team);
        let decision = decide(&request, std::slice::from_ref(&tpo), &policy);
        assert!(decision.permit, "{decision}");
        assert!(decision.needs_redisclosure_notice(&request.resource));
    }
    let research = ask(part2_plan(), to(3), PurposeOfUse::Hresch, &team);
    assert!(!decide(&research, &[tpo], &policy).permit);
}

#[test]
fn consent_sud_counselling_notes_need_a_directive_of_their_own() {
    let team = CARE_TEAM();
    let request = ask(counselling_note(), to(3), PurposeOfUse::Treat, &team);
    let policy = Policy::default();
    let general = to_org(1, "2026-01-05", permit_org(3));
    let part2 = to_org(
        2,
        "2026-01-06",
        Provision {
            data_classes: vec![InformationCategory::SubstanceUse.into()],
            ..permit_org(3)
        },
    );
    let decision = decide(&request, &[general.clone(), part2.clone()], &policy);
    assert!(!decision.permit);
    assert_eq!(
        decision.basis,
        Basis::Rule(Rule::CounsellingNotesWithoutConsent { recipient: to(3) })
    );
    let notes = to_org(
        3,
        "2025-12-01",
        Provision {
            data_classes: vec![DataClass::SudCounsellingNotes],
            ..permit_org(3)
        },
    );
    let decision = decide(&request, &[general, part2, notes], &policy);
    assert!(decision.permit);
    assert_eq!(decided_by(&decision), Some((consent_id(3), vec![])));
}

#[test]
fn consent_support_contacts_only_through_a_directive_naming_them() {
    let team = CARE_TEAM();
    let policy = Policy::default();
    let mother = Recipient::SupportContact(contact(1));
    let request = ask(plan(), mother.clone(), PurposeOfUse::Treat, &team);
    // Not the default policy.
    let decision = decide(&request, &[], &policy);
    assert_eq!(
        decision.basis,
        Basis::Rule(Rule::SupportContactWithoutConsent {
            contact: contact(1)
        })
    );
    assert!(!decision.permit);
    // Not a consent that names no one.
    let anyone = to_org(1, "2026-01-05", Provision::permit());
    assert!(!decide(&request, std::slice::from_ref(&anyone), &policy).permit);
    // Not a consent naming someone else.
    let sibling = to_org(
        2,
        "2026-01-05",
        Provision {
            actors: vec![Actor::SupportContact(contact(2))],
            ..Provision::permit()
        },
    );
    assert!(!decide(&request, std::slice::from_ref(&sibling), &policy).permit);
    // A family-participation consent naming her does.
    let family = directive_from(&stored(
        4,
        ConsentKind::FamilyParticipation,
        InformationScope::All,
        ConsentRecipient::SupportContact(contact(1)),
        ConsentPurpose::FamilyParticipation,
    ));
    let decision = decide(&request, &[anyone, sibling, family], &policy);
    assert!(decision.permit);
    assert_eq!(decided_by(&decision), Some((consent_id(4), vec![])));
}

#[test]
fn consent_a_deny_naming_a_contact_with_a_permit_inside_permits_what_it_names() {
    let team = CARE_TEAM();
    // Nothing to my mother, except my attendance.
    let directive = to_org(
        1,
        "2026-01-05",
        Provision {
            actors: vec![Actor::SupportContact(contact(1))],
            exceptions: vec![Provision {
                data_classes: vec![InformationCategory::Attendance.into()],
                ..Provision::default()
            }],
            ..Provision::deny()
        },
    );
    let attendance = ResourceFacts {
        data_class: Some(InformationCategory::Attendance),
        ..plan()
    };
    let mother = Recipient::SupportContact(contact(1));
    let policy = Policy::default();
    let request = ask(attendance, mother.clone(), PurposeOfUse::Famrqt, &team);
    assert!(decide(&request, std::slice::from_ref(&directive), &policy).permit);
    let request = ask(plan(), mother, PurposeOfUse::Famrqt, &team);
    assert!(!decide(&request, &[directive], &policy).permit);
}

#[test]
fn consent_default_mental_health_policy() {
    let team = CARE_TEAM();
    let policy = Policy::default();
    let permit = |o, purpose| decide(&ask(plan(), to(o), purpose, &team), &[], &policy);
    let treatment = permit(2, PurposeOfUse::Treat);
    assert!(treatment.permit);
    assert_eq!(
        treatment.to_string(),
        "permitted by the mental-health policy: treatment (TREAT) by a care-team organization"
    );
    assert!(permit(1, PurposeOfUse::Coc).permit);
    let outsider = permit(3, PurposeOfUse::Treat);
    assert!(!outsider.permit);
    assert_eq!(
        outsider.basis,
        Basis::Rule(Rule::NotOnCareTeam {
            organization: org(3)
        })
    );
    let payment = permit(2, PurposeOfUse::Hpaymt);
    assert!(!payment.permit);
    assert!(matches!(
        payment.basis,
        Basis::Rule(Rule::PurposeNotTreatment { .. })
    ));
    assert!(!permit(2, PurposeOfUse::Etreat).permit);
    assert!(!permit(2, PurposeOfUse::from_code("XYZ")).permit);
}

#[test]
fn consent_policy_can_be_switched_off_or_widened() {
    let team = CARE_TEAM();
    let request = ask(plan(), to(1), PurposeOfUse::Treat, &team);
    let off = Policy {
        mental_health: MentalHealthPolicy::off(),
    };
    let decision = decide(&request, &[], &off);
    assert!(!decision.permit);
    assert_eq!(
        decision.basis,
        Basis::Rule(Rule::PolicyOff {
            organization: org(1)
        })
    );
    // A consent still permits.
    assert!(decide(&request, &[to_org(1, "2026-01-05", permit_org(1))], &off).permit);
    let with_emergencies = Policy {
        mental_health: MentalHealthPolicy {
            treatment_purposes: vec![PurposeOfUse::Treat, PurposeOfUse::Etreat],
            ..MentalHealthPolicy::default()
        },
    };
    let emergency = ask(plan(), to(1), PurposeOfUse::Etreat, &team);
    assert!(decide(&emergency, &[], &with_emergencies).permit);
}

#[test]
fn consent_clinician_actor_is_not_their_organization() {
    let team = CARE_TEAM();
    let request = ask(plan(), to(3), PurposeOfUse::Treat, &team);
    let clinician = to_org(
        1,
        "2026-01-05",
        Provision {
            actors: vec![Actor::Clinician(Id::from_uuid(Uuid::from_u128(3)))],
            ..Provision::permit()
        },
    );
    assert!(!decide(&request, &[clinician], &Policy::default()).permit);
}

fn stored(
    n: u128,
    kind: ConsentKind,
    scope: InformationScope,
    recipient: ConsentRecipient,
    purpose: ConsentPurpose,
) -> Consent {
    let consent = Consent {
        id: consent_id(n),
        client_id: Id::<Client>::from_uuid(Uuid::from_u128(0x9)),
        kind,
        scope,
        recipient,
        purpose,
        valid: DateRange::new(day("2026-01-05"), Some(day("2026-12-31"))).expect("range"),
        signed_on: day("2026-01-05"),
        revoked_on: None,
    };
    consent.check().expect("a consistent test consent");
    consent
}

#[test]
fn consent_directive_from_a_stored_consent() {
    let team = CARE_TEAM();
    let policy = Policy::default();
    let roi = |n, scope| {
        directive_from(&stored(
            n,
            ConsentKind::ReleaseOfInformation,
            scope,
            ConsentRecipient::Organization(org_id(3)),
            ConsentPurpose::CareCoordination,
        ))
    };
    let all = roi(1, InformationScope::All);
    let except_sud = roi(2, InformationScope::AllExceptSubstanceUse);
    let plans = roi(
        3,
        InformationScope::categories(vec![InformationCategory::TreatmentPlan]).expect("list"),
    );
    let plans_and_sud = roi(
        4,
        InformationScope::categories(vec![
            InformationCategory::TreatmentPlan,
            InformationCategory::SubstanceUse,
        ])
        .expect("list"),
    );
    assert_eq!(all.status, DirectiveStatus::Active);
    assert_eq!(
        all.provision.purposes,
        vec![
            PurposeOfUse::Coc,
            PurposeOfUse::Caremgt,
            PurposeOfUse::Treat
        ]
    );
    let outcome = |directive: &ConsentDirective, resource: ResourceFacts, purpose| {
        decide(
            &ask(resource, to(3), purpose, &team),
            std::slice::from_ref(directive),
            &policy,
        )
        .permit
    };
    use PurposeOfUse::{Coc, Hpaymt, Treat};
    assert!(outcome(&all, part2_plan(), Treat));
    assert!(!outcome(&all, part2_plan(), Hpaymt));
    assert!(!outcome(&all, counselling_note(), Treat));
    assert!(outcome(&except_sud, plan(), Coc));
    assert!(!outcome(&except_sud, part2_plan(), Coc));
    let sud_class = ResourceFacts {
        data_class: Some(InformationCategory::SubstanceUse),
        ..plan()
    };
    assert!(!outcome(&except_sud, sud_class, Coc));
    assert!(outcome(&plans, plan(), Treat));
    assert!(!outcome(&plans, part2_plan(), Treat));
    let medications = ResourceFacts {
        data_class: Some(InformationCategory::Medications),
        ..plan()
    };
    assert!(!outcome(&plans, medications, Treat));
    assert!(outcome(&plans_and_sud, part2_plan(), Treat));

    let mut revoked = stored(
        5,
        ConsentKind::Part2Disclosure,
        InformationScope::All,
        ConsentRecipient::Organization(org_id(3)),
        ConsentPurpose::Payment,
    );
    revoked.revoked_on = Some(day("2026-02-01"));
    let directive = directive_from(&revoked);
    assert_eq!(directive.revoked_on, revoked.revoked_on);
    assert_eq!(directive.provision.purposes, vec![Hpaymt]);
    assert!(!directive.in_force_on(today()));
    assert_eq!(directive.in_force_on(today()), revoked.in_force_on(today()));
}

#[test]
fn consent_decisions_read_as_sentences() {
    let team = CARE_TEAM();
    let request = ask(part2_plan(), to(3), PurposeOfUse::Treat, &team);
    let policy = Policy::default();
    assert_eq!(
        decide(&request, &[], &policy).to_string(),
        format!(
            "denied: Part 2 data and no consent permits organization {}",
            org(3)
        )
    );
    let directive = to_org(7, "2026-01-05", permit_org(3));
    assert_eq!(
        decide(&request, &[directive], &policy).to_string(),
        format!(
            "permitted by consent {} (release of information, signed 2026-01-05)",
            consent_id(7)
        )
    );
    let basis = ConsentBasis {
        id: consent_id(7),
        kind: ConsentKind::Part2Disclosure,
        signed_on: day("2026-01-05"),
        provision: vec![0, 1],
    };
    assert_eq!(
        Decision {
            permit: false,
            basis: Basis::Consent(basis)
        }
        .to_string(),
        format!(
            "denied by consent {} (42 CFR Part 2 disclosure, signed 2026-01-05), exception 1.2",
            consent_id(7)
        )
    );
}

#[test]
fn consent_redisclosure_notice_only_for_released_part2_records() {
    let team = CARE_TEAM();
    let policy = Policy::default();
    let normal = ask(plan(), to(1), PurposeOfUse::Treat, &team);
    let decision = decide(&normal, &[], &policy);
    assert!(decision.permit && !decision.needs_redisclosure_notice(&normal.resource));
    let part2 = ask(part2_plan(), to(1), PurposeOfUse::Treat, &team);
    let decision = decide(&part2, &[], &policy);
    assert!(!decision.needs_redisclosure_notice(&part2.resource));
}

#[test]
fn consent_labels_from_security_codes() {
    assert_eq!(Labels::from_codes(["R", "NORDSCLCD"]), Labels::default());
    assert!(Labels::from_codes(["42CFRPart2"]).part2);
    assert!(Labels::from_codes(["SUD"]).is_part2());
    let note = Labels::from_codes(["SUD", "PSYTHPN"]);
    assert!(note.sud_counselling_note);
    assert!(!Labels::from_codes(["PSYTHPN"]).sud_counselling_note);
    assert_eq!(
        Labels::of(crate::mapping::Sensitivity::Part2),
        Labels {
            part2: true,
            sud_counselling_note: false
        }
    );
}

#[test]
fn consent_care_team_is_the_clinic_and_the_referral_sources() {
    let enrollment = |source: Option<Id<Organization>>| Enrollment {
        id: Id::generate(),
        client_id: Id::generate(),
        program_id: Id::generate(),
        referral_id: None,
        referral_source_id: source,
        admitted_on: day("2026-01-05"),
        state: crate::domain::EnrollmentState::Active,
        level_of_care: crate::domain::LevelOfCare::IntensiveOutpatient,
        primary_clinician_id: Id::generate(),
    };
    let enrollments = [
        enrollment(Some(org_id(2))),
        enrollment(None),
        enrollment(Some(org_id(2))),
    ];
    assert_eq!(
        care_team(&[org(1)], &enrollments, &[]),
        vec![org(1), org(2)]
    );
    // A pending or accepted referral puts the other side on the team (the referrer of an
    // inbound one, the receiver of an outbound one); a declined one does not.
    use crate::domain::{ReferralDirection as D, ReferralStatus as S};
    let referral = |from: u128, direction: D, status| crate::domain::Referral {
        id: Id::generate(),
        client_id: Id::generate(),
        direction,
        kind: crate::domain::ReferralKind::StepDown,
        status,
        reason: crate::domain::NonEmptyText::parse("r").unwrap(),
        referred_on: day("2026-01-01"),
        decided_on: None,
        referring_org_id: if direction == D::Inbound {
            org_id(from)
        } else {
            org_id(1)
        },
        receiving_org_id: if direction == D::Inbound {
            org_id(1)
        } else {
            org_id(from)
        },
        program_id: None,
        status_reason: None,
        transition_summary: Vec::new(),
    };
    let referrals = [
        referral(3, D::Inbound, S::Received),
        referral(4, D::Inbound, S::Declined),
        referral(5, D::Outbound, S::Requested),
        referral(6, D::Inbound, S::Accepted),
        referral(7, D::Outbound, S::Cancelled),
    ];
    assert_eq!(
        care_team(&[org(1)], &enrollments, &referrals),
        vec![org(1), org(2), org(3), org(5), org(6)]
    );
}

#[test]
fn consent_disagreeing_exceptions_at_one_level_resolve_to_deny() {
    let team = CARE_TEAM();
    let exceptions = vec![
        Provision {
            purposes: vec![PurposeOfUse::Treat],
            ..Provision::permit()
        },
        Provision {
            resource_types: vec!["CarePlan".to_owned()],
            ..Provision::deny()
        },
    ];
    let request = ask(plan(), to(3), PurposeOfUse::Treat, &team);
    for order in [exceptions.clone(), exceptions.into_iter().rev().collect()] {
        let deny_index = order
            .iter()
            .position(|p| p.kind == Some(ProvisionType::Deny))
            .expect("a deny");
        let directive = to_org(
            1,
            "2026-01-05",
            Provision {
                exceptions: order,
                ..permit_org(3)
            },
        );
        let decision = decide(&request, &[directive], &Policy::default());
        assert!(!decision.permit);
        assert_eq!(
            decided_by(&decision),
            Some((consent_id(1), vec![deny_index]))
        );
    }
}
