//! The referral feedback document (HL7 BSeR) the clinic returns when a referral is fulfilled: a
//! `document` Bundle whose Composition summarises the stay (section `RSRFS`, focus the
//! ServiceRequest), the attendance and the treatment plan's goals. It is built from FHIR
//! resources the disclosure gate already admitted for the recipient, so it says nothing the
//! client's consents keep from it: a withheld EpisodeOfCare, Encounter, CarePlan or Goal leaves
//! its part out.

use serde_json::Value;

use super::MappingConfig;
use super::narrative::Narrative;
use super::read::opt_str;
use crate::json_build::fhir;

/// BSeR's own code system (its Composition section codes).
pub const BSER_CODES: &str = "http://hl7.org/fhir/us/bser/CodeSystem/bser";

/// What the document is made of: admitted resources, and references as the recipient knows them.
pub struct FeedbackInput<'a> {
    /// The referral (the document's identifier value).
    pub referral_id: &'a str,
    /// The patient, as the recipient's own Task names them.
    pub subject: Value,
    /// The ServiceRequest, as the recipient's own Task names it.
    pub request: Value,
    pub episode: Option<&'a Value>,
    pub encounters: &'a [Value],
    pub plans: &'a [Value],
    pub goals: &'a [Value],
    /// Who writes it (the clinic's name).
    pub author: &'a str,
    /// Now, as an instant.
    pub now: &'a str,
    /// The 42 CFR §2.32 notice, when the document draws on Part 2 records: the document is then
    /// labelled as they are and carries the notice as a section of its own.
    pub part2_notice: Option<&'a str>,
}

fn section(code: &str, display: &str, title: &str, narrative: &Narrative) -> Value {
    fhir!({
        "title": title,
        "code": { "coding": [{ "system": BSER_CODES, "code": code, "display": display }] },
        "text": narrative.to_text(),
    })
}

fn date(value: Option<&Value>) -> Option<&str> {
    value
        .and_then(Value::as_str)
        .map(|d| d.get(..10).unwrap_or(d))
}

/// The stay, from the EpisodeOfCare: admitted, discharged and how.
fn summary(episode: Option<&Value>) -> String {
    let Some(episode) = episode else {
        return "The referral was fulfilled. Details of the stay are not shared with this recipient under the client's consents.".into();
    };
    let program = episode
        .pointer("/type/0/text")
        .and_then(Value::as_str)
        .unwrap_or("the program");
    let mut text = match date(episode.pointer("/period/start")) {
        Some(start) => format!("Admitted to {program} on {start}."),
        None => format!("Admitted to {program}."),
    };
    if let Some(end) = date(episode.pointer("/period/end")) {
        text.push_str(&format!(" Discharged on {end}"));
        let disposition = episode
            .get("extension")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|e| opt_str(e, "url").is_some_and(|u| u.ends_with("iop-discharge-disposition")))
            .and_then(|e| e.pointer("/valueCodeableConcept/coding/0/display"))
            .and_then(Value::as_str);
        match disposition {
            Some(d) => text.push_str(&format!(": {d}.")),
            None => text.push('.'),
        }
    }
    text
}

/// Sessions by what happened (the attendance the clinic recorded).
fn attendance(encounters: &[Value]) -> Option<String> {
    let (mut attended, mut missed, mut cancelled) = (0, 0, 0);
    for encounter in encounters {
        let recorded = encounter
            .get("extension")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|e| opt_str(e, "url").is_some_and(|u| u.ends_with("iop-attendance")))
            .and_then(|e| opt_str(e, "valueCode"));
        match (recorded, opt_str(encounter, "status")) {
            (Some("attended" | "late"), _) | (None, Some("finished")) => attended += 1,
            (Some("no-show"), _) => missed += 1,
            (Some("cancelled"), _) | (None, Some("cancelled")) => cancelled += 1,
            _ => {}
        }
    }
    (attended + missed + cancelled > 0)
        .then(|| format!("{attended} sessions attended, {missed} missed, {cancelled} cancelled."))
}

/// Each goal: what it is and how far it got.
fn goals(goals: &[Value]) -> Vec<String> {
    goals
        .iter()
        .filter_map(|goal| {
            let what = goal.pointer("/description/text").and_then(Value::as_str)?;
            let achieved = goal
                .pointer("/achievementStatus/coding/0/display")
                .or_else(|| goal.pointer("/achievementStatus/text"))
                .and_then(Value::as_str);
            let lifecycle = opt_str(goal, "lifecycleStatus").unwrap_or("unknown");
            Some(match achieved {
                Some(achieved) => format!("{what} ({lifecycle}; {achieved})"),
                None => format!("{what} ({lifecycle})"),
            })
        })
        .collect()
}

/// The feedback document.
pub fn feedback_document(cfg: &MappingConfig, input: &FeedbackInput<'_>) -> Value {
    let mut summary_text = Narrative::default();
    summary_text.paragraph(&summary(input.episode));
    let mut feedback = section(
        "RSRFS",
        "CompositionSectionReferralServiceRequestFeedbackSummary",
        "Referral feedback summary",
        &summary_text,
    );
    feedback["focus"] = input.request.clone();
    let mut sections = vec![feedback];
    let mut details = Vec::new();
    if let Some(counts) = attendance(input.encounters) {
        let mut text = Narrative::default();
        text.paragraph(&counts);
        details.push(fhir!({ "title": "Attendance", "text": text.to_text() }));
    }
    let goal_lines = goals(input.goals);
    if !input.plans.is_empty() || !goal_lines.is_empty() {
        let mut text = Narrative::default();
        for plan in input.plans {
            let title = opt_str(plan, "title").unwrap_or("Treatment plan");
            let status = opt_str(plan, "status").unwrap_or("unknown");
            text.paragraph(&format!("{title} ({status})"));
        }
        text.list(goal_lines);
        details.push(fhir!({ "title": "Treatment plan and goals", "text": text.to_text() }));
    }
    if !details.is_empty() {
        let mut text = Narrative::default();
        text.paragraph("Attendance and progress during the program.");
        let mut supporting = section(
            "RSRFSI",
            "CompositionSectionReferralServiceRequestFeedbackSupportingInformation",
            "Feedback supporting information",
            &text,
        );
        supporting["section"] = Value::Array(details);
        sections.push(supporting);
    }
    if let Some(notice) = input.part2_notice {
        let mut text = Narrative::default();
        text.paragraph(notice);
        sections.push(
            fhir!({ "title": "Notice of prohibition on redisclosure", "text": text.to_text() }),
        );
    }
    let composition_id = uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("referral-feedback/{}", input.referral_id).as_bytes(),
    )
    .to_string();
    let mut document = fhir!({
        "resourceType": "Bundle",
        "id": input.referral_id,
        "identifier": {
            "system": cfg.system("referral-feedback"),
            "value": input.referral_id,
        },
        "type": "document",
        "timestamp": input.now,
        "entry": [{
            "fullUrl": format!("urn:uuid:{composition_id}"),
            "resource": {
                "resourceType": "Composition",
                "id": composition_id,
                "status": "final",
                "type": {
                    "coding": [{ "system": super::codes::LOINC, "code": "57133-1" }],
                    "text": "Referral feedback",
                },
                "subject": input.subject.clone(),
                "date": input.now,
                "author": [{ "display": input.author }],
                "title": "Referral feedback",
                "section": sections,
            },
        }],
    });
    if input.part2_notice.is_some() {
        document["meta"] = fhir!({ "security": super::security_labels(super::Sensitivity::Part2) });
    }
    document
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input<'a>(
        episode: Option<&'a Value>,
        encounters: &'a [Value],
        goals: &'a [Value],
    ) -> FeedbackInput<'a> {
        FeedbackInput {
            referral_id: "r1",
            subject: json!({ "reference": "Patient/p1" }),
            request: json!({ "reference": "ServiceRequest/s1" }),
            episode,
            encounters,
            plans: &[],
            goals,
            author: "IOP clinic",
            now: "2026-12-03T10:00:00Z",
            part2_notice: None,
        }
    }

    #[test]
    fn the_document_says_what_was_admitted_and_nothing_else() {
        let cfg = MappingConfig::default();
        let episode = json!({
            "type": [{ "text": "Adult IOP (A1)" }],
            "period": { "start": "2026-11-01", "end": "2026-11-28" },
            "extension": [{
                "url": "https://iop-gateway.org/fhir/StructureDefinition/iop-discharge-disposition",
                "valueCodeableConcept": { "coding": [{ "display": "Completed the program" }] },
            }],
        });
        let attended = |code: &str| json!({ "status": "finished", "extension": [{ "url": "x/iop-attendance", "valueCode": code }] });
        let encounters = [attended("attended"), attended("late"), attended("no-show")];
        let goals = [json!({
            "lifecycleStatus": "completed",
            "description": { "text": "Use a coping skill <daily>" },
            "achievementStatus": { "coding": [{ "display": "Achieved" }] },
        })];
        let full = feedback_document(&cfg, &input(Some(&episode), &encounters, &goals)).to_string();
        for expected in [
            "RSRFS",
            "ServiceRequest/s1",
            "Admitted to Adult IOP (A1) on 2026-11-01. Discharged on 2026-11-28: Completed the program.",
            "2 sessions attended, 1 missed, 0 cancelled.",
            "Use a coping skill &lt;daily&gt; (completed; Achieved)",
        ] {
            assert!(full.contains(expected), "{expected}: {full}");
        }
        // All withheld: only the summary, which says so.
        let bare = feedback_document(&cfg, &input(None, &[], &[]));
        let sections = bare.pointer("/entry/0/resource/section").unwrap();
        assert_eq!(sections.as_array().unwrap().len(), 1);
        let text = bare.to_string();
        assert!(text.contains("not shared"), "{text}");
        assert!(
            !text.contains("Admitted") && !text.contains("sessions"),
            "{text}"
        );
    }
}
