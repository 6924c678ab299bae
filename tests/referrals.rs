//! The referral exchange over real HTTP, on SQLite and PostgreSQL: a BSeR referral message
//! received (`$process-message`), resent (one intake), refused when invalid (nothing stored),
//! left for review when the patient could be several clients (nothing merged); the clinic's
//! decision and its records moving the Task (accepted, sessions attended or missed, completed on
//! discharge), visible to the hospital by polling.

mod common;

use chrono::{Duration, Utc};
use common::app::{App, spawn_app};
use iop_gateway::domain::*;
use iop_gateway::store::{Record, Store};
use reqwest::Method;
use serde_json::{Value, json};

const HOSPITAL_MRN: &str = "urn:oid:2.16.840.1.113883.19.5.99";
const PLACER: &str = "urn:oid:2.16.840.1.113883.19.5.99.7";
const BUSINESS: &str = "http://hl7.org/fhir/us/bser/CodeSystem/TaskBusinessStatusCS";

struct Person<'a> {
    mrn: &'a str,
    given: &'a str,
    family: &'a str,
    born: &'a str,
    gender: &'a str,
}

/// A referral message as a BSeR initiator sends it: MessageHeader (I12, focus the Task), Task
/// (PLAC identifier, fulfill, order), ServiceRequest, Patient, the referring PractitionerRole
/// and Organization, a discharge Encounter.
fn message(key: &str, person: &Person<'_>) -> Value {
    let entry = |id: &str, resource: Value| json!({ "fullUrl": format!("urn:uuid:{id}"), "resource": resource });
    let u = |n: u8| format!("00000000-0000-4000-8000-{:012}", n);
    let plac = |value: String| {
        json!({
            "type": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "PLAC" }] },
            "system": PLACER,
            "value": value,
        })
    };
    json!({
        "resourceType": "Bundle",
        "id": format!("msg-{key}"),
        "identifier": { "system": "urn:ietf:rfc:3986", "value": format!("urn:uuid:{}", uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, key.as_bytes())) },
        "type": "message",
        "timestamp": "2026-11-20T10:00:00Z",
        "entry": [
            entry(&u(1), json!({
                "resourceType": "MessageHeader",
                "id": format!("hdr-{key}"),
                "eventCoding": { "system": "http://terminology.hl7.org/CodeSystem/v2-0003", "code": "I12" },
                "source": { "endpoint": "https://hospital.example/fhir" },
                "sender": { "reference": format!("urn:uuid:{}", u(6)) },
                "focus": [{ "reference": format!("urn:uuid:{}", u(2)) }],
            })),
            entry(&u(2), json!({
                "resourceType": "Task",
                "identifier": [plac(format!("task-{key}"))],
                "status": "requested",
                "intent": "order",
                "code": { "coding": [{ "system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill" }] },
                "focus": { "reference": format!("urn:uuid:{}", u(3)) },
                "for": { "reference": format!("urn:uuid:{}", u(4)) },
                "authoredOn": "2026-11-20T09:30:00Z",
                "requester": { "reference": format!("urn:uuid:{}", u(5)) },
                "owner": { "display": "IOP clinic" },
            })),
            entry(&u(3), json!({
                "resourceType": "ServiceRequest",
                "identifier": [plac(format!("sr-{key}"))],
                "status": "active",
                "intent": "order",
                "code": { "text": "Intensive outpatient program" },
                "subject": { "reference": format!("urn:uuid:{}", u(4)) },
                "authoredOn": "2026-11-20",
                "requester": { "reference": format!("urn:uuid:{}", u(5)) },
                "reasonCode": [{ "text": "Step-down after inpatient stabilization" }],
                "supportingInfo": [{ "reference": format!("urn:uuid:{}", u(7)) }],
            })),
            entry(&u(4), json!({
                "resourceType": "Patient",
                "identifier": [{
                    "type": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR" }] },
                    "system": HOSPITAL_MRN,
                    "value": person.mrn,
                }],
                "name": [{ "family": person.family, "given": [person.given] }],
                "gender": person.gender,
                "birthDate": person.born,
            })),
            entry(&u(5), json!({
                "resourceType": "PractitionerRole",
                "organization": { "reference": format!("urn:uuid:{}", u(6)) },
            })),
            entry(&u(6), json!({
                "resourceType": "Organization",
                "identifier": [{ "system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893" }],
                "name": "Riverside Behavioral Hospital",
            })),
            entry(&u(7), json!({
                "resourceType": "Encounter",
                "status": "finished",
                "class": { "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP" },
                "subject": { "reference": format!("urn:uuid:{}", u(4)) },
            })),
        ],
    })
}

fn new_person(mrn: &str) -> Person<'_> {
    Person {
        mrn,
        given: "Rosalind",
        family: "Quintero-Vale",
        born: "1987-03-14",
        gender: "female",
    }
}

/// What the response message says: (Task id it names, issue code).
fn answer(status: u16, body: &Value) -> (Option<String>, String) {
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["type"], "message", "{body}");
    let header = &body["entry"][0]["resource"];
    assert_eq!(header["resourceType"], "MessageHeader");
    assert_eq!(header["response"]["code"], "ok");
    assert!(
        header["response"]["identifier"]
            .as_str()
            .unwrap()
            .starts_with("hdr-")
    );
    let task = header["focus"][0]["reference"]
        .as_str()
        .map(|r| r.trim_start_matches("Task/").to_owned());
    let code = body["entry"][1]["resource"]["issue"][0]["code"]
        .as_str()
        .unwrap()
        .to_owned();
    (task, code)
}

async fn count<R: Record>(store: &Store) -> i64 {
    store.count::<R>().await.unwrap()
}

fn business(task: &Value) -> (&str, &str) {
    let coding = &task["businessStatus"]["coding"][0];
    assert_eq!(coding["system"], BUSINESS, "{task}");
    (
        task["status"].as_str().unwrap(),
        coding["code"].as_str().unwrap(),
    )
}

async fn task(app: &App, id: &str) -> Value {
    let (status, task) = app.get(&format!("Task/{id}")).await;
    assert_eq!(status, 200, "{task}");
    task
}

async fn referral_is_received_decided_and_followed(store: &Store) {
    let app = spawn_app(store).await;
    let before = (count::<Client>(store).await, count::<Referral>(store).await);
    let since = Utc::now() - Duration::seconds(1);
    let sent = message("a1", &new_person("H-100"));
    let (status, body) = app.send(Method::POST, "$process-message", &sent).await;
    let (task_id, code) = answer(status, &body);
    assert_eq!(code, "informational", "{body}");
    let task_id = task_id.expect("the answer names the Task");
    assert_eq!(count::<Client>(store).await, before.0 + 1, "a new client");
    assert_eq!(count::<Referral>(store).await, before.1 + 1);

    // The Task: received, BSeR 2.0, with the hospital's placer identifier; the ServiceRequest
    // keeps its own. The new client keeps the hospital's MRN beside a clinic MRN.
    let received = task(&app, &task_id).await;
    assert_eq!(business(&received), ("received", "2.0"));
    assert!(
        received["identifier"].to_string().contains("task-a1"),
        "{received}"
    );
    let found = app
        .search(&format!("ServiceRequest?identifier={PLACER}|sr-a1"))
        .await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["id"], task_id.as_str());
    let patients = app
        .search(&format!("Patient?identifier={HOSPITAL_MRN}|H-100"))
        .await;
    assert_eq!(patients.len(), 1);
    assert_eq!(
        received["for"]["reference"],
        format!("Patient/{}", patients[0]["id"].as_str().unwrap())
    );

    // Sent again (a lost answer, a retry): one intake, and the answer says so.
    let (status, body) = app.send(Method::POST, "$process-message", &sent).await;
    let (again, code) = answer(status, &body);
    assert_eq!(
        (again.as_deref(), code.as_str()),
        (Some(task_id.as_str()), "duplicate")
    );
    // A new message (another Bundle identifier) about the same referral (same placer id) too.
    let mut resent = sent.clone();
    resent["identifier"]["value"] = json!("urn:uuid:6a0f7f4c-0000-4000-8000-000000000001");
    let (status, body) = app.send(Method::POST, "$process-message", &resent).await;
    assert_eq!(answer(status, &body).1, "duplicate");
    assert_eq!(count::<Client>(store).await, before.0 + 1);
    assert_eq!(count::<Referral>(store).await, before.1 + 1);

    // The hospital polls: its referrals by requester, changed since it sent.
    let requester = received["requester"]["reference"]
        .as_str()
        .unwrap()
        .to_owned();
    let owner = received["owner"]["reference"].as_str().unwrap().to_owned();
    let since = since.format("%Y-%m-%dT%H:%M:%SZ");
    for query in [
        format!("Task?requester={requester}&_lastUpdated=gt{since}"),
        format!("Task?owner={owner}&_lastUpdated=gt{since}"),
    ] {
        let polled = app.search(&query).await;
        assert!(
            polled.iter().any(|t| t["id"] == task_id.as_str()),
            "{query}"
        );
    }

    // The clinic accepts: 3.0.
    let referral_id: Id<Referral> = task_id.parse().unwrap();
    let today = Utc::now().date_naive();
    iop_gateway::referrals::decide(store, referral_id, ReferralStatus::Accepted, None, today)
        .await
        .unwrap();
    let accepted = task(&app, &task_id).await;
    assert_eq!(business(&accepted), ("accepted", "3.0"));
    // A second decision is refused: it was decided.
    assert!(
        iop_gateway::referrals::decide(store, referral_id, ReferralStatus::Accepted, None, today)
            .await
            .is_err()
    );

    // Enrolled from the referral, a session scheduled: in progress, 5.1.1; attended: 5.1.4;
    // the next one missed: 5.1.2; discharged: completed, 7.0, with the disposition.
    let client: Id<Client> = patients[0]["id"].as_str().unwrap().parse().unwrap();
    let program = store
        .page::<Program>(None, 1)
        .await
        .unwrap()
        .remove(0)
        .record;
    let clinician = store.page::<Staff>(None, 1).await.unwrap().remove(0).record;
    let admitted = today;
    let mut enrollment = Enrollment {
        id: Id::from_uuid(uuid::Uuid::now_v7()),
        client_id: client,
        program_id: program.id,
        referral_id: Some(referral_id),
        referral_source_id: None,
        admitted_on: admitted,
        state: EnrollmentState::Active,
        level_of_care: LevelOfCare::IntensiveOutpatient,
        primary_clinician_id: clinician.id,
    };
    store.insert(&enrollment).await.unwrap();
    let session = |n: i64, attendance| Session {
        id: Id::from_uuid(uuid::Uuid::now_v7()),
        enrollment_id: enrollment.id,
        session_type: SessionType::Individual,
        modality: None,
        delivery: SessionDelivery::InPerson,
        scheduled_start: format!("{}T15:00:00Z", admitted + Duration::days(n))
            .parse()
            .unwrap(),
        length: SessionLength::minutes(60).unwrap(),
        clinician_id: clinician.id,
        attendance,
        group_id: None,
    };
    let first = session(1, Attendance::Scheduled);
    store.insert(&first).await.unwrap();
    let scheduled = task(&app, &task_id).await;
    assert_eq!(business(&scheduled), ("in-progress", "5.1.1"));
    let version = |t: &Value| {
        t["meta"]["versionId"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
    };
    assert!(
        version(&scheduled) > version(&accepted),
        "the Task's version moves with it"
    );
    store
        .update(
            &Session {
                attendance: Attendance::Attended,
                ..first.clone()
            },
            1,
        )
        .await
        .unwrap();
    assert_eq!(
        business(&task(&app, &task_id).await),
        ("in-progress", "5.1.4")
    );
    store.insert(&session(2, Attendance::NoShow)).await.unwrap();
    assert_eq!(
        business(&task(&app, &task_id).await),
        ("in-progress", "5.1.2")
    );
    let stored = store.get(enrollment.id).await.unwrap().unwrap();
    enrollment.state = EnrollmentState::Discharged {
        on: admitted + Duration::days(3),
        disposition: DischargeDisposition::Completed,
    };
    store
        .update(&enrollment, stored.meta.version)
        .await
        .unwrap();
    let completed = task(&app, &task_id).await;
    assert_eq!(business(&completed), ("completed", "7.0"));
    assert_eq!(
        completed["output"][0]["type"]["text"], "Discharge disposition",
        "{completed}"
    );
    let (_, request) = app.get(&format!("ServiceRequest/{task_id}")).await;
    assert_eq!(request["status"], "completed");
}

/// What breaks a good message in one way.
type Breaker = Box<dyn Fn(&mut Value)>;

async fn invalid_referrals_store_nothing(store: &Store) {
    let app = spawn_app(store).await;
    let before = (
        count::<Client>(store).await,
        count::<Referral>(store).await,
        count::<ReferralIntake>(store).await,
    );
    let good = message("b1", &new_person("H-200"));
    let cases: Vec<(&str, Breaker)> = vec![
        (
            "Bundle.entry[0].resource.eventCoding",
            Box::new(|m: &mut Value| {
                m["entry"][0]["resource"]["eventCoding"]["code"] = json!("A01");
            }),
        ),
        (
            "Task.intent",
            Box::new(|m: &mut Value| {
                m["entry"][1]["resource"]["intent"] = json!("plan");
            }),
        ),
        (
            "Task.focus",
            Box::new(|m: &mut Value| {
                m["entry"][1]["resource"]["focus"]["reference"] =
                    json!("urn:uuid:11111111-1111-4111-8111-111111111111");
            }),
        ),
        (
            "Task.identifier",
            Box::new(|m: &mut Value| {
                m["entry"][1]["resource"]["identifier"][0]["type"]["coding"][0]["code"] =
                    json!("FILL");
                m["entry"][2]["resource"]["identifier"][0]["type"]["coding"][0]["code"] =
                    json!("FILL");
            }),
        ),
        // Base R4: a Patient's gender is a code from its value set.
        (
            "Patient.gender",
            Box::new(|m: &mut Value| {
                m["entry"][3]["resource"]["gender"] = json!("f");
            }),
        ),
        // The clinic's record needs a birth date (the inbound Patient profile).
        (
            "birthDate",
            Box::new(|m: &mut Value| {
                m["entry"][3]["resource"]
                    .as_object_mut()
                    .unwrap()
                    .remove("birthDate");
            }),
        ),
        // Longer than the store keeps: refused, never shortened.
        (
            "placer identifier",
            Box::new(|m: &mut Value| {
                m["entry"][1]["resource"]["identifier"][0]["value"] = json!("x".repeat(4100));
            }),
        ),
        (
            "Bundle.type",
            Box::new(|m: &mut Value| {
                m["type"] = json!("collection");
            }),
        ),
    ];
    for (expected, break_it) in cases {
        let mut sent = good.clone();
        break_it(&mut sent);
        let (status, body) = app.send(Method::POST, "$process-message", &sent).await;
        assert!(matches!(status, 400 | 422), "{expected}: {status} {body}");
        assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
        assert!(body.to_string().contains(expected), "{expected}: {body}");
    }
    let (status, body) = app
        .send(Method::POST, "$process-message?async=true", &good)
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        before,
        (
            count::<Client>(store).await,
            count::<Referral>(store).await,
            count::<ReferralIntake>(store).await,
        ),
        "nothing stored"
    );
}

async fn an_uncertain_match_waits_for_review(store: &Store) {
    let app = spawn_app(store).await;
    // A seeded client, referred by a hospital that knows them by its own MRN.
    let known = store
        .page::<Client>(None, 1)
        .await
        .unwrap()
        .remove(0)
        .record;
    let born = known.birth_date.to_string();
    let gender = known.gender.to_string();
    let exact = Person {
        mrn: "H-300",
        given: known.name.given.as_str(),
        family: known.name.family.as_str(),
        born: &born,
        gender: &gender,
    };
    let clients = count::<Client>(store).await;
    let (status, body) = app
        .send(Method::POST, "$process-message", &message("c1", &exact))
        .await;
    let (task_id, _) = answer(status, &body);
    let linked = task(&app, &task_id.unwrap()).await;
    assert_eq!(
        linked["for"]["reference"],
        format!("Patient/{}", known.id),
        "an exact match links"
    );
    assert_eq!(count::<Client>(store).await, clients, "no new client");

    // Same birth date and family name, another given name: perhaps the same person (a
    // nickname), perhaps a relative: a person decides.
    let partial = Person {
        mrn: "H-301",
        given: "Zebulon",
        family: known.name.family.as_str(),
        born: &born,
        gender: &gender,
    };
    let referrals = count::<Referral>(store).await;
    let (status, body) = app
        .send(Method::POST, "$process-message", &message("c2", &partial))
        .await;
    let (task_id, code) = answer(status, &body);
    assert_eq!(
        (task_id, code.as_str()),
        (None, "multiple-matches"),
        "{body}"
    );
    assert_eq!(
        count::<Client>(store).await,
        clients,
        "nothing merged or created"
    );
    assert_eq!(
        count::<Referral>(store).await,
        referrals,
        "no referral until reviewed"
    );
    let waiting = store.intakes_in(Some(IntakeState::Review)).await.unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].record.candidates, vec![known.id]);
    // Resent while waiting: still one intake.
    let (status, body) = app
        .send(Method::POST, "$process-message", &message("c2", &partial))
        .await;
    assert_eq!(answer(status, &body).1, "duplicate");
    assert_eq!(count::<ReferralIntake>(store).await, 2);

    // The reviewer decides it is someone else: a new client, and the referral is received.
    let state = iop_gateway::fhir_api::FhirState::for_ingest(
        store.clone(),
        std::sync::Arc::new(iop_gateway::validation::Validator::new(
            std::sync::Arc::new(iop_gateway::validation::Registry::builtin()),
        )),
        std::sync::Arc::new(iop_gateway::mapping::MappingConfig::default()),
        std::sync::Arc::new(iop_gateway::consent::Policy::default()),
    );
    let received =
        iop_gateway::referrals::intake::resolve_review(&state, waiting[0].record.id, None, |_| {
            None
        })
        .await
        .unwrap();
    let iop_gateway::referrals::intake::Received::Stored {
        referral,
        client,
        state: how,
    } = received
    else {
        panic!("{received:?}");
    };
    assert_eq!(how, IntakeState::NewClient);
    assert_ne!(client, known.id);
    assert_eq!(count::<Client>(store).await, clients + 1);
    assert_eq!(
        business(&task(&app, &referral.to_string()).await),
        ("received", "2.0")
    );
    assert!(
        store
            .intakes_in(Some(IntakeState::Review))
            .await
            .unwrap()
            .is_empty()
    );
}

/// The hospital's own decline path through the API: a rejected Task says why.
async fn a_decline_says_why(store: &Store) {
    let app = spawn_app(store).await;
    let (status, body) = app
        .send(
            Method::POST,
            "$process-message",
            &message("d1", &new_person("H-400")),
        )
        .await;
    let task_id = answer(status, &body).0.unwrap();
    let mut declined = task(&app, &task_id).await;
    declined["status"] = json!("rejected");
    let (status, body) = app
        .send(Method::PUT, &format!("Task/{task_id}"), &declined)
        .await;
    assert_eq!(status, 422, "a decline without a reason: {body}");
    assert!(body.to_string().contains("statusReason"), "{body}");
    declined["statusReason"] = json!({ "text": "Needs medically managed withdrawal first" });
    let (status, body) = app
        .send(Method::PUT, &format!("Task/{task_id}"), &declined)
        .await;
    assert_eq!(status, 200, "{body}");
    let stored = task(&app, &task_id).await;
    assert_eq!(business(&stored), ("rejected", "4.0"));
    assert_eq!(
        stored["statusReason"]["text"],
        "Needs medically managed withdrawal first"
    );
}

/// The RESTful way: a transaction Bundle with the referral's Task, ServiceRequest and Patient
/// (no MessageHeader) is taken by the same intake, once.
async fn a_transaction_referral_is_received_once(store: &Store) {
    let app = spawn_app(store).await;
    let mut bundle = message("f1", &new_person("H-600"));
    bundle["type"] = json!("transaction");
    bundle.as_object_mut().unwrap().remove("identifier");
    let entries = bundle["entry"].as_array_mut().unwrap();
    entries.remove(0);
    for entry in entries.iter_mut() {
        let kind = entry["resource"]["resourceType"]
            .as_str()
            .unwrap()
            .to_owned();
        entry["request"] = json!({ "method": "POST", "url": kind });
    }
    let clients = count::<Client>(store).await;
    let location = |body: &Value, kind: &str| {
        body["entry"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|e| {
                let location = e["response"]["location"].as_str()?;
                location.strip_prefix(&format!("{kind}/")).map(|id| {
                    (
                        id.to_owned(),
                        e["response"]["status"].as_str().unwrap().to_owned(),
                    )
                })
            })
            .unwrap_or_else(|| panic!("no {kind} entry: {body}"))
    };
    let (status, body) = app.send(Method::POST, "", &bundle).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["type"], "transaction-response");
    let (task_id, created) = location(&body, "Task");
    assert_eq!(created, "201 Created");
    assert_eq!(location(&body, "ServiceRequest").0, task_id);
    assert_eq!(business(&task(&app, &task_id).await), ("received", "2.0"));
    assert_eq!(count::<Client>(store).await, clients + 1);
    let (status, body) = app.send(Method::POST, "", &bundle).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        location(&body, "Task"),
        (task_id, "200 OK".to_owned()),
        "received once"
    );
    assert_eq!(count::<Client>(store).await, clients + 1);
}

/// The RESTful way in two requests: the ServiceRequest (its Patient and requester contained),
/// held; then the Task naming it. One referral, one intake, whatever is sent twice; what cannot
/// be read is refused where it is, and nothing is stored.
async fn a_referral_in_two_requests_is_received_once(store: &Store) {
    let app = spawn_app(store).await;
    let sent = message("r1", &new_person("H-900"));
    let resource = |index: usize| sent["entry"][index]["resource"].clone();
    let mut request = resource(2);
    let mut patient = resource(3);
    patient["id"] = json!("patient");
    let mut role = resource(4);
    role["id"] = json!("role");
    role["organization"] = json!({ "reference": "#org" });
    let mut organization = resource(5);
    organization["id"] = json!("org");
    request["contained"] = json!([patient, role, organization]);
    request["subject"] = json!({ "reference": "#patient" });
    request["requester"] = json!({ "reference": "#role" });
    request.as_object_mut().unwrap().remove("supportingInfo");
    let held = count::<HeldReferralRequest>(store).await;
    let intakes = count::<ReferralIntake>(store).await;
    let clients = count::<Client>(store).await;

    // Refused where it is: a Patient not sent along, an invalid one; nothing held.
    let mut remote = request.clone();
    remote["subject"] = json!({ "reference": "https://hospital.example/fhir/Patient/1" });
    let (status, body, _) = app.post_located("ServiceRequest", &remote).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body.to_string().contains("ServiceRequest.subject"),
        "{body}"
    );
    let mut invalid = request.clone();
    invalid["contained"][0]["birthDate"] = json!("14 March 1987");
    let (status, body, _) = app.post_located("ServiceRequest", &invalid).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(count::<HeldReferralRequest>(store).await, held);

    // Held: 201 with where; sent again, the same one.
    let (status, body, location) = app.post_located("ServiceRequest", &request).await;
    assert_eq!(status, 201, "{body}");
    let location = location.expect("a Location");
    let request_id = location.rsplit('/').next().unwrap().to_owned();
    assert!(
        location.ends_with(&format!("/ServiceRequest/{request_id}")),
        "{location}"
    );
    let (status, body, again) = app.post_located("ServiceRequest", &request).await;
    assert_eq!(
        (status, again.as_deref()),
        (200, Some(location.as_str())),
        "{body}"
    );
    assert_eq!(body["issue"][0]["code"], "duplicate");
    assert_eq!(count::<HeldReferralRequest>(store).await, held + 1);

    // A Task naming no ServiceRequest held here: 422 at Task.focus, nothing stored.
    let mut task = resource(1);
    task.as_object_mut().unwrap().remove("for");
    task.as_object_mut().unwrap().remove("requester");
    task["focus"] = json!({ "reference": format!("ServiceRequest/{}", uuid::Uuid::new_v4()) });
    let (status, body, _) = app.post_located("Task", &task).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("Task.focus"), "{body}");
    assert_eq!(count::<ReferralIntake>(store).await, intakes);

    // The Task naming it: the referral, received whole, at the id the ServiceRequest was given.
    task["focus"] = json!({ "reference": format!("ServiceRequest/{request_id}") });
    let (status, body, location) = app.post_located("Task", &task).await;
    assert_eq!(status, 201, "{body}");
    let task_location = location.expect("a Location");
    assert!(
        task_location.ends_with(&format!("/Task/{request_id}")),
        "{task_location}"
    );
    assert_eq!(
        business(&self::task(&app, &request_id).await),
        ("received", "2.0")
    );
    let (status, served) = app.get(&format!("ServiceRequest/{request_id}")).await;
    assert_eq!(status, 200, "{served}");
    assert_eq!(count::<HeldReferralRequest>(store).await, held);
    assert_eq!(count::<ReferralIntake>(store).await, intakes + 1);
    assert_eq!(count::<Client>(store).await, clients + 1);
    let referral: Referral = store
        .get(request_id.parse::<Id<Referral>>().unwrap())
        .await
        .unwrap()
        .unwrap()
        .record;
    let sender = store.get(referral.referring_org_id).await.unwrap().unwrap();
    assert_eq!(sender.record.name.as_str(), "Riverside Behavioral Hospital");

    // Sent again, either of them: nothing added.
    let (status, body, again) = app.post_located("Task", &task).await;
    assert_eq!(
        (status, again.as_deref()),
        (200, Some(task_location.as_str())),
        "{body}"
    );
    let (status, body, again) = app.post_located("ServiceRequest", &request).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        again
            .unwrap()
            .ends_with(&format!("/ServiceRequest/{request_id}"))
    );
    assert_eq!(count::<HeldReferralRequest>(store).await, held);
    assert_eq!(count::<ReferralIntake>(store).await, intakes + 1);

    // Any other Task is still created in the clinic only.
    let mut other = task.clone();
    other["code"] = json!({ "text": "call the client" });
    let (status, body, _) = app.post_located("Task", &other).await;
    assert_eq!(status, 405, "{body}");
}

/// A ServiceRequest sent alone, whose Task has not come: clinic IT sees it waiting.
#[tokio::test]
async fn a_request_waiting_for_its_task_is_listed() {
    let db = common::sqlite().await;
    let app = spawn_app(&db.store).await;
    let sent = message("w1", &new_person("H-910"));
    let mut request = sent["entry"][2]["resource"].clone();
    let mut patient = sent["entry"][3]["resource"].clone();
    patient["id"] = json!("patient");
    request["contained"] = json!([patient]);
    request["subject"] = json!({ "reference": "#patient" });
    request.as_object_mut().unwrap().remove("supportingInfo");
    let (status, body, location) = app.post_located("ServiceRequest", &request).await;
    assert_eq!(status, 201, "{body}");
    let held = location.unwrap().rsplit('/').next().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) =
        common::process::run(cli_on(dir.path(), &db.url).args(["referrals", "list"]));
    assert!(ok, "{out}{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with(&held))
        .unwrap_or_else(|| panic!("{held} not listed: {out}"));
    assert!(line.contains("no-task"), "{line}");
    db.cleanup().await;
}

on_both_backends!(
    a_referral_in_two_requests_is_received_once,
    a_transaction_referral_is_received_once,
    referral_is_received_decided_and_followed,
    invalid_referrals_store_nothing,
    an_uncertain_match_waits_for_review,
    a_decline_says_why,
);

/// End to end with the stand-in EHR as the hospital: it holds the referral's resources and sends
/// them as a message; the clinic accepts with `iop-gateway referrals accept`; a sync push to the
/// hospital's target writes the decision (BSeR 3.0) into the hospital's own Task.
#[tokio::test]
async fn the_hospital_sees_the_accepted_task() {
    let Some(hospital) = common::standin::StandIn::start(&[]).await else {
        return;
    };
    let db = common::sqlite().await;
    let app = spawn_app(&db.store).await;
    let (task_id, ids) = hospital_refers(&hospital, &app, "e1", "H-500").await;

    let dir = tempfile::tempdir().unwrap();
    let cli = || cli_on(dir.path(), &db.url);
    let (ok, out, err) =
        common::process::run(cli().args(["referrals", "list", "--status", "received"]));
    assert!(ok && out.contains(&task_id), "{out}{err}");
    let (ok, out, err) = common::process::run(cli().args(["referrals", "accept", &task_id]));
    assert!(ok, "{out}{err}");
    let (ok, out, err) = common::process::run(cli().args(["referrals", "show", &task_id]));
    assert!(ok && out.contains("BSeR 3.0"), "{out}{err}");
    let (ok, out, err) = common::process::run(cli().args([
        "targets",
        "add",
        "hospital",
        "--base-url",
        &hospital.base,
        "--resources",
        "Organization,Patient,ServiceRequest,Task",
    ]));
    assert!(ok, "{out}{err}");
    let (ok, out, err) =
        common::process::run(cli().args(["sync", "push", "--target", "hospital", "--json"]));
    assert!(ok, "sync push: {out}{err}");

    // BSeR's closed loop: the clinic, the Task's owner, wrote its decision into the hospital's
    // own Task; it sent no Task (or ServiceRequest) of its own.
    // (The push also sent the seeded clients' records, their referrals' Tasks among them.)
    let hospital_task = ids
        .values()
        .find_map(|r| r.strip_prefix("Task/"))
        .unwrap()
        .to_owned();
    let theirs =
        |tasks: &[Value]| {
            assert!(
                !tasks.iter().any(|t| t["id"] == task_id.as_str()
                    || t["identifier"].to_string().contains(&task_id)),
                "the clinic's own Task for the referral went to the hospital"
            );
            tasks
                .iter()
                .find(|t| t["id"] == hospital_task.as_str())
                .cloned()
                .expect("the hospital's Task")
        };
    let task = theirs(&hospital.all("Task").await);
    assert_eq!(business(&task), ("accepted", "3.0"));
    assert!(
        task["identifier"].to_string().contains("task-e1"),
        "theirs, as it was: {task}"
    );
    let requests = hospital.all("ServiceRequest").await;
    assert!(!requests.iter().any(|r| r["id"] == task_id.as_str()));
    let summary: Value = serde_json::from_str(&out).unwrap();
    assert!(summary["updated"].as_u64().unwrap() >= 1, "{summary}");

    // A push with nothing new reports nothing; the client's first session, scheduled, is the
    // next state the hospital learns (in progress, 5.1.1).
    let push = || {
        let (ok, out, err) =
            common::process::run(cli().args(["sync", "push", "--target", "hospital", "--json"]));
        assert!(ok, "{out}{err}");
        serde_json::from_str::<Value>(&out).unwrap()
    };
    assert_eq!(push()["updated"], 0);
    let referral: Id<Referral> = task_id.parse().unwrap();
    let mut enrollment = enroll(&db.store, referral, false).await;
    assert_eq!(push()["updated"], 1, "the hospital's Task alone");
    let task = theirs(&hospital.all("Task").await);
    assert_eq!(business(&task), ("in-progress", "5.1.1"));

    // Discharged: the hospital's Task is completed (7.0) and carries the feedback document,
    // which the hospital holds: the stay, in a section coded RSRFS whose focus is its own
    // ServiceRequest.
    let version = db
        .store
        .get(enrollment.id)
        .await
        .unwrap()
        .unwrap()
        .meta
        .version;
    enrollment.state = EnrollmentState::Discharged {
        on: enrollment.admitted_on,
        disposition: DischargeDisposition::StepDownOutpatient,
    };
    db.store.update(&enrollment, version).await.unwrap();
    assert_eq!(push()["updated"], 1);
    let task = theirs(&hospital.all("Task").await);
    assert_eq!(business(&task), ("completed", "7.0"));
    let feedback = task["output"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|o| {
            o.pointer("/valueReference/reference")
                .and_then(Value::as_str)
        })
        .unwrap_or_else(|| panic!("no feedback reference: {task}"));
    let document = hospital
        .get_json(&format!("{}/{feedback}", hospital.base))
        .await;
    assert_eq!(document["type"], "document", "{document}");
    let validator = iop_gateway::validation::Validator::new(std::sync::Arc::new(
        iop_gateway::validation::Registry::builtin(),
    ));
    let issues = validator.validate(
        &document,
        &["http://hl7.org/fhir/StructureDefinition/Bundle".to_owned()],
    );
    assert!(
        !issues.iter().any(iop_gateway::validation::Issue::is_error),
        "the feedback document is valid R4: {issues:?}"
    );
    let composition = &document["entry"][0]["resource"];
    assert_eq!(
        composition["section"][0]["code"]["coding"][0]["code"],
        "RSRFS"
    );
    assert_eq!(composition["section"][0]["focus"], task["focus"]);
    assert_eq!(composition["subject"], task["for"]);
    let text = composition.to_string();
    assert!(text.contains("Discharged on"), "{text}");
    assert!(text.contains("Step-down to outpatient care"), "{text}");
    // Theirs names the document where they keep it, once (the clinic's own reference to
    // where it serves the document does not travel).
    let feedback_outputs: Vec<&Value> = task["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["type"]["text"] == "Referral feedback")
        .collect();
    assert_eq!(feedback_outputs.len(), 1, "{task}");
    // Pushed again: nothing new, and still one feedback document.
    assert_eq!(push()["updated"], 0);
    assert_eq!(hospital.all("Bundle").await.len(), 1);

    // Polling the gateway finds the same: the completed Task names the feedback document,
    // which the gateway serves at the referral's id.
    let ours = self::task(&app, &task_id).await;
    assert_eq!(business(&ours), ("completed", "7.0"));
    let reference = ours["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["type"]["text"] == "Referral feedback")
        .and_then(|o| o.pointer("/valueReference/reference"))
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no feedback output: {ours}"));
    assert_eq!(reference, format!("Bundle/{task_id}"));
    let (status, served) = app.get(reference).await;
    assert_eq!(status, 200, "{served}");
    assert_eq!(served["type"], "document");
    assert_eq!(served["id"], task_id.as_str());
    let issues = validator.validate(
        &served,
        &["http://hl7.org/fhir/StructureDefinition/Bundle".to_owned()],
    );
    assert!(
        !issues.iter().any(iop_gateway::validation::Issue::is_error),
        "the served feedback document is valid R4: {issues:?}"
    );
    let composition = &served["entry"][0]["resource"];
    assert_eq!(composition["subject"], ours["for"]);
    assert_eq!(
        composition["section"][0]["focus"]["reference"],
        format!("ServiceRequest/{task_id}")
    );
    assert!(
        composition
            .to_string()
            .contains("Step-down to outpatient care")
    );
    // Only fulfilled referrals the clinic received have one.
    let (status, body) = app.get(&format!("Bundle/{}", uuid::Uuid::new_v4())).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["resourceType"], "OperationOutcome");
    let accepted = common::app::accepted_referral(&db.store).await;
    assert_eq!(app.get(&format!("Bundle/{accepted}")).await.0, 404);
    db.cleanup().await;
}

/// The stand-in as the hospital: it creates the referral's Patient, ServiceRequest and Task,
/// then sends them as a message naming them by its own ids; the clinic's Task id and the
/// hospital's references (`urn` -> `Type/id`).
async fn hospital_refers(
    hospital: &common::standin::StandIn,
    app: &App,
    key: &str,
    mrn: &str,
) -> (String, std::collections::HashMap<String, String>) {
    let mut sent = message(key, &new_person(mrn));
    let mut ids = std::collections::HashMap::new();
    for index in [3usize, 2, 1] {
        let mut resource = sent["entry"][index]["resource"].clone();
        // References to what the hospital already created become its own.
        let mut text = resource.to_string();
        for (urn, reference) in &ids {
            text = text.replace(&format!("\"{urn}\""), &format!("\"{reference}\""));
        }
        resource = serde_json::from_str(&text).unwrap();
        if index == 2 {
            // The discharge Encounter stays in the message only.
            resource.as_object_mut().unwrap().remove("supportingInfo");
        }
        let created = hospital.create(&resource).await;
        let kind = created["resourceType"].as_str().unwrap().to_owned();
        let id = created["id"].as_str().unwrap().to_owned();
        let urn = sent["entry"][index]["fullUrl"].as_str().unwrap().to_owned();
        ids.insert(urn, format!("{kind}/{id}"));
        sent["entry"][index]["fullUrl"] = json!(format!("{}/{kind}/{id}", hospital.base));
        sent["entry"][index]["resource"] = created;
    }
    // The rest of the message names them as the hospital knows them.
    let mut text = sent.to_string();
    for (urn, reference) in &ids {
        text = text.replace(&format!("\"{urn}\""), &format!("\"{reference}\""));
    }
    let sent: Value = serde_json::from_str(&text).unwrap();
    let (status, body) = app.send(Method::POST, "$process-message", &sent).await;
    let (task_id, code) = answer(status, &body);
    assert_eq!(code, "informational", "{body}");
    (task_id.unwrap(), ids)
}

/// The hospital's own Task for a referral.
async fn hospitals_task(
    hospital: &common::standin::StandIn,
    ids: &std::collections::HashMap<String, String>,
) -> Value {
    let id = ids.values().find_map(|r| r.strip_prefix("Task/")).unwrap();
    hospital
        .get_json(&format!("{}/Task/{id}", hospital.base))
        .await
}

/// An active enrollment from `referral` in a program (Part 2 or not), with a session scheduled.
async fn enroll(store: &Store, referral: Id<Referral>, part2: bool) -> Enrollment {
    let client = store.get(referral).await.unwrap().unwrap().record.client_id;
    let programs = store.page::<Program>(None, 100).await.unwrap();
    let program = programs
        .into_iter()
        .map(|p| p.record)
        .find(|p| p.part2 == part2)
        .expect("a program of that kind");
    let clinician = store.page::<Staff>(None, 1).await.unwrap().remove(0).record;
    let enrollment = Enrollment {
        id: Id::from_uuid(uuid::Uuid::now_v7()),
        client_id: client,
        program_id: program.id,
        referral_id: Some(referral),
        referral_source_id: None,
        admitted_on: Utc::now().date_naive(),
        state: EnrollmentState::Active,
        level_of_care: LevelOfCare::IntensiveOutpatient,
        primary_clinician_id: clinician.id,
    };
    store.insert(&enrollment).await.unwrap();
    store
        .insert(&Session {
            id: Id::from_uuid(uuid::Uuid::now_v7()),
            enrollment_id: enrollment.id,
            session_type: SessionType::Individual,
            modality: None,
            delivery: SessionDelivery::Virtual,
            scheduled_start: format!("{}T15:00:00Z", enrollment.admitted_on + Duration::days(1))
                .parse()
                .unwrap(),
            length: SessionLength::minutes(60).unwrap(),
            clinician_id: clinician.id,
            attendance: Attendance::Scheduled,
            group_id: None,
        })
        .await
        .unwrap();
    enrollment
}

/// A target that stands for the hospital's organization: the consent gate decides for it. Its
/// referral (pending or accepted) puts it on the client's care team, so the acceptance goes back;
/// once the client is in a Part 2 program, nothing more goes without a consent to the hospital.
#[tokio::test]
async fn status_back_passes_the_consent_gate_for_the_hospital() {
    let Some(hospital) = common::standin::StandIn::start(&[]).await else {
        return;
    };
    let db = common::sqlite().await;
    let app = spawn_app(&db.store).await;
    let (task_id, ids) = hospital_refers(&hospital, &app, "g1", "H-700").await;
    let referral: Id<Referral> = task_id.parse().unwrap();
    let today = Utc::now().date_naive();
    iop_gateway::referrals::decide(&db.store, referral, ReferralStatus::Accepted, None, today)
        .await
        .unwrap();
    let organization = db
        .store
        .get(referral)
        .await
        .unwrap()
        .unwrap()
        .record
        .referring_org_id
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let cli = || cli_on(dir.path(), &db.url);
    let (ok, out, err) = common::process::run(cli().args([
        "targets",
        "add",
        "hospital",
        "--base-url",
        &hospital.base,
        "--resources",
        "Task",
        "--organization",
        &organization,
    ]));
    assert!(ok, "{out}{err}");
    let push = || {
        let (ok, out, err) =
            common::process::run(cli().args(["sync", "push", "--target", "hospital", "--json"]));
        assert!(ok, "{out}{err}");
        serde_json::from_str::<Value>(&out).unwrap()
    };
    push();
    assert_eq!(
        business(&hospitals_task(&hospital, &ids).await),
        ("accepted", "3.0")
    );

    let mut enrollment = enroll(&db.store, referral, true).await;
    let summary = push();
    assert!(summary["withheld"].as_u64().unwrap() >= 1, "{summary}");
    let task = hospitals_task(&hospital, &ids).await;
    assert_eq!(
        business(&task),
        ("accepted", "3.0"),
        "a Part 2 client's progress does not go without a consent: {task}"
    );
    // Nor the discharge and its feedback.
    let version = db
        .store
        .get(enrollment.id)
        .await
        .unwrap()
        .unwrap()
        .meta
        .version;
    enrollment.state = EnrollmentState::Discharged {
        on: enrollment.admitted_on,
        disposition: DischargeDisposition::Completed,
    };
    db.store.update(&enrollment, version).await.unwrap();
    let summary = push();
    assert!(summary["withheld"].as_u64().unwrap() >= 1, "{summary}");
    assert_eq!(
        business(&hospitals_task(&hospital, &ids).await),
        ("accepted", "3.0")
    );
    assert!(
        hospital.all("Bundle").await.is_empty(),
        "no feedback document"
    );

    // Polling the gateway as the hospital: neither the Task nor its feedback document.
    let as_hospital = common::app::spawn_as_organization(
        &db.store,
        &organization,
        "system/Task.rs system/Bundle.r",
    )
    .await;
    assert_eq!(as_hospital.get(&format!("Task/{task_id}")).await.0, 404);
    let (status, body) = as_hospital.get(&format!("Bundle/{task_id}")).await;
    assert_eq!(status, 404, "{body}");
    // A Part 2 consent to the hospital: the document is served, labelled, with the §2.32
    // notice; the stay is in it.
    let client = db
        .store
        .get(referral)
        .await
        .unwrap()
        .unwrap()
        .record
        .client_id;
    let consent = Consent {
        id: Id::from_uuid(uuid::Uuid::now_v7()),
        client_id: client,
        kind: ConsentKind::Part2Disclosure,
        scope: InformationScope::All,
        recipient: ConsentRecipient::Organization(organization.parse().unwrap()),
        purpose: ConsentPurpose::Treatment,
        valid: DateRange::new(today - Duration::days(1), None).unwrap(),
        signed_on: today - Duration::days(1),
        revoked_on: None,
    };
    db.store.insert(&consent).await.unwrap();
    let (status, document) = as_hospital.get(&format!("Bundle/{task_id}")).await;
    assert_eq!(status, 200, "{document}");
    let text = document.to_string();
    assert!(text.contains("42 CFR part 2"), "the notice: {text}");
    assert!(text.contains("42CFRPart2"), "the labels: {text}");
    assert!(text.contains("Discharged on"), "the stay: {text}");
    // Without the Bundle scope: refused.
    let tasks_only =
        common::app::spawn_as_organization(&db.store, &organization, "system/Task.rs").await;
    assert_eq!(tasks_only.get(&format!("Bundle/{task_id}")).await.0, 403);
    db.cleanup().await;
}

/// Outbound: a step-down to an outpatient provider (a second stand-in). `referrals send` records
/// the referral with its transition summary and pushes it; the provider finds the ServiceRequest
/// with the plans and contacts it may see, and the Task; it accepts; `sync pull` brings the
/// decision back to the clinic's referral.
#[tokio::test]
async fn a_step_down_goes_out_and_its_acceptance_comes_back() {
    let Some(provider) = common::standin::StandIn::start(&[]).await else {
        return;
    };
    let db = common::sqlite().await;
    let _app = spawn_app(&db.store).await;
    let store = &db.store;
    let organizations = store.page::<Organization>(None, 100).await.unwrap();
    let outpatient = organizations
        .iter()
        .find(|o| o.record.kind == OrganizationKind::OutpatientProvider)
        .unwrap()
        .record
        .id;
    // A client with a plan in a program that is not Part 2 (Part 2 needs a consent to go).
    let mut client = None;
    for enrollment in store.page::<Enrollment>(None, 1000).await.unwrap() {
        let program = store
            .get(enrollment.record.program_id)
            .await
            .unwrap()
            .unwrap();
        let part2_anywhere = store
            .children::<Enrollment>(enrollment.record.client_id)
            .await
            .unwrap()
            .iter()
            .any(|e| e.record.program_id != program.record.id || program.record.part2);
        let plans = store
            .children::<TreatmentPlan>(enrollment.record.id)
            .await
            .unwrap();
        if !program.record.part2 && !part2_anywhere && !plans.is_empty() {
            client = Some(enrollment.record.client_id);
            break;
        }
    }
    let client = client
        .expect("a seeded client with a plan outside Part 2")
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let cli = || cli_on(dir.path(), &db.url);
    let (ok, out, err) = common::process::run(cli().args([
        "targets",
        "add",
        "outpatient",
        "--base-url",
        &provider.base,
        "--organization",
        &outpatient.to_string(),
        "--resources",
        "Organization,Practitioner,Patient,RelatedPerson,CarePlan,Goal,ServiceRequest,Task",
    ]));
    assert!(ok, "{out}{err}");
    let (ok, out, err) = common::process::run(cli().args([
        "referrals",
        "send",
        "--client",
        &client,
        "--to",
        "outpatient",
        "--kind",
        "step-down",
        "--reason",
        "Step-down to weekly outpatient therapy",
    ]));
    assert!(ok, "referrals send: {out}{err}");
    let referral = out
        .split_whitespace()
        .nth(1)
        .expect("the referral id")
        .to_owned();

    let requests = provider.all("ServiceRequest").await;
    let request = requests
        .iter()
        .find(|r| r["identifier"].to_string().contains(&referral))
        .unwrap_or_else(|| panic!("the ServiceRequest went: {requests:?}"));
    let supporting = request["supportingInfo"]
        .as_array()
        .expect("a transition summary");
    let plans: Vec<&str> = supporting
        .iter()
        .filter_map(|s| s["reference"].as_str())
        .filter(|r| r.starts_with("CarePlan/"))
        .collect();
    assert!(!plans.is_empty(), "the plan goes along: {request}");
    for plan in plans {
        let found = provider
            .get_json(&format!("{}/{plan}", provider.base))
            .await;
        assert_eq!(
            found["resourceType"], "CarePlan",
            "it resolves at the provider"
        );
    }
    let tasks = provider.all("Task").await;
    let mut task = tasks
        .iter()
        .find(|t| t["identifier"].to_string().contains(&referral))
        .cloned()
        .expect("the Task went");
    assert_eq!(business(&task), ("requested", "2.0"));

    // The provider accepts; the clinic pulls the decision.
    task["status"] = json!("accepted");
    task["businessStatus"] = json!({ "coding": [{ "system": BUSINESS, "code": "3.0" }] });
    let today = Utc::now().date_naive();
    task["lastModified"] = json!(today.to_string());
    provider.update(&task).await;
    let (ok, out, err) =
        common::process::run(cli().args(["sync", "pull", "--target", "outpatient", "--json"]));
    assert!(ok, "sync pull: {out}{err}");
    let stored = store
        .get(referral.parse::<Id<Referral>>().unwrap())
        .await
        .unwrap()
        .unwrap()
        .record;
    assert_eq!(stored.status, ReferralStatus::Accepted, "{out}");
    assert_eq!(stored.decided_on, Some(today));
    // Pushed again: the provider's own decision is not sent back into its Task (the
    // ServiceRequest, whose status follows the Task, may be updated).
    let before = provider
        .get_json(&format!(
            "{}/Task/{}",
            provider.base,
            task["id"].as_str().unwrap()
        ))
        .await;
    let (ok, out, err) =
        common::process::run(cli().args(["sync", "push", "--target", "outpatient", "--json"]));
    assert!(ok, "{out}{err}");
    let after = provider
        .get_json(&format!(
            "{}/Task/{}",
            provider.base,
            task["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        before["meta"]["versionId"], after["meta"]["versionId"],
        "{out}"
    );
    assert_eq!(business(&after), ("accepted", "3.0"));
    db.cleanup().await;
}

/// A target added with `--send-transitions step-down`: a client discharged with a step-down
/// after it was added is referred there by the next push, once.
#[tokio::test]
async fn a_discharge_with_a_step_down_is_referred_by_the_next_push() {
    let Some(provider) = common::standin::StandIn::start(&[]).await else {
        return;
    };
    let db = common::sqlite().await;
    let _app = spawn_app(&db.store).await;
    let store = &db.store;
    let outpatient = store
        .page::<Organization>(None, 100)
        .await
        .unwrap()
        .into_iter()
        .find(|o| o.record.kind == OrganizationKind::OutpatientProvider)
        .unwrap()
        .record
        .id;
    let dir = tempfile::tempdir().unwrap();
    let cli = || cli_on(dir.path(), &db.url);
    let (ok, out, err) = common::process::run(cli().args([
        "targets",
        "add",
        "outpatient",
        "--base-url",
        &provider.base,
        "--organization",
        &outpatient.to_string(),
        "--send-transitions",
        "step-down",
        "--resources",
        "Patient,CarePlan,Goal,ServiceRequest,Task",
    ]));
    assert!(ok, "{out}{err}");
    let outbound_to = |referrals: Vec<iop_gateway::store::Stored<Referral>>| {
        referrals
            .into_iter()
            .filter(|r| {
                r.record.direction == ReferralDirection::Outbound
                    && r.record.receiving_org_id == outpatient
                    && r.record.referred_on >= Utc::now().date_naive()
            })
            .count()
    };
    // Discharges before the target existed are not its business: nothing new is referred.
    let push = || {
        let (ok, out, err) =
            common::process::run(cli().args(["sync", "push", "--target", "outpatient", "--json"]));
        assert!(ok, "{out}{err}");
    };
    push();
    // An active client outside Part 2 (Part 2 needs a consent to go) is discharged today with
    // a step-down.
    let programs = store.page::<Program>(None, 100).await.unwrap();
    let part2 = |program: Id<Program>| {
        programs
            .iter()
            .any(|p| p.record.id == program && p.record.part2)
    };
    let enrollments: Vec<Enrollment> = store
        .page::<Enrollment>(None, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.record)
        .collect();
    let mut enrollment = enrollments
        .iter()
        .find(|e| {
            e.state == EnrollmentState::Active
                && !enrollments
                    .iter()
                    .any(|other| other.client_id == e.client_id && part2(other.program_id))
        })
        .cloned()
        .expect("an active enrollment outside Part 2");
    let client = enrollment.client_id;
    let before = outbound_to(store.children::<Referral>(client).await.unwrap());
    let version = store
        .get(enrollment.id)
        .await
        .unwrap()
        .unwrap()
        .meta
        .version;
    enrollment.state = EnrollmentState::Discharged {
        on: Utc::now().date_naive(),
        disposition: DischargeDisposition::StepDownOutpatient,
    };
    store.update(&enrollment, version).await.unwrap();
    push();
    let referrals = store.children::<Referral>(client).await.unwrap();
    assert_eq!(outbound_to(referrals.clone()), before + 1, "one referral");
    let referral = referrals
        .iter()
        .filter(|r| r.record.direction == ReferralDirection::Outbound)
        .max_by_key(|r| r.record.id.to_string())
        .unwrap()
        .record
        .clone();
    assert_eq!(referral.kind, ReferralKind::StepDown);
    let requests = provider.all("ServiceRequest").await;
    assert!(
        requests.iter().any(|r| r["identifier"]
            .to_string()
            .contains(&referral.id.to_string())),
        "the referral went"
    );
    push();
    assert_eq!(
        outbound_to(store.children::<Referral>(client).await.unwrap()),
        before + 1,
        "and only once"
    );
    db.cleanup().await;
}

/// The gateway as a process on the test's database.
fn cli_on(dir: &std::path::Path, database_url: &str) -> std::process::Command {
    let mut command = common::process::gateway(dir);
    command.env("IOP_DATABASE_URL", database_url);
    command
}
