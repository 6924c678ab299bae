//! The frame of every console page (navigation by role, the signed-in operator, sign-out) and
//! the small pieces pages share: the CSRF field, refusals, times.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::session::SignedIn;
use crate::domain::Role;

fn head(title: &str) -> Markup {
    html! {
        (DOCTYPE)
        meta charset="utf-8";
        meta name="viewport" content="width=device-width, initial-scale=1";
        title { (title) " · iop-gateway console" }
        link rel="stylesheet" href="/static/console.css";
        script src="/static/live.js" defer {}
    }
}

/// A page for a signed-in operator.
pub fn page(signed: &SignedIn, title: &str, body: Markup) -> Markup {
    html! {
        (head(title))
        header.bar {
            nav {
                a href="/" { "Overview" }
                a href="/dead-letters" { "Dead letters" }
                a href="/referrals" { "Referrals" }
                a href="/clients" { "Clients and targets" }
                @if signed.may(Role::PrivacyOfficer) { a href="/audit" { "Audit" } }
            }
            form.who method="post" action="/sign-out" {
                (csrf(signed))
                span { (signed.name()) " (" (signed.operator.roles.codes()) ")" }
                button type="submit" { "Sign out" }
            }
        }
        main {
            h1 { (title) }
            (body)
        }
    }
}

/// A page without the frame (sign-in, refusals).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (head(title))
        main.bare { (body) }
    }
}

/// The hidden field every form of a signed-in page carries.
pub fn csrf(signed: &SignedIn) -> Markup {
    html! { input type="hidden" name="csrf" value=(signed.csrf); }
}

/// A refusal people can read, with the status machines need.
pub fn refused(status: StatusCode, why: &str) -> Response {
    (
        status,
        bare(
            "Refused",
            html! {
                h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or_default()) }
                p.problem role="alert" { (why) }
                p { a href="/" { "Back to the overview" } }
            },
        ),
    )
        .into_response()
}

pub fn store_failed(error: &crate::store::StoreError) -> Response {
    tracing::error!(%error, "console: the clinic database failed");
    refused(
        StatusCode::SERVICE_UNAVAILABLE,
        "The clinic database did not answer; try again in a moment.",
    )
}

/// A stored timestamp as people read it: `2026-12-03 16:05:12 UTC`.
pub fn when(text: &str) -> String {
    match text.get(..19) {
        Some(head) => format!("{} UTC", head.replace('T', " ")),
        None => text.to_owned(),
    }
}

/// A notice after an action (`?done=...` on the page it redirects to).
pub fn notice(text: Option<&str>) -> Markup {
    html! {
        @if let Some(text) = text { p.notice role="status" { (text) } }
    }
}
