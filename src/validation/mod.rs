//! Profile validation: base R4 definitions, IOP and any loaded profiles, bindings, FHIRPath
//! invariants. Pure: the registry is loaded by the caller; `Validator::validate` does no I/O.
//!
//! Status (issue 4, in progress): the R4 JSON Schema as a safety net, cardinality, unknown
//! elements, choice types, primitive formats, fixed and pattern values, required/extensible
//! bindings on offline ValueSets, element and resource invariants, extension definitions,
//! reference target types, `meta.profile`, and slicing by value/pattern/exists discriminators.
//! Still to come: type and profile discriminators, ordered slicing, Bundle reference resolution,
//! extension context checks, speed work.

mod element;
mod outcome;
mod primitive;
mod registry;
mod schema;
mod walk;

pub use outcome::{Issue, Severity, operation_outcome};
pub use registry::{Expansion, Registry, RegistryError};
pub use walk::Validator;
