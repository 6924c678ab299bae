use crate::domain::{Enrollment, Session, SessionLength, SessionParticipant};
use crate::store::{Child, Record, RowReader, SqlValue, StoreError};

impl Record for Session {
    const TABLE: &'static str = "sessions";
    const COLUMNS: &'static [&'static str] = &[
        "enrollment_id",
        "session_type",
        "modality",
        "delivery",
        "scheduled_start",
        "duration_minutes",
        "clinician_id",
        "attendance",
        "group_id",
    ];
    const OWNER_COLUMN: Option<&'static str> = Some("enrollment_id");
    fn id(&self) -> crate::domain::Id<Self> {
        self.id
    }
    fn owner(&self) -> uuid::Uuid {
        self.enrollment_id.uuid()
    }
    fn values(&self) -> Vec<SqlValue> {
        vec![
            SqlValue::id(self.enrollment_id),
            SqlValue::code(self.session_type),
            SqlValue::opt_code(self.modality),
            SqlValue::code(self.delivery),
            SqlValue::text(self.scheduled_start),
            SqlValue::int(self.length.as_minutes()),
            SqlValue::id(self.clinician_id),
            SqlValue::code(self.attendance),
            SqlValue::opt_id(self.group_id),
        ]
    }
    fn from_row(r: &RowReader<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            id: r.parse("id")?,
            enrollment_id: r.parse("enrollment_id")?,
            session_type: r.parse("session_type")?,
            modality: r.opt_parse("modality")?,
            delivery: r.parse("delivery")?,
            scheduled_start: r.parse("scheduled_start")?,
            length: r.domain(
                "duration_minutes",
                SessionLength::minutes(r.int("duration_minutes")?),
            )?,
            clinician_id: r.parse("clinician_id")?,
            attendance: r.parse("attendance")?,
            group_id: r.opt_parse("group_id")?,
        })
    }
    fn check(&self) -> Result<(), crate::domain::DomainError> {
        Session::check(self)
    }
}

impl Child for Session {
    type Parent = Enrollment;
    const PARENT_COLUMN: &'static str = "enrollment_id";
}

impl Record for SessionParticipant {
    const TABLE: &'static str = "session_participants";
    const COLUMNS: &'static [&'static str] = &["session_id", "support_contact_id"];
    fn id(&self) -> crate::domain::Id<Self> {
        self.id
    }
    fn values(&self) -> Vec<SqlValue> {
        vec![
            SqlValue::id(self.session_id),
            SqlValue::id(self.support_contact_id),
        ]
    }
    fn from_row(r: &RowReader<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            id: r.parse("id")?,
            session_id: r.parse("session_id")?,
            support_contact_id: r.parse("support_contact_id")?,
        })
    }
}

impl Child for SessionParticipant {
    type Parent = Session;
    const PARENT_COLUMN: &'static str = "session_id";
}
