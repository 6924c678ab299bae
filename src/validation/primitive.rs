//! Formats of FHIR primitive values (FHIR R4 §2.24 "Primitive Types").

use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;

fn pattern(cell: &'static OnceLock<Regex>, text: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(text).expect("valid primitive pattern"))
}

/// None when `value` is a valid `type_code`, else what is wrong (without quoting the value).
pub fn check(type_code: &str, value: &Value) -> Option<String> {
    static DATE: OnceLock<Regex> = OnceLock::new();
    static DATE_TIME: OnceLock<Regex> = OnceLock::new();
    static INSTANT: OnceLock<Regex> = OnceLock::new();
    static TIME: OnceLock<Regex> = OnceLock::new();
    static ID: OnceLock<Regex> = OnceLock::new();
    static OID: OnceLock<Regex> = OnceLock::new();
    static UUID: OnceLock<Regex> = OnceLock::new();
    static BASE64: OnceLock<Regex> = OnceLock::new();
    let text = value.as_str();
    let needs_string = |ok: bool, what: &str| -> Option<String> {
        match text {
            None => Some(format!("must be a JSON string ({type_code})")),
            Some(_) if !ok => Some(format!("is not a valid {type_code}: {what}")),
            _ => None,
        }
    };
    match type_code {
        "boolean" => (!value.is_boolean()).then(|| "must be true or false".into()),
        "integer" => match value.as_i64() {
            Some(i) if i32::try_from(i).is_ok() => None,
            _ => Some("must be a whole number in the 32-bit range".into()),
        },
        "positiveInt" => match value.as_i64() {
            Some(i) if i > 0 && i <= i64::from(i32::MAX) => None,
            _ => Some("must be a whole number above 0".into()),
        },
        "unsignedInt" => match value.as_i64() {
            Some(i) if (0..=i64::from(i32::MAX)).contains(&i) => None,
            _ => Some("must be a whole number of 0 or more".into()),
        },
        "decimal" => (!value.is_number()).then(|| "must be a JSON number".into()),
        "date" => needs_string(text.is_some_and(|t| pattern(&DATE, r"^([0-9]{4})(-(0[1-9]|1[0-2])(-(0[1-9]|[12][0-9]|3[01]))?)?$").is_match(t)), "YYYY, YYYY-MM or YYYY-MM-DD"),
        "dateTime" => needs_string(
            text.is_some_and(|t| {
                pattern(&DATE_TIME, r"^([0-9]{4})(-(0[1-9]|1[0-2])(-(0[1-9]|[12][0-9]|3[01])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|[+-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?$").is_match(t)
            }),
            "a date, or a date and time with seconds and a time zone",
        ),
        "instant" => needs_string(
            text.is_some_and(|t| {
                pattern(&INSTANT, r"^([0-9]{4})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|[+-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00))$").is_match(t)
            }),
            "a date and time to the second with a time zone",
        ),
        "time" => needs_string(text.is_some_and(|t| pattern(&TIME, r"^([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?$").is_match(t)), "hh:mm:ss"),
        "id" => needs_string(text.is_some_and(|t| pattern(&ID, r"^[A-Za-z0-9\-\.]{1,64}$").is_match(t)), "1-64 letters, digits, '-' or '.'"),
        "oid" => needs_string(text.is_some_and(|t| pattern(&OID, r"^urn:oid:[0-2](\.(0|[1-9][0-9]*))+$").is_match(t)), "urn:oid:..."),
        "uuid" => needs_string(text.is_some_and(|t| pattern(&UUID, r"^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$").is_match(t)), "urn:uuid:..."),
        "base64Binary" => needs_string(text.is_some_and(|t| pattern(&BASE64, r"^(\s*([0-9a-zA-Z+/=]){4}\s*)+$").is_match(t)), "base64"),
        "uri" | "url" | "canonical" => needs_string(text.is_some_and(|t| !t.is_empty() && !t.contains(char::is_whitespace)), "no whitespace"),
        "code" => needs_string(text.is_some_and(|t| !t.is_empty() && t.trim() == t && !t.contains("  ")), "no leading, trailing or double spaces"),
        "string" | "markdown" => needs_string(text.is_some_and(|t| !t.trim().is_empty()), "must not be empty"),
        "xhtml" => needs_string(text.is_some_and(safe_xhtml), "a <div> in the XHTML namespace without scripts, event handlers or external resources"),
        _ => None,
    }
}

/// FHIR narrative rules (txt-1, txt-2): an XHTML div, no scripts, forms or event attributes.
fn safe_xhtml(div: &str) -> bool {
    let lower = div.to_ascii_lowercase();
    let shape = lower.starts_with("<div")
        && lower.contains("http://www.w3.org/1999/xhtml")
        && lower.trim_end().ends_with("</div>");
    let banned_tag = [
        "<script", "<form", "<iframe", "<object", "<embed", "<base", "<link", "<style",
    ]
    .iter()
    .any(|t| lower.contains(t));
    let event_attribute = lower.split('<').skip(1).any(|tag| {
        let inside = tag.split('>').next().unwrap_or_default();
        inside.split_whitespace().skip(1).any(|attr| {
            attr.split('=')
                .next()
                .is_some_and(|name| name.starts_with("on"))
        })
    });
    shape && !banned_tag && !event_attribute && !lower.contains("javascript:")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats() {
        assert!(check("date", &json!("2026-11")).is_none());
        assert!(check("date", &json!("2026-13-01")).is_some());
        assert!(check("dateTime", &json!("2026-11-25T10:00:00Z")).is_none());
        assert!(check("dateTime", &json!("2026-11-25T10:00")).is_some());
        assert!(check("instant", &json!("2026-11-25")).is_some());
        assert!(check("id", &json!("abc.DEF-1")).is_none());
        assert!(check("id", &json!("a b")).is_some());
        assert!(check("code", &json!(" x")).is_some());
        assert!(check("positiveInt", &json!(0)).is_some());
        assert!(check("boolean", &json!("true")).is_some());
        assert!(
            check(
                "xhtml",
                &json!("<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>ok</p></div>")
            )
            .is_none()
        );
        assert!(
            check(
                "xhtml",
                &json!("<div xmlns=\"http://www.w3.org/1999/xhtml\"><script>x</script></div>")
            )
            .is_some()
        );
        assert!(
            check(
                "xhtml",
                &json!(
                    "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p onclick=\"x()\">a</p></div>"
                )
            )
            .is_some()
        );
    }
}
