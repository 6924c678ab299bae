//! Formats of FHIR primitive values (FHIR R4 §2.24 "Primitive Types").

use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;

fn pattern(cell: &'static OnceLock<Regex>, text: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(text).expect("valid primitive pattern"))
}

/// The first byte below U+0020 other than tab, carriage return and line feed. Every string of
/// every resource passes here, so eight bytes are tested at a time for any byte below 0x20
/// (the bit trick of "Bit Twiddling Hacks", `hasless`), and only such a word byte by byte.
pub(super) fn control_character(bytes: &[u8]) -> Option<u8> {
    const ONES: u64 = u64::MAX / 255;
    let forbidden = |b: &u8| *b < 0x20 && !matches!(b, b'\t' | b'\r' | b'\n');
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let x = u64::from_le_bytes(word.try_into().unwrap_or_default());
        if x.wrapping_sub(ONES * 0x20) & !x & (ONES * 0x80) != 0
            && let Some(b) = word.iter().find(|b| forbidden(b))
        {
            return Some(*b);
        }
    }
    words.remainder().iter().find(|b| forbidden(b)).copied()
}

/// Unicode whitespace anywhere in `text`; ASCII text (nearly every URI) is scanned by byte.
fn has_whitespace(text: &str) -> bool {
    if text.is_ascii() {
        text.bytes().any(|b| b.is_ascii_whitespace() || b == 0x0B)
    } else {
        text.contains(char::is_whitespace)
    }
}

/// None when `value` is a valid `type_code`, else what is wrong (without quoting the value).
pub fn check(type_code: &str, value: &Value) -> Option<String> {
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
    // R4 (Datatypes, string): no character below U+0020 but tab, carriage return and line
    // feed, in any string-valued primitive (XML refuses them in a narrative, which is parsed).
    let not_scanned = matches!(
        type_code,
        "boolean" | "integer" | "positiveInt" | "unsignedInt" | "decimal" | "integer64" | "xhtml"
    );
    if !not_scanned && let Some(control) = text.and_then(|t| control_character(t.as_bytes())) {
        return Some(format!(
            "contains the control character U+{control:04X}: below U+0020 only tab, carriage return and line feed are allowed"
        ));
    }
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
        // The date and time formats are the regexes of the R4 specification, checked byte by
        // byte: they run for every date in every resource.
        "date" => needs_string(
            text.is_some_and(|t| is_date(t.as_bytes())),
            "YYYY, YYYY-MM or YYYY-MM-DD",
        ),
        "dateTime" => needs_string(
            text.is_some_and(|t| is_date_time(t.as_bytes(), false)),
            "a date, or a date and time with seconds and a time zone",
        ),
        "instant" => needs_string(
            text.is_some_and(|t| is_date_time(t.as_bytes(), true)),
            "a date and time to the second with a time zone",
        ),
        "time" => needs_string(text.is_some_and(|t| is_time(t.as_bytes())), "hh:mm:ss"),
        "id" => needs_string(text.is_some_and(is_id), "1-64 letters, digits, '-' or '.'"),
        "oid" => needs_string(
            text.is_some_and(|t| pattern(&OID, r"^urn:oid:[0-2](\.(0|[1-9][0-9]*))+$").is_match(t)),
            "urn:oid:...",
        ),
        "uuid" => needs_string(
            text.is_some_and(|t| {
                pattern(
                    &UUID,
                    r"^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
                )
                .is_match(t)
            }),
            "urn:uuid:...",
        ),
        "base64Binary" => needs_string(
            text.is_some_and(|t| pattern(&BASE64, r"^(\s*([0-9a-zA-Z+/=]){4}\s*)+$").is_match(t)),
            "base64",
        ),
        "uri" | "url" | "canonical" => needs_string(
            text.is_some_and(|t| !t.is_empty() && !has_whitespace(t)),
            "no whitespace",
        ),
        "code" => needs_string(
            text.is_some_and(|t| {
                !t.is_empty() && t.trim() == t && !t.as_bytes().windows(2).any(|w| w == b"  ")
            }),
            "no leading, trailing or double spaces",
        ),
        "string" | "markdown" => needs_string(
            text.is_some_and(|t| !t.trim().is_empty()),
            "must not be empty",
        ),
        "xhtml" => match text {
            Some(div) => super::xhtml::problem(div),
            None => Some("must be a JSON string".into()),
        },
        _ => None,
    }
}

/// The value of a run of ASCII digits, saturating: a run of any length is a number (decimal
/// seconds may have many digits), and only short fields are compared with a range.
fn number(digits: &[u8]) -> Option<u32> {
    (!digits.is_empty() && digits.iter().all(u8::is_ascii_digit)).then(|| {
        digits.iter().fold(0u32, |n, d| {
            n.saturating_mul(10).saturating_add(u32::from(d - b'0'))
        })
    })
}

fn in_range(digits: &[u8], range: std::ops::RangeInclusive<u32>) -> bool {
    number(digits).is_some_and(|n| range.contains(&n))
}

/// `YYYY`, `YYYY-MM` or `YYYY-MM-DD` (day 01-31, as the R4 regex).
fn is_date(b: &[u8]) -> bool {
    let year = b.len() >= 4 && number(&b[..4]).is_some();
    match b.len() {
        4 => year,
        7 => year && b[4] == b'-' && in_range(&b[5..7], 1..=12),
        10 => {
            year && b[4] == b'-'
                && in_range(&b[5..7], 1..=12)
                && b[7] == b'-'
                && in_range(&b[8..10], 1..=31)
        }
        _ => false,
    }
}

/// `hh:mm:ss` with optional decimal seconds.
fn is_time(b: &[u8]) -> bool {
    b.len() >= 8
        && in_range(&b[..2], 0..=23)
        && b[2] == b':'
        && in_range(&b[3..5], 0..=59)
        && b[5] == b':'
        && in_range(&b[6..8], 0..=60)
        && (b.len() == 8 || (b[8] == b'.' && number(&b[9..]).is_some()))
}

/// `Z` or `+hh:mm`/`-hh:mm` up to 14:00.
fn is_zone(b: &[u8]) -> bool {
    match b {
        [b'Z'] => true,
        [b'+' | b'-', rest @ ..] if rest.len() == 5 && rest[2] == b':' => {
            (in_range(&rest[..2], 0..=13) && in_range(&rest[3..], 0..=59)) || rest == b"14:00"
        }
        _ => false,
    }
}

/// A dateTime (a partial date, or a full date with time and zone); an instant needs the time.
fn is_date_time(b: &[u8], instant: bool) -> bool {
    if b.len() <= 10 {
        return !instant && is_date(b);
    }
    if !is_date(&b[..10]) || b[10] != b'T' {
        return false;
    }
    let rest = &b[11..];
    match rest.iter().position(|c| matches!(c, b'Z' | b'+' | b'-')) {
        Some(zone) => is_time(&rest[..zone]) && is_zone(&rest[zone..]),
        None => false,
    }
}

fn is_id(t: &str) -> bool {
    (1..=64).contains(&t.len())
        && t.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
}

/// txt-2: the narrative has some text outside its tags.
pub fn narrative_has_text(div: &str) -> bool {
    let mut in_tag = false;
    div.chars().any(|c| match c {
        '<' => {
            in_tag = true;
            false
        }
        '>' => {
            in_tag = false;
            false
        }
        c => !in_tag && !c.is_whitespace(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn control_characters_are_found_wherever_they_are() {
        for length in 0..40 {
            for at in 0..length {
                for byte in 0u8..0x80 {
                    let mut text = vec![b'a'; length];
                    text[at] = byte;
                    let expected =
                        (byte < 0x20 && !matches!(byte, b'\t' | b'\r' | b'\n')).then_some(byte);
                    assert_eq!(control_character(&text), expected, "{length} {at} {byte}");
                }
            }
        }
        assert_eq!(control_character("é\u{2028}\t\r\n€".as_bytes()), None);
    }

    #[test]
    fn control_characters_are_refused_in_every_string_but_tab_cr_and_lf() {
        for type_code in ["string", "code", "markdown", "uri", "id"] {
            assert!(
                check(type_code, &json!("a\u{b}b"))
                    .unwrap()
                    .contains("U+000B"),
                "{type_code}"
            );
        }
        assert!(
            check("string", &json!("a\u{c}b"))
                .unwrap()
                .contains("U+000C")
        );
        assert_eq!(check("string", &json!("line\r\nnext\tcolumn")), None);
        assert_eq!(check("markdown", &json!("* a\n* b")), None);
        let div = "<div xmlns=\"http://www.w3.org/1999/xhtml\">a\u{b}b</div>";
        assert!(check("xhtml", &json!(div)).is_some());
    }

    #[test]
    fn whitespace_is_found_as_unicode_defines_it() {
        for c in (0u32..0x3100).filter_map(char::from_u32) {
            let text = format!("http://x/{c}y");
            assert_eq!(
                has_whitespace(&text),
                text.contains(char::is_whitespace),
                "{c:?}"
            );
        }
    }

    #[test]
    fn long_digit_runs_neither_overflow_nor_pass_out_of_range() {
        // 11 fractional-second digits overflowed a u32 (a panic in debug builds).
        assert!(check("dateTime", &json!("2026-11-25T10:00:00.12345678901Z")).is_none());
        assert!(
            check(
                "instant",
                &json!("2026-11-25T10:00:00.99999999999999999999+01:00")
            )
            .is_none()
        );
        assert!(check("time", &json!("10:00:00.12345678901")).is_none());
        assert_eq!(number(b"99999999999"), Some(u32::MAX));
        assert!(!in_range(b"4294967297", 0..=59));
    }

    #[test]
    fn formats() {
        assert!(check("date", &json!("2026-11")).is_none());
        assert!(check("date", &json!("2026-13-01")).is_some());
        assert!(check("dateTime", &json!("2026-11-25T10:00:00Z")).is_none());
        assert!(check("dateTime", &json!("2026-11-25T10:00")).is_some());
        assert!(check("instant", &json!("2026-11-25")).is_some());
        assert!(check("instant", &json!("2026-11-25T10:00:00.123+14:00")).is_none());
        assert!(check("instant", &json!("2026-11-25T10:00:00+14:30")).is_some());
        assert!(check("dateTime", &json!("2026-11-25T24:00:00Z")).is_some());
        assert!(check("dateTime", &json!("2026-11-25T23:59:60-05:00")).is_none());
        assert!(check("dateTime", &json!("2026-11-25T10:00:00.Z")).is_some());
        assert!(check("dateTime", &json!("2026")).is_none());
        assert!(check("date", &json!("2026-00")).is_some());
        assert!(check("date", &json!("2026-02-32")).is_some());
        assert!(check("date", &json!("26-02-01")).is_some());
        assert!(check("time", &json!("07:30:00")).is_none());
        assert!(check("time", &json!("7:30:00")).is_some());
        assert!(check("id", &json!("a".repeat(65))).is_some());
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
        // US Core's own examples: a title whose text has words starting with "on" is fine.
        let titled = r#"<div xmlns="http://www.w3.org/1999/xhtml"><td title="based on one ombCategory">x</td></div>"#;
        assert!(check("xhtml", &json!(titled)).is_none());
        let unquoted =
            r#"<div xmlns="http://www.w3.org/1999/xhtml"><p class=x onmouseover=y>a</p></div>"#;
        assert!(check("xhtml", &json!(unquoted)).is_some());
        let after_quote =
            r#"<div xmlns="http://www.w3.org/1999/xhtml"><p title='a b' onload="y">a</p></div>"#;
        assert!(check("xhtml", &json!(after_quote)).is_some());
    }
}
