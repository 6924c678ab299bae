//! Who is signed in: the sign-in form, the session cookie, the CSRF token every form carries,
//! and the role a page or action needs.
//!
//! - A session is a random 256-bit cookie value; the database keeps only its SHA-256, with the
//!   session's CSRF token and expiry, so every replica knows it and a copied table is useless.
//! - The cookie is `HttpOnly`, `SameSite=Strict`, `Path=/`, and `Secure` unless the console
//!   listens on loopback.
//! - Every POST passes `require_signed_in`, which compares the form's `csrf` field with the
//!   session's before any handler runs; the sign-in form carries a token of its own (a cookie
//!   and a field that must match), so nobody can sign a browser in as somebody else.

use axum::Form;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use maud::html;
use serde::Deserialize;
use sha2::Digest;

use super::ConsoleState;
use super::layout;
use crate::audit::RequestContext;
use crate::domain::{AuditInteraction, AuditOutcome, AuditRecord, Operator, Role, Timestamp};

pub const SESSION_COOKIE: &str = "iop_console";
const SIGN_IN_COOKIE: &str = "iop_console_sign_in";
/// How long a session lasts: a working day.
const SESSION_HOURS: i64 = 10;
/// Sign-in attempts an address may make a minute (a burst of as many, then one every few
/// seconds).
pub const SIGN_INS_PER_MINUTE: u32 = 10;
/// The largest form a console page posts.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The signed-in operator, put into the request by `require_signed_in`.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub operator: Operator,
    pub csrf: String,
    id_hash: String,
}

impl SignedIn {
    pub fn name(&self) -> &str {
        self.operator.name.as_str()
    }
    pub fn may(&self, role: Role) -> bool {
        self.operator.roles.has(role)
    }
    /// The refusal (403) of an operator without `role`, if they lack it.
    pub fn refusal_without(&self, role: Role) -> Option<Response> {
        (!self.may(role)).then(|| {
            layout::refused(
                StatusCode::FORBIDDEN,
                &format!("This needs the {} role.", role.code()),
            )
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for SignedIn {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<SignedIn>()
            .cloned()
            .ok_or_else(|| Redirect::to("/sign-in").into_response())
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

fn random_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

fn digest(value: &str) -> String {
    sha2::Sha256::digest(value.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn same(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

fn set_cookie(state: &ConsoleState, name: &str, value: &str, max_age: i64) -> String {
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

/// Lets signed-in operators through (others to the sign-in page), and refuses every POST whose
/// form lacks the session's CSRF token.
pub async fn require_signed_in(
    State(state): State<ConsoleState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(value) = cookie(request.headers(), SESSION_COOKIE) else {
        return not_signed_in(request.method());
    };
    let id_hash = digest(value);
    let session = match state.store.console_session(&id_hash).await {
        Ok(Some(session)) => session,
        Ok(None) => return not_signed_in(request.method()),
        Err(error) => return layout::store_failed(&error),
    };
    let signed = SignedIn {
        operator: session.operator,
        csrf: session.csrf,
        id_hash,
    };
    let (mut parts, body) = request.into_parts();
    let body = if parts.method == Method::POST {
        let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
            return layout::refused(StatusCode::PAYLOAD_TOO_LARGE, "That form is too large.");
        };
        let sent = form_field(&bytes, "csrf");
        if !sent.is_some_and(|sent| same(&sent, &signed.csrf)) {
            tracing::warn!(
                operator = signed.name(),
                "console form refused: missing or wrong CSRF token"
            );
            return layout::refused(
                StatusCode::FORBIDDEN,
                "This form is missing its security token, or it comes from another page. Reload the page and try again.",
            );
        }
        Body::from(bytes)
    } else {
        body
    };
    parts.extensions.insert(signed);
    next.run(Request::from_parts(parts, body)).await
}

fn form_field(bytes: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(bytes)
        .ok()?
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

fn not_signed_in(method: &Method) -> Response {
    if method == Method::GET {
        Redirect::to("/sign-in").into_response()
    } else {
        layout::refused(StatusCode::UNAUTHORIZED, "Sign in first.")
    }
}

pub async fn sign_in_page(State(state): State<ConsoleState>) -> Response {
    sign_in_form(&state, StatusCode::OK, None)
}

fn sign_in_form(state: &ConsoleState, status: StatusCode, problem: Option<&str>) -> Response {
    let token = random_token();
    let page = layout::bare(
        "Sign in",
        html! {
            form.sign-in method="post" action="/sign-in" {
                h1 { "iop-gateway console" }
                @if let Some(problem) = problem { p.problem role="alert" { (problem) } }
                input type="hidden" name="csrf" value=(token);
                label { "Name" input name="name" autocomplete="username" required autofocus; }
                label { "Password" input name="password" type="password" autocomplete="current-password" required; }
                button type="submit" { "Sign in" }
            }
        },
    );
    (
        status,
        [(
            header::SET_COOKIE,
            set_cookie(state, SIGN_IN_COOKIE, &token, 600),
        )],
        page,
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct SignInForm {
    name: String,
    password: String,
    #[serde(default)]
    csrf: String,
}

pub async fn sign_in(
    State(state): State<ConsoleState>,
    context: Option<axum::Extension<RequestContext>>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let context = context.map(|c| c.0).unwrap_or_default();
    let address = context.source_address.clone().unwrap_or_default();
    state.sign_in_attempts.retain_recent();
    if state.sign_in_attempts.check_key(&address).is_err() {
        tracing::warn!("console sign-in attempts from one address over the limit");
        return layout::refused(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many sign-in attempts from this address; wait a minute.",
        );
    }
    if !cookie(&headers, SIGN_IN_COOKIE).is_some_and(|token| same(token, &form.csrf)) {
        return layout::refused(
            StatusCode::FORBIDDEN,
            "The sign-in form is missing its security token or has expired. Reload the page and try again.",
        );
    }
    let operator = match state.store.operator(form.name.trim()).await {
        Ok(found) => found.filter(|o| o.enabled),
        Err(error) => return layout::store_failed(&error),
    };
    let stored = operator
        .as_ref()
        .map(|o| o.password_hash.clone())
        .unwrap_or_else(|| super::password::decoy().to_owned());
    let password = form.password;
    let matches = tokio::task::spawn_blocking(move || super::password::verify(&password, &stored))
        .await
        .unwrap_or(false);
    let Some(operator) = operator.filter(|_| matches) else {
        // The name typed is not recorded: it could be anything (even a password).
        let record = sign_in_record(
            &context,
            None,
            AuditOutcome::Refused,
            Some("wrong name or password".into()),
        );
        if let Err(error) = state.store.append_audit(&record).await {
            return layout::store_failed(&error);
        }
        tracing::info!("console sign-in refused");
        return sign_in_form(
            &state,
            StatusCode::UNAUTHORIZED,
            Some("Wrong name or password."),
        );
    };
    let session = random_token();
    let csrf = random_token();
    let expires =
        Timestamp::from(Timestamp::now().as_datetime() + chrono::Duration::hours(SESSION_HOURS));
    let record = sign_in_record(&context, Some(&operator), AuditOutcome::Success, None);
    if let Err(error) = state.store.append_audit(&record).await {
        return layout::store_failed(&error);
    }
    if let Err(error) = state
        .store
        .add_console_session(&digest(&session), &operator.name, &csrf, expires)
        .await
    {
        return layout::store_failed(&error);
    }
    tracing::info!(operator = %operator.name, "console sign-in");
    let mut response = Redirect::to("/").into_response();
    let headers = response.headers_mut();
    for cookie in [
        set_cookie(&state, SESSION_COOKIE, &session, SESSION_HOURS * 3600),
        set_cookie(&state, SIGN_IN_COOKIE, "", 0),
    ] {
        if let Ok(value) = cookie.parse() {
            headers.append(header::SET_COOKIE, value);
        }
    }
    response
}

pub async fn sign_out(State(state): State<ConsoleState>, signed: SignedIn) -> Response {
    if let Err(error) = state.store.end_console_session(&signed.id_hash).await {
        return layout::store_failed(&error);
    }
    (
        [(
            header::SET_COOKIE,
            set_cookie(&state, SESSION_COOKIE, "", 0),
        )],
        Redirect::to("/sign-in"),
    )
        .into_response()
}

fn sign_in_record(
    context: &RequestContext,
    operator: Option<&Operator>,
    outcome: AuditOutcome,
    outcome_desc: Option<String>,
) -> AuditRecord {
    crate::audit::operator_record(
        context,
        operator.map(|o| o.name.as_str()),
        AuditInteraction::SignIn,
        outcome,
        outcome_desc,
    )
}

/// The audit record of an operator's action: what (`action` and its non-PHI parameters), on
/// which records (`Type/id`), and how it ended.
pub fn action_record(
    signed: &SignedIn,
    context: &RequestContext,
    action: &str,
    params: &[(&str, &str)],
    entities: Vec<String>,
    outcome: Result<(), String>,
) -> AuditRecord {
    let mut query = vec![("action", action)];
    query.extend_from_slice(params);
    let (outcome, outcome_desc) = match outcome {
        Ok(()) => (AuditOutcome::Success, None),
        Err(why) => (AuditOutcome::Failed, Some(why)),
    };
    let mut record = crate::audit::operator_record(
        context,
        Some(signed.name()),
        AuditInteraction::Console,
        outcome,
        outcome_desc,
    );
    record.resource_type = entities
        .first()
        .and_then(|e| e.split_once('/'))
        .map(|(t, _)| t.to_owned());
    record.query = Some(serde_urlencoded::to_string(&query).unwrap_or_default());
    record.entities = entities;
    record
}
