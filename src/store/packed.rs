//! Many rows as one value: a query's rows packed by the database into one JSON array of arrays
//! (`json_group_array(json_array(...))` on SQLite, `json_agg(json_build_array(...))` on
//! PostgreSQL) and unpacked here.
//!
//! Why: through sqlx a row costs far more than the database's own work. On SQLite each row is
//! copied value by value on the connection's thread (a `malloc` per value), sent over a channel,
//! copied again into `Any` form and decoded; a bulk export spent a third of its CPU there. One
//! text value per query, cut into slices of itself, costs a fraction of that. Only TEXT and
//! BIGINT columns exist in the schema, and JSON carries both exactly.
//!
//! The reader takes only what the two databases write (strings, integers, nulls in arrays of
//! arrays) and refuses anything else. It is this module's rather than serde_json's because it
//! reads the rows into one flat list, finds each string's end with `memchr` and unescapes only a
//! string that has an escape: through serde_json the unpacking was 7% of an export's
//! instructions (callgrind, 1,000 clients). Lengths instead of JSON were tried: SQLite spent more
//! writing the lengths as digits than it saved on escaping.

use std::borrow::Cow;

use super::Backend;

/// One value of a packed row: NULL, or its text (an integer's is its decimal digits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cell<'t> {
    Null,
    Text(Cow<'t, str>),
}

/// The statement that packs the rows of `inner` (a SELECT of exactly `columns`) into one JSON
/// text, in no particular order (`tx::read_packed` puts them in id order); NULL or `[]` when
/// there are none. An `ORDER BY` inside the aggregate made SQLite copy every packed row into a
/// temporary B-tree to sort it again: 5% of an export's instructions, for rows that the
/// subquery's `ORDER BY id` had already read in order.
pub(crate) fn packing(backend: Backend, columns: &[&str], inner: &str) -> String {
    let values = columns.join(", ");
    match backend {
        Backend::Sqlite => {
            format!("SELECT json_group_array(json_array({values})) FROM ({inner}) AS page")
        }
        Backend::Postgres => {
            format!("SELECT json_agg(json_build_array({values}))::text FROM ({inner}) AS page")
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("packed rows unreadable at byte {at}: {what}")]
pub(crate) struct UnpackError {
    at: usize,
    what: &'static str,
}

/// The values of a packed text of rows `width` values wide, row after row (the rows are its
/// `chunks_exact(width)`).
pub(crate) fn unpack(text: &str, width: usize) -> Result<Vec<Cell<'_>>, UnpackError> {
    if width == 0 {
        return Err(UnpackError {
            at: 0,
            what: "rows of no columns",
        });
    }
    Reader { text, at: 0 }.rows(width)
}

struct Reader<'t> {
    text: &'t str,
    at: usize,
}

impl<'t> Reader<'t> {
    fn rows(mut self, width: usize) -> Result<Vec<Cell<'t>>, UnpackError> {
        let mut cells = Vec::new();
        self.expect(b'[')?;
        if !self.next_is(b']') {
            loop {
                self.expect(b'[')?;
                let row_start = cells.len();
                if !self.next_is(b']') {
                    loop {
                        cells.push(self.value()?);
                        if !self.comma_or(b']')? {
                            break;
                        }
                    }
                }
                if cells.len() - row_start != width {
                    return Err(self.error("a row of another width"));
                }
                if !self.comma_or(b']')? {
                    break;
                }
            }
        }
        self.skip_space();
        if self.at != self.text.len() {
            return Err(self.error("text after the rows"));
        }
        Ok(cells)
    }

    fn value(&mut self) -> Result<Cell<'t>, UnpackError> {
        self.skip_space();
        let bytes = &self.text.as_bytes()[self.at..];
        match bytes.first() {
            Some(b'"') => self.string(),
            Some(b'n') if bytes.starts_with(b"null") => {
                self.at += 4;
                Ok(Cell::Null)
            }
            Some(b'-' | b'0'..=b'9') => {
                let sign = usize::from(bytes[0] == b'-');
                let digits = bytes[sign..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                if digits == 0 {
                    return Err(self.error("a sign without digits"));
                }
                let number = &self.text[self.at..self.at + sign + digits];
                self.at += sign + digits;
                Ok(Cell::Text(Cow::Borrowed(number)))
            }
            _ => Err(self.error("not a string, an integer or null")),
        }
    }

    /// A string at `at` (its opening quote): borrowed, or unescaped if it has an escape.
    fn string(&mut self) -> Result<Cell<'t>, UnpackError> {
        let start = self.at + 1;
        let bytes = self.text.as_bytes();
        let end = match memchr::memchr2(b'"', b'\\', &bytes[start..]) {
            Some(n) if bytes[start + n] == b'"' => start + n,
            Some(_) => return self.escaped_string(),
            None => return Err(self.error("an unterminated string")),
        };
        // Both ends are at ASCII quotes, so the slice is whole characters.
        // (The databases escape control characters; one unescaped would be read as itself.)
        let value = &self.text[start..end];
        self.at = end + 1;
        Ok(Cell::Text(Cow::Borrowed(value)))
    }

    /// A string with an escape, read by serde_json, which knows every escape JSON has.
    fn escaped_string(&mut self) -> Result<Cell<'t>, UnpackError> {
        let bytes = self.text.as_bytes();
        let mut end = self.at + 1;
        loop {
            let rest = bytes.get(end..).unwrap_or_default();
            match memchr::memchr2(b'"', b'\\', rest) {
                Some(n) if bytes[end + n] == b'\\' => end += n + 2,
                Some(n) => {
                    end += n;
                    break;
                }
                None => return Err(self.error("an unterminated string")),
            }
        }
        let literal = self
            .text
            .get(self.at..=end)
            .ok_or_else(|| self.error("an unterminated string"))?;
        let value: String =
            serde_json::from_str(literal).map_err(|_| self.error("a malformed escape"))?;
        self.at = end + 1;
        Ok(Cell::Text(Cow::Owned(value)))
    }

    fn skip_space(&mut self) {
        let bytes = self.text.as_bytes();
        while bytes
            .get(self.at)
            .is_some_and(|b| matches!(b, b' ' | b'\n' | b'\r' | b'\t'))
        {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), UnpackError> {
        self.skip_space();
        if self.text.as_bytes().get(self.at) == Some(&byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.error("unexpected punctuation"))
        }
    }

    /// Takes `byte` if it comes next.
    fn next_is(&mut self, byte: u8) -> bool {
        self.skip_space();
        let found = self.text.as_bytes().get(self.at) == Some(&byte);
        self.at += usize::from(found);
        found
    }

    /// After a value: true at a comma (more follow), false at `close`.
    fn comma_or(&mut self, close: u8) -> Result<bool, UnpackError> {
        if self.next_is(b',') {
            Ok(true)
        } else {
            self.expect(close).map(|()| false)
        }
    }

    fn error(&self, what: &'static str) -> UnpackError {
        UnpackError { at: self.at, what }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text(value: &str) -> Cell<'_> {
        Cell::Text(Cow::Borrowed(value))
    }

    #[test]
    fn strings_integers_and_nulls_in_either_database_s_spacing() {
        for packed in [
            r#"[["a",1,null],["b\"c",-2,""]]"#,
            "[[\"a\", 1, null], \n [\"b\\\"c\", -2, \"\"]]",
        ] {
            let cells = unpack(packed, 3).unwrap();
            assert_eq!(
                cells,
                vec![
                    text("a"),
                    text("1"),
                    Cell::Null,
                    text("b\"c"),
                    text("-2"),
                    text("")
                ]
            );
            assert!(
                matches!(cells[0], Cell::Text(Cow::Borrowed(_))),
                "plain strings are borrowed"
            );
        }
        assert_eq!(unpack("[]", 3).unwrap(), vec![]);
        assert_eq!(
            unpack(r#"[["\u00e9\\", "é"]]"#, 2).unwrap(),
            vec![text("é\\"), text("é")]
        );
    }

    #[test]
    fn what_no_column_holds_or_a_damaged_text_is_refused() {
        for (packed, width) in [
            (r#"[["a", 1.5]]"#, 2),
            (r#"[["a", true]]"#, 2),
            (r#"[["a", [1]]]"#, 2),
            (r#"[["a", {"x": 1}]]"#, 2),
            (r#"[["a", 1], ["b"]]"#, 2),
            (r#"[["a", 1]"#, 2),
            (r#"[["a, 1]]"#, 2),
            (r#"[["a\q", 1]]"#, 2),
            (r#"[["a", -]]"#, 2),
            (r#"[["a", 1]] x"#, 2),
            (r#"[["a\"#, 2),
            (r#"[["a" 1]]"#, 2),
            ("[[]]", 0),
        ] {
            assert!(unpack(packed, width).is_err(), "{packed} was read");
        }
    }

    proptest! {
        /// Any strings, quotes, backslashes and control characters among them, come back as
        /// serde_json wrote them, and integers as their digits.
        #[test]
        fn what_serde_json_writes_comes_back(
            rows in prop::collection::vec((any::<String>(), any::<i64>(), prop::option::of(any::<String>())), 0..8)
        ) {
            let json: Vec<serde_json::Value> = rows
                .iter()
                .map(|(s, n, o)| serde_json::json!([s, n, o]))
                .collect();
            for packed in [serde_json::to_string(&json).unwrap(), serde_json::to_string_pretty(&json).unwrap()] {
                let cells = unpack(&packed, 3).unwrap();
                let expected: Vec<Cell> = rows
                    .iter()
                    .flat_map(|(s, n, o)| {
                        [
                            Cell::Text(Cow::Owned(s.clone())),
                            Cell::Text(Cow::Owned(n.to_string())),
                            o.clone().map_or(Cell::Null, |o| Cell::Text(Cow::Owned(o))),
                        ]
                    })
                    .collect();
                prop_assert_eq!(cells, expected);
            }
        }
    }
}
