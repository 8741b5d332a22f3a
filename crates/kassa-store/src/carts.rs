//! Carts, their lines, and the stock they hold reserved.

use crate::db::skip_locked;
use crate::sql::{self, Listed, Page};
use crate::{Result, Store, Tx};
use kassa_domain::lifecycle::cart::CartStatus;
use sqlx::{Any, Executor};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct CartRow {
    pub id: String,
    pub customer: Option<String>,
    #[sqlx(try_from = "sql::DbBool")]
    pub customer_signed_in: bool,
    pub email: Option<String>,
    pub region: String,
    pub currency: String,
    pub shipping_option: Option<String>,
    pub shipping_address: Option<String>,
    pub billing_address: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: CartStatus,
    pub version: i64,
    pub subtotal: i64,
    pub discount_total: i64,
    pub shipping_total: i64,
    pub tax_total: i64,
    pub total: i64,
    pub metadata: String,
    pub last_activity: i64,
    pub completed_at: Option<i64>,
    pub created: i64,
    pub updated: i64,
    /// SHA-256 (hex) of the cart's client secret; set once at creation (`None` on carts made
    /// before secrets existed).
    pub client_secret_hash: Option<String>,
}

const CART_COLUMNS: &str = "id, customer, customer_signed_in, email, region, currency, shipping_option, shipping_address, \
    billing_address, status, version, subtotal, discount_total, shipping_total, tax_total, total, metadata, \
    last_activity, completed_at, created, updated, client_secret_hash";

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct LineRow {
    pub id: String,
    pub cart: String,
    pub price: String,
    pub product: String,
    pub name: String,
    pub quantity: i64,
    pub unit_amount: i64,
    pub reserved: i64,
    pub created: i64,
    pub updated: i64,
    /// Where the line shows in the cart (ids made in one millisecond do not sort by creation).
    pub position: i64,
}

const LINE_COLUMNS: &str =
    "id, cart, price, product, name, quantity, unit_amount, reserved, created, updated, position";

type Statement<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>;

const INSERT_CART: &str = "INSERT INTO carts (id, customer, customer_signed_in, email, region, currency, shipping_option, \
    shipping_address, billing_address, status, version, subtotal, discount_total, shipping_total, tax_total, total, \
    metadata, last_activity, completed_at, created, updated, client_secret_hash) VALUES \
    ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)";

/// Binds `$1…$22` of [`INSERT_CART`].
fn bind_insert<'q>(q: Statement<'q>, c: &'q CartRow) -> Statement<'q> {
    q.bind(&c.id)
        .bind(&c.customer)
        .bind(c.customer_signed_in)
        .bind(&c.email)
        .bind(&c.region)
        .bind(&c.currency)
        .bind(&c.shipping_option)
        .bind(&c.shipping_address)
        .bind(&c.billing_address)
        .bind(c.status.as_str())
        .bind(c.version)
        .bind(c.subtotal)
        .bind(c.discount_total)
        .bind(c.shipping_total)
        .bind(c.tax_total)
        .bind(c.total)
        .bind(&c.metadata)
        .bind(c.last_activity)
        .bind(c.completed_at)
        .bind(c.created)
        .bind(c.updated)
        .bind(&c.client_secret_hash)
}

pub async fn insert(tx: &mut Tx, c: &CartRow) -> Result<()> {
    insert_with_lines(tx, c, &[]).await
}

/// Inserts a new cart and its lines: one statement on PostgreSQL (the lines' insert runs on
/// the cart's, in a CTE; their foreign key is checked at the end of the statement), the cart
/// and then all lines in one multi-row insert on SQLite (no data-modifying CTEs there). On
/// PostgreSQL the statement also observes the configuration version (`RETURNING`), which
/// confirms a version the transaction assumed (`Tx::assume_config_version`).
pub async fn insert_with_lines(tx: &mut Tx, c: &CartRow, lines: &[LineRow]) -> Result<()> {
    const VERSION: &str = " RETURNING (SELECT version FROM config_version WHERE id = 1)";
    match tx.backend() {
        crate::Backend::Postgres => {
            let statement = if lines.is_empty() {
                format!("{INSERT_CART}{VERSION}")
            } else {
                format!("WITH new_cart AS ({INSERT_CART}) {}{VERSION}", insert_lines_sql(23, lines.len()))
            };
            let version: i64 = sqlx::Row::try_get(
                &bind_lines(bind_insert(sql::query(&statement), c), lines).fetch_one(tx.conn()).await?,
                0,
            )?;
            tx.observe_config_version(version)?;
        }
        crate::Backend::Sqlite => {
            bind_insert(sql::query(INSERT_CART), c).execute(tx.conn()).await?;
            insert_lines(tx, lines).await?;
        }
    }
    Ok(())
}

pub async fn get<'e, E: Executor<'e, Database = Any>>(db: E, id: &str) -> Result<Option<CartRow>> {
    Ok(sql::query_as(&format!("SELECT {CART_COLUMNS} FROM carts WHERE id = $1")).bind(id).fetch_optional(db).await?)
}

/// What paying a cart reads before it writes, in one statement: the cart, whether it has
/// lines, its customer's processor customer and its latest payment attempt's id.
pub struct PayView {
    pub cart: CartRow,
    pub has_lines: bool,
    pub processor_customer: Option<String>,
    pub latest_payment: Option<String>,
}

pub async fn pay_view<'e, E: Executor<'e, Database = Any>>(db: E, id: &str) -> Result<Option<PayView>> {
    use sqlx::{FromRow, Row};
    let statement = format!(
        "SELECT {CART_COLUMNS}, \
            EXISTS (SELECT 1 FROM cart_lines l WHERE l.cart = carts.id) AS has_lines, \
            (SELECT cu.processor_customer FROM customers cu WHERE cu.id = carts.customer) AS processor_customer, \
            (SELECT p.id FROM payments p WHERE p.cart = carts.id \
             ORDER BY p.cart_version DESC, p.attempt DESC LIMIT 1) AS latest_payment \
         FROM carts WHERE id = $1"
    );
    let Some(row) = sql::query(&statement).bind(id).fetch_optional(db).await? else { return Ok(None) };
    Ok(Some(PayView {
        cart: CartRow::from_row(&row)?,
        has_lines: row.try_get::<sql::DbBool, _>("has_lines")?.into(),
        processor_customer: row.try_get("processor_customer")?,
        latest_payment: row.try_get("latest_payment")?,
    }))
}

/// Reads the cart and locks it for the rest of the transaction: changes to one cart queue.
pub async fn lock(tx: &mut Tx, id: &str) -> Result<Option<CartRow>> {
    let sql = format!("SELECT {CART_COLUMNS} FROM carts WHERE id = $1{}", tx.for_update());
    Ok(sql::query_as(&sql).bind(id).fetch_optional(tx.conn()).await?)
}

/// Reads the cart with its lines (in their order) and locks the cart, in one statement; the
/// statement also observes the configuration version (see `config_cache`), so that the
/// change's regions, shipping options and prices come from memory without another statement.
pub async fn lock_with_lines(tx: &mut Tx, id: &str) -> Result<Option<(CartRow, Vec<LineRow>)>> {
    let lock = match tx.backend() {
        crate::Backend::Postgres => " FOR UPDATE OF c",
        crate::Backend::Sqlite => "",
    };
    let statement = format!(
        "SELECT {}, (SELECT version FROM config_version WHERE id = 1) AS config_version, {} \
         FROM carts c LEFT JOIN cart_lines l ON l.cart = c.id WHERE c.id = $1 ORDER BY l.position, l.id{lock}",
        sql::qualified("c", CART_COLUMNS),
        line_columns()
    );
    let rows = sql::query(&statement).bind(id).fetch_all(tx.conn()).await?;
    Ok(cart_with_lines(tx, &rows)?.map(|(cart, lines, _)| (cart, lines)))
}

/// [`lock_with_lines`] and the payment `payment` locked too, in one statement (a payment
/// being applied to its cart: the lock order is the cart, then the payment). `None` when the
/// cart or the payment does not exist (the caller then takes them one by one).
pub async fn lock_with_lines_and_payment(
    tx: &mut Tx,
    id: &str,
    payment: &str,
) -> Result<Option<(CartRow, Vec<LineRow>, crate::payments::PaymentRow)>> {
    let lock = match tx.backend() {
        crate::Backend::Postgres => " FOR UPDATE OF c, p",
        crate::Backend::Sqlite => "",
    };
    let statement = format!(
        "SELECT {}, (SELECT version FROM config_version WHERE id = 1) AS config_version, {}, {} \
         FROM carts c JOIN payments p ON p.id = $2 LEFT JOIN cart_lines l ON l.cart = c.id \
         WHERE c.id = $1 ORDER BY l.position, l.id{lock}",
        sql::qualified("c", CART_COLUMNS),
        line_columns(),
        crate::payments::prefixed_columns("p", "payment_")
    );
    let rows = sql::query(&statement).bind(id).bind(payment).fetch_all(tx.conn()).await?;
    let Some((cart, lines, first)) = cart_with_lines(tx, &rows)? else { return Ok(None) };
    Ok(Some((cart, lines, crate::payments::from_prefixed_row(first, "payment_")?)))
}

/// The lines' columns as `line_{column}`, beside the cart's.
fn line_columns() -> String {
    LINE_COLUMNS.split(", ").map(|c| format!("l.{c} AS line_{c}")).collect::<Vec<_>>().join(", ")
}

/// The cart, its lines and the first row, from the rows of a cart joined with its lines (and
/// the configuration version, which the transaction observes).
fn cart_with_lines<'r>(
    tx: &mut Tx,
    rows: &'r [sqlx::any::AnyRow],
) -> Result<Option<(CartRow, Vec<LineRow>, &'r sqlx::any::AnyRow)>> {
    use sqlx::{FromRow, Row};
    let Some(first) = rows.first() else { return Ok(None) };
    let cart = CartRow::from_row(first)?;
    tx.observe_config_version(first.try_get("config_version")?)?;
    let mut lines = Vec::with_capacity(rows.len());
    for row in rows {
        let Some(line_id) = row.try_get::<Option<String>, _>("line_id")? else { continue };
        lines.push(LineRow {
            id: line_id,
            cart: row.try_get("line_cart")?,
            price: row.try_get("line_price")?,
            product: row.try_get("line_product")?,
            name: row.try_get("line_name")?,
            quantity: row.try_get("line_quantity")?,
            unit_amount: row.try_get("line_unit_amount")?,
            reserved: row.try_get("line_reserved")?,
            created: row.try_get("line_created")?,
            updated: row.try_get("line_updated")?,
            position: row.try_get("line_position")?,
        });
    }
    Ok(Some((cart, lines, first)))
}

pub(crate) const SAVE_CART: &str = "UPDATE carts SET customer = $2, email = $3, region = $4, currency = $5, shipping_option = $6, \
    shipping_address = $7, billing_address = $8, status = $9, version = $10, subtotal = $11, \
    discount_total = $12, shipping_total = $13, tax_total = $14, total = $15, metadata = $16, \
    last_activity = $17, completed_at = $18, updated = $19, customer_signed_in = $20 \
    WHERE id = $1";

/// Binds `$1…$20` of [`SAVE_CART`].
pub(crate) fn bind_save<'q>(q: Statement<'q>, c: &'q CartRow) -> Statement<'q> {
    q.bind(&c.id)
        .bind(&c.customer)
        .bind(&c.email)
        .bind(&c.region)
        .bind(&c.currency)
        .bind(&c.shipping_option)
        .bind(&c.shipping_address)
        .bind(&c.billing_address)
        .bind(c.status.as_str())
        .bind(c.version)
        .bind(c.subtotal)
        .bind(c.discount_total)
        .bind(c.shipping_total)
        .bind(c.tax_total)
        .bind(c.total)
        .bind(&c.metadata)
        .bind(c.last_activity)
        .bind(c.completed_at)
        .bind(c.updated)
        .bind(c.customer_signed_in)
}

/// Writes the cart's mutable fields back (the caller holds its lock and bumped its version).
pub async fn save(tx: &mut Tx, c: &CartRow) -> Result<()> {
    save_with_lines(tx, c, &[]).await
}

/// [`save`] with new lines of the cart: one statement on PostgreSQL (a CTE), the lines in one
/// multi-row insert and the cart's update on SQLite.
pub async fn save_with_lines(tx: &mut Tx, c: &CartRow, lines: &[LineRow]) -> Result<()> {
    if lines.is_empty() {
        bind_save(sql::query(SAVE_CART), c).execute(tx.conn()).await?;
        return Ok(());
    }
    match tx.backend() {
        crate::Backend::Postgres => {
            let statement = format!("WITH new_lines AS ({}) {SAVE_CART}", insert_lines_sql(21, lines.len()));
            bind_lines(bind_save(sql::query(&statement), c), lines).execute(tx.conn()).await?;
        }
        crate::Backend::Sqlite => {
            insert_lines(tx, lines).await?;
            bind_save(sql::query(SAVE_CART), c).execute(tx.conn()).await?;
        }
    }
    Ok(())
}

/// `INSERT INTO cart_lines … VALUES (…), (…)` for `n` lines, placeholders from `$first`.
fn insert_lines_sql(first: usize, n: usize) -> String {
    let rows: Vec<String> = (0..n).map(|i| format!("({})", sql::placeholders(first + i * 11, 11))).collect();
    format!("INSERT INTO cart_lines ({LINE_COLUMNS}) VALUES {}", rows.join(", "))
}

fn bind_lines<'q>(mut q: Statement<'q>, lines: &'q [LineRow]) -> Statement<'q> {
    for l in lines {
        q = q
            .bind(&l.id)
            .bind(&l.cart)
            .bind(&l.price)
            .bind(&l.product)
            .bind(&l.name)
            .bind(l.quantity)
            .bind(l.unit_amount)
            .bind(l.reserved)
            .bind(l.created)
            .bind(l.updated)
            .bind(l.position);
    }
    q
}

/// Inserts lines in one statement.
pub async fn insert_lines(tx: &mut Tx, lines: &[LineRow]) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let statement = insert_lines_sql(1, lines.len());
    bind_lines(sql::query(&statement), lines).execute(tx.conn()).await?;
    Ok(())
}

pub async fn lines<'e, E: Executor<'e, Database = Any>>(db: E, cart: &str) -> Result<Vec<LineRow>> {
    Ok(sql::query_as(&format!("SELECT {LINE_COLUMNS} FROM cart_lines WHERE cart = $1 ORDER BY position, id"))
        .bind(cart)
        .fetch_all(db)
        .await?)
}

pub async fn insert_line(tx: &mut Tx, l: &LineRow) -> Result<()> {
    insert_lines(tx, std::slice::from_ref(l)).await
}

pub async fn update_line(tx: &mut Tx, id: &str, quantity: i64, reserved: i64, now: i64) -> Result<()> {
    sql::query("UPDATE cart_lines SET quantity = $2, reserved = $3, updated = $4 WHERE id = $1")
        .bind(id)
        .bind(quantity)
        .bind(reserved)
        .bind(now)
        .execute(tx.conn())
        .await?;
    Ok(())
}

pub async fn delete_line(tx: &mut Tx, id: &str) -> Result<()> {
    sql::query("DELETE FROM cart_lines WHERE id = $1").bind(id).execute(tx.conn()).await?;
    Ok(())
}

/// Locks the products of `prices` in product id order, before a change that reserves stock of
/// several products: every transaction that moves stock takes product rows in that one
/// global order (see also [`by_product`]), so two carts holding the same products in opposite
/// orders wait for each other instead of deadlocking. PostgreSQL only (and only for two or
/// more prices): on SQLite the transaction already holds the database's only write lock.
pub async fn lock_products_of(tx: &mut Tx, prices: &[&str]) -> Result<()> {
    if prices.len() < 2 || tx.for_update().is_empty() {
        return Ok(());
    }
    let sql = format!(
        "SELECT id FROM products WHERE id IN (SELECT product FROM prices WHERE id IN ({})) ORDER BY id FOR UPDATE",
        sql::placeholders(1, prices.len())
    );
    let mut q = sql::query(&sql);
    for p in prices {
        q = q.bind(*p);
    }
    q.fetch_all(tx.conn()).await?;
    Ok(())
}

/// Stock moves `(product, units)` merged per product and in product id order, the one global
/// order in which transactions lock product rows (see [`lock_products_of`]).
pub fn by_product<'a>(moves: impl IntoIterator<Item = (&'a str, i64)>) -> Vec<(&'a str, i64)> {
    let mut merged = std::collections::BTreeMap::<&str, i64>::new();
    for (product, units) in moves {
        *merged.entry(product).or_default() += units;
    }
    merged.into_iter().collect()
}

/// Reserves `units` of a tracked product's stock if that many are available; untracked
/// products always succeed without a write. Returns whether the reservation holds.
pub async fn reserve(tx: &mut Tx, product: &str, units: i64, now: i64) -> Result<bool> {
    let done = sql::query(
        "UPDATE products SET inventory_reserved = inventory_reserved + $2, updated = $3 \
         WHERE id = $1 AND track_inventory = TRUE AND inventory_quantity - inventory_reserved >= $2",
    )
    .bind(product)
    .bind(units)
    .bind(now)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives back `units` a cart held reserved.
pub async fn release(tx: &mut Tx, product: &str, units: i64, now: i64) -> Result<()> {
    sql::query("UPDATE products SET inventory_reserved = inventory_reserved - $2, updated = $3 WHERE id = $1")
        .bind(product)
        .bind(units)
        .bind(now)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// Turns reserved units into sold ones: both the stock and the reservation go down.
pub async fn take_reserved(tx: &mut Tx, product: &str, units: i64, now: i64) -> Result<()> {
    sql::query(
        "UPDATE products SET inventory_quantity = inventory_quantity - $2, \
            inventory_reserved = inventory_reserved - $2, updated = $3 WHERE id = $1",
    )
    .bind(product)
    .bind(units)
    .bind(now)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Puts sold units back in stock (a canceled order).
pub async fn restock(tx: &mut Tx, product: &str, units: i64, now: i64) -> Result<()> {
    sql::query("UPDATE products SET inventory_quantity = inventory_quantity + $2, updated = $3 WHERE id = $1")
        .bind(product)
        .bind(units)
        .bind(now)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// Claims up to `limit` carts in `status` idle since before `cutoff`, locked for the caller's
/// transaction (rows another server is expiring are skipped).
pub async fn claim_idle(
    tx: &mut Tx,
    store: &Store,
    status: CartStatus,
    cutoff: i64,
    limit: i64,
) -> Result<Vec<CartRow>> {
    let lock = skip_locked(store.backend());
    let sql = format!(
        "SELECT {CART_COLUMNS} FROM carts WHERE status = $3 AND last_activity < $1 ORDER BY last_activity LIMIT $2{lock}"
    );
    Ok(sql::query_as(&sql).bind(cutoff).bind(limit).bind(status.as_str()).fetch_all(tx.conn()).await?)
}

pub async fn list_for_customer<'e, E: Executor<'e, Database = Any>>(
    db: E,
    customer: &str,
    page: &Page,
) -> Result<Listed<CartRow>> {
    sql::list_page(db, &format!("SELECT {CART_COLUMNS} FROM carts"), &[("customer", customer)], page).await
}
