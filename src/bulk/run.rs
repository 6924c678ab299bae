//! Running one export job. Each type's rows are cut into ranges of owners (clients,
//! enrollments or plans: `assemble::owner_column`) of about equal size, a few per worker
//! (`Store::splits`); each worker task takes the next range not yet taken and
//! pages through it (assembler, `_typeFilter`, disclosure gate), serializing each page, and one
//! writer appends the pages to the type's NDJSON file in whatever order they come (NDJSON has
//! none). Several ranges per worker, because equal row counts are not equal work (withheld
//! clients cost less, care plans more), so that no worker waits long at a type's end for
//! another's last range (on 20,000 clients the cores' use did not measurably change: the waits
//! inside each page are the larger idle time, which more workers fill; `worker.rs`). Memory
//! stays flat: a page per worker and a few serialized pages in flight. The writer asks
//! `still_ours` after every page, so a cancelled or taken-over job stops.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::files::JobFiles;
use super::request::{ExportRequest, Level};
use crate::assemble::{Assembler, Keyset};
use crate::consent::Policy;
use crate::disclose::{Audience, Gate};
use crate::fhir_api::TypeFilter;
use crate::mapping::MappingConfig;
use crate::store::{ExportJob, Filter, SqlValue, Store, StoreError};

/// Serialized pages waiting for the writer, per worker.
const PAGES_IN_FLIGHT: usize = 2;

/// Rows read per page.
const PAGE: u32 = 250;

/// Id ranges per worker and type (see the module comment).
const RANGES_PER_WORKER: usize = 4;

/// What a finished job wrote (stored; the status answer turns it into the manifest).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    pub output: Vec<WrittenFile>,
    pub error: Vec<WrittenFile>,
    /// Part 2 records are among the output: the manifest carries the §2.32 notice.
    pub part2: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrittenFile {
    #[serde(rename = "type")]
    pub resource_type: String,
    pub file: String,
    pub count: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the job was cancelled or taken over by another replica")]
    NoLongerOurs,
    #[error("the job's parameters are unreadable: {0}")]
    Params(String),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Assemble(#[from] crate::assemble::AssembleError),
    #[error("writing the export files: {0}")]
    Io(#[from] std::io::Error),
    #[error("an export worker stopped: {0}")]
    Worker(String),
}

/// Runs `job` into `root` with `workers` tasks per type; `still_ours(progress)` is asked after
/// each page written and says whether to go on.
pub async fn run<F, Fut>(
    store: &Store,
    mapping: &Arc<MappingConfig>,
    policy: Policy,
    root: &Path,
    job: &ExportJob,
    workers: usize,
    mut still_ours: F,
) -> Result<Written, RunError>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<bool, StoreError>>,
{
    let request: ExportRequest =
        serde_json::from_str(&job.params).map_err(|e| RunError::Params(e.to_string()))?;
    let files = JobFiles::of(root, &job.id).ok_or_else(|| RunError::Params("job id".into()))?;
    files.reset()?;
    let today = job.transaction_time.as_datetime().date_naive();
    // The job's files are for whom the kick-off's caller was.
    let audience = Audience::of(
        job.open_access,
        job.organization_id.as_deref(),
        job.purpose_of_use.as_deref(),
    );
    let mut written = Written::default();
    let mut problems: Vec<Value> = request
        .ignored
        .iter()
        .map(|p| {
            outcome(
                "warning",
                "not-supported",
                &format!("the parameter {p} is not supported and was ignored"),
            )
        })
        .collect();
    // A snapshot: what changed up to the transaction time, and since `_since`.
    let mut common = vec![Filter::compare(
        "updated_at",
        "<=",
        SqlValue::text(job.transaction_time.to_db_text()),
    )];
    if let Some(since) = &request.since {
        common.push(Filter::compare("updated_at", ">", SqlValue::text(since)));
    }
    for (n, resource_type) in request.types.iter().enumerate() {
        let mut filters = common.clone();
        // A Group's export is of its clients only (none: nothing); Patient level of those named.
        let of_group = matches!(request.level, Level::Group(_));
        if of_group && request.patients.is_empty() {
            continue;
        }
        if of_group || (request.level == Level::Patient && !request.patients.is_empty()) {
            filters.push(if resource_type == "Patient" {
                Filter::one_of("id", request.patients.iter().map(SqlValue::text).collect())
            } else {
                crate::fhir_api::of_clients(resource_type, &request.patients)
            });
        }
        // `_typeFilter`s of this type are ORed: one pass each, a resource written once.
        let searches: Vec<TypeFilter> = request
            .type_filters
            .iter()
            .filter(|(t, _)| t == resource_type)
            .filter_map(|(t, query)| match TypeFilter::parse(mapping, t, query) {
                Ok(filter) => Some(filter),
                Err(why) => {
                    problems.push(outcome("error", "not-supported", &why));
                    None
                }
            })
            .collect();
        let had_filters = request.type_filters.iter().any(|(t, _)| t == resource_type);
        if had_filters && searches.is_empty() {
            continue;
        }
        let searches = Arc::new(searches);
        let unknown = || crate::assemble::AssembleError::UnknownType(resource_type.clone());
        let table = crate::assemble::tables(resource_type)
            .and_then(|tables| tables.first())
            .ok_or_else(unknown)?;
        // Ranges of owners, read in owner order: each client's records together, so that the
        // gate loads a client's consents once per range, not once per page that names them.
        let owner = crate::assemble::owner_column(resource_type).ok_or_else(unknown)?;
        let splits = store
            .splits(
                table,
                owner,
                &filters,
                workers * RANGES_PER_WORKER,
                i64::from(PAGE),
            )
            .await?;
        let file_name = format!("{resource_type}.ndjson");
        let mut file = files.create(&file_name)?;
        let ranges = owner_ranges(splits);
        let (out, mut pages) = tokio::sync::mpsc::channel(PAGES_IN_FLIGHT * (workers + 1));
        let ranges = Arc::new(std::sync::Mutex::new(ranges.into_iter()));
        // Dropped on an early return: the workers are aborted with it.
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..workers {
            let worker = RangeWorker {
                owner,
                store: store.clone(),
                mapping: Arc::clone(mapping),
                audience: audience.clone(),
                policy: policy.clone(),
                today,
                resource_type: resource_type.clone(),
                filters: filters.clone(),
                searches: Arc::clone(&searches),
                out: out.clone(),
            };
            tasks.spawn(worker.run(Arc::clone(&ranges)));
        }
        drop(out);
        while let Some(page) = pages.recv().await {
            let page: SerializedPage = page?;
            file.write_lines(&page.bytes, page.lines)?;
            let progress = format!(
                "{resource_type} ({} of {} types): {} written",
                n + 1,
                request.types.len(),
                file.lines()
            );
            if !still_ours(progress).await? {
                return Err(RunError::NoLongerOurs);
            }
        }
        while let Some(done) = tasks.join_next().await {
            written.part2 |= done.map_err(|e| RunError::Worker(e.to_string()))?;
        }
        let count = file.finish()?;
        if count > 0 {
            written.output.push(WrittenFile {
                resource_type: resource_type.clone(),
                file: file_name,
                count,
            });
        } else {
            let _ = std::fs::remove_file(files.file(&file_name).unwrap_or_default());
        }
    }
    if !problems.is_empty() {
        let mut file = files.create("error.ndjson")?;
        for problem in &problems {
            file.write(problem)?;
        }
        written.error.push(WrittenFile {
            resource_type: "OperationOutcome".into(),
            file: "error.ndjson".into(),
            count: file.finish()?,
        });
    }
    Ok(written)
}

/// `[from, until)` ranges of owners cut at `splits` (the first from the start, the last to
/// the end).
fn owner_ranges(splits: Vec<String>) -> Vec<(Option<String>, Option<String>)> {
    let mut ranges = Vec::with_capacity(splits.len() + 1);
    let mut from = None;
    for split in splits {
        ranges.push((from.take(), Some(split.clone())));
        from = Some(split);
    }
    ranges.push((from, None));
    ranges
}

/// A page's admitted resources as NDJSON lines.
struct SerializedPage {
    bytes: Vec<u8>,
    lines: u64,
}

/// The owner ranges of one type still to be exported, taken one at a time by the workers.
type Ranges = Arc<std::sync::Mutex<std::vec::IntoIter<(Option<String>, Option<String>)>>>;

/// One owner range being exported.
struct Range {
    gate: Gate,
    /// The type's conditions and the range's end.
    filters: Vec<Filter>,
    /// The first owner of the range (None: from the first row).
    from: Option<String>,
}

/// A worker of one type: takes owner ranges until none is left and sends each page of each
/// through the assembler, the `_typeFilter`s and the gate, serialized, to the writer.
struct RangeWorker {
    /// The column the type's rows are ranged and paged by (`assemble::owner_column`).
    owner: &'static str,
    store: Store,
    mapping: Arc<MappingConfig>,
    audience: Audience,
    policy: Policy,
    today: chrono::NaiveDate,
    resource_type: String,
    /// The type's conditions (a range adds its bounds).
    filters: Vec<Filter>,
    searches: Arc<Vec<TypeFilter>>,
    out: tokio::sync::mpsc::Sender<Result<SerializedPage, RunError>>,
}

impl RangeWorker {
    /// Whether Part 2 records were admitted. A failure goes to the writer, which stops the job.
    async fn run(self, ranges: Ranges) -> bool {
        let mut part2 = false;
        loop {
            let next = ranges.lock().unwrap_or_else(|e| e.into_inner()).next();
            let Some((from, until)) = next else {
                return part2;
            };
            if self.out.is_closed() {
                return part2; // the writer stopped: the job is over
            }
            // A gate per range: what it loads about clients is dropped with the range.
            let mut range = Range {
                gate: Gate::new(self.audience.clone(), self.policy.clone(), self.today),
                filters: self.filters.clone(),
                from,
            };
            range
                .filters
                .extend(until.map(|owner| Filter::compare(self.owner, "<", SqlValue::text(owner))));
            match self.pages(&mut range).await {
                Ok(()) => part2 |= range.gate.part2_disclosed(),
                Err(err) => {
                    let _ = self.out.send(Err(err)).await;
                    return part2;
                }
            }
        }
    }

    /// Every page of one range.
    async fn pages(&self, range: &mut Range) -> Result<(), RunError> {
        let assembler = Assembler::new(&self.store, &self.mapping, self.today);
        let passes: Vec<Option<&TypeFilter>> = if self.searches.is_empty() {
            vec![None]
        } else {
            self.searches.iter().map(Some).collect()
        };
        let ored = passes.len() > 1;
        let mut seen = HashSet::new();
        for search in passes {
            let mut filters = range.filters.clone();
            if let Some(search) = search {
                filters.extend(search.filters().iter().cloned());
            }
            let mut after: Option<(String, String)> = None;
            loop {
                // The range's start bounds only the first page; later ones start after the last
                // row read. Both at once, SQLite seeks to the start and scans from there on every
                // page (17 ms a page halfway through a 240,000-row range, 0.09 ms without).
                let from = range
                    .from
                    .as_ref()
                    .filter(|_| after.is_none())
                    .map(|owner| Filter::compare(self.owner, ">=", SqlValue::text(owner)));
                let filters: Vec<Filter> = filters.iter().cloned().chain(from).collect();
                // Rows the gate would withhold whole are not assembled; it decides on the rest.
                let page = assembler
                    .page_for(
                        Some(&mut range.gate),
                        &self.resource_type,
                        &filters,
                        Keyset::InOwnerOrderAfter(
                            after
                                .as_ref()
                                .map(|(owner, id)| (owner.as_str(), id.as_str())),
                        ),
                        PAGE,
                    )
                    .await?;
                let matched: Vec<Value> = page
                    .resources
                    .into_iter()
                    .filter(|r| search.is_none_or(|s| s.matches(r)))
                    .filter(|r| {
                        !ored || seen.insert(r["id"].as_str().unwrap_or_default().to_owned())
                    })
                    .collect();
                let admitted = range.gate.admit(&self.store, matched).await?;
                let mut bytes = Vec::with_capacity(admitted.len() * 1024);
                for resource in &admitted {
                    crate::json_write::append(&mut bytes, resource);
                    bytes.push(b'\n');
                }
                let lines = admitted.len() as u64;
                drop(admitted);
                // Sent even when empty: the writer checks after every page that the job goes on.
                if self
                    .out
                    .send(Ok(SerializedPage { bytes, lines }))
                    .await
                    .is_err()
                {
                    return Ok(()); // the writer stopped: the job is over
                }
                match (page.full, page.last_owner, page.last_row) {
                    (true, Some(owner), Some(id)) => after = Some((owner, id)),
                    _ => break,
                }
            }
        }
        Ok(())
    }
}

fn outcome(severity: &str, code: &str, diagnostics: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{ "severity": severity, "code": code, "diagnostics": diagnostics }]
    })
}
