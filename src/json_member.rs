//! Member lookup on JSON objects without hashing the key.
//!
//! With serde_json's `preserve_order` an object is an `IndexMap` hashed with SipHash, so every
//! `map.get(key)` hashes the key first. FHIR objects hold a handful of members, and the validator
//! and FHIRPath look members up about a million times per 3,000 CarePlans; scanning the entries
//! (a length test, rarely a byte compare) costs a fraction of hashing the key (callgrind: SipHash
//! was 15% of `validate`'s instructions). Large objects still use the hash index.

use serde_json::{Map, Value};

/// Objects with more members than this are looked up through their hash index.
const SCAN_UP_TO: usize = 24;

/// `map[key]`, by scanning small objects.
#[inline]
pub fn in_map<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    if map.len() > SCAN_UP_TO {
        return map.get(key);
    }
    map.iter().find(|(k, _)| k.as_str() == key).map(|(_, v)| v)
}

/// `value[key]` when `value` is an object.
#[inline]
pub fn member<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    match value {
        Value::Object(map) => in_map(map, key),
        _ => None,
    }
}

/// `map["_" + name]`: the id and extensions of the primitive `name`, without building the key.
#[inline]
pub fn primitive_sibling<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if map.len() > SCAN_UP_TO {
        let mut buffer = [0u8; 64];
        let key = buffer.get_mut(..=name.len())?;
        key[0] = b'_';
        key[1..].copy_from_slice(name.as_bytes());
        return map.get(std::str::from_utf8(key).ok()?);
    }
    map.iter()
        .find(|(k, _)| k.len() == name.len() + 1 && k.strip_prefix('_') == Some(name))
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn small_and_large_objects_find_the_same_members() {
        let small = json!({"resourceType": "Patient", "id": "a", "birthDate": "2000", "_birthDate": {"id": "x"}});
        let mut large = small.clone();
        for i in 0..40 {
            large[format!("k{i}")] = json!(i);
        }
        for value in [&small, &large] {
            let map = value.as_object().unwrap();
            assert_eq!(member(value, "id"), Some(&json!("a")));
            assert_eq!(member(value, "missing"), None);
            assert_eq!(in_map(map, "resourceType"), Some(&json!("Patient")));
            assert_eq!(
                primitive_sibling(map, "birthDate"),
                Some(&json!({"id": "x"}))
            );
            assert_eq!(primitive_sibling(map, "id"), None);
            assert_eq!(primitive_sibling(map, "irthDate"), None);
        }
        assert_eq!(member(&json!([1]), "id"), None);
    }
}
