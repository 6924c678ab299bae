//! Building resources by moving values in. `json!` serializes every value it interpolates: a
//! nested `Value` is deep-copied through serde and a `String` copied, and a resource built
//! from helpers (`coding`, `reference`, `meta`) is copied once per level it is nested in.
//! On the export path that was most of the mapping's allocations; `fhir!` (the syntax of
//! `json!` for the resources' literals: string names, nested objects and arrays, expressions
//! taken with `Value::from`) moves instead.

use serde_json::{Map, Value};

/// `json!` without the copies: `fhir!({ "name": expr, "nested": { ... }, "list": [ ... ] })`.
/// Each expression is moved in with `Value::from` (a `Value`, `String`, `&str`, number, bool,
/// `Vec` or `Option` of them); names are string literals.
macro_rules! fhir {
    (@object [$($done:tt)*]) => {
        $crate::json_build::object([$($done)*])
    };
    (@object [$($done:tt)*] $name:literal : { $($inner:tt)* } $(, $($rest:tt)*)?) => {
        $crate::json_build::fhir!(
            @object [$($done)* ($name, $crate::json_build::fhir!({ $($inner)* })),]
            $($($rest)*)?
        )
    };
    (@object [$($done:tt)*] $name:literal : [ $($inner:tt)* ] $(, $($rest:tt)*)?) => {
        $crate::json_build::fhir!(
            @object [$($done)* ($name, $crate::json_build::fhir!([ $($inner)* ])),]
            $($($rest)*)?
        )
    };
    (@object [$($done:tt)*] $name:literal : $value:expr $(, $($rest:tt)*)?) => {
        $crate::json_build::fhir!(
            @object [$($done)* ($name, serde_json::Value::from($value)),]
            $($($rest)*)?
        )
    };
    (@array [$($done:tt)*]) => {
        serde_json::Value::Array(vec![$($done)*])
    };
    (@array [$($done:tt)*] { $($inner:tt)* } $(, $($rest:tt)*)?) => {
        $crate::json_build::fhir!(
            @array [$($done)* $crate::json_build::fhir!({ $($inner)* }),]
            $($($rest)*)?
        )
    };
    (@array [$($done:tt)*] [ $($inner:tt)* ] $(, $($rest:tt)*)?) => {
        $crate::json_build::fhir!(
            @array [$($done)* $crate::json_build::fhir!([ $($inner)* ]),]
            $($($rest)*)?
        )
    };
    (@array [$($done:tt)*] $value:expr $(, $($rest:tt)*)?) => {
        $crate::json_build::fhir!(
            @array [$($done)* serde_json::Value::from($value),]
            $($($rest)*)?
        )
    };
    ({ $($members:tt)* }) => {
        $crate::json_build::fhir!(@object [] $($members)*)
    };
    ([ $($items:tt)* ]) => {
        $crate::json_build::fhir!(@array [] $($items)*)
    };
    ($value:expr) => {
        serde_json::Value::from($value)
    };
}
pub(crate) use fhir;

/// A JSON object of `members`, in this order, moved in.
pub fn object<const N: usize>(members: [(&str, Value); N]) -> Value {
    let mut map = Map::with_capacity(N);
    for (name, value) in members {
        map.insert(name.to_owned(), value);
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fhir_builds_what_json_builds() {
        let nested = json!({ "b": [1, { "c": "d" }] });
        let code = String::from("x");
        let absent: Option<&str> = None;
        let built = fhir!({
            "resourceType": "Thing",
            "id": code.clone(),
            "count": 3,
            "flag": true,
            "nested": nested.clone(),
            "inline": { "deep": [ { "e": 2.5 }, [ "f", "g" ], code.as_str() ] },
            "list": vec![Value::from("h")],
            "absent": absent,
            "empty": {},
            "none": [],
        });
        let expected = json!({
            "resourceType": "Thing",
            "id": "x",
            "count": 3,
            "flag": true,
            "nested": nested,
            "inline": { "deep": [ { "e": 2.5 }, [ "f", "g" ], "x" ] },
            "list": ["h"],
            "absent": null,
            "empty": {},
            "none": [],
        });
        // The same members in the same order: serialized, byte for byte.
        assert_eq!(built.to_string(), expected.to_string());
        assert!(
            built
                .to_string()
                .starts_with(r#"{"resourceType":"Thing","id":"x","count":3,"#)
        );
        assert_eq!(fhir!([code, 1]), json!(["x", 1]));
    }
}
