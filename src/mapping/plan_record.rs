//! The clinic's own plans read from FHIR in full: what a clinic application (or an import of the
//! gateway's own export) writes becomes the whole record — a treatment plan with its
//! interventions and reviews, a goal with its progress notes, a relapse-prevention plan with its
//! items — and `$add-review`'s Parameters become a review. An external EHR's update changes only
//! what `plan.rs`'s `PlanChanges` and `GoalChanges` allow.
//!
//! The reverse of `plan.rs`: what `plan_to_fhir`, `goal_to_fhir` and `relapse_plan_to_fhir`
//! write reads back to the same records (`tests/clinic_app.rs` and the import round trip).

use chrono::NaiveDate;
use serde_json::Value;

use super::codes::{self, ProjectCode};
use super::plan::{goal_changes_from_fhir, plan_changes_from_fhir};
use super::{GoalChanges, MappingError, read};
use crate::domain::*;

/// A treatment plan as a clinic application writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRecord {
    pub id: Id<TreatmentPlan>,
    pub client_id: Id<Client>,
    /// The enrollment the plan names (`supportingInfo`); None: the client's one open enrollment.
    pub enrollment_id: Option<Id<Enrollment>>,
    pub status: PlanStatus,
    pub period: DateRange,
    pub author_id: Id<Staff>,
    pub review_interval_days: u16,
    pub next_review_on: Option<NaiveDate>,
    /// In the order written (their ids are new, time-ordered, so the order is kept).
    pub interventions: Vec<Intervention>,
    pub reviews: Vec<ReviewEntry>,
    /// The goals the plan lists (a Goal belongs to the plan that lists it).
    pub goals: Vec<Id<Goal>>,
}

impl PlanRecord {
    pub fn plan(&self, enrollment_id: Id<Enrollment>) -> TreatmentPlan {
        TreatmentPlan {
            id: self.id,
            enrollment_id,
            status: self.status,
            period: self.period,
            author_id: self.author_id,
            review_interval_days: self.review_interval_days,
            next_review_on: self.next_review_on,
        }
    }
}

/// The review interval of a plan that does not say (the IOP norm: weekly).
pub const DEFAULT_REVIEW_INTERVAL_DAYS: u16 = 7;

/// Whether a CarePlan is a relapse-prevention plan (it is part of a treatment plan, or says so).
pub fn is_relapse_plan(resource: &Value) -> bool {
    resource.get("partOf").is_some()
        || read::array(resource, "category").iter().any(|c| {
            read::code_in(c, &codes::code_system("iop-careplan-category"))
                == Some("relapse-prevention-plan")
        })
}

/// A treatment-plan CarePlan read whole.
pub fn plan_record_from_fhir(resource: &Value) -> Result<PlanRecord, MappingError> {
    let changes = plan_changes_from_fhir(resource)?;
    let id = read::resource_id(resource, "CarePlan")?;
    let client_id = read::reference_id(
        resource.get("subject").unwrap_or(&Value::Null),
        "CarePlan.subject",
        "Patient",
    )?;
    let period = changes
        .period
        .ok_or_else(|| read::missing("CarePlan.period"))?;
    let author_id = read::reference_id(
        resource.get("author").unwrap_or(&Value::Null),
        "CarePlan.author",
        "Practitioner",
    )?;
    let enrollment_id = read::array(resource, "supportingInfo")
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            read::opt_str(r, "reference").is_some_and(|r| r.starts_with("EpisodeOfCare/"))
        })
        .map(|(i, r)| {
            read::reference_id(r, &format!("CarePlan.supportingInfo[{i}]"), "EpisodeOfCare")
        })
        .next()
        .transpose()?;
    let interventions = read::array(resource, "activity")
        .iter()
        .enumerate()
        .map(|(i, activity)| intervention(id, activity, i))
        .collect::<Result<Vec<_>, _>>()?;
    let reviews = read::array(resource, "note")
        .iter()
        .enumerate()
        .map(|(i, note)| {
            let path = format!("CarePlan.note[{i}]");
            let (on, reviewer_id, summary) = dated_note(note, &path)?;
            Ok(ReviewEntry {
                on,
                reviewer_id,
                summary,
            })
        })
        .collect::<Result<Vec<_>, MappingError>>()?;
    let goals = read::array(resource, "goal")
        .iter()
        .enumerate()
        .map(|(i, g)| read::reference_id(g, &format!("CarePlan.goal[{i}]"), "Goal"))
        .collect::<Result<Vec<_>, _>>()?;
    let plan = PlanRecord {
        id,
        client_id,
        enrollment_id,
        status: changes.status,
        period,
        author_id,
        review_interval_days: changes
            .review_interval_days
            .unwrap_or(DEFAULT_REVIEW_INTERVAL_DAYS),
        next_review_on: changes.next_review_on.flatten(),
        interventions,
        reviews,
        goals,
    };
    // The plan's own rule (the review interval) is checked here, where it can be located.
    read::domain(
        "CarePlan.extension(iop-review-interval)",
        plan.plan(Id::generate()).check(),
    )?;
    Ok(plan)
}

/// One `activity` of a treatment plan: a modality at a weekly frequency and a session length.
fn intervention(
    plan_id: Id<TreatmentPlan>,
    activity: &Value,
    index: usize,
) -> Result<Intervention, MappingError> {
    let path = format!("CarePlan.activity[{index}].detail");
    let detail = activity
        .get("detail")
        .ok_or_else(|| read::missing(path.clone()))?;
    let modality = modality(detail, &path)?;
    let repeat = detail
        .pointer("/scheduledTiming/repeat")
        .ok_or_else(|| read::missing(format!("{path}.scheduledTiming.repeat")))?;
    let repeat_path = format!("{path}.scheduledTiming.repeat");
    if read::opt_str(repeat, "periodUnit") != Some("wk")
        || repeat.get("period").and_then(Value::as_f64) != Some(1.0)
    {
        return Err(read::invalid(
            format!("{repeat_path}.period"),
            "an intervention's frequency is given per week (period 1, periodUnit wk)",
        ));
    }
    let sessions_per_week = repeat
        .get("frequency")
        .and_then(Value::as_u64)
        .and_then(|f| u8::try_from(f).ok())
        .ok_or_else(|| read::missing(format!("{repeat_path}.frequency")))?;
    let duration = repeat
        .get("duration")
        .and_then(Value::as_f64)
        .ok_or_else(|| read::missing(format!("{repeat_path}.duration")))?;
    let minutes = match read::opt_str(repeat, "durationUnit") {
        Some("min") => duration,
        Some("h") => duration * 60.0,
        _ => {
            return Err(read::invalid(
                format!("{repeat_path}.durationUnit"),
                "a session's length is in min or h",
            ));
        }
    };
    let minutes_per_session = (minutes.fract() == 0.0
        && (0.0..=f64::from(u16::MAX)).contains(&minutes))
    .then_some(minutes as u16)
    .ok_or_else(|| read::invalid(format!("{repeat_path}.duration"), "whole minutes"))?;
    let staff_id = read::array(detail, "performer")
        .first()
        .map(|p| read::reference_id(p, &format!("{path}.performer[0]"), "Practitioner"))
        .transpose()?;
    let intervention = Intervention {
        id: Id::generate(),
        plan_id,
        modality,
        sessions_per_week,
        minutes_per_session,
        staff_id,
    };
    read::domain(&repeat_path, intervention.check())?;
    Ok(intervention)
}

/// A modality from its project code, or the SNOMED CT code the mapping writes beside it.
fn modality(detail: &Value, path: &str) -> Result<Modality, MappingError> {
    let concept = detail
        .get("code")
        .ok_or_else(|| read::missing(format!("{path}.code")))?;
    if let Some(code) = read::code_in(concept, &codes::code_system(Modality::SYSTEM_ID)) {
        return Modality::from_fhir_code(code).ok_or_else(|| MappingError::UnknownCode {
            path: format!("{path}.code"),
            code: code.into(),
            expected: Modality::expected(),
        });
    }
    read::code_in(concept, codes::SNOMED)
        .and_then(|code| {
            <Modality as ProjectCode>::ALL
                .iter()
                .copied()
                .find(|m| codes::modality_snomed(*m).is_some_and(|(c, _)| c == code))
        })
        .ok_or_else(|| {
            read::invalid(
                format!("{path}.code"),
                "an intervention is coded in the IOP modality code system (or SNOMED CT)",
            )
        })
}

/// A note dated to its day with its author: a review, or a goal's progress note.
fn dated_note(
    note: &Value,
    path: &str,
) -> Result<(NaiveDate, Id<Staff>, NonEmptyText), MappingError> {
    let time = read::req_str(note, "time", path)?;
    let on = read::date(&format!("{path}.time"), time.get(..10).unwrap_or(time))?;
    let author = read::reference_id(
        note.get("authorReference").unwrap_or(&Value::Null),
        &format!("{path}.authorReference"),
        "Practitioner",
    )?;
    let text = read::domain(
        &format!("{path}.text"),
        NonEmptyText::parse(read::req_str(note, "text", path)?),
    )?;
    Ok((on, author, text))
}

/// A goal as a clinic application writes it: its fields and its progress notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoalRecord {
    pub id: Id<Goal>,
    pub client_id: Id<Client>,
    pub changes: GoalChanges,
    /// Each note belongs to the plan's review of its day.
    pub progress: Vec<ProgressEntry>,
}

impl GoalRecord {
    pub fn goal(&self, plan_id: Id<TreatmentPlan>) -> Goal {
        Goal {
            id: self.id,
            plan_id,
            description: self.changes.description.clone(),
            target_on: self.changes.target_on,
            status: self.changes.status,
            achievement: self.changes.achievement,
        }
    }
}

pub fn goal_record_from_fhir(resource: &Value) -> Result<GoalRecord, MappingError> {
    let changes = goal_changes_from_fhir(resource)?;
    let progress = read::array(resource, "note")
        .iter()
        .enumerate()
        .map(|(i, note)| {
            let (on, _, note) = dated_note(note, &format!("Goal.note[{i}]"))?;
            Ok(ProgressEntry { on, note })
        })
        .collect::<Result<Vec<_>, MappingError>>()?;
    Ok(GoalRecord {
        id: read::resource_id(resource, "Goal")?,
        client_id: read::reference_id(
            resource.get("subject").unwrap_or(&Value::Null),
            "Goal.subject",
            "Patient",
        )?,
        changes,
        progress,
    })
}

/// A relapse-prevention plan as a clinic application writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelapsePlanRecord {
    pub relapse_plan: RelapsePreventionPlan,
    pub client_id: Id<Client>,
    /// Triggers, warning signs, coping skills, then contacts, positions in that order.
    pub items: Vec<RelapsePlanItem>,
}

pub fn relapse_plan_record_from_fhir(resource: &Value) -> Result<RelapsePlanRecord, MappingError> {
    read::expect_type(resource, "CarePlan")?;
    let id: Id<RelapsePreventionPlan> = read::resource_id(resource, "CarePlan")?;
    let part_of = read::array(resource, "partOf");
    let [plan] = part_of else {
        return Err(read::invalid(
            "CarePlan.partOf",
            "a relapse-prevention plan is part of exactly one treatment plan",
        ));
    };
    let plan_id = read::reference_id(plan, "CarePlan.partOf[0]", "CarePlan")?;
    let created_on = read::date(
        "CarePlan.period.start",
        resource
            .pointer("/period/start")
            .and_then(Value::as_str)
            .ok_or_else(|| read::missing("CarePlan.period.start"))?,
    )?;
    let client_id = read::reference_id(
        resource.get("subject").unwrap_or(&Value::Null),
        "CarePlan.subject",
        "Patient",
    )?;
    let mut items = Vec::new();
    let mut push = |kind, text: Option<NonEmptyText>, contact| {
        items.push(RelapsePlanItem {
            id: Id::generate(),
            relapse_plan_id: id,
            kind,
            position: u16::try_from(items.len()).unwrap_or(u16::MAX),
            text,
            support_contact_id: contact,
        });
    };
    for (url, kind) in [
        ("iop-relapse-trigger", RelapseItemKind::Trigger),
        ("iop-relapse-warning-sign", RelapseItemKind::WarningSign),
    ] {
        let url = codes::extension(url);
        for (i, ext) in read::array(resource, "extension").iter().enumerate() {
            if read::opt_str(ext, "url") != Some(url.as_str()) {
                continue;
            }
            let path = format!("CarePlan.extension[{i}].valueString");
            let text = read::domain(
                &path,
                NonEmptyText::parse(read::opt_str(ext, "valueString").unwrap_or_default()),
            )?;
            push(kind, Some(text), None);
        }
    }
    let modality_system = codes::code_system("iop-modality");
    let mut contacts = Vec::new();
    for (i, activity) in read::array(resource, "activity").iter().enumerate() {
        let path = format!("CarePlan.activity[{i}].detail");
        let detail = activity.get("detail").unwrap_or(&Value::Null);
        match detail
            .get("code")
            .and_then(|c| read::code_in(c, &modality_system))
        {
            Some("coping-skill") => {
                let text = read::domain(
                    &format!("{path}.description"),
                    NonEmptyText::parse(read::opt_str(detail, "description").unwrap_or_default()),
                )?;
                push(RelapseItemKind::CopingSkill, Some(text), None);
            }
            Some("call-support-contact") => {
                let performer = read::array(detail, "performer");
                let [contact] = performer else {
                    return Err(read::invalid(
                        format!("{path}.performer"),
                        "a support contact to call names one RelatedPerson",
                    ));
                };
                contacts.push(read::reference_id(
                    contact,
                    &format!("{path}.performer[0]"),
                    "RelatedPerson",
                )?);
            }
            _ => {
                return Err(read::invalid(
                    format!("{path}.code"),
                    "a relapse-prevention plan's activities are coping-skill or call-support-contact",
                ));
            }
        }
    }
    for contact in contacts {
        push(RelapseItemKind::SupportContact, None, Some(contact));
    }
    Ok(RelapsePlanRecord {
        relapse_plan: RelapsePreventionPlan {
            id,
            plan_id,
            created_on,
        },
        client_id,
        items,
    })
}

/// `CarePlan/[id]/$add-review`'s input: a weekly review of the plan, what it said of each goal,
/// and when the next review is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewRequest {
    pub review: ReviewEntry,
    /// None: the review's day plus the plan's interval.
    pub next_review_on: Option<NaiveDate>,
    pub progress: Vec<GoalProgress>,
}

/// What a review said of one goal, and the goal's achievement after it (None: unchanged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoalProgress {
    pub goal_id: Id<Goal>,
    pub note: NonEmptyText,
    pub achievement: Option<GoalAchievement>,
}

/// Reads `$add-review`'s Parameters: `date` (default `today`), `reviewer`, `summary`,
/// `nextReview`, and per goal a `progress` with parts `goal`, `note`, `achievement`.
pub fn review_from_parameters(
    parameters: &Value,
    today: NaiveDate,
) -> Result<ReviewRequest, MappingError> {
    read::expect_type(parameters, "Parameters")?;
    let params = read::array(parameters, "parameter");
    fn named<'a>(params: &'a [Value], name: &'a str) -> impl Iterator<Item = &'a Value> {
        params
            .iter()
            .filter(move |p| read::opt_str(p, "name") == Some(name))
    }
    let single = |name: &'static str| -> Result<Option<&Value>, MappingError> {
        let mut found = named(params, name);
        match (found.next(), found.next()) {
            (one, None) => Ok(one),
            _ => Err(read::invalid(
                format!("Parameters.parameter({name})"),
                "given more than once",
            )),
        }
    };
    let date_of = |name: &'static str| -> Result<Option<NaiveDate>, MappingError> {
        single(name)?
            .map(|p| {
                read::date(
                    &format!("Parameters.parameter({name}).valueDate"),
                    read::opt_str(p, "valueDate").unwrap_or_default(),
                )
            })
            .transpose()
    };
    let on = date_of("date")?.unwrap_or(today);
    let reviewer =
        single("reviewer")?.ok_or_else(|| read::missing("Parameters.parameter(reviewer)"))?;
    let reviewer_id = read::reference_id(
        reviewer.get("valueReference").unwrap_or(&Value::Null),
        "Parameters.parameter(reviewer).valueReference",
        "Practitioner",
    )?;
    let summary =
        single("summary")?.ok_or_else(|| read::missing("Parameters.parameter(summary)"))?;
    let summary = read::domain(
        "Parameters.parameter(summary).valueString",
        NonEmptyText::parse(read::opt_str(summary, "valueString").unwrap_or_default()),
    )?;
    let next_review_on = date_of("nextReview")?;
    if next_review_on.is_some_and(|next| next <= on) {
        return Err(read::invalid(
            "Parameters.parameter(nextReview)",
            "the next review comes after this one",
        ));
    }
    let mut progress: Vec<GoalProgress> = Vec::new();
    for (i, part) in named(params, "progress").enumerate() {
        let path = format!("Parameters.parameter(progress)[{i}]");
        let parts = read::array(part, "part");
        let part_named = |name: &str| {
            parts
                .iter()
                .find(|p| read::opt_str(p, "name") == Some(name))
        };
        let goal = part_named("goal").ok_or_else(|| read::missing(format!("{path}.part(goal)")))?;
        let goal_id = read::reference_id(
            goal.get("valueReference").unwrap_or(&Value::Null),
            &format!("{path}.part(goal).valueReference"),
            "Goal",
        )?;
        if progress.iter().any(|p| p.goal_id == goal_id) {
            return Err(read::invalid(
                format!("{path}.part(goal)"),
                "one progress note per goal in a review",
            ));
        }
        let note = read::domain(
            &format!("{path}.part(note).valueString"),
            NonEmptyText::parse(
                part_named("note")
                    .and_then(|n| read::opt_str(n, "valueString"))
                    .unwrap_or_default(),
            ),
        )?;
        let achievement = part_named("achievement")
            .map(|a| {
                let code = read::opt_str(a, "valueCode").unwrap_or_default();
                super::plan::achievement_of_code(code).ok_or_else(|| MappingError::UnknownCode {
                    path: format!("{path}.part(achievement).valueCode"),
                    code: code.into(),
                    expected:
                        "in-progress, improving, worsening, no-change, achieved, not-achieved"
                            .into(),
                })
            })
            .transpose()?;
        progress.push(GoalProgress {
            goal_id,
            note,
            achievement,
        });
    }
    Ok(ReviewRequest {
        review: ReviewEntry {
            on,
            reviewer_id,
            summary,
        },
        next_review_on,
        progress,
    })
}
