//! SMART Backend Services over real HTTP on both backends: client assertions accepted and
//! refused, access tokens, scope enforcement, and the audit trail of every disclosure.

mod common;

use std::sync::Arc;

use iop_gateway::auth::grant::TokenService;
use iop_gateway::auth::keys::KeyCache;
use iop_gateway::auth::{AccessTokens, BearerTokens};
use iop_gateway::domain::{ApiClient, ClientId, KeySource};
use iop_gateway::fhir_api::PublicUrl;
use iop_gateway::http::{AppState, router};
use iop_gateway::mapping::MappingConfig;
use iop_gateway::outbound::Outbound;
use iop_gateway::seed::{self, SeedOptions};
use iop_gateway::store::Store;
use iop_gateway::validation::{Registry, Validator};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/fixtures/auth/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

struct Gateway {
    origin: String,
    http: reqwest::Client,
}

async fn clinic(store: &Store) -> Option<String> {
    iop_gateway::disclose::clinic_organizations(store)
        .await
        .unwrap()
        .into_iter()
        .next()
}

async fn register(store: &Store, name: &str, jwks: &str, scopes: &str, enabled: bool) {
    store
        .add_api_client(&ApiClient {
            client_id: ClientId::parse(name).unwrap(),
            keys: KeySource::Inline(jwks.to_owned()),
            scopes: scopes.into(),
            // The clinic's own EHR: on every client's care team (consent filtering lets it see
            // all but Part 2 records no consent releases to it).
            organization_id: clinic(store).await,
            purpose_of_use: "TREAT".into(),
            enabled,
            clinic_app: false,
        })
        .await
        .unwrap();
}

async fn spawn(store: &Store) -> Gateway {
    seed::seed(
        store,
        SeedOptions {
            clients: 10,
            seed: 3,
            as_of: chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
        },
        |_, _| {},
    )
    .await
    .unwrap();
    let jwks = fixture("client.jwks.json");
    register(
        store,
        "ehr",
        &jwks,
        "system/*.cruds system/AuditEvent.rs",
        true,
    )
    .await;
    register(store, "patients-only", &jwks, "system/Patient.rs", true).await;
    register(store, "plans-search", &jwks, "system/CarePlan.s", true).await;
    register(store, "disabled", &jwks, "system/*.rs", false).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let tokens = Arc::new(AccessTokens::load(store).await.unwrap());
    let disabled = iop_gateway::auth::revocation::DisabledClients::default();
    disabled
        .watch(store.clone(), std::time::Duration::from_millis(200))
        .await
        .unwrap();
    let service = TokenService::new(
        store.clone(),
        KeyCache::new(Outbound::new()),
        Arc::clone(&tokens),
        300,
    );
    let state = AppState::new(
        store.clone(),
        Arc::new(Validator::new(Arc::new(Registry::builtin()))),
        Arc::new(MappingConfig::default()),
        Arc::new(BearerTokens::new(tokens).with_disabled(disabled)),
        PublicUrl::fixed(&format!("http://{address}")).unwrap(),
    )
    .with_tokens(Arc::new(service))
    // These tests make hundreds of requests as one client within seconds (every type ×
    // interaction × scope letter): the per-client rate limit is not what they check
    // (`a_client_past_its_rate_is_told_when_to_retry` does).
    .with_limits(iop_gateway::http::Limits {
        rate_per_second: 100_000,
        rate_burst: 100_000,
        ..Default::default()
    });
    tokio::spawn(async move {
        axum::serve(
            listener,
            router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap();
    });
    Gateway {
        origin: format!("http://{address}"),
        http: reqwest::Client::new(),
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A client assertion signed with fixture key `key` (`rs384`, `es384`, `rs384-other`).
fn assertion(key: &str, kid: &str, claims: Value) -> String {
    let pem = fixture(&format!("{key}.pem"));
    let (alg, encoding) = if key.starts_with("es") {
        (
            Algorithm::ES384,
            EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
        )
    } else {
        (
            Algorithm::RS384,
            EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        )
    };
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, &claims, &encoding).unwrap()
}

impl Gateway {
    fn token_url(&self) -> String {
        format!("{}/auth/token", self.origin)
    }

    fn claims(&self, client: &str) -> Value {
        json!({
            "iss": client, "sub": client, "aud": self.token_url(),
            "exp": now() + 240, "jti": uuid::Uuid::new_v4().to_string(),
        })
    }

    async fn ask(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let response = self
            .http
            .post(self.token_url())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).unwrap())
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    async fn exchange(&self, assertion: &str, scope: &str) -> (u16, Value) {
        self.ask(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
            ("scope", scope),
        ])
        .await
    }

    /// An access token for `client` with `scope`.
    async fn token(&self, client: &str, scope: &str) -> String {
        let (status, body) = self
            .exchange(&assertion("es384", "es384", self.claims(client)), scope)
            .await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    async fn get(
        &self,
        token: Option<&str>,
        path: &str,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut request = self.http.get(format!("{}/fhir/{path}", self.origin));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (
            status,
            headers,
            response.json().await.unwrap_or(Value::Null),
        )
    }
}

async fn client_assertions_are_checked(store: &Store) {
    let gw = spawn(store).await;
    // Both algorithms, each with its registered key.
    for (key, kid) in [("rs384", "rs384"), ("es384", "es384")] {
        let (status, body) = gw
            .exchange(&assertion(key, kid, gw.claims("ehr")), "system/*.rs")
            .await;
        assert_eq!(status, 200, "{key}: {body}");
        assert_eq!(body["token_type"], "bearer");
        assert!(body["expires_in"].as_i64().unwrap() <= 300);
        assert_eq!(body["scope"], "system/*.rs");
        assert!(body.get("refresh_token").is_none());
    }
    // The grant is what was asked and registered.
    let (_, body) = gw
        .exchange(
            &assertion("rs384", "rs384", gw.claims("patients-only")),
            "system/*.rs launch",
        )
        .await;
    assert_eq!(body["scope"], "system/Patient.rs");

    let mut cases: Vec<(&str, String, &str, u16, &str)> = Vec::new();
    let with = |change: &dyn Fn(&mut Value)| {
        let mut c = gw.claims("ehr");
        change(&mut c);
        c
    };
    let signed = |c: Value| assertion("rs384", "rs384", c);
    cases.push((
        "expired",
        signed(with(&|c| c["exp"] = json!(now() - 120))),
        "system/*.rs",
        401,
        "invalid_client",
    ));
    cases.push((
        "exp too far",
        signed(with(&|c| c["exp"] = json!(now() + 900))),
        "system/*.rs",
        401,
        "invalid_client",
    ));
    cases.push((
        "not yet valid",
        signed(with(&|c| c["nbf"] = json!(now() + 200))),
        "system/*.rs",
        401,
        "invalid_client",
    ));
    cases.push((
        "wrong aud",
        signed(with(&|c| c["aud"] = json!("https://elsewhere/token"))),
        "system/*.rs",
        401,
        "invalid_client",
    ));
    cases.push((
        "iss != sub",
        signed(with(&|c| c["sub"] = json!("someone-else"))),
        "system/*.rs",
        401,
        "invalid_client",
    ));
    cases.push((
        "no jti",
        signed(with(&|c| {
            c.as_object_mut().unwrap().remove("jti");
        })),
        "system/*.rs",
        401,
        "invalid_client",
    ));
    cases.push((
        "unknown client",
        signed(with(&|c| {
            c["iss"] = json!("nobody");
            c["sub"] = json!("nobody");
        })),
        "system/*.rs",
        401,
        "invalid_client",
    ));
    cases.push((
        "disabled client",
        signed(with(&|c| {
            c["iss"] = json!("disabled");
            c["sub"] = json!("disabled");
        })),
        "system/*.rs",
        401,
        "invalid_client",
    ));
    cases.push((
        "other key",
        assertion("rs384-other", "rs384", gw.claims("ehr")),
        "system/*.rs",
        401,
        "invalid_client",
    ));
    cases.push((
        "unknown kid",
        assertion("rs384-other", "rs384-other", gw.claims("ehr")),
        "system/*.rs",
        401,
        "invalid_client",
    ));
    cases.push((
        "scope not registered",
        signed(gw.claims("plans-search")),
        "system/Goal.rs",
        400,
        "invalid_scope",
    ));
    // alg none and HS256 (signed with the public JWKS text as an HMAC secret: the classic attack).
    use base64::Engine;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": "rs384"})),
        b64(&gw.claims("ehr"))
    );
    cases.push(("alg none", none, "system/*.rs", 401, "invalid_client"));
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some("rs384".into());
    let hs256 = jsonwebtoken::encode(
        &hs,
        &gw.claims("ehr"),
        &EncodingKey::from_secret(fixture("client.jwks.json").as_bytes()),
    )
    .unwrap();
    cases.push(("HS256", hs256, "system/*.rs", 401, "invalid_client"));
    for (name, assertion, scope, status, error) in &cases {
        let (got, body) = gw.exchange(assertion, scope).await;
        assert_eq!(
            (got, body["error"].as_str().unwrap_or_default()),
            (*status, *error),
            "{name}: {body}"
        );
    }
    // A replayed assertion is refused.
    let once = signed(gw.claims("ehr"));
    assert_eq!(gw.exchange(&once, "system/*.rs").await.0, 200);
    let (status, body) = gw.exchange(&once, "system/*.rs").await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (401, "invalid_client"),
        "replay: {body}"
    );
    // Wrong grant type, wrong assertion type.
    let good = signed(gw.claims("ehr"));
    let (status, body) = gw
        .ask(&[
            ("grant_type", "password"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &good),
            ("scope", "system/*.rs"),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (400, "unsupported_grant_type")
    );
    let (status, body) = gw
        .ask(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:x"),
            ("client_assertion", &good),
            ("scope", "system/*.rs"),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (400, "invalid_request")
    );
    // Every token request, issued or refused, is in the audit trail.
    let (_, events) = audit_count(&gw, "type=110114").await;
    assert!(
        events >= cases.len() + 5,
        "token requests audited: {events}"
    );
}

async fn audit_count(gw: &Gateway, query: &str) -> (Value, usize) {
    let token = gw.token("ehr", "system/AuditEvent.rs").await;
    let (status, _, bundle) = gw
        .get(Some(&token), &format!("AuditEvent?{query}&_count=1000"))
        .await;
    assert_eq!(status, 200, "{bundle}");
    let n = bundle["entry"].as_array().map(Vec::len).unwrap_or(0);
    (bundle, n)
}

async fn scopes_are_enforced_and_disclosures_audited(store: &Store) {
    let gw = spawn(store).await;
    // No token, a forged one: 401 with WWW-Authenticate and an OperationOutcome.
    let (status, headers, body) = gw.get(None, "Patient").await;
    assert_eq!(status, 401);
    assert!(
        headers
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    assert_eq!(body["resourceType"], "OperationOutcome");
    let real = gw.token("patients-only", "system/Patient.rs").await;
    let mut forged = real.clone();
    forged.pop();
    forged.push(if real.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(gw.get(Some(&forged), "Patient").await.0, 401);
    // A token of ours that has expired: 401, saying so.
    let client = store.api_client("patients-only").await.unwrap().unwrap();
    let scopes = iop_gateway::auth::Scopes::parse_strict("system/Patient.rs").unwrap();
    let expired = AccessTokens::load(store)
        .await
        .unwrap()
        .issue(&client, &scopes, 300, now() - 400)
        .token;
    let (status, headers, _) = gw.get(Some(&expired), "Patient").await;
    assert_eq!(status, 401);
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("expired")
    );
    // Metadata and discovery are open; the CapabilityStatement names the token endpoint.
    let (status, _, metadata) = gw.get(None, "metadata").await;
    assert_eq!(status, 200);
    assert_eq!(
        metadata["rest"][0]["security"]["service"][0]["coding"][0]["code"],
        "SMART-on-FHIR"
    );
    let (status, _, smart) = gw.get(None, ".well-known/smart-configuration").await;
    assert_eq!(status, 200);
    assert_eq!(smart["token_endpoint"], gw.token_url());
    assert_eq!(
        smart["token_endpoint_auth_signing_alg_values_supported"],
        json!(["RS384", "ES384"])
    );

    // Patient.rs: Patient read and search, nothing else.
    let (status, _, patients) = gw.get(Some(&real), "Patient?_count=3").await;
    assert_eq!(status, 200);
    let patient = patients["entry"][0]["resource"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        gw.get(Some(&real), &format!("Patient/{patient}")).await.0,
        200
    );
    let refused = [
        "CarePlan".to_owned(),
        format!("CarePlan?patient={patient}"),
        format!("Patient?_id={patient}&_revinclude=CarePlan:subject"),
        "AuditEvent".to_owned(),
        format!("Patient/{patient}/_history"),
    ];
    for path in &refused[..4] {
        let (status, _, body) = gw.get(Some(&real), path).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert_eq!(body["resourceType"], "OperationOutcome");
    }
    assert_eq!(
        gw.get(Some(&real), &refused[4]).await.0,
        200,
        "history is r"
    );
    let write = gw
        .http
        .post(format!("{}/fhir/Patient", gw.origin))
        .bearer_auth(&real)
        .header("content-type", "application/fhir+json")
        .body(json!({"resourceType": "Patient"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 403, "create needs c");
    // CarePlan.s: search, but its subjects cannot be included without Patient.r.
    let plans = gw.token("plans-search", "system/CarePlan.s").await;
    assert_eq!(gw.get(Some(&plans), "CarePlan?_count=2").await.0, 200);
    assert_eq!(
        gw.get(Some(&plans), "CarePlan?_count=2&_include=CarePlan:subject")
            .await
            .0,
        403
    );

    // The read of that patient is accounted for, naming client, organization and purpose.
    let (bundle, n) = audit_count(&gw, &format!("patient={patient}&subtype=read")).await;
    assert_eq!(n, 1, "{bundle}");
    let event = &bundle["entry"][0]["resource"];
    assert_eq!(
        event["agent"][0]["who"]["identifier"]["value"],
        "patients-only"
    );
    assert_eq!(
        event["agent"][0]["who"]["reference"],
        format!("Organization/{}", clinic(store).await.unwrap()).as_str()
    );
    assert_eq!(event["purposeOfEvent"][0]["coding"][0]["code"], "TREAT");
    assert_eq!(event["outcome"], "0");
    assert!(
        event["meta"]["profile"][0]
            .as_str()
            .unwrap()
            .ends_with("IHE.BasicAudit.PatientRead")
    );
    // Every AuditEvent written so far is valid R4 (the BALP profiles it claims are not loaded
    // here, so the claim is set aside for this check and the base definition applies).
    let (all, _) = audit_count(&gw, "").await;
    let validator = Validator::new(Arc::new(Registry::builtin()));
    let mut checked = 0;
    for entry in all["entry"].as_array().unwrap() {
        let mut event = entry["resource"].clone();
        if let Some(meta) = event.get_mut("meta").and_then(Value::as_object_mut) {
            meta.remove("profile");
        }
        // A meta left empty would itself break ele-1.
        if event["meta"].as_object().is_some_and(|m| m.is_empty()) {
            event.as_object_mut().unwrap().remove("meta");
        }
        let errors: Vec<String> = validator
            .validate(&event, &[])
            .iter()
            .filter(|i| i.is_error())
            .map(|i| format!("{}: {}", i.expression, i.message))
            .collect();
        assert!(
            errors.is_empty(),
            "{event}
{errors:#?}"
        );
        checked += 1;
    }
    assert!(checked >= 10, "{checked} AuditEvents validated");
    // The searches too (with their query), and the refusals.
    let (_, searches) = audit_count(&gw, &format!("patient={patient}&subtype=search")).await;
    assert!(searches >= 1);
    let (bundle, refusals) = audit_count(&gw, "agent=patients-only").await;
    let refused_events = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["resource"]["outcome"] == "4")
        .count();
    assert!(
        refused_events >= 5,
        "refusals audited: {refused_events} of {refusals}"
    );
    // Writes are accounted for too: a create and an update, each naming the patient.
    let writer = gw.token("ehr", "system/Patient.cruds").await;
    let person = json!({
        "resourceType": "Patient",
        "identifier": [{"system": "https://iop-gateway.org/fhir/clinic/mrn", "value": "AUD0001"}],
        "name": [{"family": "Auditson", "given": ["Ada"]}],
        "birthDate": "1980-02-03", "gender": "female",
    });
    let created = gw
        .http
        .post(format!("{}/fhir/Patient", gw.origin))
        .bearer_auth(&writer)
        .header("content-type", "application/fhir+json")
        .body(person.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let new_id = created["id"].as_str().unwrap().to_owned();
    let mut changed = created.clone();
    changed["gender"] = json!("other");
    let updated = gw
        .http
        .put(format!("{}/fhir/Patient/{new_id}", gw.origin))
        .bearer_auth(&writer)
        .header("content-type", "application/fhir+json")
        .body(changed.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(updated.status(), 200);
    for (subtype, profile) in [
        ("create", "IHE.BasicAudit.PatientCreate"),
        ("update", "IHE.BasicAudit.PatientUpdate"),
    ] {
        let (bundle, n) = audit_count(&gw, &format!("patient={new_id}&subtype={subtype}")).await;
        assert_eq!(n, 1, "{subtype}: {bundle}");
        let event = &bundle["entry"][0]["resource"];
        assert_eq!(event["outcome"], "0");
        assert!(
            event["meta"]["profile"][0]
                .as_str()
                .unwrap()
                .ends_with(profile),
            "{event}"
        );
        assert_eq!(event["agent"][0]["who"]["identifier"]["value"], "ehr");
    }
    // The audit trail is append-only: the database refuses changes.
    let changed = store
        .execute_raw("UPDATE audit_events SET outcome = 0")
        .await;
    assert!(changed.is_err(), "UPDATE of audit rows must be refused");
    let deleted = store.execute_raw("DELETE FROM audit_events").await;
    assert!(deleted.is_err(), "DELETE of audit rows must be refused");
}

/// A client registered by JWKS URL: its keys are fetched from there, and a `jku` header must
/// name that URL.
async fn keys_by_url_and_jku(store: &Store) {
    let gw = spawn(store).await;
    let jwks = fixture("client.jwks.json");
    let keys = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", keys.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let jwks = jwks.clone();
            async move {
                (
                    [
                        ("cache-control", "max-age=60"),
                        ("content-type", "application/json"),
                    ],
                    jwks,
                )
            }
        }),
    );
    tokio::spawn(async move { axum::serve(keys, app).await.unwrap() });
    store
        .add_api_client(&ApiClient {
            client_id: ClientId::parse("by-url").unwrap(),
            keys: KeySource::Url(url.clone()),
            scopes: "system/*.rs".into(),
            organization_id: None,
            purpose_of_use: "TREAT".into(),
            enabled: true,
            clinic_app: false,
        })
        .await
        .unwrap();
    let (status, body) = gw
        .exchange(
            &assertion("es384", "es384", gw.claims("by-url")),
            "system/*.rs",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let sign_with_jku = |jku: &str| {
        let pem = fixture("rs384.pem");
        let mut header = Header::new(Algorithm::RS384);
        header.kid = Some("rs384".into());
        header.jku = Some(jku.into());
        jsonwebtoken::encode(
            &header,
            &gw.claims("by-url"),
            &EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        )
        .unwrap()
    };
    assert_eq!(
        gw.exchange(&sign_with_jku(&url), "system/*.rs").await.0,
        200
    );
    let (status, body) = gw
        .exchange(
            &sign_with_jku("https://attacker.example/jwks.json"),
            "system/*.rs",
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (401, "invalid_client"),
        "{body}"
    );
}

/// A JWKS URL is read no more often than its `Cache-Control` allows — cached while fresh,
/// fetched again once stale, every time without a lifetime — and fetched again at once when an
/// assertion names a `kid` the cached set lacks (the client rotated its keys).
async fn jwks_urls_are_cached_as_told_and_refetched_for_new_keys(store: &Store) {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let gw = spawn(store).await;
    // path -> (JWKS served, Cache-Control), and a fetch counter per path.
    type Served = Arc<Mutex<std::collections::HashMap<String, (String, &'static str)>>>;
    let served: Served = Default::default();
    let fetches: Arc<Mutex<std::collections::HashMap<String, usize>>> = Default::default();
    let all = Arc::new(AtomicUsize::new(0));
    let app = {
        let (served, fetches, all) = (served.clone(), fetches.clone(), all.clone());
        axum::Router::new().route(
            "/{name}",
            axum::routing::get(
                move |axum::extract::Path(name): axum::extract::Path<String>| {
                    let (served, fetches, all) = (served.clone(), fetches.clone(), all.clone());
                    async move {
                        all.fetch_add(1, Ordering::SeqCst);
                        *fetches.lock().unwrap().entry(name.clone()).or_default() += 1;
                        let (jwks, cache) = served.lock().unwrap()[&name].clone();
                        (
                            [
                                ("cache-control", cache),
                                ("content-type", "application/json"),
                            ],
                            jwks,
                        )
                    }
                },
            ),
        )
    };
    let keys = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", keys.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(keys, app).await.unwrap() });
    let jwks = fixture("client.jwks.json");
    for (name, cache) in [
        ("long", "max-age=60"),
        ("short", "max-age=1"),
        ("none", "no-store"),
    ] {
        served
            .lock()
            .unwrap()
            .insert(name.into(), (jwks.clone(), cache));
        store
            .add_api_client(&ApiClient {
                client_id: ClientId::parse(name).unwrap(),
                keys: KeySource::Url(format!("{origin}/{name}")),
                scopes: "system/*.rs".into(),
                organization_id: None,
                purpose_of_use: "TREAT".into(),
                enabled: true,
                clinic_app: false,
            })
            .await
            .unwrap();
    }
    let count = |name: &str| fetches.lock().unwrap().get(name).copied().unwrap_or(0);
    let accepted = |client: &str, key: &str, kid: &str| {
        let assertion = assertion(key, kid, gw.claims(client));
        let gw = &gw;
        async move { gw.exchange(&assertion, "system/*.rs").await.0 == 200 }
    };
    // Fresh for 60 s: one fetch serves both keys.
    assert!(accepted("long", "es384", "es384").await);
    assert!(accepted("long", "rs384", "rs384").await);
    assert_eq!(count("long"), 1);
    // The client rotates in a new key: an unknown kid fetches the set again, at once.
    let mut rotated: Value = serde_json::from_str(&jwks).unwrap();
    let other: Value = serde_json::from_str(&fixture("other.jwks.json")).unwrap();
    rotated["keys"]
        .as_array_mut()
        .unwrap()
        .extend(other["keys"].as_array().unwrap().iter().cloned());
    served
        .lock()
        .unwrap()
        .insert("long".into(), (rotated.to_string(), "max-age=60"));
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert!(accepted("long", "rs384-other", "rs384-other").await);
    assert_eq!(count("long"), 2);
    // A kid in no set: fetched once more at most, then refused.
    assert!(!accepted("long", "rs384-other", "nowhere").await);
    assert!(!accepted("long", "rs384-other", "nowhere").await);
    assert!(
        count("long") <= 3,
        "unknown kids refetch at most once a second"
    );
    // Fresh for 1 s: cached, then fetched again when stale.
    assert!(accepted("short", "es384", "es384").await);
    assert!(accepted("short", "es384", "es384").await);
    assert_eq!(count("short"), 1);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert!(accepted("short", "es384", "es384").await);
    assert_eq!(count("short"), 2);
    // No lifetime: fetched for every assertion.
    for _ in 0..3 {
        assert!(accepted("none", "es384", "es384").await);
    }
    assert_eq!(count("none"), 3);
    assert_eq!(all.load(Ordering::SeqCst), count("long") + 2 + 3);
}

/// A client signing with a PEM key names it by its RFC 7638 thumbprint (smart-fetch, jwcrypto);
/// the registered key matches by thumbprint as well as by `kid`.
async fn keys_match_by_thumbprint(store: &Store) {
    let gw = spawn(store).await;
    let set: jsonwebtoken::jwk::JwkSet =
        serde_json::from_str(&fixture("client.jwks.json")).unwrap();
    for (key, kid) in [("es384", "es384"), ("rs384", "rs384")] {
        let thumbprint = set
            .find(kid)
            .unwrap()
            .thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
            .unwrap();
        let (status, body) = gw
            .exchange(
                &assertion(key, &thumbprint, gw.claims("ehr")),
                "system/*.rs",
            )
            .await;
        assert_eq!(status, 200, "{key} by thumbprint: {body}");
    }
    // Another key's thumbprint does not let a key in.
    let es_thumbprint = set
        .find("es384")
        .unwrap()
        .thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
        .unwrap();
    let (status, _) = gw
        .exchange(
            &assertion("rs384", &es_thumbprint, gw.claims("ehr")),
            "system/*.rs",
        )
        .await;
    assert_eq!(status, 401);
}

/// Every type the API serves × every interaction: a token with exactly the letter the
/// interaction needs (on that type) gets past the scope check; a token with every other letter
/// on that type and everything on every other type is refused with 403.
async fn every_interaction_checks_its_type_and_letter(store: &Store) {
    let gw = spawn(store).await;
    let mut client = store.api_client("ehr").await.unwrap().unwrap();
    // As one of the clinic's own applications, so that creating plans and goals (the clinic's
    // to write) meets the scope check too; the tokens carry it.
    client.clinic_app = true;
    let minted = AccessTokens::load(store).await.unwrap();
    let token = |scope: &str| {
        minted
            .issue(
                &client,
                &iop_gateway::auth::Scopes::parse_strict(scope).unwrap(),
                300,
                now(),
            )
            .token
    };
    const TYPES: [&str; 14] = [
        "Patient",
        "RelatedPerson",
        "Consent",
        "Encounter",
        "EpisodeOfCare",
        "CarePlan",
        "Goal",
        "Task",
        "ServiceRequest",
        "Practitioner",
        "Organization",
        "HealthcareService",
        "Group",
        "AuditEvent",
    ];
    const OTHER: [&str; 14] = [
        "Organization",
        "Patient",
        "Patient",
        "Patient",
        "Patient",
        "Patient",
        "Patient",
        "Patient",
        "Patient",
        "Patient",
        "Patient",
        "Patient",
        "Patient",
        "Patient",
    ];
    // An id of each type, and an AuditEvent to read.
    let everything = token("system/*.cruds system/AuditEvent.rs");
    let mut ids = std::collections::HashMap::new();
    for kind in TYPES {
        let (status, _, bundle) = gw.get(Some(&everything), &format!("{kind}?_count=1")).await;
        assert_eq!(status, 200, "{kind}: {bundle}");
        let id = bundle["entry"][0]["resource"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("a seeded {kind}: {bundle}"))
            .to_owned();
        ids.insert(kind, id);
    }
    // (interaction, the letters needed — any one of them suffices, method, path, body?)
    let mut checked = 0;
    for (kind, other) in TYPES.iter().zip(OTHER) {
        let id = &ids[kind];
        let resource = json!({"resourceType": kind, "id": id});
        let cases: Vec<(&str, &str, reqwest::Method, String, Option<Value>)> = vec![
            (
                "read",
                "r",
                reqwest::Method::GET,
                format!("{kind}/{id}"),
                None,
            ),
            (
                "vread",
                "r",
                reqwest::Method::GET,
                format!("{kind}/{id}/_history/1"),
                None,
            ),
            (
                "history",
                "r",
                reqwest::Method::GET,
                format!("{kind}/{id}/_history"),
                None,
            ),
            (
                "type history",
                "r",
                reqwest::Method::GET,
                format!("{kind}/_history"),
                None,
            ),
            (
                "search",
                "s",
                reqwest::Method::GET,
                format!("{kind}?_count=1"),
                None,
            ),
            (
                "search by POST",
                "s",
                reqwest::Method::POST,
                format!("{kind}/_search"),
                None,
            ),
            (
                "count",
                "s",
                reqwest::Method::GET,
                format!("{kind}?_summary=count"),
                None,
            ),
            (
                "create",
                "c",
                reqwest::Method::POST,
                kind.to_string(),
                Some(json!({"resourceType": kind})),
            ),
            (
                "update",
                "u",
                reqwest::Method::PUT,
                format!("{kind}/{id}"),
                Some(resource.clone()),
            ),
            (
                "delete",
                "d",
                reqwest::Method::DELETE,
                format!("{kind}/{id}"),
                None,
            ),
            (
                "$validate",
                "cu",
                reqwest::Method::POST,
                format!("{kind}/$validate"),
                Some(json!({"resourceType": kind})),
            ),
        ];
        // The audit trail declares read and search only, and can never be written.
        let cases = if *kind == "AuditEvent" {
            let (declared, rest): (Vec<_>, Vec<_>) = cases
                .into_iter()
                .partition(|c| ["read", "search", "search by POST"].contains(&c.0));
            for (interaction, _, method, path, body) in rest {
                let mut request = gw
                    .http
                    .request(method, format!("{}/fhir/{path}", gw.origin))
                    .bearer_auth(&everything);
                if let Some(body) = body {
                    request = request
                        .header("content-type", "application/fhir+json")
                        .body(body.to_string());
                }
                let status = request.send().await.unwrap().status();
                assert!(
                    status.is_client_error() && status != 401,
                    "AuditEvent {interaction}: {status}"
                );
            }
            declared
        } else {
            cases
        };
        let expected = cases.len();
        for (interaction, needed, method, path, body) in cases {
            let send = |token: String| {
                let mut request = gw
                    .http
                    .request(method.clone(), format!("{}/fhir/{path}", gw.origin))
                    .bearer_auth(token);
                if method == reqwest::Method::POST && body.is_none() {
                    request = request
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body("_count=1");
                } else if let Some(body) = &body {
                    request = request
                        .header("content-type", "application/fhir+json")
                        .body(body.to_string());
                }
                async move { request.send().await.unwrap().status().as_u16() }
            };
            for letter in needed.chars() {
                let allowed = send(token(&format!("system/{kind}.{letter}"))).await;
                assert!(
                    ![401, 403].contains(&allowed),
                    "{kind} {interaction} with system/{kind}.{letter}: {allowed}"
                );
            }
            let without: String = "cruds".chars().filter(|l| !needed.contains(*l)).collect();
            let refused = send(token(&format!(
                "system/{kind}.{without} system/{other}.cruds"
            )))
            .await;
            assert_eq!(
                refused, 403,
                "{kind} {interaction} with system/{kind}.{without}: {refused}"
            );
            checked += 1;
        }
        assert!(expected >= 3);
    }
    assert_eq!(checked, (TYPES.len() - 1) * 11 + 3);
    // A wildcard never covers the audit trail: it is granted by name only.
    let wildcard = token("system/*.cruds");
    for path in ["AuditEvent", &format!("AuditEvent/{}", ids["AuditEvent"])] {
        assert_eq!(gw.get(Some(&wildcard), path).await.0, 403, "{path}");
    }
    let (status, body) = gw
        .exchange(
            &assertion("es384", "es384", gw.claims("ehr")),
            "system/*.rs",
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        !body["scope"].as_str().unwrap().contains("AuditEvent"),
        "{body}"
    );
}

/// Disabling a client cuts off the tokens it already holds within seconds (here the registry is
/// re-read every 200 ms), and enabling it again lets them back in.
async fn a_disabled_client_loses_access_at_once(store: &Store) {
    let gw = spawn(store).await;
    let token = gw.token("patients-only", "system/Patient.rs").await;
    assert_eq!(gw.get(Some(&token), "Patient?_count=1").await.0, 200);
    let mut client = store.api_client("patients-only").await.unwrap().unwrap();
    client.enabled = false;
    store.update_api_client(&client).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(gw.get(Some(&token), "Patient?_count=1").await.0, 401);
    client.enabled = true;
    store.update_api_client(&client).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(gw.get(Some(&token), "Patient?_count=1").await.0, 200);
}

/// A conditional create that finds a record the caller may not see (a Part 2 client, no consent
/// for this organization) answers without the record: no body, no Location.
async fn a_conditional_create_does_not_echo_a_withheld_record(store: &Store) {
    use iop_gateway::domain::{Client, Enrollment, Program};
    let gw = spawn(store).await;
    let mut withheld = None;
    for enrollment in store.page::<Enrollment>(None, 1000).await.unwrap() {
        let program = store
            .get::<Program>(enrollment.record.program_id)
            .await
            .unwrap()
            .unwrap();
        if program.record.part2 {
            withheld = Some(enrollment.record.client_id);
            break;
        }
    }
    let client_id = withheld.expect("a seeded Part 2 client");
    let client = store.get::<Client>(client_id).await.unwrap().unwrap();
    let token = gw.token("ehr", "system/Patient.cruds").await;
    // Not readable by this client (the clinic's EHR without a Part 2 consent)...
    let (status, _, _) = gw.get(Some(&token), &format!("Patient/{client_id}")).await;
    assert_eq!(status, 404);
    // ...nor echoed by a conditional create that finds it by its MRN.
    let mrn_system = "https://iop-gateway.org/fhir/clinic/mrn";
    let response = gw
        .http
        .post(format!("{}/fhir/Patient", gw.origin))
        .bearer_auth(&token)
        .header("content-type", "application/fhir+json")
        .header(
            "if-none-exist",
            format!("identifier={mrn_system}|{}", client.record.mrn.as_str()),
        )
        .body(
            json!({
                "resourceType": "Patient",
                "identifier": [{"system": mrn_system, "value": client.record.mrn.as_str()}],
                "name": [{"family": "Anyone", "given": ["Else"]}],
                "birthDate": "1990-01-01", "gender": "unknown",
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("location").is_none());
    assert!(response.text().await.unwrap().is_empty());
}

on_both_backends!(
    a_conditional_create_does_not_echo_a_withheld_record,
    a_disabled_client_loses_access_at_once,
    client_assertions_are_checked,
    scopes_are_enforced_and_disclosures_audited,
    keys_by_url_and_jku,
    jwks_urls_are_cached_as_told_and_refetched_for_new_keys,
    keys_match_by_thumbprint,
    every_interaction_checks_its_type_and_letter
);

/// A gateway without authentication (for what does not depend on it: TLS, limits).
fn open_state(store: &Store, public_url: &str) -> AppState {
    AppState::new(
        store.clone(),
        Arc::new(Validator::new(Arc::new(Registry::builtin()))),
        Arc::new(MappingConfig::default()),
        Arc::new(iop_gateway::auth::OpenAccess),
        PublicUrl::fixed(public_url).unwrap(),
    )
}

/// `serve --tls-cert --tls-key`: HTTPS with a self-signed certificate, the client trusting it.
#[tokio::test]
async fn serves_https_with_the_certificate_given() {
    let db = common::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let state = open_state(&db.store, &format!("https://localhost:{port}"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        iop_gateway::http::serve_tls(listener, state, &cert, &key, async {
            let _ = stopped.await;
        })
        .await
    });
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).unwrap(),
        )
        .resolve("localhost", ([127, 0, 0, 1], port).into())
        .build()
        .unwrap();
    let mut answered = None;
    for _ in 0..50 {
        match client
            .get(format!("https://localhost:{port}/healthz"))
            .send()
            .await
        {
            Ok(response) => {
                answered = Some(response.status().as_u16());
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    assert_eq!(answered, Some(200), "HTTPS answered");
    // Plain HTTP on the TLS port gets no answer.
    let plain = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await;
    assert!(!plain.map(|r| r.status().is_success()).unwrap_or(false));
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    db.cleanup().await;
}

/// Past its rate and burst, a client gets 429 with `Retry-After` and an OperationOutcome.
#[tokio::test]
async fn a_client_past_its_rate_is_told_when_to_retry() {
    let db = common::sqlite().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let state = open_state(&db.store, &format!("http://{address}")).with_limits(
        iop_gateway::http::Limits {
            rate_per_second: 1,
            rate_burst: 2,
            ..Default::default()
        },
    );
    tokio::spawn(async move { axum::serve(listener, router(state)).await.unwrap() });
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    let mut throttled = None;
    for _ in 0..5 {
        let response = client
            .get(format!("http://{address}/fhir/Organization"))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            let retry = response.headers().get("retry-after").cloned();
            throttled = Some((retry, response.json::<Value>().await.unwrap()));
        }
    }
    assert_eq!(
        &statuses[..2],
        &[200, 200],
        "the burst is served: {statuses:?}"
    );
    assert!(statuses[2..].contains(&429), "{statuses:?}");
    let (retry, outcome) = throttled.unwrap();
    assert!(retry.unwrap().to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    assert_eq!(outcome["issue"][0]["code"], "throttled");
    db.cleanup().await;
}
