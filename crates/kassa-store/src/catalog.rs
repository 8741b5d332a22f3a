//! The catalog: products (with optional tracked inventory), prices, pricing models, regions
//! and shipping options.

use crate::sql::{self, Listed, Page};
use crate::{Result, StoreError, Tx};
use sqlx::{Any, Executor};

// ---------------------------------------------------------------- products

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ProductRow {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    #[sqlx(try_from = "sql::DbBool")]
    pub active: bool,
    #[sqlx(try_from = "sql::DbBool")]
    pub track_inventory: bool,
    pub inventory_quantity: i64,
    pub inventory_reserved: i64,
    pub metadata: String,
    pub created: i64,
    pub updated: i64,
}

const PRODUCT_COLUMNS: &str = "id, name, description, active, track_inventory, \
    inventory_quantity, inventory_reserved, metadata, created, updated";

pub async fn insert_product(tx: &mut Tx, p: &ProductRow) -> Result<()> {
    sql::query(&format!("INSERT INTO products ({PRODUCT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"))
        .bind(&p.id)
        .bind(&p.name)
        .bind(&p.description)
        .bind(p.active)
        .bind(p.track_inventory)
        .bind(p.inventory_quantity)
        .bind(p.inventory_reserved)
        .bind(&p.metadata)
        .bind(p.created)
        .bind(p.updated)
        .execute(tx.conn())
        .await
        .map_err(StoreError::from_sqlx)?;
    Ok(())
}

pub async fn get_product<'e, E: Executor<'e, Database = Any>>(db: E, id: &str) -> Result<Option<ProductRow>> {
    Ok(sql::query_as(&format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?)
}

/// Changes to a product; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct ProductPatch {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub active: Option<bool>,
    pub track_inventory: Option<bool>,
    pub inventory_quantity: Option<i64>,
    pub metadata: Option<String>,
}

pub enum PatchOutcome<T> {
    Updated(T),
    NotFound,
    /// The new stock level would be below what open carts hold reserved.
    BelowReserved,
}

/// Applies `patch` in one statement. A new stock level is an absolute count (what the
/// merchant counted) and may not fall below the units open carts hold reserved.
pub async fn update_product(tx: &mut Tx, id: &str, patch: &ProductPatch, now: i64) -> Result<PatchOutcome<ProductRow>> {
    let (desc_set, desc) = match &patch.description {
        Some(d) => (true, d.clone()),
        None => (false, None),
    };
    let row: Option<ProductRow> = sql::query_as(&format!(
        "UPDATE products SET \
            name = COALESCE($2, name), \
            description = CASE WHEN $3 THEN $4 ELSE description END, \
            active = COALESCE($5, active), \
            track_inventory = COALESCE($6, track_inventory), \
            inventory_quantity = COALESCE($7, inventory_quantity), \
            metadata = COALESCE($8, metadata), \
            updated = $9 \
         WHERE id = $1 AND ($7 IS NULL OR $7 >= inventory_reserved) \
         RETURNING {PRODUCT_COLUMNS}"
    ))
    .bind(id)
    .bind(&patch.name)
    .bind(desc_set)
    .bind(desc)
    .bind(patch.active)
    .bind(patch.track_inventory)
    .bind(patch.inventory_quantity)
    .bind(&patch.metadata)
    .bind(now)
    .fetch_optional(tx.conn())
    .await?;
    match row {
        Some(r) => Ok(PatchOutcome::Updated(r)),
        None => match get_product(tx.conn(), id).await? {
            Some(_) => Ok(PatchOutcome::BelowReserved),
            None => Ok(PatchOutcome::NotFound),
        },
    }
}

pub async fn list_products<'e, E: Executor<'e, Database = Any>>(
    db: E,
    active_only: bool,
    page: &Page,
) -> Result<Listed<ProductRow>> {
    let mut select = format!("SELECT {PRODUCT_COLUMNS} FROM products");
    if active_only {
        select.push_str(" WHERE active = TRUE");
    }
    sql::list_page(db, &select, &[], page).await
}

// ---------------------------------------------------------------- prices

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct PriceRow {
    pub id: String,
    pub product: String,
    pub pricing_model: Option<String>,
    pub currency: String,
    pub unit_amount: i64,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub recurring_interval: Option<String>,
    pub recurring_interval_count: Option<i64>,
    #[sqlx(try_from = "sql::DbBool")]
    pub active: bool,
    pub nickname: Option<String>,
    pub created: i64,
    /// Credits every paid period of a recurring price adds (per unit of quantity).
    pub credits_per_period: i64,
}

const PRICE_COLUMNS: &str = "id, product, pricing_model, currency, unit_amount, type, \
    recurring_interval, recurring_interval_count, active, nickname, created, credits_per_period";

pub async fn insert_price(tx: &mut Tx, p: &PriceRow) -> Result<()> {
    sql::query(&format!(
        "INSERT INTO prices ({PRICE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    ))
    .bind(&p.id)
    .bind(&p.product)
    .bind(&p.pricing_model)
    .bind(&p.currency)
    .bind(p.unit_amount)
    .bind(&p.kind)
    .bind(&p.recurring_interval)
    .bind(p.recurring_interval_count)
    .bind(p.active)
    .bind(&p.nickname)
    .bind(p.created)
    .bind(p.credits_per_period)
    .execute(tx.conn())
    .await
    .map_err(StoreError::from_sqlx)?;
    Ok(())
}

pub async fn get_price<'e, E: Executor<'e, Database = Any>>(db: E, id: &str) -> Result<Option<PriceRow>> {
    Ok(sql::query_as(&format!("SELECT {PRICE_COLUMNS} FROM prices WHERE id = $1")).bind(id).fetch_optional(db).await?)
}

/// Prices are immutable but for `active` and `nickname`, as at Stripe: an amount that
/// changes under existing carts and subscriptions would change what people agreed to pay.
pub async fn update_price(
    tx: &mut Tx,
    id: &str,
    active: Option<bool>,
    nickname: Option<Option<String>>,
) -> Result<Option<PriceRow>> {
    let (nick_set, nick) = match nickname {
        Some(n) => (true, n),
        None => (false, None),
    };
    Ok(sql::query_as(&format!(
        "UPDATE prices SET active = COALESCE($2, active), \
            nickname = CASE WHEN $3 THEN $4 ELSE nickname END \
         WHERE id = $1 RETURNING {PRICE_COLUMNS}"
    ))
    .bind(id)
    .bind(active)
    .bind(nick_set)
    .bind(nick)
    .fetch_optional(tx.conn())
    .await?)
}

pub async fn list_prices<'e, E: Executor<'e, Database = Any>>(
    db: E,
    product: Option<&str>,
    pricing_model: Option<&str>,
    page: &Page,
) -> Result<Listed<PriceRow>> {
    let mut filters = Vec::new();
    if let Some(p) = product {
        filters.push(("product", p));
    }
    if let Some(m) = pricing_model {
        filters.push(("pricing_model", m));
    }
    sql::list_page(db, &format!("SELECT {PRICE_COLUMNS} FROM prices"), &filters, page).await
}

/// A price and its product, in one statement (adding to a cart needs both).
pub async fn price_with_product<'e, E: Executor<'e, Database = Any>>(
    db: E,
    price: &str,
) -> Result<Option<(PriceRow, ProductRow)>> {
    let cols =
        |t: &str, list: &str| list.split(", ").map(|c| format!("{t}.{c} AS {t}_{c}")).collect::<Vec<_>>().join(", ");
    let sql = format!(
        "SELECT {}, {} FROM prices pr JOIN products p ON p.id = pr.product WHERE pr.id = $1",
        cols("pr", PRICE_COLUMNS),
        cols("p", PRODUCT_COLUMNS)
    );
    use sqlx::Row;
    let Some(row) = sql::query(&sql).bind(price).fetch_optional(db).await? else { return Ok(None) };
    let b = |name: &str| row.try_get::<sql::DbBool, _>(name).map(bool::from);
    let price = PriceRow {
        id: row.try_get("pr_id")?,
        product: row.try_get("pr_product")?,
        pricing_model: row.try_get("pr_pricing_model")?,
        currency: row.try_get("pr_currency")?,
        unit_amount: row.try_get("pr_unit_amount")?,
        kind: row.try_get("pr_type")?,
        recurring_interval: row.try_get("pr_recurring_interval")?,
        recurring_interval_count: row.try_get("pr_recurring_interval_count")?,
        active: b("pr_active")?,
        nickname: row.try_get("pr_nickname")?,
        created: row.try_get("pr_created")?,
        credits_per_period: row.try_get("pr_credits_per_period")?,
    };
    let product = ProductRow {
        id: row.try_get("p_id")?,
        name: row.try_get("p_name")?,
        description: row.try_get("p_description")?,
        active: b("p_active")?,
        track_inventory: b("p_track_inventory")?,
        inventory_quantity: row.try_get("p_inventory_quantity")?,
        inventory_reserved: row.try_get("p_inventory_reserved")?,
        metadata: row.try_get("p_metadata")?,
        created: row.try_get("p_created")?,
        updated: row.try_get("p_updated")?,
    };
    Ok(Some((price, product)))
}

/// The prices of several products in one statement (to embed them in a product list).
pub async fn prices_of_products<'e, E: Executor<'e, Database = Any>>(
    db: E,
    products: &[String],
    active_only: bool,
) -> Result<Vec<PriceRow>> {
    if products.is_empty() {
        return Ok(Vec::new());
    }
    let active = if active_only { " AND active = TRUE" } else { "" };
    let sql = format!(
        "SELECT {PRICE_COLUMNS} FROM prices WHERE product IN ({}){active} ORDER BY id",
        sql::placeholders(1, products.len())
    );
    let mut q = sql::query_as(&sql);
    for p in products {
        q = q.bind(p);
    }
    Ok(q.fetch_all(db).await?)
}

/// Several prices by id, in one statement.
pub async fn get_prices<'e, E: Executor<'e, Database = Any>>(db: E, ids: &[&str]) -> Result<Vec<PriceRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT {PRICE_COLUMNS} FROM prices WHERE id IN ({})", sql::placeholders(1, ids.len()));
    let mut q = sql::query_as(&sql);
    for id in ids {
        q = q.bind(*id);
    }
    Ok(q.fetch_all(db).await?)
}

// ---------------------------------------------------------------- pricing models

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct PricingModelRow {
    pub id: String,
    pub name: String,
    #[sqlx(try_from = "sql::DbBool")]
    pub is_default: bool,
    pub default_price: Option<String>,
    pub created: i64,
    pub updated: i64,
}

const PRICING_MODEL_COLUMNS: &str = "id, name, is_default, default_price, created, updated";

pub async fn insert_pricing_model(tx: &mut Tx, m: &PricingModelRow) -> Result<()> {
    sql::query(&format!("INSERT INTO pricing_models ({PRICING_MODEL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"))
        .bind(&m.id)
        .bind(&m.name)
        .bind(m.is_default)
        .bind(&m.default_price)
        .bind(m.created)
        .bind(m.updated)
        .execute(tx.conn())
        .await
        .map_err(StoreError::from_sqlx)?;
    Ok(())
}

pub async fn get_pricing_model<'e, E: Executor<'e, Database = Any>>(
    db: E,
    id: &str,
) -> Result<Option<PricingModelRow>> {
    Ok(sql::query_as(&format!("SELECT {PRICING_MODEL_COLUMNS} FROM pricing_models WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?)
}

pub async fn default_pricing_model<'e, E: Executor<'e, Database = Any>>(db: E) -> Result<Option<PricingModelRow>> {
    Ok(sql::query_as(&format!("SELECT {PRICING_MODEL_COLUMNS} FROM pricing_models WHERE is_default = TRUE"))
        .fetch_optional(db)
        .await?)
}

/// Whether any pricing model exists (the first one becomes the default).
pub async fn any_pricing_model(tx: &mut Tx) -> Result<bool> {
    let n: Option<String> =
        sql::query_scalar("SELECT id FROM pricing_models LIMIT 1").fetch_optional(tx.conn()).await?;
    Ok(n.is_some())
}

/// Makes `id` the one default pricing model: clears the old default, then sets the new one,
/// in the caller's transaction (the unique index forbids two defaults at any moment).
pub async fn set_default_pricing_model(tx: &mut Tx, id: &str, now: i64) -> Result<()> {
    sql::query("UPDATE pricing_models SET is_default = FALSE, updated = $2 WHERE is_default = TRUE AND id <> $1")
        .bind(id)
        .bind(now)
        .execute(tx.conn())
        .await?;
    sql::query("UPDATE pricing_models SET is_default = TRUE, updated = $2 WHERE id = $1")
        .bind(id)
        .bind(now)
        .execute(tx.conn())
        .await?;
    Ok(())
}

pub async fn update_pricing_model(
    tx: &mut Tx,
    id: &str,
    name: Option<&str>,
    default_price: Option<Option<&str>>,
    now: i64,
) -> Result<Option<PricingModelRow>> {
    let (price_set, price) = match default_price {
        Some(p) => (true, p),
        None => (false, None),
    };
    Ok(sql::query_as(&format!(
        "UPDATE pricing_models SET name = COALESCE($2, name), \
            default_price = CASE WHEN $3 THEN $4 ELSE default_price END, updated = $5 \
         WHERE id = $1 RETURNING {PRICING_MODEL_COLUMNS}"
    ))
    .bind(id)
    .bind(name)
    .bind(price_set)
    .bind(price)
    .bind(now)
    .fetch_optional(tx.conn())
    .await?)
}

pub async fn list_pricing_models<'e, E: Executor<'e, Database = Any>>(
    db: E,
    page: &Page,
) -> Result<Listed<PricingModelRow>> {
    sql::list_page(db, &format!("SELECT {PRICING_MODEL_COLUMNS} FROM pricing_models"), &[], page).await
}

// ---------------------------------------------------------------- regions

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct RegionRow {
    pub id: String,
    pub name: String,
    pub currency: String,
    /// JSON array of ISO 3166-1 alpha-2 codes.
    pub countries: String,
    /// JSON array of `{name, percentage}`.
    pub tax_rates: String,
    #[sqlx(try_from = "sql::DbBool")]
    pub tax_inclusive: bool,
    pub created: i64,
    pub updated: i64,
}

const REGION_COLUMNS: &str = "id, name, currency, countries, tax_rates, tax_inclusive, created, updated";

pub async fn insert_region(tx: &mut Tx, r: &RegionRow) -> Result<()> {
    sql::query(&format!("INSERT INTO regions ({REGION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"))
        .bind(&r.id)
        .bind(&r.name)
        .bind(&r.currency)
        .bind(&r.countries)
        .bind(&r.tax_rates)
        .bind(r.tax_inclusive)
        .bind(r.created)
        .bind(r.updated)
        .execute(tx.conn())
        .await
        .map_err(StoreError::from_sqlx)?;
    Ok(())
}

pub async fn get_region<'e, E: Executor<'e, Database = Any>>(db: E, id: &str) -> Result<Option<RegionRow>> {
    Ok(sql::query_as(&format!("SELECT {REGION_COLUMNS} FROM regions WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?)
}

/// Replaces a region's attributes (the currency is fixed at creation: carts in the region
/// are priced in it).
pub async fn update_region(tx: &mut Tx, r: &RegionRow) -> Result<Option<RegionRow>> {
    Ok(sql::query_as(&format!(
        "UPDATE regions SET name = $2, countries = $3, tax_rates = $4, tax_inclusive = $5, updated = $6 \
         WHERE id = $1 RETURNING {REGION_COLUMNS}"
    ))
    .bind(&r.id)
    .bind(&r.name)
    .bind(&r.countries)
    .bind(&r.tax_rates)
    .bind(r.tax_inclusive)
    .bind(r.updated)
    .fetch_optional(tx.conn())
    .await?)
}

pub async fn list_regions<'e, E: Executor<'e, Database = Any>>(db: E, page: &Page) -> Result<Listed<RegionRow>> {
    sql::list_page(db, &format!("SELECT {REGION_COLUMNS} FROM regions"), &[], page).await
}

// ---------------------------------------------------------------- shipping options

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ShippingOptionRow {
    pub id: String,
    pub name: String,
    pub region: String,
    /// The region's currency (fixed at the region's creation).
    pub currency: String,
    pub amount: i64,
    #[sqlx(try_from = "sql::DbBool")]
    pub active: bool,
    pub created: i64,
    pub updated: i64,
}

const SHIPPING_COLUMNS: &str = "id, name, region, currency, amount, active, created, updated";

pub async fn insert_shipping_option(tx: &mut Tx, s: &ShippingOptionRow) -> Result<()> {
    sql::query(&format!("INSERT INTO shipping_options ({SHIPPING_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"))
        .bind(&s.id)
        .bind(&s.name)
        .bind(&s.region)
        .bind(&s.currency)
        .bind(s.amount)
        .bind(s.active)
        .bind(s.created)
        .bind(s.updated)
        .execute(tx.conn())
        .await
        .map_err(StoreError::from_sqlx)?;
    Ok(())
}

pub async fn get_shipping_option<'e, E: Executor<'e, Database = Any>>(
    db: E,
    id: &str,
) -> Result<Option<ShippingOptionRow>> {
    Ok(sql::query_as(&format!("SELECT {SHIPPING_COLUMNS} FROM shipping_options WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?)
}

pub async fn update_shipping_option(
    tx: &mut Tx,
    id: &str,
    name: Option<&str>,
    amount: Option<i64>,
    active: Option<bool>,
    now: i64,
) -> Result<Option<ShippingOptionRow>> {
    Ok(sql::query_as(&format!(
        "UPDATE shipping_options SET name = COALESCE($2, name), amount = COALESCE($3, amount), \
            active = COALESCE($4, active), updated = $5 WHERE id = $1 RETURNING {SHIPPING_COLUMNS}"
    ))
    .bind(id)
    .bind(name)
    .bind(amount)
    .bind(active)
    .bind(now)
    .fetch_optional(tx.conn())
    .await?)
}

pub async fn list_shipping_options<'e, E: Executor<'e, Database = Any>>(
    db: E,
    region: Option<&str>,
    active_only: bool,
    page: &Page,
) -> Result<Listed<ShippingOptionRow>> {
    let filters: Vec<(&str, &str)> = region.map(|r| ("region", r)).into_iter().collect();
    let mut select = format!("SELECT {SHIPPING_COLUMNS} FROM shipping_options");
    if active_only {
        select.push_str(" WHERE active = TRUE");
    }
    sql::list_page(db, &select, &filters, page).await
}

// ---------------------------------------------------------------- from memory

/// [`get_region`], from memory when this transaction's configuration version allows (see
/// `config_cache`).
pub async fn region_cached(tx: &mut Tx, id: &str) -> Result<Option<RegionRow>> {
    let v = tx.config_version().await?;
    if let Some(r) = tx.config().get::<RegionRow>(v, "region", id) {
        return Ok(Some(r));
    }
    let row = get_region(tx.conn(), id).await?;
    if let Some(r) = &row {
        tx.config().put(v, "region", id, r.clone());
    }
    Ok(row)
}

/// [`get_shipping_option`], from memory when this transaction's configuration version allows.
pub async fn shipping_option_cached(tx: &mut Tx, id: &str) -> Result<Option<ShippingOptionRow>> {
    let v = tx.config_version().await?;
    if let Some(s) = tx.config().get::<ShippingOptionRow>(v, "shipping_option", id) {
        return Ok(Some(s));
    }
    let row = get_shipping_option(tx.conn(), id).await?;
    if let Some(s) = &row {
        tx.config().put(v, "shipping_option", id, s.clone());
    }
    Ok(row)
}

/// [`price_with_product`], from memory when this transaction's configuration version allows.
/// The product's stock figures of a copy are not current (stock moves are not configuration):
/// callers reserve stock with a conditional update, never by these figures.
pub async fn price_with_product_cached(tx: &mut Tx, price: &str) -> Result<Option<(PriceRow, ProductRow)>> {
    let v = tx.config_version().await?;
    if let Some(p) = tx.config().get::<(PriceRow, ProductRow)>(v, "price", price) {
        return Ok(Some(p));
    }
    let row = price_with_product(tx.conn(), price).await?;
    if let Some(p) = &row {
        tx.config().put(v, "price", price, p.clone());
    }
    Ok(row)
}

/// [`default_pricing_model`], from memory when this transaction's configuration version allows.
pub async fn default_pricing_model_cached(tx: &mut Tx) -> Result<Option<PricingModelRow>> {
    let v = tx.config_version().await?;
    if let Some(m) = tx.config().get::<Option<PricingModelRow>>(v, "default_pricing_model", "") {
        return Ok(m);
    }
    let row = default_pricing_model(tx.conn()).await?;
    tx.config().put(v, "default_pricing_model", "", row.clone());
    Ok(row)
}
