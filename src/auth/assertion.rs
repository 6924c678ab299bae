//! Client assertions (RFC 7523 `private_key_jwt`, as SMART Backend Services profiles them):
//! a JWT the client signs with its private key to prove who it is at the token endpoint.
//! Pure: the key and the time are given.

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::Deserialize;

use super::keys;

/// The longest an assertion may live: SMART says `exp` at most five minutes ahead.
pub const MAX_LIFETIME_SECONDS: i64 = 300;
/// Clock skew tolerated between the client and the gateway.
const LEEWAY_SECONDS: i64 = 30;

/// Why an assertion was refused (said to the client as `invalid_client`'s description; never
/// the assertion's content).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    #[error("the client assertion is not a JWT")]
    Malformed,
    #[error("the client assertion must be signed RS384 or ES384")]
    Algorithm,
    #[error("the client assertion's typ must be JWT")]
    Type,
    #[error("the client assertion has no kid")]
    NoKeyId,
    #[error("the client assertion has no iss")]
    NoIssuer,
    #[error("the client assertion's iss and sub must both be the client id")]
    IssuerSubject,
    #[error("the client assertion's jku is not the client's registered JWKS URL")]
    KeyUrl,
    #[error("no registered key of the client matches the assertion's kid and alg")]
    NoKey,
    #[error("the client assertion's signature does not verify")]
    Signature,
    #[error("the client assertion's aud must be this token endpoint")]
    Audience,
    #[error("the client assertion has expired")]
    Expired,
    #[error("the client assertion is not valid yet")]
    NotYetValid,
    #[error("the client assertion's exp is more than five minutes ahead")]
    TooLong,
    #[error("the client assertion needs a jti")]
    NoJti,
    #[error("the client assertion was used before")]
    Replayed,
}

/// What the gateway needs to know before checking the signature: who claims to be asking and
/// with which key.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub header: Header,
    pub issuer: String,
}

#[derive(Debug, Deserialize)]
struct Unverified {
    iss: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    exp: i64,
    nbf: Option<i64>,
    iat: Option<i64>,
    jti: Option<String>,
}

/// A verified assertion: its `jti` (to be recorded against replay) and expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub jti: String,
    pub expires_at: i64,
}

/// Reads the header and issuer without trusting them. `alg: none`, HMAC and every algorithm
/// but RS384 and ES384 stop here.
pub fn claimed(assertion: &str) -> Result<Claimed, AssertionError> {
    let alg = header_alg(assertion).ok_or(AssertionError::Malformed)?;
    if alg != "RS384" && alg != "ES384" {
        return Err(AssertionError::Algorithm);
    }
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| AssertionError::Malformed)?;
    if header
        .typ
        .as_deref()
        .is_some_and(|t| !t.eq_ignore_ascii_case("JWT"))
    {
        return Err(AssertionError::Type);
    }
    if header.kid.is_none() {
        return Err(AssertionError::NoKeyId);
    }
    let claims: Unverified = jsonwebtoken::dangerous::insecure_decode_claims(assertion)
        .map_err(|_| AssertionError::Malformed)?;
    let issuer = claims.iss.ok_or(AssertionError::NoIssuer)?;
    Ok(Claimed { header, issuer })
}

/// The header's `alg` as written (so that `none` and unknown names are told apart from a
/// malformed token).
fn header_alg(token: &str) -> Option<String> {
    use base64::Engine;
    let header = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.get("alg")?.as_str().map(str::to_owned)
}

/// Verifies the assertion of `client_id` with `key`, for the token endpoint at `token_url`, at
/// `now` (Unix seconds).
pub fn verify(
    assertion: &str,
    claimed: &Claimed,
    key: &Jwk,
    client_id: &str,
    token_url: &str,
    now: i64,
) -> Result<Verified, AssertionError> {
    let alg = claimed.header.alg;
    if !matches!(alg, Algorithm::RS384 | Algorithm::ES384) {
        return Err(AssertionError::Algorithm);
    }
    if !keys::fits(key, alg) {
        return Err(AssertionError::NoKey);
    }
    let decoding = DecodingKey::from_jwk(key).map_err(|_| AssertionError::NoKey)?;
    // The signature and aud here; times below, against the given clock.
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    validation.set_audience(&[token_url]);
    let data = jsonwebtoken::decode::<Claims>(assertion, &decoding, &validation).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind;
        match e.kind() {
            ErrorKind::InvalidAudience => AssertionError::Audience,
            ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => AssertionError::Audience,
            ErrorKind::InvalidSignature => AssertionError::Signature,
            ErrorKind::InvalidAlgorithm => AssertionError::Algorithm,
            _ => AssertionError::Malformed,
        }
    })?;
    let claims = data.claims;
    if claims.iss != client_id || claims.sub != client_id {
        return Err(AssertionError::IssuerSubject);
    }
    if claims.exp <= now - LEEWAY_SECONDS {
        return Err(AssertionError::Expired);
    }
    if claims.exp > now + MAX_LIFETIME_SECONDS + LEEWAY_SECONDS {
        return Err(AssertionError::TooLong);
    }
    let future = |t: Option<i64>| t.is_some_and(|t| t > now + LEEWAY_SECONDS);
    if future(claims.nbf) || future(claims.iat) {
        return Err(AssertionError::NotYetValid);
    }
    let jti = claims
        .jti
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or(AssertionError::NoJti)?;
    Ok(Verified {
        jti,
        expires_at: claims.exp,
    })
}
