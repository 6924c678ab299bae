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
use crate::http::{self, AppState};
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
    /// $validate) and /healthz, /readyz
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
    },
    /// Validate FHIR resources (a resource, a Bundle or NDJSON per FILE; - for stdin) against
    /// the R4 definitions, the IOP profiles, their meta.profile and any --profile
    Validate {
        /// Also validate against this profile (canonical URL), for resources of its type
        #[arg(long = "profile", value_name = "URL")]
        profiles: Vec<String>,
        /// Load a FHIR package (.tgz or folder), a JSON file or a Bundle of conformance resources
        #[arg(long = "package", value_name = "PATH")]
        packages: Vec<PathBuf>,
        /// text: a line per resource and its issues; json: an OperationOutcome per resource
        #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
        format: String,
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
    },
    /// Try it: seed 50 clients into the database if it is empty, then serve (on 127.0.0.1:8080
    /// unless --listen says otherwise)
    Demo(ServeArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free port) [default: 127.0.0.1:8080]
    #[arg(long, env = "IOP_LISTEN", value_name = "ADDR")]
    listen: Option<String>,
    /// The gateway's address as clients reach it (https://fhir.clinic.example): links, fullUrls
    /// and Location headers are built on it [default: http://<listen address>]
    #[arg(long, env = "IOP_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,
    /// Build links from each request's Host and X-Forwarded-Proto headers instead (only behind a
    /// proxy that sets them: a client could otherwise choose the links it gets)
    #[arg(long, env = "IOP_PUBLIC_URL_FROM_REQUEST")]
    public_url_from_request: bool,
}

/// Runs the command; the exit code is 0, or what the command reports (validate: 1 when a resource
/// is invalid, 2 when the input cannot be read).
pub async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    if let Command::Validate {
        profiles,
        packages,
        format,
        files,
    } = &cli.command
    {
        return crate::cli_validate::run(profiles, packages, format == "json", files);
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
        Command::Export { out, types, as_of } => {
            let types = export::parse_types(&types)?;
            let store = open_store(&database_url, Workload::Online).await?;
            let mapping = mapping_config(&file);
            let options = ExportOptions {
                out: out.clone(),
                types,
                as_of: as_of.unwrap_or_else(today),
                mapping,
            };
            let started = std::time::Instant::now();
            let counts = export::export(&store, &options).await?;
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
        Command::Validate { .. } => unreachable!("handled above"),
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
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
    println!("listening on http://{address}");
    if demo {
        println!("try:");
        println!("  curl http://{address}/healthz");
        println!("  curl http://{address}/readyz");
        println!("  curl http://{address}/fhir/metadata");
        println!("  curl 'http://{address}/fhir/Patient?_count=2'");
        println!("  curl 'http://{address}/fhir/CarePlan?patient=<Patient id>'");
        println!(
            "  iop-gateway export --out out          # the clinic as FHIR NDJSON, one file per type"
        );
        println!(
            "  iop-gateway validate out/CarePlan.ndjson   # check it against R4 and the IOP profiles"
        );
        println!("  sqlite3 iop-gateway.db 'SELECT name, part2 FROM programs'");
        println!("stop with Ctrl-C");
    }
    tracing::info!(%address, "serving");
    tracing::warn!(
        "the FHIR API is open to every caller (no authentication configured yet): serve it on a trusted network only"
    );
    http::serve(
        listener,
        AppState {
            store: store.clone(),
            validator: Arc::new(Validator::new(Arc::new(Registry::builtin()))),
            mapping: Arc::new(mapping),
            auth: Arc::new(crate::auth::OpenAccess),
            public_url,
        },
        shutdown_signal(),
    )
    .await?;
    store.close().await;
    Ok(())
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
