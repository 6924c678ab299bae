//! Every code system the mapping uses, and the tables between the clinic's vocabularies and FHIR
//! codes. Standard systems (SNOMED CT, HL7 v3, LOINC) where a code exists; the project's own code
//! systems (`fhir-profiles/fsh/input/fsh/terminology.fsh`) where none fits.

use serde_json::Value;

use crate::domain::*;
use crate::json_build::fhir;

pub const CANONICAL: &str = "https://iop-gateway.org/fhir";
pub const SNOMED: &str = "http://snomed.info/sct";
pub const LOINC: &str = "http://loinc.org";
pub const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
pub const ROLE_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-RoleCode";
pub const CONFIDENTIALITY: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";
pub const ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
pub const PARTICIPATION_TYPE: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
pub const V2_0203: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";
pub const V2_0131: &str = "http://terminology.hl7.org/CodeSystem/v2-0131";
pub const CONSENT_SCOPE: &str = "http://terminology.hl7.org/CodeSystem/consentscope";
pub const US_CORE_CAREPLAN_CATEGORY: &str =
    "http://hl7.org/fhir/us/core/CodeSystem/careplan-category";
pub const NPI: &str = "http://hl7.org/fhir/sid/us-npi";

pub fn profile(id: &str) -> String {
    [CANONICAL, "/StructureDefinition/", id].concat()
}
pub fn code_system(id: &str) -> String {
    [CANONICAL, "/CodeSystem/", id].concat()
}
pub fn extension(id: &str) -> String {
    [CANONICAL, "/StructureDefinition/", id].concat()
}

pub fn coding(system: &str, code: &str, display: &str) -> Value {
    fhir!({ "system": system, "code": code, "display": display })
}

/// `coding` of constants, built once per call site and cloned after: a clone copies the
/// members' hashes, where building hashes every member's name again (SipHash, which serde_json's
/// ordered objects cannot swap for a cheaper hash; 5% of an export's instructions).
macro_rules! constant_coding {
    ($system:expr, $code:literal, $display:literal) => {{
        static CODING: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
        CODING
            .get_or_init(|| $crate::mapping::codes::coding(&$system, $code, $display))
            .clone()
    }};
}
pub(crate) use constant_coding;

/// One value per code of a `ProjectCode` type, built once and cloned after (`constant_coding`).
fn per_code<T: ProjectCode>(
    built: &'static std::sync::OnceLock<Vec<Value>>,
    code: T,
    build: fn(T) -> Value,
) -> Value {
    let all = built.get_or_init(|| T::ALL.iter().map(|c| build(*c)).collect());
    let wanted = code.code_display().0;
    T::ALL
        .iter()
        .position(|c| c.code_display().0 == wanted)
        .and_then(|i| all.get(i))
        .cloned()
        .unwrap_or_else(|| build(code))
}

fn build_coding<T: ProjectCode>(code: T) -> Value {
    let (c, display) = code.code_display();
    coding(&code_system(T::SYSTEM_ID), c, display)
}

/// A clinic vocabulary with its code in one of the project's code systems.
pub trait ProjectCode: Sized + Copy + 'static {
    /// The code system's id (its URL is `{CANONICAL}/CodeSystem/{id}`).
    const SYSTEM_ID: &'static str;
    const ALL: &'static [Self];
    fn code_display(self) -> (&'static str, &'static str);

    /// The coding, kept once built (`project_codes!` gives each type its own).
    fn coding(self) -> Value;
    fn from_fhir_code(code: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|v| v.code_display().0 == code)
    }
    fn expected() -> String {
        Self::ALL
            .iter()
            .map(|v| v.code_display().0)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

macro_rules! project_codes {
    ($ty:ty, $system:literal, { $($variant:ident => ($code:literal, $display:literal)),+ $(,)? }) => {
        impl ProjectCode for $ty {
            const SYSTEM_ID: &'static str = $system;
            const ALL: &'static [Self] = &[$(<$ty>::$variant),+];
            fn code_display(self) -> (&'static str, &'static str) {
                match self { $(<$ty>::$variant => ($code, $display)),+ }
            }
            fn coding(self) -> Value {
                static BUILT: std::sync::OnceLock<Vec<Value>> = std::sync::OnceLock::new();
                per_code(&BUILT, self, build_coding)
            }
        }
    };
}

project_codes!(Modality, "iop-modality", {
    IndividualTherapy => ("individual-therapy", "Individual therapy"),
    GroupTherapy => ("group-therapy", "Group therapy"),
    FamilyTherapy => ("family-therapy", "Family therapy"),
    Cbt => ("cbt", "Cognitive behavioral therapy"),
    Dbt => ("dbt", "Dialectical behavior therapy"),
    Emdr => ("emdr", "Eye movement desensitization and reprocessing"),
    MedicationManagement => ("medication-management", "Medication management"),
    CaseManagement => ("case-management", "Case management"),
    Psychoeducation => ("psychoeducation", "Psychoeducation"),
    Mindfulness => ("mindfulness", "Mindfulness"),
    Yoga => ("yoga", "Yoga"),
    ArtTherapy => ("art-therapy", "Art therapy"),
});

/// SNOMED CT procedure codes for the modalities that have one the issue confirmed.
pub fn modality_snomed(m: Modality) -> Option<(&'static str, &'static str)> {
    match m {
        Modality::IndividualTherapy => Some(("18512000", "Individual psychotherapy")),
        Modality::GroupTherapy => Some(("76168009", "Group psychotherapy")),
        Modality::FamilyTherapy => Some(("108313002", "Family psychotherapy procedure")),
        Modality::Cbt => Some(("228557008", "Cognitive and behavioral therapy")),
        Modality::Dbt => Some(("405780009", "Dialectical behavior therapy")),
        _ => None,
    }
}

/// A modality as a CodeableConcept: the project code, and SNOMED CT where it has one.
pub fn modality_concept(m: Modality) -> Value {
    static BUILT: std::sync::OnceLock<Vec<Value>> = std::sync::OnceLock::new();
    per_code(&BUILT, m, build_modality_concept)
}

fn build_modality_concept(m: Modality) -> Value {
    let mut codings = vec![m.coding()];
    if let Some((code, display)) = modality_snomed(m) {
        codings.push(coding(SNOMED, code, display));
    }
    fhir!({ "coding": codings, "text": m.code_display().1 })
}

project_codes!(SessionType, "iop-session-type", {
    Individual => ("individual", "Individual session"),
    Group => ("group", "Group session"),
    Family => ("family", "Family session"),
    MedicationManagement => ("medication-management", "Medication management visit"),
    CaseManagement => ("case-management", "Case management contact"),
    Assessment => ("assessment", "Assessment"),
});

project_codes!(Attendance, "iop-attendance", {
    Scheduled => ("scheduled", "Scheduled"),
    Attended => ("attended", "Attended"),
    Late => ("late", "Attended, late"),
    NoShow => ("no-show", "No-show"),
    Cancelled => ("cancelled", "Cancelled"),
});

project_codes!(LevelOfCare, "iop-level-of-care", {
    IntensiveOutpatient => ("intensive-outpatient", "Intensive outpatient (ASAM 2.1)"),
    PartialHospitalization => ("partial-hospitalization", "Partial hospitalization (ASAM 2.5)"),
    Outpatient => ("outpatient", "Outpatient (ASAM 1)"),
});

project_codes!(DischargeDisposition, "iop-discharge-disposition", {
    StepDownOutpatient => ("step-down-outpatient", "Step-down to outpatient care"),
    StepUpInpatient => ("step-up-inpatient", "Step-up to inpatient or residential care"),
    Completed => ("completed", "Completed the program"),
    LeftAgainstAdvice => ("left-against-advice", "Left against clinical advice"),
});

project_codes!(ConsentKind, "iop-consent-kind", {
    ReleaseOfInformation => ("release-of-information", "Release of information"),
    FamilyParticipation => ("family-participation", "Family participation in treatment"),
    Part2Disclosure => ("part2-disclosure", "42 CFR Part 2 disclosure"),
});

project_codes!(InformationCategory, "iop-information-category", {
    Demographics => ("demographics", "Demographics"),
    Diagnoses => ("diagnoses", "Diagnoses"),
    TreatmentPlan => ("treatment-plan", "Treatment plan"),
    Attendance => ("attendance", "Attendance"),
    Medications => ("medications", "Medications"),
    Assessments => ("assessments", "Assessments"),
    DischargeSummary => ("discharge-summary", "Discharge summary"),
    SubstanceUse => ("substance-use", "Substance-use treatment records (42 CFR Part 2)"),
});

project_codes!(OrganizationKind, "iop-organization-type", {
    Clinic => ("clinic", "The IOP clinic"),
    InpatientHospital => ("inpatient-hospital", "Inpatient or residential provider"),
    OutpatientProvider => ("outpatient-provider", "Outpatient provider"),
    PartnerEhr => ("partner-ehr", "Partner EHR / care-team organization"),
});

project_codes!(StaffRole, "iop-staff-role", {
    Psychiatrist => ("psychiatrist", "Psychiatrist"),
    PsychiatricNursePractitioner => ("psychiatric-nurse-practitioner", "Psychiatric nurse practitioner"),
    Psychologist => ("psychologist", "Psychologist"),
    ClinicalSocialWorker => ("clinical-social-worker", "Clinical social worker"),
    ProfessionalCounselor => ("professional-counselor", "Professional counselor"),
    AddictionCounselor => ("addiction-counselor", "Addiction counselor"),
    MarriageFamilyTherapist => ("marriage-family-therapist", "Marriage and family therapist"),
    CaseManager => ("case-manager", "Case manager"),
    PeerSupportSpecialist => ("peer-support-specialist", "Peer support specialist"),
    RegisteredNurse => ("registered-nurse", "Registered nurse"),
    ProgramDirector => ("program-director", "Program director"),
});

project_codes!(ReferralKind, "iop-referral", {
    StepDown => ("step-down", "Step-down to a less intensive level of care"),
    StepUp => ("step-up", "Step-up to a more intensive level of care"),
});

/// HL7 v3 RoleCode for a relationship; `Other` has no code (its text is used instead).
pub fn relationship_role_code(r: Relationship) -> Option<(&'static str, &'static str)> {
    Some(match r {
        Relationship::Mother => ("MTH", "mother"),
        Relationship::Father => ("FTH", "father"),
        Relationship::Parent => ("PRN", "parent"),
        Relationship::Sibling => ("SIB", "sibling"),
        Relationship::Grandparent => ("GRPRN", "grandparent"),
        Relationship::Spouse => ("SPS", "spouse"),
        Relationship::DomesticPartner => ("DOMPART", "domestic partner"),
        Relationship::SignificantOther => ("SIGOTHR", "significant other"),
        Relationship::Child => ("CHILD", "child"),
        Relationship::InLaw => ("INLAW", "inlaw"),
        Relationship::Friend => ("FRND", "unrelated friend"),
        Relationship::ExtendedFamily => ("EXT", "extended family member"),
        Relationship::Other => return None,
    })
}

/// The clinic's class of a v3 PersonalRelationshipRoleType code: the nearest ancestor in the
/// RoleCode hierarchy the clinic has a class for (BRO -> sibling, NIECE -> extended family,
/// ROOM -> friend). None: the code is not a personal relationship (or is `ONESELF`).
pub fn relationship_class(code: &str) -> Option<Relationship> {
    use Relationship::*;
    Some(match code {
        "MTH" | "ADOPTM" | "GESTM" | "MTHFOST" | "NMTH" | "NMTHF" | "STPMTH" => Mother,
        "FTH" | "ADOPTF" | "FTHFOST" | "NFTH" | "NFTHF" | "STPFTH" => Father,
        "PRN" | "ADOPTP" | "NPRN" | "PRNFOST" | "STPPRN" => Parent,
        "SIB" | "BRO" | "HBRO" | "NBRO" | "STPBRO" | "TWINBRO" | "FTWINBRO" | "ITWINBRO"
        | "SIS" | "HSIS" | "NSIS" | "STPSIS" | "TWINSIS" | "FTWINSIS" | "ITWINSIS" | "HSIB"
        | "NSIB" | "STPSIB" | "TWIN" | "FTWIN" | "ITWIN" => Sibling,
        "GRPRN" | "GRFTH" | "MGRFTH" | "PGRFTH" | "GRMTH" | "MGRMTH" | "PGRMTH" | "MGRPRN"
        | "PGRPRN" => Grandparent,
        "SPS" | "HUSB" | "WIFE" => Spouse,
        "DOMPART" => DomesticPartner,
        "SIGOTHR" | "FMRSPS" => SignificantOther,
        "CHILD" | "CHLDADOPT" | "DAUADOPT" | "SONADOPT" | "CHLDFOST" | "DAUFOST" | "SONFOST"
        | "DAUC" | "DAU" | "STPDAU" | "NCHILD" | "SONC" | "SON" | "STPSON" | "STPCHLD" => Child,
        "INLAW" | "CHLDINLAW" | "DAUINLAW" | "SONINLAW" | "PRNINLAW" | "FTHINLAW" | "MTHINLAW"
        | "SIBINLAW" | "BROINLAW" | "SISINLAW" => InLaw,
        "FAMMEMB" | "EXT" | "AUNT" | "MAUNT" | "PAUNT" | "UNCLE" | "MUNCLE" | "PUNCLE"
        | "COUSN" | "MCOUSN" | "PCOUSN" | "NIENEPH" | "NEPHEW" | "NIECE" | "GRNDCHILD"
        | "GRNDDAU" | "GRNDSON" | "GGRPRN" | "GGRFTH" | "MGGRFTH" | "PGGRFTH" | "GGRMTH"
        | "MGGRMTH" | "PGGRMTH" | "MGGRPRN" | "PGGRPRN" => ExtendedFamily,
        "FRND" | "NBOR" | "ROOM" => Friend,
        _ => return None,
    })
}

pub fn relationship_from_role_code(code: &str) -> Option<Relationship> {
    Relationship::ALL
        .iter()
        .copied()
        .find(|r| relationship_role_code(*r).is_some_and(|(c, _)| c == code))
}

/// v3 ActReason purposes of use; family participation has none, so it is a project code.
pub fn purpose_coding(p: ConsentPurpose) -> Value {
    match p {
        ConsentPurpose::Treatment => coding(ACT_REASON, "TREAT", "treatment"),
        ConsentPurpose::Payment => coding(ACT_REASON, "HPAYMT", "healthcare payment"),
        ConsentPurpose::Operations => coding(ACT_REASON, "HOPERAT", "healthcare operations"),
        ConsentPurpose::CareCoordination => coding(ACT_REASON, "CAREMGT", "care management"),
        ConsentPurpose::FamilyParticipation => coding(
            &code_system("iop-consent-purpose"),
            "family-participation",
            "Family participation in treatment",
        ),
    }
}

pub fn purpose_from_coding(system: &str, code: &str) -> Option<ConsentPurpose> {
    ConsentPurpose::ALL.iter().copied().find(|p| {
        let c = purpose_coding(*p);
        c["system"] == system && c["code"] == code
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kept codings are the ones built fresh, for every code, asked for twice.
    fn kept_as_built<T: ProjectCode>() {
        for code in T::ALL {
            for _ in 0..2 {
                assert_eq!(code.coding(), build_coding(*code));
            }
        }
    }

    #[test]
    fn kept_codings_are_the_built_ones() {
        kept_as_built::<Modality>();
        kept_as_built::<SessionType>();
        kept_as_built::<Attendance>();
        kept_as_built::<LevelOfCare>();
        kept_as_built::<DischargeDisposition>();
        kept_as_built::<ConsentKind>();
        kept_as_built::<InformationCategory>();
        kept_as_built::<OrganizationKind>();
        kept_as_built::<StaffRole>();
        kept_as_built::<ReferralKind>();
        for m in <Modality as ProjectCode>::ALL {
            assert_eq!(modality_concept(*m), build_modality_concept(*m));
        }
        // Two call sites keep their own.
        let a = constant_coding!(SNOMED, "1", "one");
        let b = constant_coding!(SNOMED, "2", "two");
        assert_eq!(a, coding(SNOMED, "1", "one"));
        assert_eq!(b, coding(SNOMED, "2", "two"));
    }
}
