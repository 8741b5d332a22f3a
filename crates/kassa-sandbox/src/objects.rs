//! The test processor's objects: Stripe's own model ([`kassa_processors::stripe::objects`],
//! which the Stripe client reads too), stored one per row of `tp_objects` and sent in events as
//! Stripe sends them; with the conversions to Kassa's processor-neutral types.

use kassa_processors::types::{self, CheckoutSessionStatus};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use kassa_processors::stripe::objects::*;

/// The API version the test processor's objects and events follow: the one the Stripe client
/// pins.
pub const API_VERSION: &str = kassa_processors::stripe::DEFAULT_API_VERSION;

/// A processor object as one row of `tp_objects`.
pub trait Stored: Serialize + DeserializeOwned {
    /// The `kind` column.
    const KIND: &'static str;
    fn id(&self) -> &str;
    /// The customer the object belongs to (the `customer` column).
    fn owner(&self) -> Option<&str> {
        None
    }
    /// The object it hangs off, when the object itself says so.
    fn parent(&self) -> Option<&str> {
        None
    }
    /// When the processor must act on it by itself.
    fn due_at(&self) -> Option<i64> {
        None
    }
}

impl Stored for Customer {
    const KIND: &'static str = "customer";
    fn id(&self) -> &str {
        &self.id
    }
}

impl Stored for PaymentMethod {
    const KIND: &'static str = "payment_method";
    fn id(&self) -> &str {
        &self.id
    }
    fn owner(&self) -> Option<&str> {
        self.customer.as_deref()
    }
}

impl Stored for ConfirmationToken {
    const KIND: &'static str = "confirmation_token";
    fn id(&self) -> &str {
        &self.id
    }
}

impl Stored for PaymentIntent {
    const KIND: &'static str = "payment_intent";
    fn id(&self) -> &str {
        &self.id
    }
    fn owner(&self) -> Option<&str> {
        self.customer.as_deref()
    }
}

impl Stored for Charge {
    const KIND: &'static str = "charge";
    fn id(&self) -> &str {
        &self.id
    }
    fn owner(&self) -> Option<&str> {
        self.customer.as_deref()
    }
    fn parent(&self) -> Option<&str> {
        self.payment_intent.as_deref()
    }
}

impl Stored for Refund {
    const KIND: &'static str = "refund";
    fn id(&self) -> &str {
        &self.id
    }
    fn parent(&self) -> Option<&str> {
        self.charge.as_deref()
    }
}

impl Stored for CheckoutSession {
    const KIND: &'static str = "checkout_session";
    fn id(&self) -> &str {
        &self.id
    }
    fn owner(&self) -> Option<&str> {
        self.customer.as_deref()
    }
    fn due_at(&self) -> Option<i64> {
        (self.status == CheckoutSessionStatus::Open).then_some(self.expires_at)
    }
}

/// The neutral PaymentIntent; `latest_charge` is the charge of that id, when loaded.
///
/// Read as the Stripe client reads it, except for `amount_refunded`: the test processor keeps
/// the uncaptured rest of a partial capture off the charge's `amount_refunded` (Stripe books
/// it there, and the shared conversion takes it off again), so what the charge says was
/// refunded is what was given back.
pub fn payment_intent_neutral(pi: &PaymentIntent, latest_charge: Option<&Charge>) -> types::PaymentIntent {
    let mut neutral = pi.clone().into_neutral().expect("the test processor's PaymentIntents have ids");
    neutral.amount_refunded =
        latest_charge.filter(|c| Some(c.id.as_str()) == pi.latest_charge_id()).map_or(0, |c| c.amount_refunded);
    neutral
}

pub fn refund_neutral(refund: &Refund) -> types::Refund {
    refund.clone().into_neutral().expect("the test processor's refunds have ids")
}

pub fn payment_method_neutral(pm: &PaymentMethod) -> types::PaymentMethod {
    pm.clone().into_neutral().expect("the test processor's payment methods have ids")
}

pub fn checkout_session_neutral(session: &CheckoutSession) -> types::CheckoutSession {
    session.clone().into_neutral().expect("the test processor's checkout sessions have ids")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows as the test processor wrote them before it shared the Stripe client's model: they
    /// still read, and are written back byte for byte.
    fn round_trip<T: Stored>(stored: &str) -> T {
        let object: T = serde_json::from_str(stored).unwrap();
        assert_eq!(serde_json::to_string(&object).unwrap(), stored);
        object
    }

    #[test]
    fn stored_payment_intents_and_charges_read_and_write_unchanged() {
        let pi: PaymentIntent = round_trip(concat!(
            r#"{"id":"pi_1","object":"payment_intent","amount":1000,"amount_capturable":0,"amount_received":600,"#,
            r#""currency":"eur","customer":"cus_1","payment_method":"pm_1","capture_method":"manual","#,
            r#""status":"succeeded","metadata":{"kassa_payment":"pay_1"},"next_action":null,"#,
            r#""last_payment_error":null,"latest_charge":"ch_1","setup_future_usage":"off_session","#,
            r#""cancellation_reason":null,"canceled_at":null,"payment_method_types":["card"],"created":5,"livemode":false}"#
        ));
        let charge: Charge = round_trip(concat!(
            r#"{"id":"ch_1","object":"charge","amount":1000,"amount_captured":600,"amount_refunded":100,"#,
            r#""captured":true,"refunded":false,"paid":true,"status":"succeeded","currency":"eur","#,
            r#""customer":"cus_1","payment_intent":"pi_1","payment_method":"pm_1","failure_code":null,"#,
            r#""failure_message":null,"metadata":{},"refunds":{"object":"list","data":[{"id":"re_1","#,
            r#""object":"refund","amount":100,"charge":"ch_1","payment_intent":"pi_1","currency":"eur","#,
            r#""status":"succeeded","reason":null,"metadata":{},"created":6}],"has_more":false,"#,
            r#""total_count":1,"url":"/v1/charges/ch_1/refunds"},"created":5,"livemode":false}"#
        ));
        assert_eq!((charge.parent(), pi.owner()), (Some("pi_1"), Some("cus_1")));
        // The released 400 of the partial capture is not a refund here: 100 was given back.
        let neutral = payment_intent_neutral(&pi, Some(&charge));
        assert_eq!((neutral.amount_received, neutral.amount_refunded), (600, 100));
        assert_eq!(neutral.latest_charge.as_deref(), Some("ch_1"));
    }

    #[test]
    fn stored_declines_challenges_and_sessions_read_and_write_unchanged() {
        let declined: PaymentIntent = round_trip(concat!(
            r#"{"id":"pi_2","object":"payment_intent","amount":5,"amount_capturable":0,"amount_received":0,"#,
            r#""currency":"usd","customer":"cus_1","payment_method":null,"capture_method":"automatic","#,
            r#""status":"requires_payment_method","metadata":{},"next_action":null,"last_payment_error":{"#,
            r#""type":"card_error","code":"card_declined","decline_code":"insufficient_funds","#,
            r#""message":"Your card has insufficient funds.","payment_method":"pm_2"},"latest_charge":"ch_2","#,
            r#""setup_future_usage":null,"cancellation_reason":null,"canceled_at":null,"#,
            r#""payment_method_types":["card"],"created":5,"livemode":false}"#
        ));
        let error = payment_intent_neutral(&declined, None).last_payment_error.unwrap();
        assert_eq!((error.code.as_str(), error.decline_code.as_deref()), ("card_declined", Some("insufficient_funds")));
        let challenged: PaymentIntent = round_trip(concat!(
            r#"{"id":"pi_3","object":"payment_intent","amount":5,"amount_capturable":0,"amount_received":0,"#,
            r#""currency":"usd","customer":"cus_1","payment_method":"pm_3","capture_method":"automatic","#,
            r#""status":"requires_action","metadata":{},"next_action":{"type":"redirect_to_url","#,
            r#""redirect_to_url":{"url":"http://k/test-processor/authenticate/pi_3","return_url":null}},"#,
            r#""last_payment_error":null,"latest_charge":null,"setup_future_usage":null,"#,
            r#""cancellation_reason":null,"canceled_at":null,"payment_method_types":["card"],"created":5,"livemode":false}"#
        ));
        assert_eq!(
            payment_intent_neutral(&challenged, None).next_action.unwrap().redirect_url,
            "http://k/test-processor/authenticate/pi_3"
        );
        let session: CheckoutSession = round_trip(concat!(
            r#"{"id":"cs_1","object":"checkout.session","mode":"payment","status":"open","payment_status":"unpaid","#,
            r#""amount_subtotal":700,"amount_total":700,"currency":"eur","customer":"cus_1","payment_intent":null,"#,
            r#""success_url":"https://shop/ok?s={CHECKOUT_SESSION_ID}","cancel_url":null,"#,
            r#""url":"http://k/test-processor/checkout/cs_1","metadata":{},"expires_at":99,"created":5,"#,
            r#""livemode":false,"line_items":{"object":"list","data":[{"id":"li_1","object":"item","#,
            r#""description":"Tea","quantity":1,"amount_subtotal":700,"amount_total":700,"currency":"eur","#,
            r#""price":{"unit_amount":700,"currency":"eur"}}],"has_more":false},"#,
            r#""payment_intent_data":{"capture_method":"automatic"}}"#
        ));
        assert_eq!(session.due_at(), Some(99));
        assert_eq!(session.success_redirect(), "https://shop/ok?s=cs_1");
        let _: PaymentMethod = round_trip(concat!(
            r#"{"id":"pm_1","object":"payment_method","type":"card","card":{"brand":"visa","last4":"4242","#,
            r#""exp_month":12,"exp_year":2030,"funding":"credit","country":"US"},"customer":"cus_1","created":5,"#,
            r#""metadata":{},"livemode":false}"#
        ));
        let _: ConfirmationToken = round_trip(concat!(
            r#"{"id":"ctoken_1","object":"confirmation_token","created":5,"expires_at":43205,"livemode":false,"#,
            r#""payment_intent":null,"payment_method_preview":{"type":"card","card":{"brand":"visa","#,
            r#""last4":"4242","exp_month":12,"exp_year":2030,"funding":"credit","country":"US"}}}"#
        ));
        let _: Customer = round_trip(
            r#"{"id":"cus_1","object":"customer","created":5,"email":"a@b.c","name":null,"metadata":{},"livemode":false}"#,
        );
    }
}
