//! API keys: secret keys (`sk_…`) for the admin API, publishable keys (`pk_…`) for the store
//! API. A key is shown once, when created; only its SHA-256 is stored. A plain hash is enough
//! (unlike passwords): keys are 40 random base62 characters, far beyond brute force.

use crate::services::audit::{self, AuditRecord};
use kassa_domain::ids::IdKind;
use kassa_store::api_keys;
/// An API key as stored: its hash, never the key.
pub use kassa_store::api_keys::ApiKeyRow;
use kassa_store::{Store, StoreError, settings};
use rand::Rng;
use sha2::{Digest, Sha256};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Secret,
    Publishable,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Secret => "secret",
            KeyKind::Publishable => "publishable",
        }
    }
    fn prefix(self) -> &'static str {
        match self {
            KeyKind::Secret => "sk_",
            KeyKind::Publishable => "pk_",
        }
    }
}

/// A freshly created key; `secret` exists only in this value.
pub struct NewKey {
    pub row: ApiKeyRow,
    pub secret: String,
}

pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn random_key(kind: KeyKind) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::thread_rng();
    let body: String = (0..40).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect();
    format!("{}{body}", kind.prefix())
}

pub async fn create(store: &Store, kind: KeyKind, name: Option<String>, now: i64) -> Result<NewKey, StoreError> {
    create_audited(store, kind, name, now, None).await
}

/// [`create`], with a person's `audit` record (the dashboard's) committed with the key.
pub async fn create_audited(
    store: &Store,
    kind: KeyKind,
    name: Option<String>,
    now: i64,
    audit: Option<&AuditRecord>,
) -> Result<NewKey, StoreError> {
    let mut tx = store.begin().await?;
    let key = insert_new(&mut tx, kind, name, now).await?;
    audit::write(audit, &mut tx, now).await?;
    tx.commit().await?;
    Ok(key)
}

async fn insert_new(
    tx: &mut kassa_store::Tx,
    kind: KeyKind,
    name: Option<String>,
    now: i64,
) -> Result<NewKey, StoreError> {
    let secret = random_key(kind);
    let row = ApiKeyRow {
        id: IdKind::ApiKey.new_id(),
        kind: kind.as_str().into(),
        secret_hash: hash_key(&secret),
        last4: secret[secret.len() - 4..].to_string(),
        name,
        created: now,
        revoked_at: None,
    };
    api_keys::insert(tx.conn(), &row).await?;
    Ok(NewKey { row, secret })
}

/// On the very first start, creates one secret and one publishable key and returns them to
/// be printed once. Several servers starting together on a fresh database agree on one
/// winner through the `bootstrap_keys` setting, inserted in the same transaction.
pub async fn bootstrap(store: &Store, now: i64) -> Result<Option<(NewKey, NewKey)>, StoreError> {
    let mut tx = store.begin().await?;
    if !settings::insert_if_absent(tx.conn(), "bootstrap_keys", &now.to_string()).await? {
        return Ok(None);
    }
    let secret = insert_new(&mut tx, KeyKind::Secret, Some("default secret key".into()), now).await?;
    let publishable = insert_new(&mut tx, KeyKind::Publishable, Some("default publishable key".into()), now).await?;
    tx.commit().await?;
    Ok(Some((secret, publishable)))
}

/// Outcome of presenting a key.
pub enum KeyCheck {
    Valid(ApiKeyRow),
    Unknown,
    Revoked,
}

/// How long this process trusts a key it looked up: a revocation made by another process
/// (`kassa keys revoke`, another server) takes effect within this time; one made through
/// [`KeyCache::revoke`] in this server at once. It saves a query on every request.
const CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// This server's recently looked-up keys (part of `AppState`): saves a query on every
/// request, and a revocation through [`KeyCache::revoke`] empties its entry at once.
#[derive(Default)]
pub struct KeyCache {
    entries: std::sync::Mutex<std::collections::HashMap<String, (Option<ApiKeyRow>, std::time::Instant)>>,
}

impl KeyCache {
    fn entries(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (Option<ApiKeyRow>, std::time::Instant)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What presenting `presented` means: valid, revoked or unknown.
    pub async fn check(&self, store: &Store, presented: &str) -> Result<KeyCheck, StoreError> {
        let hash = hash_key(presented);
        let cached = self.entries().get(&hash).filter(|(_, at)| at.elapsed() < CACHE_TTL).map(|(row, _)| row.clone());
        let row = match cached {
            Some(row) => row,
            None => {
                let row = api_keys::find_by_hash(store.reader(), &hash).await?;
                let mut c = self.entries();
                // Unknown keys are cached too (a flood of bad keys costs no queries), bounded.
                if c.len() > 10_000 {
                    c.clear();
                }
                c.insert(hash, (row.clone(), std::time::Instant::now()));
                row
            }
        };
        Ok(match row {
            None => KeyCheck::Unknown,
            Some(row) if row.revoked_at.is_some() => KeyCheck::Revoked,
            Some(row) => KeyCheck::Valid(row),
        })
    }

    /// Revokes a key, effective at once in this server; returns false when no such key is
    /// active. A person's `audit` record (the dashboard's) commits with the revocation.
    pub async fn revoke(
        &self,
        store: &Store,
        id: &str,
        now: i64,
        audit: Option<&AuditRecord>,
    ) -> Result<bool, StoreError> {
        let mut tx = store.begin().await?;
        let revoked = api_keys::revoke(tx.conn(), id, now).await?;
        if revoked {
            audit::write(audit, &mut tx, now).await?;
        }
        tx.commit().await?;
        self.entries().retain(|_, (row, _)| row.as_ref().is_none_or(|r| r.id != id));
        Ok(revoked)
    }
}

/// Revokes a key (`kassa keys revoke`); returns false when no such key is active. Servers
/// notice within [`CACHE_TTL`]; a server's own [`KeyCache::revoke`] at once.
pub async fn revoke(store: &Store, id: &str, now: i64) -> Result<bool, StoreError> {
    api_keys::revoke(store.writer(), id, now).await
}
