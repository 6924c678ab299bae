//! The answer: permit or deny, and why, in words a privacy officer can read in the audit log.

use std::fmt;

use chrono::NaiveDate;

use super::{PurposeOfUse, Recipient, ResourceFacts};
use crate::domain::{Consent, ConsentKind, Id, SupportContact};

/// Permit or deny, with the consent or rule that decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub permit: bool,
    pub basis: Basis,
}

impl Decision {
    /// Must the release carry the Part 2 labels and the redisclosure notice (§2.32)? True for a
    /// permitted Part 2 record; the caller adds them.
    pub fn needs_redisclosure_notice(&self, resource: &ResourceFacts) -> bool {
        self.permit && resource.is_part2()
    }
}

/// Why the decision went the way it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Basis {
    /// The most recent directive that applies decided.
    Consent(ConsentBasis),
    /// No directive applies; a rule decided.
    Rule(Rule),
}

/// The directive that decided, and which of its provisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentBasis {
    pub id: Id<Consent>,
    pub kind: ConsentKind,
    pub signed_on: NaiveDate,
    /// Indices into `exceptions` from the root provision to the governing one; empty: the root.
    pub provision: Vec<usize>,
}

/// The rules that decide when no directive does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// SUD counselling notes need a directive naming them (42 CFR 2.31(b)).
    CounsellingNotesWithoutConsent { recipient: Recipient },
    /// Part 2 records need a directive permitting the recipient (42 CFR 2.31, 2.33).
    Part2WithoutConsent { recipient: Recipient },
    /// Support contacts receive data only by a directive naming them.
    SupportContactWithoutConsent { contact: Id<SupportContact> },
    /// The mental-health policy: treatment by an organization on the care team.
    CareTeamTreatment {
        organization: String,
        purpose: PurposeOfUse,
    },
    /// The mental-health policy: the organization is not on the care team.
    NotOnCareTeam { organization: String },
    /// The mental-health policy: the purpose is not one of its treatment purposes.
    PurposeNotTreatment {
        organization: String,
        purpose: PurposeOfUse,
    },
    /// The mental-health policy is off: without a consent, nothing is released.
    PolicyOff { organization: String },
}

impl Rule {
    pub fn permits(&self) -> bool {
        matches!(self, Self::CareTeamTreatment { .. })
    }
}

impl From<Rule> for Decision {
    fn from(rule: Rule) -> Self {
        Self {
            permit: rule.permits(),
            basis: Basis::Rule(rule),
        }
    }
}

fn kind_words(kind: ConsentKind) -> &'static str {
    match kind {
        ConsentKind::ReleaseOfInformation => "release of information",
        ConsentKind::FamilyParticipation => "family participation",
        ConsentKind::Part2Disclosure => "42 CFR Part 2 disclosure",
    }
}

impl fmt::Display for ConsentBasis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "consent {} ({}, signed {})",
            self.id,
            kind_words(self.kind),
            self.signed_on.format("%Y-%m-%d")
        )?;
        if !self.provision.is_empty() {
            let steps: Vec<String> = self.provision.iter().map(|i| (i + 1).to_string()).collect();
            write!(f, ", exception {}", steps.join("."))?;
        }
        Ok(())
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CounsellingNotesWithoutConsent { recipient } => write!(
                f,
                "denied: SUD counselling notes and no consent naming them permits {recipient}"
            ),
            Self::Part2WithoutConsent { recipient } => {
                write!(f, "denied: Part 2 data and no consent permits {recipient}")
            }
            Self::SupportContactWithoutConsent { contact } => write!(
                f,
                "denied: no consent naming support contact {contact} permits them"
            ),
            Self::CareTeamTreatment { purpose, .. } => write!(
                f,
                "permitted by the mental-health policy: treatment ({purpose}) by a care-team organization"
            ),
            Self::NotOnCareTeam { organization } => write!(
                f,
                "denied by the mental-health policy: organization {organization} is not on the care team"
            ),
            Self::PurposeNotTreatment {
                organization,
                purpose,
            } => write!(
                f,
                "denied by the mental-health policy: {purpose} is not a treatment purpose (organization {organization})"
            ),
            Self::PolicyOff { organization } => write!(
                f,
                "denied: no consent permits organization {organization} and the mental-health policy is off"
            ),
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.basis {
            Basis::Consent(consent) if self.permit => write!(f, "permitted by {consent}"),
            Basis::Consent(consent) => write!(f, "denied by {consent}"),
            Basis::Rule(rule) => rule.fmt(f),
        }
    }
}
