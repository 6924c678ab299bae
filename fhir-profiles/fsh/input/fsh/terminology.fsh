// Project code systems: only where no standard code fits. Standard codes (SNOMED CT, LOINC,
// HL7 v3) are used beside them where they exist; no code is invented in a standard system.

CodeSystem: IopCarePlanCategory
Id: iop-careplan-category
Title: "IOP care plan categories"
* ^caseSensitive = true
* #treatment-plan "Individual treatment plan" "The IOP client's individual treatment plan, reviewed weekly."
* #relapse-prevention-plan "Relapse-prevention plan" "Triggers, early warning signs, coping skills and support contacts."

CodeSystem: IopModality
Id: iop-modality
Title: "IOP treatment modalities"
* ^caseSensitive = true
* #individual-therapy "Individual therapy"
* #group-therapy "Group therapy"
* #family-therapy "Family therapy"
* #cbt "Cognitive behavioral therapy"
* #dbt "Dialectical behavior therapy"
* #emdr "Eye movement desensitization and reprocessing"
* #medication-management "Medication management"
* #case-management "Case management"
* #psychoeducation "Psychoeducation"
* #mindfulness "Mindfulness"
* #yoga "Yoga"
* #art-therapy "Art therapy"
* #coping-skill "Coping skill" "A coping skill of a relapse-prevention plan."
* #call-support-contact "Call a support contact" "A support contact to call, in a relapse-prevention plan."

ValueSet: IopModalityVS
Id: iop-modality
Title: "IOP treatment modalities"
* include codes from system IopModality

CodeSystem: IopSessionType
Id: iop-session-type
Title: "IOP session types"
* ^caseSensitive = true
* #individual "Individual session"
* #group "Group session"
* #family "Family session"
* #medication-management "Medication management visit"
* #case-management "Case management contact"
* #assessment "Assessment"

ValueSet: IopSessionTypeVS
Id: iop-session-type
Title: "IOP session types"
* include codes from system IopSessionType

CodeSystem: IopAttendance
Id: iop-attendance
Title: "IOP session attendance"
* ^caseSensitive = true
* #scheduled "Scheduled" "Not yet happened."
* #attended "Attended"
* #late "Attended, late"
* #no-show "No-show"
* #cancelled "Cancelled"

ValueSet: IopAttendanceVS
Id: iop-attendance
Title: "IOP session attendance"
* include codes from system IopAttendance

ValueSet: IopEncounterClassVS
Id: iop-encounter-class
Title: "IOP encounter classes"
Description: "In person (ambulatory) or virtual."
* $ActCode#AMB "ambulatory"
* $ActCode#VR "virtual"

CodeSystem: IopLevelOfCare
Id: iop-level-of-care
Title: "IOP levels of care"
* ^caseSensitive = true
* #intensive-outpatient "Intensive outpatient (ASAM 2.1)"
* #partial-hospitalization "Partial hospitalization (ASAM 2.5)"
* #outpatient "Outpatient (ASAM 1)"

ValueSet: IopLevelOfCareVS
Id: iop-level-of-care
Title: "IOP levels of care"
* include codes from system IopLevelOfCare

CodeSystem: IopDischargeDisposition
Id: iop-discharge-disposition
Title: "IOP discharge dispositions"
* ^caseSensitive = true
* #step-down-outpatient "Step-down to outpatient care"
* #step-up-inpatient "Step-up to inpatient or residential care"
* #completed "Completed the program"
* #left-against-advice "Left against clinical advice"

ValueSet: IopDischargeDispositionVS
Id: iop-discharge-disposition
Title: "IOP discharge dispositions"
* include codes from system IopDischargeDisposition

CodeSystem: IopSupportRole
Id: iop-support-role
Title: "IOP support contact roles"
* ^caseSensitive = true
* #family-therapy-participant "Family therapy participant"
* #support-person "Support person"

CodeSystem: IopConsentKind
Id: iop-consent-kind
Title: "IOP consent kinds"
* ^caseSensitive = true
* #release-of-information "Release of information"
* #family-participation "Family participation in treatment"
* #part2-disclosure "42 CFR Part 2 disclosure"

CodeSystem: IopInformationCategory
Id: iop-information-category
Title: "IOP information categories"
* ^caseSensitive = true
* #demographics "Demographics"
* #diagnoses "Diagnoses"
* #treatment-plan "Treatment plan"
* #attendance "Attendance"
* #medications "Medications"
* #assessments "Assessments"
* #discharge-summary "Discharge summary"
* #substance-use "Substance-use treatment records (42 CFR Part 2)"

CodeSystem: IopConsentPurpose
Id: iop-consent-purpose
Title: "IOP consent purposes without a v3 ActReason code"
* ^caseSensitive = true
* #family-participation "Family participation in treatment"

CodeSystem: IopReferral
Id: iop-referral
Title: "IOP referral categories and services"
* ^caseSensitive = true
* #step-down "Step-down to a less intensive level of care"
* #step-up "Step-up to a more intensive level of care"
* #intensive-outpatient-program "Intensive outpatient program"
* #outpatient-treatment "Outpatient behavioral health treatment"
* #inpatient-treatment "Inpatient or residential behavioral health treatment"

ValueSet: IopReferralTaskStatusVS
Id: iop-referral-task-status
Title: "IOP referral task statuses"
Description: "The Task statuses a referral moves through (after HL7 BSeR)."
* http://hl7.org/fhir/task-status#requested
* http://hl7.org/fhir/task-status#received
* http://hl7.org/fhir/task-status#accepted
* http://hl7.org/fhir/task-status#rejected
* http://hl7.org/fhir/task-status#in-progress
* http://hl7.org/fhir/task-status#completed
* http://hl7.org/fhir/task-status#cancelled

CodeSystem: IopOrganizationType
Id: iop-organization-type
Title: "IOP organization types"
* ^caseSensitive = true
* #clinic "The IOP clinic"
* #inpatient-hospital "Inpatient or residential provider"
* #outpatient-provider "Outpatient provider"
* #partner-ehr "Partner EHR / care-team organization"

ValueSet: IopOrganizationTypeVS
Id: iop-organization-type
Title: "IOP organization types"
* include codes from system IopOrganizationType

CodeSystem: IopStaffRole
Id: iop-staff-role
Title: "IOP staff roles"
* ^caseSensitive = true
* #psychiatrist "Psychiatrist"
* #psychiatric-nurse-practitioner "Psychiatric nurse practitioner"
* #psychologist "Psychologist"
* #clinical-social-worker "Clinical social worker"
* #professional-counselor "Professional counselor"
* #addiction-counselor "Addiction counselor"
* #marriage-family-therapist "Marriage and family therapist"
* #case-manager "Case manager"
* #peer-support-specialist "Peer support specialist"
* #registered-nurse "Registered nurse"
* #program-director "Program director"

CodeSystem: IopProgramType
Id: iop-program-type
Title: "IOP program types"
* ^caseSensitive = true
* #mental-health-iop "Mental-health intensive outpatient program"
* #substance-use-iop "Substance-use intensive outpatient program"
* #co-occurring-iop "Co-occurring disorders intensive outpatient program"

ValueSet: IopProgramTypeVS
Id: iop-program-type
Title: "IOP program types"
* include codes from system IopProgramType

CodeSystem: IopProgramCharacteristic
Id: iop-program-characteristic
Title: "IOP program characteristics"
* ^caseSensitive = true
* #adult "Adults"
* #adolescent "Adolescents"
* #in-person "In person"
* #virtual "Virtual"
* #hybrid "In person and virtual"
* #part2 "Covered by 42 CFR Part 2" "A federally assisted substance-use disorder program: its records may be disclosed only with the client's written consent."
