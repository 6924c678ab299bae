//! The shared part of a seeded clinic: organizations, staff, programs and therapy groups.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::ids::IdMaker;
use super::vocab;
use crate::domain::*;

/// The clinic's own programs: what a typical IOP clinic runs.
struct ProgramSpec {
    code: &'static str,
    name: &'static str,
    population: ProgramPopulation,
    focus: ProgramFocus,
    asam_level: Option<&'static str>,
    part2: bool,
    delivery: ProgramDelivery,
    days: i64,
    hours: i64,
    group_modalities: &'static [Modality],
    /// Share of clients, in percent.
    share: u32,
}

const PROGRAMS: &[ProgramSpec] = &[
    ProgramSpec {
        code: "adult-mh-iop",
        name: "Adult Mental Health IOP",
        population: ProgramPopulation::Adult,
        focus: ProgramFocus::MentalHealth,
        asam_level: None,
        part2: false,
        delivery: ProgramDelivery::InPerson,
        days: 3,
        hours: 9,
        group_modalities: &[
            Modality::Cbt,
            Modality::Dbt,
            Modality::Psychoeducation,
            Modality::Mindfulness,
        ],
        share: 40,
    },
    ProgramSpec {
        code: "sud-iop",
        name: "Substance Use IOP (ASAM 2.1)",
        population: ProgramPopulation::Adult,
        focus: ProgramFocus::SubstanceUse,
        asam_level: Some("2.1"),
        part2: true,
        delivery: ProgramDelivery::Hybrid,
        days: 4,
        hours: 12,
        group_modalities: &[
            Modality::Cbt,
            Modality::Psychoeducation,
            Modality::Mindfulness,
            Modality::Yoga,
        ],
        share: 30,
    },
    ProgramSpec {
        code: "adolescent-iop",
        name: "Adolescent IOP",
        population: ProgramPopulation::Adolescent,
        focus: ProgramFocus::MentalHealth,
        asam_level: None,
        part2: false,
        delivery: ProgramDelivery::InPerson,
        days: 3,
        hours: 9,
        group_modalities: &[
            Modality::Dbt,
            Modality::ArtTherapy,
            Modality::Psychoeducation,
        ],
        share: 15,
    },
    ProgramSpec {
        code: "virtual-dbt-iop",
        name: "Virtual DBT-informed IOP",
        population: ProgramPopulation::Adult,
        focus: ProgramFocus::MentalHealth,
        asam_level: None,
        part2: false,
        delivery: ProgramDelivery::Virtual,
        days: 5,
        hours: 15,
        group_modalities: &[Modality::Dbt, Modality::Mindfulness],
        share: 15,
    },
];

pub struct Clinic {
    pub organizations: Vec<Organization>,
    pub staff: Vec<Staff>,
    pub programs: Vec<Program>,
    pub groups: Vec<TherapyGroup>,
    pub clinic_id: Id<Organization>,
    pub hospitals: Vec<Id<Organization>>,
    pub outpatient_providers: Vec<Id<Organization>>,
    pub partner_ehrs: Vec<Id<Organization>>,
    pub therapists: Vec<Id<Staff>>,
    pub prescribers: Vec<Id<Staff>>,
    pub case_managers: Vec<Id<Staff>>,
    pub outside_clinicians: Vec<Id<Staff>>,
    /// Indexes into `groups`, per program (same order as `programs`).
    pub groups_by_program: Vec<Vec<usize>>,
}

pub(super) fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

/// The Luhn sum of the NPI digits with the 80840 prefix (US Core us-core-17), doubling every
/// second digit from the right; `with_check` says whether the check digit is already there.
fn npi_luhn_sum(digits: &str, with_check: bool) -> u32 {
    let offset = usize::from(!with_check);
    format!("80840{digits}")
        .chars()
        .filter_map(|c| c.to_digit(10))
        .rev()
        .enumerate()
        .map(|(i, d)| {
            if (i + offset) % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum()
}

/// A National Provider Identifier: 9 digits starting with 1 and a valid Luhn check digit.
pub(super) fn npi(rng: &mut ChaCha8Rng) -> NonEmptyText {
    let body = format!("1{:08}", rng.random_range(0..100_000_000_u32));
    let check = (10 - npi_luhn_sum(&body, false) % 10) % 10;
    NonEmptyText::parse(&format!("{body}{check}")).expect("digits")
}

fn text(s: &str) -> NonEmptyText {
    NonEmptyText::parse(s).expect("vocabulary text is not empty")
}

fn phone(rng: &mut ChaCha8Rng) -> Phone {
    // 555-01xx numbers are reserved for fiction.
    Phone::parse(&format!("217-555-01{:02}", rng.random_range(0..100))).expect("well-formed phone")
}

pub(super) fn address(rng: &mut ChaCha8Rng) -> Address {
    let (city, state, zip) = pick(rng, vocab::CITIES);
    let line = format!(
        "{} {}",
        rng.random_range(1..9900),
        pick(rng, vocab::STREETS)
    );
    Address::parse(
        &line,
        city,
        state,
        &format!("{zip}{:02}", rng.random_range(1..99)),
    )
    .expect("well-formed address")
}

pub(super) fn person_name(rng: &mut ChaCha8Rng, gender: Gender) -> PersonName {
    let given = match gender {
        Gender::Female => pick(rng, vocab::GIVEN_FEMALE),
        Gender::Male => pick(rng, vocab::GIVEN_MALE),
        _ => pick(rng, vocab::GIVEN_NEUTRAL),
    };
    PersonName::parse(given, pick(rng, vocab::FAMILY)).expect("vocabulary names")
}

impl Clinic {
    pub fn generate(rng: &mut ChaCha8Rng, clients: u32) -> Self {
        let mut ids = IdMaker::shared();
        let mut organizations = Vec::new();
        let mut org =
            |rng: &mut ChaCha8Rng, kind, name: &str, organizations: &mut Vec<Organization>| {
                let id = ids.next(rng);
                organizations.push(Organization {
                    id,
                    kind,
                    name: text(name),
                    npi: Some(npi(rng)),
                    phone: Some(phone(rng)),
                    address: Some(address(rng)),
                });
                id
            };
        let clinic_id = org(
            rng,
            OrganizationKind::Clinic,
            "Riverbend Intensive Outpatient Center",
            &mut organizations,
        );
        let hospitals: Vec<_> = vocab::HOSPITALS
            .iter()
            .map(|n| {
                org(
                    rng,
                    OrganizationKind::InpatientHospital,
                    n,
                    &mut organizations,
                )
            })
            .collect();
        let outpatient_providers: Vec<_> = vocab::OUTPATIENT_PROVIDERS
            .iter()
            .map(|n| {
                org(
                    rng,
                    OrganizationKind::OutpatientProvider,
                    n,
                    &mut organizations,
                )
            })
            .collect();
        let partner_ehrs: Vec<_> = vocab::PARTNER_EHRS
            .iter()
            .map(|n| org(rng, OrganizationKind::PartnerEhr, n, &mut organizations))
            .collect();

        // About one therapist per 30 clients; prescribers and case managers in proportion.
        let therapist_count = (clients / 30).max(4) as usize;
        let mut staff = Vec::new();
        let mut hire =
            |rng: &mut ChaCha8Rng, org_id, role, credentials: &str, staff: &mut Vec<Staff>| {
                let gender = if rng.random_bool(0.6) {
                    Gender::Female
                } else {
                    Gender::Male
                };
                let name = person_name(rng, gender);
                let email = Email::parse(&format!(
                    "{}.{}@riverbend-iop.example",
                    name.given.as_str().to_lowercase(),
                    name.family.as_str().to_lowercase().replace('\'', "")
                ))
                .expect("well-formed email");
                let id = ids.next(rng);
                staff.push(Staff {
                    id,
                    organization_id: org_id,
                    name,
                    role,
                    credentials: Some(text(credentials)),
                    npi: Some(npi(rng)),
                    email: Some(email),
                    phone: None,
                    active: rng.random_bool(0.95),
                });
                id
            };
        const THERAPIST_ROLES: &[(StaffRole, &str)] = &[
            (StaffRole::ClinicalSocialWorker, "LCSW"),
            (StaffRole::ProfessionalCounselor, "LPC"),
            (StaffRole::AddictionCounselor, "LCADC"),
            (StaffRole::MarriageFamilyTherapist, "LMFT"),
            (StaffRole::Psychologist, "PsyD"),
        ];
        let therapists: Vec<_> = (0..therapist_count)
            .map(|i| {
                let (role, cred) = THERAPIST_ROLES[i % THERAPIST_ROLES.len()];
                hire(rng, clinic_id, role, cred, &mut staff)
            })
            .collect();
        let prescribers: Vec<_> = (0..(therapist_count / 6).max(1))
            .map(|i| {
                let (role, cred) = if i % 2 == 0 {
                    (StaffRole::Psychiatrist, "MD")
                } else {
                    (StaffRole::PsychiatricNursePractitioner, "PMHNP-BC")
                };
                hire(rng, clinic_id, role, cred, &mut staff)
            })
            .collect();
        let case_managers: Vec<_> = (0..(therapist_count / 5).max(1))
            .map(|_| hire(rng, clinic_id, StaffRole::CaseManager, "BSW", &mut staff))
            .collect();
        hire(
            rng,
            clinic_id,
            StaffRole::ProgramDirector,
            "LCSW",
            &mut staff,
        );
        hire(
            rng,
            clinic_id,
            StaffRole::PeerSupportSpecialist,
            "CPRS",
            &mut staff,
        );
        let outside_clinicians: Vec<_> = outpatient_providers
            .iter()
            .map(|&org_id| hire(rng, org_id, StaffRole::Psychiatrist, "MD", &mut staff))
            .collect();

        let groups_per_program = (clients / 400).clamp(2, 250) as usize;
        let mut programs = Vec::new();
        let mut groups = Vec::new();
        let mut groups_by_program = Vec::new();
        for spec in PROGRAMS {
            let program_id = ids.next(rng);
            programs.push(Program {
                id: program_id,
                code: text(spec.code),
                name: text(spec.name),
                population: spec.population,
                focus: spec.focus,
                asam_level: spec.asam_level.map(text),
                part2: spec.part2,
                delivery: spec.delivery,
                intensity: ProgramIntensity::new(spec.days, spec.hours)
                    .expect("programs are IOP intensity"),
            });
            let mut mine = Vec::new();
            for g in 0..groups_per_program {
                let modality = spec.group_modalities[g % spec.group_modalities.len()];
                mine.push(groups.len());
                groups.push(TherapyGroup {
                    id: ids.next(rng),
                    program_id,
                    name: text(&format!(
                        "{} group {}",
                        modality_label(modality),
                        g / spec.group_modalities.len() + 1
                    )),
                    modality,
                    facilitator_id: pick(rng, &therapists),
                });
            }
            groups_by_program.push(mine);
        }
        Self {
            organizations,
            staff,
            programs,
            groups,
            clinic_id,
            hospitals,
            outpatient_providers,
            partner_ehrs,
            therapists,
            prescribers,
            case_managers,
            outside_clinicians,
            groups_by_program,
        }
    }

    /// Picks a program by its share of clients.
    pub fn pick_program(&self, rng: &mut ChaCha8Rng) -> usize {
        let mut roll = rng.random_range(0..100);
        for (i, spec) in PROGRAMS.iter().enumerate() {
            if roll < spec.share {
                return i;
            }
            roll -= spec.share;
        }
        0
    }
}

fn modality_label(m: Modality) -> &'static str {
    match m {
        Modality::Cbt => "CBT skills",
        Modality::Dbt => "DBT skills",
        Modality::Psychoeducation => "Psychoeducation",
        Modality::Mindfulness => "Mindfulness",
        Modality::Yoga => "Trauma-informed yoga",
        Modality::ArtTherapy => "Art therapy",
        _ => "Process",
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    #[test]
    fn seeded_npis_pass_the_luhn_check() {
        use super::npi_luhn_sum;
        // 1234567893 is CMS's published example of a valid NPI.
        assert!(npi_luhn_sum("1234567893", true).is_multiple_of(10));
        assert!(!npi_luhn_sum("1234567890", true).is_multiple_of(10));
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for _ in 0..100 {
            let npi = super::npi(&mut rng);
            assert_eq!(npi.as_str().len(), 10);
            assert!(npi_luhn_sum(npi.as_str(), true).is_multiple_of(10), "{npi}");
        }
    }
}
