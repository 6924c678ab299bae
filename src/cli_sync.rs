//! `targets add|list|remove` and `sync push|pull|status|dead-letters`: the sync engine
//! (`src/sync/`) from the command line, with a progress bar on a terminal and plain lines
//! otherwise, a summary at the end, and `--json` for machines.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::store::{Store, SyncTarget};
use crate::sync::{CreateWith, Direction, Engine, PUSH_ORDER, RunOptions, Summary};

// A command line is parsed once per process: the size of its largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum TargetsCommand {
    /// Register an EHR FHIR endpoint to sync with
    Add {
        /// A short name for the target (used by `sync --target`)
        name: String,
        /// The target's FHIR base URL (https://ehr.example/fhir/R4)
        #[arg(long, value_name = "URL")]
        base_url: String,
        /// A file holding a bearer token for the target (the token stays in the file)
        #[arg(long, value_name = "FILE", conflicts_with_all = ["smart_client_id", "smart_key"])]
        bearer_token_file: Option<PathBuf>,
        /// SMART Backend Services: the client id the target registered for this gateway
        #[arg(long, value_name = "ID", requires = "smart_key")]
        smart_client_id: Option<String>,
        /// SMART Backend Services: the private key (PEM or JWK file, RS384 or ES384) whose
        /// public key the target registered (the key stays in the file)
        #[arg(long, value_name = "FILE", requires = "smart_client_id")]
        smart_key: Option<PathBuf>,
        /// The target's token URL [default: from its .well-known/smart-configuration]
        #[arg(long, value_name = "URL", requires = "smart_client_id")]
        token_url: Option<String>,
        /// Resource types to push, comma-separated [default: all the gateway makes]
        #[arg(long, value_name = "TYPES", value_delimiter = ',')]
        resources: Vec<String>,
        /// The Organization (clinic database id) the target acts for: consent decides what it
        /// may have [default: the clinic's own organization]
        #[arg(long, value_name = "ID")]
        organization: Option<String>,
        /// Sync this target on this interval while `serve` runs (e.g. 15m, 1h, 90s)
        #[arg(long, value_name = "DURATION")]
        interval: Option<String>,
        /// The target is a provider the clinic steps clients down (or up) to: each push first
        /// refers the clients discharged that way since the target was added (with
        /// --organization: the provider)
        #[arg(long, value_name = "KIND", value_parser = ["step-down", "step-up", "both"], requires = "organization")]
        send_transitions: Option<String>,
    },
    /// List the targets
    List,
    /// Remove a target, its identity map and its dead letters (nothing at the target changes)
    Remove { name: String },
}

#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Send the clinic's changes since the last confirmed push to a target
    Push(RunArgs),
    /// Take support contacts, consents and sessions from a target for the clinic's clients
    Pull(RunArgs),
    /// Each target's checkpoint, lag, last runs, failures and dead letters
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Show the resources that could not be synced, and why; --retry sends them again
    DeadLetters {
        #[arg(long, value_name = "NAME")]
        target: Option<String>,
        /// Send them again now (push; needs --target)
        #[arg(long, requires = "target")]
        retry: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The target's name (see `targets list`)
    #[arg(long, value_name = "NAME")]
    pub target: String,
    /// Look and report only: nothing is sent or recorded
    #[arg(long)]
    pub dry_run: bool,
    /// Print the summary as JSON
    #[arg(long)]
    pub json: bool,
    /// Requests in flight to the target at once
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub concurrency: usize,
    /// At most this many requests a second to the target
    #[arg(long, value_name = "N")]
    pub rate_limit: Option<u32>,
    /// The target's lease in seconds: a run that dies lets another take over after it
    #[arg(long, value_name = "S", default_value_t = 30)]
    pub lease_seconds: u64,
    /// Push: how a resource new to the target is created (auto: client ids where the target
    /// allows them, else conditional update, else POST)
    #[arg(long, value_enum, default_value = "auto")]
    pub create_with: CreateWith,
    /// Push: one request per resource, never `batch` Bundles (for targets whose batches misbehave)
    #[arg(long)]
    pub no_batch: bool,
    /// Pull: the target's edit wins over the clinic's since the last sync
    #[arg(long)]
    pub remote_wins: bool,
}

impl RunArgs {
    pub fn options(&self) -> RunOptions {
        let mut options = RunOptions {
            dry_run: self.dry_run,
            lease: Duration::from_secs(self.lease_seconds.max(2)),
            create_with: self.create_with,
            batch: !self.no_batch,
            remote_wins: self.remote_wins,
            ..RunOptions::default()
        };
        options.limits.concurrency = self.concurrency.max(1);
        options.limits.rate_per_second = self.rate_limit;
        options
    }
}

pub async fn targets(store: &Store, command: TargetsCommand) -> anyhow::Result<()> {
    match command {
        TargetsCommand::Add {
            name,
            base_url,
            bearer_token_file,
            smart_client_id,
            smart_key,
            token_url,
            resources,
            organization,
            interval,
            send_transitions,
        } => {
            // Names go into the console's links and the metrics' labels: keep them plain.
            if name.is_empty()
                || name.len() > 64
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            {
                bail!("a target's name is 1 to 64 letters, digits, . _ or -");
            }
            let base_url = base_url.trim_end_matches('/').to_owned();
            if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
                bail!("--base-url must be an http:// or https:// URL");
            }
            let resources = if resources.is_empty() {
                PUSH_ORDER.iter().map(|t| (*t).to_owned()).collect()
            } else {
                for t in &resources {
                    if !PUSH_ORDER.contains(&t.as_str()) {
                        bail!(
                            "unknown resource type {t}; the gateway makes {}",
                            PUSH_ORDER.join(", ")
                        );
                    }
                }
                resources
            };
            let (auth_kind, credential_file) = match (&bearer_token_file, &smart_key) {
                (Some(file), _) => ("bearer", Some(readable(file)?)),
                (_, Some(file)) => ("smart", Some(readable(file)?)),
                _ => ("none", None),
            };
            if let Some(org) = &organization
                && !organization_exists(store, org).await?
            {
                bail!("no Organization {org} in the clinic database");
            }
            let interval_seconds = interval.as_deref().map(parse_interval).transpose()?;
            let target = SyncTarget {
                name: name.clone(),
                base_url,
                auth_kind: auth_kind.to_owned(),
                credential_file,
                smart_client_id,
                token_url,
                resources,
                organization_id: organization.clone(),
                send_transitions,
                interval_seconds,
                push_checkpoint: 0,
                pull_since: None,
                lease_holder: None,
                lease_expires: None,
                next_run_at: None,
                last_run: None,
                created_at: String::new(),
            };
            store
                .insert_sync_target(&target)
                .await
                .map_err(|e| match e {
                    crate::store::StoreError::Duplicate { .. } => {
                        anyhow::anyhow!("a target named {name} exists already")
                    }
                    other => other.into(),
                })?;
            println!(
                "target {name} added ({auth_kind} auth; pushes {}; recipient {})",
                target.resources.join(","),
                organization
                    .as_deref()
                    .unwrap_or("the clinic's own organization")
            );
        }
        TargetsCommand::List => {
            let targets = store.sync_targets().await?;
            if targets.is_empty() {
                println!("no targets (add one with `targets add`)");
            }
            for t in targets {
                println!(
                    "{}\t{}\t{} auth\tinterval {}\tresources {}\trecipient {}",
                    t.name,
                    t.base_url,
                    t.auth_kind,
                    t.interval_seconds
                        .map(|s| format!("{s} s"))
                        .unwrap_or_else(|| "none".into()),
                    t.resources.join(","),
                    t.organization_id.as_deref().unwrap_or("clinic")
                );
            }
        }
        TargetsCommand::Remove { name } => {
            if !store.remove_sync_target(&name).await? {
                bail!("no target named {name}");
            }
            println!("target {name} removed");
        }
    }
    Ok(())
}

/// Runs a sync command; the exit code is 1 when a run stopped early or left dead letters.
pub async fn sync(engine: &Engine, command: SyncCommand) -> anyhow::Result<std::process::ExitCode> {
    match command {
        SyncCommand::Push(args) => run(engine, &args, Direction::Push, false).await,
        SyncCommand::Pull(args) => run(engine, &args, Direction::Pull, false).await,
        SyncCommand::Status { json } => {
            status(&engine.store, json).await?;
            Ok(std::process::ExitCode::SUCCESS)
        }
        SyncCommand::DeadLetters {
            target,
            retry,
            json,
        } => {
            if retry {
                let target = target.unwrap_or_default();
                let args = RunArgs {
                    target,
                    dry_run: false,
                    json,
                    concurrency: 4,
                    rate_limit: None,
                    lease_seconds: 30,
                    create_with: CreateWith::Auto,
                    no_batch: false,
                    remote_wins: false,
                };
                return run(engine, &args, Direction::Push, true).await;
            }
            let letters = engine.store.dead_letters(target.as_deref()).await?;
            if json {
                let list: Vec<_> = letters
                    .iter()
                    .map(|l| {
                        json!({
                            "target": l.target, "direction": l.direction,
                            "resourceType": l.resource_type, "id": l.local_id,
                            "version": l.local_version, "status": l.http_status,
                            "attempts": l.attempts, "firstFailed": l.first_failed,
                            "lastFailed": l.last_failed,
                            "reason": serde_json::from_str::<serde_json::Value>(&l.reason)
                                .unwrap_or_else(|_| json!(l.reason)),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if letters.is_empty() {
                println!("no dead letters");
            } else {
                for l in &letters {
                    println!(
                        "{}\t{}\t{}/{}\tversion {}\t{}\t{} attempts\t{}",
                        l.target,
                        l.direction,
                        l.resource_type,
                        l.local_id,
                        l.local_version.map(|v| v.to_string()).unwrap_or_default(),
                        l.http_status
                            .map(|s| format!("HTTP {s}"))
                            .unwrap_or_else(|| "invalid at the source".into()),
                        l.attempts,
                        reason_line(&l.reason)
                    );
                }
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}

async fn run(
    engine: &Engine,
    args: &RunArgs,
    direction: Direction,
    retry_dead_letters: bool,
) -> anyhow::Result<std::process::ExitCode> {
    let mut options = args.options();
    options.retry_dead_letters = retry_dead_letters;
    let bar = progress_bar(direction, args.json);
    let report = |done: u64, total: u64| {
        if let Some(bar) = &bar {
            bar.set_length(total.max(done));
            bar.set_position(done);
        } else if !args.json && total > 0 {
            eprintln!("{}: {done} of {total} changes looked at", direction.name());
        }
    };
    let summary = crate::sync::run(engine, &args.target, direction, &options, &report).await?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    print_summary(&summary, args.json)?;
    let rejected_now = summary.rejected > 0;
    Ok(if summary.error.is_some() || rejected_now {
        std::process::ExitCode::from(1)
    } else {
        std::process::ExitCode::SUCCESS
    })
}

fn print_summary(summary: &Summary, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(summary)?);
    } else {
        println!("{}", summary.line());
    }
    Ok(())
}

fn progress_bar(direction: Direction, json: bool) -> Option<indicatif::ProgressBar> {
    if json || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {pos}/{len} changes ({eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(direction.name());
    Some(bar)
}

async fn status(store: &Store, json: bool) -> anyhow::Result<()> {
    let newest = store.newest_change().await?;
    let mut rows = Vec::new();
    for t in store.sync_targets().await? {
        let runs = store.sync_runs(&t.name, 5).await?;
        let dead = store.dead_letters(Some(&t.name)).await?;
        let failures = runs.iter().filter(|r| r.error.is_some()).count();
        let last = runs.first();
        rows.push(json!({
            "target": t.name,
            "baseUrl": t.base_url,
            "checkpoint": t.push_checkpoint,
            "lag": (newest - t.push_checkpoint).max(0),
            "held": store.synced_count(&t.name).await?,
            "deadLetters": dead.len(),
            "recentFailures": failures,
            "lastRun": last.map(|r| json!({
                "direction": r.direction, "startedAt": r.started_at,
                "finishedAt": r.finished_at, "error": r.error,
                "summary": r.summary.as_deref().and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok()),
            })),
            "running": t.lease_holder.is_some(),
            "interval": t.interval_seconds,
            "nextRunAt": t.next_run_at,
            "lastScheduled": t.last_run,
        }));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("no targets (add one with `targets add`)");
    }
    for row in rows {
        println!(
            "{}: checkpoint {} (lag {} changes), {} resources at the target, {} dead letters, {} of the last 5 runs failed{}",
            row["target"].as_str().unwrap_or_default(),
            row["checkpoint"],
            row["lag"],
            row["held"],
            row["deadLetters"],
            row["recentFailures"],
            match row["lastRun"].get("startedAt") {
                Some(at) => format!(
                    "; last run {} at {}{}",
                    row["lastRun"]["direction"].as_str().unwrap_or_default(),
                    at.as_str().unwrap_or_default(),
                    row["lastRun"]["error"]
                        .as_str()
                        .map(|e| format!(" stopped: {e}"))
                        .unwrap_or_default()
                ),
                None => "; never run".into(),
            }
        );
    }
    Ok(())
}

/// The first diagnostics of an OperationOutcome, or the reason as it is.
fn reason_line(reason: &str) -> String {
    let Ok(outcome) = serde_json::from_str::<serde_json::Value>(reason) else {
        return reason.to_owned();
    };
    let issue = &outcome["issue"][0];
    let text = issue["diagnostics"]
        .as_str()
        .or_else(|| issue["details"]["text"].as_str())
        .unwrap_or("no diagnostics");
    match issue["expression"][0].as_str() {
        Some(at) => format!("{text} (at {at})"),
        None => text.to_owned(),
    }
}

fn readable(file: &std::path::Path) -> anyhow::Result<String> {
    std::fs::metadata(file).with_context(|| format!("cannot read {}", file.display()))?;
    let absolute = std::fs::canonicalize(file)?;
    Ok(absolute.display().to_string())
}

async fn organization_exists(store: &Store, id: &str) -> anyhow::Result<bool> {
    let Ok(id) = id.parse::<crate::domain::Id<crate::domain::Organization>>() else {
        return Ok(false);
    };
    Ok(!store.get_many(&[id]).await?.is_empty())
}

/// `90s`, `15m`, `2h` or plain seconds.
fn parse_interval(text: &str) -> anyhow::Result<i64> {
    let text = text.trim();
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let number: i64 = number
        .parse()
        .with_context(|| format!("--interval {text}: write it as 90s, 15m or 2h"))?;
    let seconds = match unit {
        "" | "s" => number,
        "m" => number * 60,
        "h" => number * 3600,
        _ => bail!("--interval {text}: write it as 90s, 15m or 2h"),
    };
    if seconds < 1 {
        bail!("--interval must be at least 1 s");
    }
    Ok(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_read_as_people_write_them() {
        assert_eq!(parse_interval("90s").unwrap(), 90);
        assert_eq!(parse_interval("15m").unwrap(), 900);
        assert_eq!(parse_interval("2h").unwrap(), 7200);
        assert_eq!(parse_interval("30").unwrap(), 30);
        assert!(parse_interval("soon").is_err());
        assert!(parse_interval("0s").is_err());
    }
}
