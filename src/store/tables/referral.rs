use crate::domain::{Client, Referral};
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
    ];
    fn id(&self) -> crate::domain::Id<Self> {
        self.id
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
