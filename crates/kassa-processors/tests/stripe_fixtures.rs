//! The Stripe processor against recorded Stripe-shaped answers, for what localstripe cannot
//! serve (Checkout Sessions, ConfirmationTokens, Stripe's error and next-action shapes) and for
//! what it cannot show (idempotency keys, retries). A small fake server answers from a script
//! and records every request, so each test asserts what the client sent as well as what it
//! made of the answer. Needs no external tool.

mod support;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use kassa_processors::stripe::{DEFAULT_API_VERSION, StripeConfig, StripeProcessor};
use kassa_processors::*;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::SECRET_KEY;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CHECKOUT_CREATED: &str = include_str!("fixtures/stripe/checkout_session_created.json");
const CHECKOUT_COMPLETED: &str = include_str!("fixtures/stripe/checkout_session_completed.json");
const CHECKOUT_EXPIRED: &str = include_str!("fixtures/stripe/checkout_session_expired.json");
const PI_SUCCEEDED: &str = include_str!("fixtures/stripe/payment_intent_succeeded.json");
const PI_REQUIRES_ACTION: &str = include_str!("fixtures/stripe/payment_intent_requires_action.json");
const PI_PARTIALLY_CAPTURED: &str = include_str!("fixtures/stripe/payment_intent_partially_captured.json");
const ERR_CARD_DECLINED: &str = include_str!("fixtures/stripe/error_card_declined.json");
const ERR_RESOURCE_MISSING: &str = include_str!("fixtures/stripe/error_resource_missing.json");
const ERR_INVALID_REQUEST: &str = include_str!("fixtures/stripe/error_invalid_request.json");
const ERR_RATE_LIMIT: &str = include_str!("fixtures/stripe/error_rate_limit.json");
const ERR_API: &str = include_str!("fixtures/stripe/error_api.json");

const CUSTOMER: &str = "cus_QkR7mZ2aX1bYc3";
const PINNED_VERSION: &str = "2025-02-24.acacia";

#[derive(Clone, Debug)]
struct Recorded {
    method: Method,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: String,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The decoded form pairs, in the order sent.
    fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.body.as_bytes()).into_owned().collect()
    }

    fn query_pairs(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.query.as_deref().unwrap_or("").as_bytes()).into_owned().collect()
    }

    /// Authenticated with the secret key and the pinned version; an idempotency key on POST
    /// only.
    fn assert_stripe_headers(&self, key: Option<&str>) {
        assert_eq!(self.header("authorization"), Some(format!("Bearer {SECRET_KEY}").as_str()));
        assert_eq!(self.header("stripe-version"), Some(PINNED_VERSION));
        assert_eq!(self.header("idempotency-key"), key);
        if self.method == Method::POST {
            assert_eq!(self.header("content-type"), Some("application/x-www-form-urlencoded"));
        }
    }
}

struct Reply {
    status: u16,
    content_type: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    body: String,
    delay: Duration,
}

fn reply(status: u16, body: &str) -> Reply {
    Reply { status, content_type: "application/json", headers: vec![], body: body.to_owned(), delay: Duration::ZERO }
}

#[derive(Default)]
struct Script {
    replies: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Recorded>>,
}

struct Fake {
    base_url: String,
    script: Arc<Script>,
}

impl Fake {
    fn requests(&self) -> Vec<Recorded> {
        self.script.requests.lock().unwrap().clone()
    }

    fn only_request(&self) -> Recorded {
        let requests = self.requests();
        assert_eq!(requests.len(), 1, "expected exactly one request, got {requests:#?}");
        requests.into_iter().next().unwrap()
    }

    fn processor(&self) -> StripeProcessor {
        StripeProcessor::new(config(&self.base_url)).unwrap()
    }
}

fn config(base_url: &str) -> StripeConfig {
    StripeConfig { api_version: PINNED_VERSION.into(), ..support::config(base_url) }
}

async fn answer(
    State(script): State<Arc<Script>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    script.requests.lock().unwrap().push(Recorded {
        method,
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    });
    let next = script.replies.lock().unwrap().pop_front();
    let Some(reply) = next else {
        return (StatusCode::IM_A_TEAPOT, "the test scripted no further reply").into_response();
    };
    tokio::time::sleep(reply.delay).await;
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    response.headers_mut().insert("content-type", reply.content_type.parse().unwrap());
    for (name, value) in reply.headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

async fn fake(replies: Vec<Reply>) -> Fake {
    let script = Arc::new(Script { replies: Mutex::new(replies.into()), ..Script::default() });
    let app = axum::Router::new().fallback(answer).with_state(script.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Fake { base_url, script }
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn metadata(pairs: &[(&str, &str)]) -> Metadata {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn key(k: &str) -> IdempotencyKey {
    IdempotencyKey::new(k)
}

fn top_up_session(capture_method: CaptureMethod) -> CreateCheckoutSession {
    CreateCheckoutSession {
        customer: CUSTOMER.into(),
        currency: "USD".into(),
        lines: vec![
            CheckoutLine { name: "250 credits".into(), unit_amount: 250, quantity: 1 },
            CheckoutLine { name: "Processing fee".into(), unit_amount: 39, quantity: 1 },
        ],
        success_url: "https://shop.example/credits/thanks?session={CHECKOUT_SESSION_ID}".into(),
        cancel_url: Some("https://shop.example/cart".into()),
        metadata: metadata(&[("kassa_checkout_session", "chk_01JDQX5Y7Z8A9B0C1D2E3F4G5H")]),
        capture_method,
        expires_at: 1_732_636_800,
        save_card: None,
    }
}

// ---------------------------------------------------------------------------------------------
// Checkout Sessions

#[tokio::test]
async fn creates_a_checkout_session() {
    let fake = fake(vec![reply(200, CHECKOUT_CREATED)]).await;
    let session = fake
        .processor()
        .create_checkout_session(&top_up_session(CaptureMethod::Automatic), &key("kassa_chk_01JDQX5Y"))
        .await
        .unwrap();

    let sent = fake.only_request();
    assert_eq!((sent.method.as_str(), sent.path.as_str()), ("POST", "/v1/checkout/sessions"));
    sent.assert_stripe_headers(Some("kassa_chk_01JDQX5Y"));
    assert_eq!(
        sent.form(),
        pairs(&[
            ("mode", "payment"),
            ("customer", CUSTOMER),
            ("line_items[0][price_data][currency]", "usd"),
            ("line_items[0][price_data][unit_amount]", "250"),
            ("line_items[0][price_data][product_data][name]", "250 credits"),
            ("line_items[0][quantity]", "1"),
            ("line_items[1][price_data][currency]", "usd"),
            ("line_items[1][price_data][unit_amount]", "39"),
            ("line_items[1][price_data][product_data][name]", "Processing fee"),
            ("line_items[1][quantity]", "1"),
            ("success_url", "https://shop.example/credits/thanks?session={CHECKOUT_SESSION_ID}"),
            ("cancel_url", "https://shop.example/cart"),
            ("metadata[kassa_checkout_session]", "chk_01JDQX5Y7Z8A9B0C1D2E3F4G5H"),
            ("payment_intent_data[metadata][kassa_checkout_session]", "chk_01JDQX5Y7Z8A9B0C1D2E3F4G5H"),
            ("expires_at", "1732636800"),
        ])
    );

    assert_eq!(
        session,
        CheckoutSession {
            id: "cs_test_a1Kx9Qp2Lm3Nb4Vc5Xz6Ws7Ed8Rf9Tg0Yh1Uj2Ik3Ol4Pm5Nb6Vc7Xz8".into(),
            url: Some(
                "https://checkout.stripe.com/c/pay/cs_test_a1Kx9Qp2Lm3Nb4Vc5Xz6Ws7Ed8Rf9Tg0Yh1Uj2Ik3Ol4Pm5Nb6Vc7Xz8\
                 #fidkdWxOYHwnPyd1blpxYHZxWjA0"
                    .into()
            ),
            status: CheckoutSessionStatus::Open,
            payment_status: CheckoutPaymentStatus::Unpaid,
            amount_total: 289,
            currency: "usd".into(),
            customer: Some(CUSTOMER.into()),
            payment_intent: None,
            metadata: metadata(&[("kassa_checkout_session", "chk_01JDQX5Y7Z8A9B0C1D2E3F4G5H")]),
            expires_at: 1_732_636_800,
        }
    );
}

#[tokio::test]
async fn a_manual_capture_session_asks_its_payment_intent_for_manual_capture() {
    let fake = fake(vec![reply(200, CHECKOUT_CREATED)]).await;
    let mut req = top_up_session(CaptureMethod::Manual);
    req.cancel_url = None;
    fake.processor().create_checkout_session(&req, &key("kassa_chk_manual")).await.unwrap();

    let form = fake.only_request().form();
    assert!(form.contains(&("payment_intent_data[capture_method]".into(), "manual".into())), "{form:?}");
    assert!(!form.iter().any(|(k, _)| k == "cancel_url"), "{form:?}");
}

#[tokio::test]
async fn retrieves_a_completed_checkout_session() {
    let fake = fake(vec![reply(200, CHECKOUT_COMPLETED)]).await;
    let session = fake.processor().retrieve_checkout_session("cs_test_a1Kx9Qp2").await.unwrap();

    let sent = fake.only_request();
    assert_eq!((sent.method.as_str(), sent.path.as_str()), ("GET", "/v1/checkout/sessions/cs_test_a1Kx9Qp2"));
    sent.assert_stripe_headers(None);
    assert!(sent.body.is_empty() && sent.query.is_none());

    assert_eq!(session.status, CheckoutSessionStatus::Complete);
    assert_eq!(session.payment_status, CheckoutPaymentStatus::Paid);
    assert_eq!(session.payment_intent.as_deref(), Some("pi_3QPmZ2AbCdEfGhIj1KlMnOpQ"));
    assert_eq!(session.amount_total, 289);
    assert_eq!(session.url, None);
}

#[tokio::test]
async fn expires_a_checkout_session() {
    let fake = fake(vec![reply(200, CHECKOUT_EXPIRED)]).await;
    let session =
        fake.processor().expire_checkout_session("cs_test_a1Kx9Qp2", &key("kassa_expire_chk_1")).await.unwrap();

    let sent = fake.only_request();
    assert_eq!((sent.method.as_str(), sent.path.as_str()), ("POST", "/v1/checkout/sessions/cs_test_a1Kx9Qp2/expire"));
    sent.assert_stripe_headers(Some("kassa_expire_chk_1"));
    assert!(sent.body.is_empty());
    assert_eq!(
        (session.status, session.payment_status),
        (CheckoutSessionStatus::Expired, CheckoutPaymentStatus::Unpaid)
    );
    assert_eq!(session.expires_at, 1_732_551_000);
}

#[tokio::test]
async fn an_id_cannot_change_the_path() {
    let fake = fake(vec![reply(200, CHECKOUT_COMPLETED)]).await;
    fake.processor().retrieve_checkout_session("cs_1/../../v1/charges?x=1").await.unwrap();
    let sent = fake.only_request();
    assert_eq!(sent.path, "/v1/checkout/sessions/cs_1%2F..%2F..%2Fv1%2Fcharges%3Fx=1");
    assert!(sent.query.is_none());
}

// ---------------------------------------------------------------------------------------------
// PaymentIntents

fn cart_payment(source: PaymentSource, return_url: Option<&str>) -> CreatePaymentIntent {
    CreatePaymentIntent {
        amount: 2000,
        currency: "EUR".into(),
        customer: CUSTOMER.into(),
        metadata: metadata(&[("kassa_cart_id", "cart_01JDQX5Y7Z8A9B0C1D2E3F4G5H"), ("kassa_cart_version", "3")]),
        capture_method: CaptureMethod::Automatic,
        setup_future_usage: false,
        confirm: Some(source),
        off_session: false,
        return_url: return_url.map(str::to_owned),
    }
}

#[tokio::test]
async fn pays_with_a_confirmation_token() {
    let fake = fake(vec![reply(200, PI_SUCCEEDED)]).await;
    let req = cart_payment(PaymentSource::ConfirmationToken("ctoken_1QPmZ1AbCdEfGhIjToKeN".into()), None);
    let pi = fake.processor().create_payment_intent(&req, &key("kassa_pay_cart_01JDQX5Y_v3")).await.unwrap();

    let sent = fake.only_request();
    assert_eq!((sent.method.as_str(), sent.path.as_str()), ("POST", "/v1/payment_intents"));
    sent.assert_stripe_headers(Some("kassa_pay_cart_01JDQX5Y_v3"));
    assert_eq!(
        sent.form(),
        pairs(&[
            ("amount", "2000"),
            ("currency", "eur"),
            ("customer", CUSTOMER),
            ("metadata[kassa_cart_id]", "cart_01JDQX5Y7Z8A9B0C1D2E3F4G5H"),
            ("metadata[kassa_cart_version]", "3"),
            ("confirm", "true"),
            ("confirmation_token", "ctoken_1QPmZ1AbCdEfGhIjToKeN"),
            ("expand[0]", "latest_charge"),
        ])
    );

    assert_eq!(
        pi,
        PaymentIntent {
            id: "pi_3QPmZ2AbCdEfGhIj1KlMnOpQ".into(),
            status: PaymentIntentStatus::Succeeded,
            amount: 2000,
            amount_capturable: 0,
            amount_received: 2000,
            currency: "eur".into(),
            customer: Some(CUSTOMER.into()),
            payment_method: Some("pm_1QPmZ1AbCdEfGhIjKlMnOpQr".into()),
            capture_method: CaptureMethod::Automatic,
            metadata: metadata(&[("kassa_cart_id", "cart_01JDQX5Y7Z8A9B0C1D2E3F4G5H"), ("kassa_cart_version", "3")]),
            next_action: None,
            last_payment_error: None,
            latest_charge: Some("ch_3QPmZ2AbCdEfGhIj1RsTuVwX".into()),
            amount_refunded: 0,
            created: 1_732_550_459,
        }
    );
}

#[tokio::test]
async fn a_declined_confirmation_token_is_a_payment_error_with_the_intent() {
    let fake = fake(vec![reply(402, ERR_CARD_DECLINED)]).await;
    let req = cart_payment(PaymentSource::ConfirmationToken("ctoken_declined".into()), None);
    let err = fake.processor().create_payment_intent(&req, &key("kassa_pay_declined")).await.unwrap_err();

    // A decline is final for this attempt: never retried.
    fake.only_request();
    let ProcessorError::Payment { error, payment_intent } = err else { panic!("{err:?}") };
    assert_eq!(
        error,
        PaymentError {
            code: "card_declined".into(),
            decline_code: Some("insufficient_funds".into()),
            message: "Your card has insufficient funds.".into(),
        }
    );
    let pi = payment_intent.expect("Stripe's decline carries the PaymentIntent");
    assert_eq!(pi.id, "pi_3QPmZ7AbCdEfGhIj1Declined");
    assert_eq!(pi.status, PaymentIntentStatus::RequiresPaymentMethod);
    assert_eq!(pi.amount_received, 0);
    assert_eq!(pi.latest_charge.as_deref(), Some("ch_3QPmZ7AbCdEfGhIj1Declined"));
    assert_eq!(pi.last_payment_error, Some(error));
}

#[tokio::test]
async fn three_d_secure_answers_with_a_redirect() {
    let fake = fake(vec![reply(200, PI_REQUIRES_ACTION)]).await;
    let return_url = "https://shop.example/checkout/return?cart=cart_01JDQX5Y7Z8A9B0C1D2E3F4G5H";
    let req = cart_payment(PaymentSource::ConfirmationToken("ctoken_3ds".into()), Some(return_url));
    let pi = fake.processor().create_payment_intent(&req, &key("kassa_pay_3ds")).await.unwrap();

    let form = fake.only_request().form();
    assert!(form.contains(&("return_url".into(), return_url.into())), "{form:?}");
    assert_eq!(pi.status, PaymentIntentStatus::RequiresAction);
    assert_eq!(pi.amount_received, 0);
    assert!(pi.next_action.unwrap().redirect_url.starts_with("https://hooks.stripe.com/3d_secure_2/hosted?"));
}

#[tokio::test]
async fn confirms_an_existing_intent_with_a_confirmation_token() {
    let fake = fake(vec![reply(200, PI_REQUIRES_ACTION)]).await;
    let req = ConfirmPaymentIntent {
        source: PaymentSource::ConfirmationToken("ctoken_again".into()),
        return_url: Some("https://shop.example/return".into()),
    };
    let pi = fake
        .processor()
        .confirm_payment_intent("pi_3QPmZ9AbCdEfGhIj0ThreeDsX", &req, &key("kassa_confirm_1"))
        .await
        .unwrap();

    let sent = fake.only_request();
    assert_eq!(sent.path, "/v1/payment_intents/pi_3QPmZ9AbCdEfGhIj0ThreeDsX/confirm");
    sent.assert_stripe_headers(Some("kassa_confirm_1"));
    assert_eq!(
        sent.form(),
        pairs(&[
            ("confirmation_token", "ctoken_again"),
            ("return_url", "https://shop.example/return"),
            ("expand[0]", "latest_charge"),
        ])
    );
    assert_eq!(pi.status, PaymentIntentStatus::RequiresAction);
}

#[tokio::test]
async fn an_off_session_renewal_saves_nothing_it_was_not_asked_to() {
    let fake = fake(vec![reply(200, PI_SUCCEEDED)]).await;
    let req = CreatePaymentIntent {
        off_session: true,
        metadata: Metadata::new(),
        ..cart_payment(PaymentSource::PaymentMethod("pm_1QPmZ1AbCdEfGhIjKlMnOpQr".into()), None)
    };
    fake.processor().create_payment_intent(&req, &key("kassa_renewal_1")).await.unwrap();
    assert_eq!(
        fake.only_request().form(),
        pairs(&[
            ("amount", "2000"),
            ("currency", "eur"),
            ("customer", CUSTOMER),
            ("confirm", "true"),
            ("payment_method", "pm_1QPmZ1AbCdEfGhIjKlMnOpQr"),
            ("payment_method_types[0]", "card"),
            ("off_session", "true"),
            ("expand[0]", "latest_charge"),
        ])
    );
}

#[tokio::test]
async fn a_partial_capture_reports_what_was_captured_and_nothing_refunded() {
    let mut after_refund: serde_json::Value = serde_json::from_str(PI_PARTIALLY_CAPTURED).unwrap();
    // Stripe after a refund of 100: the charge's refunded amount includes the released 400.
    after_refund["latest_charge"]["amount_refunded"] = 500.into();
    let fake = fake(vec![reply(200, PI_PARTIALLY_CAPTURED), reply(200, &after_refund.to_string())]).await;
    let p = fake.processor();

    let captured =
        p.capture_payment_intent("pi_3QPmZ5AbCdEfGhIj1PartCap", Some(600), &key("kassa_cap_1")).await.unwrap();
    let retrieved = p.retrieve_payment_intent("pi_3QPmZ5AbCdEfGhIj1PartCap").await.unwrap();

    let requests = fake.requests();
    assert_eq!(requests[0].path, "/v1/payment_intents/pi_3QPmZ5AbCdEfGhIj1PartCap/capture");
    requests[0].assert_stripe_headers(Some("kassa_cap_1"));
    assert_eq!(requests[0].form(), pairs(&[("amount_to_capture", "600"), ("expand[0]", "latest_charge")]));
    assert_eq!(requests[1].path, "/v1/payment_intents/pi_3QPmZ5AbCdEfGhIj1PartCap");
    requests[1].assert_stripe_headers(None);
    assert_eq!(requests[1].query_pairs(), pairs(&[("expand[0]", "latest_charge")]));

    assert_eq!(
        (captured.status, captured.amount, captured.amount_received),
        (PaymentIntentStatus::Succeeded, 1000, 600)
    );
    assert_eq!((captured.capture_method, captured.amount_refunded), (CaptureMethod::Manual, 0));
    assert_eq!((retrieved.amount_received, retrieved.amount_refunded), (600, 100));
}

#[tokio::test]
async fn cancel_sends_only_the_expansion() {
    let fake = fake(vec![reply(200, PI_SUCCEEDED)]).await;
    fake.processor().cancel_payment_intent("pi_1", &key("kassa_cancel_1")).await.unwrap();
    let sent = fake.only_request();
    assert_eq!(sent.path, "/v1/payment_intents/pi_1/cancel");
    sent.assert_stripe_headers(Some("kassa_cancel_1"));
    assert_eq!(sent.form(), pairs(&[("expand[0]", "latest_charge")]));
}

#[tokio::test]
async fn an_unknown_object_is_not_found() {
    let fake = fake(vec![reply(404, ERR_RESOURCE_MISSING)]).await;
    let err = fake.processor().retrieve_payment_intent("pi_3QPmZ0Missing").await.unwrap_err();
    assert_eq!(err, ProcessorError::NotFound("No such payment_intent: 'pi_3QPmZ0Missing'".into()));
    fake.only_request();
}

#[tokio::test]
async fn a_route_the_server_lacks_is_unsupported() {
    let fake = fake(vec![Reply { content_type: "text/plain; charset=utf-8", ..reply(404, "404: Not Found") }]).await;
    let err = fake.processor().create_checkout_session(&top_up_session(CaptureMethod::Automatic), &key("k")).await;
    assert!(matches!(err, Err(ProcessorError::Unsupported(_))), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// Customers, refunds, saved cards

#[tokio::test]
async fn creates_a_customer() {
    let fake =
        fake(vec![reply(200, r#"{"id":"cus_QkR7mZ2aX1bYc3","object":"customer","email":"ada@example.com"}"#)]).await;
    let req = CreateCustomer {
        email: Some("ada@example.com".into()),
        name: None,
        metadata: metadata(&[("kassa_customer_id", "cus_01JDQX")]),
    };
    let customer = fake.processor().create_customer(&req, &key("kassa_customer_cus_01JDQX")).await.unwrap();
    let sent = fake.only_request();
    sent.assert_stripe_headers(Some("kassa_customer_cus_01JDQX"));
    assert_eq!(sent.path, "/v1/customers");
    assert_eq!(sent.form(), pairs(&[("email", "ada@example.com"), ("metadata[kassa_customer_id]", "cus_01JDQX")]));
    assert_eq!(customer, ProcessorCustomer { id: CUSTOMER.into(), email: Some("ada@example.com".into()) });
}

#[tokio::test]
async fn creates_a_refund() {
    let body = r#"{"id":"re_3QPmZ2AbCdEfGhIj1Refund","object":"refund","amount":500,"charge":"ch_3QPmZ2AbCdEfGhIj1RsTuVwX",
        "created":1732551000,"currency":"eur","metadata":{"kassa_refund_id":"ref_01"},"payment_intent":"pi_3QPmZ2AbCdEfGhIj1KlMnOpQ",
        "reason":null,"status":"pending"}"#;
    let fake = fake(vec![reply(200, body)]).await;
    let req = CreateRefund {
        payment_intent: "pi_3QPmZ2AbCdEfGhIj1KlMnOpQ".into(),
        amount: Some(500),
        metadata: metadata(&[("kassa_refund_id", "ref_01")]),
    };
    let refund = fake.processor().create_refund(&req, &key("kassa_refund_ref_01")).await.unwrap();
    let sent = fake.only_request();
    sent.assert_stripe_headers(Some("kassa_refund_ref_01"));
    assert_eq!(
        sent.form(),
        pairs(&[
            ("payment_intent", "pi_3QPmZ2AbCdEfGhIj1KlMnOpQ"),
            ("amount", "500"),
            ("metadata[kassa_refund_id]", "ref_01")
        ])
    );
    assert_eq!(refund.status, RefundStatus::Pending);
    assert_eq!((refund.amount, refund.payment_intent.as_deref()), (500, Some("pi_3QPmZ2AbCdEfGhIj1KlMnOpQ")));
}

#[tokio::test]
async fn lists_saved_cards_across_pages() {
    let card = |id: &str, last4: &str| {
        format!(
            r#"{{"id":"{id}","object":"payment_method","customer":"{CUSTOMER}","type":"card",
                "card":{{"brand":"visa","last4":"{last4}","exp_month":4,"exp_year":2031}}}}"#
        )
    };
    let page1 =
        format!(r#"{{"object":"list","data":[{},{}],"has_more":true}}"#, card("pm_1", "4242"), card("pm_2", "1881"));
    let page2 = format!(r#"{{"object":"list","data":[{}],"has_more":false}}"#, card("pm_3", "0005"));
    let fake = fake(vec![reply(200, &page1), reply(200, &page2)]).await;

    let methods = fake.processor().list_payment_methods(CUSTOMER).await.unwrap();
    assert_eq!(methods.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["pm_1", "pm_2", "pm_3"]);
    assert_eq!(methods[2].card_last4.as_deref(), Some("0005"));
    assert_eq!((methods[0].exp_month, methods[0].exp_year), (Some(4), Some(2031)));

    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].path, "/v1/payment_methods");
    requests[0].assert_stripe_headers(None);
    assert_eq!(requests[0].query_pairs(), pairs(&[("customer", CUSTOMER), ("type", "card"), ("limit", "100")]));
    assert_eq!(
        requests[1].query_pairs(),
        pairs(&[("customer", CUSTOMER), ("type", "card"), ("limit", "100"), ("starting_after", "pm_2")])
    );
}

// ---------------------------------------------------------------------------------------------
// Retries

fn assert_same_key_and_body(requests: &[Recorded], key: &str) {
    for r in requests {
        assert_eq!(r.header("idempotency-key"), Some(key));
        assert_eq!(r.body, requests[0].body);
    }
}

#[tokio::test]
async fn retries_server_errors_with_the_same_idempotency_key() {
    let fake = fake(vec![reply(500, ERR_API), reply(503, "<html>upstream</html>"), reply(200, PI_SUCCEEDED)]).await;
    let req = cart_payment(PaymentSource::ConfirmationToken("ctoken_1".into()), None);
    let pi = fake.processor().create_payment_intent(&req, &key("kassa_pay_retry")).await.unwrap();

    assert_eq!(pi.status, PaymentIntentStatus::Succeeded);
    let requests = fake.requests();
    assert_eq!(requests.len(), 3);
    assert_same_key_and_body(&requests, "kassa_pay_retry");
}

#[tokio::test]
async fn retries_429_and_409() {
    let fake = fake(vec![reply(429, ERR_RATE_LIMIT), reply(409, ERR_API), reply(200, PI_SUCCEEDED)]).await;
    let pi = fake.processor().capture_payment_intent("pi_1", None, &key("kassa_cap_429")).await.unwrap();
    assert_eq!(pi.amount_received, 2000);
    let requests = fake.requests();
    assert_eq!(requests.len(), 3);
    assert_same_key_and_body(&requests, "kassa_cap_429");
}

#[tokio::test]
async fn does_not_retry_a_bad_request() {
    let fake = fake(vec![reply(400, ERR_INVALID_REQUEST), reply(200, PI_SUCCEEDED)]).await;
    let req = cart_payment(PaymentSource::ConfirmationToken("ctoken_1".into()), None);
    let err = fake.processor().create_payment_intent(&req, &key("kassa_pay_400")).await.unwrap_err();
    fake.only_request();
    assert_eq!(
        err,
        ProcessorError::InvalidRequest {
            code: Some("amount_too_small".into()),
            message: "Amount must be at least €0.50 eur".into(),
            param: Some("amount".into()),
        }
    );
}

#[tokio::test]
async fn stripe_should_retry_false_stops_retries() {
    let fake = fake(vec![
        Reply { headers: vec![("stripe-should-retry", "false")], ..reply(500, ERR_API) },
        reply(200, PI_SUCCEEDED),
    ])
    .await;
    let err = fake.processor().cancel_payment_intent("pi_1", &key("kassa_cancel_nr")).await.unwrap_err();
    fake.only_request();
    assert!(matches!(err, ProcessorError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn stripe_should_retry_true_retries_even_a_bad_request() {
    let fake = fake(vec![
        Reply { headers: vec![("stripe-should-retry", "true")], ..reply(400, ERR_INVALID_REQUEST) },
        reply(200, PI_SUCCEEDED),
    ])
    .await;
    fake.processor().cancel_payment_intent("pi_1", &key("kassa_cancel_r")).await.unwrap();
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn a_success_is_never_retried() {
    let fake = fake(vec![
        Reply { headers: vec![("stripe-should-retry", "true")], ..reply(200, PI_SUCCEEDED) },
        reply(500, ERR_API),
    ])
    .await;
    fake.processor().capture_payment_intent("pi_1", None, &key("kassa_cap_once")).await.unwrap();
    fake.only_request();
}

#[tokio::test]
async fn gives_up_after_the_configured_retries() {
    let fake = fake((0..5).map(|_| reply(502, ERR_API)).collect()).await;
    let p = StripeProcessor::new(StripeConfig { max_network_retries: 3, ..config(&fake.base_url) }).unwrap();
    let err = p.retrieve_payment_intent("pi_1").await.unwrap_err();
    assert!(matches!(err, ProcessorError::Unavailable(_)), "{err:?}");
    let requests = fake.requests();
    assert_eq!(requests.len(), 4, "one attempt and three retries");
    assert!(requests.iter().all(|r| r.header("idempotency-key").is_none()));
}

#[tokio::test]
async fn a_timeout_is_retried() {
    let fake =
        fake(vec![Reply { delay: Duration::from_secs(3), ..reply(200, PI_SUCCEEDED) }, reply(200, PI_SUCCEEDED)]).await;
    let p =
        StripeProcessor::new(StripeConfig { timeout: Duration::from_millis(300), ..config(&fake.base_url) }).unwrap();
    let pi = p.capture_payment_intent("pi_1", Some(2000), &key("kassa_cap_timeout")).await.unwrap();
    assert_eq!(pi.amount_received, 2000);
    assert_same_key_and_body(&fake.requests(), "kassa_cap_timeout");
}

/// A server that reads each request and closes the first `drops` connections without a word,
/// then answers `body`. Records the idempotency key of every request.
async fn dropping_server(drops: usize, body: &'static str) -> (String, Arc<Mutex<Vec<Option<String>>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let keys = Arc::new(Mutex::new(Vec::new()));
    let seen = keys.clone();
    tokio::spawn(async move {
        for n in 0.. {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut raw = Vec::new();
            let mut buf = [0u8; 4096];
            // Headers, then as much body as Content-Length says.
            let request = loop {
                let read = stream.read(&mut buf).await.unwrap();
                if read == 0 {
                    break String::from_utf8_lossy(&raw).into_owned();
                }
                raw.extend_from_slice(&buf[..read]);
                let text = String::from_utf8_lossy(&raw).into_owned();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned())
                        })
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    if raw.len() >= end + 4 + length {
                        break text;
                    }
                }
            };
            let key = request.lines().find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("idempotency-key").then(|| value.trim().to_owned())
            });
            seen.lock().unwrap().push(key);
            if n < drops {
                drop(stream);
                continue;
            }
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(response.as_bytes()).await.unwrap();
            let _ = stream.shutdown().await;
        }
    });
    (base_url, keys)
}

#[tokio::test]
async fn a_dropped_connection_is_retried_with_the_same_key() {
    let (base_url, keys) = dropping_server(2, PI_SUCCEEDED).await;
    let p = StripeProcessor::new(config(&base_url)).unwrap();
    let req = cart_payment(PaymentSource::ConfirmationToken("ctoken_1".into()), None);
    let pi = p.create_payment_intent(&req, &key("kassa_pay_dropped")).await.unwrap();
    assert_eq!(pi.status, PaymentIntentStatus::Succeeded);
    let keys = keys.lock().unwrap().clone();
    assert_eq!(keys, vec![Some("kassa_pay_dropped".to_owned()); 3]);
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    // Bind and drop: nothing listens on this port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let p = StripeProcessor::new(config(&format!("http://127.0.0.1:{port}"))).unwrap();
    let err = p.retrieve_payment_intent("pi_1").await.unwrap_err();
    let ProcessorError::Unavailable(message) = err else { panic!("{err:?}") };
    assert!(message.contains("3 attempt(s)"), "{message}");
    assert!(!message.contains(SECRET_KEY));
}

#[tokio::test]
async fn the_default_api_version_is_pinned_when_none_is_configured() {
    let fake = fake(vec![reply(200, PI_SUCCEEDED)]).await;
    let p = StripeProcessor::new(support::config(&fake.base_url)).unwrap();
    p.retrieve_payment_intent("pi_1").await.unwrap();
    assert_eq!(fake.only_request().header("stripe-version"), Some(DEFAULT_API_VERSION));
}
