//! Seeding throughput: `cargo bench --bench seed` (SQLite, 100,000 clients).
//! Options by environment: `SEED_BENCH_CLIENTS=N`, `SEED_BENCH_POSTGRES_URL=postgres://...` (an
//! empty database to seed as well). Prints one line per backend; see docs/benchmarks.md.

use std::time::Instant;

use iop_gateway::seed::{SeedOptions, SeedOutcome, seed};
use iop_gateway::store::{Store, Workload};

async fn run(label: &str, url: &str, clients: u32) {
    let store = Store::open_for(url, Workload::Bulk)
        .await
        .expect("open store");
    let options = SeedOptions {
        clients,
        seed: 42,
        as_of: "2026-11-20".parse().unwrap(),
    };
    let started = Instant::now();
    let outcome = seed(&store, options, |_, _| {}).await.expect("seed");
    let seconds = started.elapsed().as_secs_f64();
    store.close().await;
    let SeedOutcome::Seeded { rows, .. } = outcome else {
        panic!("database was not empty: {outcome:?}")
    };
    println!(
        "{label}: {clients} clients, {rows} rows in {seconds:.1} s ({:.0} clients/s, {:.0} rows/s)",
        f64::from(clients) / seconds,
        rows as f64 / seconds
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then only smoke-test.
    let benching = std::env::args().any(|a| a == "--bench");
    let clients: u32 = std::env::var("SEED_BENCH_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 100_000 } else { 10 });
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        run("sqlite", &url, clients).await;
        if let Ok(url) = std::env::var("SEED_BENCH_POSTGRES_URL") {
            run("postgres", &url, clients).await;
        }
    });
}
