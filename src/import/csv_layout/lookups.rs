//! What CSV rows look up by natural key, in the database and in the rows before them: clients by
//! MRN, programs by code, staff and organizations by NPI, therapy groups by name, and every record
//! a row can repeat by its own key (so a second import of the same file finds its records).

use std::collections::HashMap;

use chrono::NaiveDate;

use super::super::rows::Row;
use crate::domain::*;
use crate::store::{Record, Store, StoreError};

/// A support contact's natural key: the client, the name and the relationship.
type ContactKey = (Id<Client>, String, String, &'static str);
/// An enrollment's natural key: the client, the program and the admission day.
type EnrollmentKey = (Id<Client>, Id<Program>, NaiveDate);
/// A consent's natural key: the client, its kind, its recipient and the day it was signed.
type ConsentKey = (Id<Client>, &'static str, String, NaiveDate);
/// A relapse-plan item's natural key: its plan, its kind, and its text or contact.
type RelapseItemKey = (Id<RelapsePreventionPlan>, &'static str, String);

pub fn contact_key(contact: &SupportContact) -> ContactKey {
    (
        contact.client_id,
        contact.name.given.as_str().to_owned(),
        contact.name.family.as_str().to_owned(),
        contact.relationship.code(),
    )
}

fn full_name(name: &PersonName) -> String {
    format!("{} {}", name.given.as_str(), name.family.as_str())
}

pub fn enrollment_key(enrollment: &Enrollment) -> EnrollmentKey {
    (
        enrollment.client_id,
        enrollment.program_id,
        enrollment.admitted_on,
    )
}

pub fn recipient_key(recipient: &ConsentRecipient) -> String {
    match recipient {
        ConsentRecipient::Organization(id) => format!("organization/{id}"),
        ConsentRecipient::Clinician(id) => format!("clinician/{id}"),
        ConsentRecipient::SupportContact(id) => format!("contact/{id}"),
    }
}

pub fn consent_key(consent: &Consent) -> ConsentKey {
    (
        consent.client_id,
        consent.kind.code(),
        recipient_key(&consent.recipient),
        consent.signed_on,
    )
}

pub fn relapse_item_key(item: &RelapsePlanItem) -> RelapseItemKey {
    let what = match (&item.text, item.support_contact_id) {
        (_, Some(contact)) => contact.to_string(),
        (Some(text), None) => text.as_str().to_owned(),
        (None, None) => String::new(),
    };
    (item.relapse_plan_id, item.kind.code(), what)
}

/// Every record of `R`, a page at a time.
async fn each<R: Record>(store: &Store, mut f: impl FnMut(R)) -> Result<(), StoreError> {
    let mut after = None;
    loop {
        let page = store.page::<R>(after, 5_000).await?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = Some(last.record.id());
        for stored in page {
            f(stored.record);
        }
    }
}

/// A relapse-prevention plan and the position its next item takes.
#[derive(Debug, Clone, Copy)]
pub struct RelapsePlanSlot {
    pub id: Id<RelapsePreventionPlan>,
    pub next_position: u16,
}

#[derive(Default)]
pub struct Lookups {
    pub clients: HashMap<String, Id<Client>>,
    pub programs: HashMap<String, Id<Program>>,
    pub staff: HashMap<String, Id<Staff>>,
    pub organizations: HashMap<String, Id<Organization>>,
    /// Therapy groups by name (a name two groups share finds neither).
    pub groups: HashMap<String, Vec<Id<TherapyGroup>>>,
    pub contacts: HashMap<ContactKey, Id<SupportContact>>,
    /// A client's contacts by "Given Family" (rows name a contact the way staff say it).
    pub contact_names: HashMap<(Id<Client>, String), Vec<Id<SupportContact>>>,
    pub enrollments: HashMap<EnrollmentKey, Id<Enrollment>>,
    /// Each client's enrollments: a plan or session belongs to the one open on its day.
    pub client_enrollments: HashMap<Id<Client>, Vec<Enrollment>>,
    pub enrollment_clients: HashMap<Id<Enrollment>, Id<Client>>,
    pub consents: HashMap<ConsentKey, Id<Consent>>,
    /// Treatment plans by client and first day.
    pub plans: HashMap<(Id<Client>, NaiveDate), Id<TreatmentPlan>>,
    pub interventions: HashMap<(Id<TreatmentPlan>, &'static str), Id<Intervention>>,
    pub goals: HashMap<(Id<TreatmentPlan>, String), Id<Goal>>,
    pub reviews: HashMap<(Id<TreatmentPlan>, NaiveDate), Id<PlanReview>>,
    pub notes: HashMap<(Id<Goal>, Id<PlanReview>), Id<GoalProgressNote>>,
    pub relapse_plans: HashMap<Id<TreatmentPlan>, RelapsePlanSlot>,
    relapse_plan_owners: HashMap<Id<RelapsePreventionPlan>, Id<TreatmentPlan>>,
    pub relapse_items: HashMap<RelapseItemKey, Id<RelapsePlanItem>>,
    pub sessions: HashMap<(Id<Enrollment>, Timestamp), Id<Session>>,
}

impl Lookups {
    /// Every key the database holds (a CSV import is a clinic's records: this fits in memory).
    pub async fn load(store: &Store) -> Result<Self, StoreError> {
        let mut lookups = Self::default();
        each::<Client>(store, |c| lookups.learn(&Row::Client(c))).await?;
        each::<Program>(store, |p| {
            lookups.programs.insert(p.code.as_str().to_owned(), p.id);
        })
        .await?;
        each::<Staff>(store, |s| {
            if let Some(npi) = &s.npi {
                lookups.staff.insert(npi.as_str().to_owned(), s.id);
            }
        })
        .await?;
        each::<Organization>(store, |o| {
            if let Some(npi) = &o.npi {
                lookups.organizations.insert(npi.as_str().to_owned(), o.id);
            }
        })
        .await?;
        each::<TherapyGroup>(store, |g| {
            lookups
                .groups
                .entry(g.name.as_str().to_owned())
                .or_default()
                .push(g.id);
        })
        .await?;
        each::<SupportContact>(store, |c| lookups.learn(&Row::Contact(c))).await?;
        each::<Enrollment>(store, |e| lookups.learn(&Row::Enrollment(e))).await?;
        each::<Consent>(store, |c| lookups.learn(&Row::Consent(c))).await?;
        each::<TreatmentPlan>(store, |p| lookups.learn(&Row::TreatmentPlan(p))).await?;
        each::<Intervention>(store, |i| lookups.learn(&Row::Intervention(i))).await?;
        each::<Goal>(store, |g| {
            lookups
                .goals
                .entry((g.plan_id, g.description.as_str().to_owned()))
                .or_insert(g.id);
        })
        .await?;
        each::<PlanReview>(store, |r| lookups.learn(&Row::Review(r))).await?;
        each::<GoalProgressNote>(store, |n| lookups.learn(&Row::ProgressNote(n))).await?;
        let mut relapse_plans = Vec::new();
        each::<RelapsePreventionPlan>(store, |p| relapse_plans.push(p)).await?;
        for plan in relapse_plans {
            lookups.add_relapse_plan(&plan);
        }
        let mut items = Vec::new();
        each::<RelapsePlanItem>(store, |i| items.push(i)).await?;
        for item in items {
            lookups.learn(&Row::RelapseItem(item, None));
        }
        each::<Session>(store, |s| lookups.learn(&Row::Session(s, Vec::new()))).await?;
        Ok(lookups)
    }

    fn add_contact(&mut self, c: &SupportContact) {
        if self.contacts.insert(contact_key(c), c.id).is_none() {
            self.contact_names
                .entry((c.client_id, full_name(&c.name)))
                .or_default()
                .push(c.id);
        }
    }

    fn add_enrollment(&mut self, e: &Enrollment) {
        if self.enrollments.insert(enrollment_key(e), e.id).is_none() {
            self.enrollment_clients.insert(e.id, e.client_id);
            self.client_enrollments
                .entry(e.client_id)
                .or_default()
                .push(e.clone());
        }
    }

    fn add_relapse_plan(&mut self, plan: &RelapsePreventionPlan) {
        self.relapse_plan_owners.insert(plan.id, plan.plan_id);
        self.relapse_plans.insert(
            plan.plan_id,
            RelapsePlanSlot {
                id: plan.id,
                next_position: 0,
            },
        );
    }

    /// A record this import writes (or the database holds), found by its key in the rows after it.
    pub fn learn(&mut self, row: &Row) {
        match row {
            Row::Client(c) => {
                self.clients
                    .entry(c.mrn.as_str().to_owned())
                    .or_insert(c.id);
            }
            Row::Contact(c) => self.add_contact(c),
            Row::Enrollment(e) => self.add_enrollment(e),
            Row::Consent(c) => {
                self.consents.entry(consent_key(c)).or_insert(c.id);
            }
            Row::TreatmentPlan(p) => {
                if let Some(client) = self.enrollment_clients.get(&p.enrollment_id).copied() {
                    self.plans.entry((client, p.period.start())).or_insert(p.id);
                }
            }
            Row::Intervention(i) => {
                self.interventions
                    .entry((i.plan_id, i.modality.code()))
                    .or_insert(i.id);
            }
            Row::Goal(g, plan) => {
                self.goals
                    .entry((*plan, g.changes.description.as_str().to_owned()))
                    .or_insert(g.id);
            }
            Row::Review(r) => {
                self.reviews
                    .entry((r.plan_id, r.reviewed_on))
                    .or_insert(r.id);
            }
            Row::ProgressNote(n) => {
                self.notes.entry((n.goal_id, n.review_id)).or_insert(n.id);
            }
            Row::RelapseItem(item, new_plan) => {
                if let Some(plan) = new_plan {
                    self.add_relapse_plan(plan);
                }
                if let Some(slot) = self
                    .relapse_plan_owners
                    .get(&item.relapse_plan_id)
                    .and_then(|owner| self.relapse_plans.get_mut(owner))
                {
                    slot.next_position = slot.next_position.max(item.position + 1);
                }
                self.relapse_items
                    .entry(relapse_item_key(item))
                    .or_insert(item.id);
            }
            Row::Session(s, _) => {
                self.sessions
                    .entry((s.enrollment_id, s.scheduled_start))
                    .or_insert(s.id);
            }
            _ => {}
        }
    }
}
