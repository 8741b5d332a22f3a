//! Catalog use cases: products, prices, pricing models, regions, shipping options.

use crate::error::{ApiError, ApiResult};
use crate::objects::catalog::{
    MAX_INTERVAL_COUNT, Price, PricingModel, Product, Recurring, Region, ShippingOption, TaxRate,
};
use crate::objects::{Metadata, metadata_json};
use crate::services::validate;
use kassa_domain::Currency;
use kassa_domain::ids::IdKind;
use kassa_domain::money::MAX_STOCK;
use kassa_domain::tax::Percentage;
use kassa_store::catalog::{
    self as db, PatchOutcome, PriceRow, PricingModelRow, ProductPatch, ProductRow, RegionRow, ShippingOptionRow,
};
use kassa_store::sql::{Listed, Page};
use kassa_store::{Store, Tx, events};
use serde::Deserialize;
use utoipa::ToSchema;

/// The most countries one region lists (ISO 3166-1 has 249).
const MAX_COUNTRIES: usize = 250;

// ---------------------------------------------------------------- products

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProduct {
    #[schema(min_length = 1, max_length = 250)]
    pub name: String,
    pub description: Option<String>,
    /// Default true.
    pub active: Option<bool>,
    /// Track stock for this product; omit for unlimited.
    pub inventory: Option<InventoryInput>,
    #[serde(default)]
    pub metadata: Metadata,
}

#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InventoryInput {
    /// Whether stock is tracked (default true when `inventory` is given).
    pub tracked: Option<bool>,
    /// Units in stock, 0 to 1,000,000,000.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub quantity: Option<i64>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProduct {
    #[schema(min_length = 1, max_length = 250)]
    pub name: Option<String>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    pub active: Option<bool>,
    pub inventory: Option<InventoryInput>,
    /// Replaces the metadata.
    pub metadata: Option<Metadata>,
}

/// Tells a field that is absent (`None`) from one set to `null` (`Some(None)`).
pub fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

fn quantity(param: &str, q: i64) -> ApiResult<i64> {
    validate::int_in(param, q, 0..=MAX_STOCK)
}

pub async fn create_product(tx: &mut Tx, now: i64, input: CreateProduct) -> ApiResult<Product> {
    let name = validate::text("name", &input.name, 250)?;
    let description = validate::optional_text("description", input.description.as_deref(), 5000)?;
    validate::metadata(&input.metadata)?;
    let (track, qty) = match &input.inventory {
        None => (false, 0),
        Some(inv) => (inv.tracked.unwrap_or(true), quantity("inventory.quantity", inv.quantity.unwrap_or(0))?),
    };
    let row = ProductRow {
        id: IdKind::Product.new_id(),
        name,
        description,
        active: input.active.unwrap_or(true),
        track_inventory: track,
        inventory_quantity: qty,
        inventory_reserved: 0,
        metadata: metadata_json(&input.metadata),
        created: now,
        updated: now,
    };
    db::insert_product(tx, &row).await?;
    let product = Product::from_row(row, None);
    events::record(tx, "product.created", &product.id, &product, now).await?;
    Ok(product)
}

pub async fn update_product(tx: &mut Tx, now: i64, id: &str, input: UpdateProduct) -> ApiResult<Product> {
    validate::id(IdKind::Product, "product", id)?;
    let mut patch = ProductPatch {
        name: input.name.as_deref().map(|n| validate::text("name", n, 250)).transpose()?,
        description: match input.description {
            Some(d) => Some(validate::optional_text("description", d.as_deref(), 5000)?),
            None => None,
        },
        active: input.active,
        ..Default::default()
    };
    if let Some(m) = &input.metadata {
        validate::metadata(m)?;
        patch.metadata = Some(metadata_json(m));
    }
    if let Some(inv) = &input.inventory {
        patch.track_inventory = inv.tracked;
        patch.inventory_quantity = inv.quantity.map(|q| quantity("inventory.quantity", q)).transpose()?;
    }
    match db::update_product(tx, id, &patch, now).await? {
        PatchOutcome::Updated(row) => {
            let product = Product::from_row(row, None);
            events::record(tx, "product.updated", &product.id, &product, now).await?;
            Ok(product)
        }
        PatchOutcome::NotFound => Err(ApiError::not_found("product", id)),
        PatchOutcome::BelowReserved => Err(ApiError::conflict(
            "inventory_below_reserved",
            "inventory.quantity cannot be set below the units open carts hold reserved.",
        )),
    }
}

pub async fn get_product(store: &Store, id: &str, active_only: bool, with_prices: bool) -> ApiResult<Product> {
    validate::id(IdKind::Product, "product", id)?;
    let row = db::get_product(store.reader(), id)
        .await?
        .filter(|p| p.active || !active_only)
        .ok_or_else(|| ApiError::not_found("product", id))?;
    let prices = if with_prices {
        let rows = db::prices_of_products(store.reader(), std::slice::from_ref(&row.id), true).await?;
        Some(rows.into_iter().map(Price::from).collect())
    } else {
        None
    };
    Ok(Product::from_row(row, prices))
}

/// Lists products; the store API shows only active ones, each with its active prices (one
/// more statement for the whole page, not one per product).
pub async fn list_products(store: &Store, page: &Page, storefront: bool) -> ApiResult<Listed<Product>> {
    let listed = db::list_products(store.reader(), storefront, page).await?;
    if !storefront {
        return Ok(listed.map(|r| Product::from_row(r, None)));
    }
    let ids: Vec<String> = listed.data.iter().map(|p| p.id.clone()).collect();
    let mut prices = db::prices_of_products(store.reader(), &ids, true).await?;
    Ok(listed.map(|r| {
        let (mine, rest): (Vec<_>, Vec<_>) = prices.drain(..).partition(|p| p.product == r.id);
        prices = rest;
        Product::from_row(r, Some(mine.into_iter().map(Price::from).collect()))
    }))
}

// ---------------------------------------------------------------- prices

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePrice {
    pub product: String,
    #[schema(value_type = String, example = "usd")]
    pub currency: Currency,
    /// Minor units (cents for USD), at most `checkout.max_amount` (default 99,999,999).
    #[schema(minimum = 0, maximum = 99_999_999)]
    pub unit_amount: i64,
    /// Present for subscriptions; absent for one-time prices.
    pub recurring: Option<Recurring>,
    pub pricing_model: Option<String>,
    pub nickname: Option<String>,
    pub active: Option<bool>,
    /// Recurring prices only: credits each paid period adds to the customer's balance (per
    /// unit of the subscription's quantity), through the credits ledger, once per invoice.
    #[schema(minimum = 0, maximum = 999_999_999_999_i64)]
    pub credits_per_period: Option<i64>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePrice {
    pub active: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub nickname: Option<Option<String>>,
}

pub async fn create_price(tx: &mut Tx, now: i64, input: CreatePrice, max_amount: i64) -> ApiResult<Price> {
    validate::amount("unit_amount", input.unit_amount, max_amount)?;
    let nickname = validate::optional_text("nickname", input.nickname.as_deref(), 250)?;
    if !IdKind::Product.matches(&input.product) || db::get_product(tx.conn(), &input.product).await?.is_none() {
        return Err(ApiError::invalid("product", format!("No such product: '{}'", input.product)));
    }
    if let Some(m) = &input.pricing_model
        && (!IdKind::PricingModel.matches(m) || db::get_pricing_model(tx.conn(), m).await?.is_none())
    {
        return Err(ApiError::invalid("pricing_model", format!("No such pricing model: '{m}'")));
    }
    if let Some(r) = &input.recurring {
        validate::int_in("recurring.interval_count", r.interval_count, 1..=MAX_INTERVAL_COUNT)?;
    }
    let credits_per_period = input.credits_per_period.unwrap_or(0);
    validate::int_in("credits_per_period", credits_per_period, 0..=kassa_domain::credits::MAX_CREDITS)?;
    if credits_per_period > 0 && input.recurring.is_none() {
        return Err(ApiError::invalid("credits_per_period", "Only recurring prices grant credits per period."));
    }
    let row = PriceRow {
        id: IdKind::Price.new_id(),
        product: input.product,
        pricing_model: input.pricing_model,
        currency: input.currency.code().to_string(),
        unit_amount: input.unit_amount,
        kind: if input.recurring.is_some() { "recurring" } else { "one_time" }.into(),
        recurring_interval: input.recurring.as_ref().map(|r| r.interval.as_str().to_string()),
        recurring_interval_count: input.recurring.as_ref().map(|r| r.interval_count),
        active: input.active.unwrap_or(true),
        nickname,
        created: now,
        credits_per_period,
    };
    db::insert_price(tx, &row).await?;
    let price = Price::from(row);
    events::record(tx, "price.created", &price.id, &price, now).await?;
    Ok(price)
}

pub async fn update_price(tx: &mut Tx, now: i64, id: &str, input: UpdatePrice) -> ApiResult<Price> {
    validate::id(IdKind::Price, "price", id)?;
    let nickname = match input.nickname {
        Some(n) => Some(validate::optional_text("nickname", n.as_deref(), 250)?),
        None => None,
    };
    let row =
        db::update_price(tx, id, input.active, nickname).await?.ok_or_else(|| ApiError::not_found("price", id))?;
    let price = Price::from(row);
    events::record(tx, "price.updated", &price.id, &price, now).await?;
    Ok(price)
}

pub async fn get_price(store: &Store, id: &str) -> ApiResult<Price> {
    validate::id(IdKind::Price, "price", id)?;
    db::get_price(store.reader(), id).await?.map(Price::from).ok_or_else(|| ApiError::not_found("price", id))
}

/// Lists prices, newest first, optionally of one product or pricing model.
pub async fn list_prices(
    store: &Store,
    product: Option<&str>,
    pricing_model: Option<&str>,
    page: &Page,
) -> ApiResult<Listed<Price>> {
    Ok(db::list_prices(store.reader(), product, pricing_model, page).await?.map(Price::from))
}

// ---------------------------------------------------------------- pricing models

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePricingModel {
    #[schema(min_length = 1, max_length = 250)]
    pub name: String,
    /// Make this the default pricing model. The first pricing model is always the default.
    pub default: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePricingModel {
    #[schema(min_length = 1, max_length = 250)]
    pub name: Option<String>,
    /// `true` makes this the default (the previous default stops being one). `false` is
    /// refused: make another model the default instead, so that one always is.
    pub default: Option<bool>,
    /// A free (`unit_amount` 0) recurring price of this model that new customers are
    /// subscribed to; `null` removes it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub default_price: Option<Option<String>>,
}

pub async fn create_pricing_model(tx: &mut Tx, now: i64, input: CreatePricingModel) -> ApiResult<PricingModel> {
    let name = validate::text("name", &input.name, 250)?;
    let first = !db::any_pricing_model(tx).await?;
    let row = PricingModelRow {
        id: IdKind::PricingModel.new_id(),
        name,
        is_default: false,
        default_price: None,
        created: now,
        updated: now,
    };
    db::insert_pricing_model(tx, &row).await?;
    if first || input.default == Some(true) {
        db::set_default_pricing_model(tx, &row.id, now).await?;
    }
    let model: PricingModel = db::get_pricing_model(tx.conn(), &row.id).await?.map(Into::into).expect("just inserted");
    events::record(tx, "pricing_model.created", &model.id, &model, now).await?;
    Ok(model)
}

pub async fn update_pricing_model(
    tx: &mut Tx,
    now: i64,
    id: &str,
    input: UpdatePricingModel,
) -> ApiResult<PricingModel> {
    validate::id(IdKind::PricingModel, "pricing_model", id)?;
    let current =
        db::get_pricing_model(tx.conn(), id).await?.ok_or_else(|| ApiError::not_found("pricing_model", id))?;
    let name = input.name.as_deref().map(|n| validate::text("name", n, 250)).transpose()?;
    if input.default == Some(false) && current.is_default {
        return Err(ApiError::invalid(
            "default",
            "One pricing model is always the default; make another one the default instead.",
        ));
    }
    if let Some(Some(price_id)) = &input.default_price {
        let price = db::get_price(tx.conn(), price_id)
            .await?
            .filter(|_| IdKind::Price.matches(price_id))
            .ok_or_else(|| ApiError::invalid("default_price", format!("No such price: '{price_id}'")))?;
        if price.pricing_model.as_deref() != Some(id) {
            return Err(ApiError::invalid("default_price", "The default price must belong to this pricing model."));
        }
        if price.unit_amount != 0 || price.kind != "recurring" || !price.active {
            return Err(ApiError::invalid(
                "default_price",
                "The default price must be an active, free (unit_amount 0), recurring price.",
            ));
        }
    }
    let default_price = input.default_price.as_ref().map(|p| p.as_deref());
    db::update_pricing_model(tx, id, name.as_deref(), default_price, now).await?;
    if input.default == Some(true) && !current.is_default {
        db::set_default_pricing_model(tx, id, now).await?;
    }
    let model: PricingModel = db::get_pricing_model(tx.conn(), id).await?.map(Into::into).expect("exists");
    events::record(tx, "pricing_model.updated", &model.id, &model, now).await?;
    Ok(model)
}

pub async fn get_pricing_model(store: &Store, id: &str) -> ApiResult<PricingModel> {
    validate::id(IdKind::PricingModel, "pricing_model", id)?;
    db::get_pricing_model(store.reader(), id)
        .await?
        .map(Into::into)
        .ok_or_else(|| ApiError::not_found("pricing_model", id))
}

pub async fn list_pricing_models(store: &Store, page: &Page) -> ApiResult<Listed<PricingModel>> {
    Ok(db::list_pricing_models(store.reader(), page).await?.map(PricingModel::from))
}

// ---------------------------------------------------------------- regions

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRegion {
    #[schema(min_length = 1, max_length = 250)]
    pub name: String,
    #[schema(value_type = String, example = "usd")]
    pub currency: Currency,
    /// ISO 3166-1 alpha-2 codes (at most 250).
    #[serde(default)]
    #[schema(max_items = 250)]
    pub countries: Vec<String>,
    /// At most 10, adding up to at most 100 %.
    #[serde(default)]
    #[schema(max_items = 10)]
    pub tax_rates: Vec<TaxRate>,
    /// Default false (tax added on top of prices).
    #[serde(default)]
    pub tax_inclusive: bool,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRegion {
    #[schema(min_length = 1, max_length = 250)]
    pub name: Option<String>,
    #[schema(max_items = 250)]
    pub countries: Option<Vec<String>>,
    #[schema(max_items = 10)]
    pub tax_rates: Option<Vec<TaxRate>>,
    pub tax_inclusive: Option<bool>,
}

fn countries(list: &[String]) -> ApiResult<Vec<String>> {
    if list.len() > MAX_COUNTRIES {
        return Err(ApiError::invalid("countries", format!("A region has at most {MAX_COUNTRIES} countries.")));
    }
    list.iter()
        .enumerate()
        .map(|(i, c)| {
            if c.len() == 2 && c.chars().all(|ch| ch.is_ascii_alphabetic()) {
                Ok(c.to_ascii_uppercase())
            } else {
                Err(ApiError::invalid(
                    format!("countries[{i}]"),
                    "Countries are ISO 3166-1 alpha-2 codes such as \"US\".",
                ))
            }
        })
        .collect()
}

fn tax_rates(rates: &[TaxRate]) -> ApiResult<()> {
    let mut total: u64 = 0;
    for (i, r) in rates.iter().enumerate() {
        validate::text(&format!("tax_rates[{i}].name"), &r.name, 100)?;
        total += r.percentage.ppm() as u64;
    }
    if total > 1_000_000 || rates.len() > 10 {
        return Err(ApiError::invalid("tax_rates", "At most 10 tax rates adding up to at most 100 %."));
    }
    Ok(())
}

/// The combined rate of a region's taxes.
pub fn combined_rate(rates: &[TaxRate]) -> Percentage {
    let ppm: u32 = rates.iter().map(|r| r.percentage.ppm()).sum();
    Percentage::from_ppm(ppm.min(1_000_000)).expect("bounded above")
}

pub async fn create_region(tx: &mut Tx, now: i64, input: CreateRegion) -> ApiResult<Region> {
    let name = validate::text("name", &input.name, 250)?;
    let countries = countries(&input.countries)?;
    tax_rates(&input.tax_rates)?;
    let row = RegionRow {
        id: IdKind::Region.new_id(),
        name,
        currency: input.currency.code().to_string(),
        countries: serde_json::to_string(&countries).expect("strings"),
        tax_rates: serde_json::to_string(&input.tax_rates).expect("rates"),
        tax_inclusive: input.tax_inclusive,
        created: now,
        updated: now,
    };
    db::insert_region(tx, &row).await?;
    let region = Region::from(row);
    events::record(tx, "region.created", &region.id, &region, now).await?;
    Ok(region)
}

pub async fn update_region(tx: &mut Tx, now: i64, id: &str, input: UpdateRegion) -> ApiResult<Region> {
    validate::id(IdKind::Region, "region", id)?;
    let mut row = db::get_region(tx.conn(), id).await?.ok_or_else(|| ApiError::not_found("region", id))?;
    if let Some(n) = &input.name {
        row.name = validate::text("name", n, 250)?;
    }
    if let Some(c) = &input.countries {
        row.countries = serde_json::to_string(&countries(c)?).expect("strings");
    }
    if let Some(t) = &input.tax_rates {
        tax_rates(t)?;
        row.tax_rates = serde_json::to_string(t).expect("rates");
    }
    if let Some(i) = input.tax_inclusive {
        row.tax_inclusive = i;
    }
    row.updated = now;
    let row = db::update_region(tx, &row).await?.ok_or_else(|| ApiError::not_found("region", id))?;
    let region = Region::from(row);
    events::record(tx, "region.updated", &region.id, &region, now).await?;
    Ok(region)
}

pub async fn get_region(store: &Store, id: &str) -> ApiResult<Region> {
    validate::id(IdKind::Region, "region", id)?;
    db::get_region(store.reader(), id).await?.map(Into::into).ok_or_else(|| ApiError::not_found("region", id))
}

pub async fn list_regions(store: &Store, page: &Page) -> ApiResult<Listed<Region>> {
    Ok(db::list_regions(store.reader(), page).await?.map(Region::from))
}

// ---------------------------------------------------------------- shipping options

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateShippingOption {
    #[schema(min_length = 1, max_length = 250)]
    pub name: String,
    pub region: String,
    /// Flat rate in the region's currency, minor units (at most `checkout.max_amount`).
    #[schema(minimum = 0, maximum = 99_999_999)]
    pub amount: i64,
    pub active: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateShippingOption {
    #[schema(min_length = 1, max_length = 250)]
    pub name: Option<String>,
    /// Flat rate, minor units (at most `checkout.max_amount`).
    #[schema(minimum = 0, maximum = 99_999_999)]
    pub amount: Option<i64>,
    pub active: Option<bool>,
}

pub async fn create_shipping_option(
    tx: &mut Tx,
    now: i64,
    input: CreateShippingOption,
    max_amount: i64,
) -> ApiResult<ShippingOption> {
    let name = validate::text("name", &input.name, 250)?;
    validate::amount("amount", input.amount, max_amount)?;
    let region =
        if IdKind::Region.matches(&input.region) { db::get_region(tx.conn(), &input.region).await? } else { None };
    let region = region.ok_or_else(|| ApiError::invalid("region", format!("No such region: '{}'", input.region)))?;
    let row = ShippingOptionRow {
        id: IdKind::ShippingOption.new_id(),
        name,
        region: region.id,
        currency: region.currency,
        amount: input.amount,
        active: input.active.unwrap_or(true),
        created: now,
        updated: now,
    };
    db::insert_shipping_option(tx, &row).await?;
    let option = ShippingOption::from(row);
    events::record(tx, "shipping_option.created", &option.id, &option, now).await?;
    Ok(option)
}

pub async fn update_shipping_option(
    tx: &mut Tx,
    now: i64,
    id: &str,
    input: UpdateShippingOption,
    max_amount: i64,
) -> ApiResult<ShippingOption> {
    validate::id(IdKind::ShippingOption, "shipping_option", id)?;
    let name = input.name.as_deref().map(|n| validate::text("name", n, 250)).transpose()?;
    if let Some(a) = input.amount {
        validate::amount("amount", a, max_amount)?;
    }
    let row = db::update_shipping_option(tx, id, name.as_deref(), input.amount, input.active, now)
        .await?
        .ok_or_else(|| ApiError::not_found("shipping_option", id))?;
    let option = ShippingOption::from(row);
    events::record(tx, "shipping_option.updated", &option.id, &option, now).await?;
    Ok(option)
}

pub async fn get_shipping_option(store: &Store, id: &str) -> ApiResult<ShippingOption> {
    validate::id(IdKind::ShippingOption, "shipping_option", id)?;
    db::get_shipping_option(store.reader(), id)
        .await?
        .map(Into::into)
        .ok_or_else(|| ApiError::not_found("shipping_option", id))
}

/// Lists shipping options, optionally of one region; the store API sees only active ones.
pub async fn list_shipping_options(
    store: &Store,
    region: Option<&str>,
    active_only: bool,
    page: &Page,
) -> ApiResult<Listed<ShippingOption>> {
    Ok(db::list_shipping_options(store.reader(), region, active_only, page).await?.map(ShippingOption::from))
}
