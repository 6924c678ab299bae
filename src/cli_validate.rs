//! `iop-gateway validate`: read resources from files, validate on all cores, print verdicts in
//! input order — streaming, so memory stays flat however large the input.
//!
//! An edge: reading and printing only; the verdicts come from `validation::Validator`. A
//! reader thread cuts the input into chunks (NDJSON lines unparsed, so parsing runs on the
//! workers too), workers parse and validate them, and the printer writes each chunk's verdicts
//! as soon as every earlier chunk is out. At most `IN_FLIGHT` chunks exist at any moment.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::validation::{Issue, Registry, Severity, Validator, operation_outcome};

/// Resources (or NDJSON lines) per chunk: enough to keep a worker busy between hand-overs.
const CHUNK: usize = 256;
/// Chunks read but not yet printed, per worker.
const IN_FLIGHT_PER_WORKER: usize = 4;

/// Reads a FHIR XML document into its JSON form, or says why it cannot.
type FromXml<'a> = dyn Fn(&str) -> Result<Value, String> + Sync + 'a;

/// One piece of input as the reader hands it over.
enum Item {
    /// An NDJSON line, parsed by the worker that takes it.
    Line {
        text: String,
        origin: Arc<str>,
        number: usize,
    },
    /// A document read whole: a resource or a Bundle (checked as one resource, entries within).
    Document(Value),
    /// A FHIR XML document read whole, converted by the worker that takes it.
    Xml { text: String, origin: Arc<str> },
    /// Text that is not JSON: a fatal verdict on it, and the run goes on.
    NotJson { name: String, reason: String },
    /// Input that cannot be read (an I/O error): the run stops there (exit 2).
    Unreadable(String),
}

/// What the printer prints for one resource, or why the run stops.
enum Verdict {
    Checked { name: String, issues: Vec<Issue> },
    Unreadable(String),
}

/// The verdict on text that is not JSON: fatal, as the reference validator's parse errors are.
fn not_json(name: String, reason: String) -> Verdict {
    unreadable(name, format!("not JSON: {reason}"))
}

/// The verdict on a document that cannot be read as a resource: fatal.
fn unreadable(name: String, message: String) -> Verdict {
    Verdict::Checked {
        name,
        issues: vec![Issue {
            severity: Severity::Fatal,
            code: "structure",
            message,
            expression: String::new(),
        }],
    }
}

/// The verdict on an input the validator failed on: fatal, never a pass.
fn not_checked(resource: &Value) -> Vec<Issue> {
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

fn name_of(resource: &Value) -> String {
    format!(
        "{}/{}",
        resource
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or("?"),
        resource.get("id").and_then(Value::as_str).unwrap_or("?")
    )
}

/// The verdicts on one item: `check` on each of its resources (`from_xml` reads FHIR XML). A
/// check that panics gives its own resource a fatal verdict (and says so on stderr); the others
/// keep theirs.
fn judge<F>(item: Item, check: &F, from_xml: &FromXml<'_>) -> Vec<Verdict>
where
    F: Fn(&Value) -> Vec<Issue>,
{
    let document = match item {
        Item::Unreadable(reason) => return vec![Verdict::Unreadable(reason)],
        Item::NotJson { name, reason } => return vec![not_json(name, reason)],
        Item::Document(document) => document,
        Item::Xml { text, origin } => match from_xml(&text) {
            Ok(document) => document,
            Err(reason) => return vec![unreadable(origin.to_string(), reason)],
        },
        Item::Line {
            text,
            origin,
            number,
        } => match crate::json_parse::from_str(&text) {
            Ok(document) => document,
            Err(e) => return vec![not_json(format!("{origin} line {number}"), e.to_string())],
        },
    };
    let issues = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&document)))
        .unwrap_or_else(|_| {
            eprintln!("error: the validator failed on {}", name_of(&document));
            not_checked(&document)
        });
    vec![Verdict::Checked {
        name: name_of(&document),
        issues,
    }]
}

/// Reads `source` as NDJSON (when its first line is a JSON value on its own) or as one document
/// (a resource or a Bundle, over any number of lines), handing over chunks of items.
fn read_source(
    mut source: Box<dyn BufRead + Send>,
    origin: &str,
    send: &mut impl FnMut(Item) -> bool,
) -> bool {
    let origin: Arc<str> = Arc::from(origin);
    let mut first = String::new();
    let mut number = 0;
    // The first line with something on it decides the format.
    loop {
        first.clear();
        match source.read_line(&mut first) {
            Ok(0) => return true,
            Ok(_) => number += 1,
            Err(e) => return send(Item::Unreadable(format!("cannot read {origin}: {e}"))),
        }
        if !first.trim().is_empty() {
            break;
        }
    }
    // A UTF-8 byte order mark (some editors write one) is not part of the content.
    if let Some(unmarked) = first.strip_prefix('\u{feff}') {
        first = unmarked.to_owned();
    }
    if serde_json::from_str::<serde::de::IgnoredAny>(first.trim()).is_err() {
        let mut text = first;
        if let Err(e) = source.read_to_string(&mut text) {
            return send(Item::Unreadable(format!("cannot read {origin}: {e}")));
        }
        if crate::fhir_xml::looks_like_xml(&text) {
            return send(Item::Xml { text, origin });
        }
        return match crate::json_parse::from_str(text.trim()) {
            Ok(document) => send(Item::Document(document)),
            Err(e) => send(Item::NotJson {
                name: origin.to_string(),
                reason: e.to_string(),
            }),
        };
    }
    if !send(Item::Line {
        text: first,
        origin: Arc::clone(&origin),
        number,
    }) {
        return false;
    }
    for line in source.lines() {
        number += 1;
        let text = match line {
            Ok(text) => text,
            Err(e) => return send(Item::Unreadable(format!("cannot read {origin}: {e}"))),
        };
        if text.trim().is_empty() {
            continue;
        }
        if !send(Item::Line {
            text,
            origin: Arc::clone(&origin),
            number,
        }) {
            return false;
        }
    }
    true
}

/// Runs `check` over every resource of `sources` on `workers` threads and hands each verdict to
/// `print` in input order; stops at the first unreadable input (its reason is returned).
fn stream<F, P>(
    sources: Vec<(Box<dyn BufRead + Send>, String)>,
    workers: usize,
    check: F,
    from_xml: &FromXml<'_>,
    mut print: P,
) -> anyhow::Result<Option<String>>
where
    F: Fn(&Value) -> Vec<Issue> + Sync,
    P: FnMut(String, Vec<Issue>) -> anyhow::Result<()>,
{
    let workers = workers.max(1);
    let in_flight = workers * IN_FLIGHT_PER_WORKER;
    // A token per chunk in flight: the reader takes one before handing a chunk over, the printer
    // gives it back once the chunk is printed.
    let (tokens, tokens_back) = sync_channel::<()>(in_flight);
    let (work_tx, work_rx) = sync_channel::<(usize, Vec<Item>)>(in_flight);
    let work_rx = Arc::new(Mutex::new(work_rx));
    let (done_tx, done_rx) = sync_channel::<(usize, Vec<Verdict>)>(in_flight);
    let (mut done_rx, mut tokens_back) = (Some(done_rx), Some(tokens_back));
    std::thread::scope(|scope| {
        scope.spawn(move || reader(sources, &tokens, &work_tx));
        for _ in 0..workers {
            let work_rx = Arc::clone(&work_rx);
            let done_tx = done_tx.clone();
            let check = &check;
            scope.spawn(move || worker(&work_rx, &done_tx, check, from_xml));
        }
        // Only the workers hold these now: when they are gone, the reader's hand-over fails
        // rather than waits; when the printer is gone, theirs does.
        drop(work_rx);
        drop(done_tx);
        let (done_rx, tokens_back) = (done_rx.take(), tokens_back.take());
        let (Some(done_rx), Some(tokens_back)) = (done_rx, tokens_back) else {
            return Ok(None);
        };
        let printed = printer(&done_rx, &tokens_back, &mut print);
        // Stopped early (unreadable input, a failed write): the reader and the workers see
        // their channels closed and end, so the scope can join them.
        drop(done_rx);
        drop(tokens_back);
        printed
    })
}

fn reader(
    sources: Vec<(Box<dyn BufRead + Send>, String)>,
    tokens: &SyncSender<()>,
    work: &SyncSender<(usize, Vec<Item>)>,
) {
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut next = 0;
    let mut hand_over = |chunk: &mut Vec<Item>| {
        if tokens.send(()).is_err() {
            return false;
        }
        let full = std::mem::replace(chunk, Vec::with_capacity(CHUNK));
        let sent = work.send((next, full)).is_ok();
        next += 1;
        sent
    };
    for (source, origin) in sources {
        let mut send = |item: Item| {
            let stop = matches!(item, Item::Unreadable(_));
            chunk.push(item);
            if (chunk.len() == CHUNK || stop) && !hand_over(&mut chunk) {
                return false;
            }
            !stop
        };
        if !read_source(source, &origin, &mut send) {
            return;
        }
    }
    if !chunk.is_empty() {
        hand_over(&mut chunk);
    }
}

fn worker<F>(
    work: &Mutex<Receiver<(usize, Vec<Item>)>>,
    done: &SyncSender<(usize, Vec<Verdict>)>,
    check: &F,
    from_xml: &FromXml<'_>,
) where
    F: Fn(&Value) -> Vec<Issue>,
{
    loop {
        // The lock is held only to take the next chunk.
        let next = work.lock().map(|rx| rx.recv());
        let Ok(Ok((number, items))) = next else {
            return;
        };
        let verdicts = items
            .into_iter()
            .flat_map(|i| judge(i, check, from_xml))
            .collect();
        if done.send((number, verdicts)).is_err() {
            return;
        }
    }
}

fn printer<P>(
    done: &Receiver<(usize, Vec<Verdict>)>,
    tokens_back: &Receiver<()>,
    print: &mut P,
) -> anyhow::Result<Option<String>>
where
    P: FnMut(String, Vec<Issue>) -> anyhow::Result<()>,
{
    let mut waiting: BTreeMap<usize, Vec<Verdict>> = BTreeMap::new();
    let mut next = 0;
    for (number, verdicts) in done {
        waiting.insert(number, verdicts);
        while let Some(verdicts) = waiting.remove(&next) {
            for verdict in verdicts {
                match verdict {
                    Verdict::Checked { name, issues } => print(name, issues)?,
                    Verdict::Unreadable(reason) => return Ok(Some(reason)),
                }
            }
            next += 1;
            let _ = tokens_back.recv();
        }
    }
    Ok(None)
}

fn open(path: &PathBuf) -> anyhow::Result<Box<dyn BufRead + Send>> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(BufReader::new(std::io::stdin())));
    }
    let file =
        File::open(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    Ok(Box::new(BufReader::with_capacity(1 << 16, file)))
}

/// How `validate` was asked to check.
pub struct Options<'a> {
    /// Required of every resource of their type (`--profile`).
    pub profiles: &'a [String],
    /// Apply the IOP profile of each resource's type too (`--iop`).
    pub iop: bool,
    pub packages: &'a [PathBuf],
    /// An OperationOutcome per resource instead of text.
    pub json: bool,
}

pub fn run(options: &Options<'_>, files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let Options {
        profiles,
        iop,
        packages,
        json,
    } = *options;
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
    // Every file opens before anything is checked: a wrong path is said at once.
    let mut sources = Vec::new();
    for file in files {
        match open(file) {
            Ok(source) => sources.push((source, file.display().to_string())),
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
    let validator = if iop {
        validator.applying_iop_profiles()
    } else {
        validator
    };
    // With --iop, every resource (and every resource inside a Bundle or `contained`) also gets
    // the IOP profile of its type, or the one of its type it names.
    let check = |resource: &Value| validator.validate(resource, profiles);
    let (mut passed, mut failed) = (0, 0);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let from_xml = |text: &str| {
        crate::fhir_xml::to_json(text, validator.registry()).map_err(|e| e.to_string())
    };
    let stopped = stream(sources, workers, check, &from_xml, |name, issues| {
        let invalid = issues.iter().any(Issue::is_error);
        if invalid {
            failed += 1
        } else {
            passed += 1
        }
        if json {
            writeln!(out, "{}", operation_outcome(&issues))?;
            return Ok(());
        }
        writeln!(out, "{} {name}", if invalid { "invalid" } else { "ok" })?;
        for issue in &issues {
            writeln!(
                out,
                "  {} {} at {}: {}",
                issue.severity.code(),
                issue.code,
                issue.expression,
                issue.message
            )?;
        }
        Ok(())
    })?;
    if let Some(reason) = stopped {
        out.flush()?;
        eprintln!("error: {reason} (the resources before it were checked, as printed)");
        return Ok(ExitCode::from(2));
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

    fn ndjson(count: usize) -> Box<dyn BufRead + Send> {
        let text: String = (0..count)
            .map(|i| {
                format!(
                    "{}\n",
                    json!({ "resourceType": "Patient", "id": i.to_string() })
                )
            })
            .collect();
        Box::new(std::io::Cursor::new(text.into_bytes()))
    }

    fn no_xml(_: &str) -> Result<Value, String> {
        Err("no XML in these tests".into())
    }

    /// The names of the verdicts on `text` read as the file `origin`, in order.
    fn verdict_names(text: &str, origin: &str, workers: usize) -> Vec<String> {
        let mut found = Vec::new();
        let stopped = stream(
            vec![(
                Box::new(std::io::Cursor::new(text.as_bytes().to_vec())),
                origin.into(),
            )],
            workers,
            check,
            &no_xml,
            |name, _| {
                found.push(name);
                Ok(())
            },
        )
        .unwrap();
        assert!(stopped.is_none());
        found
    }

    /// The verdict names the resource it was made for; resource 4 makes the check panic.
    fn check(resource: &Value) -> Vec<Issue> {
        let id = resource["id"].as_str().unwrap().to_owned();
        assert_ne!(id, "4", "a defect provoked by the test");
        vec![Issue {
            severity: Severity::Information,
            code: "informational",
            message: id,
            expression: "Patient".into(),
        }]
    }

    #[test]
    fn verdicts_come_in_input_order_and_a_panicking_check_fails_its_own_resource_only() {
        for workers in [1, 3, 4, 16] {
            let mut found = Vec::new();
            let stopped = stream(
                vec![(ndjson(2_000), "a.ndjson".into())],
                workers,
                check,
                &no_xml,
                |name, issues| {
                    found.push((name, issues));
                    Ok(())
                },
            )
            .unwrap();
            assert!(stopped.is_none());
            assert_eq!(found.len(), 2_000);
            for (i, (name, verdict)) in found.iter().enumerate() {
                assert_eq!(name, &format!("Patient/{i}"), "{workers} workers");
                if i == 4 {
                    assert!(verdict[0].is_error() && verdict[0].code == "exception");
                } else {
                    assert_eq!(verdict[0].message, i.to_string(), "{workers} workers");
                }
            }
        }
    }

    #[test]
    fn a_bundle_over_many_lines_is_read_whole_and_judged_as_one_resource() {
        let bundle = serde_json::to_string_pretty(&json!({
            "resourceType": "Bundle",
            "id": "b",
            "type": "collection",
            "entry": [
                { "resource": { "resourceType": "Patient", "id": "0" } },
                { "resource": { "resourceType": "Patient", "id": "1" } },
            ],
        }))
        .unwrap();
        let found = verdict_names(&bundle, "b.json", 2);
        assert_eq!(found, ["Bundle/b"]);
    }

    #[test]
    fn a_line_that_is_not_json_gets_a_fatal_verdict_and_the_run_goes_on() {
        let text = "{\"resourceType\":\"Patient\",\"id\":\"0\"}\nnot json\n{\"resourceType\":\"Patient\",\"id\":\"2\"}\n";
        let found = verdict_names(text, "c.ndjson", 2);
        assert_eq!(found, ["Patient/0", "c.ndjson line 2", "Patient/2"]);
    }

    #[test]
    fn a_byte_order_mark_before_the_first_line_is_not_content() {
        for text in [
            "\u{feff}{\"resourceType\":\"Patient\",\"id\":\"0\"}\n",
            "\u{feff}{\n  \"resourceType\": \"Patient\",\n  \"id\": \"0\"\n}\n",
        ] {
            let found = verdict_names(text, "bom.json", 1);
            assert_eq!(found, ["Patient/0"], "{text:?}");
        }
    }
}
