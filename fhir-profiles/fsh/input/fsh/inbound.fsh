// Inbound profiles: what the gateway accepts from an EHR on a write. They derive from US Core
// (or the base resource where US Core has no profile) and add only what the clinic record cannot
// do without; the mapping defaults the rest (see fhir-profiles/README.md, "What inbound resources
// must carry"). The iop-* profiles above keep constraining what the gateway emits.

Profile: IopInboundPatient
Parent: $USCorePatient
Id: iop-inbound-patient
Title: "IOP inbound Patient"
Description: "A Patient the gateway accepts: US Core Patient with the birth date a client record needs. The MRN (an identifier in the clinic's MRN system, else one typed v2-0203 MR) is read by the mapping."
* birthDate 1..1
* name 1..*

Profile: IopInboundRelatedPerson
Parent: $USCoreRelatedPerson
Id: iop-inbound-relatedperson
Title: "IOP inbound RelatedPerson"
Description: "A RelatedPerson the gateway accepts as a support contact: US Core RelatedPerson with a name. Relationship, roles and period are defaulted when absent."
* name 1..*

Profile: IopInboundConsent
Parent: Consent
Id: iop-inbound-consent
Title: "IOP inbound Consent"
Description: "A Consent the gateway accepts: the client, and a permit provision naming its recipient. Kind, purpose, period and signing date are defaulted when absent."
* patient 1..1
* provision 1..1
* provision.actor 1..*
* provision.actor.reference only Reference(Organization or Practitioner or RelatedPerson)

Profile: IopInboundEncounter
Parent: $USCoreEncounter
Id: iop-inbound-encounter
Title: "IOP inbound Encounter"
Description: "An Encounter the gateway accepts as a session: US Core Encounter with its start, the enrollment it belongs to and the clinician (a Practitioner participant, checked by the mapping). Attendance, type and length are defaulted from status, codes and period."
* period 1..1
* period.start 1..1
* episodeOfCare 1..*

Profile: IopInboundEpisodeOfCare
Parent: EpisodeOfCare
Id: iop-inbound-episodeofcare
Title: "IOP inbound EpisodeOfCare"
Description: "An EpisodeOfCare the gateway accepts as an enrollment: the program, the admission date, the level of care and the primary clinician."
* extension contains IopProgram named program 1..1
* period 1..1
* period.start 1..1
* careManager 1..1

Profile: IopInboundCarePlan
Parent: $USCoreCarePlan
Id: iop-inbound-careplan
Title: "IOP inbound CarePlan"
Description: "A CarePlan the gateway accepts as an update of a stored treatment plan: US Core CarePlan. What it leaves out (period, review interval, next review) stays as stored."

Profile: IopInboundGoal
Parent: $USCoreGoal
Id: iop-inbound-goal
Title: "IOP inbound Goal"
Description: "A Goal the gateway accepts as an update of a stored goal: US Core Goal."

Profile: IopInboundTask
Parent: Task
Id: iop-inbound-task
Title: "IOP inbound Task"
Description: "A Task the gateway accepts as an update of a stored referral's workflow: a base R4 Task. Without lastModified a decision is dated the day it was recorded."
