//! Our FHIRPath engine against HL7's JavaScript one (npm `fhirpath`, R4 model), expression by
//! expression, on the same resources: the official suite's expressions on its inputs, the IOP
//! profiles' resource invariants on the fixtures, and expressions generated from every path of
//! every fixture. Where the two disagree, docs/benchmarks.md says which is right; this test pins
//! how many disagreements there are, so a new one (or a fixed one) is noticed.
//!
//! Needs Node and `npm ci --prefix tests/interop`; skipped with a printed reason without them
//! (never under CI=true).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use iop_gateway::fhirpath::{Environment, Item, evaluate, parse, render};
use iop_gateway::validation::Registry;
use serde_json::{Value, json};

/// The most disagreements accepted, each explained in docs/benchmarks.md ("FHIRPath against
/// HL7's JavaScript engine"). Lower it when one is fixed.
const MAX_DISAGREEMENTS: usize = 47;

struct Case {
    source: &'static str,
    input: usize,
    expression: String,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

const KEYWORDS: &[&str] = &["div", "mod", "and", "or", "xor", "implies", "true", "false"];

/// Every path from the resource root to a value (`CarePlan.activity.detail.status`), in order.
fn paths(node: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match node {
        Value::Object(map) => {
            for (key, child) in map {
                if key.starts_with('_') || key == "resourceType" || key == "contained" {
                    continue;
                }
                // A keyword (`div` of Narrative) is an identifier only when delimited.
                let path = if KEYWORDS.contains(&key.as_str()) {
                    format!("{prefix}.`{key}`")
                } else {
                    format!("{prefix}.{key}")
                };
                out.insert(path.clone());
                paths(child, &path, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| paths(i, prefix, out)),
        _ => {}
    }
}

/// Expressions derived from a fixture's own paths, and a few across the whole resource.
fn generated(resource: &Value) -> Vec<String> {
    let root = resource["resourceType"].as_str().unwrap_or("Resource");
    let mut found = BTreeSet::new();
    paths(resource, root, &mut found);
    let mut out = Vec::new();
    for path in &found {
        out.push(path.clone());
        out.push(format!("{path}.count()"));
        out.push(format!("{path}.exists()"));
        out.push(format!("{path}.last()"));
        out.push(format!("{path}.distinct().count()"));
        out.push(format!("{path}.hasValue()"));
    }
    for whole in [
        "descendants().count()",
        "children().count()",
        "descendants().ofType(Reference).reference",
        "descendants().ofType(CodeableConcept).coding.code",
        "descendants().ofType(Coding).where(system.exists()).system.distinct()",
        "descendants().ofType(Period).start",
        "descendants().ofType(dateTime).count()",
        "descendants().ofType(code).count()",
        "descendants().where($this.is(string)).count()",
        "extension.url",
        "meta.profile",
        "text.status",
        "id.length()",
        "(id + '-x').upper()",
        "id.substring(1, 3)",
        "descendants().ofType(Identifier).value.matches('^[A-Za-z0-9-]+$')",
        "descendants().ofType(HumanName).given.join(',')",
        "descendants().ofType(Period).where(start.exists() and end.exists()).select(end >= start)",
        "descendants().ofType(Quantity).value.sum()",
        "descendants().ofType(dateTime).where($this > @2020-01-01).count()",
        "descendants().ofType(date).select($this + 1 day)",
    ] {
        out.push(whole.to_owned());
    }
    out
}

/// Our engine's answer as JSON: nodes as they are, System values as the JavaScript engine gives
/// them (numbers, strings; dates and quantities as their text).
fn ours(expression: &str, resource: &Value, model: &Registry) -> Result<Vec<Value>, String> {
    let parsed = parse(expression).map_err(|e| e.to_string())?;
    let result = evaluate(&parsed, &Environment::new(resource).with_model(model))
        .map_err(|e| e.to_string())?;
    Ok(result
        .iter()
        .map(|item| match item {
            Item::Node(node, _) | Item::Extended(node, _, _) => (*node).clone(),
            Item::Boolean(b) => json!(b),
            Item::String(s) => json!(s),
            Item::Integer(i) => json!(i),
            Item::Decimal(_) => render(item)
                .and_then(|t| t.parse::<f64>().ok())
                .map_or(Value::Null, |f| json!(f)),
            Item::TypeInfo(..) => Value::Null,
            other => render(other).map_or(Value::Null, Value::String),
        })
        .collect())
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            (x - y).abs() <= 1e-9 * x.abs().max(1.0)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// Runs the JavaScript engine over every case in one process.
fn theirs(resources: &[Value], cases: &[Case]) -> Vec<Value> {
    let mut child = Command::new("node")
        .arg(repo().join("tests/interop/fhirpath-eval.mjs"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node runs");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = vec![serde_json::to_string(resources).unwrap()];
    lines.extend(
        cases
            .iter()
            .map(|c| json!({ "input": c.input, "expression": c.expression }).to_string()),
    );
    // Written from another thread: the answers fill the pipe while the questions still flow.
    let writer = std::thread::spawn(move || {
        for line in lines {
            writeln!(stdin, "{line}").unwrap();
        }
    });
    let answers: Vec<Value> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    writer.join().unwrap();
    assert!(
        child.wait().unwrap().success(),
        "the JavaScript engine failed"
    );
    answers
}

#[test]
fn our_engine_agrees_with_hl7_javascript_fhirpath() {
    let suite_dir = common::shared_dir().join("fhirpath-tests");
    let installed = repo().join("tests/interop/node_modules/fhirpath").exists();
    if !installed || !suite_dir.join("tests-fhir-r4.json").exists() {
        let why = "npm `fhirpath` (npm ci --prefix tests/interop) or the FHIRPath suite is missing";
        if common::in_ci() {
            panic!("CI=true but {why}");
        }
        common::say(&format!("skipping the differential FHIRPath test: {why}"));
        return;
    }

    let mut resources: Vec<Value> = Vec::new();
    let mut cases: Vec<Case> = Vec::new();
    // The official suite's expressions on their inputs.
    let suite = read_json(&suite_dir.join("tests-fhir-r4.json"));
    let mut input_index: BTreeMap<String, usize> = BTreeMap::new();
    for test in suite["tests"].as_array().unwrap() {
        let file = test["inputfile"].as_str().unwrap_or("patient-example.json");
        let input = *input_index.entry(file.to_owned()).or_insert_with(|| {
            resources.push(read_json(&suite_dir.join("input").join(file)));
            resources.len() - 1
        });
        cases.push(Case {
            source: "suite",
            input,
            expression: test["expression"].as_str().unwrap().to_owned(),
        });
    }
    // The fixtures: their profile's resource invariants, and generated expressions.
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(repo().join("fixtures/fhir"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    fixtures.sort();
    for path in fixtures {
        let fixture = read_json(&path);
        resources.push(fixture.clone());
        let input = resources.len() - 1;
        let profile = fixture["meta"]["profile"][0].as_str().unwrap_or_default();
        let id = profile.rsplit('/').next().unwrap_or_default();
        let definition = repo().join(format!("fhir-profiles/iop/StructureDefinition-{id}.json"));
        if definition.exists() {
            let sd = read_json(&definition);
            for constraint in sd["snapshot"]["element"][0]["constraint"]
                .as_array()
                .into_iter()
                .flatten()
            {
                cases.push(Case {
                    source: "invariant",
                    input,
                    expression: constraint["expression"].as_str().unwrap().to_owned(),
                });
            }
        }
        for expression in generated(&fixture) {
            cases.push(Case {
                source: "generated",
                input,
                expression,
            });
        }
    }

    let answers = theirs(&resources, &cases);
    assert_eq!(answers.len(), cases.len(), "one answer per case");
    let model = Registry::builtin();
    let mut totals: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut disagreements = Vec::new();
    for (case, answer) in cases.iter().zip(&answers) {
        let mine = ours(&case.expression, &resources[case.input], &model);
        let agree = match (&mine, answer.get("ok")) {
            (Ok(values), Some(Value::Array(their))) => same(&json!(values), &json!(their)),
            (Err(_), None) => true,
            _ => false,
        };
        let total = totals.entry(case.source).or_default();
        total.1 += 1;
        if agree {
            total.0 += 1;
        } else {
            let resource = &resources[case.input];
            disagreements.push(format!(
                "[{}] {}/{}: {} -> ours {} | js {}",
                case.source,
                resource["resourceType"].as_str().unwrap_or("?"),
                resource["id"].as_str().unwrap_or("?"),
                case.expression,
                match &mine {
                    Ok(v) => json!(v).to_string(),
                    Err(e) => format!("error: {e}"),
                },
                answer
            ));
        }
    }
    let mut report = String::from("FHIRPath against HL7's JavaScript engine (npm fhirpath):\n");
    for (source, (agree, total)) in &totals {
        report.push_str(&format!("  {source}: {agree} of {total} agree\n"));
    }
    report.push_str(&format!("  disagreements: {}\n", disagreements.len()));
    common::say(&report);
    if std::env::var("FHIRPATH_DISAGREEMENTS").is_ok() {
        for d in &disagreements {
            common::say(d);
        }
    }
    let generated = totals.get("generated").map_or(0, |t| t.1);
    assert!(generated > 1_000, "only {generated} generated expressions");
    assert!(
        disagreements.len() <= MAX_DISAGREEMENTS,
        "{report}{}",
        disagreements.join("\n")
    );
}
