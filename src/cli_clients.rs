//! `iop-gateway clients ...` and `iop-gateway token`: the registry of API clients (SMART
//! Backend Services) and access tokens for local use. An edge: checks arguments, calls the
//! store and `auth`, prints.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::auth::registration;
use crate::auth::{AccessTokens, Scopes};
use crate::domain::{ApiClient, ClientId, KeySource};
use crate::store::{Store, StoreError};

#[derive(Debug, Subcommand)]
pub enum ClientsCommand {
    /// Register a backend service: its public keys (a JWKS file, or the URL serving its JWKS),
    /// the scopes it may be granted, and whom it acts for
    Add {
        /// The client id (its assertions' iss and sub)
        name: String,
        #[command(flatten)]
        keys: KeyArgs,
        /// Scopes it may be granted, space-separated: system/CarePlan.rs, system/*.cruds,
        /// system/Patient.read (v1 read/write are taken as rs/cud)
        #[arg(long, value_name = "SCOPES")]
        scope: String,
        /// The Organization id it acts for (the recipient in consent decisions)
        #[arg(long, value_name = "ID")]
        organization: Option<String>,
        /// The purpose of use of its requests (v3 ActReason: TREAT, HPAYMT, HOPERAT, COC, ...)
        #[arg(long, value_name = "CODE", default_value = "TREAT")]
        purpose: String,
        /// One of the clinic's own applications (its staff app, EHR or practice management):
        /// it may create and change treatment plans, goals, reviews and relapse-prevention
        /// plans (within its scopes); an external EHR's client may not
        #[arg(long)]
        clinic_app: bool,
    },
    /// List the registered clients (no keys are printed)
    List,
    /// Refuse a client's token requests from now on (tokens already issued end within 5 minutes)
    Disable { name: String },
    /// Accept a disabled client's token requests again
    Enable { name: String },
    /// Replace a client's public keys
    Rotate {
        name: String,
        #[command(flatten)]
        keys: KeyArgs,
    },
}

#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct KeyArgs {
    /// A JWKS file with the client's public keys (RSA for RS384, P-384 EC for ES384; each with a kid)
    #[arg(long, value_name = "FILE")]
    jwks: Option<PathBuf>,
    /// The https URL where the client serves its JWKS (fetched and cached as its Cache-Control allows)
    #[arg(long, value_name = "URL")]
    jwks_url: Option<String>,
}

fn key_source(args: &KeyArgs) -> anyhow::Result<KeySource> {
    let jwks = args
        .jwks
        .as_ref()
        .map(|file| {
            std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))
        })
        .transpose()?;
    Ok(registration::key_source(
        jwks.as_deref(),
        args.jwks_url.as_deref(),
    )?)
}

async fn existing(store: &Store, name: &str) -> anyhow::Result<ApiClient> {
    store
        .api_client(name)
        .await?
        .with_context(|| format!("no client {name} is registered (see: iop-gateway clients list)"))
}

pub async fn run(store: &Store, command: ClientsCommand) -> anyhow::Result<()> {
    match command {
        ClientsCommand::Add {
            name,
            keys,
            scope,
            organization,
            purpose: code,
            clinic_app,
        } => {
            let client = registration::new_client(
                &name,
                key_source(&keys)?,
                &scope,
                organization,
                &code,
                clinic_app,
            )?;
            match store.add_api_client(&client).await {
                Err(StoreError::Duplicate { .. }) => {
                    bail!(
                        "a client {name} is already registered (rotate its keys with clients rotate)"
                    )
                }
                other => other?,
            }
            let kind = if clinic_app {
                "clinic application"
            } else {
                "client"
            };
            println!("registered {kind} {name} with scopes: {}", client.scopes);
        }
        ClientsCommand::List => {
            let clients = store.api_clients().await?;
            if clients.is_empty() {
                println!(
                    "no clients registered (add one with: iop-gateway clients add NAME --jwks FILE --scope ...)"
                );
            }
            for c in clients {
                let keys = match &c.keys {
                    KeySource::Inline(_) => "jwks: inline".to_owned(),
                    KeySource::Url(url) => format!("jwks: {url}"),
                };
                println!(
                    "{}\t{}\t{}\t{}\torganization: {}\tpurpose: {}\t{keys}",
                    c.client_id,
                    if c.enabled { "enabled" } else { "disabled" },
                    if c.clinic_app {
                        "clinic-app"
                    } else {
                        "external"
                    },
                    c.scopes,
                    c.organization_id.as_deref().unwrap_or("-"),
                    c.purpose_of_use,
                );
            }
        }
        ClientsCommand::Disable { name } => {
            let mut client = existing(store, &name).await?;
            client.enabled = false;
            store.update_api_client(&client).await?;
            println!("client {name} disabled: its token requests are refused");
        }
        ClientsCommand::Enable { name } => {
            let mut client = existing(store, &name).await?;
            client.enabled = true;
            store.update_api_client(&client).await?;
            println!("client {name} enabled");
        }
        ClientsCommand::Rotate { name, keys } => {
            let mut client = existing(store, &name).await?;
            client.keys = key_source(&keys)?;
            store.update_api_client(&client).await?;
            println!("client {name}: keys replaced");
        }
    }
    Ok(())
}

/// An access token for a registered client, as the token endpoint would grant it: the scopes
/// asked for that the client is registered for. Returns (granted scopes, token, seconds).
pub async fn issue_token(
    store: &Store,
    name: &str,
    scope: &str,
) -> anyhow::Result<(String, String, i64)> {
    let client = existing(store, name).await?;
    if !client.enabled {
        bail!("client {name} is disabled");
    }
    let registered = Scopes::parse_strict(&client.scopes).map_err(anyhow::Error::msg)?;
    let (asked, _) = Scopes::parse(scope);
    let granted = registered.grant(&asked);
    if granted.is_empty() {
        bail!(
            "none of the scopes asked for is registered for {name} (registered: {})",
            client.scopes
        );
    }
    let tokens = AccessTokens::load(store).await?;
    let issued = tokens.issue(
        &client,
        &granted,
        crate::auth::access_token::MAX_LIFETIME_SECONDS,
        chrono::Utc::now().timestamp(),
    );
    // A token from the command line is a disclosure like any other: accounted for.
    let record = crate::audit::token_record(
        &crate::audit::RequestContext {
            request_id: String::new(),
            source_address: None,
        },
        crate::domain::AuditOutcome::Success,
        Some("issued by the command line (iop-gateway token)".into()),
        Some(&client),
        Some(issued.token_id.clone()),
    );
    store.append_audit(&record).await?;
    Ok((granted.to_string(), issued.token, issued.expires_in))
}

/// Registers the demo client when it is not there (no keys: tokens come from `token`). It acts
/// for the clinic itself, so consent filtering shows what the clinic's own EHR would see: all
/// but Part 2 records without a consent.
pub async fn ensure_demo_client(store: &Store) -> anyhow::Result<()> {
    if store.api_client(DEMO_CLIENT).await?.is_some() {
        return Ok(());
    }
    let clinic = crate::disclose::clinic_organizations(store).await?;
    let client = ApiClient {
        client_id: ClientId::parse(DEMO_CLIENT)?,
        keys: KeySource::Inline(r#"{"keys":[]}"#.into()),
        scopes: "system/*.cruds system/AuditEvent.rs".into(),
        organization_id: clinic.into_iter().next(),
        purpose_of_use: "TREAT".into(),
        enabled: true,
        // It shows what a partner acting for the clinic is given (consent filtering on).
        clinic_app: false,
    };
    match store.add_api_client(&client).await {
        Err(StoreError::Duplicate { .. }) | Ok(()) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

pub const DEMO_CLIENT: &str = "demo";
