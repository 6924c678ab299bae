//! Assembling FHIR resources from clinic records: loads what a set of records needs (their
//! enrollments, programs, goals, participants, ...) with one query per related table, and hands
//! each record with its "view" to the mapping. Shared by the export and the FHIR API, so both
//! emit the same resources.
//!
//! Between the store and the edges: knows the store's queries and the mapping's views, holds no
//! HTTP or file concerns.

// Keyed by the clinic's own ids, a page's worth: FxHash, not SipHash (no untrusted keys here).
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use chrono::NaiveDate;
use serde_json::Value;

use crate::disclose::Gate;
use crate::domain::*;
use crate::mapping::{self, MappingConfig, Sensitivity};
use crate::store::{Filter, Record, RowMeta, SqlValue, Store, StoreError, Stored};

/// The resource types assembled here, in dependency order (what `export` writes, in order).
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

/// Ids asked for at most per `Assembler::by_ids` query (the store binds one value per id).
const BY_IDS_BATCH: usize = 500;

/// Every clinic table whose rows become resources of `resource_type` (a CarePlan is a treatment
/// plan or a relapse prevention plan): where its history is.
pub fn tables(resource_type: &str) -> Option<&'static [&'static str]> {
    Some(match resource_type {
        "CarePlan" => &[TreatmentPlan::TABLE, RelapsePreventionPlan::TABLE],
        "Organization" => &[Organization::TABLE],
        "Practitioner" => &[Staff::TABLE],
        "HealthcareService" => &[Program::TABLE],
        "Group" => &[TherapyGroup::TABLE],
        "Patient" => &[Client::TABLE],
        "RelatedPerson" => &[SupportContact::TABLE],
        "EpisodeOfCare" => &[Enrollment::TABLE],
        "Goal" => &[Goal::TABLE],
        "Encounter" => &[Session::TABLE],
        "Consent" => &[Consent::TABLE],
        "ServiceRequest" | "Task" => &[Referral::TABLE],
        _ => return None,
    })
}

/// How the rows of a type are tied to the client they are about, for reading a set of
/// clients' rows of every type together (`bulk::run`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientLink {
    /// About no one client: the clinic's organizations, staff, programs and groups.
    None,
    /// In a column of the row: the client's own `id`, or `client_id`.
    Column(&'static str),
    /// Through the enrollment or the plan the row belongs to (`fhir_api::of_clients`).
    Through,
}

/// How the rows of `resource_type` are tied to their client; None for an unknown type.
pub fn client_link(resource_type: &str) -> Option<ClientLink> {
    Some(match resource_type {
        "Organization" | "Practitioner" | "HealthcareService" | "Group" => ClientLink::None,
        "Patient" => ClientLink::Column("id"),
        "RelatedPerson" | "EpisodeOfCare" | "Consent" | "ServiceRequest" | "Task" => {
            ClientLink::Column("client_id")
        }
        "CarePlan" | "Encounter" | "Goal" => ClientLink::Through,
        _ => return None,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    #[error("unknown resource type `{0}`; the gateway serves {types}", types = RESOURCE_TYPES.join(", "))]
    UnknownType(String),
    #[error(
        "the clinic database has no organization of kind `clinic`; seed or add the clinic first"
    )]
    NoClinic,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where a page starts: after a row id (None: at the beginning), or just before one; or, in
/// owner order (`Store::page_in_owner_order`: one client's records together), after a row's
/// owner and id (a page's `last_in_owner_order`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyset<'k> {
    After(Option<&'k str>),
    Before(&'k str),
    InOwnerOrderAfter(Option<&'k (String, String)>),
}

/// One page of resources: what the rows after the cursor became, and the cursor after them.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub resources: Vec<Value>,
    /// The ids of the first and last rows read (in id order); None when the page was empty.
    pub first_row: Option<String>,
    pub last_row: Option<String>,
    /// The owner (`Record::owner`) and id of the last row read, for paging in owner order.
    pub last_in_owner_order: Option<(String, String)>,
    /// Whether a full page of rows was read (so more may follow).
    pub full: bool,
}

/// Assembles resources for one request or export. The clinic and its programs are loaded on
/// first need (a Patient read needs neither), once per assembler.
pub struct Assembler<'a> {
    store: &'a Store,
    cfg: &'a MappingConfig,
    as_of: NaiveDate,
    clinic_id: tokio::sync::OnceCell<Id<Organization>>,
    programs: tokio::sync::OnceCell<HashMap<Id<Program>, Program>>,
    /// Who the records of the pages read so far are about (`Known`).
    known: std::sync::Mutex<Known>,
    /// For a snapshot (`for_snapshot`): whether each table has any identifiers from other
    /// systems, asked once. None: they are looked up on every page.
    identified_tables: Option<std::sync::Mutex<HashMap<&'static str, bool>>>,
}

/// Enrollments and clients' sensitivities already read by an assembler: an export's pages of
/// one client's sessions, plans and goals ask for the same ones again and again. Forgotten
/// past `KNOWN_MAX` entries, so that an assembler's memory stays flat whatever it reads. An
/// assembler lives for one request, export part, `export` command or sync pass, and what it
/// keeps is as fresh as that.
#[derive(Default)]
struct Known {
    enrollments: HashMap<Id<Enrollment>, Enrollment>,
    sensitivities: HashMap<Id<Client>, Sensitivity>,
}

/// Enrollments, and clients' sensitivities, an assembler keeps at most.
const KNOWN_MAX: usize = 4_000;

impl<'a> Assembler<'a> {
    pub fn new(store: &'a Store, cfg: &'a MappingConfig, as_of: NaiveDate) -> Self {
        Self {
            store,
            cfg,
            as_of,
            clinic_id: tokio::sync::OnceCell::new(),
            programs: tokio::sync::OnceCell::new(),
            known: std::sync::Mutex::new(Known::default()),
            identified_tables: None,
        }
    }

    /// An assembler for a snapshot: rows changed no later than a time before this assembler
    /// was made (a Bulk export's `transactionTime`). It asks once per table whether any record
    /// has identifiers from other systems, instead of looking them up on every page: most
    /// tables of most clinics have none, and that lookup finding nothing took a sixth of a
    /// Bulk export's time. Exact for a snapshot, because identifiers are written only in the
    /// transaction that writes their record, so a record that gets some later is past it.
    pub fn for_snapshot(store: &'a Store, cfg: &'a MappingConfig, as_of: NaiveDate) -> Self {
        Self {
            identified_tables: Some(std::sync::Mutex::new(HashMap::default())),
            ..Self::new(store, cfg, as_of)
        }
    }

    /// Whether records of `table` may have identifiers from other systems: always, unless this
    /// assembler reads a snapshot and the table has none.
    async fn may_have_identifiers(&self, table: &'static str) -> Result<bool, StoreError> {
        let Some(identified) = &self.identified_tables else {
            return Ok(true);
        };
        let asked = identified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(table)
            .copied();
        if let Some(answer) = asked {
            return Ok(answer);
        }
        let answer = self.store.has_identifiers(table).await?;
        identified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(table, answer);
        Ok(answer)
    }

    /// The clinic organization (the first of kind `clinic`).
    async fn clinic_id(&self) -> Result<Id<Organization>, AssembleError> {
        self.clinic_id
            .get_or_try_init(|| async {
                let mut after: Option<String> = None;
                loop {
                    let page = self
                        .store
                        .page_where::<Organization>(&[], after.as_deref(), 500)
                        .await?;
                    if let Some(clinic) = page
                        .iter()
                        .find(|o| o.record.kind == OrganizationKind::Clinic)
                    {
                        return Ok(clinic.record.id);
                    }
                    match page.last() {
                        Some(last) if page.len() == 500 => after = Some(last.record.id.to_string()),
                        _ => return Err(AssembleError::NoClinic),
                    }
                }
            })
            .await
            .copied()
    }

    /// Every program by id (a handful).
    async fn programs(&self) -> Result<&HashMap<Id<Program>, Program>, StoreError> {
        self.programs
            .get_or_try_init(|| async {
                let mut programs = HashMap::default();
                let mut after: Option<String> = None;
                loop {
                    let page = self
                        .store
                        .page_where::<Program>(&[], after.as_deref(), 500)
                        .await?;
                    let full = page.len() == 500;
                    after = page.last().map(|last| last.record.id.to_string());
                    programs.extend(page.into_iter().map(|p| (p.record.id, p.record)));
                    if !full {
                        return Ok(programs);
                    }
                }
            })
            .await
    }

    async fn program(&self, id: Id<Program>) -> Result<&Program, StoreError> {
        self.programs().await?.get(&id).ok_or(StoreError::NotFound {
            table: Program::TABLE,
            id: id.to_string(),
        })
    }

    /// Of `clients` (ids), those about whom `gate` may disclose some resource of
    /// `resource_type` (`Gate::withholds_all_about`): a Bulk export reads the plans, goals and
    /// sessions of only those clients, where it read every client's and withheld a third.
    pub async fn clients_disclosed(
        &self,
        gate: &mut Gate,
        resource_type: &str,
        clients: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let ids: Vec<Option<Id<Client>>> = clients.iter().map(|c| c.parse().ok()).collect();
        let sensitivity = self.sensitivities(ids.iter().flatten().copied()).await?;
        gate.load_clients(self.store, clients.to_vec()).await?;
        Ok(clients
            .iter()
            .zip(ids)
            // An id that is not one (a damaged row) is kept: its rows' own reading reports it.
            .filter(|(client, id)| {
                id.is_none_or(|id| {
                    !gate.withholds_all_about(resource_type, client, sensitivity[&id])
                })
            })
            .map(|(client, _)| client.clone())
            .collect())
    }

    /// The sensitivity of each client in `clients`: Part 2 if any enrollment is in a Part 2
    /// program (one query: only those enrollments are read). Every resource about a client
    /// takes the client's sensitivity — even a plan in a non-Part 2 program reveals, next to the
    /// client's labelled records, that they are in treatment.
    async fn sensitivities(
        &self,
        clients: impl IntoIterator<Item = Id<Client>>,
    ) -> Result<HashMap<Id<Client>, Sensitivity>, StoreError> {
        let mut out: HashMap<Id<Client>, Sensitivity> = HashMap::default();
        let mut unknown: Vec<Id<Client>> = Vec::new();
        {
            let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
            for client in clients {
                if out.contains_key(&client) {
                    continue;
                }
                match known.sensitivities.get(&client) {
                    Some(sensitivity) => {
                        out.insert(client, *sensitivity);
                    }
                    None => {
                        out.insert(client, Sensitivity::Normal);
                        unknown.push(client);
                    }
                }
            }
        }
        for chunk in unknown.chunks(500) {
            let part2_program = Filter::in_rows(
                "program_id",
                Program::TABLE,
                "id",
                Filter::equals("part2", SqlValue::bool(true)),
            );
            let of_clients = Filter::one_of(
                "client_id",
                chunk.iter().map(|c| SqlValue::id(*c)).collect(),
            );
            let enrollments = self
                .store
                .page_where::<Enrollment>(&[of_clients, part2_program], None, u32::MAX)
                .await?;
            for e in enrollments {
                out.insert(e.record.client_id, Sensitivity::Part2);
            }
        }
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if known.sensitivities.len() + unknown.len() > KNOWN_MAX {
            known.sensitivities.clear();
        }
        known
            .sensitivities
            .extend(unknown.iter().map(|c| (*c, out[c])));
        Ok(out)
    }

    /// The current version of each resource of `ids` that exists, by id: one page per batch of
    /// ids (never one query per id). Ids that are not UUIDs exist nowhere.
    pub async fn by_ids(
        &self,
        resource_type: &str,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, Value>, AssembleError> {
        let wanted: HashSet<String> = ids
            .iter()
            .filter_map(|id| uuid::Uuid::parse_str(id).ok())
            .map(|u| u.to_string())
            .collect();
        let wanted: Vec<String> = wanted.into_iter().collect();
        let mut found = std::collections::HashMap::new();
        for batch in wanted.chunks(BY_IDS_BATCH) {
            let mut rows: Vec<String> = batch.to_vec();
            if resource_type == "CarePlan" {
                // A relapse prevention plan is a CarePlan assembled with its treatment plan.
                let relapse_ids: Vec<_> = batch
                    .iter()
                    .filter_map(|id| id.parse().ok())
                    .map(Id::<RelapsePreventionPlan>::from_uuid)
                    .collect();
                let relapse = self.store.get_many(&relapse_ids).await?;
                rows.extend(relapse.into_iter().map(|r| r.record.plan_id.to_string()));
            }
            let by_id = [Filter::one_of(
                "id",
                rows.iter().map(SqlValue::text).collect(),
            )];
            let page = self
                .page(
                    resource_type,
                    &by_id,
                    Keyset::After(None),
                    rows.len() as u32,
                )
                .await?;
            for resource in page.resources {
                if let Some(id) = resource.get("id").and_then(Value::as_str)
                    && batch.iter().any(|w| w == id)
                {
                    found.insert(id.to_owned(), resource);
                }
            }
        }
        Ok(found)
    }

    /// Up to `limit` rows of the table behind `resource_type` that match `filters`, after the row
    /// id `after`, as FHIR resources (a treatment plan row gives its CarePlan and, if it has one,
    /// its relapse prevention CarePlan).
    pub async fn page(
        &self,
        resource_type: &str,
        filters: &[Filter],
        keyset: Keyset<'_>,
        limit: u32,
    ) -> Result<Page, AssembleError> {
        self.page_for(None, resource_type, filters, keyset, limit)
            .await
    }

    /// `page`, with the rows whose resources `gate` would withhold whole left out before they
    /// are assembled (`Gate::withholds_row`): for exports, where a third of the rows can be
    /// withheld. What is assembled still goes through the gate's `admit`; the cursor (`last_row`,
    /// `full`) is of every row read.
    pub async fn page_for(
        &self,
        mut gate: Option<&mut Gate>,
        resource_type: &str,
        filters: &[Filter],
        keyset: Keyset<'_>,
        limit: u32,
    ) -> Result<Page, AssembleError> {
        let mut out = Vec::new();
        let mut metas: HashMap<String, RowMeta> = HashMap::default();
        let (rows, first_row, last_row, last_in_owner_order) = match resource_type {
            "Organization" => {
                let rows = self
                    .rows::<Organization>(filters, keyset, limit, &mut metas)
                    .await?;
                out.extend(
                    rows.iter()
                        .map(|o| mapping::organization_to_fhir(self.cfg, o)),
                );
                counted(&rows)
            }
            "HealthcareService" => {
                let rows = self
                    .rows::<Program>(filters, keyset, limit, &mut metas)
                    .await?;
                let clinic_id = self.clinic_id().await?;
                out.extend(
                    rows.iter()
                        .map(|p| mapping::program_to_fhir(self.cfg, p, clinic_id)),
                );
                counted(&rows)
            }
            "Group" => {
                let rows = self
                    .rows::<TherapyGroup>(filters, keyset, limit, &mut metas)
                    .await?;
                out.extend(
                    rows.iter()
                        .map(|g| mapping::therapy_group_to_fhir(self.cfg, g)),
                );
                counted(&rows)
            }
            "Practitioner" => {
                let rows = self
                    .rows::<Staff>(filters, keyset, limit, &mut metas)
                    .await?;
                out.extend(
                    rows.iter()
                        .map(|s| mapping::practitioner_to_fhir(self.cfg, s)),
                );
                counted(&rows)
            }
            "Patient" => {
                let rows = self
                    .rows::<Client>(filters, keyset, limit, &mut metas)
                    .await?;
                let (kept, sensitivity) = self
                    .about_clients(gate, resource_type, &rows, |c| (c.id, c.id))
                    .await?;
                out.extend(
                    kept.into_iter()
                        .map(|c| mapping::client_to_fhir(self.cfg, c, sensitivity[&c.id])),
                );
                counted(&rows)
            }
            "RelatedPerson" => {
                let rows = self
                    .rows::<SupportContact>(filters, keyset, limit, &mut metas)
                    .await?;
                let (kept, sensitivity) = self
                    .about_clients(gate, resource_type, &rows, |c| (c.id, c.client_id))
                    .await?;
                out.extend(kept.into_iter().map(|c| {
                    mapping::support_contact_to_fhir(
                        self.cfg,
                        c,
                        sensitivity[&c.client_id],
                        self.as_of,
                    )
                }));
                counted(&rows)
            }
            "EpisodeOfCare" => {
                let rows = self
                    .rows::<Enrollment>(filters, keyset, limit, &mut metas)
                    .await?;
                let clinic_id = self.clinic_id().await?;
                let (kept, sensitivity) = self
                    .about_clients(gate, resource_type, &rows, |e| (e.id, e.client_id))
                    .await?;
                for e in kept {
                    let program = self.program(e.program_id).await?;
                    let view = mapping::EpisodeView {
                        enrollment: e,
                        program,
                        clinic_id,
                        sensitivity: sensitivity[&e.client_id],
                    };
                    out.push(mapping::episode_to_fhir(self.cfg, &view));
                }
                counted(&rows)
            }
            "CarePlan" => {
                let rows = self
                    .rows::<TreatmentPlan>(filters, keyset, limit, &mut metas)
                    .await?;
                let (kept, owners) = match gate.as_deref_mut() {
                    Some(gate) => {
                        let owners = Owners::of(self, rows.iter().map(|p| p.enrollment_id)).await?;
                        let kept = self
                            .kept(
                                Some(gate),
                                resource_type,
                                &rows,
                                |p| (p.id, owners.client_of(p.enrollment_id)),
                                &owners.sensitivities,
                            )
                            .await?;
                        (kept, Some(owners))
                    }
                    None => (rows.iter().collect(), None),
                };
                write_care_plans(self, &kept, owners, &mut out, &mut metas).await?;
                counted(&rows)
            }
            "Goal" => {
                let rows = self
                    .rows::<Goal>(filters, keyset, limit, &mut metas)
                    .await?;
                write_goals(self, gate, &rows, &mut out).await?;
                counted(&rows)
            }
            "Encounter" => {
                let rows = self
                    .rows::<Session>(filters, keyset, limit, &mut metas)
                    .await?;
                write_encounters(self, gate, &rows, &mut out).await?;
                counted(&rows)
            }
            "Consent" => {
                let rows = self
                    .rows::<Consent>(filters, keyset, limit, &mut metas)
                    .await?;
                let clinic_id = self.clinic_id().await?;
                let (kept, sensitivity) = self
                    .about_clients(gate, resource_type, &rows, |c| (c.id, c.client_id))
                    .await?;
                out.extend(kept.into_iter().map(|c| {
                    mapping::consent_to_fhir(
                        self.cfg,
                        c,
                        clinic_id,
                        sensitivity[&c.client_id],
                        self.as_of,
                    )
                }));
                counted(&rows)
            }
            "ServiceRequest" | "Task" => {
                let task = resource_type == "Task";
                let rows = self
                    .rows::<Referral>(filters, keyset, limit, &mut metas)
                    .await?;
                let (kept, sensitivity) = self
                    .about_clients(gate, resource_type, &rows, |r| (r.id, r.client_id))
                    .await?;
                let ids: Vec<_> = kept.iter().map(|r| r.id).collect();
                let mut progress = self.store.referral_progress(&ids).await?;
                out.extend(kept.into_iter().map(|r| {
                    let view = mapping::ReferralView {
                        referral: r,
                        sensitivity: sensitivity[&r.client_id],
                        progress: progress.remove(&r.id).unwrap_or_default(),
                    };
                    if task {
                        mapping::task_to_fhir(self.cfg, &view)
                    } else {
                        mapping::service_request_to_fhir(self.cfg, &view)
                    }
                }));
                counted(&rows)
            }
            other => return Err(AssembleError::UnknownType(other.to_owned())),
        };
        // The row's version and last change become the resource's meta (ETag, history).
        for resource in &mut out {
            let row = resource
                .get("id")
                .and_then(Value::as_str)
                .and_then(|id| metas.get(id));
            if let Some(meta) = row {
                resource["meta"]["versionId"] = Value::String(meta.version.to_string());
                resource["meta"]["lastUpdated"] = Value::String(meta.updated_at.to_string());
            }
        }
        self.add_external_identifiers(resource_type, &mut out)
            .await?;
        Ok(Page {
            resources: out,
            first_row,
            last_row,
            last_in_owner_order,
            full: rows == limit as usize,
        })
    }

    /// The identifiers other systems gave these records (kept by the FHIR API's writes and the
    /// referral intake), back on the resources they came in with. Types the API does not write
    /// have none; a referral's ServiceRequest keeps its own (`REFERRAL_REQUEST_IDENTIFIERS`).
    async fn add_external_identifiers(
        &self,
        resource_type: &str,
        resources: &mut [Value],
    ) -> Result<(), StoreError> {
        let table = match resource_type {
            "Patient" => Client::TABLE,
            "RelatedPerson" => SupportContact::TABLE,
            "Consent" => Consent::TABLE,
            "Encounter" => Session::TABLE,
            "EpisodeOfCare" => Enrollment::TABLE,
            "CarePlan" => TreatmentPlan::TABLE,
            "Goal" => Goal::TABLE,
            "Task" => Referral::TABLE,
            "ServiceRequest" => crate::store::REFERRAL_REQUEST_IDENTIFIERS,
            _ => return Ok(()),
        };
        if resources.is_empty() || !self.may_have_identifiers(table).await? {
            return Ok(());
        }
        let ids: Vec<String> = resources
            .iter()
            .filter_map(|r| r.get("id").and_then(Value::as_str).map(str::to_owned))
            .collect();
        let mut known = self.store.identifiers_of_many(table, &ids).await?;
        for resource in resources {
            let id = resource
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if let Some(identifiers) = known.remove(id) {
                mapping::add_external_identifiers(resource, &identifiers);
            }
        }
        Ok(())
    }

    /// How many rows of the table behind `resource_type` match `filters`.
    pub async fn count(
        &self,
        resource_type: &str,
        filters: &[Filter],
    ) -> Result<i64, AssembleError> {
        let store = self.store;
        Ok(match resource_type {
            "Organization" => store.count_where::<Organization>(filters).await?,
            "HealthcareService" => store.count_where::<Program>(filters).await?,
            "Group" => store.count_where::<TherapyGroup>(filters).await?,
            "Practitioner" => store.count_where::<Staff>(filters).await?,
            "Patient" => store.count_where::<Client>(filters).await?,
            "RelatedPerson" => store.count_where::<SupportContact>(filters).await?,
            "EpisodeOfCare" => store.count_where::<Enrollment>(filters).await?,
            // A plan row gives its CarePlan and its relapse prevention CarePlan, if it has one:
            // count both, as a search returns both. Each filter narrows the plans the relapse
            // plans belong to (the memberships intersect).
            "CarePlan" => {
                let of_plans: Vec<Filter> = filters
                    .iter()
                    .map(|f| Filter::in_rows("plan_id", TreatmentPlan::TABLE, "id", f.clone()))
                    .collect();
                let (plans, relapse_plans) = tokio::try_join!(
                    store.count_where::<TreatmentPlan>(filters),
                    store.count_where::<RelapsePreventionPlan>(&of_plans),
                )?;
                plans + relapse_plans
            }
            "Goal" => store.count_where::<Goal>(filters).await?,
            "Encounter" => store.count_where::<Session>(filters).await?,
            "Consent" => store.count_where::<Consent>(filters).await?,
            "ServiceRequest" | "Task" => store.count_where::<Referral>(filters).await?,
            other => return Err(AssembleError::UnknownType(other.to_owned())),
        })
    }

    /// The sensitivity of each client `rows` are about, and the rows `gate` does not withhold
    /// whole (`kept`); `owner` gives a row's id and its client.
    async fn about_clients<'r, R, T>(
        &self,
        gate: Option<&mut Gate>,
        resource_type: &str,
        rows: &'r [R],
        owner: impl Fn(&R) -> (Id<T>, Id<Client>),
    ) -> Result<(Vec<&'r R>, HashMap<Id<Client>, Sensitivity>), StoreError> {
        let sensitivity = self.sensitivities(rows.iter().map(|r| owner(r).1)).await?;
        let kept = self
            .kept(gate, resource_type, rows, owner, &sensitivity)
            .await?;
        Ok((kept, sensitivity))
    }

    /// The rows whose resources `gate` does not withhold whole (all of them without a gate):
    /// `owner` gives a row's id and its client, `sensitivity` each client's.
    async fn kept<'r, R, T>(
        &self,
        gate: Option<&mut Gate>,
        resource_type: &str,
        rows: &'r [R],
        owner: impl Fn(&R) -> (Id<T>, Id<Client>),
        sensitivity: &HashMap<Id<Client>, Sensitivity>,
    ) -> Result<Vec<&'r R>, StoreError> {
        let Some(gate) = gate else {
            return Ok(rows.iter().collect());
        };
        let clients: HashSet<String> = rows.iter().map(|r| owner(r).1.to_string()).collect();
        gate.load_clients(self.store, clients.into_iter().collect())
            .await?;
        Ok(rows
            .iter()
            .filter(|row| {
                let (id, client) = owner(row);
                !gate.withholds_row(
                    resource_type,
                    &id.to_string(),
                    &client.to_string(),
                    sensitivity[&client],
                )
            })
            .collect())
    }

    async fn rows<R: Record>(
        &self,
        filters: &[Filter],
        keyset: Keyset<'_>,
        limit: u32,
        metas: &mut HashMap<String, RowMeta>,
    ) -> Result<Vec<R>, StoreError> {
        let stored = match keyset {
            Keyset::After(after) => self.store.page_where::<R>(filters, after, limit).await?,
            Keyset::Before(before) => {
                self.store
                    .page_where_before::<R>(filters, before, limit)
                    .await?
            }
            Keyset::InOwnerOrderAfter(after) => {
                let after = after.map(|(owner, id)| (owner.as_str(), id.as_str()));
                self.store
                    .page_in_owner_order::<R>(filters, after, limit)
                    .await?
            }
        };
        metas.extend(stored.iter().map(|s| (s.record.id().to_string(), s.meta)));
        Ok(records(stored))
    }
}

/// (number of rows, id of the first row, id of the last row, owner and id of the last row)
type Counted = (
    usize,
    Option<String>,
    Option<String>,
    Option<(String, String)>,
);

fn counted<R: Record>(rows: &[R]) -> Counted {
    let last = rows.last();
    (
        rows.len(),
        rows.first().map(|r| r.id().to_string()),
        last.map(|r| r.id().to_string()),
        last.map(|r| (r.owner().to_string(), r.id().to_string())),
    )
}

fn group<K: std::hash::Hash + Eq, V>(
    items: impl IntoIterator<Item = V>,
    key: impl Fn(&V) -> K,
) -> HashMap<K, Vec<V>> {
    let mut map: HashMap<K, Vec<V>> = HashMap::default();
    for item in items {
        map.entry(key(&item)).or_default().push(item);
    }
    map
}

fn records<R>(stored: Vec<Stored<R>>) -> Vec<R> {
    stored.into_iter().map(|s| s.record).collect()
}

async fn enrollments_of(
    cx: &Assembler<'_>,
    ids: impl IntoIterator<Item = Id<Enrollment>>,
) -> Result<HashMap<Id<Enrollment>, Enrollment>, StoreError> {
    let ids: HashSet<Id<Enrollment>> = ids.into_iter().collect();
    let mut out: HashMap<Id<Enrollment>, Enrollment> = HashMap::default();
    let mut unknown: Vec<Id<Enrollment>> = Vec::new();
    {
        let known = cx.known.lock().unwrap_or_else(|e| e.into_inner());
        for id in ids {
            match known.enrollments.get(&id) {
                Some(enrollment) => {
                    out.insert(id, enrollment.clone());
                }
                None => unknown.push(id),
            }
        }
    }
    if unknown.is_empty() {
        return Ok(out);
    }
    let read = records(cx.store.get_many::<Enrollment>(&unknown).await?);
    let mut known = cx.known.lock().unwrap_or_else(|e| e.into_inner());
    if known.enrollments.len() + read.len() > KNOWN_MAX {
        known.enrollments.clear();
    }
    for enrollment in read {
        known.enrollments.insert(enrollment.id, enrollment.clone());
        out.insert(enrollment.id, enrollment);
    }
    Ok(out)
}

/// The enrollments records belong to, and their clients' sensitivities: who a plan, goal or
/// session is about.
struct Owners {
    enrollments: HashMap<Id<Enrollment>, Enrollment>,
    sensitivities: HashMap<Id<Client>, Sensitivity>,
}

impl Owners {
    async fn of(
        cx: &Assembler<'_>,
        ids: impl IntoIterator<Item = Id<Enrollment>>,
    ) -> Result<Self, StoreError> {
        let enrollments = enrollments_of(cx, ids).await?;
        let sensitivities = cx
            .sensitivities(enrollments.values().map(|e| e.client_id))
            .await?;
        Ok(Self {
            enrollments,
            sensitivities,
        })
    }

    /// `known`, or read.
    async fn known_or_of(
        cx: &Assembler<'_>,
        known: Option<Self>,
        ids: impl IntoIterator<Item = Id<Enrollment>>,
    ) -> Result<Self, StoreError> {
        match known {
            Some(owners) => Ok(owners),
            None => Self::of(cx, ids).await,
        }
    }

    fn client_of(&self, enrollment: Id<Enrollment>) -> Id<Client> {
        self.enrollments[&enrollment].client_id
    }
}

/// Treatment plans and their relapse prevention plans; a relapse plan's own row gives its
/// version (`metas`), as a plan's row gives the plan's. `owners`, when already read, are the
/// plans'.
async fn write_care_plans(
    cx: &Assembler<'_>,
    plans: &[&TreatmentPlan],
    owners: Option<Owners>,
    out: &mut Vec<Value>,
    metas: &mut HashMap<String, RowMeta>,
) -> Result<(), StoreError> {
    let ids: Vec<_> = plans.iter().map(|p| p.id).collect();
    // Independent lookups run at once: a plan's latency is the slowest query, not their sum.
    let (owners, goals, interventions, reviews, relapse_plans) = tokio::try_join!(
        Owners::known_or_of(cx, owners, plans.iter().map(|p| p.enrollment_id)),
        cx.store.children_of_many::<Goal>(&ids),
        cx.store.children_of_many::<Intervention>(&ids),
        cx.store.children_of_many::<PlanReview>(&ids),
        cx.store.children_of_many::<RelapsePreventionPlan>(&ids),
    )?;
    let goals = group(records(goals), |g| g.plan_id);
    let interventions = group(records(interventions), |i| i.plan_id);
    let reviews = group(records(reviews), |r| r.plan_id);
    metas.extend(
        relapse_plans
            .iter()
            .map(|s| (s.record.id.to_string(), s.meta)),
    );
    let relapse_plans = records(relapse_plans);
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
    for plan in plans.iter().copied() {
        let client_id = owners.client_of(plan.enrollment_id);
        let sensitivity = owners.sensitivities[&client_id];
        let view = mapping::PlanView {
            plan,
            client_id,
            goals: goals.get(&plan.id).map(Vec::as_slice).unwrap_or(&[]),
            interventions: interventions
                .get(&plan.id)
                .map(Vec::as_slice)
                .unwrap_or(&[]),
            reviews: reviews.get(&plan.id).map(Vec::as_slice).unwrap_or(&[]),
            sensitivity,
        };
        out.push(mapping::plan_to_fhir(cx.cfg, &view));
        for relapse_plan in relapse_by_plan
            .get(&plan.id)
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            let view = mapping::RelapsePlanView {
                relapse_plan,
                plan,
                client_id,
                items: items
                    .get(&relapse_plan.id)
                    .map(Vec::as_slice)
                    .unwrap_or(&[]),
                contact_names: &contacts,
                sensitivity,
            };
            out.push(mapping::relapse_plan_to_fhir(cx.cfg, &view));
        }
    }
    Ok(())
}

/// Goals, with the plans they belong to and their progress notes. With a `gate`, the goals it
/// would withhold are left out before their notes are read.
async fn write_goals(
    cx: &Assembler<'_>,
    gate: Option<&mut Gate>,
    goals: &[Goal],
    out: &mut Vec<Value>,
) -> Result<(), StoreError> {
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
    let owners = Owners::of(cx, plans.values().map(|p| p.enrollment_id)).await?;
    let client_of = |g: &Goal| owners.client_of(plans[&g.plan_id].enrollment_id);
    let goals = cx
        .kept(
            gate,
            "Goal",
            goals,
            |g| (g.id, client_of(g)),
            &owners.sensitivities,
        )
        .await?;
    let goal_ids: Vec<_> = goals.iter().map(|g| g.id).collect();
    let kept_plans: Vec<_> = goals
        .iter()
        .map(|g| g.plan_id)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let (notes, reviews) = tokio::try_join!(
        cx.store.children_of_many::<GoalProgressNote>(&goal_ids),
        cx.store.children_of_many::<PlanReview>(&kept_plans),
    )?;
    let notes = group(records(notes), |n| n.goal_id);
    let reviews: HashMap<_, _> = records(reviews).into_iter().map(|r| (r.id, r)).collect();
    for goal in goals {
        let client_id = client_of(goal);
        let progress: Vec<_> = notes
            .get(&goal.id)
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .filter_map(|n| reviews.get(&n.review_id).map(|r| (n, r)))
            .collect();
        out.push(mapping::goal_to_fhir(
            cx.cfg,
            goal,
            client_id,
            &progress,
            owners.sensitivities[&client_id],
        ));
    }
    Ok(())
}

/// Sessions as Encounters, with their participants. With a `gate`, the sessions it would
/// withhold are left out before their participants are read.
async fn write_encounters(
    cx: &Assembler<'_>,
    gate: Option<&mut Gate>,
    sessions: &[Session],
    out: &mut Vec<Value>,
) -> Result<(), StoreError> {
    let owners = Owners::of(cx, sessions.iter().map(|s| s.enrollment_id)).await?;
    let sessions = cx
        .kept(
            gate,
            "Encounter",
            sessions,
            |s| (s.id, owners.client_of(s.enrollment_id)),
            &owners.sensitivities,
        )
        .await?;
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
        let client_id = owners.client_of(session.enrollment_id);
        let contacts: Vec<_> = participants
            .get(&session.id)
            .map(|ps| ps.iter().map(|p| p.support_contact_id).collect())
            .unwrap_or_default();
        let view = mapping::SessionView {
            session,
            client_id,
            participants: &contacts,
            sensitivity: owners.sensitivities[&client_id],
        };
        out.push(mapping::session_to_fhir(cx.cfg, &view));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every type the assembler builds is tied to its clients, or says it is about none: an
    /// export reads each type either by client or by its own ids, and a type with neither
    /// would be left out.
    #[test]
    fn every_type_has_a_client_link() {
        for resource_type in RESOURCE_TYPES {
            let link = client_link(resource_type);
            assert!(link.is_some(), "{resource_type}");
            assert!(tables(resource_type).is_some(), "{resource_type}");
        }
        assert_eq!(client_link("Patient"), Some(ClientLink::Column("id")));
        assert_eq!(client_link("Encounter"), Some(ClientLink::Through));
        assert_eq!(client_link("Group"), Some(ClientLink::None));
        assert_eq!(client_link("Observation"), None);
    }
}
