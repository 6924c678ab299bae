//! The clinic's own domain: what an IOP clinic records, as Rust types that cannot hold bad values.
//!
//! Parse, don't validate: every constructor checks, so a value that exists is valid. The store
//! returns these types and the mapping takes them; nothing downstream re-checks. This module knows
//! nothing of SQL or FHIR.

mod access;
#[macro_use]
mod code;
mod consent;
mod matching;
mod operator;
mod people;
mod plan;
mod plan_revision;
mod program;
mod referral;
mod session;
mod values;

pub use access::{ApiClient, AuditInteraction, AuditOutcome, AuditRecord, ClientId, KeySource};
pub use code::Coded;
pub use consent::{
    Consent, ConsentKind, ConsentPurpose, ConsentRecipient, InformationCategory, InformationScope,
};
pub use matching::{PatientMatch, match_patient};
pub use operator::{Operator, OperatorName, Role, Roles};
pub use people::{
    Client, FamilyKind, Gender, Organization, OrganizationKind, Relationship, Staff, StaffRole,
    SupportContact, SupportRoles,
};
pub use plan::{
    Goal, GoalAchievement, GoalProgressNote, GoalStatus, Intervention, PlanReview, PlanStatus,
    RelapseItemKind, RelapsePlanItem, RelapsePreventionPlan, TreatmentPlan,
};
pub use plan_revision::{
    ProgressChanges, ProgressEntry, ReviewChanges, ReviewEntry, revise_progress, revise_reviews,
    same_interventions, same_relapse_items,
};
pub use program::{
    DischargeDisposition, Enrollment, EnrollmentState, LevelOfCare, Program, ProgramDelivery,
    ProgramFocus, ProgramIntensity, ProgramPopulation, TherapyGroup, enrollment_open_on,
};
pub use referral::{
    HeldReferralRequest, IntakeState, Referral, ReferralDirection, ReferralIntake, ReferralKind,
    ReferralProgress, ReferralStatus, SummaryItem,
};
pub use session::{
    Attendance, Modality, Session, SessionDelivery, SessionLength, SessionParticipant, SessionType,
};
pub use values::{
    Address, DateRange, Email, ExternalIdentifier, Id, LanguageTag, Mrn, NonEmptyText, PersonName,
    Phone, Timestamp,
};

/// Why a value was refused. Messages name the field and the rule, never the value itself: the value
/// may be PHI (a name, a birth date) and these messages reach logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("{field} must not be empty")]
    Empty { field: &'static str },
    #[error("{field} is longer than {max} characters")]
    TooLong { field: &'static str, max: usize },
    #[error("{field} is not well formed: {rule}")]
    Malformed {
        field: &'static str,
        rule: &'static str,
    },
    #[error("unknown {kind} code `{code}`")]
    UnknownCode { kind: &'static str, code: String },
    #[error("{0}")]
    Inconsistent(&'static str),
}
