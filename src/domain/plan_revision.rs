//! How the parts of a treatment plan change when the clinic writes the whole plan again (a
//! clinic application's update, an import): what to insert, change or remove, decided from
//! what is stored and what is wanted. Pure; the writer applies it in one transaction.
//!
//! Reviews and progress notes are records of what was said on a day: a review is matched by its
//! day, and a stored review is never removed by leaving it out (its notes would go with it).
//! Interventions and relapse-plan items have no identity of their own beyond their content and
//! order: when they differ, the whole list is replaced.

use chrono::NaiveDate;

use super::{
    DomainError, Goal, GoalProgressNote, Id, Intervention, NonEmptyText, PlanReview,
    RelapsePlanItem, Staff, TreatmentPlan,
};

/// A review as written: its day, reviewer and summary (its id is the stored one's, or new).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewEntry {
    pub on: NaiveDate,
    pub reviewer_id: Id<Staff>,
    pub summary: NonEmptyText,
}

impl ReviewEntry {
    pub fn into_review(self, plan_id: Id<TreatmentPlan>) -> PlanReview {
        PlanReview {
            id: Id::generate(),
            plan_id,
            reviewed_on: self.on,
            reviewer_id: self.reviewer_id,
            summary: self.summary,
        }
    }
}

/// The reviews to write: new days inserted, changed ones updated (stored id kept).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReviewChanges {
    pub insert: Vec<PlanReview>,
    pub update: Vec<PlanReview>,
}

/// The review changes that make `stored` what `wanted` says. A stored review left out is an
/// error: reviews are kept. Two wanted reviews on one day are an error (one review a day).
pub fn revise_reviews(
    plan_id: Id<TreatmentPlan>,
    stored: &[PlanReview],
    wanted: &[ReviewEntry],
) -> Result<ReviewChanges, DomainError> {
    for (i, entry) in wanted.iter().enumerate() {
        if wanted[..i].iter().any(|earlier| earlier.on == entry.on) {
            return Err(DomainError::Inconsistent(
                "a plan has one review a day: two notes carry the same day",
            ));
        }
    }
    if stored
        .iter()
        .any(|review| !wanted.iter().any(|w| w.on == review.reviewed_on))
    {
        return Err(DomainError::Inconsistent(
            "a recorded review is missing from the plan's notes: reviews are kept, not removed",
        ));
    }
    let mut changes = ReviewChanges::default();
    for entry in wanted {
        match stored.iter().find(|r| r.reviewed_on == entry.on) {
            Some(review)
                if review.reviewer_id == entry.reviewer_id && review.summary == entry.summary => {}
            Some(review) => changes.update.push(PlanReview {
                reviewer_id: entry.reviewer_id,
                summary: entry.summary.clone(),
                ..review.clone()
            }),
            None => changes.insert.push(entry.clone().into_review(plan_id)),
        }
    }
    Ok(changes)
}

/// Whether two intervention lists say the same (ids aside), in the same order.
pub fn same_interventions(stored: &[Intervention], wanted: &[Intervention]) -> bool {
    let key = |i: &Intervention| {
        (
            i.modality,
            i.sessions_per_week,
            i.minutes_per_session,
            i.staff_id,
        )
    };
    stored.len() == wanted.len() && stored.iter().zip(wanted).all(|(s, w)| key(s) == key(w))
}

/// Whether two relapse-plan item lists say the same (ids aside), in the same order.
pub fn same_relapse_items(stored: &[RelapsePlanItem], wanted: &[RelapsePlanItem]) -> bool {
    let mut stored: Vec<&RelapsePlanItem> = stored.iter().collect();
    stored.sort_by_key(|i| i.position);
    let key = |i: &RelapsePlanItem| (i.kind, i.position, i.text.clone(), i.support_contact_id);
    stored.len() == wanted.len() && stored.iter().zip(wanted).all(|(s, w)| key(s) == key(w))
}

/// A goal's progress note as written: the day of the review it belongs to, and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressEntry {
    pub on: NaiveDate,
    pub note: NonEmptyText,
}

/// The progress-note changes that make a goal's notes what `wanted` says.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ProgressChanges {
    pub insert: Vec<GoalProgressNote>,
    pub update: Vec<GoalProgressNote>,
    /// Stored notes no longer written (with their versions, for the delete).
    pub remove: Vec<Id<GoalProgressNote>>,
}

/// `reviews` are the goal's plan's reviews: each wanted note belongs to the review of its day,
/// which must exist (`Err` names the missing day's position in `wanted`).
pub fn revise_progress(
    goal: &Goal,
    reviews: &[PlanReview],
    stored: &[GoalProgressNote],
    wanted: &[ProgressEntry],
) -> Result<ProgressChanges, usize> {
    let mut changes = ProgressChanges::default();
    let mut kept = Vec::new();
    for (index, entry) in wanted.iter().enumerate() {
        let review = reviews
            .iter()
            .find(|r| r.reviewed_on == entry.on)
            .ok_or(index)?;
        kept.push(review.id);
        match stored.iter().find(|n| n.review_id == review.id) {
            Some(note) if note.note == entry.note => {}
            Some(note) => changes.update.push(GoalProgressNote {
                note: entry.note.clone(),
                ..note.clone()
            }),
            None => changes.insert.push(GoalProgressNote {
                id: Id::generate(),
                goal_id: goal.id,
                review_id: review.id,
                note: entry.note.clone(),
            }),
        }
    }
    changes.remove = stored
        .iter()
        .filter(|n| !kept.contains(&n.review_id))
        .map(|n| n.id)
        .collect();
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }
    fn text(t: &str) -> NonEmptyText {
        NonEmptyText::parse(t).unwrap()
    }
    fn review(plan: Id<TreatmentPlan>, reviewer: Id<Staff>, d: u32, t: &str) -> PlanReview {
        ReviewEntry {
            on: day(d),
            reviewer_id: reviewer,
            summary: text(t),
        }
        .into_review(plan)
    }

    #[test]
    fn reviews_are_added_changed_by_day_and_never_dropped() {
        let (plan, reviewer) = (Id::generate(), Id::generate());
        let stored = vec![review(plan, reviewer, 3, "steady")];
        let wanted = vec![
            ReviewEntry {
                on: day(3),
                reviewer_id: reviewer,
                summary: text("steady, sleeping better"),
            },
            ReviewEntry {
                on: day(10),
                reviewer_id: reviewer,
                summary: text("week two"),
            },
        ];
        let changes = revise_reviews(plan, &stored, &wanted).unwrap();
        assert_eq!(changes.update.len(), 1);
        assert_eq!(changes.update[0].id, stored[0].id);
        assert_eq!(changes.update[0].summary, text("steady, sleeping better"));
        assert_eq!(changes.insert.len(), 1);
        assert_eq!(changes.insert[0].reviewed_on, day(10));

        assert!(revise_reviews(plan, &stored, &wanted[1..]).is_err());
        let twice = vec![wanted[1].clone(), wanted[1].clone()];
        assert!(revise_reviews(plan, &[], &twice).is_err());
        let same = vec![ReviewEntry {
            on: day(3),
            reviewer_id: reviewer,
            summary: text("steady"),
        }];
        assert_eq!(
            revise_reviews(plan, &stored, &same).unwrap(),
            ReviewChanges::default()
        );
    }

    #[test]
    fn progress_notes_follow_the_review_of_their_day() {
        let (plan, reviewer) = (Id::generate(), Id::generate());
        let reviews = vec![
            review(plan, reviewer, 3, "one"),
            review(plan, reviewer, 10, "two"),
        ];
        let goal = Goal {
            id: Id::generate(),
            plan_id: plan,
            description: text("sleep"),
            target_on: None,
            status: super::super::GoalStatus::Active,
            achievement: None,
        };
        let stored = vec![GoalProgressNote {
            id: Id::generate(),
            goal_id: goal.id,
            review_id: reviews[0].id,
            note: text("began"),
        }];
        let wanted = vec![ProgressEntry {
            on: day(10),
            note: text("better"),
        }];
        let changes = revise_progress(&goal, &reviews, &stored, &wanted).unwrap();
        assert_eq!(changes.insert.len(), 1);
        assert_eq!(changes.insert[0].review_id, reviews[1].id);
        assert_eq!(changes.remove, vec![stored[0].id]);
        let unknown = vec![ProgressEntry {
            on: day(17),
            note: text("?"),
        }];
        assert_eq!(
            revise_progress(&goal, &reviews, &stored, &unknown).unwrap_err(),
            0
        );
    }
}
