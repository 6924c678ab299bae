//! The people who sign in to the operations console, and what each role lets them do.

use super::DomainError;

/// An operator's sign-in name: 1 to 64 characters of `a-z 0-9 . _ -`, safe in logs and audit
/// records (it names a member of staff, not a client).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OperatorName(String);

impl OperatorName {
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        let field = "operator name";
        if text.is_empty() {
            return Err(DomainError::Empty { field });
        }
        if text.len() > 64 {
            return Err(DomainError::TooLong { field, max: 64 });
        }
        if !text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        {
            return Err(DomainError::Malformed {
                field,
                rule: "lower-case letters, digits and . _ - only",
            });
        }
        Ok(Self(text.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for OperatorName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an operator may do in the console. Every signed-in operator may look at the sync,
/// dead-letter, referral and client pages; acting and reading the audit trail are granted apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Looks only: no buttons that change anything.
    Viewer,
    /// Starts syncs, retries and dismisses dead letters, decides referrals, manages API clients.
    Operator,
    /// Reads the audit trail and a patient's accounting of disclosures.
    PrivacyOfficer,
}

impl Role {
    pub const ALL: [Self; 3] = [Self::Viewer, Self::Operator, Self::PrivacyOfficer];
    pub fn code(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::PrivacyOfficer => "privacy-officer",
        }
    }
    pub fn parse(code: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|r| r.code() == code)
            .ok_or_else(|| DomainError::UnknownCode {
                kind: "operator role (viewer, operator, privacy-officer)",
                code: code.to_owned(),
            })
    }
}

/// An operator's roles, never empty (at least `Viewer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles(Vec<Role>);

impl Roles {
    pub fn new(mut roles: Vec<Role>) -> Self {
        if roles.is_empty() {
            roles.push(Role::Viewer);
        }
        roles.sort();
        roles.dedup();
        Self(roles)
    }
    /// Space-separated codes, as stored.
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        text.split_whitespace()
            .map(Role::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(Self::new)
    }
    pub fn has(&self, role: Role) -> bool {
        self.0.contains(&role)
    }
    pub fn iter(&self) -> impl Iterator<Item = Role> + '_ {
        self.0.iter().copied()
    }
    pub fn codes(&self) -> String {
        self.0
            .iter()
            .map(|r| r.code())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A console operator as stored (the password only as its argon2id hash; `Debug` leaves it out).
#[derive(Clone)]
pub struct Operator {
    pub name: OperatorName,
    pub password_hash: String,
    pub roles: Roles,
    pub enabled: bool,
}

// Written by hand so that a hash never reaches a log line through `{:?}`.
impl std::fmt::Debug for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operator")
            .field("name", &self.name)
            .field("roles", &self.roles)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_and_roles_known() {
        assert!(OperatorName::parse("it.admin-2").is_ok());
        assert!(OperatorName::parse("Robert'); DROP").is_err());
        assert!(OperatorName::parse("").is_err());
        let roles = Roles::parse("privacy-officer viewer viewer").unwrap();
        assert_eq!(roles.codes(), "viewer privacy-officer");
        assert!(!roles.has(Role::Operator));
        assert!(Roles::parse("admin").is_err());
        assert_eq!(Roles::parse("").unwrap().codes(), "viewer");
    }
}
