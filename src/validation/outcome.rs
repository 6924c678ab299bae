//! Validation issues and their FHIR OperationOutcome form.

use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Fatal,
    Error,
    Warning,
    Information,
}

impl Severity {
    pub fn code(self) -> &'static str {
        match self {
            Self::Fatal => "fatal",
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Information => "information",
        }
    }
}

/// One finding: how bad, what kind (FHIR issue-type code), what to do, and where (FHIRPath).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    pub expression: String,
}

impl Issue {
    pub fn is_error(&self) -> bool {
        matches!(self.severity, Severity::Fatal | Severity::Error)
    }
}

/// The issues as an OperationOutcome (an `information` "all OK" issue when there are none).
pub fn operation_outcome(issues: &[Issue]) -> Value {
    let issues: Vec<Value> = if issues.is_empty() {
        vec![
            json!({ "severity": "information", "code": "informational", "details": { "text": "No issues found" } }),
        ]
    } else {
        issues
            .iter()
            .map(|i| {
                json!({
                    "severity": i.severity.code(),
                    "code": i.code,
                    "details": { "text": i.message },
                    "expression": [i.expression],
                })
            })
            .collect()
    };
    json!({ "resourceType": "OperationOutcome", "issue": issues })
}
