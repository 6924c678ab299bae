//! `iop-gateway export`: the clinic database as FHIR NDJSON, one file per resource type.
//!
//! An edge: it pages through the store (keyset pages of `PAGE` rows, plus one query per page for
//! what those rows need), hands each record to the mapping, and writes one line per resource.
//! Memory holds one page, never the data set. Each file is written to a temporary name and renamed
//! when complete, so an interrupted export leaves no half-written file behind.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde_json::Value;

use crate::assemble::{AssembleError, Assembler, Keyset};
use crate::disclose::Gate;
use crate::mapping::MappingConfig;
use crate::store::{Store, StoreError};

const PAGE: u32 = 500;

pub use crate::assemble::RESOURCE_TYPES;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("unknown resource type `{0}`; export writes {types}", types = RESOURCE_TYPES.join(", "))]
    UnknownType(String),
    #[error(
        "the clinic database has no organization of kind `clinic`; seed or add the clinic first"
    )]
    NoClinic,
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<AssembleError> for ExportError {
    fn from(err: AssembleError) -> Self {
        match err {
            AssembleError::UnknownType(t) => Self::UnknownType(t),
            AssembleError::NoClinic => Self::NoClinic,
            AssembleError::Store(e) => Self::Store(e),
        }
    }
}

pub struct ExportOptions {
    pub out: PathBuf,
    pub types: Vec<String>,
    /// The day consents and contacts are judged active or not.
    pub as_of: NaiveDate,
    pub mapping: MappingConfig,
    /// Export for a recipient: every resource passes the disclosure gate (consents and policy),
    /// as through the API. None: the clinic's own, unfiltered copy of its database.
    pub gate: Option<Gate>,
}

/// Written beside the files when an export for a recipient holds Part 2 records.
pub const PART2_NOTICE_FILE: &str = "PART2-NOTICE.txt";

/// Checks resource type names; an empty list means all of them.
pub fn parse_types(list: &[String]) -> Result<Vec<String>, ExportError> {
    if list.is_empty() {
        return Ok(RESOURCE_TYPES.iter().map(|t| t.to_string()).collect());
    }
    list.iter()
        .map(|t| {
            RESOURCE_TYPES
                .iter()
                .find(|k| k.eq_ignore_ascii_case(t))
                .map(|k| k.to_string())
                .ok_or_else(|| ExportError::UnknownType(t.clone()))
        })
        .collect()
}

/// An NDJSON file being written; renamed into place by `finish`.
struct NdjsonFile {
    path: PathBuf,
    partial: PathBuf,
    writer: std::io::BufWriter<std::fs::File>,
    /// The line being written (kept: one allocation per file, not per resource).
    line: Vec<u8>,
    count: u64,
}

impl NdjsonFile {
    fn create(dir: &Path, resource_type: &str) -> Result<Self, ExportError> {
        let path = dir.join(format!("{resource_type}.ndjson"));
        let partial = dir.join(format!(".{resource_type}.ndjson.partial"));
        let file = std::fs::File::create(&partial).map_err(|source| ExportError::Write {
            path: partial.clone(),
            source,
        })?;
        Ok(Self {
            path,
            partial,
            writer: std::io::BufWriter::new(file),
            line: Vec::new(),
            count: 0,
        })
    }
    fn write(&mut self, resource: &Value) -> Result<(), ExportError> {
        let io = |source| ExportError::Write {
            path: self.partial.clone(),
            source,
        };
        self.line.clear();
        crate::json_write::append(&mut self.line, resource);
        self.line.push(b'\n');
        self.writer.write_all(&self.line).map_err(io)?;
        self.count += 1;
        Ok(())
    }
    fn finish(mut self) -> Result<u64, ExportError> {
        self.writer.flush().map_err(|source| ExportError::Write {
            path: self.partial.clone(),
            source,
        })?;
        std::fs::rename(&self.partial, &self.path).map_err(|source| ExportError::Write {
            path: self.path.clone(),
            source,
        })?;
        Ok(self.count)
    }
}

/// Exports; returns (resource type, count) in the order written.
pub async fn export(
    store: &Store,
    options: &mut ExportOptions,
) -> Result<Vec<(String, u64)>, ExportError> {
    std::fs::create_dir_all(&options.out).map_err(|source| ExportError::Write {
        path: options.out.clone(),
        source,
    })?;
    let assembler = Assembler::new(store, &options.mapping, options.as_of);
    let mut counts = Vec::new();
    for resource_type in &options.types {
        let mut file = NdjsonFile::create(&options.out, resource_type)?;
        let mut after: Option<(String, String)> = None;
        loop {
            // Rows the gate would withhold whole are not assembled; it decides on the rest. In
            // owner order, each client's records come together: the gate, which keeps a
            // bounded number of clients' consents, loads each client once per type.
            let page = assembler
                .page_for(
                    options.gate.as_mut(),
                    resource_type,
                    &[],
                    Keyset::InOwnerOrderAfter(after.as_ref()),
                    PAGE,
                )
                .await?;
            let resources = match options.gate.as_mut() {
                Some(gate) => gate.admit(store, page.resources).await?,
                None => page.resources,
            };
            for resource in &resources {
                file.write(resource)?;
            }
            match page.last_in_owner_order {
                Some(last) => after = Some(last),
                None => break,
            }
        }
        let count = file.finish()?;
        tracing::info!(resource_type = resource_type.as_str(), count, "exported");
        counts.push((resource_type.clone(), count));
    }
    if options.gate.as_ref().is_some_and(Gate::part2_disclosed) {
        let path = options.out.join(PART2_NOTICE_FILE);
        std::fs::write(&path, format!("{}\n", crate::disclose::PART2_NOTICE))
            .map_err(|source| ExportError::Write { path, source })?;
    }
    Ok(counts)
}
