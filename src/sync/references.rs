//! References between resources, rewritten between the clinic's ids and a target's (pure).
//!
//! The clinic's resources refer to each other as `Type/clinic-id`; at a target the same resources
//! have the target's ids. A push rewrites each reference to the target's id of the resource it
//! names; one that the target does not hold (a type it does not take, a record consent keeps
//! from it) becomes a logical reference by the clinic's identifier, or a `display` alone. A pull
//! rewrites the other way.

use serde_json::{Map, Value, json};

/// What a reference to a clinic resource becomes at the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// `Type/remote-id`.
    Remote(String),
    /// A logical reference: `identifier` with this system and the clinic id as its value.
    Logical(String),
    /// Neither: only the reference's `display` stays.
    DisplayOnly,
}

/// The relative references (`Type/id`) a resource makes, in document order, without repeats.
pub fn references(resource: &Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    visit(resource, &mut |reference| {
        if let Some(target) = relative(reference)
            && !found.contains(&target)
        {
            found.push(target);
        }
    });
    found
}

/// Rewrites every relative reference as `resolve(type, id)` says.
pub fn rewrite(resource: &mut Value, resolve: &mut impl FnMut(&str, &str) -> Resolved) {
    visit_mut(resource, &mut |object| {
        let Some((resource_type, id)) = object
            .get("reference")
            .and_then(Value::as_str)
            .and_then(relative)
        else {
            return;
        };
        match resolve(&resource_type, &id) {
            Resolved::Remote(remote) => {
                object.insert(
                    "reference".into(),
                    json!(format!("{resource_type}/{remote}")),
                );
            }
            Resolved::Logical(system) => {
                object.remove("reference");
                object.insert("type".into(), json!(resource_type));
                object.insert(
                    "identifier".into(),
                    json!({ "system": system, "value": id }),
                );
            }
            Resolved::DisplayOnly => {
                object.remove("reference");
                if !object.contains_key("display") {
                    object.insert(
                        "display".into(),
                        json!(format!("{resource_type} not shared")),
                    );
                }
            }
        }
    });
}

/// `Type/id` (relative, no version, no fragment) as its parts.
fn relative(reference: &str) -> Option<(String, String)> {
    let (resource_type, id) = reference.split_once('/')?;
    let typed = resource_type.chars().next()?.is_ascii_uppercase()
        && resource_type.chars().all(|c| c.is_ascii_alphabetic());
    let plain = !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    (typed && plain).then(|| (resource_type.to_owned(), id.to_owned()))
}

fn visit(value: &Value, on_reference: &mut impl FnMut(&str)) {
    match value {
        Value::Object(object) => {
            if let Some(Value::String(reference)) = object.get("reference") {
                on_reference(reference);
            }
            for child in object.values() {
                visit(child, on_reference);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| visit(item, on_reference)),
        _ => {}
    }
}

fn visit_mut(value: &mut Value, on_object: &mut impl FnMut(&mut Map<String, Value>)) {
    match value {
        Value::Object(object) => {
            if object.get("reference").is_some_and(Value::is_string) {
                on_object(object);
            }
            for child in object.values_mut() {
                visit_mut(child, on_object);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| visit_mut(item, on_object)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Value {
        json!({
            "resourceType": "CarePlan",
            "subject": { "reference": "Patient/p1", "display": "A client" },
            "goal": [{ "reference": "Goal/g1" }, { "reference": "Goal/g2" }],
            "author": { "reference": "Practitioner/s1" },
            "basedOn": [{ "reference": "https://elsewhere.example/CarePlan/x" }],
            "contained": [{ "resourceType": "Goal", "id": "c" }],
            "addresses": [{ "reference": "#c" }]
        })
    }

    #[test]
    fn finds_relative_references_only() {
        let found = references(&plan());
        let names: Vec<String> = found.iter().map(|(t, i)| format!("{t}/{i}")).collect();
        assert_eq!(
            names,
            ["Patient/p1", "Goal/g1", "Goal/g2", "Practitioner/s1"]
        );
    }

    #[test]
    fn rewrites_each_as_resolved() {
        let mut resource = plan();
        rewrite(&mut resource, &mut |t, id| match (t, id) {
            ("Patient", _) => Resolved::Remote("900".into()),
            ("Goal", "g1") => Resolved::Remote("901".into()),
            ("Goal", _) => Resolved::Logical("https://clinic.example/goal".into()),
            _ => Resolved::DisplayOnly,
        });
        assert_eq!(
            resource["subject"],
            json!({ "reference": "Patient/900", "display": "A client" })
        );
        assert_eq!(resource["goal"][0]["reference"], "Goal/901");
        assert_eq!(
            resource["goal"][1],
            json!({ "type": "Goal", "identifier": { "system": "https://clinic.example/goal", "value": "g2" } })
        );
        assert_eq!(
            resource["author"],
            json!({ "display": "Practitioner not shared" })
        );
        // Absolute and contained references are left alone.
        assert_eq!(
            resource["basedOn"][0]["reference"],
            "https://elsewhere.example/CarePlan/x"
        );
        assert_eq!(resource["addresses"][0]["reference"], "#c");
    }
}
