//! Stripe's webhook signature scheme, used for events in (from Stripe or the test processor)
//! and for Kassa's own webhooks out.
//!
//! `Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">[,v1=…]`. Several `v1`
//! values appear while a secret is rotated; any one that matches is enough. Written by hand:
//! it is twenty lines over `hmac`, and the crates that offer it come with a whole Stripe SDK.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Stripe's default tolerance against replays.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing")]
    MissingHeader,
    #[error("the Stripe-Signature header has no timestamp or no v1 signature")]
    MalformedHeader,
    #[error("no signature matches the payload and secret")]
    NoMatch,
    #[error("the signature timestamp is outside the tolerance of {0} s")]
    Expired(i64),
}

fn mac(secret: &str, timestamp: i64, payload: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac
}

/// The header value for `payload` signed at `timestamp`.
pub fn sign(secret: &str, timestamp: i64, payload: &[u8]) -> String {
    let sig = hex::encode(mac(secret, timestamp, payload).finalize().into_bytes());
    format!("t={timestamp},v1={sig}")
}

/// Verifies `header` for the raw `payload`: any `v1` matching (constant-time compare) and the
/// timestamp within `tolerance` seconds of `now`, in either direction.
pub fn verify(
    secret: &str,
    payload: &[u8],
    header: Option<&str>,
    now: i64,
    tolerance: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::MissingHeader)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else {
            continue;
        };
        match k {
            "t" => timestamp = v.parse::<i64>().ok(),
            "v1" => {
                if let Ok(bytes) = hex::decode(v) {
                    signatures.push(bytes);
                }
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::MalformedHeader)?;
    if signatures.is_empty() {
        return Err(SignatureError::MalformedHeader);
    }
    let expected = mac(secret, timestamp, payload);
    // `verify_slice` compares in constant time.
    if !signatures.iter().any(|sig| expected.clone().verify_slice(sig).is_ok()) {
        return Err(SignatureError::NoMatch);
    }
    if (now - timestamp).abs() > tolerance {
        return Err(SignatureError::Expired(tolerance));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";

    #[test]
    fn round_trip() {
        let h = sign(SECRET, 1_700_000_000, b"{\"id\":\"evt_1\"}");
        assert!(verify(SECRET, b"{\"id\":\"evt_1\"}", Some(&h), 1_700_000_100, 300).is_ok());
    }

    #[test]
    fn tampered_body_wrong_secret_expired_missing() {
        let h = sign(SECRET, 1_700_000_000, b"body");
        assert_eq!(verify(SECRET, b"bodY", Some(&h), 1_700_000_000, 300), Err(SignatureError::NoMatch));
        assert_eq!(verify("whsec_other", b"body", Some(&h), 1_700_000_000, 300), Err(SignatureError::NoMatch));
        assert_eq!(verify(SECRET, b"body", Some(&h), 1_700_000_301, 300), Err(SignatureError::Expired(300)));
        assert_eq!(verify(SECRET, b"body", None, 1_700_000_000, 300), Err(SignatureError::MissingHeader));
        assert_eq!(verify(SECRET, b"body", Some("garbage"), 1_700_000_000, 300), Err(SignatureError::MalformedHeader));
    }

    #[test]
    fn any_of_several_signatures_may_match() {
        let good = sign(SECRET, 1_700_000_000, b"body");
        let bad = sign("whsec_old", 1_700_000_000, b"body");
        let good_v1 = good.split(",v1=").nth(1).unwrap();
        let header = format!("{bad},v1={good_v1},v0=ignored");
        assert!(verify(SECRET, b"body", Some(&header), 1_700_000_000, 300).is_ok());
    }
}
