//! A client's public keys: its registered JWKS, inline or at a URL. URL sets are cached no
//! longer than their `Cache-Control` allows and fetched again when an assertion names a `kid`
//! the cached set lacks (the client rotated its keys).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse, ThumbprintHash,
};
use serde_json::Value;

use crate::domain::KeySource;
use crate::outbound::{Outbound, OutboundError};

/// An unknown `kid` refetches a URL at most this often, so forged assertions cannot make the
/// gateway hammer a client's key server.
const MIN_REFETCH: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the client's JWKS URL could not be read: {0}")]
    Fetch(#[from] OutboundError),
    #[error("the client's JWKS is not a JSON Web Key Set")]
    NotAKeySet,
}

/// Checks a JWKS given for registration: a key set of RSA or P-384 EC public keys with `kid`s,
/// and no private key material.
pub fn check_registration(jwks: &str) -> Result<usize, String> {
    let value: Value = serde_json::from_str(jwks).map_err(|_| "the JWKS is not JSON".to_owned())?;
    let keys = value
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("a JWKS is an object with a `keys` array")?;
    for key in keys {
        if ["d", "p", "q", "dp", "dq", "qi", "k"]
            .iter()
            .any(|private| key.get(*private).is_some())
        {
            return Err(
                "the JWKS holds private key material: register the public keys only".into(),
            );
        }
        if key.get("kid").and_then(Value::as_str).is_none() {
            return Err("every key needs a `kid`".into());
        }
    }
    Ok(usable_keys(&value).len())
}

/// The keys of a set that parse as JWKs (others are skipped: a set may hold keys for other uses).
fn usable_keys(set: &Value) -> Vec<Jwk> {
    set.get("keys")
        .and_then(Value::as_array)
        .map(|keys| {
            keys.iter()
                .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `key` may verify a signature made with `alg`: the key type fits the algorithm
/// (RSA for RS384, P-384 for ES384), and its `alg` and `use`, when given, agree.
pub fn fits(key: &Jwk, alg: Algorithm) -> bool {
    let type_fits = match (&key.algorithm, alg) {
        (AlgorithmParameters::RSA(_), Algorithm::RS384) => true,
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES384) => {
            ec.curve == EllipticCurve::P384
        }
        _ => false,
    };
    let alg_fits = key.common.key_algorithm.is_none_or(|a| {
        matches!(
            (a, alg),
            (KeyAlgorithm::RS384, Algorithm::RS384) | (KeyAlgorithm::ES384, Algorithm::ES384)
        )
    });
    let use_fits = key
        .common
        .public_key_use
        .as_ref()
        .is_none_or(|u| *u == PublicKeyUse::Signature);
    type_fits && alg_fits && use_fits
}

/// The key named `kid`: by its `kid`, or else by its RFC 7638 SHA-256 thumbprint — clients
/// that sign with a PEM key (smart-fetch, jwcrypto) name it by thumbprint, while the JWKS the
/// clinic registered may carry another `kid`.
fn find_key(keys: &[Jwk], kid: &str) -> Option<Jwk> {
    keys.iter()
        .find(|k| k.common.key_id.as_deref() == Some(kid))
        .or_else(|| {
            keys.iter().find(|k| {
                k.thumbprint(ThumbprintHash::SHA256)
                    .is_ok_and(|thumbprint| thumbprint == kid)
            })
        })
        .cloned()
}

struct Cached {
    keys: Vec<Jwk>,
    fetched: Instant,
    keep_for: Option<Duration>,
}

/// Key sets by URL, shared by the token endpoint's requests.
pub struct KeyCache {
    outbound: Outbound,
    by_url: Mutex<HashMap<String, Cached>>,
}

impl KeyCache {
    pub fn new(outbound: Outbound) -> Self {
        Self {
            outbound,
            by_url: Mutex::new(HashMap::new()),
        }
    }

    /// The key named `kid` in `source`, if there is one.
    pub async fn key(&self, source: &KeySource, kid: &str) -> Result<Option<Jwk>, KeyError> {
        let find = |keys: &[Jwk]| find_key(keys, kid);
        let url = match source {
            KeySource::Inline(jwks) => {
                let set: Value = serde_json::from_str(jwks).map_err(|_| KeyError::NotAKeySet)?;
                return Ok(find(&usable_keys(&set)));
            }
            KeySource::Url(url) => url,
        };
        let cached = {
            let by_url = self.by_url.lock().unwrap_or_else(|e| e.into_inner());
            by_url.get(url).and_then(|c| {
                let fresh = c.keep_for.is_some_and(|d| c.fetched.elapsed() < d);
                let found = find(&c.keys);
                match (fresh, found) {
                    (true, Some(key)) => Some(Some(key)),
                    // Unknown kid in a fresh set: refetch, unless it was fetched just now.
                    (true, None) if c.fetched.elapsed() < MIN_REFETCH => Some(None),
                    _ => None,
                }
            })
        };
        if let Some(answer) = cached {
            return Ok(answer);
        }
        let fetched = self.outbound.get_json(url).await?;
        if fetched.body.get("keys").and_then(Value::as_array).is_none() {
            return Err(KeyError::NotAKeySet);
        }
        let keys = usable_keys(&fetched.body);
        let key = find(&keys);
        tracing::info!(keys = keys.len(), cache_seconds = ?fetched.max_age.map(|d| d.as_secs()), "client JWKS fetched");
        self.by_url
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                url.clone(),
                Cached {
                    keys,
                    fetched: Instant::now(),
                    keep_for: fetched.max_age,
                },
            );
        Ok(key)
    }
}
