//! Who is asking, and what they may do: SMART Backend Services for EHR vendors' systems.
//!
//! - `grant`: the token endpoint's decision (client assertion → access token);
//! - `assertion`, `keys`: client assertions and the keys they are checked with;
//! - `access_token`: the gateway's own tokens, checkable by every replica;
//! - `scopes`: SMART v2 (and v1) `system/` scopes and what each interaction needs.
//!
//! The `Authenticator` seam establishes a `Principal` before any FHIR handler runs (the
//! middleware is `http::authenticate`). Knows nothing of the API it guards: no routes, no
//! OperationOutcomes.

pub mod access_token;
pub mod assertion;
pub mod grant;
pub mod keys;
pub mod registration;
pub mod revocation;
pub mod scopes;

use std::sync::Arc;

use axum::http::{HeaderMap, header};

pub use access_token::AccessTokens;

/// Where the token endpoint is, under the gateway's public URL.
pub const TOKEN_PATH: &str = "/auth/token";
pub use scopes::{Letter, Scopes};

/// Who is asking, as the authenticator established it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The client id (logged and audited; never a person's name).
    pub client_id: String,
    /// The organization that receives what the client is given.
    pub organization_id: Option<String>,
    /// The purpose of use the client's requests are made for (v3 ActReason).
    pub purpose_of_use: Option<String>,
    /// The SMART scopes granted.
    pub scopes: Scopes,
    /// The access token's id (`jti`), for the audit's token-use record.
    pub token_id: Option<String>,
    /// `serve --open-access`: disclosures are not filtered by consent (local experiments only).
    pub open_access: bool,
    /// One of the clinic's own applications (`clients add --clinic-app`):
    /// it may create and change the clinic's plans, goals and reviews.
    pub clinic_app: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no credentials: send Authorization: Bearer <token>")]
    Missing,
    #[error("the access token has expired: get a new one from the token endpoint")]
    Expired,
    #[error("the credentials were not accepted")]
    Rejected,
}

pub trait Authenticator: Send + Sync + 'static {
    fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, AuthError>;
    /// What the CapabilityStatement says of security (`rest.security.description`).
    fn describe(&self) -> String;
    /// Whether this is SMART Backend Services (the CapabilityStatement and discovery say so).
    fn is_smart(&self) -> bool {
        false
    }
}

/// Everyone is let in with every scope. Only with `serve --open-access`, for local
/// experiments; `serve` says so loudly on start.
pub struct OpenAccess;

impl Authenticator for OpenAccess {
    fn authenticate(&self, _headers: &HeaderMap) -> Result<Principal, AuthError> {
        Ok(Principal {
            client_id: "anonymous".into(),
            organization_id: None,
            purpose_of_use: None,
            scopes: Scopes::everything(),
            token_id: None,
            open_access: true,
            // Unfiltered reads for experiments, not the clinic's write rights.
            clinic_app: false,
        })
    }
    fn describe(&self) -> String {
        "No authentication (--open-access): every caller is let in. For local experiments only."
            .into()
    }
}

/// SMART Backend Services: a bearer access token from this gateway's token endpoint.
pub struct BearerTokens {
    tokens: Arc<AccessTokens>,
    disabled: revocation::DisabledClients,
}

impl BearerTokens {
    pub fn new(tokens: Arc<AccessTokens>) -> Self {
        Self {
            tokens,
            disabled: Default::default(),
        }
    }

    /// Refuses the tokens of clients in `disabled` (kept fresh by `DisabledClients::watch`).
    pub fn with_disabled(mut self, disabled: revocation::DisabledClients) -> Self {
        self.disabled = disabled;
        self
    }
}

impl Authenticator for BearerTokens {
    fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, AuthError> {
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or(AuthError::Missing)?
            .to_str()
            .map_err(|_| AuthError::Rejected)?;
        let (scheme, token) = value.split_once(' ').ok_or(AuthError::Rejected)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::Rejected);
        }
        let principal = self.tokens.check(token.trim())?;
        if self.disabled.contains(&principal.client_id) {
            return Err(AuthError::Rejected);
        }
        Ok(principal)
    }
    fn describe(&self) -> String {
        "SMART App Launch 2.x Backend Services: get an access token at the token endpoint \
         (client_credentials with a private_key_jwt assertion signed RS384 or ES384) and send \
         it as Authorization: Bearer. Scopes: system/<Type>.cruds (v2) or .read/.write (v1)."
            .into()
    }
    fn is_smart(&self) -> bool {
        true
    }
}
