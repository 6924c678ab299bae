//! The clinic's policy for mental-health data no directive decides, and who is on the care team.

use super::PurposeOfUse;
use crate::domain::{Enrollment, Referral, ReferralDirection, ReferralStatus};

/// Settings of the decision that are the clinic's to choose. Part 2 is law, not policy: it has no
/// switch here.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    pub mental_health: MentalHealthPolicy,
}

/// What happens to mental-health data (everything that is not Part 2) when no directive decides.
/// HIPAA lets a provider disclose for treatment without authorization (45 CFR 164.506), so by
/// default the clinic shares with the client's own care team for treatment and nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MentalHealthPolicy {
    /// Permit the treatment purposes to care-team organizations. Off: only consents release.
    pub care_team_treatment: bool,
    /// The purposes counted as treatment.
    pub treatment_purposes: Vec<PurposeOfUse>,
}

impl Default for MentalHealthPolicy {
    /// Treatment and coordination of care (`TREAT`, `COC`) by the care team.
    fn default() -> Self {
        Self {
            care_team_treatment: true,
            treatment_purposes: vec![PurposeOfUse::Treat, PurposeOfUse::Coc],
        }
    }
}

impl MentalHealthPolicy {
    /// Nothing without a consent.
    pub fn off() -> Self {
        Self {
            care_team_treatment: false,
            treatment_purposes: Vec::new(),
        }
    }
}

/// The organizations on a client's care team as the decision sees them: the clinic, every
/// organization that referred the client into one of the enrollments given, every organization
/// whose referral of the client to the clinic is pending or was accepted, and every one the
/// clinic referred the client to (a declined or cancelled referral makes no treatment
/// relationship). Ids as the gateway emits
/// them (FHIR Organization ids), each once.
pub fn care_team<'a>(
    clinics: &[String],
    enrollments: impl IntoIterator<Item = &'a Enrollment>,
    referrals: impl IntoIterator<Item = &'a Referral>,
) -> Vec<String> {
    let mut team = clinics.to_vec();
    // The other side of a live referral: who sent the client here, or whom the clinic referred
    // the client to (a step-down or step-up is treatment).
    let referrers = referrals
        .into_iter()
        .filter(|r| {
            matches!(
                r.status,
                ReferralStatus::Requested
                    | ReferralStatus::Received
                    | ReferralStatus::Accepted
                    | ReferralStatus::Completed
            )
        })
        .map(|r| match r.direction {
            ReferralDirection::Inbound => r.referring_org_id,
            ReferralDirection::Outbound => r.receiving_org_id,
        });
    let sources = enrollments.into_iter().filter_map(|e| e.referral_source_id);
    for source in sources.chain(referrers) {
        let id = source.to_string();
        if !team.contains(&id) {
            team.push(id);
        }
    }
    team
}
