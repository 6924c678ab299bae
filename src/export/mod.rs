//! `iop-gateway export`: the clinic database as FHIR NDJSON, one file per resource type.
//!
//! An edge: it pages through the store (keyset pages of `PAGE` rows, plus one query per page for
//! what those rows need), hands each record to the mapping, and writes one line per resource.
//! Memory holds one page, never the data set. Each file is written to a temporary name and renamed
//! when complete, so an interrupted export leaves no half-written file behind.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde_json::Value;

use crate::domain::*;
use crate::mapping::{self, MappingConfig, Sensitivity};
use crate::store::{Record, Store, StoreError};

const PAGE: u32 = 500;

/// The resource types `export` writes, in the order it writes them.
pub const RESOURCE_TYPES: &[&str] = &[
    "Organization",
    "Practitioner",
    "HealthcareService",
    "Group",
    "Patient",
    "RelatedPerson",
    "EpisodeOfCare",
    "CarePlan",
    "Goal",
    "Encounter",
    "Consent",
    "ServiceRequest",
    "Task",
];

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("unknown resource type `{0}`; export writes {types}", types = RESOURCE_TYPES.join(", "))]
    UnknownType(String),
    #[error(
        "the clinic database has no organization of kind `clinic`; seed or add the clinic first"
    )]
    NoClinic,
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct ExportOptions {
    pub out: PathBuf,
    pub types: Vec<String>,
    /// The day consents and contacts are judged active or not.
    pub as_of: NaiveDate,
    pub mapping: MappingConfig,
}

/// Checks resource type names; an empty list means all of them.
pub fn parse_types(list: &[String]) -> Result<Vec<String>, ExportError> {
    if list.is_empty() {
        return Ok(RESOURCE_TYPES.iter().map(|t| t.to_string()).collect());
    }
    list.iter()
        .map(|t| {
            RESOURCE_TYPES
                .iter()
                .find(|k| k.eq_ignore_ascii_case(t))
                .map(|k| k.to_string())
                .ok_or_else(|| ExportError::UnknownType(t.clone()))
        })
        .collect()
}

/// An NDJSON file being written; renamed into place by `finish`.
struct NdjsonFile {
    path: PathBuf,
    partial: PathBuf,
    writer: std::io::BufWriter<std::fs::File>,
    count: u64,
}

impl NdjsonFile {
    fn create(dir: &Path, resource_type: &str) -> Result<Self, ExportError> {
        let path = dir.join(format!("{resource_type}.ndjson"));
        let partial = dir.join(format!(".{resource_type}.ndjson.partial"));
        let file = std::fs::File::create(&partial).map_err(|source| ExportError::Write {
            path: partial.clone(),
            source,
        })?;
        Ok(Self {
            path,
            partial,
            writer: std::io::BufWriter::new(file),
            count: 0,
        })
    }
    fn write(&mut self, resource: &Value) -> Result<(), ExportError> {
        let io = |source| ExportError::Write {
            path: self.partial.clone(),
            source,
        };
        serde_json::to_writer(&mut self.writer, resource).map_err(|e| io(e.into()))?;
        self.writer.write_all(b"\n").map_err(io)?;
        self.count += 1;
        Ok(())
    }
    fn finish(mut self) -> Result<u64, ExportError> {
        self.writer.flush().map_err(|source| ExportError::Write {
            path: self.partial.clone(),
            source,
        })?;
        std::fs::rename(&self.partial, &self.path).map_err(|source| ExportError::Write {
            path: self.path.clone(),
            source,
        })?;
        Ok(self.count)
    }
}

/// What every page needs: the clinic, the programs (a handful) and the mapping settings.
struct Context<'a> {
    store: &'a Store,
    cfg: &'a MappingConfig,
    as_of: NaiveDate,
    clinic_id: Id<Organization>,
    programs: HashMap<Id<Program>, Program>,
}

impl Context<'_> {
    /// The sensitivity of each client in `clients`, from their enrollments' programs.
    async fn sensitivities(
        &self,
        clients: impl IntoIterator<Item = Id<Client>>,
    ) -> Result<HashMap<Id<Client>, Sensitivity>, StoreError> {
        let clients: Vec<Id<Client>> = clients
            .into_iter()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let enrollments = self.store.children_of_many::<Enrollment>(&clients).await?;
        let mut out: HashMap<_, _> = clients.iter().map(|c| (*c, Sensitivity::Normal)).collect();
        for e in enrollments {
            if self
                .programs
                .get(&e.record.program_id)
                .is_some_and(|p| p.part2)
            {
                out.insert(e.record.client_id, Sensitivity::Part2);
            }
        }
        Ok(out)
    }
}

/// Pages through all records of `R`, calling `each_page` with every page.
async fn for_each_page<R: Record, F>(store: &Store, mut each_page: F) -> Result<(), ExportError>
where
    F: AsyncFnMut(Vec<R>) -> Result<(), ExportError>,
{
    let mut after = None;
    loop {
        let page: Vec<R> = store
            .page::<R>(after, PAGE)
            .await?
            .into_iter()
            .map(|s| s.record)
            .collect();
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = Some(last.id());
        each_page(page).await?;
    }
}

/// Exports; returns (resource type, count) in the order written.
pub async fn export(
    store: &Store,
    options: &ExportOptions,
) -> Result<Vec<(String, u64)>, ExportError> {
    std::fs::create_dir_all(&options.out).map_err(|source| ExportError::Write {
        path: options.out.clone(),
        source,
    })?;
    let mut clinic_id = None;
    for_each_page::<Organization, _>(store, async |page| {
        clinic_id = clinic_id.or(page
            .iter()
            .find(|o| o.kind == OrganizationKind::Clinic)
            .map(|o| o.id));
        Ok(())
    })
    .await?;
    let mut programs = HashMap::new();
    for_each_page::<Program, _>(store, async |page| {
        programs.extend(page.into_iter().map(|p| (p.id, p)));
        Ok(())
    })
    .await?;
    let cx = Context {
        store,
        cfg: &options.mapping,
        as_of: options.as_of,
        clinic_id: clinic_id.ok_or(ExportError::NoClinic)?,
        programs,
    };
    let mut counts = Vec::new();
    for resource_type in &options.types {
        let mut file = NdjsonFile::create(&options.out, resource_type)?;
        write_type(&cx, resource_type, &mut file).await?;
        let count = file.finish()?;
        tracing::info!(resource_type = resource_type.as_str(), count, "exported");
        counts.push((resource_type.clone(), count));
    }
    Ok(counts)
}

async fn write_type(
    cx: &Context<'_>,
    resource_type: &str,
    out: &mut NdjsonFile,
) -> Result<(), ExportError> {
    let (store, cfg) = (cx.store, cx.cfg);
    match resource_type {
        "Organization" => {
            for_each_page::<Organization, _>(store, async |page| {
                page.iter()
                    .try_for_each(|o| out.write(&mapping::organization_to_fhir(cfg, o)))
            })
            .await
        }
        "HealthcareService" => {
            for_each_page::<Program, _>(store, async |page| {
                page.iter()
                    .try_for_each(|p| out.write(&mapping::program_to_fhir(cfg, p, cx.clinic_id)))
            })
            .await
        }
        "Group" => {
            for_each_page::<TherapyGroup, _>(store, async |page| {
                page.iter()
                    .try_for_each(|g| out.write(&mapping::therapy_group_to_fhir(cfg, g)))
            })
            .await
        }
        "Practitioner" => {
            for_each_page::<Staff, _>(store, async |page| {
                page.iter()
                    .try_for_each(|s| out.write(&mapping::practitioner_to_fhir(cfg, s)))
            })
            .await
        }
        "Patient" => {
            for_each_page::<Client, _>(store, async |page| {
                let sensitivity = cx.sensitivities(page.iter().map(|c| c.id)).await?;
                page.iter().try_for_each(|c| {
                    out.write(&mapping::client_to_fhir(cfg, c, sensitivity[&c.id]))
                })
            })
            .await
        }
        "RelatedPerson" => {
            for_each_page::<SupportContact, _>(store, async |page| {
                let sensitivity = cx.sensitivities(page.iter().map(|c| c.client_id)).await?;
                page.iter().try_for_each(|c| {
                    out.write(&mapping::support_contact_to_fhir(
                        cfg,
                        c,
                        sensitivity[&c.client_id],
                        cx.as_of,
                    ))
                })
            })
            .await
        }
        "EpisodeOfCare" => {
            for_each_page::<Enrollment, _>(store, async |page| {
                for e in &page {
                    let program = &cx.programs[&e.program_id];
                    let view = mapping::EpisodeView {
                        enrollment: e,
                        program,
                        clinic_id: cx.clinic_id,
                        sensitivity: Sensitivity::of_programs([program]),
                    };
                    out.write(&mapping::episode_to_fhir(cfg, &view))?;
                }
                Ok(())
            })
            .await
        }
        "CarePlan" => {
            for_each_page::<TreatmentPlan, _>(store, async |page| {
                write_care_plans(cx, &page, out).await
            })
            .await
        }
        "Goal" => {
            for_each_page::<Goal, _>(store, async |page| write_goals(cx, &page, out).await).await
        }
        "Encounter" => {
            for_each_page::<Session, _>(store, async |page| write_encounters(cx, &page, out).await)
                .await
        }
        "Consent" => {
            for_each_page::<Consent, _>(store, async |page| {
                let sensitivity = cx.sensitivities(page.iter().map(|c| c.client_id)).await?;
                page.iter().try_for_each(|c| {
                    out.write(&mapping::consent_to_fhir(
                        cfg,
                        c,
                        cx.clinic_id,
                        sensitivity[&c.client_id],
                        cx.as_of,
                    ))
                })
            })
            .await
        }
        "ServiceRequest" | "Task" => {
            let task = resource_type == "Task";
            for_each_page::<Referral, _>(store, async |page| {
                let sensitivity = cx.sensitivities(page.iter().map(|r| r.client_id)).await?;
                page.iter().try_for_each(|r| {
                    let view = mapping::ReferralView {
                        referral: r,
                        sensitivity: sensitivity[&r.client_id],
                    };
                    out.write(&if task {
                        mapping::task_to_fhir(cfg, &view)
                    } else {
                        mapping::service_request_to_fhir(cfg, &view)
                    })
                })
            })
            .await
        }
        other => Err(ExportError::UnknownType(other.to_owned())),
    }
}

fn group<K: std::hash::Hash + Eq, V>(
    items: impl IntoIterator<Item = V>,
    key: impl Fn(&V) -> K,
) -> HashMap<K, Vec<V>> {
    let mut map: HashMap<K, Vec<V>> = HashMap::new();
    for item in items {
        map.entry(key(&item)).or_default().push(item);
    }
    map
}

fn records<R>(stored: Vec<crate::store::Stored<R>>) -> Vec<R> {
    stored.into_iter().map(|s| s.record).collect()
}

async fn enrollments_of(
    cx: &Context<'_>,
    ids: impl IntoIterator<Item = Id<Enrollment>>,
) -> Result<HashMap<Id<Enrollment>, Enrollment>, StoreError> {
    let ids: Vec<_> = ids
        .into_iter()
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    Ok(records(cx.store.get_many::<Enrollment>(&ids).await?)
        .into_iter()
        .map(|e| (e.id, e))
        .collect())
}

async fn write_care_plans(
    cx: &Context<'_>,
    plans: &[TreatmentPlan],
    out: &mut NdjsonFile,
) -> Result<(), ExportError> {
    let ids: Vec<_> = plans.iter().map(|p| p.id).collect();
    let enrollments = enrollments_of(cx, plans.iter().map(|p| p.enrollment_id)).await?;
    let goals = group(
        records(cx.store.children_of_many::<Goal>(&ids).await?),
        |g| g.plan_id,
    );
    let interventions = group(
        records(cx.store.children_of_many::<Intervention>(&ids).await?),
        |i| i.plan_id,
    );
    let reviews = group(
        records(cx.store.children_of_many::<PlanReview>(&ids).await?),
        |r| r.plan_id,
    );
    let relapse_plans = records(
        cx.store
            .children_of_many::<RelapsePreventionPlan>(&ids)
            .await?,
    );
    let relapse_ids: Vec<_> = relapse_plans.iter().map(|r| r.id).collect();
    let items = group(
        records(
            cx.store
                .children_of_many::<RelapsePlanItem>(&relapse_ids)
                .await?,
        ),
        |i| i.relapse_plan_id,
    );
    let contact_ids: Vec<_> = items
        .values()
        .flatten()
        .filter_map(|i| i.support_contact_id)
        .collect();
    let contacts: Vec<_> = records(cx.store.get_many::<SupportContact>(&contact_ids).await?)
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect();
    let relapse_by_plan = group(relapse_plans, |r| r.plan_id);
    for plan in plans {
        let enrollment = &enrollments[&plan.enrollment_id];
        let sensitivity = Sensitivity::of_programs([&cx.programs[&enrollment.program_id]]);
        let view = mapping::PlanView {
            plan,
            client_id: enrollment.client_id,
            goals: goals.get(&plan.id).map(Vec::as_slice).unwrap_or(&[]),
            interventions: interventions
                .get(&plan.id)
                .map(Vec::as_slice)
                .unwrap_or(&[]),
            reviews: reviews.get(&plan.id).map(Vec::as_slice).unwrap_or(&[]),
            sensitivity,
        };
        out.write(&mapping::plan_to_fhir(cx.cfg, &view))?;
        for relapse_plan in relapse_by_plan
            .get(&plan.id)
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            let view = mapping::RelapsePlanView {
                relapse_plan,
                plan,
                client_id: enrollment.client_id,
                items: items
                    .get(&relapse_plan.id)
                    .map(Vec::as_slice)
                    .unwrap_or(&[]),
                contact_names: &contacts,
                sensitivity,
            };
            out.write(&mapping::relapse_plan_to_fhir(cx.cfg, &view))?;
        }
    }
    Ok(())
}

async fn write_goals(
    cx: &Context<'_>,
    goals: &[Goal],
    out: &mut NdjsonFile,
) -> Result<(), ExportError> {
    let plan_ids: Vec<_> = goals
        .iter()
        .map(|g| g.plan_id)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let plans: HashMap<_, _> = records(cx.store.get_many::<TreatmentPlan>(&plan_ids).await?)
        .into_iter()
        .map(|p| (p.id, p))
        .collect();
    let enrollments = enrollments_of(cx, plans.values().map(|p| p.enrollment_id)).await?;
    let goal_ids: Vec<_> = goals.iter().map(|g| g.id).collect();
    let notes = group(
        records(
            cx.store
                .children_of_many::<GoalProgressNote>(&goal_ids)
                .await?,
        ),
        |n| n.goal_id,
    );
    let reviews: HashMap<_, _> = records(cx.store.children_of_many::<PlanReview>(&plan_ids).await?)
        .into_iter()
        .map(|r| (r.id, r))
        .collect();
    for goal in goals {
        let enrollment = &enrollments[&plans[&goal.plan_id].enrollment_id];
        let progress: Vec<_> = notes
            .get(&goal.id)
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .filter_map(|n| reviews.get(&n.review_id).map(|r| (n, r)))
            .collect();
        let sensitivity = Sensitivity::of_programs([&cx.programs[&enrollment.program_id]]);
        out.write(&mapping::goal_to_fhir(
            cx.cfg,
            goal,
            enrollment.client_id,
            &progress,
            sensitivity,
        ))?;
    }
    Ok(())
}

async fn write_encounters(
    cx: &Context<'_>,
    sessions: &[Session],
    out: &mut NdjsonFile,
) -> Result<(), ExportError> {
    let enrollments = enrollments_of(cx, sessions.iter().map(|s| s.enrollment_id)).await?;
    let ids: Vec<_> = sessions.iter().map(|s| s.id).collect();
    let participants = group(
        records(
            cx.store
                .children_of_many::<SessionParticipant>(&ids)
                .await?,
        ),
        |p| p.session_id,
    );
    for session in sessions {
        let enrollment = &enrollments[&session.enrollment_id];
        let contacts: Vec<_> = participants
            .get(&session.id)
            .map(|ps| ps.iter().map(|p| p.support_contact_id).collect())
            .unwrap_or_default();
        let view = mapping::SessionView {
            session,
            client_id: enrollment.client_id,
            participants: &contacts,
            sensitivity: Sensitivity::of_programs([&cx.programs[&enrollment.program_id]]),
        };
        out.write(&mapping::session_to_fhir(cx.cfg, &view))?;
    }
    Ok(())
}
