//! The overview: revenue, orders, failed payments and credits sold today and over 7 and 30
//! days, and revenue per day as an SVG bar chart drawn here (no script, no image service).

use crate::dashboard::error_page;
use crate::dashboard::layout::{self, Area, date, money};
use crate::dashboard::session::Signed;
use crate::services::dashboard::pages;
use crate::state::AppState;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

pub async fn page(State(app): State<AppState>, Signed(user): Signed) -> Response {
    let o = match pages::overview(&app).await {
        Ok(o) => o,
        Err(e) => return error_page(e, Some(&user)),
    };
    let body = html! {
        h1 { "Overview" }
        div.grid {
            @for p in &o.periods {
                section.card aria-labelledby=(format!("period-{}", p.days)) {
                    h2 id=(format!("period-{}", p.days)) { (p.label) }
                    dl.stats {
                        @if p.orders.is_empty() {
                            div { dt { "Revenue" } dd { (money(0, "usd")) } }
                            div { dt { "Orders" } dd { "0" } }
                        }
                        @for (currency, orders, revenue) in &p.orders {
                            div { dt { "Revenue (" (currency.to_uppercase()) ")" } dd { (money(*revenue, currency)) } }
                            div { dt { "Orders (" (currency.to_uppercase()) ")" } dd { (orders) } }
                        }
                        div { dt { "Failed payments" } dd { (p.failed_payments) } }
                        div { dt { "Credits sold" } dd { (money(p.credits_sold, &o.credits_currency)) } }
                    }
                }
            }
        }
        section.card aria-labelledby="chart-h" {
            h2 #chart-h { "Revenue per day, last 30 days" }
            @match &o.chart {
                Some((currency, days)) => (chart(currency, days)),
                None => p { "No orders in the last 30 days." },
            }
        }
    };
    layout::page("Overview", Some(&user), Area::Overview, body).into_response()
}

/// Bars of revenue per day, with a text alternative (the table a screen reader reads).
fn chart(currency: &str, days: &[(i64, i64)]) -> Markup {
    const W: i64 = 600;
    const H: i64 = 200;
    const PAD: i64 = 24;
    let max = days.iter().map(|d| d.1).max().unwrap_or(0).max(1);
    let n = days.len().max(1) as i64;
    let slot = (W - PAD) / n;
    let total: i64 = days.iter().map(|d| d.1).sum();
    let summary = format!(
        "Revenue per day in {}: {} in total over {} days.",
        currency.to_uppercase(),
        money(total, currency),
        days.len()
    );
    html! {
        svg.chart viewBox=(format!("0 0 {W} {}", H + PAD)) role="img" aria-labelledby="chart-title" {
            title #chart-title { (summary) }
            line x1=(PAD) y1=(H) x2=(W) y2=(H) {}
            text x="0" y="10" { (money(max, currency)) }
            @for (i, (day, revenue)) in days.iter().enumerate() {
                @let h = (revenue.max(&0) * (H - 16) / max).max(if *revenue > 0 { 1 } else { 0 });
                rect.bar x=(PAD + i as i64 * slot + 1) y=(H - h) width=((slot - 2).max(1)) height=(h) {
                    title { (date(*day)) ": " (money(*revenue, currency)) }
                }
                @if i % 7 == 0 { text x=(PAD + i as i64 * slot) y=(H + 16) { (date(*day)[5..].to_string()) } }
            }
        }
        details {
            summary { "Revenue per day as a table" }
            div.table-wrap {
                table {
                    thead { tr { th scope="col" { "Day" } th.num scope="col" { "Revenue" } } }
                    tbody { @for (day, revenue) in days { tr { td { (date(*day)) } td.num { (money(*revenue, currency)) } } } }
                }
            }
        }
    }
}
