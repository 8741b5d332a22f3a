//! The HTML of the test processor's hosted pages: server-rendered, with no inline style or
//! script (their Content-Security-Policy forbids it): one stylesheet, and one small script
//! that keeps a form from being submitted twice.

use super::assets;
use crate::objects::CheckoutSession;
use kassa_domain::Currency;
use kassa_processors::PaymentIntent;
use kassa_processors::types::{CaptureMethod, CheckoutSessionStatus};
use maud::{DOCTYPE, Markup, html};

pub fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                link rel="stylesheet" href=(assets::stylesheet_href());
                script src=(assets::script_href()) defer {}
            }
            body { main { p.test { "Test mode: no real money moves" } (body) } }
        }
    }
}

/// An amount as the buyer reads it: `$73.49`, `¥500`, `1.000 KWD`.
pub fn money(amount: i64, currency: &str) -> String {
    match Currency::parse(currency) {
        Ok(c) => c.display_amount(amount),
        Err(_) => format!("{amount} {}", currency.to_uppercase()),
    }
}

/// The element that says what went wrong. The page opens with focus on it (the `autofocus`,
/// and the script for browsers that ignore it on a non-control), so that a screen reader
/// reads it and the buyer sees it first.
pub fn error_box(error: Option<&str>) -> Markup {
    html! { @if let Some(e) = error { div #payment-error .error role="alert" tabindex="-1" autofocus { (e) } } }
}

/// What the buyer typed and gets back after a decline or a mistake: the card number and the
/// expiry (never the CVC), as Stripe Checkout keeps them. The page is `no-store`.
#[derive(Debug, Default, Clone)]
pub struct Typed {
    pub number: Option<String>,
    pub exp: Option<String>,
}

/// The card number, expiry and security code inputs of every page that takes a card (this
/// checkout, Kassa's hosted invoice page and billing portal): one markup, so that their
/// labels, autocomplete hints and error wiring stay alike. With an `error` the number is
/// marked invalid and described by the error box.
pub fn card_fields(typed: &Typed, error: Option<&str>) -> Markup {
    let invalid = error.is_some().then_some("true");
    let described = error.map(|_| "payment-error");
    html! {
        label for="number" { "Card number" }
        input #number name="number" inputmode="numeric" autocomplete="cc-number"
            placeholder="1234 1234 1234 1234" required value=[typed.number.as_deref()]
            aria-invalid=[invalid] aria-describedby=[described];
        div.row {
            div {
                label for="exp" { "Expiration date" }
                input #exp name="exp" autocomplete="cc-exp" placeholder="MM / YY" required
                    value=[typed.exp.as_deref()];
            }
            div {
                label for="cvc" { "Security code" }
                input #cvc name="cvc" inputmode="numeric" autocomplete="cc-csc" placeholder="CVC" required;
            }
        }
    }
}

/// The names of the lines Kassa adds after a cart's items (see `services::checkout_sessions`).
const AFTER_SUBTOTAL: &[&str] = &["Shipping", "Tax"];

/// What the merchant's side puts beside the processor's session on the page (as Stripe
/// Checkout shows the account's name and the customer's details). Kassa fills it from its own
/// checkout session; a session made through the sandbox's API directly has none of it.
#[derive(Debug, Clone, Default)]
pub struct PageSummary {
    pub merchant_name: Option<String>,
    /// For a credits top-up: how many credits it buys.
    pub credits: Option<i64>,
    pub email: Option<String>,
    pub shipping_address: Option<ShipTo>,
}

/// The shipping address as the page prints it.
#[derive(Debug, Clone, Default)]
pub struct ShipTo {
    pub name: Option<String>,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: Option<String>,
    pub state: Option<String>,
    pub country: String,
}

/// The hosted checkout page of a session: the merchant, the buyer, the summary with its
/// subtotal, the card form, bank debit, the way back.
pub fn checkout(session: &CheckoutSession, summary: &PageSummary, typed: &Typed, error: Option<&str>) -> Markup {
    let total = money(session.amount_total, &session.currency);
    let action = format!("/test-processor/checkout/{}", session.id);
    let merchant = summary.merchant_name.as_deref();
    let top_up = summary.credits.is_some();
    // A session that saves the card for future payments (a subscription): the page says so,
    // with the merchant's words, and asks for consent before anything is charged.
    let saves_card = session.payment_intent_data.setup_future_usage.is_some();
    let consent_text = session.custom_text.as_ref().and_then(|t| t.submit.as_ref()).map(|m| m.message.as_str());
    let heading = if saves_card {
        "Subscribe"
    } else if top_up {
        "Top up credits"
    } else {
        "Checkout"
    };
    let title = match merchant {
        Some(m) => format!("{heading} · {m}"),
        None => heading.to_string(),
    };
    let shop = merchant.unwrap_or("the shop");
    // A cart's items, then the subtotal, then shipping and tax as Kassa added them.
    let lines = &session.line_items.data;
    let items =
        lines.len() - lines.iter().rev().take_while(|l| AFTER_SUBTOTAL.contains(&l.description.as_str())).count();
    let (item_lines, extra_lines) = lines.split_at(items);
    let subtotal: i64 = item_lines.iter().map(|l| l.amount_total).sum();
    layout(
        &title,
        html! {
            header.merchant {
                @if let Some(url) = &session.cancel_url {
                    a.back href=(url) { "← " (merchant.unwrap_or("Back to the shop")) }
                } @else if let Some(m) = merchant {
                    span.name { (m) }
                }
            }
            h1 { (heading) }
            p.due { span { @if top_up || saves_card { "Amount due" } @else { "Total due" } } " " strong { (total) } }
            table {
                caption.visually-hidden { "Summary" }
                @for line in item_lines {
                    tr {
                        th scope="row" { (line.description) @if line.quantity != 1 { " × " (line.quantity) } }
                        td.amount { (money(line.amount_total, &line.currency)) }
                    }
                }
                @if !top_up && !extra_lines.is_empty() {
                    tr.subtotal { th scope="row" { "Subtotal" } td.amount { (money(subtotal, &session.currency)) } }
                }
                @for line in extra_lines {
                    tr {
                        th scope="row" { (line.description) }
                        td.amount { (money(line.amount_total, &line.currency)) }
                    }
                }
                tr.total { th scope="row" { "Total" } td.amount { (total) } }
            }
            @if summary.email.is_some() || summary.shipping_address.is_some() {
                dl.buyer {
                    @if let Some(email) = &summary.email { dt { "Email" } dd.email { (email) } }
                    @if let Some(a) = &summary.shipping_address {
                        dt { "Ship to" }
                        dd.address {
                            @if let Some(name) = &a.name { (name) br; }
                            (a.line1) br;
                            @if let Some(line2) = &a.line2 { (line2) br; }
                            (a.city)
                            @if let Some(state) = &a.state { ", " (state) }
                            @if let Some(postal) = &a.postal_code { " " (postal) }
                            br;
                            (a.country)
                        }
                    }
                }
            }
            @match session.status {
                CheckoutSessionStatus::Complete => {
                    p { "This checkout session is complete: the payment has been submitted." }
                    p { a href=(session.success_redirect()) { "Return to " (shop) } }
                }
                CheckoutSessionStatus::Expired => {
                    p { "This checkout session has expired. Return to " (shop) " to start again." }
                    @if let Some(url) = &session.cancel_url { p { a href=(url) { "Return to " (shop) } } }
                }
                CheckoutSessionStatus::Open => {
                    h2 { "Pay with card" }
                    (error_box(error))
                    form method="post" action=(action) {
                        input type="hidden" name="method" value="card";
                        (card_fields(typed, error))
                        @if saves_card {
                            div.consent {
                                p #consent-text {
                                    @if let Some(text) = consent_text { (text) } @else {
                                        "Your card will be saved and charged for the future payments of this \
                                         subscription until you cancel."
                                    }
                                }
                                label.checkbox for="consent" {
                                    input #consent type="checkbox" name="consent" value="yes" required
                                        aria-describedby="consent-text";
                                    " I agree that " (shop) " saves my card and charges it for the future payments of \
                                     this subscription."
                                }
                            }
                            button type="submit" { "Subscribe and pay " (total) }
                        } @else {
                            button type="submit" { "Pay " (total) }
                        }
                    }
                    @if session.payment_intent_data.capture_method == CaptureMethod::Automatic && !saves_card {
                        form method="post" action=(action) {
                            input type="hidden" name="method" value="bank_debit";
                            button.secondary type="submit" { "Pay by bank debit (settles later)" }
                        }
                    }
                    @if let Some(url) = &session.cancel_url { p { a href=(url) { "Cancel and return to " (shop) } } }
                    p.hint {
                        "Test cards: 4242 4242 4242 4242 succeeds, 4000 0000 0000 0002 is declined, "
                        "4000 0000 0000 9995 has insufficient funds, 4000 0027 6000 3184 asks for 3-D Secure. "
                        "Any future expiry date and any CVC."
                    }
                }
            }
        },
    )
}

/// The 3-D Secure challenge of a PaymentIntent.
pub fn authenticate(pi: &PaymentIntent, error: Option<&str>) -> Markup {
    let action = format!("/test-processor/authenticate/{}", pi.id);
    layout(
        "3-D Secure authentication",
        html! {
            h1 { "3-D Secure authentication" }
            p { "Your bank asks you to confirm a payment of " strong { (money(pi.amount, &pi.currency)) } "." }
            (error_box(error))
            form method="post" action=(action) {
                input type="hidden" name="outcome" value="complete";
                button type="submit" { "Complete authentication" }
            }
            form method="post" action=(action) {
                input type="hidden" name="outcome" value="fail";
                button.danger type="submit" { "Fail authentication" }
            }
        },
    )
}

/// A page that only says something.
pub fn message(title: &str, text: &str) -> Markup {
    layout(title, html! { h1 { (title) } p { (text) } })
}

/// Where the browser goes next, as a link.
pub fn continue_to(url: &str) -> Markup {
    layout("Continue", html! { h1 { "Done" } p { a href=(url) { "Continue" } } })
}
