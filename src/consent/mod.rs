//! The consent decision: may this resource go to this recipient for this purpose today, and why.
//!
//! Pure: no database, files, network or clock. The caller loads the client's consents (turning
//! each into a [`ConsentDirective`] with [`directive_from`]), computes the resource's facts and
//! labels, and passes today's date. [`decide`] answers with a [`Decision`] naming the consent or
//! rule that decided, for the audit log.
//!
//! The rules, in the order they are applied:
//! - only directives in force count (active, signed, within their period, not revoked);
//! - the most recent directive that applies decides, permit or deny, over every default;
//! - 42 CFR Part 2 (2024 rule): Part 2 records go only where a directive permits them, and SUD
//!   counselling notes only under a directive naming them; a single consent for all future
//!   treatment, payment and operations is allowed (§2.31), so a directive may list all three;
//! - support contacts receive nothing but what a directive naming them permits, and appear in
//!   what others receive only while a consent names them ([`covered_contacts`]);
//! - other mental-health data follows the clinic's [`MentalHealthPolicy`].

mod decide;
mod decision;
mod directive;
mod evaluate;
mod family;
mod from_domain;
mod policy;
mod purpose;
mod request;

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;

pub use decide::decide;
pub use decision::{Basis, ConsentBasis, Decision, Rule};
pub use directive::{
    Actor, ConsentDirective, DataClass, DirectiveStatus, Provision, ProvisionType, SecurityLabel,
};
pub use family::covered_contacts;
pub use from_domain::{directive_from, purposes};
pub use policy::{MentalHealthPolicy, Policy, care_team};
pub use purpose::PurposeOfUse;
pub use request::{Labels, Recipient, Request, ResourceFacts};
