//! Who a referred patient is among the clinic's clients, by demographics (after identifiers
//! found no one). A wrong link discloses one client's care to another's referrer, so only an
//! unambiguous, complete match links; anything in between waits for a person.

use super::{Client, Id};

/// What the demographics say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatientMatch {
    /// Exactly one client has the same family and given name, birth date and gender.
    Exact(Id<Client>),
    /// No client shares the birth date and a name: a new client.
    NoMatch,
    /// Several exact matches, or clients that match only in part (same birth date and family or
    /// given name): a person decides. Never merged automatically.
    Ambiguous(Vec<Id<Client>>),
}

/// Names compared as people write them: case, surrounding space, inner runs of space, hyphens
/// and apostrophes do not count.
fn folded(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '-' | '\'' | '’' | '.'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// `incoming` against `candidates` (the clients born the same day).
pub fn match_patient(incoming: &Client, candidates: &[Client]) -> PatientMatch {
    let family = folded(incoming.name.family.as_str());
    let given = folded(incoming.name.given.as_str());
    let mut exact = Vec::new();
    let mut partial = Vec::new();
    for candidate in candidates
        .iter()
        .filter(|c| c.birth_date == incoming.birth_date)
    {
        let same_family = folded(candidate.name.family.as_str()) == family;
        let same_given = folded(candidate.name.given.as_str()) == given;
        if same_family && same_given && candidate.gender == incoming.gender {
            exact.push(candidate.id);
        } else if same_family || same_given {
            partial.push(candidate.id);
        }
    }
    match (exact.as_slice(), partial.is_empty()) {
        ([one], _) => PatientMatch::Exact(*one),
        ([], true) => PatientMatch::NoMatch,
        _ => PatientMatch::Ambiguous(exact.into_iter().chain(partial).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Gender, Mrn, PersonName};
    use chrono::NaiveDate;

    fn client(n: u128, given: &str, family: &str, born: &str, gender: Gender) -> Client {
        Client {
            id: Id::from_uuid(uuid::Uuid::from_u128(n)),
            mrn: Mrn::parse(&format!("M{n}")).unwrap(),
            name: PersonName::parse(given, family).unwrap(),
            birth_date: born.parse::<NaiveDate>().unwrap(),
            gender,
            phone: None,
            email: None,
            address: None,
            language: None,
        }
    }

    #[test]
    fn one_complete_match_links_even_beside_a_sibling() {
        let incoming = client(0, "Ana", "Diaz-Lopez", "1990-04-02", Gender::Female);
        let ana = client(1, " ana ", "Diaz Lopez", "1990-04-02", Gender::Female);
        let twin = client(2, "Eva", "Diaz-Lopez", "1990-04-02", Gender::Female);
        assert_eq!(
            match_patient(&incoming, &[ana.clone(), twin]),
            PatientMatch::Exact(ana.id)
        );
    }

    #[test]
    fn partial_or_repeated_matches_wait_for_review() {
        let incoming = client(0, "Ana", "Diaz", "1990-04-02", Gender::Female);
        let married = client(1, "Ana", "Smith", "1990-04-02", Gender::Female);
        assert_eq!(
            match_patient(&incoming, std::slice::from_ref(&married)),
            PatientMatch::Ambiguous(vec![married.id])
        );
        let a = client(2, "Ana", "Diaz", "1990-04-02", Gender::Female);
        let b = client(3, "Ana", "Diaz", "1990-04-02", Gender::Female);
        assert_eq!(
            match_patient(&incoming, &[a.clone(), b.clone()]),
            PatientMatch::Ambiguous(vec![a.id, b.id])
        );
        let other_gender = client(4, "Ana", "Diaz", "1990-04-02", Gender::Male);
        assert_eq!(
            match_patient(&incoming, std::slice::from_ref(&other_gender)),
            PatientMatch::Ambiguous(vec![other_gender.id])
        );
    }

    #[test]
    fn strangers_born_the_same_day_are_no_match() {
        let incoming = client(0, "Ana", "Diaz", "1990-04-02", Gender::Female);
        let stranger = client(1, "Bo", "Chen", "1990-04-02", Gender::Male);
        let namesake = client(2, "Ana", "Diaz", "1991-04-02", Gender::Female);
        assert_eq!(
            match_patient(&incoming, &[stranger, namesake]),
            PatientMatch::NoMatch
        );
    }
}
