//! API clients and sync targets: who may call the FHIR API (enable, disable) and where the
//! clinic syncs to. A disabled client's tokens stop working within seconds on every replica
//! (`auth::revocation`). Registering clients and keys stays on the command line
//! (`iop-gateway clients add`), where key files are at hand.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::html;
use serde::Deserialize;

use super::ConsoleState;
use super::layout::{self, csrf, encode};
use super::session::{SignedIn, action_record};
use crate::audit::RequestContext;
use crate::auth::keys;
use crate::domain::{KeySource, Role};

#[derive(Deserialize)]
pub struct Notice {
    done: Option<String>,
}

pub async fn page(
    State(state): State<ConsoleState>,
    signed: SignedIn,
    Query(notice): Query<Notice>,
) -> Response {
    let (clients, targets) = match (
        state.store.api_clients().await,
        state.store.sync_targets().await,
    ) {
        (Ok(clients), Ok(targets)) => (clients, targets),
        (Err(error), _) | (_, Err(error)) => return layout::store_failed(&error),
    };
    let acts = signed.may(Role::Operator);
    layout::page(
        &signed,
        "Clients and targets",
        html! {
            (layout::notice(notice.done.as_deref()))
            h2 { "API clients (SMART Backend Services)" }
            table.clients {
                thead { tr { th { "Client id" } th { "Organization" } th { "Purpose" } th { "Scopes" } th { "Keys" } th { "Clinic app" } th { "Enabled" } @if acts { th { "Act" } } } }
                tbody {
                    @for c in &clients {
                        tr data-client=(c.client_id) {
                            td { (c.client_id) }
                            td { (c.organization_id.as_deref().unwrap_or("—")) }
                            td { (c.purpose_of_use) }
                            td { code { (c.scopes) } }
                            td { (match &c.keys { KeySource::Inline(_) => "JWKS registered".to_owned(), KeySource::Url(url) => format!("JWKS at {url}") }) }
                            td { (if c.clinic_app { "yes" } else { "no" }) }
                            td { (if c.enabled { "yes" } else { "no" }) }
                            @if acts {
                                td.act {
                                    form method="post" action="/clients/enable" {
                                        (csrf(&signed))
                                        input type="hidden" name="client" value=(c.client_id);
                                        input type="hidden" name="enabled" value=(if c.enabled { "false" } else { "true" });
                                        button { (if c.enabled { "Disable" } else { "Enable" }) }
                                    }
                                    form method="post" action="/clients/keys" {
                                        (csrf(&signed))
                                        input type="hidden" name="client" value=(c.client_id);
                                        input name="jwks_url" placeholder="new JWKS URL";
                                        textarea name="jwks" rows="1" placeholder="or the new public JWKS" {}
                                        button { "Rotate keys" }
                                    }
                                }
                            }
                        }
                    }
                    @if clients.is_empty() { tr { td colspan="8" { "No API clients (iop-gateway clients add)." } } }
                }
            }
            p.hint { "Register a client with " code { "iop-gateway clients add" } ". Rotating keys replaces the registered ones at once: tokens already issued run out within minutes; a JWKS URL lets a client rotate keys by itself." }
            h2 { "Sync targets" }
            table.targets {
                thead { tr { th { "Target" } th { "FHIR base" } th { "Authentication" } th { "Pushes" } th { "Recipient" } th { "Schedule" } } }
                tbody {
                    @for t in &targets {
                        tr {
                            td { a href={ "/targets/" (encode(&t.name)) } { (t.name) } }
                            td { code { (t.base_url) } }
                            td { (t.auth_kind) }
                            td { (t.resources.join(", ")) }
                            td { (t.organization_id.as_deref().unwrap_or("the clinic")) }
                            td { (t.interval_seconds.map(|s| format!("every {s} s")).unwrap_or_else(|| "on demand".into())) }
                        }
                    }
                    @if targets.is_empty() { tr { td colspan="6" { "No targets (iop-gateway targets add)." } } }
                }
            }
        },
    )
    .into_response()
}

#[derive(Deserialize)]
pub struct EnableForm {
    client: String,
    enabled: bool,
}

pub async fn set_enabled(
    State(state): State<ConsoleState>,
    signed: SignedIn,
    Extension(context): Extension<RequestContext>,
    Form(form): Form<EnableForm>,
) -> Response {
    if let Some(refused) = signed.refusal_without(Role::Operator) {
        return refused;
    }
    match state.store.api_client(&form.client).await {
        Ok(Some(_)) => {}
        Ok(None) => return layout::refused(StatusCode::NOT_FOUND, "There is no such client."),
        Err(error) => return layout::store_failed(&error),
    }
    let action = if form.enabled {
        "enable-client"
    } else {
        "disable-client"
    };
    let record = action_record(
        &signed,
        &context,
        action,
        &[("client", &form.client)],
        Vec::new(),
        Ok(()),
    );
    if let Err(error) = state.store.append_audit(&record).await {
        return layout::store_failed(&error);
    }
    if let Err(error) = state
        .store
        .set_api_client_enabled(&form.client, form.enabled)
        .await
    {
        return layout::store_failed(&error);
    }
    let done = if form.enabled { "enabled" } else { "disabled" };
    Redirect::to(&format!("/clients?done=client%20{done}")).into_response()
}

#[derive(Deserialize)]
pub struct KeysForm {
    client: String,
    #[serde(default)]
    jwks_url: String,
    #[serde(default)]
    jwks: String,
}

/// Replaces a client's registered keys by a JWKS URL or a JWKS (public keys only, checked as
/// `clients rotate` checks them).
pub async fn rotate_keys(
    State(state): State<ConsoleState>,
    signed: SignedIn,
    Extension(context): Extension<RequestContext>,
    Form(form): Form<KeysForm>,
) -> Response {
    if let Some(refused) = signed.refusal_without(Role::Operator) {
        return refused;
    }
    let keys = match (form.jwks_url.trim(), form.jwks.trim()) {
        (url, "") if url.starts_with("https://") || url.starts_with("http://") => {
            KeySource::Url(url.to_owned())
        }
        ("", jwks) if !jwks.is_empty() => match keys::check_registration(jwks) {
            Ok(usable) if usable > 0 => KeySource::Inline(jwks.to_owned()),
            Ok(_) => {
                return layout::refused(
                    StatusCode::BAD_REQUEST,
                    "That JWKS holds no usable public key (RSA or P-384 EC, with a kid).",
                );
            }
            Err(why) => return layout::refused(StatusCode::BAD_REQUEST, &why.to_string()),
        },
        _ => {
            return layout::refused(
                StatusCode::BAD_REQUEST,
                "Give either an http(s) JWKS URL or a JWKS, not both.",
            );
        }
    };
    match state.store.api_client(&form.client).await {
        Ok(Some(_)) => {}
        Ok(None) => return layout::refused(StatusCode::NOT_FOUND, "There is no such client."),
        Err(error) => return layout::store_failed(&error),
    }
    let record = action_record(
        &signed,
        &context,
        "rotate-client-keys",
        &[("client", &form.client)],
        Vec::new(),
        Ok(()),
    );
    if let Err(error) = state.store.append_audit(&record).await {
        return layout::store_failed(&error);
    }
    if let Err(error) = state.store.set_api_client_keys(&form.client, &keys).await {
        return layout::store_failed(&error);
    }
    Redirect::to("/clients?done=keys%20rotated").into_response()
}
