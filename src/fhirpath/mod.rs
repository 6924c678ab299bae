//! A FHIRPath (N1, as used by FHIR R4) engine over `serde_json::Value` resources.
//!
//! `parse` turns an expression into an `Expr` once; `evaluate` runs it against a resource many
//! times (invariants are compiled once per profile). No I/O: `resolve()` only finds contained
//! resources and Bundle entries. Measured against the official R4 test suite in
//! `tests/fhirpath_suite.rs`.

mod analysis;
mod decimal;
mod eval;
mod functions;
mod lexer;
mod parser;
mod value;

pub use analysis::{Presence, input_properties};
pub use eval::{Environment, evaluate, evaluate_on};
pub use parser::{Expr, parse};
pub use value::{Item, Value};

/// What FHIRPath needs of the FHIR model: the type of an element where JSON alone cannot tell
/// (a `code` from a `string`, a `HumanName` from any object). The validator's `Registry`
/// implements it from the R4 definitions; without one, types come from choice-element suffixes
/// (`valueQuantity`) and a few well-known element names.
pub trait TypeModel {
    /// The type of `name` within `parent` (a type name, or a backbone element's path such as
    /// `Patient.contact`): a type name, or the element's own path where it is a backbone element.
    /// None for choice elements and unknown names.
    fn element_type(&self, parent: &str, name: &str) -> Option<&str>;

    /// Whether `name` is a FHIR type (`Patient`, `HumanName`, `code`): `as(string1)` is an error.
    fn is_type_name(&self, name: &str) -> bool;
}

/// An item as FHIRPath's `toString()` renders it (None for complex nodes).
pub fn render(item: &Item<'_>) -> Option<String> {
    functions::to_string(item)
}

/// Why an expression could not be parsed or evaluated. Messages quote the expression's text and
/// positions, never data from the resource (it may be PHI).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FhirPathError {
    #[error("syntax error at {position}: {message}")]
    Syntax { position: usize, message: String },
    #[error("{0}")]
    Semantic(String),
    #[error("evaluation error: {0}")]
    Evaluation(String),
}
