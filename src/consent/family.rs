//! Which support contacts may appear in what leaves the clinic: family of origin or chosen family
//! take part only as far as the client consents, so a contact shows (as a RelatedPerson, as a
//! family-session participant, as a person to call in a relapse plan) only while a consent
//! naming that contact is in force.

use chrono::NaiveDate;

use crate::domain::{Consent, ConsentRecipient, Id, SupportContact};

/// The contacts named by a consent in force on `today`.
pub fn covered_contacts(consents: &[Consent], today: NaiveDate) -> Vec<Id<SupportContact>> {
    let mut covered: Vec<Id<SupportContact>> = consents
        .iter()
        .filter(|c| c.in_force_on(today))
        .filter_map(|c| match c.recipient {
            ConsentRecipient::SupportContact(id) => Some(id),
            _ => None,
        })
        .collect();
    covered.sort_by_key(|id| id.to_string());
    covered.dedup();
    covered
}
