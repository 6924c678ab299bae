//! The token endpoint's decision (SMART Backend Services, `client_credentials` with a
//! `private_key_jwt` assertion): who the client is, whether its assertion holds, and which
//! scopes it gets. Errors are RFC 6749 §5.2 codes with a description safe to show and log.

use std::sync::Arc;

use super::Scopes;
use super::access_token::{AccessTokens, Issued};
use super::assertion::{self, AssertionError};
use super::keys::KeyCache;
use crate::domain::{ApiClient, KeySource};
use crate::store::{Store, StoreError};

pub const CLIENT_CREDENTIALS: &str = "client_credentials";
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// RFC 6749 §5.2 error codes used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthError {
    InvalidRequest,
    InvalidClient,
    UnsupportedGrantType,
    InvalidScope,
    /// Not an OAuth code: the gateway could not decide (database down); answered 503.
    Unavailable,
}

impl OAuthError {
    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::Unavailable => "temporarily_unavailable",
        }
    }
    pub fn status(self) -> u16 {
        match self {
            Self::InvalidClient => 401,
            Self::Unavailable => 503,
            _ => 400,
        }
    }
}

/// A refused token request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub error: OAuthError,
    pub description: String,
    /// The client it was for, when one was named and registered.
    pub client_id: Option<String>,
}

impl Refused {
    fn new(error: OAuthError, description: impl Into<String>) -> Self {
        Self {
            error,
            description: description.into(),
            client_id: None,
        }
    }
    fn client(client: &ApiClient, err: AssertionError) -> Self {
        Self {
            error: OAuthError::InvalidClient,
            description: err.to_string(),
            client_id: Some(client.client_id.to_string()),
        }
    }
}

impl From<StoreError> for Refused {
    fn from(err: StoreError) -> Self {
        tracing::error!(error = %err, "token request: the clinic database failed");
        Self::new(
            OAuthError::Unavailable,
            "the token service is unavailable; try again",
        )
    }
}

/// A granted token request.
#[derive(Debug, Clone)]
pub struct Granted {
    pub client: ApiClient,
    pub scopes: Scopes,
    pub token: Issued,
}

pub struct TokenService {
    store: Store,
    keys: KeyCache,
    tokens: Arc<AccessTokens>,
    /// Seconds an access token lives (at most 300).
    lifetime: i64,
}

impl TokenService {
    pub fn new(store: Store, keys: KeyCache, tokens: Arc<AccessTokens>, lifetime: i64) -> Self {
        Self {
            store,
            keys,
            tokens,
            lifetime,
        }
    }

    /// Decides a token request: `form` is its form-encoded body, `token_url` this endpoint's
    /// public URL (the `aud` assertions must carry), `now` Unix seconds.
    pub async fn exchange(
        &self,
        form: &[(String, String)],
        token_url: &str,
        now: i64,
    ) -> Result<Granted, Refused> {
        let field = |name: &str| -> Result<Option<&str>, Refused> {
            let mut values = form.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
            let first = values.next();
            if values.next().is_some() {
                return Err(Refused::new(
                    OAuthError::InvalidRequest,
                    format!("{name} is given more than once"),
                ));
            }
            Ok(first.map(String::as_str))
        };
        let required = |name: &str| -> Result<&str, Refused> {
            field(name)?.ok_or_else(|| {
                Refused::new(OAuthError::InvalidRequest, format!("{name} is required"))
            })
        };
        if required("grant_type")? != CLIENT_CREDENTIALS {
            return Err(Refused::new(
                OAuthError::UnsupportedGrantType,
                "only grant_type=client_credentials is supported",
            ));
        }
        if required("client_assertion_type")? != JWT_BEARER {
            return Err(Refused::new(
                OAuthError::InvalidRequest,
                format!("client_assertion_type must be {JWT_BEARER}"),
            ));
        }
        let assertion = required("client_assertion")?;
        let asked = required("scope")?;
        let invalid = |e: AssertionError| Refused::new(OAuthError::InvalidClient, e.to_string());
        let claimed = assertion::claimed(assertion).map_err(invalid)?;
        if let Some(client_id) = field("client_id")?
            && client_id != claimed.issuer
        {
            return Err(invalid(AssertionError::IssuerSubject));
        }
        let unknown = || Refused::new(OAuthError::InvalidClient, "unknown or disabled client");
        let client = self
            .store
            .api_client(&claimed.issuer)
            .await?
            .filter(|c| c.enabled)
            .ok_or_else(unknown)?;
        let refuse = |e| Refused::client(&client, e);
        match (&claimed.header.jku, &client.keys) {
            (None, _) => {}
            (Some(jku), KeySource::Url(url)) if jku == url => {}
            (Some(_), _) => return Err(refuse(AssertionError::KeyUrl)),
        }
        let kid = claimed.header.kid.as_deref().unwrap_or_default();
        let key = self
            .keys
            .key(&client.keys, kid)
            .await
            .map_err(|e| {
                tracing::warn!(client = %client.client_id, error = %e, "client keys unavailable");
                Refused {
                    description: "the client's keys could not be read".into(),
                    ..refuse(AssertionError::NoKey)
                }
            })?
            .ok_or_else(|| refuse(AssertionError::NoKey))?;
        let verified = assertion::verify(
            assertion,
            &claimed,
            &key,
            client.client_id.as_str(),
            token_url,
            now,
        )
        .map_err(refuse)?;
        let expires = chrono::DateTime::from_timestamp(verified.expires_at, 0)
            .unwrap_or_else(chrono::Utc::now);
        if !self
            .store
            .record_assertion(client.client_id.as_str(), &verified.jti, expires.into())
            .await?
        {
            return Err(refuse(AssertionError::Replayed));
        }
        let registered = Scopes::parse_strict(&client.scopes).unwrap_or_default();
        let (asked, _) = Scopes::parse(asked);
        let scopes = registered.grant(&asked);
        if scopes.is_empty() {
            return Err(Refused {
                client_id: Some(client.client_id.to_string()),
                ..Refused::new(
                    OAuthError::InvalidScope,
                    "none of the scopes asked for is granted to this client",
                )
            });
        }
        let token = self.tokens.issue(&client, &scopes, self.lifetime, now);
        Ok(Granted {
            client,
            scopes,
            token,
        })
    }
}
