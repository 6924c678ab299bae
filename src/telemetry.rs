//! Prometheus metrics: one recorder for the process, rendered at the console's `/metrics`.
//!
//! Counters and histograms are recorded where things happen (requests in `http`, tokens in
//! `http::token`, sync runs in `sync`, the audit trail's group commits in
//! `store::audit_writer`); what the database holds (dead letters, lag, export jobs) is read
//! when scraped, so every replica reports the same. Labels carry route templates, statuses,
//! outcomes and target names — never a client's id or data.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Request latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's recorder, installed on first use. None when another recorder was installed
/// first (a library user's own): the gateway's metrics then go there.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&LATENCY_BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            Some(handle)
        })
        .as_ref()
}

pub const HTTP_REQUESTS: &str = "iop_http_requests_total";
pub const HTTP_LATENCY: &str = "iop_http_request_duration_seconds";
pub const TOKENS: &str = "iop_tokens_total";
pub const SYNC_RESOURCES: &str = "iop_sync_resources_total";
pub const SYNC_RUNS: &str = "iop_sync_runs_total";
pub const AUDIT_COMMITS: &str = "iop_audit_commits_total";
pub const AUDIT_RECORDS: &str = "iop_audit_records_total";
pub const AUDIT_COMMIT_LATENCY: &str = "iop_audit_commit_duration_seconds";

/// Describes the metrics once, so the exposition has HELP lines.
pub fn describe() {
    metrics::describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route template, method and status"
    );
    metrics::describe_histogram!(
        HTTP_LATENCY,
        metrics::Unit::Seconds,
        "HTTP request latency, by route template and method"
    );
    metrics::describe_counter!(
        TOKENS,
        "Access tokens requested at the token endpoint, by outcome (issued, refused)"
    );
    metrics::describe_counter!(
        SYNC_RESOURCES,
        "Resources a sync run handled, by target, direction and result (sent, rejected, retried, reconciled)"
    );
    metrics::describe_counter!(
        SYNC_RUNS,
        "Sync runs finished, by target, direction and outcome (ok, stopped)"
    );
    metrics::describe_counter!(
        AUDIT_COMMITS,
        "Group commits of the audit trail of reads and searches (every such request waits for one)"
    );
    metrics::describe_counter!(
        AUDIT_RECORDS,
        "Audit records those commits wrote (records per commit: this over iop_audit_commits_total)"
    );
    metrics::describe_histogram!(
        AUDIT_COMMIT_LATENCY,
        metrics::Unit::Seconds,
        "How long one group commit of the audit trail took (reads and searches queue behind it)"
    );
}
