//! Referrals in (step-down from inpatient care) and out (step-up, or step-down to outpatient care).

use chrono::NaiveDate;

use super::{
    Attendance, Client, DomainError, EnrollmentState, Id, NonEmptyText, Organization, Program,
    RelapsePreventionPlan, SupportContact, TreatmentPlan,
};

code_enum! {
    pub enum ReferralDirection {
        Inbound => "inbound",
        Outbound => "outbound",
    }
}

code_enum! {
    pub enum ReferralKind {
        /// To a less intensive level of care (inpatient -> IOP, IOP -> outpatient).
        StepDown => "step_down",
        /// To a more intensive level of care (IOP -> inpatient/residential).
        StepUp => "step_up",
    }
}

code_enum! {
    /// The referral lifecycle (after HL7 BSeR's Task statuses).
    pub enum ReferralStatus {
        /// Outbound: sent, not yet acknowledged.
        Requested => "requested",
        /// Inbound: arrived, not yet decided.
        Received => "received",
        Accepted => "accepted",
        Declined => "declined",
        /// The client was admitted / the referral was fulfilled.
        Completed => "completed",
        Cancelled => "cancelled",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referral {
    pub id: Id<Referral>,
    pub client_id: Id<Client>,
    pub direction: ReferralDirection,
    pub kind: ReferralKind,
    pub status: ReferralStatus,
    pub reason: NonEmptyText,
    pub referred_on: NaiveDate,
    /// When it was accepted, declined, completed or cancelled.
    pub decided_on: Option<NaiveDate>,
    pub referring_org_id: Id<Organization>,
    pub receiving_org_id: Id<Organization>,
    /// For inbound referrals: the program the client is referred to.
    pub program_id: Option<Id<Program>>,
    /// Why it was declined or cancelled, as the deciding side wrote it (BSeR's
    /// `Task.statusReason`).
    pub status_reason: Option<NonEmptyText>,
    /// Outbound: the records sent along as the transition summary (chosen when it is sent).
    pub transition_summary: Vec<SummaryItem>,
}

/// A record an outbound referral sends along: the treatment plan (with its goals and
/// progress), the relapse-prevention plan (triggers, coping skills, support people) and the
/// support contacts (whom consent lets the receiver see).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SummaryItem {
    TreatmentPlan(Id<TreatmentPlan>),
    RelapsePlan(Id<RelapsePreventionPlan>),
    Contact(Id<SupportContact>),
}

impl std::fmt::Display for SummaryItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TreatmentPlan(id) => write!(f, "treatment_plan:{id}"),
            Self::RelapsePlan(id) => write!(f, "relapse_plan:{id}"),
            Self::Contact(id) => write!(f, "contact:{id}"),
        }
    }
}

impl std::str::FromStr for SummaryItem {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let malformed = || DomainError::Malformed {
            field: "transition summary item",
            rule: "kind:id with kind treatment_plan, relapse_plan or contact",
        };
        let (kind, id) = s.split_once(':').ok_or_else(malformed)?;
        match kind {
            "treatment_plan" => id.parse().map(Self::TreatmentPlan).map_err(|_| malformed()),
            "relapse_plan" => id.parse().map(Self::RelapsePlan).map_err(|_| malformed()),
            "contact" => id.parse().map(Self::Contact).map_err(|_| malformed()),
            _ => Err(malformed()),
        }
    }
}

impl Referral {
    pub fn check(&self) -> Result<(), DomainError> {
        if self.referring_org_id == self.receiving_org_id {
            return Err(DomainError::Inconsistent(
                "a referral goes from one organization to another",
            ));
        }
        if matches!(self.decided_on, Some(d) if d < self.referred_on) {
            return Err(DomainError::Inconsistent(
                "a referral cannot be decided before it was made",
            ));
        }
        let pending = matches!(
            self.status,
            ReferralStatus::Requested | ReferralStatus::Received
        );
        if pending == self.decided_on.is_some() {
            return Err(DomainError::Inconsistent(
                "a referral has a decision date exactly when it is no longer pending",
            ));
        }
        Ok(())
    }

    /// The decision on a referral that has arrived and is not yet decided: accepted, declined
    /// (why is required: the referring side must learn it) or cancelled, dated `on`.
    pub fn decide(
        &self,
        decision: ReferralStatus,
        on: NaiveDate,
        reason: Option<NonEmptyText>,
    ) -> Result<Referral, DomainError> {
        if self.status != ReferralStatus::Received {
            return Err(DomainError::Inconsistent(
                "only a received referral that is not yet decided can be accepted or declined",
            ));
        }
        match decision {
            ReferralStatus::Accepted | ReferralStatus::Cancelled => {}
            ReferralStatus::Declined if reason.is_none() => {
                return Err(DomainError::Inconsistent(
                    "a declined referral says why (Task.statusReason)",
                ));
            }
            ReferralStatus::Declined => {}
            _ => {
                return Err(DomainError::Inconsistent(
                    "a referral is decided by accepting, declining or cancelling it",
                ));
            }
        }
        let decided = Referral {
            status: decision,
            decided_on: Some(on.max(self.referred_on)),
            status_reason: reason,
            ..self.clone()
        };
        decided.check()?;
        Ok(decided)
    }
}

/// The enrollment a referral led to, as far as its Task shows it: the enrollment's state, the
/// attendance of its most recent session whose attendance is recorded, and whether a session is
/// scheduled. Triggers bump the referral when any of it changes (migration 0008).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReferralProgress {
    pub enrollment: Option<EnrollmentState>,
    pub last_attendance: Option<Attendance>,
    pub session_scheduled: bool,
}

code_enum! {
    /// What became of a referral message when it arrived.
    pub enum IntakeState {
        /// The client was found by an identifier or an exact demographic match.
        Linked => "linked",
        /// No client matched: a new client was created from the referral's Patient.
        NewClient => "new_client",
        /// Several clients could be the one referred (or one matched only in part): the referral
        /// waits for a person to choose; nothing is merged automatically.
        Review => "review",
        /// A person chose the client of a referral that waited for review.
        Matched => "matched",
    }
}

/// A referral's ServiceRequest sent on its own (the RESTful way), held until the Task that
/// focuses it arrives. Its id becomes the intake's and the referral's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldReferralRequest {
    pub id: Id<HeldReferralRequest>,
    /// Its placer identifier (`system|value`): a resend finds it.
    pub placer_key: NonEmptyText,
    /// The ServiceRequest as received (opaque to the store).
    pub resource: String,
}

/// A referral message as received (BSeR): the keys that make a resend a no-op, what matching
/// decided, and the message itself (a review finishes the intake from it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferralIntake {
    /// Also the id of the referral it becomes (its ServiceRequest and Task).
    pub id: Id<ReferralIntake>,
    /// The message Bundle's identifier (`system|value`), when it had one.
    pub message_key: Option<NonEmptyText>,
    /// The referring side's placer identifier of the referral (`system|value`): one intake per
    /// referral, whichever message carried it.
    pub placer_key: NonEmptyText,
    pub state: IntakeState,
    /// The referral, once it is stored (not while it waits for review).
    pub referral_id: Option<Id<Referral>>,
    /// The clients it could be, while it waits for review.
    pub candidates: Vec<Id<Client>>,
    /// The message as received (opaque to the store).
    pub message: String,
    /// Where the referring side keeps the referral's Task and ServiceRequest (absolute URLs),
    /// when the message says: the clinic's decisions go back into that Task.
    pub source_task: Option<String>,
    pub source_request: Option<String>,
}

impl ReferralIntake {
    /// The referral this intake becomes shares its id.
    pub fn referral_id(&self) -> Id<Referral> {
        Id::from_uuid(self.id.uuid())
    }

    pub fn check(&self) -> Result<(), DomainError> {
        if (self.state == IntakeState::Review) != self.referral_id.is_none() {
            return Err(DomainError::Inconsistent(
                "an intake has a referral exactly when it is not waiting for review",
            ));
        }
        if self.state == IntakeState::Review && self.candidates.is_empty() {
            return Err(DomainError::Inconsistent(
                "an intake waiting for review names its candidates",
            ));
        }
        Ok(())
    }
}
