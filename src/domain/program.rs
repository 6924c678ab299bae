//! Programs the clinic runs, the therapy groups inside them, and clients' enrollments (episodes of care).

use chrono::NaiveDate;

use super::{
    Client, DomainError, Id, NonEmptyText, Organization, Referral, Staff, session::Modality,
};

code_enum! {
    pub enum ProgramPopulation {
        Adult => "adult",
        Adolescent => "adolescent",
    }
}

code_enum! {
    pub enum ProgramFocus {
        MentalHealth => "mental_health",
        SubstanceUse => "substance_use",
        CoOccurring => "co_occurring",
    }
}

code_enum! {
    pub enum ProgramDelivery {
        InPerson => "in_person",
        Virtual => "virtual",
        Hybrid => "hybrid",
    }
}

/// How much treatment a week an IOP gives: 3–5 days and 6–20 hours (the IOP definition).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgramIntensity {
    days_per_week: u8,
    hours_per_week: u8,
}

impl ProgramIntensity {
    pub fn new(days_per_week: i64, hours_per_week: i64) -> Result<Self, DomainError> {
        if !(3..=5).contains(&days_per_week) {
            return Err(DomainError::Malformed {
                field: "days per week",
                rule: "an IOP meets 3 to 5 days a week",
            });
        }
        if !(6..=20).contains(&hours_per_week) {
            return Err(DomainError::Malformed {
                field: "hours per week",
                rule: "an IOP gives 6 to 20 hours a week",
            });
        }
        Ok(Self {
            days_per_week: days_per_week as u8,
            hours_per_week: hours_per_week as u8,
        })
    }
    pub fn days_per_week(&self) -> u8 {
        self.days_per_week
    }
    pub fn hours_per_week(&self) -> u8 {
        self.hours_per_week
    }
    /// Minutes of one program day.
    pub fn minutes_per_day(&self) -> u16 {
        u16::from(self.hours_per_week) * 60 / u16::from(self.days_per_week)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub id: Id<Program>,
    /// Short stable code, unique per clinic: `adult-mh-iop`.
    pub code: NonEmptyText,
    pub name: NonEmptyText,
    pub population: ProgramPopulation,
    pub focus: ProgramFocus,
    /// ASAM level of care for substance-use programs (`2.1` is IOP).
    pub asam_level: Option<NonEmptyText>,
    /// The program is a federally assisted substance-use disorder program: its records fall under
    /// 42 CFR Part 2 and may be disclosed only with a Part 2 consent.
    pub part2: bool,
    pub delivery: ProgramDelivery,
    pub intensity: ProgramIntensity,
}

/// A standing therapy group of a program (e.g. "DBT skills, Tuesday/Thursday").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TherapyGroup {
    pub id: Id<TherapyGroup>,
    pub program_id: Id<Program>,
    pub name: NonEmptyText,
    pub modality: Modality,
    pub facilitator_id: Id<Staff>,
}

code_enum! {
    pub enum LevelOfCare {
        /// ASAM 2.1 / mental-health IOP.
        IntensiveOutpatient => "intensive_outpatient",
        /// ASAM 2.5 / PHP, for clients who step up within the clinic.
        PartialHospitalization => "partial_hospitalization",
        /// ASAM 1 / routine outpatient, for step-down within the clinic.
        Outpatient => "outpatient",
    }
}

code_enum! {
    pub enum DischargeDisposition {
        StepDownOutpatient => "step_down_outpatient",
        StepUpInpatient => "step_up_inpatient",
        Completed => "completed",
        LeftAgainstAdvice => "left_against_advice",
    }
}

/// Where an enrollment stands. A discharge always has its date and disposition, so the two cannot
/// be missing or present on their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrollmentState {
    Planned,
    Active,
    OnHold,
    Discharged {
        on: NaiveDate,
        disposition: DischargeDisposition,
    },
    Cancelled,
}

impl EnrollmentState {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Planned => "planned",
            Self::Active => "active",
            Self::OnHold => "on_hold",
            Self::Discharged { .. } => "discharged",
            Self::Cancelled => "cancelled",
        }
    }
    /// Rebuilds the state from its stored columns.
    pub fn from_parts(
        code: &str,
        discharged_on: Option<NaiveDate>,
        disposition: Option<DischargeDisposition>,
    ) -> Result<Self, DomainError> {
        let state = match (code, discharged_on, disposition) {
            ("discharged", Some(on), Some(disposition)) => Self::Discharged { on, disposition },
            ("discharged", _, _) => {
                return Err(DomainError::Inconsistent(
                    "a discharge needs a date and a disposition",
                ));
            }
            (_, Some(_), _) | (_, _, Some(_)) => {
                return Err(DomainError::Inconsistent(
                    "only a discharged enrollment has a discharge date or disposition",
                ));
            }
            ("planned", ..) => Self::Planned,
            ("active", ..) => Self::Active,
            ("on_hold", ..) => Self::OnHold,
            ("cancelled", ..) => Self::Cancelled,
            (other, ..) => {
                return Err(DomainError::UnknownCode {
                    kind: "EnrollmentState",
                    code: other.to_owned(),
                });
            }
        };
        Ok(state)
    }
    pub fn discharged_on(&self) -> Option<NaiveDate> {
        match self {
            Self::Discharged { on, .. } => Some(*on),
            _ => None,
        }
    }
    pub fn disposition(&self) -> Option<DischargeDisposition> {
        match self {
            Self::Discharged { disposition, .. } => Some(*disposition),
            _ => None,
        }
    }
}

/// A client's episode of care in one program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    pub id: Id<Enrollment>,
    pub client_id: Id<Client>,
    pub program_id: Id<Program>,
    /// The inbound referral this enrollment came from, if any.
    pub referral_id: Option<Id<Referral>>,
    /// Who sent the client (usually the inpatient unit stepping the client down).
    pub referral_source_id: Option<Id<Organization>>,
    pub admitted_on: NaiveDate,
    pub state: EnrollmentState,
    pub level_of_care: LevelOfCare,
    pub primary_clinician_id: Id<Staff>,
}

impl Enrollment {
    pub fn check(&self) -> Result<(), DomainError> {
        match self.state.discharged_on() {
            Some(on) if on < self.admitted_on => Err(DomainError::Inconsistent(
                "discharge cannot precede admission",
            )),
            _ => Ok(()),
        }
    }
}

/// The one enrollment among `enrollments` open on `day` (admitted by then, not discharged
/// before): where a plan that names no enrollment belongs. None when there is none or more
/// than one: then the plan must say.
pub fn enrollment_open_on(enrollments: &[Enrollment], day: NaiveDate) -> Option<Id<Enrollment>> {
    let mut open = enrollments
        .iter()
        .filter(|e| e.admitted_on <= day && e.state.discharged_on().is_none_or(|end| end >= day));
    match (open.next(), open.next()) {
        (Some(one), None) => Some(one.id),
        _ => None,
    }
}
