use super::{Metadata, parse_metadata};
pub use kassa_domain::billing::Interval;
use kassa_domain::tax::Percentage;
use kassa_store::catalog::{PriceRow, PricingModelRow, ProductRow, RegionRow, ShippingOptionRow};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Something you sell.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Product {
    pub id: String,
    /// Always `product`.
    pub object: &'static str,
    pub name: String,
    pub description: Option<String>,
    /// Inactive products cannot be added to carts and are hidden from the store API.
    pub active: bool,
    /// Stock, when the product's inventory is tracked; `null` when it is not.
    pub inventory: Option<Inventory>,
    pub metadata: Metadata,
    /// The product's active prices (store API only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prices: Option<Vec<Price>>,
    pub created: i64,
    pub updated: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Inventory {
    /// Units in stock.
    pub quantity: i64,
    /// Units held by open carts.
    pub reserved: i64,
    /// `quantity − reserved`: what can still go into carts.
    pub available: i64,
}

impl Product {
    pub fn from_row(r: ProductRow, prices: Option<Vec<Price>>) -> Product {
        Product {
            inventory: r.track_inventory.then(|| Inventory {
                quantity: r.inventory_quantity,
                reserved: r.inventory_reserved,
                available: r.inventory_quantity - r.inventory_reserved,
            }),
            id: r.id,
            object: "product",
            name: r.name,
            description: r.description,
            active: r.active,
            metadata: parse_metadata(&r.metadata),
            prices,
            created: r.created,
            updated: r.updated,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Recurring {
    pub interval: Interval,
    /// Intervals between charges (1 = every month for `month`), 1 to 365.
    #[serde(default = "one")]
    #[schema(minimum = 1, maximum = 365)]
    pub interval_count: i64,
}

/// The most intervals between two charges of a recurring price.
pub const MAX_INTERVAL_COUNT: i64 = 365;

fn one() -> i64 {
    1
}

/// How much a product costs, in one currency, once or every interval.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Price {
    pub id: String,
    /// Always `price`.
    pub object: &'static str,
    pub product: String,
    /// The pricing model this price belongs to, if any.
    pub pricing_model: Option<String>,
    #[schema(value_type = String, example = "usd")]
    pub currency: String,
    /// Minor units of `currency` (cents for USD, yen for JPY).
    pub unit_amount: i64,
    /// `one_time` or `recurring`.
    #[serde(rename = "type")]
    pub kind: String,
    pub recurring: Option<Recurring>,
    pub active: bool,
    pub nickname: Option<String>,
    pub created: i64,
    /// Credits each paid period adds (recurring prices; per unit of quantity).
    pub credits_per_period: i64,
}

impl From<PriceRow> for Price {
    fn from(r: PriceRow) -> Self {
        let recurring = r
            .recurring_interval
            .as_deref()
            .and_then(Interval::parse)
            .map(|interval| Recurring { interval, interval_count: r.recurring_interval_count.unwrap_or(1) });
        Price {
            id: r.id,
            object: "price",
            product: r.product,
            pricing_model: r.pricing_model,
            currency: r.currency,
            unit_amount: r.unit_amount,
            kind: r.kind,
            recurring,
            active: r.active,
            nickname: r.nickname,
            created: r.created,
            credits_per_period: r.credits_per_period,
        }
    }
}

/// A named set of prices (plans); exactly one pricing model is the default, and new
/// customers get it unless told otherwise.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PricingModel {
    pub id: String,
    /// Always `pricing_model`.
    pub object: &'static str,
    pub name: String,
    /// Whether this is the default pricing model.
    pub default: bool,
    /// A free recurring price every new customer of this model is subscribed to.
    pub default_price: Option<String>,
    pub created: i64,
    pub updated: i64,
}

impl From<PricingModelRow> for PricingModel {
    fn from(r: PricingModelRow) -> Self {
        PricingModel {
            id: r.id,
            object: "pricing_model",
            name: r.name,
            default: r.is_default,
            default_price: r.default_price,
            created: r.created,
            updated: r.updated,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaxRate {
    /// `VAT`, `State sales tax`, …
    pub name: String,
    pub percentage: Percentage,
}

/// Where a cart is sold: its currency and taxes.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Region {
    pub id: String,
    /// Always `region`.
    pub object: &'static str,
    pub name: String,
    #[schema(value_type = String, example = "usd")]
    pub currency: String,
    /// ISO 3166-1 alpha-2 country codes, upper case.
    pub countries: Vec<String>,
    /// Rates that add up to the region's tax.
    pub tax_rates: Vec<TaxRate>,
    /// Whether prices include the tax (EU VAT) or tax is added on top (US sales tax).
    pub tax_inclusive: bool,
    pub created: i64,
    pub updated: i64,
}

impl From<RegionRow> for Region {
    fn from(r: RegionRow) -> Self {
        Region {
            id: r.id,
            object: "region",
            name: r.name,
            currency: r.currency,
            countries: serde_json::from_str(&r.countries).unwrap_or_default(),
            tax_rates: serde_json::from_str(&r.tax_rates).unwrap_or_default(),
            tax_inclusive: r.tax_inclusive,
            created: r.created,
            updated: r.updated,
        }
    }
}

/// A flat-rate way to ship within a region.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ShippingOption {
    pub id: String,
    /// Always `shipping_option`.
    pub object: &'static str,
    pub name: String,
    pub region: String,
    #[schema(value_type = String, example = "usd")]
    pub currency: String,
    /// Flat rate in minor units.
    pub amount: i64,
    pub active: bool,
    pub created: i64,
    pub updated: i64,
}

impl From<ShippingOptionRow> for ShippingOption {
    fn from(r: ShippingOptionRow) -> Self {
        ShippingOption {
            id: r.id,
            object: "shipping_option",
            name: r.name,
            region: r.region,
            currency: r.currency,
            amount: r.amount,
            active: r.active,
            created: r.created,
            updated: r.updated,
        }
    }
}
