//! JSON text to `serde_json::Value`, with every object and array allocated at its final size.
//!
//! serde_json builds an object by inserting into an empty map, which grows its hash table and
//! its entries three or four times for a FHIR element of a dozen members, and an array the same
//! way (JSON gives no length up front). `validate` parses every line of a file; parsing this way
//! took 2% off its instructions per CarePlan (callgrind). Here each object's members and each
//! array's items are first
//! gathered on one stack shared by the whole parse, then moved into a map or vector of exactly
//! their number. The result is the same `Value` serde_json makes (same member order, the last of
//! a duplicated member winning in the first one's place), which the tests check.

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// `serde_json::from_str::<Value>(text)`, without regrowing maps and arrays.
pub fn from_str(text: &str) -> serde_json::Result<Value> {
    let mut scratch = Scratch::default();
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = Seed(&mut scratch).deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// The members and items of the objects and arrays still open, innermost last.
#[derive(Default)]
struct Scratch {
    members: Vec<(String, Value)>,
    items: Vec<Value>,
}

struct Seed<'s>(&'s mut Scratch);

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let scratch = self.0;
        let start = scratch.items.len();
        while let Some(item) = seq.next_element_seed(Seed(scratch))? {
            scratch.items.push(item);
        }
        Ok(Value::Array(scratch.items.drain(start..).collect()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let scratch = self.0;
        let start = scratch.members.len();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(Seed(scratch))?;
            scratch.members.push((key, value));
        }
        let mut object = Map::with_capacity(scratch.members.len() - start);
        for (key, value) in scratch.members.drain(start..) {
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same_as_serde_json(text: &str) {
        let ours = from_str(text);
        let theirs = serde_json::from_str::<Value>(text);
        match (&ours, &theirs) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a, b, "{text}");
                // Equal maps may differ in order; the serialized text may not.
                assert_eq!(a.to_string(), b.to_string(), "{text}");
            }
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{text}"),
            _ => panic!("{text}: ours {ours:?}, serde_json's {theirs:?}"),
        }
    }

    #[test]
    fn parses_as_serde_json_does() {
        for text in [
            "{}",
            "[]",
            "null",
            "true",
            " 0 ",
            "-0",
            "-1",
            "1.5e3",
            "18446744073709551615",
            "-9223372036854775808",
            "1e400",
            "0.1000",
            r#""a\u00e9\ud83d\ude00\n""#,
            r#"{"b":1,"a":[1,{"c":[]},[[],[{}]]],"d":{"e":null}}"#,
            r#"{"a":1,"b":2,"a":3}"#,
            r#"[{"x":[1,2,3]},{"y":{"z":[{"w":true}]}},4]"#,
            r#"{"a":1"#,
            r#"{"a":1} x"#,
            "[1,]",
            r#"{"a" 1}"#,
            "",
        ] {
            same_as_serde_json(text);
        }
        for fixture in std::fs::read_dir("fixtures/fhir").expect("fixtures") {
            let path = fixture.expect("entry").path();
            if path.extension().is_some_and(|e| e == "json") {
                same_as_serde_json(&std::fs::read_to_string(&path).expect("fixture"));
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn any_json_parses_as_serde_json_parses_it(value in json()) {
            same_as_serde_json(&value.to_string());
            same_as_serde_json(&serde_json::to_string_pretty(&value).expect("serializes"));
        }
    }

    fn json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "[a-c\\u{e9}\"\\\\]{0,4}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec(("[a-d]{1,2}", inner), 0..6)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }
}
