//! `consent explain`: what the disclosure gate lets a recipient have of one client, for one
//! purpose, and the consent or rule that decided each resource — the question a privacy officer
//! asks before (or after) a disclosure.

use anyhow::{Context, bail};
use chrono::NaiveDate;
use clap::Subcommand;
use serde_json::Value;

use crate::assemble::{Assembler, Keyset};
use crate::consent::{Policy, PurposeOfUse, Recipient};
use crate::disclose::{Audience, Gate};
use crate::domain::{Client, Consent, ConsentRecipient, Id};
use crate::mapping::MappingConfig;
use crate::store::{Filter, SqlValue, Store};

/// The types a client's records appear as, in the order they are listed.
const CLIENT_TYPES: [&str; 9] = [
    "Patient",
    "RelatedPerson",
    "Consent",
    "EpisodeOfCare",
    "Encounter",
    "CarePlan",
    "Goal",
    "ServiceRequest",
    "Task",
];

#[derive(Debug, Subcommand)]
pub enum ConsentCommand {
    /// Print the decision on each of a client's records (or one) for a recipient organization
    /// and purpose of use, and the consent or rule that made it
    Explain {
        /// The client (Patient id)
        #[arg(long, value_name = "ID")]
        client: String,
        /// The recipient organization (Organization id, as API clients are registered with)
        #[arg(long, value_name = "ORG")]
        recipient: String,
        /// The purpose of use (v3 ActReason: TREAT, HPAYMT, HOPERAT, COC, FAMRQT, ...)
        #[arg(long, value_name = "CODE", default_value = "TREAT")]
        purpose: String,
        /// Only this record (Type/id)
        #[arg(long, value_name = "TYPE/ID")]
        resource: Option<String>,
        /// The day to decide for (YYYY-MM-DD) [default: today]
        #[arg(long, value_name = "DATE")]
        as_of: Option<NaiveDate>,
    },
}

pub async fn run(
    store: &Store,
    mapping: &MappingConfig,
    policy: Policy,
    command: ConsentCommand,
) -> anyhow::Result<()> {
    let ConsentCommand::Explain {
        client,
        recipient,
        purpose,
        resource,
        as_of,
    } = command;
    let today = as_of.unwrap_or_else(|| chrono::Utc::now().date_naive());
    let client_id: Id<Client> = client
        .parse()
        .ok()
        .context("--client is a Patient id (a UUID)")?;
    if store.get(client_id).await?.is_none() {
        bail!("no client {client}");
    }
    let purpose = PurposeOfUse::from_code(&purpose);
    let mut gate = Gate::new(
        Audience::Recipient {
            recipient: Recipient::Organization(recipient.clone()),
            purpose: purpose.clone(),
        },
        policy,
        today,
    );

    let consents = store
        .page_where::<Consent>(
            &[Filter::equals("client_id", SqlValue::id(client_id))],
            None,
            u32::MAX,
        )
        .await?;
    println!(
        "client {client}: {} consent(s), {} in force on {today}",
        consents.len(),
        consents
            .iter()
            .filter(|c| c.record.in_force_on(today))
            .count()
    );
    for c in &consents {
        let c = &c.record;
        let valid = format!(
            "{}..{}",
            c.valid.start(),
            c.valid.end().map(|e| e.to_string()).unwrap_or_default()
        );
        println!(
            "  consent {} {} to {}, purpose {}, scope {}, valid {}, signed {}{}{}",
            c.id,
            c.kind.code(),
            match c.recipient {
                ConsentRecipient::Organization(id) => format!("organization {id}"),
                ConsentRecipient::Clinician(id) => format!("clinician {id}"),
                ConsentRecipient::SupportContact(id) => format!("support contact {id}"),
            },
            c.purpose.code(),
            c.scope.code(),
            valid,
            c.signed_on,
            c.revoked_on
                .map(|r| format!(", revoked {r}"))
                .unwrap_or_default(),
            if c.in_force_on(today) {
                ", in force"
            } else {
                ", not in force"
            },
        );
    }
    println!(
        "recipient organization {recipient}, purpose {}",
        purpose.code()
    );

    let assembler = Assembler::new(store, mapping, today);
    let mut records: Vec<Value> = Vec::new();
    match &resource {
        Some(reference) => {
            let (resource_type, id) = reference
                .split_once('/')
                .context("--resource is Type/id, like CarePlan/0195...")?;
            let by_id = [Filter::equals("id", SqlValue::text(id))];
            let page = assembler
                .page(resource_type, &by_id, Keyset::After(None), 1)
                .await?;
            match page.resources.into_iter().next() {
                Some(found) => records.push(found),
                None => bail!("no {reference}"),
            }
        }
        None => {
            for resource_type in CLIENT_TYPES {
                let of_client = if resource_type == "Patient" {
                    Filter::equals("id", SqlValue::id(client_id))
                } else {
                    crate::fhir_api::of_clients(resource_type, std::slice::from_ref(&client))
                };
                let page = assembler
                    .page(resource_type, &[of_client], Keyset::After(None), 1_000)
                    .await?;
                records.extend(page.resources);
            }
        }
    }
    gate.load(store, &records).await?;
    let (mut permitted, mut denied) = (0, 0);
    for record in &records {
        let verdict = gate.decide(record);
        let name = format!(
            "{}/{}",
            record["resourceType"].as_str().unwrap_or_default(),
            record["id"].as_str().unwrap_or_default()
        );
        if verdict.permit {
            permitted += 1;
        } else {
            denied += 1;
        }
        println!(
            "{:<6} {name:<52} {}{}",
            if verdict.permit { "permit" } else { "deny" },
            verdict.why.as_deref().unwrap_or("not filtered"),
            if verdict.permit && verdict.part2 {
                " (Part 2: sent labelled, with the 42 CFR 2.32 notice)"
            } else {
                ""
            }
        );
    }
    println!("{permitted} permitted, {denied} denied");
    Ok(())
}
