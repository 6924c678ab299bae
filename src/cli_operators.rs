//! `operators add|list|password|disable|enable|remove`: the people who may sign in to the
//! console. Passwords are asked for on the terminal (twice, not echoed) or read as the first
//! line of standard input (`--password-stdin`, for scripts), and kept only as argon2id hashes.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::console::password;
use crate::domain::{Operator, OperatorName, Role, Roles};
use crate::store::{Store, StoreError};

#[derive(Debug, Subcommand)]
pub enum OperatorsCommand {
    /// Let a person sign in to the console (`serve --console-listen`)
    Add {
        /// Their sign-in name: lower-case letters, digits, . _ -
        name: String,
        /// viewer (looks only), operator (starts syncs, retries dead letters, decides
        /// referrals, enables clients), privacy-officer (reads the audit trail); repeat for several
        #[arg(long = "role", value_name = "ROLE", default_value = "viewer", value_parser = ["viewer", "operator", "privacy-officer"])]
        roles: Vec<String>,
        /// Read the password from the first line of standard input instead of asking
        #[arg(long)]
        password_stdin: bool,
    },
    /// List the operators and their roles
    List,
    /// Set an operator's password (their signed-in sessions go on until they sign out)
    Password {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Stop an operator signing in; their sessions end at once
    Disable {
        name: String,
    },
    Enable {
        name: String,
    },
    /// Remove an operator (what they did stays in the audit trail)
    Remove {
        name: String,
    },
}

pub async fn run(store: &Store, command: OperatorsCommand) -> anyhow::Result<()> {
    match command {
        OperatorsCommand::Add {
            name,
            roles,
            password_stdin,
        } => {
            let name = OperatorName::parse(&name)?;
            let roles = Roles::new(
                roles
                    .iter()
                    .map(|r| Role::parse(r))
                    .collect::<Result<_, _>>()?,
            );
            let password_hash = ask_password(password_stdin)?;
            let operator = Operator {
                name: name.clone(),
                password_hash,
                roles: roles.clone(),
                enabled: true,
            };
            store.add_operator(&operator).await.map_err(|e| match e {
                StoreError::Duplicate { .. } => {
                    anyhow::anyhow!("an operator named {name} exists already")
                }
                other => other.into(),
            })?;
            println!("operator {name} added ({})", roles.codes());
        }
        OperatorsCommand::List => {
            let operators = store.operators().await?;
            if operators.is_empty() {
                println!("no operators (add one with `operators add NAME --role operator`)");
            }
            for o in operators {
                println!(
                    "{}\t{}\t{}",
                    o.name,
                    o.roles.codes(),
                    if o.enabled { "enabled" } else { "disabled" }
                );
            }
        }
        OperatorsCommand::Password {
            name,
            password_stdin,
        } => {
            let mut operator = existing(store, &name).await?;
            operator.password_hash = ask_password(password_stdin)?;
            store.update_operator(&operator).await?;
            println!("password of {name} changed");
        }
        OperatorsCommand::Disable { name } => {
            let mut operator = existing(store, &name).await?;
            operator.enabled = false;
            store.update_operator(&operator).await?;
            println!("operator {name} disabled (signed out everywhere)");
        }
        OperatorsCommand::Enable { name } => {
            let mut operator = existing(store, &name).await?;
            operator.enabled = true;
            store.update_operator(&operator).await?;
            println!("operator {name} enabled");
        }
        OperatorsCommand::Remove { name } => {
            if !store.remove_operator(&name).await? {
                bail!("no operator named {name}");
            }
            println!("operator {name} removed");
        }
    }
    Ok(())
}

async fn existing(store: &Store, name: &str) -> anyhow::Result<Operator> {
    store
        .operator(name)
        .await?
        .with_context(|| format!("no operator named {name}"))
}

/// The new password's argon2id hash: asked twice on a terminal, else the first line of stdin.
fn ask_password(from_stdin: bool) -> anyhow::Result<String> {
    let password = if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        let first = rpassword::prompt_password("password: ")?;
        let again = rpassword::prompt_password("again: ")?;
        if first != again {
            bail!("the two passwords differ");
        }
        first
    };
    Ok(password::hash(&password)?)
}

/// The console operator `demo` prepares.
pub const DEMO_OPERATOR: &str = "demo";

/// Makes `demo` an operator and privacy officer with a new random password, and returns it
/// (printed by `demo`: a password that changes on each start is never worth writing down).
pub async fn ensure_demo_operator(store: &Store) -> anyhow::Result<String> {
    use base64::Engine;
    let password =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 12]>());
    let hash = tokio::task::spawn_blocking({
        let password = password.clone();
        move || password::hash(&password)
    })
    .await??;
    let operator = Operator {
        name: OperatorName::parse(DEMO_OPERATOR)?,
        password_hash: hash,
        roles: Roles::new(vec![Role::Operator, Role::PrivacyOfficer]),
        enabled: true,
    };
    if !store.update_operator(&operator).await? {
        store.add_operator(&operator).await?;
    }
    Ok(password)
}
