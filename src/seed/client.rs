//! One synthetic client and everything the clinic records about them, from a stream of the
//! seeded generator that belongs to that client alone (so the result does not depend on order).

use chrono::{Datelike, Duration, NaiveDate, NaiveTime, Weekday};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::clinic::{Clinic, address, person_name, pick};
use super::ids::IdMaker;
use super::vocab;
use crate::domain::*;

/// Records of many clients, one vector per table, in the order they must be inserted.
#[derive(Default)]
pub struct Batch {
    pub clients: Vec<Client>,
    pub contacts: Vec<SupportContact>,
    pub referrals: Vec<Referral>,
    pub enrollments: Vec<Enrollment>,
    pub plans: Vec<TreatmentPlan>,
    pub goals: Vec<Goal>,
    pub interventions: Vec<Intervention>,
    pub reviews: Vec<PlanReview>,
    pub notes: Vec<GoalProgressNote>,
    pub relapse_plans: Vec<RelapsePreventionPlan>,
    pub relapse_items: Vec<RelapsePlanItem>,
    pub consents: Vec<Consent>,
    pub sessions: Vec<Session>,
    pub participants: Vec<SessionParticipant>,
}

impl Batch {
    pub fn rows(&self) -> usize {
        self.clients.len()
            + self.contacts.len()
            + self.referrals.len()
            + self.enrollments.len()
            + self.plans.len()
            + self.goals.len()
            + self.interventions.len()
            + self.reviews.len()
            + self.notes.len()
            + self.relapse_plans.len()
            + self.relapse_items.len()
            + self.consents.len()
            + self.sessions.len()
            + self.participants.len()
    }
}

fn text(s: &str) -> NonEmptyText {
    NonEmptyText::parse(s).expect("generated text is not empty")
}

fn days(n: i64) -> Duration {
    Duration::days(n)
}

/// Program days of the week for a program that meets `n` days.
fn program_days(n: u8) -> &'static [Weekday] {
    match n {
        3 => &[Weekday::Mon, Weekday::Wed, Weekday::Fri],
        4 => &[Weekday::Mon, Weekday::Tue, Weekday::Thu, Weekday::Fri],
        _ => &[
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
        ],
    }
}

struct Ctx<'a> {
    rng: ChaCha8Rng,
    ids: IdMaker,
    out: &'a mut Batch,
}

impl Ctx<'_> {
    fn id<T>(&mut self) -> Id<T> {
        self.ids.next(&mut self.rng)
    }
    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }
    fn between(&mut self, low: i64, high: i64) -> i64 {
        self.rng.random_range(low..=high)
    }
}

/// Generates client number `index` into `out`.
pub fn generate(
    clinic: &Clinic,
    seed_rng: &ChaCha8Rng,
    index: u32,
    as_of: NaiveDate,
    out: &mut Batch,
) {
    let mut rng = seed_rng.clone();
    rng.set_stream(u64::from(index));
    let mut cx = Ctx {
        rng,
        ids: IdMaker::for_client(index),
        out,
    };
    let program_index = clinic.pick_program(&mut cx.rng);
    let program = &clinic.programs[program_index];
    let adolescent = program.population == ProgramPopulation::Adolescent;

    // --- the client
    let gender = match cx.between(0, 99) {
        0..=51 => Gender::Female,
        52..=97 => Gender::Male,
        98 => Gender::Other,
        _ => Gender::Unknown,
    };
    let age = if adolescent {
        cx.between(13, 17)
    } else {
        cx.between(18, 74)
    };
    let birth_date = as_of - days(age * 365 + cx.between(0, 364));
    let name = person_name(&mut cx.rng, gender);
    let family_name = name.family.clone();
    let language = {
        let mut roll = cx.between(0, 99) as u32;
        let mut chosen = "en";
        for (tag, share) in vocab::LANGUAGES {
            if roll < *share {
                chosen = tag;
                break;
            }
            roll -= share;
        }
        LanguageTag::parse(chosen).expect("vocabulary language")
    };
    let client = Client {
        id: cx.id(),
        mrn: Mrn::parse(&format!("IOP{:07}", index + 1)).expect("generated MRN"),
        name,
        birth_date,
        gender,
        phone: Some(Phone::parse(&format!("217-555-{:04}", cx.between(100, 9999))).expect("phone")),
        email: cx
            .chance(0.7)
            .then(|| Email::parse(&format!("client{}@mail.example", index + 1)).expect("email")),
        address: Some(address(&mut cx.rng)),
        language: Some(language),
    };
    let client_id = client.id;
    cx.out.clients.push(client);

    // --- the enrollment's dates and outcome
    let admitted_on = as_of - days(cx.between(0, 150));
    let planned_weeks = cx.between(4, 12);
    let planned_end = admitted_on + days(planned_weeks * 7);
    let state = if planned_end <= as_of {
        let disposition = match cx.between(0, 99) {
            0..=54 => DischargeDisposition::StepDownOutpatient,
            55..=74 => DischargeDisposition::Completed,
            75..=86 => DischargeDisposition::StepUpInpatient,
            _ => DischargeDisposition::LeftAgainstAdvice,
        };
        let on = match disposition {
            DischargeDisposition::LeftAgainstAdvice | DischargeDisposition::StepUpInpatient => {
                admitted_on + days(cx.between(7, planned_weeks * 7 - 1))
            }
            _ => planned_end,
        };
        EnrollmentState::Discharged { on, disposition }
    } else if cx.chance(0.03) {
        EnrollmentState::OnHold
    } else {
        EnrollmentState::Active
    };
    let last_day = state.discharged_on().unwrap_or(planned_end);

    // --- support contacts (family of origin for adolescents, mostly chosen family for adults)
    let contact_count = match cx.between(0, 99) {
        0..=24 => 1,
        25..=74 => 2,
        _ => 3,
    };
    let mut contacts = Vec::new();
    for n in 0..contact_count {
        let relationship = if adolescent {
            pick(
                &mut cx.rng,
                &[
                    Relationship::Mother,
                    Relationship::Father,
                    Relationship::Parent,
                    Relationship::Grandparent,
                    Relationship::Sibling,
                ],
            )
        } else {
            pick(
                &mut cx.rng,
                &[
                    Relationship::Spouse,
                    Relationship::DomesticPartner,
                    Relationship::SignificantOther,
                    Relationship::Mother,
                    Relationship::Father,
                    Relationship::Sibling,
                    Relationship::Friend,
                    Relationship::Friend,
                    Relationship::Child,
                    Relationship::InLaw,
                    Relationship::Other,
                ],
            )
        };
        let relationship_text = (relationship == Relationship::Other)
            .then(|| text(pick(&mut cx.rng, vocab::OTHER_RELATIONSHIPS)));
        let contact_gender = match relationship {
            Relationship::Mother => Gender::Female,
            Relationship::Father => Gender::Male,
            _ if cx.chance(0.5) => Gender::Female,
            _ => Gender::Male,
        };
        let mut contact_name = person_name(&mut cx.rng, contact_gender);
        if relationship.family_kind() == FamilyKind::Origin
            || (relationship == Relationship::Spouse && cx.chance(0.6))
        {
            contact_name.family = family_name.clone();
        }
        let family_therapy = cx.chance(0.65);
        let roles = SupportRoles::new(family_therapy, n == 0, !family_therapy || cx.chance(0.7))
            .expect("a role");
        let contact = SupportContact {
            id: cx.id(),
            client_id,
            name: contact_name,
            relationship,
            relationship_text,
            roles,
            phone: Some(
                Phone::parse(&format!("217-555-{:04}", cx.between(100, 9999))).expect("phone"),
            ),
            email: None,
            active: DateRange::open(admitted_on - days(cx.between(0, 30))),
        };
        contacts.push(contact);
    }

    // --- consents
    let signed_on = admitted_on;
    let mut consents = Vec::new();
    for contact in contacts
        .iter()
        .filter(|c| c.roles.family_therapy_participant())
    {
        if !cx.chance(0.9) {
            continue;
        }
        let revoked_on = cx
            .chance(0.1)
            .then(|| signed_on + days(cx.between(7, 40)))
            .filter(|d| *d <= as_of);
        consents.push(Consent {
            id: cx.id(),
            client_id,
            kind: ConsentKind::FamilyParticipation,
            scope: InformationScope::categories(vec![
                InformationCategory::TreatmentPlan,
                InformationCategory::Attendance,
            ])
            .expect("categories"),
            recipient: ConsentRecipient::SupportContact(contact.id),
            purpose: ConsentPurpose::FamilyParticipation,
            valid: DateRange::new(signed_on, Some(signed_on + days(180))).expect("period"),
            signed_on,
            revoked_on,
        });
    }
    if cx.chance(0.85) {
        // Release to a partner EHR for care coordination; Part 2 records need their own consent.
        let expired = cx.chance(0.06);
        let signed = if expired {
            signed_on - days(cx.between(370, 500))
        } else {
            signed_on
        };
        consents.push(Consent {
            id: cx.id(),
            client_id,
            kind: ConsentKind::ReleaseOfInformation,
            scope: if program.part2 {
                InformationScope::AllExceptSubstanceUse
            } else {
                InformationScope::All
            },
            recipient: ConsentRecipient::Organization(pick(&mut cx.rng, &clinic.partner_ehrs)),
            purpose: ConsentPurpose::CareCoordination,
            valid: DateRange::new(signed, Some(signed + days(365))).expect("period"),
            signed_on: signed,
            revoked_on: None,
        });
    }
    if cx.chance(0.05) {
        consents.push(Consent {
            id: cx.id(),
            client_id,
            kind: ConsentKind::ReleaseOfInformation,
            scope: InformationScope::categories(vec![
                InformationCategory::Diagnoses,
                InformationCategory::Medications,
                InformationCategory::DischargeSummary,
            ])
            .expect("categories"),
            recipient: ConsentRecipient::Clinician(pick(&mut cx.rng, &clinic.outside_clinicians)),
            purpose: ConsentPurpose::Treatment,
            valid: DateRange::new(signed_on, Some(signed_on + days(365))).expect("period"),
            signed_on,
            revoked_on: None,
        });
    }
    if program.part2 && cx.chance(0.7) {
        let revoked_on = cx
            .chance(0.1)
            .then(|| signed_on + days(cx.between(3, 60)))
            .filter(|d| *d <= as_of);
        let scope = if cx.chance(0.5) {
            InformationScope::All
        } else {
            InformationScope::categories(vec![
                InformationCategory::SubstanceUse,
                InformationCategory::TreatmentPlan,
                InformationCategory::Attendance,
            ])
            .expect("categories")
        };
        consents.push(Consent {
            id: cx.id(),
            client_id,
            kind: ConsentKind::Part2Disclosure,
            scope,
            recipient: ConsentRecipient::Organization(pick(&mut cx.rng, &clinic.partner_ehrs)),
            purpose: ConsentPurpose::Treatment,
            valid: DateRange::new(signed_on, Some(signed_on + days(365))).expect("period"),
            signed_on,
            revoked_on,
        });
    }

    // --- referrals: most clients step down from an inpatient unit
    let reasons = match (adolescent, program.focus) {
        (true, _) => vocab::REFERRAL_REASONS_ADOLESCENT,
        (false, ProgramFocus::SubstanceUse) => vocab::REFERRAL_REASONS_SUD,
        _ => vocab::REFERRAL_REASONS_MH,
    };
    let hospital = pick(&mut cx.rng, &clinic.hospitals);
    let discharged = matches!(state, EnrollmentState::Discharged { .. });
    let mut inbound_id = None;
    if cx.chance(0.75) {
        let referred_on = admitted_on - days(cx.between(1, 5));
        let referral = Referral {
            id: cx.id(),
            client_id,
            direction: ReferralDirection::Inbound,
            kind: ReferralKind::StepDown,
            status: if discharged {
                ReferralStatus::Completed
            } else {
                ReferralStatus::Accepted
            },
            reason: text(pick(&mut cx.rng, reasons)),
            referred_on,
            decided_on: Some(referred_on + days(1)),
            referring_org_id: hospital,
            receiving_org_id: clinic.clinic_id,
            program_id: Some(program.id),
            status_reason: None,
            transition_summary: Vec::new(),
        };
        inbound_id = Some(referral.id);
        cx.out.referrals.push(referral);
    }
    if cx.chance(0.04) {
        // An earlier referral the clinic declined (e.g. needed a higher level of care then).
        let referred_on = admitted_on - days(cx.between(30, 120));
        let referral = Referral {
            id: cx.id(),
            client_id,
            direction: ReferralDirection::Inbound,
            kind: ReferralKind::StepDown,
            status: ReferralStatus::Declined,
            reason: text(pick(&mut cx.rng, reasons)),
            referred_on,
            decided_on: Some(referred_on + days(2)),
            referring_org_id: pick(&mut cx.rng, &clinic.hospitals),
            receiving_org_id: clinic.clinic_id,
            program_id: Some(program.id),
            status_reason: Some(text(
                "Needs a more intensive level of care than the program offers at this time",
            )),
            transition_summary: Vec::new(),
        };
        cx.out.referrals.push(referral);
    }
    if let EnrollmentState::Discharged { on, disposition } = state {
        let outbound = match disposition {
            DischargeDisposition::StepDownOutpatient => Some((
                ReferralKind::StepDown,
                pick(&mut cx.rng, &clinic.outpatient_providers),
                "Step-down to outpatient therapy and medication management",
            )),
            DischargeDisposition::StepUpInpatient => Some((
                ReferralKind::StepUp,
                pick(&mut cx.rng, &clinic.hospitals),
                "Step-up: symptoms not manageable at IOP level of care",
            )),
            _ => None,
        };
        if let Some((kind, receiver, reason)) = outbound {
            let referred_on = on - days(cx.between(0, 3)).min(on - admitted_on);
            let status = if cx.chance(0.9) {
                ReferralStatus::Completed
            } else {
                ReferralStatus::Requested
            };
            let referral = Referral {
                id: cx.id(),
                client_id,
                direction: ReferralDirection::Outbound,
                kind,
                status,
                reason: text(reason),
                referred_on,
                decided_on: (status != ReferralStatus::Requested).then(|| on.max(referred_on)),
                referring_org_id: clinic.clinic_id,
                receiving_org_id: receiver,
                program_id: None,
                status_reason: (status == ReferralStatus::Declined)
                    .then(|| text("The receiving provider had no capacity")),
                transition_summary: Vec::new(),
            };
            cx.out.referrals.push(referral);
        }
    }

    // --- the enrollment
    let primary_clinician_id = pick(&mut cx.rng, &clinic.therapists);
    let enrollment = Enrollment {
        id: cx.id(),
        client_id,
        program_id: program.id,
        referral_id: inbound_id,
        referral_source_id: inbound_id.map(|_| hospital),
        admitted_on,
        state,
        level_of_care: LevelOfCare::IntensiveOutpatient,
        primary_clinician_id,
    };
    let enrollment_id = enrollment.id;
    cx.out.enrollments.push(enrollment);

    // --- treatment plan, goals, interventions
    let plan_start = admitted_on + days(2).min(last_day - admitted_on);
    let plan = TreatmentPlan {
        id: cx.id(),
        enrollment_id,
        status: if discharged {
            PlanStatus::Completed
        } else {
            PlanStatus::Active
        },
        period: DateRange::new(plan_start, Some(last_day)).expect("plan period"),
        author_id: primary_clinician_id,
        review_interval_days: 7,
        next_review_on: (!discharged).then(|| {
            let weeks_in = ((as_of - plan_start).num_days() / 7) + 1;
            plan_start + days(weeks_in * 7)
        }),
    };
    let plan_id = plan.id;
    cx.out.plans.push(plan);
    let goal_texts = match (adolescent, program.focus) {
        (true, _) => vocab::GOALS_ADOLESCENT,
        (false, ProgramFocus::SubstanceUse) => vocab::GOALS_SUD,
        _ => vocab::GOALS_MH,
    };
    let goal_count = cx.between(2, 3) as usize;
    let first_goal = cx.between(0, goal_texts.len() as i64 - 1) as usize;
    let mut goal_ids = Vec::new();
    for g in 0..goal_count {
        let achievement = if discharged {
            pick(
                &mut cx.rng,
                &[
                    GoalAchievement::Achieved,
                    GoalAchievement::Achieved,
                    GoalAchievement::NotAchieved,
                ],
            )
        } else {
            pick(
                &mut cx.rng,
                &[
                    GoalAchievement::InProgress,
                    GoalAchievement::Improving,
                    GoalAchievement::NoChange,
                    GoalAchievement::Worsening,
                ],
            )
        };
        let goal = Goal {
            id: cx.id(),
            plan_id,
            description: text(goal_texts[(first_goal + g) % goal_texts.len()]),
            target_on: Some(planned_end),
            status: if discharged {
                GoalStatus::Completed
            } else {
                GoalStatus::Active
            },
            achievement: Some(achievement),
        };
        goal_ids.push(goal.id);
        cx.out.goals.push(goal);
    }
    let intensity = program.intensity;
    let per_day = intensity.minutes_per_day();
    let prescriber = pick(&mut cx.rng, &clinic.prescribers);
    let case_manager = pick(&mut cx.rng, &clinic.case_managers);
    let has_family = consents
        .iter()
        .any(|c| c.kind == ConsentKind::FamilyParticipation);
    let mut planned = vec![
        (
            Modality::GroupTherapy,
            intensity.days_per_week() - 1,
            per_day,
            None,
        ),
        (
            Modality::IndividualTherapy,
            1,
            60,
            Some(primary_clinician_id),
        ),
        (Modality::MedicationManagement, 1, 30, Some(prescriber)),
        (Modality::CaseManagement, 1, 45, Some(case_manager)),
    ];
    if has_family {
        planned.push((Modality::FamilyTherapy, 1, 60, Some(primary_clinician_id)));
    }
    let extra = pick(
        &mut cx.rng,
        &[
            Modality::Cbt,
            Modality::Dbt,
            Modality::Emdr,
            Modality::Psychoeducation,
            Modality::Mindfulness,
        ],
    );
    planned.push((extra, 1, 60, Some(primary_clinician_id)));
    for (modality, per_week, minutes, staff_id) in planned {
        let intervention = Intervention {
            id: cx.id(),
            plan_id,
            modality,
            sessions_per_week: per_week,
            minutes_per_session: minutes,
            staff_id,
        };
        cx.out.interventions.push(intervention);
    }

    // --- weekly reviews with a progress note per goal
    let mut reviewed_on = plan_start + days(7);
    while reviewed_on <= last_day.min(as_of) {
        let review = PlanReview {
            id: cx.id(),
            plan_id,
            reviewed_on,
            reviewer_id: primary_clinician_id,
            summary: text(pick(&mut cx.rng, vocab::REVIEW_SUMMARIES)),
        };
        for &goal_id in &goal_ids {
            let note = GoalProgressNote {
                id: cx.id(),
                goal_id,
                review_id: review.id,
                note: text(pick(&mut cx.rng, vocab::PROGRESS_NOTES)),
            };
            cx.out.notes.push(note);
        }
        cx.out.reviews.push(review);
        reviewed_on += days(7);
    }

    // --- relapse-prevention plan
    let relapse = RelapsePreventionPlan {
        id: cx.id(),
        plan_id,
        created_on: plan_start,
    };
    let mut position = 0_u16;
    for (kind, list, count) in [
        (RelapseItemKind::Trigger, vocab::TRIGGERS, cx.between(2, 4)),
        (
            RelapseItemKind::WarningSign,
            vocab::WARNING_SIGNS,
            cx.between(2, 3),
        ),
        (
            RelapseItemKind::CopingSkill,
            vocab::COPING_SKILLS,
            cx.between(3, 4),
        ),
    ] {
        let start = cx.between(0, list.len() as i64 - 1) as usize;
        for k in 0..count as usize {
            position += 1;
            let item = RelapsePlanItem {
                id: cx.id(),
                relapse_plan_id: relapse.id,
                kind,
                position,
                text: Some(text(list[(start + k) % list.len()])),
                support_contact_id: None,
            };
            cx.out.relapse_items.push(item);
        }
    }
    for contact in contacts.iter().filter(|c| c.roles.support_person()) {
        position += 1;
        let item = RelapsePlanItem {
            id: cx.id(),
            relapse_plan_id: relapse.id,
            kind: RelapseItemKind::SupportContact,
            position,
            text: None,
            support_contact_id: Some(contact.id),
        };
        cx.out.relapse_items.push(item);
    }
    cx.out.relapse_plans.push(relapse);

    // --- sessions: one per program day, from admission to discharge (or two weeks ahead)
    let groups = &clinic.groups_by_program[program_index];
    let group_index = groups[cx.between(0, groups.len() as i64 - 1) as usize];
    let group = &clinic.groups[group_index];
    let schedule_until = state
        .discharged_on()
        .unwrap_or_else(|| planned_end.min(as_of + days(14)));
    let start_time = if adolescent {
        NaiveTime::from_hms_opt(21, 0, 0)
    } else {
        NaiveTime::from_hms_opt(15, 0, 0)
    }
    .expect("valid time");
    let weekdays = program_days(intensity.days_per_week());
    let week_start = admitted_on - days(i64::from(admitted_on.weekday().num_days_from_monday()));
    let mut week = 0_i64;
    'weeks: loop {
        for (slot, weekday) in weekdays.iter().enumerate() {
            let date = week_start + days(week * 7 + i64::from(weekday.num_days_from_monday()));
            if date > schedule_until {
                break 'weeks;
            }
            if date < admitted_on {
                continue;
            }
            let family_here: Vec<Id<SupportContact>> = consents
                .iter()
                .filter(|c| c.kind == ConsentKind::FamilyParticipation && c.in_force_on(date))
                .filter_map(|c| match c.recipient {
                    ConsentRecipient::SupportContact(id) => Some(id),
                    _ => None,
                })
                .collect();
            let (session_type, modality, minutes, clinician) = match (week, slot) {
                (0, 0) => (SessionType::Assessment, None, 90, primary_clinician_id),
                (_, 1) => (
                    SessionType::Individual,
                    Some(Modality::IndividualTherapy),
                    60,
                    primary_clinician_id,
                ),
                (w, 2) if w % 2 == 0 && !family_here.is_empty() => (
                    SessionType::Family,
                    Some(Modality::FamilyTherapy),
                    60,
                    primary_clinician_id,
                ),
                (w, 3) if w % 2 == 1 => (
                    SessionType::MedicationManagement,
                    Some(Modality::MedicationManagement),
                    30,
                    prescriber,
                ),
                (w, 4) if w % 3 == 0 => (
                    SessionType::CaseManagement,
                    Some(Modality::CaseManagement),
                    45,
                    case_manager,
                ),
                _ => (
                    SessionType::Group,
                    Some(group.modality),
                    per_day.into(),
                    group.facilitator_id,
                ),
            };
            let delivery = match program.delivery {
                ProgramDelivery::InPerson => SessionDelivery::InPerson,
                ProgramDelivery::Virtual => SessionDelivery::Virtual,
                ProgramDelivery::Hybrid if cx.chance(0.6) => SessionDelivery::InPerson,
                ProgramDelivery::Hybrid => SessionDelivery::Virtual,
            };
            let attendance = if date >= as_of {
                Attendance::Scheduled
            } else {
                match cx.between(0, 99) {
                    0..=83 => Attendance::Attended,
                    84..=88 => Attendance::Late,
                    89..=95 => Attendance::NoShow,
                    _ => Attendance::Cancelled,
                }
            };
            let session = Session {
                id: cx.id(),
                enrollment_id,
                session_type,
                modality,
                delivery,
                scheduled_start: Timestamp::from(date.and_time(start_time).and_utc()),
                length: SessionLength::minutes(minutes).expect("session length"),
                clinician_id: clinician,
                attendance,
                group_id: (session_type == SessionType::Group).then_some(group.id),
            };
            if session_type == SessionType::Family
                && matches!(attendance, Attendance::Attended | Attendance::Late)
            {
                let who = &family_here[..family_here.len().min(2)];
                for &support_contact_id in who {
                    let participant = SessionParticipant {
                        id: cx.id(),
                        session_id: session.id,
                        support_contact_id,
                    };
                    cx.out.participants.push(participant);
                }
            }
            cx.out.sessions.push(session);
        }
        week += 1;
    }

    cx.out.contacts.extend(contacts);
    cx.out.consents.extend(consents);
}
