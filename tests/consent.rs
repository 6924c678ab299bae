//! Consent enforcement over real HTTP, on SQLite and PostgreSQL: what each recipient (the API
//! client's organization) is shown of a client, as the client's consents, the care team and
//! 42 CFR Part 2 say. Scenario tests for real situations, then a property test holding every
//! answer of the gateway to the pure decision (`consent::decide`) as the oracle.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{Duration, NaiveDate};
use common::graph::text;
use iop_gateway::auth::{AccessTokens, BearerTokens, OpenAccess, Scopes};
use iop_gateway::consent::{self, Labels, Policy, PurposeOfUse, Recipient, ResourceFacts};
use iop_gateway::disclose::{PART2_NOTICE, clinic_organizations};
use iop_gateway::domain::*;
use iop_gateway::fhir_api::PublicUrl;
use iop_gateway::http::{AppState, router};
use iop_gateway::mapping::MappingConfig;
use iop_gateway::store::Store;
use iop_gateway::validation::{Registry, Validator};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// The clinic, built by hand.

fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

fn days(n: i64) -> NaiveDate {
    today() + Duration::days(n)
}

fn range(from: i64, to: Option<i64>) -> DateRange {
    DateRange::new(days(from), to.map(days)).unwrap()
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

fn organization(kind: OrganizationKind, name: &str) -> Organization {
    Organization {
        id: Id::generate(),
        kind,
        name: text(name),
        npi: None,
        phone: None,
        address: None,
    }
}

/// The clinic, three other organizations, a clinician and two programs (one under Part 2).
struct World {
    clinic: Organization,
    /// Refers clients in (on their care team when it did).
    hospital: Organization,
    /// A partner EHR: never on a care team.
    partner: Organization,
    /// An outpatient practice: never on a care team.
    practice: Organization,
    clinician: Staff,
    sud: Program,
    mental_health: Program,
}

async fn world(store: &Store) -> World {
    let clinic = organization(OrganizationKind::Clinic, "Riverbend IOP");
    let hospital = organization(
        OrganizationKind::InpatientHospital,
        "St. Jude Behavioral Hospital",
    );
    let partner = organization(OrganizationKind::PartnerEhr, "Lakeside Health EHR");
    let practice = organization(
        OrganizationKind::OutpatientProvider,
        "Maple Counselling Practice",
    );
    let clinician = Staff {
        id: Id::generate(),
        organization_id: clinic.id,
        name: PersonName::parse("Dana", "Reyes").unwrap(),
        role: StaffRole::ClinicalSocialWorker,
        credentials: Some(text("LCSW")),
        npi: None,
        email: None,
        phone: None,
        active: true,
    };
    let program = |part2: bool| Program {
        id: Id::generate(),
        code: text(&unique(if part2 { "sud" } else { "mh" })),
        name: text(if part2 {
            "Substance-use IOP"
        } else {
            "Mental-health IOP"
        }),
        population: ProgramPopulation::Adult,
        focus: if part2 {
            ProgramFocus::SubstanceUse
        } else {
            ProgramFocus::MentalHealth
        },
        asam_level: None,
        part2,
        delivery: ProgramDelivery::Hybrid,
        intensity: ProgramIntensity::new(3, 9).unwrap(),
    };
    let w = World {
        sud: program(true),
        mental_health: program(false),
        clinic,
        hospital,
        partner,
        practice,
        clinician,
    };
    let mut tx = store.begin().await.unwrap();
    for org in [&w.clinic, &w.hospital, &w.partner, &w.practice] {
        tx.insert(org).await.unwrap();
    }
    tx.insert(&w.clinician).await.unwrap();
    tx.insert(&w.sud).await.unwrap();
    tx.insert(&w.mental_health).await.unwrap();
    tx.commit().await.unwrap();
    w
}

/// One client with an enrollment, a plan and goal, an individual and a family session (every
/// support contact took part), and the referral that brought them when there is one.
struct Person {
    client: Client,
    part2: bool,
    enrollment: Enrollment,
    plan: TreatmentPlan,
    sessions: Vec<Session>,
    contacts: Vec<SupportContact>,
}

impl Person {
    fn id(&self) -> String {
        self.client.id.to_string()
    }
    fn family_session(&self) -> String {
        self.sessions[1].id.to_string()
    }
}

async fn person(
    store: &Store,
    w: &World,
    part2: bool,
    source: Option<&Organization>,
    contacts: &[(Relationship, &str)],
) -> Person {
    let program = if part2 { &w.sud } else { &w.mental_health };
    let client = Client {
        id: Id::generate(),
        mrn: Mrn::parse(&unique("MRN")).unwrap(),
        name: PersonName::parse("Alex", "Moreno").unwrap(),
        birth_date: "1990-04-12".parse().unwrap(),
        gender: Gender::Female,
        phone: None,
        email: None,
        address: None,
        language: None,
    };
    let contacts: Vec<SupportContact> = contacts
        .iter()
        .map(|(relationship, given)| SupportContact {
            id: Id::generate(),
            client_id: client.id,
            name: PersonName::parse(given, "Moreno").unwrap(),
            relationship: *relationship,
            relationship_text: None,
            roles: SupportRoles::new(true, false, true).unwrap(),
            phone: Some(Phone::parse("555-301-9999").unwrap()),
            email: None,
            active: range(-60, Some(365)),
        })
        .collect();
    let referral = source.map(|org| Referral {
        id: Id::generate(),
        client_id: client.id,
        direction: ReferralDirection::Inbound,
        kind: ReferralKind::StepDown,
        status: ReferralStatus::Accepted,
        reason: text("Step-down after a 10-day inpatient stay"),
        referred_on: days(-32),
        decided_on: Some(days(-31)),
        referring_org_id: org.id,
        receiving_org_id: w.clinic.id,
        program_id: Some(program.id),
        status_reason: None,
        transition_summary: Vec::new(),
    });
    let enrollment = Enrollment {
        id: Id::generate(),
        client_id: client.id,
        program_id: program.id,
        referral_id: referral.as_ref().map(|r| r.id),
        referral_source_id: source.map(|o| o.id),
        admitted_on: days(-30),
        state: EnrollmentState::Active,
        level_of_care: LevelOfCare::IntensiveOutpatient,
        primary_clinician_id: w.clinician.id,
    };
    let plan = TreatmentPlan {
        id: Id::generate(),
        enrollment_id: enrollment.id,
        status: PlanStatus::Active,
        period: range(-28, Some(60)),
        author_id: w.clinician.id,
        review_interval_days: 7,
        next_review_on: Some(days(5)),
    };
    let goal = Goal {
        id: Id::generate(),
        plan_id: plan.id,
        description: text("Attend every group session for four weeks"),
        target_on: Some(days(30)),
        status: GoalStatus::Active,
        achievement: Some(GoalAchievement::Improving),
    };
    let at = |d: i64, time: &str| format!("{}T{time}Z", days(d)).parse::<Timestamp>().unwrap();
    let sessions = vec![
        Session {
            id: Id::generate(),
            enrollment_id: enrollment.id,
            session_type: SessionType::Individual,
            modality: Some(Modality::Cbt),
            delivery: SessionDelivery::InPerson,
            scheduled_start: at(-10, "15:00:00"),
            length: SessionLength::minutes(50).unwrap(),
            clinician_id: w.clinician.id,
            attendance: Attendance::Attended,
            group_id: None,
        },
        Session {
            id: Id::generate(),
            enrollment_id: enrollment.id,
            session_type: SessionType::Family,
            modality: Some(Modality::FamilyTherapy),
            delivery: SessionDelivery::Virtual,
            scheduled_start: at(-7, "22:30:00"),
            length: SessionLength::minutes(60).unwrap(),
            clinician_id: w.clinician.id,
            attendance: Attendance::Attended,
            group_id: None,
        },
    ];
    let participants: Vec<SessionParticipant> = contacts
        .iter()
        .map(|c| SessionParticipant {
            id: Id::generate(),
            session_id: sessions[1].id,
            support_contact_id: c.id,
        })
        .collect();
    let mut tx = store.begin().await.unwrap();
    tx.insert(&client).await.unwrap();
    for c in &contacts {
        tx.insert(c).await.unwrap();
    }
    if let Some(r) = &referral {
        tx.insert(r).await.unwrap();
    }
    tx.insert(&enrollment).await.unwrap();
    tx.insert(&plan).await.unwrap();
    tx.insert(&goal).await.unwrap();
    for s in &sessions {
        tx.insert(s).await.unwrap();
    }
    for p in &participants {
        tx.insert(p).await.unwrap();
    }
    tx.commit().await.unwrap();
    Person {
        client,
        part2,
        enrollment,
        plan,
        sessions,
        contacts,
    }
}

#[allow(clippy::too_many_arguments)]
fn consent_of(
    p: &Person,
    kind: ConsentKind,
    scope: InformationScope,
    recipient: ConsentRecipient,
    purpose: ConsentPurpose,
    valid: DateRange,
    signed_on: NaiveDate,
    revoked_on: Option<NaiveDate>,
) -> Consent {
    let consent = Consent {
        id: Id::generate(),
        client_id: p.client.id,
        kind,
        scope,
        recipient,
        purpose,
        valid,
        signed_on,
        revoked_on,
    };
    consent.check().expect("a consistent consent");
    consent
}

/// A release of everything, for treatment, to `org`, in force from a month ago for a year.
fn release_to(p: &Person, org: &Organization, scope: InformationScope) -> Consent {
    consent_of(
        p,
        ConsentKind::ReleaseOfInformation,
        scope,
        ConsentRecipient::Organization(org.id),
        ConsentPurpose::Treatment,
        range(-30, Some(335)),
        days(-30),
        None,
    )
}

/// A family-participation consent naming `contact`, in force.
fn family_consent(p: &Person, contact: &SupportContact) -> Consent {
    consent_of(
        p,
        ConsentKind::FamilyParticipation,
        InformationScope::categories(vec![
            InformationCategory::TreatmentPlan,
            InformationCategory::Attendance,
        ])
        .unwrap(),
        ConsentRecipient::SupportContact(contact.id),
        ConsentPurpose::FamilyParticipation,
        range(-20, Some(160)),
        days(-20),
        None,
    )
}

async fn store_consent(store: &Store, consent: &Consent) {
    store.insert(consent).await.unwrap();
}

/// Changes a stored consent through the store (as the clinic's EHR sync would).
async fn change_consent(store: &Store, id: Id<Consent>, change: impl FnOnce(&mut Consent)) {
    let stored = store.get(id).await.unwrap().expect("stored consent");
    let mut consent = stored.record.clone();
    change(&mut consent);
    consent.check().expect("a consistent consent");
    store.update(&consent, stored.meta.version).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// The gateway over HTTP.

const SCOPES: &str = "system/*.rs system/AuditEvent.rs";

/// The secured gateway (bearer tokens) and an open-access one (unfiltered: the truth the tests
/// compare with), both on `store`.
struct Gateway {
    secured: String,
    open: String,
    tokens: Arc<AccessTokens>,
    http: reqwest::Client,
}

async fn serve(store: &Store, open: bool, tokens: &Arc<AccessTokens>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let state = AppState::new(
        store.clone(),
        Arc::new(Validator::new(Arc::new(Registry::builtin()))),
        Arc::new(MappingConfig::default()),
        if open {
            Arc::new(OpenAccess) as Arc<dyn iop_gateway::auth::Authenticator>
        } else {
            Arc::new(BearerTokens::new(Arc::clone(tokens)))
                as Arc<dyn iop_gateway::auth::Authenticator>
        },
        PublicUrl::fixed(&format!("http://{address}")).unwrap(),
    );
    tokio::spawn(async move {
        axum::serve(
            listener,
            router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap();
    });
    format!("http://{address}/fhir")
}

async fn gateway(store: &Store) -> Gateway {
    let tokens = Arc::new(AccessTokens::load(store).await.unwrap());
    Gateway {
        secured: serve(store, false, &tokens).await,
        open: serve(store, true, &tokens).await,
        tokens,
        http: reqwest::Client::new(),
    }
}

/// One answer: status, JSON body (Null when none) and the body as sent.
struct Answer {
    path: String,
    status: u16,
    json: Value,
    raw: String,
}

impl Answer {
    /// The resources of a Bundle's entries (any search mode).
    fn resources(&self) -> Vec<Value> {
        self.json["entry"]
            .as_array()
            .map(|e| e.iter().map(|e| e["resource"].clone()).collect())
            .unwrap_or_default()
    }
    fn ids_of(&self, resource_type: &str) -> BTreeSet<String> {
        self.resources()
            .iter()
            .filter(|r| r["resourceType"] == resource_type)
            .filter_map(|r| r["id"].as_str().map(str::to_owned))
            .collect()
    }
    fn total(&self) -> u64 {
        self.json["total"]
            .as_u64()
            .unwrap_or_else(|| panic!("{}: no total in {}", self.path, self.raw))
    }
    fn has_part2_notice(&self) -> bool {
        self.json["entry"].as_array().is_some_and(|entries| {
            entries.iter().any(|e| {
                e["search"]["mode"] == "outcome"
                    && e["resource"]["resourceType"] == "OperationOutcome"
                    && e["resource"]["issue"]
                        .as_array()
                        .is_some_and(|i| i.iter().any(|i| i["diagnostics"] == PART2_NOTICE))
            })
        })
    }
}

/// A caller of the API: a token for a registered API client, or open access.
struct Caller<'g> {
    gw: &'g Gateway,
    base: String,
    token: Option<String>,
    /// Every answer received, for the leak checks.
    seen: std::sync::Mutex<Vec<Answer>>,
}

impl Gateway {
    /// Registers an API client acting for `organization` (TREAT) and mints it a token.
    async fn client(&self, store: &Store, organization: Option<String>) -> Caller<'_> {
        let name = unique("client");
        let jwks = std::fs::read_to_string(format!(
            "{}/fixtures/auth/client.jwks.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        store
            .add_api_client(&ApiClient {
                client_id: ClientId::parse(&name).unwrap(),
                keys: KeySource::Inline(jwks),
                scopes: SCOPES.into(),
                organization_id: organization,
                purpose_of_use: "TREAT".into(),
                enabled: true,
                clinic_app: false,
            })
            .await
            .unwrap();
        let client = store.api_client(&name).await.unwrap().unwrap();
        let token = self
            .tokens
            .issue(
                &client,
                &Scopes::parse_strict(SCOPES).unwrap(),
                3000,
                chrono::Utc::now().timestamp(),
            )
            .token;
        Caller {
            gw: self,
            base: self.secured.clone(),
            token: Some(token),
            seen: Default::default(),
        }
    }

    fn open_access(&self) -> Caller<'_> {
        Caller {
            gw: self,
            base: self.open.clone(),
            token: None,
            seen: Default::default(),
        }
    }
}

impl Caller<'_> {
    async fn fetch(&self, url: &str) -> Answer {
        let mut request = self.gw.http.get(url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let raw = response.text().await.unwrap();
        let json = serde_json::from_str(&raw).unwrap_or(Value::Null);
        Answer {
            path: url.to_owned(),
            status,
            json,
            raw,
        }
    }

    fn keep(&self, answer: &Answer) {
        self.seen.lock().unwrap().push(Answer {
            path: answer.path.clone(),
            status: answer.status,
            json: answer.json.clone(),
            raw: answer.raw.clone(),
        });
    }

    /// GET `path` under /fhir.
    async fn get(&self, path: &str) -> Answer {
        let answer = self.fetch(&format!("{}/{path}", self.base)).await;
        assert!(
            matches!(answer.status, 200 | 404),
            "GET {path}: {} {}",
            answer.status,
            answer.raw
        );
        self.keep(&answer);
        answer
    }

    /// Every page of a search: the resources of all pages (and each page is kept).
    async fn search_all(&self, path: &str) -> Vec<Value> {
        let mut answer = self.get(path).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.raw);
        let mut found = answer.resources();
        for _ in 0..100 {
            let next = answer.json["link"].as_array().and_then(|links| {
                links
                    .iter()
                    .find(|l| l["relation"] == "next")
                    .and_then(|l| l["url"].as_str().map(str::to_owned))
            });
            let Some(next) = next else {
                return found;
            };
            answer = self.fetch(&next).await;
            assert_eq!(answer.status, 200, "{next}: {}", answer.raw);
            self.keep(&answer);
            found.extend(answer.resources());
        }
        panic!("{path}: more than 100 pages");
    }

    async fn search_ids(&self, path: &str, resource_type: &str) -> BTreeSet<String> {
        self.search_all(path)
            .await
            .iter()
            .filter(|r| r["resourceType"] == resource_type)
            .filter_map(|r| r["id"].as_str().map(str::to_owned))
            .collect()
    }

    async fn count(&self, path: &str) -> u64 {
        let answer = self.get(path).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.raw);
        answer.total()
    }

    /// No answer received so far carries any of `ids`. An answer to a request that names the id
    /// itself may echo it: a 404 ("X/id is not known") and the Bundle's links (its own URL).
    fn assert_no_leak(&self, ids: &BTreeSet<String>) {
        for answer in self.seen.lock().unwrap().iter() {
            for id in ids {
                if answer.path.contains(id.as_str()) {
                    if answer.status == 404 {
                        continue;
                    }
                    let mut body = answer.json.clone();
                    if let Some(object) = body.as_object_mut() {
                        object.remove("link");
                    }
                    assert!(
                        !body.to_string().contains(id.as_str()),
                        "GET {} discloses {id}: {}",
                        answer.path,
                        answer.raw
                    );
                } else {
                    assert!(
                        !answer.raw.contains(id.as_str()),
                        "GET {} discloses {id}: {}",
                        answer.path,
                        answer.raw
                    );
                }
            }
        }
    }
}

/// The types whose resources are about one client, and how to search them by client.
const CLIENT_TYPES: [&str; 9] = [
    "Patient",
    "RelatedPerson",
    "Consent",
    "Encounter",
    "EpisodeOfCare",
    "CarePlan",
    "Goal",
    "ServiceRequest",
    "Task",
];

fn by_client(resource_type: &str, client: &str) -> String {
    if resource_type == "Patient" {
        format!("Patient?_id={client}")
    } else {
        format!("{resource_type}?patient={client}")
    }
}

/// Everything the gateway serves about a client (as open access sees it): (type, id) pairs.
async fn everything_about(open: &Caller<'_>, client: &str) -> BTreeSet<(String, String)> {
    let mut all = BTreeSet::new();
    for t in CLIENT_TYPES {
        for id in open.search_ids(&by_client(t, client), t).await {
            all.insert((t.to_owned(), id));
        }
    }
    all
}

fn reference_ids(value: &Value) -> String {
    value.to_string()
}

// ---------------------------------------------------------------------------------------------
// Scenario tests.

/// Family of origin invited to family therapy: the mother shows (as a RelatedPerson and as a
/// participant of the family session) only while a family-participation consent names her.
async fn family_of_origin_shows_only_while_consented(store: &Store) {
    let w = world(store).await;
    let p = person(store, &w, false, None, &[(Relationship::Mother, "Rosa")]).await;
    let gw = gateway(store).await;
    let ehr = gw.client(store, Some(w.clinic.id.to_string())).await;
    let mother = p.contacts[0].id.to_string();
    let client = p.id();
    let family = p.family_session();

    let hidden = |label: &'static str| {
        let (ehr, mother, client, family) = (&ehr, &mother, &client, &family);
        async move {
            let read = ehr.get(&format!("RelatedPerson/{mother}")).await;
            assert_eq!(read.status, 404, "{label}: {}", read.raw);
            let found = ehr
                .search_ids(&format!("RelatedPerson?patient={client}"), "RelatedPerson")
                .await;
            assert!(!found.contains(mother), "{label}: {found:?}");
            let revinclude = ehr
                .get(&format!(
                    "Patient?_id={client}&_revinclude=RelatedPerson:patient"
                ))
                .await;
            assert_eq!(
                revinclude.ids_of("Patient"),
                BTreeSet::from([client.clone()]),
                "{label}: the client is seen"
            );
            assert!(
                !revinclude.raw.contains(mother.as_str()),
                "{label}: {}",
                revinclude.raw
            );
            let encounter = ehr.get(&format!("Encounter/{family}")).await;
            assert_eq!(encounter.status, 200, "{label}: {}", encounter.raw);
            assert!(
                !encounter.raw.contains(mother.as_str()),
                "{label}: {}",
                encounter.raw
            );
            let sessions = ehr.get(&format!("Encounter?patient={client}")).await;
            assert_eq!(sessions.ids_of("Encounter").len(), 2, "{label}");
            assert!(!sessions.raw.contains(mother.as_str()), "{label}");
            // The consent itself (revoked) still shows to the care team, without her.
            for path in [
                format!("Consent?patient={client}"),
                format!("Patient?_id={client}&_revinclude=Consent:patient"),
                format!("Patient?_id={client}&_revinclude=Encounter:subject"),
                format!("Encounter/{family}/_history"),
            ] {
                let answer = ehr.get(&path).await;
                assert_eq!(answer.status, 200, "{label}: {path}: {}", answer.raw);
                assert!(
                    !answer.raw.contains(mother.as_str()),
                    "{label}: {path}: {}",
                    answer.raw
                );
            }
        }
    };

    // No consent yet.
    hidden("without a consent").await;

    // The client consents to her taking part.
    let consent = family_consent(&p, &p.contacts[0]);
    store_consent(store, &consent).await;
    let read = ehr.get(&format!("RelatedPerson/{mother}")).await;
    assert_eq!(read.status, 200, "{}", read.raw);
    assert_eq!(read.json["id"], mother.as_str());
    assert_eq!(
        read.json["patient"]["reference"],
        format!("Patient/{client}")
    );
    let found = ehr
        .search_ids(&format!("RelatedPerson?patient={client}"), "RelatedPerson")
        .await;
    assert_eq!(found, BTreeSet::from([mother.clone()]));
    let revinclude = ehr
        .get(&format!(
            "Patient?_id={client}&_revinclude=RelatedPerson:patient"
        ))
        .await;
    assert_eq!(
        revinclude.ids_of("RelatedPerson"),
        BTreeSet::from([mother.clone()])
    );
    let encounter = ehr.get(&format!("Encounter/{family}")).await;
    assert_eq!(encounter.status, 200);
    let participants = reference_ids(&encounter.json["participant"]);
    assert!(
        participants.contains(&format!("RelatedPerson/{mother}")),
        "{}",
        encounter.raw
    );

    // She is revoked today: gone again.
    change_consent(store, consent.id, |c| c.revoked_on = Some(today())).await;
    hidden("once revoked").await;
}

/// Chosen family: a partner named by a consent shows, a friend not named stays invisible.
async fn chosen_family_only_the_named_contact_shows(store: &Store) {
    let w = world(store).await;
    let p = person(
        store,
        &w,
        false,
        None,
        &[
            (Relationship::DomesticPartner, "Jordan"),
            (Relationship::Friend, "Casey"),
        ],
    )
    .await;
    let gw = gateway(store).await;
    let ehr = gw.client(store, Some(w.clinic.id.to_string())).await;
    let partner = p.contacts[0].id.to_string();
    let friend = p.contacts[1].id.to_string();
    let client = p.id();
    store_consent(store, &family_consent(&p, &p.contacts[0])).await;

    assert_eq!(
        ehr.get(&format!("RelatedPerson/{partner}")).await.status,
        200
    );
    assert_eq!(
        ehr.get(&format!("RelatedPerson/{friend}")).await.status,
        404
    );
    assert_eq!(
        ehr.search_ids(&format!("RelatedPerson?patient={client}"), "RelatedPerson")
            .await,
        BTreeSet::from([partner.clone()])
    );
    let revinclude = ehr
        .get(&format!(
            "Patient?_id={client}&_revinclude=RelatedPerson:patient"
        ))
        .await;
    assert_eq!(
        revinclude.ids_of("RelatedPerson"),
        BTreeSet::from([partner.clone()])
    );
    let encounter = ehr.get(&format!("Encounter/{}", p.family_session())).await;
    assert_eq!(encounter.status, 200);
    let participants = reference_ids(&encounter.json["participant"]);
    assert!(
        participants.contains(&format!("RelatedPerson/{partner}")),
        "{}",
        encounter.raw
    );
    // Everything the EHR was given: the friend appears nowhere.
    ehr.search_all(&format!("Encounter?patient={client}")).await;
    ehr.search_all(&format!("Consent?patient={client}")).await;
    ehr.get(&format!("Patient/{client}")).await;
    ehr.assert_no_leak(&BTreeSet::from([friend]));
}

/// Sees `p` at all: the Patient read and the client's plans.
async fn sees(caller: &Caller<'_>, p: &Person) -> bool {
    let read = caller.get(&format!("Patient/{}", p.id())).await.status == 200;
    let plans = caller
        .search_ids(&format!("CarePlan?patient={}", p.id()), "CarePlan")
        .await;
    let count = caller
        .count(&format!("Encounter?patient={}&_summary=count", p.id()))
        .await;
    assert_eq!(
        read,
        !plans.is_empty(),
        "the Patient and the plans are decided alike"
    );
    assert_eq!(read, count == 2, "Encounter count {count}");
    if read {
        assert!(plans.contains(&p.plan.id.to_string()));
    }
    read
}

/// Sees nothing of `p`: every read 404, every search empty, no id of theirs in any answer.
async fn sees_nothing(caller: &Caller<'_>, open: &Caller<'_>, p: &Person) {
    let everything = everything_about(open, &p.id()).await;
    assert!(everything.len() >= 7, "{everything:?}");
    for (t, id) in &everything {
        let read = caller.get(&format!("{t}/{id}")).await;
        assert_eq!(read.status, 404, "{t}/{id}: {}", read.raw);
        let history = caller.get(&format!("{t}/{id}/_history")).await;
        assert_eq!(history.status, 404, "{t}/{id}/_history: {}", history.raw);
    }
    for t in CLIENT_TYPES {
        let found = caller.search_all(&by_client(t, &p.id())).await;
        assert!(found.is_empty(), "{t}: {found:?}");
        let count = caller
            .count(&format!("{}&_summary=count", by_client(t, &p.id())))
            .await;
        assert_eq!(count, 0, "{t} count");
    }
    let ids: BTreeSet<String> = everything.into_iter().map(|(_, id)| id).collect();
    caller.assert_no_leak(&ids);
}

/// A release to a partner EHR (not on the care team): seen while in force, nothing once its
/// period has ended.
async fn expired_consent_discloses_nothing(store: &Store) {
    let w = world(store).await;
    let p = person(store, &w, false, Some(&w.hospital), &[]).await;
    let gw = gateway(store).await;
    let partner = gw.client(store, Some(w.partner.id.to_string())).await;
    let open = gw.open_access();
    // Before any consent: not on the care team, nothing.
    assert!(!sees(&partner, &p).await);
    let consent = release_to(&p, &w.partner, InformationScope::All);
    store_consent(store, &consent).await;
    assert!(sees(&partner, &p).await, "in force: disclosed");
    change_consent(store, consent.id, |c| {
        c.valid = range(-30, Some(-1));
    })
    .await;
    let partner = gw.client(store, Some(w.partner.id.to_string())).await;
    sees_nothing(&partner, &open, &p).await;
}

/// Revoked today through the store: the next request sees nothing.
async fn revoked_consent_discloses_nothing(store: &Store) {
    let w = world(store).await;
    let p = person(store, &w, false, None, &[]).await;
    let gw = gateway(store).await;
    let partner = gw.client(store, Some(w.partner.id.to_string())).await;
    let open = gw.open_access();
    let consent = release_to(&p, &w.partner, InformationScope::All);
    store_consent(store, &consent).await;
    assert!(sees(&partner, &p).await, "in force: disclosed");
    change_consent(store, consent.id, |c| c.revoked_on = Some(today())).await;
    let partner = gw.client(store, Some(w.partner.id.to_string())).await;
    sees_nothing(&partner, &open, &p).await;
}

/// What a gateway keeps across requests (gate rows, assembled resources) never outlives a
/// change: a record changed through the store is read at its new version, a revocation is
/// obeyed by the very next request, and what one recipient may see is never served to another.
async fn the_read_cache_never_outlives_a_change(store: &Store) {
    let w = world(store).await;
    let p = person(store, &w, false, None, &[]).await;
    let gw = gateway(store).await;
    let partner = gw.client(store, Some(w.partner.id.to_string())).await;
    let practice = gw.client(store, Some(w.practice.id.to_string())).await;
    let consent = release_to(&p, &w.partner, InformationScope::All);
    store_consent(store, &consent).await;
    let patient = format!("Patient/{}", p.id());
    let by_id = format!("Patient?_id={}", p.id());
    let first = partner.get(&patient).await;
    assert_eq!(first.status, 200, "{}", first.raw);
    // Read again (now from what the gateway kept), by the partner and by a recipient without
    // consent, in both orders.
    for _ in 0..2 {
        assert_eq!(
            practice.get(&patient).await.status,
            404,
            "no consent: withheld"
        );
        let again = partner.get(&patient).await;
        assert_eq!(again.status, 200, "{}", again.raw);
        assert_eq!(again.json, first.json, "unchanged: the same resource");
        // Search pages are kept too: the same page, gated per caller.
        assert_eq!(partner.search_all(&by_id).await, vec![first.json.clone()]);
        assert!(practice.search_all(&by_id).await.is_empty());
    }

    let stored = store.get(p.client.id).await.unwrap().unwrap();
    let mut client = stored.record.clone();
    client.gender = if client.gender == Gender::Female {
        Gender::Male
    } else {
        Gender::Female
    };
    store.update(&client, stored.meta.version).await.unwrap();
    let changed = partner.get(&patient).await;
    assert_eq!(changed.status, 200, "{}", changed.raw);
    assert_eq!(
        changed.json["gender"],
        client.gender.code(),
        "the new record"
    );
    assert_ne!(
        changed.json["meta"]["versionId"], first.json["meta"]["versionId"],
        "a new version"
    );
    assert_eq!(practice.get(&patient).await.status, 404, "still withheld");
    assert_eq!(partner.search_all(&by_id).await, vec![changed.json.clone()]);
    assert!(practice.search_all(&by_id).await.is_empty());

    change_consent(store, consent.id, |c| c.revoked_on = Some(today())).await;
    let revoked = partner.get(&patient).await;
    assert_eq!(
        revoked.status, 404,
        "revoked: the next read withholds it: {}",
        revoked.raw
    );
    // Nothing else of theirs either (a new caller: this one's earlier answers disclosed).
    let partner = gw.client(store, Some(w.partner.id.to_string())).await;
    sees_nothing(&partner, &gw.open_access(), &p).await;
}

fn security_codes(resource: &Value) -> Vec<(String, String)> {
    resource["meta"]["security"]
        .as_array()
        .map(|labels| {
            labels
                .iter()
                .map(|l| {
                    (
                        l["system"].as_str().unwrap_or_default().to_owned(),
                        l["code"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn assert_part2_labelled(resource: &Value) {
    let codes = security_codes(resource);
    let confidentiality: Vec<&String> = codes
        .iter()
        .filter(|(system, _)| system == "http://terminology.hl7.org/CodeSystem/v3-Confidentiality")
        .map(|(_, code)| code)
        .collect();
    assert_eq!(confidentiality, vec!["R"], "{resource}");
    assert!(
        codes.iter().any(|(_, code)| code == "NORDSCLCD"),
        "{resource}"
    );
    assert!(
        codes.iter().any(|(_, code)| code == "42CFRPart2"),
        "{resource}"
    );
}

/// A Part 2 client's TPO consent to the referring hospital: the hospital sees the records,
/// labelled, with the §2.32 notice, and the audit names the consent.
async fn part2_consent_to_the_referring_hospital(store: &Store) {
    let w = world(store).await;
    let p = person(store, &w, true, Some(&w.hospital), &[]).await;
    let consent = consent_of(
        &p,
        ConsentKind::Part2Disclosure,
        InformationScope::All,
        ConsentRecipient::Organization(w.hospital.id),
        ConsentPurpose::Treatment,
        range(-30, None),
        days(-30),
        None,
    );
    store_consent(store, &consent).await;
    let gw = gateway(store).await;
    let hospital = gw.client(store, Some(w.hospital.id.to_string())).await;
    let client = p.id();
    let reads = [
        format!("Patient/{client}"),
        format!("EpisodeOfCare/{}", p.enrollment.id),
        format!("CarePlan/{}", p.plan.id),
        format!("Encounter/{}", p.sessions[0].id),
    ];
    for path in &reads {
        let read = hospital.get(path).await;
        assert_eq!(read.status, 200, "{path}: {}", read.raw);
        assert_part2_labelled(&read.json);
    }
    for t in ["CarePlan", "Encounter", "EpisodeOfCare", "Goal"] {
        let search = hospital.get(&by_client(t, &client)).await;
        assert_eq!(search.status, 200);
        let matches: Vec<Value> = search
            .resources()
            .into_iter()
            .filter(|r| r["resourceType"] == t)
            .collect();
        assert!(!matches.is_empty(), "{t}: {}", search.raw);
        for r in &matches {
            assert_part2_labelled(r);
        }
        assert!(
            search.has_part2_notice(),
            "{t}: no §2.32 notice: {}",
            search.raw
        );
    }
    // The disclosure's AuditEvents name the consent that allowed it.
    let wanted = format!("Consent/{}", consent.id);
    let mut named = false;
    for _ in 0..20 {
        let audit = hospital
            .get(&format!("AuditEvent?patient={client}&_count=1000"))
            .await;
        assert_eq!(audit.status, 200, "{}", audit.raw);
        named = audit.resources().iter().any(|event| {
            event["agent"].as_array().is_some_and(|agents| {
                agents.iter().any(|a| {
                    a["policy"]
                        .as_array()
                        .is_some_and(|p| p.iter().any(|p| p == wanted.as_str()))
                })
            })
        });
        if named {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(named, "no AuditEvent of patient {client} names {wanted}");
}

/// A Part 2 client without a consent, asked for by the clinic's own EHR: nothing at all.
async fn part2_client_without_consent_is_invisible_to_the_clinic(store: &Store) {
    let w = world(store).await;
    let hidden = person(
        store,
        &w,
        true,
        Some(&w.hospital),
        &[(Relationship::Sibling, "Lee")],
    )
    .await;
    let visible = person(store, &w, false, Some(&w.hospital), &[]).await;
    let gw = gateway(store).await;
    let ehr = gw.client(store, Some(w.clinic.id.to_string())).await;
    let open = gw.open_access();
    let id = hidden.id();
    for path in [
        format!("Patient/{id}"),
        format!("EpisodeOfCare/{}", hidden.enrollment.id),
        format!("CarePlan/{}", hidden.plan.id),
        format!("Patient/{id}/_history"),
    ] {
        let answer = ehr.get(&path).await;
        assert_eq!(answer.status, 404, "{path}: {}", answer.raw);
    }
    assert!(
        ehr.search_all(&format!("Patient?_id={id}"))
            .await
            .is_empty()
    );
    assert_eq!(
        ehr.count(&format!("CarePlan?patient={id}&_summary=count"))
            .await,
        0
    );
    // Counting everything counts only what may be seen.
    let listed = ehr.search_ids("Encounter?_count=1000", "Encounter").await;
    let counted = ehr.count("Encounter?_summary=count").await;
    assert_eq!(counted as usize, listed.len());
    let expected: BTreeSet<String> = visible.sessions.iter().map(|s| s.id.to_string()).collect();
    assert_eq!(listed, expected);
    assert_eq!(
        open.count("Encounter?_summary=count").await,
        4,
        "open access counts both clients' sessions"
    );
    let with_subjects = ehr.search_all("CarePlan?_include=CarePlan:subject").await;
    assert!(
        with_subjects
            .iter()
            .filter(|r| r["resourceType"] == "Patient")
            .all(|r| r["id"] != id.as_str()),
        "{with_subjects:?}"
    );
    assert!(
        with_subjects
            .iter()
            .any(|r| r["resourceType"] == "Patient" && r["id"] == visible.id().as_str()),
        "the visible client is included"
    );
    let history = ehr.search_all("Patient/_history?_count=1000").await;
    assert!(history.iter().all(|r| r["id"] != id.as_str()));
    assert!(history.iter().any(|r| r["id"] == visible.id().as_str()));
    ehr.search_all("Patient?_count=1000").await;
    ehr.search_all("Patient?_revinclude=CarePlan:subject&_count=1000")
        .await;
    sees_nothing(&ehr, &open, &hidden).await;
}

/// An opt-in release naming organization B does not release to organization A.
async fn consent_for_another_recipient_does_not_release(store: &Store) {
    let w = world(store).await;
    let p = person(store, &w, false, None, &[]).await;
    store_consent(store, &release_to(&p, &w.practice, InformationScope::All)).await;
    let gw = gateway(store).await;
    let named = gw.client(store, Some(w.practice.id.to_string())).await;
    let other = gw.client(store, Some(w.partner.id.to_string())).await;
    let open = gw.open_access();
    assert!(sees(&named, &p).await, "the named recipient is released to");
    sees_nothing(&other, &open, &p).await;
}

/// All but substance-use records: nothing of a Part 2 client (every record is one), everything
/// of a mental-health client.
async fn all_except_substance_use(store: &Store) {
    let w = world(store).await;
    let sud = person(store, &w, true, None, &[]).await;
    let mh = person(store, &w, false, None, &[]).await;
    for p in [&sud, &mh] {
        store_consent(
            store,
            &release_to(p, &w.partner, InformationScope::AllExceptSubstanceUse),
        )
        .await;
    }
    let gw = gateway(store).await;
    let partner = gw.client(store, Some(w.partner.id.to_string())).await;
    let open = gw.open_access();
    assert!(
        sees(&partner, &mh).await,
        "a mental-health client is released"
    );
    sees_nothing(&partner, &open, &sud).await;
}

// ---------------------------------------------------------------------------------------------
// The property: every answer agrees with the pure decision.

fn data_class(resource_type: &str) -> Option<InformationCategory> {
    match resource_type {
        "Patient" | "RelatedPerson" => Some(InformationCategory::Demographics),
        "CarePlan" | "Goal" => Some(InformationCategory::TreatmentPlan),
        "Encounter" | "EpisodeOfCare" => Some(InformationCategory::Attendance),
        "ServiceRequest" | "Task" => Some(InformationCategory::DischargeSummary),
        _ => None,
    }
}

/// One client of a case: its resources and consents, and what the oracle says of each.
struct Subject {
    person: Person,
    consents: Vec<Consent>,
    care_team: Vec<String>,
    resources: BTreeSet<(String, String)>,
    /// The current version of each resource (as open access reads it).
    versions: BTreeMap<(String, String), String>,
}

impl Subject {
    fn permits(&self, org: &str, resource_type: &str, id: &str) -> bool {
        oracle(
            &self.consents,
            &self.care_team,
            self.person.part2,
            org,
            resource_type,
            id,
        )
    }
}

/// The oracle: `consent::decide` on the stored consents, today, for `org` and TREAT (and a
/// RelatedPerson only while a consent in force names that contact).
fn oracle(
    consents: &[Consent],
    care_team: &[String],
    part2: bool,
    org: &str,
    resource_type: &str,
    id: &str,
) -> bool {
    let today = today();
    if resource_type == "RelatedPerson"
        && !consent::covered_contacts(consents, today)
            .iter()
            .any(|c| c.to_string() == id)
    {
        return false;
    }
    let directives: Vec<_> = consents.iter().map(consent::directive_from).collect();
    let request = consent::Request {
        resource: ResourceFacts {
            resource_type: resource_type.to_owned(),
            data_class: data_class(resource_type),
            labels: Labels {
                part2,
                sud_counselling_note: false,
            },
        },
        recipient: Recipient::Organization(org.to_owned()),
        purpose: PurposeOfUse::Treat,
        today,
        care_team,
    };
    consent::decide(&request, &directives, &Policy::default()).permit
}

/// What a case exercised, summed over the cases (the generator must produce each).
#[derive(Default, Debug)]
struct Coverage {
    nested_deny_in_permit: usize,
    expired: usize,
    future: usize,
    revoked: usize,
    disagreeing: usize,
    permitted: usize,
    denied: usize,
    /// A recipient shown some of a client's resources but not all (references then withheld).
    partial: usize,
    /// A recipient shown resources of a client whose Patient it may not see.
    withheld_subject: usize,
}

fn random_scope(rng: &mut ChaCha8Rng, must_include_sud: bool) -> InformationScope {
    use InformationCategory::*;
    let pick = rng.random_range(0..10);
    if pick < 3 {
        return InformationScope::All;
    }
    if pick < 5 && !must_include_sud {
        return InformationScope::AllExceptSubstanceUse;
    }
    let all = [
        Demographics,
        Diagnoses,
        TreatmentPlan,
        Attendance,
        Medications,
        DischargeSummary,
        SubstanceUse,
    ];
    let mut list: Vec<InformationCategory> =
        all.into_iter().filter(|_| rng.random_bool(0.4)).collect();
    if must_include_sud && !list.contains(&SubstanceUse) {
        list.push(SubstanceUse);
    }
    if list.is_empty() {
        list.push(all[rng.random_range(0..all.len())]);
    }
    InformationScope::categories(list).unwrap()
}

/// A random consent of `p`, to one of `orgs` or one of its contacts.
fn random_consent(rng: &mut ChaCha8Rng, p: &Person, orgs: &[&Organization]) -> Consent {
    let kind = match rng.random_range(0..5) {
        0 | 1 => ConsentKind::ReleaseOfInformation,
        2 | 3 => ConsentKind::Part2Disclosure,
        _ => ConsentKind::FamilyParticipation,
    };
    // A support contact for family participation, and now and then for a release.
    let recipient = if kind == ConsentKind::FamilyParticipation || rng.random_bool(0.1) {
        ConsentRecipient::SupportContact(p.contacts[rng.random_range(0..p.contacts.len())].id)
    } else {
        ConsentRecipient::Organization(orgs[rng.random_range(0..orgs.len())].id)
    };
    let scope = random_scope(rng, kind == ConsentKind::Part2Disclosure);
    let purpose = match rng.random_range(0..10) {
        0..=3 => ConsentPurpose::Treatment,
        4 => ConsentPurpose::Payment,
        5 => ConsentPurpose::Operations,
        6 => ConsentPurpose::FamilyParticipation,
        _ => ConsentPurpose::CareCoordination,
    };
    // Signed up to four months ago (sometimes later than today: not yet counted).
    let signed = if rng.random_bool(0.08) {
        rng.random_range(1..10)
    } else {
        -rng.random_range(0..120)
    };
    let (valid, signed) = match rng.random_range(0..10) {
        // Expired.
        0 | 1 => {
            let end = rng.random_range(-60..0);
            (range(end - 90, Some(end)), signed.min(end))
        }
        // Not yet begun.
        2 => {
            let start = rng.random_range(1..60);
            (range(start, Some(start + 90)), signed)
        }
        // Current, open-ended.
        3..=5 => (range(signed.min(0) - rng.random_range(0..5), None), signed),
        // Current.
        _ => (
            range(
                signed.min(0) - rng.random_range(0..5),
                Some(rng.random_range(0..90)),
            ),
            signed,
        ),
    };
    let revoked = match rng.random_range(0..8) {
        0 => Some(days(rng.random_range(signed.max(-10)..=signed.max(0)))),
        1 => Some(days(signed.max(0) + rng.random_range(1..30))),
        _ => None,
    };
    consent_of(
        p,
        kind,
        scope,
        recipient,
        purpose,
        valid,
        days(signed),
        revoked,
    )
}

/// Checks everything `caller` (acting for `org`) is shown of the subjects against the oracle;
/// returns the counts of resources permitted and denied, and of clients shown in part.
async fn check_recipient(
    caller: &Caller<'_>,
    org: &str,
    subjects: &[Subject],
) -> (usize, usize, usize, usize) {
    let mut denied_ids = BTreeSet::new();
    let (mut permitted_n, mut denied_n, mut partial_n, mut withheld_subject_n) = (0, 0, 0, 0);
    for s in subjects {
        let client = s.person.id();
        let mut permitted: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for (t, id) in &s.resources {
            let permit = s.permits(org, t, id);
            let context = format!(
                "{t}/{id} for {org} (part2 {}, consents {:#?})",
                s.person.part2, s.consents
            );
            if permit {
                permitted_n += 1;
                permitted.entry(t).or_default().insert(id.clone());
            } else {
                denied_n += 1;
                denied_ids.insert(id.clone());
            }
            let read = caller.get(&format!("{t}/{id}")).await;
            assert_eq!(read.status == 200, permit, "read {context}: {}", read.raw);
            let history = caller.get(&format!("{t}/{id}/_history")).await;
            assert_eq!(
                history.status == 200,
                permit,
                "history {context}: {}",
                history.raw
            );
            if permit {
                assert!(history.ids_of(t).contains(id), "history {context}");
            }
            let version = &s.versions[&(t.clone(), id.clone())];
            let vread = caller.get(&format!("{t}/{id}/_history/{version}")).await;
            assert_eq!(
                vread.status == 200,
                permit,
                "vread {context}: {}",
                vread.raw
            );
        }
        for t in CLIENT_TYPES {
            let expected = permitted.get(t).cloned().unwrap_or_default();
            let context = format!(
                "{t} of {client} for {org} (part2 {}, consents {:#?})",
                s.person.part2, s.consents
            );
            let query = by_client(t, &client);
            let answer = caller.get(&query).await;
            assert_eq!(answer.status, 200);
            let found = caller.search_ids(&query, t).await;
            assert_eq!(found, expected, "search {context}");
            assert_eq!(
                answer.has_part2_notice(),
                s.person.part2 && !expected.is_empty() && answer.ids_of(t).len() == expected.len(),
                "§2.32 notice {context}: {}",
                answer.raw
            );
            let total = caller.count(&format!("{query}&_summary=count")).await;
            assert_eq!(total as usize, expected.len(), "count {context}");
        }
        let shown: usize = permitted.values().map(BTreeSet::len).sum();
        if shown > 0 && shown < s.resources.len() {
            partial_n += 1;
        }
        let patient_seen = permitted
            .get("Patient")
            .is_some_and(|p| p.contains(&client));
        if !patient_seen && shown > 0 {
            // Shown resources whose subject is withheld: their references must go.
            withheld_subject_n += 1;
        }
        let plans = permitted.get("CarePlan").cloned().unwrap_or_default();
        let included = caller
            .search_ids(
                &format!("CarePlan?patient={client}&_include=CarePlan:subject"),
                "Patient",
            )
            .await;
        assert_eq!(
            included,
            if patient_seen && !plans.is_empty() {
                BTreeSet::from([client.clone()])
            } else {
                BTreeSet::new()
            },
            "_include of {client} for {org}"
        );
        let revincluded = caller
            .search_ids(
                &format!("Patient?_id={client}&_revinclude=Encounter:subject"),
                "Encounter",
            )
            .await;
        assert_eq!(
            revincluded,
            if patient_seen {
                permitted.get("Encounter").cloned().unwrap_or_default()
            } else {
                BTreeSet::new()
            },
            "_revinclude of {client} for {org}"
        );
    }
    // Searches and histories of whole types (no client named): of these subjects' resources,
    // exactly the permitted ones are listed, and the history lists no other.
    for t in CLIENT_TYPES {
        let ours = |found: BTreeSet<String>| -> BTreeSet<String> {
            found
                .into_iter()
                .filter(|id| {
                    subjects
                        .iter()
                        .any(|s| s.resources.contains(&(t.to_owned(), id.clone())))
                })
                .collect()
        };
        let expected: BTreeSet<String> = subjects
            .iter()
            .flat_map(|s| {
                s.resources
                    .iter()
                    .filter(|(rt, id)| rt == t && s.permits(org, rt, id))
                    .map(|(_, id)| id.clone())
            })
            .collect();
        let listed = ours(caller.search_ids(&format!("{t}?_count=1000"), t).await);
        assert_eq!(listed, expected, "{t} search of the whole type for {org}");
        let history = ours(
            caller
                .search_ids(&format!("{t}/_history?_count=1000"), t)
                .await,
        );
        assert!(
            history.is_subset(&expected),
            "{t}/_history for {org}: {history:?} beyond {expected:?}"
        );
    }
    caller.assert_no_leak(&denied_ids);
    (permitted_n, denied_n, partial_n, withheld_subject_n)
}

async fn one_case(
    store: &Store,
    gw: &Gateway,
    w: &World,
    orgs: &[&Organization],
    case: usize,
    rng: &mut ChaCha8Rng,
    coverage: &mut Coverage,
) {
    let clinic = clinic_organizations(store).await.unwrap();
    let open = gw.open_access();
    let mut subjects = Vec::new();
    let n_clients = if case == 0 {
        1
    } else {
        rng.random_range(1..=2)
    };
    for i in 0..n_clients {
        let part2 = if case == 0 {
            true
        } else if case == 1 && i == 0 {
            false
        } else {
            rng.random_bool(0.5)
        };
        let source = match rng.random_range(0..3) {
            0 => None,
            1 => Some(&w.hospital),
            _ => Some(orgs[rng.random_range(0..orgs.len())]),
        };
        let p = person(
            store,
            w,
            part2,
            source,
            &[
                (Relationship::Mother, "Rosa"),
                (Relationship::Friend, "Casey"),
            ],
        )
        .await;
        let mut consents = Vec::new();
        if case == 0 && i == 0 {
            // Two consents to one organization that disagree: an older release of everything,
            // overruled by a newer one of all but substance use (a deny nested in a permit).
            let mut all = release_to(&p, &w.partner, InformationScope::All);
            all.signed_on = days(-30);
            let mut except = release_to(&p, &w.partner, InformationScope::AllExceptSubstanceUse);
            except.signed_on = days(-10);
            consents.push(all);
            consents.push(except);
        }
        if case == 1 && i == 0 {
            // Plans and attendance only, to an organization off the care team: the plans and
            // sessions go, the Patient they refer to does not.
            consents.push(release_to(
                &p,
                &w.partner,
                InformationScope::categories(vec![
                    InformationCategory::TreatmentPlan,
                    InformationCategory::Attendance,
                ])
                .unwrap(),
            ));
        }
        for _ in 0..rng.random_range(0..=4) {
            consents.push(random_consent(rng, &p, orgs));
        }
        let mut tx = store.begin().await.unwrap();
        for c in &consents {
            tx.insert(c).await.unwrap();
        }
        tx.commit().await.unwrap();
        let mut care_team = clinic.clone();
        if let Some(source) = p.enrollment.referral_source_id {
            care_team.push(source.to_string());
        }
        let resources = everything_about(&open, &p.id()).await;
        let mut versions = BTreeMap::new();
        for (t, id) in &resources {
            let read = open.get(&format!("{t}/{id}")).await;
            assert_eq!(read.status, 200, "{}", read.raw);
            let version = read.json["meta"]["versionId"].as_str().expect("versionId");
            versions.insert((t.clone(), id.clone()), version.to_owned());
        }
        // The open view carries the labels the oracle assumes.
        let patient = open.get(&format!("Patient/{}", p.id())).await;
        assert_eq!(
            security_codes(&patient.json)
                .iter()
                .any(|(_, c)| c == "42CFRPart2"),
            part2
        );
        // Coverage.
        let t = today();
        for c in &consents {
            if c.valid.contains(t) {
            } else if c.valid.start() > t {
                coverage.future += 1;
            } else {
                coverage.expired += 1;
            }
            if c.revoked_on.is_some_and(|r| r <= t) {
                coverage.revoked += 1;
            }
            if part2 && c.scope == InformationScope::AllExceptSubstanceUse && c.in_force_on(t) {
                coverage.nested_deny_in_permit += 1;
            }
        }
        subjects.push(Subject {
            person: p,
            consents,
            care_team,
            resources,
            versions,
        });
    }
    // Disagreement: two consents in force that, alone, decide some resource differently.
    for s in &subjects {
        let in_force: Vec<&Consent> = s
            .consents
            .iter()
            .filter(|c| c.in_force_on(today()))
            .collect();
        for org in orgs {
            for (t, id) in &s.resources {
                let alone: BTreeSet<bool> = in_force
                    .iter()
                    .map(|c| {
                        oracle(
                            std::slice::from_ref(*c),
                            &s.care_team,
                            s.person.part2,
                            &org.id.to_string(),
                            t,
                            id,
                        )
                    })
                    .collect();
                if alone.len() == 2 {
                    coverage.disagreeing += 1;
                }
            }
        }
    }
    for org in orgs {
        let caller = gw.client(store, Some(org.id.to_string())).await;
        let (permitted, denied, partial, withheld_subject) =
            check_recipient(&caller, &org.id.to_string(), &subjects).await;
        coverage.permitted += permitted;
        coverage.denied += denied;
        coverage.partial += partial;
        coverage.withheld_subject += withheld_subject;
    }
}

async fn every_answer_agrees_with_the_decision(store: &Store) {
    let w = world(store).await;
    let gw = gateway(store).await;
    let orgs = [&w.hospital, &w.partner, &w.practice];
    let mut rng = ChaCha8Rng::seed_from_u64(0x1fc0_2026);
    let mut coverage = Coverage::default();
    let cases: usize = std::env::var("IOP_CONSENT_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(12);
    for case in 0..cases {
        one_case(store, &gw, &w, &orgs, case, &mut rng, &mut coverage).await;
    }
    common::say(&format!("consent property coverage: {coverage:?}"));
    assert!(coverage.nested_deny_in_permit > 0, "{coverage:?}");
    assert!(coverage.expired > 0, "{coverage:?}");
    assert!(coverage.future > 0, "{coverage:?}");
    assert!(coverage.revoked > 0, "{coverage:?}");
    assert!(coverage.disagreeing > 0, "{coverage:?}");
    assert!(
        coverage.permitted > 0 && coverage.denied > 0,
        "{coverage:?}"
    );
    assert!(coverage.partial > 0, "{coverage:?}");
    assert!(coverage.withheld_subject > 0, "{coverage:?}");
}

on_both_backends!(
    family_of_origin_shows_only_while_consented,
    chosen_family_only_the_named_contact_shows,
    expired_consent_discloses_nothing,
    revoked_consent_discloses_nothing,
    the_read_cache_never_outlives_a_change,
    part2_consent_to_the_referring_hospital,
    part2_client_without_consent_is_invisible_to_the_clinic,
    consent_for_another_recipient_does_not_release,
    all_except_substance_use,
    every_answer_agrees_with_the_decision,
);
