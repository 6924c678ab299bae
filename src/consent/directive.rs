//! A consent directive: the client's consent as rules the decision can evaluate (the shape of a
//! FHIR R4 `Consent`: status, period, dates, and a tree of provisions).

use chrono::NaiveDate;

use super::PurposeOfUse;
use crate::domain::{
    Consent, ConsentKind, DateRange, Id, InformationCategory, Staff, SupportContact,
};

/// FHIR `Consent.status`. Only an `Active` directive can be in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectiveStatus {
    Draft,
    Proposed,
    Active,
    Rejected,
    Inactive,
    EnteredInError,
}

/// One client consent, as evaluated by [`crate::consent::decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentDirective {
    /// The clinic's consent record; named in the decision's basis.
    pub id: Id<Consent>,
    pub kind: ConsentKind,
    pub status: DirectiveStatus,
    /// The days the directive may be applied on (both ends inclusive; an open end never expires).
    pub period: DateRange,
    /// The day the client signed (FHIR `dateTime`). Directives signed after today do not count,
    /// and among directives that apply the most recently signed one decides.
    pub signed_on: NaiveDate,
    /// The day the client revoked it: from that day on the directive is no longer in force.
    pub revoked_on: Option<NaiveDate>,
    /// The root provision. Its type defaults to permit (an opt-in consent).
    pub provision: Provision,
}

impl ConsentDirective {
    /// Is the directive in force on `today`: active, signed, within its period and not revoked?
    pub fn in_force_on(&self, today: NaiveDate) -> bool {
        self.status == DirectiveStatus::Active
            && self.signed_on <= today
            && self.period.contains(today)
            && self.revoked_on.is_none_or(|revoked| today < revoked)
    }
}

/// Whether a provision permits or denies what it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProvisionType {
    Permit,
    Deny,
}

impl ProvisionType {
    pub fn opposite(self) -> Self {
        match self {
            Self::Permit => Self::Deny,
            Self::Deny => Self::Permit,
        }
    }
}

/// A rule of a directive (FHIR `Consent.provision`). Each list narrows what the provision covers;
/// an empty list narrows nothing. Within one list any entry matches; all lists must match.
/// Nested provisions are exceptions: they apply only to what their parent covers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Provision {
    /// Permit or deny; absent means the opposite of the parent (permit at the root).
    pub kind: Option<ProvisionType>,
    /// Who may receive the data (FHIR `actor` with role IRCP).
    pub actors: Vec<Actor>,
    /// Under which purposes of use.
    pub purposes: Vec<PurposeOfUse>,
    /// Which classes of clinical information (FHIR `code`).
    pub data_classes: Vec<DataClass>,
    /// Which FHIR resource types (FHIR `class`), e.g. `"CarePlan"`.
    pub resource_types: Vec<String>,
    /// Resources carrying any of these security labels (FHIR `securityLabel`).
    pub security_labels: Vec<SecurityLabel>,
    /// Exceptions to this provision (FHIR `provision.provision`).
    pub exceptions: Vec<Provision>,
}

impl Provision {
    /// A permit with no narrowing: everything, to anyone, for any purpose.
    pub fn permit() -> Self {
        Self {
            kind: Some(ProvisionType::Permit),
            ..Self::default()
        }
    }
    /// A deny with no narrowing.
    pub fn deny() -> Self {
        Self {
            kind: Some(ProvisionType::Deny),
            ..Self::default()
        }
    }
}

/// A recipient named by a provision.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Actor {
    /// An organization by its FHIR id (the clinic's `Id<Organization>` as text).
    Organization(String),
    /// A named clinician. A request is made for an organization or a support contact, so a
    /// clinician actor never matches one: consent to tell a person is not consent to tell their
    /// employer.
    Clinician(Id<Staff>),
    /// One of the client's support contacts (family of origin or chosen family).
    SupportContact(Id<SupportContact>),
}

/// A class of information a provision can name: the clinic's information categories, and SUD
/// counselling notes, which Part 2 protects beyond other substance-use records and which no
/// general consent releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataClass {
    Category(InformationCategory),
    /// Notes of a Part 2 program's counsellor, kept apart from the rest of the record (§2.11).
    SudCounsellingNotes,
}

impl From<InformationCategory> for DataClass {
    fn from(category: InformationCategory) -> Self {
        Self::Category(category)
    }
}

/// The HL7 security labels (v3 ActCode) the decision reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityLabel {
    /// `42CFRPart2`: the record is protected by 42 CFR Part 2.
    Part2,
    /// `SUD`: substance use disorder information sensitivity.
    Sud,
    /// `PSYTHPN`: psychotherapy note; with a Part 2 record, an SUD counselling note.
    PsychotherapyNote,
}

impl SecurityLabel {
    pub const ALL: [SecurityLabel; 3] = [Self::Part2, Self::Sud, Self::PsychotherapyNote];

    pub fn code(self) -> &'static str {
        match self {
            Self::Part2 => "42CFRPart2",
            Self::Sud => "SUD",
            Self::PsychotherapyNote => "PSYTHPN",
        }
    }
    /// The label for a v3 ActCode code; None for codes the decision does not read.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|label| label.code() == code)
    }
    /// Does the label mark substance-use (Part 2) information?
    pub fn marks_part2(self) -> bool {
        matches!(self, Self::Part2 | Self::Sud)
    }
}
