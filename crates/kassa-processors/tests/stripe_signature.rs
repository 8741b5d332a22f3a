//! `Stripe-Signature` (SPEC §8) checked against the official `stripe` Python library, both
//! ways: headers stripe-python computes verify in Kassa (through `signature::verify` and
//! `StripeProcessor::parse_event`), and headers Kassa's `signature::sign` makes — which its
//! outgoing webhooks use — verify in stripe-python. Needs `KASSA_TEST_PYTHON`.

mod support;

use kassa_processors::signature::{self, DEFAULT_TOLERANCE_SECS, SignatureError};
use kassa_processors::{EventError, Processor};
use serde_json::json;
use std::path::{Path, PathBuf};

const EVENT: &[u8] = include_bytes!("fixtures/stripe/event_payment_intent_succeeded.json");
const SECRET: &str = "whsec_kassa_current_secret";
const PREVIOUS: &str = "whsec_kassa_previous_secret";

macro_rules! python {
    () => {
        match support::python() {
            Some(python) => python,
            None => return,
        }
    };
}

fn ask(python: &Path, request: serde_json::Value) -> String {
    support::stripe_python(python, request)
}

/// The header stripe-python computes for `payload` signed with `secret` at `timestamp`.
fn stripe_sign(python: &Path, payload: &[u8], secret: &str, timestamp: i64) -> String {
    ask(python, json!({"mode": "sign", "secret": secret, "timestamp": timestamp, "payload_hex": hex::encode(payload)}))
}

/// stripe-python's verdict (`Webhook.construct_event`, default tolerance 300 s).
fn stripe_verify(python: &Path, payload: &[u8], secret: &str, header: &str) -> String {
    support::stripe_python_verify(python, payload, secret, header)
}

fn processor(secrets: &[&str]) -> kassa_processors::stripe::StripeProcessor {
    support::processor_with_secrets("http://127.0.0.1:9", secrets)
}

fn verify(secret: &str, payload: &[u8], header: Option<&str>, now: i64) -> Result<(), SignatureError> {
    signature::verify(secret, payload, header, now, DEFAULT_TOLERANCE_SECS)
}

fn refused(err: SignatureError) -> Result<kassa_processors::Event, EventError> {
    Err(EventError::Signature(err))
}

#[test]
#[ignore = "needs the stripe Python library: set KASSA_TEST_PYTHON (see README Testing)"]
fn a_header_from_stripe_python_verifies() {
    let python: PathBuf = python!();
    let now = support::now();
    let header = stripe_sign(&python, EVENT, SECRET, now);
    assert!(header.starts_with(&format!("t={now},v1=")), "{header}");

    assert_eq!(verify(SECRET, EVENT, Some(&header), now), Ok(()));
    let event = processor(&[SECRET]).parse_event(EVENT, &header, now).unwrap();
    assert_eq!(event.id, "evt_3QPmZ2AbCdEfGhIj1EvtSucc");
    assert_eq!(event.kind, "payment_intent.succeeded");
    assert_eq!(event.created, 1_732_550_461);
    assert_eq!(event.object_id(), Some("pi_3QPmZ2AbCdEfGhIj1KlMnOpQ"));
    assert_eq!(event.metadata("kassa_cart_id"), Some("cart_01JDQX5Y7Z8A9B0C1D2E3F4G5H"));
}

#[test]
#[ignore = "needs the stripe Python library: set KASSA_TEST_PYTHON (see README Testing)"]
fn a_tampered_body_is_refused() {
    let python = python!();
    let now = support::now();
    let header = stripe_sign(&python, EVENT, SECRET, now);
    let tampered = String::from_utf8(EVENT.to_vec()).unwrap().replace("\"amount\": 2000", "\"amount\": 1");
    assert_ne!(tampered.as_bytes(), EVENT);

    assert_eq!(verify(SECRET, tampered.as_bytes(), Some(&header), now), Err(SignatureError::NoMatch));
    assert_eq!(processor(&[SECRET]).parse_event(tampered.as_bytes(), &header, now), refused(SignatureError::NoMatch));
}

#[test]
#[ignore = "needs the stripe Python library: set KASSA_TEST_PYTHON (see README Testing)"]
fn a_wrong_secret_is_refused() {
    let python = python!();
    let now = support::now();
    let header = stripe_sign(&python, EVENT, "whsec_someone_else", now);
    assert_eq!(verify(SECRET, EVENT, Some(&header), now), Err(SignatureError::NoMatch));
    assert_eq!(processor(&[SECRET]).parse_event(EVENT, &header, now), refused(SignatureError::NoMatch));
}

#[test]
#[ignore = "needs the stripe Python library: set KASSA_TEST_PYTHON (see README Testing)"]
fn a_timestamp_older_than_the_tolerance_is_refused() {
    let python = python!();
    let now = support::now();
    let old = stripe_sign(&python, EVENT, SECRET, now - 301);
    assert_eq!(verify(SECRET, EVENT, Some(&old), now), Err(SignatureError::Expired(300)));
    assert_eq!(processor(&[SECRET]).parse_event(EVENT, &old, now), refused(SignatureError::Expired(300)));
    // stripe-python refuses it too.
    assert!(stripe_verify(&python, EVENT, SECRET, &old).starts_with("refused: Timestamp outside the tolerance zone"));

    let recent = stripe_sign(&python, EVENT, SECRET, now - 299);
    assert_eq!(verify(SECRET, EVENT, Some(&recent), now), Ok(()));
}

#[test]
fn a_missing_header_is_refused() {
    let now = support::now();
    assert_eq!(verify(SECRET, EVENT, None, now), Err(SignatureError::MissingHeader));
    assert_eq!(processor(&[SECRET]).parse_event(EVENT, "", now), refused(SignatureError::MissingHeader));
}

#[test]
#[ignore = "needs the stripe Python library: set KASSA_TEST_PYTHON (see README Testing)"]
fn one_matching_signature_among_several_is_enough() {
    let python = python!();
    let now = support::now();
    let other = stripe_sign(&python, EVENT, "whsec_someone_else", now);
    let ours = stripe_sign(&python, EVENT, SECRET, now);
    let (_, ours_v1) = ours.split_once(",v1=").unwrap();
    let header = format!("{other},v1={ours_v1}");

    assert_eq!(verify(SECRET, EVENT, Some(&header), now), Ok(()));
    assert!(processor(&[SECRET]).parse_event(EVENT, &header, now).is_ok());
    // The same header is what stripe-python accepts too.
    assert_eq!(
        stripe_verify(&python, EVENT, SECRET, &header),
        "ok evt_3QPmZ2AbCdEfGhIj1EvtSucc payment_intent.succeeded"
    );
}

#[test]
#[ignore = "needs the stripe Python library: set KASSA_TEST_PYTHON (see README Testing)"]
fn during_rotation_an_event_signed_with_the_previous_secret_is_accepted() {
    let python = python!();
    let now = support::now();
    let header = stripe_sign(&python, EVENT, PREVIOUS, now);

    let rotating = processor(&[SECRET, PREVIOUS]);
    assert_eq!(rotating.parse_event(EVENT, &header, now).unwrap().id, "evt_3QPmZ2AbCdEfGhIj1EvtSucc");
    let rotated = processor(&[SECRET]);
    assert_eq!(rotated.parse_event(EVENT, &header, now), refused(SignatureError::NoMatch));
    let stranger = stripe_sign(&python, EVENT, "whsec_someone_else", now);
    assert_eq!(rotating.parse_event(EVENT, &stranger, now), refused(SignatureError::NoMatch));
}

#[test]
#[ignore = "needs the stripe Python library: set KASSA_TEST_PYTHON (see README Testing)"]
fn kassas_signature_verifies_in_stripe_python() {
    let python = python!();
    let now = support::now();
    let header = signature::sign(SECRET, now, EVENT);
    assert_eq!(
        stripe_verify(&python, EVENT, SECRET, &header),
        "ok evt_3QPmZ2AbCdEfGhIj1EvtSucc payment_intent.succeeded"
    );
    // And the same library refuses what it should, so the agreement above means something.
    assert!(stripe_verify(&python, EVENT, "whsec_someone_else", &header).starts_with("refused: No signatures found"));
    let tampered = String::from_utf8(EVENT.to_vec()).unwrap().replace("2000", "2001");
    assert!(stripe_verify(&python, tampered.as_bytes(), SECRET, &header).starts_with("refused: No signatures found"));
    let old = signature::sign(SECRET, now - 301, EVENT);
    assert!(stripe_verify(&python, EVENT, SECRET, &old).starts_with("refused: Timestamp outside the tolerance zone"));
}

#[test]
#[ignore = "needs the stripe Python library: set KASSA_TEST_PYTHON (see README Testing)"]
fn non_ascii_payloads_sign_alike_both_ways() {
    let python = python!();
    let now = support::now();
    let payload = r#"{"id":"evt_ü","type":"customer.created","created":1732550461,"data":{"object":{"id":"cus_1","name":"Zoë Brontë","metadata":{"city":"Zürich €"}}}}"#.as_bytes();
    assert_eq!(stripe_sign(&python, payload, SECRET, now), signature::sign(SECRET, now, payload));
    let event = processor(&[SECRET]).parse_event(payload, &stripe_sign(&python, payload, SECRET, now), now).unwrap();
    assert_eq!(event.metadata("city"), Some("Zürich €"));
    assert_eq!(
        stripe_verify(&python, payload, SECRET, &signature::sign(SECRET, now, payload)),
        "ok evt_ü customer.created"
    );
}

#[test]
#[ignore = "needs the stripe Python library: set KASSA_TEST_PYTHON (see README Testing)"]
fn a_validly_signed_payload_that_is_not_an_event_is_malformed() {
    let python = python!();
    let now = support::now();
    let payload = br#"{"id":"evt_1","type":"payment_intent.succeeded"#;
    let header = stripe_sign(&python, payload, SECRET, now);
    assert!(matches!(processor(&[SECRET]).parse_event(payload, &header, now), Err(EventError::Malformed(_))));
}

#[test]
#[ignore = "needs the stripe npm package: set KASSA_TEST_STRIPE_NODE (see README Testing)"]
fn kassas_signature_verifies_in_stripe_node() {
    let Some(node) = support::stripe_node_modules() else { return };
    let now = support::now();
    let header = signature::sign(SECRET, now, EVENT);
    let verify =
        |payload: &[u8], secret: &str, header: &str| support::stripe_node_verify(&node, payload, secret, header);
    assert_eq!(verify(EVENT, SECRET, &header), "ok evt_3QPmZ2AbCdEfGhIj1EvtSucc payment_intent.succeeded");
    assert!(verify(EVENT, "whsec_someone_else", &header).starts_with("refused: No signatures found"));
    let tampered = String::from_utf8(EVENT.to_vec()).unwrap().replace("2000", "2001");
    assert!(verify(tampered.as_bytes(), SECRET, &header).starts_with("refused: No signatures found"));
    let old = signature::sign(SECRET, now - 301, EVENT);
    assert!(verify(EVENT, SECRET, &old).starts_with("refused: Timestamp outside the tolerance zone"));
    // A header stripe-node makes (`generateTestHeaderString`) verifies in Kassa.
    let theirs = support::stripe_node(
        &node,
        json!({"mode": "sign", "secret": SECRET, "timestamp": now, "payload_hex": hex::encode(EVENT)}),
    );
    assert_eq!(theirs, header, "the same header both ways");
    assert_eq!(signature::verify(SECRET, EVENT, Some(&theirs), now, DEFAULT_TOLERANCE_SECS), Ok(()));
}
