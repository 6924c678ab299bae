//! `import DIR`: a clinic's existing records into the gateway's database from FHIR R4 NDJSON in
//! the IOP profiles, laid out as `export` writes them (layout version 1, `docs/import.md`): one
//! `{Type}.ndjson` per resource type, and from spreadsheets, one CSV per record kind
//! (`csv_layout/`). Export then import round-trips: ids, versions and times included.
//!
//! Each file is streamed in chunks, every line checked — JSON, the IOP profile of its type (on
//! every core), the mapping back to clinic records (`rows.rs`) — and written in the file's one
//! transaction: all of it, or with `keep_going` all but the rejected lines (each reported with
//! its line and reason); without it, the first bad line stops the writing, the rest is still
//! checked so that every bad line is reported, and the transaction is rolled back. A record
//! whose id the database holds already is left as it is, so importing twice changes nothing.
//! Files go in the order their records refer to each other. This is an edge: the checks are the
//! validator's and the mapping's.

mod csv_layout;
mod rows;
mod write;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::mapping::MappingConfig;
use crate::store::{Store, StoreError};
use crate::validation::{Issue, Validator};

pub use rows::Context;

/// The files of layout version 1, in the order they are imported. `Task.ndjson` is read with
/// `ServiceRequest.ndjson`: a referral is both.
pub const ORDER: &[&str] = &[
    "Organization",
    "Practitioner",
    "HealthcareService",
    "Group",
    "Patient",
    "RelatedPerson",
    "ServiceRequest",
    "EpisodeOfCare",
    "Consent",
    "CarePlan",
    "Goal",
    "Encounter",
];

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("line {line}: {source}")]
    Line { line: usize, source: StoreError },
    #[error("lines {first} to {last}: {source}")]
    Lines {
        first: usize,
        last: usize,
        source: StoreError,
    },
    #[error(
        "{file}: {count} line(s) refused, nothing of the file written (see the reasons above; --continue imports the rest)"
    )]
    Refused { file: String, count: usize },
    #[error("{0}")]
    Layout(String),
}

/// One rejected line: where, and why (validator issues or the mapping's reason; no values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub line: usize,
    pub reason: String,
}

/// What one file did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileReport {
    pub file: String,
    pub read: usize,
    pub imported: usize,
    /// Already in the database (by id): left as they are.
    pub present: usize,
    pub rejected: Vec<Rejected>,
}

impl FileReport {
    /// Adds what the file's committed transaction wrote (and the lines it could not), and logs
    /// the counts.
    fn add(&mut self, written: write::Written) {
        self.imported = written.imported;
        self.present = written.present;
        self.rejected.extend(written.rejected);
        self.rejected.sort_by_key(|r| r.line);
        tracing::info!(
            file = %self.file,
            read = self.read,
            imported = self.imported,
            present = self.present,
            rejected = self.rejected.len(),
            "imported"
        );
    }

    /// The file refused whole, for its rejected lines.
    fn refused(self) -> ImportError {
        ImportError::Refused {
            count: self.rejected.len(),
            file: self.file,
        }
    }
}

pub struct ImportOptions {
    pub dir: PathBuf,
    /// Import the good lines of a file with bad ones (else the file is refused whole).
    pub keep_going: bool,
    pub mapping: MappingConfig,
}

/// Imports `options.dir`; `on_report` sees each file's report as it is done (the CLI prints
/// it, rejected lines first). Stops at the first file refused.
pub async fn import(
    store: &Store,
    validator: Arc<Validator>,
    options: &ImportOptions,
    mut on_report: impl FnMut(&FileReport),
) -> Result<Vec<FileReport>, ImportError> {
    check_layout(&options.dir)?;
    let mut context = Context::default();
    // The reviews CarePlan.ndjson wrote: Goal.ndjson's progress notes name them by day.
    let mut reviews = write::Reviews::new();
    let mut reports = Vec::new();
    for resource_type in ORDER {
        let path = options.dir.join(format!("{resource_type}.ndjson"));
        if !path.exists() {
            continue;
        }
        let tasks = if *resource_type == "ServiceRequest" {
            tasks_by_id(&options.dir.join("Task.ndjson"))?
        } else {
            HashMap::new()
        };
        context.clinic = write::clinic_organization(store, resource_type).await?;
        let shared = Arc::new(FileCheck {
            validator: Arc::clone(&validator),
            resource_type,
            mapping: options.mapping.clone(),
            context,
            tasks,
        });
        // What this file teaches the files after it (the plan listing each goal).
        let mut learned = Context::default();
        let mut report = FileReport {
            file: format!("{resource_type}.ndjson"),
            ..FileReport::default()
        };
        let mut writer = write::FileWriter::begin(store, std::mem::take(&mut reviews)).await?;
        let mut lines = Lines::open(&path)?;
        // Chunks keep memory flat whatever the file's size; once a line is refused (without
        // keep_going) the rest is only checked, so that every bad line is reported. The next
        // chunk is checked on the other cores while this one is written.
        let mut writing = true;
        let mut checking = VecDeque::with_capacity(CHUNKS_AHEAD);
        check_ahead(&mut checking, &mut lines, &shared)?;
        while let Some(pending) = checking.pop_front() {
            let checked = pending
                .await
                .map_err(|_| ImportError::Layout("the checking of a chunk was cancelled".into()))?;
            check_ahead(&mut checking, &mut lines, &shared)?;
            let mut rows = Vec::with_capacity(checked.len());
            for (line, row) in checked {
                report.read += 1;
                match row {
                    Ok((row, meta)) => {
                        learned.learn(&row);
                        rows.push((line, row, meta));
                    }
                    Err(reason) => report.rejected.push(Rejected { line, reason }),
                }
            }
            if !report.rejected.is_empty() && !options.keep_going {
                writing = false;
            }
            if writing {
                writer.write(rows).await?;
            }
        }
        context = Arc::unwrap_or_clone(shared).context;
        context.goal_plans.extend(learned.goal_plans);
        if !writing {
            // The file's transaction is dropped: nothing of it is written.
            on_report(&report);
            return Err(report.refused());
        }
        let (written, known_reviews) = writer.commit().await?;
        reviews = known_reviews;
        report.add(written);
        on_report(&report);
        reports.push(report);
    }
    let csv_files: Vec<&str> = csv_layout::files()
        .filter(|f| options.dir.join(f).exists())
        .collect();
    if !csv_files.is_empty() {
        let mut lookups = csv_layout::Lookups::load(store).await?;
        for file in csv_files {
            let table = csv_layout::read(&options.dir, file, &mut lookups)?;
            let (rows, rejected) = csv_layout::split(table);
            let mut report = FileReport {
                file: file.to_owned(),
                read: rows.len() + rejected.len(),
                rejected,
                ..FileReport::default()
            };
            if !report.rejected.is_empty() && !options.keep_going {
                on_report(&report);
                return Err(report.refused());
            }
            let mut writer = write::FileWriter::begin(store, write::Reviews::new()).await?;
            let no_meta = rows::Meta {
                version: None,
                updated: None,
            };
            writer
                .write(rows.into_iter().map(|(l, r)| (l, r, no_meta)).collect())
                .await?;
            let (written, _) = writer.commit().await?;
            report.add(written);
            on_report(&report);
            reports.push(report);
        }
    }
    if reports.is_empty() {
        return Err(ImportError::Layout(format!(
            "{} holds none of the files of the import layout ({}.ndjson, {})",
            options.dir.display(),
            ORDER.join(".ndjson, "),
            csv_layout::files().collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(reports)
}

/// Refuses a directory with files the layout does not know (a typo would be silently skipped).
fn check_layout(dir: &Path) -> Result<(), ImportError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ImportError::Io {
        path: dir.to_owned(),
        source,
    })?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".csv") && !csv_layout::is_file(&name) {
            return Err(ImportError::Layout(format!(
                "{name} is not a file of the import layout (known: {})",
                csv_layout::files().collect::<Vec<_>>().join(", ")
            )));
        }
        let Some(stem) = name.strip_suffix(".ndjson") else {
            continue;
        };
        if !ORDER.contains(&stem) && stem != "Task" {
            return Err(ImportError::Layout(format!(
                "{name} is not a file of the import layout (known: {}.ndjson, Task.ndjson)",
                ORDER.join(".ndjson, ")
            )));
        }
    }
    Ok(())
}

/// Lines checked and written at a time: enough to keep every core busy, few enough to keep
/// memory flat.
const CHUNK_LINES: usize = 2_048;

/// Chunks being checked while one is written: two, so that the cores never wait for the writer
/// to finish a chunk before the next check starts.
const CHUNKS_AHEAD: usize = 2;

/// A file's non-empty lines with their numbers, a chunk at a time.
struct Lines {
    path: PathBuf,
    reader: std::io::BufReader<std::fs::File>,
    number: usize,
}

impl Lines {
    fn open(path: &Path) -> Result<Self, ImportError> {
        let file = std::fs::File::open(path).map_err(|source| ImportError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            path: path.to_owned(),
            reader: std::io::BufReader::new(file),
            number: 0,
        })
    }

    fn next_chunk(&mut self, size: usize) -> Result<Option<Vec<(usize, String)>>, ImportError> {
        use std::io::BufRead;
        let mut chunk = Vec::new();
        while chunk.len() < size {
            let mut line = String::new();
            let read = self
                .reader
                .read_line(&mut line)
                .map_err(|source| ImportError::Io {
                    path: self.path.clone(),
                    source,
                })?;
            if read == 0 {
                break;
            }
            self.number += 1;
            if !line.trim().is_empty() {
                chunk.push((self.number, line));
            }
        }
        Ok((!chunk.is_empty()).then_some(chunk))
    }
}

/// Task.ndjson's lines by id: a referral's ServiceRequest finds its Task (they share the id).
/// Kept as text, parsed when used: a parsed Task takes several times its text's memory.
fn tasks_by_id(path: &Path) -> Result<HashMap<String, String>, ImportError> {
    if !path.exists() {
        return Ok(HashMap::new());
    }
    let mut lines = Lines::open(path)?;
    let mut tasks = HashMap::new();
    while let Some(chunk) = lines.next_chunk(CHUNK_LINES)? {
        for (_, line) in chunk {
            if let Ok(task) = serde_json::from_str::<Value>(&line)
                && let Some(id) = task.get("id").and_then(Value::as_str)
            {
                tasks.insert(id.to_owned(), line);
            }
        }
    }
    Ok(tasks)
}

/// What a file's lines are checked and mapped with, shared by the workers.
#[derive(Clone)]
struct FileCheck {
    validator: Arc<Validator>,
    resource_type: &'static str,
    mapping: MappingConfig,
    /// What the files before this one taught (read-only while the file is checked).
    context: Context,
    tasks: HashMap<String, String>,
}

/// A line checked: its rows and kept version, or the reason it is refused.
type Checked = (usize, Result<(rows::Row, rows::Meta), String>);

/// Keeps `CHUNKS_AHEAD` chunks of the file being checked.
fn check_ahead(
    checking: &mut VecDeque<tokio::task::JoinHandle<Vec<Checked>>>,
    lines: &mut Lines,
    shared: &Arc<FileCheck>,
) -> Result<(), ImportError> {
    while checking.len() < CHUNKS_AHEAD
        && let Some(chunk) = lines.next_chunk(CHUNK_LINES)?
    {
        checking.push_back(start_check(shared, chunk));
    }
    Ok(())
}

/// Starts checking `lines` on every core — each parsed, validated against its IOP profile and
/// mapped to rows — giving them back in input order.
fn start_check(
    shared: &Arc<FileCheck>,
    lines: Vec<(usize, String)>,
) -> tokio::task::JoinHandle<Vec<Checked>> {
    let shared = Arc::clone(shared);
    tokio::task::spawn_blocking(move || {
        let workers = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1);
        let chunk = lines.len().div_ceil(workers).max(1);
        let shared = &shared;
        std::thread::scope(|scope| {
            let handles: Vec<_> = lines
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|(line, text)| {
                                // A check that panics fails its own line, never the file's others.
                                let checked = std::panic::catch_unwind(|| {
                                    let resource =
                                        check_one(&shared.validator, shared.resource_type, text)?;
                                    let row = rows::row(
                                        &shared.mapping,
                                        &shared.context,
                                        &shared.tasks,
                                        &resource,
                                    )?;
                                    Ok((row, rows::meta(&resource)))
                                })
                                .unwrap_or_else(|_| {
                                    Err("the check of this line failed unexpectedly".to_owned())
                                });
                                (*line, checked)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("each line's check catches its own panic"))
                .collect()
        })
    })
}

fn check_one(validator: &Validator, resource_type: &str, text: &str) -> Result<Value, String> {
    let resource: Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {}", e.classify_name()))?;
    let found = resource.get("resourceType").and_then(Value::as_str);
    if found != Some(resource_type) {
        return Err(format!(
            "a {} in {resource_type}.ndjson",
            found.unwrap_or("resource without resourceType")
        ));
    }
    let profiles = validator.iop_profiles();
    // The IOP profile the resource names (a CarePlan may be either plan), else its type's.
    let profile = resource
        .pointer("/meta/profile")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find(|p| {
            profiles
                .all_of_type(resource_type)
                .iter()
                .any(|known| known == p)
        })
        .or_else(|| profiles.of_type(resource_type))
        .ok_or_else(|| format!("no IOP profile for {resource_type}"))?
        .to_owned();
    let issues = validator.validate(&resource, &[profile]);
    let errors: Vec<&Issue> = issues.iter().filter(|i| i.is_error()).collect();
    if let Some(first) = errors.first() {
        return Err(format!(
            "{} error(s) against its IOP profile, first at {}: {}",
            errors.len(),
            first.expression,
            first.message
        ));
    }
    Ok(resource)
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "unreadable",
            serde_json::error::Category::Syntax => "a syntax error",
            serde_json::error::Category::Data => "not a JSON value",
            serde_json::error::Category::Eof => "cut short",
        }
    }
}
