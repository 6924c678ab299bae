Profile: IopPatient
Parent: $USCorePatient
Id: iop-patient
Title: "IOP Patient"
Description: "A client of an Intensive Outpatient Program. Identified by the clinic's MRN."
* identifier 1..* MS
* birthDate 1..1
* communication MS

Profile: IopPractitioner
Parent: $USCorePractitioner
Id: iop-practitioner
Title: "IOP Practitioner"
Description: "A clinician or staff member of the clinic or a partner organization."
* qualification MS
* qualification.code MS

Profile: IopOrganization
Parent: $USCoreOrganization
Id: iop-organization
Title: "IOP Organization"
Description: "The clinic, a referring inpatient provider, an outpatient provider or a partner EHR organization."
* type 1..* MS
* type from IopOrganizationTypeVS (required)

Profile: IopCarePlan
Parent: $USCoreCarePlan
Id: iop-careplan
Title: "IOP CarePlan (individual treatment plan)"
Description: "The individual treatment plan of an IOP enrollment: goals, interventions with their weekly frequency, weekly reviews."
* extension contains IopReviewInterval named reviewInterval 0..1 MS and IopNextReview named nextReview 0..1 MS
* extension[reviewInterval].value[x] MS
* extension[nextReview].value[x] MS
* text 1..1
* category contains iopTreatmentPlan 1..1 MS
* category[iopTreatmentPlan] = IopCarePlanCategory#treatment-plan
* period 1..1 MS
* period.start 1..1
* author 1..1 MS
* author only Reference($USCorePractitioner or $USCoreOrganization)
* goal MS
* goal only Reference(IopGoal)
* activity MS
* activity.detail 1..1 MS
* activity.detail.code 1..1 MS
* activity.detail.code from IopModalityVS (required)
* activity.detail.scheduledTiming MS
* note MS

Profile: IopRelapsePreventionPlan
Parent: $USCoreCarePlan
Id: iop-relapse-prevention-plan
Title: "IOP Relapse Prevention Plan"
Description: "Triggers, early warning signs, coping skills and the support contacts to call; part of a treatment plan."
* extension contains IopRelapseTrigger named trigger 0..* MS and IopRelapseWarningSign named warningSign 0..* MS
* extension[trigger].value[x] MS
* extension[warningSign].value[x] MS
* text 1..1
* category contains iopRelapsePlan 1..1 MS
* category[iopRelapsePlan] = IopCarePlanCategory#relapse-prevention-plan
* partOf 1..1 MS
* partOf only Reference(IopCarePlan)
* activity MS
* activity.detail 1..1 MS
* activity.detail.code 1..1 MS
* activity.detail.code from IopModalityVS (required)
* activity.detail.performer MS

Profile: IopGoal
Parent: $USCoreGoal
Id: iop-goal
Title: "IOP Goal"
Description: "A treatment-plan goal; weekly review progress notes are Goal.note."
* achievementStatus MS
* target MS
* target.due[x] only date
* note MS

Profile: IopEncounter
Parent: $USCoreEncounter
Id: iop-encounter
Title: "IOP Encounter (session)"
Description: "An IOP session: individual, group, family, medication management, case management or assessment; in person (AMB) or virtual (VR)."
* extension contains IopAttendanceExt named attendance 1..1 MS and IopTherapyGroup named therapyGroup 0..1 MS
* extension[attendance].value[x] MS
* extension[therapyGroup].value[x] MS
* class from IopEncounterClassVS (required)
* serviceType MS
* serviceType from IopModalityVS (required)
* period 1..1 MS
* period.start 1..1
* length 1..1 MS
* participant MS
* participant.individual MS
* episodeOfCare 1..1 MS
* episodeOfCare only Reference(IopEpisodeOfCare)
* obeys iop-enc-1

Invariant: iop-enc-1
Description: "A no-show or cancelled session has status cancelled; an attended one is finished."
Expression: "extension('https://iop-gateway.org/fhir/StructureDefinition/iop-attendance').value.where($this = 'no-show' or $this = 'cancelled').exists() implies status ~ 'cancelled'"
Severity: #error

Profile: IopEpisodeOfCare
Parent: EpisodeOfCare
Id: iop-episodeofcare
Title: "IOP EpisodeOfCare (enrollment)"
Description: "A client's enrollment in an IOP program: level of care, referral source (step-down), admission and discharge."
* extension contains IopProgram named program 1..1 MS and IopDischargeDispositionExt named dischargeDisposition 0..1 MS
* extension[program].value[x] MS
* extension[dischargeDisposition].value[x] MS
* identifier 1..* MS
* type 1..* MS
* type from IopLevelOfCareVS (required)
* managingOrganization 1..1 MS
* period 1..1 MS
* period.start 1..1
* referralRequest MS
* careManager 1..1 MS
* obeys iop-eoc-1

Invariant: iop-eoc-1
Description: "A finished episode states its end date and discharge disposition."
Expression: "status ~ 'finished' implies (period.end.exists() and extension('https://iop-gateway.org/fhir/StructureDefinition/iop-discharge-disposition').exists())"
Severity: #error

Profile: IopRelatedPerson
Parent: $USCoreRelatedPerson
Id: iop-relatedperson
Title: "IOP RelatedPerson (support contact)"
Description: "A member of the client's family of origin or chosen family, with the roles they play in treatment."
* identifier 1..* MS
* relationship 1..* MS
* name 1..* MS
* telecom MS
* period MS

Profile: IopConsent
Parent: Consent
Id: iop-consent
Title: "IOP Consent"
Description: "A release of information, a family-participation consent or a 42 CFR Part 2 disclosure consent."
* extension contains IopConsentRevoked named revoked 0..1 MS
* extension[revoked].value[x] MS
* identifier 1..* MS
* scope = $consentscope#patient-privacy
* category 2..* MS
* patient 1..1 MS
* patient only Reference(IopPatient)
* dateTime 1..1 MS
* organization 1..* MS
* policyRule 1..1 MS
* provision 1..1 MS
* provision.type 1..1
* provision.type = #permit
* provision.period 1..1 MS
* provision.period.start 1..1
* provision.actor 1..* MS
* provision.actor.role = $ParticipationType#IRCP
* provision.purpose 1..* MS

Profile: IopReferralServiceRequest
Parent: $USCoreServiceRequest
Id: iop-referral-servicerequest
Title: "IOP Referral ServiceRequest"
Description: "A referral into the IOP (step-down from inpatient care) or out of it (step-up, or step-down to outpatient care), after HL7 BSeR."
* identifier 1..* MS
* intent = #order
* category 1..* MS
* authoredOn 1..1 MS
* requester 1..1 MS
* requester only Reference($USCoreOrganization)
* performer 1..* MS
* performer only Reference($USCoreOrganization)
* reasonCode 1..* MS

Profile: IopReferralTask
Parent: Task
Id: iop-referral-task
Title: "IOP Referral Task"
Description: "The workflow of a referral: requested, received, accepted or rejected, in progress, completed (after HL7 BSeR)."
* identifier 1..* MS
* status from IopReferralTaskStatusVS (required)
* businessStatus MS
* intent = #order
* focus 1..1 MS
* focus only Reference(IopReferralServiceRequest)
* for 1..1 MS
* for only Reference(IopPatient)
* authoredOn 1..1 MS
* requester 1..1 MS
* owner 1..1 MS

Profile: IopProgramService
Parent: HealthcareService
Id: iop-program-service
Title: "IOP Program (HealthcareService)"
Description: "A program the clinic runs: population, focus, ASAM level, delivery, days and hours a week, and whether 42 CFR Part 2 covers it."
* extension contains IopDaysPerWeek named daysPerWeek 1..1 MS and IopHoursPerWeek named hoursPerWeek 1..1 MS
* extension[daysPerWeek].value[x] MS
* extension[hoursPerWeek].value[x] MS
* identifier 1..* MS
* active 1..1 MS
* providedBy 1..1 MS
* providedBy only Reference($USCoreOrganization)
* type 1..* MS
* type from IopProgramTypeVS (required)
* name 1..1 MS
* characteristic MS

Profile: IopTherapyGroupProfile
Parent: Group
Id: iop-group
Title: "IOP Therapy Group"
Description: "A standing therapy group of a program (e.g. DBT skills). Members are not listed: a group's roster would disclose many clients at once, some of them under 42 CFR Part 2."
* extension contains IopProgram named program 1..1 MS
* extension[program].value[x] MS
* identifier 1..* MS
* type = #person
* actual = true
* code 1..1 MS
* code from IopModalityVS (required)
* name 1..1 MS
* managingEntity 1..1 MS
* managingEntity only Reference(IopPractitioner)
* member 0..0
