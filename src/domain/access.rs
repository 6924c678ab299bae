//! Who may use the gateway from outside, and the accounting of what they were given: API clients
//! (SMART Backend Services registrations) and audit records. Plain values; what a scope or a key
//! means is `crate::auth`'s, what an audit record says in FHIR is the mapping's.

use super::{DomainError, Timestamp};

/// A registered API client (an EHR vendor's backend service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiClient {
    /// The OAuth `client_id` (its assertions' `iss` and `sub`); also its name on the CLI.
    pub client_id: ClientId,
    pub keys: KeySource,
    /// The SMART scopes it may be granted, space-separated as registered.
    pub scopes: String,
    /// The organization that receives what the client is given (the recipient in consent
    /// decisions).
    pub organization_id: Option<String>,
    /// The purpose of use its requests are made for (a v3 ActReason code such as TREAT).
    pub purpose_of_use: String,
    pub enabled: bool,
    /// One of the clinic's own applications: it may create and change the clinic's records
    /// (plans, goals, reviews), which an external EHR's client may not, whatever its scopes.
    pub clinic_app: bool,
}

/// Where a client's public keys are: a JWKS given at registration, or a URL serving one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// JWKS JSON text.
    Inline(String),
    Url(String),
}

/// A client id: 1 to 128 characters of `A-Z a-z 0-9 . _ - : /`, so it is safe in logs and URLs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(String);

impl ClientId {
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        if text.is_empty() {
            return Err(DomainError::Empty { field: "client id" });
        }
        if text.len() > 128 {
            return Err(DomainError::TooLong {
                field: "client id",
                max: 128,
            });
        }
        if !text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/'))
        {
            return Err(DomainError::Malformed {
                field: "client id",
                rule: "letters, digits and . _ - : / only",
            });
        }
        // Console operators are recorded in the audit trail as `operator:NAME`.
        if text.starts_with("operator:") {
            return Err(DomainError::Malformed {
                field: "client id",
                rule: "must not start with operator: (the audit trail's name for console operators)",
            });
        }
        Ok(Self(text.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an audited request did (BALP's read, query, create, update; the token endpoint's
/// authentication).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditInteraction {
    Read,
    Vread,
    History,
    Search,
    Create,
    Update,
    Delete,
    Validate,
    Token,
    /// A Bulk Data export: its kick-off, and its completion with what it wrote.
    Export,
    /// An operator signing in to the console (or refused).
    SignIn,
    /// An operator's action in the console: a sync started, a dead letter retried or
    /// dismissed, a referral decided, an API client changed.
    Console,
}

impl AuditInteraction {
    pub const ALL: [Self; 12] = [
        Self::Read,
        Self::Vread,
        Self::History,
        Self::Search,
        Self::Create,
        Self::Update,
        Self::Delete,
        Self::Validate,
        Self::Token,
        Self::Export,
        Self::SignIn,
        Self::Console,
    ];
    /// As stored, and as FHIR's restful-interaction code (`token` is the login).
    pub fn code(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Vread => "vread",
            Self::History => "history",
            Self::Search => "search",
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Validate => "validate",
            Self::Token => "token",
            Self::Export => "export",
            Self::SignIn => "sign-in",
            Self::Console => "console",
        }
    }
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|i| i.code() == code)
    }
}

/// How an audited request ended (FHIR AuditEventOutcome).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOutcome {
    Success,
    /// Refused: a bad credential or a missing scope.
    Refused,
    Failed,
}

impl AuditOutcome {
    /// 0, 4, 8 (FHIR AuditEventOutcome).
    pub fn code(self) -> i64 {
        match self {
            Self::Success => 0,
            Self::Refused => 4,
            Self::Failed => 8,
        }
    }
    pub fn parse(code: i64) -> Option<Self> {
        match code {
            0 => Some(Self::Success),
            4 => Some(Self::Refused),
            8 => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One entry of the accounting of disclosures. Append-only in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: String,
    pub recorded: Timestamp,
    pub interaction: AuditInteraction,
    pub outcome: AuditOutcome,
    /// Why it was refused or failed: a fixed reason, never request content.
    pub outcome_desc: Option<String>,
    pub client_id: Option<String>,
    pub organization_id: Option<String>,
    pub purpose_of_use: Option<String>,
    /// The access token used (its `jti`), or the token issued.
    pub token_id: Option<String>,
    pub request_id: Option<String>,
    pub source_address: Option<String>,
    /// The resource type a search or history was of.
    pub resource_type: Option<String>,
    /// A search's query string as received (the accounting must say what was asked).
    pub query: Option<String>,
    /// What was disclosed or changed, as `Type/id`.
    pub entities: Vec<String>,
    /// The consents (ids) that allowed the disclosure, where a consent decided.
    pub consents: Vec<String>,
    /// The patients those resources are about (Patient ids).
    pub patients: Vec<String>,
}

impl AuditRecord {
    /// FHIR AuditEventAction: C R U D E.
    pub fn action(&self) -> &'static str {
        match self.interaction {
            AuditInteraction::Create => "C",
            AuditInteraction::Read | AuditInteraction::Vread | AuditInteraction::History => "R",
            AuditInteraction::Update => "U",
            AuditInteraction::Delete => "D",
            AuditInteraction::Search
            | AuditInteraction::Validate
            | AuditInteraction::Token
            | AuditInteraction::Export
            | AuditInteraction::SignIn
            | AuditInteraction::Console => "E",
        }
    }
}
