//! What makes an API client's registration acceptable, for every edge that registers one or
//! changes its keys (`clients add|rotate`, the console): its id, a public key set or a URL
//! serving one, scopes that parse, and a purpose-of-use code.

use crate::domain::{ApiClient, ClientId, KeySource};

use super::{Scopes, keys};

#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error("{0}")]
    Id(#[from] crate::domain::DomainError),
    #[error("{0}")]
    Keys(String),
    #[error("scopes: {0}")]
    Scopes(String),
    #[error("the purpose of use is a v3 ActReason code such as TREAT, HPAYMT, HOPERAT or COC")]
    Purpose,
}

/// The keys of a client: a JWKS (public RSA or P-384 EC keys with kids, no private material)
/// or an http(s) URL serving one. Exactly one must be given.
pub fn key_source(
    jwks: Option<&str>,
    jwks_url: Option<&str>,
) -> Result<KeySource, RegistrationError> {
    match (
        jwks.map(str::trim).filter(|j| !j.is_empty()),
        jwks_url.map(str::trim).filter(|u| !u.is_empty()),
    ) {
        (Some(jwks), None) => match keys::check_registration(jwks) {
            Ok(0) => Err(RegistrationError::Keys(
                "the JWKS holds no usable public key (RSA or P-384 EC, with a kid)".into(),
            )),
            Ok(_) => Ok(KeySource::Inline(jwks.to_owned())),
            Err(why) => Err(RegistrationError::Keys(why)),
        },
        (None, Some(url)) if url.starts_with("https://") || url.starts_with("http://") => {
            Ok(KeySource::Url(url.to_owned()))
        }
        (None, Some(_)) => Err(RegistrationError::Keys(
            "the JWKS URL must be an http(s) URL".into(),
        )),
        _ => Err(RegistrationError::Keys(
            "give either a JWKS or the URL of one, not both".into(),
        )),
    }
}

/// A new, enabled client.
pub fn new_client(
    id: &str,
    keys: KeySource,
    scopes: &str,
    organization_id: Option<String>,
    purpose_of_use: &str,
    clinic_app: bool,
) -> Result<ApiClient, RegistrationError> {
    Scopes::parse_strict(scopes).map_err(RegistrationError::Scopes)?;
    let purpose_ok = (2..=20).contains(&purpose_of_use.len())
        && purpose_of_use.chars().all(|c| c.is_ascii_uppercase());
    if !purpose_ok {
        return Err(RegistrationError::Purpose);
    }
    Ok(ApiClient {
        client_id: ClientId::parse(id.trim())?,
        keys,
        scopes: scopes.trim().to_owned(),
        organization_id: organization_id.filter(|o| !o.trim().is_empty()),
        purpose_of_use: purpose_of_use.to_owned(),
        enabled: true,
        clinic_app,
    })
}
