//! The idempotency keys Kassa sends with its processor calls, built in one place.
//!
//! Each key is derived from the Kassa row the call is about, so a call repeated after a crash
//! or a timeout carries the same key and the processor answers it once. The spellings are
//! stored nowhere but at the processor: they must stay byte-identical across versions, or a
//! call retried after an upgrade would no longer dedupe (the test below pins them).

use kassa_processors::IdempotencyKey;

/// Creating and confirming the PaymentIntent of a payment attempt.
pub fn pay(payment_id: &str) -> IdempotencyKey {
    IdempotencyKey::new(format!("kassa_pay_{payment_id}"))
}

/// Capturing a payment's authorization: one capture per PaymentIntent, as at the processor.
pub fn capture(payment_id: &str) -> IdempotencyKey {
    IdempotencyKey::new(format!("kassa_capture_{payment_id}"))
}

/// Canceling a payment's PaymentIntent (an abandoned challenge, a released authorization).
pub fn cancel(payment_id: &str) -> IdempotencyKey {
    IdempotencyKey::new(format!("kassa_cancel_{payment_id}"))
}

/// A refund Kassa made (the refund row's id).
pub fn refund(refund_id: &str) -> IdempotencyKey {
    IdempotencyKey::new(format!("kassa_refund_{refund_id}"))
}

/// Giving back money Kassa does not keep: keyed by the PaymentIntent, so that however many
/// rows notice the same charge, it is given back once.
pub fn give_back(payment_intent: &str) -> IdempotencyKey {
    IdempotencyKey::new(format!("kassa_void_{payment_intent}"))
}

/// Creating the processor's checkout session for Kassa's session.
pub fn open_session(session_id: &str) -> IdempotencyKey {
    IdempotencyKey::new(format!("kassa_{session_id}"))
}

/// Expiring a checkout session at the processor.
pub fn expire_session(session_id: &str) -> IdempotencyKey {
    IdempotencyKey::new(format!("kassa_expire_{session_id}"))
}

/// Paying an invoice: one key per attempt (the attempt's number is the invoice's count of
/// attempts made before it), so a retry after a crash repeats the attempt, and the next
/// scheduled attempt is a new charge attempt.
pub fn pay_invoice(invoice_id: &str, attempt: i64) -> IdempotencyKey {
    IdempotencyKey::new(format!("kassa_invoice_{invoice_id}_{attempt}"))
}

/// Saving a payment method with a customer (one per admin request).
pub fn attach_payment_method(customer_id: &str, request: &str) -> IdempotencyKey {
    IdempotencyKey::new(format!("kassa_attach_{customer_id}_{request}"))
}

/// Detaching a saved payment method.
pub fn detach_payment_method(payment_method: &str) -> IdempotencyKey {
    IdempotencyKey::new(format!("kassa_detach_{payment_method}"))
}

/// Creating the processor customer of a Kassa customer.
pub fn customer(customer_id: &str) -> IdempotencyKey {
    IdempotencyKey::new(format!("kassa_customer_{customer_id}"))
}

/// The PaymentIntent the customer's card of one form (`confirmation_token`) pays on an
/// invoice's hosted page, made unconfirmed: a key of its own (its request differs from the
/// off-session one).
pub fn pay_invoice_on_page(invoice_id: &str, confirmation_token: &str) -> IdempotencyKey {
    IdempotencyKey::new(format!("kassa_invoice_{invoice_id}_page_{confirmation_token}"))
}

/// Confirming the page's PaymentIntent (made unconfirmed under [`pay_invoice_on_page`] and
/// written to the invoice first) with the card of that form.
pub fn confirm_invoice_on_page(invoice_id: &str, confirmation_token: &str) -> IdempotencyKey {
    IdempotencyKey::new(format!("kassa_invoice_{invoice_id}_page_{confirmation_token}_confirm"))
}

/// Canceling an invoice's earlier PaymentIntent before it is charged again.
pub fn cancel_invoice_intent(payment_intent: &str) -> IdempotencyKey {
    IdempotencyKey::new(format!("kassa_invoice_cancel_{payment_intent}"))
}

/// The authorization that verifies a card typed in the billing portal: one per form (the
/// portal session and the form's nonce), so a form posted twice verifies once.
pub fn verify_card_in_portal(session_id: &str, nonce: &str) -> IdempotencyKey {
    IdempotencyKey::new(format!("kassa_portal_{session_id}_card_{nonce}"))
}

/// Voiding that authorization once the card is saved.
pub fn void_card_verification(payment_intent: &str) -> IdempotencyKey {
    IdempotencyKey::new(format!("kassa_portal_void_{payment_intent}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys of calls made by an older version must equal the ones this version makes.
    #[test]
    fn keys_keep_their_spelling() {
        let keys = [
            (pay("pay_1"), "kassa_pay_pay_1"),
            (capture("pay_1"), "kassa_capture_pay_1"),
            (cancel("pay_1"), "kassa_cancel_pay_1"),
            (refund("re_1"), "kassa_refund_re_1"),
            (give_back("pi_1"), "kassa_void_pi_1"),
            (open_session("cs_1"), "kassa_cs_1"),
            (expire_session("cs_1"), "kassa_expire_cs_1"),
            (customer("cus_1"), "kassa_customer_cus_1"),
            (verify_card_in_portal("bps_1", "n1"), "kassa_portal_bps_1_card_n1"),
            (void_card_verification("pi_1"), "kassa_portal_void_pi_1"),
            (pay_invoice("in_1", 2), "kassa_invoice_in_1_2"),
            (pay_invoice_on_page("in_1", "ctoken_1"), "kassa_invoice_in_1_page_ctoken_1"),
            (confirm_invoice_on_page("in_1", "ctoken_1"), "kassa_invoice_in_1_page_ctoken_1_confirm"),
            (cancel_invoice_intent("pi_1"), "kassa_invoice_cancel_pi_1"),
        ];
        for (key, spelled) in keys {
            assert_eq!(key.as_str(), spelled);
        }
    }
}
