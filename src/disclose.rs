//! The one gate every disclosure passes: after the assembler has built FHIR resources and before
//! an edge sends them, each resource is decided on its own (`consent::decide`, pure) for the
//! recipient and purpose of the request; what is denied is left out, and what is let through has
//! its references to denied resources and uncovered support contacts removed.
//!
//! This module does the I/O the decision must not: it loads each client's consents and care team
//! (once per client per request) and the clinic's own organization. It holds no rule of its own;
//! the rules are `consent`'s.

use std::borrow::Cow;
// Keyed by the clinic's own ids, looked up for every reference of every resource: FxHash.
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use chrono::NaiveDate;
use serde_json::{Value, json};

use crate::consent::{
    self, Basis, ConsentDirective, Decision, Labels, Policy, PurposeOfUse, Recipient, ResourceFacts,
};
use crate::domain::{
    Consent, Enrollment, InformationCategory, Organization, OrganizationKind, Referral,
};
use crate::json_member::member;
use crate::mapping::audit::patients_of;
use crate::read_cache::{ClientRows, ReadCache, Seen};
use crate::store::{Filter, SqlValue, Store, StoreError};

/// The 42 CFR §2.32 notice that goes with every disclosure of Part 2 records.
pub const PART2_NOTICE: &str = "This record which has been disclosed to you is protected by \
Federal confidentiality rules (42 CFR part 2). These rules prohibit you from using or disclosing \
this record, or testimony that describes the information contained in this record, in any \
civil, criminal, administrative, or legislative proceedings by any Federal, State, or local \
authority, against the patient, unless authorized by the consent of the patient, except as \
provided at 42 CFR 2.12(c)(5) or as authorized by a court in accordance with 42 CFR 2.64 or \
2.65. In addition, the Federal rules prohibit you from making any other disclosure of this \
record unless at least one of the following applies: (i) Further disclosure is expressly \
permitted by the written consent of the individual whose information is being disclosed in \
this record or as otherwise permitted by 42 CFR part 2. (ii) You are a covered entity or \
business associate and have received the record for treatment, payment, or health care \
operations, or (iii) You have received the record from a covered entity or business associate \
as permitted by 45 CFR part 164, subparts A and E. A general authorization for the release of \
medical or other information is NOT sufficient to meet the required elements of written \
consent to further use or redisclose the record (see 42 CFR 2.31).";

/// Types that are not about a client: the clinic's staff, organizations, programs and groups.
pub const NOT_ABOUT_A_CLIENT: [&str; 4] =
    ["Practitioner", "Organization", "HealthcareService", "Group"];

/// The clinic's category of the information a resource type carries.
fn data_class(resource_type: &str) -> Option<InformationCategory> {
    match resource_type {
        "Patient" | "RelatedPerson" => Some(InformationCategory::Demographics),
        "CarePlan" | "Goal" => Some(InformationCategory::TreatmentPlan),
        "Encounter" | "EpisodeOfCare" => Some(InformationCategory::Attendance),
        "ServiceRequest" | "Task" => Some(InformationCategory::DischargeSummary),
        _ => None,
    }
}

/// Who receives a disclosure, and for what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// `serve --open-access` only: nothing is filtered (local experiments; said loudly on start).
    Unfiltered,
    /// A recipient (the API client's organization), for a purpose of use.
    Recipient {
        recipient: Recipient,
        purpose: PurposeOfUse,
    },
    /// A client registered without an organization: no one to decide for, so nothing about a
    /// client is disclosed.
    Nobody,
}

/// The clinic's own organizations (ids): always on each client's care team.
pub async fn clinic_organizations(store: &Store) -> Result<Vec<String>, StoreError> {
    let clinics = store
        .page_where::<Organization>(
            &[Filter::equals(
                "kind",
                SqlValue::text(OrganizationKind::Clinic.code()),
            )],
            None,
            100,
        )
        .await?;
    Ok(clinics.iter().map(|o| o.record.id.to_string()).collect())
}

impl Audience {
    /// Who a caller's disclosures are for: its organization (the recipient) and purpose of use
    /// (TREAT when none is registered); nobody without an organization; unfiltered only under
    /// `--open-access` and for the clinic's own applications.
    pub fn of(open_access: bool, organization: Option<&str>, purpose: Option<&str>) -> Self {
        match (open_access, organization) {
            (true, _) => Self::Unfiltered,
            (false, Some(org)) => Self::Recipient {
                recipient: Recipient::Organization(org.to_owned()),
                purpose: PurposeOfUse::from_code(purpose.unwrap_or("TREAT")),
            },
            (false, None) => Self::Nobody,
        }
    }
}

/// The decision on one resource, as the gate reports it.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub permit: bool,
    /// The decision's words (for `consent explain` and refusals); None for what is not about a
    /// client or not filtered.
    pub why: Option<String>,
    pub consent: Option<String>,
    pub part2: bool,
}

impl Verdict {
    fn open(part2: bool) -> Self {
        Self {
            permit: true,
            why: None,
            consent: None,
            part2,
        }
    }
}

/// A decision before it is put in words. The words (`Decision`'s `Display`) cost a `format!`,
/// and the gate decides once per reference of every resource an export writes, where only the
/// answer is read; `Verdict` has the words, for refusals and `consent explain`.
enum Judgement {
    /// Not about a client, or not filtered.
    Open {
        part2: bool,
    },
    /// Refused before any consent was weighed.
    Refused {
        why: &'static str,
        part2: bool,
    },
    Decided {
        decision: Decision,
        part2: bool,
    },
}

impl Judgement {
    fn permits(&self) -> bool {
        match self {
            Self::Open { .. } => true,
            Self::Refused { .. } => false,
            Self::Decided { decision, .. } => decision.permit,
        }
    }

    fn part2(&self) -> bool {
        match self {
            Self::Open { part2 } | Self::Refused { part2, .. } | Self::Decided { part2, .. } => {
                *part2
            }
        }
    }

    /// The consent that decided, if one did.
    fn consent(&self) -> Option<String> {
        match self {
            Self::Decided {
                decision:
                    Decision {
                        basis: Basis::Consent(basis),
                        ..
                    },
                ..
            } => Some(basis.id.to_string()),
            _ => None,
        }
    }

    fn into_verdict(self) -> Verdict {
        let (permit, part2, consent) = (self.permits(), self.part2(), self.consent());
        match self {
            Self::Open { .. } => Verdict::open(part2),
            Self::Refused { why, .. } => Verdict {
                permit,
                why: Some(why.to_owned()),
                consent,
                part2,
            },
            Self::Decided { decision, .. } => Verdict {
                permit,
                why: Some(decision.to_string()),
                consent,
                part2,
            },
        }
    }
}

/// Clients whose contexts a gate keeps at most: the `export` command's one gate sees every
/// client; a Bulk export's parts hold at most 1,000 (`bulk::run`), so that its gates never
/// forget one. 2,000 rather than 5,000 took 4-8 MB off a 20,000-client export's peak.
const MAX_CLIENTS_KEPT: usize = 2_000;

/// Rows by their client's id.
fn by_client<R>(
    rows: Vec<crate::store::Stored<R>>,
    client: impl Fn(&R) -> String,
) -> HashMap<String, Vec<R>> {
    let mut out: HashMap<String, Vec<R>> = HashMap::default();
    for row in rows {
        out.entry(client(&row.record)).or_default().push(row.record);
    }
    out
}

/// What the gate knows of one client for this request.
struct ClientContext {
    directives: Vec<ConsentDirective>,
    care_team: Vec<String>,
    covered_contacts: HashSet<String>,
    /// The answers already given about this client (`Gate::permits_about`), by `answer_slot`:
    /// 0 not asked yet, 1 denied, 2 permitted. An export asks the same few questions for every
    /// reference of every resource about the client.
    answers: [AtomicU8; ANSWER_SLOTS],
}

/// One answer per resource type the assembler builds and per combination of the two labels.
const ANSWER_SLOTS: usize = crate::assemble::RESOURCE_TYPES.len() * 4;

/// Where the answer about a resource of `resource_type` with `labels` is kept; None where it
/// depends on more than those (a support contact shows only while a consent names them).
fn answer_slot(resource_type: &str, labels: Labels) -> Option<usize> {
    if resource_type == "RelatedPerson" {
        return None;
    }
    let kind = crate::assemble::RESOURCE_TYPES
        .iter()
        .position(|t| *t == resource_type)?;
    Some(kind * 4 + usize::from(labels.part2) * 2 + usize::from(labels.sud_counselling_note))
}

/// One request's gate: decisions for one audience on one day, with the clients' contexts loaded
/// as their resources come by.
pub struct Gate {
    audience: Audience,
    policy: Policy,
    today: NaiveDate,
    clinic: Option<Arc<Vec<String>>>,
    clients: HashMap<String, ClientContext>,
    consents_used: Vec<String>,
    part2_disclosed: bool,
    /// Rows kept across requests (the API's gates), and the state of it this request saw.
    cache: Option<(Arc<ReadCache>, Seen)>,
}

impl Gate {
    pub fn new(audience: Audience, policy: Policy, today: NaiveDate) -> Self {
        Self {
            audience,
            policy,
            today,
            clinic: None,
            clients: HashMap::default(),
            consents_used: Vec::new(),
            part2_disclosed: false,
            cache: None,
        }
    }

    /// This gate reads through `cache`, brought up to date for this request (`seen`).
    pub fn with_cache(mut self, cache: Arc<ReadCache>, seen: Seen) -> Self {
        self.cache = Some((cache, seen));
        self
    }

    pub fn audience(&self) -> &Audience {
        &self.audience
    }

    /// Loads what the decisions on `resources` need: the consents and enrollments of every client
    /// they are about that this gate has not seen, in one query per table.
    pub async fn load(&mut self, store: &Store, resources: &[Value]) -> Result<(), StoreError> {
        if self.audience == Audience::Unfiltered {
            return Ok(());
        }
        let wanted: Vec<String> = resources.iter().flat_map(patients_of).collect();
        self.load_clients(store, wanted).await
    }

    /// Loads what decisions about the clients `wanted` (ids) need.
    pub async fn load_clients(
        &mut self,
        store: &Store,
        mut wanted: Vec<String>,
    ) -> Result<(), StoreError> {
        if self.audience == Audience::Unfiltered {
            return Ok(());
        }
        let seen = self
            .cache
            .as_ref()
            .map(|(cache, seen)| (Arc::clone(cache), *seen));
        if self.clinic.is_none() {
            let kept = seen.as_ref().and_then(|(cache, _)| cache.clinic());
            self.clinic = Some(match kept {
                Some(clinic) => clinic,
                None => {
                    let clinic = Arc::new(clinic_organizations(store).await?);
                    if let Some((cache, seen_at)) = &seen {
                        cache.keep_clinic(*seen_at, Arc::clone(&clinic));
                    }
                    clinic
                }
            });
        }
        wanted.sort();
        wanted.dedup();
        // A long export passes every client by: forget the ones seen before once there are
        // many, so the gate's memory stays flat whatever the export's size.
        if self.clients.len() + wanted.len() > MAX_CLIENTS_KEPT {
            self.clients.clear();
        }
        wanted.retain(|p| !self.clients.contains_key(p));
        let mut rows: HashMap<String, Arc<ClientRows>> = HashMap::default();
        if let Some((cache, _)) = &seen {
            wanted.retain(|client| match cache.client(client) {
                Some(kept) => {
                    rows.insert(client.clone(), kept);
                    false
                }
                None => true,
            });
        }
        if !wanted.is_empty() {
            let of_clients =
                Filter::one_of("client_id", wanted.iter().map(SqlValue::text).collect());
            let of_clients = std::slice::from_ref(&of_clients);
            let (consents, enrollments, referrals) = tokio::try_join!(
                store.page_where::<Consent>(of_clients, None, u32::MAX),
                store.page_where::<Enrollment>(of_clients, None, u32::MAX),
                store.page_where::<Referral>(of_clients, None, u32::MAX),
            )?;
            // Each client's rows, found by one pass over each table's (not one per client).
            let mut consents = by_client(consents, |c| c.client_id.to_string());
            let mut enrollments = by_client(enrollments, |e| e.client_id.to_string());
            let mut referrals = by_client(referrals, |r| r.client_id.to_string());
            for client in wanted {
                let loaded = Arc::new(ClientRows {
                    consents: consents.remove(&client).unwrap_or_default(),
                    enrollments: enrollments.remove(&client).unwrap_or_default(),
                    referrals: referrals.remove(&client).unwrap_or_default(),
                });
                if let Some((cache, seen_at)) = &seen {
                    cache.keep_client(*seen_at, client.clone(), Arc::clone(&loaded));
                }
                rows.insert(client, loaded);
            }
        }
        let clinic = self.clinic.clone().unwrap_or_default();
        for (client, rows) in rows {
            let care_team =
                consent::care_team(&clinic, rows.enrollments.iter(), rows.referrals.iter());
            let covered = consent::covered_contacts(&rows.consents, self.today)
                .into_iter()
                .map(|id| id.to_string())
                .collect();
            self.clients.insert(
                client,
                ClientContext {
                    directives: rows.consents.iter().map(consent::directive_from).collect(),
                    care_team,
                    covered_contacts: covered,
                    answers: std::array::from_fn(|_| AtomicU8::new(0)),
                },
            );
        }
        Ok(())
    }

    /// The decision on `resource` (its clients' contexts loaded first with `load`).
    pub fn decide(&self, resource: &Value) -> Verdict {
        self.decide_on(resource, &patients_of(resource), labels_of(resource))
            .into_verdict()
    }

    /// `decide` with the resource's clients and labels already read.
    fn decide_on(&self, resource: &Value, patients: &[String], labels: Labels) -> Judgement {
        self.judge(
            member(resource, "resourceType")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            member(resource, "id").and_then(Value::as_str),
            patients,
            labels,
        )
    }

    fn judge(
        &self,
        resource_type: &str,
        id: Option<&str>,
        patients: &[impl AsRef<str>],
        labels: Labels,
    ) -> Judgement {
        let part2 = labels.is_part2();
        if self.audience == Audience::Unfiltered || NOT_ABOUT_A_CLIENT.contains(&resource_type) {
            return Judgement::Open { part2 };
        }
        let deny = |why: &'static str| Judgement::Refused { why, part2 };
        let (recipient, purpose) = match &self.audience {
            Audience::Recipient { recipient, purpose } => (recipient, purpose),
            _ => return deny("the API client acts for no organization"),
        };
        let [patient] = patients else {
            return deny("not about exactly one client");
        };
        let Some(context) = self.clients.get(patient.as_ref()) else {
            return deny("the client's consents were not loaded");
        };
        // A support contact shows only while a consent names them.
        if resource_type == "RelatedPerson"
            && !id.is_some_and(|id| context.covered_contacts.contains(id))
        {
            return deny("the support contact is not named by a consent in force");
        }
        let facts = ResourceFacts {
            resource_type: resource_type.to_owned(),
            data_class: data_class(resource_type),
            labels,
        };
        let request = consent::Request {
            resource: facts,
            recipient: recipient.clone(),
            purpose: purpose.clone(),
            today: self.today,
            care_team: &context.care_team,
        };
        let decision: Decision = consent::decide(&request, &context.directives, &self.policy);
        Judgement::Decided { decision, part2 }
    }

    /// Whether the resource a clinic row becomes (of `resource_type`, id `id`, about `client`,
    /// labelled for `sensitivity`) would be withheld whole: asked before the row is assembled,
    /// so that an export neither reads the related rows of nor maps what it would drop. The
    /// same decision `admit` makes on the assembled resource (its labels are the mapping's for
    /// that sensitivity), which still decides on, and redacts, everything assembled. The
    /// client's context must be loaded (`load_clients`).
    pub fn withholds_row(
        &self,
        resource_type: &str,
        id: &str,
        client: &str,
        sensitivity: crate::mapping::Sensitivity,
    ) -> bool {
        let labels = Labels::from_codes(crate::mapping::security_label_codes(sensitivity));
        !self.permits_about(resource_type, Some(id), &[client], labels)
    }

    /// Whether every resource of `resource_type` about `client` (labelled for `sensitivity`)
    /// would be withheld whole: `withholds_row` for all of a client's rows at once, so that an
    /// export need not read them. Not for RelatedPerson, decided per contact. The client's
    /// context must be loaded (`load_clients`).
    pub fn withholds_all_about(
        &self,
        resource_type: &str,
        client: &str,
        sensitivity: crate::mapping::Sensitivity,
    ) -> bool {
        debug_assert_ne!(resource_type, "RelatedPerson", "decided per contact");
        let labels = Labels::from_codes(crate::mapping::security_label_codes(sensitivity));
        !self.permits_about(resource_type, None, &[client], labels)
    }

    /// `judge`'s answer alone, remembered per client where it depends only on the resource's
    /// type and labels (the audience, the day and the client's context are the gate's).
    fn permits_about(
        &self,
        resource_type: &str,
        id: Option<&str>,
        patients: &[impl AsRef<str>],
        labels: Labels,
    ) -> bool {
        let remembered = match (patients, answer_slot(resource_type, labels)) {
            ([patient], Some(slot)) => self.clients.get(patient.as_ref()).map(|c| &c.answers[slot]),
            _ => None,
        };
        match remembered.map(|a| a.load(Ordering::Relaxed)) {
            Some(1) => return false,
            Some(2) => return true,
            _ => {}
        }
        let permits = self.judge(resource_type, id, patients, labels).permits();
        if let Some(answer) = remembered {
            answer.store(if permits { 2 } else { 1 }, Ordering::Relaxed);
        }
        permits
    }

    /// Loads, decides and keeps what is permitted, each with its references to what this
    /// audience may not see removed. The consents that allowed them are remembered for the audit.
    pub async fn admit(
        &mut self,
        store: &Store,
        resources: Vec<Value>,
    ) -> Result<Vec<Value>, StoreError> {
        self.load(store, &resources).await?;
        Ok(resources
            .into_iter()
            .filter_map(|r| self.admit_loaded(r))
            .collect())
    }

    /// `admit` for one resource whose client's context is already loaded: the resource as it
    /// may be disclosed, or None.
    pub fn admit_loaded(&mut self, mut resource: Value) -> Option<Value> {
        // The resource's clients and labels, read once for the decision and the redaction.
        let patients = patients_of(&resource);
        let labels = labels_of(&resource);
        let judgement = self.decide_on(&resource, &patients, labels);
        if !judgement.permits() {
            return None;
        }
        self.part2_disclosed |= judgement.part2();
        if let Some(consent) = judgement.consent()
            && !self.consents_used.contains(&consent)
        {
            self.consents_used.push(consent);
        }
        self.redact_about(&mut resource, &patients, labels);
        Some(resource)
    }

    /// Whether one resource may be disclosed (its clients' contexts are loaded here).
    pub async fn permits(
        &mut self,
        store: &Store,
        resource: &Value,
    ) -> Result<Verdict, StoreError> {
        self.load(store, std::slice::from_ref(resource)).await?;
        Ok(self.decide(resource))
    }

    /// Removes from a permitted resource every reference to a resource this audience may not
    /// see (a `display` says something was withheld, so no id points at it), family-session
    /// participants and relapse-plan contacts no consent covers, and a narrative that names them.
    pub fn redact(&self, resource: &mut Value) {
        let patients = patients_of(resource);
        let labels = labels_of(resource);
        self.redact_about(resource, &patients, labels);
    }

    /// `redact` without a copy where nothing is withheld (most reads): the resource as given,
    /// or a redacted copy of it.
    pub fn redacted<'a>(&self, resource: &'a Value) -> Cow<'a, Value> {
        if self.audience == Audience::Unfiltered {
            return Cow::Borrowed(resource);
        }
        let patients = patients_of(resource);
        let labels = labels_of(resource);
        // Redaction changes a resource exactly where it holds a reference this audience may not
        // follow (a participant or performer goes, and the narrative with it, only for one).
        if !any_reference(resource, &|r| self.withholds(r, &patients, labels)) {
            return Cow::Borrowed(resource);
        }
        let mut copy = resource.clone();
        self.redact_about(&mut copy, &patients, labels);
        Cow::Owned(copy)
    }

    /// Whether `reference`, in a resource about `patients` that carries `labels`, points at
    /// something this audience may not see.
    fn withholds(&self, reference: &str, patients: &[String], labels: Labels) -> bool {
        let Some((t, id)) = reference
            .rsplit_once('/')
            .and_then(|(head, id)| head.rsplit('/').next().map(|t| (t, id)))
        else {
            return false;
        };
        if NOT_ABOUT_A_CLIENT.contains(&t) || data_class(t).is_none() && t != "Consent" {
            return false;
        }
        // What a resource refers to is about the same client (or is that client).
        if t == "Patient" {
            !self.permits_about(t, Some(id), &[id], labels)
        } else {
            !self.permits_about(t, Some(id), patients, labels)
        }
    }

    /// `redact` of a resource about `patients` that carries `labels`.
    fn redact_about(&self, resource: &mut Value, patients: &[String], labels: Labels) {
        if self.audience == Audience::Unfiltered {
            return;
        }
        let withheld = |reference: &str| self.withholds(reference, patients, labels);
        let mut names_withheld = false;
        // Family-session participants and relapse-plan performers who are not covered go
        // entirely (a family session then shows no family members).
        for field in ["participant", "activity"] {
            if let Some(items) = resource.get_mut(field).and_then(Value::as_array_mut) {
                items.retain(|item| {
                    let person = member(item, "individual")
                        .or_else(|| {
                            member(item, "detail")
                                .and_then(|d| member(d, "performer"))
                                .and_then(|p| p.get(0))
                        })
                        .and_then(|p| member(p, "reference"))
                        .and_then(Value::as_str);
                    let keep = !person.is_some_and(|r| r.contains("RelatedPerson/") && withheld(r));
                    names_withheld |= !keep;
                    keep
                });
            }
        }
        prune_references(resource, &withheld);
        if names_withheld && resource.get("text").is_some() {
            resource["text"] = json!({
                "status": "generated",
                "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Narrative withheld: it names people the client has not consented to share with this recipient. The structured data that may be shared follows.</p></div>"
            });
        }
    }

    /// The consents that allowed what this gate admitted (for the AuditEvent).
    pub fn consents_used(&self) -> &[String] {
        &self.consents_used
    }

    /// Whether anything admitted is a Part 2 record (the Bundle then carries the §2.32 notice).
    pub fn part2_disclosed(&self) -> bool {
        self.part2_disclosed
    }
}

/// The security labels the mapping put on a resource (computed from clinic data by the
/// assembler, never taken from input).
fn labels_of(resource: &Value) -> Labels {
    let codes: Vec<&str> = member(resource, "meta")
        .and_then(|meta| member(meta, "security"))
        .and_then(Value::as_array)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|l| member(l, "code").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    Labels::from_codes(codes)
}

/// Whether some `{ "reference": r, ... }` under `value` has `withheld(r)` (what
/// `prune_references` would replace).
fn any_reference(value: &Value, withheld: &dyn Fn(&str) -> bool) -> bool {
    match value {
        Value::Object(map) => {
            crate::json_member::in_map(map, "reference")
                .and_then(Value::as_str)
                .is_some_and(withheld)
                || map.values().any(|child| any_reference(child, withheld))
        }
        Value::Array(items) => items.iter().any(|item| any_reference(item, withheld)),
        _ => false,
    }
}

/// Replaces every `{ "reference": r, ... }` under `value` for which `withheld(r)` holds by
/// `{ "display": "withheld" }`. Only objects and arrays are descended into: most members are
/// strings, and this walks every resource an export writes.
fn prune_references(value: &mut Value, withheld: &dyn Fn(&str) -> bool) {
    match value {
        Value::Object(map) => {
            if let Some(reference) =
                crate::json_member::in_map(map, "reference").and_then(Value::as_str)
                && withheld(reference)
            {
                map.clear();
                map.insert(
                    "display".into(),
                    json!("withheld: not disclosed to this recipient"),
                );
                return;
            }
            for child in map.values_mut().filter(|v| is_container(v)) {
                prune_references(child, withheld);
            }
        }
        Value::Array(items) => {
            for item in items.iter_mut().filter(|v| is_container(v)) {
                prune_references(item, withheld);
            }
        }
        _ => {}
    }
}

fn is_container(value: &Value) -> bool {
    matches!(value, Value::Object(_) | Value::Array(_))
}

/// The OperationOutcome entry that carries the §2.32 notice in a Bundle with Part 2 records.
pub fn part2_notice_entry() -> Value {
    json!({
        "resource": {
            "resourceType": "OperationOutcome",
            "issue": [{
                "severity": "information",
                "code": "informational",
                "details": { "coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": "NORDSCLCD",
                    "display": "no redisclosure without consent directive"
                }] },
                "diagnostics": PART2_NOTICE
            }]
        },
        "search": { "mode": "outcome" }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partner_gate() -> Gate {
        let today = NaiveDate::from_ymd_opt(2026, 12, 5).unwrap();
        Gate::new(
            Audience::of(false, Some("org-partner"), None),
            Policy::default(),
            today,
        )
    }

    fn encounter(participant: &str) -> Value {
        json!({
            "resourceType": "Encounter",
            "id": "e1",
            "subject": { "reference": "Patient/p1" },
            "serviceProvider": { "reference": "Organization/clinic" },
            "participant": [{ "individual": { "reference": participant } }],
            "text": { "status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>" }
        })
    }

    #[test]
    fn what_nothing_is_taken_out_of_is_shared_not_copied() {
        let gate = partner_gate();
        // Only staff and organizations referred to: nothing about a client to withhold.
        let kept = encounter("Practitioner/s1");
        let mut kept_only = kept.clone();
        kept_only["subject"] = json!({ "reference": "Organization/clinic" });
        assert!(matches!(gate.redacted(&kept_only), Cow::Borrowed(_)));
        let unfiltered = Gate::new(Audience::Unfiltered, Policy::default(), gate.today);
        assert!(matches!(unfiltered.redacted(&kept), Cow::Borrowed(_)));
    }

    #[test]
    fn remembered_answers_are_per_client_type_and_labels() {
        let mut gate = partner_gate();
        // The partner is on p1's care team: treatment data goes, Part 2 records need a consent.
        gate.clients.insert(
            "p1".into(),
            ClientContext {
                directives: Vec::new(),
                care_team: vec!["org-partner".into()],
                covered_contacts: HashSet::default(),
                answers: std::array::from_fn(|_| AtomicU8::new(0)),
            },
        );
        let p1 = ["p1".to_owned()];
        let part2 = Labels::of(crate::mapping::Sensitivity::Part2);
        for _asked_again in 0..2 {
            assert!(gate.permits_about("Encounter", None, &p1, Labels::default()));
            assert!(!gate.permits_about("Encounter", None, &p1, part2));
            assert!(gate.permits_about("Goal", None, &p1, Labels::default()));
            // A support contact depends on its id: never remembered.
            assert!(!gate.permits_about("RelatedPerson", Some("c1"), &p1, Labels::default()));
            // Not loaded: denied, and nothing kept for it.
            assert!(!gate.permits_about("Encounter", None, &["p2".to_owned()], Labels::default()));
        }
        let answers = &gate.clients["p1"].answers;
        let slot = answer_slot("Encounter", Labels::default()).unwrap();
        assert_eq!(answers[slot].load(Ordering::Relaxed), 2);
        let slot = answer_slot("Encounter", part2).unwrap();
        assert_eq!(answers[slot].load(Ordering::Relaxed), 1);
        assert_eq!(answer_slot("RelatedPerson", part2), None);
    }

    #[test]
    fn all_of_a_clients_rows_are_withheld_as_each_row_is() {
        use crate::mapping::Sensitivity;
        let mut gate = partner_gate();
        // The partner is on p1's care team (treatment data goes, Part 2 needs a consent); p2's
        // context is loaded with no care team and no consent; p3's is not loaded.
        for (client, care_team) in [("p1", vec!["org-partner".to_owned()]), ("p2", vec![])] {
            gate.clients.insert(
                client.into(),
                ClientContext {
                    directives: Vec::new(),
                    care_team,
                    covered_contacts: HashSet::default(),
                    answers: std::array::from_fn(|_| AtomicU8::new(0)),
                },
            );
        }
        let mut withheld = 0;
        for resource_type in ["Patient", "EpisodeOfCare", "CarePlan", "Goal", "Encounter"] {
            for client in ["p1", "p2", "p3"] {
                for sensitivity in [Sensitivity::Normal, Sensitivity::Part2] {
                    let all = gate.withholds_all_about(resource_type, client, sensitivity);
                    let each = gate.withholds_row(resource_type, "r1", client, sensitivity);
                    assert_eq!(all, each, "{resource_type} of {client}, {sensitivity:?}");
                    withheld += usize::from(all);
                }
            }
        }
        // Both answers occur: p1's Part 2 records, and everything of p2 and p3, are withheld.
        assert_eq!(withheld, 5 * 4 + 5);
    }

    #[test]
    fn a_redacted_copy_is_what_redact_makes() {
        // No client's consents are loaded, so a support contact is withheld from a recipient.
        let gate = partner_gate();
        let kept = encounter("RelatedPerson/c1");
        let mut expected = kept.clone();
        gate.redact(&mut expected);
        assert_ne!(expected, kept, "the contact is taken out");
        match gate.redacted(&kept) {
            Cow::Owned(copy) => assert_eq!(copy, expected),
            Cow::Borrowed(_) => panic!("a withheld reference must be taken out"),
        }
        assert_eq!(
            kept,
            encounter("RelatedPerson/c1"),
            "the kept resource is untouched"
        );
    }
}
