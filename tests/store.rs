//! The store test suite, run on SQLite and on PostgreSQL alike.

mod common;

use common::graph::{Graph, day, graph};
use iop_gateway::domain::*;
use iop_gateway::store::{Operation, Store, StoreError};

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
    let mut expected = g.consents.clone();
    expected.sort_by_key(|c| c.id); // children come in id order
    assert_eq!(
        consents.into_iter().map(|s| s.record).collect::<Vec<_>>(),
        expected
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
            c.id = Id::generate();
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
