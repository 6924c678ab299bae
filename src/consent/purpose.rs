//! Purposes of use: the HL7 v3 ActReason codes a request for data is made under.

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

/// Why the recipient wants the data (HL7 v3 ActReason, `PurposeOfUse` branch).
///
/// Purposes match exactly: a directive that permits `TREAT` does not thereby permit `ETREAT` or
/// `COC`. The v3 hierarchy is deliberately not applied, so that what a consent permits is what it
/// lists; [`crate::consent::directive_from`] lists every code a clinic purpose stands for instead.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PurposeOfUse {
    /// `TREAT`: treatment.
    Treat,
    /// `ETREAT`: emergency treatment.
    Etreat,
    /// `COC`: coordination of care.
    Coc,
    /// `CAREMGT`: care management (the code the gateway's FHIR Consent uses for care coordination).
    Caremgt,
    /// `HPAYMT`: healthcare payment.
    Hpaymt,
    /// `HOPERAT`: healthcare operations.
    Hoperat,
    /// `FAMRQT`: family requested.
    Famrqt,
    /// `PATRQT`: patient requested.
    Patrqt,
    /// `PUBHLTH`: public health.
    Pubhlth,
    /// `HRESCH`: healthcare research.
    Hresch,
    /// `HLEGAL`: legal.
    Hlegal,
    /// Any other code, kept verbatim so that a directive naming it still matches it.
    Other(String),
}

impl PurposeOfUse {
    /// The codes this type names; anything else parses as [`PurposeOfUse::Other`].
    const KNOWN: [(&'static str, PurposeOfUse); 11] = [
        ("TREAT", Self::Treat),
        ("ETREAT", Self::Etreat),
        ("COC", Self::Coc),
        ("CAREMGT", Self::Caremgt),
        ("HPAYMT", Self::Hpaymt),
        ("HOPERAT", Self::Hoperat),
        ("FAMRQT", Self::Famrqt),
        ("PATRQT", Self::Patrqt),
        ("PUBHLTH", Self::Pubhlth),
        ("HRESCH", Self::Hresch),
        ("HLEGAL", Self::Hlegal),
    ];

    /// Reads a v3 ActReason code. Codes are case-sensitive, as in the code system.
    pub fn from_code(code: &str) -> Self {
        Self::KNOWN
            .iter()
            .find(|(known, _)| *known == code)
            .map(|(_, purpose)| purpose.clone())
            .unwrap_or_else(|| Self::Other(code.to_owned()))
    }

    /// The v3 ActReason code.
    pub fn code(&self) -> &str {
        match self {
            Self::Other(code) => code,
            known => Self::KNOWN
                .iter()
                .find(|(_, purpose)| purpose == known)
                .map_or("", |(code, _)| code),
        }
    }
}

impl FromStr for PurposeOfUse {
    type Err = Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::from_code(s))
    }
}

impl fmt::Display for PurposeOfUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consent_purposes_round_trip_and_keep_unknown_codes() {
        for (code, purpose) in PurposeOfUse::KNOWN {
            assert_eq!(PurposeOfUse::from_code(code), purpose);
            assert_eq!(purpose.code(), code);
        }
        let other = PurposeOfUse::from_code("HMARKT");
        assert_eq!(other, PurposeOfUse::Other("HMARKT".to_owned()));
        assert_eq!(other.to_string(), "HMARKT");
        assert_eq!(
            PurposeOfUse::from_code("treat"),
            PurposeOfUse::Other("treat".to_owned())
        );
    }
}
