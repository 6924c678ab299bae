//! A target's stored settings become an outbound FHIR client: the secret is read from its file
//! now (it is never in the database), and never logged.

use super::SyncError;
use crate::outbound::target::{FhirTarget, SigningKey, TargetAuth, TargetLimits};
use crate::store::SyncTarget;

/// The scopes asked of a target's SMART token endpoint.
pub const SMART_SCOPE: &str = "system/*.cruds";

pub fn connect(target: &SyncTarget, limits: TargetLimits) -> Result<FhirTarget, SyncError> {
    let secret = || -> Result<Vec<u8>, SyncError> {
        let path = target.credential_file.as_deref().ok_or_else(|| {
            SyncError::Config(format!("target {} names no credential file", target.name))
        })?;
        std::fs::read(path).map_err(|e| {
            SyncError::Config(format!(
                "cannot read the credential file {path} of target {}: {e}",
                target.name
            ))
        })
    };
    let auth = match target.auth_kind.as_str() {
        "none" => TargetAuth::None,
        "bearer" => {
            let token = String::from_utf8(secret()?)
                .map_err(|_| SyncError::Config("the bearer token file is not text".into()))?;
            TargetAuth::Bearer(token.trim().to_owned())
        }
        "smart" => TargetAuth::Smart {
            client_id: target.smart_client_id.clone().ok_or_else(|| {
                SyncError::Config(format!("target {} has no SMART client id", target.name))
            })?,
            key: SigningKey::from_file_bytes(&secret()?).map_err(|e| {
                SyncError::Config(format!("the SMART key of target {}: {e}", target.name))
            })?,
            token_url: target.token_url.clone(),
            scope: SMART_SCOPE.to_owned(),
        },
        other => return Err(SyncError::Config(format!("unknown auth kind {other}"))),
    };
    FhirTarget::new(&target.name, &target.base_url, auth, limits).map_err(|e| SyncError::Target {
        target: target.name.clone(),
        reason: e.to_string(),
    })
}
