//! Limits on what one request, and one client, may take: body size and JSON depth (enforced by
//! the API), request time and concurrent requests (here), and a per-client request rate (in
//! `authenticate`). Every refusal is an OperationOutcome.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::Semaphore;

use super::outcome;

/// The configurable limits (`serve --help` and README list them with their defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_json_depth: usize,
    pub request_timeout: Duration,
    pub max_concurrent_requests: usize,
    /// Requests per second per client (and per address at the token endpoint).
    pub rate_per_second: u32,
    /// Requests a client may make at once above its rate.
    pub rate_burst: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 4 * 1024 * 1024,
            max_json_depth: 64,
            request_timeout: Duration::from_secs(30),
            max_concurrent_requests: 256,
            rate_per_second: 100,
            rate_burst: 200,
        }
    }
}

/// Shared state of the limits: the concurrency permits and the rate limiter.
pub struct Guard {
    pub limits: Limits,
    permits: Semaphore,
    rates: DefaultKeyedRateLimiter<String>,
}

impl Guard {
    pub fn new(limits: Limits) -> Arc<Self> {
        let per_second = NonZeroU32::new(limits.rate_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(limits.rate_burst.max(1)).unwrap_or(NonZeroU32::MIN);
        Arc::new(Self {
            limits,
            permits: Semaphore::new(limits.max_concurrent_requests.max(1)),
            rates: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
        })
    }

    /// None when `key` may go on; else the 429 to answer.
    pub fn rate_limited(&self, key: &str) -> Option<Response> {
        use governor::clock::{Clock, DefaultClock};
        let not_until = self.rates.check_key(&key.to_owned()).err()?;
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut response = outcome::response(
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            &format!(
                "more than {} requests per second: retry after {seconds} s",
                self.limits.rate_per_second
            ),
        );
        if let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        Some(response)
    }
}

/// At most `max_concurrent_requests` at once (others wait, within the timeout), each done
/// within `request_timeout` or answered 503.
pub async fn bound(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let timeout = guard.limits.request_timeout;
    let work = async {
        let _permit = guard.permits.acquire().await;
        next.run(request).await
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(timeout_ms = timeout.as_millis() as u64, "request timed out");
            let mut response = outcome::response(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                &format!(
                    "the request took longer than {} s and was stopped",
                    timeout.as_secs()
                ),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    }
}
