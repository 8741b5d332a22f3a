//! Bulk rows for `kassa bench --seed-orders` only (never called by the server): a million
//! orders in a few set-based statements on PostgreSQL, so the dashboard's lists can be
//! measured at a shop's scale. The orders are realistic where the dashboard reads them
//! (time-ordered ULID ids matching `created`, 100,000 distinct buyer emails, a mix of
//! statuses, a year of dates, one line each) but reference no cart, payment or customer row:
//! the foreign-key triggers are off for the seeding transaction (`session_replication_role =
//! replica`, which needs a superuser), so run it against a database made for the bench.

use crate::Result;
use crate::db::{Backend, Store};

/// Inserts `count` orders (and one line each) created over the year before `now`, oldest
/// first, tagged with `run` in their emails' domain. Returns the rows inserted, or `None`
/// on SQLite (not supported).
pub async fn seed_orders(store: &Store, count: i64, run: &str, now: i64) -> Result<Option<u64>> {
    if store.backend() != Backend::Postgres {
        return Ok(None);
    }
    let run: String = run.chars().filter(|c| c.is_ascii_alphanumeric()).take(16).collect();
    let year = 365 * 86_400_i64;
    let mut tx = store.begin().await?;
    sqlx::query("SET LOCAL session_replication_role = replica").execute(tx.conn()).await?;
    // created = a year ago + an even share of the year per order; the id's 48-bit time part
    // is created in milliseconds (Crockford base32, 10 characters), its random part an md5.
    let orders = format!(
        "WITH g AS (
           SELECT n, {start} + (n * {year}) / {count} AS created FROM generate_series(CAST(1 AS BIGINT), {count}) AS n
         ), ids AS (
           SELECT n, created,
             (SELECT string_agg(substr('0123456789abcdefghjkmnpqrstvwxyz',
                 ((created * 1000 + n % 1000) >> (5 * (9 - k)) & 31)::int + 1, 1), '' ORDER BY k)
              FROM generate_series(0, 9) AS k) || substr(md5('{run}' || n), 1, 16) AS ulid
           FROM g
         )
         INSERT INTO orders (id, cart, payment, customer, email, region, currency, subtotal, discount_total,
           shipping_total, tax_total, total, shipping_option, shipping_address, billing_address, status,
           payment_status, fulfillment_status, amount_authorized, amount_captured, amount_refunded, metadata,
           created, updated)
         SELECT 'ord_' || ulid, 'cart_' || ulid, 'pi_' || ulid,
           'cus_bench{run}' || (n % 100000),
           'buyer' || (n % 100000) || '@shop-{run}.example.com', 'reg_bench', 'usd',
           1000 + (n % 50) * 100, 0, 500, (1000 + (n % 50) * 100) * 8875 / 100000,
           1500 + (n % 50) * 100 + (1000 + (n % 50) * 100) * 8875 / 100000, NULL, NULL, NULL,
           CASE WHEN n % 50 = 0 THEN 'canceled' WHEN n % 10 = 1 THEN 'open' ELSE 'completed' END,
           CASE WHEN n % 50 = 0 THEN 'canceled' WHEN n % 10 = 1 THEN 'authorized'
                WHEN n % 25 = 2 THEN 'refunded' WHEN n % 20 = 3 THEN 'partially_refunded' ELSE 'captured' END,
           CASE WHEN n % 10 IN (1, 4) OR n % 50 = 0 THEN 'not_fulfilled' ELSE 'fulfilled' END,
           1500 + (n % 50) * 100 + (1000 + (n % 50) * 100) * 8875 / 100000,
           CASE WHEN n % 50 = 0 OR n % 10 = 1 THEN 0 ELSE 1500 + (n % 50) * 100 + (1000 + (n % 50) * 100) * 8875 / 100000 END,
           CASE WHEN n % 50 = 0 OR n % 10 = 1 THEN 0 WHEN n % 25 = 2 THEN 1500 + (n % 50) * 100 + (1000 + (n % 50) * 100) * 8875 / 100000
                WHEN n % 20 = 3 THEN 500 ELSE 0 END,
           '{{}}', created, created
         FROM ids",
        start = now - year,
    );
    let inserted = sqlx::query(&orders).execute(tx.conn()).await?.rows_affected();
    let lines = format!(
        "INSERT INTO order_lines (id, order_id, product, price, name, quantity, unit_amount, stocked)
         SELECT 'oli_' || substr(id, 5), id, 'prod_bench', 'price_bench', 'Bench item', 1, subtotal, 0
         FROM orders WHERE email LIKE '%@shop-{run}.example.com'"
    );
    sqlx::query(&lines).execute(tx.conn()).await?;
    tx.commit().await?;
    sqlx::query("ANALYZE orders").execute(store.writer()).await?;
    sqlx::query("ANALYZE order_lines").execute(store.writer()).await?;
    Ok(Some(inserted))
}
