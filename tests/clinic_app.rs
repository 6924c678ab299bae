//! The clinic's own application writing its records through the FHIR API, on SQLite and
//! PostgreSQL: a whole intake in one transaction (client, enrollment, support contact, plan,
//! goals), two weekly reviews (`$add-review`: the CarePlan's version and ETag move each time,
//! the goals carry the notes), a relapse-prevention plan, a plan rewritten whole, a discharge;
//! every step in the history (the change log). An external EHR's client with the same scopes is
//! refused each of those writes with 403.

mod common;

use common::app::{App, spawn_app, spawn_as_organization, spawn_clinic_app};
use iop_gateway::store::Store;
use reqwest::Method;
use serde_json::{Value, json};

const MODALITY: &str = "https://iop-gateway.org/fhir/CodeSystem/iop-modality";
const CATEGORY: &str = "https://iop-gateway.org/fhir/CodeSystem/iop-careplan-category";
const EXTENSION: &str = "https://iop-gateway.org/fhir/StructureDefinition";
const SCOPES: &str = "system/*.cruds";

fn assert_outcome(status: u16, body: &Value, expected: u16) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
}

/// The first resource a search finds, without the fields a new record must not copy.
async fn template(app: &App, query: &str) -> Value {
    let mut resource = app.search(query).await.remove(0);
    let object = resource.as_object_mut().unwrap();
    for field in ["id", "meta", "identifier", "text"] {
        object.remove(field);
    }
    resource
}

fn entry(full_url: &str, resource: Value) -> Value {
    let resource_type = resource["resourceType"].as_str().unwrap().to_owned();
    json!({
        "fullUrl": full_url,
        "resource": resource,
        "request": { "method": "POST", "url": resource_type },
    })
}

fn narrative(text: &str) -> Value {
    json!({ "status": "generated", "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{text}</div>") })
}

/// A whole intake as a clinic application records it: the client, their enrollment, a support
/// contact, the treatment plan and its two goals (listed by the plan). The templates come from
/// what `partner` sees, so the new client is in a program the partner may be told of (not Part
/// 2).
async fn intake(app: &App, partner: &App, mrn: &str) -> (Value, String) {
    let mut patient = template(partner, "Patient?_count=1").await;
    patient["identifier"] =
        json!([{ "system": "https://iop-gateway.org/fhir/clinic/mrn", "value": mrn }]);
    let mut episode = template(partner, "EpisodeOfCare?status=active&_count=1").await;
    episode["patient"] = json!({ "reference": "urn:uuid:patient" });
    episode["period"] = json!({ "start": "2026-11-23" });
    let author = episode["careManager"].clone();
    let mut contact = template(partner, "RelatedPerson?_count=1").await;
    contact["patient"] = json!({ "reference": "urn:uuid:patient" });
    contact.as_object_mut().unwrap().remove("period");
    let plan = json!({
        "resourceType": "CarePlan",
        "text": narrative("Individual treatment plan"),
        "extension": [{ "url": format!("{EXTENSION}/iop-review-interval"),
            "valueDuration": { "value": 7, "unit": "d", "system": "http://unitsofmeasure.org", "code": "d" } }],
        "status": "active",
        "intent": "plan",
        "category": [
            { "coding": [{ "system": "http://hl7.org/fhir/us/core/CodeSystem/careplan-category", "code": "assess-plan" }] },
            { "coding": [{ "system": CATEGORY, "code": "treatment-plan" }] },
        ],
        "subject": { "reference": "urn:uuid:patient" },
        "supportingInfo": [{ "reference": "urn:uuid:episode" }],
        "period": { "start": "2026-11-23" },
        "author": author,
        "goal": [{ "reference": "urn:uuid:goal-sleep" }, { "reference": "urn:uuid:goal-craving" }],
        "activity": [{ "detail": {
            "code": { "coding": [{ "system": MODALITY, "code": "group-therapy" }] },
            "status": "in-progress",
            "scheduledTiming": { "repeat": { "frequency": 3, "period": 1, "periodUnit": "wk", "duration": 180, "durationUnit": "min" } },
        } }],
    });
    let goal = |text: &str| {
        json!({
            "resourceType": "Goal",
            "lifecycleStatus": "active",
            "description": { "text": text },
            "subject": { "reference": "urn:uuid:patient" },
            "target": [{ "dueDate": "2027-01-15" }],
        })
    };
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "transaction",
        // Listed as a person might: the plan before what it refers to.
        "entry": [
            entry("urn:uuid:plan", plan),
            entry("urn:uuid:goal-sleep", goal("Sleep seven hours on most nights")),
            entry("urn:uuid:goal-craving", goal("Use a coping skill when cravings come")),
            entry("urn:uuid:contact", contact),
            entry("urn:uuid:episode", episode),
            entry("urn:uuid:patient", patient),
        ],
    });
    let (status, answer) = app.send(Method::POST, "", &bundle).await;
    assert_eq!(status, 200, "{answer}");
    let location = |i: usize| -> String {
        answer["entry"][i]["response"]["location"]
            .as_str()
            .unwrap_or_else(|| panic!("entry {i} has a location: {answer}"))
            .split("/_history")
            .next()
            .unwrap()
            .to_owned()
    };
    for (i, expected) in [
        "CarePlan",
        "Goal",
        "Goal",
        "RelatedPerson",
        "EpisodeOfCare",
        "Patient",
    ]
    .iter()
    .enumerate()
    {
        assert!(location(i).starts_with(expected), "{answer}");
        assert!(
            answer["entry"][i]["response"]["status"]
                .as_str()
                .unwrap()
                .starts_with("201")
        );
    }
    let ids = json!({
        "plan": location(0), "goals": [location(1), location(2)], "contact": location(3),
        "episode": location(4), "patient": location(5),
    });
    (ids, author["reference"].as_str().unwrap().to_owned())
}

/// GET with the ETag header.
async fn get_tagged(app: &App, path: &str) -> (Value, String) {
    let response = app
        .client
        .get(format!("{}/{path}", app.base))
        .bearer_auth(app.token.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    (response.json().await.unwrap(), etag)
}

fn review(day: &str, reviewer: &str, summary: &str, goal: &str, note: &str) -> Value {
    json!({
        "resourceType": "Parameters",
        "parameter": [
            { "name": "date", "valueDate": day },
            { "name": "reviewer", "valueReference": { "reference": reviewer } },
            { "name": "summary", "valueString": summary },
            { "name": "progress", "part": [
                { "name": "goal", "valueReference": { "reference": goal } },
                { "name": "note", "valueString": note },
                { "name": "achievement", "valueCode": "improving" },
            ] },
        ],
    })
}

async fn a_clinic_app_records_a_plan_through_discharge(store: &Store) {
    // Seeds the clinic; then its own application, and a partner EHR with the same scopes.
    spawn_app(store).await;
    let app = spawn_clinic_app(store, SCOPES).await;
    let clinic = iop_gateway::disclose::clinic_organizations(store)
        .await
        .unwrap()
        .remove(0);
    let ehr = spawn_as_organization(store, &clinic, SCOPES).await;

    let (ids, author) = intake(&app, &ehr, "CA-1001").await;
    let plan_path = ids["plan"].as_str().unwrap();
    let (plan, etag0) = get_tagged(&app, plan_path).await;
    assert_eq!(plan["status"], "active");
    assert_eq!(plan["subject"]["reference"], ids["patient"]);
    assert_eq!(plan["supportingInfo"][0]["reference"], ids["episode"]);
    assert_eq!(plan["goal"].as_array().unwrap().len(), 2, "{plan}");
    assert_eq!(
        plan["activity"][0]["detail"]["scheduledTiming"]["repeat"]["frequency"],
        3
    );
    assert!(
        plan["meta"]["profile"][0]
            .as_str()
            .unwrap()
            .ends_with("iop-careplan")
    );
    let goal_path = ids["goals"][0].as_str().unwrap();

    // Two weekly reviews: each moves the plan's version and ETag, and notes the goal.
    let mut etags = vec![etag0];
    let mut versions = vec![plan["meta"]["versionId"].as_str().unwrap().to_owned()];
    for (day, summary, note) in [
        (
            "2026-11-30",
            "First week: attending all groups",
            "Sleeping six hours",
        ),
        (
            "2026-12-07",
            "Second week: steady",
            "Sleeping seven hours most nights",
        ),
    ] {
        let (status, answer) = app
            .send(
                Method::POST,
                &format!("{plan_path}/$add-review"),
                &review(day, &author, summary, goal_path, note),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            answer["note"].as_array().unwrap().last().unwrap()["text"],
            summary
        );
        let (read, etag) = get_tagged(&app, plan_path).await;
        assert!(!etags.contains(&etag), "the ETag moves with each review");
        let version = read["meta"]["versionId"].as_str().unwrap().to_owned();
        assert!(!versions.contains(&version));
        etags.push(etag);
        versions.push(version);
    }
    let (plan, _) = get_tagged(&app, plan_path).await;
    assert_eq!(plan["note"].as_array().unwrap().len(), 2);
    let next = plan["extension"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["url"] == format!("{EXTENSION}/iop-next-review"))
        .expect("the next review is set");
    assert_eq!(
        next["valueDate"], "2026-12-14",
        "a week after the last review"
    );
    let (goal, _) = get_tagged(&app, goal_path).await;
    assert_eq!(goal["note"].as_array().unwrap().len(), 2, "{goal}");
    assert_eq!(goal["achievementStatus"]["coding"][0]["code"], "improving");

    // The same day twice is one review: 409, nothing written.
    let (status, outcome) = app
        .send(
            Method::POST,
            &format!("{plan_path}/$add-review"),
            &review("2026-12-07", &author, "again", goal_path, "again"),
        )
        .await;
    assert_outcome(status, &outcome, 409);
    // A stale If-Match: 412.
    let stale = app
        .client
        .post(format!("{}/{plan_path}/$add-review", app.base))
        .bearer_auth(app.token.as_deref().unwrap())
        .header("content-type", "application/fhir+json")
        .header("if-match", &etags[0])
        .json(&review("2026-12-08", &author, "late", goal_path, "late"))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status().as_u16(), 412);

    // The relapse-prevention plan, with the support contact to call.
    let relapse = json!({
        "resourceType": "CarePlan",
        "text": narrative("Relapse-prevention plan"),
        "extension": [
            { "url": format!("{EXTENSION}/iop-relapse-trigger"), "valueString": "Payday weekends" },
            { "url": format!("{EXTENSION}/iop-relapse-warning-sign"), "valueString": "Skipping meals" },
        ],
        "partOf": [{ "reference": plan_path }],
        "status": "active",
        "intent": "plan",
        "category": [
            { "coding": [{ "system": "http://hl7.org/fhir/us/core/CodeSystem/careplan-category", "code": "assess-plan" }] },
            { "coding": [{ "system": CATEGORY, "code": "relapse-prevention-plan" }] },
        ],
        "subject": { "reference": ids["patient"] },
        "period": { "start": "2026-11-30" },
        "activity": [
            { "detail": { "code": { "coding": [{ "system": MODALITY, "code": "coping-skill" }] }, "status": "in-progress", "description": "Urge surfing" } },
            { "detail": { "code": { "coding": [{ "system": MODALITY, "code": "call-support-contact" }] }, "status": "in-progress", "performer": [{ "reference": ids["contact"] }] } },
        ],
    });
    assert_eq!(
        ehr.send(Method::POST, "CarePlan", &relapse).await.0,
        403,
        "an EHR's client does not write relapse plans"
    );
    let (status, created, location) = app.post_located("CarePlan", &relapse).await;
    assert_eq!(status, 201, "{created}");
    assert!(location.is_some());
    assert!(
        created["meta"]["profile"][0]
            .as_str()
            .unwrap()
            .ends_with("iop-relapse-prevention-plan")
    );
    // The clinic's own application sees the contact it wrote (to the clinic it is no
    // disclosure); the partner EHR sees no contact no consent names.
    assert_eq!(
        created["activity"][1]["detail"]["performer"][0]["reference"],
        ids["contact"]
    );
    let relapse_path = location.unwrap();
    let relapse_path = relapse_path[relapse_path.find("CarePlan/").unwrap()..]
        .split("/_history")
        .next()
        .unwrap()
        .to_owned();
    let (status, seen) = ehr.get(&relapse_path).await;
    match status {
        // Withheld whole by the clinic's policy for this recipient, or shown without the contact.
        404 => {}
        200 => assert_eq!(seen["activity"].as_array().unwrap().len(), 1, "{seen}"),
        other => panic!("{other}: {seen}"),
    }
    let (status, outcome) = app.send(Method::POST, "CarePlan", &relapse).await;
    assert_outcome(status, &outcome, 409);

    // The plan rewritten whole: a second intervention; a review left out is refused.
    let mut rewritten = plan.clone();
    rewritten.as_object_mut().unwrap().remove("meta");
    rewritten["activity"].as_array_mut().unwrap().push(json!({ "detail": {
        "code": { "coding": [{ "system": MODALITY, "code": "individual-therapy" }] },
        "status": "in-progress",
        "scheduledTiming": { "repeat": { "frequency": 1, "period": 1, "periodUnit": "wk", "duration": 50, "durationUnit": "min" } },
    } }));
    let (status, answer) = app.send(Method::PUT, plan_path, &rewritten).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["activity"].as_array().unwrap().len(), 2);
    assert_eq!(answer["note"].as_array().unwrap().len(), 2, "reviews kept");
    let mut dropped = answer.clone();
    dropped.as_object_mut().unwrap().remove("meta");
    dropped["note"].as_array_mut().unwrap().pop();
    let (status, outcome) = app.send(Method::PUT, plan_path, &dropped).await;
    assert_outcome(status, &outcome, 422);
    assert_eq!(
        outcome["issue"][0]["expression"][0], "CarePlan.note",
        "{outcome}"
    );

    // A goal added to the plan later: with the plan, in one transaction; alone it is refused.
    let new_goal = json!({
        "resourceType": "Goal", "lifecycleStatus": "proposed",
        "description": { "text": "Return to work part time" },
        "subject": { "reference": ids["patient"] },
    });
    let (status, outcome) = app.send(Method::POST, "Goal", &new_goal).await;
    assert_outcome(status, &outcome, 422);
    let mut listed = answer.clone();
    listed.as_object_mut().unwrap().remove("meta");
    listed["goal"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "reference": "urn:uuid:goal-work" }));
    let bundle = json!({ "resourceType": "Bundle", "type": "transaction", "entry": [
        { "fullUrl": "urn:uuid:goal-work", "resource": new_goal, "request": { "method": "POST", "url": "Goal" } },
        { "resource": listed, "request": { "method": "PUT", "url": plan_path } },
    ] });
    let (status, answer) = app.send(Method::POST, "", &bundle).await;
    assert_eq!(status, 200, "{answer}");
    let (plan, _) = get_tagged(&app, plan_path).await;
    assert_eq!(plan["goal"].as_array().unwrap().len(), 3, "{plan}");
    // A conditional create that finds the plan by its record identifier writes nothing.
    let mut again = plan.clone();
    again.as_object_mut().unwrap().remove("meta");
    let condition = format!(
        "identifier={}|{}",
        plan["identifier"][0]["system"].as_str().unwrap(),
        plan["id"].as_str().unwrap()
    );
    let found = app
        .client
        .post(format!("{}/CarePlan", app.base))
        .bearer_auth(app.token.as_deref().unwrap())
        .header("content-type", "application/fhir+json")
        .header("if-none-exist", condition)
        .json(&again)
        .send()
        .await
        .unwrap();
    assert_eq!(found.status().as_u16(), 200);
    let found: Value = found.json().await.unwrap();
    assert_eq!(found["meta"]["versionId"], plan["meta"]["versionId"]);

    // Discharge: the enrollment finished, with its disposition.
    let episode_path = ids["episode"].as_str().unwrap();
    let (mut episode, _) = get_tagged(&app, episode_path).await;
    episode.as_object_mut().unwrap().remove("meta");
    episode["status"] = json!("finished");
    episode["period"]["end"] = json!("2026-12-18");
    episode["extension"].as_array_mut().unwrap().push(json!({
        "url": format!("{EXTENSION}/iop-discharge-disposition"),
        "valueCodeableConcept": { "coding": [{ "system": "https://iop-gateway.org/fhir/CodeSystem/iop-discharge-disposition", "code": "step-down-outpatient" }] },
    }));
    let (status, answer) = app.send(Method::PUT, episode_path, &episode).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "finished");

    // Every step is in the plan's history (read from the change log), newest first.
    let (status, history) = app.get(&format!("{plan_path}/_history")).await;
    assert_eq!(status, 200);
    let history_versions: Vec<&str> = history["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["response"]["etag"].as_str())
        .collect();
    for version in &versions {
        let etag = format!("W/\"{version}\"");
        assert!(
            history_versions.contains(&etag.as_str()),
            "{etag} in {history_versions:?}"
        );
    }

    // The partner EHR, with the same scopes, may read but not write the clinic's plans.
    assert_eq!(ehr.get(plan_path).await.0, 200);
    let mut plan_body = plan.clone();
    plan_body.as_object_mut().unwrap().remove("id");
    plan_body.as_object_mut().unwrap().remove("meta");
    assert_eq!(ehr.send(Method::POST, "CarePlan", &plan_body).await.0, 403);
    assert_eq!(ehr.send(Method::POST, "Goal", &new_goal).await.0, 403);
    let (status, outcome) = ehr
        .send(
            Method::POST,
            &format!("{plan_path}/$add-review"),
            &review("2026-12-14", &author, "third", goal_path, "third"),
        )
        .await;
    assert_outcome(status, &outcome, 403);
    let bundle = json!({ "resourceType": "Bundle", "type": "transaction", "entry": [
        { "resource": plan_body, "request": { "method": "POST", "url": "CarePlan" } },
    ] });
    assert_eq!(ehr.send(Method::POST, "", &bundle).await.0, 403);
    let (plan_after, _) = get_tagged(&app, plan_path).await;
    assert_eq!(
        plan_after["meta"], plan["meta"],
        "nothing the EHR sent was written"
    );
}

/// A plan that names no enrollment belongs to the client's one open enrollment; a plan whose
/// client has none open on its first day must name it.
async fn a_plan_without_its_enrollment_finds_the_open_one(store: &Store) {
    spawn_app(store).await;
    let app = spawn_clinic_app(store, SCOPES).await;
    let clinic = iop_gateway::disclose::clinic_organizations(store)
        .await
        .unwrap()
        .remove(0);
    let partner = spawn_as_organization(store, &clinic, SCOPES).await;
    let (ids, author) = intake(&app, &partner, "CA-2002").await;
    let plan = |start: &str| {
        json!({
            "resourceType": "CarePlan",
            "text": narrative("Plan"),
            "status": "draft",
            "intent": "plan",
            "category": [{ "coding": [{ "system": "http://hl7.org/fhir/us/core/CodeSystem/careplan-category", "code": "assess-plan" }] }],
            "subject": { "reference": ids["patient"] },
            "period": { "start": start },
            "author": { "reference": author },
        })
    };
    let (status, created) = app
        .send(Method::POST, "CarePlan", &plan("2026-12-01"))
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["supportingInfo"][0]["reference"], ids["episode"]);
    // Before the admission: no open enrollment, so the plan must say which.
    let (status, outcome) = app
        .send(Method::POST, "CarePlan", &plan("2026-10-01"))
        .await;
    assert_outcome(status, &outcome, 422);
    assert_eq!(
        outcome["issue"][0]["expression"][0], "CarePlan.supportingInfo",
        "{outcome}"
    );
}

on_both_backends!(
    a_clinic_app_records_a_plan_through_discharge,
    a_plan_without_its_enrollment_finds_the_open_one,
);
