use crate::domain::{
    Client, Coded, Consent, ConsentRecipient, DateRange, DomainError, InformationCategory,
    InformationScope,
};
use crate::store::{Child, Record, RowReader, SqlValue, StoreError};

impl Record for Consent {
    const TABLE: &'static str = "consents";
    const COLUMNS: &'static [&'static str] = &[
        "client_id",
        "kind",
        "scope",
        "categories",
        "recipient_org_id",
        "recipient_staff_id",
        "recipient_contact_id",
        "purpose",
        "valid_from",
        "valid_to",
        "signed_on",
        "revoked_on",
    ];
    const OWNER_COLUMN: Option<&'static str> = Some("client_id");
    fn id(&self) -> crate::domain::Id<Self> {
        self.id
    }
    fn owner(&self) -> uuid::Uuid {
        self.client_id.uuid()
    }
    fn values(&self) -> Vec<SqlValue> {
        // Categories are a space-separated list of codes: a small closed set, read back with the scope.
        let categories = match &self.scope {
            InformationScope::Categories(list) => {
                Some(list.iter().map(|c| c.code()).collect::<Vec<_>>().join(" "))
            }
            _ => None,
        };
        let (org, staff, contact) = match self.recipient {
            ConsentRecipient::Organization(id) => (Some(id.to_string()), None, None),
            ConsentRecipient::Clinician(id) => (None, Some(id.to_string()), None),
            ConsentRecipient::SupportContact(id) => (None, None, Some(id.to_string())),
        };
        vec![
            SqlValue::id(self.client_id),
            SqlValue::code(self.kind),
            SqlValue::text(self.scope.code()),
            SqlValue::Text(categories),
            SqlValue::Text(org),
            SqlValue::Text(staff),
            SqlValue::Text(contact),
            SqlValue::code(self.purpose),
            SqlValue::date(self.valid.start()),
            SqlValue::opt_date(self.valid.end()),
            SqlValue::date(self.signed_on),
            SqlValue::opt_date(self.revoked_on),
        ]
    }
    fn from_row(r: &RowReader<'_>) -> Result<Self, StoreError> {
        let scope = match (r.text("scope")?.as_str(), r.opt_text("categories")?) {
            ("all", None) => InformationScope::All,
            ("all_except_substance_use", None) => InformationScope::AllExceptSubstanceUse,
            ("categories", Some(list)) => {
                let parsed = list
                    .split(' ')
                    .map(InformationCategory::from_code)
                    .collect::<Result<Vec<_>, _>>();
                r.domain("categories", parsed.and_then(InformationScope::categories))?
            }
            _ => return Err(r.inconsistent("scope", "scope and categories disagree")),
        };
        let recipient = match (
            r.opt_parse("recipient_org_id")?,
            r.opt_parse("recipient_staff_id")?,
            r.opt_parse("recipient_contact_id")?,
        ) {
            (Some(id), None, None) => ConsentRecipient::Organization(id),
            (None, Some(id), None) => ConsentRecipient::Clinician(id),
            (None, None, Some(id)) => ConsentRecipient::SupportContact(id),
            _ => return Err(r.inconsistent("recipient_org_id", "not exactly one recipient")),
        };
        Ok(Self {
            id: r.parse("id")?,
            client_id: r.parse("client_id")?,
            kind: r.parse("kind")?,
            scope,
            recipient,
            purpose: r.parse("purpose")?,
            valid: r.domain(
                "valid_to",
                DateRange::new(r.date("valid_from")?, r.opt_date("valid_to")?),
            )?,
            signed_on: r.date("signed_on")?,
            revoked_on: r.opt_date("revoked_on")?,
        })
    }
    fn check(&self) -> Result<(), DomainError> {
        Consent::check(self)
    }
}

impl Child for Consent {
    type Parent = Client;
    const PARENT_COLUMN: &'static str = "client_id";
}
