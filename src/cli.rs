//! The `iop-gateway` command line: parses arguments, resolves settings, runs one command.
//!
//! An edge: errors become one line on stderr and a non-zero exit; nothing here decides clinic rules.

use std::path::PathBuf;

use anyhow::Context;
use chrono::NaiveDate;
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

use std::sync::Arc;

use crate::config::{self, FileConfig};
use crate::export::{self, ExportOptions};
use crate::fhir_api;
use crate::http::{self, AppState, Limits};
use crate::mapping::MappingConfig;
use crate::seed::{self, SeedOptions, SeedOutcome};
use crate::store::{Backend, Store, Workload, redact_url};
use crate::validation::{Registry, Validator};

#[derive(Debug, Parser)]
#[command(
    name = "iop-gateway",
    version,
    about = "FHIR R4 integration gateway for Intensive Outpatient Programs"
)]
#[command(
    after_help = "Settings: flags beat environment variables, which beat iop-gateway.toml \
    (keys: database_url, listen, public_url, public_url_from_request, identifier_base), which beats the defaults."
)]
pub struct Cli {
    /// Clinic database: sqlite://FILE (created if missing) or postgres://USER@HOST:PORT/DB
    /// [default: sqlite://iop-gateway.db]
    #[arg(long, global = true, env = "IOP_DATABASE_URL", value_name = "URL")]
    database_url: Option<String>,

    /// Config file [default: ./iop-gateway.toml when present]
    #[arg(long, global = true, env = "IOP_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create or upgrade the clinic database schema (every command also does this on start)
    Migrate,
    /// Fill an empty clinic database with deterministic synthetic IOP data
    Seed {
        /// Number of clients, 10 to 100000
        #[arg(long, value_name = "N")]
        clients: u32,
        /// Random seed: the same seed, client count and as-of date give the same data
        #[arg(long, value_name = "S", default_value_t = 42)]
        seed: u64,
        /// "Today" for the data (YYYY-MM-DD): admissions before it, scheduled sessions after [default: today]
        #[arg(long, value_name = "DATE")]
        as_of: Option<NaiveDate>,
    },
    /// Serve the FHIR R4 API at /fhir (read, search, history, validated writes, transactions,
    /// $validate) and /healthz, /readyz; and the operations console with /metrics on
    /// --console-listen
    Serve(ServeArgs),
    /// Write the clinic database as FHIR R4 NDJSON, one file per resource type (DIR/CarePlan.ndjson, ...)
    Export {
        /// Directory to write into (created if missing)
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Resource types to write, comma-separated [default: all: Organization, Practitioner, HealthcareService, Group,
        /// Patient, RelatedPerson, EpisodeOfCare, CarePlan, Goal, Encounter, Consent, ServiceRequest, Task]
        #[arg(long = "type", value_name = "TYPES", value_delimiter = ',')]
        types: Vec<String>,
        /// The day consents and support contacts are judged active (YYYY-MM-DD) [default: today]
        #[arg(long, value_name = "DATE")]
        as_of: Option<NaiveDate>,
        /// Export for this recipient organization (Organization id): only what the client's
        /// consents and the clinic's policy let it have, as through the API, with a Part 2
        /// notice file when Part 2 records are included [default: the clinic's own, unfiltered copy]
        #[arg(long, value_name = "ORG")]
        recipient: Option<String>,
        /// The recipient's purpose of use (with --recipient)
        #[arg(
            long,
            value_name = "CODE",
            default_value = "TREAT",
            requires = "recipient"
        )]
        purpose: String,
    },
    /// Import a clinic's existing records: FHIR R4 NDJSON in the IOP profiles, one
    /// {Type}.ndjson per resource type, as `export` writes them, and spreadsheets, one CSV per
    /// record kind (docs/import.md). Each file is checked whole, then written in one
    /// transaction; records already there are left as they are
    Import {
        /// The directory holding the .ndjson and .csv files
        dir: PathBuf,
        /// Import the good lines of a file that has bad ones (the bad ones are reported);
        /// without it such a file is refused whole and the import stops there
        #[arg(long = "continue")]
        keep_going: bool,
    },
    /// Validate FHIR resources (a resource or a Bundle in JSON or FHIR XML, or NDJSON, per FILE;
    /// stdin for "-") against the R4 definitions, their meta.profile and any --profile (with
    /// --iop, the IOP profiles too)
    Validate {
        /// Also validate against this profile (canonical URL), for resources of its type
        #[arg(long = "profile", value_name = "URL")]
        profiles: Vec<String>,
        /// Also apply the IOP profile of each resource's type, as the API does to writes,
        /// whatever its meta.profile says (what the gateway emits names its profiles anyway)
        #[arg(long)]
        iop: bool,
        /// Load a FHIR package (.tgz or folder), a JSON or FHIR XML file or a Bundle of
        /// conformance resources
        #[arg(long = "package", value_name = "PATH")]
        packages: Vec<PathBuf>,
        /// text: a line per resource and its issues; json: an OperationOutcome per resource
        #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
        format: String,
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
    },
    /// Try it: seed 50 clients into the database if it is empty, register the API client
    /// `demo`, print a token for it, then serve (on 127.0.0.1:8080 unless --listen says otherwise)
    Demo(ServeArgs),
    /// Manage the API clients (SMART Backend Services) allowed to ask for tokens
    Clients {
        #[command(subcommand)]
        command: crate::cli_clients::ClientsCommand,
    },
    /// What the consent gate discloses, and why
    Consent {
        #[command(subcommand)]
        command: crate::cli_consent::ConsentCommand,
    },
    /// EHR FHIR endpoints the clinic syncs with
    Targets {
        #[command(subcommand)]
        command: crate::cli_sync::TargetsCommand,
    },
    /// Referrals received and sent (HL7 BSeR): list, show, accept, decline, match a referred
    /// patient to a client
    Referrals {
        #[command(subcommand)]
        command: crate::cli_referrals::ReferralsCommand,
    },
    /// Push to and pull from a target; status and dead letters
    Sync {
        #[command(subcommand)]
        command: crate::cli_sync::SyncCommand,
    },
    /// Manage the people who may sign in to the operations console
    Operators {
        #[command(subcommand)]
        command: crate::cli_operators::OperatorsCommand,
    },
    /// Print an access token for a registered client (for local use and scripts): the last
    /// line is the token alone
    Token {
        /// The client's name (see clients list)
        #[arg(long, value_name = "NAME")]
        client: String,
        /// Scopes asked for; granted are those the client is registered for
        #[arg(long, value_name = "SCOPES", default_value = "system/*.rs")]
        scope: String,
    },
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free port) [default: 127.0.0.1:8080]
    #[arg(long, env = "IOP_LISTEN", value_name = "ADDR")]
    listen: Option<String>,
    /// Address of the operations console and /metrics, apart from the FHIR API so that it is
    /// not exposed with it by accident (off the loopback, its cookies are Secure: put HTTPS in
    /// front). Sign-in needs an operator (`operators add`)
    #[arg(
        long,
        env = "IOP_CONSOLE_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:8081"
    )]
    console_listen: String,
    /// Mark the console's cookies Secure even on loopback (a TLS proxy on the same host in front)
    #[arg(long, env = "IOP_CONSOLE_SECURE_COOKIES")]
    console_secure_cookies: bool,
    /// Serve no console (and no /metrics); wins over --console-listen
    #[arg(long, env = "IOP_NO_CONSOLE")]
    no_console: bool,
    /// The gateway's address as clients reach it (https://fhir.clinic.example): links, fullUrls
    /// and Location headers are built on it [default: http://<listen address>]
    #[arg(long, env = "IOP_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,
    /// Build links from each request's Host and X-Forwarded-Proto headers instead (only behind a
    /// proxy that sets them: a client could otherwise choose the links it gets)
    #[arg(long, env = "IOP_PUBLIC_URL_FROM_REQUEST")]
    public_url_from_request: bool,
    /// Let every caller in without a token, with every scope. For local experiments only:
    /// never with real clinic data
    #[arg(long, env = "IOP_OPEN_ACCESS")]
    open_access: bool,
    /// What API clients get of mental-health (non-Part 2) data that no consent decides:
    /// care-team-treatment (TREAT/COC by the client's care team) or consent-only
    /// [default: care-team-treatment, or mental_health_policy in the config file]
    #[arg(long, env = "IOP_MENTAL_HEALTH_POLICY", value_name = "POLICY")]
    mental_health_policy: Option<crate::config::MentalHealthPolicySetting>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key)
    #[arg(long, env = "IOP_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert
    #[arg(long, env = "IOP_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Largest request body, in bytes
    #[arg(long, env = "IOP_MAX_BODY_BYTES", value_name = "N", default_value_t = Limits::default().max_body_bytes)]
    max_body_bytes: usize,
    /// Deepest JSON nesting accepted in a body
    #[arg(long, env = "IOP_MAX_JSON_DEPTH", value_name = "N", default_value_t = Limits::default().max_json_depth)]
    max_json_depth: usize,
    /// Seconds a request may take before it is stopped (503)
    #[arg(long, env = "IOP_REQUEST_TIMEOUT", value_name = "SECONDS", default_value_t = Limits::default().request_timeout.as_secs())]
    request_timeout: u64,
    /// Requests served at once (more wait, within the timeout)
    #[arg(long, env = "IOP_MAX_CONCURRENT_REQUESTS", value_name = "N", default_value_t = Limits::default().max_concurrent_requests)]
    max_concurrent_requests: usize,
    /// Requests per second per client, and per address at the token endpoint (429 beyond)
    #[arg(long, env = "IOP_RATE_LIMIT", value_name = "N", default_value_t = Limits::default().rate_per_second)]
    rate_limit: u32,
    /// Requests a client may send in a burst above its rate
    #[arg(long, env = "IOP_RATE_BURST", value_name = "N", default_value_t = Limits::default().rate_burst)]
    rate_burst: u32,
    /// Seconds an access token lives (at most 300)
    #[arg(long, env = "IOP_TOKEN_LIFETIME", value_name = "SECONDS", default_value_t = 300, value_parser = clap::value_parser!(i64).range(1..=300))]
    token_lifetime: i64,
    /// Where Bulk Data $export files are written: with several replicas, a directory they all
    /// share (each replica runs export jobs and serves any job's files)
    #[arg(
        long,
        env = "IOP_EXPORT_DIR",
        value_name = "DIR",
        default_value = "iop-gateway-exports"
    )]
    export_dir: PathBuf,
    /// Hours a finished export's files are kept before they are removed
    #[arg(
        long,
        env = "IOP_EXPORT_HOURS",
        value_name = "HOURS",
        default_value_t = 24
    )]
    export_hours: u64,
    /// Seconds a running export may go without renewing its lease before another replica (or
    /// this one, restarted) takes the job over and starts it again
    #[arg(long, env = "IOP_EXPORT_LEASE_SECONDS", value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    export_lease_seconds: u64,
    /// Tasks that run one export, each taking id ranges of a type in turn (default: one and a
    /// half per CPU core on SQLite, two per core on PostgreSQL, where tasks wait on round
    /// trips). Each costs a few megabytes of memory (docs/benchmarks.md)
    #[arg(long, env = "IOP_EXPORT_WORKERS", value_name = "N", value_parser = clap::value_parser!(u64).range(1..=64))]
    export_workers: Option<u64>,
}

impl ServeArgs {
    fn limits(&self) -> Limits {
        Limits {
            max_body_bytes: self.max_body_bytes,
            max_json_depth: self.max_json_depth.max(1),
            request_timeout: std::time::Duration::from_secs(self.request_timeout.max(1)),
            max_concurrent_requests: self.max_concurrent_requests.max(1),
            rate_per_second: self.rate_limit.max(1),
            rate_burst: self.rate_burst.max(1),
        }
    }
}

/// Runs the command; the exit code is 0, or what the command reports (validate: 1 when a resource
/// is invalid, 2 when the input cannot be read).
pub async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    if let Command::Validate {
        profiles,
        iop,
        packages,
        format,
        files,
    } = &cli.command
    {
        let options = crate::cli_validate::Options {
            profiles,
            iop: *iop,
            packages,
            json: format == "json",
        };
        return crate::cli_validate::run(&options, files);
    }
    let file = FileConfig::load(cli.config.as_deref())?;
    let database_url = config::resolve(
        cli.database_url,
        file.database_url.as_ref(),
        config::DEFAULT_DATABASE_URL,
    );
    match cli.command {
        Command::Migrate => {
            open_store(&database_url, Workload::Online).await?;
            println!(
                "clinic database schema is up to date ({})",
                redact_url(&database_url)
            );
        }
        Command::Seed {
            clients,
            seed,
            as_of,
        } => {
            let store = open_store(&database_url, Workload::Bulk).await?;
            let options = SeedOptions {
                clients,
                seed,
                as_of: as_of.unwrap_or_else(today),
            };
            let result = run_seed(&store, options).await;
            store.close().await;
            result?;
        }
        Command::Serve(args) => {
            let store = open_store(&database_url, Workload::Online).await?;
            run_server(store, &args, &file, false).await?;
        }
        Command::Export {
            out,
            types,
            as_of,
            recipient,
            purpose,
        } => {
            let types = export::parse_types(&types)?;
            let store = open_store(&database_url, Workload::Online).await?;
            let mapping = mapping_config(&file);
            let as_of = as_of.unwrap_or_else(today);
            let gate = recipient.map(|org| {
                crate::disclose::Gate::new(
                    crate::disclose::Audience::Recipient {
                        recipient: crate::consent::Recipient::Organization(org),
                        purpose: crate::consent::PurposeOfUse::from_code(&purpose),
                    },
                    file.mental_health_policy.unwrap_or_default().policy(),
                    as_of,
                )
            });
            let mut options = ExportOptions {
                out: out.clone(),
                types,
                as_of,
                mapping,
                gate,
            };
            let started = std::time::Instant::now();
            let counts = export::export(&store, &mut options).await?;
            for (resource_type, count) in &counts {
                println!(
                    "{count:>9} {resource_type:<15} {}",
                    out.join(format!("{resource_type}.ndjson")).display()
                );
            }
            let total: u64 = counts.iter().map(|(_, c)| c).sum();
            println!(
                "exported {total} resources in {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        Command::Import { dir, keep_going } => {
            // One large write, as for a seed: a rollback journal, not a WAL as large as the data.
            let store = open_store(&database_url, Workload::Bulk).await?;
            let options = crate::import::ImportOptions {
                dir,
                keep_going,
                mapping: mapping_config(&file),
            };
            let validator = Arc::new(Validator::new(Arc::new(Registry::builtin())));
            let started = std::time::Instant::now();
            let bar = import_progress();
            let mut totals = (0, 0, 0);
            let outcome = crate::import::import(&store, validator, &options, |report| {
                let print = |line: String| match &bar {
                    Some(bar) => bar.println(line),
                    None => eprintln!("{line}"),
                };
                for rejected in &report.rejected {
                    print(format!(
                        "{}:{}: {}",
                        report.file, rejected.line, rejected.reason
                    ));
                }
                print(format!(
                    "{:<24} {:>9} read {:>9} imported {:>9} already present {:>6} rejected",
                    report.file,
                    report.read,
                    report.imported,
                    report.present,
                    report.rejected.len()
                ));
                totals.0 += report.imported;
                totals.1 += report.present;
                totals.2 += report.rejected.len();
                if let Some(bar) = &bar {
                    bar.inc(1);
                }
            })
            .await;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            store.close().await;
            outcome?;
            println!(
                "imported {} records ({} already present, {} rejected) in {:.1} s",
                totals.0,
                totals.1,
                totals.2,
                started.elapsed().as_secs_f64()
            );
            if totals.2 > 0 {
                anyhow::bail!("{} line(s) were rejected (listed above)", totals.2);
            }
        }
        Command::Demo(args) => {
            let store = open_store(&database_url, Workload::Online).await?;
            if store.seed_run().await?.is_none()
                && store.count::<crate::domain::Client>().await? == 0
            {
                run_seed(
                    &store,
                    SeedOptions {
                        clients: 50,
                        seed: 42,
                        as_of: today(),
                    },
                )
                .await?;
            }
            run_server(store, &args, &file, true).await?;
        }
        Command::Clients { command } => {
            let store = open_store(&database_url, Workload::Online).await?;
            crate::cli_clients::run(&store, command).await?;
        }
        Command::Consent { command } => {
            let store = open_store(&database_url, Workload::Online).await?;
            let policy = file.mental_health_policy.unwrap_or_default().policy();
            crate::cli_consent::run(&store, &mapping_config(&file), policy, command).await?;
        }
        Command::Referrals { command } => {
            let store = open_store(&database_url, Workload::Online).await?;
            let engine = sync_engine(store, &file);
            let state = crate::fhir_api::FhirState::for_ingest(
                engine.store.clone(),
                Arc::clone(&engine.validator),
                Arc::clone(&engine.mapping),
                Arc::clone(&engine.policy),
            );
            crate::cli_referrals::run(&engine, &state, command).await?;
        }
        Command::Targets { command } => {
            let store = open_store(&database_url, Workload::Online).await?;
            crate::cli_sync::targets(&store, command).await?;
        }
        Command::Sync { command } => {
            let store = open_store(&database_url, Workload::Online).await?;
            let engine = sync_engine(store, &file);
            return crate::cli_sync::sync(&engine, command).await;
        }
        Command::Operators { command } => {
            let store = open_store(&database_url, Workload::Online).await?;
            crate::cli_operators::run(&store, command).await?;
        }
        Command::Token { client, scope } => {
            let store = open_store(&database_url, Workload::Online).await?;
            let (granted, token, seconds) =
                crate::cli_clients::issue_token(&store, &client, &scope).await?;
            eprintln!("access token for {client}, scopes {granted}, valid {seconds} s:");
            println!("{token}");
        }
        Command::Validate { .. } => unreachable!("handled above"),
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

/// A bar over the import's files, on a terminal only.
fn import_progress() -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(crate::import::ORDER.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("importing [{bar:40}] {pos}/{len} files")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    Some(bar)
}

async fn open_store(url: &str, workload: Workload) -> anyhow::Result<Store> {
    let redacted = redact_url(url);
    let store = Store::open_for(url, workload).await.with_context(|| match Backend::of_url(url) {
        Ok(Backend::Postgres) => format!("cannot use the clinic database at {redacted} (is PostgreSQL running and the database created?)"),
        _ => format!("cannot use the clinic database at {redacted}"),
    })?;
    tracing::info!(database = %redacted, "clinic database ready");
    Ok(store)
}

async fn run_seed(store: &Store, options: SeedOptions) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let outcome = seed::seed(store, options, |done, total| {
        tracing::info!(done, total, "seeded clients");
    })
    .await?;
    match outcome {
        SeedOutcome::Seeded { clients, rows } => println!(
            "seeded {clients} clients ({rows} rows, seed {}, as of {}) in {:.1} s",
            options.seed,
            options.as_of,
            started.elapsed().as_secs_f64()
        ),
        SeedOutcome::AlreadySeeded(run) => println!(
            "already seeded with --clients {} --seed {} (as of {}); nothing added",
            run.clients, run.seed, run.as_of
        ),
    }
    Ok(())
}

fn sync_engine(store: Store, file: &FileConfig) -> crate::sync::Engine {
    crate::sync::Engine {
        store,
        mapping: Arc::new(mapping_config(file)),
        validator: Arc::new(Validator::builtin_on_first_use()),
        policy: Arc::new(file.mental_health_policy.unwrap_or_default().policy()),
    }
}

fn mapping_config(file: &FileConfig) -> MappingConfig {
    file.identifier_base
        .clone()
        .map(|identifier_base| MappingConfig { identifier_base })
        .unwrap_or_default()
}

async fn run_server(
    store: Store,
    args: &ServeArgs,
    file: &FileConfig,
    demo: bool,
) -> anyhow::Result<()> {
    let listen = config::resolve(
        args.listen.clone(),
        file.listen.as_ref(),
        config::DEFAULT_LISTEN,
    );
    let listen = listen.as_str();
    let mapping = mapping_config(file);
    let listener = TcpListener::bind(listen).await.with_context(|| {
        format!(
            "cannot listen on {listen} (is another process using it? choose another with --listen)"
        )
    })?;
    let address = listener.local_addr()?;
    let public_url = if args.public_url_from_request || file.public_url_from_request == Some(true) {
        fhir_api::PublicUrl::FromRequest
    } else {
        let url = config::resolve(
            args.public_url.clone(),
            file.public_url.as_ref(),
            &format!("http://{address}"),
        );
        fhir_api::PublicUrl::fixed(&url).with_context(|| {
            format!("public_url must be an http:// or https:// URL without query (got {url})")
        })?
    };
    let scheme = if args.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    let limits = args.limits();
    let mut state = AppState::new(
        store.clone(),
        Arc::new(Validator::builtin_on_first_use()),
        Arc::new(mapping),
        Arc::new(crate::auth::OpenAccess),
        public_url,
    )
    .with_limits(limits)
    .with_consent_policy(
        args.mental_health_policy
            .or(file.mental_health_policy)
            .unwrap_or_default()
            .policy(),
    )
    .with_bulk_worker(crate::bulk::BulkSettings {
        dir: args.export_dir.clone(),
        keep_for: std::time::Duration::from_secs(args.export_hours * 3600),
        lease: std::time::Duration::from_secs(args.export_lease_seconds),
        ..crate::bulk::BulkSettings::default().with_workers(args.export_workers, store.backend())
    });
    if args.open_access {
        tracing::warn!(
            "--open-access: the FHIR API lets EVERY caller in with every scope, without a token. For local experiments only: never with real clinic data"
        );
        eprintln!(
            "WARNING: --open-access: no authentication; every caller can read and write everything"
        );
    } else {
        let tokens = Arc::new(crate::auth::AccessTokens::load(&store).await?);
        let service = crate::auth::grant::TokenService::new(
            store.clone(),
            crate::auth::keys::KeyCache::new(crate::outbound::Outbound::new()),
            Arc::clone(&tokens),
            args.token_lifetime,
        );
        // A disabled client's tokens stop working within seconds on every replica.
        let disabled = crate::auth::revocation::DisabledClients::default();
        disabled
            .watch(store.clone(), std::time::Duration::from_secs(5))
            .await?;
        state.auth = Arc::new(crate::auth::BearerTokens::new(tokens).with_disabled(disabled));
        state = state.with_tokens(Arc::new(service));
        if store.api_clients().await?.is_empty() {
            tracing::warn!(
                "no API clients are registered: every FHIR request will be refused (register one with: iop-gateway clients add)"
            );
        }
    }
    // Targets with an interval are synced by whichever replica takes each due run.
    let scheduled = tokio::spawn(crate::sync::run_scheduled(
        crate::sync::Engine {
            store: store.clone(),
            mapping: Arc::clone(&state.mapping),
            validator: Arc::clone(&state.validator),
            policy: Arc::clone(&state.consent_policy),
        },
        crate::sync::ScheduleSettings::default(),
    ));
    let _stop_scheduled = AbortOnDrop(scheduled);
    let _stop_console = if args.no_console {
        None
    } else {
        let engine = crate::sync::Engine {
            store: store.clone(),
            mapping: Arc::clone(&state.mapping),
            validator: Arc::clone(&state.validator),
            policy: Arc::clone(&state.consent_policy),
        };
        let console =
            start_console(&args.console_listen, args.console_secure_cookies, engine).await?;
        if demo {
            let password = crate::cli_operators::ensure_demo_operator(&store).await?;
            println!(
                "console: sign in as {} with password {password}",
                crate::cli_operators::DEMO_OPERATOR
            );
        }
        Some(console)
    };
    println!("listening on {scheme}://{address}");
    if demo {
        crate::cli_clients::ensure_demo_client(&store).await?;
        let (_, token, seconds) = crate::cli_clients::issue_token(
            &store,
            crate::cli_clients::DEMO_CLIENT,
            "system/*.cruds system/AuditEvent.rs",
        )
        .await?;
        let base = format!("{scheme}://{address}");
        println!("try:");
        println!("  curl {base}/healthz");
        println!("  curl {base}/fhir/metadata");
        println!("  curl {base}/fhir/.well-known/smart-configuration");
        println!(
            "an access token for the API client `demo` (valid {seconds} s; a new one: iop-gateway token --client demo):"
        );
        println!("  TOKEN={token}");
        println!("  curl -H \"Authorization: Bearer $TOKEN\" '{base}/fhir/Patient?_count=2'");
        println!(
            "  curl -H \"Authorization: Bearer $TOKEN\" '{base}/fhir/CarePlan?patient=<Patient id>'"
        );
        println!(
            "  curl -H \"Authorization: Bearer $TOKEN\" '{base}/fhir/AuditEvent?_count=5'   # who was given what"
        );
        println!(
            "  iop-gateway export --out out          # the clinic as FHIR NDJSON, one file per type"
        );
        println!(
            "  iop-gateway validate out/CarePlan.ndjson   # check it against R4 and the IOP profiles"
        );
        println!("stop with Ctrl-C");
    }
    tracing::info!(%address, scheme, "serving");
    match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            http::serve_tls(listener, state, cert, key, shutdown_signal())
                .await
                .with_context(|| {
                    format!(
                        "cannot serve HTTPS with {} and {}",
                        cert.display(),
                        key.display()
                    )
                })?;
        }
        _ => http::serve(listener, state, shutdown_signal()).await?,
    }
    store.close().await;
    Ok(())
}

/// Binds the console's address and serves it in the background (stopped when dropped).
async fn start_console(
    listen: &str,
    secure_cookies: bool,
    engine: crate::sync::Engine,
) -> anyhow::Result<AbortOnDrop> {
    let listener = TcpListener::bind(listen).await.with_context(|| {
        format!(
            "cannot listen on {listen} for the console (is another process using it? choose another with --console-listen, or --no-console)"
        )
    })?;
    let address = listener.local_addr()?;
    let state =
        crate::console::ConsoleState::new(engine, secure_cookies || !address.ip().is_loopback());
    println!("console on http://{address}");
    tracing::info!(%address, "console serving");
    Ok(AbortOnDrop(tokio::spawn(async move {
        if let Err(error) =
            crate::console::serve(listener, state, std::future::pending::<()>()).await
        {
            tracing::error!(%error, "the console stopped");
        }
    })))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

/// Stops a background task when the server returns.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
