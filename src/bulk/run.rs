//! Running one export job: for each type, stream the clinic rows through the assembler and the
//! disclosure gate into an NDJSON file, one page at a time (memory stays flat), renewing the
//! job's lease after every page so a cancelled or taken-over job stops.

use std::path::Path;

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

/// Rows read per page.
const PAGE: u32 = 1_000;

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
}

/// Runs `job` into `root`; `still_ours(progress)` renews the lease after each page and says
/// whether to go on.
pub async fn run<F, Fut>(
    store: &Store,
    mapping: &MappingConfig,
    policy: Policy,
    root: &Path,
    job: &ExportJob,
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
    let mut gate = Gate::new(audience, policy, today);
    let assembler = Assembler::new(store, mapping, today);
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
        let passes: Vec<Option<&TypeFilter>> = if searches.is_empty() {
            vec![None]
        } else {
            searches.iter().map(Some).collect()
        };
        let file_name = format!("{resource_type}.ndjson");
        let mut file = files.create(&file_name)?;
        let mut seen = std::collections::HashSet::new();
        for search in passes {
            let mut pass_filters = filters.clone();
            if let Some(search) = search {
                pass_filters.extend(search.filters().iter().cloned());
            }
            let mut after: Option<String> = None;
            loop {
                let page = assembler
                    .page(
                        resource_type,
                        &pass_filters,
                        Keyset::After(after.as_deref()),
                        PAGE,
                    )
                    .await?;
                let matched: Vec<Value> = page
                    .resources
                    .into_iter()
                    .filter(|r| search.is_none_or(|s| s.matches(r)))
                    .filter(|r| {
                        searches.len() < 2
                            || seen.insert(r["id"].as_str().unwrap_or_default().to_owned())
                    })
                    .collect();
                for resource in gate.admit(store, matched).await? {
                    file.write(&resource)?;
                }
                let progress = format!(
                    "{resource_type} ({} of {} types): {} written",
                    n + 1,
                    request.types.len(),
                    file.lines()
                );
                if !still_ours(progress).await? {
                    return Err(RunError::NoLongerOurs);
                }
                match (page.full, page.last_row) {
                    (true, Some(last)) => after = Some(last),
                    _ => break,
                }
            }
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
    written.part2 = gate.part2_disclosed();
    Ok(written)
}

fn outcome(severity: &str, code: &str, diagnostics: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{ "severity": severity, "code": code, "diagnostics": diagnostics }]
    })
}
