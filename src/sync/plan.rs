//! What a window of the change log asks a push to do (pure): which resources to send, in which
//! order, which to delete, and whose consents changed.

use std::collections::{BTreeMap, BTreeSet};

use crate::assemble;
use crate::store::{Change, Operation};

/// The order resources are sent in: what others refer to first (a Patient before its CarePlan,
/// a RelatedPerson before the Consent naming it). A reference the order cannot settle (a relapse
/// prevention CarePlan to its treatment plan) is settled by sending the referenced one on demand.
pub const PUSH_ORDER: [&str; 13] = [
    "Organization",
    "Practitioner",
    "HealthcareService",
    "Group",
    "Patient",
    "RelatedPerson",
    "ServiceRequest",
    "Task",
    "EpisodeOfCare",
    "Goal",
    "CarePlan",
    "Encounter",
    "Consent",
];

/// The work of one window of changes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Resource ids to send, by type, in `PUSH_ORDER`.
    pub sends: Vec<(String, BTreeSet<String>)>,
    /// Resources whose rows were deleted (type, id).
    pub deletes: Vec<(String, String)>,
    /// Consent rows that changed: their clients' resources are judged again.
    pub consents: BTreeSet<String>,
}

impl Plan {
    /// The plan for `changes`, for a target that takes `types`.
    pub fn of(changes: &[Change], types: &[String]) -> Plan {
        let mut sends: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
        let mut deletes = Vec::new();
        let mut consents = BTreeSet::new();
        for change in changes {
            if change.table == "consents" {
                consents.insert(change.row_id.clone());
            }
            for (rank, resource_type) in PUSH_ORDER.iter().enumerate() {
                let shown = assemble::tables(resource_type)
                    .is_some_and(|tables| tables.contains(&change.table.as_str()));
                if !shown || !types.iter().any(|t| t == resource_type) {
                    continue;
                }
                if change.operation == Operation::Delete {
                    let key = ((*resource_type).to_owned(), change.row_id.clone());
                    if !deletes.contains(&key) {
                        deletes.push(key);
                    }
                } else {
                    sends.entry(rank).or_default().insert(change.row_id.clone());
                }
            }
        }
        // A row deleted later in the window is not sent.
        for (rank, ids) in sends.iter_mut() {
            ids.retain(|id| {
                !deletes
                    .iter()
                    .any(|(t, d)| t == PUSH_ORDER[*rank] && d == id)
            });
        }
        Plan {
            sends: sends
                .into_iter()
                .filter(|(_, ids)| !ids.is_empty())
                .map(|(rank, ids)| (PUSH_ORDER[rank].to_owned(), ids))
                .collect(),
            deletes,
            consents,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Timestamp;

    fn change(seq: i64, table: &str, id: &str, operation: Operation) -> Change {
        Change {
            seq,
            table: table.into(),
            row_id: id.into(),
            operation,
            row_version: 1,
            changed_at: Timestamp::now(),
        }
    }

    fn all() -> Vec<String> {
        PUSH_ORDER.iter().map(|t| (*t).to_owned()).collect()
    }

    #[test]
    fn sends_in_dependency_order_once_each() {
        let changes = [
            change(1, "treatment_plans", "plan", Operation::Insert),
            change(2, "clients", "c", Operation::Insert),
            change(3, "clients", "c", Operation::Update),
            change(4, "plan_goals", "g", Operation::Insert),
            change(5, "referrals", "r", Operation::Insert),
            // A child row shown in another resource: its main row is bumped by trigger.
            change(6, "plan_interventions", "i", Operation::Insert),
        ];
        let plan = Plan::of(&changes, &all());
        let order: Vec<&str> = plan.sends.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            order,
            ["Patient", "ServiceRequest", "Task", "Goal", "CarePlan"]
        );
        assert_eq!(plan.sends[0].1.len(), 1);
        assert!(plan.deletes.is_empty());
    }

    #[test]
    fn only_the_targets_types_and_deletes_win_over_sends() {
        let changes = [
            change(1, "clients", "c", Operation::Insert),
            change(2, "support_contacts", "s", Operation::Insert),
            change(3, "support_contacts", "s", Operation::Delete),
            change(4, "consents", "k", Operation::Update),
        ];
        let plan = Plan::of(&changes, &["RelatedPerson".to_owned()]);
        assert!(plan.sends.is_empty());
        assert_eq!(plan.deletes, [("RelatedPerson".to_owned(), "s".to_owned())]);
        assert!(plan.consents.contains("k"));
    }
}
