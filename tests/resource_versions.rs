//! A resource's version changes whenever anything it shows changes, for every assembled type:
//! rows shown beside the main row (a plan's reviews, a goal's progress notes, a session's
//! participants, a relapse plan's items and the names of the contacts it lists, a program's name
//! on its enrollments) and the client's Part 2 labels bump the main row in the same transaction
//! (migrations/*/0002_resource_versions.sql). Checked here on both backends by comparing every
//! resource before and after a set of clinic-side writes, as a writer that bypasses the API makes.

mod common;

use std::collections::HashMap;

use chrono::NaiveDate;
use iop_gateway::assemble::{Assembler, Keyset, RESOURCE_TYPES};
use iop_gateway::domain::*;
use iop_gateway::mapping::MappingConfig;
use iop_gateway::seed::{self, SeedOptions};
use iop_gateway::store::{Filter, SqlValue, Store, StoreError};
use serde_json::Value;

/// Every resource, by `Type/id`: its versionId and what it shows (the resource without
/// `meta.versionId` and `meta.lastUpdated`; the security labels in `meta` are content).
async fn snapshot(store: &Store) -> HashMap<String, (String, Value)> {
    let cfg = MappingConfig::default();
    let assembler = Assembler::new(store, &cfg, NaiveDate::from_ymd_opt(2026, 11, 1).unwrap());
    let mut out = HashMap::new();
    for resource_type in RESOURCE_TYPES {
        let mut after: Option<String> = None;
        loop {
            let page = assembler
                .page(resource_type, &[], Keyset::After(after.as_deref()), 500)
                .await
                .unwrap();
            for mut resource in page.resources {
                let key = format!(
                    "{}/{}",
                    resource["resourceType"].as_str().unwrap(),
                    resource["id"].as_str().unwrap()
                );
                let version = resource["meta"]["versionId"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{key} has no versionId"))
                    .to_owned();
                let meta = resource["meta"].as_object_mut().unwrap();
                meta.remove("versionId");
                meta.remove("lastUpdated");
                out.insert(key, (version, resource));
            }
            if !page.full {
                break;
            }
            after = page.last_row;
        }
    }
    out
}

async fn first<R: iop_gateway::store::Record>(store: &Store, filters: &[Filter]) -> Stored<R> {
    store
        .page_where::<R>(filters, None, 1)
        .await
        .unwrap()
        .into_iter()
        .next()
        .expect("the seeded database has such a row")
}

use iop_gateway::store::Stored;

fn text(s: &str) -> NonEmptyText {
    NonEmptyText::parse(s).unwrap()
}

async fn versions_follow_what_resources_show(store: &Store) {
    seed::seed(
        store,
        SeedOptions {
            clients: 12,
            seed: 7,
            as_of: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
        },
        |_, _| {},
    )
    .await
    .unwrap();
    let before = snapshot(store).await;
    let mut expected_changes: Vec<String> = Vec::new();

    // A new weekly review with a progress note on one goal: the plan and the goal change.
    let goal = first::<Goal>(store, &[]).await;
    let plan = store.get(goal.record.plan_id).await.unwrap().unwrap();
    let review = PlanReview {
        id: Id::generate(),
        plan_id: plan.record.id,
        reviewed_on: NaiveDate::from_ymd_opt(2031, 1, 1).unwrap(),
        reviewer_id: plan.record.author_id,
        summary: text("weekly review"),
    };
    store.insert(&review).await.unwrap();
    store
        .insert(&GoalProgressNote {
            id: Id::generate(),
            goal_id: goal.record.id,
            review_id: review.id,
            note: text("progress"),
        })
        .await
        .unwrap();
    expected_changes.push(format!("CarePlan/{}", plan.record.id));
    expected_changes.push(format!("Goal/{}", goal.record.id));
    // If-Match against the version read before the review: refused, the plan changed since.
    assert!(matches!(
        store.update(&plan.record, plan.meta.version).await,
        Err(StoreError::VersionConflict { .. })
    ));

    // An older review's date changes: the goals whose progress notes cite it show the new date.
    let notes = store
        .page_where::<GoalProgressNote>(&[], None, 200)
        .await
        .unwrap();
    let note = notes
        .iter()
        .find(|n| n.record.goal_id != goal.record.id)
        .expect("seeded progress notes");
    let old_review = store.get(note.record.review_id).await.unwrap().unwrap();
    let mut moved = old_review.record.clone();
    moved.reviewed_on = NaiveDate::from_ymd_opt(2031, 2, 2).unwrap();
    store.update(&moved, old_review.meta.version).await.unwrap();
    expected_changes.push(format!("Goal/{}", note.record.goal_id));
    expected_changes.push(format!("CarePlan/{}", moved.plan_id));

    // A relapse plan lists a support contact by name: renaming the contact changes both.
    let items = store
        .page_where::<RelapsePlanItem>(&[], None, 500)
        .await
        .unwrap();
    let listed = items
        .iter()
        .find_map(|i| {
            i.record
                .support_contact_id
                .map(|c| (i.record.relapse_plan_id, c))
        })
        .expect("a relapse plan item naming a contact");
    let contact = store.get(listed.1).await.unwrap().unwrap();
    let mut renamed = contact.record.clone();
    renamed.name.given = text("Renamed");
    store.update(&renamed, contact.meta.version).await.unwrap();
    expected_changes.push(format!("RelatedPerson/{}", listed.1));
    expected_changes.push(format!("CarePlan/{}", listed.0));

    // A new item on another relapse plan.
    let other_relapse = items
        .iter()
        .map(|i| i.record.relapse_plan_id)
        .find(|r| *r != listed.0)
        .expect("a second relapse plan");
    store
        .insert(&RelapsePlanItem {
            id: Id::generate(),
            relapse_plan_id: other_relapse,
            kind: RelapseItemKind::CopingSkill,
            position: 99,
            text: Some(text("box breathing")),
            support_contact_id: None,
        })
        .await
        .unwrap();
    expected_changes.push(format!("CarePlan/{other_relapse}"));

    // A support contact no longer took part in a session.
    let participant = first::<SessionParticipant>(store, &[]).await;
    store
        .delete(participant.record.id, participant.meta.version)
        .await
        .unwrap();
    expected_changes.push(format!("Encounter/{}", participant.record.session_id));

    // A program's name shows on its enrollments (EpisodeOfCare.type text).
    let program = first::<Program>(store, &[Filter::equals("part2", SqlValue::bool(false))]).await;
    let mut renamed_program = program.record.clone();
    renamed_program.name = text("Renamed program");
    store
        .update(&renamed_program, program.meta.version)
        .await
        .unwrap();
    let enrollment_of_program = first::<Enrollment>(
        store,
        &[Filter::equals(
            "program_id",
            SqlValue::id(program.record.id),
        )],
    )
    .await;
    expected_changes.push(format!("EpisodeOfCare/{}", enrollment_of_program.record.id));

    // A client with no Part 2 enrollment moves to a Part 2 program: every resource about them
    // now carries the Part 2 labels.
    let part2 = first::<Program>(store, &[Filter::equals("part2", SqlValue::bool(true))]).await;
    let part2_clients: std::collections::HashSet<_> = store
        .page_where::<Enrollment>(
            &[Filter::equals("program_id", SqlValue::id(part2.record.id))],
            None,
            10_000,
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.record.client_id)
        .collect();
    let all = store
        .page_where::<Enrollment>(&[], None, 10_000)
        .await
        .unwrap();
    let moved_enrollment = all
        .iter()
        .find(|e| {
            !part2_clients.contains(&e.record.client_id) && {
                let p = e.record.program_id;
                p != part2.record.id
            }
        })
        .expect("a client outside Part 2");
    let client = moved_enrollment.record.client_id;
    let mut to_part2 = moved_enrollment.record.clone();
    to_part2.program_id = part2.record.id;
    store
        .update(&to_part2, moved_enrollment.meta.version)
        .await
        .unwrap();
    expected_changes.push(format!("Patient/{client}"));

    let after = snapshot(store).await;
    assert_eq!(
        before.len(),
        after.len(),
        "no resource appeared or vanished"
    );
    // The property: whatever a resource shows changed, its version changed.
    let stale: Vec<&String> = before
        .iter()
        .filter(|(key, (version, content))| {
            let (new_version, new_content) = &after[*key];
            new_content != content && new_version == version
        })
        .map(|(key, _)| key)
        .collect();
    assert!(
        stale.is_empty(),
        "content changed but versionId did not: {stale:?}"
    );
    // And the writes above did change what these resources show (the property was exercised).
    for key in &expected_changes {
        assert_ne!(before[key].1, after[key].1, "{key} should show the change");
        assert_ne!(
            before[key].0, after[key].0,
            "{key} should have a new version"
        );
    }
    // Every resource about the client who became Part 2 carries the labels now, with a new
    // version; before, none did.
    let about_client: Vec<&String> = after
        .iter()
        .filter(|(_, (_, r))| {
            let client_ref = format!("Patient/{client}");
            r["id"] == client.to_string()
                || ["subject", "patient", "for", "beneficiary"]
                    .iter()
                    .any(|k| r[k]["reference"] == client_ref.as_str())
        })
        .map(|(k, _)| k)
        .collect();
    assert!(about_client.len() > 5, "{about_client:?}");
    for key in about_client {
        let labelled = |r: &Value| r["meta"]["security"].to_string().contains("42CFRPart2");
        assert!(!labelled(&before[key].1), "{key} was labelled before");
        assert!(labelled(&after[key].1), "{key} is not labelled after");
        assert_ne!(before[key].0, after[key].0, "{key}");
    }
}

on_both_backends!(versions_follow_what_resources_show);
