//! Consent <-> IOP Consent: release of information, family participation, 42 CFR Part 2 disclosure.

use chrono::NaiveDate;
use serde_json::Value;

use super::codes::{self, ProjectCode};
use super::read::{self, domain, missing, opt_str, req_str};
use super::{MappingConfig, MappingError, Sensitivity, date, meta, reference};
use crate::domain::*;
use crate::json_build::fhir;

fn recipient_reference(r: ConsentRecipient) -> Value {
    match r {
        ConsentRecipient::Organization(id) => reference("Organization", id),
        ConsentRecipient::Clinician(id) => reference("Practitioner", id),
        ConsentRecipient::SupportContact(id) => reference("RelatedPerson", id),
    }
}

/// `as_of` decides `status`: a revoked or expired consent is `inactive`.
pub fn consent_to_fhir(
    cfg: &MappingConfig,
    consent: &Consent,
    clinic_id: Id<Organization>,
    sensitivity: Sensitivity,
    as_of: NaiveDate,
) -> Value {
    let revoked = consent.revoked_on.is_some_and(|r| r <= as_of);
    let expired = consent.valid.end().is_some_and(|end| end < as_of);
    let status = if revoked || expired {
        "inactive"
    } else {
        "active"
    };
    let loinc = match consent.kind {
        ConsentKind::FamilyParticipation => {
            codes::constant_coding!(codes::LOINC, "59284-0", "Patient Consent")
        }
        _ => codes::constant_coding!(codes::LOINC, "64292-6", "Release of information consent"),
    };
    let policy_rule = match consent.kind {
        ConsentKind::Part2Disclosure => {
            codes::constant_coding!(codes::ACT_CODE, "42CFRPart2", "42 CFR Part2")
        }
        _ => codes::constant_coding!(codes::ACT_CODE, "OPTIN", "opt-in"),
    };
    let period = super::period(consent.valid.start(), consent.valid.end());
    let mut provision = fhir!({
        "type": "permit",
        "period": period,
        "actor": [{
            "role": { "coding": [codes::constant_coding!(codes::PARTICIPATION_TYPE, "IRCP", "information recipient")] },
            "reference": recipient_reference(consent.recipient),
        }],
        "purpose": [codes::purpose_coding(consent.purpose)],
    });
    match &consent.scope {
        InformationScope::All => {}
        InformationScope::AllExceptSubstanceUse => {
            // DS4P: everything except what is labelled as substance-use (Part 2) information.
            provision["provision"] = fhir!([{
                "type": "deny",
                "securityLabel": [codes::constant_coding!(codes::ACT_CODE, "SUD", "substance use disorder information sensitivity")],
            }]);
        }
        InformationScope::Categories(list) => {
            provision["code"] = fhir!(
                list.iter()
                    .map(|c| fhir!({ "coding": [c.coding()] }))
                    .collect::<Vec<_>>()
            );
        }
    }
    let mut resource = fhir!({
        "resourceType": "Consent",
        "id": consent.id.text(),
        "meta": meta("iop-consent", sensitivity),
        "identifier": [cfg.record_identifier("consent", consent.id)],
        "status": status,
        "scope": { "coding": [codes::constant_coding!(codes::CONSENT_SCOPE, "patient-privacy", "Privacy Consent")] },
        "category": [{ "coding": [loinc] }, { "coding": [consent.kind.coding()] }],
        "patient": reference("Patient", consent.client_id),
        "dateTime": date(consent.signed_on),
        "organization": [reference("Organization", clinic_id)],
        "policyRule": { "coding": [policy_rule] },
        "provision": provision,
    });
    if let Some(revoked_on) = consent.revoked_on {
        resource["extension"] = fhir!([{ "url": codes::extension("iop-consent-revoked"), "valueDate": date(revoked_on) }]);
    }
    resource
}

/// An incoming Consent. Defaults where an EHR sends less than the IOP profile (see
/// fhir-profiles/README.md): the kind from `iop-consent-kind`, else a Part 2 disclosure when
/// `policyRule` or `category` says 42CFRPart2, else family participation when the purpose says
/// so, else a release of information; no purpose is treatment (family participation for that
/// kind); no `dateTime` is `recorded_on`; no provision period runs from the signing date, open.
/// An `inactive` consent that has not expired is revoked on `recorded_on`.
pub fn consent_from_fhir(
    resource: &Value,
    recorded_on: NaiveDate,
) -> Result<Consent, MappingError> {
    read::expect_type(resource, "Consent")?;
    let status = req_str(resource, "status", "Consent")?;
    if !matches!(status, "active" | "inactive") {
        return Err(read::invalid(
            "Consent.status",
            "the clinic records consents in force (active) or ended (inactive)",
        ));
    }
    let kind_system = codes::code_system(ConsentKind::SYSTEM_ID);
    let kind =
        match read::array(resource, "category")
            .iter()
            .find_map(|c| read::code_in(c, &kind_system))
        {
            Some(kind) => Some(ConsentKind::from_fhir_code(kind).ok_or_else(|| {
                MappingError::UnknownCode {
                    path: "Consent.category".into(),
                    code: kind.into(),
                    expected: ConsentKind::expected(),
                }
            })?),
            None => None,
        };
    let provision = resource
        .get("provision")
        .ok_or_else(|| missing("Consent.provision"))?;
    if opt_str(provision, "type").is_some_and(|t| t != "permit") {
        return Err(read::invalid(
            "Consent.provision.type",
            "the clinic records what a consent permits (permit)",
        ));
    }
    let actor = read::array(provision, "actor")
        .first()
        .ok_or_else(|| missing("Consent.provision.actor"))?;
    let actor_ref = actor
        .get("reference")
        .ok_or_else(|| missing("Consent.provision.actor[0].reference"))?;
    let path = "Consent.provision.actor[0].reference";
    let recipient = match opt_str(actor_ref, "reference")
        .and_then(|r| r.split_once('/'))
        .map(|(t, _)| t)
    {
        Some("Organization") => {
            ConsentRecipient::Organization(read::reference_id(actor_ref, path, "Organization")?)
        }
        Some("Practitioner") => {
            ConsentRecipient::Clinician(read::reference_id(actor_ref, path, "Practitioner")?)
        }
        Some("RelatedPerson") => {
            ConsentRecipient::SupportContact(read::reference_id(actor_ref, path, "RelatedPerson")?)
        }
        _ => {
            return Err(read::invalid(
                path,
                "must refer to an Organization, Practitioner or RelatedPerson",
            ));
        }
    };
    let part2 = resource
        .get("policyRule")
        .into_iter()
        .chain(read::array(resource, "category"))
        .any(|c| read::code_in(c, codes::ACT_CODE) == Some("42CFRPart2"));
    let purpose = match read::array(provision, "purpose").first() {
        Some(purpose) => {
            let (system, code) = (
                req_str(purpose, "system", "Consent.provision.purpose[0]")?,
                req_str(purpose, "code", "Consent.provision.purpose[0]")?,
            );
            Some(codes::purpose_from_coding(system, code).ok_or_else(|| {
                MappingError::UnknownCode {
                    path: "Consent.provision.purpose[0]".into(),
                    code: code.into(),
                    expected:
                        "TREAT, HPAYMT, HOPERAT, CAREMGT (v3 ActReason) or family-participation"
                            .into(),
                }
            })?)
        }
        None => None,
    };
    let kind = kind.unwrap_or(if part2 {
        ConsentKind::Part2Disclosure
    } else if purpose == Some(ConsentPurpose::FamilyParticipation) {
        ConsentKind::FamilyParticipation
    } else {
        ConsentKind::ReleaseOfInformation
    });
    let purpose = purpose.unwrap_or(if kind == ConsentKind::FamilyParticipation {
        ConsentPurpose::FamilyParticipation
    } else {
        ConsentPurpose::Treatment
    });
    let scope = if !read::array(provision, "provision").is_empty() {
        InformationScope::AllExceptSubstanceUse
    } else if read::array(provision, "code").is_empty() {
        InformationScope::All
    } else {
        let system = codes::code_system(InformationCategory::SYSTEM_ID);
        let list = read::array(provision, "code")
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let at = format!("Consent.provision.code[{i}]");
                let code = read::code_in(c, &system)
                    .ok_or_else(|| missing(format!("{at}.coding (system {system})")))?;
                InformationCategory::from_fhir_code(code).ok_or_else(|| MappingError::UnknownCode {
                    path: at,
                    code: code.into(),
                    expected: InformationCategory::expected(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        domain("Consent.provision.code", InformationScope::categories(list))?
    };
    let signed_on = match opt_str(resource, "dateTime") {
        Some(signed) => read::date(
            "Consent.dateTime",
            &signed.chars().take(10).collect::<String>(),
        )?,
        None => recorded_on,
    };
    let period = provision.get("period");
    let start = period
        .and_then(|p| opt_str(p, "start"))
        .map(|s| read::date("Consent.provision.period.start", s))
        .transpose()?
        .unwrap_or(signed_on);
    let end = period
        .and_then(|p| opt_str(p, "end"))
        .map(|e| read::date("Consent.provision.period.end", e))
        .transpose()?;
    let revoked_url = codes::extension("iop-consent-revoked");
    let revoked_on = read::array(resource, "extension")
        .iter()
        .find(|e| opt_str(e, "url") == Some(revoked_url.as_str()))
        .map(|e| {
            read::date(
                "Consent.extension(iop-consent-revoked)",
                opt_str(e, "valueDate").unwrap_or_default(),
            )
        })
        .transpose()?;
    // Ended without a revocation date and not by its period: revoked when the clinic learns it.
    let expired = end.is_some_and(|end| end < recorded_on);
    let revoked_on = match revoked_on {
        None if status == "inactive" && !expired => Some(recorded_on.max(signed_on)),
        other => other,
    };
    let consent = Consent {
        id: read::resource_id(resource, "Consent")?,
        client_id: read::reference_id(
            resource
                .get("patient")
                .ok_or_else(|| missing("Consent.patient"))?,
            "Consent.patient",
            "Patient",
        )?,
        kind,
        scope,
        recipient,
        purpose,
        valid: domain("Consent.provision.period", DateRange::new(start, end))?,
        signed_on,
        revoked_on,
    };
    consent.check().map_err(|e| read::invalid("Consent", e))?;
    Ok(consent)
}
