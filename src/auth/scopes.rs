//! SMART scopes for backend services: `system/CarePlan.rs`, `system/*.cruds` (v2) and
//! `system/Patient.read` / `.write` / `.*` (v1, read as their v2 equivalents). What a client is
//! granted is what it asked for and is registered for; each API interaction then needs one
//! letter on its resource type.

use std::fmt;

/// The one type a wildcard scope does not cover.
const NAMED_ONLY: &str = "AuditEvent";

/// One SMART v2 permission letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Letter {
    Create,
    Read,
    Update,
    Delete,
    Search,
}

impl Letter {
    const ORDER: [(Self, char); 5] = [
        (Self::Create, 'c'),
        (Self::Read, 'r'),
        (Self::Update, 'u'),
        (Self::Delete, 'd'),
        (Self::Search, 's'),
    ];
    fn bit(self) -> u8 {
        match self {
            Self::Create => 1,
            Self::Read => 2,
            Self::Update => 4,
            Self::Delete => 8,
            Self::Search => 16,
        }
    }
    pub fn char(self) -> char {
        Self::ORDER
            .iter()
            .find(|(l, _)| *l == self)
            .map(|(_, c)| *c)
            .unwrap_or('?')
    }
}

/// A set of letters (bit per letter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Letters(u8);

impl Letters {
    const ALL: Self = Self(31);

    /// `cruds` order, each at most once, at least one.
    fn parse_v2(text: &str) -> Option<Self> {
        let mut bits = 0u8;
        let mut next = 0usize;
        for c in text.chars() {
            let at = Letter::ORDER[next..].iter().position(|(_, l)| *l == c)?;
            bits |= Letter::ORDER[next + at].0.bit();
            next += at + 1;
        }
        (bits != 0).then_some(Self(bits))
    }

    /// SMART v1 `read`, `write`, `*` → `rs`, `cud`, `cruds`.
    fn parse_v1(text: &str) -> Option<Self> {
        match text {
            "read" => Some(Self(Letter::Read.bit() | Letter::Search.bit())),
            "write" => Some(Self(
                Letter::Create.bit() | Letter::Update.bit() | Letter::Delete.bit(),
            )),
            "*" => Some(Self::ALL),
            _ => None,
        }
    }

    fn has(self, letter: Letter) -> bool {
        self.0 & letter.bit() != 0
    }
}

impl fmt::Display for Letters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (letter, c) in Letter::ORDER {
            if self.has(letter) {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// One `system/` scope: a resource type (or `*`) and its letters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// None for `*`.
    resource_type: Option<String>,
    letters: Letters,
    /// The scope as written, when it was one (kept so a fully granted scope is echoed as asked).
    written: Option<String>,
}

impl Scope {
    /// A `system/` scope, v2 or v1; None for anything else (`patient/`, `user/`, `openid`,
    /// `launch`, v2 scopes with `?` constraints, which this server does not grant).
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix("system/")?;
        let (resource_type, permissions) = rest.split_once('.')?;
        let resource_type = match resource_type {
            "*" => None,
            t if !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric()) => {
                Some(t.to_owned())
            }
            _ => return None,
        };
        let letters = Letters::parse_v2(permissions).or_else(|| Letters::parse_v1(permissions))?;
        Some(Self {
            resource_type,
            letters,
            written: Some(text.to_owned()),
        })
    }

    /// `system/*` covers every type but the audit trail: the accounting of every client's
    /// disclosures is granted only by name (`system/AuditEvent.rs`), never by a wildcard.
    fn covers_type(&self, resource_type: &str) -> bool {
        match self.resource_type.as_deref() {
            None => resource_type != NAMED_ONLY,
            Some(t) => t == resource_type,
        }
    }

    /// What both allow, if anything.
    fn intersect(&self, other: &Self) -> Option<Self> {
        let resource_type = match (&self.resource_type, &other.resource_type) {
            (None, Some(t)) | (Some(t), None) if t == NAMED_ONLY => return None,
            (None, t) | (t, None) => t.clone(),
            (Some(a), Some(b)) if a == b => Some(a.clone()),
            _ => return None,
        };
        let letters = Letters(self.letters.0 & other.letters.0);
        (letters.0 != 0).then_some(Self {
            resource_type,
            letters,
            written: None,
        })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(written) = &self.written {
            return f.write_str(written);
        }
        let t = self.resource_type.as_deref().unwrap_or("*");
        write!(f, "system/{t}.{}", self.letters)
    }
}

/// A set of scopes (what a token carries, or what a client is registered for).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scopes(Vec<Scope>);

impl Scopes {
    /// Every letter on every type.
    pub fn everything() -> Self {
        Self(vec![
            Scope {
                resource_type: None,
                letters: Letters::ALL,
                written: Some("system/*.cruds".into()),
            },
            Scope {
                resource_type: Some(NAMED_ONLY.into()),
                letters: Letters::ALL,
                written: Some(format!("system/{NAMED_ONLY}.cruds")),
            },
        ])
    }

    /// The `system/` scopes of a space-separated list, and the words that are not one.
    pub fn parse(text: &str) -> (Self, Vec<String>) {
        let mut scopes = Vec::new();
        let mut other = Vec::new();
        for word in text.split_whitespace() {
            match Scope::parse(word) {
                Some(scope) => scopes.push(scope),
                None => other.push(word.to_owned()),
            }
        }
        (Self(scopes), other)
    }

    /// Parses a list that must hold only `system/` scopes (registrations, tokens).
    pub fn parse_strict(text: &str) -> Result<Self, String> {
        let (scopes, other) = Self::parse(text);
        match other.first() {
            Some(word) => Err(format!(
                "`{word}` is not a system/ scope this server grants"
            )),
            None if scopes.0.is_empty() => Err("no scopes".into()),
            None => Ok(scopes),
        }
    }

    /// What may be granted of `asked` to a client registered for `self`: each asked scope as
    /// asked when it is wholly covered by one registered scope, otherwise its overlaps.
    pub fn grant(&self, asked: &Scopes) -> Scopes {
        let mut granted: Vec<Scope> = Vec::new();
        for want in &asked.0 {
            let mut parts: Vec<Scope> = self.0.iter().filter_map(|r| want.intersect(r)).collect();
            if let Some(whole) = parts
                .iter()
                .find(|p| p.resource_type == want.resource_type && p.letters == want.letters)
            {
                parts = vec![Scope {
                    written: want.written.clone(),
                    ..whole.clone()
                }];
            }
            for part in parts {
                if !granted.iter().any(|g| g.to_string() == part.to_string()) {
                    granted.push(part);
                }
            }
        }
        Scopes(granted)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `letter` on `resource_type` is allowed.
    pub fn permits(&self, resource_type: &str, letter: Letter) -> bool {
        self.0
            .iter()
            .any(|s| s.covers_type(resource_type) && s.letters.has(letter))
    }

    /// The v2 strings of every scope, for the CapabilityStatement and discovery.
    pub fn iter_strings(&self) -> impl Iterator<Item = String> + '_ {
        self.0.iter().map(ToString::to_string)
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<String> = self.iter_strings().collect();
        f.write_str(&words.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_letters_must_be_in_order_and_v1_maps_to_v2() {
        assert!(Scope::parse("system/CarePlan.rs").is_some());
        assert!(Scope::parse("system/CarePlan.sr").is_none());
        assert!(Scope::parse("system/CarePlan.rr").is_none());
        assert!(Scope::parse("system/CarePlan.").is_none());
        assert!(Scope::parse("patient/CarePlan.rs").is_none());
        assert!(Scope::parse("system/CarePlan.rs?category=x").is_none());
        let (v1, _) = Scopes::parse("system/Patient.read");
        assert!(v1.permits("Patient", Letter::Read) && v1.permits("Patient", Letter::Search));
        assert!(!v1.permits("Patient", Letter::Create) && !v1.permits("Goal", Letter::Read));
        let (write, _) = Scopes::parse("system/*.write");
        assert!(write.permits("Goal", Letter::Update) && !write.permits("Goal", Letter::Read));
    }

    #[test]
    fn a_grant_is_what_was_asked_and_registered() {
        let registered = Scopes::parse_strict("system/CarePlan.cruds system/Patient.r").unwrap();
        let (asked, _) = Scopes::parse("system/*.rs launch");
        let granted = registered.grant(&asked);
        assert_eq!(granted.to_string(), "system/CarePlan.rs system/Patient.r");
        let (asked, _) = Scopes::parse("system/CarePlan.read");
        assert_eq!(registered.grant(&asked).to_string(), "system/CarePlan.read");
        let (asked, _) = Scopes::parse("system/Goal.rs");
        assert!(registered.grant(&asked).is_empty());
    }
}
