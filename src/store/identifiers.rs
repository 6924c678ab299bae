//! Identifiers other systems know a record by (`record_identifiers`): a system and a value, unique
//! per table. The store holds them as plain pairs; what they mean is the mapping's business.

use std::collections::HashMap;

use sqlx::Row;

use super::{Store, StoreError, Tx};

use crate::domain::ExternalIdentifier as Identifier;

const TABLE: &str = "record_identifiers";

impl Tx {
    /// The record of `table` that `identifier` names, if any (sees this transaction's writes).
    pub async fn record_by_identifier(
        &mut self,
        table: &str,
        identifier: &Identifier,
    ) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT record_id FROM record_identifiers WHERE table_name = $1 AND system = $2 AND value = $3",
        )
        .bind(table.to_owned())
        .bind(identifier.system.clone())
        .bind(identifier.value.clone())
        .fetch_optional(&mut *self.inner)
        .await?)
    }

    /// Makes `identifiers` the set a record of `table` is known by: drops the others, adds the
    /// new. `Duplicate` when one of them already names another record of the table.
    pub async fn set_identifiers(
        &mut self,
        table: &str,
        record_id: &str,
        identifiers: &[Identifier],
    ) -> Result<(), StoreError> {
        let rows = sqlx::query(
            "SELECT system, value FROM record_identifiers WHERE table_name = $1 AND record_id = $2",
        )
        .bind(table.to_owned())
        .bind(record_id.to_owned())
        .fetch_all(&mut *self.inner)
        .await?;
        let mut existing = Vec::new();
        for row in &rows {
            existing.push(Identifier {
                system: row.try_get("system")?,
                value: row.try_get("value")?,
            });
        }
        for old in existing.iter().filter(|e| !identifiers.contains(e)) {
            sqlx::query(
                "DELETE FROM record_identifiers WHERE table_name = $1 AND system = $2 AND value = $3",
            )
            .bind(table.to_owned())
            .bind(old.system.clone())
            .bind(old.value.clone())
            .execute(&mut *self.inner)
            .await?;
        }
        let mut added: Vec<&Identifier> = Vec::new();
        for new in identifiers.iter().filter(|i| !existing.contains(i)) {
            if added.contains(&new) {
                continue;
            }
            added.push(new);
            sqlx::query(
                "INSERT INTO record_identifiers (table_name, system, value, record_id) VALUES ($1, $2, $3, $4)",
            )
            .bind(table.to_owned())
            .bind(new.system.clone())
            .bind(new.value.clone())
            .bind(record_id.to_owned())
            .execute(&mut *self.inner)
            .await
            .map_err(|e| StoreError::on_write(TABLE, e))?;
        }
        Ok(())
    }
}

impl Store {
    /// Whether any record of `table` has identifiers from other systems.
    pub async fn has_identifiers(&self, table: &str) -> Result<bool, StoreError> {
        let found: Option<String> = sqlx::query_scalar(
            "SELECT table_name FROM record_identifiers WHERE table_name = $1 LIMIT 1",
        )
        .bind(table.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.is_some())
    }

    /// The identifiers each of `record_ids` (rows of `table`) is known by, in a stable order.
    pub async fn identifiers_of_many(
        &self,
        table: &str,
        record_ids: &[String],
    ) -> Result<HashMap<String, Vec<Identifier>>, StoreError> {
        let mut out: HashMap<String, Vec<Identifier>> = HashMap::new();
        if record_ids.is_empty() {
            return Ok(out);
        }
        let sql = format!(
            "SELECT record_id, system, value FROM record_identifiers \
             WHERE table_name = $1 AND {} ORDER BY record_id, system, value",
            self.backend().one_of_json_array("record_id", 2)
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(table.to_owned())
            .bind(super::json_array(record_ids))
            .fetch_all(&self.pool)
            .await?;
        for row in rows {
            out.entry(row.try_get("record_id")?)
                .or_default()
                .push(Identifier {
                    system: row.try_get("system")?,
                    value: row.try_get("value")?,
                });
        }
        Ok(out)
    }
}
