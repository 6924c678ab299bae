//! A StructureDefinition snapshot compiled for validation: elements by id, their children and
//! slices, and their constraints parsed once.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde_json::Value as Json;

use crate::fhirpath::{self, Expr};

#[derive(Debug, Clone)]
pub struct TypeRef {
    pub code: String,
    pub profiles: Vec<String>,
    pub target_profiles: Vec<String>,
    /// The compiled definition of this type where it is one of a choice element's types
    /// (`value[x]`), resolved on first use; weak for the reason `Element::type_compiled` is.
    pub compiled: std::sync::OnceLock<Option<std::sync::Weak<Compiled>>>,
}

/// How an invariant is checked: natively for the two that sit on nearly every element (same
/// meaning as their FHIRPath, a hundred times cheaper), by the FHIRPath engine otherwise.
#[derive(Debug, Clone)]
pub enum Check {
    /// ele-1 `hasValue() or (children().count() > id.count())`
    HasValueOrChildren,
    /// ext-1 `extension.exists() != value.exists()`
    ExtensionOrValue,
    /// Rules the walk checks itself, with a more precise message: ref-1 (a `#id` reference
    /// names a contained resource: the reference check) and txt-1 (the narrative is safe XHTML:
    /// the `xhtml` primitive check). Not evaluated twice.
    CoveredByWalk,
    /// txt-2 `htmlChecks()`: the narrative has some text.
    NarrativeText,
    /// `x.exists() implies x >= 0` (tim-4, tim-5: on every Timing.repeat): a number member is
    /// compared here; anything else (not a number) goes to the FHIRPath evaluator.
    NonNegative(String, Arc<Expr>),
    /// An invariant about which members are present, decided without the FHIRPath evaluator
    /// (`fhirpath::Presence`: same answer, a fraction of the cost; Timing alone has six).
    Presence(fhirpath::Presence),
    FhirPath(Arc<Expr>),
    /// The expression is missing or did not parse; reported as not checked (information).
    Unparsed,
}

#[derive(Debug, Clone)]
pub struct Constraint {
    pub key: String,
    pub error: bool,
    pub human: String,
    pub check: Check,
    /// Same key and expression, same identity (a profile repeats its base's invariants).
    pub identity: u64,
    /// For a FHIRPath check: the properties of the element it can read, with the verdict when
    /// none of them is present (then it need not run). See `fhirpath::input_properties`.
    pub shortcut: Option<(Vec<String>, bool)>,
}

/// A FHIRPath invariant's verdict on an element that has none of the properties it reads.
fn verdict_without_inputs(expression: &Expr) -> Option<(Vec<String>, bool)> {
    let names = fhirpath::input_properties(expression)?;
    let empty = Json::Object(serde_json::Map::new());
    let env = fhirpath::Environment::new(&empty);
    let result = fhirpath::evaluate_on(expression, &env, &empty).ok()?;
    Some((names, invariant_holds(&result)))
}

/// Whether an invariant's result means it holds: as the HL7 validator reads it, an empty result
/// or `false` fails (per-1 on a date and a dateTime of different precision is empty: not
/// comparable, so not shown to be in order); anything else holds.
pub fn invariant_holds(result: &[fhirpath::Item]) -> bool {
    !matches!(result, [] | [fhirpath::Item::Boolean(false)])
}

#[derive(Debug, Clone)]
pub struct Discriminator {
    pub kind: String,
    pub path: String,
}

#[derive(Debug, Clone)]
pub struct Element {
    /// Position in the snapshot (what `Compiled::children` and `slices` take).
    pub index: usize,
    pub id: String,
    /// The element's own name (last path segment, `value[x]` as written).
    pub name: String,
    /// The name without `[x]` (what JSON property names start with).
    base_name: String,
    /// The resource types its `Reference` types may point to (from the target profiles),
    /// filled on first use by the walk (profile URLs are resolved through the registry).
    pub target_types: std::sync::OnceLock<Vec<String>>,
    pub slice_name: Option<String>,
    pub min: usize,
    pub max: Option<usize>,
    /// The base definition repeats (max not 1), so JSON holds an array even where a profile allows one.
    pub repeats: bool,
    pub types: Vec<TypeRef>,
    pub fixed: Option<Json>,
    pub pattern: Option<Json>,
    /// `minValue[x]` and `maxValue[x]`.
    pub min_value: Option<Json>,
    pub max_value: Option<Json>,
    pub binding: Option<(String, String)>,
    /// The binding's value set expanded, filled on first use by the walk.
    pub expansion: std::sync::OnceLock<Arc<super::Expansion>>,
    /// Where this element's required binding names a value set that is not loaded (US Core's),
    /// the required binding of the element it constrains (`base.path`), which it can only narrow:
    /// checked instead. Set as the profile is compiled.
    pub base_binding: std::sync::OnceLock<(String, String)>,
    /// `base.path`: the element of the base resource or type this one constrains.
    pub base_path: Option<String>,
    pub constraints: Vec<Constraint>,
    pub discriminators: Vec<Discriminator>,
    pub closed: bool,
    /// Slicing `ordered`: values appear in the order of the slices.
    pub ordered: bool,
    /// Slicing `openAtEnd`: values in no slice come after all sliced values.
    pub open_at_end: bool,
    pub content_reference: Option<String>,
    /// The compiled definition of this element's (single) type, filled on first use by the walk.
    /// Weak: definitions refer to each other in cycles (Extension.extension is an Extension); the
    /// validator's cache owns them.
    pub type_compiled: std::sync::OnceLock<Option<std::sync::Weak<Compiled>>>,
}

impl Element {
    /// Does this (a profile's element) keep every rule of `b` (the same element in its base)?
    fn holds_rules_of(
        &self,
        b: &Element,
        narrower_targets: &dyn Fn(&Element, &Element) -> bool,
    ) -> bool {
        let p = self;
        let max_ok = match (b.max, p.max) {
            (None, _) => true,
            (Some(b), Some(p)) => p <= b,
            (Some(_), None) => false,
        };
        let types_ok = p.types.iter().all(|pt| {
            b.types.iter().any(|bt| {
                bt.code == pt.code && (bt.profiles.is_empty() || bt.profiles == pt.profiles)
            })
        }) && (b.types.is_empty() || !p.types.is_empty())
            && narrower_targets(p, b);
        let constraints_ok = b.constraints.iter().all(|bc| {
            p.constraints
                .iter()
                .any(|pc| pc.identity == bc.identity && pc.error == bc.error)
        });
        let binding_ok = match (&b.binding, &p.binding) {
            (Some((strength, _)), _) if !matches!(strength.as_str(), "required" | "extensible") => {
                true
            }
            (None, _) => true,
            (Some((b_strength, b_set)), Some((p_strength, p_set))) => {
                (without_version(b_set) == without_version(p_set)
                    && (p_strength == b_strength || p_strength == "required"))
                    || p.base_binding.get() == b.binding.as_ref()
            }
            (Some(_), None) => false,
        };
        p.min >= b.min
            && max_ok
            && p.repeats == b.repeats
            && types_ok
            && constraints_ok
            && binding_ok
            && p.content_reference == b.content_reference
            && (b.fixed.is_none() || p.fixed == b.fixed)
            && (b.pattern.is_none() || p.pattern == b.pattern)
            && (b.min_value.is_none() || p.min_value == b.min_value)
            && (b.max_value.is_none() || p.max_value == b.max_value)
    }

    pub fn is_choice(&self) -> bool {
        self.name.ends_with("[x]")
    }
    pub fn base_name(&self) -> &str {
        &self.base_name
    }
}

/// Where an extension may be used (`StructureDefinition.context`).
#[derive(Debug, Clone)]
pub struct Context {
    /// `element`, `extension` or `fhirpath`.
    pub kind: String,
    pub expression: String,
}

pub struct Compiled {
    pub elements: Vec<Element>,
    /// For an extension definition, the places it may be used; empty means anywhere.
    pub contexts: Vec<Context>,
    by_id: FxHashMap<String, usize>,
    /// Child element indexes of each element (slices excluded), by the element's index.
    children: Vec<Vec<usize>>,
    /// Slice element indexes of each element, by the sliced element's index.
    slices: Vec<Vec<usize>>,
    /// Non-choice children by name, sorted by (first eight bytes as an integer, name): the binary
    /// search compares integers, not strings (this lookup runs for every JSON property).
    named: Vec<Vec<(u64, String, usize)>>,
    /// Children that must be visited even without values: `min > 0`, or a slice with `min > 0`.
    required: Vec<Vec<usize>>,
    /// Choice (`value[x]`) children of each element.
    choices: Vec<Vec<usize>>,
    /// Whether this defines a resource (kind `resource`): only a resource's own object has a
    /// `resourceType` member.
    pub is_resource: bool,
    /// Whether this profile holds every rule of its type's base definition
    /// (`holds_every_rule_of`), found on first use by the walk.
    pub covers_its_base: std::sync::OnceLock<bool>,
}

fn parent_of(id: &str) -> Option<&str> {
    id.rfind('.').map(|i| &id[..i])
}

fn first_value_with_prefix<'a>(element: &'a Json, prefix: &str) -> Option<&'a Json> {
    element
        .as_object()?
        .iter()
        .find(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v)
}

impl Compiled {
    pub fn compile(definition: &Json) -> Self {
        let mut elements = Vec::new();
        // A resource's own id is an `id` (64 letters, digits, '-' or '.'), though R4 types it
        // as a string like every other element id.
        let is_resource = definition.get("kind").and_then(Json::as_str) == Some("resource");
        let resource_id = is_resource
            .then(|| definition.get("type").and_then(Json::as_str))
            .flatten()
            .map(|t| format!("{t}.id"));
        for e in definition
            .pointer("/snapshot/element")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            let id = e
                .get("id")
                .and_then(Json::as_str)
                .or_else(|| e.get("path").and_then(Json::as_str))
                .unwrap_or_default()
                .to_owned();
            let path = e.get("path").and_then(Json::as_str).unwrap_or_default();
            let name = path.rsplit('.').next().unwrap_or(path).to_owned();
            let types = e
                .get("type")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
                .map(|t| TypeRef {
                    code: fhir_type(t, &id, resource_id.as_deref()),
                    profiles: strings(t.get("profile")),
                    target_profiles: strings(t.get("targetProfile")),
                    compiled: std::sync::OnceLock::new(),
                })
                .collect();
            let constraints = e
                .get("constraint")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
                .map(|c| {
                    let check = match c.get("expression").and_then(Json::as_str) {
                        Some("hasValue() or (children().count() > id.count())") => {
                            Check::HasValueOrChildren
                        }
                        Some("extension.exists() != value.exists()") => Check::ExtensionOrValue,
                        Some(
                            "reference.startsWith('#').not() or (reference.substring(1).trace('url') in %rootResource.contained.id.trace('ids'))",
                        ) => Check::CoveredByWalk,
                        Some("htmlChecks()") if c.get("key").and_then(Json::as_str) == Some("txt-2") => {
                            Check::NarrativeText
                        }
                        Some("htmlChecks()") => Check::CoveredByWalk,
                        Some(x) => fhirpath::parse(x)
                            .map(|e| match (fhirpath::Presence::of(&e), non_negative_member(x)) {
                                (Some(presence), _) => Check::Presence(presence),
                                (None, Some(name)) => {
                                    Check::NonNegative(name.to_owned(), Arc::new(e))
                                }
                                (None, None) => Check::FhirPath(Arc::new(e)),
                            })
                            .unwrap_or(Check::Unparsed),
                        None => Check::Unparsed,
                    };
                    let shortcut = match &check {
                        Check::FhirPath(expression) => verdict_without_inputs(expression),
                        _ => None,
                    };
                    let identity = {
                        use std::hash::{Hash, Hasher};
                        let mut hasher = std::collections::hash_map::DefaultHasher::new();
                        c.get("key").and_then(Json::as_str).hash(&mut hasher);
                        c.get("expression").and_then(Json::as_str).hash(&mut hasher);
                        hasher.finish()
                    };
                    Constraint {
                        identity,
                        key: c
                            .get("key")
                            .and_then(Json::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                        error: c.get("severity").and_then(Json::as_str) == Some("error"),
                        human: c
                            .get("human")
                            .and_then(Json::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                        check,
                        shortcut,
                    }
                })
                .collect();
            let slicing = e.get("slicing");
            elements.push(Element {
                index: elements.len(),
                id,
                base_name: name.trim_end_matches("[x]").to_owned(),
                name,
                target_types: std::sync::OnceLock::new(),
                slice_name: e.get("sliceName").and_then(Json::as_str).map(str::to_owned),
                min: e.get("min").and_then(Json::as_u64).unwrap_or(0) as usize,
                max: match e.get("max").and_then(Json::as_str) {
                    Some("*") | None => None,
                    Some(n) => n.parse().ok(),
                },
                repeats: e
                    .pointer("/base/max")
                    .and_then(Json::as_str)
                    .or_else(|| e.get("max").and_then(Json::as_str))
                    .is_some_and(|m| m != "1" && m != "0"),
                types,
                fixed: first_value_with_prefix(e, "fixed").cloned(),
                pattern: first_value_with_prefix(e, "pattern").cloned(),
                min_value: first_value_with_prefix(e, "minValue").cloned(),
                max_value: first_value_with_prefix(e, "maxValue").cloned(),
                binding: e.get("binding").and_then(|b| {
                    Some((
                        b.get("strength")?.as_str()?.to_owned(),
                        b.get("valueSet")?.as_str()?.to_owned(),
                    ))
                }),
                constraints,
                discriminators: slicing
                    .and_then(|s| s.get("discriminator"))
                    .and_then(Json::as_array)
                    .into_iter()
                    .flatten()
                    .map(|d| Discriminator {
                        kind: d
                            .get("type")
                            .and_then(Json::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                        path: d
                            .get("path")
                            .and_then(Json::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                    })
                    .collect(),
                closed: slicing.and_then(|s| s.get("rules")).and_then(Json::as_str)
                    == Some("closed"),
                ordered: slicing
                    .and_then(|s| s.get("ordered"))
                    .and_then(Json::as_bool)
                    .unwrap_or(false),
                open_at_end: slicing.and_then(|s| s.get("rules")).and_then(Json::as_str)
                    == Some("openAtEnd"),
                type_compiled: std::sync::OnceLock::new(),
                expansion: std::sync::OnceLock::new(),
                base_binding: std::sync::OnceLock::new(),
                base_path: super::at(e, &["base", "path"])
                    .and_then(Json::as_str)
                    .map(str::to_owned),
                content_reference: e
                    .get("contentReference")
                    .and_then(Json::as_str)
                    .map(|r| r.trim_start_matches('#').to_owned()),
            });
        }
        let by_id: FxHashMap<String, usize> = elements
            .iter()
            .enumerate()
            .map(|(i, e)| (e.id.clone(), i))
            .collect();
        let mut children = vec![Vec::new(); elements.len()];
        let mut slices = vec![Vec::new(); elements.len()];
        for (i, e) in elements.iter().enumerate() {
            let last = e.id.rsplit('.').next().unwrap_or_default();
            if last.contains(':') {
                // `A.b:s` slices `A.b`; elements inside a slice are children of the slice.
                if let Some(sliced) = e.id.rfind(':').and_then(|at| by_id.get(&e.id[..at])) {
                    slices[*sliced].push(i);
                }
            } else if let Some(parent) = parent_of(&e.id).and_then(|p| by_id.get(p)) {
                children[*parent].push(i);
            }
        }
        let mut named = vec![Vec::new(); elements.len()];
        let mut choices = vec![Vec::new(); elements.len()];
        let mut required = vec![Vec::new(); elements.len()];
        for (parent, list) in children.iter().enumerate() {
            for &child in list {
                let element: &Element = &elements[child];
                if element.is_choice() {
                    choices[parent].push(child);
                } else {
                    named[parent].push((name_prefix(&element.name), element.name.clone(), child));
                }
                if element.min > 0 || slices[child].iter().any(|s| elements[*s].min > 0) {
                    required[parent].push(child);
                }
            }
            named[parent].sort();
        }
        let contexts = definition
            .get("context")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| {
                Some(Context {
                    kind: c.get("type")?.as_str()?.to_owned(),
                    expression: c.get("expression")?.as_str()?.to_owned(),
                })
            })
            .collect();
        Self {
            elements,
            contexts,
            by_id,
            children,
            slices,
            named,
            required,
            choices,
            is_resource,
            covers_its_base: std::sync::OnceLock::new(),
        }
    }

    /// Does this profile's snapshot hold every rule of `base` (its resource type's definition)?
    /// Then walking the base as well finds nothing the profile's walk does not: every base
    /// element is here with a cardinality as tight, types among the base's, the same type
    /// profiles where the base names any, reference targets among the base's (`narrower_targets`
    /// of the profile's and the base's element: the walk resolves targets), the base's
    /// invariants, fixed and pattern values and limits, and the base's binding (same value set,
    /// as strong). Where the profile unfolds an element the base leaves to its type (the IOP
    /// CarePlan's `period`), the unfolded elements must hold every rule of the type's definition
    /// (`type_definition`) the same way, since the base walk would have walked the type. A
    /// profile that loosens or changes any of these — or leaves an element out — keeps the base
    /// walk.
    pub fn holds_every_rule_of(
        &self,
        base: &Compiled,
        narrower_targets: &dyn Fn(&Element, &Element) -> bool,
        type_definition: &dyn Fn(&str) -> Option<Arc<Compiled>>,
    ) -> bool {
        self.holds_rules_below(base, 0, "", narrower_targets, type_definition, 0)
    }

    /// `holds_every_rule_of` for the elements of `base` from `base_index` down, found here
    /// under ids where the base's root id is replaced by `at` (empty: the same ids).
    fn holds_rules_below(
        &self,
        base: &Compiled,
        base_index: usize,
        at: &str,
        narrower_targets: &dyn Fn(&Element, &Element) -> bool,
        type_definition: &dyn Fn(&str) -> Option<Arc<Compiled>>,
        depth: usize,
    ) -> bool {
        let Some(root) = base.elements.get(base_index) else {
            return false;
        };
        let root_id = root.id.as_str();
        let below = format!("{root_id}.");
        base.elements[base_index..]
            .iter()
            .take_while(|b| b.id == root_id || b.id.starts_with(&below))
            .all(|b| {
                let id = if at.is_empty() {
                    b.id.clone()
                } else {
                    format!("{at}{}", &b.id[root_id.len()..])
                };
                let Some(p) = self.get(&id) else {
                    return false;
                };
                if !p.holds_rules_of(b, narrower_targets) {
                    return false;
                }
                // Unfolded here, walked by its type in the base: the type's rules must be here.
                if self.has_children(p.index) && !base.has_children(b.index) {
                    let [only] = b.types.as_slice() else {
                        return false;
                    };
                    if matches!(only.code.as_str(), "BackboneElement" | "Element") {
                        return true;
                    }
                    let Some(type_compiled) = type_definition(&only.code) else {
                        return false;
                    };
                    return depth < 8
                        && type_compiled.elements.len() > 1
                        && (1..type_compiled.elements.len())
                            .filter(|i| {
                                parent_of(&type_compiled.elements[*i].id)
                                    == Some(type_compiled.elements[0].id.as_str())
                            })
                            .all(|i| {
                                let child = &type_compiled.elements[i];
                                let name = &child.id[type_compiled.elements[0].id.len()..];
                                self.holds_rules_below(
                                    &type_compiled,
                                    i,
                                    &format!("{}{name}", p.id),
                                    narrower_targets,
                                    type_definition,
                                    depth + 1,
                                )
                            });
                }
                true
            })
    }

    pub fn root(&self) -> Option<&Element> {
        self.elements.first()
    }
    pub fn get(&self, id: &str) -> Option<&Element> {
        self.by_id.get(id).map(|i| &self.elements[*i])
    }
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }
    pub fn has_children(&self, index: usize) -> bool {
        self.children.get(index).is_some_and(|c| !c.is_empty())
    }
    /// The non-choice child of `parent` called `name`.
    pub fn child_named(&self, parent: usize, name: &str) -> Option<&Element> {
        let list = self.named.get(parent)?;
        let prefix = name_prefix(name);
        let from = list.partition_point(|(p, _, _)| *p < prefix);
        list[from..]
            .iter()
            .take_while(|(p, _, _)| *p == prefix)
            // Equal first eight bytes: the lengths and the rest decide, without a call to
            // `memcmp` for the short names that most are (this runs for every JSON property).
            .find(|(_, n, _)| {
                n.len() == name.len() && n.as_bytes().get(8..) == name.as_bytes().get(8..)
            })
            .map(|(_, _, at)| &self.elements[*at])
    }
    /// Children of `parent` that must be checked even when absent.
    pub fn required_children(&self, parent: usize) -> &[usize] {
        self.required
            .get(parent)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
    pub fn has_slices(&self, index: usize) -> bool {
        self.slices.get(index).is_some_and(|s| !s.is_empty())
    }
    pub fn choice_children(&self, parent: usize) -> impl Iterator<Item = &Element> {
        self.choices
            .get(parent)
            .into_iter()
            .flatten()
            .map(|i| &self.elements[*i])
    }
    pub fn slices(&self, index: usize) -> impl Iterator<Item = &Element> {
        self.slices
            .get(index)
            .into_iter()
            .flatten()
            .map(|i| &self.elements[*i])
    }
}

/// The FHIR type of an element's type entry. R4 types `Element.id`, `Extension.url` and a
/// resource's `id` as FHIRPath System strings, with the FHIR type (`string`, `uri`) in the
/// `structuredefinition-fhir-type` extension: that is the one whose format applies.
fn fhir_type(type_entry: &Json, element_id: &str, resource_id: Option<&str>) -> String {
    let code = type_entry
        .get("code")
        .and_then(Json::as_str)
        .unwrap_or_default();
    if !code.starts_with("http://hl7.org/fhirpath/") {
        return code.to_owned();
    }
    if resource_id == Some(element_id) {
        return "id".to_owned();
    }
    type_entry
        .get("extension")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .find(|e| {
            e.get("url").and_then(Json::as_str)
                == Some("http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type")
        })
        .and_then(|e| e.get("valueUrl").or_else(|| e.get("valueUri")))
        .and_then(Json::as_str)
        .unwrap_or(code)
        .to_owned()
}

fn without_version(canonical: &str) -> &str {
    canonical.split('|').next().unwrap_or(canonical)
}

/// `name` of an invariant `name.exists() implies name >= 0`.
fn non_negative_member(expression: &str) -> Option<&str> {
    let (exists, name) = expression.strip_suffix(" >= 0")?.split_once(" implies ")?;
    let is_name = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric());
    (is_name && exists.strip_suffix(".exists()") == Some(name)).then_some(name)
}

/// The first eight bytes of a name as a big-endian integer (orders like the bytes).
fn name_prefix(name: &str) -> u64 {
    let mut bytes = [0u8; 8];
    let n = name.len().min(8);
    bytes[..n].copy_from_slice(&name.as_bytes()[..n]);
    u64::from_be_bytes(bytes)
}

fn strings(value: Option<&Json>) -> Vec<String> {
    value
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(Json::as_str)
        .map(str::to_owned)
        .collect()
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("root", &self.elements.first().map(|e| &e.id))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::non_negative_member;

    #[test]
    fn non_negative_invariants_are_recognized_by_their_shape() {
        assert_eq!(
            non_negative_member("duration.exists() implies duration >= 0"),
            Some("duration")
        );
        assert_eq!(
            non_negative_member("period.exists() implies period >= 0"),
            Some("period")
        );
        assert_eq!(
            non_negative_member("period.exists() implies duration >= 0"),
            None
        );
        assert_eq!(non_negative_member("a.b.exists() implies a.b >= 0"), None);
        assert_eq!(
            non_negative_member("period.exists() implies period >= 1"),
            None
        );
    }
}
