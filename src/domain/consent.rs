//! Consents: releases of information, family participation, and 42 CFR Part 2 disclosures.

use chrono::NaiveDate;

use super::{Client, DateRange, DomainError, Id, Organization, Staff, SupportContact};

code_enum! {
    pub enum ConsentKind {
        /// A general release of information (HIPAA authorization).
        ReleaseOfInformation => "release_of_information",
        /// Permission for support contacts to take part in treatment (family sessions, updates).
        FamilyParticipation => "family_participation",
        /// A written consent to disclose substance-use records under 42 CFR Part 2.
        Part2Disclosure => "part2_disclosure",
    }
}

code_enum! {
    /// Named categories of clinical information a consent can release.
    pub enum InformationCategory {
        Demographics => "demographics",
        Diagnoses => "diagnoses",
        TreatmentPlan => "treatment_plan",
        Attendance => "attendance",
        Medications => "medications",
        Assessments => "assessments",
        DischargeSummary => "discharge_summary",
        /// Records that reveal substance-use treatment (Part 2 records).
        SubstanceUse => "substance_use",
    }
}

/// What information a consent releases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InformationScope {
    All,
    /// Everything except substance-use (Part 2) records.
    AllExceptSubstanceUse,
    /// Only the named categories (at least one, no repeats).
    Categories(Vec<InformationCategory>),
}

impl InformationScope {
    pub fn categories(list: Vec<InformationCategory>) -> Result<Self, DomainError> {
        if list.is_empty() {
            return Err(DomainError::Empty {
                field: "consent categories",
            });
        }
        let mut seen = list.clone();
        seen.sort_by_key(|c| c.code());
        seen.dedup();
        if seen.len() != list.len() {
            return Err(DomainError::Inconsistent(
                "a consent category is named twice",
            ));
        }
        Ok(Self::Categories(list))
    }
    pub fn code(&self) -> &'static str {
        match self {
            Self::All => "all",
            Self::AllExceptSubstanceUse => "all_except_substance_use",
            Self::Categories(_) => "categories",
        }
    }
    /// Does this scope release substance-use (Part 2) records?
    pub fn includes_substance_use(&self) -> bool {
        match self {
            Self::All => true,
            Self::AllExceptSubstanceUse => false,
            Self::Categories(list) => list.contains(&InformationCategory::SubstanceUse),
        }
    }
}

code_enum! {
    pub enum ConsentPurpose {
        Treatment => "treatment",
        Payment => "payment",
        Operations => "operations",
        FamilyParticipation => "family_participation",
        CareCoordination => "care_coordination",
    }
}

/// To whom the information may be released: exactly one organization, clinician or support contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentRecipient {
    Organization(Id<Organization>),
    Clinician(Id<Staff>),
    SupportContact(Id<SupportContact>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    pub id: Id<Consent>,
    pub client_id: Id<Client>,
    pub kind: ConsentKind,
    pub scope: InformationScope,
    pub recipient: ConsentRecipient,
    pub purpose: ConsentPurpose,
    pub valid: DateRange,
    pub signed_on: NaiveDate,
    pub revoked_on: Option<NaiveDate>,
}

impl Consent {
    pub fn check(&self) -> Result<(), DomainError> {
        if matches!(self.revoked_on, Some(r) if r < self.signed_on) {
            return Err(DomainError::Inconsistent(
                "a consent cannot be revoked before it was signed",
            ));
        }
        if self.kind == ConsentKind::FamilyParticipation
            && !matches!(self.recipient, ConsentRecipient::SupportContact(_))
        {
            return Err(DomainError::Inconsistent(
                "a family-participation consent names a support contact",
            ));
        }
        if self.kind == ConsentKind::Part2Disclosure && !self.scope.includes_substance_use() {
            return Err(DomainError::Inconsistent(
                "a Part 2 disclosure consent must release substance-use records",
            ));
        }
        Ok(())
    }

    /// Is the consent in force on `day`: signed, within its period and not yet revoked?
    pub fn in_force_on(&self, day: NaiveDate) -> bool {
        day >= self.signed_on && self.valid.contains(day) && self.revoked_on.is_none_or(|r| day < r)
    }
}
