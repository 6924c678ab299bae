//! `iop-gateway validate`: read resources from files, validate on all cores, print verdicts.
//!
//! An edge: reading and printing only; the verdicts come from `validation::Validator`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use serde_json::Value;

use crate::validation::{BundleIndex, Issue, Registry, Validator, operation_outcome};

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

pub fn run(
    profiles: &[String],
    packages: &[PathBuf],
    json: bool,
    files: &[PathBuf],
) -> anyhow::Result<ExitCode> {
    let mut registry = Registry::builtin();
    for package in packages {
        if let Err(err) = registry.load(package) {
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
    let validator = Arc::new(Validator::new(Arc::new(registry)));
    // Validate on every core; print in input order.
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .max(1);
    let chunk = all.len().div_ceil(workers).max(1);
    let verdicts: Vec<Vec<Issue>> = std::thread::scope(|scope| {
        let handles: Vec<_> = all
            .chunks(chunk)
            .map(|part| {
                let validator = Arc::clone(&validator);
                scope.spawn(move || {
                    part.iter()
                        .map(|(resource, bundle)| match bundle {
                            Some(bundle) => validator.validate_entry(resource, bundle, profiles),
                            None => validator.validate(resource, profiles),
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
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
