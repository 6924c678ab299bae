//! Profile validation: base R4 definitions, IOP and any loaded profiles, bindings, FHIRPath
//! invariants. Pure: the registry is loaded by the caller; `Validator::validate` does no I/O.
//!
//! Rules: the R4 JSON Schema as a safety net, cardinality, unknown elements, choice types,
//! primitive formats, fixed and pattern values, required/extensible bindings on offline
//! ValueSets, element and resource invariants, extension definitions and contexts, reference
//! formats and target types (resolved in `contained` and between Bundle entries), `meta.profile`,
//! and slicing by value, pattern, exists, type and profile discriminators (open, closed,
//! ordered, openAtEnd).

mod bundle;
mod element;
mod iop;
mod outcome;
mod primitive;
mod registry;
mod schema;
mod snapshot;
mod walk;

pub use bundle::BundleIndex;
pub use iop::IopProfiles;
pub use outcome::{Issue, Severity, operation_outcome};
pub use registry::{Expansion, Registry, RegistryError};
pub use walk::Validator;
