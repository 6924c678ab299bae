//! The clinic's stored consents as directives.

use super::{
    Actor, ConsentDirective, DataClass, DirectiveStatus, Provision, PurposeOfUse, SecurityLabel,
};
use crate::domain::{
    Consent, ConsentPurpose, ConsentRecipient, InformationCategory, InformationScope,
};

/// A stored consent as a directive: one permit for its recipient and purposes, narrowed by its
/// scope. Its status is `Active`: whether it is in force follows from its dates alone (period,
/// signature, revocation), which [`ConsentDirective::in_force_on`] reads.
pub fn directive_from(consent: &Consent) -> ConsentDirective {
    let mut provision = Provision {
        actors: vec![actor(consent.recipient)],
        purposes: purposes(consent.purpose),
        ..Provision::permit()
    };
    match &consent.scope {
        InformationScope::All => {}
        InformationScope::AllExceptSubstanceUse => {
            // Two exceptions, because conditions within one provision must all hold: records
            // labelled Part 2 / SUD, and records of the substance-use class however labelled.
            provision.exceptions = vec![
                Provision {
                    security_labels: vec![SecurityLabel::Part2, SecurityLabel::Sud],
                    ..Provision::deny()
                },
                Provision {
                    data_classes: vec![InformationCategory::SubstanceUse.into()],
                    ..Provision::deny()
                },
            ];
        }
        InformationScope::Categories(list) => {
            provision.data_classes = list.iter().copied().map(DataClass::from).collect();
        }
    }
    ConsentDirective {
        id: consent.id,
        kind: consent.kind,
        status: DirectiveStatus::Active,
        period: consent.valid,
        signed_on: consent.signed_on,
        revoked_on: consent.revoked_on,
        provision,
    }
}

fn actor(recipient: ConsentRecipient) -> Actor {
    match recipient {
        ConsentRecipient::Organization(id) => Actor::Organization(id.to_string()),
        ConsentRecipient::Clinician(id) => Actor::Clinician(id),
        ConsentRecipient::SupportContact(id) => Actor::SupportContact(id),
    }
}

/// The v3 purposes a clinic purpose stands for. Purposes match exactly, so each clinic purpose
/// lists every code a request under it may carry:
/// - treatment: `TREAT`;
/// - payment: `HPAYMT`; operations: `HOPERAT`;
/// - care coordination: `COC`, `CAREMGT` (the code the gateway's FHIR Consent carries) and
///   `TREAT` (coordinating care is part of treating);
/// - family participation: `FAMRQT` (the family asks) and `TREAT` (the contact takes part in
///   treatment sessions).
pub fn purposes(purpose: ConsentPurpose) -> Vec<PurposeOfUse> {
    use PurposeOfUse::*;
    match purpose {
        ConsentPurpose::Treatment => vec![Treat],
        ConsentPurpose::Payment => vec![Hpaymt],
        ConsentPurpose::Operations => vec![Hoperat],
        ConsentPurpose::CareCoordination => vec![Coc, Caremgt, Treat],
        ConsentPurpose::FamilyParticipation => vec![Famrqt, Treat],
    }
}
