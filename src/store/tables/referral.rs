use crate::domain::{Client, HeldReferralRequest, Id, Referral, ReferralIntake};
use crate::store::{Child, Record, RowReader, SqlValue, StoreError};

impl Record for Referral {
    const TABLE: &'static str = "referrals";
    const COLUMNS: &'static [&'static str] = &[
        "client_id",
        "direction",
        "kind",
        "status",
        "reason",
        "referred_on",
        "decided_on",
        "referring_org_id",
        "receiving_org_id",
        "program_id",
        "status_reason",
        "transition_summary",
    ];
    const OWNER_COLUMN: Option<&'static str> = Some("client_id");
    fn id(&self) -> crate::domain::Id<Self> {
        self.id
    }
    fn owner(&self) -> uuid::Uuid {
        self.client_id.uuid()
    }
    fn values(&self) -> Vec<SqlValue> {
        vec![
            SqlValue::id(self.client_id),
            SqlValue::code(self.direction),
            SqlValue::code(self.kind),
            SqlValue::code(self.status),
            SqlValue::text(&self.reason),
            SqlValue::date(self.referred_on),
            SqlValue::opt_date(self.decided_on),
            SqlValue::id(self.referring_org_id),
            SqlValue::id(self.receiving_org_id),
            SqlValue::opt_id(self.program_id),
            SqlValue::opt_text(self.status_reason.as_ref()),
            SqlValue::text(
                self.transition_summary
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ]
    }
    fn from_row(r: &RowReader<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            id: r.parse("id")?,
            client_id: r.parse("client_id")?,
            direction: r.parse("direction")?,
            kind: r.parse("kind")?,
            status: r.parse("status")?,
            reason: r.parse("reason")?,
            referred_on: r.date("referred_on")?,
            decided_on: r.opt_date("decided_on")?,
            referring_org_id: r.parse("referring_org_id")?,
            receiving_org_id: r.parse("receiving_org_id")?,
            program_id: r.opt_parse("program_id")?,
            status_reason: r.opt_parse("status_reason")?,
            transition_summary: r
                .text("transition_summary")?
                .split(',')
                .filter(|item| !item.is_empty())
                .map(|item| {
                    item.parse()
                        .map_err(|_| r.inconsistent("transition_summary", "not kind:id items"))
                })
                .collect::<Result<_, _>>()?,
        })
    }
    fn check(&self) -> Result<(), crate::domain::DomainError> {
        Referral::check(self)
    }
}

impl Child for Referral {
    type Parent = Client;
    const PARENT_COLUMN: &'static str = "client_id";
}

impl Record for ReferralIntake {
    const TABLE: &'static str = "referral_intakes";
    const COLUMNS: &'static [&'static str] = &[
        "message_key",
        "placer_key",
        "state",
        "referral_id",
        "candidates",
        "message",
        "source_task",
        "source_request",
    ];
    fn id(&self) -> Id<Self> {
        self.id
    }
    fn values(&self) -> Vec<SqlValue> {
        let candidates: Vec<String> = self.candidates.iter().map(ToString::to_string).collect();
        vec![
            SqlValue::opt_text(self.message_key.as_ref()),
            SqlValue::text(&self.placer_key),
            SqlValue::code(self.state),
            SqlValue::opt_id(self.referral_id),
            SqlValue::text(candidates.join(",")),
            SqlValue::text(&self.message),
            SqlValue::opt_text(self.source_task.as_ref()),
            SqlValue::opt_text(self.source_request.as_ref()),
        ]
    }
    fn from_row(r: &RowReader<'_>) -> Result<Self, StoreError> {
        let candidates = r.text("candidates")?;
        let candidates = candidates
            .split(',')
            .filter(|c| !c.is_empty())
            .map(|c| {
                c.parse()
                    .map_err(|_| r.inconsistent("candidates", "not a list of client ids"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            id: r.parse("id")?,
            message_key: r.opt_parse("message_key")?,
            placer_key: r.parse("placer_key")?,
            state: r.parse("state")?,
            referral_id: r.opt_parse("referral_id")?,
            candidates,
            message: r.text("message")?,
            source_task: r.opt_text("source_task")?,
            source_request: r.opt_text("source_request")?,
        })
    }
    fn check(&self) -> Result<(), crate::domain::DomainError> {
        ReferralIntake::check(self)
    }
}

impl Record for HeldReferralRequest {
    const TABLE: &'static str = "held_referral_requests";
    const COLUMNS: &'static [&'static str] = &["placer_key", "resource"];
    fn id(&self) -> Id<Self> {
        self.id
    }
    fn values(&self) -> Vec<SqlValue> {
        vec![
            SqlValue::text(&self.placer_key),
            SqlValue::text(&self.resource),
        ]
    }
    fn from_row(r: &RowReader<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            id: r.parse("id")?,
            placer_key: r.parse("placer_key")?,
            resource: r.text("resource")?,
        })
    }
}
