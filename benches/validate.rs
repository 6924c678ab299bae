//! Validation throughput on one core: `cargo bench --bench validate`.
//! IOP CarePlan, Encounter and Consent fixtures, every rule on (base R4 + IOP profile, bindings,
//! invariants). Prints resources per second; see docs/benchmarks.md.

use std::sync::Arc;
use std::time::Instant;

use iop_gateway::validation::{Registry, Validator};
use serde_json::Value;

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let rounds = if benching { 20_000 } else { 20 };
    // `cargo bench --bench validate -- CarePlan` runs only the fixtures whose name contains it.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let validator = Validator::new(Arc::new(Registry::builtin()));
    let root = env!("CARGO_MANIFEST_DIR");
    for name in [
        "CarePlan-treatment-plan",
        "Encounter-family-session",
        "Consent-release-of-information",
    ] {
        if !only.is_empty() && !only.iter().any(|o| name.contains(o.as_str())) {
            continue;
        }
        let text =
            std::fs::read_to_string(format!("{root}/fixtures/fhir/{name}.json")).expect("fixture");
        let resource: Value = serde_json::from_str(&text).expect("json");
        // Warm the caches (compiled definitions, expansions).
        assert!(
            validator
                .validate(&resource, &[])
                .iter()
                .all(|i| !i.is_error()),
            "{name} must be valid"
        );
        let started = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(validator.validate(std::hint::black_box(&resource), &[]));
        }
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{name}: {:.0} resources/s on one core ({:.1} µs each)",
            rounds as f64 / seconds,
            seconds * 1e6 / rounds as f64
        );
    }
}
