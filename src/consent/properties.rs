//! Property tests: random directives and requests against invariants, and against a naive oracle
//! written apart from the implementation (it enumerates paths instead of recursing).

use chrono::{Days, NaiveDate};
use proptest::prelude::*;
use uuid::Uuid;

use super::*;
use crate::domain::{Consent, ConsentKind, DateRange, Id, InformationCategory, SupportContact};

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 1).expect("a date")
}
fn offset(days: i64) -> NaiveDate {
    if days >= 0 {
        today() + Days::new(days.unsigned_abs())
    } else {
        today() - Days::new(days.unsigned_abs())
    }
}

const ORGS: [&str; 3] = ["org-a", "org-b", "org-c"];
fn contact(n: u128) -> Id<SupportContact> {
    Id::from_uuid(Uuid::from_u128(0x100 + n))
}

fn purpose() -> impl Strategy<Value = PurposeOfUse> {
    prop_oneof![
        Just(PurposeOfUse::Treat),
        Just(PurposeOfUse::Coc),
        Just(PurposeOfUse::Hpaymt),
        Just(PurposeOfUse::Hoperat),
        Just(PurposeOfUse::Famrqt),
        Just(PurposeOfUse::Other("XYZ".to_owned())),
    ]
}
fn category() -> impl Strategy<Value = InformationCategory> {
    prop_oneof![
        Just(InformationCategory::Attendance),
        Just(InformationCategory::TreatmentPlan),
        Just(InformationCategory::SubstanceUse),
    ]
}
fn data_class() -> impl Strategy<Value = DataClass> {
    prop_oneof![
        3 => category().prop_map(DataClass::from),
        1 => Just(DataClass::SudCounsellingNotes),
    ]
}
fn actor() -> impl Strategy<Value = Actor> {
    prop_oneof![
        3 => (0..ORGS.len()).prop_map(|i| Actor::Organization(ORGS[i].to_owned())),
        2 => (0..2u128).prop_map(|n| Actor::SupportContact(contact(n))),
        1 => Just(Actor::Clinician(Id::from_uuid(Uuid::from_u128(7)))),
    ]
}
fn resource_type() -> impl Strategy<Value = String> {
    prop_oneof![Just("CarePlan".to_owned()), Just("Encounter".to_owned())]
}
fn label() -> impl Strategy<Value = SecurityLabel> {
    prop_oneof![
        Just(SecurityLabel::Part2),
        Just(SecurityLabel::Sud),
        Just(SecurityLabel::PsychotherapyNote),
    ]
}
/// Mostly empty lists, so that provisions often apply.
fn narrowing<T: Clone + std::fmt::Debug>(
    item: impl Strategy<Value = T>,
) -> impl Strategy<Value = Vec<T>> {
    prop_oneof![3 => Just(Vec::new()), 2 => prop::collection::vec(item, 1..3)]
}

fn provision() -> impl Strategy<Value = Provision> {
    let kind = prop_oneof![
        2 => Just(None),
        1 => Just(Some(ProvisionType::Permit)),
        1 => Just(Some(ProvisionType::Deny)),
    ];
    let leaf = (
        kind,
        narrowing(actor()),
        narrowing(purpose()),
        narrowing(data_class()),
        narrowing(resource_type()),
        narrowing(label()),
    )
        .prop_map(
            |(kind, actors, purposes, data_classes, resource_types, security_labels)| Provision {
                kind,
                actors,
                purposes,
                data_classes,
                resource_types,
                security_labels,
                exceptions: Vec::new(),
            },
        );
    leaf.prop_recursive(3, 24, 4, |inner| {
        (inner.clone(), prop::collection::vec(inner, 1..4)).prop_map(|(mut p, exceptions)| {
            p.exceptions = exceptions;
            p
        })
    })
}

fn directive() -> impl Strategy<Value = ConsentDirective> {
    let status = prop_oneof![
        6 => Just(DirectiveStatus::Active),
        1 => Just(DirectiveStatus::Inactive),
        1 => Just(DirectiveStatus::Draft),
    ];
    let kind = prop_oneof![
        Just(ConsentKind::ReleaseOfInformation),
        Just(ConsentKind::Part2Disclosure),
        Just(ConsentKind::FamilyParticipation),
    ];
    (
        status,
        kind,
        -20i64..5,
        prop::option::of(0i64..30),
        prop::sample::select(vec![-15i64, -8, -1, 0, 2]),
        prop::option::weighted(0.25, -10i64..10),
        provision(),
    )
        .prop_map(
            |(status, kind, start, length, signed, revoked, provision)| {
                let start = offset(start);
                let end = length.map(|l| start + Days::new(l.unsigned_abs()));
                ConsentDirective {
                    id: Id::from_uuid(Uuid::nil()),
                    kind,
                    status,
                    period: DateRange::new(start, end).unwrap_or(DateRange::open(start)),
                    signed_on: offset(signed),
                    revoked_on: revoked.map(offset),
                    provision,
                }
            },
        )
}

/// Up to six directives with distinct ids in a random order of signing.
fn directives() -> impl Strategy<Value = Vec<ConsentDirective>> {
    (prop::collection::vec(directive(), 0..6), 0u128..101).prop_map(|(mut list, seed)| {
        for (i, d) in list.iter_mut().enumerate() {
            d.id = Id::from_uuid(Uuid::from_u128((i as u128 * 37 + seed) % 101));
        }
        list
    })
}

#[derive(Debug, Clone)]
struct Asked {
    resource: ResourceFacts,
    recipient: Recipient,
    purpose: PurposeOfUse,
    care_team: Vec<String>,
}

impl Asked {
    fn request(&self) -> Request<'_> {
        Request {
            resource: self.resource.clone(),
            recipient: self.recipient.clone(),
            purpose: self.purpose.clone(),
            today: today(),
            care_team: &self.care_team,
        }
    }
}

fn asked() -> impl Strategy<Value = Asked> {
    let recipient = prop_oneof![
        3 => (0..ORGS.len()).prop_map(|i| Recipient::Organization(ORGS[i].to_owned())),
        2 => (0..2u128).prop_map(|n| Recipient::SupportContact(contact(n))),
    ];
    let labels = prop_oneof![
        2 => Just(Labels::default()),
        2 => Just(Labels { part2: true, sud_counselling_note: false }),
        1 => any::<bool>().prop_map(|part2| Labels { part2, sud_counselling_note: true }),
    ];
    (
        resource_type(),
        prop::option::of(category()),
        labels,
        recipient,
        purpose(),
        prop::sample::subsequence(ORGS.to_vec(), 0..=ORGS.len()),
    )
        .prop_map(
            |(resource_type, data_class, labels, recipient, purpose, team)| Asked {
                resource: ResourceFacts {
                    resource_type,
                    data_class,
                    labels,
                },
                recipient,
                purpose,
                care_team: team.into_iter().map(str::to_owned).collect(),
            },
        )
}

fn policy() -> impl Strategy<Value = Policy> {
    prop_oneof![
        2 => Just(Policy::default()),
        1 => Just(Policy { mental_health: MentalHealthPolicy::off() }),
        1 => prop::collection::vec(purpose(), 0..3).prop_map(|treatment_purposes| Policy {
            mental_health: MentalHealthPolicy { care_team_treatment: true, treatment_purposes },
        }),
    ]
}

// ---- The oracle: the rules restated naively. ----

fn oracle_in_force(d: &ConsentDirective, today: NaiveDate) -> bool {
    let started = d.period.start() <= today;
    let not_ended = match d.period.end() {
        Some(end) => today <= end,
        None => true,
    };
    let not_revoked = match d.revoked_on {
        Some(revoked) => revoked > today,
        None => true,
    };
    d.status == DirectiveStatus::Active
        && d.signed_on <= today
        && started
        && not_ended
        && not_revoked
}

/// Each provision of a directive with its path, its type and the provisions from the root to it.
fn flatten<'a>(
    p: &'a Provision,
    kind: ProvisionType,
    path: Vec<usize>,
    above: Vec<&'a Provision>,
    out: &mut Vec<(Vec<usize>, ProvisionType, Vec<&'a Provision>)>,
) {
    let mut chain = above;
    chain.push(p);
    out.push((path.clone(), kind, chain.clone()));
    for (i, child) in p.exceptions.iter().enumerate() {
        let child_kind = match child.kind {
            Some(k) => k,
            None if kind == ProvisionType::Permit => ProvisionType::Deny,
            None => ProvisionType::Permit,
        };
        let mut child_path = path.clone();
        child_path.push(i);
        flatten(child, child_kind, child_path, chain.clone(), out);
    }
}

fn oracle_classes(r: &ResourceFacts) -> Vec<DataClass> {
    let note = r.labels.sud_counselling_note;
    let part2 = r.labels.part2 || note;
    let mut classes = Vec::new();
    if let Some(c) = r.data_class {
        classes.push(DataClass::Category(c));
    }
    if part2 {
        classes.push(DataClass::Category(InformationCategory::SubstanceUse));
    }
    if note {
        classes.push(DataClass::SudCounsellingNotes);
    }
    classes
}

fn oracle_labels(r: &ResourceFacts) -> Vec<SecurityLabel> {
    let note = r.labels.sud_counselling_note;
    let mut labels = Vec::new();
    if r.labels.part2 || note {
        labels.push(SecurityLabel::Part2);
        labels.push(SecurityLabel::Sud);
    }
    if note {
        labels.push(SecurityLabel::PsychotherapyNote);
    }
    labels
}

fn oracle_matches(p: &Provision, req: &Request) -> bool {
    let actor_ok = p.actors.is_empty()
        || p.actors.iter().any(|a| match (a, &req.recipient) {
            (Actor::Organization(x), Recipient::Organization(y)) => x == y,
            (Actor::SupportContact(x), Recipient::SupportContact(y)) => x == y,
            _ => false,
        });
    let purpose_ok = p.purposes.is_empty() || p.purposes.contains(&req.purpose);
    let classes = oracle_classes(&req.resource);
    let class_ok = p.data_classes.is_empty() || p.data_classes.iter().any(|c| classes.contains(c));
    let type_ok =
        p.resource_types.is_empty() || p.resource_types.contains(&req.resource.resource_type);
    let labels = oracle_labels(&req.resource);
    let label_ok =
        p.security_labels.is_empty() || p.security_labels.iter().any(|l| labels.contains(l));
    actor_ok && purpose_ok && class_ok && type_ok && label_ok
}

fn names_class(chain: &[&Provision], class: DataClass) -> bool {
    chain.iter().any(|p| p.data_classes.contains(&class))
}

/// May a permit reached through `chain` release this resource to this recipient?
fn oracle_permit_allowed(chain: &[&Provision], req: &Request) -> bool {
    let r = &req.resource;
    if matches!(req.recipient, Recipient::SupportContact(_))
        && chain.iter().all(|p| p.actors.is_empty())
    {
        return false;
    }
    if r.labels.sud_counselling_note && !names_class(chain, DataClass::SudCounsellingNotes) {
        return false;
    }
    if r.labels.part2 || r.labels.sud_counselling_note {
        let names_part2 = names_class(chain, InformationCategory::SubstanceUse.into())
            || names_class(chain, DataClass::SudCounsellingNotes)
            || chain.iter().any(|p| {
                p.security_labels
                    .iter()
                    .any(|l| matches!(l, SecurityLabel::Part2 | SecurityLabel::Sud))
            });
        let all_information = chain.iter().all(|p| p.data_classes.is_empty());
        if !names_part2 && !all_information {
            return false;
        }
    }
    true
}

/// Is the provision at the end of `chain` (of type `kind`) applicable: every provision from the
/// root matches, and every permit on the way may release?
fn oracle_reached(chain: &[&Provision], kinds: &[ProvisionType], req: &Request) -> bool {
    (0..chain.len()).all(|i| {
        oracle_matches(chain[i], req)
            && (kinds[i] == ProvisionType::Deny || oracle_permit_allowed(&chain[..=i], req))
    })
}

/// The directive's answer: among the applicable provisions none of whose exceptions applies, the
/// first deny if there is one, else the first permit (first in document order).
fn oracle_directive(d: &ConsentDirective, req: &Request) -> Option<(ProvisionType, Vec<usize>)> {
    let root_kind = d.provision.kind.unwrap_or(ProvisionType::Permit);
    let mut all = Vec::new();
    flatten(&d.provision, root_kind, Vec::new(), Vec::new(), &mut all);
    let kind_at = |path: &[usize]| {
        all.iter()
            .find(|(p, _, _)| p.as_slice() == path)
            .map(|(_, k, _)| *k)
    };
    let reached: Vec<(Vec<usize>, ProvisionType)> = all
        .iter()
        .filter(|(path, _, chain)| {
            let kinds: Vec<ProvisionType> = (0..=path.len())
                .filter_map(|n| kind_at(&path[..n]))
                .collect();
            oracle_reached(chain, &kinds, req)
        })
        .map(|(path, kind, _)| (path.clone(), *kind))
        .collect();
    let mut leaves: Vec<(Vec<usize>, ProvisionType)> = reached
        .iter()
        .filter(|(path, _)| {
            !reached
                .iter()
                .any(|(other, _)| other.len() == path.len() + 1 && other.starts_with(path))
        })
        .cloned()
        .collect();
    leaves.sort_by(|a, b| a.0.cmp(&b.0));
    leaves
        .iter()
        .find(|(_, k)| *k == ProvisionType::Deny)
        .or_else(|| leaves.first())
        .map(|(path, kind)| (*kind, path.clone()))
}

/// A deciding consent and the path to its governing provision.
type ConsentAt = (Id<Consent>, Vec<usize>);

/// The whole decision, naively: (permit, deciding consent and provision path).
fn oracle(
    req: &Request,
    directives: &[ConsentDirective],
    policy: &Policy,
) -> (bool, Option<ConsentAt>) {
    let mut best: Option<(&ConsentDirective, ProvisionType, Vec<usize>)> = None;
    for d in directives.iter().filter(|d| oracle_in_force(d, req.today)) {
        if let Some((kind, path)) = oracle_directive(d, req) {
            let later = match &best {
                None => true,
                Some((b, _, _)) => (d.signed_on, d.id) > (b.signed_on, b.id),
            };
            if later {
                best = Some((d, kind, path));
            }
        }
    }
    if let Some((d, kind, path)) = best {
        return (kind == ProvisionType::Permit, Some((d.id, path)));
    }
    let r = &req.resource;
    let organization = match &req.recipient {
        Recipient::Organization(o) => o,
        Recipient::SupportContact(_) => return (false, None),
    };
    let permit = !r.labels.part2
        && !r.labels.sud_counselling_note
        && policy.mental_health.care_team_treatment
        && policy
            .mental_health
            .treatment_purposes
            .contains(&req.purpose)
        && req.care_team.contains(organization);
    (permit, None)
}

fn basis_of(decision: &Decision) -> Option<ConsentAt> {
    match &decision.basis {
        Basis::Consent(c) => Some((c.id, c.provision.clone())),
        Basis::Rule(_) => None,
    }
}

/// The provisions from the root of `d` to `path`, with their types; None if no such provision.
fn chain_to<'a>(
    d: &'a ConsentDirective,
    path: &[usize],
) -> Option<Vec<(&'a Provision, ProvisionType)>> {
    let mut p = &d.provision;
    let mut kind = p.kind.unwrap_or(ProvisionType::Permit);
    let mut chain = vec![(p, kind)];
    for &i in path {
        p = p.exceptions.get(i)?;
        kind = p.kind.unwrap_or(kind.opposite());
        chain.push((p, kind));
    }
    Some(chain)
}

fn basis_directive<'a>(
    decision: &Decision,
    directives: &'a [ConsentDirective],
) -> Option<(&'a ConsentDirective, Vec<usize>)> {
    let (id, path) = basis_of(decision)?;
    directives.iter().find(|d| d.id == id).map(|d| (d, path))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The decision is the oracle's, basis and all.
    #[test]
    fn consent_decision_agrees_with_the_naive_oracle(
        asked in asked(), directives in directives(), policy in policy()
    ) {
        let request = asked.request();
        let decision = decide(&request, &directives, &policy);
        let (permit, basis) = oracle(&request, &directives, &policy);
        prop_assert_eq!(decision.permit, permit, "{}", decision);
        prop_assert_eq!(basis_of(&decision), basis);
        if let Basis::Rule(rule) = &decision.basis {
            prop_assert_eq!(decision.permit, rule.permits());
        }
    }

    /// (1) A permit names a basis that truly applies.
    #[test]
    fn consent_permit_basis_truly_applies(
        asked in asked(), directives in directives(), policy in policy()
    ) {
        let request = asked.request();
        let decision = decide(&request, &directives, &policy);
        if !decision.permit {
            return Ok(());
        }
        match &decision.basis {
            Basis::Consent(_) => {
                let (d, path) = basis_directive(&decision, &directives).expect("the basis is given");
                prop_assert!(oracle_in_force(d, today()));
                let chain = chain_to(d, &path).expect("the provision exists");
                let last = chain.last().expect("a root");
                prop_assert_eq!(last.1, ProvisionType::Permit);
                for (p, _) in &chain {
                    prop_assert!(oracle_matches(p, &request), "{:?} does not cover the request", p);
                }
            }
            Basis::Rule(rule) => {
                let Recipient::Organization(o) = &request.recipient else {
                    return Err(TestCaseError::fail("a rule permitted a support contact"));
                };
                let by_policy = matches!(rule, Rule::CareTeamTreatment { .. });
                prop_assert!(by_policy);
                prop_assert!(asked.care_team.contains(o));
                prop_assert!(policy.mental_health.care_team_treatment);
                prop_assert!(policy.mental_health.treatment_purposes.contains(&request.purpose));
            }
        }
    }

    /// (2) Part 2 data is never released by a rule.
    #[test]
    fn consent_part2_never_permitted_by_the_policy(
        asked in asked(), directives in directives(), policy in policy()
    ) {
        let request = asked.request();
        let decision = decide(&request, &directives, &policy);
        if request.resource.labels.part2 || request.resource.labels.sud_counselling_note {
            prop_assert!(!(decision.permit && matches!(decision.basis, Basis::Rule(_))), "{}", decision);
            if decision.permit {
                prop_assert!(decision.needs_redisclosure_notice(&request.resource));
            }
        }
    }

    /// (3) Directives not in force make no difference.
    #[test]
    fn consent_directives_not_in_force_change_nothing(
        asked in asked(), directives in directives(), policy in policy()
    ) {
        let request = asked.request();
        let in_force: Vec<ConsentDirective> = directives
            .iter()
            .filter(|d| oracle_in_force(d, today()))
            .cloned()
            .collect();
        prop_assert_eq!(
            decide(&request, &directives, &policy),
            decide(&request, &in_force, &policy)
        );
    }

    /// (4) Revoking the directive a permit rests on takes it away at once.
    #[test]
    fn consent_revocation_removes_the_basis(
        asked in asked(), mut directives in directives(), policy in policy(), ago in 0i64..5
    ) {
        let request = asked.request();
        let decision = decide(&request, &directives, &policy);
        if !decision.permit {
            return Ok(());
        }
        let Some((id, _)) = basis_of(&decision) else { return Ok(()) };
        for d in directives.iter_mut().filter(|d| d.id == id) {
            d.revoked_on = Some(offset(-ago));
        }
        let after = decide(&request, &directives, &policy);
        prop_assert_ne!(basis_of(&after).map(|(id, _)| id), Some(id));
    }

    /// (5) A support contact gets nothing without a directive naming them.
    #[test]
    fn consent_support_contacts_need_a_directive_naming_them(
        asked in asked(), directives in directives(), policy in policy()
    ) {
        let request = asked.request();
        let Recipient::SupportContact(contact) = request.recipient else { return Ok(()) };
        let decision = decide(&request, &directives, &policy);
        if decision.permit {
            let (d, path) = basis_directive(&decision, &directives)
                .ok_or_else(|| TestCaseError::fail("a rule permitted a support contact"))?;
            let chain = chain_to(d, &path).expect("the provision exists");
            prop_assert!(chain
                .iter()
                .any(|(p, _)| p.actors.contains(&Actor::SupportContact(contact))));
        }
        // And without any directive naming them, never.
        let unnamed: Vec<ConsentDirective> = directives
            .into_iter()
            .filter(|d| !mentions_actor(&d.provision, &Actor::SupportContact(contact)))
            .collect();
        prop_assert!(!decide(&request, &unnamed, &policy).permit);
    }

    /// (6) SUD counselling notes only under a directive naming that class.
    #[test]
    fn consent_counselling_notes_need_a_directive_naming_them(
        mut asked in asked(), directives in directives(), policy in policy()
    ) {
        asked.resource.labels.sud_counselling_note = true;
        let request = asked.request();
        let decision = decide(&request, &directives, &policy);
        if decision.permit {
            let (d, path) = basis_directive(&decision, &directives)
                .ok_or_else(|| TestCaseError::fail("a rule released counselling notes"))?;
            let chain = chain_to(d, &path).expect("the provision exists");
            prop_assert!(chain
                .iter()
                .any(|(p, _)| p.data_classes.contains(&DataClass::SudCounsellingNotes)));
        }
        let unnamed: Vec<ConsentDirective> = directives
            .into_iter()
            .filter(|d| !mentions_class(&d.provision, DataClass::SudCounsellingNotes))
            .collect();
        prop_assert!(!decide(&request, &unnamed, &policy).permit);
    }
}

/// Exceptions that disagree at one level resolve to deny whatever their order, so the order of
/// exceptions never changes permit or deny.
fn reversed(p: &Provision) -> Provision {
    Provision {
        exceptions: p.exceptions.iter().rev().map(reversed).collect(),
        ..p.clone()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn consent_order_of_exceptions_does_not_matter(
        asked in asked(), directives in directives(), policy in policy()
    ) {
        let request = asked.request();
        let reordered: Vec<ConsentDirective> = directives
            .iter()
            .map(|d| ConsentDirective { provision: reversed(&d.provision), ..d.clone() })
            .collect();
        let before = decide(&request, &directives, &policy);
        let after = decide(&request, &reordered, &policy);
        prop_assert_eq!(before.permit, after.permit);
        prop_assert_eq!(basis_of(&before).map(|(id, _)| id), basis_of(&after).map(|(id, _)| id));
    }
}

fn mentions_actor(p: &Provision, actor: &Actor) -> bool {
    p.actors.contains(actor) || p.exceptions.iter().any(|e| mentions_actor(e, actor))
}
fn mentions_class(p: &Provision, class: DataClass) -> bool {
    p.data_classes.contains(&class) || p.exceptions.iter().any(|e| mentions_class(e, class))
}

/// The generators reach every kind of outcome, so the properties above are not vacuous.
#[test]
fn consent_generators_reach_every_outcome() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = (asked(), directives(), policy());
    let (mut by_consent, mut denied_by_consent, mut by_rule, mut part2_released) = (0, 0, 0, 0);
    let (mut contact_released, mut notes_released) = (0, 0);
    for _ in 0..3000 {
        let (asked, directives, policy) =
            strategy.new_tree(&mut runner).expect("a value").current();
        let request = asked.request();
        let decision = decide(&request, &directives, &policy);
        match (&decision.basis, decision.permit) {
            (Basis::Consent(_), true) => by_consent += 1,
            (Basis::Consent(_), false) => denied_by_consent += 1,
            (Basis::Rule(_), true) => by_rule += 1,
            _ => {}
        }
        if decision.permit && request.resource.is_part2() {
            part2_released += 1;
        }
        if decision.permit && matches!(request.recipient, Recipient::SupportContact(_)) {
            contact_released += 1;
        }
        if decision.permit && request.resource.labels.sud_counselling_note {
            notes_released += 1;
        }
    }
    for (what, count) in [
        ("permits by consent", by_consent),
        ("denials by consent", denied_by_consent),
        ("permits by rule", by_rule),
        ("Part 2 releases", part2_released),
        ("releases to contacts", contact_released),
        ("counselling-note releases", notes_released),
    ] {
        eprintln!("{what}: {count} of 3000");
        assert!(count >= 10, "only {count} {what}");
    }
}
