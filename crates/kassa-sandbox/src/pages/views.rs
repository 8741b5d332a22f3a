//! The HTML of the test processor's hosted pages: server-rendered, with no inline style or
//! script (their Content-Security-Policy forbids it): one stylesheet, and one small script
//! that keeps a form from being submitted twice.

use super::assets;
use crate::objects::CheckoutSession;
use kassa_domain::Currency;
use kassa_processors::PaymentIntent;
use kassa_processors::types::{CaptureMethod, CheckoutSessionStatus};
use maud::{DOCTYPE, Markup, html};

fn layout(title: &str, body: Markup) -> Markup {
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
            body { main { span.test { "Test mode: no real money moves" } (body) } }
        }
    }
}

/// `12.50 USD`, in the currency's own minor units.
pub fn money(amount: i64, currency: &str) -> String {
    match Currency::parse(currency) {
        Ok(c) => format!("{} {}", c.format_amount(amount), c.code().to_uppercase()),
        Err(_) => format!("{amount} {}", currency.to_uppercase()),
    }
}

fn error_box(error: Option<&str>) -> Markup {
    html! { @if let Some(e) = error { div.error role="alert" { (e) } } }
}

/// The hosted checkout page of a session: summary, card form, bank debit, cancel link.
pub fn checkout(session: &CheckoutSession, error: Option<&str>) -> Markup {
    let total = money(session.amount_total, &session.currency);
    let action = format!("/test-processor/checkout/{}", session.id);
    layout(
        "Checkout",
        html! {
            h1 { "Checkout" }
            table {
                @for line in &session.line_items.data {
                    tr {
                        td { (line.description) @if line.quantity != 1 { " × " (line.quantity) } }
                        td.amount { (money(line.amount_total, &line.currency)) }
                    }
                }
                tr.total { td { "Total" } td.amount { (total) } }
            }
            @match session.status {
                CheckoutSessionStatus::Complete => {
                    p { "This checkout session is complete: the payment has been submitted." }
                    p { a href=(session.success_redirect()) { "Return to the shop" } }
                }
                CheckoutSessionStatus::Expired => {
                    p { "This checkout session has expired. Return to the shop to start again." }
                    @if let Some(url) = &session.cancel_url { p { a href=(url) { "Return to the shop" } } }
                }
                CheckoutSessionStatus::Open => {
                    (error_box(error))
                    form method="post" action=(action) {
                        input type="hidden" name="method" value="card";
                        label for="number" { "Card number" }
                        input #number name="number" inputmode="numeric" autocomplete="cc-number"
                            placeholder="4242 4242 4242 4242" required;
                        div.row {
                            div {
                                label for="exp" { "Expiry (MM/YY)" }
                                input #exp name="exp" autocomplete="cc-exp" placeholder="12/34" required;
                            }
                            div {
                                label for="cvc" { "CVC" }
                                input #cvc name="cvc" inputmode="numeric" autocomplete="cc-csc" placeholder="123" required;
                            }
                        }
                        button type="submit" { "Pay " (total) }
                    }
                    @if session.payment_intent_data.capture_method == CaptureMethod::Automatic {
                        form method="post" action=(action) {
                            input type="hidden" name="method" value="bank_debit";
                            button.secondary type="submit" { "Pay by bank debit (settles later)" }
                        }
                    }
                    @if let Some(url) = &session.cancel_url { p { a href=(url) { "Cancel and return to the shop" } } }
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
