//! Snapshots from differentials: a profile that carries only its differential (as most in
//! packages, test cases and a clinic's own files do) gets the snapshot its base's snapshot and its
//! differential make, the way the HL7 validator and SUSHI make it:
//! - each differential element constrains the snapshot element with the same id, or is added:
//!   a slice (`Patient.identifier:mrn`) after the sliced element and its existing slices, a child
//!   (`Patient.identifier.system`) once its parent's type has been unfolded into the snapshot
//!   (all of the type's elements, so unconstrained children stay known);
//! - a renamed choice (`Observation.valueQuantity`, or the type slice `value[x]:valueQuantity`)
//!   constrains `value[x]` and narrows its types;
//! - constraints are merged: invariants, conditions and mappings add up, everything else the
//!   differential states replaces the base's (a fixed or pattern value replaces any other).
//!
//! Pure: the base definitions come from a lookup the caller gives. What cannot be applied is
//! returned as a problem and the rest still applies.

use serde_json::{Map, Value as Json};

/// Problems that are mistakes in the differential itself (not what this generator leaves out).
const NOT_AN_ELEMENT: &str = "is not an element of";
const NOT_ITS_PATH: &str = "the element's id does not match its path";
const FIXED_CHANGED: &str = "changes the fixed value of its base";

/// Whether a problem `generate` reported is a mistake in the differential (an error in the
/// StructureDefinition), rather than something this generator does not support.
/// How a discriminator naming no element of the sliced element is reported.
pub const NOT_A_DISCRIMINATOR: &str = "a slicing discriminator names no element";

pub fn is_differential_mistake(problem: &str) -> bool {
    [NOT_AN_ELEMENT, NOT_ITS_PATH, FIXED_CHANGED]
        .iter()
        .any(|mistake| problem.contains(mistake))
}

/// Differential elements deeper than this many unfolded types are not applied.
const MAX_UNFOLD: usize = 64;

/// The snapshot elements of `definition`, from `base_snapshot` (the base definition's snapshot
/// elements) and `type_snapshot(code)` (a data type's snapshot elements), with a line for each
/// differential element that could not be applied.
pub fn generate(
    definition: &Json,
    base_snapshot: &[Json],
    type_snapshot: &dyn Fn(&str) -> Option<Vec<Json>>,
) -> (Vec<Json>, Vec<String>) {
    let mut builder = Builder {
        elements: base_snapshot.to_vec(),
        problems: Vec::new(),
        type_snapshot,
        narrowed: Vec::new(),
    };
    builder.rebase_root(definition);
    let mut last_id_of_path: std::collections::HashMap<String, String> = Default::default();
    for diff in definition
        .pointer("/differential/element")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        let Some(id) = differential_id(diff, &last_id_of_path) else {
            builder
                .problems
                .push("a differential element has neither id nor path".into());
            continue;
        };
        if let Some(path) = diff.get("path").and_then(Json::as_str) {
            last_id_of_path.insert(path.to_owned(), id.clone());
            let id_as_path: Vec<&str> = id
                .split('.')
                .map(|step| step.split(':').next().unwrap_or(step))
                .collect();
            if id_as_path.join(".") != path {
                builder
                    .problems
                    .push(format!("{id}: {NOT_ITS_PATH} ({path})"));
                continue;
            }
        }
        match builder.locate(&id, 0) {
            Ok(index) => builder.merge(index, diff),
            Err(problem) => builder.problems.push(format!("{id}: {problem}")),
        }
    }
    (builder.elements, builder.problems)
}

/// The element id a differential element addresses: its `id`, or (older profiles) its path, with
/// its slice name and that of the nearest sliced ancestor named before it.
fn differential_id(
    diff: &Json,
    last_id_of_path: &std::collections::HashMap<String, String>,
) -> Option<String> {
    if let Some(id) = diff.get("id").and_then(Json::as_str) {
        return Some(id.to_owned());
    }
    let path = diff.get("path").and_then(Json::as_str)?;
    let mut id = match path.rfind('.') {
        Some(dot) => {
            let parent = &path[..dot];
            let parent_id = last_id_of_path
                .get(parent)
                .cloned()
                .unwrap_or_else(|| parent.to_owned());
            format!("{parent_id}{}", &path[dot..])
        }
        None => path.to_owned(),
    };
    if let Some(slice) = diff.get("sliceName").and_then(Json::as_str) {
        id = format!("{id}:{slice}");
    }
    Some(id)
}

struct Builder<'a> {
    elements: Vec<Json>,
    problems: Vec<String>,
    type_snapshot: &'a dyn Fn(&str) -> Option<Vec<Json>>,
    /// Elements whose types a renamed choice has narrowed (the next renamed choice adds its type).
    narrowed: Vec<String>,
}

fn id_of(element: &Json) -> &str {
    element
        .get("id")
        .or_else(|| element.get("path"))
        .and_then(Json::as_str)
        .unwrap_or_default()
}

/// `Observation.component:bp.code` -> `Observation.component.code`.
fn path_of_id(id: &str) -> String {
    id.split('.')
        .map(|segment| segment.split(':').next().unwrap_or(segment))
        .collect::<Vec<_>>()
        .join(".")
}

fn type_codes(element: &Json) -> Vec<String> {
    element
        .get("type")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("code").and_then(Json::as_str))
        .map(str::to_owned)
        .collect()
}

/// `valueQuantity` names `value[x]` with type `Quantity`; `valueString`, type `string`.
fn choice_type<'t>(segment: &str, choice_name: &str, types: &'t [String]) -> Option<&'t String> {
    let suffix = segment.strip_prefix(choice_name.trim_end_matches("[x]"))?;
    if !suffix.starts_with(|c: char| c.is_ascii_uppercase()) {
        return None;
    }
    types.iter().find(|code| {
        let mut chars = code.chars();
        chars.next().is_some_and(|first| {
            suffix.starts_with(first.to_ascii_uppercase()) && suffix[1..] == *chars.as_str()
        })
    })
}

impl Builder<'_> {
    /// A profile of a profile keeps the base's ids; the root keeps the base's type name. Nothing to
    /// do unless the base's root is named differently (a logical model's base): then the ids are
    /// renamed to this definition's type.
    fn rebase_root(&mut self, definition: &Json) {
        let Some(own) = definition.get("type").and_then(Json::as_str) else {
            return;
        };
        let Some(base_root) = self.elements.first().map(|e| id_of(e).to_owned()) else {
            return;
        };
        if base_root == own || base_root.contains('.') {
            return;
        }
        for element in &mut self.elements {
            for key in ["id", "path"] {
                if let Some(Json::String(s)) = element.get_mut(key)
                    && (s == &base_root || s.starts_with(&format!("{base_root}.")))
                {
                    *s = format!("{own}{}", &s[base_root.len()..]);
                }
            }
        }
    }

    fn position(&self, id: &str) -> Option<usize> {
        self.elements.iter().position(|e| id_of(e) == id)
    }

    /// The index of the element `id` names, adding it (as a slice, or by unfolding its parent's
    /// type) when the snapshot does not have it yet.
    fn locate(&mut self, id: &str, depth: usize) -> Result<usize, String> {
        if let Some(found) = self.position(id) {
            return Ok(found);
        }
        if depth > MAX_UNFOLD {
            return Err("nested too deeply to unfold".into());
        }
        let (parent_id, segment) = match id.rfind('.') {
            Some(dot) if !id[dot..].contains(':') || id.rfind(':') < Some(dot) => {
                (&id[..dot], &id[dot + 1..])
            }
            // `A.b:s` (the slice name may itself hold dots: `A.b:s.t` is then ambiguous;
            // element ids put the slice in the last segment, as here).
            _ => {
                let colon = id.rfind(':').ok_or("not an element of the base")?;
                let sliced = &id[..colon];
                let name = &id[colon + 1..];
                return self.add_slice(sliced, name, depth);
            }
        };
        if let Some((name, slice)) = segment.split_once(':') {
            // `A.b.c:s`: the slice of `A.b.c`.
            let sliced = format!("{parent_id}.{name}");
            return self.add_slice(&sliced, slice, depth);
        }
        let parent = self.locate(parent_id, depth + 1)?;
        let parent_id = id_of(&self.elements[parent]).to_owned();
        self.unfold(parent, depth)?;
        let parent = self.position(&parent_id).unwrap_or(parent);
        let wanted = format!("{}.{segment}", id_of(&self.elements[parent]));
        if let Some(found) = self.position(&wanted) {
            return Ok(found);
        }
        // A renamed choice: `valueQuantity` is `value[x]` narrowed to Quantity.
        let prefix = format!("{}.", id_of(&self.elements[parent]));
        let choice = self.elements.iter().position(|e| {
            let child = id_of(e);
            child.strip_prefix(&prefix).is_some_and(|name| {
                name.ends_with("[x]")
                    && !name.contains('.')
                    && !name.contains(':')
                    && choice_type(segment, name, &type_codes(e)).is_some()
            })
        });
        match choice {
            Some(index) => {
                let name = id_of(&self.elements[index])[prefix.len()..].to_owned();
                let code = choice_type(segment, &name, &type_codes(&self.elements[index]))
                    .cloned()
                    .unwrap_or_default();
                self.narrow(index, &code);
                Ok(index)
            }
            None => Err(format!(
                "{segment} {NOT_AN_ELEMENT} {}",
                id_of(&self.elements[parent])
            )),
        }
    }

    /// Narrows a choice element to `code`: the first renamed choice replaces the base's list of
    /// types, later ones add theirs.
    fn narrow(&mut self, index: usize, code: &str) {
        let id = id_of(&self.elements[index]).to_owned();
        let Some(types) = self.elements[index]
            .get("type")
            .and_then(Json::as_array)
            .cloned()
        else {
            return;
        };
        let picked: Vec<Json> = types
            .into_iter()
            .filter(|t| t.get("code").and_then(Json::as_str) == Some(code))
            .collect();
        let element = self.elements[index]
            .as_object_mut()
            .expect("elements are objects");
        if self.narrowed.contains(&id) {
            if let Some(Json::Array(list)) = element.get_mut("type")
                && !list
                    .iter()
                    .any(|t| t.get("code").and_then(Json::as_str) == Some(code))
            {
                list.extend(picked);
            }
        } else {
            element.insert("type".into(), Json::Array(picked));
            self.narrowed.push(id);
        }
    }

    /// Adds the slice `name` of the element `sliced`, after its children and existing slices.
    fn add_slice(&mut self, sliced: &str, name: &str, depth: usize) -> Result<usize, String> {
        if name.contains('/') {
            return Err("reslicing is not supported".into());
        }
        // A type slice of a choice (`value[x]:valueQuantity`) narrows the choice itself.
        if sliced.ends_with("[x]") {
            let index = self.locate(sliced, depth + 1)?;
            let last = sliced.rsplit('.').next().unwrap_or(sliced);
            let codes = type_codes(&self.elements[index]);
            if let Some(code) = choice_type(name, last, &codes).cloned() {
                self.narrow(index, &code);
                return Ok(index);
            }
        }
        let base = self.locate(sliced, depth + 1)?;
        let base_id = id_of(&self.elements[base]).to_owned();
        let mut end = base + 1;
        while end < self.elements.len() {
            let id = id_of(&self.elements[end]);
            if id.starts_with(&format!("{base_id}.")) || id.starts_with(&format!("{base_id}:")) {
                end += 1;
            } else {
                break;
            }
        }
        let mut slice = self.elements[base].clone();
        let object = slice.as_object_mut().expect("elements are objects");
        object.remove("slicing");
        object.insert("id".into(), Json::String(format!("{base_id}:{name}")));
        object.insert("sliceName".into(), Json::String(name.to_owned()));
        self.elements.insert(end, slice);
        Ok(end)
    }

    /// Puts the children of `parent` into the snapshot if it has none there yet: those of the
    /// element it slices, of the element its content reference names, or of its type.
    fn unfold(&mut self, parent: usize, depth: usize) -> Result<(), String> {
        let parent_id = id_of(&self.elements[parent]).to_owned();
        let child_prefix = format!("{parent_id}.");
        if self
            .elements
            .get(parent + 1)
            .is_some_and(|next| id_of(next).starts_with(&child_prefix))
        {
            return Ok(());
        }
        let parent_path = self.elements[parent]
            .get("path")
            .and_then(Json::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| path_of_id(&parent_id));
        // A slice starts with the children of what it slices.
        let source: Vec<Json> = if let Some(colon) = parent_id.rfind(':')
            && !parent_id[colon..].contains('.')
        {
            let sliced = &parent_id[..colon];
            let sliced_index = self.locate(sliced, depth + 1)?;
            self.unfold(sliced_index, depth + 1)?;
            let from = format!("{sliced}.");
            self.elements
                .iter()
                .filter(|e| id_of(e).starts_with(&from))
                .map(|e| rename(e, sliced, &parent_id, &path_of_id(sliced), &parent_path))
                .collect()
        } else if let Some(target) = self.elements[parent]
            .get("contentReference")
            .and_then(Json::as_str)
            .map(|r| r.trim_start_matches('#').to_owned())
        {
            let from = format!("{target}.");
            let copied: Vec<Json> = self
                .elements
                .iter()
                .filter(|e| id_of(e).starts_with(&from) && !id_of(e)[from.len()..].contains(':'))
                .map(|e| rename(e, &target, &parent_id, &target, &parent_path))
                .collect();
            if let Some(types) = self
                .position(&target)
                .and_then(|t| self.elements[t].get("type").cloned())
            {
                let element = self.elements[parent].as_object_mut().expect("objects");
                element.remove("contentReference");
                element.insert("type".into(), types);
            }
            copied
        } else {
            let codes = type_codes(&self.elements[parent]);
            let code = match codes.as_slice() {
                [one] => one.clone(),
                [] => return Err(format!("{parent_id} has no type to unfold")),
                _ => {
                    return Err(format!(
                        "{parent_id} has several types ({}); name one (e.g. {}{})",
                        codes.join(", "),
                        parent_id.trim_end_matches("[x]"),
                        codes[0]
                    ));
                }
            };
            let Some(type_elements) = (self.type_snapshot)(&code) else {
                return Err(format!("the definition of {code} has no snapshot"));
            };
            type_elements
                .iter()
                .skip(1)
                .map(|e| rename(e, &code, &parent_id, &code, &parent_path))
                .collect()
        };
        // Unfolding what a slice slices inserted elements before it: find it again.
        let at = self.position(&parent_id).unwrap_or(parent) + 1;
        self.elements.splice(at..at, source);
        Ok(())
    }

    /// Applies a differential element to the snapshot element at `index`.
    fn merge(&mut self, index: usize, diff: &Json) {
        let Some(diff) = diff.as_object() else {
            return;
        };
        // A fixed value is final: a derived profile may repeat it, not change it.
        for (key, value) in diff.iter().filter(|(k, _)| k.starts_with("fixed")) {
            if let Some(base) = self.elements[index].get(key.as_str())
                && base != value
            {
                let id = id_of(&self.elements[index]).to_owned();
                self.problems
                    .push(format!("{id}: {FIXED_CHANGED}: {value} in place of {base}"));
            }
        }
        let element: &mut Map<String, Json> =
            self.elements[index].as_object_mut().expect("objects");
        for (key, value) in diff {
            match key.as_str() {
                "id" | "path" | "sliceName" | "base" => {}
                "constraint" => {
                    let list = element
                        .entry("constraint")
                        .or_insert_with(|| Json::Array(Vec::new()));
                    if let (Json::Array(list), Json::Array(added)) = (list, value) {
                        for constraint in added {
                            let key = constraint.get("key");
                            list.retain(|c| key.is_none() || c.get("key") != key);
                            list.push(constraint.clone());
                        }
                    }
                }
                "condition" | "mapping" | "alias" | "code" => {
                    let list = element
                        .entry(key.clone())
                        .or_insert_with(|| Json::Array(Vec::new()));
                    if let (Json::Array(list), Json::Array(added)) = (list, value) {
                        for item in added {
                            if !list.contains(item) {
                                list.push(item.clone());
                            }
                        }
                    }
                }
                "slicing" => {
                    let slicing = element
                        .entry("slicing")
                        .or_insert_with(|| Json::Object(Map::new()));
                    if let (Json::Object(slicing), Json::Object(added)) = (slicing, value) {
                        for (k, v) in added {
                            slicing.insert(k.clone(), v.clone());
                        }
                    }
                }
                "binding" => {
                    // A binding without a value set keeps the base's value set.
                    let mut binding = value.clone();
                    if binding.get("valueSet").is_none()
                        && let (Some(base_set), Json::Object(b)) = (
                            element
                                .get("binding")
                                .and_then(|b| b.get("valueSet"))
                                .cloned(),
                            &mut binding,
                        )
                    {
                        b.insert("valueSet".into(), base_set);
                    }
                    element.insert(key.clone(), binding);
                }
                _ => {
                    for family in ["fixed", "pattern", "defaultValue", "minValue", "maxValue"] {
                        if key.starts_with(family) {
                            element.retain(|k, _| !k.starts_with(family));
                        }
                    }
                    element.insert(key.clone(), value.clone());
                }
            }
        }
        // A type constrained by name replaces a narrowing by a renamed choice.
        if diff.contains_key("type") {
            let id = id_of(&self.elements[index]).to_owned();
            self.narrowed.retain(|n| n != &id);
        }
    }
}

/// A copy of `element` (of the type or element `from_id`, path `from_path`) placed under
/// `to_id` / `to_path`.
fn rename(element: &Json, from_id: &str, to_id: &str, from_path: &str, to_path: &str) -> Json {
    let mut copy = element.clone();
    if let Some(object) = copy.as_object_mut() {
        let id = id_of(element).to_owned();
        if let Some(rest) = id.strip_prefix(from_id) {
            object.insert("id".into(), Json::String(format!("{to_id}{rest}")));
        }
        if let Some(path) = element.get("path").and_then(Json::as_str)
            && let Some(rest) = path.strip_prefix(from_path)
        {
            object.insert("path".into(), Json::String(format!("{to_path}{rest}")));
        }
    }
    copy
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn types(code: &str) -> Option<Vec<Json>> {
        match code {
            "Identifier" => Some(vec![
                json!({"id": "Identifier", "path": "Identifier", "min": 0, "max": "*"}),
                json!({"id": "Identifier.system", "path": "Identifier.system", "min": 0, "max": "1", "type": [{"code": "uri"}]}),
                json!({"id": "Identifier.value", "path": "Identifier.value", "min": 0, "max": "1", "type": [{"code": "string"}]}),
            ]),
            _ => None,
        }
    }

    fn base() -> Vec<Json> {
        vec![
            json!({"id": "Patient", "path": "Patient", "min": 0, "max": "*"}),
            json!({"id": "Patient.identifier", "path": "Patient.identifier", "min": 0, "max": "*", "type": [{"code": "Identifier"}]}),
            json!({"id": "Patient.deceased[x]", "path": "Patient.deceased[x]", "min": 0, "max": "1", "type": [{"code": "boolean"}, {"code": "dateTime"}]}),
            json!({"id": "Patient.active", "path": "Patient.active", "min": 0, "max": "1", "type": [{"code": "boolean"}]}),
        ]
    }

    fn ids(elements: &[Json]) -> Vec<&str> {
        elements.iter().map(id_of).collect()
    }

    #[test]
    fn a_slice_and_its_children_are_added_after_the_sliced_element() {
        let profile = json!({"type": "Patient", "differential": {"element": [
            {"id": "Patient.identifier", "path": "Patient.identifier", "slicing": {"discriminator": [{"type": "value", "path": "system"}], "rules": "open"}},
            {"id": "Patient.identifier:mrn", "path": "Patient.identifier", "sliceName": "mrn", "min": 1},
            {"id": "Patient.identifier:mrn.system", "path": "Patient.identifier.system", "min": 1, "fixedUri": "urn:mrn"},
            {"id": "Patient.active", "path": "Patient.active", "min": 1}
        ]}});
        let (elements, problems) = generate(&profile, &base(), &types);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            ids(&elements),
            [
                "Patient",
                "Patient.identifier",
                "Patient.identifier.system",
                "Patient.identifier.value",
                "Patient.identifier:mrn",
                "Patient.identifier:mrn.system",
                "Patient.identifier:mrn.value",
                "Patient.deceased[x]",
                "Patient.active"
            ]
        );
        assert_eq!(elements[4]["min"], 1);
        assert_eq!(elements[4]["sliceName"], "mrn");
        assert_eq!(elements[5]["fixedUri"], "urn:mrn");
        assert_eq!(elements[5]["path"], "Patient.identifier.system");
        assert_eq!(elements[8]["min"], 1);
    }

    #[test]
    fn a_renamed_choice_narrows_the_choice_and_what_cannot_apply_is_reported() {
        let profile = json!({"type": "Patient", "differential": {"element": [
            {"id": "Patient.deceasedBoolean", "path": "Patient.deceasedBoolean", "fixedBoolean": false},
            {"id": "Patient.nothing", "path": "Patient.nothing", "min": 1}
        ]}});
        let (elements, problems) = generate(&profile, &base(), &types);
        assert_eq!(elements[2]["type"], json!([{"code": "boolean"}]));
        assert_eq!(elements[2]["fixedBoolean"], false);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("nothing is not an element of Patient"));
    }

    #[test]
    fn paths_without_ids_follow_the_slice_named_before_them() {
        let profile = json!({"type": "Patient", "differential": {"element": [
            {"path": "Patient.identifier", "sliceName": "mrn", "min": 1},
            {"path": "Patient.identifier.value", "min": 1}
        ]}});
        let (elements, problems) = generate(&profile, &base(), &types);
        assert!(problems.is_empty(), "{problems:?}");
        let value = elements
            .iter()
            .find(|e| id_of(e) == "Patient.identifier:mrn.value")
            .expect("the slice's value");
        assert_eq!(value["min"], 1);
    }
}
