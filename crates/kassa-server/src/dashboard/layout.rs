//! The page shell (skip link, header with the user and sign-out, the navigation), and the
//! small helpers every page formats with. maud escapes every value it writes, so text from
//! customers (names, emails, metadata) is always shown as text.

use crate::dashboard::assets;
use crate::services::dashboard::pages::civil_from_days;
use crate::services::dashboard::{Permission, SignedIn};
use axum::response::Html;
use kassa_domain::currency::Currency;
use maud::{DOCTYPE, Markup, html};

/// Where a page sits in the navigation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Area {
    None,
    Overview,
    Orders,
    Customers,
    Subscriptions,
    Invoices,
    Payments,
    Events,
    Catalog,
    Webhooks,
    ApiKeys,
    Users,
}

/// The navigation: one entry per area.
const NAV: [(Area, &str, &str); 11] = [
    (Area::Overview, "/dashboard", "Overview"),
    (Area::Orders, "/dashboard/orders", "Orders"),
    (Area::Customers, "/dashboard/customers", "Customers"),
    (Area::Subscriptions, "/dashboard/subscriptions", "Subscriptions"),
    (Area::Invoices, "/dashboard/invoices", "Invoices"),
    (Area::Payments, "/dashboard/payments", "Payments"),
    (Area::Events, "/dashboard/events", "Events"),
    (Area::Catalog, "/dashboard/catalog", "Catalog"),
    (Area::Webhooks, "/dashboard/webhook-endpoints", "Webhooks"),
    (Area::ApiKeys, "/dashboard/api-keys", "API keys"),
    (Area::Users, "/dashboard/users", "Users"),
];

/// A whole page, ready to answer with.
pub fn page(title: &str, user: Option<&SignedIn>, area: Area, body: Markup) -> Html<String> {
    Html(shell(title, user, area, body).into_string())
}

fn shell(title: &str, user: Option<&SignedIn>, area: Area, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Kassa dashboard" }
                link rel="stylesheet" href=(assets::stylesheet_href());
            }
            body {
                a.skip href="#content" { "Skip to content" }
                header.top {
                    a.brand href="/dashboard" { "Kassa" }
                    @if let Some(u) = user {
                        span.who { "Signed in as " (u.email) " (" (u.role.as_str()) ")" }
                        form method="post" action="/dashboard/logout" {
                            (csrf(u))
                            button type="submit" { "Sign out" }
                        }
                        form method="post" action="/dashboard/logout-everywhere" {
                            (csrf(u))
                            button type="submit" { "Sign out everywhere" }
                        }
                    }
                }
                @if let Some(u) = user {
                    nav.main aria-label="Dashboard" {
                        ul {
                            @for (a, href, label) in NAV {
                                @if visible(a, u) {
                                    li { a href=(href) aria-current=[(a == area).then_some("page")] { (label) } }
                                }
                            }
                        }
                    }
                }
                main #content tabindex="-1" { (body) }
            }
        }
    }
}

/// Whether the navigation shows `area` to `u` (the owner's areas to the owner only).
fn visible(area: Area, u: &SignedIn) -> bool {
    match area {
        Area::ApiKeys => u.role.allows(Permission::ManageApiKeys),
        Area::Users => u.role.allows(Permission::ManageUsers),
        _ => true,
    }
}

/// The hidden CSRF field every form carries.
pub fn csrf(u: &SignedIn) -> Markup {
    html! { input type="hidden" name="csrf_token" value=(u.csrf_token); }
}

/// A fresh idempotency key for one action form: submitting the same form twice (a double
/// click, a reload) does the action once.
pub fn form_key() -> Markup {
    html! { input type="hidden" name="idempotency_key" value=(crate::services::dashboard::users::random_token()); }
}

/// An amount for people: `$73.49`.
pub fn money(amount: i64, currency: &str) -> String {
    match Currency::parse(currency) {
        Ok(c) => {
            let shown = c.display_amount(amount);
            if amount < 0 { format!("-{shown}") } else { shown }
        }
        Err(_) => format!("{amount} {}", currency.to_uppercase()),
    }
}

/// `2026-12-02 06:30 UTC`.
pub fn time(unix: i64) -> String {
    let (y, m, d) = civil_from_days(unix.div_euclid(86_400));
    let secs = unix.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", secs / 3600, secs % 3600 / 60)
}

/// `2026-12-02`.
pub fn date(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// A status as a badge, coloured by what it means.
pub fn badge(status: &str) -> Markup {
    let class = match status {
        "succeeded" | "captured" | "completed" | "fulfilled" | "enabled" | "active" | "paid" => "badge good",
        "failed" | "canceled" | "refunded" | "voided" | "revoked" | "disabled" | "void" | "unpaid"
        | "uncollectible" | "incomplete_expired" => "badge bad",
        "pending" | "authorized" | "partially_refunded" | "requires_action" | "processing" | "void_pending"
        | "past_due" | "incomplete" | "trialing" => "badge warn",
        _ => "badge",
    };
    html! { span class=(class) { (status.replace('_', " ")) } }
}

/// Previous/next links of a cursor-paginated list; `base` is the list's query without the
/// cursor (already URL-encoded pairs).
pub fn pager(
    path: &str,
    base: &str,
    first: Option<&str>,
    last: Option<&str>,
    has_prev: bool,
    has_next: bool,
) -> Markup {
    let sep = if base.is_empty() { "" } else { "&" };
    html! {
        nav.pager aria-label="Pages" {
            @if let (true, Some(id)) = (has_prev, first) {
                a rel="prev" href=(format!("{path}?{base}{sep}ending_before={id}")) { "← Newer" }
            }
            @if let (true, Some(id)) = (has_next, last) {
                a rel="next" href=(format!("{path}?{base}{sep}starting_after={id}")) { "Older →" }
            }
        }
    }
}

/// Whether a page reached by `starting_after`/`ending_before` has pages on either side:
/// (newer, older).
pub fn sides(starting_after: &Option<String>, ending_before: &Option<String>, has_more: bool) -> (bool, bool) {
    let filled = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
    if filled(starting_after) {
        (true, has_more)
    } else if filled(ending_before) {
        (has_more, true)
    } else {
        (false, has_more)
    }
}

/// URL-encodes query pairs (skipping empty values).
pub fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let filled: Vec<(&str, &str)> =
        pairs.iter().filter_map(|(k, v)| v.map(str::trim).filter(|v| !v.is_empty()).map(|v| (*k, v))).collect();
    serde_urlencoded::to_string(filled).unwrap_or_default()
}
