//! Individual treatment plans: goals, interventions, weekly reviews and the relapse-prevention plan.

use chrono::NaiveDate;

use super::{
    DateRange, DomainError, Enrollment, Id, NonEmptyText, Staff, SupportContact, session::Modality,
};

code_enum! {
    pub enum PlanStatus {
        Draft => "draft",
        Active => "active",
        Completed => "completed",
        Revoked => "revoked",
    }
}

/// The individual treatment plan of one enrollment, reviewed every `review_interval_days`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreatmentPlan {
    pub id: Id<TreatmentPlan>,
    pub enrollment_id: Id<Enrollment>,
    pub status: PlanStatus,
    pub period: DateRange,
    pub author_id: Id<Staff>,
    pub review_interval_days: u16,
    pub next_review_on: Option<NaiveDate>,
}

impl TreatmentPlan {
    pub fn check(&self) -> Result<(), DomainError> {
        if !(1..=90).contains(&self.review_interval_days) {
            return Err(DomainError::Malformed {
                field: "review interval",
                rule: "1 to 90 days",
            });
        }
        Ok(())
    }
}

code_enum! {
    /// FHIR Goal.lifecycleStatus values the clinic uses.
    pub enum GoalStatus {
        Proposed => "proposed",
        Active => "active",
        OnHold => "on_hold",
        Completed => "completed",
        Cancelled => "cancelled",
    }
}

code_enum! {
    /// FHIR Goal.achievementStatus values.
    pub enum GoalAchievement {
        InProgress => "in_progress",
        Improving => "improving",
        Worsening => "worsening",
        NoChange => "no_change",
        Achieved => "achieved",
        NotAchieved => "not_achieved",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Goal {
    pub id: Id<Goal>,
    pub plan_id: Id<TreatmentPlan>,
    pub description: NonEmptyText,
    pub target_on: Option<NaiveDate>,
    pub status: GoalStatus,
    pub achievement: Option<GoalAchievement>,
}

/// A planned intervention: a modality at a frequency (e.g. group therapy, 3 a week, 180 minutes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intervention {
    pub id: Id<Intervention>,
    pub plan_id: Id<TreatmentPlan>,
    pub modality: Modality,
    pub sessions_per_week: u8,
    pub minutes_per_session: u16,
    pub staff_id: Option<Id<Staff>>,
}

impl Intervention {
    pub fn check(&self) -> Result<(), DomainError> {
        if !(1..=7).contains(&self.sessions_per_week) {
            return Err(DomainError::Malformed {
                field: "sessions per week",
                rule: "1 to 7",
            });
        }
        if !(15..=480).contains(&self.minutes_per_session) {
            return Err(DomainError::Malformed {
                field: "minutes per session",
                rule: "15 to 480",
            });
        }
        Ok(())
    }
}

/// A (weekly) review of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanReview {
    pub id: Id<PlanReview>,
    pub plan_id: Id<TreatmentPlan>,
    pub reviewed_on: NaiveDate,
    pub reviewer_id: Id<Staff>,
    pub summary: NonEmptyText,
}

/// What a review said about one goal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoalProgressNote {
    pub id: Id<GoalProgressNote>,
    pub goal_id: Id<Goal>,
    pub review_id: Id<PlanReview>,
    pub note: NonEmptyText,
}

/// The relapse-prevention plan that belongs to a treatment plan (one each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelapsePreventionPlan {
    pub id: Id<RelapsePreventionPlan>,
    pub plan_id: Id<TreatmentPlan>,
    pub created_on: NaiveDate,
}

code_enum! {
    pub enum RelapseItemKind {
        Trigger => "trigger",
        WarningSign => "warning_sign",
        CopingSkill => "coping_skill",
        /// A support contact to call (the item names the contact).
        SupportContact => "support_contact",
    }
}

/// One line of a relapse-prevention plan: a trigger, warning sign or coping skill in the client's
/// words, or a support contact to call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelapsePlanItem {
    pub id: Id<RelapsePlanItem>,
    pub relapse_plan_id: Id<RelapsePreventionPlan>,
    pub kind: RelapseItemKind,
    pub position: u16,
    pub text: Option<NonEmptyText>,
    pub support_contact_id: Option<Id<SupportContact>>,
}

impl RelapsePlanItem {
    pub fn check(&self) -> Result<(), DomainError> {
        let is_contact = self.kind == RelapseItemKind::SupportContact;
        if is_contact != self.support_contact_id.is_some() {
            return Err(DomainError::Inconsistent(
                "exactly the support-contact items name a support contact",
            ));
        }
        if !is_contact && self.text.is_none() {
            return Err(DomainError::Empty {
                field: "relapse plan item text",
            });
        }
        Ok(())
    }
}
