//! Consent <-> IOP Consent: release of information, family participation, 42 CFR Part 2 disclosure.

use chrono::NaiveDate;
use serde_json::{Value, json};

use super::codes::{self, ProjectCode};
use super::read::{self, domain, missing, opt_str, req_str};
use super::{MappingConfig, MappingError, Sensitivity, date, meta, reference};
use crate::domain::*;

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
            codes::coding(codes::LOINC, "59284-0", "Patient Consent")
        }
        _ => codes::coding(codes::LOINC, "64292-6", "Release of information consent"),
    };
    let policy_rule = match consent.kind {
        ConsentKind::Part2Disclosure => {
            codes::coding(codes::ACT_CODE, "42CFRPart2", "42 CFR Part2")
        }
        _ => codes::coding(codes::ACT_CODE, "OPTIN", "opt-in"),
    };
    let period = super::period(consent.valid.start(), consent.valid.end());
    let mut provision = json!({
        "type": "permit",
        "period": period,
        "actor": [{
            "role": { "coding": [codes::coding(codes::PARTICIPATION_TYPE, "IRCP", "information recipient")] },
            "reference": recipient_reference(consent.recipient),
        }],
        "purpose": [codes::purpose_coding(consent.purpose)],
    });
    match &consent.scope {
        InformationScope::All => {}
        InformationScope::AllExceptSubstanceUse => {
            // DS4P: everything except what is labelled as substance-use (Part 2) information.
            provision["provision"] = json!([{
                "type": "deny",
                "securityLabel": [codes::coding(codes::ACT_CODE, "SUD", "substance use disorder information sensitivity")],
            }]);
        }
        InformationScope::Categories(list) => {
            provision["code"] = json!(
                list.iter()
                    .map(|c| json!({ "coding": [c.coding()] }))
                    .collect::<Vec<_>>()
            );
        }
    }
    let mut resource = json!({
        "resourceType": "Consent",
        "id": consent.id.to_string(),
        "meta": meta("iop-consent", sensitivity),
        "identifier": [cfg.record_identifier("consent", consent.id)],
        "status": status,
        "scope": { "coding": [codes::coding(codes::CONSENT_SCOPE, "patient-privacy", "Privacy Consent")] },
        "category": [{ "coding": [loinc] }, { "coding": [consent.kind.coding()] }],
        "patient": reference("Patient", consent.client_id),
        "dateTime": date(consent.signed_on),
        "organization": [reference("Organization", clinic_id)],
        "policyRule": { "coding": [policy_rule] },
        "provision": provision,
    });
    if let Some(revoked_on) = consent.revoked_on {
        resource["extension"] = json!([{ "url": codes::extension("iop-consent-revoked"), "valueDate": date(revoked_on) }]);
    }
    resource
}

pub fn consent_from_fhir(resource: &Value) -> Result<Consent, MappingError> {
    read::expect_type(resource, "Consent")?;
    let kind_system = codes::code_system(ConsentKind::SYSTEM_ID);
    let kind = read::array(resource, "category")
        .iter()
        .find_map(|c| read::code_in(c, &kind_system))
        .ok_or_else(|| missing(format!("Consent.category (system {kind_system})")))?;
    let kind = ConsentKind::from_fhir_code(kind).ok_or_else(|| MappingError::UnknownCode {
        path: "Consent.category".into(),
        code: kind.into(),
        expected: ConsentKind::expected(),
    })?;
    let provision = resource
        .get("provision")
        .ok_or_else(|| missing("Consent.provision"))?;
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
    let purpose = read::array(provision, "purpose")
        .first()
        .ok_or_else(|| missing("Consent.provision.purpose"))?;
    let (system, code) = (
        req_str(purpose, "system", "Consent.provision.purpose[0]")?,
        req_str(purpose, "code", "Consent.provision.purpose[0]")?,
    );
    let purpose =
        codes::purpose_from_coding(system, code).ok_or_else(|| MappingError::UnknownCode {
            path: "Consent.provision.purpose[0]".into(),
            code: code.into(),
            expected: "TREAT, HPAYMT, HOPERAT, CAREMGT (v3 ActReason) or family-participation"
                .into(),
        })?;
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
    let period = provision
        .get("period")
        .ok_or_else(|| missing("Consent.provision.period"))?;
    let start = read::date(
        "Consent.provision.period.start",
        req_str(period, "start", "Consent.provision.period")?,
    )?;
    let end = opt_str(period, "end")
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
        signed_on: read::date(
            "Consent.dateTime",
            &req_str(resource, "dateTime", "Consent")?
                .chars()
                .take(10)
                .collect::<String>(),
        )?,
        revoked_on,
    };
    consent.check().map_err(|e| read::invalid("Consent", e))?;
    Ok(consent)
}
