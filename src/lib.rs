//! iop-gateway: a FHIR R4 integration gateway for Intensive Outpatient Programs.
//!
//! Data flows one way per direction: `store` (clinic database, domain types) -> mapping -> validation
//! -> edges (HTTP, CLI). See ARCHITECTURE.md for the map and its invariants.

#[macro_use]
pub mod domain;
pub mod assemble;
pub mod audit;
pub mod auth;
pub mod bulk;
pub mod cli;
mod cli_clients;
mod cli_consent;
mod cli_operators;
mod cli_referrals;
mod cli_sync;
mod cli_validate;
pub mod config;
pub mod consent;
pub mod console;
pub mod disclose;
pub mod export;
pub mod fhir_api;
pub mod fhir_packages;
pub mod fhir_xml;
pub mod fhirpath;
pub mod http;
pub mod import;
pub(crate) mod json_build;
pub(crate) mod json_member;
pub(crate) mod json_parse;
pub(crate) mod json_write;
pub mod mapping;
pub mod outbound;
pub mod read_cache;
pub mod referrals;
pub mod seed;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod validation;
