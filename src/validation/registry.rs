//! Conformance resources by canonical URL: StructureDefinitions, ValueSets, CodeSystems.
//!
//! Loaded once and shared (`Arc`) by every validation: the built-in set (the vendored R4 subset and
//! the IOP profiles, compiled into the binary), plus FHIR packages, JSON resources and Bundles
//! handed over as bytes at run time (`fhir_packages` reads them from disk: no I/O here).

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::{Arc, Mutex};

use include_dir::{Dir, include_dir};
use serde_json::Value as Json;

use super::iop::IopProfiles;

static R4: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/fhir-profiles/r4");
static IOP: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/fhir-profiles/iop");

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("not a FHIR package (.tgz): {0}")]
    Package(String),
    #[error("not JSON: {0}")]
    NotJson(String),
}

/// The codes a ValueSet holds, or why it cannot be expanded offline.
#[derive(Debug, Clone)]
pub enum Expansion {
    Codes(HashSet<(String, String)>),
    /// Names the code system that is not available (e.g. SNOMED CT) or the rule that is not supported.
    Unavailable(String),
}

#[derive(Default)]
pub struct Registry {
    structure_definitions: HashMap<String, Arc<Json>>,
    value_sets: HashMap<String, Arc<Json>>,
    code_systems: HashMap<String, Arc<Json>>,
    /// Base (core) StructureDefinitions by type name: `Patient`, `Reference`, `string`.
    types: HashMap<String, Arc<Json>>,
    expansions: Mutex<HashMap<String, Arc<Expansion>>>,
    /// The IOP profile of each resource type, from the built-in IOP definitions.
    iop: IopProfiles,
}

fn canonical(url: &str) -> &str {
    url.split('|').next().unwrap_or(url)
}

impl Registry {
    /// The FHIR R4 subset and the IOP profiles that ship with the gateway.
    pub fn builtin() -> Self {
        let mut registry = Self::default();
        for dir in [&R4, &IOP] {
            for file in dir.files() {
                if let Ok(resource) = serde_json::from_slice::<Json>(file.contents()) {
                    registry.add(resource);
                }
            }
        }
        registry.iop = Self::builtin_iop_profiles();
        registry
    }

    /// The IOP profile of each resource type, from the built-in IOP definitions alone.
    pub fn builtin_iop_profiles() -> IopProfiles {
        let iop: Vec<Json> = IOP
            .files()
            .filter_map(|f| serde_json::from_slice(f.contents()).ok())
            .collect();
        IopProfiles::derive(&iop)
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
                        let base =
                            resource.get("derivation").and_then(Json::as_str) != Some("constraint");
                        if base && let Some(t) = resource.get("type").and_then(Json::as_str) {
                            self.types.insert(t.to_owned(), Arc::clone(&resource));
                        }
                        self.structure_definitions.insert(url, resource);
                    }
                    "ValueSet" => {
                        self.value_sets.insert(url, resource);
                    }
                    _ => {
                        self.code_systems.insert(url, resource);
                    }
                }
            }
            _ => {}
        }
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

    pub fn structure_definition(&self, url: &str) -> Option<&Arc<Json>> {
        self.structure_definitions.get(canonical(url))
    }

    /// The core definition of a type (`Patient`, `HumanName`, `string`).
    pub fn type_definition(&self, type_name: &str) -> Option<&Arc<Json>> {
        self.types.get(type_name)
    }

    pub fn code_system(&self, url: &str) -> Option<&Arc<Json>> {
        self.code_systems.get(canonical(url))
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
        let expansion = Arc::new(self.expand_uncached(&url, 0));
        if let Ok(mut cache) = self.expansions.lock() {
            cache.insert(url, Arc::clone(&expansion));
        }
        expansion
    }

    fn expand_uncached(&self, url: &str, depth: usize) -> Expansion {
        let Some(value_set) = self.value_sets.get(url) else {
            return Expansion::Unavailable(format!("ValueSet {url} is not loaded"));
        };
        if depth > 8 {
            return Expansion::Unavailable(format!("ValueSet {url} includes itself"));
        }
        if let Some(contains) = value_set
            .pointer("/expansion/contains")
            .and_then(Json::as_array)
        {
            let mut codes = HashSet::new();
            collect_contains(contains, &mut codes);
            return Expansion::Codes(codes);
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
                Err(reason) => return Expansion::Unavailable(reason),
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
        Expansion::Codes(codes)
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
            let Some(code_system) = self.code_systems.get(canonical(system)) else {
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
                Expansion::Codes(found) => {
                    if codes.is_empty() && system.is_none() {
                        codes = found;
                    } else {
                        codes.retain(|c| found.contains(c));
                    }
                }
                Expansion::Unavailable(reason) => return Err(reason),
            }
        }
        Ok(codes)
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
