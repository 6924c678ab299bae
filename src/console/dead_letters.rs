//! Dead letters: what a sync could not send or take, with the target's OperationOutcome; retry
//! one or all of a target's (a push that sends them first), or dismiss one with a reason.
//!
//! A letter names a resource by type and clinic id only. The target's words are shown in full to
//! operators and privacy officers; a viewer sees the issue codes and where they point, since a
//! target's diagnostics may quote the resource.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::ConsoleState;
use super::layout::{self, csrf, encode, when};
use super::session::{SignedIn, action_record};
use super::targets::spawn_run;
use crate::audit::RequestContext;
use crate::domain::Role;
use crate::store::DeadLetter;
use crate::sync::{Direction, RunOptions};

#[derive(Deserialize)]
pub struct Filter {
    target: Option<String>,
    done: Option<String>,
}

pub async fn page(
    State(state): State<ConsoleState>,
    signed: SignedIn,
    Query(filter): Query<Filter>,
) -> Response {
    let target = filter.target.filter(|t| !t.is_empty());
    let letters = match state.store.dead_letters(target.as_deref()).await {
        Ok(letters) => letters,
        Err(error) => return layout::store_failed(&error),
    };
    let full = signed.may(Role::Operator) || signed.may(Role::PrivacyOfficer);
    let acts = signed.may(Role::Operator);
    layout::page(
        &signed,
        "Dead letters",
        html! {
            (layout::notice(filter.done.as_deref()))
            @if let Some(target) = &target {
                p { "Target " a href={ "/targets/" (encode(target)) } { (target) } " · " a href="/dead-letters" { "all targets" } }
                @if acts && !letters.is_empty() {
                    form.actions method="post" action="/dead-letters/retry" {
                        (csrf(&signed))
                        input type="hidden" name="target" value=(target);
                        button type="submit" { "Retry all " (letters.len()) }
                    }
                }
            }
            table.letters {
                thead { tr { th { "Target" } th { "Resource" } th { "Direction" } th { "Why" } th { "Failed" } th { "Attempts" } @if acts { th { "Act" } } } }
                tbody {
                    @for letter in &letters { (row(&signed, letter, full, acts)) }
                    @if letters.is_empty() { tr { td colspan="7" { "No dead letters." } } }
                }
            }
        },
    )
    .into_response()
}

fn row(signed: &SignedIn, letter: &DeadLetter, full: bool, acts: bool) -> Markup {
    let resource = format!("{}/{}", letter.resource_type, letter.local_id);
    html! {
        tr.letter data-resource=(resource) {
            td { a href={ "/dead-letters?target=" (encode(&letter.target)) } { (letter.target) } }
            td { code { (resource) } @if let Some(v) = letter.local_version { " v" (v) } }
            td { (letter.direction) }
            td {
                @match letter.http_status { Some(status) => { "HTTP " (status) ": " }, None => { "not sent: " } }
                (why(&letter.reason, full))
            }
            td { "first " (when(&letter.first_failed)) br; "last " (when(&letter.last_failed)) }
            td { (letter.attempts) }
            @if acts {
                td.act {
                    @if letter.direction == "push" {
                        form method="post" action="/dead-letters/retry" {
                            (csrf(signed))
                            input type="hidden" name="target" value=(letter.target);
                            input type="hidden" name="resource_type" value=(letter.resource_type);
                            input type="hidden" name="id" value=(letter.local_id);
                            button type="submit" { "Retry" }
                        }
                    }
                    form method="post" action="/dead-letters/dismiss" {
                        (csrf(signed))
                        input type="hidden" name="target" value=(letter.target);
                        input type="hidden" name="direction" value=(letter.direction);
                        input type="hidden" name="resource_type" value=(letter.resource_type);
                        input type="hidden" name="id" value=(letter.local_id);
                        input name="reason" placeholder="why dismiss" required;
                        button type="submit" { "Dismiss" }
                    }
                }
            }
        }
    }
}

/// The target's OperationOutcome: each issue's severity, code and location, and for those who
/// may see it, its diagnostics.
fn why(reason: &str, full: bool) -> Markup {
    let Ok(outcome) = serde_json::from_str::<Value>(reason) else {
        return html! { @if full { (reason) } @else { "(the gateway's reason; an operator can read it)" } };
    };
    let issues = outcome["issue"].as_array().cloned().unwrap_or_default();
    html! {
        ul.issues {
            @for issue in &issues {
                li {
                    (issue["severity"].as_str().unwrap_or("error")) " " code { (issue["code"].as_str().unwrap_or("?")) }
                    @if let Some(at) = issue["expression"][0].as_str().or(issue["location"][0].as_str()) { " at " code { (at) } }
                    @if full {
                        @if let Some(text) = issue["diagnostics"].as_str().or(issue["details"]["text"].as_str()) { ": " (text) }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct RetryForm {
    target: String,
    resource_type: Option<String>,
    id: Option<String>,
}

/// Sends one letter (or all of a target's) again, with the push that follows.
pub async fn retry(
    State(state): State<ConsoleState>,
    signed: SignedIn,
    Extension(context): Extension<RequestContext>,
    Form(form): Form<RetryForm>,
) -> Response {
    if let Some(refused) = signed.refusal_without(Role::Operator) {
        return refused;
    }
    match state.store.sync_target(&form.target).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return layout::refused(StatusCode::NOT_FOUND, "There is no target by that name.");
        }
        Err(error) => return layout::store_failed(&error),
    }
    let only = form.resource_type.zip(form.id);
    let entities = only.iter().map(|(t, id)| format!("{t}/{id}")).collect();
    let record = action_record(
        &signed,
        &context,
        "retry-dead-letter",
        &[("target", &form.target)],
        entities,
        Ok(()),
    );
    if let Err(error) = state.store.append_audit(&record).await {
        return layout::store_failed(&error);
    }
    let options = RunOptions {
        retry_dead_letters: true,
        retry_only: only,
        ..RunOptions::default()
    };
    spawn_run(&state, &form.target, Direction::Push, options, record);
    Redirect::to(&format!(
        "/targets/{}?done=retry%20started",
        encode(&form.target)
    ))
    .into_response()
}

#[derive(Deserialize)]
pub struct DismissForm {
    target: String,
    direction: String,
    resource_type: String,
    id: String,
    reason: String,
}

/// Removes a letter the clinic will not send, saying why (kept in the audit record).
pub async fn dismiss(
    State(state): State<ConsoleState>,
    signed: SignedIn,
    Extension(context): Extension<RequestContext>,
    Form(form): Form<DismissForm>,
) -> Response {
    if let Some(refused) = signed.refusal_without(Role::Operator) {
        return refused;
    }
    let reason = form.reason.trim();
    if reason.is_empty() {
        return layout::refused(StatusCode::BAD_REQUEST, "Say why the letter is dismissed.");
    }
    // Audited first (no record, no dismissal). The reason is the operator's words about a
    // failed send: kept in the audit trail (which only privacy officers read), not in the logs.
    let exists = match state.store.dead_letters(Some(&form.target)).await {
        Ok(letters) => letters.iter().any(|l| {
            l.direction == form.direction
                && l.resource_type == form.resource_type
                && l.local_id == form.id
        }),
        Err(error) => return layout::store_failed(&error),
    };
    if !exists {
        return layout::refused(StatusCode::NOT_FOUND, "That dead letter is gone already.");
    }
    let record = action_record(
        &signed,
        &context,
        "dismiss-dead-letter",
        &[
            ("target", &form.target),
            ("direction", &form.direction),
            ("reason", reason),
        ],
        vec![format!("{}/{}", form.resource_type, form.id)],
        Ok(()),
    );
    if let Err(error) = state.store.append_audit(&record).await {
        return layout::store_failed(&error);
    }
    let cleared = match state
        .store
        .clear_dead_letter(&form.target, &form.direction, &form.resource_type, &form.id)
        .await
    {
        Ok(cleared) => cleared,
        Err(error) => return layout::store_failed(&error),
    };
    if !cleared {
        return layout::refused(StatusCode::NOT_FOUND, "That dead letter is gone already.");
    }
    Redirect::to(&format!(
        "/dead-letters?target={}&done=dismissed",
        encode(&form.target)
    ))
    .into_response()
}
