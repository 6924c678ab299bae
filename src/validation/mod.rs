//! Profile validation: base R4 definitions, IOP and any loaded profiles, bindings, FHIRPath
//! invariants. Pure: the registry is loaded by the caller; `Validator::validate` does no I/O.
//!
//! Rules: cardinality, unknown elements, choice types,
//! primitive formats, fixed and pattern values, minValue/maxValue (UCUM-converted quantities), required/extensible bindings on offline
//! ValueSets, element and resource invariants, extension definitions and contexts, reference
//! formats and target types (resolved in `contained` and between Bundle entries), `meta.profile`,
//! and slicing by value, pattern, exists, type and profile discriminators (open, closed,
//! ordered, openAtEnd); element ids unique within a resource, narrative links resolving and
//! the Bundle rules (`resource_rules.rs`); narrative XHTML parsed (`xhtml.rs`); the R4 JSON
//! Schema where a type's definition is not loaded (`schema.rs`).

mod bundle;
mod element;
mod iop;
mod limits;
mod outcome;
mod primitive;
mod registry;
mod resource_rules;
mod schema;
mod snapshot;
mod walk;
mod xhtml;

pub use bundle::BundleIndex;
pub use iop::IopProfiles;
pub use outcome::{Issue, Severity, operation_outcome};
pub(crate) use registry::names_type;
pub use registry::{Expansion, Registry, RegistryError};
pub use walk::Validator;

/// The value at `keys` below `value`: `Value::pointer` without its cost, which parses the
/// pointer and allocates two strings per step — too much for lookups made per element.
pub(crate) fn at<'a>(value: &'a serde_json::Value, keys: &[&str]) -> Option<&'a serde_json::Value> {
    keys.iter().try_fold(value, |v, key| v.get(key))
}
