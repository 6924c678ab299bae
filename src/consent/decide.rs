//! The decision for one resource, one recipient, one purpose, one day.

use super::evaluate::evaluate;
use super::{Basis, ConsentBasis, ConsentDirective, Decision, Policy, Recipient, Request, Rule};

/// Permit or deny releasing `request.resource` to `request.recipient`, and why.
///
/// 1. Directives not in force on `request.today` are ignored.
/// 2. Of the directives that apply to the request, the most recently signed decides, permit or
///    deny (on the same day, the greater id: the clinic's ids are time-ordered UUIDs, so that is
///    the one recorded later). A directive that applies beats every rule below.
/// 3. Otherwise, in this order: SUD counselling notes, Part 2 records and anything for a support
///    contact are denied; other data goes by the mental-health policy.
pub fn decide(request: &Request, directives: &[ConsentDirective], policy: &Policy) -> Decision {
    let deciding = directives
        .iter()
        .filter(|d| d.in_force_on(request.today))
        .filter_map(|d| evaluate(d, request).map(|outcome| (d, outcome)))
        .max_by_key(|(d, _)| (d.signed_on, d.id));
    if let Some((directive, outcome)) = deciding {
        return Decision {
            permit: outcome.kind == super::ProvisionType::Permit,
            basis: Basis::Consent(ConsentBasis {
                id: directive.id,
                kind: directive.kind,
                signed_on: directive.signed_on,
                provision: outcome.path,
            }),
        };
    }
    without_consent(request, policy).into()
}

/// The rule for a request no directive decides.
fn without_consent(request: &Request, policy: &Policy) -> Rule {
    let recipient = request.recipient.clone();
    if request.resource.labels.sud_counselling_note {
        return Rule::CounsellingNotesWithoutConsent { recipient };
    }
    if request.resource.is_part2() {
        return Rule::Part2WithoutConsent { recipient };
    }
    let organization = match recipient {
        Recipient::SupportContact(contact) => {
            return Rule::SupportContactWithoutConsent { contact };
        }
        Recipient::Organization(organization) => organization,
    };
    let mental_health = &policy.mental_health;
    if !mental_health.care_team_treatment {
        Rule::PolicyOff { organization }
    } else if !mental_health.treatment_purposes.contains(&request.purpose) {
        Rule::PurposeNotTreatment {
            organization,
            purpose: request.purpose.clone(),
        }
    } else if !request.care_team.contains(&organization) {
        Rule::NotOnCareTeam { organization }
    } else {
        Rule::CareTeamTreatment {
            organization,
            purpose: request.purpose.clone(),
        }
    }
}
