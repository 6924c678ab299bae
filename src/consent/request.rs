//! A request to release one resource to one recipient for one purpose, on one day.

use std::fmt;

use chrono::NaiveDate;

use super::{DataClass, PurposeOfUse, SecurityLabel};
use crate::domain::{Id, InformationCategory, SupportContact};
use crate::mapping::Sensitivity;

/// What the decision asks about. The caller computes every fact from clinic data; the decision
/// reads nothing else (no clock: `today` is an input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    pub resource: ResourceFacts,
    pub recipient: Recipient,
    pub purpose: PurposeOfUse,
    pub today: NaiveDate,
    /// Organization ids the clinic counts as the client's care team (the clinic itself, referral
    /// sources; see [`crate::consent::care_team`]).
    pub care_team: &'a [String],
}

/// Who would receive the resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Recipient {
    /// An organization by its FHIR id (the clinic's `Id<Organization>` as text).
    Organization(String),
    /// One of the client's support contacts.
    SupportContact(Id<SupportContact>),
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Organization(id) => write!(f, "organization {id}"),
            Self::SupportContact(id) => write!(f, "support contact {id}"),
        }
    }
}

/// What the decision needs to know of the resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceFacts {
    /// The FHIR resource type, e.g. `"CarePlan"`.
    pub resource_type: String,
    /// The clinic's category of the information, when it has one.
    pub data_class: Option<InformationCategory>,
    pub labels: Labels,
}

/// The sensitivity of a resource, as its security labels say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Labels {
    /// Labelled `42CFRPart2` or `SUD`: a Part 2 record.
    pub part2: bool,
    /// An SUD counselling note. Such a note is always a Part 2 record, whatever `part2` says.
    pub sud_counselling_note: bool,
}

impl Labels {
    /// The labels the mapping gives a resource of this sensitivity (counselling notes aside).
    pub fn of(sensitivity: Sensitivity) -> Self {
        Self {
            part2: sensitivity == Sensitivity::Part2,
            sud_counselling_note: false,
        }
    }
    /// Reads v3 ActCode security label codes (`meta.security[].code`): `42CFRPart2` or `SUD` make
    /// a Part 2 record; `PSYTHPN` on a Part 2 record makes an SUD counselling note.
    pub fn from_codes<'c>(codes: impl IntoIterator<Item = &'c str>) -> Self {
        let labels: Vec<SecurityLabel> = codes
            .into_iter()
            .filter_map(SecurityLabel::from_code)
            .collect();
        let part2 = labels.iter().any(|l| l.marks_part2());
        Self {
            part2,
            sud_counselling_note: part2 && labels.contains(&SecurityLabel::PsychotherapyNote),
        }
    }
    pub fn is_part2(&self) -> bool {
        self.part2 || self.sud_counselling_note
    }
    /// The security labels the resource carries.
    pub fn security_labels(&self) -> Vec<SecurityLabel> {
        let mut labels = Vec::new();
        if self.is_part2() {
            labels.extend([SecurityLabel::Part2, SecurityLabel::Sud]);
        }
        if self.sud_counselling_note {
            labels.push(SecurityLabel::PsychotherapyNote);
        }
        labels
    }
}

impl ResourceFacts {
    pub fn is_part2(&self) -> bool {
        self.labels.is_part2()
    }
    /// Every data class the resource belongs to: its own category; substance-use records when it
    /// is a Part 2 record (in a Part 2 program every record reveals substance-use treatment); and
    /// SUD counselling notes when it is one.
    pub fn data_classes(&self) -> Vec<DataClass> {
        let mut classes: Vec<DataClass> =
            self.data_class.map(DataClass::from).into_iter().collect();
        if self.is_part2() && self.data_class != Some(InformationCategory::SubstanceUse) {
            classes.push(InformationCategory::SubstanceUse.into());
        }
        if self.labels.sud_counselling_note {
            classes.push(DataClass::SudCounsellingNotes);
        }
        classes
    }
}
