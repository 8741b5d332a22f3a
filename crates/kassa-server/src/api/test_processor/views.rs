//! The HTML of the test processor's hosted pages: server-rendered, no JavaScript.

use kassa_domain::Currency;
use kassa_processors::PaymentIntent;
use kassa_processors::test::objects::CheckoutSession;
use kassa_processors::types::{CaptureMethod, CheckoutSessionStatus};
use maud::{DOCTYPE, Markup, html};

const STYLE: &str = "
body{font-family:system-ui,sans-serif;background:#f6f7f9;color:#1a1f36;margin:0}
main{max-width:28rem;margin:2rem auto;background:#fff;border-radius:8px;padding:1.5rem 2rem;box-shadow:0 1px 3px #0002}
.test{background:#ffde92;color:#5c3b00;font-size:.8rem;padding:.3rem .6rem;border-radius:4px;display:inline-block}
table{width:100%;border-collapse:collapse;margin:1rem 0}td{padding:.35rem 0}td.amount{text-align:right}
tr.total td{border-top:1px solid #ddd;font-weight:600}
label{display:block;margin:.6rem 0 .2rem;font-size:.9rem}
input{width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem;border:1px solid #ccc;border-radius:4px}
.row{display:flex;gap:1rem}.row>div{flex:1}
button{width:100%;margin-top:1rem;padding:.7rem;font-size:1rem;border:0;border-radius:4px;background:#635bff;color:#fff;cursor:pointer}
button.secondary{background:#fff;color:#635bff;border:1px solid #635bff}
button.danger{background:#fff;color:#c0123c;border:1px solid #c0123c}
.error{background:#fde8ec;color:#a0102f;padding:.6rem;border-radius:4px;margin:1rem 0}
.hint{color:#697386;font-size:.8rem}a{color:#635bff}
";

fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (STYLE) }
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
