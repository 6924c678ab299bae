//! A referral sent the RESTful way in two requests (HL7 BSeR's "basic RESTful submit"): first
//! the ServiceRequest, held until the Task whose focus names it arrives; then the Task. The
//! referring side's Patient and requester travel contained in them (the clinic cannot read the
//! referring side's server). Put together here as one `collection` Bundle — the contained
//! resources lifted into entries — which the intake reads as it reads a transaction. No I/O.

use serde_json::{Map, Value};

use super::MappingError;
use super::bser::{self, ReferralMessage};
use super::read::{self, missing, opt_str};
use crate::domain::ExternalIdentifier;
use crate::json_build::fhir;

/// Checks a ServiceRequest sent alone as a referral's (before its Task): the referring side's
/// placer identifier (typed v2-0203 PLAC), intent order, status active or draft, and the
/// Patient contained. Its placer identifier: what makes a resend the same request.
pub fn held_request_key(request: &Value) -> Result<ExternalIdentifier, MappingError> {
    read::expect_type(request, "ServiceRequest")?;
    let placer = bser::placer(request).ok_or_else(|| {
        missing(
            "ServiceRequest.identifier (typed v2-0203 PLAC: the referring side's own identifier)",
        )
    })?;
    bser::check_request(request)?;
    if request
        .get("subject")
        .and_then(|s| opt_str(s, "reference"))
        .is_none()
    {
        return Err(missing("ServiceRequest.subject.reference"));
    }
    match held_request_patient(request) {
        Some(_) => Ok(placer),
        None => Err(read::invalid(
            "ServiceRequest.subject",
            "names the Patient contained in the ServiceRequest (#id): sent on its own, the referral carries its patient",
        )),
    }
}

/// The placer identifier of a referral Task (code task-code#fulfill, an identifier typed
/// v2-0203 PLAC); None for any other Task.
pub fn referral_task_placer(task: &Value) -> Option<ExternalIdentifier> {
    let fulfill = task
        .get("code")
        .and_then(|c| read::code_in(c, bser::TASK_CODE))
        == Some("fulfill");
    fulfill.then(|| bser::placer(task)).flatten()
}

/// What a Task's focus names the held ServiceRequest by: the id in its reference (`ServiceRequest/{id}`,
/// relative or absolute), or a logical reference's identifier.
pub fn focus_of(task: &Value) -> (Option<String>, Option<ExternalIdentifier>) {
    let Some(focus) = task.get("focus") else {
        return (None, None);
    };
    let id = opt_str(focus, "reference").and_then(|r| {
        let r = r.split("/_history/").next().unwrap_or(r);
        let (kind, id) = r.rsplit_once('/')?;
        kind.ends_with("ServiceRequest").then(|| id.to_owned())
    });
    let identifier = focus.get("identifier").and_then(|i| {
        Some(ExternalIdentifier {
            system: opt_str(i, "system")?.to_owned(),
            value: opt_str(i, "value")?.to_owned(),
        })
    });
    (id, identifier)
}

/// The Patient a ServiceRequest sent alone names as its subject, contained in it.
pub fn held_request_patient(request: &Value) -> Option<&Value> {
    let subject = request
        .get("subject")
        .and_then(|s| opt_str(s, "reference"))?;
    contained(request, subject).filter(|p| opt_str(p, "resourceType") == Some("Patient"))
}

/// The resource `reference` (`#id`) names among `resource`'s contained ones.
fn contained<'a>(resource: &'a Value, reference: &str) -> Option<&'a Value> {
    let id = reference.strip_prefix('#')?;
    read::array(resource, "contained")
        .iter()
        .find(|c| opt_str(c, "id") == Some(id))
}

/// The ServiceRequest held under `request_id` (a UUID) and the Task sent for it, as one
/// `collection` Bundle and the referral it holds. The Task's focus becomes the ServiceRequest;
/// its `for` must be that ServiceRequest's patient (the same contained Patient, or one with an
/// identifier in common), or absent.
pub fn restful_referral(
    task: &Value,
    request: &Value,
    request_id: &str,
) -> Result<(Value, ReferralMessage), MappingError> {
    held_request_key(request)?;
    let urn = |container: &str, id: &str| {
        let name = format!("{request_id}/{container}/{id}");
        format!(
            "urn:uuid:{}",
            uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, name.as_bytes())
        )
    };
    let request_urn = format!("urn:uuid:{request_id}");
    let task_urn = urn("Task", "");
    let (request, request_parts) = lift(request, |id| urn("ServiceRequest", id));
    let (mut task, task_parts) = lift(task, |id| urn("Task", id));
    let subject = request["subject"]["reference"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let part = |parts: &[(String, Value)], reference: &str| {
        parts
            .iter()
            .find(|(u, _)| u == reference)
            .map(|(_, r)| r.clone())
    };
    let patient = part(&request_parts, &subject).unwrap_or_default();
    match task.get("for").map(|f| opt_str(f, "reference")) {
        None => {}
        Some(Some(reference)) => match part(&task_parts, reference) {
            Some(theirs) if same_patient(&theirs, &patient) => {}
            Some(_) => {
                return Err(read::invalid(
                    "Task.for",
                    "names another patient than ServiceRequest.subject",
                ));
            }
            None => {
                return Err(read::invalid(
                    "Task.for",
                    "names the Patient contained in the ServiceRequest or the Task (#id), or is left out: a patient on another server cannot be read here",
                ));
            }
        },
        Some(None) => return Err(missing("Task.for.reference")),
    }
    task["for"] = fhir!({ "reference": subject });
    task["focus"] = fhir!({ "reference": request_urn.as_str() });
    let mut entries = vec![
        fhir!({ "fullUrl": task_urn, "resource": task }),
        fhir!({ "fullUrl": request_urn, "resource": request }),
    ];
    for (url, resource) in request_parts.into_iter().chain(task_parts) {
        entries.push(fhir!({ "fullUrl": url, "resource": resource }));
    }
    let bundle = fhir!({ "resourceType": "Bundle", "type": "collection", "entry": entries });
    let message = bser::referral_transaction(&bundle)
        .unwrap_or_else(|| Err(missing("Task.identifier (typed v2-0203 PLAC)")))?;
    Ok((bundle, message))
}

/// Whether two Patients are the same person as sent: equal but for their ids, or with an
/// identifier (system and value) in common.
fn same_patient(a: &Value, b: &Value) -> bool {
    let without_id = |p: &Value| {
        let mut p = p.clone();
        if let Some(object) = p.as_object_mut() {
            object.remove("id");
        }
        p
    };
    if without_id(a) == without_id(b) {
        return true;
    }
    let keys = |p: &Value| -> Vec<(String, String)> {
        read::array(p, "identifier")
            .iter()
            .filter_map(|i| Some((opt_str(i, "system")?.into(), opt_str(i, "value")?.into())))
            .collect()
    };
    let theirs = keys(b);
    keys(a).iter().any(|k| theirs.contains(k))
}

/// `resource` without its contained resources, which come back as (urn, resource) pairs; every
/// `#id` reference, in it and in them, now names the urn.
fn lift(resource: &Value, urn: impl Fn(&str) -> String) -> (Value, Vec<(String, Value)>) {
    let mut resource = resource.clone();
    let contained = resource
        .as_object_mut()
        .and_then(|o| o.remove("contained"))
        .and_then(|c| match c {
            Value::Array(items) => Some(items),
            _ => None,
        })
        .unwrap_or_default();
    let urns: Map<String, Value> = contained
        .iter()
        .filter_map(|c| opt_str(c, "id"))
        .map(|id| (format!("#{id}"), Value::String(urn(id))))
        .collect();
    rewrite_local(&mut resource, &urns);
    let parts = contained
        .into_iter()
        .filter_map(|mut c| {
            let url = urn(opt_str(&c, "id")?);
            rewrite_local(&mut c, &urns);
            Some((url, c))
        })
        .collect();
    (resource, parts)
}

/// Replaces each `"reference": "#id"` under `value` with the urn `urns` holds for it.
fn rewrite_local(value: &mut Value, urns: &Map<String, Value>) {
    match value {
        Value::Object(map) => {
            if let Some(urn) = map
                .get("reference")
                .and_then(Value::as_str)
                .and_then(|r| urns.get(r))
                .cloned()
            {
                map.insert("reference".into(), urn);
            }
            for child in map.values_mut() {
                rewrite_local(child, urns);
            }
        }
        Value::Array(items) => {
            for item in items {
                rewrite_local(item, urns);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plac(value: &str) -> Value {
        json!([{
            "type": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "PLAC" }] },
            "system": "urn:oid:1.2.3",
            "value": value,
        }])
    }

    fn patient(id: &str, mrn: &str) -> Value {
        json!({
            "resourceType": "Patient", "id": id,
            "identifier": [{ "system": "urn:oid:9.9", "value": mrn }],
            "name": [{ "family": "Vale", "given": ["Ada"] }],
            "gender": "female", "birthDate": "1990-01-02",
        })
    }

    fn request() -> Value {
        json!({
            "resourceType": "ServiceRequest",
            "contained": [
                patient("p", "M1"),
                { "resourceType": "PractitionerRole", "id": "role", "organization": { "reference": "#org" } },
                { "resourceType": "Organization", "id": "org", "name": "Riverside" },
            ],
            "identifier": plac("sr-1"),
            "status": "active",
            "intent": "order",
            "subject": { "reference": "#p" },
            "requester": { "reference": "#role" },
            "authoredOn": "2026-11-20",
            "reasonCode": [{ "text": "Step-down" }],
        })
    }

    fn task(for_: Option<Value>) -> Value {
        let mut task = json!({
            "resourceType": "Task",
            "identifier": plac("task-1"),
            "status": "requested",
            "intent": "order",
            "code": { "coding": [{ "system": bser::TASK_CODE, "code": "fulfill" }] },
            "focus": { "reference": "ServiceRequest/anything" },
            "authoredOn": "2026-11-20",
        });
        if let Some(for_) = for_ {
            task["for"] = for_;
        }
        task
    }

    const HELD: &str = "0190a0b0-0000-7000-8000-000000000001";

    #[test]
    fn the_two_requests_read_as_one_referral() {
        let (bundle, message) = restful_referral(&task(None), &request(), HELD).unwrap();
        assert_eq!(message.placer.value, "task-1");
        assert_eq!(message.request_identifiers[0].value, "sr-1");
        assert_eq!(message.sender.name.as_deref(), Some("Riverside"));
        assert_eq!(message.patient["identifier"][0]["value"], "M1");
        assert_eq!(bundle["entry"][1]["fullUrl"], format!("urn:uuid:{HELD}"));
        assert!(
            !bundle.to_string().contains("\"#"),
            "no local reference left: {bundle}"
        );
        // The same patient contained in the Task as well is the same patient.
        let mut with_own = task(Some(json!({ "reference": "#me" })));
        with_own["contained"] = json!([patient("me", "M1")]);
        assert!(restful_referral(&with_own, &request(), HELD).is_ok());
    }

    #[test]
    fn what_cannot_be_read_is_refused_where_it_is() {
        let mut other = task(Some(json!({ "reference": "#me" })));
        other["contained"] = json!([{ "resourceType": "Patient", "id": "me", "identifier": [{ "system": "urn:oid:9.9", "value": "M2" }] }]);
        let err = restful_referral(&other, &request(), HELD).unwrap_err();
        assert_eq!(err.path(), "Task.for");
        let remote = task(Some(
            json!({ "reference": "https://hospital.example/fhir/Patient/1" }),
        ));
        assert_eq!(
            restful_referral(&remote, &request(), HELD)
                .unwrap_err()
                .path(),
            "Task.for"
        );
        let mut not_contained = request();
        not_contained["subject"] = json!({ "reference": "Patient/1" });
        assert_eq!(
            held_request_key(&not_contained).unwrap_err().path(),
            "ServiceRequest.subject"
        );
        let mut no_placer = request();
        no_placer.as_object_mut().unwrap().remove("identifier");
        assert!(
            held_request_key(&no_placer)
                .unwrap_err()
                .path()
                .starts_with("ServiceRequest.identifier")
        );
    }
}
