//! `iop-gateway validate`: read resources from files, validate on all cores, print verdicts.
//!
//! An edge: reading and printing only; the verdicts come from `validation::Validator`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use serde_json::Value;

use crate::validation::{BundleIndex, Issue, Registry, Severity, Validator, operation_outcome};

/// A resource to check, with the Bundle it came from (its references to other entries resolve).
type Input = (Value, Option<Arc<BundleIndex>>);

/// Every resource of the inputs: a resource, the entries of a Bundle, or NDJSON lines.
fn resources(text: &str, origin: &str) -> anyhow::Result<Vec<Input>> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    let documents = match serde_json::from_str::<Value>(trimmed) {
        Ok(one) => vec![one],
        Err(_) => trimmed
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(n, l)| {
                serde_json::from_str(l)
                    .map_err(|e| anyhow::anyhow!("{origin} line {}: not JSON ({e})", n + 1))
            })
            .collect::<anyhow::Result<Vec<Value>>>()?,
    };
    let mut out = Vec::new();
    for document in documents {
        if document.get("resourceType").and_then(Value::as_str) == Some("Bundle") {
            let index = Arc::new(BundleIndex::of(&document));
            out.extend(
                document
                    .get("entry")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e.get("resource").cloned())
                    .map(|r| (r, Some(Arc::clone(&index)))),
            );
        } else {
            out.push((document, None));
        }
    }
    Ok(out)
}

fn read(path: &PathBuf) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().lock().read_to_string(&mut text)?;
        return Ok(text);
    }
    std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))
}

/// The verdict on an input the validator failed on: fatal, never a pass.
fn not_checked((resource, _): &Input) -> Vec<Issue> {
    let resource_type = resource.get("resourceType").and_then(Value::as_str);
    vec![Issue {
        severity: Severity::Fatal,
        code: "exception",
        message:
            "the validator failed on this resource (a defect in the gateway): it was not checked"
                .into(),
        expression: resource_type.unwrap_or_default().to_owned(),
    }]
}

/// `check` on every input, on `workers` threads: one verdict per input, at its index. A check
/// that panics gives its own input a fatal verdict (and says so on stderr); the others keep theirs.
fn verdicts<F>(inputs: &[Input], workers: usize, check: F) -> Vec<Vec<Issue>>
where
    F: Fn(&Input) -> Vec<Issue> + Sync,
{
    let chunk = inputs.len().div_ceil(workers.max(1)).max(1);
    let check_one = |index: usize, input: &Input| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(input))).unwrap_or_else(
            |_| {
                eprintln!(
                    "error: the validator failed on resource {} of the input",
                    index + 1
                );
                not_checked(input)
            },
        )
    };
    // Until a worker hands back its verdict, an input counts as not checked.
    let mut verdicts: Vec<Vec<Issue>> = inputs.iter().map(not_checked).collect();
    std::thread::scope(|scope| {
        let check_one = &check_one;
        let handles: Vec<_> = inputs
            .chunks(chunk)
            .enumerate()
            .map(|(n, part)| {
                scope.spawn(move || {
                    part.iter()
                        .enumerate()
                        .map(|(i, input)| check_one(n * chunk + i, input))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        // Chunks are contiguous and each worker returns one verdict per input of its chunk, in
        // order, so verdict `n * chunk + i` is that input's.
        for (n, handle) in handles.into_iter().enumerate() {
            let Ok(found) = handle.join() else { continue };
            for (i, verdict) in found.into_iter().enumerate() {
                verdicts[n * chunk + i] = verdict;
            }
        }
    });
    verdicts
}

pub fn run(
    profiles: &[String],
    packages: &[PathBuf],
    json: bool,
    files: &[PathBuf],
) -> anyhow::Result<ExitCode> {
    let mut registry = Registry::builtin();
    for package in packages {
        if let Err(err) = crate::fhir_packages::load(&mut registry, package) {
            eprintln!("error: {err}");
            return Ok(ExitCode::from(2));
        }
    }
    for profile in profiles {
        if registry.structure_definition(profile).is_none() {
            eprintln!("error: --profile {profile} is not loaded; add its package with --package");
            return Ok(ExitCode::from(2));
        }
    }
    let mut all = Vec::new();
    for file in files {
        match read(file).and_then(|text| resources(&text, &file.display().to_string())) {
            Ok(found) => all.extend(found),
            Err(err) => {
                eprintln!("error: {err}");
                return Ok(ExitCode::from(2));
            }
        }
    }
    let validator = Validator::new(Arc::new(registry));
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let verdicts = verdicts(&all, workers, |(resource, bundle)| {
        // Each resource gets the IOP profile of its type (or the one of its type it names)
        // besides every `--profile`.
        let mut required = profiles.to_vec();
        if let Some(iop) = validator.registry().iop_profiles().of_resource(resource)
            && !required.iter().any(|p| p == iop)
        {
            required.push(iop.to_owned());
        }
        match bundle {
            Some(bundle) => validator.validate_entry(resource, bundle, &required),
            None => validator.validate(resource, &required),
        }
    });
    let (mut passed, mut failed) = (0, 0);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for ((resource, _), issues) in all.iter().zip(&verdicts) {
        let name = format!(
            "{}/{}",
            resource
                .get("resourceType")
                .and_then(Value::as_str)
                .unwrap_or("?"),
            resource.get("id").and_then(Value::as_str).unwrap_or("?")
        );
        let invalid = issues.iter().any(Issue::is_error);
        if invalid {
            failed += 1
        } else {
            passed += 1
        }
        if json {
            writeln!(out, "{}", operation_outcome(issues))?;
            continue;
        }
        writeln!(out, "{} {name}", if invalid { "invalid" } else { "ok" })?;
        for issue in issues {
            writeln!(
                out,
                "  {} {} at {}: {}",
                issue.severity.code(),
                issue.code,
                issue.expression,
                issue.message
            )?;
        }
    }
    writeln!(out, "{passed} passed, {failed} failed")?;
    out.flush()?;
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_panicking_check_fails_its_own_resource_only() {
        let inputs: Vec<Input> = (0..10)
            .map(|i| {
                (
                    json!({ "resourceType": "Patient", "id": i.to_string() }),
                    None,
                )
            })
            .collect();
        // The verdict names the resource it was made for; resource 4 makes the check panic.
        let check = |(resource, _): &Input| {
            let id = resource["id"].as_str().unwrap().to_owned();
            assert_ne!(id, "4", "a defect provoked by the test");
            vec![Issue {
                severity: Severity::Information,
                code: "informational",
                message: id,
                expression: "Patient".into(),
            }]
        };
        for workers in [1, 3, 4, 16] {
            let found = verdicts(&inputs, workers, check);
            assert_eq!(found.len(), inputs.len());
            for (i, verdict) in found.iter().enumerate() {
                if i == 4 {
                    assert!(verdict[0].is_error() && verdict[0].code == "exception");
                } else {
                    assert_eq!(verdict.len(), 1);
                    assert_eq!(verdict[0].message, i.to_string(), "{workers} workers");
                }
            }
        }
    }
}
