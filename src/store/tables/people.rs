use super::{address_values, read_address, read_name};
use crate::domain::{Client, DateRange, Organization, Staff, SupportContact, SupportRoles};
use crate::store::{Child, Record, RowReader, SqlValue, StoreError};

impl Record for Organization {
    const TABLE: &'static str = "organizations";
    const COLUMNS: &'static [&'static str] = &[
        "kind",
        "name",
        "npi",
        "phone",
        "address_line",
        "city",
        "state",
        "postal_code",
    ];
    fn id(&self) -> crate::domain::Id<Self> {
        self.id
    }
    fn values(&self) -> Vec<SqlValue> {
        let mut v = vec![
            SqlValue::code(self.kind),
            SqlValue::text(&self.name),
            SqlValue::opt_text(self.npi.as_ref()),
            SqlValue::opt_text(self.phone.as_ref()),
        ];
        v.extend(address_values(self.address.as_ref()));
        v
    }
    fn from_row(r: &RowReader<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            id: r.parse("id")?,
            kind: r.parse("kind")?,
            name: r.parse("name")?,
            npi: r.opt_parse("npi")?,
            phone: r.opt_parse("phone")?,
            address: read_address(r)?,
        })
    }
}

impl Record for Staff {
    const TABLE: &'static str = "staff";
    const COLUMNS: &'static [&'static str] = &[
        "organization_id",
        "given_name",
        "family_name",
        "role",
        "credentials",
        "npi",
        "email",
        "phone",
        "active",
    ];
    fn id(&self) -> crate::domain::Id<Self> {
        self.id
    }
    fn values(&self) -> Vec<SqlValue> {
        vec![
            SqlValue::id(self.organization_id),
            SqlValue::text(&self.name.given),
            SqlValue::text(&self.name.family),
            SqlValue::code(self.role),
            SqlValue::opt_text(self.credentials.as_ref()),
            SqlValue::opt_text(self.npi.as_ref()),
            SqlValue::opt_text(self.email.as_ref()),
            SqlValue::opt_text(self.phone.as_ref()),
            SqlValue::bool(self.active),
        ]
    }
    fn from_row(r: &RowReader<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            id: r.parse("id")?,
            organization_id: r.parse("organization_id")?,
            name: read_name(r)?,
            role: r.parse("role")?,
            credentials: r.opt_parse("credentials")?,
            npi: r.opt_parse("npi")?,
            email: r.opt_parse("email")?,
            phone: r.opt_parse("phone")?,
            active: r.bool("active")?,
        })
    }
}

impl Child for Staff {
    type Parent = Organization;
    const PARENT_COLUMN: &'static str = "organization_id";
}

impl Record for Client {
    const TABLE: &'static str = "clients";
    const COLUMNS: &'static [&'static str] = &[
        "mrn",
        "given_name",
        "family_name",
        "birth_date",
        "gender",
        "phone",
        "email",
        "address_line",
        "city",
        "state",
        "postal_code",
        "language",
    ];
    fn id(&self) -> crate::domain::Id<Self> {
        self.id
    }
    fn values(&self) -> Vec<SqlValue> {
        let mut v = vec![
            SqlValue::text(&self.mrn),
            SqlValue::text(&self.name.given),
            SqlValue::text(&self.name.family),
            SqlValue::date(self.birth_date),
            SqlValue::code(self.gender),
            SqlValue::opt_text(self.phone.as_ref()),
            SqlValue::opt_text(self.email.as_ref()),
        ];
        v.extend(address_values(self.address.as_ref()));
        v.push(SqlValue::opt_text(self.language.as_ref()));
        v
    }
    fn from_row(r: &RowReader<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            id: r.parse("id")?,
            mrn: r.parse("mrn")?,
            name: read_name(r)?,
            birth_date: r.date("birth_date")?,
            gender: r.parse("gender")?,
            phone: r.opt_parse("phone")?,
            email: r.opt_parse("email")?,
            address: read_address(r)?,
            language: r.opt_parse("language")?,
        })
    }
}

impl Record for SupportContact {
    const TABLE: &'static str = "support_contacts";
    const COLUMNS: &'static [&'static str] = &[
        "client_id",
        "given_name",
        "family_name",
        "relationship",
        "relationship_text",
        "family_therapy_participant",
        "emergency_contact",
        "support_person",
        "phone",
        "email",
        "active_from",
        "active_to",
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
            SqlValue::text(&self.name.given),
            SqlValue::text(&self.name.family),
            SqlValue::code(self.relationship),
            SqlValue::opt_text(self.relationship_text.as_ref()),
            SqlValue::bool(self.roles.family_therapy_participant()),
            SqlValue::bool(self.roles.emergency_contact()),
            SqlValue::bool(self.roles.support_person()),
            SqlValue::opt_text(self.phone.as_ref()),
            SqlValue::opt_text(self.email.as_ref()),
            SqlValue::date(self.active.start()),
            SqlValue::opt_date(self.active.end()),
        ]
    }
    fn from_row(r: &RowReader<'_>) -> Result<Self, StoreError> {
        let roles = SupportRoles::new(
            r.bool("family_therapy_participant")?,
            r.bool("emergency_contact")?,
            r.bool("support_person")?,
        );
        Ok(Self {
            id: r.parse("id")?,
            client_id: r.parse("client_id")?,
            name: read_name(r)?,
            relationship: r.parse("relationship")?,
            relationship_text: r.opt_parse("relationship_text")?,
            roles: r.domain("support_person", roles)?,
            phone: r.opt_parse("phone")?,
            email: r.opt_parse("email")?,
            active: r.domain(
                "active_to",
                DateRange::new(r.date("active_from")?, r.opt_date("active_to")?),
            )?,
        })
    }
    fn check(&self) -> Result<(), crate::domain::DomainError> {
        SupportContact::check(self)
    }
}

impl Child for SupportContact {
    type Parent = Client;
    const PARENT_COLUMN: &'static str = "client_id";
}
