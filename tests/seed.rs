//! Seeding: deterministic, realistic, at most once per database — on SQLite and PostgreSQL.

mod common;

use std::collections::{BTreeMap, HashMap};

use chrono::{Datelike, NaiveDate};
use iop_gateway::domain::*;
use iop_gateway::seed::{SeedError, SeedOptions, SeedOutcome, seed};
use iop_gateway::store::{Record, Store, Stored};

const AS_OF: &str = "2026-11-20";

fn options(clients: u32) -> SeedOptions {
    SeedOptions {
        clients,
        seed: 7,
        as_of: AS_OF.parse().unwrap(),
    }
}

async fn all<R: Record>(store: &Store) -> Vec<Stored<R>> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store.page::<R>(after, 500).await.unwrap();
        if page.is_empty() {
            return out;
        }
        after = page.last().map(|s| s.record.id());
        out.extend(page);
    }
}

async fn records<R: Record>(store: &Store) -> Vec<R> {
    all::<R>(store)
        .await
        .into_iter()
        .map(|s| s.record)
        .collect()
}

async fn seeding_twice_adds_nothing(store: &Store) {
    let outcome = seed(store, options(40), |_, _| {}).await.unwrap();
    let SeedOutcome::Seeded { clients: 40, rows } = outcome else {
        panic!("{outcome:?}")
    };
    let changes = store.change_count().await.unwrap();
    let log = store.changes_after(0, u32::MAX).await.unwrap();
    let inserts = log
        .iter()
        .filter(|c| c.operation == iop_gateway::store::Operation::Insert)
        .count();
    assert_eq!(
        inserts as u64, rows,
        "every seeded row is in the change log"
    );
    // A seed writes every record new in one transaction: no version bumps in between.
    assert_eq!(changes as u64, rows, "only inserts");

    let again = seed(store, options(40), |_, _| {}).await.unwrap();
    assert!(
        matches!(again, SeedOutcome::AlreadySeeded(ref run) if run.clients == 40 && run.seed == 7),
        "{again:?}"
    );
    assert_eq!(store.change_count().await.unwrap(), changes);
    assert_eq!(store.count::<Client>().await.unwrap(), 40);

    let different = seed(
        store,
        SeedOptions {
            clients: 50,
            ..options(40)
        },
        |_, _| {},
    )
    .await
    .unwrap_err();
    assert!(
        matches!(different, SeedError::SeededDifferently(_)),
        "{different:?}"
    );
    assert!(
        different.to_string().contains("--clients 40 --seed 7"),
        "{different}"
    );
    assert_eq!(store.count::<Client>().await.unwrap(), 40);
}

async fn seed_refuses_a_database_with_clinic_data(store: &Store) {
    // Clients written by someone else (made by a seed elsewhere, so no seed run is recorded
    // here), into the backend under test: seeding it is refused, and adds nothing.
    let elsewhere = common::sqlite().await;
    seed(&elsewhere.store, options(10), |_, _| {})
        .await
        .unwrap();
    let mut clients = records::<Client>(&elsewhere.store).await;
    elsewhere.cleanup().await;
    clients.truncate(3);
    let mut tx = store.begin().await.unwrap();
    tx.insert_many(&clients).await.unwrap();
    tx.commit().await.unwrap();
    let err = seed(store, options(10), |_, _| {}).await.unwrap_err();
    assert!(matches!(err, SeedError::NotEmpty(3)), "{err:?}");
    assert_eq!(store.count::<Client>().await.unwrap(), 3);
}

async fn client_count_is_bounded(store: &Store) {
    for bad in [0, 9, 100_001] {
        let err = seed(store, options(bad), |_, _| {}).await.unwrap_err();
        assert!(
            matches!(err, SeedError::ClientCount(n) if n == bad),
            "{err:?}"
        );
    }
    assert_eq!(store.count::<Client>().await.unwrap(), 0);
}

/// The seeded data has the shape of a real IOP: checked record by record.
async fn seeded_data_is_realistic(store: &Store) {
    let mut progress = Vec::new();
    seed(store, options(120), |done, total| {
        progress.push((done, total))
    })
    .await
    .unwrap();
    assert_eq!(progress.last(), Some(&(120, 120)));
    let as_of: NaiveDate = AS_OF.parse().unwrap();

    let programs: HashMap<_, _> = records::<Program>(store)
        .await
        .into_iter()
        .map(|p| (p.id, p))
        .collect();
    let enrollments = records::<Enrollment>(store).await;
    let sessions = records::<Session>(store).await;
    let consents = records::<Consent>(store).await;
    let participants = records::<SessionParticipant>(store).await;
    let referrals = records::<Referral>(store).await;
    let plans = records::<TreatmentPlan>(store).await;
    let reviews = records::<PlanReview>(store).await;
    let items = records::<RelapsePlanItem>(store).await;
    let contacts = records::<SupportContact>(store).await;
    let orgs: HashMap<_, _> = records::<Organization>(store)
        .await
        .into_iter()
        .map(|o| (o.id, o))
        .collect();

    assert_eq!(enrollments.len(), 120);
    let part2 = enrollments
        .iter()
        .filter(|e| programs[&e.program_id].part2)
        .count();
    assert!(
        (15..=60).contains(&part2),
        "part of the clients are in the Part 2 program: {part2}"
    );
    assert!(
        enrollments
            .iter()
            .any(|e| matches!(e.state, EnrollmentState::Discharged { .. }))
    );
    assert!(
        enrollments
            .iter()
            .any(|e| e.state == EnrollmentState::Active)
    );

    // 3–5 sessions a week per enrollment: never more than the program's days, and full weeks
    // between admission and discharge have exactly the program's days.
    let enrollment_by_id: HashMap<_, _> = enrollments.iter().map(|e| (e.id, e)).collect();
    let mut per_week: BTreeMap<(Id<Enrollment>, i32, u32), u8> = BTreeMap::new();
    for s in &sessions {
        let day = s.scheduled_start.as_datetime().date_naive();
        let week = day.iso_week();
        *per_week
            .entry((s.enrollment_id, week.year(), week.week()))
            .or_default() += 1;
        let enrollment = enrollment_by_id[&s.enrollment_id];
        assert!(day >= enrollment.admitted_on);
        if let Some(end) = enrollment.state.discharged_on() {
            assert!(day <= end, "no sessions after discharge");
        }
        assert_eq!(
            s.attendance == Attendance::Scheduled,
            day >= as_of,
            "past sessions have attendance recorded"
        );
    }
    for ((enrollment_id, _, _), count) in &per_week {
        let days = programs[&enrollment_by_id[enrollment_id].program_id]
            .intensity
            .days_per_week();
        assert!(
            *count <= days,
            "{count} sessions in a week of a {days}-day program"
        );
    }
    let full_weeks = per_week.values().filter(|c| (3..=5).contains(*c)).count();
    assert!(
        full_weeks * 10 >= per_week.len() * 7,
        "most weeks are full program weeks"
    );
    let attended = sessions
        .iter()
        .filter(|s| s.attendance == Attendance::Attended)
        .count();
    let no_shows = sessions
        .iter()
        .filter(|s| s.attendance == Attendance::NoShow)
        .count();
    assert!(
        attended > no_shows * 5 && no_shows > 0,
        "realistic attendance: {attended} attended, {no_shows} no-shows"
    );
    assert!(
        sessions
            .iter()
            .any(|s| s.delivery == SessionDelivery::Virtual)
    );
    for kind in [
        SessionType::Group,
        SessionType::Individual,
        SessionType::Family,
        SessionType::MedicationManagement,
    ] {
        assert!(
            sessions.iter().any(|s| s.session_type == kind),
            "some {kind} sessions"
        );
    }

    // Family sessions only with support contacts whose family-participation consent is in force.
    let session_by_id: HashMap<_, _> = sessions.iter().map(|s| (s.id, s)).collect();
    assert!(!participants.is_empty());
    for p in &participants {
        let session = session_by_id[&p.session_id];
        assert_eq!(session.session_type, SessionType::Family);
        let day = session.scheduled_start.as_datetime().date_naive();
        let consented = consents.iter().any(|c| {
            c.kind == ConsentKind::FamilyParticipation
                && c.recipient == ConsentRecipient::SupportContact(p.support_contact_id)
                && c.in_force_on(day)
        });
        assert!(consented, "participant without a consent in force on {day}");
    }

    // Consents: some expired, some revoked, Part 2 disclosures only for Part 2 clients.
    assert!(
        consents
            .iter()
            .any(|c| c.valid.end().is_some_and(|end| end < as_of)),
        "an expired consent"
    );
    assert!(
        consents.iter().any(|c| c.revoked_on.is_some()),
        "a revoked consent"
    );
    let part2_clients: Vec<_> = enrollments
        .iter()
        .filter(|e| programs[&e.program_id].part2)
        .map(|e| e.client_id)
        .collect();
    for c in consents
        .iter()
        .filter(|c| c.kind == ConsentKind::Part2Disclosure)
    {
        assert!(part2_clients.contains(&c.client_id));
    }
    assert!(
        consents
            .iter()
            .any(|c| c.kind == ConsentKind::Part2Disclosure)
    );

    // Referrals from two or three inpatient hospitals; step-downs out to outpatient care.
    let hospitals: std::collections::HashSet<_> = referrals
        .iter()
        .filter(|r| r.direction == ReferralDirection::Inbound)
        .map(|r| r.referring_org_id)
        .collect();
    assert!((2..=3).contains(&hospitals.len()));
    assert!(
        hospitals
            .iter()
            .all(|h| orgs[h].kind == OrganizationKind::InpatientHospital)
    );
    assert!(
        referrals
            .iter()
            .any(|r| r.direction == ReferralDirection::Outbound)
    );

    // Weekly plan reviews, and relapse plans that name support contacts of the same client.
    assert_eq!(plans.len(), 120);
    let mut review_dates: HashMap<_, Vec<NaiveDate>> = HashMap::new();
    for r in &reviews {
        review_dates
            .entry(r.plan_id)
            .or_default()
            .push(r.reviewed_on);
    }
    for dates in review_dates.values_mut() {
        dates.sort();
        assert!(
            dates.windows(2).all(|w| (w[1] - w[0]).num_days() == 7),
            "reviews are weekly"
        );
    }
    assert!(
        review_dates.len() * 10 >= plans.len() * 8,
        "most plans have had a review"
    );
    let contact_ids: std::collections::HashSet<_> = contacts.iter().map(|c| c.id).collect();
    assert!(
        items
            .iter()
            .any(|i| i.kind == RelapseItemKind::SupportContact)
    );
    assert!(
        items
            .iter()
            .filter_map(|i| i.support_contact_id)
            .all(|id| contact_ids.contains(&id))
    );
    for kind in [Relationship::Friend, Relationship::Mother] {
        assert!(
            contacts.iter().any(|c| c.relationship == kind),
            "some {kind} contacts"
        );
    }
}

on_both_backends!(
    seeding_twice_adds_nothing,
    seed_refuses_a_database_with_clinic_data,
    client_count_is_bounded,
    seeded_data_is_realistic,
);

/// The same options give the same rows, ids included, on either backend.
#[tokio::test]
async fn seeding_is_deterministic_across_backends() {
    let first = common::sqlite().await;
    let second = common::sqlite().await;
    seed(&first.store, options(30), |_, _| {}).await.unwrap();
    seed(&second.store, options(30), |_, _| {}).await.unwrap();
    assert_eq!(
        records::<Client>(&first.store).await,
        records::<Client>(&second.store).await
    );
    assert_eq!(
        records::<Session>(&first.store).await,
        records::<Session>(&second.store).await
    );
    assert_eq!(
        records::<Consent>(&first.store).await,
        records::<Consent>(&second.store).await
    );

    let other_seed = common::sqlite().await;
    seed(
        &other_seed.store,
        SeedOptions {
            seed: 8,
            ..options(30)
        },
        |_, _| {},
    )
    .await
    .unwrap();
    assert_ne!(
        records::<Client>(&first.store).await,
        records::<Client>(&other_seed.store).await
    );

    if let Some(pg) = common::postgres().await {
        seed(&pg.store, options(30), |_, _| {}).await.unwrap();
        assert_eq!(
            records::<Client>(&first.store).await,
            records::<Client>(&pg.store).await
        );
        assert_eq!(
            records::<RelapsePlanItem>(&first.store).await,
            records::<RelapsePlanItem>(&pg.store).await
        );
        assert_eq!(
            records::<Session>(&first.store).await,
            records::<Session>(&pg.store).await
        );
        pg.cleanup().await;
    }
    for db in [first, second, other_seed] {
        db.cleanup().await;
    }
}

/// After a seed, PostgreSQL has statistics for the tables it filled and none for the tables it
/// left empty: statistics saying "empty" would plan the growing audit trail's lookups (the
/// foreign-key check of every audit write among them) as sequential scans.
#[tokio::test]
async fn seeding_leaves_empty_tables_unanalyzed_on_postgres() {
    use sqlx::Connection;
    let Some(db) = common::postgres().await else {
        return;
    };
    seed(&db.store, options(20), |_, _| {}).await.unwrap();
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let analyzed = |table: &'static str| {
        sqlx::query_scalar::<_, bool>(
            "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = $1",
        )
        .bind(table)
    };
    assert!(analyzed("clients").fetch_one(&mut conn).await.unwrap());
    assert!(analyzed("sessions").fetch_one(&mut conn).await.unwrap());
    assert!(!analyzed("audit_events").fetch_one(&mut conn).await.unwrap());
    assert!(
        !analyzed("audit_event_patients")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    );
    let plan: Vec<String> =
        sqlx::query_scalar("EXPLAIN SELECT 1 FROM audit_events WHERE id = 'x' FOR KEY SHARE")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert!(
        plan.iter().any(|line| line.contains("Index")),
        "the audit trail's key is looked up by its index: {plan:?}"
    );
    let _ = conn.close().await;
    db.cleanup().await;
}
