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

/// `text` percent-encoded for a URL path segment or query value (all but RFC 3986's unreserved
/// characters), so that a target's name cannot break a link or a redirect.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_encoded_for_urls() {
        assert_eq!(super::encode("ehr-1.a_b~"), "ehr-1.a_b~");
        assert_eq!(super::encode("a/b?c#d&e f\n"), "a%2Fb%3Fc%23d%26e%20f%0A");
    }
}
