//! Settings from flags, environment and `iop-gateway.toml`, in that order of precedence.
//!
//! clap reads flags and environment variables together (a flag wins); this module fills what is
//! still missing from the file, then from the defaults.

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://iop-gateway.db";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_CONFIG_FILE: &str = "iop-gateway.toml";

/// The contents of `iop-gateway.toml`. Unknown keys are an error, so a typo is not ignored.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub database_url: Option<String>,
    pub listen: Option<String>,
    /// The gateway's address as clients reach it; links are built on it.
    pub public_url: Option<String>,
    /// Build links from the request's Host header instead (behind a trusted proxy only).
    pub public_url_from_request: Option<bool>,
    /// Base of the clinic's FHIR identifier systems (see `MappingConfig::identifier_base`).
    pub identifier_base: Option<String>,
    /// What is disclosed of mental-health (non-Part 2) data no consent decides:
    /// `care-team-treatment` (the default) or `consent-only`.
    pub mental_health_policy: Option<MentalHealthPolicySetting>,
}

/// The clinic's choice for mental-health data no consent decides (`consent::MentalHealthPolicy`).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum MentalHealthPolicySetting {
    /// Treatment and coordination of care (TREAT, COC) by organizations on the client's care team.
    #[default]
    CareTeamTreatment,
    /// Nothing without a consent.
    ConsentOnly,
}

impl MentalHealthPolicySetting {
    pub fn policy(self) -> crate::consent::Policy {
        let mental_health = match self {
            Self::CareTeamTreatment => crate::consent::MentalHealthPolicy::default(),
            Self::ConsentOnly => crate::consent::MentalHealthPolicy::off(),
        };
        crate::consent::Policy { mental_health }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
}

impl FileConfig {
    /// Loads `explicit` (which must exist), or `./iop-gateway.toml` when present, or nothing.
    pub fn load(explicit: Option<&Path>) -> Result<Self, ConfigError> {
        let path = match explicit {
            Some(path) => path.to_owned(),
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => PathBuf::from(DEFAULT_CONFIG_FILE),
            None => return Ok(Self::default()),
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Parse { path, message })
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.message().to_owned())
    }
}

/// First of: flag or environment (already merged by clap), file, default.
pub fn resolve(flag_or_env: Option<String>, file: Option<&String>, default: &str) -> String {
    flag_or_env
        .or_else(|| file.cloned())
        .unwrap_or_else(|| default.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_file_beat_default() {
        let file = Some("sqlite://file.db".to_owned());
        assert_eq!(
            resolve(Some("sqlite://flag.db".into()), file.as_ref(), "d"),
            "sqlite://flag.db"
        );
        assert_eq!(resolve(None, file.as_ref(), "d"), "sqlite://file.db");
        assert_eq!(resolve(None, None, "d"), "d");
    }

    #[test]
    fn file_rejects_unknown_keys() {
        assert_eq!(
            FileConfig::parse("database_url = \"sqlite://x.db\"\nlisten = \"0.0.0.0:9000\"")
                .unwrap(),
            FileConfig {
                database_url: Some("sqlite://x.db".into()),
                listen: Some("0.0.0.0:9000".into()),
                identifier_base: None,
                public_url: None,
                public_url_from_request: None,
                mental_health_policy: None,
            }
        );
        assert_eq!(
            FileConfig::parse("mental_health_policy = \"consent-only\"")
                .unwrap()
                .mental_health_policy,
            Some(MentalHealthPolicySetting::ConsentOnly)
        );
        let err = FileConfig::parse("databse_url = \"x\"").unwrap_err();
        assert!(err.contains("databse_url"), "{err}");
    }
}
