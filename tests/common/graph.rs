//! One client with everything around it, built by hand: the store tests' data and the source of
//! the FHIR fixtures.
#![allow(dead_code)]

use chrono::NaiveDate;
use iop_gateway::domain::*;

/// A stable id for `name` within one graph, so fixtures do not change from run to run.
pub fn fixed_id<T>(scope: &str, name: &str) -> Id<T> {
    Id::from_uuid(uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("iop-test:{scope}:{name}").as_bytes(),
    ))
}

pub fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

pub fn text(s: &str) -> NonEmptyText {
    NonEmptyText::parse(s).unwrap()
}

/// One client with everything around it, built by hand.
pub struct Graph {
    pub clinic: Organization,
    pub hospital: Organization,
    pub clinician: Staff,
    pub program: Program,
    pub group: TherapyGroup,
    pub client: Client,
    pub contact: SupportContact,
    pub referral: Referral,
    pub enrollment: Enrollment,
    pub plan: TreatmentPlan,
    pub goal: Goal,
    pub intervention: Intervention,
    pub review: PlanReview,
    pub note: GoalProgressNote,
    pub relapse: RelapsePreventionPlan,
    pub relapse_items: Vec<RelapsePlanItem>,
    pub consents: Vec<Consent>,
    pub sessions: Vec<Session>,
    pub participant: SessionParticipant,
}

pub fn graph(mrn: &str) -> Graph {
    let clinic = Organization {
        id: fixed_id(mrn, "1"),
        kind: OrganizationKind::Clinic,
        name: text("Riverbend IOP"),
        npi: Some(text("1234567893")),
        phone: Some(Phone::parse("555-201-0000").unwrap()),
        address: Some(Address::parse("10 Elm St", "Springfield", "IL", "62701").unwrap()),
    };
    let hospital = Organization {
        id: fixed_id(mrn, "2"),
        kind: OrganizationKind::InpatientHospital,
        name: text("St. Jude Behavioral Hospital"),
        npi: None,
        phone: None,
        address: None,
    };
    let clinician = Staff {
        id: fixed_id(mrn, "3"),
        organization_id: clinic.id,
        name: PersonName::parse("Dana", "Reyes").unwrap(),
        role: StaffRole::ClinicalSocialWorker,
        credentials: Some(text("LCSW")),
        npi: None,
        email: Some(Email::parse("dreyes@riverbend.example").unwrap()),
        phone: None,
        active: true,
    };
    let program = Program {
        id: fixed_id(mrn, "4"),
        code: text(&format!("sud-iop-{mrn}")),
        name: text("Substance-use IOP"),
        population: ProgramPopulation::Adult,
        focus: ProgramFocus::SubstanceUse,
        asam_level: Some(text("2.1")),
        part2: true,
        delivery: ProgramDelivery::Hybrid,
        intensity: ProgramIntensity::new(4, 12).unwrap(),
    };
    let group = TherapyGroup {
        id: fixed_id(mrn, "5"),
        program_id: program.id,
        name: text("DBT skills"),
        modality: Modality::Dbt,
        facilitator_id: clinician.id,
    };
    let client = Client {
        id: fixed_id(mrn, "6"),
        mrn: Mrn::parse(mrn).unwrap(),
        name: PersonName::parse("Alex", "Moreno").unwrap(),
        birth_date: day("1990-04-12"),
        gender: Gender::Female,
        phone: Some(Phone::parse("(555) 301-4455").unwrap()),
        email: None,
        address: Some(Address::parse("5 Oak Ave", "Springfield", "IL", "62704").unwrap()),
        language: Some(LanguageTag::parse("es-MX").unwrap()),
    };
    let contact = SupportContact {
        id: fixed_id(mrn, "7"),
        client_id: client.id,
        name: PersonName::parse("Sam", "Moreno").unwrap(),
        relationship: Relationship::Other,
        relationship_text: Some(text("godmother")),
        roles: SupportRoles::new(true, true, false).unwrap(),
        phone: Some(Phone::parse("555-301-9999").unwrap()),
        email: None,
        active: DateRange::new(day("2026-09-01"), Some(day("2027-09-01"))).unwrap(),
    };
    let referral = Referral {
        id: fixed_id(mrn, "8"),
        client_id: client.id,
        direction: ReferralDirection::Inbound,
        kind: ReferralKind::StepDown,
        status: ReferralStatus::Accepted,
        reason: text("Step-down after detox and 10-day inpatient stay"),
        referred_on: day("2026-09-01"),
        decided_on: Some(day("2026-09-02")),
        referring_org_id: hospital.id,
        receiving_org_id: clinic.id,
        program_id: Some(program.id),
        status_reason: None,
        transition_summary: Vec::new(),
    };
    let enrollment = Enrollment {
        id: fixed_id(mrn, "9"),
        client_id: client.id,
        program_id: program.id,
        referral_id: Some(referral.id),
        referral_source_id: Some(hospital.id),
        admitted_on: day("2026-09-03"),
        state: EnrollmentState::Active,
        level_of_care: LevelOfCare::IntensiveOutpatient,
        primary_clinician_id: clinician.id,
    };
    let plan = TreatmentPlan {
        id: fixed_id(mrn, "10"),
        enrollment_id: enrollment.id,
        status: PlanStatus::Active,
        period: DateRange::new(day("2026-09-05"), Some(day("2026-11-28"))).unwrap(),
        author_id: clinician.id,
        review_interval_days: 7,
        next_review_on: Some(day("2026-11-30")),
    };
    let goal = Goal {
        id: fixed_id(mrn, "11"),
        plan_id: plan.id,
        description: text("Abstain from alcohol; attend 2 mutual-help meetings a week"),
        target_on: Some(day("2026-11-28")),
        status: GoalStatus::Active,
        achievement: Some(GoalAchievement::Improving),
    };
    let intervention = Intervention {
        id: fixed_id(mrn, "12"),
        plan_id: plan.id,
        modality: Modality::GroupTherapy,
        sessions_per_week: 3,
        minutes_per_session: 180,
        staff_id: Some(clinician.id),
    };
    let review = PlanReview {
        id: fixed_id(mrn, "13"),
        plan_id: plan.id,
        reviewed_on: day("2026-09-12"),
        reviewer_id: clinician.id,
        summary: text("First weekly review"),
    };
    let note = GoalProgressNote {
        id: fixed_id(mrn, "14"),
        goal_id: goal.id,
        review_id: review.id,
        note: text("3 meetings"),
    };
    let relapse = RelapsePreventionPlan {
        id: fixed_id(mrn, "15"),
        plan_id: plan.id,
        created_on: day("2026-09-05"),
    };
    let relapse_items = vec![
        RelapsePlanItem {
            id: fixed_id(mrn, "16"),
            relapse_plan_id: relapse.id,
            kind: RelapseItemKind::Trigger,
            position: 1,
            text: Some(text("Payday Fridays")),
            support_contact_id: None,
        },
        RelapsePlanItem {
            id: fixed_id(mrn, "17"),
            relapse_plan_id: relapse.id,
            kind: RelapseItemKind::SupportContact,
            position: 2,
            text: None,
            support_contact_id: Some(contact.id),
        },
    ];
    let consents = vec![
        Consent {
            id: fixed_id(mrn, "18"),
            client_id: client.id,
            kind: ConsentKind::FamilyParticipation,
            scope: InformationScope::categories(vec![
                InformationCategory::TreatmentPlan,
                InformationCategory::Attendance,
            ])
            .unwrap(),
            recipient: ConsentRecipient::SupportContact(contact.id),
            purpose: ConsentPurpose::FamilyParticipation,
            valid: DateRange::new(day("2026-09-03"), Some(day("2027-03-03"))).unwrap(),
            signed_on: day("2026-09-03"),
            revoked_on: None,
        },
        Consent {
            id: fixed_id(mrn, "19"),
            client_id: client.id,
            kind: ConsentKind::Part2Disclosure,
            scope: InformationScope::All,
            recipient: ConsentRecipient::Organization(hospital.id),
            purpose: ConsentPurpose::Treatment,
            valid: DateRange::open(day("2026-09-03")),
            signed_on: day("2026-09-03"),
            revoked_on: Some(day("2026-10-01")),
        },
    ];
    let at = |s: &str| s.parse::<Timestamp>().unwrap();
    let sessions = vec![
        Session {
            id: fixed_id(mrn, "20"),
            enrollment_id: enrollment.id,
            session_type: SessionType::Group,
            modality: Some(Modality::Dbt),
            delivery: SessionDelivery::InPerson,
            scheduled_start: at("2026-09-08T15:00:00Z"),
            length: SessionLength::minutes(180).unwrap(),
            clinician_id: clinician.id,
            attendance: Attendance::Attended,
            group_id: Some(group.id),
        },
        Session {
            id: fixed_id(mrn, "21"),
            enrollment_id: enrollment.id,
            session_type: SessionType::Family,
            modality: Some(Modality::FamilyTherapy),
            delivery: SessionDelivery::Virtual,
            scheduled_start: at("2026-09-10T22:30:00Z"),
            length: SessionLength::minutes(60).unwrap(),
            clinician_id: clinician.id,
            attendance: Attendance::Late,
            group_id: None,
        },
    ];
    let participant = SessionParticipant {
        id: fixed_id(mrn, "22"),
        session_id: sessions[1].id,
        support_contact_id: contact.id,
    };
    Graph {
        clinic,
        hospital,
        clinician,
        program,
        group,
        client,
        contact,
        referral,
        enrollment,
        plan,
        goal,
        intervention,
        review,
        note,
        relapse,
        relapse_items,
        consents,
        sessions,
        participant,
    }
}
