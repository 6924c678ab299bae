//! The audit trail, for privacy officers: search the records by API client or operator,
//! patient, date and type; and a patient's accounting of disclosures (what went to whom, when,
//! under which consent), laid out to print.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::ConsoleState;
use super::layout::{self, when};
use super::session::SignedIn;
use crate::domain::{AuditInteraction, AuditRecord, Role, Timestamp};
use crate::store::{AuditQuery, Comparison};

const PAGE: u32 = 50;
/// The most records an accounting lists (a patient with more is told so).
const ACCOUNTING_LIMIT: usize = 5000;

#[derive(Deserialize, Default)]
pub struct SearchForm {
    #[serde(default)]
    agent: String,
    #[serde(default)]
    patient: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default, rename = "type")]
    interaction: String,
    /// Keyset cursor: `recorded|id` of the last record shown.
    #[serde(default)]
    before: String,
}

fn day(text: &str, end_of_day: bool) -> Option<Timestamp> {
    let date = chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok()?;
    let time = if end_of_day {
        date.and_hms_micro_opt(23, 59, 59, 999_999)
    } else {
        date.and_hms_opt(0, 0, 0)
    }?;
    Some(Timestamp::from(time.and_utc()))
}

pub async fn search(
    State(state): State<ConsoleState>,
    signed: SignedIn,
    Query(form): Query<SearchForm>,
) -> Response {
    if let Some(refused) = signed.refusal_without(Role::PrivacyOfficer) {
        return refused;
    }
    let mut query = AuditQuery {
        limit: PAGE,
        ..Default::default()
    };
    let text = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    query.client_id = text(&form.agent);
    query.patient = text(&form.patient);
    if let Some(from) = day(&form.from, false) {
        query.recorded.push((Comparison::Ge, from));
    }
    if let Some(to) = day(&form.to, true) {
        query.recorded.push((Comparison::Le, to));
    }
    if let Some(code) = text(&form.interaction) {
        match AuditInteraction::parse(&code) {
            Some(interaction) => query.interactions = Some(vec![interaction]),
            None => return layout::refused(StatusCode::BAD_REQUEST, "Unknown event type."),
        }
    }
    if let Some((recorded, id)) = form.before.split_once('|')
        && let Ok(recorded) = recorded.parse::<Timestamp>()
    {
        query.before = Some((recorded, id.to_owned()));
    }
    let records = match state.store.audit_page(&query).await {
        Ok(records) => records,
        Err(error) => return layout::store_failed(&error),
    };
    let next = (records.len() == PAGE as usize)
        .then(|| records.last())
        .flatten()
        .map(|last| {
            let mut params = vec![
                ("agent", form.agent.clone()),
                ("patient", form.patient.clone()),
                ("from", form.from.clone()),
                ("to", form.to.clone()),
                ("type", form.interaction.clone()),
            ];
            params.push((
                "before",
                format!("{}|{}", last.recorded.to_db_text(), last.id),
            ));
            format!(
                "/audit?{}",
                serde_urlencoded::to_string(&params).unwrap_or_default()
            )
        });
    layout::page(
        &signed,
        "Audit",
        html! {
            form.search method="get" action="/audit" {
                label { "API client or operator" input name="agent" value=(form.agent) placeholder="client id, or operator:NAME"; }
                label { "Patient id" input name="patient" value=(form.patient); }
                label { "From" input type="date" name="from" value=(form.from); }
                label { "To" input type="date" name="to" value=(form.to); }
                label { "Type" select name="type" {
                    option value="" { "any" }
                    @for i in AuditInteraction::ALL {
                        option value=(i.code()) selected[i.code() == form.interaction] { (i.code()) }
                    }
                } }
                button type="submit" { "Search" }
            }
            @if let Some(patient) = text(&form.patient) {
                p { a href={ "/audit/accounting?patient=" (patient) } { "Accounting of disclosures for Patient/" (patient) } }
            }
            (records_table(&records))
            @if let Some(next) = next { p { a href=(next) { "Older records" } } }
        },
    )
    .into_response()
}

fn records_table(records: &[AuditRecord]) -> Markup {
    html! {
        table.audit {
            thead { tr { th { "Recorded" } th { "Type" } th { "Outcome" } th { "Who" } th { "Organization" } th { "Purpose" } th { "What" } th { "Consents" } th { "Patients" } } }
            tbody {
                @for r in records {
                    tr.record data-interaction=(r.interaction.code()) {
                        td { (when(&r.recorded.to_db_text())) }
                        td { (r.interaction.code()) }
                        td { (match r.outcome.code() { 0 => "success", 4 => "refused", _ => "failed" })
                             @if let Some(why) = &r.outcome_desc { div.why { (why) } } }
                        td { (r.client_id.as_deref().unwrap_or("—")) }
                        td { (r.organization_id.as_deref().unwrap_or("—")) }
                        td { (r.purpose_of_use.as_deref().unwrap_or("—")) }
                        td { (r.resource_type.as_deref().unwrap_or("")) " "
                             @if r.entities.len() == 1 { code { (r.entities[0]) } } @else if !r.entities.is_empty() { (r.entities.len()) " records" }
                             @if let Some(query) = &r.query { div { code { (query) } } } }
                        td { (r.consents.join(", ")) }
                        td { @for p in &r.patients { a href={ "/audit/accounting?patient=" (p) } { (p) } " " } }
                    }
                }
                @if records.is_empty() { tr { td colspan="9" { "No records match." } } }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct AccountingForm {
    patient: String,
}

/// Every disclosure about one patient, oldest first: to whom (client and organization), when,
/// for what purpose, what, and the consents that allowed it.
pub async fn accounting(
    State(state): State<ConsoleState>,
    signed: SignedIn,
    Query(form): Query<AccountingForm>,
) -> Response {
    if let Some(refused) = signed.refusal_without(Role::PrivacyOfficer) {
        return refused;
    }
    let patient = form.patient.trim().to_owned();
    let mut records = Vec::new();
    let mut before = None;
    loop {
        let page = match state
            .store
            .audit_page(&AuditQuery {
                patient: Some(patient.clone()),
                before: before.clone(),
                limit: 1000,
                ..Default::default()
            })
            .await
        {
            Ok(page) => page,
            Err(error) => return layout::store_failed(&error),
        };
        let full = page.len() == 1000;
        before = page.last().map(|r| (r.recorded, r.id.clone()));
        records.extend(page.into_iter().filter(|r| r.outcome.code() == 0));
        if !full || records.len() >= ACCOUNTING_LIMIT {
            break;
        }
    }
    let truncated = records.len() >= ACCOUNTING_LIMIT;
    records.truncate(ACCOUNTING_LIMIT);
    records.reverse();
    layout::page(
        &signed,
        &format!("Accounting of disclosures: Patient/{patient}"),
        html! {
            p.hint { "Every successful disclosure of this patient's records the gateway recorded, oldest first (HIPAA §164.528, 42 CFR Part 2 §2.24). Printed from the browser, the page leaves out the navigation." }
            @if truncated { p.problem { "Only the latest " (ACCOUNTING_LIMIT) " disclosures are listed; narrow the dates on the audit search for older ones." } }
            table.accounting {
                thead { tr { th { "When" } th { "To (client)" } th { "Organization" } th { "Purpose" } th { "What" } th { "Under consent" } } }
                tbody {
                    @for r in &records {
                        tr {
                            td { (when(&r.recorded.to_db_text())) }
                            td { (r.client_id.as_deref().unwrap_or("—")) }
                            td { (r.organization_id.as_deref().map(|o| format!("Organization/{o}")).unwrap_or_else(|| "—".into())) }
                            td { (r.purpose_of_use.as_deref().unwrap_or("—")) }
                            td { (r.interaction.code()) " " (r.resource_type.as_deref().unwrap_or("")) ": "
                                 @for e in r.entities.iter().take(20) { code { (e) } " " }
                                 @if r.entities.len() > 20 { "and " (r.entities.len() - 20) " more" } }
                            td { @if r.consents.is_empty() { "clinic policy" } @else { @for c in &r.consents { code { "Consent/" (c) } " " } } }
                        }
                    }
                    @if records.is_empty() { tr { td colspan="6" { "No disclosures recorded." } } }
                }
            }
        },
    )
    .into_response()
}
