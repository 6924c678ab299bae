//! Many rows as one value: a query's rows packed by the database into one JSON array of arrays
//! (`json_group_array(json_array(...))` on SQLite, `json_agg(json_build_array(...))` on
//! PostgreSQL) and unpacked here.
//!
//! Why: through sqlx a row costs far more than the database's own work. On SQLite each row is
//! copied value by value on the connection's thread (a `malloc` per value), sent over a channel,
//! copied again into `Any` form and decoded; a bulk export spent a third of its CPU there. One
//! text value per query, parsed in place (strings borrowed from it unless escaped), costs a
//! fraction of that. Only TEXT and BIGINT columns exist in the schema, and JSON carries both
//! exactly.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};

use super::Backend;

/// One value of a packed row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell<'t> {
    Null,
    Int(i64),
    Text(Cow<'t, str>),
    /// A value of no column type of the schema (a float, a nested value): reported as corrupt by
    /// whoever reads it.
    Other,
}

impl<'de> serde::Deserialize<'de> for Cell<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CellVisitor;
        impl<'de> Visitor<'de> for CellVisitor {
            type Value = Cell<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a column value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Cell::Null)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Cell::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(i64::try_from(v).map_or(Cell::Other, Cell::Int))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Cell::Other)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Cell::Int(i64::from(v)))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Cell::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Cell::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Cell::Text(Cow::Owned(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(Cell::Other)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map
                    .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Cell::Other)
            }
        }
        deserializer.deserialize_any(CellVisitor)
    }
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

/// The rows of a packed text.
pub(crate) fn unpack(text: &str) -> Result<Vec<Vec<Cell<'_>>>, serde_json::Error> {
    serde_json::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_borrow_plain_strings_and_own_escaped_ones() {
        let rows = unpack(r#"[["a", 1, null], ["b\"c", -2, 1.5], [true, [1], {"x": 1}]]"#).unwrap();
        assert!(matches!(rows[0][0], Cell::Text(Cow::Borrowed("a"))));
        assert_eq!(rows[0][1], Cell::Int(1));
        assert_eq!(rows[0][2], Cell::Null);
        assert!(matches!(&rows[1][0], Cell::Text(Cow::Owned(s)) if s == "b\"c"));
        assert_eq!(rows[1][1], Cell::Int(-2));
        assert_eq!(rows[1][2], Cell::Other);
        assert_eq!(rows[2], vec![Cell::Int(1), Cell::Other, Cell::Other]);
        assert_eq!(
            unpack(&format!("[[{}]]", u64::MAX)).unwrap()[0][0],
            Cell::Other
        );
    }
}
