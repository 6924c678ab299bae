//! Referrals: the queue (needing a patient match, waiting for a decision, decided), a
//! referral's detail with its candidate clients, and the decisions — accept, decline with a
//! reason, match to a client or to a new one — by the same functions as `iop-gateway referrals`.
//!
//! Names and birth dates (to match a referred patient) are shown to operators and privacy
//! officers only; a viewer sees ids and states.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::{Markup, html};
use serde::Deserialize;

use super::ConsoleState;
use super::layout::{self, csrf};
use super::session::{SignedIn, action_record};
use crate::audit::RequestContext;
use crate::domain::{
    Client, Id, IntakeState, NonEmptyText, Organization, Referral, ReferralIntake, ReferralStatus,
    Role,
};
use crate::referrals::intake::{self, Received};
use crate::store::StoreError;

#[derive(Deserialize)]
pub struct Notice {
    done: Option<String>,
}

pub async fn queue(
    State(state): State<ConsoleState>,
    signed: SignedIn,
    Query(notice): Query<Notice>,
) -> Response {
    match queue_body(&state).await {
        Ok(body) => layout::page(
            &signed,
            "Referrals",
            html! { (layout::notice(notice.done.as_deref())) (body) },
        )
        .into_response(),
        Err(error) => layout::store_failed(&error),
    }
}

async fn queue_body(state: &ConsoleState) -> Result<Markup, StoreError> {
    let review = state.store.intakes_in(Some(IntakeState::Review)).await?;
    let mut referrals = Vec::new();
    let mut after = None;
    loop {
        let page = state.store.page::<Referral>(after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.record.id);
        referrals.extend(page.into_iter().map(|s| s.record));
    }
    referrals.sort_by(|a, b| b.referred_on.cmp(&a.referred_on).then(a.id.cmp(&b.id)));
    let waiting: Vec<&Referral> = referrals
        .iter()
        .filter(|r| r.status == ReferralStatus::Received)
        .collect();
    let decided: Vec<&Referral> = referrals
        .iter()
        .filter(|r| r.status != ReferralStatus::Received)
        .take(50)
        .collect();
    Ok(html! {
        h2 { "Needing a patient match (" (review.len()) ")" }
        table.review {
            thead { tr { th { "Referral" } th { "Received" } th { "Candidate clients" } } }
            tbody {
                @for intake in &review {
                    tr { td { a href={ "/referrals/" (intake.record.id) } { (intake.record.id) } }
                         td { (layout::when(&intake.meta.created_at.to_string())) }
                         td { (intake.record.candidates.len()) } }
                }
                @if review.is_empty() { tr { td colspan="3" { "None." } } }
            }
        }
        h2 { "Waiting for a decision (" (waiting.len()) ")" }
        (table(&waiting))
        h2 { "Decided and sent (latest 50)" }
        (table(&decided))
    })
}

fn table(referrals: &[&Referral]) -> Markup {
    html! {
        table.referrals {
            thead { tr { th { "Referral" } th { "Direction" } th { "Kind" } th { "Status" } th { "Referred" } th { "Client" } } }
            tbody {
                @for r in referrals {
                    tr data-status=(r.status) {
                        td { a href={ "/referrals/" (r.id) } { (r.id) } }
                        td { (r.direction) } td { (r.kind) } td { span.badge { (r.status) } }
                        td { (r.referred_on) } td { code { "Patient/" (r.client_id) } }
                    }
                }
                @if referrals.is_empty() { tr { td colspan="6" { "None." } } }
            }
        }
    }
}

pub async fn detail(
    State(state): State<ConsoleState>,
    signed: SignedIn,
    Path(id): Path<String>,
) -> Response {
    let Ok(intake_id) = id.parse::<Id<ReferralIntake>>() else {
        return layout::refused(StatusCode::NOT_FOUND, "That is not a referral id.");
    };
    match detail_body(&state, &signed, intake_id).await {
        Ok(Some(body)) => layout::page(&signed, "Referral", body).into_response(),
        Ok(None) => layout::refused(StatusCode::NOT_FOUND, "There is no such referral."),
        Err(error) => layout::store_failed(&error),
    }
}

async fn detail_body(
    state: &ConsoleState,
    signed: &SignedIn,
    intake_id: Id<ReferralIntake>,
) -> Result<Option<Markup>, StoreError> {
    let sees_people = signed.may(Role::Operator) || signed.may(Role::PrivacyOfficer);
    let acts = signed.may(Role::Operator);
    let intake = state.store.get(intake_id).await?;
    if let Some(intake) = intake
        .as_ref()
        .filter(|i| i.record.state == IntakeState::Review)
    {
        let patient = intake::message_patient(&intake.record);
        let text = |pointer: &str| {
            patient
                .as_ref()
                .and_then(|p| p.pointer(pointer))
                .and_then(|v| v.as_str())
                .unwrap_or("?")
                .to_owned()
        };
        let candidates: Vec<Client> = state
            .store
            .get_many(&intake.record.candidates)
            .await?
            .into_iter()
            .map(|c| c.record)
            .collect();
        let action = format!("/referrals/{intake_id}/match");
        return Ok(Some(html! {
            p { "This referral waits for a patient-match review: nothing is merged until it is matched." }
            @if sees_people {
                dl.facts {
                    dt { "Referred patient" } dd { (text("/name/0/given/0")) " " (text("/name/0/family")) }
                    dt { "Born" } dd { (text("/birthDate")) }
                    dt { "Gender" } dd { (text("/gender")) }
                }
            }
            table.candidates {
                thead { tr { th { "Candidate client" } @if sees_people { th { "MRN" } th { "Name" } th { "Born" } } @if acts { th { "Match" } } } }
                tbody {
                    @for c in &candidates {
                        tr {
                            td { code { "Patient/" (c.id) } }
                            @if sees_people { td { (c.mrn) } td { (c.name.given) " " (c.name.family) } td { (c.birth_date) } }
                            @if acts { td { form method="post" action=(action) { (csrf(signed)) input type="hidden" name="client" value=(c.id); button { "This client" } } } }
                        }
                    }
                }
            }
            @if acts {
                form.actions method="post" action=(action) { (csrf(signed)) input type="hidden" name="client" value=""; button { "None of them: a new client" } }
            }
        }));
    }
    let Some(stored) = state
        .store
        .get(Id::<Referral>::from_uuid(intake_id.uuid()))
        .await?
    else {
        return Ok(None);
    };
    let r = stored.record;
    let from: Option<Organization> = state.store.get(r.referring_org_id).await?.map(|o| o.record);
    let action = format!("/referrals/{}/decide", r.id);
    Ok(Some(html! {
        dl.facts {
            dt { "Id" } dd { code { (r.id) } }
            dt { "Direction" } dd { (r.direction) " (" (r.kind) ")" }
            dt { "Status" } dd { span.badge id="status" { (r.status) } }
            dt { "Referred" } dd { (r.referred_on) }
            @if let Some(on) = r.decided_on { dt { "Decided" } dd { (on) } }
            @if sees_people { @if let Some(why) = &r.status_reason { dt { "Why" } dd { (why) } } }
            dt { "Client" } dd { code { "Patient/" (r.client_id) } }
            dt { "From" } dd { (from.map(|o| o.name.to_string()).unwrap_or_default()) }
            @if sees_people { dt { "Reason" } dd { (r.reason) } }
        }
        @if acts && r.status == ReferralStatus::Received {
            form.actions method="post" action=(action) {
                (csrf(signed))
                button name="decision" value="accept" { "Accept" }
            }
            form.actions method="post" action=(action) {
                (csrf(signed))
                input name="reason" placeholder="why decline (sent to the referring side)" required;
                button name="decision" value="decline" { "Decline" }
            }
        }
    }))
}

#[derive(Deserialize)]
pub struct DecideForm {
    decision: String,
    #[serde(default)]
    reason: String,
}

pub async fn decide(
    State(state): State<ConsoleState>,
    signed: SignedIn,
    Extension(context): Extension<RequestContext>,
    Path(id): Path<String>,
    Form(form): Form<DecideForm>,
) -> Response {
    if let Some(refused) = signed.refusal_without(Role::Operator) {
        return refused;
    }
    let Ok(referral) = id.parse::<Id<Referral>>() else {
        return layout::refused(StatusCode::NOT_FOUND, "That is not a referral id.");
    };
    let (decision, reason) = match form.decision.as_str() {
        "accept" => (ReferralStatus::Accepted, None),
        "decline" => match NonEmptyText::parse(&form.reason) {
            Ok(reason) => (ReferralStatus::Declined, Some(reason)),
            Err(_) => {
                return layout::refused(
                    StatusCode::BAD_REQUEST,
                    "Say why the referral is declined.",
                );
            }
        },
        _ => return layout::refused(StatusCode::BAD_REQUEST, "Accept or decline?"),
    };
    let today = chrono::Utc::now().date_naive();
    let outcome = crate::referrals::decide(&state.store, referral, decision, reason, today).await;
    let record = action_record(
        &signed,
        &context,
        &format!("{}-referral", form.decision),
        &[],
        vec![format!("ServiceRequest/{referral}")],
        outcome.as_ref().map(|_| ()).map_err(|e| e.to_string()),
    );
    if let Err(error) = state.store.append_audit(&record).await {
        return layout::store_failed(&error);
    }
    match outcome {
        Ok(stored) => Redirect::to(&format!(
            "/referrals?done=referral%20{}",
            stored.record.status
        ))
        .into_response(),
        Err(crate::referrals::DecideError::NotFound(_)) => {
            layout::refused(StatusCode::NOT_FOUND, "There is no such referral.")
        }
        Err(crate::referrals::DecideError::Refused(why)) => {
            layout::refused(StatusCode::CONFLICT, &why.to_string())
        }
        Err(crate::referrals::DecideError::Store(error)) => layout::store_failed(&error),
    }
}

#[derive(Deserialize)]
pub struct MatchForm {
    #[serde(default)]
    client: String,
}

pub async fn match_client(
    State(state): State<ConsoleState>,
    signed: SignedIn,
    Extension(context): Extension<RequestContext>,
    Path(id): Path<String>,
    Form(form): Form<MatchForm>,
) -> Response {
    if let Some(refused) = signed.refusal_without(Role::Operator) {
        return refused;
    }
    let Ok(intake_id) = id.parse::<Id<ReferralIntake>>() else {
        return layout::refused(StatusCode::NOT_FOUND, "That is not a referral id.");
    };
    let client = match form.client.trim() {
        "" => None,
        text => match text.parse::<Id<Client>>() {
            Ok(client) => Some(client),
            Err(_) => return layout::refused(StatusCode::BAD_REQUEST, "That is not a client id."),
        },
    };
    let params = [(
        "new-client",
        if client.is_none() { "true" } else { "false" },
    )];
    let entities = vec![format!("ServiceRequest/{intake_id}")];
    // Written in the match's own transaction: no record, no match.
    let done = action_record(
        &signed,
        &context,
        "match-referral",
        &params,
        entities.clone(),
        Ok(()),
    );
    let outcome =
        intake::resolve_review(&state.fhir, intake_id, client, |_| Some(done.clone())).await;
    if let Err(error) = &outcome {
        let failed = action_record(
            &signed,
            &context,
            "match-referral",
            &params,
            entities,
            Err(error.message()),
        );
        if let Err(error) = state.store.append_audit(&failed).await {
            return layout::store_failed(&error);
        }
    }
    match outcome {
        Ok(Received::Stored { referral, .. }) => {
            Redirect::to(&format!("/referrals/{referral}")).into_response()
        }
        Ok(_) => Redirect::to("/referrals").into_response(),
        Err(error) => layout::refused(error.status, &error.message()),
    }
}
