Extension: IopAttendanceExt
Id: iop-attendance
Title: "Session attendance"
Description: "Whether the client attended the session. Encounter.status cannot say 'no-show' or 'late'."
Context: Encounter
* value[x] only code
* valueCode 1..1
* valueCode from IopAttendanceVS (required)

Extension: IopTherapyGroup
Id: iop-therapy-group
Title: "Therapy group"
Description: "The standing therapy group a group session belongs to."
Context: Encounter
* value[x] only Reference(IopTherapyGroupProfile)
* valueReference 1..1

Extension: IopProgram
Id: iop-program
Title: "IOP program"
Description: "The clinic program of an episode of care, the program a referral is for, or the program a therapy group belongs to."
Context: EpisodeOfCare, ServiceRequest, Group
* value[x] only Reference(IopProgramService)
* valueReference 1..1

Extension: IopDaysPerWeek
Id: iop-days-per-week
Title: "Program days a week"
Description: "Days of treatment a week (an IOP meets 3 to 5 days)."
Context: HealthcareService
* value[x] only positiveInt
* valuePositiveInt 1..1

Extension: IopHoursPerWeek
Id: iop-hours-per-week
Title: "Program hours a week"
Description: "Hours of treatment a week (an IOP gives 6 to 20 hours)."
Context: HealthcareService
* value[x] only positiveInt
* valuePositiveInt 1..1

Extension: IopDischargeDispositionExt
Id: iop-discharge-disposition
Title: "Discharge disposition"
Description: "Where the client went when the episode of care ended."
Context: EpisodeOfCare
* value[x] only CodeableConcept
* valueCodeableConcept 1..1
* valueCodeableConcept from IopDischargeDispositionVS (required)

Extension: IopReviewInterval
Id: iop-review-interval
Title: "Plan review interval"
Description: "How often the treatment plan is reviewed (weekly in an IOP)."
Context: CarePlan
* value[x] only Duration
* valueDuration 1..1

Extension: IopNextReview
Id: iop-next-review
Title: "Next plan review"
Description: "The date of the next scheduled plan review."
Context: CarePlan
* value[x] only date
* valueDate 1..1

Extension: IopRelapseTrigger
Id: iop-relapse-trigger
Title: "Relapse trigger"
Description: "A trigger named in a relapse-prevention plan, in the client's words."
Context: CarePlan
* value[x] only string
* valueString 1..1

Extension: IopRelapseWarningSign
Id: iop-relapse-warning-sign
Title: "Early warning sign"
Description: "An early warning sign named in a relapse-prevention plan, in the client's words."
Context: CarePlan
* value[x] only string
* valueString 1..1

Extension: IopConsentRevoked
Id: iop-consent-revoked
Title: "Consent revoked on"
Description: "The date the client revoked the consent. R4 Consent has no element for it."
Context: Consent
* value[x] only date
* valueDate 1..1
