//! The store test suite, run on SQLite and on PostgreSQL alike.

mod common;

use common::graph::{Graph, day, graph};
use iop_gateway::domain::*;
use iop_gateway::store::{
    AuditQuery, AuditWriter, Filter, Operation, Record, SqlValue, Store, StoreError,
};

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

/// The version of a row's last change-log entry.
async fn logged_version<R: Record>(store: &Store, id: Id<R>) -> i64 {
    let changes = store
        .changes_of(R::TABLE, Some(&id.to_string()), 0, 1000)
        .await
        .unwrap();
    changes.last().expect("logged").row_version
}

async fn current_version<R: Record>(store: &Store, id: Id<R>) -> i64 {
    store.get(id).await.unwrap().unwrap().meta.version
}

async fn every_record_round_trips(store: &Store) {
    let g = graph("MRN-1");
    insert_graph(store, &g).await;
    macro_rules! same {
        ($value:expr) => {{
            let stored = store.get($value.id).await.unwrap().expect("stored");
            assert_eq!(stored.record, $value);
            // 1, or more where rows shown beside it bumped it (migration 0002): as logged.
            assert_eq!(stored.meta.version, logged_version(store, $value.id).await);
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
    let v = current_version(store, g.client.id).await;
    let meta = store.update(&moved, v).await.unwrap();
    assert_eq!(meta.version, v + 1);
    let stored = store.get(g.client.id).await.unwrap().unwrap();
    assert_eq!(stored.record, moved);
    assert_eq!(stored.meta.version, v + 1);
    assert!(stored.meta.updated_at >= stored.meta.created_at);

    let err = store.update(&g.client, v).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::VersionConflict { expected, actual, .. } if expected == v && actual == v + 1
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
    let v = current_version(store, g.sessions[0].id).await;
    let mut tasks = Vec::new();
    for i in 0..10 {
        let store = store.clone();
        let mut session = g.sessions[0].clone();
        session.attendance = if i % 2 == 0 {
            Attendance::NoShow
        } else {
            Attendance::Late
        };
        tasks.push(tokio::spawn(async move { store.update(&session, v).await }));
    }
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(meta) => {
                won += 1;
                assert_eq!(meta.version, v + 1);
            }
            Err(StoreError::VersionConflict { actual, .. }) if actual == v + 1 => {}
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
        v + 1
    );
}

async fn every_change_is_logged_in_the_same_transaction(store: &Store) {
    let g = graph("MRN-7");
    insert_graph(store, &g).await;
    let inserted = store.change_count().await.unwrap();
    let all = store.changes_after(0, 1000).await.unwrap();
    let inserts = all
        .iter()
        .filter(|c| c.operation == Operation::Insert)
        .count();
    assert_eq!(inserts, 22, "one entry per inserted row");
    // The rest are the bumps of rows that others show (migration 0002), each logged.
    assert!(all.iter().all(|c| c.operation != Operation::Delete));

    let mut revoked = g.consents[0].clone();
    revoked.revoked_on = Some(day("2026-10-15"));
    let consent_version = current_version(store, g.consents[0].id).await;
    store.update(&revoked, consent_version).await.unwrap();
    store.delete(g.participant.id, 1).await.unwrap();

    // The consent's update, the participant's delete, and its session's bump.
    let changes = store.changes_after(inserted, 100).await.unwrap();
    assert_eq!(changes.len(), 3, "{changes:?}");
    // The session's bump is logged before the participant's delete (the bump trigger runs
    // first on both backends); both are in the one transaction.
    assert_eq!(
        (changes[1].table.as_str(), changes[1].operation),
        ("sessions", Operation::Update)
    );
    assert_eq!(
        (
            changes[0].table.as_str(),
            changes[0].operation,
            changes[0].row_version
        ),
        ("consents", Operation::Update, consent_version + 1)
    );
    assert_eq!(changes[0].row_id, g.consents[0].id.to_string());
    assert_eq!(
        (changes[2].table.as_str(), changes[2].operation),
        ("session_participants", Operation::Delete)
    );
    assert!(changes[0].seq < changes[1].seq && changes[1].seq < changes[2].seq);

    // A transaction that fails half way leaves neither rows nor log entries.
    let mut tx = store.begin().await.unwrap();
    let mut fresh = graph("MRN-8");
    fresh.client.mrn = Mrn::parse("MRN-8").unwrap();
    tx.insert(&fresh.client).await.unwrap();
    let err = tx.insert(&g.client).await.unwrap_err(); // same id: duplicate
    assert!(err.is_conflict());
    drop(tx);
    assert!(store.get(fresh.client.id).await.unwrap().is_none());
    assert_eq!(store.change_count().await.unwrap(), inserted + 3);
}

/// `n` new clients, MRNs `{prefix}-0`, `{prefix}-1`, ..., inserted in one transaction.
async fn insert_clients(store: &Store, prefix: &str, n: usize) -> Vec<Client> {
    let clients: Vec<Client> = (0..n)
        .map(|i| {
            let mut c = graph("X").client;
            c.id = Id::generate();
            c.mrn = Mrn::parse(&format!("{prefix}-{i}")).unwrap();
            c
        })
        .collect();
    let mut tx = store.begin().await.unwrap();
    tx.insert_many(&clients).await.unwrap();
    tx.commit().await.unwrap();
    clients
}

async fn pages_walk_every_row_once(store: &Store) {
    let clients = insert_clients(store, "PAGE", 25).await;
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

/// How many rows matching `filters` each range between `splits` (of `column`) holds, the
/// first from the start and the last to the end.
async fn range_sizes<R: Record>(
    store: &Store,
    column: &'static str,
    filters: &[Filter],
    splits: &[String],
) -> Vec<i64> {
    let bounds: Vec<Option<&String>> = std::iter::once(None)
        .chain(splits.iter().map(Some))
        .chain(std::iter::once(None))
        .collect();
    let mut sizes = Vec::new();
    for range in bounds.windows(2) {
        let mut of_range = filters.to_vec();
        of_range.extend(range[0].map(|v| Filter::compare(column, ">=", SqlValue::text(v))));
        of_range.extend(range[1].map(|v| Filter::compare(column, "<", SqlValue::text(v))));
        sizes.push(store.count_where::<R>(&of_range).await.unwrap());
    }
    sizes
}

/// A long scan cut among workers: the ranges between the splits hold every row once, in
/// parts of about the same size; too few rows are not cut.
async fn splits_cut_rows_into_even_ranges(store: &Store) {
    insert_clients(store, "SPLIT", 25).await;
    let splits = store.splits(Client::TABLE, "id", &[], 3, 5).await.unwrap();
    assert_eq!(splits.len(), 2, "{splits:?}");
    let sizes = range_sizes::<Client>(store, "id", &[], &splits).await;
    assert_eq!(sizes.iter().sum::<i64>(), 25, "{sizes:?}");
    assert!(sizes.iter().all(|n| (8..=9).contains(n)), "{sizes:?}");
    let few = store.splits(Client::TABLE, "id", &[], 3, 20).await.unwrap();
    assert!(few.is_empty(), "25 rows at 20 a part are one part: {few:?}");
    let filtered = [Filter::equals("mrn", SqlValue::text("SPLIT-1"))];
    let one = store
        .splits(Client::TABLE, "id", &filtered, 3, 1)
        .await
        .unwrap();
    assert!(one.is_empty(), "one matching row is one part: {one:?}");
}

/// Paging in owner order reads each client's rows together, every row once, though the ids
/// (written round by round, as a clinic writes them) interleave the clients; ranges cut on the
/// owner column hold every row once too.
async fn owner_order_pages_a_clients_rows_together(store: &Store) {
    let g = graph("OWNER");
    insert_graph(store, &g).await;
    let clients = insert_clients(store, "OWNER", 7).await;
    let mut written = Vec::new();
    for _round in 0..4 {
        let consents: Vec<Consent> = clients
            .iter()
            .map(|c| Consent {
                id: Id::generate(),
                client_id: c.id,
                ..g.consents[1].clone()
            })
            .collect();
        let mut tx = store.begin().await.unwrap();
        tx.insert_many(&consents).await.unwrap();
        tx.commit().await.unwrap();
        written.extend(consents);
    }
    let of_new_clients = [Filter::one_of(
        "client_id",
        clients.iter().map(|c| SqlValue::id(c.id)).collect(),
    )];
    let mut in_owner_order: Vec<(Id<Client>, Id<Consent>)> =
        written.iter().map(|c| (c.client_id, c.id)).collect();
    in_owner_order.sort();
    let mut in_id_order = in_owner_order.clone();
    in_id_order.sort_by_key(|(_, id)| *id);
    assert_ne!(
        in_owner_order, in_id_order,
        "the ids interleave the clients"
    );

    let mut read = Vec::new();
    let mut after: Option<(String, String)> = None;
    loop {
        let bound = after.as_ref().map(|(o, i)| (o.as_str(), i.as_str()));
        let page = store
            .page_in_owner_order::<Consent>(&of_new_clients, bound, 5)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some((
            last.record.client_id.to_string(),
            last.record.id.to_string(),
        ));
        read.extend(page.iter().map(|s| (s.record.client_id, s.record.id)));
    }
    assert_eq!(read, in_owner_order);

    let splits = store
        .splits(Consent::TABLE, "client_id", &of_new_clients, 3, 5)
        .await
        .unwrap();
    assert_eq!(splits.len(), 2, "{splits:?}");
    let sizes = range_sizes::<Consent>(store, "client_id", &of_new_clients, &splits).await;
    assert_eq!(sizes.iter().sum::<i64>(), 28, "{sizes:?}");
    assert!(
        sizes.iter().all(|n| n % 4 == 0 && *n > 0),
        "whole clients: {sizes:?}"
    );

    // A type whose rows are their own owners pages in id order.
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    let of_clients = [Filter::one_of(
        "id",
        clients.iter().map(|c| SqlValue::id(c.id)).collect(),
    )];
    loop {
        let bound = after.as_deref().map(|id| (id, id));
        let page = store
            .page_in_owner_order::<Client>(&of_clients, bound, 3)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        assert_eq!(last.record.owner(), last.record.id.uuid());
        after = Some(last.record.id.to_string());
        ids.extend(page.iter().map(|s| s.record.id));
    }
    let mut expected: Vec<_> = clients.iter().map(|c| c.id).collect();
    expected.sort();
    assert_eq!(ids, expected);
}

fn read_record(id: &str, client: &str) -> AuditRecord {
    AuditRecord {
        id: id.to_owned(),
        recorded: Timestamp::now(),
        interaction: AuditInteraction::Read,
        outcome: AuditOutcome::Success,
        outcome_desc: None,
        client_id: Some(client.to_owned()),
        organization_id: None,
        purpose_of_use: None,
        token_id: None,
        request_id: None,
        source_address: None,
        resource_type: Some("Patient".into()),
        query: None,
        entities: vec![format!("Patient/{id}")],
        consents: Vec::new(),
        patients: vec![id.to_owned()],
    }
}

/// Reads audited at once share commits, and each caller hears of its own record: all 321
/// written once; a record the database refuses (a duplicate id) fails alone, not its batch.
async fn audit_records_are_committed_in_groups(store: &Store) {
    // The group commits are counted for /metrics (other tests in this process may add theirs).
    let metrics = iop_gateway::telemetry::handle().expect("the process's metrics recorder");
    let counted = |name: &str| -> f64 {
        metrics
            .render()
            .lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let (commits_before, records_before) = (
        counted("iop_audit_commits_total"),
        counted("iop_audit_records_total"),
    );
    let writer = AuditWriter::new(store.clone());
    let append = |id: String, client: &'static str| {
        let writer = writer.clone();
        tokio::spawn(async move { writer.append(read_record(&id, client)).await })
    };
    append("group-first".into(), "many").await.unwrap().unwrap();
    let mut tasks: Vec<_> = (0..300)
        .map(|n| append(format!("group-{n}"), "many"))
        .collect();
    // Again an id already sent: refused by the database, while its neighbours still commit.
    let duplicate = append("group-first".into(), "duplicate");
    tasks.extend((300..320).map(|n| append(format!("group-{n}"), "many")));
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let refused = duplicate.await.unwrap();
    assert!(
        matches!(refused, Err(StoreError::Duplicate { .. })),
        "{refused:?}"
    );
    let written = store
        .audit_page(&AuditQuery {
            client_id: Some("many".into()),
            limit: 1000,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(written.len(), 321);
    // Each record's patients are indexed with it (by trigger, in the same statement).
    for record in &written {
        assert_eq!(record.patients, vec![record.id.clone()], "{}", record.id);
    }
    let about_one = store
        .audit_page(&AuditQuery {
            patient: Some("group-7".into()),
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        about_one.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["group-7"]
    );
    let stray = store
        .audit_page(&AuditQuery {
            client_id: Some("duplicate".into()),
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert!(stray.is_empty(), "{stray:?}");
    let commits = counted("iop_audit_commits_total") - commits_before;
    let records = counted("iop_audit_records_total") - records_before;
    assert!(
        records >= 320.0,
        "the batched records are counted: {records}"
    );
    assert!(
        commits >= 1.0 && commits < records,
        "records share commits: {commits} commits for {records} records"
    );
    assert!(
        metrics
            .render()
            .contains("iop_audit_commit_duration_seconds_count"),
        "the commits' durations are recorded"
    );
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
    splits_cut_rows_into_even_ranges,
    owner_order_pages_a_clients_rows_together,
    audit_records_are_committed_in_groups,
    migrating_twice_is_harmless,
);
