//! The console's tables: operators (their passwords only as argon2id hashes) and signed-in
//! sessions (only a hash of each cookie). Plain rows; what they allow is `crate::console`'s.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError};
use crate::domain::{Operator, OperatorName, Roles, Timestamp};

const OPERATORS: &str = "operators";
const SESSIONS: &str = "console_sessions";

fn operator_of(row: &AnyRow) -> Result<Operator, StoreError> {
    let name: String = row.try_get("name")?;
    let bad = |column, reason: String| StoreError::Corrupt {
        table: OPERATORS,
        id: name.clone(),
        column,
        reason,
    };
    Ok(Operator {
        name: OperatorName::parse(&name).map_err(|e| bad("name", e.to_string()))?,
        password_hash: row.try_get("password_hash")?,
        roles: Roles::parse(&row.try_get::<String, _>("roles")?)
            .map_err(|e| bad("roles", e.to_string()))?,
        enabled: row.try_get::<i64, _>("enabled")? == 1,
    })
}

/// A signed-in session as the console checks it on every request.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    pub operator: Operator,
    /// The token its forms carry.
    pub csrf: String,
}

impl Store {
    /// Adds an operator; `Duplicate` when the name is taken.
    pub async fn add_operator(&self, operator: &Operator) -> Result<(), StoreError> {
        let now = Timestamp::now().to_db_text();
        sqlx::query(
            "INSERT INTO operators (name, password_hash, roles, enabled, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(operator.name.to_string())
        .bind(operator.password_hash.clone())
        .bind(operator.roles.codes())
        .bind(i64::from(operator.enabled))
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::on_write(OPERATORS, e))?;
        Ok(())
    }

    pub async fn operator(&self, name: &str) -> Result<Option<Operator>, StoreError> {
        sqlx::query("SELECT name, password_hash, roles, enabled FROM operators WHERE name = $1")
            .bind(name.to_owned())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(operator_of)
            .transpose()
    }

    pub async fn operators(&self) -> Result<Vec<Operator>, StoreError> {
        sqlx::query("SELECT name, password_hash, roles, enabled FROM operators ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(operator_of)
            .collect()
    }

    /// Changes an operator's password, roles or enabled flag. The operator's sessions end at
    /// once when they are disabled or their password changes (a stolen session dies with the
    /// old password). False when there is no such operator.
    pub async fn update_operator(&self, operator: &Operator) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let old_hash: Option<String> =
            sqlx::query_scalar("SELECT password_hash FROM operators WHERE name = $1")
                .bind(operator.name.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        let changed = sqlx::query(
            "UPDATE operators SET password_hash = $1, roles = $2, enabled = $3, updated_at = $4 \
             WHERE name = $5",
        )
        .bind(operator.password_hash.clone())
        .bind(operator.roles.codes())
        .bind(i64::from(operator.enabled))
        .bind(Timestamp::now().to_db_text())
        .bind(operator.name.to_string())
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::on_write(OPERATORS, e))?;
        let new_password = old_hash.is_some_and(|old| old != operator.password_hash);
        if !operator.enabled || new_password {
            sqlx::query("DELETE FROM console_sessions WHERE operator = $1")
                .bind(operator.name.to_string())
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::on_write(SESSIONS, e))?;
        }
        tx.commit().await?;
        Ok(changed.rows_affected() > 0)
    }

    /// Removes an operator and their sessions. False when there is no such operator.
    pub async fn remove_operator(&self, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM console_sessions WHERE operator = $1")
            .bind(name.to_owned())
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::on_write(SESSIONS, e))?;
        let removed = sqlx::query("DELETE FROM operators WHERE name = $1")
            .bind(name.to_owned())
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::on_write(OPERATORS, e))?;
        tx.commit().await?;
        Ok(removed.rows_affected() > 0)
    }

    /// Records a signed-in session (by the hash of its cookie) until `expires_at`.
    pub async fn add_console_session(
        &self,
        id_hash: &str,
        operator: &OperatorName,
        csrf: &str,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        // Sessions that ended are removed as new ones start: the table stays as small as the
        // number of people signed in.
        sqlx::query("DELETE FROM console_sessions WHERE expires_at < $1")
            .bind(Timestamp::now().to_db_text())
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::on_write(SESSIONS, e))?;
        sqlx::query(
            "INSERT INTO console_sessions (id_hash, operator, csrf, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id_hash.to_owned())
        .bind(operator.to_string())
        .bind(csrf.to_owned())
        .bind(Timestamp::now().to_db_text())
        .bind(expires_at.to_db_text())
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::on_write(SESSIONS, e))?;
        Ok(())
    }

    /// The session with this cookie hash, if it has not expired and its operator is enabled.
    pub async fn console_session(
        &self,
        id_hash: &str,
    ) -> Result<Option<ConsoleSession>, StoreError> {
        let row = sqlx::query(
            "SELECT o.name, o.password_hash, o.roles, o.enabled, s.csrf \
             FROM console_sessions s JOIN operators o ON o.name = s.operator \
             WHERE s.id_hash = $1 AND s.expires_at > $2 AND o.enabled = 1",
        )
        .bind(id_hash.to_owned())
        .bind(Timestamp::now().to_db_text())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(ConsoleSession {
                operator: operator_of(&row)?,
                csrf: row.try_get("csrf")?,
            })
        })
        .transpose()
    }

    pub async fn end_console_session(&self, id_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
            .bind(id_hash.to_owned())
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::on_write(SESSIONS, e))?;
        Ok(())
    }
}
