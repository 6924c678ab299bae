//! A sync target: its health, its runs (progress while one runs, the summary after), and the
//! buttons that start a push or a pull.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::ConsoleState;
use super::layout::{self, csrf, encode, when};
use super::session::{SignedIn, action_record};
use crate::audit::RequestContext;
use crate::domain::{Role, Timestamp};
use crate::store::{Store, StoreError, SyncRun, SyncTarget};
use crate::sync::{Direction, RunOptions};

/// What the console shows of a target's state.
pub struct TargetStatus {
    pub target: SyncTarget,
    pub lag: i64,
    pub dead_letters: usize,
    pub running: bool,
    pub last: Option<SyncRun>,
}

impl TargetStatus {
    pub async fn load(store: &Store, target: SyncTarget, newest: i64) -> Result<Self, StoreError> {
        let now = Timestamp::now().to_db_text();
        let running = target
            .lease_expires
            .as_deref()
            .is_some_and(|expires| expires > now.as_str());
        Ok(Self {
            lag: (newest - target.push_checkpoint).max(0),
            dead_letters: usize::try_from(store.dead_letter_count(&target.name).await?)
                .unwrap_or_default(),
            last: store.sync_runs(&target.name, 1).await?.into_iter().next(),
            running,
            target,
        })
    }

    /// One word for the target's health, and its CSS class.
    pub fn health(&self) -> (&'static str, &'static str) {
        let last = self.last.as_ref();
        let summary = last.and_then(summary_of);
        if self.running {
            ("running", "busy")
        } else if last.is_some_and(|r| r.error.is_some()) {
            ("failing", "bad")
        } else if summary
            .as_ref()
            .is_some_and(|s| s["throttled"].as_u64() > Some(0))
        {
            ("throttled", "warn")
        } else if self.dead_letters > 0 {
            ("dead letters", "warn")
        } else if last.is_none() {
            ("never run", "idle")
        } else {
            ("up", "good")
        }
    }
}

pub fn summary_of(run: &SyncRun) -> Option<Value> {
    run.summary
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
}

/// Resources a run's summary says it sent (created, updated or deleted at the target).
pub fn sent(summary: &Value) -> u64 {
    ["created", "updated", "deleted"]
        .iter()
        .filter_map(|k| summary[*k].as_u64())
        .sum()
}

#[derive(Deserialize)]
pub struct Notice {
    done: Option<String>,
}

pub async fn page(
    State(state): State<ConsoleState>,
    signed: SignedIn,
    Path(name): Path<String>,
    Query(notice): Query<Notice>,
) -> Response {
    let Some(body) = (match live_body(&state, &name).await {
        Ok(body) => body,
        Err(error) => return layout::store_failed(&error),
    }) else {
        return layout::refused(StatusCode::NOT_FOUND, "There is no target by that name.");
    };
    let target = match state.store.sync_target(&name).await {
        Ok(Some(target)) => target,
        Ok(None) => {
            return layout::refused(StatusCode::NOT_FOUND, "There is no target by that name.");
        }
        Err(error) => return layout::store_failed(&error),
    };
    layout::page(
        &signed,
        &format!("Target {name}"),
        html! {
            (layout::notice(notice.done.as_deref()))
            dl.facts {
                dt { "FHIR base" } dd { code { (target.base_url) } }
                dt { "Authentication" } dd { (target.auth_kind) }
                dt { "Pushes" } dd { (target.resources.join(", ")) }
                dt { "Recipient (consent)" } dd { (target.organization_id.as_deref().map(|o| format!("Organization/{o}")).unwrap_or_else(|| "the clinic's own organization".into())) }
                dt { "Schedule" } dd { (target.interval_seconds.map(|s| format!("every {s} s")).unwrap_or_else(|| "on demand".into())) }
            }
            @if signed.may(Role::Operator) {
                form.actions method="post" action={ "/targets/" (encode(&name)) "/run" } {
                    (csrf(&signed))
                    button name="direction" value="push" { "Push now" }
                    button name="direction" value="pull" { "Pull now" }
                }
            }
            p { a href={ "/targets/" (encode(&name)) "/capabilities" } { "What the target says it supports (its CapabilityStatement, asked now)" } }
            section data-live={ "/live/targets/" (encode(&name)) } data-every="1000" { (body) }
        },
    )
    .into_response()
}

/// The part of a target's page that refreshes while a run goes on.
pub async fn live(
    State(state): State<ConsoleState>,
    _signed: SignedIn,
    Path(name): Path<String>,
) -> Response {
    match live_body(&state, &name).await {
        Ok(Some(body)) => body.into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(error) => layout::store_failed(&error),
    }
}

async fn live_body(state: &ConsoleState, name: &str) -> Result<Option<Markup>, StoreError> {
    let Some(target) = state.store.sync_target(name).await? else {
        return Ok(None);
    };
    let newest = state.store.newest_change().await?;
    let status = TargetStatus::load(&state.store, target, newest).await?;
    let runs = state.store.sync_runs(name, 20).await?;
    let (health, class) = status.health();
    Ok(Some(html! {
        p { "Health: " span.badge.(class) id="health" { (health) } " · "
            (status.lag) " changes behind the change log · "
            a href={ "/dead-letters?target=" (encode(name)) } { (status.dead_letters) " dead letters" } }
        table.runs {
            thead { tr { th { "Started" } th { "Direction" } th { "State" } th { "Progress" } th { "Sent" } th { "Unchanged" } th { "Withheld" } th { "Rejected" } th { "Retried requests" } th { "Took" } } }
            tbody {
                @for run in &runs { (run_row(run, status.running)) }
                @if runs.is_empty() { tr { td colspan="10" { "No runs yet." } } }
            }
        }
    }))
}

/// How long a run may go without writing its progress before, with no lease held on its
/// target, it is shown as abandoned (its process died).
const SILENT_SECONDS: i64 = 30;

fn run_row(run: &SyncRun, target_leased: bool) -> Markup {
    let summary = summary_of(run);
    let silent = || {
        let last = run.progress_at.as_deref().unwrap_or(&run.started_at);
        last.parse::<Timestamp>().is_ok_and(|at| {
            (Timestamp::now().as_datetime() - at.as_datetime()).num_seconds() > SILENT_SECONDS
        })
    };
    let state = match (&run.finished_at, &run.error) {
        (None, _) if !target_leased && silent() => "abandoned",
        (None, _) => "running",
        (Some(_), Some(_)) => "stopped",
        (Some(_), None) => "finished",
    };
    let progress = match (run.done, run.total) {
        (Some(done), Some(total)) if total > 0 => format!("{done} of {total} changes"),
        (Some(done), _) => format!("{done} changes"),
        _ => "—".into(),
    };
    // While a run goes on, its summary holds the counts so far: the rate is resources handled
    // (sent, unchanged, withheld or rejected) per second since it started.
    let rate = (state == "running")
        .then(|| {
            let started: Timestamp = run.started_at.parse().ok()?;
            let seconds = (Timestamp::now().as_datetime() - started.as_datetime())
                .num_milliseconds() as f64
                / 1000.0;
            let handled = summary.as_ref().map_or(0, |s| {
                sent(s)
                    + ["unchanged", "withheld", "rejected", "skipped"]
                        .iter()
                        .filter_map(|k| s[*k].as_u64())
                        .sum::<u64>()
            });
            (seconds > 0.5)
                .then(|| format!(" · {handled} resources, {:.0}/s", handled as f64 / seconds))
        })
        .flatten()
        .unwrap_or_default();
    let number = |key: &str| {
        summary
            .as_ref()
            .and_then(|s| s[key].as_u64())
            .map(|n| n.to_string())
            .unwrap_or_else(|| "—".into())
    };
    html! {
        tr.run data-state=(state) {
            td { (when(&run.started_at)) }
            td { (run.direction) }
            td {
                span.badge.(match state { "running" => "busy", "stopped" | "abandoned" => "bad", _ => "good" }) { (state) }
                @if let Some(error) = &run.error { div.why { (error) } }
            }
            td.progress {
                @if let (Some(done), Some(total)) = (run.done, run.total) {
                    @if total > 0 { progress value=(done) max=(total) {} }
                }
                (progress) (rate)
            }
            td.sent { (summary.as_ref().map(|s| sent(s).to_string()).unwrap_or_else(|| "—".into())) }
            td { (number("unchanged")) }
            td { (number("withheld")) }
            td.rejected { (number("rejected")) }
            td { (number("retried")) }
            td { (summary.as_ref().and_then(|s| s["seconds"].as_f64()).map(|s| format!("{s:.1} s")).unwrap_or_else(|| "—".into())) }
        }
    }
}

#[derive(Deserialize)]
pub struct StartForm {
    direction: String,
}

/// Starts a push or pull in the background (the page then shows its progress).
pub async fn start(
    State(state): State<ConsoleState>,
    signed: SignedIn,
    Extension(context): Extension<RequestContext>,
    Path(name): Path<String>,
    Form(form): Form<StartForm>,
) -> Response {
    if let Some(refused) = signed.refusal_without(Role::Operator) {
        return refused;
    }
    let direction = match form.direction.as_str() {
        "push" => Direction::Push,
        "pull" => Direction::Pull,
        _ => return layout::refused(StatusCode::BAD_REQUEST, "Push or pull?"),
    };
    let target = match state.store.sync_target(&name).await {
        Ok(Some(target)) => target,
        Ok(None) => {
            return layout::refused(StatusCode::NOT_FOUND, "There is no target by that name.");
        }
        Err(error) => return layout::store_failed(&error),
    };
    if TargetStatus::load(&state.store, target, 0)
        .await
        .is_ok_and(|status| status.running)
    {
        return layout::refused(
            StatusCode::CONFLICT,
            "A run of this target is going on; start another when it has ended.",
        );
    }
    let record = action_record(
        &signed,
        &context,
        direction.name(),
        &[("target", &name)],
        Vec::new(),
        Ok(()),
    );
    if let Err(error) = state.store.append_audit(&record).await {
        return layout::store_failed(&error);
    }
    spawn_run(&state, &name, direction, RunOptions::default(), record);
    Redirect::to(&format!(
        "/targets/{}?done={}%20started",
        encode(&name),
        direction.name()
    ))
    .into_response()
}

/// Runs a sync in the background; its row in `sync_runs` is what the pages show. A run that
/// could not run (another holds the target, the database failed) adds a failed audit record
/// beside `started`.
pub fn spawn_run(
    state: &ConsoleState,
    target: &str,
    direction: Direction,
    mut options: RunOptions,
    started: crate::domain::AuditRecord,
) {
    // Another run of the target (here, on another replica, or scheduled) holds its lease: this
    // one gives up soon rather than queue behind it unseen.
    options.wait_for_lease = std::time::Duration::from_secs(10);
    let engine = state.engine.clone();
    let target = target.to_owned();
    tokio::spawn(async move {
        match crate::sync::run(&engine, &target, direction, &options, &|_, _| {}).await {
            Ok(summary) => {
                tracing::info!(target_name = %target, line = %summary.line(), "console sync run finished");
            }
            Err(error) => {
                tracing::warn!(target_name = %target, %error, "console sync run could not run");
                let failed = crate::domain::AuditRecord {
                    id: uuid::Uuid::now_v7().to_string(),
                    recorded: Timestamp::now(),
                    outcome: crate::domain::AuditOutcome::Failed,
                    outcome_desc: Some(
                        "the run could not run: another run holds the target, or the database failed"
                            .into(),
                    ),
                    ..started
                };
                if let Err(error) = engine.store.append_audit(&failed).await {
                    tracing::error!(%error, "could not audit a console run that failed");
                }
            }
        }
    });
}

/// A summary of the target's CapabilityStatement, fetched now: who it is, what it takes, and
/// for each type this gateway pushes, what the target supports.
pub async fn capabilities(
    State(state): State<ConsoleState>,
    signed: SignedIn,
    Path(name): Path<String>,
) -> Response {
    let target = match state.store.sync_target(&name).await {
        Ok(Some(target)) => target,
        Ok(None) => {
            return layout::refused(StatusCode::NOT_FOUND, "There is no target by that name.");
        }
        Err(error) => return layout::store_failed(&error),
    };
    let statement = match crate::sync::target_statement(&state.store, &name).await {
        Ok(statement) => statement,
        Err(error) => {
            return layout::page(
                &signed,
                &format!("Target {name}: capabilities"),
                html! { p.problem role="alert" { "The target did not answer its CapabilityStatement: " (error.to_string()) } },
            )
            .into_response();
        }
    };
    let text = |pointer: &str| {
        statement
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or("—")
            .to_owned()
    };
    let rest = statement["rest"]
        .as_array()
        .and_then(|rests| {
            rests
                .iter()
                .find(|r| r["mode"] == "server")
                .or(rests.first())
        })
        .cloned()
        .unwrap_or_default();
    let codes = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|i| i["code"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let system = codes(&rest["interaction"]);
    let resource = |kind: &str| {
        rest["resource"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["type"] == kind))
            .cloned()
    };
    let flag = |r: &Value, name: &str| {
        if r[name].as_bool() == Some(true) {
            "yes"
        } else {
            "no"
        }
    };
    layout::page(
        &signed,
        &format!("Target {name}: capabilities"),
        html! {
            dl.facts {
                dt { "Software" } dd { (text("/software/name")) " " (text("/software/version")) }
                dt { "FHIR version" } dd { (text("/fhirVersion")) }
                dt { "Formats" } dd { (statement["format"].as_array().map(|f| f.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
                dt { "Whole-system interactions" } dd { (if system.is_empty() { "none stated".to_owned() } else { system.join(", ") }) }
                dt { "Security" } dd { (rest["security"]["service"][0]["coding"][0]["code"].as_str().or(rest["security"]["description"].as_str()).unwrap_or("none stated")) }
            }
            h2 { "What this gateway pushes there" }
            table.capabilities {
                thead { tr { th { "Type" } th { "Supported" } th { "Interactions" } th { "Conditional create" } th { "Conditional update" } th { "Update creates" } } }
                tbody {
                    @for kind in &target.resources {
                        @match resource(kind) {
                            Some(r) => tr { td { (kind) } td { span.badge.good { "yes" } } td { (codes(&r["interaction"]).join(", ")) } td { (flag(&r, "conditionalCreate")) } td { (flag(&r, "conditionalUpdate")) } td { (flag(&r, "updateCreate")) } },
                            None => tr { td { (kind) } td { span.badge.bad { "not listed" } } td colspan="4" { "a push skips this type" } },
                        }
                    }
                }
            }
        },
    )
    .into_response()
}
