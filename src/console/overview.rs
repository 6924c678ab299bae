//! The overview: every target's health, lag and today's counts, the referrals waiting for a
//! decision, the API clients' last requests, the exports running; charts of the last day. The
//! status part refreshes itself every few seconds (`live.js`).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::{Duration, Timelike, Utc};
use maud::{Markup, html};

use super::ConsoleState;
use super::chart::{self, Series};
use super::layout::{self, encode, when};
use super::session::SignedIn;
use super::targets::{TargetStatus, sent, summary_of};
use crate::domain::{IntakeState, Referral, ReferralStatus, Timestamp};
use crate::store::{AuditQuery, JobState, StoreError};

pub async fn page(State(state): State<ConsoleState>, signed: SignedIn) -> Response {
    let (status, charts) = match (status(&state).await, charts(&state).await) {
        (Ok(status), Ok(charts)) => (status, charts),
        (Err(error), _) | (_, Err(error)) => return layout::store_failed(&error),
    };
    layout::page(
        &signed,
        "Overview",
        html! {
            section data-live="/live/overview" data-every="3000" { (status) }
            section.charts { h2 { "The last 24 hours" } (charts) }
        },
    )
    .into_response()
}

pub async fn live(State(state): State<ConsoleState>, _signed: SignedIn) -> Response {
    match status(&state).await {
        Ok(status) => status.into_response(),
        Err(error) => layout::store_failed(&error),
    }
}

async fn status(state: &ConsoleState) -> Result<Markup, StoreError> {
    let store = &state.store;
    let newest = store.newest_change().await?;
    let mut targets = Vec::new();
    for target in store.sync_targets().await? {
        targets.push(TargetStatus::load(store, target, newest).await?);
    }
    let midnight = Timestamp::from(
        Utc::now()
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default()
            .and_utc(),
    );
    let mut today: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for run in store.sync_runs_since(midnight).await? {
        if let Some(summary) = summary_of(&run) {
            let counts = today.entry(run.target.clone()).or_default();
            counts.0 += sent(&summary);
            counts.1 += summary["rejected"].as_u64().unwrap_or(0);
        }
    }
    let review = store.intakes_in(Some(IntakeState::Review)).await?.len();
    let received = received_referrals(state).await?;
    let mut clients = Vec::new();
    for client in store.api_clients().await? {
        let last = store
            .audit_page(&AuditQuery {
                client_id: Some(client.client_id.to_string()),
                limit: 1,
                ..Default::default()
            })
            .await?
            .into_iter()
            .next();
        clients.push((client, last));
    }
    let exports = store.export_job_counts().await?;
    let exports_of = |state: JobState| {
        exports
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n)
    };
    Ok(html! {
        h2 { "Sync targets" }
        table.targets {
            thead { tr { th { "Target" } th { "Health" } th { "Lag (changes)" } th { "Last run" } th { "Sent today" } th { "Rejected today" } th { "Dead letters" } } }
            tbody {
                @for t in &targets {
                    @let (health, class) = t.health();
                    @let (sent_today, rejected_today) = today.get(&t.target.name).copied().unwrap_or_default();
                    tr data-target=(t.target.name) {
                        td { a href={ "/targets/" (encode(&t.target.name)) } { (t.target.name) } }
                        td { span.badge.(class) { (health) } }
                        td { (t.lag) }
                        td { @if let Some(run) = &t.last { (run.direction) " at " (when(&run.started_at)) } @else { "never" } }
                        td { (sent_today) }
                        td { (rejected_today) }
                        td { a href={ "/dead-letters?target=" (encode(&t.target.name)) } { (t.dead_letters) } }
                    }
                }
                @if targets.is_empty() { tr { td colspan="7" { "No targets yet (iop-gateway targets add)." } } }
            }
        }
        div.tiles {
            a.tile href="/referrals" { strong { (review) } " referrals need a patient match" }
            a.tile href="/referrals" { strong { (received) } " referrals wait for a decision" }
            div.tile { strong { (exports_of(JobState::Running) + exports_of(JobState::Queued)) } " Bulk Data exports running or queued" }
        }
        h2 { "API clients" }
        table.clients {
            thead { tr { th { "Client" } th { "Organization" } th { "Enabled" } th { "Last request" } } }
            tbody {
                @for (client, last) in &clients {
                    tr {
                        td { (client.client_id) }
                        td { (client.organization_id.as_deref().unwrap_or("—")) }
                        td { (if client.enabled { "yes" } else { "no" }) }
                        td { @if let Some(last) = last { (when(&last.recorded.to_db_text())) " (" (last.interaction.code()) ")" } @else { "never" } }
                    }
                }
            }
        }
    })
}

/// Inbound referrals that arrived and wait for accept or decline.
pub async fn received_referrals(state: &ConsoleState) -> Result<usize, StoreError> {
    let mut after = None;
    let mut waiting = 0;
    loop {
        let page = state.store.page::<Referral>(after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.record.id);
        waiting += page
            .iter()
            .filter(|r| r.record.status == ReferralStatus::Received)
            .count();
    }
    Ok(waiting)
}

/// Hourly bars of the last day: per target, what was sent and rejected; the API's requests.
async fn charts(state: &ConsoleState) -> Result<Markup, StoreError> {
    let now = Utc::now();
    let first_hour = (now - Duration::hours(23))
        .with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(now);
    let slot_of = |at: &str| -> Option<usize> {
        let at: Timestamp = at.parse().ok()?;
        let hours = (at.as_datetime() - first_hour).num_hours();
        (0..24).contains(&hours).then_some(hours as usize)
    };
    let mut per_target: BTreeMap<String, (Vec<u64>, Vec<u64>)> = BTreeMap::new();
    for target in state.store.sync_targets().await? {
        per_target.insert(target.name, (vec![0; 24], vec![0; 24]));
    }
    for run in state
        .store
        .sync_runs_since(Timestamp::from(first_hour))
        .await?
    {
        let (Some(slot), Some(summary)) = (slot_of(&run.started_at), summary_of(&run)) else {
            continue;
        };
        let (sent_bars, rejected_bars) = per_target
            .entry(run.target.clone())
            .or_insert_with(|| (vec![0; 24], vec![0; 24]));
        sent_bars[slot] += sent(&summary);
        rejected_bars[slot] += summary["rejected"].as_u64().unwrap_or(0);
    }
    let (mut requests, mut failed) = (vec![0; 24], vec![0; 24]);
    for (hour, n, refused) in state
        .store
        .audit_counts_by_hour(Timestamp::from(first_hour))
        .await?
    {
        if let Some(slot) = slot_of(&format!("{hour}:00:00Z")) {
            requests[slot] += n.max(0) as u64;
            failed[slot] += refused.max(0) as u64;
        }
    }
    let labels = (format!("{}:00", first_hour.format("%H")), "now".to_owned());
    Ok(html! {
        @for (target, (sent_bars, rejected_bars)) in per_target {
            (chart::bars(&format!("Sync to {target}: resources per hour"), &[
                Series { name: "sent", class: "good", values: sent_bars },
                Series { name: "rejected", class: "bad", values: rejected_bars },
            ], (&labels.0, &labels.1)))
        }
        (chart::bars("FHIR API: audited requests per hour", &[
            Series { name: "requests", class: "good", values: requests },
            Series { name: "refused or failed", class: "bad", values: failed },
        ], (&labels.0, &labels.1)))
        p.hint { "Latency histograms per route are at " a href="/metrics" { "/metrics" } " (iop_http_request_duration_seconds)." }
    })
}
