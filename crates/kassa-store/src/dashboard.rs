//! The dashboard's people and sessions, the throttle of failed sign-ins, and the read-only
//! queries of its pages (order search, overview figures). Data access only: who may do what,
//! and when a sign-in is refused, is decided in `kassa-server`'s services.

use crate::Result;
use crate::sql::{self, Listed, Page};
use sqlx::{Any, Executor};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub role: String,
    pub password_hash: String,
    pub created: i64,
    pub updated: i64,
}

const USER_COLUMNS: &str = "id, email, role, password_hash, created, updated";

/// Inserts a user; false when the email is taken.
pub async fn insert_user<'e, E: Executor<'e, Database = Any>>(db: E, u: &UserRow) -> Result<bool> {
    let done = sql::query(
        "INSERT INTO dashboard_users (id, email, role, password_hash, created, updated) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (email) DO NOTHING",
    )
    .bind(&u.id)
    .bind(&u.email)
    .bind(&u.role)
    .bind(&u.password_hash)
    .bind(u.created)
    .bind(u.updated)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Sets the password hash and role of the user with this email.
pub async fn update_user<'e, E: Executor<'e, Database = Any>>(
    db: E,
    email: &str,
    role: &str,
    password_hash: &str,
    now: i64,
) -> Result<bool> {
    let done = sql::query("UPDATE dashboard_users SET role = $2, password_hash = $3, updated = $4 WHERE email = $1")
        .bind(email)
        .bind(role)
        .bind(password_hash)
        .bind(now)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn user_by_email<'e, E: Executor<'e, Database = Any>>(db: E, email: &str) -> Result<Option<UserRow>> {
    Ok(sql::query_as(&format!("SELECT {USER_COLUMNS} FROM dashboard_users WHERE email = $1"))
        .bind(email)
        .fetch_optional(db)
        .await?)
}

pub async fn users<'e, E: Executor<'e, Database = Any>>(db: E) -> Result<Vec<UserRow>> {
    Ok(sql::query_as(&format!("SELECT {USER_COLUMNS} FROM dashboard_users ORDER BY email")).fetch_all(db).await?)
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct SessionRow {
    pub token_hash: String,
    pub user_id: String,
    pub csrf_token: String,
    pub created: i64,
    pub expires: i64,
}

pub async fn insert_session<'e, E: Executor<'e, Database = Any>>(db: E, s: &SessionRow) -> Result<()> {
    sql::query(
        "INSERT INTO dashboard_sessions (token_hash, user_id, csrf_token, created, expires) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&s.token_hash)
    .bind(&s.user_id)
    .bind(&s.csrf_token)
    .bind(s.created)
    .bind(s.expires)
    .execute(db)
    .await?;
    Ok(())
}

/// A live session (not expired at `now`) and its user.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct SessionWithUser {
    #[sqlx(flatten)]
    pub session: SessionRow,
    pub email: String,
    pub role: String,
}

pub async fn live_session<'e, E: Executor<'e, Database = Any>>(
    db: E,
    token_hash: &str,
    now: i64,
) -> Result<Option<SessionWithUser>> {
    Ok(sql::query_as(
        "SELECT s.token_hash, s.user_id, s.csrf_token, s.created, s.expires, u.email, u.role \
         FROM dashboard_sessions s JOIN dashboard_users u ON u.id = s.user_id \
         WHERE s.token_hash = $1 AND s.expires > $2",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(db)
    .await?)
}

pub async fn delete_session<'e, E: Executor<'e, Database = Any>>(db: E, token_hash: &str) -> Result<()> {
    sql::query("DELETE FROM dashboard_sessions WHERE token_hash = $1").bind(token_hash).execute(db).await?;
    Ok(())
}

/// Ends every session of a user (sign out everywhere; a changed password).
pub async fn delete_sessions_of<'e, E: Executor<'e, Database = Any>>(db: E, user_id: &str) -> Result<u64> {
    Ok(sql::query("DELETE FROM dashboard_sessions WHERE user_id = $1").bind(user_id).execute(db).await?.rows_affected())
}

/// Deletes the user's expired sessions (at each sign-in, so they do not pile up).
pub async fn delete_expired_sessions_of<'e, E: Executor<'e, Database = Any>>(
    db: E,
    user_id: &str,
    now: i64,
) -> Result<()> {
    sql::query("DELETE FROM dashboard_sessions WHERE user_id = $1 AND expires <= $2")
        .bind(user_id)
        .bind(now)
        .execute(db)
        .await?;
    Ok(())
}

/// Failed sign-ins of (email, client) and when the last one was.
pub async fn failures<'e, E: Executor<'e, Database = Any>>(db: E, email: &str, client: &str) -> Result<(i64, i64)> {
    let row: Option<(i64, i64)> =
        sql::query_as("SELECT failures, last_failure FROM dashboard_sign_in_failures WHERE email = $1 AND client = $2")
            .bind(email)
            .bind(client)
            .fetch_optional(db)
            .await?;
    Ok(row.unwrap_or((0, 0)))
}

/// Counts one more failure (or starts again at one when `reset_before` is after the last).
pub async fn record_failure<'e, E: Executor<'e, Database = Any>>(
    db: E,
    email: &str,
    client: &str,
    now: i64,
    reset_before: i64,
) -> Result<()> {
    sql::query(
        "INSERT INTO dashboard_sign_in_failures (email, client, failures, last_failure) VALUES ($1, $2, 1, $3) \
         ON CONFLICT (email, client) DO UPDATE SET \
         failures = CASE WHEN dashboard_sign_in_failures.last_failure < $4 THEN 1 \
                         ELSE dashboard_sign_in_failures.failures + 1 END, \
         last_failure = $3",
    )
    .bind(email)
    .bind(client)
    .bind(now)
    .bind(reset_before)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn clear_failures<'e, E: Executor<'e, Database = Any>>(db: E, email: &str, client: &str) -> Result<()> {
    sql::query("DELETE FROM dashboard_sign_in_failures WHERE email = $1 AND client = $2")
        .bind(email)
        .bind(client)
        .execute(db)
        .await?;
    Ok(())
}

/// What the order list is narrowed to. Every filter has an index (migration 0020).
#[derive(Clone, Debug, Default)]
pub struct OrderFilter {
    pub status: Option<String>,
    pub payment_status: Option<String>,
    /// Lower-cased.
    pub email: Option<String>,
    pub id: Option<String>,
    /// Unix seconds, inclusive.
    pub created_from: Option<i64>,
    /// Unix seconds, exclusive.
    pub created_until: Option<i64>,
}

pub async fn search_orders<'e, E: Executor<'e, Database = Any>>(
    db: E,
    f: &OrderFilter,
    page: &Page,
) -> Result<Listed<crate::orders::OrderRow>> {
    // The time bounds are integers, written into the statement; strings are bound.
    let mut select = format!("SELECT {} FROM orders", crate::orders::COLUMNS);
    let mut bounds = Vec::new();
    if let Some(from) = f.created_from {
        bounds.push(format!("created >= {from}"));
    }
    if let Some(until) = f.created_until {
        bounds.push(format!("created < {until}"));
        // The same bound on the id, so the primary key (the list's order) starts at the
        // range's end instead of walking back from the newest order through every later one.
        // Ids are ULIDs stamped with the wall clock when the order was made, and `created` is
        // never earlier than that (the server clock only moves forward of the wall clock in
        // tests), so a day's margin keeps every order of the range.
        bounds.push(format!("id < 'ord_{}'", ulid_time_prefix(until.saturating_add(86_400))));
    }
    if !bounds.is_empty() {
        select.push_str(" WHERE ");
        select.push_str(&bounds.join(" AND "));
    }
    let mut filters: Vec<(&str, &str)> = Vec::new();
    if let Some(id) = &f.id {
        filters.push(("id", id));
    }
    if let Some(email) = &f.email {
        filters.push(("lower(email)", email));
    }
    if let Some(s) = &f.status {
        filters.push(("status", s));
    }
    if let Some(s) = &f.payment_status {
        filters.push(("payment_status", s));
    }
    sql::list_page(db, &select, &filters, page).await
}

/// The first 10 characters of a ULID made at `unix_secs` (its 48-bit millisecond time in
/// lowercase Crockford base32): every id made before that time sorts below it.
pub fn ulid_time_prefix(unix_secs: i64) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let ms = (unix_secs.max(0) as u64).saturating_mul(1000).min((1 << 48) - 1);
    (0..10).map(|k| ALPHABET[((ms >> (5 * (9 - k))) & 31) as usize] as char).collect()
}

#[cfg(test)]
mod ulid_prefix_tests {
    use super::ulid_time_prefix;

    #[test]
    fn an_id_made_now_sorts_between_the_prefixes_of_this_second_and_the_next() {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let id = kassa_domain::ids::new_id("ord");
        let body = &id["ord_".len()..];
        assert!(body >= ulid_time_prefix(now).as_str(), "{id}");
        assert!(body < ulid_time_prefix(now + 2).as_str(), "{id}");
        assert_eq!(ulid_time_prefix(-5), "0000000000");
        assert_eq!(ulid_time_prefix(0), "0000000000");
        assert_eq!(ulid_time_prefix(1), "00000000z8"); // 1000 ms = 31*32 + 8
    }
}

/// Totals of a period, per currency.
#[derive(Clone, Debug, Default, sqlx::FromRow)]
pub struct PeriodTotals {
    pub currency: String,
    pub orders: i64,
    /// Captured less refunded, of the orders created in the period.
    pub revenue: i64,
}

pub async fn order_totals_since<'e, E: Executor<'e, Database = Any>>(db: E, since: i64) -> Result<Vec<PeriodTotals>> {
    Ok(sql::query_as(
        "SELECT currency, COUNT(*) AS orders, CAST(COALESCE(SUM(amount_captured - amount_refunded), 0) AS BIGINT) \
         AS revenue FROM orders WHERE created >= $1 GROUP BY currency ORDER BY currency",
    )
    .bind(since)
    .fetch_all(db)
    .await?)
}

/// Payments in `status` created since `since`.
pub async fn payments_in_status_since<'e, E: Executor<'e, Database = Any>>(
    db: E,
    status: &str,
    since: i64,
) -> Result<i64> {
    Ok(sql::query_scalar("SELECT COUNT(*) FROM payments WHERE status = $1 AND created >= $2")
        .bind(status)
        .bind(since)
        .fetch_one(db)
        .await?)
}

/// Money taken for a purpose (credit top-ups) since `since`: payments in `status`.
pub async fn payments_amount_since<'e, E: Executor<'e, Database = Any>>(
    db: E,
    purpose: &str,
    status: &str,
    since: i64,
) -> Result<i64> {
    Ok(sql::query_scalar(
        "SELECT CAST(COALESCE(SUM(amount_captured), 0) AS BIGINT) FROM payments \
         WHERE purpose = $1 AND status = $2 AND created >= $3",
    )
    .bind(purpose)
    .bind(status)
    .bind(since)
    .fetch_one(db)
    .await?)
}

/// Revenue (captured less refunded) of the orders of each day since `since`, in `currency`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct DayRevenue {
    /// Days since the Unix epoch (UTC).
    pub day: i64,
    pub revenue: i64,
}

pub async fn revenue_per_day<'e, E: Executor<'e, Database = Any>>(
    db: E,
    currency: &str,
    since: i64,
) -> Result<Vec<DayRevenue>> {
    Ok(sql::query_as(
        "SELECT CAST(created / 86400 AS BIGINT) AS day, \
         CAST(COALESCE(SUM(amount_captured - amount_refunded), 0) AS BIGINT) AS revenue \
         FROM orders WHERE currency = $1 AND created >= $2 GROUP BY CAST(created / 86400 AS BIGINT) ORDER BY day",
    )
    .bind(currency)
    .bind(since)
    .fetch_all(db)
    .await?)
}
