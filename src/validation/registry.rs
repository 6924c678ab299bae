//! Conformance resources by canonical URL: StructureDefinitions, ValueSets, CodeSystems.
//!
//! Loaded once and shared (`Arc`) by every validation: the built-in set (all of FHIR R4 4.0.1's
//! definitions and the IOP profiles, compiled into the binary), plus FHIR packages, JSON resources
//! and Bundles handed over as bytes at run time (`fhir_packages` reads them from disk: no I/O here).
//!
//! R4 is compiled in packed (`fhir-profiles/r4/`: each resource deflated on its own, and an index
//! of canonical URLs), and a resource is inflated and parsed only when a validation first asks for
//! it: validating one Patient parses a few dozen definitions, not three thousand.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::{Arc, Mutex, OnceLock};

use include_dir::{Dir, include_dir};
use rustc_hash::FxHashMap;
use serde_json::Value as Json;

use super::iop::{DefinitionSummary, IopProfiles};
use super::snapshot::NOT_A_DISCRIMINATOR;
use crate::json_member::member;

static R4_INDEX: &[u8] = include_bytes!("../../fhir-profiles/r4/index.json");
static R4_PACK: &[u8] = include_bytes!("../../fhir-profiles/r4/definitions.deflate");
static IOP: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/fhir-profiles/iop");

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("not a FHIR package (.tgz): {0}")]
    Package(String),
    #[error("not JSON: {0}")]
    NotJson(String),
    /// A document in another format (FHIR XML) that could not be read.
    #[error("{0}")]
    NotReadable(String),
}

/// The codes a ValueSet holds, or why it cannot be expanded offline.
#[derive(Debug, Clone)]
pub enum Expansion {
    Codes(CodeSet),
    /// Names the code system that is not available (e.g. SNOMED CT) or the rule that is not supported.
    Unavailable(String),
}

/// The (system, code) pairs of an expansion, indexed by code: a binding check asks for one
/// code, with or without its system, on every coded value (a scan of the set was the walk's
/// costliest lookup).
#[derive(Debug, Clone, Default)]
pub struct CodeSet {
    systems_by_code: FxHashMap<String, Vec<String>>,
}

impl CodeSet {
    fn from_pairs(pairs: HashSet<(String, String)>) -> Self {
        let mut systems_by_code: FxHashMap<String, Vec<String>> = FxHashMap::default();
        for (system, code) in pairs {
            systems_by_code.entry(code).or_default().push(system);
        }
        Self { systems_by_code }
    }

    /// Is `code` in the set — in `system`, where one is given?
    pub fn contains(&self, system: Option<&str>, code: &str) -> bool {
        self.systems_by_code
            .get(code)
            .is_some_and(|systems| system.is_none_or(|wanted| systems.iter().any(|s| s == wanted)))
    }
}

/// One conformance resource: parsed when added, or packed in the binary until first asked for.
struct Entry {
    packed: &'static [u8],
    parsed: OnceLock<Option<Arc<Json>>>,
    /// A StructureDefinition with only a differential, completed with a generated snapshot.
    generated: OnceLock<Generated>,
}

struct Generated {
    definition: Option<Arc<Json>>,
    /// What of the differential could not be applied (see `snapshot::generate`).
    problems: Vec<String>,
}

impl Entry {
    fn parsed(resource: Arc<Json>) -> Self {
        Self {
            packed: &[],
            parsed: OnceLock::from(Some(resource)),
            generated: OnceLock::new(),
        }
    }

    fn packed(packed: &'static [u8]) -> Self {
        Self {
            packed,
            parsed: OnceLock::new(),
            generated: OnceLock::new(),
        }
    }

    fn get(&self) -> Option<&Arc<Json>> {
        self.parsed
            .get_or_init(|| {
                let mut json = Vec::with_capacity(self.packed.len() * 8);
                flate2::read::DeflateDecoder::new(self.packed)
                    .read_to_end(&mut json)
                    .ok()?;
                serde_json::from_slice(&json).ok().map(Arc::new)
            })
            .as_ref()
    }
}

#[derive(Default)]
pub struct Registry {
    structure_definitions: FxHashMap<String, Entry>,
    value_sets: FxHashMap<String, Entry>,
    code_systems: FxHashMap<String, Entry>,
    /// The canonical URL of each base (core) type's definition: `Patient`, `Reference`, `string`.
    types: FxHashMap<String, String>,
    expansions: Mutex<HashMap<String, Arc<Expansion>>>,
    /// The IOP profile of each resource type, from the built-in IOP definitions.
    iop: IopProfiles,
    /// Profiles for every resource of a type, from loaded ImplementationGuides' `global`.
    global: HashMap<String, Vec<String>>,
    /// Extensions that a loaded (not packed) profile names on an `extension` element, though
    /// their definitions may not be loaded (US Core's, named by the IOP profiles).
    named_extensions: HashSet<String>,
}

/// Is `name` a type FHIR R4 itself defines (a resource or data type of the built-in
/// definitions)? The R4 JSON Schema shipped with the definitions also lists the publisher's own
/// resource types (Medplum's `Project`, `Bot`, ...), which are not FHIR's.
pub fn is_r4_type(name: &str) -> bool {
    static TYPES: std::sync::OnceLock<HashSet<String>> = std::sync::OnceLock::new();
    TYPES
        .get_or_init(|| {
            let index: Vec<(String, String, String, usize, usize)> =
                serde_json::from_slice(R4_INDEX).unwrap_or_default();
            index
                .into_iter()
                .filter(|(kind, url, base_type, _, _)| {
                    kind == "StructureDefinition"
                        && url.strip_prefix("http://hl7.org/fhir/StructureDefinition/")
                            == Some(base_type.as_str())
                })
                .map(|(_, _, base_type, _, _)| base_type)
                .collect()
        })
        .contains(name)
}

fn canonical(url: &str) -> &str {
    url.split('|').next().unwrap_or(url)
}

impl Registry {
    /// All of FHIR R4 and the IOP profiles, as they ship with the gateway.
    pub fn builtin() -> Self {
        let mut registry = Self::default();
        registry.add_packed_r4();
        // Parsed once for both uses: 2.6 MB of JSON, parsed twice, was a third of `validate`'s
        // start-up.
        let iop = Self::builtin_iop_definitions();
        let summaries: Vec<DefinitionSummary> =
            iop.iter().filter_map(DefinitionSummary::of).collect();
        registry.iop = IopProfiles::derive(&summaries);
        for resource in iop {
            registry.add(resource);
        }
        registry
    }

    /// Indexes the packed R4 definitions (see the module comment); parses none of them.
    fn add_packed_r4(&mut self) {
        // Built by `fhir-profiles/scripts/vendor-r4.mjs`: [resourceType, url, base type, offset, length].
        let index: Vec<(String, String, String, usize, usize)> =
            serde_json::from_slice(R4_INDEX).expect("fhir-profiles/r4/index.json is the packer's");
        for (kind, url, base_type, offset, length) in index {
            let entry = Entry::packed(&R4_PACK[offset..offset + length]);
            match kind.as_str() {
                "StructureDefinition" => {
                    if !base_type.is_empty() {
                        self.types.insert(base_type, url.clone());
                    }
                    self.structure_definitions.insert(url, entry);
                }
                "ValueSet" => {
                    self.value_sets.insert(url, entry);
                }
                _ => {
                    self.code_systems.insert(url, entry);
                }
            }
        }
    }

    /// The IOP profile of each resource type, from the built-in IOP definitions alone.
    pub fn builtin_iop_profiles() -> IopProfiles {
        let summaries: Vec<DefinitionSummary> = IOP
            .files()
            .filter_map(|f| DefinitionSummary::from_slice(f.contents()))
            .collect();
        IopProfiles::derive(&summaries)
    }

    fn builtin_iop_definitions() -> Vec<Json> {
        IOP.files()
            .filter_map(|f| serde_json::from_slice(f.contents()).ok())
            .collect()
    }

    /// The IOP profile of each resource type (see `iop.rs`): empty unless built with `builtin`.
    pub fn iop_profiles(&self) -> &IopProfiles {
        &self.iop
    }

    /// Adds one resource; Bundles add their entries.
    pub fn add(&mut self, resource: Json) {
        let kind = resource
            .get("resourceType")
            .and_then(Json::as_str)
            .map(str::to_owned);
        match kind.as_deref() {
            Some("Bundle") => {
                let entries = resource
                    .get("entry")
                    .and_then(Json::as_array)
                    .cloned()
                    .unwrap_or_default();
                for entry in entries {
                    if let Some(r) = entry.get("resource") {
                        self.add(r.clone());
                    }
                }
            }
            Some("ImplementationGuide") => {
                for global in resource
                    .get("global")
                    .and_then(Json::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let (Some(kind), Some(profile)) = (
                        global.get("type").and_then(Json::as_str),
                        global.get("profile").and_then(Json::as_str),
                    ) {
                        let list = self.global.entry(kind.to_owned()).or_default();
                        if !list.iter().any(|p| p == profile) {
                            list.push(profile.to_owned());
                        }
                    }
                }
            }
            Some(kind @ ("StructureDefinition" | "ValueSet" | "CodeSystem")) => {
                let Some(url) = resource
                    .get("url")
                    .and_then(Json::as_str)
                    .map(|u| canonical(u).to_owned())
                else {
                    return;
                };
                let resource = Arc::new(resource);
                match kind {
                    "StructureDefinition" => {
                        self.named_extensions.extend(extensions_named_by(&resource));
                        let base =
                            resource.get("derivation").and_then(Json::as_str) != Some("constraint");
                        if base && let Some(t) = resource.get("type").and_then(Json::as_str) {
                            self.types.insert(t.to_owned(), url.clone());
                        }
                        self.structure_definitions
                            .insert(url, Entry::parsed(resource));
                    }
                    "ValueSet" => {
                        self.value_sets.insert(url, Entry::parsed(resource));
                    }
                    _ => {
                        self.code_systems.insert(url, Entry::parsed(resource));
                    }
                }
            }
            _ => {}
        }
    }

    /// Whether a loaded profile names the extension `url` where it slices `extension`: it is
    /// expected, even if its own definition is not loaded.
    pub fn names_extension(&self, url: &str) -> bool {
        self.named_extensions.contains(canonical(url))
    }

    /// Adds the conformance resources of a FHIR package, given as its `.tgz` bytes (the caller
    /// reads the file: see `fhir_packages`). Examples and `other/` are skipped.
    pub fn add_package(&mut self, tgz: &[u8]) -> Result<usize, RegistryError> {
        let error = |e: std::io::Error| RegistryError::Package(e.to_string());
        let before = self.len();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tgz));
        for entry in archive.entries().map_err(error)? {
            let mut entry = entry.map_err(error)?;
            let name = entry.path().map_err(error)?.to_string_lossy().into_owned();
            if !name.ends_with(".json")
                || name.ends_with("package.json")
                || name.contains("/other/")
                || name.contains("/example/")
            {
                continue;
            }
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).map_err(error)?;
            if let Ok(resource) = serde_json::from_slice::<Json>(&bytes) {
                self.add(resource);
            }
        }
        self.expansions.lock().map(|mut e| e.clear()).ok();
        Ok(self.len() - before)
    }

    /// Adds one JSON document (a resource or a Bundle of them), given as bytes.
    pub fn add_json(&mut self, bytes: &[u8]) -> Result<usize, RegistryError> {
        let before = self.len();
        // A UTF-8 byte order mark (some editors write one) is not part of the content.
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let resource = serde_json::from_slice::<Json>(bytes)
            .map_err(|e| RegistryError::NotJson(e.to_string()))?;
        self.add(resource);
        self.expansions.lock().map(|mut e| e.clear()).ok();
        Ok(self.len() - before)
    }

    pub fn len(&self) -> usize {
        self.structure_definitions.len() + self.value_sets.len() + self.code_systems.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A StructureDefinition by canonical URL. One with only a differential comes with the
    /// snapshot generated from it and its base (`snapshot_problems` says what did not apply).
    pub fn structure_definition(&self, url: &str) -> Option<&Arc<Json>> {
        let entry = self.structure_definitions.get(canonical(url))?;
        let raw = entry.get()?;
        // Asked for on every profiled element: members found without hashing their names.
        let has_snapshot = member(raw, "snapshot").and_then(|s| member(s, "element"));
        if has_snapshot.is_some() || member(raw, "differential").is_none() {
            return Some(raw);
        }
        let generated = entry
            .generated
            .get_or_init(|| self.generate_snapshot(canonical(url), raw));
        Some(generated.definition.as_ref().unwrap_or(raw))
    }

    /// Profiles that loaded ImplementationGuides declare for every resource of `resource_type`.
    pub fn global_profiles(&self, resource_type: &str) -> &[String] {
        self.global
            .get(resource_type)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// What of a profile's differential its generated snapshot could not apply.
    pub fn snapshot_problems(&self, url: &str) -> &[String] {
        self.structure_definitions
            .get(canonical(url))
            .and_then(|entry| entry.generated.get())
            .map(|g| g.problems.as_slice())
            .unwrap_or_default()
    }

    /// The mistakes in a StructureDefinition's differential (an element that is not in its
    /// base, an id that does not match its path), found by generating its snapshot: what the
    /// reference validator reports when a StructureDefinition is validated as a resource.
    pub fn differential_mistakes(&self, definition: &Json) -> Vec<String> {
        if definition.get("differential").is_none()
            || definition.get("derivation").and_then(Json::as_str) != Some("constraint")
        {
            return Vec::new();
        }
        let url = definition
            .get("url")
            .and_then(Json::as_str)
            .unwrap_or_default();
        let generated = self.generate_snapshot(canonical(url), definition);
        let mut mistakes: Vec<String> = generated
            .problems
            .into_iter()
            .filter(|p| super::snapshot::is_differential_mistake(p))
            .collect();
        if let Some(snapshot) = generated
            .definition
            .as_ref()
            .and_then(|d| super::at(d, &["snapshot", "element"]))
            .and_then(Json::as_array)
        {
            mistakes.extend(self.discriminator_mistakes(definition, snapshot));
        }
        mistakes
    }

    /// Discriminators of the differential's slicings whose path names no element of what is
    /// sliced (`type` on an `extension`): such a slicing can never tell its slices apart.
    fn discriminator_mistakes(&self, definition: &Json, snapshot: &[Json]) -> Vec<String> {
        let mut mistakes = Vec::new();
        for element in definition
            .pointer("/differential/element")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(id), Some(path)) = (
                element.get("id").and_then(Json::as_str),
                element.get("path").and_then(Json::as_str),
            ) else {
                continue;
            };
            let Some(sliced) = snapshot
                .iter()
                .find(|e| e.get("id").and_then(Json::as_str) == Some(id))
            else {
                continue;
            };
            for discriminator in element
                .pointer("/slicing/discriminator")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
            {
                let Some(first) = discriminator
                    .get("path")
                    .and_then(Json::as_str)
                    .and_then(|p| p.split('.').next())
                else {
                    continue;
                };
                // `$this`, and functions (`resolve()`, `extension('...')`), are not checked here.
                if first == "$this" || first.contains('(') || first.is_empty() {
                    continue;
                }
                if !self.names_child(sliced, path, snapshot, first) {
                    mistakes.push(format!(
                        "{NOT_A_DISCRIMINATOR}: '{first}' is no element of {id}, which {id} slices by it"
                    ));
                }
            }
        }
        mistakes
    }

    /// Whether `name` is a child of the element `sliced` (at `path` in `snapshot`): an element
    /// of its backbone, or of one of its data types.
    fn names_child(&self, sliced: &Json, path: &str, snapshot: &[Json], name: &str) -> bool {
        let is_child = |elements: &[Json], parent: &str| {
            elements.iter().any(|e| {
                e.get("path")
                    .and_then(Json::as_str)
                    .and_then(|p| p.strip_prefix(parent))
                    .and_then(|rest| rest.strip_prefix('.'))
                    .is_some_and(|child| {
                        child == name
                            || child
                                .strip_suffix("[x]")
                                .is_some_and(|choice| name.starts_with(choice))
                    })
            })
        };
        let codes: Vec<&str> = sliced
            .get("type")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| t.get("code").and_then(Json::as_str))
            .collect();
        if matches!(name, "id" | "extension") || is_child(snapshot, path) {
            return true;
        }
        // A backbone's children are in the snapshot (looked at above); a resource's vary.
        codes.is_empty()
            || codes.iter().any(|code| {
                matches!(*code, "Resource" | "DomainResource")
                    || (!matches!(*code, "BackboneElement" | "Element")
                        && self
                            .type_definition(code)
                            .and_then(|t| super::at(t, &["snapshot", "element"]))
                            .and_then(Json::as_array)
                            .is_none_or(|elements| is_child(elements, code)))
            })
    }

    fn generate_snapshot(&self, url: &str, raw: &Json) -> Generated {
        let failed = |problem: String| Generated {
            definition: None,
            problems: vec![problem],
        };
        // Bases are generated first (recursively): refuse a chain that comes back to itself,
        // before any generation starts, so no snapshot waits on its own.
        let base_of = |definition: &Json| {
            definition
                .get("baseDefinition")
                .and_then(Json::as_str)
                .map(|base| canonical(base).to_owned())
        };
        let mut chain = vec![url.to_owned()];
        let mut next_base = base_of(raw);
        while let Some(base) = next_base {
            if chain.contains(&base) || chain.len() > 32 {
                return failed(format!("its base definitions come back to {base}"));
            }
            let Some(next) = self.structure_definitions.get(&base).and_then(Entry::get) else {
                break;
            };
            chain.push(base);
            if super::at(next, &["snapshot", "element"]).is_some() {
                break;
            }
            next_base = base_of(next);
        }
        let Some(base_url) = raw.get("baseDefinition").and_then(Json::as_str) else {
            return failed("it has no snapshot and no baseDefinition to generate one from".into());
        };
        let Some(base_elements) = self
            .structure_definition(base_url)
            .and_then(|b| super::at(b, &["snapshot", "element"]))
            .and_then(Json::as_array)
        else {
            return failed(format!(
                "its base {base_url} is not loaded (or has no snapshot), so no snapshot could be generated"
            ));
        };
        let type_snapshot = |code: &str| {
            self.type_definition(code)
                .and_then(|t| super::at(t, &["snapshot", "element"]))
                .and_then(Json::as_array)
                .cloned()
        };
        let (elements, problems) = super::snapshot::generate(raw, base_elements, &type_snapshot);
        let mut definition = raw.clone();
        if let Json::Object(object) = &mut definition {
            object.insert(
                "snapshot".into(),
                serde_json::json!({ "element": elements }),
            );
        }
        Generated {
            definition: Some(Arc::new(definition)),
            problems,
        }
    }

    /// The core definition of a type (`Patient`, `HumanName`, `string`).
    /// The type whose base definition `url` is (`…/StructureDefinition/Patient`: Patient),
    /// known without reading the definition; None for a profile.
    pub fn base_type_of(&self, url: &str) -> Option<&str> {
        let url = canonical(url);
        let name = url.rsplit('/').next()?;
        self.types
            .get_key_value(name)
            .filter(|(_, base)| base.as_str() == url)
            .map(|(name, _)| name.as_str())
    }

    pub fn type_definition(&self, type_name: &str) -> Option<&Arc<Json>> {
        self.structure_definition(self.types.get(type_name)?)
    }

    pub fn code_system(&self, url: &str) -> Option<&Arc<Json>> {
        self.code_systems.get(canonical(url))?.get()
    }

    pub fn value_set(&self, url: &str) -> Option<&Arc<Json>> {
        self.value_sets.get(canonical(url))?.get()
    }

    /// The codes of a ValueSet, expanded offline (and cached): enumerated concepts, whole code
    /// systems that are loaded, included value sets, and exclusions.
    pub fn expand(&self, url: &str) -> Arc<Expansion> {
        let url = canonical(url).to_owned();
        if let Some(found) = self
            .expansions
            .lock()
            .ok()
            .and_then(|e| e.get(&url).cloned())
        {
            return found;
        }
        let expansion = Arc::new(match self.expand_uncached(&url, 0) {
            Ok(pairs) => Expansion::Codes(CodeSet::from_pairs(pairs)),
            Err(reason) => Expansion::Unavailable(reason),
        });
        if let Ok(mut cache) = self.expansions.lock() {
            cache.insert(url, Arc::clone(&expansion));
        }
        expansion
    }

    /// The (system, code) pairs of a ValueSet, or why they are not known offline.
    fn expand_uncached(
        &self,
        url: &str,
        depth: usize,
    ) -> Result<HashSet<(String, String)>, String> {
        let Some(value_set) = self.value_set(url) else {
            return Err(format!("ValueSet {url} is not loaded"));
        };
        if depth > 8 {
            return Err(format!("ValueSet {url} includes itself"));
        }
        if let Some(contains) = value_set
            .pointer("/expansion/contains")
            .and_then(Json::as_array)
        {
            let mut codes = HashSet::new();
            collect_contains(contains, &mut codes);
            return Ok(codes);
        }
        let mut codes = HashSet::new();
        let compose = value_set.get("compose");
        for include in compose
            .and_then(|c| c.get("include"))
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            match self.include(include, depth) {
                Ok(found) => codes.extend(found),
                Err(reason) => return Err(reason),
            }
        }
        for exclude in compose
            .and_then(|c| c.get("exclude"))
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            if let Ok(found) = self.include(exclude, depth) {
                codes.retain(|c| !found.contains(c));
            }
        }
        Ok(codes)
    }

    fn include(&self, include: &Json, depth: usize) -> Result<HashSet<(String, String)>, String> {
        let mut codes = HashSet::new();
        let system = include.get("system").and_then(Json::as_str);
        if let Some(concepts) = include.get("concept").and_then(Json::as_array) {
            let system = system.unwrap_or_default();
            codes.extend(
                concepts
                    .iter()
                    .filter_map(|c| c.get("code").and_then(Json::as_str))
                    .map(|c| (system.to_owned(), c.to_owned())),
            );
        } else if let Some(system) = system {
            if include
                .get("filter")
                .and_then(Json::as_array)
                .is_some_and(|f| !f.is_empty())
            {
                return Err(format!("filters over {system} are not expanded offline"));
            }
            let Some(code_system) = self.code_system(system) else {
                return Err(format!("code system {system} is not available offline"));
            };
            if code_system
                .get("content")
                .and_then(Json::as_str)
                .is_some_and(|c| c != "complete")
            {
                return Err(format!("code system {system} is not complete here"));
            }
            let mut all = HashSet::new();
            collect_concepts(
                code_system
                    .get("concept")
                    .and_then(Json::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or(&[]),
                &mut all,
            );
            codes.extend(all.into_iter().map(|c| (system.to_owned(), c)));
        }
        for nested in include
            .get("valueSet")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter_map(Json::as_str)
        {
            match self.expand_uncached(canonical(nested), depth + 1) {
                Ok(found) => {
                    if codes.is_empty() && system.is_none() {
                        codes = found;
                    } else {
                        codes.retain(|c| found.contains(c));
                    }
                }
                Err(reason) => return Err(reason),
            }
        }
        Ok(codes)
    }
}

/// Element types for FHIRPath from the core definitions' snapshots (a linear search per lookup:
/// meant for evaluating expressions, not for the validator's per-element walk).
impl crate::fhirpath::TypeModel for Registry {
    fn element_type(&self, parent: &str, name: &str) -> Option<&str> {
        let root = parent.split('.').next()?;
        let elements = self
            .type_definition(root)?
            .pointer("/snapshot/element")?
            .as_array()?;
        let child = |e| child_name(e, parent);
        let Some(element) = elements.iter().find(|e| child(e) == Some(name)) else {
            // `dueDate` is `due[x]` as a `date`: the suffix names one of its types.
            return elements.iter().find_map(|e| {
                let suffix = name.strip_prefix(child(e)?.strip_suffix("[x]")?)?;
                e["type"]
                    .as_array()?
                    .iter()
                    .filter_map(|t| t["code"].as_str())
                    .find(|code| names_type(suffix, code))
            });
        };
        // `Questionnaire.item.item` is typed by the element it refers to.
        if let Some(reference) = element["contentReference"].as_str() {
            return reference.strip_prefix('#');
        }
        let [only] = element["type"].as_array()?.as_slice() else {
            return None;
        };
        match only["code"].as_str()? {
            "BackboneElement" | "Element" => element["path"].as_str(),
            // `Element.id` and `Extension.url` are FHIRPath System strings (`System.String`).
            system if system.starts_with("http://hl7.org/fhirpath/") => {
                system.strip_prefix("http://hl7.org/fhirpath/")
            }
            code => Some(code),
        }
    }

    fn is_type_name(&self, name: &str) -> bool {
        self.types.contains_key(name)
    }
}

/// The name of `element` below `parent` (`gender` of `Patient.gender` below `Patient`).
fn child_name<'e>(element: &'e Json, parent: &str) -> Option<&'e str> {
    element["path"]
        .as_str()?
        .strip_prefix(parent)?
        .strip_prefix('.')
}

/// Whether a choice element's suffix (`Date` of `dueDate`) names the type `code` (`date`).
pub(crate) fn names_type(suffix: &str, code: &str) -> bool {
    let mut s = suffix.chars();
    let mut c = code.chars();
    match (s.next(), c.next()) {
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(&b) && s.as_str() == c.as_str(),
        _ => false,
    }
}

fn collect_concepts(concepts: &[Json], out: &mut HashSet<String>) {
    for concept in concepts {
        if let Some(code) = concept.get("code").and_then(Json::as_str) {
            out.insert(code.to_owned());
        }
        if let Some(children) = concept.get("concept").and_then(Json::as_array) {
            collect_concepts(children, out);
        }
    }
}

fn collect_contains(contains: &[Json], out: &mut HashSet<(String, String)>) {
    for c in contains {
        if let (Some(system), Some(code)) = (
            c.get("system").and_then(Json::as_str),
            c.get("code").and_then(Json::as_str),
        ) {
            out.insert((system.to_owned(), code.to_owned()));
        }
        if let Some(children) = c.get("contains").and_then(Json::as_array) {
            collect_contains(children, out);
        }
    }
}

/// The extension URLs a StructureDefinition names as the type profile of its `extension` and
/// `modifierExtension` elements (snapshot and differential).
fn extensions_named_by(definition: &Json) -> Vec<String> {
    let mut named = Vec::new();
    for part in ["snapshot", "differential"] {
        let elements = definition[part]["element"].as_array().into_iter().flatten();
        for element in elements {
            let path = element["path"].as_str().unwrap_or_default();
            if !(path.ends_with(".extension") || path.ends_with(".modifierExtension")) {
                continue;
            }
            let profiles = element["type"].as_array().into_iter().flatten();
            for profile in profiles.flat_map(|t| t["profile"].as_array().into_iter().flatten()) {
                if let Some(url) = profile.as_str() {
                    named.push(canonical(url).to_owned());
                }
            }
        }
    }
    named
}
