//! Dashboard users and their sessions.
//!
//! - Passwords are hashed with Argon2id (PHC string, salt inside); hashing and checking run on
//!   the blocking pool, never on the async workers.
//! - A session is a random 256-bit token in an `HttpOnly` cookie; the database keeps only its
//!   SHA-256, with the session's CSRF token (random too, compared in constant time).
//! - Failed sign-ins are counted per (email, client address): after [`FREE_FAILURES`] the
//!   next attempt must wait, twice as long after each further failure (up to
//!   [`MAX_WAIT_SECS`]), and is refused unchecked until then — so guessing is slowed for one
//!   address without locking the real user out from another.

use crate::error::{ApiError, ApiResult};
use crate::services::audit::AuditRecord;
use crate::services::dashboard::Role;
use crate::services::dashboard::audit::audit;
use crate::services::dashboard::signed_in::SignedIn;
use crate::state::AppState;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use kassa_domain::ids::IdKind;
use kassa_store::Store;
use kassa_store::dashboard::{self as db, SessionRow, UserRow};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// How long a session lasts after sign-in.
pub const SESSION_SECS: i64 = 12 * 3600;
/// Failed sign-ins allowed before the next one has to wait.
pub const FREE_FAILURES: i64 = 5;
/// The longest wait between attempts.
pub const MAX_WAIT_SECS: i64 = 15 * 60;
/// Failures older than this are forgotten.
const FAILURE_MEMORY_SECS: i64 = 3600;
/// Passwords shorter than this are refused.
pub const MIN_PASSWORD_LEN: usize = 10;

/// The demo owner `kassa serve --demo` creates.
pub const DEMO_EMAIL: &str = "demo@kassa.test";

/// A random URL-safe token of 256 bits.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The email as users are keyed: trimmed, lower-cased, checked.
pub fn normalize_email(email: &str) -> ApiResult<String> {
    crate::services::customers::email("email", email).map(|e| e.to_lowercase())
}

fn check_password_rules(password: &str) -> ApiResult<()> {
    if password.chars().count() < MIN_PASSWORD_LEN || password.len() > 1024 {
        return Err(ApiError::invalid(
            "password",
            format!("The password must have {MIN_PASSWORD_LEN} to 1024 characters."),
        ));
    }
    Ok(())
}

async fn hash_password(password: String) -> ApiResult<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string())
    })
    .await
    .map_err(|e| ApiError::Internal(e.into()))?
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("hashing a password: {e}")))
}

async fn password_matches(password: String, hash: String) -> ApiResult<bool> {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
    })
    .await
    .map_err(|e| ApiError::Internal(e.into()))
}

/// A user as shown in lists (never the hash).
#[derive(Clone, Debug, serde::Serialize)]
pub struct User {
    pub id: String,
    pub email: String,
    pub role: String,
    pub created: i64,
}

impl From<UserRow> for User {
    fn from(u: UserRow) -> User {
        User { id: u.id, email: u.email, role: u.role, created: u.created }
    }
}

/// Creates a user (`kassa users create`, or an owner in the dashboard); 409 when the email
/// is taken.
pub async fn create(store: &Store, email: &str, role: Role, password: &str, now: i64) -> ApiResult<User> {
    create_audited(store, email, role, password, now, None).await
}

/// [`create`], with `audit` (the owner who added the user) committed with the new user.
pub async fn create_audited(
    store: &Store,
    email: &str,
    role: Role,
    password: &str,
    now: i64,
    audit: Option<&AuditRecord>,
) -> ApiResult<User> {
    let email = normalize_email(email)?;
    check_password_rules(password)?;
    let row = UserRow {
        id: IdKind::DashboardUser.new_id(),
        email: email.clone(),
        role: role.as_str().into(),
        password_hash: hash_password(password.to_string()).await?,
        created: now,
        updated: now,
    };
    let mut tx = store.begin().await?;
    if !db::insert_user(tx.conn(), &row).await? {
        return Err(ApiError::conflict("user_exists", format!("A dashboard user with the email {email} exists.")));
    }
    crate::services::audit::write(audit, &mut tx, now).await?;
    tx.commit().await?;
    Ok(row.into())
}

/// Every dashboard user, by email.
pub async fn list(store: &Store) -> ApiResult<Vec<User>> {
    Ok(db::users(store.reader()).await?.into_iter().map(User::from).collect())
}

/// The demo owner of `kassa serve --demo`, with a fresh password each start (only its hash is
/// kept, so it cannot be shown again); their old sessions end. Returns (email, password).
pub async fn demo_owner(store: &Store, now: i64) -> ApiResult<(String, String)> {
    let password = random_token()[..20].to_string();
    let hash = hash_password(password.clone()).await?;
    let row = UserRow {
        id: IdKind::DashboardUser.new_id(),
        email: DEMO_EMAIL.into(),
        role: Role::Owner.as_str().into(),
        password_hash: hash.clone(),
        created: now,
        updated: now,
    };
    if !db::insert_user(store.writer(), &row).await? {
        db::update_user(store.writer(), DEMO_EMAIL, Role::Owner.as_str(), &hash, now).await?;
        if let Some(u) = db::user_by_email(store.reader(), DEMO_EMAIL).await? {
            db::delete_sessions_of(store.writer(), &u.id).await?;
        }
    }
    Ok((DEMO_EMAIL.into(), password))
}

/// A session just opened: the cookie's token (shown to this browser only) and who it is.
pub struct Opened {
    pub token: String,
    pub user: SignedIn,
}

/// Seconds the (email, client) pair must still wait before its next attempt.
fn wait_left(failures: i64, last_failure: i64, now: i64) -> i64 {
    if failures < FREE_FAILURES || now - last_failure > FAILURE_MEMORY_SECS {
        return 0;
    }
    let wait = 1i64.checked_shl((failures - FREE_FAILURES + 1).min(20) as u32).unwrap_or(MAX_WAIT_SECS);
    (last_failure + wait.min(MAX_WAIT_SECS) - now).max(0)
}

/// Signs in with email and password from `client` (the peer address). A wrong email and a
/// wrong password answer alike, and take as long (the hash is checked either way).
pub async fn sign_in(state: &AppState, email: &str, password: &str, client: &str) -> ApiResult<Opened> {
    let refused = || ApiError::Authentication("Wrong email or password.".into());
    let Ok(email) = normalize_email(email) else { return Err(refused()) };
    let now = state.clock.now();
    let (failures, last) = db::failures(state.store.reader(), &email, client).await?;
    let wait = wait_left(failures, last, now);
    if wait > 0 {
        return Err(ApiError::RateLimited { scope: "for this sign-in", retry_after: wait as u64 });
    }
    let user = db::user_by_email(state.store.reader(), &email).await?;
    // An unknown email still costs one hash check, so timing does not tell which emails exist.
    let hash = user.as_ref().map(|u| u.password_hash.clone()).unwrap_or_else(|| DUMMY_HASH.to_string());
    let ok = password_matches(password.to_string(), hash).await? && user.is_some();
    let Some(user) = user.filter(|_| ok) else {
        db::record_failure(state.store.writer(), &email, client, now, now - FAILURE_MEMORY_SECS).await?;
        return Err(refused());
    };
    db::clear_failures(state.store.writer(), &email, client).await?;
    db::delete_expired_sessions_of(state.store.writer(), &user.id, now).await?;
    let token = random_token();
    let session = SessionRow {
        token_hash: token_hash(&token),
        user_id: user.id.clone(),
        csrf_token: random_token(),
        created: now,
        expires: now + SESSION_SECS,
    };
    db::insert_session(state.store.writer(), &session).await?;
    let signed_in = SignedIn {
        user_id: user.id,
        email: user.email,
        role: Role::parse(&user.role)?,
        csrf_token: session.csrf_token,
        token_hash: session.token_hash,
    };
    audit(state, &signed_in, "user.signed_in", &signed_in.user_id, serde_json::json!({})).await?;
    Ok(Opened { token, user: signed_in })
}

/// The live session of a cookie's token, if any.
pub async fn session(state: &AppState, token: &str) -> ApiResult<Option<SignedIn>> {
    if token.is_empty() || token.len() > 128 {
        return Ok(None);
    }
    let found = db::live_session(state.store.reader(), &token_hash(token), state.clock.now()).await?;
    Ok(match found {
        Some(s) => Some(SignedIn {
            user_id: s.session.user_id,
            email: s.email,
            role: Role::parse(&s.role)?,
            csrf_token: s.session.csrf_token,
            token_hash: s.session.token_hash,
        }),
        None => None,
    })
}

/// Ends this session (sign out), or every session of the user (sign out everywhere).
pub async fn sign_out(state: &AppState, user: &SignedIn, everywhere: bool) -> ApiResult<()> {
    if everywhere {
        db::delete_sessions_of(state.store.writer(), &user.user_id).await?;
    } else {
        db::delete_session(state.store.writer(), &user.token_hash).await?;
    }
    let action = if everywhere { "user.signed_out_everywhere" } else { "user.signed_out" };
    audit(state, user, action, &user.user_id, serde_json::json!({})).await
}

/// An Argon2id hash of a random password nobody knows, checked when the email is unknown.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0cKqF8W7HvhhJm7I0F4cH9nV0LZk1C9aR3y8hY0w1XQ";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_sign_ins_wait_longer_each_time_up_to_the_cap() {
        assert_eq!(wait_left(FREE_FAILURES - 1, 100, 100), 0);
        assert_eq!(wait_left(FREE_FAILURES, 100, 100), 2);
        assert_eq!(wait_left(FREE_FAILURES + 1, 100, 100), 4);
        assert_eq!(wait_left(FREE_FAILURES + 1, 100, 103), 1);
        assert_eq!(wait_left(FREE_FAILURES + 40, 100, 100), MAX_WAIT_SECS);
        assert_eq!(wait_left(FREE_FAILURES + 40, 100, 100 + FAILURE_MEMORY_SECS + 1), 0);
    }

    #[test]
    fn the_dummy_hash_parses() {
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }
}
