//! What the referral exchange reads beyond plain records: the care a referral led to (for its
//! Task), the intake a resent message names, the clients a referred patient could be.

use std::collections::HashMap;

use chrono::NaiveDate;
use sqlx::{AssertSqlSafe, Row};

use super::tx::{read_stored, select_list};
use super::{Record, Store, StoreError, Stored, Tx};
use crate::domain::{
    Attendance, Client, Enrollment, HeldReferralRequest, Id, IntakeState, Organization, Referral,
    ReferralIntake, ReferralProgress,
};

/// The `record_identifiers` key under which a referral's ServiceRequest keeps the identifiers the
/// referring side gave it (its Task's are under `referrals`, the table's own name).
pub const REFERRAL_REQUEST_IDENTIFIERS: &str = "referral_requests";

impl Store {
    /// The enrollment each referral led to and its sessions' attendance, for a page of referrals
    /// (two queries). Referrals that led to no enrollment are absent.
    pub async fn referral_progress(
        &self,
        referrals: &[Id<Referral>],
    ) -> Result<HashMap<Id<Referral>, ReferralProgress>, StoreError> {
        let mut out = HashMap::new();
        if referrals.is_empty() {
            return Ok(out);
        }
        let sql = format!(
            "SELECT {} FROM enrollments WHERE {} ORDER BY admitted_on, id",
            select_list::<Enrollment>(),
            self.backend().one_of_json_array("referral_id", 1)
        );
        let ids: Vec<String> = referrals.iter().map(ToString::to_string).collect();
        let query = sqlx::query(AssertSqlSafe(sql)).bind(super::json_array(&ids));
        // The latest enrollment of a referral is the one its Task follows.
        let mut enrollments: HashMap<Id<Enrollment>, Id<Referral>> = HashMap::new();
        for row in query.fetch_all(&self.pool).await? {
            let stored: Stored<Enrollment> = read_stored(&row)?;
            let Some(referral) = stored.record.referral_id else {
                continue;
            };
            enrollments.insert(stored.record.id, referral);
            out.insert(
                referral,
                ReferralProgress {
                    enrollment: Some(stored.record.state),
                    ..ReferralProgress::default()
                },
            );
        }
        if enrollments.is_empty() {
            return Ok(out);
        }
        let ids: Vec<String> = enrollments.keys().map(ToString::to_string).collect();
        let sql = format!(
            "SELECT enrollment_id, attendance, MAX(scheduled_start) AS latest FROM sessions \
             WHERE {} GROUP BY enrollment_id, attendance",
            self.backend().one_of_json_array("enrollment_id", 1)
        );
        let query = sqlx::query(AssertSqlSafe(sql)).bind(super::json_array(&ids));
        let mut latest: HashMap<Id<Referral>, String> = HashMap::new();
        for row in query.fetch_all(&self.pool).await? {
            let enrollment: String = row.try_get("enrollment_id")?;
            let attendance: String = row.try_get("attendance")?;
            let start: String = row.try_get("latest")?;
            let (Ok(enrollment), Ok(attendance)) = (
                enrollment.parse::<Id<Enrollment>>(),
                attendance.parse::<Attendance>(),
            ) else {
                return Err(StoreError::Corrupt {
                    table: "sessions",
                    id: String::new(),
                    column: "attendance",
                    reason: "not an enrollment id and attendance code".into(),
                });
            };
            let Some(referral) = enrollments.get(&enrollment) else {
                continue;
            };
            let Some(progress) = out.get_mut(referral) else {
                continue;
            };
            if attendance == Attendance::Scheduled {
                progress.session_scheduled = true;
            } else if latest.get(referral).is_none_or(|l| *l < start) {
                latest.insert(*referral, start);
                progress.last_attendance = Some(attendance);
            }
        }
        Ok(out)
    }

    /// The intakes in `state`, oldest first (the review queue, ...).
    pub async fn intakes_in(
        &self,
        state: Option<IntakeState>,
    ) -> Result<Vec<Stored<ReferralIntake>>, StoreError> {
        let mut sql = format!(
            "SELECT {} FROM referral_intakes",
            select_list::<ReferralIntake>()
        );
        if state.is_some() {
            sql.push_str(" WHERE state = $1");
        }
        sql.push_str(" ORDER BY created_at, id");
        let mut query = sqlx::query(AssertSqlSafe(sql));
        if let Some(state) = state {
            query = query.bind(crate::domain::Coded::code(state).to_owned());
        }
        let mut out = Vec::new();
        for row in query.fetch_all(&self.pool).await? {
            out.push(read_stored(&row)?);
        }
        Ok(out)
    }
}

impl Tx {
    /// The ServiceRequest held for its Task with this placer identifier (`system|value`).
    pub async fn held_request_by_key(
        &mut self,
        placer_key: &str,
    ) -> Result<Option<Stored<HeldReferralRequest>>, StoreError> {
        let sql = format!(
            "SELECT {} FROM {} WHERE placer_key = $1",
            select_list::<HeldReferralRequest>(),
            HeldReferralRequest::TABLE
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(placer_key.to_owned())
            .fetch_optional(&mut *self.inner)
            .await?;
        row.map(|r| read_stored(&r)).transpose()
    }

    /// The intake a message names: by its message identifier, else by its placer identifier.
    pub async fn intake_by_keys(
        &mut self,
        message_key: Option<&str>,
        placer_key: &str,
    ) -> Result<Option<Stored<ReferralIntake>>, StoreError> {
        let sql = format!(
            "SELECT {} FROM {} WHERE placer_key = $1 OR message_key = $2 ORDER BY created_at LIMIT 1",
            select_list::<ReferralIntake>(),
            ReferralIntake::TABLE
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(placer_key.to_owned())
            .bind(message_key.map(str::to_owned))
            .fetch_optional(&mut *self.inner)
            .await?;
        row.map(|r| read_stored(&r)).transpose()
    }

    /// The clients born on `birth_date` (the candidates of a demographic match), at most `limit`.
    pub async fn clients_born_on(
        &mut self,
        birth_date: NaiveDate,
        limit: i64,
    ) -> Result<Vec<Client>, StoreError> {
        let sql = format!(
            "SELECT {} FROM {} WHERE birth_date = $1 ORDER BY id LIMIT $2",
            select_list::<Client>(),
            Client::TABLE
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(birth_date.to_string())
            .bind(limit)
            .fetch_all(&mut *self.inner)
            .await?;
        rows.iter()
            .map(|r| read_stored::<Client>(r).map(|s| s.record))
            .collect()
    }
}

impl Tx {
    /// The clinic's own organization (the one of kind `clinic`).
    pub async fn clinic_organization(&mut self) -> Result<Option<Id<Organization>>, StoreError> {
        let id: Option<String> = sqlx::query_scalar(
            "SELECT id FROM organizations WHERE kind = 'clinic' ORDER BY id LIMIT 1",
        )
        .fetch_optional(&mut *self.inner)
        .await?;
        Ok(id.and_then(|id| id.parse().ok()))
    }

    /// An organization other than the clinic by its NPI, else by its exact name.
    pub async fn partner_organization(
        &mut self,
        npi: Option<&str>,
        name: Option<&str>,
    ) -> Result<Option<Id<Organization>>, StoreError> {
        for (column, value) in [("npi", npi), ("name", name)] {
            let Some(value) = value else { continue };
            let sql = format!(
                "SELECT id FROM organizations WHERE {column} = $1 AND kind <> 'clinic' ORDER BY id LIMIT 1"
            );
            let id: Option<String> = sqlx::query_scalar(AssertSqlSafe(sql))
                .bind(value.to_owned())
                .fetch_optional(&mut *self.inner)
                .await?;
            if let Some(id) = id.and_then(|id| id.parse().ok()) {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }
}

/// A referral received with the address of the referring side's own Task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcedReferral {
    pub referral_id: Id<Referral>,
    pub source_task: String,
    pub source_request: Option<String>,
}

impl Store {
    /// The referrals whose referring side keeps its Task under `base_url` (a target's base).
    pub async fn referrals_sourced_at(
        &self,
        base_url: &str,
    ) -> Result<Vec<SourcedReferral>, StoreError> {
        let base = format!("{}/", base_url.trim_end_matches('/'));
        // LIKE narrows (its `_` matches any character: a superset); the prefix test decides.
        let rows = sqlx::query(
            "SELECT referral_id, source_task, source_request FROM referral_intakes \
             WHERE referral_id IS NOT NULL AND source_task LIKE $1 ORDER BY referral_id",
        )
        .bind(format!("{base}%"))
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for row in rows {
            let id: String = row.try_get("referral_id")?;
            let source_task: String = row.try_get("source_task")?;
            if !source_task.starts_with(&base) {
                continue;
            }
            out.push(SourcedReferral {
                referral_id: id.parse().map_err(|_| StoreError::Corrupt {
                    table: "referral_intakes",
                    id: id.clone(),
                    column: "referral_id",
                    reason: "not an id".into(),
                })?,
                source_task,
                source_request: row.try_get("source_request")?,
            });
        }
        Ok(out)
    }
}
