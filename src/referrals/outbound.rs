//! Outbound transitions: a client leaving the program with a step-down to outpatient care or a
//! step-up to inpatient care is referred to the receiving provider's target. The referral
//! (ServiceRequest + Task, BSeR) names its transition summary — the current treatment plan with
//! its goals and progress, the relapse-prevention plan, the support contacts — and a push sends
//! it with what consent lets the receiver have; a pull then brings the receiver's Task status
//! back.

use chrono::NaiveDate;

use crate::domain::{
    Client, Enrollment, Id, NonEmptyText, Referral, ReferralDirection, ReferralKind,
    ReferralStatus, RelapsePreventionPlan, SummaryItem, SupportContact, TreatmentPlan,
};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("no target {0}")]
    NoTarget(String),
    #[error(
        "target {0} names no receiving organization: add it again with --organization (the provider the client is referred to)"
    )]
    NoReceiver(String),
    #[error("no client {0}")]
    NoClient(String),
    #[error("the clinic database has no clinic organization")]
    NoClinic,
    #[error("{0}")]
    Refused(#[from] crate::domain::DomainError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Records an outbound referral of `client` to the organization `target` stands for, with its
/// transition summary: the client's most recent enrollment's current plan (active, else the
/// latest), that plan's relapse-prevention plans, and the client's support contacts active on
/// `today`. Returns it; the caller pushes it.
pub async fn prepare(
    store: &Store,
    client: Id<Client>,
    target: &str,
    kind: ReferralKind,
    reason: NonEmptyText,
    today: NaiveDate,
) -> Result<Referral, SendError> {
    let config = store
        .sync_target(target)
        .await?
        .ok_or_else(|| SendError::NoTarget(target.to_owned()))?;
    let receiver = config
        .organization_id
        .as_deref()
        .and_then(|o| o.parse().ok())
        .ok_or_else(|| SendError::NoReceiver(target.to_owned()))?;
    if store.get(client).await?.is_none() {
        return Err(SendError::NoClient(client.to_string()));
    }
    let clinic = crate::disclose::clinic_organizations(store)
        .await?
        .into_iter()
        .next()
        .and_then(|id| id.parse().ok())
        .ok_or(SendError::NoClinic)?;
    let mut summary = Vec::new();
    let enrollments = store.children::<Enrollment>(client).await?;
    if let Some(enrollment) = enrollments.iter().max_by_key(|e| e.record.admitted_on) {
        let plans = store
            .children::<TreatmentPlan>(enrollment.record.id)
            .await?;
        let plan = plans
            .iter()
            .filter(|p| p.record.status == crate::domain::PlanStatus::Active)
            .max_by_key(|p| p.record.period.start())
            .or_else(|| plans.iter().max_by_key(|p| p.record.period.start()));
        if let Some(plan) = plan {
            summary.push(SummaryItem::TreatmentPlan(plan.record.id));
            for relapse in store
                .children::<RelapsePreventionPlan>(plan.record.id)
                .await?
            {
                summary.push(SummaryItem::RelapsePlan(relapse.record.id));
            }
        }
    }
    for contact in store.children::<SupportContact>(client).await? {
        if contact.record.active.contains(today) {
            summary.push(SummaryItem::Contact(contact.record.id));
        }
    }
    let referral = Referral {
        id: Id::from_uuid(uuid::Uuid::now_v7()),
        client_id: client,
        direction: ReferralDirection::Outbound,
        kind,
        status: ReferralStatus::Requested,
        reason,
        referred_on: today,
        decided_on: None,
        referring_org_id: clinic,
        receiving_org_id: receiver,
        program_id: None,
        status_reason: None,
        transition_summary: summary,
    };
    referral.check()?;
    store.insert(&referral).await?;
    Ok(referral)
}

/// The referrals a target that stands for a step-down (or step-up) provider is due: one per
/// client discharged that way on or after the day the target was added, unless the client was
/// already referred to its organization since that discharge. Recorded with their transition
/// summaries; the push that called this sends them. Runs under the target's lease, so two
/// replicas never record the same referral twice.
pub async fn send_due(
    store: &Store,
    target: &crate::store::SyncTarget,
    today: NaiveDate,
) -> Result<Vec<Referral>, SendError> {
    let Some(kinds) = target.send_transitions.as_deref() else {
        return Ok(Vec::new());
    };
    let Some(receiver) = target
        .organization_id
        .as_deref()
        .and_then(|o| o.parse::<Id<crate::domain::Organization>>().ok())
    else {
        return Err(SendError::NoReceiver(target.name.clone()));
    };
    let since: NaiveDate = target
        .created_at
        .get(..10)
        .and_then(|d| d.parse().ok())
        .unwrap_or(today);
    let wanted = |disposition: crate::domain::DischargeDisposition| match disposition {
        crate::domain::DischargeDisposition::StepDownOutpatient => {
            matches!(kinds, "step-down" | "both").then_some(ReferralKind::StepDown)
        }
        crate::domain::DischargeDisposition::StepUpInpatient => {
            matches!(kinds, "step-up" | "both").then_some(ReferralKind::StepUp)
        }
        _ => None,
    };
    let discharged = store
        .page_where::<Enrollment>(
            &[
                crate::store::Filter::equals("status", crate::store::SqlValue::text("discharged")),
                crate::store::Filter::compare(
                    "discharged_on",
                    ">=",
                    crate::store::SqlValue::date(since),
                ),
            ],
            None,
            u32::MAX,
        )
        .await?;
    let mut sent = Vec::new();
    for enrollment in discharged {
        let crate::domain::EnrollmentState::Discharged { on, disposition } =
            enrollment.record.state
        else {
            continue;
        };
        let Some(kind) = wanted(disposition) else {
            continue;
        };
        let client = enrollment.record.client_id;
        let already = store
            .children::<Referral>(client)
            .await?
            .into_iter()
            .any(|r| {
                r.record.direction == ReferralDirection::Outbound
                    && r.record.receiving_org_id == receiver
                    && r.record.referred_on >= on
            });
        if already {
            continue;
        }
        let reason = match kind {
            ReferralKind::StepDown => "Step-down to outpatient care at discharge from the IOP",
            ReferralKind::StepUp => "Step-up to inpatient care at discharge from the IOP",
        };
        let reason = NonEmptyText::parse(reason).expect("a constant");
        sent.push(prepare(store, client, &target.name, kind, reason, today.max(on)).await?);
    }
    Ok(sent)
}
