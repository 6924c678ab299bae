//! Treatment sessions: what happened (or is scheduled) on a program day, and who took part.

use super::{DomainError, Enrollment, Id, Staff, SupportContact, Timestamp, program::TherapyGroup};

code_enum! {
    /// The kind of treatment given: plan interventions and the sessions that deliver them.
    pub enum Modality {
        IndividualTherapy => "individual_therapy",
        GroupTherapy => "group_therapy",
        FamilyTherapy => "family_therapy",
        Cbt => "cbt",
        Dbt => "dbt",
        Emdr => "emdr",
        MedicationManagement => "medication_management",
        CaseManagement => "case_management",
        Psychoeducation => "psychoeducation",
        Mindfulness => "mindfulness",
        Yoga => "yoga",
        ArtTherapy => "art_therapy",
    }
}

code_enum! {
    pub enum SessionType {
        Individual => "individual",
        Group => "group",
        Family => "family",
        MedicationManagement => "medication_management",
        CaseManagement => "case_management",
        Assessment => "assessment",
    }
}

code_enum! {
    pub enum SessionDelivery {
        InPerson => "in_person",
        Virtual => "virtual",
    }
}

code_enum! {
    pub enum Attendance {
        /// Not yet happened.
        Scheduled => "scheduled",
        Attended => "attended",
        /// Attended, but arrived late.
        Late => "late",
        NoShow => "no_show",
        Cancelled => "cancelled",
    }
}

/// Planned length of a session in minutes: 15 minutes to 8 hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SessionLength(u16);

impl SessionLength {
    pub fn minutes(minutes: i64) -> Result<Self, DomainError> {
        if !(15..=480).contains(&minutes) {
            return Err(DomainError::Malformed {
                field: "session length",
                rule: "15 to 480 minutes",
            });
        }
        Ok(Self(minutes as u16))
    }
    pub fn as_minutes(&self) -> u16 {
        self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: Id<Session>,
    pub enrollment_id: Id<Enrollment>,
    pub session_type: SessionType,
    pub modality: Option<Modality>,
    pub delivery: SessionDelivery,
    pub scheduled_start: Timestamp,
    pub length: SessionLength,
    pub clinician_id: Id<Staff>,
    pub attendance: Attendance,
    /// The therapy group, for group sessions (and only for them).
    pub group_id: Option<Id<TherapyGroup>>,
}

impl Session {
    pub fn check(&self) -> Result<(), DomainError> {
        match (self.session_type, self.group_id) {
            (SessionType::Group, None) => Err(DomainError::Inconsistent(
                "a group session names its therapy group",
            )),
            (SessionType::Group, Some(_)) | (_, None) => Ok(()),
            (_, Some(_)) => Err(DomainError::Inconsistent(
                "only group sessions name a therapy group",
            )),
        }
    }
}

/// A support contact who took part in a (family) session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionParticipant {
    pub id: Id<SessionParticipant>,
    pub session_id: Id<Session>,
    pub support_contact_id: Id<SupportContact>,
}
