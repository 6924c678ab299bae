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
use crate::auth::registration;
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
            p.hint { "Rotating keys replaces the registered ones at once: tokens already issued run out within minutes; a JWKS URL lets a client rotate keys by itself." }
            @if acts {
                h2 { "Register an API client" }
                form.search method="post" action="/clients/add" {
                    (csrf(&signed))
                    label { "Client id" input name="client" required; }
                    label { "Scopes" input name="scopes" placeholder="system/CarePlan.rs system/Patient.rs" required; }
                    label { "Organization (id it acts for)" input name="organization"; }
                    label { "Purpose of use" input name="purpose" value="TREAT" required; }
                    label { "JWKS URL" input name="jwks_url" placeholder="https://..."; }
                    label { "or its public JWKS" textarea name="jwks" rows="1" {} }
                    label { "Clinic application" input type="checkbox" name="clinic_app" value="true"; }
                    button type="submit" { "Register" }
                }
            }
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
    let keys = match registration::key_source(Some(&form.jwks), Some(&form.jwks_url)) {
        Ok(keys) => keys,
        Err(why) => return layout::refused(StatusCode::BAD_REQUEST, &why.to_string()),
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

#[derive(Deserialize)]
pub struct AddForm {
    client: String,
    scopes: String,
    #[serde(default)]
    organization: String,
    #[serde(default)]
    purpose: String,
    #[serde(default)]
    jwks_url: String,
    #[serde(default)]
    jwks: String,
    #[serde(default)]
    clinic_app: Option<String>,
}

/// Registers an API client, by the rules `clients add` follows.
pub async fn add(
    State(state): State<ConsoleState>,
    signed: SignedIn,
    Extension(context): Extension<RequestContext>,
    Form(form): Form<AddForm>,
) -> Response {
    if let Some(refused) = signed.refusal_without(Role::Operator) {
        return refused;
    }
    let client =
        registration::key_source(Some(&form.jwks), Some(&form.jwks_url)).and_then(|keys| {
            registration::new_client(
                &form.client,
                keys,
                &form.scopes,
                Some(form.organization.trim().to_owned()),
                form.purpose.trim(),
                form.clinic_app.is_some(),
            )
        });
    let client = match client {
        Ok(client) => client,
        Err(why) => return layout::refused(StatusCode::BAD_REQUEST, &why.to_string()),
    };
    let taken = |_| {
        layout::refused(
            StatusCode::CONFLICT,
            "A client with that id is registered already (rotate its keys instead).",
        )
    };
    match state.store.api_client(client.client_id.as_str()).await {
        Ok(Some(existing)) => return taken(existing),
        Ok(None) => {}
        Err(error) => return layout::store_failed(&error),
    }
    let record = action_record(
        &signed,
        &context,
        "add-client",
        &[
            ("client", client.client_id.as_str()),
            ("scopes", &client.scopes),
        ],
        Vec::new(),
        Ok(()),
    );
    if let Err(error) = state.store.append_audit(&record).await {
        return layout::store_failed(&error);
    }
    match state.store.add_api_client(&client).await {
        Ok(()) => Redirect::to("/clients?done=client%20registered").into_response(),
        Err(crate::store::StoreError::Duplicate { .. }) => taken(client),
        Err(error) => layout::store_failed(&error),
    }
}
