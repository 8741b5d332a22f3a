//! Orders, their lines, and refunds.

use crate::db::skip_locked;
use crate::sql::{self, Listed, Page};
use crate::{Result, Store, Tx};
use kassa_domain::lifecycle::order::{FulfillmentStatus, OrderPaymentStatus, OrderState, OrderStatus};
use kassa_domain::lifecycle::refund::RefundStatus;
use sqlx::{Any, Executor};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct OrderRow {
    pub id: String,
    pub cart: String,
    pub payment: String,
    pub customer: String,
    pub email: Option<String>,
    pub region: String,
    pub currency: String,
    pub subtotal: i64,
    pub discount_total: i64,
    pub shipping_total: i64,
    pub tax_total: i64,
    pub total: i64,
    pub shipping_option: Option<String>,
    pub shipping_address: Option<String>,
    pub billing_address: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: OrderStatus,
    #[sqlx(try_from = "String")]
    pub payment_status: OrderPaymentStatus,
    #[sqlx(try_from = "String")]
    pub fulfillment_status: FulfillmentStatus,
    pub amount_authorized: i64,
    pub amount_captured: i64,
    pub amount_refunded: i64,
    pub metadata: String,
    pub created: i64,
    pub updated: i64,
}

impl OrderRow {
    /// The part of the order its state machine decides.
    pub fn state(&self) -> OrderState {
        OrderState {
            status: self.status,
            payment_status: self.payment_status,
            fulfillment_status: self.fulfillment_status,
            amount_authorized: self.amount_authorized,
            amount_captured: self.amount_captured,
            amount_refunded: self.amount_refunded,
        }
    }

    /// Takes over what the state machine decided (to be written with [`save`]).
    pub fn set_state(&mut self, s: &OrderState) {
        self.status = s.status;
        self.payment_status = s.payment_status;
        self.fulfillment_status = s.fulfillment_status;
        self.amount_authorized = s.amount_authorized;
        self.amount_captured = s.amount_captured;
        self.amount_refunded = s.amount_refunded;
    }
}

pub(crate) const COLUMNS: &str = "id, cart, payment, customer, email, region, currency, subtotal, discount_total, \
    shipping_total, tax_total, total, shipping_option, shipping_address, billing_address, status, payment_status, \
    fulfillment_status, amount_authorized, amount_captured, amount_refunded, metadata, created, updated";

/// An order with the capability hash of the cart it was paid from: the guest who holds the
/// cart's client secret may read the order made from it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct OrderWithCartSecret {
    #[sqlx(flatten)]
    pub order: OrderRow,
    pub cart_secret_hash: Option<String>,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct OrderLineRow {
    pub id: String,
    pub order_id: String,
    pub product: String,
    pub price: String,
    pub name: String,
    pub quantity: i64,
    pub unit_amount: i64,
    pub stocked: i64,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct RefundRow {
    pub id: String,
    pub order_id: Option<String>,
    pub payment: String,
    pub amount: i64,
    pub currency: String,
    #[sqlx(try_from = "String")]
    pub status: RefundStatus,
    pub reason: Option<String>,
    pub processor_refund: Option<String>,
    pub failure_message: Option<String>,
    pub created: i64,
    pub updated: i64,
}

const REFUND_COLUMNS: &str =
    "id, order_id, payment, amount, currency, status, reason, processor_refund, failure_message, created, updated";

/// Inserts the order and its lines: one statement on PostgreSQL (the order's insert in a CTE;
/// the lines' foreign key is checked at the end of the statement), two on SQLite (no
/// data-modifying CTEs there), the lines in one multi-row insert either way.
pub async fn insert(tx: &mut Tx, o: &OrderRow, lines: &[OrderLineRow]) -> Result<()> {
    let order = insert_order_sql();
    let one_statement = tx.backend() == crate::Backend::Postgres && !lines.is_empty();
    let statement =
        if one_statement { format!("WITH new_order AS ({order}) {}", lines_sql(25, lines.len())) } else { order };
    let q = bind_order(sql::query(&statement), o);
    if one_statement {
        bind_lines(q, lines).execute(tx.conn()).await?;
        return Ok(());
    }
    q.execute(tx.conn()).await?;
    if lines.is_empty() {
        return Ok(());
    }
    let statement = lines_sql(1, lines.len());
    bind_lines(sql::query(&statement), lines).execute(tx.conn()).await?;
    Ok(())
}

/// Creates the order that completes `cart` and writes the cart and the payment that pays for
/// it back (the caller holds both locks and has set their new states): one statement on
/// PostgreSQL (the order, its lines and the cart's update in CTEs, then the payment's
/// update), four on SQLite (no data-modifying CTEs there).
pub async fn insert_completing(
    tx: &mut Tx,
    o: &OrderRow,
    lines: &[OrderLineRow],
    cart: &crate::carts::CartRow,
    payment: &crate::payments::PaymentRow,
) -> Result<()> {
    if tx.backend() == crate::Backend::Sqlite {
        insert(tx, o, lines).await?;
        crate::carts::save(tx, cart).await?;
        return crate::payments::save(tx, payment).await;
    }
    let mut statement = format!("WITH new_order AS ({}), ", insert_order_sql());
    let mut bound = 24;
    if !lines.is_empty() {
        statement.push_str(&format!("new_lines AS ({}), ", lines_sql(bound + 1, lines.len())));
        bound += 9 * lines.len();
    }
    statement.push_str(&format!("saved_cart AS ({}) ", sql::shift_placeholders(crate::carts::SAVE_CART, bound)));
    statement.push_str(&sql::shift_placeholders(crate::payments::SAVE, bound + 20));
    let q = bind_lines(bind_order(sql::query(&statement), o), lines);
    let q = crate::carts::bind_save(q, cart);
    crate::payments::bind_save(q, payment).execute(tx.conn()).await?;
    Ok(())
}

/// `INSERT INTO order_lines … VALUES (…), (…)` for `n` lines, placeholders from `$first`.
fn lines_sql(first: usize, n: usize) -> String {
    let rows: Vec<String> = (0..n).map(|i| format!("({})", sql::placeholders(first + i * 9, 9))).collect();
    format!(
        "INSERT INTO order_lines (id, order_id, product, price, name, quantity, unit_amount, stocked, position) VALUES {}",
        rows.join(", ")
    )
}

type Statement<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// The order's insert, `$1…$24`.
fn insert_order_sql() -> String {
    format!(
        "INSERT INTO orders ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
         $16, $17, $18, $19, $20, $21, $22, $23, $24)"
    )
}

/// Binds `$1…$24` of [`insert_order_sql`].
fn bind_order<'q>(q: Statement<'q>, o: &'q OrderRow) -> Statement<'q> {
    q.bind(&o.id)
        .bind(&o.cart)
        .bind(&o.payment)
        .bind(&o.customer)
        .bind(&o.email)
        .bind(&o.region)
        .bind(&o.currency)
        .bind(o.subtotal)
        .bind(o.discount_total)
        .bind(o.shipping_total)
        .bind(o.tax_total)
        .bind(o.total)
        .bind(&o.shipping_option)
        .bind(&o.shipping_address)
        .bind(&o.billing_address)
        .bind(o.status.as_str())
        .bind(o.payment_status.as_str())
        .bind(o.fulfillment_status.as_str())
        .bind(o.amount_authorized)
        .bind(o.amount_captured)
        .bind(o.amount_refunded)
        .bind(&o.metadata)
        .bind(o.created)
        .bind(o.updated)
}

/// Binds the lines in the order they are given (their ids do not sort by creation).
fn bind_lines<'q>(mut q: Statement<'q>, lines: &'q [OrderLineRow]) -> Statement<'q> {
    for (position, l) in lines.iter().enumerate() {
        q = q
            .bind(&l.id)
            .bind(&l.order_id)
            .bind(&l.product)
            .bind(&l.price)
            .bind(&l.name)
            .bind(l.quantity)
            .bind(l.unit_amount)
            .bind(l.stocked)
            .bind(position as i64);
    }
    q
}

pub async fn get<'e, E: Executor<'e, Database = Any>>(db: E, id: &str) -> Result<Option<OrderRow>> {
    Ok(sql::query_as(&format!("SELECT {COLUMNS} FROM orders WHERE id = $1")).bind(id).fetch_optional(db).await?)
}

/// The order and its cart's capability hash, in one statement (the store API's access check).
pub async fn get_with_cart_secret<'e, E: Executor<'e, Database = Any>>(
    db: E,
    id: &str,
) -> Result<Option<OrderWithCartSecret>> {
    let columns = sql::qualified("o", COLUMNS);
    Ok(sql::query_as(&format!(
        "SELECT {columns}, c.client_secret_hash AS cart_secret_hash FROM orders o \
         JOIN carts c ON c.id = o.cart WHERE o.id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await?)
}

pub async fn by_cart<'e, E: Executor<'e, Database = Any>>(db: E, cart: &str) -> Result<Option<OrderRow>> {
    Ok(sql::query_as(&format!("SELECT {COLUMNS} FROM orders WHERE cart = $1")).bind(cart).fetch_optional(db).await?)
}

pub async fn by_payment<'e, E: Executor<'e, Database = Any>>(db: E, payment: &str) -> Result<Option<OrderRow>> {
    Ok(sql::query_as(&format!("SELECT {COLUMNS} FROM orders WHERE payment = $1"))
        .bind(payment)
        .fetch_optional(db)
        .await?)
}

pub async fn lock(tx: &mut Tx, id: &str) -> Result<Option<OrderRow>> {
    let sql = format!("SELECT {COLUMNS} FROM orders WHERE id = $1{}", tx.for_update());
    Ok(sql::query_as(&sql).bind(id).fetch_optional(tx.conn()).await?)
}

pub async fn lines<'e, E: Executor<'e, Database = Any>>(db: E, order: &str) -> Result<Vec<OrderLineRow>> {
    Ok(sql::query_as(
        "SELECT id, order_id, product, price, name, quantity, unit_amount, stocked FROM order_lines \
         WHERE order_id = $1 ORDER BY position, id",
    )
    .bind(order)
    .fetch_all(db)
    .await?)
}

/// Lines of several orders in one statement (for lists).
pub async fn lines_of<'e, E: Executor<'e, Database = Any>>(db: E, orders: &[String]) -> Result<Vec<OrderLineRow>> {
    if orders.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT id, order_id, product, price, name, quantity, unit_amount, stocked FROM order_lines \
         WHERE order_id IN ({}) ORDER BY position, id",
        sql::placeholders(1, orders.len())
    );
    let mut q = sql::query_as(&sql);
    for o in orders {
        q = q.bind(o);
    }
    Ok(q.fetch_all(db).await?)
}

/// Writes an order's mutable fields back (the caller holds its lock).
pub async fn save(tx: &mut Tx, o: &OrderRow) -> Result<()> {
    sql::query(
        "UPDATE orders SET status = $2, payment_status = $3, fulfillment_status = $4, amount_captured = $5, \
            amount_refunded = $6, metadata = $7, updated = $8 WHERE id = $1",
    )
    .bind(&o.id)
    .bind(o.status.as_str())
    .bind(o.payment_status.as_str())
    .bind(o.fulfillment_status.as_str())
    .bind(o.amount_captured)
    .bind(o.amount_refunded)
    .bind(&o.metadata)
    .bind(o.updated)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Sets aside `amount` of what is captured and not yet refunded, atomically: concurrent
/// refunds can never add up to more than was captured. Returns whether it fit.
/// An order in `closed` status (canceled) takes no refund.
pub async fn reserve_refund(tx: &mut Tx, order: &str, amount: i64, closed: OrderStatus, now: i64) -> Result<bool> {
    let done = sql::query(
        "UPDATE orders SET amount_refunded = amount_refunded + $2, updated = $3 \
         WHERE id = $1 AND amount_captured - amount_refunded >= $2 AND status <> $4",
    )
    .bind(order)
    .bind(amount)
    .bind(now)
    .bind(closed.as_str())
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives back a reservation whose refund the processor refused.
pub async fn unreserve_refund(tx: &mut Tx, order: &str, amount: i64, now: i64) -> Result<()> {
    sql::query("UPDATE orders SET amount_refunded = amount_refunded - $2, updated = $3 WHERE id = $1")
        .bind(order)
        .bind(amount)
        .bind(now)
        .execute(tx.conn())
        .await?;
    Ok(())
}

pub async fn list<'e, E: Executor<'e, Database = Any>>(
    db: E,
    customer: Option<&str>,
    page: &Page,
) -> Result<Listed<OrderRow>> {
    let filters: Vec<(&str, &str)> = customer.map(|c| ("customer", c)).into_iter().collect();
    sql::list_page(db, &format!("SELECT {COLUMNS} FROM orders"), &filters, page).await
}

// ---------------------------------------------------------------- refunds

pub async fn insert_refund(tx: &mut Tx, r: &RefundRow) -> Result<()> {
    sql::query(&format!(
        "INSERT INTO refunds ({REFUND_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ))
    .bind(&r.id)
    .bind(&r.order_id)
    .bind(&r.payment)
    .bind(r.amount)
    .bind(&r.currency)
    .bind(r.status.as_str())
    .bind(&r.reason)
    .bind(&r.processor_refund)
    .bind(&r.failure_message)
    .bind(r.created)
    .bind(r.updated)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Moves a refund from `from` to `to` once (compare and set); returns whether this call did.
pub async fn settle_refund(
    tx: &mut Tx,
    id: &str,
    from: RefundStatus,
    to: RefundStatus,
    processor_refund: Option<&str>,
    failure: Option<&str>,
    now: i64,
) -> Result<bool> {
    let done = sql::query(
        "UPDATE refunds SET status = $2, processor_refund = $3, failure_message = $4, updated = $5 \
         WHERE id = $1 AND status = $6",
    )
    .bind(id)
    .bind(to.as_str())
    .bind(processor_refund)
    .bind(failure)
    .bind(now)
    .bind(from.as_str())
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn refunds_of<'e, E: Executor<'e, Database = Any>>(db: E, order: &str) -> Result<Vec<RefundRow>> {
    Ok(sql::query_as(&format!("SELECT {REFUND_COLUMNS} FROM refunds WHERE order_id = $1 ORDER BY id"))
        .bind(order)
        .fetch_all(db)
        .await?)
}

/// Refunds in `status` since before `before` (pending ones: their processor call failed or
/// is unknown).
pub async fn claim_refunds(
    tx: &mut Tx,
    store: &Store,
    status: RefundStatus,
    before: i64,
    limit: i64,
) -> Result<Vec<RefundRow>> {
    let sql = format!(
        "SELECT {REFUND_COLUMNS} FROM refunds WHERE status = $3 AND updated < $1 ORDER BY updated LIMIT $2{}",
        skip_locked(store.backend())
    );
    Ok(sql::query_as(&sql).bind(before).bind(limit).bind(status.as_str()).fetch_all(tx.conn()).await?)
}

pub async fn touch_refund<'e, E: Executor<'e, Database = Any>>(db: E, id: &str, now: i64) -> Result<()> {
    sql::query("UPDATE refunds SET updated = $2 WHERE id = $1").bind(id).bind(now).execute(db).await?;
    Ok(())
}
