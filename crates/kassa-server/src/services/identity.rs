//! Verifying the merchant's customer JWTs (HS256 secret, RS256/EdDSA public key as PEM, or
//! a JWKS file). Only the configured algorithms are accepted, so `alg: none` and algorithm
//! swaps (an HS256 token "signed" with a public key) are refused.

use crate::config::CustomerAuthSettings;
use crate::error::ApiError;
use anyhow::{Context, bail};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use secrecy::ExposeSecret;
use serde::Deserialize;

/// Claims of the merchant's customer JWT that Kassa reads.
#[derive(Debug, Clone, Deserialize)]
pub struct CustomerClaims {
    pub sub: String,
    pub email: Option<String>,
    #[serde(default)]
    pub email_verified: bool,
    pub name: Option<String>,
}

struct Key {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

pub struct CustomerTokens {
    keys: Vec<Key>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: u64,
}

impl CustomerTokens {
    /// Loads the configured keys; `None` when customer sign-in is not configured. Errors name
    /// the setting, and stop the server at start.
    pub fn from_settings(s: &CustomerAuthSettings) -> anyhow::Result<Option<CustomerTokens>> {
        let mut keys = Vec::new();
        if let Some(secret) = &s.jwt_hs256_secret {
            keys.push(Key {
                kid: None,
                alg: Algorithm::HS256,
                key: DecodingKey::from_secret(secret.expose_secret().as_bytes()),
            });
        }
        if let Some(path) = &s.jwt_public_key_file {
            let pem = std::fs::read(path)
                .with_context(|| format!("customer_auth.jwt_public_key_file: cannot read {}", path.display()))?;
            let key = if let Ok(k) = DecodingKey::from_rsa_pem(&pem) {
                Key { kid: None, alg: Algorithm::RS256, key: k }
            } else if let Ok(k) = DecodingKey::from_ed_pem(&pem) {
                Key { kid: None, alg: Algorithm::EdDSA, key: k }
            } else {
                bail!(
                    "customer_auth.jwt_public_key_file: {} is not an RSA or Ed25519 public key in PEM",
                    path.display()
                );
            };
            keys.push(key);
        }
        if let Some(path) = &s.jwks_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("customer_auth.jwks_file: cannot read {}", path.display()))?;
            let set: JwkSet = serde_json::from_str(&text)
                .with_context(|| format!("customer_auth.jwks_file: {} is not a JWKS", path.display()))?;
            for jwk in &set.keys {
                let key = DecodingKey::from_jwk(jwk).with_context(|| "customer_auth.jwks_file: unusable key")?;
                let alg = match &jwk.algorithm {
                    jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
                    jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
                    _ => bail!("customer_auth.jwks_file: only RSA (RS256) and OKP (EdDSA) keys are supported"),
                };
                keys.push(Key { kid: jwk.common.key_id.clone(), alg, key });
            }
        }
        if keys.is_empty() {
            return Ok(None);
        }
        Ok(Some(CustomerTokens { keys, issuer: s.issuer.clone(), audience: s.audience.clone(), leeway: s.leeway_secs }))
    }

    /// Verifies signature, `exp`, `nbf`, and `iss`/`aud` when configured.
    pub fn verify(&self, token: &str) -> Result<CustomerClaims, ApiError> {
        let refuse = |why: &str| ApiError::Authentication(format!("Invalid customer token: {why}."));
        let header = decode_header(token).map_err(|_| refuse("malformed or unsupported algorithm"))?;
        let key = self
            .keys
            .iter()
            .filter(|k| k.alg == header.alg)
            .find(|k| k.kid.is_none() || header.kid.is_none() || k.kid == header.kid)
            .ok_or_else(|| refuse("algorithm or key id not accepted"))?;
        let mut validation = Validation::new(key.alg);
        validation.leeway = self.leeway;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        match &self.issuer {
            Some(iss) => validation.set_issuer(&[iss]),
            None => validation.iss = None,
        }
        match &self.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        let data = decode::<CustomerClaims>(token, &key.key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind::*;
            match e.kind() {
                ExpiredSignature => refuse("expired"),
                ImmatureSignature => refuse("not valid yet"),
                InvalidIssuer => refuse("wrong issuer"),
                InvalidAudience => refuse("wrong audience"),
                InvalidSignature => refuse("bad signature"),
                MissingRequiredClaim(c) => refuse(&format!("missing claim {c}")),
                _ => refuse("rejected"),
            }
        })?;
        if data.claims.sub.is_empty() || data.claims.sub.len() > 255 {
            return Err(refuse("sub must have 1 to 255 characters"));
        }
        // The claims are strings Kassa stores, like any other input (see `api::nul`).
        let claims = [Some(&data.claims.sub), data.claims.email.as_ref(), data.claims.name.as_ref()];
        if claims.into_iter().flatten().any(|c| c.contains('\0')) {
            return Err(refuse("claims must not contain U+0000"));
        }
        Ok(data.claims)
    }
}
