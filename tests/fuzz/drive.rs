//! What each fuzz target does with one input, shared by the seeded mutation loop of
//! `tests/fuzz.rs` (what `cargo test` and CI run) and the libFuzzer targets in `fuzz/` (the long
//! runs of `benches/fuzz/run.sh`). Errors are the expected outcome of most inputs; only a panic
//! (or an abort) is a finding.

// Each libFuzzer target uses one of these functions.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use iop_gateway::assemble::RESOURCE_TYPES;
use iop_gateway::fhir_api::{read_body, search_in};
use iop_gateway::fhirpath::{Environment, evaluate, evaluate_on, parse};
use iop_gateway::mapping::{self, MappingConfig};
use iop_gateway::validation::{Registry, Validator};
use serde_json::Value;

/// What every input is run against: the mapping settings, the built-in validator and the
/// example resources of `fixtures/fhir/` (the seeds, and the data FHIRPath and search run on).
pub struct Context {
    pub cfg: MappingConfig,
    pub validator: Validator,
    /// File name and resource of each fixture.
    pub fixtures: Vec<(String, Value)>,
}

/// `fixtures/fhir/` of the repository, from the crate root of either the gateway or `fuzz/`.
pub fn fixtures_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    [root.join("fixtures/fhir"), root.join("../fixtures/fhir")]
        .into_iter()
        .find(|d| d.is_dir())
        .expect("fixtures/fhir/ beside the crate")
}

pub fn context() -> &'static Context {
    static CONTEXT: OnceLock<Context> = OnceLock::new();
    CONTEXT.get_or_init(|| {
        let mut fixtures: Vec<(String, Value)> = std::fs::read_dir(fixtures_dir())
            .expect("fixtures/fhir/ readable")
            .map(|e| e.expect("a fixture").path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .map(|p| {
                let text = std::fs::read_to_string(&p).expect("a readable fixture");
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, serde_json::from_str(&text).expect("a JSON fixture"))
            })
            .collect();
        fixtures.sort_by(|a, b| a.0.cmp(&b.0));
        Context {
            cfg: MappingConfig::default(),
            validator: Validator::new(Arc::new(Registry::builtin())),
            fixtures,
        }
    })
}

/// The type named by a body's `resourceType` when it is one the gateway serves, else a type
/// picked by the body's length (so bodies of every type reach the mismatch checks too).
fn type_of(body: &[u8], value: Option<&Value>) -> &'static str {
    let named = value
        .and_then(|v| v.get("resourceType"))
        .and_then(Value::as_str);
    RESOURCE_TYPES
        .iter()
        .copied()
        .find(|t| Some(*t) == named)
        .unwrap_or(RESOURCE_TYPES[body.len() % RESOURCE_TYPES.len()])
}

/// The JSON reader: a body read as the write handlers read it and mapped to the clinic record
/// it would become (no validation first, so the inbound mapping sees what the validator would
/// refuse), plus every `*_from_fhir` mapping on whatever JSON the body is.
pub fn json_reader(body: &[u8]) {
    let ctx = context();
    let value: Option<Value> = serde_json::from_slice(body).ok();
    let _ = read_body(&ctx.cfg, None, type_of(body, value.as_ref()), body);
    let Some(value) = value else { return };
    let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 1).expect("a date");
    let _ = mapping::client_from_fhir(&ctx.cfg, &value);
    let _ = mapping::support_contact_from_fhir(&value, today);
    let _ = mapping::consent_from_fhir(&value, today);
    let _ = mapping::enrollment_from_fhir(&value);
    let _ = mapping::session_from_fhir(&value);
    let _ = mapping::goal_changes_from_fhir(&value);
    let _ = mapping::plan_changes_from_fhir(&value);
    let _ = mapping::task_changes_from_fhir(&value, today);
    // A referral comes as a ServiceRequest and its Task: the body as either, the other a fixture.
    let fixture = |name: &str| {
        ctx.fixtures
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let clinic = "00000000-0000-0000-0000-000000000000"
        .parse()
        .expect("a UUID");
    let _ = mapping::referral_from_fhir(&value, &fixture("Task-inbound-referral.json"), clinic);
    let request = fixture("ServiceRequest-inbound-referral.json");
    let _ = mapping::referral_from_fhir(&request, &value, clinic);
}

/// The validator: a resource of a served type as a write validates it (R4, its IOP profile and
/// `meta.profile`), then mapped if valid — the whole inbound path of a write without the
/// database; any other JSON (a Bundle, an unknown type) validated against R4 and `meta.profile`.
pub fn validator(body: &[u8]) {
    let ctx = context();
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let named = value.get("resourceType").and_then(Value::as_str);
    if named.is_some_and(|t| RESOURCE_TYPES.contains(&t)) {
        let _ = read_body(
            &ctx.cfg,
            Some(&ctx.validator),
            type_of(body, Some(&value)),
            body,
        );
    } else {
        let _ = ctx.validator.validate(&value, &[]);
    }
}

/// The FHIRPath engine: an expression parsed, then evaluated against a fixture (picked by the
/// expression's length) as the resource and on one of its elements as the focus, as invariants
/// are evaluated.
pub fn fhirpath(text: &str) {
    let Ok(expr) = parse(text) else { return };
    let ctx = context();
    let (_, resource) = &ctx.fixtures[text.len() % ctx.fixtures.len()];
    let env = Environment::new(resource);
    let _ = evaluate(&expr, &env);
    if let Some(focus) = resource
        .as_object()
        .and_then(|m| m.values().nth(text.len() % m.len().max(1)))
    {
        let _ = evaluate_on(&expr, &env, focus);
    }
}

/// Search-parameter parsing: `Type?query` parsed as a search request would be, and what needs
/// no database run over every fixture (predicates, `_sort` keys, `_elements`, includes).
pub fn search(text: &str) {
    let ctx = context();
    let (resource_type, query) = text.split_once('?').unwrap_or((text, ""));
    let resources: Vec<Value> = ctx.fixtures.iter().map(|(_, v)| v.clone()).collect();
    let strict = query.len() % 2 == 0;
    let _ = search_in(&ctx.cfg, resource_type, query, strict, &resources);
}
