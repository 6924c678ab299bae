//! Who the clinic deals with: organizations, staff, clients and the clients' support contacts.

use chrono::NaiveDate;

use super::{Address, DateRange, Email, Id, LanguageTag, Mrn, NonEmptyText, PersonName, Phone};

code_enum! {
    /// What an organization is to the clinic.
    pub enum OrganizationKind {
        /// The IOP clinic itself.
        Clinic => "clinic",
        /// An inpatient or residential provider that steps clients down to the IOP.
        InpatientHospital => "inpatient_hospital",
        /// An outpatient practice the clinic steps clients down to.
        OutpatientProvider => "outpatient_provider",
        /// An external EHR / care-team organization the clinic shares records with.
        PartnerEhr => "partner_ehr",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    pub id: Id<Organization>,
    pub kind: OrganizationKind,
    pub name: NonEmptyText,
    /// National Provider Identifier (10 digits), when the organization has one.
    pub npi: Option<NonEmptyText>,
    pub phone: Option<Phone>,
    pub address: Option<Address>,
}

code_enum! {
    pub enum StaffRole {
        Psychiatrist => "psychiatrist",
        PsychiatricNursePractitioner => "psychiatric_nurse_practitioner",
        Psychologist => "psychologist",
        ClinicalSocialWorker => "clinical_social_worker",
        ProfessionalCounselor => "professional_counselor",
        AddictionCounselor => "addiction_counselor",
        MarriageFamilyTherapist => "marriage_family_therapist",
        CaseManager => "case_manager",
        PeerSupportSpecialist => "peer_support_specialist",
        RegisteredNurse => "registered_nurse",
        ProgramDirector => "program_director",
    }
}

/// A clinician or other staff member of an organization (usually the clinic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staff {
    pub id: Id<Staff>,
    pub organization_id: Id<Organization>,
    pub name: PersonName,
    pub role: StaffRole,
    /// Credentials as written after the name: `MD`, `LCSW`, `LPC, LCADC`.
    pub credentials: Option<NonEmptyText>,
    pub npi: Option<NonEmptyText>,
    pub email: Option<Email>,
    pub phone: Option<Phone>,
    pub active: bool,
}

code_enum! {
    /// FHIR administrative gender; the clinic records the same four values.
    pub enum Gender {
        Male => "male",
        Female => "female",
        Other => "other",
        Unknown => "unknown",
    }
}

/// A client (patient) of the clinic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub id: Id<Client>,
    pub mrn: Mrn,
    pub name: PersonName,
    pub birth_date: NaiveDate,
    pub gender: Gender,
    pub phone: Option<Phone>,
    pub email: Option<Email>,
    pub address: Option<Address>,
    pub language: Option<LanguageTag>,
}

code_enum! {
    /// How a support contact is related to the client (maps to HL7 v3 RoleCode).
    pub enum Relationship {
        Mother => "mother",
        Father => "father",
        Parent => "parent",
        Sibling => "sibling",
        Grandparent => "grandparent",
        Spouse => "spouse",
        DomesticPartner => "domestic_partner",
        SignificantOther => "significant_other",
        Child => "child",
        InLaw => "in_law",
        Friend => "friend",
        /// Aunts, uncles, cousins, nieces, nephews, grandchildren, great-grandparents (v3 `EXT`).
        ExtendedFamily => "extended_family",
        /// No code fits; `relationship_text` says what the client called it.
        Other => "other",
    }
}

/// Family of origin or chosen family; derived from the relationship, never stored apart from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FamilyKind {
    Origin,
    Chosen,
}

impl Relationship {
    pub fn family_kind(self) -> FamilyKind {
        match self {
            Self::Mother
            | Self::Father
            | Self::Parent
            | Self::Sibling
            | Self::Grandparent
            | Self::ExtendedFamily => FamilyKind::Origin,
            _ => FamilyKind::Chosen,
        }
    }
}

/// The parts a support contact plays in the client's treatment (any combination, at least one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupportRoles {
    family_therapy_participant: bool,
    emergency_contact: bool,
    support_person: bool,
}

impl SupportRoles {
    pub fn new(
        family_therapy_participant: bool,
        emergency_contact: bool,
        support_person: bool,
    ) -> Result<Self, super::DomainError> {
        if !(family_therapy_participant || emergency_contact || support_person) {
            return Err(super::DomainError::Inconsistent(
                "a support contact needs at least one role",
            ));
        }
        Ok(Self {
            family_therapy_participant,
            emergency_contact,
            support_person,
        })
    }
    pub fn family_therapy_participant(&self) -> bool {
        self.family_therapy_participant
    }
    pub fn emergency_contact(&self) -> bool {
        self.emergency_contact
    }
    pub fn support_person(&self) -> bool {
        self.support_person
    }
}

/// A member of the client's family of origin or chosen family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportContact {
    pub id: Id<SupportContact>,
    pub client_id: Id<Client>,
    pub name: PersonName,
    pub relationship: Relationship,
    /// The client's own words for the relationship; required when `relationship` is `Other`.
    pub relationship_text: Option<NonEmptyText>,
    pub roles: SupportRoles,
    pub phone: Option<Phone>,
    pub email: Option<Email>,
    pub active: DateRange,
}

impl SupportContact {
    /// Checks the rule that crosses fields: `Other` needs words.
    pub fn check(&self) -> Result<(), super::DomainError> {
        if self.relationship == Relationship::Other && self.relationship_text.is_none() {
            return Err(super::DomainError::Inconsistent(
                "relationship `other` needs relationship text",
            ));
        }
        Ok(())
    }
}
