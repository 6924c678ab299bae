//! The HTTP edge answers every error with a FHIR OperationOutcome, whoever produced it: axum's
//! routing (a wrong method, an unknown route), an extractor (an undecodable path), or a panic.

mod common;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use iop_gateway::auth::OpenAccess;
use iop_gateway::fhir_api::PublicUrl;
use iop_gateway::http::{AppState, outcome, router};
use iop_gateway::mapping::MappingConfig;
use iop_gateway::validation::{Registry, Validator};
use reqwest::Method;
use serde_json::Value;

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

/// Status, `Allow` header and the body as JSON (Null when it is not JSON).
async fn call(method: Method, url: &str) -> (u16, Option<String>, Option<String>, Value) {
    let response = reqwest::Client::new()
        .request(method, url)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (allow, content_type) = (header("allow"), header("content-type"));
    let body = response.json().await.unwrap_or(Value::Null);
    (status, allow, content_type, body)
}

fn assert_outcome(answer: &(u16, Option<String>, Option<String>, Value), status: u16) {
    let (got, _, content_type, body) = answer;
    assert_eq!(*got, status, "{body}");
    assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
    assert_eq!(body["issue"][0]["severity"], "error", "{body}");
    assert!(
        content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("application/fhir+json")),
        "{content_type:?}"
    );
}

fn state(store: &iop_gateway::store::Store, public_url: PublicUrl) -> AppState {
    AppState::new(
        store.clone(),
        Arc::new(Validator::new(Arc::new(Registry::builtin()))),
        Arc::new(MappingConfig::default()),
        Arc::new(OpenAccess),
        public_url,
    )
}

/// Links are built on the configured public URL, whatever Host a request names; only when the
/// operator opts in do they follow the request.
#[tokio::test]
async fn links_use_the_configured_public_url_not_the_host_header() {
    let db = common::sqlite().await;
    let fixed = serve(router(state(
        &db.store,
        PublicUrl::fixed("https://fhir.clinic.example/").unwrap(),
    )))
    .await;
    let from_request = serve(router(state(&db.store, PublicUrl::FromRequest))).await;
    let self_link = |base: String| async move {
        let bundle: Value = reqwest::Client::new()
            .get(format!("{base}/fhir/Patient"))
            .header("host", "attacker.example")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        bundle["link"][0]["url"].as_str().unwrap().to_owned()
    };
    assert_eq!(
        self_link(fixed).await,
        "https://fhir.clinic.example/fhir/Patient"
    );
    assert_eq!(
        self_link(from_request).await,
        "http://attacker.example/fhir/Patient"
    );
    assert!(PublicUrl::fixed("ftp://x").is_none());
    assert!(PublicUrl::fixed("https://x/?a=b").is_none());
    db.cleanup().await;
}

#[tokio::test]
async fn routing_and_extractor_errors_are_operation_outcomes() {
    let db = common::sqlite().await;
    let base = serve(router(state(&db.store, PublicUrl::FromRequest))).await;
    let id = uuid::Uuid::new_v4();

    let wrong_methods = [
        (Method::DELETE, format!("{base}/fhir/Patient"), "GET"),
        (Method::PATCH, format!("{base}/fhir/Patient/{id}"), "PUT"),
        (Method::POST, format!("{base}/fhir/metadata"), "GET"),
        (Method::PUT, format!("{base}/fhir/Patient/_history"), "GET"),
    ];
    for (method, url, allowed) in wrong_methods {
        let answer = call(method.clone(), &url).await;
        assert_outcome(&answer, 405);
        let allow = answer
            .1
            .clone()
            .unwrap_or_else(|| panic!("{method} {url}: no Allow"));
        assert!(allow.contains(allowed), "{method} {url}: Allow {allow}");
        assert_eq!(answer.3["issue"][0]["code"], "not-supported");
    }

    // Percent-encoding that is not UTF-8 cannot become a path parameter.
    let answer = call(Method::GET, &format!("{base}/fhir/Patient/%FF")).await;
    assert_outcome(&answer, 400);
    let answer = call(Method::GET, &format!("{base}/fhir/Patient/%FF/_history")).await;
    assert_outcome(&answer, 400);

    for path in ["/nowhere", "/fhir/Patient/a/b/c/d/e", "/fhirx"] {
        let answer = call(Method::GET, &format!("{base}{path}")).await;
        assert_outcome(&answer, 404);
    }
    // The health endpoints keep their own JSON.
    let (status, _, _, body) = call(Method::GET, &format!("{base}/readyz")).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ready")));
    db.cleanup().await;
}

async fn boom() -> &'static str {
    panic!("a bug in a handler")
}

#[tokio::test]
async fn a_panicking_handler_answers_500_and_the_server_goes_on() {
    let app = outcome::harden(
        Router::new()
            .route("/boom", get(boom))
            .route("/fine", get(|| async { "fine" })),
    );
    let base = serve(app).await;
    for _ in 0..3 {
        let answer = call(Method::GET, &format!("{base}/boom")).await;
        assert_outcome(&answer, 500);
        assert_eq!(answer.3["issue"][0]["code"], "exception");
    }
    let text = reqwest::get(format!("{base}/fine")).await.unwrap();
    assert_eq!(text.status(), 200);
    assert_eq!(text.text().await.unwrap(), "fine");
}
