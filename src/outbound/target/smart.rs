//! SMART Backend Services as a client: the signing key, the client assertion (RFC 7523
//! `private_key_jwt`), discovery of the token endpoint, and the cached access token.
//! Neither the key, the assertion nor the token is ever logged or put in an error.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPairComponents, PublicKeyComponents};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::retry::backoff;
use super::{TargetError, TargetLimits};

/// How long a client assertion lives (SMART allows at most five minutes).
const ASSERTION_SECONDS: i64 = 240;
/// Assumed lifetime of an access token whose answer gave no `expires_in`.
const DEFAULT_TOKEN_SECONDS: u64 = 300;
/// Largest answer read from the token or discovery endpoint.
const MAX_AUTH_ANSWER: usize = 64 * 1024;

fn config(reason: impl Into<String>) -> TargetError {
    TargetError::Config {
        reason: reason.into(),
    }
}

/// The private key a SMART client signs its assertions with: RS384 (RSA, 2048 bits or more) or
/// ES384 (EC P-384).
#[derive(Clone)]
pub struct SigningKey {
    alg: Algorithm,
    kid: String,
    encoding: EncodingKey,
    /// The public half as a JWK (what the target registers).
    public: Value,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// PEM (PKCS#8 RSA or EC P-384 private key; also PKCS#1 `RSA PRIVATE KEY` and SEC1
    /// `EC PRIVATE KEY`) or a private JWK (a JSON object with "d", or a JWKS holding exactly one
    /// private key); kid taken from the JWK's "kid" or else the RFC 7638 SHA-256 thumbprint of
    /// the public key (base64url).
    pub fn from_file_bytes(bytes: &[u8]) -> Result<SigningKey, TargetError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| config("the signing key file is neither PEM nor a JWK (not text)"))?;
        let trimmed = text.trim_start_matches('\u{feff}').trim();
        if trimmed.starts_with('{') {
            Self::from_jwk(trimmed)
        } else if trimmed.contains("-----BEGIN ") {
            Self::from_pem(trimmed)
        } else {
            Err(config("the signing key file is neither PEM nor a JWK"))
        }
    }

    /// RS384 or ES384.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK with `kid`, `alg` and `use`: what to register at the target.
    pub fn public_jwk(&self) -> Value {
        self.public.clone()
    }

    fn from_pem(text: &str) -> Result<SigningKey, TargetError> {
        let (label, der) = pem_private_key(text)?;
        match label.as_str() {
            "PRIVATE KEY" => {
                if let Ok(pair) = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &der) {
                    return Self::ec(&pair, None);
                }
                if let Ok(pair) = RsaKeyPair::from_pkcs8(&der) {
                    return Self::rsa_pkcs8(&pair, &der, None);
                }
                if EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der).is_ok() {
                    return Err(config(
                        "the signing key is EC P-256: SMART's ES384 needs a P-384 key",
                    ));
                }
                Err(config(
                    "the PKCS#8 signing key is neither RSA (2048 bits or more) nor EC P-384",
                ))
            }
            "RSA PRIVATE KEY" => {
                let pair = RsaKeyPair::from_der(&der)
                    .map_err(|_| config("the RSA private key does not parse"))?;
                let public = rsa_public_jwk(&pair);
                Self::finish(
                    Algorithm::RS384,
                    EncodingKey::from_rsa_der(&der),
                    public,
                    None,
                )
            }
            "EC PRIVATE KEY" => {
                let pair =
                    EcdsaKeyPair::from_private_key_der(&ECDSA_P384_SHA384_FIXED_SIGNING, &der)
                        .map_err(|_| {
                            config("the EC private key does not parse or is not on P-384 (ES384)")
                        })?;
                Self::ec(&pair, None)
            }
            "ENCRYPTED PRIVATE KEY" => Err(config(
                "the signing key is encrypted: store it unencrypted (openssl pkcs8 -topk8 -nocrypt)",
            )),
            _ => Err(config(format!(
                "a PEM `{label}` is not a private key this client can sign with"
            ))),
        }
    }

    fn ec(pair: &EcdsaKeyPair, jwk_kid: Option<String>) -> Result<SigningKey, TargetError> {
        let point = pair.public_key().as_ref();
        // Uncompressed: 0x04 || x (48 bytes) || y (48 bytes).
        if point.len() != 97 || point[0] != 4 {
            return Err(config(
                "the EC public key is not an uncompressed P-384 point",
            ));
        }
        let pkcs8 = pair
            .to_pkcs8v1()
            .map_err(|_| config("the EC private key cannot be serialized"))?;
        let public = json!({
            "kty": "EC",
            "crv": "P-384",
            "x": URL_SAFE_NO_PAD.encode(&point[1..49]),
            "y": URL_SAFE_NO_PAD.encode(&point[49..97]),
        });
        Self::finish(
            Algorithm::ES384,
            EncodingKey::from_ec_der(pkcs8.as_ref()),
            public,
            jwk_kid,
        )
    }

    /// An RSA key from its PKCS#8 document (jsonwebtoken signs with the PKCS#1 key inside).
    fn rsa_pkcs8(
        pair: &RsaKeyPair,
        pkcs8: &[u8],
        jwk_kid: Option<String>,
    ) -> Result<SigningKey, TargetError> {
        let encoding = EncodingKey::from_rsa_pem(pem("PRIVATE KEY", pkcs8).as_bytes())
            .map_err(|_| config("the RSA private key does not parse"))?;
        Self::finish(Algorithm::RS384, encoding, rsa_public_jwk(pair), jwk_kid)
    }

    fn finish(
        alg: Algorithm,
        encoding: EncodingKey,
        mut public: Value,
        kid: Option<String>,
    ) -> Result<SigningKey, TargetError> {
        let kid = match kid {
            Some(kid) => kid,
            None => thumbprint(&public)?,
        };
        public["kid"] = json!(kid);
        public["alg"] = json!(if alg == Algorithm::RS384 {
            "RS384"
        } else {
            "ES384"
        });
        public["use"] = json!("sig");
        let key = SigningKey {
            alg,
            kid,
            encoding,
            public,
        };
        // Sign once now, so that a key the signer refuses is a configuration error, not an
        // authentication failure at the first request.
        key.assertion("check", "https://example.invalid/token", 0)?;
        Ok(key)
    }

    fn from_jwk(text: &str) -> Result<SigningKey, TargetError> {
        let value: Value =
            serde_json::from_str(text).map_err(|_| config("the signing key file is not JSON"))?;
        let jwk = match value.get("keys").and_then(Value::as_array) {
            Some(keys) => {
                let private: Vec<&Value> = keys.iter().filter(|k| k.get("d").is_some()).collect();
                match private.as_slice() {
                    [one] => (*one).clone(),
                    [] => return Err(config("the JWKS holds no private key (no \"d\")")),
                    _ => {
                        return Err(config(
                            "the JWKS holds more than one private key: keep the one to sign with",
                        ));
                    }
                }
            }
            None => value,
        };
        let field = |name: &str| -> Result<Vec<u8>, TargetError> {
            let text = jwk
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| config(format!("the JWK has no \"{name}\"")))?;
            URL_SAFE_NO_PAD
                .decode(text.trim_end_matches('='))
                .map_err(|_| config(format!("the JWK's \"{name}\" is not base64url")))
        };
        if jwk.get("d").is_none() {
            return Err(config(
                "the JWK holds no private key (no \"d\"): give the private JWK",
            ));
        }
        let kid = jwk
            .get("kid")
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty())
            .map(str::to_owned);
        let alg = jwk.get("alg").and_then(Value::as_str);
        match jwk.get("kty").and_then(Value::as_str) {
            Some("EC") => {
                if jwk.get("crv").and_then(Value::as_str) != Some("P-384") {
                    return Err(config("the EC JWK is not on P-384 (ES384)"));
                }
                if alg.is_some_and(|a| a != "ES384") {
                    return Err(config("the EC JWK's alg is not ES384"));
                }
                let mut d = field("d")?;
                if d.len() > 48 {
                    return Err(config("the EC JWK's \"d\" is too long for P-384"));
                }
                // Fixed-length big-endian, as the signer wants it.
                while d.len() < 48 {
                    d.insert(0, 0);
                }
                let mut point = vec![4u8];
                point.extend(field("x")?);
                point.extend(field("y")?);
                let pair = EcdsaKeyPair::from_private_key_and_public_key(
                    &ECDSA_P384_SHA384_FIXED_SIGNING,
                    &d,
                    &point,
                )
                .map_err(|_| config("the EC JWK's d, x and y are not one P-384 key"))?;
                Self::ec(&pair, kid)
            }
            Some("RSA") => {
                if alg.is_some_and(|a| a != "RS384") {
                    return Err(config("the RSA JWK's alg is not RS384"));
                }
                if jwk.get("oth").is_some() {
                    return Err(config("multi-prime RSA keys are not supported"));
                }
                let strip = |mut bytes: Vec<u8>| {
                    let zeros = bytes.iter().take_while(|b| **b == 0).count();
                    bytes.drain(..zeros.min(bytes.len().saturating_sub(1)));
                    bytes
                };
                let components = KeyPairComponents {
                    public_key: PublicKeyComponents {
                        n: strip(field("n")?),
                        e: strip(field("e")?),
                    },
                    d: field("d")?,
                    p: field("p")?,
                    q: field("q")?,
                    dP: field("dp")?,
                    dQ: field("dq")?,
                    qInv: field("qi")?,
                };
                let pair = RsaKeyPair::from_components(&components).map_err(|_| {
                    config("the RSA JWK is not a consistent RSA key of 2048 bits or more")
                })?;
                let pkcs8 = pair
                    .as_der()
                    .map_err(|_| config("the RSA private key cannot be serialized"))?;
                Self::rsa_pkcs8(&pair, pkcs8.as_ref(), kid)
            }
            _ => Err(config("the JWK's kty must be RSA or EC")),
        }
    }

    /// A signed client assertion for `client_id` at `token_url`, issued at `now` (Unix seconds).
    pub(super) fn assertion(
        &self,
        client_id: &str,
        token_url: &str,
        now: i64,
    ) -> Result<String, TargetError> {
        #[derive(Serialize)]
        struct Claims<'a> {
            iss: &'a str,
            sub: &'a str,
            aud: &'a str,
            exp: i64,
            iat: i64,
            jti: String,
        }
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        header.typ = Some("JWT".into());
        let claims = Claims {
            iss: client_id,
            sub: client_id,
            aud: token_url,
            exp: now + ASSERTION_SECONDS,
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        jsonwebtoken::encode(&header, &claims, &self.encoding).map_err(|_| TargetError::Auth {
            reason: "the client assertion could not be signed with the key".into(),
        })
    }
}

/// The first PEM block whose label names a private key: its label and DER bytes.
fn pem_private_key(text: &str) -> Result<(String, Vec<u8>), TargetError> {
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + "-----BEGIN ".len()..];
        let label_end = after
            .find("-----")
            .ok_or_else(|| config("the PEM file is malformed"))?;
        let label = after[..label_end].trim().to_owned();
        let body_and_rest = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let end = body_and_rest
            .find(&end_marker)
            .ok_or_else(|| config("the PEM file is malformed (no END line)"))?;
        if label.ends_with("PRIVATE KEY") {
            let body = &body_and_rest[..end];
            if body.contains("Proc-Type:") {
                return Err(config(
                    "the signing key is encrypted: store it unencrypted (openssl pkcs8 -topk8 -nocrypt)",
                ));
            }
            let base64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            let der = STANDARD
                .decode(base64)
                .map_err(|_| config("the PEM key is not base64"))?;
            return Ok((label, der));
        }
        rest = &body_and_rest[end + end_marker.len()..];
    }
    Err(config("the PEM file holds no private key"))
}

fn pem(label: &str, der: &[u8]) -> String {
    let encoded = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn rsa_public_jwk(pair: &RsaKeyPair) -> Value {
    let public = pair.public_key();
    json!({
        "kty": "RSA",
        "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
        "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
    })
}

/// RFC 7638: SHA-256 of the required members, in lexicographic order, without whitespace.
fn thumbprint(public: &Value) -> Result<String, TargetError> {
    let member = |name: &str| public.get(name).and_then(Value::as_str).unwrap_or_default();
    let canonical = match member("kty") {
        "RSA" => format!(
            r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
            member("e"),
            member("n")
        ),
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            member("crv"),
            member("x"),
            member("y")
        ),
        _ => return Err(config("cannot take the thumbprint of this key type")),
    };
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
    Ok(URL_SAFE_NO_PAD.encode(digest.as_ref()))
}

/// What token requests need from their target.
pub(super) struct Ctx<'a> {
    pub http: &'a reqwest::Client,
    pub name: &'a str,
    pub base: &'a str,
    pub limits: &'a TargetLimits,
}

struct Cached {
    value: String,
    renew_at: Instant,
}

#[derive(Default)]
struct State {
    token_url: Option<String>,
    token: Option<Cached>,
    obtained: u64,
}

/// A SMART Backend Services client of one target: one renewal at a time, the others wait.
pub(super) struct Smart {
    client_id: String,
    key: SigningKey,
    scope: String,
    state: tokio::sync::Mutex<State>,
}

impl Smart {
    pub fn new(
        client_id: String,
        key: SigningKey,
        token_url: Option<String>,
        scope: String,
    ) -> Self {
        Self {
            client_id,
            key,
            scope,
            state: tokio::sync::Mutex::new(State {
                token_url,
                ..State::default()
            }),
        }
    }

    /// The access token to send: the cached one, or a new one when it is missing or due for
    /// renewal. The flag says whether this call replaced an earlier token.
    pub async fn token(&self, ctx: &Ctx<'_>) -> Result<(String, bool), TargetError> {
        let mut state = self.state.lock().await;
        if let Some(cached) = &state.token
            && Instant::now() < cached.renew_at
        {
            return Ok((cached.value.clone(), false));
        }
        let token_url = match &state.token_url {
            Some(url) => url.clone(),
            None => {
                let url = discover(ctx).await?;
                state.token_url = Some(url.clone());
                url
            }
        };
        let cached = self.request_token(ctx, &token_url).await?;
        let value = cached.value.clone();
        state.token = Some(cached);
        state.obtained += 1;
        Ok((value, state.obtained > 1))
    }

    /// The target refused `used`: forget it (unless another request already replaced it).
    pub async fn refused(&self, used: &str) {
        let mut state = self.state.lock().await;
        if state.token.as_ref().is_some_and(|t| t.value == used) {
            state.token = None;
        }
    }

    async fn request_token(&self, ctx: &Ctx<'_>, token_url: &str) -> Result<Cached, TargetError> {
        let started = Instant::now();
        let (status, body) = call(ctx, "token endpoint", || {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                .unwrap_or(0);
            let assertion = self.key.assertion(&self.client_id, token_url, now)?;
            let form = serde_urlencoded::to_string([
                ("grant_type", "client_credentials"),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", assertion.as_str()),
                ("scope", self.scope.as_str()),
            ])
            .map_err(|_| config("the token request cannot be encoded"))?;
            Ok(ctx
                .http
                .post(token_url)
                .header("accept", "application/json")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form))
        })
        .await?;
        if !(200..300).contains(&status) {
            let said = |name: &str| {
                body.as_ref()
                    .and_then(|b| b.get(name))
                    .and_then(Value::as_str)
                    .map(|s| s.chars().take(200).collect::<String>())
            };
            let mut reason = format!("the token endpoint refused the client ({status}");
            if let Some(error) = said("error") {
                reason.push_str(&format!(" {error}"));
            }
            if let Some(description) = said("error_description") {
                reason.push_str(&format!(": {description}"));
            }
            reason.push(')');
            tracing::warn!(target_name = %ctx.name, status, "SMART token request refused");
            return Err(TargetError::Auth { reason });
        }
        let body = body.ok_or_else(|| TargetError::Auth {
            reason: "the token endpoint's answer is not JSON".into(),
        })?;
        let value = body
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| TargetError::Auth {
                reason: "the token endpoint's answer has no access_token".into(),
            })?
            .to_owned();
        if body
            .get("token_type")
            .and_then(Value::as_str)
            .is_some_and(|t| !t.eq_ignore_ascii_case("bearer"))
        {
            return Err(TargetError::Auth {
                reason: "the token endpoint issued a token that is not a bearer token".into(),
            });
        }
        let lifetime = body
            .get("expires_in")
            .and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_f64().map(|f| f.max(0.0) as u64))
                    .or_else(|| v.as_str()?.parse().ok())
            })
            .unwrap_or(DEFAULT_TOKEN_SECONDS);
        let lifetime = Duration::from_secs(lifetime);
        tracing::debug!(
            target_name = %ctx.name,
            lifetime_s = lifetime.as_secs(),
            ms = started.elapsed().as_millis() as u64,
            "SMART access token obtained"
        );
        Ok(Cached {
            value,
            renew_at: started + lifetime.saturating_sub(renewal_margin(lifetime)),
        })
    }
}

/// How long before its expiry a token is renewed: 20% of its lifetime, at least 10 s, but never
/// more than half of it (so that short-lived tokens still serve a while).
fn renewal_margin(lifetime: Duration) -> Duration {
    (lifetime / 5)
        .max(Duration::from_secs(10))
        .min(lifetime / 2)
}

/// The token endpoint named by `{base}/.well-known/smart-configuration`.
async fn discover(ctx: &Ctx<'_>) -> Result<String, TargetError> {
    let url = format!("{}/.well-known/smart-configuration", ctx.base);
    let (status, body) = call(ctx, "SMART discovery", || {
        Ok(ctx.http.get(&url).header("accept", "application/json"))
    })
    .await?;
    if status != 200 {
        return Err(TargetError::Auth {
            reason: format!("SMART discovery answered {status}"),
        });
    }
    body.as_ref()
        .and_then(|b| b.get("token_endpoint"))
        .and_then(Value::as_str)
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .map(str::to_owned)
        .ok_or_else(|| TargetError::Auth {
            reason: "SMART discovery gave no token_endpoint".into(),
        })
}

/// Sends an auth request (a new one per attempt), retrying transport failures, 429 and 5xx:
/// both discovery and token requests are safe to repeat. Its status and JSON body (None when
/// empty or not JSON).
async fn call(
    ctx: &Ctx<'_>,
    what: &str,
    build: impl Fn() -> Result<reqwest::RequestBuilder, TargetError>,
) -> Result<(u16, Option<Value>), TargetError> {
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let request = build()?.timeout(ctx.limits.request_timeout);
        let problem = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                if status == 429 || status >= 500 {
                    format!("{what} answered {status}")
                } else {
                    match read_capped(response).await {
                        Ok(bytes) => return Ok((status, serde_json::from_slice(&bytes).ok())),
                        Err(reason) => format!("{what}: {reason}"),
                    }
                }
            }
            Err(e) => format!("{what} unreachable: {}", e.without_url()),
        };
        if attempt >= ctx.limits.max_attempts {
            return Err(TargetError::Unavailable {
                reason: format!("{problem}, after {attempt} attempts"),
            });
        }
        let wait = backoff(attempt, ctx.limits.base_backoff, ctx.limits.max_backoff);
        tracing::warn!(
            target_name = %ctx.name,
            attempt,
            wait_ms = wait.as_millis() as u64,
            "{what} failed; retrying"
        );
        tokio::time::sleep(wait).await;
    }
}

async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("answer lost: {}", e.without_url()))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_AUTH_ANSWER {
            return Err("answer too large".into());
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margins() {
        assert_eq!(
            renewal_margin(Duration::from_secs(300)),
            Duration::from_secs(60)
        );
        assert_eq!(
            renewal_margin(Duration::from_secs(30)),
            Duration::from_secs(10)
        );
        assert_eq!(
            renewal_margin(Duration::from_secs(3)),
            Duration::from_millis(1500)
        );
    }

    #[test]
    fn pem_blocks() {
        let text = format!(
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n{}",
            pem("PRIVATE KEY", b"hello")
        );
        assert_eq!(
            pem_private_key(&text).unwrap(),
            ("PRIVATE KEY".to_owned(), b"hello".to_vec())
        );
        assert!(
            pem_private_key("-----BEGIN PUBLIC KEY-----\nAA\n-----END PUBLIC KEY-----").is_err()
        );
    }

    #[test]
    fn rfc7638_example() {
        // RFC 7638 section 3.1.
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
        });
        assert_eq!(
            thumbprint(&jwk).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
