//! `referrals`: the clinic's side of the referral exchange — what arrived, what waits for a
//! patient-match review, and the decisions (accept, decline, match).

use anyhow::{Context, bail};
use chrono::Utc;
use clap::Subcommand;

use crate::domain::{
    Client, HeldReferralRequest, Id, IntakeState, NonEmptyText, Organization, Referral,
    ReferralIntake, ReferralStatus,
};
use crate::fhir_api::FhirState;
use crate::mapping;
use crate::referrals::intake::{self, Received};
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum ReferralsCommand {
    /// List referrals (newest first) and the referrals waiting for a patient-match review
    List {
        /// Only referrals in this state: requested, received, accepted, declined, completed,
        /// cancelled, or review (waiting for a patient match)
        #[arg(long, value_name = "S")]
        status: Option<String>,
    },
    /// Show one referral (or one waiting for review, with its candidate clients)
    Show {
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Accept a received referral (its Task becomes accepted, BSeR 3.0)
    Accept {
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Decline a received referral, saying why (its Task becomes rejected, BSeR 4.0, with the
    /// reason as statusReason)
    Decline {
        #[arg(value_name = "ID")]
        id: String,
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Refer a client to another provider (a step-down to outpatient care or a step-up to
    /// inpatient care): records the referral with its transition summary (the current treatment
    /// plan and goals, the relapse-prevention plan, the support contacts) and pushes it to the
    /// provider's target at once, as far as consent lets; `sync pull` brings their Task status back
    Send {
        /// The client (Patient id)
        #[arg(long, value_name = "ID")]
        client: String,
        /// The receiving provider's target (added with --organization: the provider)
        #[arg(long, value_name = "TARGET")]
        to: String,
        /// step-down (to outpatient care) or step-up (to inpatient care)
        #[arg(long, value_name = "KIND", default_value = "step-down", value_parser = ["step-down", "step-up"])]
        kind: String,
        /// Why (the ServiceRequest's reason)
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Finish a referral waiting for review: the client it is about, or a new client
    Match {
        #[arg(value_name = "ID")]
        id: String,
        /// The client (Patient id) the referral is about
        #[arg(
            long,
            value_name = "CLIENT",
            conflicts_with = "new_client",
            required_unless_present = "new_client"
        )]
        client: Option<String>,
        /// None of the candidates: create a new client from the referral's Patient
        #[arg(long)]
        new_client: bool,
    },
}

pub async fn run(
    engine: &crate::sync::Engine,
    state: &FhirState,
    command: ReferralsCommand,
) -> anyhow::Result<()> {
    let store = &state.store;
    match command {
        ReferralsCommand::Send {
            client,
            to,
            kind,
            reason,
        } => {
            let client: Id<Client> = client.parse().context("--client")?;
            let kind = match kind.as_str() {
                "step-up" => crate::domain::ReferralKind::StepUp,
                _ => crate::domain::ReferralKind::StepDown,
            };
            let reason = NonEmptyText::parse(&reason).context("--reason")?;
            let today = Utc::now().date_naive();
            let referral =
                crate::referrals::outbound::prepare(store, client, &to, kind, reason, today)
                    .await?;
            println!(
                "referral {} recorded ({} records in its transition summary); pushing to {to}",
                referral.id,
                referral.transition_summary.len()
            );
            let summary = crate::sync::run(
                engine,
                &to,
                crate::sync::Direction::Push,
                &crate::sync::RunOptions::default(),
                &|_, _| {},
            )
            .await?;
            println!("{}", serde_json::to_string(&summary)?);
            if let Some(error) = summary.error {
                bail!(
                    "the push to {to} stopped: {error}; the referral is recorded and goes with the next push"
                );
            }
            Ok(())
        }
        ReferralsCommand::List { status } => list(store, status.as_deref()).await,
        ReferralsCommand::Show { id } => show(store, &id).await,
        ReferralsCommand::Accept { id } => decide(store, &id, ReferralStatus::Accepted, None).await,
        ReferralsCommand::Decline { id, reason } => {
            let reason = NonEmptyText::parse(&reason).context("--reason")?;
            decide(store, &id, ReferralStatus::Declined, Some(reason)).await
        }
        ReferralsCommand::Match {
            id,
            client,
            new_client: _,
        } => {
            let intake_id: Id<ReferralIntake> = id.parse().context("the referral id")?;
            let client = client
                .map(|c| c.parse::<Id<Client>>())
                .transpose()
                .context("--client")?;
            match intake::resolve_review(state, intake_id, client, |_| None).await {
                Ok(Received::Stored {
                    referral, client, ..
                }) => {
                    println!(
                        "referral {referral} received for client {client}; decide it with referrals accept|decline"
                    );
                    Ok(())
                }
                Ok(other) => bail!("unexpected outcome {other:?}"),
                Err(e) => bail!("{}", e.message()),
            }
        }
    }
}

async fn decide(
    store: &Store,
    id: &str,
    decision: ReferralStatus,
    reason: Option<NonEmptyText>,
) -> anyhow::Result<()> {
    let id: Id<Referral> = id.parse().context("the referral id")?;
    let today = Utc::now().date_naive();
    let stored = crate::referrals::decide(store, id, decision, reason, today).await?;
    println!(
        "referral {id} {} (version {})",
        stored.record.status, stored.meta.version
    );
    Ok(())
}

async fn list(store: &Store, status: Option<&str>) -> anyhow::Result<()> {
    let review_only = status == Some("review");
    let status = match status {
        None | Some("review") => None,
        Some(s) => Some(
            s.parse::<ReferralStatus>()
                .map_err(|_| anyhow::anyhow!("--status {s}: not a referral status"))?,
        ),
    };
    println!(
        "{:<36}  {:<9}  {:<10}  {:<10}  client",
        "id", "direction", "status", "referred"
    );
    for waiting in store.intakes_in(Some(IntakeState::Review)).await? {
        println!(
            "{:<36}  {:<9}  {:<10}  {:<10}  ({} candidates)",
            waiting.record.id,
            "inbound",
            "review",
            waiting
                .meta
                .created_at
                .to_string()
                .get(..10)
                .unwrap_or_default(),
            waiting.record.candidates.len()
        );
    }
    if review_only {
        return Ok(());
    }
    if status.is_none() {
        // ServiceRequests sent on their own (the RESTful way) whose Task has not come yet.
        for held in store.page::<HeldReferralRequest>(None, 1000).await? {
            println!(
                "{:<36}  {:<9}  {:<10}  {:<10}  (ServiceRequest without its Task yet)",
                held.record.id,
                "inbound",
                "no-task",
                held.meta
                    .created_at
                    .to_string()
                    .get(..10)
                    .unwrap_or_default(),
            );
        }
    }
    let mut after: Option<Id<Referral>> = None;
    let mut rows = Vec::new();
    loop {
        let page = store.page::<Referral>(after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.record.id);
        rows.extend(
            page.into_iter()
                .map(|s| s.record)
                .filter(|r| status.is_none_or(|s| r.status == s)),
        );
    }
    rows.sort_by(|a, b| b.referred_on.cmp(&a.referred_on).then(a.id.cmp(&b.id)));
    for r in rows {
        println!(
            "{:<36}  {:<9}  {:<10}  {:<10}  {}",
            r.id, r.direction, r.status, r.referred_on, r.client_id
        );
    }
    Ok(())
}

async fn show(store: &Store, id: &str) -> anyhow::Result<()> {
    let intake_id: Id<ReferralIntake> = id.parse().context("the referral id")?;
    let intake = store.get(intake_id).await?;
    if let Some(intake) = &intake
        && intake.record.state == IntakeState::Review
    {
        println!("referral {id}: waits for a patient-match review (nothing merged)");
        if let Some(patient) = intake::message_patient(&intake.record) {
            let name = patient.pointer("/name/0");
            println!(
                "  referred patient: {} {}, born {}, {}",
                name.and_then(|n| n.pointer("/given/0"))
                    .and_then(|v| v.as_str())
                    .unwrap_or("?"),
                name.and_then(|n| n.get("family"))
                    .and_then(|v| v.as_str())
                    .unwrap_or("?"),
                patient
                    .get("birthDate")
                    .and_then(|v| v.as_str())
                    .unwrap_or("?"),
                patient
                    .get("gender")
                    .and_then(|v| v.as_str())
                    .unwrap_or("?"),
            );
        }
        let candidates = store.get_many(&intake.record.candidates).await?;
        for c in candidates {
            let c = c.record;
            println!(
                "  candidate {}: MRN {}, {} {}, born {}, {}",
                c.id, c.mrn, c.name.given, c.name.family, c.birth_date, c.gender
            );
        }
        println!("  finish with: referrals match {id} --client CLIENT | --new-client");
        return Ok(());
    }
    let referral_id: Id<Referral> = id.parse().context("the referral id")?;
    let Some(stored) = store.get(referral_id).await? else {
        bail!("no referral {id}");
    };
    let r = &stored.record;
    let progress = store
        .referral_progress(&[r.id])
        .await?
        .remove(&r.id)
        .unwrap_or_default();
    let (task, code, display) = mapping::task_state(r, &progress);
    let referring: Option<Organization> = store.get(r.referring_org_id).await?.map(|o| o.record);
    println!("referral {}", r.id);
    println!("  direction  {} ({})", r.direction, r.kind);
    println!(
        "  status     {} (Task {task}, BSeR {code} {display})",
        r.status
    );
    println!("  referred   {}", r.referred_on);
    if let Some(on) = r.decided_on {
        println!("  decided    {on}");
    }
    if let Some(reason) = &r.status_reason {
        println!("  why        {reason}");
    }
    println!("  client     {}", r.client_id);
    println!(
        "  from       {} ({})",
        referring.map(|o| o.name.to_string()).unwrap_or_default(),
        r.referring_org_id
    );
    println!("  reason     {}", r.reason);
    if let Some(intake) = intake {
        println!(
            "  intake     {} ({})",
            intake.record.state, intake.meta.created_at
        );
    }
    Ok(())
}
