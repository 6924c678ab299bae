//! The gateway's own access tokens: JWTs signed HS256 with a key kept in the clinic database
//! (`token_signing_keys`), so that every replica on one PostgreSQL database issues and checks
//! the same tokens without a lookup per request. They name the client, its organization and
//! purpose of use, and the scopes granted; they live at most five minutes.

use std::collections::HashMap;
use std::sync::Mutex;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::{AuthError, Principal, Scopes};
use crate::domain::ApiClient;
use crate::store::{Store, StoreError};

/// Who issues and who accepts these tokens (their `iss` and `aud`).
const ISSUER: &str = "iop-gateway";
const AUDIENCE: &str = "iop-gateway/fhir";
/// The longest an access token lives (SMART: `expires_in` at most 300).
pub const MAX_LIFETIME_SECONDS: i64 = 300;
/// Tokens remembered as checked at most; past it the memory starts again (a client sends the
/// same token with every request for its five minutes, and there are few clients).
const MOST_CHECKED: usize = 1_024;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    sub: String,
    exp: i64,
    iat: i64,
    jti: String,
    scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    org: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pou: Option<String>,
    /// Issued to one of the clinic's own applications (see `ApiClient::clinic_app`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    clinic_app: bool,
}

/// An access token issued: the token and what it says.
#[derive(Debug, Clone)]
pub struct Issued {
    pub token: String,
    pub token_id: String,
    pub expires_in: i64,
}

/// Issues and checks access tokens with the database's signing key.
pub struct AccessTokens {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// Tokens whose signature and claims were checked, with what they say and when they
    /// expire: the same token is not decoded and verified again on every request.
    checked: Mutex<HashMap<String, (Principal, i64)>>,
}

impl AccessTokens {
    /// The signing key from the database (created on first use).
    pub async fn load(store: &Store) -> Result<Self, StoreError> {
        use base64::Engine;
        use rand::RngCore;
        let mut fresh = [0u8; 32];
        rand::rng().fill_bytes(&mut fresh);
        let fresh = (
            uuid::Uuid::new_v4().to_string(),
            base64::engine::general_purpose::STANDARD.encode(fresh),
        );
        let (kid, secret) = store.token_signing_key(fresh).await?;
        let secret = base64::engine::general_purpose::STANDARD
            .decode(secret)
            .map_err(|_| StoreError::Corrupt {
                table: "token_signing_keys",
                id: kid.clone(),
                column: "secret",
                reason: "not base64".into(),
            })?;
        Ok(Self {
            kid,
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
            checked: Mutex::default(),
        })
    }

    /// A token for `client` with `scopes`, valid `lifetime` seconds (capped at five minutes)
    /// from `now` (Unix seconds).
    pub fn issue(&self, client: &ApiClient, scopes: &Scopes, lifetime: i64, now: i64) -> Issued {
        let expires_in = lifetime.clamp(1, MAX_LIFETIME_SECONDS);
        let token_id = uuid::Uuid::new_v4().to_string();
        let claims = Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: client.client_id.to_string(),
            exp: now + expires_in,
            iat: now,
            jti: token_id.clone(),
            scope: scopes.to_string(),
            org: client.organization_id.clone(),
            pou: Some(client.purpose_of_use.clone()),
            clinic_app: client.clinic_app,
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)
            .expect("HS256 signing of serializable claims cannot fail");
        Issued {
            token,
            token_id,
            expires_in,
        }
    }

    /// The principal a token names, if it is one of ours, unexpired and untampered.
    pub fn check(&self, token: &str) -> Result<Principal, AuthError> {
        self.check_at(token, chrono::Utc::now().timestamp())
    }

    /// `check` at `now` (Unix seconds). A token seen before is not verified again, but its
    /// expiry is: it is refused from the first second past `exp`, as `jsonwebtoken` refuses it.
    fn check_at(&self, token: &str, now: i64) -> Result<Principal, AuthError> {
        let mut checked = self.checked.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((principal, expires)) = checked.get(token) {
            if *expires < now {
                checked.remove(token);
                return Err(AuthError::Expired);
            }
            return Ok(principal.clone());
        }
        drop(checked);
        let (principal, expires) = self.verify(token)?;
        if expires < now {
            return Err(AuthError::Expired);
        }
        let mut checked = self.checked.lock().unwrap_or_else(|e| e.into_inner());
        if checked.len() >= MOST_CHECKED {
            checked.clear();
        }
        checked.insert(token.to_owned(), (principal.clone(), expires));
        Ok(principal)
    }

    /// Verifies the signature and the claims; returns the principal and the expiry.
    fn verify(&self, token: &str) -> Result<(Principal, i64), AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Rejected)?;
        if header.kid.as_deref() != Some(self.kid.as_str()) {
            return Err(AuthError::Rejected);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Rejected,
            },
        )?;
        let claims = data.claims;
        let scopes = Scopes::parse_strict(&claims.scope).map_err(|_| AuthError::Rejected)?;
        let principal = Principal {
            client_id: claims.sub,
            organization_id: claims.org,
            purpose_of_use: claims.pou,
            scopes,
            token_id: Some(claims.jti),
            open_access: false,
            clinic_app: claims.clinic_app,
        };
        Ok((principal, claims.exp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ClientId, KeySource};

    fn tokens(secret: &[u8]) -> AccessTokens {
        AccessTokens {
            kid: "k1".into(),
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            checked: Mutex::default(),
        }
    }

    fn client() -> ApiClient {
        ApiClient {
            client_id: ClientId::parse("partner-ehr").unwrap(),
            keys: KeySource::Inline("{\"keys\":[]}".into()),
            scopes: "system/Patient.rs".into(),
            organization_id: Some("org-1".into()),
            purpose_of_use: "TREAT".into(),
            enabled: true,
            clinic_app: false,
        }
    }

    #[test]
    fn a_remembered_token_is_still_refused_once_it_expires() {
        let tokens = tokens(b"0123456789abcdef0123456789abcdef");
        let scopes = Scopes::parse_strict("system/Patient.rs").unwrap();
        let now = chrono::Utc::now().timestamp();
        let issued = tokens.issue(&client(), &scopes, 60, now);
        let first = tokens.check_at(&issued.token, now).unwrap();
        assert_eq!(first.client_id, "partner-ehr");
        assert_eq!(tokens.checked.lock().unwrap().len(), 1, "remembered");
        // Served from memory until its last second, refused from the next.
        assert_eq!(tokens.check_at(&issued.token, now + 60).unwrap(), first);
        assert_eq!(
            tokens.check_at(&issued.token, now + 61),
            Err(AuthError::Expired)
        );
        assert!(tokens.checked.lock().unwrap().is_empty(), "forgotten");
    }

    #[test]
    fn a_tampered_or_foreign_token_is_never_remembered() {
        let tokens = tokens(b"0123456789abcdef0123456789abcdef");
        let other = self::tokens(b"another key, another gateway....");
        let scopes = Scopes::parse_strict("system/Patient.rs").unwrap();
        let now = chrono::Utc::now().timestamp();
        let foreign = other.issue(&client(), &scopes, 60, now);
        assert_eq!(
            tokens.check_at(&foreign.token, now),
            Err(AuthError::Rejected)
        );
        let mine = tokens.issue(&client(), &scopes, 60, now).token;
        let (head, signature) = mine.rsplit_once('.').unwrap();
        let tampered = format!("{head}.{}", signature.chars().rev().collect::<String>());
        assert_eq!(tokens.check_at(&tampered, now), Err(AuthError::Rejected));
        assert!(tokens.checked.lock().unwrap().is_empty());
    }
}
