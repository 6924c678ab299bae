//! Conditions on a table's rows for `Store::page_where`: column comparisons and membership in
//! another table's rows, nested as deep as a relation needs (a goal's plan's enrollment's
//! client). Values are always bound parameters; column and table names come from code.

use super::{Backend, SqlValue};

#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub column: &'static str,
    pub condition: Condition,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `column = value`
    Equals(SqlValue),
    /// `column <op> value`, op one of `<`, `<=`, `>`, `>=` (timestamps and dates as fixed-width text)
    Compare(&'static str, SqlValue),
    /// `column IN (value, ...)`
    OneOf(Vec<SqlValue>),
    /// `column IN (SELECT select FROM table WHERE filter AND ...)`
    InRows {
        table: &'static str,
        select: &'static str,
        filters: Vec<Filter>,
    },
}

impl Filter {
    pub fn equals(column: &'static str, value: SqlValue) -> Self {
        Self {
            column,
            condition: Condition::Equals(value),
        }
    }
    pub fn compare(column: &'static str, op: &'static str, value: SqlValue) -> Self {
        Self {
            column,
            condition: Condition::Compare(op, value),
        }
    }
    pub fn one_of(column: &'static str, values: Vec<SqlValue>) -> Self {
        Self {
            column,
            condition: Condition::OneOf(values),
        }
    }
    /// `column` holds the `select` column of `table` rows matching `filter`.
    pub fn in_rows(
        column: &'static str,
        table: &'static str,
        select: &'static str,
        filter: Filter,
    ) -> Self {
        Self::in_rows_all(column, table, select, vec![filter])
    }
    /// `column` holds the `select` column of `table` rows matching every one of `filters`.
    pub fn in_rows_all(
        column: &'static str,
        table: &'static str,
        select: &'static str,
        filters: Vec<Filter>,
    ) -> Self {
        Self {
            column,
            condition: Condition::InRows {
                table,
                select,
                filters,
            },
        }
    }

    /// The SQL condition for `backend`, numbering parameters from `binds.len() + 1`.
    pub(crate) fn to_sql(&self, backend: Backend, binds: &mut Vec<SqlValue>) -> String {
        match &self.condition {
            Condition::Equals(value) => {
                binds.push(value.clone());
                format!("{} = ${}", self.column, binds.len())
            }
            Condition::Compare(op, value) => {
                let op = match *op {
                    "<" | "<=" | ">" | ">=" => *op,
                    _ => "=",
                };
                binds.push(value.clone());
                format!("{} {op} ${}", self.column, binds.len())
            }
            // An empty list matches nothing (`IN ()` is not SQL).
            Condition::OneOf(values) if values.is_empty() => "1 = 0".to_owned(),
            // A list of strings is one parameter, a JSON array (`Backend::one_of_json_array`):
            // one statement for every length, prepared once, and no quadratic parameter lookup.
            Condition::OneOf(values) if let Some(texts) = all_texts(values) => {
                binds.push(SqlValue::Text(Some(super::json_array(&texts))));
                backend.one_of_json_array(self.column, binds.len())
            }
            Condition::OneOf(values) => {
                let mut placeholders = Vec::with_capacity(values.len());
                for value in values {
                    binds.push(value.clone());
                    placeholders.push(format!("${}", binds.len()));
                }
                format!("{} IN ({})", self.column, placeholders.join(", "))
            }
            Condition::InRows {
                table,
                select,
                filters,
            } => {
                let conditions: Vec<String> =
                    filters.iter().map(|f| f.to_sql(backend, binds)).collect();
                let conditions = if conditions.is_empty() {
                    "1 = 1".to_owned()
                } else {
                    conditions.join(" AND ")
                };
                format!(
                    "{} IN (SELECT {select} FROM {table} WHERE {conditions})",
                    self.column
                )
            }
        }
    }
}

/// The values as strings, if every one is a (non-null) string.
fn all_texts(values: &[SqlValue]) -> Option<Vec<String>> {
    values
        .iter()
        .map(|v| match v {
            SqlValue::Text(Some(text)) => Some(text.clone()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nests_and_numbers_parameters() {
        let mut binds = Vec::new();
        let filter = Filter::in_rows(
            "plan_id",
            "treatment_plans",
            "id",
            Filter::in_rows(
                "enrollment_id",
                "enrollments",
                "id",
                Filter::equals("client_id", SqlValue::text("c1")),
            ),
        );
        let first = Filter::compare("updated_at", ">=", SqlValue::text("2026"));
        let sql = format!(
            "{} AND {}",
            first.to_sql(Backend::Sqlite, &mut binds),
            filter.to_sql(Backend::Sqlite, &mut binds)
        );
        assert_eq!(
            sql,
            "updated_at >= $1 AND plan_id IN (SELECT id FROM treatment_plans WHERE enrollment_id IN (SELECT id FROM enrollments WHERE client_id = $2))"
        );
        assert_eq!(binds.len(), 2);
    }

    #[test]
    fn a_list_of_strings_is_one_parameter() {
        let ids = Filter::one_of("id", vec![SqlValue::text("a"), SqlValue::text("b\"")]);
        let mut binds = vec![SqlValue::int(1)];
        assert_eq!(
            ids.to_sql(Backend::Sqlite, &mut binds),
            "id IN (SELECT value FROM json_each($2))"
        );
        assert_eq!(binds[1], SqlValue::text(r#"["a","b\""]"#));
        let numbers = Filter::one_of("n", vec![SqlValue::int(1), SqlValue::int(2)]);
        assert_eq!(
            numbers.to_sql(Backend::Postgres, &mut binds),
            "n IN ($3, $4)"
        );
    }
}
