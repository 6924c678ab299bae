//! The operations console: server-rendered pages for clinic IT and privacy officers, served by
//! `serve` on its own address (`--console-listen`, loopback by default) so that it is never
//! exposed with the FHIR API by accident. Also `/metrics` for Prometheus.
//!
//! - `session.rs` — sign-in (argon2id, `password.rs`), the session cookie, the CSRF check every
//!   form passes, and roles;
//! - `layout.rs` — the page frame and the pieces every page uses;
//! - one module per page: `overview`, `targets` (a target, its runs and their progress),
//!   `dead_letters`, `referrals`, `clients`, `audit`; `chart.rs` draws their SVG charts;
//! - `metrics_page.rs` — `/metrics`.
//!
//! An edge: pages read the store and call the same library functions as the CLI (`sync::run`,
//! `referrals::decide`, `referrals::intake::resolve_review`); nothing here decides clinic rules.
//! Every action is audited (`AuditInteraction::Console`), as is every sign-in.

mod audit;
mod chart;
mod clients;
mod dead_letters;
mod layout;
mod metrics_page;
mod overview;
pub mod password;
mod referrals;
mod session;
mod targets;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::routing::{get, post};
use tokio::net::TcpListener;

use crate::fhir_api::FhirState;
use crate::store::Store;
use crate::sync::Engine;

pub use session::SESSION_COOKIE;

/// What every console page needs.
#[derive(Clone)]
pub struct ConsoleState {
    pub store: Store,
    /// Runs syncs started from the console, as `sync push|pull` would.
    pub engine: Engine,
    /// Writes by the API's rules (a referral's patient match).
    pub fhir: Arc<FhirState>,
    /// Mark cookies `Secure`: the console is reached over HTTPS (set unless it listens on
    /// loopback, where browsers and operators use plain HTTP).
    pub secure_cookies: bool,
    /// Sign-in attempts per source address, on this replica (password guessing is slowed to a crawl).
    pub sign_in_attempts: Arc<governor::DefaultKeyedRateLimiter<String>>,
}

impl ConsoleState {
    pub fn new(engine: Engine, secure_cookies: bool) -> Self {
        let fhir = Arc::new(FhirState::for_ingest(
            engine.store.clone(),
            Arc::clone(&engine.validator),
            Arc::clone(&engine.mapping),
            Arc::clone(&engine.policy),
        ));
        let per_minute = std::num::NonZeroU32::new(session::SIGN_INS_PER_MINUTE)
            .unwrap_or(std::num::NonZeroU32::MIN);
        Self {
            store: engine.store.clone(),
            engine,
            fhir,
            secure_cookies,
            sign_in_attempts: Arc::new(governor::RateLimiter::keyed(governor::Quota::per_minute(
                per_minute,
            ))),
        }
    }
}

/// Every console route. Forms are checked for their CSRF token before any handler runs.
pub fn router(state: ConsoleState) -> Router {
    // The decoy hash is made now, not during the first sign-in with an unknown name.
    tokio::task::spawn_blocking(password::decoy);
    // The recorder is installed before the first request, so that every request counts.
    if crate::telemetry::handle().is_some() {
        crate::telemetry::describe();
    }
    let pages = Router::new()
        .route("/", get(overview::page))
        .route("/live/overview", get(overview::live))
        .route("/targets/{name}", get(targets::page))
        .route("/live/targets/{name}", get(targets::live))
        .route("/targets/{name}/run", post(targets::start))
        .route("/targets/{name}/capabilities", get(targets::capabilities))
        .route("/dead-letters", get(dead_letters::page))
        .route("/dead-letters/retry", post(dead_letters::retry))
        .route("/dead-letters/dismiss", post(dead_letters::dismiss))
        .route("/referrals", get(referrals::queue))
        .route("/referrals/{id}", get(referrals::detail))
        .route("/referrals/{id}/decide", post(referrals::decide))
        .route("/referrals/{id}/match", post(referrals::match_client))
        .route("/clients", get(clients::page))
        .route("/clients/enable", post(clients::set_enabled))
        .route("/clients/keys", post(clients::rotate_keys))
        .route("/clients/add", post(clients::add))
        .route("/audit", get(audit::search))
        .route("/audit/accounting", get(audit::accounting))
        .route("/sign-out", post(session::sign_out))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            session::require_signed_in,
        ));
    Router::new()
        .route(
            "/sign-in",
            get(session::sign_in_page).post(session::sign_in),
        )
        .route("/metrics", get(metrics_page::render))
        .route("/static/console.css", get(stylesheet))
        .route("/static/live.js", get(script))
        .merge(pages)
        .with_state(state)
        .layer(axum::middleware::from_fn(crate::http::request_log::track))
        .layer(axum::middleware::from_fn(security_headers))
}

/// Serves the console until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: ConsoleState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// No framing (clickjacking), no inline scripts, nothing cached, no referrer leaving.
async fn security_headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

async fn stylesheet() -> impl axum::response::IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("static/console.css"),
    )
}

async fn script() -> impl axum::response::IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("static/live.js"),
    )
}
