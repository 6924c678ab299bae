//! The security tables: API clients, client assertions already used, the access-token signing
//! key, and the append-only audit trail. Plain rows; their meaning is `crate::auth`'s and the
//! mapping's.

use sqlx::Row;
use sqlx::any::{Any, AnyArguments, AnyRow};
use sqlx::query::Query;

use super::{Backend, Store, StoreError, Tx};
use crate::domain::{
    ApiClient, AuditInteraction, AuditOutcome, AuditRecord, ClientId, KeySource, Timestamp,
};

const CLIENTS: &str = "api_clients";
pub(super) const AUDIT: &str = "audit_events";

fn corrupt(table: &'static str, id: &str, column: &'static str, reason: &str) -> StoreError {
    StoreError::Corrupt {
        table,
        id: id.to_owned(),
        column,
        reason: reason.to_owned(),
    }
}

fn client_of(row: &AnyRow) -> Result<ApiClient, StoreError> {
    let id: String = row.try_get("client_id")?;
    let jwks: Option<String> = row.try_get("jwks")?;
    let url: Option<String> = row.try_get("jwks_url")?;
    let keys = match (jwks, url) {
        (Some(jwks), None) => KeySource::Inline(jwks),
        (None, Some(url)) => KeySource::Url(url),
        _ => {
            return Err(corrupt(
                CLIENTS,
                &id,
                "jwks",
                "exactly one of jwks, jwks_url",
            ));
        }
    };
    Ok(ApiClient {
        client_id: ClientId::parse(&id)
            .map_err(|e| corrupt(CLIENTS, &id, "client_id", &e.to_string()))?,
        keys,
        scopes: row.try_get("scopes")?,
        organization_id: row.try_get("organization_id")?,
        purpose_of_use: row.try_get("purpose_of_use")?,
        enabled: row.try_get::<i64, _>("enabled")? == 1,
        clinic_app: row.try_get::<i64, _>("clinic_app")? == 1,
    })
}

/// `(jwks, jwks_url)`: exactly one is set.
fn key_columns(keys: &KeySource) -> (Option<String>, Option<String>) {
    match keys {
        KeySource::Inline(jwks) => (Some(jwks.clone()), None),
        KeySource::Url(url) => (None, Some(url.clone())),
    }
}

const CLIENT_COLUMNS: &str =
    "client_id, jwks, jwks_url, scopes, organization_id, purpose_of_use, enabled, clinic_app";

impl Store {
    pub async fn api_client(&self, client_id: &str) -> Result<Option<ApiClient>, StoreError> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM api_clients WHERE client_id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(client_id.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(client_of).transpose()
    }

    pub async fn api_clients(&self) -> Result<Vec<ApiClient>, StoreError> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM api_clients ORDER BY client_id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(client_of).collect()
    }

    /// Registers a client; `Duplicate` when the id is taken.
    pub async fn add_api_client(&self, client: &ApiClient) -> Result<(), StoreError> {
        let (jwks, url) = key_columns(&client.keys);
        let now = Timestamp::now().to_db_text();
        sqlx::query(
            "INSERT INTO api_clients (client_id, jwks, jwks_url, scopes, organization_id, \
             purpose_of_use, enabled, created_at, updated_at, clinic_app) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9)",
        )
        .bind(client.client_id.as_str().to_owned())
        .bind(jwks)
        .bind(url)
        .bind(client.scopes.clone())
        .bind(client.organization_id.clone())
        .bind(client.purpose_of_use.clone())
        .bind(i64::from(client.enabled))
        .bind(now)
        .bind(i64::from(client.clinic_app))
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::on_write(CLIENTS, e))?;
        Ok(())
    }

    /// Replaces a client's keys, scopes, organization, purpose and enabled flag; `NotFound` when
    /// there is no such client.
    pub async fn update_api_client(&self, client: &ApiClient) -> Result<(), StoreError> {
        let (jwks, url) = key_columns(&client.keys);
        let done = sqlx::query(
            "UPDATE api_clients SET jwks = $2, jwks_url = $3, scopes = $4, organization_id = $5, \
             purpose_of_use = $6, enabled = $7, updated_at = $8, clinic_app = $9 WHERE client_id = $1",
        )
        .bind(client.client_id.as_str().to_owned())
        .bind(jwks)
        .bind(url)
        .bind(client.scopes.clone())
        .bind(client.organization_id.clone())
        .bind(client.purpose_of_use.clone())
        .bind(i64::from(client.enabled))
        .bind(Timestamp::now().to_db_text())
        .bind(i64::from(client.clinic_app))
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::on_write(CLIENTS, e))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                table: CLIENTS,
                id: client.client_id.to_string(),
            });
        }
        Ok(())
    }

    /// Enables or disables a client, nothing else (two operators changing a client at once do
    /// not undo each other). False when there is no such client.
    pub async fn set_api_client_enabled(
        &self,
        client_id: &str,
        enabled: bool,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_clients SET enabled = $2, updated_at = $3 WHERE client_id = $1",
        )
        .bind(client_id.to_owned())
        .bind(i64::from(enabled))
        .bind(Timestamp::now().to_db_text())
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::on_write(CLIENTS, e))?;
        Ok(done.rows_affected() > 0)
    }

    /// Replaces a client's keys, nothing else. False when there is no such client.
    pub async fn set_api_client_keys(
        &self,
        client_id: &str,
        keys: &KeySource,
    ) -> Result<bool, StoreError> {
        let (jwks, url) = key_columns(keys);
        let done = sqlx::query(
            "UPDATE api_clients SET jwks = $2, jwks_url = $3, updated_at = $4 WHERE client_id = $1",
        )
        .bind(client_id.to_owned())
        .bind(jwks)
        .bind(url)
        .bind(Timestamp::now().to_db_text())
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::on_write(CLIENTS, e))?;
        Ok(done.rows_affected() > 0)
    }

    /// Records that `client_id` used the assertion `jti` (valid until `expires_at`). False when
    /// it was used before: a replay. The primary key decides, so two replicas cannot both
    /// accept one assertion. Assertions past their expiry are forgotten (they are refused as
    /// expired anyway).
    pub async fn record_assertion(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        sqlx::query("DELETE FROM seen_client_assertions WHERE expires_at < $1")
            .bind(Timestamp::now().to_db_text())
            .execute(&self.pool)
            .await?;
        let inserted = sqlx::query(
            "INSERT INTO seen_client_assertions (client_id, jti, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(client_id.to_owned())
        .bind(jti.to_owned())
        .bind(expires_at.to_db_text())
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::on_write("seen_client_assertions", e));
        match inserted {
            Ok(_) => Ok(true),
            Err(StoreError::Duplicate { .. }) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// The key the gateway signs access tokens with, `(kid, base64 secret)`: the oldest row,
    /// created from `fresh` when there is none. Replicas racing to create one all end up with
    /// the same (the oldest) row.
    pub async fn token_signing_key(
        &self,
        fresh: (String, String),
    ) -> Result<(String, String), StoreError> {
        let select = "SELECT kid, secret FROM token_signing_keys ORDER BY created_at, kid LIMIT 1";
        if let Some(row) = sqlx::query(select).fetch_optional(&self.pool).await? {
            return Ok((row.try_get("kid")?, row.try_get("secret")?));
        }
        let (kid, secret) = fresh;
        sqlx::query("INSERT INTO token_signing_keys (kid, secret, created_at) VALUES ($1, $2, $3)")
            .bind(kid)
            .bind(secret)
            .bind(Timestamp::now().to_db_text())
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::on_write("token_signing_keys", e))?;
        let row = sqlx::query(select).fetch_one(&self.pool).await?;
        Ok((row.try_get("kid")?, row.try_get("secret")?))
    }

    /// Appends one audit record on its own (token requests, console actions).
    pub async fn append_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        self.append_audits(std::slice::from_ref(record)).await
    }

    /// Appends audit records that belong to no write (the group commit of reads and searches):
    /// up to 256 in one statement, which is atomic without a transaction (one hop to the
    /// database instead of four); more in one transaction.
    pub async fn append_audits(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        match records.len() {
            0 => Ok(()),
            n if n <= AUDITS_PER_STATEMENT => {
                audit_insert(self.backend, records)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| StoreError::on_write(AUDIT, e))?;
                Ok(())
            }
            _ => {
                let mut tx = self.begin().await?;
                tx.append_audits(records).await?;
                tx.commit().await
            }
        }
    }

    /// API requests audited per hour since `since` (`YYYY-MM-DDTHH`, requests, refused or
    /// failed), oldest first; the console's own sign-ins and actions are not counted.
    pub async fn audit_counts_by_hour(
        &self,
        since: Timestamp,
    ) -> Result<Vec<(String, i64, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT substr(recorded, 1, 13) AS hour, COUNT(*) AS n, \
             SUM(CASE WHEN outcome <> 0 THEN 1 ELSE 0 END) AS failed \
             FROM audit_events WHERE recorded >= $1 AND interaction NOT IN ('sign-in', 'console') \
             GROUP BY substr(recorded, 1, 13) ORDER BY hour",
        )
        .bind(since.to_db_text())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("hour")?,
                    row.try_get("n")?,
                    row.try_get("failed")?,
                ))
            })
            .collect()
    }

    /// Audit records matching `query`, newest first, at most `limit`, after the keyset cursor.
    pub async fn audit_page(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let mut conditions = Vec::new();
        let mut binds: Vec<String> = Vec::new();
        let bind = |value: String, binds: &mut Vec<String>| {
            binds.push(value);
            format!("${}", binds.len())
        };
        if let Some(id) = &query.id {
            let mark = bind(id.clone(), &mut binds);
            conditions.push(format!("id = {mark}"));
        }
        if let Some(patient) = &query.patient {
            let mark = bind(patient.clone(), &mut binds);
            conditions.push(format!(
                "id IN (SELECT audit_id FROM audit_event_patients WHERE patient_id = {mark})"
            ));
        }
        if let Some(client) = &query.client_id {
            let mark = bind(client.clone(), &mut binds);
            conditions.push(format!("client_id = {mark}"));
        }
        if let Some(interactions) = &query.interactions {
            let marks: Vec<String> = interactions
                .iter()
                .map(|i| bind(i.code().to_owned(), &mut binds))
                .collect();
            if marks.is_empty() {
                return Ok(Vec::new());
            }
            conditions.push(format!("interaction IN ({})", marks.join(", ")));
        }
        for (op, at) in &query.recorded {
            let mark = bind(at.to_db_text(), &mut binds);
            conditions.push(format!("recorded {} {mark}", op.sql()));
        }
        if let Some((recorded, id)) = &query.before {
            let r = bind(recorded.to_db_text(), &mut binds);
            let i = bind(id.clone(), &mut binds);
            conditions.push(format!("(recorded < {r} OR (recorded = {r} AND id < {i}))"));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT id, recorded, interaction, outcome, outcome_desc, client_id, organization_id, \
             purpose_of_use, token_id, request_id, source_address, resource_type, query, entities, \
             consents FROM audit_events {filter} ORDER BY recorded DESC, id DESC LIMIT {}",
            query.limit.clamp(1, 1000)
        );
        let mut select = sqlx::query(sqlx::AssertSqlSafe(sql));
        for value in binds {
            select = select.bind(value);
        }
        let rows = select.fetch_all(&self.pool).await?;
        let mut records = Vec::with_capacity(rows.len());
        for row in &rows {
            records.push(audit_of(row)?);
        }
        let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
        let mut patients = self.audit_patients(&ids).await?;
        for record in &mut records {
            record.patients = patients.remove(&record.id).unwrap_or_default();
        }
        Ok(records)
    }

    async fn audit_patients(
        &self,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, Vec<String>>, StoreError> {
        let mut out: std::collections::HashMap<String, Vec<String>> = Default::default();
        if ids.is_empty() {
            return Ok(out);
        }
        let sql = format!(
            "SELECT audit_id, patient_id FROM audit_event_patients WHERE {} \
             ORDER BY audit_id, patient_id",
            self.backend().one_of_json_array("audit_id", 1)
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(super::json_array(ids))
            .fetch_all(&self.pool)
            .await?;
        for row in rows {
            out.entry(row.try_get("audit_id")?)
                .or_default()
                .push(row.try_get("patient_id")?);
        }
        Ok(out)
    }
}

/// `<`, `<=`, `>`, `>=` on the recorded time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Comparison {
    fn sql(self) -> &'static str {
        match self {
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
        }
    }
}

/// Which audit records to list (all conditions must hold).
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub id: Option<String>,
    pub patient: Option<String>,
    pub client_id: Option<String>,
    /// None: any interaction.
    pub interactions: Option<Vec<AuditInteraction>>,
    pub recorded: Vec<(Comparison, Timestamp)>,
    /// Keyset cursor: records strictly older than this `(recorded, id)`.
    pub before: Option<(Timestamp, String)>,
    pub limit: u32,
}

fn audit_of(row: &AnyRow) -> Result<AuditRecord, StoreError> {
    let id: String = row.try_get("id")?;
    let bad = |column, reason: &str| corrupt(AUDIT, &id, column, reason);
    let interaction: String = row.try_get("interaction")?;
    let entities: String = row.try_get("entities")?;
    let consents: String = row.try_get("consents")?;
    Ok(AuditRecord {
        recorded: row
            .try_get::<String, _>("recorded")?
            .parse()
            .map_err(|_| bad("recorded", "not a timestamp"))?,
        interaction: AuditInteraction::parse(&interaction)
            .ok_or_else(|| bad("interaction", "unknown"))?,
        outcome: AuditOutcome::parse(row.try_get("outcome")?)
            .ok_or_else(|| bad("outcome", "unknown"))?,
        outcome_desc: row.try_get("outcome_desc")?,
        client_id: row.try_get("client_id")?,
        organization_id: row.try_get("organization_id")?,
        purpose_of_use: row.try_get("purpose_of_use")?,
        token_id: row.try_get("token_id")?,
        request_id: row.try_get("request_id")?,
        source_address: row.try_get("source_address")?,
        resource_type: row.try_get("resource_type")?,
        query: row.try_get("query")?,
        entities: serde_json::from_str(&entities).map_err(|_| bad("entities", "not JSON"))?,
        consents: serde_json::from_str(&consents).map_err(|_| bad("consents", "not JSON"))?,
        patients: Vec::new(),
        id,
    })
}

/// Audit records per multi-row statement: 16 values each stays far below both databases'
/// limits on bound values.
pub(super) const AUDITS_PER_STATEMENT: usize = 256;

impl Tx {
    /// Appends one audit record inside this transaction: it exists exactly when the write it
    /// accounts for does.
    pub async fn append_audit(&mut self, record: &AuditRecord) -> Result<(), StoreError> {
        self.append_audits(std::slice::from_ref(record)).await
    }

    /// Appends audit records inside this transaction, one statement per 256.
    pub async fn append_audits(&mut self, records: &[AuditRecord]) -> Result<(), StoreError> {
        for chunk in records.chunks(AUDITS_PER_STATEMENT) {
            audit_insert(self.backend, chunk)
                .execute(&mut *self.inner)
                .await
                .map_err(|e| StoreError::on_write(AUDIT, e))?;
        }
        Ok(())
    }
}

/// One INSERT of `records` (at most `AUDITS_PER_STATEMENT`), the patients of each included as a
/// JSON array that migration 0012's trigger indexes into `audit_event_patients`: atomic on its
/// own, so the group commit needs no transaction around it.
pub(super) fn audit_insert(
    backend: Backend,
    records: &[AuditRecord],
) -> Query<'static, Any, AnyArguments> {
    const COLUMNS: usize = 17;
    let mut sql = String::from(
        "INSERT INTO audit_events (id, recorded, interaction, action, outcome, outcome_desc, \
         client_id, organization_id, purpose_of_use, token_id, request_id, source_address, \
         resource_type, query, entities, consents, patients) VALUES ",
    );
    backend.push_rows(&mut sql, records.len(), COLUMNS);
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for record in records {
        let mut patients: Vec<&String> = record.patients.iter().collect();
        patients.sort();
        patients.dedup();
        let patients = (!patients.is_empty())
            .then(|| serde_json::to_string(&patients).unwrap_or_else(|_| "[]".into()));
        query = query
            .bind(record.id.clone())
            .bind(record.recorded.to_db_text())
            .bind(record.interaction.code().to_owned())
            .bind(record.action().to_owned())
            .bind(record.outcome.code())
            .bind(record.outcome_desc.clone())
            .bind(record.client_id.clone())
            .bind(record.organization_id.clone())
            .bind(record.purpose_of_use.clone())
            .bind(record.token_id.clone())
            .bind(record.request_id.clone())
            .bind(record.source_address.clone())
            .bind(record.resource_type.clone())
            .bind(record.query.clone())
            .bind(serde_json::to_string(&record.entities).unwrap_or_else(|_| "[]".into()))
            .bind(serde_json::to_string(&record.consents).unwrap_or_else(|_| "[]".into()))
            .bind(patients);
    }
    query
}
