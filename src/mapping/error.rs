/// Why an incoming FHIR resource cannot become a clinic record. `path` is a FHIRPath location
/// (`Patient.birthDate`), and messages never quote the value (it may be PHI).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("{path}: required but missing")]
    Missing { path: String },
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
    #[error("{path}: code `{code}` is not one the clinic records; expected one of {expected}")]
    UnknownCode {
        path: String,
        code: String,
        expected: String,
    },
}

impl MappingError {
    pub fn path(&self) -> &str {
        match self {
            Self::Missing { path }
            | Self::Invalid { path, .. }
            | Self::UnknownCode { path, .. } => path,
        }
    }
}
