//! Clinic -> FHIR -> clinic keeps every mapped field, for generated records of every kind that
//! comes in from outside (Patient, RelatedPerson, Consent, Encounter, EpisodeOfCare, referral
//! ServiceRequest+Task) and for the changes an update carries (Goal, CarePlan, Task).

mod common;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use iop_gateway::domain::*;
use iop_gateway::mapping::*;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::ValueTree;

fn id<T>() -> impl Strategy<Value = Id<T>> {
    any::<u128>().prop_map(|n| Id::from_uuid(uuid::Uuid::from_u128(n)))
}

fn date() -> impl Strategy<Value = NaiveDate> {
    (0_i64..45_000).prop_map(|d| NaiveDate::from_ymd_opt(1930, 1, 1).unwrap() + Duration::days(d))
}

fn period() -> impl Strategy<Value = DateRange> {
    (date(), proptest::option::of(0_i64..2_000)).prop_map(|(start, len)| {
        DateRange::new(start, len.map(|l| start + Duration::days(l))).unwrap()
    })
}

fn words(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[A-Za-zÀ-ÿ][A-Za-zÀ-ÿ' .-]{{0,{max}}}")).unwrap()
}

fn name() -> impl Strategy<Value = PersonName> {
    (words(20), words(30)).prop_filter_map("names trim to text", |(g, f)| {
        PersonName::parse(&g, &f).ok()
    })
}

fn text() -> impl Strategy<Value = NonEmptyText> {
    proptest::string::string_regex("[ -~]{1,120}")
        .unwrap()
        .prop_filter_map("text", |t| NonEmptyText::parse(&t).ok())
}

fn phone() -> impl Strategy<Value = Phone> {
    "[2-9][0-9]{2}-[0-9]{3}-[0-9]{4}".prop_map(|p| Phone::parse(&p).unwrap())
}

fn email() -> impl Strategy<Value = Email> {
    "[a-z0-9._]{1,12}@[a-z]{1,10}\\.(org|com|net)".prop_map(|e| Email::parse(&e).unwrap())
}

fn address() -> impl Strategy<Value = Address> {
    (
        "[1-9][0-9]{0,4} [A-Z][a-z]{2,12} (St|Ave|Rd)",
        words(20),
        "[A-Z]{2}",
        "[0-9]{5}(-[0-9]{4})?",
    )
        .prop_filter_map("address", |(line, city, state, zip)| {
            Address::parse(&line, &city, &state, &zip).ok()
        })
}

fn code<C: Coded + std::fmt::Debug>() -> impl Strategy<Value = C> {
    select(C::ALL)
}

prop_compose! {
    fn client()(
        id in id(), mrn in "[A-Z0-9][A-Z0-9-]{0,31}", name in name(), birth_date in date(), gender in code::<Gender>(),
        phone in proptest::option::of(phone()), email in proptest::option::of(email()),
        address in proptest::option::of(address()),
        language in proptest::option::of(select(vec!["en", "es", "en-US", "zh-Hant", "vi"])),
    ) -> Client {
        Client {
            id, mrn: Mrn::parse(&mrn).unwrap(), name, birth_date, gender, phone, email, address,
            language: language.map(|l| LanguageTag::parse(l).unwrap()),
        }
    }
}

prop_compose! {
    fn support_contact()(
        id in id(), client_id in id(), name in name(), relationship in code::<Relationship>(),
        text in proptest::option::of(text()), roles in (any::<bool>(), any::<bool>(), any::<bool>()),
        phone in proptest::option::of(phone()), email in proptest::option::of(email()), active in period(),
    ) -> SupportContact {
        let relationship_text = if relationship == Relationship::Other { Some(text.unwrap_or_else(|| NonEmptyText::parse("neighbour").unwrap())) } else { text };
        let roles = SupportRoles::new(roles.0, roles.1, roles.2).unwrap_or_else(|_| SupportRoles::new(false, false, true).unwrap());
        SupportContact { id, client_id, name, relationship, relationship_text, roles, phone, email, active }
    }
}

fn scope() -> impl Strategy<Value = InformationScope> {
    prop_oneof![
        Just(InformationScope::All),
        Just(InformationScope::AllExceptSubstanceUse),
        proptest::sample::subsequence(
            InformationCategory::ALL.to_vec(),
            1..=InformationCategory::ALL.len()
        )
        .prop_map(|list| InformationScope::categories(list).unwrap()),
    ]
}

fn recipient() -> impl Strategy<Value = ConsentRecipient> {
    prop_oneof![
        id().prop_map(ConsentRecipient::Organization),
        id().prop_map(ConsentRecipient::Clinician),
        id().prop_map(ConsentRecipient::SupportContact),
    ]
}

prop_compose! {
    fn consent()(
        id in id(), client_id in id(), kind in code::<ConsentKind>(), scope in scope(), recipient in recipient(),
        purpose in code::<ConsentPurpose>(), valid in period(), signed_on in date(),
        revoked_after in proptest::option::of(0_i64..400),
    ) -> Consent {
        Consent { id, client_id, kind, scope, recipient, purpose, valid, signed_on, revoked_on: revoked_after.map(|d| signed_on + Duration::days(d)) }
    }
}

prop_compose! {
    fn session()(
        id in id(), enrollment_id in id(), session_type in code::<SessionType>(), modality in proptest::option::of(code::<Modality>()),
        delivery in code::<SessionDelivery>(), start in 0_i64..2_000_000_000, micros in 0_u32..1_000_000,
        minutes in 15_i64..=480, clinician_id in id(), attendance in code::<Attendance>(), group in id(),
        participants in proptest::collection::vec(id::<SupportContact>(), 0..3),
    ) -> (Session, Vec<Id<SupportContact>>) {
        let at = Utc.timestamp_opt(start, micros * 1_000).unwrap();
        let session = Session {
            id, enrollment_id, session_type, modality, delivery, scheduled_start: Timestamp::from(at),
            length: SessionLength::minutes(minutes).unwrap(), clinician_id, attendance,
            group_id: (session_type == SessionType::Group).then_some(group),
        };
        (session, participants)
    }
}

const CLINIC: u128 = 7;

fn enrollment_state() -> impl Strategy<Value = EnrollmentState> {
    prop_oneof![
        Just(EnrollmentState::Planned),
        Just(EnrollmentState::Active),
        Just(EnrollmentState::OnHold),
        Just(EnrollmentState::Cancelled),
        (0_i64..400, code::<DischargeDisposition>()).prop_map(|(days, disposition)| {
            EnrollmentState::Discharged {
                // Made relative to the admission below.
                on: NaiveDate::from_ymd_opt(1930, 1, 1).unwrap() + Duration::days(days),
                disposition,
            }
        }),
    ]
}

prop_compose! {
    /// An enrollment in the test graph's program (the EpisodeOfCare names its program).
    fn enrollment()(
        id in id(), client_id in id(), referral_id in proptest::option::of(id()), admitted_on in date(),
        state in enrollment_state(), level_of_care in code::<LevelOfCare>(), primary_clinician_id in id(),
    ) -> Enrollment {
        let state = match state {
            EnrollmentState::Discharged { on, disposition } => EnrollmentState::Discharged {
                on: admitted_on + (on - NaiveDate::from_ymd_opt(1930, 1, 1).unwrap()),
                disposition,
            },
            other => other,
        };
        Enrollment {
            id, client_id, program_id: common::graph::graph("IOP0000042").program.id, referral_id,
            referral_source_id: None, admitted_on, state, level_of_care, primary_clinician_id,
        }
    }
}

prop_compose! {
    fn goal()(
        id in id(), plan_id in id(), description in text(), target_on in proptest::option::of(date()),
        status in code::<GoalStatus>(), achievement in proptest::option::of(code::<GoalAchievement>()),
    ) -> Goal {
        Goal { id, plan_id, description, target_on, status, achievement }
    }
}

prop_compose! {
    fn plan()(
        id in id(), enrollment_id in id(), status in code::<PlanStatus>(), period in period(), author_id in id(),
        review_interval_days in 1_u16..=90, next_review_on in proptest::option::of(date()),
    ) -> TreatmentPlan {
        TreatmentPlan { id, enrollment_id, status, period, author_id, review_interval_days, next_review_on }
    }
}

prop_compose! {
    fn referral()(
        id in id(), client_id in id(), inbound in any::<bool>(), kind in code::<ReferralKind>(), status in code::<ReferralStatus>(),
        reason in text(), referred_on in date(), decided_after in 0_i64..30, other in id(), program_id in proptest::option::of(id()),
        status_reason in proptest::option::of(text()), declined_reason in text(),
    ) -> Referral {
        let clinic = Id::from_uuid(uuid::Uuid::from_u128(CLINIC));
        let pending = matches!(status, ReferralStatus::Requested | ReferralStatus::Received);
        let (referring_org_id, receiving_org_id) = if inbound { (other, clinic) } else { (clinic, other) };
        Referral {
            id, client_id,
            direction: if inbound { ReferralDirection::Inbound } else { ReferralDirection::Outbound },
            kind, status, reason, referred_on,
            decided_on: (!pending).then(|| referred_on + Duration::days(decided_after)),
            referring_org_id, receiving_org_id, program_id,
            // A declined referral says why.
            status_reason: if status == ReferralStatus::Declined { Some(declined_reason) } else { status_reason },
            transition_summary: Vec::new(),
        }
    }
}

fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 20).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn patients_round_trip(client in client()) {
        let cfg = MappingConfig::default();
        let fhir = client_to_fhir(&cfg, &client, Sensitivity::Normal);
        prop_assert_eq!(client_from_fhir(&cfg, &fhir).unwrap(), client);
    }

    #[test]
    fn related_persons_round_trip(contact in support_contact()) {
        let fhir = support_contact_to_fhir(&MappingConfig::default(), &contact, Sensitivity::Part2, as_of());
        prop_assert_eq!(support_contact_from_fhir(&fhir, as_of()).unwrap(), contact);
    }

    #[test]
    fn consents_round_trip(consent in consent().prop_filter("a valid consent", |c| c.check().is_ok())) {
        let clinic = Id::from_uuid(uuid::Uuid::from_u128(CLINIC));
        let fhir = consent_to_fhir(&MappingConfig::default(), &consent, clinic, Sensitivity::Normal, as_of());
        prop_assert_eq!(consent_from_fhir(&fhir, as_of()).unwrap(), consent);
    }

    #[test]
    fn encounters_round_trip((session, participants) in session()) {
        let view = SessionView { session: &session, client_id: Id::from_uuid(uuid::Uuid::from_u128(1)), participants: &participants, sensitivity: Sensitivity::Normal };
        let fhir = session_to_fhir(&MappingConfig::default(), &view);
        let (back, back_participants) = session_from_fhir(&fhir).unwrap();
        prop_assert_eq!(back, session);
        prop_assert_eq!(back_participants, participants);
    }

    #[test]
    fn episodes_round_trip(enrollment in enrollment()) {
        let program = common::graph::graph("IOP0000042").program;
        let view = EpisodeView {
            enrollment: &enrollment, program: &program,
            clinic_id: Id::from_uuid(uuid::Uuid::from_u128(CLINIC)), sensitivity: Sensitivity::Part2,
        };
        let fhir = episode_to_fhir(&MappingConfig::default(), &view);
        prop_assert_eq!(enrollment_from_fhir(&fhir).unwrap(), enrollment);
    }

    /// A goal's changes, applied to any stored goal of that id, give the goal back.
    #[test]
    fn goal_changes_round_trip(goal in goal(), stored in goal()) {
        let fhir = goal_to_fhir(&MappingConfig::default(), &goal, Id::from_uuid(uuid::Uuid::from_u128(1)), &[], Sensitivity::Normal);
        let stored = Goal { id: goal.id, plan_id: goal.plan_id, ..stored };
        prop_assert_eq!(goal_changes_from_fhir(&fhir).unwrap().apply(&stored), goal);
    }

    #[test]
    fn plan_changes_round_trip(plan in plan(), stored in plan()) {
        let view = PlanView {
            plan: &plan, client_id: Id::from_uuid(uuid::Uuid::from_u128(1)), goals: &[], interventions: &[],
            reviews: &[], sensitivity: Sensitivity::Normal,
        };
        let fhir = plan_to_fhir(&MappingConfig::default(), &view);
        let stored = TreatmentPlan { id: plan.id, enrollment_id: plan.enrollment_id, author_id: plan.author_id, ..stored };
        prop_assert_eq!(plan_changes_from_fhir(&fhir).unwrap().apply(&stored), plan);
    }

    #[test]
    fn task_changes_round_trip(referral in referral().prop_filter("a valid referral", |r| r.check().is_ok())) {
        let view = ReferralView { referral: &referral, sensitivity: Sensitivity::Normal, progress: Default::default() };
        let task = task_to_fhir(&MappingConfig::default(), &view);
        let stored = Referral { status: ReferralStatus::Requested, decided_on: None, status_reason: None, ..referral.clone() };
        prop_assert_eq!(task_changes_from_fhir(&task, as_of()).unwrap().apply(&stored), referral);
    }

    #[test]
    fn referrals_round_trip(referral in referral().prop_filter("a valid referral", |r| r.check().is_ok())) {
        let cfg = MappingConfig::default();
        let view = ReferralView { referral: &referral, sensitivity: Sensitivity::Normal, progress: Default::default() };
        let (request, task) = (service_request_to_fhir(&cfg, &view), task_to_fhir(&cfg, &view));
        let clinic = Id::from_uuid(uuid::Uuid::from_u128(CLINIC));
        prop_assert_eq!(referral_from_fhir(&request, &task, clinic).unwrap(), referral);
    }
}

/// Incoming resources that cannot become clinic records say where and why, without quoting values.
#[test]
fn bad_incoming_resources_name_the_failing_element() {
    let cfg = MappingConfig::default();
    let patient = serde_json::json!({
        "resourceType": "Patient", "id": "3f2a2f8e-8c57-4a55-9d4c-3a1e5a6f0c11",
        "identifier": [{ "system": cfg.system("mrn"), "value": "IOP0000001" }],
        "name": [{ "family": "Moreno", "given": ["Alex"] }], "gender": "female", "birthDate": "1990-04-12",
    });
    assert!(client_from_fhir(&cfg, &patient).is_ok());

    let mut no_mrn = patient.clone();
    no_mrn["identifier"][0]["system"] = "urn:other".into();
    assert!(
        client_from_fhir(&cfg, &no_mrn)
            .unwrap_err()
            .path()
            .starts_with("Patient.identifier")
    );

    let mut bad_gender = patient.clone();
    bad_gender["gender"] = "f".into();
    let err = client_from_fhir(&cfg, &bad_gender).unwrap_err();
    assert!(
        matches!(&err, MappingError::UnknownCode { path, .. } if path == "Patient.gender"),
        "{err}"
    );

    let mut partial_date = patient.clone();
    partial_date["birthDate"] = "1990-04".into();
    assert_eq!(
        client_from_fhir(&cfg, &partial_date).unwrap_err().path(),
        "Patient.birthDate"
    );

    let mut bad_id = patient.clone();
    bad_id["id"] = "not-a-uuid".into();
    assert_eq!(
        client_from_fhir(&cfg, &bad_id).unwrap_err().path(),
        "Patient.id"
    );

    let mut wrong_type = patient.clone();
    wrong_type["resourceType"] = "Practitioner".into();
    assert_eq!(
        client_from_fhir(&cfg, &wrong_type).unwrap_err().path(),
        "resourceType"
    );

    let mut no_name = patient;
    no_name["name"] = serde_json::json!([]);
    let err = client_from_fhir(&cfg, &no_name).unwrap_err();
    assert_eq!(err.path(), "Patient.name");
    assert!(!err.to_string().contains("Moreno"));
}

#[test]
fn encounters_outside_the_clinic_vocabulary_are_refused() {
    let (session, _) = {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        session().new_tree(&mut runner).unwrap().current()
    };
    let view = SessionView {
        session: &session,
        client_id: Id::from_uuid(uuid::Uuid::from_u128(1)),
        participants: &[],
        sensitivity: Sensitivity::Normal,
    };
    let good = session_to_fhir(&MappingConfig::default(), &view);

    let mut emergency = good.clone();
    emergency["class"]["code"] = "EMER".into();
    assert!(
        matches!(session_from_fhir(&emergency).unwrap_err(), MappingError::UnknownCode { path, .. } if path == "Encounter.class")
    );

    let mut episode_as_patient = good.clone();
    episode_as_patient["episodeOfCare"][0]["reference"] =
        "Patient/3f2a2f8e-8c57-4a55-9d4c-3a1e5a6f0c11".into();
    assert_eq!(
        session_from_fhir(&episode_as_patient).unwrap_err().path(),
        "Encounter.episodeOfCare[0].reference"
    );

    // Without the attendance extension, `status` says what happened; a status the clinic has no
    // attendance for is refused.
    let mut no_attendance = good.clone();
    no_attendance["extension"] = serde_json::json!([]);
    no_attendance["status"] = "entered-in-error".into();
    assert_eq!(
        session_from_fhir(&no_attendance).unwrap_err().path(),
        "Encounter.status"
    );
    let mut bad_attendance = good;
    bad_attendance["extension"][0]["valueCode"] = "asleep".into();
    assert!(
        session_from_fhir(&bad_attendance)
            .unwrap_err()
            .path()
            .starts_with("Encounter.extension")
    );
}

/// A US Core CarePlan (no period, no IOP extensions) changes the status and keeps the rest.
#[test]
fn plan_changes_without_iop_extensions_keep_what_is_stored() {
    let (stored, other) = {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        (
            plan().new_tree(&mut runner).unwrap().current(),
            plan().new_tree(&mut runner).unwrap().current(),
        )
    };
    let status = if stored.status == PlanStatus::Active {
        "completed"
    } else {
        "active"
    };
    let us_core =
        serde_json::json!({ "resourceType": "CarePlan", "status": status, "intent": "plan" });
    let changed = plan_changes_from_fhir(&us_core).unwrap().apply(&stored);
    assert_ne!(changed.status, stored.status);
    assert_eq!(
        TreatmentPlan {
            status: stored.status,
            ..changed
        },
        stored
    );
    // A sender that speaks the extensions and leaves out the next review: none any more.
    let view = PlanView {
        plan: &other,
        client_id: Id::from_uuid(uuid::Uuid::from_u128(1)),
        goals: &[],
        interventions: &[],
        reviews: &[],
        sensitivity: Sensitivity::Normal,
    };
    let mut iop = plan_to_fhir(&MappingConfig::default(), &view);
    iop["extension"] = serde_json::json!([iop["extension"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["url"].as_str().unwrap().ends_with("iop-review-interval"))
        .unwrap()]);
    let stored = TreatmentPlan {
        next_review_on: Some(NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()),
        ..stored
    };
    assert_eq!(
        plan_changes_from_fhir(&iop)
            .unwrap()
            .apply(&stored)
            .next_review_on,
        None
    );
}
