//! The store test suite, run on SQLite and on PostgreSQL alike.

mod common;

use chrono::NaiveDate;
use iop_gateway::domain::*;
use iop_gateway::store::{Operation, Store, StoreError};

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn text(s: &str) -> NonEmptyText {
    NonEmptyText::parse(s).unwrap()
}

/// One client with everything around it, built by hand.
struct Graph {
    clinic: Organization,
    hospital: Organization,
    clinician: Staff,
    program: Program,
    group: TherapyGroup,
    client: Client,
    contact: SupportContact,
    referral: Referral,
    enrollment: Enrollment,
    plan: TreatmentPlan,
    goal: Goal,
    intervention: Intervention,
    review: PlanReview,
    note: GoalProgressNote,
    relapse: RelapsePreventionPlan,
    relapse_items: Vec<RelapsePlanItem>,
    consents: Vec<Consent>,
    sessions: Vec<Session>,
    participant: SessionParticipant,
}

fn graph(mrn: &str) -> Graph {
    let clinic = Organization {
        id: Id::generate(),
        kind: OrganizationKind::Clinic,
        name: text("Riverbend IOP"),
        npi: Some(text("1234567893")),
        phone: Some(Phone::parse("555-201-0000").unwrap()),
        address: Some(Address::parse("10 Elm St", "Springfield", "IL", "62701").unwrap()),
    };
    let hospital = Organization {
        id: Id::generate(),
        kind: OrganizationKind::InpatientHospital,
        name: text("St. Jude Behavioral Hospital"),
        npi: None,
        phone: None,
        address: None,
    };
    let clinician = Staff {
        id: Id::generate(),
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
        id: Id::generate(),
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
        id: Id::generate(),
        program_id: program.id,
        name: text("DBT skills"),
        modality: Modality::Dbt,
        facilitator_id: clinician.id,
    };
    let client = Client {
        id: Id::generate(),
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
        id: Id::generate(),
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
        id: Id::generate(),
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
    };
    let enrollment = Enrollment {
        id: Id::generate(),
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
        id: Id::generate(),
        enrollment_id: enrollment.id,
        status: PlanStatus::Active,
        period: DateRange::new(day("2026-09-05"), Some(day("2026-11-28"))).unwrap(),
        author_id: clinician.id,
        review_interval_days: 7,
        next_review_on: Some(day("2026-11-30")),
    };
    let goal = Goal {
        id: Id::generate(),
        plan_id: plan.id,
        description: text("Abstain from alcohol; attend 2 mutual-help meetings a week"),
        target_on: Some(day("2026-11-28")),
        status: GoalStatus::Active,
        achievement: Some(GoalAchievement::Improving),
    };
    let intervention = Intervention {
        id: Id::generate(),
        plan_id: plan.id,
        modality: Modality::GroupTherapy,
        sessions_per_week: 3,
        minutes_per_session: 180,
        staff_id: Some(clinician.id),
    };
    let review = PlanReview {
        id: Id::generate(),
        plan_id: plan.id,
        reviewed_on: day("2026-09-12"),
        reviewer_id: clinician.id,
        summary: text("First weekly review"),
    };
    let note = GoalProgressNote {
        id: Id::generate(),
        goal_id: goal.id,
        review_id: review.id,
        note: text("3 meetings"),
    };
    let relapse = RelapsePreventionPlan {
        id: Id::generate(),
        plan_id: plan.id,
        created_on: day("2026-09-05"),
    };
    let relapse_items = vec![
        RelapsePlanItem {
            id: Id::generate(),
            relapse_plan_id: relapse.id,
            kind: RelapseItemKind::Trigger,
            position: 1,
            text: Some(text("Payday Fridays")),
            support_contact_id: None,
        },
        RelapsePlanItem {
            id: Id::generate(),
            relapse_plan_id: relapse.id,
            kind: RelapseItemKind::SupportContact,
            position: 2,
            text: None,
            support_contact_id: Some(contact.id),
        },
    ];
    let consents = vec![
        Consent {
            id: Id::generate(),
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
            id: Id::generate(),
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
            id: Id::generate(),
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
            id: Id::generate(),
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
        id: Id::generate(),
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

async fn insert_graph(store: &Store, g: &Graph) {
    let mut tx = store.begin().await.unwrap();
    tx.insert(&g.clinic).await.unwrap();
    tx.insert(&g.hospital).await.unwrap();
    tx.insert(&g.clinician).await.unwrap();
    tx.insert(&g.program).await.unwrap();
    tx.insert(&g.group).await.unwrap();
    tx.insert(&g.client).await.unwrap();
    tx.insert(&g.contact).await.unwrap();
    tx.insert(&g.referral).await.unwrap();
    tx.insert(&g.enrollment).await.unwrap();
    tx.insert(&g.plan).await.unwrap();
    tx.insert(&g.goal).await.unwrap();
    tx.insert(&g.intervention).await.unwrap();
    tx.insert(&g.review).await.unwrap();
    tx.insert(&g.note).await.unwrap();
    tx.insert(&g.relapse).await.unwrap();
    tx.insert_many(&g.relapse_items).await.unwrap();
    tx.insert_many(&g.consents).await.unwrap();
    tx.insert_many(&g.sessions).await.unwrap();
    tx.insert(&g.participant).await.unwrap();
    tx.commit().await.unwrap();
}

async fn every_record_round_trips(store: &Store) {
    let g = graph("MRN-1");
    insert_graph(store, &g).await;
    macro_rules! same {
        ($value:expr) => {{
            let stored = store.get($value.id).await.unwrap().expect("stored");
            assert_eq!(stored.record, $value);
            assert_eq!(stored.meta.version, 1);
        }};
    }
    same!(g.clinic);
    same!(g.hospital);
    same!(g.clinician);
    same!(g.program);
    same!(g.group);
    same!(g.client);
    same!(g.contact);
    same!(g.referral);
    same!(g.enrollment);
    same!(g.plan);
    same!(g.goal);
    same!(g.intervention);
    same!(g.review);
    same!(g.note);
    same!(g.relapse);
    same!(g.relapse_items[0]);
    same!(g.relapse_items[1]);
    same!(g.consents[0]);
    same!(g.consents[1]);
    same!(g.sessions[0]);
    same!(g.sessions[1]);
    same!(g.participant);

    let consents = store.children::<Consent>(g.client.id).await.unwrap();
    assert_eq!(
        consents.into_iter().map(|s| s.record).collect::<Vec<_>>(),
        g.consents
    );
    let sessions = store.children::<Session>(g.enrollment.id).await.unwrap();
    assert_eq!(sessions.len(), 2);
    let by_mrn = store.client_by_mrn(&g.client.mrn).await.unwrap().unwrap();
    assert_eq!(by_mrn.record.id, g.client.id);
    assert!(store.get(Id::<Client>::generate()).await.unwrap().is_none());
}

async fn duplicates_are_refused_by_the_database(store: &Store) {
    let g = graph("MRN-2");
    insert_graph(store, &g).await;
    let mut twin = g.client.clone();
    twin.id = Id::generate();
    let err = store.insert(&twin).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Duplicate {
                table: "clients",
                ..
            }
        ),
        "{err:?}"
    );
    let err = store.insert(&g.goal).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Duplicate {
                table: "plan_goals",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(store.count::<Client>().await.unwrap(), 1);
}

async fn references_must_exist(store: &Store) {
    let g = graph("MRN-3");
    let err = store.insert(&g.contact).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::MissingReference {
                table: "support_contacts"
            }
        ),
        "{err:?}"
    );
    assert_eq!(store.count::<SupportContact>().await.unwrap(), 0);
    assert_eq!(store.change_count().await.unwrap(), 0);
}

async fn domain_rules_are_checked_before_writing(store: &Store) {
    let g = graph("MRN-4");
    insert_graph(store, &g).await;
    let mut bad = g.sessions[1].clone();
    bad.id = Id::generate();
    bad.session_type = SessionType::Group; // a group session without its group
    let err = store.insert(&bad).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Invalid {
                table: "sessions",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(store.get(bad.id).await.unwrap().is_none());
}

async fn updates_use_optimistic_concurrency(store: &Store) {
    let g = graph("MRN-5");
    insert_graph(store, &g).await;
    let mut moved = g.client.clone();
    moved.address = Some(Address::parse("77 Pine Rd", "Decatur", "IL", "62521").unwrap());
    let meta = store.update(&moved, 1).await.unwrap();
    assert_eq!(meta.version, 2);
    let stored = store.get(g.client.id).await.unwrap().unwrap();
    assert_eq!(stored.record, moved);
    assert_eq!(stored.meta.version, 2);
    assert!(stored.meta.updated_at >= stored.meta.created_at);

    let err = store.update(&g.client, 1).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::VersionConflict {
                expected: 1,
                actual: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        store.get(g.client.id).await.unwrap().unwrap().record,
        moved,
        "a stale update changes nothing"
    );

    let mut ghost = g.client.clone();
    ghost.id = Id::generate();
    let err = store.update(&ghost, 1).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NotFound {
                table: "clients",
                ..
            }
        ),
        "{err:?}"
    );
}

async fn concurrent_updates_of_one_version_have_one_winner(store: &Store) {
    let g = graph("MRN-6");
    insert_graph(store, &g).await;
    let mut tasks = Vec::new();
    for i in 0..10 {
        let store = store.clone();
        let mut session = g.sessions[0].clone();
        session.attendance = if i % 2 == 0 {
            Attendance::NoShow
        } else {
            Attendance::Late
        };
        tasks.push(tokio::spawn(async move { store.update(&session, 1).await }));
    }
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(meta) => {
                won += 1;
                assert_eq!(meta.version, 2);
            }
            Err(StoreError::VersionConflict { actual: 2, .. }) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(
        store
            .get(g.sessions[0].id)
            .await
            .unwrap()
            .unwrap()
            .meta
            .version,
        2
    );
}

async fn every_change_is_logged_in_the_same_transaction(store: &Store) {
    let g = graph("MRN-7");
    insert_graph(store, &g).await;
    let inserted = store.change_count().await.unwrap();
    assert_eq!(inserted, 22, "one entry per inserted row");

    let mut revoked = g.consents[0].clone();
    revoked.revoked_on = Some(day("2026-10-15"));
    store.update(&revoked, 1).await.unwrap();
    store.delete(g.participant.id, 1).await.unwrap();

    let changes = store.changes_after(inserted, 100).await.unwrap();
    assert_eq!(changes.len(), 2);
    assert_eq!(
        (
            changes[0].table.as_str(),
            changes[0].operation,
            changes[0].row_version
        ),
        ("consents", Operation::Update, 2)
    );
    assert_eq!(changes[0].row_id, g.consents[0].id.to_string());
    assert_eq!(
        (changes[1].table.as_str(), changes[1].operation),
        ("session_participants", Operation::Delete)
    );
    assert!(changes[0].seq < changes[1].seq);

    // A transaction that fails half way leaves neither rows nor log entries.
    let mut tx = store.begin().await.unwrap();
    let mut fresh = graph("MRN-8");
    fresh.client.mrn = Mrn::parse("MRN-8").unwrap();
    tx.insert(&fresh.client).await.unwrap();
    let err = tx.insert(&g.client).await.unwrap_err(); // same id: duplicate
    assert!(err.is_conflict());
    drop(tx);
    assert!(store.get(fresh.client.id).await.unwrap().is_none());
    assert_eq!(store.change_count().await.unwrap(), inserted + 2);
}

async fn pages_walk_every_row_once(store: &Store) {
    let clients: Vec<Client> = (0..25)
        .map(|i| {
            let mut c = graph("X").client;
            c.mrn = Mrn::parse(&format!("PAGE-{i}")).unwrap();
            c
        })
        .collect();
    let mut tx = store.begin().await.unwrap();
    tx.insert_many(&clients).await.unwrap();
    tx.commit().await.unwrap();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.page::<Client>(after, 10).await.unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|s| s.record.id);
        seen.extend(page.into_iter().map(|s| s.record.id));
    }
    let mut expected: Vec<_> = clients.iter().map(|c| c.id).collect();
    expected.sort();
    assert_eq!(seen, expected);
}

async fn migrating_twice_is_harmless(store: &Store) {
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
}

on_both_backends!(
    every_record_round_trips,
    duplicates_are_refused_by_the_database,
    references_must_exist,
    domain_rules_are_checked_before_writing,
    updates_use_optimistic_concurrency,
    concurrent_updates_of_one_version_have_one_winner,
    every_change_is_logged_in_the_same_transaction,
    pages_walk_every_row_once,
    migrating_twice_is_harmless,
);
