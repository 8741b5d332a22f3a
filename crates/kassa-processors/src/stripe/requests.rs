//! The parameters of each call. Only what a call needs is sent: Stripe treats an explicit
//! `false` or empty value differently from an absent one in places, and localstripe answers
//! 400 to any parameter it does not implement (`setup_future_usage`, `return_url`, …).

use super::form::{Form, key};
use crate::types::{
    CaptureMethod, ConfirmPaymentIntent, CreateCheckoutSession, CreateCustomer, CreatePaymentIntent, CreateRefund,
    PaymentSource,
};

/// Every PaymentIntent answer inlines its latest charge: the refunded and captured amounts live
/// there.
pub(crate) const PAYMENT_INTENT_EXPAND: &[&str] = &["latest_charge"];

pub(crate) fn create_customer(req: &CreateCustomer) -> Form {
    let mut form = Form::new();
    form.push_opt("email", req.email.as_deref())
        .push_opt("name", req.name.as_deref())
        .push_map("metadata", &req.metadata);
    form
}

fn push_source(form: &mut Form, source: &PaymentSource) {
    match source {
        PaymentSource::ConfirmationToken(token) => form.push("confirmation_token", token),
        PaymentSource::PaymentMethod(pm) => form.push("payment_method", pm),
    };
}

pub(crate) fn create_payment_intent(req: &CreatePaymentIntent) -> Form {
    let mut form = Form::new();
    form.push("amount", req.amount).push("currency", req.currency.to_lowercase()).push("customer", &req.customer);
    form.push_map("metadata", &req.metadata);
    if req.capture_method == CaptureMethod::Manual {
        form.push("capture_method", "manual");
    }
    if req.setup_future_usage {
        form.push("setup_future_usage", "off_session");
    }
    if let Some(source) = &req.confirm {
        form.push("confirm", "true");
        push_source(&mut form, source);
        // A PaymentIntent confirmed on the server with a saved card and no return URL would
        // otherwise get the Dashboard's automatic payment methods, and Stripe refuses to confirm
        // those without a `return_url` (some of them redirect). Saved methods are cards (see
        // `list_payment_methods`). A ConfirmationToken carries its own return URL.
        if matches!(source, PaymentSource::PaymentMethod(_)) && req.return_url.is_none() {
            form.push("payment_method_types[0]", "card");
        }
        if req.off_session {
            form.push("off_session", "true");
        }
    }
    form.push_opt("return_url", req.return_url.as_deref());
    form.expand(PAYMENT_INTENT_EXPAND);
    form
}

pub(crate) fn confirm_payment_intent(req: &ConfirmPaymentIntent) -> Form {
    let mut form = Form::new();
    push_source(&mut form, &req.source);
    form.push_opt("return_url", req.return_url.as_deref());
    form.expand(PAYMENT_INTENT_EXPAND);
    form
}

pub(crate) fn capture_payment_intent(amount: Option<i64>) -> Form {
    let mut form = Form::new();
    form.push_opt("amount_to_capture", amount);
    form.expand(PAYMENT_INTENT_EXPAND);
    form
}

pub(crate) fn expand_payment_intent() -> Form {
    let mut form = Form::new();
    form.expand(PAYMENT_INTENT_EXPAND);
    form
}

pub(crate) fn create_refund(req: &CreateRefund) -> Form {
    let mut form = Form::new();
    form.push("payment_intent", &req.payment_intent).push_opt("amount", req.amount).push_map("metadata", &req.metadata);
    form
}

/// The largest page Stripe serves.
pub(crate) const LIST_LIMIT: u32 = 100;

pub(crate) fn empty() -> Form {
    Form::new()
}

pub(crate) fn attach_payment_method(customer: &str) -> Form {
    let mut form = Form::new();
    form.push("customer", customer);
    form
}

pub(crate) fn list_payment_methods(customer: &str, starting_after: Option<&str>) -> Form {
    let mut form = Form::new();
    form.push("customer", customer)
        .push("type", "card")
        .push("limit", LIST_LIMIT)
        .push_opt("starting_after", starting_after);
    form
}

/// A page of PaymentIntents, newest first, each with its latest charge (for the refunded
/// amount). No `created` filter: localstripe refuses it, and Stripe's order lets the caller
/// stop paging once it is past the window it cares about.
pub(crate) fn list_payment_intents(starting_after: Option<&str>, limit: u32) -> Form {
    let mut form = Form::new();
    form.push("limit", limit.clamp(1, LIST_LIMIT)).push_opt("starting_after", starting_after);
    form.expand(&["data.latest_charge"]);
    form
}

pub(crate) fn create_checkout_session(req: &CreateCheckoutSession) -> Form {
    let currency = req.currency.to_lowercase();
    let mut form = Form::new();
    form.push("mode", "payment").push("customer", &req.customer);
    for (i, line) in req.lines.iter().enumerate() {
        let i = i.to_string();
        form.push(key("line_items", &[&i, "price_data", "currency"]), &currency)
            .push(key("line_items", &[&i, "price_data", "unit_amount"]), line.unit_amount)
            .push(key("line_items", &[&i, "price_data", "product_data", "name"]), &line.name)
            .push(key("line_items", &[&i, "quantity"]), line.quantity);
    }
    form.push("success_url", &req.success_url).push_opt("cancel_url", req.cancel_url.as_deref());
    form.push_map("metadata", &req.metadata);
    // The PaymentIntent the session creates carries the same metadata, so its webhooks find
    // the Kassa objects without a lookup through the session.
    form.push_map("payment_intent_data[metadata]", &req.metadata);
    if req.capture_method == CaptureMethod::Manual {
        form.push("payment_intent_data[capture_method]", "manual");
    }
    if let Some(save) = &req.save_card {
        // Kassa bills the subscription; Stripe only saves the card at the customer for the
        // off-session renewals, and shows what the buyer agrees to beside the pay button.
        form.push("payment_intent_data[setup_future_usage]", "off_session")
            .push("custom_text[submit][message]", &save.consent_text);
    }
    form.push("expires_at", req.expires_at);
    form
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::CheckoutLine;

    fn pairs(form: &Form) -> Vec<(&str, &str)> {
        form.pairs().iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    fn intent() -> CreatePaymentIntent {
        CreatePaymentIntent {
            amount: 1250,
            currency: "EUR".into(),
            customer: "cus_1".into(),
            metadata: [("kassa_cart_id".to_string(), "cart_1".to_string())].into(),
            capture_method: CaptureMethod::Automatic,
            setup_future_usage: false,
            confirm: None,
            off_session: false,
            return_url: None,
        }
    }

    #[test]
    fn an_unconfirmed_intent_sends_only_the_basics() {
        assert_eq!(
            pairs(&create_payment_intent(&intent())),
            [
                ("amount", "1250"),
                ("currency", "eur"),
                ("customer", "cus_1"),
                ("metadata[kassa_cart_id]", "cart_1"),
                ("expand[0]", "latest_charge")
            ]
        );
    }

    #[test]
    fn an_off_session_renewal_with_a_saved_card() {
        let req = CreatePaymentIntent {
            confirm: Some(PaymentSource::PaymentMethod("pm_1".into())),
            off_session: true,
            capture_method: CaptureMethod::Manual,
            setup_future_usage: true,
            ..intent()
        };
        let form = create_payment_intent(&req);
        let p = pairs(&form);
        for expected in [
            ("capture_method", "manual"),
            ("setup_future_usage", "off_session"),
            ("confirm", "true"),
            ("payment_method", "pm_1"),
            ("payment_method_types[0]", "card"),
            ("off_session", "true"),
        ] {
            assert!(p.contains(&expected), "{expected:?} missing from {p:?}");
        }
        assert!(!p.iter().any(|(k, _)| *k == "return_url" || *k == "confirmation_token"));
    }

    #[test]
    fn off_session_is_only_sent_with_a_confirmation() {
        let req = CreatePaymentIntent { off_session: true, ..intent() };
        assert!(!pairs(&create_payment_intent(&req)).iter().any(|(k, _)| *k == "off_session"));
    }

    #[test]
    fn a_confirmation_token_with_a_return_url() {
        let req = CreatePaymentIntent {
            confirm: Some(PaymentSource::ConfirmationToken("ctoken_1".into())),
            return_url: Some("https://shop.example/return".into()),
            ..intent()
        };
        let form = create_payment_intent(&req);
        let p = pairs(&form);
        assert!(p.contains(&("confirmation_token", "ctoken_1")));
        assert!(p.contains(&("return_url", "https://shop.example/return")));
        assert!(!p.iter().any(|(k, _)| k.starts_with("payment_method")));
    }

    #[test]
    fn a_checkout_session_for_two_lines() {
        let req = CreateCheckoutSession {
            customer: "cus_1".into(),
            currency: "USD".into(),
            lines: vec![
                CheckoutLine { name: "Credits".into(), unit_amount: 250, quantity: 1 },
                CheckoutLine { name: "Processing fee".into(), unit_amount: 39, quantity: 1 },
            ],
            success_url: "https://shop.example/ok".into(),
            cancel_url: None,
            metadata: [("kassa_checkout_session".to_string(), "chk_1".to_string())].into(),
            capture_method: CaptureMethod::Manual,
            expires_at: 1_800_000_000,
            save_card: None,
        };
        assert_eq!(
            pairs(&create_checkout_session(&req)),
            [
                ("mode", "payment"),
                ("customer", "cus_1"),
                ("line_items[0][price_data][currency]", "usd"),
                ("line_items[0][price_data][unit_amount]", "250"),
                ("line_items[0][price_data][product_data][name]", "Credits"),
                ("line_items[0][quantity]", "1"),
                ("line_items[1][price_data][currency]", "usd"),
                ("line_items[1][price_data][unit_amount]", "39"),
                ("line_items[1][price_data][product_data][name]", "Processing fee"),
                ("line_items[1][quantity]", "1"),
                ("success_url", "https://shop.example/ok"),
                ("metadata[kassa_checkout_session]", "chk_1"),
                ("payment_intent_data[metadata][kassa_checkout_session]", "chk_1"),
                ("payment_intent_data[capture_method]", "manual"),
                ("expires_at", "1800000000"),
            ]
        );
    }

    #[test]
    fn a_subscription_checkout_is_a_payment_that_saves_the_card() {
        let req = CreateCheckoutSession {
            customer: "cus_1".into(),
            currency: "usd".into(),
            lines: vec![CheckoutLine { name: "1 × Pro".into(), unit_amount: 1500, quantity: 1 }],
            success_url: "https://shop.example/ok".into(),
            cancel_url: None,
            metadata: Default::default(),
            capture_method: CaptureMethod::Automatic,
            expires_at: 1_800_000_000,
            save_card: Some(crate::types::SaveCard { consent_text: "Saved for $15.00 every month.".into() }),
        };
        let form = create_checkout_session(&req);
        let p = pairs(&form);
        assert!(p.contains(&("mode", "payment")), "never Stripe Billing's mode=subscription");
        assert!(p.contains(&("payment_intent_data[setup_future_usage]", "off_session")));
        assert!(p.contains(&("custom_text[submit][message]", "Saved for $15.00 every month.")));
        assert!(!p.iter().any(|(k, _)| k.starts_with("payment_intent_data[capture_method]")));
    }
}
