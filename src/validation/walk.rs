//! The validation walk: a resource against its base definition and its profiles, element by
//! element, collecting issues with FHIRPath locations.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::Value as Json;
use smallvec::SmallVec;

use super::bundle::BundleIndex;
use super::element::{Check, Compiled, Context, Element};
use super::iop::IopProfiles;
use super::limits::{self, Bound, Incomparable};
use super::outcome::{Issue, Severity};
use super::primitive;
use super::registry::{Expansion, Registry};
use crate::fhirpath::{self, Environment};
use crate::json_member::{in_map, member};

/// Validates resources against loaded definitions. Compiles each StructureDefinition once.
pub struct Validator {
    /// The definitions; for `builtin_on_first_use`, built by the first check that needs them.
    registry: std::sync::OnceLock<Arc<Registry>>,
    build_registry: Option<fn() -> Registry>,
    /// The IOP profile of each type, known without the registry (a CapabilityStatement and the
    /// FHIR API's reads need these, not the definitions).
    iop: IopProfiles,
    /// The R4 JSON Schema, loaded on first use (or why it could not be: then every verdict that
    /// needs it says so). It checks what no loaded definition covers.
    schema: std::sync::OnceLock<Result<super::schema::StructuralSchema, String>>,
    /// Compiled definitions by the address of the registry's `Arc<Json>` (the registry owns them
    /// for the validator's whole life, so the address is a stable key and needs no hashing of URLs).
    compiled: Mutex<FxHashMap<usize, Arc<Compiled>>>,
    /// Every resource walked (nested ones too) is also held to the IOP profile of its type.
    apply_iop: bool,
}

const MAX_DEPTH: usize = 24;

fn is_primitive(code: &str) -> bool {
    code.starts_with(|c: char| c.is_ascii_lowercase())
        || code.starts_with("http://hl7.org/fhirpath/")
}

/// `valueQuantity` is the `Quantity` choice of `value[x]`: the type code that a suffix names.
fn choice_suffix_matches(suffix: &str, code: &str) -> bool {
    let mut chars = code.chars();
    match chars.next() {
        Some(first) => {
            suffix.len() == code.len()
                && suffix.starts_with(first.to_ascii_uppercase())
                && suffix[first.len_utf8()..] == code[first.len_utf8()..]
        }
        None => false,
    }
}

/// Does `value` contain everything `pattern` has (FHIR pattern[x] semantics)?
fn pattern_matches(value: &Json, pattern: &Json) -> bool {
    match (value, pattern) {
        (Json::Object(v), Json::Object(p)) => p
            .iter()
            .all(|(k, pv)| in_map(v, k).is_some_and(|vv| pattern_matches(vv, pv))),
        (Json::Array(v), Json::Array(p)) => p
            .iter()
            .all(|pv| v.iter().any(|vv| pattern_matches(vv, pv))),
        (Json::Array(v), p) => v.iter().any(|vv| pattern_matches(vv, p)),
        (v, p) => v == p,
    }
}

/// Follows a simple dotted discriminator path (`url`, `coding.code`, `$this`).
fn navigate<'a>(value: &'a Json, path: &str) -> Vec<&'a Json> {
    let mut current = vec![value];
    for step in path.split('.').filter(|s| *s != "$this" && !s.is_empty()) {
        let mut next = Vec::new();
        for node in current {
            match member(node, step) {
                Some(Json::Array(items)) => next.extend(items.iter()),
                Some(v) => next.push(v),
                None => {}
            }
        }
        current = next;
    }
    current
}

struct Run<'v, 'r, 'b> {
    validator: &'v Validator,
    /// The resource being walked (what `#id` references and `%resource` mean).
    root: &'r Json,
    /// The outermost resource: the Bundle or container the walk started on (`%rootResource`).
    outer: &'r Json,
    /// The resource this one is nested in, if any: a contained resource's `#id` references
    /// name its container's other contained resources.
    container: Option<&'r Json>,
    /// The Bundle the resource sits in, where references between entries resolve.
    bundle: Option<&'b BundleIndex>,
    issues: Vec<Issue>,
    unavailable: FxHashSet<String>,
    /// FHIRPath invariants already evaluated, by (node address, invariant identity): the base
    /// definition and each profile repeat most invariants on the same nodes.
    evaluated: FxHashSet<(usize, u64)>,
    /// Objects already walked against a definition's element, by (compiled definition, element
    /// index, object address): an extension is walked against the Extension type by its slice
    /// and again by the element it is sliced from, and against its own definition by its
    /// slice's type profile and again as an extension. The walk is the same each time (the
    /// issues are deduplicated), so the later ones are skipped. (A walk from one level deeper
    /// stops at `MAX_DEPTH` one level sooner; a resource that deep is invalid for that alone.)
    walked: FxHashSet<(usize, usize, usize)>,
    /// Whether the walk already reported reaching `MAX_DEPTH`.
    too_deep: bool,
    /// Whether a resource's definition was not loaded (a bare registry): only the R4 JSON
    /// Schema then checks its structure.
    needs_schema: bool,
}

impl Validator {
    pub fn new(registry: Arc<Registry>) -> Self {
        let iop = registry.iop_profiles().clone();
        Self {
            registry: std::sync::OnceLock::from(registry),
            build_registry: None,
            iop,
            schema: std::sync::OnceLock::new(),
            compiled: Mutex::new(FxHashMap::default()),
            apply_iop: false,
        }
    }

    /// A validator of the built-in definitions (`Registry::builtin`) that loads them when first
    /// asked to check something: about 65 MB a server that only reads and exports never needs.
    pub fn builtin_on_first_use() -> Self {
        Self {
            registry: std::sync::OnceLock::new(),
            build_registry: Some(Registry::builtin),
            iop: Registry::builtin_iop_profiles(),
            schema: std::sync::OnceLock::new(),
            compiled: Mutex::new(FxHashMap::default()),
            apply_iop: false,
        }
    }

    /// Holds every resource it walks, nested ones too, to the IOP profile of its type (or the one
    /// of its type the resource names), besides what each validation requires.
    pub fn applying_iop_profiles(mut self) -> Self {
        self.apply_iop = true;
        self
    }

    pub fn registry(&self) -> &Registry {
        self.registry
            .get_or_init(|| Arc::new(self.build_registry.map(|build| build()).unwrap_or_default()))
    }

    /// The IOP profile of each resource type (the registry's, without loading it).
    pub fn iop_profiles(&self) -> &IopProfiles {
        &self.iop
    }

    /// The compiled form of `definition`, from the cache. Every one handed out stays in the
    /// cache for the validator's life (a second thread compiling the same definition at once
    /// gets the first one's), so its address names it: `Run::walked` relies on that.
    fn compiled(&self, definition: &Arc<Json>) -> Arc<Compiled> {
        let key = Arc::as_ptr(definition) as usize;
        let cache = || self.compiled.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = cache().get(&key) {
            return Arc::clone(found);
        }
        let compiled = Arc::new(Compiled::compile(definition));
        self.narrow_unloaded_targets(&compiled, definition);
        self.keep_base_bindings(&compiled, definition);
        Arc::clone(cache().entry(key).or_insert(compiled))
    }

    /// Does `profile` hold every rule of `base`, its type's definition (kept on the compiled
    /// profile)? A profile whose snapshot was generated with problems never does.
    fn covers_base(&self, profile: &Arc<Json>, base: &Arc<Json>) -> bool {
        let url = member(profile, "url").and_then(Json::as_str).unwrap_or("?");
        if !self.registry().snapshot_problems(url).is_empty() {
            return false;
        }
        let compiled = self.compiled(profile);
        *compiled.covers_its_base.get_or_init(|| {
            let narrower_targets = |profiled: &Element, base: &Element| {
                let (narrow, wide) = (self.targets(profiled), self.targets(base));
                wide.is_empty() || (!narrow.is_empty() && narrow.iter().all(|t| wide.contains(t)))
            };
            let type_definition = |type_name: &str| {
                self.registry()
                    .type_definition(type_name)
                    .map(|definition| self.compiled(definition))
            };
            compiled.holds_every_rule_of(&self.compiled(base), &narrower_targets, &type_definition)
        })
    }

    /// The resource types `element`'s references may point to, from its target profiles
    /// (empty: any), resolved on first use.
    fn targets<'e>(&self, element: &'e Element) -> &'e [String] {
        element
            .target_types
            .get_or_init(|| self.resolve_targets(element).unwrap_or_default())
    }

    /// The resource types of `element`'s target profiles; None where one of them is not loaded
    /// (its type is not known, so which types are allowed is not known either).
    fn resolve_targets(&self, element: &Element) -> Option<Vec<String>> {
        let registry = self.registry();
        element
            .types
            .iter()
            .filter(|t| t.code == "Reference")
            .flat_map(|t| t.target_profiles.iter())
            .map(|p| match registry.base_type_of(p) {
                Some(base_type) => Some(base_type.to_owned()),
                None => registry
                    .structure_definition(p)
                    .and_then(|sd| member(sd, "type").and_then(Json::as_str).map(str::to_owned)),
            })
            .collect()
    }

    /// A profile's reference element naming a target profile that is not loaded (US Core's,
    /// say) cannot say which types it allows; it still narrows the targets of the element it
    /// constrains (`base.path`), which it takes instead of allowing any type (a profile may only
    /// narrow). Done as the profile is compiled, so that every walk of it sees the same targets.
    fn narrow_unloaded_targets(&self, compiled: &Compiled, definition: &Json) {
        if member(definition, "derivation").and_then(Json::as_str) != Some("constraint") {
            return;
        }
        for element in &compiled.elements {
            if !element.types.iter().any(|t| !t.target_profiles.is_empty()) {
                continue;
            }
            let targets = match self.resolve_targets(element) {
                Some(own) => own,
                None => self
                    .constrained_element(element, definition)
                    .map(|(base, index)| self.targets(&base.elements[index]).to_vec())
                    .unwrap_or_default(),
            };
            let _ = element.target_types.set(targets);
        }
    }

    /// The element of a base resource or type definition that a profile's `element` constrains
    /// (`base.path`), with its index there; None within the base definition itself.
    fn constrained_element(
        &self,
        element: &Element,
        definition: &Json,
    ) -> Option<(Arc<Compiled>, usize)> {
        let base_path = element.base_path.as_deref()?;
        let root = base_path.split('.').next().unwrap_or_default();
        let base_definition = self.registry().type_definition(root)?.clone();
        if std::ptr::eq(Arc::as_ptr(&base_definition), definition) {
            return None;
        }
        let base = self.compiled(&base_definition);
        let index = base.index_of(base_path)?;
        Some((base, index))
    }

    /// A profile's element bound (required) to a value set that is not loaded checks nothing
    /// by it; the element it constrains (`base.path`, in its resource's or type's definition)
    /// may have a required binding of its own, which a profile can only narrow: that one is
    /// kept on the element and checked instead. Done as the profile is compiled.
    fn keep_base_bindings(&self, compiled: &Compiled, definition: &Json) {
        if member(definition, "derivation").and_then(Json::as_str) != Some("constraint") {
            return;
        }
        let registry = self.registry();
        for element in &compiled.elements {
            let Some((strength, value_set)) = &element.binding else {
                continue;
            };
            if strength != "required" || registry.value_set(value_set).is_some() {
                continue;
            }
            let Some((base, index)) = self.constrained_element(element, definition) else {
                continue;
            };
            if let Some(binding) = base.elements[index].binding.clone()
                && binding.0 == "required"
                && registry.value_set(&binding.1).is_some()
            {
                let _ = element.base_binding.set(binding);
            }
        }
    }

    /// Validates `resource` against its base definition, every loaded profile in `meta.profile`,
    /// and each of `required` whose type matches (one that is not loaded is an error; the caller
    /// picks them, e.g. the type's IOP profile from `Registry::iop_profiles`).
    pub fn validate(&self, resource: &Json, required: &[String]) -> Vec<Issue> {
        // A Bundle's entries refer to each other: index them once for the whole walk.
        let own_index = (member(resource, "resourceType").and_then(Json::as_str) == Some("Bundle"))
            .then(|| BundleIndex::of(resource));
        self.validate_in(resource, own_index.as_ref(), required)
    }

    /// Validates one entry of a Bundle (indexed with `BundleIndex::of`): references to other
    /// entries resolve, and a `urn:uuid:` reference that names no entry is an error (in a transaction or batch).
    pub fn validate_entry(
        &self,
        resource: &Json,
        bundle: &BundleIndex,
        required: &[String],
    ) -> Vec<Issue> {
        self.validate_in(resource, Some(bundle), required)
    }

    /// The R4 JSON Schema's findings on `resource` alone: (location, schema keyword). The
    /// walk runs it only where a definition is missing; the differential fuzz test compares it
    /// with the walk. An error when the type's schema does not load or compile.
    pub fn json_schema_findings(&self, resource: &Json) -> Result<Vec<(String, String)>, String> {
        match self
            .schema
            .get_or_init(super::schema::StructuralSchema::load)
        {
            Ok(schema) => schema.check(resource),
            Err(err) => Err(err.clone()),
        }
    }

    fn validate_in(
        &self,
        resource: &Json,
        bundle: Option<&BundleIndex>,
        required: &[String],
    ) -> Vec<Issue> {
        let mut run = Run {
            validator: self,
            root: resource,
            outer: resource,
            container: None,
            bundle,
            issues: Vec::new(),
            unavailable: FxHashSet::default(),
            // Sized for a CarePlan's walk (about 70 objects), so that neither set grows and
            // rehashes along the way.
            evaluated: FxHashSet::with_capacity_and_hasher(64, Default::default()),
            walked: FxHashSet::with_capacity_and_hasher(128, Default::default()),
            too_deep: false,
            needs_schema: false,
        };
        let resource_type = member(resource, "resourceType")
            .and_then(Json::as_str)
            .unwrap_or_default();
        run.resource(resource, required, 0, &Loc::root(resource_type));
        // Where every definition was loaded the walk checks all the R4 JSON Schema would (a
        // differential fuzz test holds it to that), so the schema runs only where a definition
        // was missing; its findings count where the walk found nothing at or below the same
        // place (the walk's locations and messages are more precise).
        let checked = if run.needs_schema {
            self.json_schema_findings(resource)
        } else {
            Ok(Vec::new())
        };
        match checked {
            Err(err) => run.issue(
                Severity::Error,
                "exception",
                resource_type,
                format!("the R4 JSON Schema check could not run: {err}"),
            ),
            Ok(found) => {
                for (location, keyword) in found {
                    let covered = run.issues.iter().any(|i| {
                        i.is_error()
                            && (i.expression == location
                                || i.expression.starts_with(&format!("{location}."))
                                || i.expression.starts_with(&format!("{location}[")))
                    });
                    if !covered {
                        run.issue(
                            Severity::Error,
                            "structure",
                            &location,
                            format!("does not match the FHIR R4 JSON Schema ({keyword})"),
                        );
                    }
                }
            }
        }
        // A rule shared by two profiles (IOP and the US Core profile it derives from) is reported once.
        let mut seen = HashSet::new();
        run.issues
            .retain(|i| seen.insert((i.expression.clone(), i.message.clone())));
        run.issues
    }
}

impl Run<'_, '_, '_> {
    fn issue(
        &mut self,
        severity: Severity,
        code: &'static str,
        expression: impl std::fmt::Display,
        message: String,
    ) {
        self.issues.push(Issue {
            severity,
            code,
            message,
            expression: expression.to_string(),
        });
    }

    /// A resource nested in the one being walked (`contained`, `Bundle.entry.resource`): walked
    /// as a resource of its own, so `#id` and `%resource` mean the nested one. `profiles`: those
    /// the element holding it names for it (`type.profile`); of several, it must meet one.
    fn nested(&mut self, resource: &Json, profiles: &[String], location: &Loc<'_>, depth: usize) {
        if profiles.len() <= 1 {
            let mut issues = self.nested_run(resource, profiles, location, depth);
            self.issues.append(&mut issues);
            return;
        }
        let mut first_failure = None;
        for profile in profiles {
            let issues = self.nested_run(resource, std::slice::from_ref(profile), location, depth);
            if !issues.iter().any(Issue::is_error) {
                self.issues.extend(issues);
                return;
            }
            first_failure.get_or_insert(issues);
        }
        self.met_none(profiles, first_failure, location);
    }

    /// Reports a value that meets none of the profiles its element allows, with what checking
    /// it against the first of them found.
    fn met_none(
        &mut self,
        profiles: &[String],
        first_failure: Option<Vec<Issue>>,
        location: &Loc<'_>,
    ) {
        self.issue(
            Severity::Error,
            "structure",
            location,
            format!(
                "meets none of the profiles this element allows ({}); what the first found:",
                profiles.join(", ")
            ),
        );
        self.issues.extend(first_failure.unwrap_or_default());
    }

    fn nested_run(
        &mut self,
        resource: &Json,
        required: &[String],
        location: &Loc<'_>,
        depth: usize,
    ) -> Vec<Issue> {
        let mut sub = Run {
            validator: self.validator,
            root: resource,
            outer: self.outer,
            container: Some(self.root),
            bundle: self.bundle,
            issues: Vec::new(),
            unavailable: std::mem::take(&mut self.unavailable),
            evaluated: FxHashSet::default(),
            walked: FxHashSet::default(),
            too_deep: false,
            needs_schema: false,
        };
        sub.resource(resource, required, depth, location);
        self.unavailable = sub.unavailable;
        self.needs_schema |= sub.needs_schema;
        sub.issues
    }

    fn resource(&mut self, resource: &Json, required: &[String], depth: usize, location: &Loc<'_>) {
        let Some(resource_type) = member(resource, "resourceType").and_then(Json::as_str) else {
            let problem = match member(resource, "resourceType") {
                None => "resourceType is missing",
                Some(_) => "resourceType is not a string",
            };
            // Located where the resource is (a contained one, a Bundle entry's), "" at the root.
            self.issue(
                Severity::Fatal,
                "structure",
                location,
                format!("not a FHIR resource: {problem}"),
            );
            return;
        };
        let location = *location;
        for finding in super::resource_rules::check(resource, location) {
            self.issue(
                finding.severity,
                finding.code,
                finding.expression,
                finding.message,
            );
        }
        let registry = self.validator.registry();
        if resource_type == "StructureDefinition" {
            for mistake in registry.differential_mistakes(resource) {
                self.issue(
                    Severity::Error,
                    "invalid",
                    location,
                    format!("Error generating the snapshot: {mistake}"),
                );
            }
        }
        let Some(base) = registry.type_definition(resource_type).cloned() else {
            // The built-in set holds all of R4; a registry built without it (tests, a bare
            // `Registry::default`) still checks R4 types by the JSON Schema.
            let known_r4 = super::schema::StructuralSchema::knows(resource_type);
            self.needs_schema |= known_r4;
            let (severity, message) = if known_r4 {
                (
                    Severity::Warning,
                    format!(
                        "the {resource_type} definition is not loaded: checked against the R4 JSON Schema only (load the R4 core package for full checks)"
                    ),
                )
            } else {
                (
                    Severity::Error,
                    format!("{resource_type} is not a FHIR R4 resource type"),
                )
            };
            self.issue(severity, "not-supported", location, message);
            return;
        };
        let mut definitions = vec![base];
        let mut required = required.to_vec();
        if self.validator.apply_iop
            && let Some(iop) = self.validator.iop.of_resource(resource)
            && !required.iter().any(|p| p == iop)
        {
            required.push(iop.to_owned());
        }
        // Profiles an ImplementationGuide loaded with the definitions declares for every
        // resource of the type (`ImplementationGuide.global`).
        for global in registry.global_profiles(resource_type) {
            if !required.contains(global) {
                required.push(global.clone());
            }
        }
        for profile in super::resource_rules::required_by_specification(resource) {
            if !required.contains(&profile) && registry.structure_definition(&profile).is_some() {
                required.push(profile);
            }
        }
        let declared: Vec<String> = super::at(resource, &["meta", "profile"])
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter_map(Json::as_str)
            .map(str::to_owned)
            .collect();
        for url in &declared {
            match registry.structure_definition(url) {
                Some(sd) => definitions.push(Arc::clone(sd)),
                // A required profile that is not loaded is reported (as an error) below.
                None if required.contains(url) => {}
                None => self.issue(
                    Severity::Warning,
                    "not-supported",
                    format!("{location}.meta.profile"),
                    format!(
                        "profile {url} is not loaded, so the resource was not checked against it"
                    ),
                ),
            }
        }
        for url in &required {
            match registry.structure_definition(url) {
                Some(sd)
                    if member(sd, "type").and_then(Json::as_str) == Some(resource_type)
                        && !declared.contains(url) =>
                {
                    definitions.push(Arc::clone(sd));
                }
                // Required profiles of other types apply to other resources (`validate --profile`).
                Some(_) => {}
                None => self.issue(
                    Severity::Error,
                    "not-supported",
                    location,
                    format!(
                        "the required profile {url} is not loaded, so the resource could not be checked against it"
                    ),
                ),
            }
        }
        // The base walk finds nothing more where a profile applied here holds all its rules
        // (a profile's snapshot usually does): it is left out, halving the work on a profiled
        // resource. A profile whose snapshot was generated with problems never stands in for it.
        let base_covered = definitions[1..].iter().any(|profile| {
            member(profile, "type").and_then(Json::as_str) == Some(resource_type)
                && self.validator.covers_base(profile, &definitions[0])
        });
        if base_covered {
            definitions.remove(0);
        }
        for definition in definitions {
            let url = member(&definition, "url")
                .and_then(Json::as_str)
                .unwrap_or("?");
            for problem in registry.snapshot_problems(url) {
                self.issue(
                    Severity::Warning,
                    "not-supported",
                    location,
                    format!(
                        "profile {url} has no snapshot; the one generated from its differential leaves out {problem}"
                    ),
                );
            }
            let compiled = self.validator.compiled(&definition);
            match compiled.root() {
                Some(root) => self.element(&compiled, root, resource, &location, None, depth),
                None => {
                    let url = member(&definition, "url")
                        .and_then(Json::as_str)
                        .unwrap_or("?");
                    self.issue(
                        Severity::Error,
                        "not-supported",
                        location,
                        format!(
                            "the definition {url} has no snapshot, so the resource could not be checked against it"
                        ),
                    );
                }
            }
        }
    }

    /// Checks one value of `element` (of `compiled`) at `location`.
    fn element(
        &mut self,
        compiled: &Compiled,
        element: &Element,
        value: &Json,
        location: &Loc<'_>,
        choice: Option<&str>,
        depth: usize,
    ) {
        if depth > MAX_DEPTH {
            // Not checked below here: say so (once per resource), never pass it silently.
            if !self.too_deep {
                self.too_deep = true;
                self.issue(
                    Severity::Error,
                    "too-costly",
                    location,
                    format!("nested too deeply: not checked below {MAX_DEPTH} levels"),
                );
            }
            return;
        }
        let type_code: Option<&str> =
            choice.or_else(|| element.types.first().map(|t| t.code.as_str()));
        if let Some(fixed) = &element.fixed
            && value != fixed
        {
            self.issue(
                Severity::Error,
                "value",
                location,
                format!("must be exactly the fixed value {fixed}"),
            );
        }
        if let Some(pattern) = &element.pattern
            && !pattern_matches(value, pattern)
        {
            self.issue(
                Severity::Error,
                "value",
                location,
                format!("must match the pattern {pattern}"),
            );
        }
        if let Some(limit) = &element.min_value {
            self.limit(value, limit, Bound::Min, location);
        }
        if let Some(limit) = &element.max_value {
            self.limit(value, limit, Bound::Max, location);
        }
        if element.binding.is_some() {
            self.binding(element, value, type_code, location);
        }
        self.constraints(element, value, type_code, location);
        if let Some(code) = type_code {
            if code == "Reference" {
                self.reference(element, value, location);
            }
            if is_primitive(code) {
                if let Some(problem) = primitive::check(code, value) {
                    self.issue(Severity::Error, "value", location, problem);
                }
                return;
            }
        }
        let Json::Object(map) = value else {
            if type_code.is_some() {
                self.issue(
                    Severity::Error,
                    "structure",
                    location,
                    "must be a JSON object".into(),
                );
            }
            return;
        };
        // Nested resources (contained, Bundle.entry.resource) are validated as resources.
        if type_code == Some("Resource") && depth > 0 {
            let required = self.nested_profiles(element, map, location);
            self.nested(value, &required, location, depth + 1);
            return;
        }
        if let Some(target) = &element.content_reference {
            // A recursive element (`Consent.provision.provision`) follows the base definition of
            // the element it repeats, not a profile's constraints on that element.
            let root_type = target.split('.').next().unwrap_or_default();
            if let Some(definition) = self
                .validator
                .registry()
                .type_definition(root_type)
                .cloned()
            {
                let base = self.validator.compiled(&definition);
                if let Some(index) = base.index_of(target) {
                    self.children(&base, index, map, location, depth + 1);
                }
            }
            return;
        }
        if compiled.has_children(element.index) {
            // An element a profile unfolds keeps the rules on its type itself (Period's per-1,
            // ContactPoint's cpt-2): a snapshot copies the type's elements, not always those.
            if !matches!(type_code, Some("BackboneElement" | "Element"))
                && let Some(type_compiled) = self.type_compiled(element, choice, type_code)
                && let Some(root) = type_compiled.root()
            {
                self.constraints(root, value, type_code, location);
            }
            self.children(compiled, element.index, map, location, depth);
        } else if let Some(type_compiled) = self.type_compiled(element, choice, type_code) {
            // The element's type is not unfolded here: its own definition says what it holds.
            if let Some(root) = type_compiled.root() {
                self.constraints(root, value, type_code, location);
                self.children(&type_compiled, root.index, map, location, depth + 1);
            }
        }
        // A type profile (an extension definition, a data type profile) applies as well: those
        // of the value's own type, where the element allows several; of several profiles for
        // one type, the value must meet one (ElementDefinition.type.profile).
        let value_type = in_map(map, "resourceType")
            .and_then(Json::as_str)
            .or(type_code);
        for element_type in element
            .types
            .iter()
            .filter(|t| element.types.len() == 1 || Some(t.code.as_str()) == value_type)
        {
            let code = element_type.code.as_str();
            match element_type.profiles.as_slice() {
                [] => continue,
                [only] => {
                    self.type_profile(code, only, map, location, depth);
                    continue;
                }
                _ => {}
            }
            // Only where there is a choice is the state kept to be undone (a copy per value).
            let (issues_before, evaluated_before, walked_before) = (
                self.issues.len(),
                self.evaluated.clone(),
                self.walked.clone(),
            );
            let mut first_failure = None;
            let mut met = false;
            for profile in &element_type.profiles {
                self.type_profile(code, profile, map, location, depth);
                if !self.issues[issues_before..].iter().any(Issue::is_error) {
                    met = true;
                    break;
                }
                // Undone, so that the next profile is tried afresh (its invariants included).
                let failed: Vec<Issue> = self.issues.drain(issues_before..).collect();
                first_failure.get_or_insert(failed);
                self.evaluated = evaluated_before.clone();
                self.walked = walked_before.clone();
            }
            if !met {
                self.met_none(&element_type.profiles, first_failure, location);
            }
        }
    }

    /// Checks a value against one profile of its type (`type.profile`).
    fn type_profile(
        &mut self,
        type_code: &str,
        profile: &str,
        map: &serde_json::Map<String, Json>,
        location: &Loc<'_>,
        depth: usize,
    ) {
        match self
            .validator
            .registry()
            .structure_definition(profile)
            .cloned()
        {
            Some(definition) => {
                let profile_compiled = self.validator.compiled(&definition);
                if profile_compiled.has_children(0) {
                    self.children(&profile_compiled, 0, map, location, depth + 1);
                }
            }
            // Extensions not loaded have their own policy (`extension` below); any other
            // profile the element requires is a check that could not be made: never a
            // silent pass.
            None if type_code != "Extension" => self.issue(
                Severity::Error,
                "not-supported",
                location,
                format!(
                    "the profile {profile} that this element requires is not loaded, so the value could not be checked against it"
                ),
            ),
            None => {}
        }
    }

    /// The profiles a nested resource must meet: those its element names for any resource or for
    /// the resource's own type, leaving out loaded profiles of other types (a choice among
    /// resource types); where only such remain, the resource fits none of them, said here. One not
    /// loaded is kept, so that the resource's walk reports it as not checked.
    fn nested_profiles(
        &mut self,
        element: &Element,
        resource: &serde_json::Map<String, Json>,
        location: &Loc<'_>,
    ) -> Vec<String> {
        let own_type = in_map(resource, "resourceType")
            .and_then(Json::as_str)
            .unwrap_or_default();
        let (mut candidates, mut other_types) = (Vec::new(), Vec::new());
        for element_type in &element.types {
            let code = element_type.code.as_str();
            if !matches!(code, "Resource" | "DomainResource") && code != own_type {
                continue;
            }
            for profile in &element_type.profiles {
                let profile_type = self
                    .validator
                    .registry()
                    .structure_definition(profile)
                    .and_then(|sd| member(sd, "type").and_then(Json::as_str));
                match profile_type {
                    Some(t) if t != own_type && !matches!(t, "Resource" | "DomainResource") => {
                        other_types.push(profile.as_str())
                    }
                    _ => candidates.push(profile.clone()),
                }
            }
        }
        if candidates.is_empty() && !other_types.is_empty() {
            self.issue(
                Severity::Error,
                "structure",
                location,
                format!(
                    "a {own_type} is here, but this element allows only the profiles {}, which are for other resource types",
                    other_types.join(", ")
                ),
            );
        }
        candidates
    }

    /// The compiled definition of the value's type, looked up once and kept on the element (the
    /// walk's hottest lookup), or for a choice value on the element's entry for that type.
    fn type_compiled(
        &self,
        element: &Element,
        choice: Option<&str>,
        type_code: Option<&str>,
    ) -> Option<Arc<Compiled>> {
        let lookup = |code: &str| {
            self.validator
                .registry()
                .type_definition(code)
                .map(|d| self.validator.compiled(d))
        };
        match choice {
            // A choice value's type is looked up once per type of the element, too.
            Some(code) => match element.types.iter().find(|t| t.code == code) {
                Some(choice_type) => choice_type
                    .compiled
                    .get_or_init(|| lookup(code).map(|c| Arc::downgrade(&c)))
                    .as_ref()
                    .and_then(std::sync::Weak::upgrade),
                None => lookup(code),
            },
            None => element
                .type_compiled
                .get_or_init(|| type_code.and_then(lookup).map(|c| Arc::downgrade(&c)))
                .as_ref()
                .and_then(std::sync::Weak::upgrade),
        }
    }

    fn children(
        &mut self,
        compiled: &Compiled,
        parent: usize,
        map: &serde_json::Map<String, Json>,
        location: &Loc<'_>,
        depth: usize,
    ) {
        let key = (
            std::ptr::from_ref(compiled) as usize,
            parent,
            std::ptr::from_ref(map) as usize,
        );
        if !self.walked.insert(key) {
            return;
        }
        // One pass over the JSON properties: each goes to the element that defines it.
        // Objects are small: their members, and the elements to visit, fit on the stack.
        let mut assigned: SmallVec<[Assigned<'_>; 16]> = SmallVec::new();
        for (key, v) in map {
            // (`fhir_comments`, from DSTU2's JSON, is not R4: reported as unknown below.) Only
            // a resource's own object names its type; `resource` checked it.
            if key == "resourceType" && parent == 0 && compiled.is_resource {
                continue;
            }
            // `_birthDate` carries the id and extensions of the primitive `birthDate`.
            let (name, primitive_extension) = match key.strip_prefix('_') {
                Some(name) => (name, true),
                None => (key.as_str(), false),
            };
            if let Some(child) = compiled.child_named(parent, name) {
                if primitive_extension {
                    self.primitive_extensions(child, key, v, location, depth);
                } else {
                    assigned.push((child.index, key, None, v));
                }
                continue;
            }
            let mut known = false;
            for child in compiled.choice_children(parent) {
                let base = child.base_name();
                let Some(suffix) = name.strip_prefix(base) else {
                    continue;
                };
                if !suffix.starts_with(|c: char| c.is_ascii_uppercase()) {
                    continue;
                }
                known = true;
                if primitive_extension {
                    self.primitive_extensions(child, key, v, location, depth);
                    break;
                }
                match child
                    .types
                    .iter()
                    .find(|t| choice_suffix_matches(suffix, &t.code))
                {
                    Some(t) => assigned.push((child.index, key, Some(t.code.as_str()), v)),
                    None => self.issue(
                        Severity::Error,
                        "structure",
                        format!("{location}.{key}"),
                        format!("{suffix} is not an allowed type for {base}[x]"),
                    ),
                }
                break;
            }
            if !known {
                self.issue(
                    Severity::Error,
                    "structure",
                    format!("{location}.{key}"),
                    format!("unknown element `{key}`"),
                );
            }
        }
        // Visit the elements that have values, and those that must have some (to report their
        // absence); the rest of a definition's children cost nothing.
        assigned.sort_by_key(|a| a.0);
        let mut visit: SmallVec<[usize; 16]> = assigned.iter().map(|a| a.0).collect();
        visit.extend_from_slice(compiled.required_children(parent));
        visit.sort_unstable();
        visit.dedup();
        let mut items: SmallVec<[(Loc<'_>, Option<&str>, &Json); 8]> = SmallVec::new();
        for child_index in visit {
            let child = &compiled.elements[child_index];
            let first = assigned.partition_point(|a| a.0 < child_index);
            let last = assigned.partition_point(|a| a.0 <= child_index);
            items.clear();
            for &(_, key, choice, v) in &assigned[first..last] {
                match v {
                    Json::Array(list) => {
                        if !child.repeats {
                            self.issue(
                                Severity::Error,
                                "structure",
                                Loc::child(location, key),
                                "must be a single value, not an array".into(),
                            );
                        }
                        items.extend(
                            list.iter()
                                .enumerate()
                                .map(|(i, item)| (Loc::item(location, key, i), choice, item)),
                        );
                    }
                    other => {
                        if child.repeats {
                            self.issue(
                                Severity::Error,
                                "structure",
                                Loc::child(location, key),
                                "must be an array".into(),
                            );
                        }
                        items.push((Loc::child(location, key), choice, other));
                    }
                }
            }
            let at = Loc::child(location, child.base_name());
            if items.len() < child.min {
                self.issue(
                    Severity::Error,
                    "required",
                    at,
                    format!(
                        "needs at least {} value(s), found {}",
                        child.min,
                        items.len()
                    ),
                );
            }
            if let Some(max) = child.max
                && items.len() > max
            {
                self.issue(
                    Severity::Error,
                    "structure",
                    at,
                    format!("allows at most {max} value(s), found {}", items.len()),
                );
            }
            if compiled.has_slices(child.index) && !child.discriminators.is_empty() {
                self.slicing(compiled, child, &items, &at, depth);
            }
            for (item_location, choice, item) in &items {
                self.element(compiled, child, item, item_location, *choice, depth + 1);
                if matches!(child.name.as_str(), "extension" | "modifierExtension") {
                    let host = Host {
                        element: &compiled.elements[parent],
                        object: map,
                        location,
                    };
                    self.extension(item, item_location, &host, depth);
                }
            }
        }
    }

    /// Assigns the values of a sliced element to its slices, checks each slice's cardinality and
    /// rules, and validates each value against the slice it belongs to.
    fn slicing(
        &mut self,
        compiled: &Compiled,
        child: &Element,
        items: &[(Loc<'_>, Option<&str>, &Json)],
        at: &Loc<'_>,
        depth: usize,
    ) {
        // For each value, the position of the first slice it belongs to.
        let mut in_slice: Vec<Option<usize>> = vec![None; items.len()];
        for (position, slice) in compiled.slices(child.index).enumerate() {
            let mut count = 0;
            for (i, (item_location, choice, item)) in items.iter().enumerate() {
                if self.in_slice(compiled, child, slice, item, *choice, depth) {
                    count += 1;
                    in_slice[i].get_or_insert(position);
                    self.element(compiled, slice, item, item_location, *choice, depth + 1);
                }
            }
            let name = slice.slice_name.as_deref().unwrap_or_default();
            if count < slice.min {
                self.issue(
                    Severity::Error,
                    "required",
                    at,
                    format!(
                        "slice {name} needs at least {} value(s), found {count}",
                        slice.min
                    ),
                );
            }
            if let Some(max) = slice.max
                && count > max
            {
                self.issue(
                    Severity::Error,
                    "structure",
                    at,
                    format!("slice {name} allows at most {max} value(s), found {count}"),
                );
            }
        }
        if child.ordered || child.open_at_end {
            self.slice_order(child, items, &in_slice);
        }
        if child.closed {
            for ((item_location, _, _), matched) in items.iter().zip(&in_slice) {
                if matched.is_none() {
                    self.issue(
                        Severity::Error,
                        "structure",
                        item_location,
                        "matches none of the slices of a closed slicing".into(),
                    );
                }
            }
        }
    }

    /// Ordered slicing: values follow the order of the slices; with `openAtEnd`, values in no
    /// slice come after every sliced value.
    fn slice_order(
        &mut self,
        sliced: &Element,
        items: &[(Loc<'_>, Option<&str>, &Json)],
        in_slice: &[Option<usize>],
    ) {
        let mut highest: Option<usize> = None;
        let mut unsliced_seen = false;
        for ((item_location, _, _), slice) in items.iter().zip(in_slice) {
            match slice {
                Some(position) => {
                    if sliced.ordered && highest.is_some_and(|h| *position < h) {
                        self.issue(
                            Severity::Error,
                            "structure",
                            item_location,
                            "is out of order: the slicing is ordered, and this value belongs to an earlier slice than the one before it".into(),
                        );
                    }
                    if sliced.open_at_end && unsliced_seen {
                        self.issue(
                            Severity::Error,
                            "structure",
                            item_location,
                            "is out of order: values that match no slice must come last (openAtEnd)".into(),
                        );
                    }
                    highest = Some(highest.map_or(*position, |h| h.max(*position)));
                }
                None => unsliced_seen = true,
            }
        }
    }

    /// Does `item` (of type `choice`, for a `[x]` element) belong to `slice` of `sliced`?
    fn in_slice(
        &self,
        compiled: &Compiled,
        sliced: &Element,
        slice: &Element,
        item: &Json,
        choice: Option<&str>,
        depth: usize,
    ) -> bool {
        sliced.discriminators.iter().all(|d| {
            let path = d.path.trim_start_matches("$this.");
            let sub_id = if path == "$this" {
                slice.id.clone()
            } else {
                format!("{}.{}", slice.id, path.trim_end_matches(".resolve()"))
            };
            let sub = compiled.get(&sub_id).unwrap_or(slice);
            match d.kind.as_str() {
                "value" | "pattern" => {
                    let actual = navigate(item, path);
                    // An extension slice is told by its url: the profile its type names.
                    let url_of_profile;
                    let expected = match sub.fixed.as_ref().or(sub.pattern.as_ref()) {
                        Some(expected) => Some(expected),
                        None if path == "url" => {
                            url_of_profile = slice
                                .types
                                .first()
                                .and_then(|t| t.profiles.first())
                                .map(|p| Json::String(p.clone()));
                            url_of_profile.as_ref()
                        }
                        None => None,
                    };
                    match expected {
                        Some(expected) => actual.iter().any(|a| pattern_matches(a, expected)),
                        // A slice that leaves one of several discriminators unconstrained is
                        // told apart by the others (type and subtype slicing).
                        None => sliced.discriminators.len() > 1,
                    }
                }
                "exists" => {
                    let actual = navigate(item, path);
                    match sub {
                        s if s.max == Some(0) => actual.is_empty(),
                        s if s.min > 0 => !actual.is_empty(),
                        _ => true,
                    }
                }
                "type" => {
                    let allowed: Vec<&str> = sub.types.iter().map(|t| t.code.as_str()).collect();
                    self.types_at(item, path, choice)
                        .iter()
                        .any(|t| allowed.contains(&t.as_str()))
                }
                "profile" => {
                    let targets = self.nodes_at(item, path);
                    // A profile that is not loaded cannot decide: the value's type does, as the
                    // reference validator does.
                    let registry = self.validator.registry();
                    sub.types.iter().any(|t| {
                        let profiles = if path.ends_with("resolve()") {
                            &t.target_profiles
                        } else {
                            &t.profiles
                        };
                        targets.iter().any(|node| {
                            profiles
                                .iter()
                                .any(|p| match registry.structure_definition(p) {
                                    Some(_) => self.conforms(node, p, depth),
                                    None => {
                                        member(node, "resourceType").and_then(Json::as_str)
                                            == Some(t.code.as_str())
                                    }
                                })
                        })
                    })
                }
                _ => false,
            }
        })
    }

    /// The values at a discriminator path, following `resolve()` into the Bundle or `contained`.
    fn nodes_at<'j>(&'j self, item: &'j Json, path: &str) -> Vec<&'j Json> {
        match path
            .strip_suffix(".resolve()")
            .or_else(|| path.strip_suffix("resolve()"))
        {
            Some(reference_path) => navigate(item, reference_path.trim_end_matches('.'))
                .into_iter()
                .filter_map(|r| member(r, "reference").and_then(Json::as_str))
                .filter_map(|r| self.resolve(r))
                .collect(),
            None => navigate(item, path),
        }
    }

    /// The type names of the values at a discriminator path: the `[x]` suffix, the resource
    /// type of a resolved reference or a nested resource.
    fn types_at(&self, item: &Json, path: &str, choice: Option<&str>) -> Vec<String> {
        if path == "$this" {
            if let Some(code) = choice {
                return vec![code.to_owned()];
            }
            return member(item, "resourceType")
                .and_then(Json::as_str)
                .map(|t| vec![t.to_owned()])
                .unwrap_or_default();
        }
        if path.ends_with("resolve()") {
            return self
                .nodes_at(item, path)
                .iter()
                .filter_map(|r| member(r, "resourceType").and_then(Json::as_str))
                .map(str::to_owned)
                .collect();
        }
        // A nested resource (`entry.resource`) is of its resourceType.
        let resources: Vec<String> = navigate(item, path)
            .into_iter()
            .filter_map(|n| member(n, "resourceType").and_then(Json::as_str))
            .map(str::to_owned)
            .collect();
        if !resources.is_empty() {
            return resources;
        }
        // `value` of a `value[x]`: the suffix of the property that carries it.
        let (parent_path, last) = match path.rsplit_once('.') {
            Some((parent, last)) => (parent, last),
            None => ("$this", path),
        };
        navigate(item, parent_path)
            .into_iter()
            .filter_map(Json::as_object)
            .flat_map(|map| map.keys())
            .filter_map(|key| key.strip_prefix(last))
            .filter(|suffix| suffix.starts_with(|c: char| c.is_ascii_uppercase()))
            .map(|suffix| {
                let mut code = suffix.to_owned();
                if primitive_type_name(suffix) {
                    code[..1].make_ascii_lowercase();
                }
                code
            })
            .collect()
    }

    /// A reference resolved in the current resource's `contained` or the Bundle.
    fn resolve(&self, reference: &str) -> Option<&Json> {
        if let Some(local) = reference.strip_prefix('#') {
            return self.contained(local);
        }
        self.bundle.and_then(|b| b.resolve(reference))
    }

    /// The contained resource `#id` names: one of this resource's, or (for a contained
    /// resource) one of its container's.
    fn contained(&self, id: &str) -> Option<&Json> {
        [Some(self.root), self.container]
            .into_iter()
            .flatten()
            .filter_map(|r| member(r, "contained").and_then(Json::as_array))
            .flatten()
            .find(|r| member(r, "id").and_then(Json::as_str) == Some(id))
    }

    /// Does `node` conform to the profile `url` (no errors against it)? Unloaded profiles do not.
    fn conforms(&self, node: &Json, url: &str, depth: usize) -> bool {
        let Some(definition) = self.validator.registry().structure_definition(url).cloned() else {
            return false;
        };
        let compiled = self.validator.compiled(&definition);
        let Some(root) = compiled.root() else {
            return false;
        };
        let mut sub = Run {
            validator: self.validator,
            outer: self.outer,
            container: self.container,
            root: if member(node, "resourceType").is_some() {
                node
            } else {
                self.root
            },
            bundle: self.bundle,
            issues: Vec::new(),
            unavailable: FxHashSet::default(),
            evaluated: FxHashSet::default(),
            walked: FxHashSet::default(),
            too_deep: false,
            needs_schema: false,
        };
        let name = root.id.clone();
        sub.element(&compiled, root, node, &Loc::root(&name), None, depth + 1);
        !sub.issues.iter().any(Issue::is_error)
    }

    /// The extensions of a primitive (`_birthDate`, `_given[1]`): each checked as an extension
    /// on the primitive element (its definition, its context).
    fn primitive_extensions(
        &mut self,
        element: &Element,
        key: &str,
        value: &Json,
        location: &Loc<'_>,
        depth: usize,
    ) {
        let name = &key[1..];
        // `_x` holds what a primitive has besides its value: an `id` and `extension`s (in an
        // array where `x` repeats, null where an item has none), walked here as any element's
        // id and extensions are, with the primitive as the extensions' context.
        let check = |run: &mut Self, object: &Json, at: &Loc<'_>, in_array: bool| {
            let Json::Object(map) = object else {
                if !(in_array && object.is_null()) {
                    run.issue(
                        Severity::Error,
                        "structure",
                        at,
                        format!("must be a JSON object (the id and extensions of `{name}`)"),
                    );
                }
                return;
            };
            let host = Host {
                element,
                object: map,
                location: at,
            };
            for (member, value) in map {
                match (member.as_str(), value) {
                    ("id", Json::String(_)) => {}
                    ("id", _) => run.issue(
                        Severity::Error,
                        "structure",
                        Loc::child(at, "id"),
                        "must be a string".into(),
                    ),
                    ("extension", Json::Array(items)) => {
                        for (i, item) in items.iter().enumerate() {
                            let item_location = Loc::item(at, "extension", i);
                            run.as_type("Extension", item, &item_location, depth + 1);
                            run.extension(item, &item_location, &host, depth + 1);
                        }
                    }
                    ("extension", _) => run.issue(
                        Severity::Error,
                        "structure",
                        Loc::child(at, "extension"),
                        "must be an array".into(),
                    ),
                    (other, _) => run.issue(
                        Severity::Error,
                        "structure",
                        Loc::child(at, other),
                        format!("unknown element `{other}` (a primitive's `_{name}` holds only `id` and `extension`)"),
                    ),
                }
            }
        };
        match value {
            Json::Array(items) => {
                if !element.repeats {
                    self.issue(
                        Severity::Error,
                        "structure",
                        Loc::child(location, name),
                        format!("`{key}` must be a single object, not an array"),
                    );
                }
                for (i, object) in items.iter().enumerate() {
                    check(self, object, &Loc::item(location, name, i), true);
                }
            }
            object => {
                if element.repeats {
                    self.issue(
                        Severity::Error,
                        "structure",
                        Loc::child(location, name),
                        format!("`{key}` must be an array"),
                    );
                }
                check(self, object, &Loc::child(location, name), false)
            }
        }
    }

    /// Walks `value` as a value of the data type `code` (its base definition's rules and elements).
    fn as_type(&mut self, code: &str, value: &Json, location: &Loc<'_>, depth: usize) {
        let Some(definition) = self.validator.registry().type_definition(code).cloned() else {
            return;
        };
        let compiled = self.validator.compiled(&definition);
        let Some(root) = compiled.root() else {
            return;
        };
        self.constraints(root, value, Some(code), location);
        match value {
            Json::Object(map) => self.children(&compiled, root.index, map, location, depth + 1),
            _ => self.issue(
                Severity::Error,
                "structure",
                location,
                "must be a JSON object".into(),
            ),
        }
    }

    fn extension(&mut self, item: &Json, location: &Loc<'_>, host: &Host<'_>, depth: usize) {
        let Some(url) = member(item, "url").and_then(Json::as_str) else {
            return;
        };
        // A complex extension's parts have relative urls (`trigger`): its definition's slices
        // check them.
        if !url.contains(':') && host.element.id.starts_with("Extension") {
            return;
        }
        match self.validator.registry().structure_definition(url).cloned() {
            Some(definition) => {
                let compiled = self.validator.compiled(&definition);
                if !compiled.contexts.is_empty()
                    && !compiled.contexts.iter().any(|c| host.allows(c))
                {
                    let allowed: Vec<&str> = compiled
                        .contexts
                        .iter()
                        .map(|c| c.expression.as_str())
                        .collect();
                    self.issue(
                        Severity::Error,
                        "structure",
                        location,
                        format!(
                            "extension {url} is not allowed here: its definition allows it on {}",
                            allowed.join(", ")
                        ),
                    );
                }
                if let (Some(root), Json::Object(map)) = (compiled.root(), item) {
                    self.constraints(root, item, None, location);
                    self.children(&compiled, 0, map, location, depth + 1);
                }
            }
            // HL7's own (the extensions pack, other FHIR versions' core extensions): the
            // reference validator loads those itself; here they are not checked, and say so.
            None if is_hl7_core_extension(url) => self.issue(
                Severity::Warning,
                "extension",
                location,
                format!("extension {url} is not checked: its definition is not loaded (HL7's extensions beyond R4 core need their package, e.g. hl7.fhir.uv.extensions, loaded with --package)"),
            ),
            // A profile that names it vouches for it; otherwise, as the HL7 reference validator
            // does, an extension nobody defines is not allowed.
            None if self.validator.registry().names_extension(url) => self.issue(
                Severity::Warning,
                "extension",
                location,
                format!("extension {url} is named by a profile but its definition is not loaded"),
            ),
            None => self.issue(
                Severity::Error,
                "extension",
                location,
                format!(
                    "the extension {url} could not be found so is not allowed here (its definition is not loaded)"
                ),
            ),
        }
    }

    fn limit(&mut self, value: &Json, limit: &Json, bound: Bound, location: &Loc<'_>) {
        match limits::check(value, limit, bound) {
            Ok(None) => {}
            Ok(Some(message)) => self.issue(Severity::Error, "value", location, message),
            Err(Incomparable(why)) => self.issue(
                Severity::Warning,
                "not-supported",
                location,
                format!("the value could not be held to its minValue/maxValue: {why}"),
            ),
        }
    }

    fn binding(
        &mut self,
        element: &Element,
        value: &Json,
        type_code: Option<&str>,
        location: &Loc<'_>,
    ) {
        let Some((strength, value_set)) = &element.binding else {
            return;
        };
        if strength != "required" && strength != "extensible" {
            return;
        }
        let single_type = element.types.len() == 1;
        let codings: Vec<(Option<&str>, &str)> = match type_code {
            Some("code") | Some("string") | Some("uri") => {
                value.as_str().map(|c| vec![(None, c)]).unwrap_or_default()
            }
            Some("Coding") => coding(value).into_iter().collect(),
            // A Quantity's unit code (`code` in `system`) is what a binding on it constrains.
            // (Only where the element is a Quantity alone: the reference validator leaves a
            // binding on a many-typed `value[x]` to its coded types.)
            Some("Quantity" | "Age" | "Duration" | "Distance" | "Count" | "SimpleQuantity")
                if single_type =>
            {
                coding(value).into_iter().collect()
            }
            Some("CodeableConcept") => member(value, "coding")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
                .filter_map(coding)
                .collect(),
            _ => return,
        };
        if codings.is_empty() {
            return;
        }
        // Kept on the element: the registry's cache is keyed by URL behind a lock.
        let expansion = element
            .expansion
            .get_or_init(|| self.validator.registry().expand(value_set));
        // Not loaded: the base's required binding, which this one narrows, is checked instead
        // (besides saying this one was not).
        let (strength, value_set, expansion) = match (
            expansion.as_ref(),
            element.base_binding.get(),
        ) {
            (Expansion::Unavailable(reason), Some((base_strength, base_set))) => {
                if self.unavailable.insert(value_set.to_owned()) {
                    self.issue(
                        Severity::Information,
                        "informational",
                        location,
                        format!("binding to {value_set} not checked: {reason}; checked against {base_set}, which it narrows"),
                    );
                }
                (
                    base_strength,
                    base_set,
                    self.validator.registry().expand(base_set),
                )
            }
            _ => (strength, value_set, Arc::clone(expansion)),
        };
        match expansion.as_ref() {
            Expansion::Codes(codes) => {
                let found = codings
                    .iter()
                    .any(|(system, code)| codes.contains(*system, code));
                if !found {
                    let shown: Vec<String> = codings
                        .iter()
                        .map(|(s, c)| format!("{}#{c}", s.unwrap_or("")))
                        .collect();
                    let (severity, verb) = if strength == "required" {
                        (Severity::Error, "must")
                    } else {
                        (Severity::Warning, "should")
                    };
                    // The base and a profile often bind the same element to the same value set
                    // (one with `|4.0.1`, one without): one finding per element is enough.
                    let at = location.to_string();
                    if self.issues.iter().any(|i| {
                        i.code == "code-invalid" && i.severity == severity && i.expression == at
                    }) {
                        return;
                    }
                    self.issue(
                        severity,
                        "code-invalid",
                        location,
                        format!(
                            "{} is not in ValueSet {value_set}; the code {verb} come from it",
                            shown.join(", ")
                        ),
                    );
                }
            }
            Expansion::Unavailable(reason) => {
                if strength == "required" && self.unavailable.insert(value_set.to_owned()) {
                    self.issue(
                        Severity::Information,
                        "informational",
                        location,
                        format!("binding to {value_set} not checked: {reason}"),
                    );
                }
            }
        }
    }

    fn constraints(
        &mut self,
        element: &Element,
        value: &Json,
        type_code: Option<&str>,
        location: &Loc<'_>,
    ) {
        for constraint in &element.constraints {
            let holds = match &constraint.check {
                Check::HasValueOrChildren => match value {
                    Json::Object(map) => map.keys().any(|k| k != "id"),
                    Json::Array(items) => !items.is_empty(),
                    Json::Null => false,
                    _ => true,
                },
                Check::ExtensionOrValue => {
                    let has_extension = member(value, "extension")
                        .is_some_and(|e| e.as_array().is_none_or(|a| !a.is_empty()));
                    let has_value = value
                        .as_object()
                        .is_some_and(|m| m.keys().any(|k| k.starts_with("value")));
                    has_extension != has_value
                }
                Check::CoveredByWalk => continue,
                Check::Unparsed => {
                    if constraint.error && self.unavailable.insert(constraint.key.clone()) {
                        self.issue(
                            Severity::Information,
                            "informational",
                            location,
                            format!(
                                "invariant {} not checked: its expression is missing or not understood",
                                constraint.key
                            ),
                        );
                    }
                    continue;
                }
                Check::NarrativeText => value.as_str().is_none_or(primitive::narrative_has_text),
                Check::Presence(presence) => presence.holds(value),
                Check::NonNegative(name, _)
                    if let Some(holds) = member(value, name)
                        .map_or(Some(true), |m| m.as_f64().map(|n| n >= 0.0)) =>
                {
                    holds
                }
                Check::FhirPath(_)
                    if constraint
                        .shortcut
                        .as_ref()
                        .is_some_and(|(reads, _)| !reads_any(value, reads)) =>
                {
                    constraint
                        .shortcut
                        .as_ref()
                        .is_some_and(|(_, holds)| *holds)
                }
                Check::FhirPath(_) | Check::NonNegative(..)
                    if !self
                        .evaluated
                        .insert((value as *const Json as usize, constraint.identity)) =>
                {
                    continue;
                }
                Check::FhirPath(expression) | Check::NonNegative(_, expression) => {
                    let mut env = Environment::new(self.root)
                        .with_context(value)
                        .with_root_resource(self.outer);
                    if let Some(code) = type_code {
                        env = env.with_focus_type(code);
                    }
                    match fhirpath::evaluate_on(expression, &env, value) {
                        Ok(result) => super::element::invariant_holds(&result),
                        Err(err) => {
                            if constraint.error && self.unavailable.insert(constraint.key.clone()) {
                                self.issue(
                                    Severity::Information,
                                    "informational",
                                    location,
                                    format!("invariant {} not checked: {err}", constraint.key),
                                );
                            }
                            continue;
                        }
                    }
                }
            };
            if !holds {
                let severity = if constraint.error {
                    Severity::Error
                } else {
                    Severity::Warning
                };
                self.issue(
                    severity,
                    "invariant",
                    location,
                    format!("{}: {}", constraint.key, constraint.human),
                );
            }
        }
    }

    fn malformed_reference(&mut self, location: &Loc<'_>) {
        let message = "a reference is Type/id, an absolute URL, #id or urn:uuid".to_owned();
        self.issue(
            Severity::Error,
            "value",
            format!("{location}.reference"),
            message,
        );
    }

    fn reference(&mut self, element: &Element, value: &Json, location: &Loc<'_>) {
        let Some(reference) = member(value, "reference").and_then(Json::as_str) else {
            return;
        };
        if let Some(local) = reference.strip_prefix('#') {
            let found = self.contained(local).is_some();
            if !found && !local.is_empty() {
                self.issue(
                    Severity::Error,
                    "not-found",
                    format!("{location}.reference"),
                    format!("no contained resource with id {local}"),
                );
            }
            return;
        }
        let resolved = self.bundle.and_then(|b| b.resolve(reference));
        if reference.starts_with("urn:uuid:") || reference.starts_with("urn:oid:") {
            match (self.bundle, resolved) {
                // A transaction cannot be carried out with a dangling `urn:uuid:`; in other
                // Bundles the target may simply not be included (a warning, as the reference
                // validator gives).
                (Some(bundle), None) => self.issue(
                    if bundle.is_processed() {
                        Severity::Error
                    } else {
                        Severity::Warning
                    },
                    "not-found",
                    format!("{location}.reference"),
                    format!("no entry of the Bundle has fullUrl {reference}"),
                ),
                (_, Some(target)) => {
                    let kind = member(target, "resourceType")
                        .and_then(Json::as_str)
                        .unwrap_or_default();
                    self.target_type(element, kind, location);
                }
                (None, None) => {}
            }
            return;
        }
        let parts: Vec<&str> = reference
            .trim_end_matches('/')
            .rsplit('/')
            .take(4)
            .collect();
        let (id, kind) = match parts.as_slice() {
            [id, kind, ..] => (*id, *kind),
            _ => {
                self.malformed_reference(location);
                return;
            }
        };
        let (id, kind) = if kind == "_history" {
            (
                parts.get(2).copied().unwrap_or(id),
                parts.get(3).copied().unwrap_or(kind),
            )
        } else {
            (id, kind)
        };
        if primitive::check("id", &Json::String(id.to_owned())).is_some()
            || !kind.starts_with(|c: char| c.is_ascii_uppercase())
        {
            // An absolute URL need not end in Type/id (an endpoint's address, another
            // server's scheme): it cannot be resolved or type-checked here, but it is a reference.
            if !reference.contains("://") {
                self.malformed_reference(location);
            }
            return;
        }
        // An entry of the Bundle answers for what it really is; otherwise the URL's type segment.
        let kind = resolved
            .and_then(|r| member(r, "resourceType"))
            .and_then(Json::as_str)
            .unwrap_or(kind);
        self.target_type(element, kind, location);
    }

    /// Is `kind` one of the types the element's `targetProfile`s allow?
    fn target_type(&mut self, element: &Element, kind: &str, location: &Loc<'_>) {
        let targets = self.validator.targets(element);
        if !targets.is_empty() && !targets.iter().any(|t| t == kind || t == "Resource") {
            self.issue(
                Severity::Error,
                "value",
                format!("{location}.reference"),
                format!("must refer to {}, not {kind}", targets.join(" or ")),
            );
        }
    }
}

/// Does `value` have any of the properties `names` (or a `[x]` choice of one)?
fn reads_any(value: &Json, names: &[String]) -> bool {
    let Json::Object(map) = value else {
        return false;
    };
    map.keys().any(|key| {
        names.iter().any(|name| {
            key.strip_prefix(name.as_str()).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with(|c: char| c.is_ascii_uppercase())
            })
        })
    })
}

/// Is a `[x]` suffix the name of a FHIR primitive type (`valueString` → `string`)?
fn primitive_type_name(suffix: &str) -> bool {
    matches!(
        suffix,
        "Base64Binary"
            | "Boolean"
            | "Canonical"
            | "Code"
            | "Date"
            | "DateTime"
            | "Decimal"
            | "Id"
            | "Instant"
            | "Integer"
            | "Markdown"
            | "Oid"
            | "PositiveInt"
            | "String"
            | "Time"
            | "UnsignedInt"
            | "Uri"
            | "Url"
            | "Uuid"
    )
}

fn coding(value: &Json) -> Option<(Option<&str>, &str)> {
    Some((
        member(value, "system").and_then(Json::as_str),
        member(value, "code").and_then(Json::as_str)?,
    ))
}

/// An extension of FHIR itself rather than of an implementation guide: the core namespace
/// (`http://hl7.org/fhir/StructureDefinition/`), another version's (`.../fhir/5.0/...`) or the
/// test namespace — where the extensions pack and cross-version extensions live.
fn is_hl7_core_extension(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://hl7.org/fhir/") else {
        return false;
    };
    let first = rest.split('/').next().unwrap_or_default();
    first == "StructureDefinition"
        || first == "test"
        || first
            .split('.')
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The element an extension sits on, for checking the extension's context.
struct Host<'a> {
    element: &'a Element,
    object: &'a serde_json::Map<String, Json>,
    location: &'a Loc<'a>,
}

impl Host<'_> {
    fn allows(&self, context: &Context) -> bool {
        match context.kind.as_str() {
            "element" => {
                let wanted = context.expression.as_str();
                // The element's path in its definition, without slice names (`CarePlan.activity`,
                // or `HumanName` inside a data type).
                let path = self
                    .element
                    .id
                    .split('.')
                    .map(|step| step.split(':').next().unwrap_or(step));
                let is_resource =
                    self.element.index == 0 && in_map(self.object, "resourceType").is_some();
                // `Address.line` on `Patient.address.line`, where a profile unfolded the data
                // type into the resource (the type of `address` itself is not at hand here).
                // (Compared step by step from the end: the path joined would end with `.{rest}`.)
                let in_unfolded_type = || {
                    wanted.split_once('.').is_some_and(|(kind, rest)| {
                        let mut steps = path.clone().rev();
                        kind.starts_with(|c: char| c.is_ascii_uppercase())
                            && rest.rsplit('.').all(|part| steps.next() == Some(part))
                            && steps.next().is_some()
                    })
                };
                matches!(wanted, "Element" | "Base")
                    || (is_resource && matches!(wanted, "Resource" | "DomainResource"))
                    || path.clone().eq(wanted.split('.'))
                    || self.element.types.iter().any(|t| t.code == wanted)
                    || self.location.is_path(wanted)
                    || in_unfolded_type()
            }
            "extension" => {
                in_map(self.object, "url").and_then(Json::as_str)
                    == Some(context.expression.as_str())
            }
            // FHIRPath contexts are rare; they are not evaluated (accepted).
            _ => true,
        }
    }
}

/// A member of an object, assigned to the element that defines it: (element index, member
/// name, the type its choice suffix names, value).
type Assigned<'a> = (usize, &'a str, Option<&'a str>, &'a Json);

/// Where in the resource: a chain of segments borrowed from the walk's stack and the JSON,
/// rendered as FHIRPath (`CarePlan.activity[0].detail.status`) only when an issue needs it.
#[derive(Clone, Copy)]
pub(super) struct Loc<'a> {
    parent: Option<&'a Loc<'a>>,
    segment: Segment<'a>,
}

#[derive(Clone, Copy)]
enum Segment<'a> {
    Name(&'a str),
    /// `name[index]` in one link (the common case: a value of a repeating element).
    Item(&'a str, usize),
}

impl<'a> Loc<'a> {
    fn root(name: &'a str) -> Self {
        Self {
            parent: None,
            segment: Segment::Name(name),
        }
    }
    fn child(parent: &'a Loc<'a>, name: &'a str) -> Self {
        Self {
            parent: Some(parent),
            segment: Segment::Name(name),
        }
    }
    fn item(parent: &'a Loc<'a>, name: &'a str, index: usize) -> Self {
        Self {
            parent: Some(parent),
            segment: Segment::Item(name, index),
        }
    }
}

impl Loc<'_> {
    /// Whether this is `path` without list positions (`CarePlan.activity.detail` for
    /// `CarePlan.activity[0].detail`), compared from the leaf up without building the string.
    fn is_path(&self, path: &str) -> bool {
        let mut rest = path;
        let mut at = Some(self);
        while let Some(loc) = at {
            let (Segment::Name(name) | Segment::Item(name, _)) = loc.segment;
            let Some(before) = rest.strip_suffix(name) else {
                return false;
            };
            at = loc.parent;
            rest = match at {
                Some(_) => match before.strip_suffix('.') {
                    Some(before) => before,
                    None => return false,
                },
                None => before,
            };
        }
        rest.is_empty()
    }
}

impl std::fmt::Display for Loc<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(parent) = self.parent {
            parent.fmt(f)?;
        }
        match self.segment {
            Segment::Name(name) if self.parent.is_some() => write!(f, ".{name}"),
            Segment::Name(name) => f.write_str(name),
            Segment::Item(name, i) => write!(f, ".{name}[{i}]"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn validator() -> Validator {
        Validator::new(Arc::new(Registry::builtin()))
    }

    #[test]
    fn a_location_is_its_path_without_list_positions() {
        let root = Loc::root("CarePlan");
        let activity = Loc::item(&root, "activity", 2);
        let detail = Loc::child(&activity, "detail");
        assert!(detail.is_path("CarePlan.activity.detail"));
        assert!(root.is_path("CarePlan"));
        for other in [
            "CarePlan.activity",
            "activity.detail",
            "CarePlan.activity.detail.code",
            "CarePlan.activity[2].detail",
            "XCarePlan.activity.detail",
            "CarePlanactivity.detail",
            "",
        ] {
            assert!(!detail.is_path(other), "{other}");
        }
    }

    #[test]
    fn the_iop_profiles_stand_in_for_their_base_walk_and_a_loosened_one_does_not() {
        // Each IOP resource profile holds every rule of its base (their snapshots repeat it),
        // so a profiled resource is walked once; a copy with one of Period's invariants dropped
        // from an element it unfolds (the base walks Period there) does not.
        let validator = validator();
        let registry = validator.registry();
        let url = "https://iop-gateway.org/fhir/StructureDefinition/iop-careplan";
        let profile = Arc::clone(registry.structure_definition(url).unwrap());
        let base = Arc::clone(registry.type_definition("CarePlan").unwrap());
        assert!(validator.covers_base(&profile, &base));

        let mut copy = (*profile).clone();
        copy["url"] = json!("https://example.org/fhir/StructureDefinition/copied-careplan");
        assert!(validator.covers_base(&Arc::new(copy), &base));

        let mut loosened = (*profile).clone();
        loosened["url"] = json!("https://example.org/fhir/StructureDefinition/loosened-careplan");
        let start = loosened["snapshot"]["element"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|e| e["id"] == "CarePlan.period.start")
            .expect("the IOP CarePlan unfolds its period");
        start["constraint"] = json!([]);
        let loosened = Arc::new(loosened);
        assert!(!validator.covers_base(&loosened, &base));
    }

    fn errors(issues: &[Issue]) -> Vec<String> {
        issues
            .iter()
            .filter(|i| i.is_error())
            .map(|i| format!("{} {}: {}", i.code, i.expression, i.message))
            .collect()
    }

    #[test]
    fn a_required_profile_that_is_not_loaded_is_an_error() {
        let patient = json!({ "resourceType": "Patient", "id": "p" });
        let validator = validator();
        assert!(errors(&validator.validate(&patient, &[])).is_empty());
        let missing = "https://iop-gateway.org/fhir/StructureDefinition/iop-no-such".to_owned();
        let found = errors(&validator.validate(&patient, &[missing]));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("iop-no-such is not loaded"), "{found:?}");
    }

    #[test]
    fn a_required_profile_without_snapshot_is_an_error() {
        let mut registry = Registry::builtin();
        registry.add(json!({
            "resourceType": "StructureDefinition", "url": "urn:test:differential-only",
            "type": "Patient", "kind": "resource", "derivation": "constraint",
            "differential": { "element": [{ "id": "Patient.gender", "path": "Patient.gender", "min": 1 }] }
        }));
        let validator = Validator::new(Arc::new(registry));
        let patient = json!({ "resourceType": "Patient", "id": "p" });
        let found = errors(&validator.validate(&patient, &["urn:test:differential-only".into()]));
        assert!(
            found.iter().any(|e| e.contains("has no snapshot")),
            "{found:?}"
        );
    }

    #[test]
    fn an_invariant_that_does_not_parse_is_reported_as_not_checked() {
        let mut registry = Registry::builtin();
        registry.add(json!({
            "resourceType": "StructureDefinition", "url": "urn:test:odd-invariant",
            "type": "Patient", "kind": "resource", "derivation": "constraint",
            "snapshot": { "element": [{ "id": "Patient", "path": "Patient", "min": 0, "max": "*",
                "constraint": [{ "key": "odd-1", "severity": "error", "human": "odd",
                    "expression": "name.where(" }] }] }
        }));
        let validator = Validator::new(Arc::new(registry));
        let patient = json!({ "resourceType": "Patient", "id": "p" });
        let found = validator.validate(&patient, &["urn:test:odd-invariant".into()]);
        assert!(
            found.iter().any(|i| i.severity == Severity::Information
                && i.message.starts_with("invariant odd-1 not checked")),
            "{found:?}"
        );
    }

    #[test]
    fn reaching_the_depth_limit_is_reported() {
        // Consent.provision nests Consent.provision: 40 levels are more than the walk follows.
        let mut provision = json!({ "type": "permit" });
        for _ in 0..40 {
            provision = json!({ "type": "permit", "provision": [provision] });
        }
        let consent = json!({
            "resourceType": "Consent", "id": "c", "status": "active",
            "scope": { "text": "privacy" }, "category": [{ "text": "consent" }],
            "policyRule": { "text": "opt in" }, "provision": provision
        });
        let found = validator().validate(&consent, &[]);
        let deep: Vec<&Issue> = found.iter().filter(|i| i.code == "too-costly").collect();
        assert_eq!(deep.len(), 1, "{found:?}");
        assert!(deep[0].is_error());
        // A shallow one is not affected.
        let mut shallow = consent.clone();
        shallow["provision"] = json!({ "type": "permit", "provision": [{ "type": "deny" }] });
        assert!(errors(&validator().validate(&shallow, &[])).is_empty());
    }

    #[test]
    fn a_schema_that_cannot_load_is_reported_where_it_is_the_only_check() {
        // A registry without the R4 definitions: the schema alone checks a Patient.
        let bare = Validator::new(Arc::new(Registry::default()));
        assert!(bare.schema.set(Err("test: unreadable".into())).is_ok());
        let patient = json!({ "resourceType": "Patient", "id": "p" });
        let found = errors(&bare.validate(&patient, &[]));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("R4 JSON Schema check could not run: test: unreadable"),
            "{found:?}"
        );
        // With the definitions loaded the walk checks it, and the schema is not needed.
        let full = validator();
        assert!(full.schema.set(Err("test: unreadable".into())).is_ok());
        assert_eq!(errors(&full.validate(&patient, &[])), Vec::<String>::new());
    }

    #[test]
    fn only_a_resources_own_object_names_a_resource_type() {
        // Found by the differential fuzz test: the walk skipped `resourceType` on any object.
        let patient = json!({
            "resourceType": "Patient", "id": "p",
            "meta": { "resourceType": "Patient", "versionId": "1" },
            "name": [{ "resourceType": "HumanName", "family": "A" }]
        });
        let found = errors(&validator().validate(&patient, &[]));
        for at in ["Patient.meta.resourceType", "Patient.name[0].resourceType"] {
            assert!(
                found
                    .iter()
                    .any(|e| e.contains(at) && e.contains("unknown element")),
                "{at}: {found:?}"
            );
        }
        assert_eq!(found.len(), 2, "{found:?}");
        // A nested resource keeps its own.
        let bundle = json!({ "resourceType": "Bundle", "type": "collection", "entry": [
            { "fullUrl": "urn:uuid:b7b795c0-9343-41b4-910b-361c93d5497c",
              "resource": { "resourceType": "Patient", "id": "q" } }
        ] });
        assert_eq!(
            errors(&validator().validate(&bundle, &[])),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_type_whose_definition_is_missing_is_checked_by_the_schema() {
        let bare = Validator::new(Arc::new(Registry::default()));
        let patient = json!({ "resourceType": "Patient", "id": "p", "birthDate": 1970 });
        let found = errors(&bare.validate(&patient, &[]));
        assert!(
            found
                .iter()
                .any(|e| e.contains("Patient.birthDate") && e.contains("JSON Schema")),
            "{found:?}"
        );
    }
}
