//! Client secrets: the capability a guest holds for what it owns (a cart, a checkout session),
//! like Stripe's `client_secret` of a PaymentIntent. An id alone opens nothing on the store
//! API; the id and its secret do.
//!
//! A secret is `<object id>_secret_<32 random letters and digits>` (about 190 random bits from
//! the thread's CSPRNG). Carrying the object id makes a secret self-describing (a link needs
//! only the secret) and binds it to one object: the stored hash covers the id as well.
//!
//! Kassa stores only the SHA-256 of a secret, never the secret. A secret is a bearer
//! credential for one object, so a copy of the database (a backup, a replica, a support
//! query) must not hand out working capabilities — the same reason API keys are stored
//! hashed. A fast unsalted hash is enough because the secret is long and random: there is
//! nothing to brute-force, so a slow password hash would only cost time on the pay path. The
//! price is that a secret is shown once, in the answer that created its object.

use rand::Rng;
use rand::distributions::Alphanumeric;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Random characters after `_secret_`.
const RANDOM_CHARS: usize = 32;

/// The longest secret Kassa looks at (ids are far shorter); longer input never matches.
pub const MAX_LEN: usize = 255;

/// A fresh secret for the object `id`, and the hash to store.
pub fn generate(id: &str) -> (String, String) {
    let random: String = rand::thread_rng().sample_iter(&Alphanumeric).take(RANDOM_CHARS).map(char::from).collect();
    let secret = format!("{id}_secret_{random}");
    let hash = hash(&secret);
    (secret, hash)
}

/// What Kassa stores of a secret: its SHA-256, in lower-case hex.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether `presented` is the secret whose hash is `stored`. The hashes are compared in
/// constant time, so the answer's timing tells nothing about how close a guess was.
pub fn verify(presented: &str, stored: &str) -> bool {
    if presented.is_empty() || presented.len() > MAX_LEN {
        return false;
    }
    let presented = Sha256::digest(presented.as_bytes());
    let Ok(stored) = hex::decode(stored) else { return false };
    presented.as_slice().ct_eq(&stored).into()
}

/// Whether `presented` opens an object whose capabilities are `stored` (absent ones are
/// skipped: rows made before secrets existed have none, and open for their owner only).
pub fn verify_any(presented: Option<&str>, stored: &[Option<&str>]) -> bool {
    let Some(presented) = presented else { return false };
    // Every candidate is checked, so the time taken does not say which one matched.
    stored.iter().flatten().fold(false, |found, h| verify(presented, h) | found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_names_its_object_and_verifies_against_its_hash_only() {
        let (secret, stored) = generate("cart_01jd0000000000000000000000");
        assert!(secret.starts_with("cart_01jd0000000000000000000000_secret_"));
        assert_eq!(secret.len(), "cart_01jd0000000000000000000000_secret_".len() + RANDOM_CHARS);
        assert!(secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'), "safe in a URL and a header");
        assert_eq!(stored.len(), 64);
        assert!(!stored.contains(&secret[secret.len() - RANDOM_CHARS..]), "the secret is not stored");
        assert!(verify(&secret, &stored));
        // Any other string of the same shape is refused, including one differing in one character.
        let mut other = secret.clone().into_bytes();
        let last = other.len() - 1;
        other[last] = if other[last] == b'a' { b'b' } else { b'a' };
        assert!(!verify(std::str::from_utf8(&other).unwrap(), &stored));
        let (second, second_hash) = generate("cart_01jd0000000000000000000000");
        assert_ne!(second, secret, "fresh for every object");
        assert!(!verify(&second, &stored));
        assert!(!verify("", &hash("")));
        assert!(!verify(&secret, "not hex"));
        assert!(verify_any(Some(&second), &[None, Some(&stored), Some(&second_hash)]));
        assert!(!verify_any(Some(&second), &[None, Some(&stored)]));
        assert!(!verify_any(None, &[Some(&stored)]));
    }
}
