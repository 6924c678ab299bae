//! What one directive says about one request: permit, deny, or nothing (it does not apply).
//!
//! FHIR `Consent.provision` semantics: the root provision applies when the request meets all its
//! conditions; an exception (nested provision) applies only when its parent does and it meets its
//! own. The deepest applicable provision decides. When exceptions at one level disagree, a deny
//! wins, so an ambiguous directive never releases more than each of its readings would.

use crate::domain::InformationCategory;

use super::{ConsentDirective, DataClass, Provision, ProvisionType, Recipient, Request};

/// A directive's answer: the type of its governing provision and where that provision is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub kind: ProvisionType,
    /// Indices into `exceptions` from the root to the governing provision; empty for the root.
    pub path: Vec<usize>,
}

/// The directive's answer for the request, if any of it applies. Does not look at the dates: the
/// caller keeps only directives in force.
pub(crate) fn evaluate(directive: &ConsentDirective, request: &Request) -> Option<Outcome> {
    let root = &directive.provision;
    let kind = root.kind.unwrap_or(ProvisionType::Permit);
    let named = Named::default().and(root);
    if !applies(root, kind, named, request) {
        return None;
    }
    let mut path = Vec::new();
    Some(governing(root, kind, named, request, &mut path))
}

/// The outcome below a provision that applies.
fn governing(
    provision: &Provision,
    kind: ProvisionType,
    named: Named,
    request: &Request,
    path: &mut Vec<usize>,
) -> Outcome {
    let mut first_permit = None;
    for (index, exception) in provision.exceptions.iter().enumerate() {
        let exception_kind = exception.kind.unwrap_or(kind.opposite());
        let exception_named = named.and(exception);
        if !applies(exception, exception_kind, exception_named, request) {
            continue;
        }
        path.push(index);
        let outcome = governing(exception, exception_kind, exception_named, request, path);
        path.pop();
        match outcome.kind {
            ProvisionType::Deny => return outcome,
            ProvisionType::Permit => {
                first_permit.get_or_insert(outcome);
            }
        }
    }
    first_permit.unwrap_or_else(|| Outcome {
        kind,
        path: path.clone(),
    })
}

/// Does the provision apply: are its conditions met and, for a permit, is what needs naming named?
fn applies(provision: &Provision, kind: ProvisionType, named: Named, request: &Request) -> bool {
    conditions_met(provision, request)
        && (kind == ProvisionType::Deny || named.suffices_to_permit(request))
}

/// Every list of the provision either is empty or matches the request.
pub(crate) fn conditions_met(provision: &Provision, request: &Request) -> bool {
    let resource = &request.resource;
    let any_or = |empty: bool, hit: bool| empty || hit;
    let classes = resource.data_classes();
    let labels = resource.labels.security_labels();
    any_or(
        provision.actors.is_empty(),
        provision
            .actors
            .iter()
            .any(|a| actor_is(a, &request.recipient)),
    ) && any_or(
        provision.purposes.is_empty(),
        provision.purposes.contains(&request.purpose),
    ) && any_or(
        provision.data_classes.is_empty(),
        provision.data_classes.iter().any(|c| classes.contains(c)),
    ) && any_or(
        provision.resource_types.is_empty(),
        provision.resource_types.contains(&resource.resource_type),
    ) && any_or(
        provision.security_labels.is_empty(),
        provision.security_labels.iter().any(|l| labels.contains(l)),
    )
}

fn actor_is(actor: &super::Actor, recipient: &Recipient) -> bool {
    use super::Actor;
    match (actor, recipient) {
        (Actor::Organization(a), Recipient::Organization(r)) => a == r,
        (Actor::SupportContact(a), Recipient::SupportContact(r)) => a == r,
        _ => false,
    }
}

/// What the provisions from the root down to one provision name explicitly. A permit releases
/// protected data only when its path names it: a nested provision applies only within its
/// parents, so what a parent names, the exception names too.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Named {
    /// Some provision lists actors (and, as it applies, the recipient among them).
    pub recipient: bool,
    /// Some provision names substance-use records, SUD counselling notes or a Part 2 label.
    pub part2: bool,
    /// Some provision names SUD counselling notes.
    pub counselling_notes: bool,
    /// Some provision lists data classes: the directive no longer covers "all information".
    pub classes_narrowed: bool,
}

impl Named {
    pub fn and(self, provision: &Provision) -> Self {
        let names = |class: DataClass| provision.data_classes.contains(&class);
        Self {
            recipient: self.recipient || !provision.actors.is_empty(),
            part2: self.part2
                || names(InformationCategory::SubstanceUse.into())
                || names(DataClass::SudCounsellingNotes)
                || provision.security_labels.iter().any(|l| l.marks_part2()),
            counselling_notes: self.counselling_notes || names(DataClass::SudCounsellingNotes),
            classes_narrowed: self.classes_narrowed || !provision.data_classes.is_empty(),
        }
    }

    /// The protections a permit must meet:
    /// - a support contact receives data only under a directive naming them;
    /// - SUD counselling notes only under a directive naming that class (§2.31(b));
    /// - Part 2 records only under a directive naming substance-use information, or one that
    ///   releases all information (the clinic's scope `All` includes substance-use records).
    pub fn suffices_to_permit(self, request: &Request) -> bool {
        let resource = &request.resource;
        (self.recipient || !matches!(request.recipient, Recipient::SupportContact(_)))
            && (self.counselling_notes || !resource.labels.sud_counselling_note)
            && (self.part2 || !self.classes_narrowed || !resource.is_part2())
    }
}
