//! Outbound HTTP to other systems, in one place: timeouts, a size cap, and HTTP caching
//! lifetimes. Today it fetches clients' JWKS URLs; the sync and referral engines are to use it
//! too (`../ARCHITECTURE.md`).

pub mod target;

use std::time::Duration;

use reqwest::header::CACHE_CONTROL;

/// Largest answer read from another system (a JWKS is a few kilobytes).
const MAX_ANSWER: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url} answered {status}")]
    Status { url: String, status: u16 },
    #[error("{url} answered something that is not the JSON expected")]
    NotJson { url: String },
    #[error("{url} answered more than {MAX_ANSWER} bytes")]
    TooLarge { url: String },
}

/// A JSON answer and how long HTTP caching allows keeping it (None: not at all).
#[derive(Debug, Clone)]
pub struct Fetched {
    pub body: serde_json::Value,
    pub max_age: Option<Duration>,
}

#[derive(Clone)]
pub struct Outbound {
    client: reqwest::Client,
}

impl Outbound {
    pub fn new() -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("iop-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self { client }
    }

    /// GETs a JSON document; its `Cache-Control` says how long it may be kept.
    pub async fn get_json(&self, url: &str) -> Result<Fetched, OutboundError> {
        let unreachable = |e: reqwest::Error| OutboundError::Unreachable {
            url: url.to_owned(),
            reason: e.without_url().to_string(),
        };
        let mut response = self
            .client
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(unreachable)?;
        if !response.status().is_success() {
            return Err(OutboundError::Status {
                url: url.to_owned(),
                status: response.status().as_u16(),
            });
        }
        let max_age = response
            .headers()
            .get(CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(cache_lifetime);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_ANSWER {
                return Err(OutboundError::TooLarge {
                    url: url.to_owned(),
                });
            }
        }
        let body = serde_json::from_slice(&body).map_err(|_| OutboundError::NotJson {
            url: url.to_owned(),
        })?;
        Ok(Fetched { body, max_age })
    }
}

impl Default for Outbound {
    fn default() -> Self {
        Self::new()
    }
}

/// How long `Cache-Control` allows a shared cache to keep an answer: `s-maxage` or `max-age`;
/// none for `no-store`, `no-cache`, `private` or no lifetime at all.
pub fn cache_lifetime(cache_control: &str) -> Option<Duration> {
    let directives: Vec<(String, Option<String>)> = cache_control
        .split(',')
        .map(|d| {
            let d = d.trim().to_ascii_lowercase();
            match d.split_once('=') {
                Some((k, v)) => (
                    k.trim().to_owned(),
                    Some(v.trim().trim_matches('"').to_owned()),
                ),
                None => (d, None),
            }
        })
        .collect();
    if directives
        .iter()
        .any(|(k, _)| matches!(k.as_str(), "no-store" | "no-cache" | "private"))
    {
        return None;
    }
    let seconds = |name: &str| {
        directives
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref()?.parse::<u64>().ok())
    };
    seconds("s-maxage")
        .or_else(|| seconds("max-age"))
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_lifetimes() {
        assert_eq!(cache_lifetime("max-age=60"), Some(Duration::from_secs(60)));
        assert_eq!(
            cache_lifetime("public, max-age=60, s-maxage=10"),
            Some(Duration::from_secs(10))
        );
        assert_eq!(cache_lifetime("no-store"), None);
        assert_eq!(cache_lifetime("max-age=60, no-cache"), None);
        assert_eq!(cache_lifetime("max-age=0"), None);
        assert_eq!(cache_lifetime("public"), None);
    }
}
