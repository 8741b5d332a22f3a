//! `kassa serve --demo`: a small catalog to check out with, under fixed ids so that the
//! README's examples work verbatim. Seeded once per database.

use kassa_store::catalog::{self as db, PriceRow, ProductRow, RegionRow, ShippingOptionRow};
use kassa_store::{Store, settings};

pub const REGION: &str = "reg_00000000000000000000000001";
pub const SHIPPING_OPTION: &str = "shipopt_00000000000000000000000001";
pub const PRODUCTS: [(&str, &str, &str, i64, Option<i64>); 3] = [
    // (product id, price id, name, unit amount in cents, tracked stock)
    ("prod_00000000000000000000000001", "price_00000000000000000000000001", "Kassa T-shirt", 2500, Some(1_000_000)),
    ("prod_00000000000000000000000002", "price_00000000000000000000000002", "Coffee mug", 1250, Some(1_000_000)),
    ("prod_00000000000000000000000003", "price_00000000000000000000000003", "Sticker pack", 400, None),
];

pub async fn seed(store: &Store, now: i64) -> kassa_store::Result<bool> {
    let mut tx = store.begin().await?;
    if !settings::insert_if_absent(tx.conn(), "demo_seeded", &now.to_string()).await? {
        return Ok(false);
    }
    db::insert_region(
        &mut tx,
        &RegionRow {
            id: REGION.into(),
            name: "United States".into(),
            currency: "usd".into(),
            countries: r#"["US"]"#.into(),
            tax_rates: r#"[{"name":"Sales tax","percentage":"8.875"}]"#.into(),
            tax_inclusive: false,
            created: now,
            updated: now,
        },
    )
    .await?;
    db::insert_shipping_option(
        &mut tx,
        &ShippingOptionRow {
            id: SHIPPING_OPTION.into(),
            name: "Standard shipping".into(),
            region: REGION.into(),
            currency: "usd".into(),
            amount: 500,
            active: true,
            created: now,
            updated: now,
        },
    )
    .await?;
    for (product, price, name, amount, stock) in PRODUCTS {
        db::insert_product(
            &mut tx,
            &ProductRow {
                id: product.into(),
                name: name.into(),
                description: Some(format!("Demo product: {name}.")),
                active: true,
                track_inventory: stock.is_some(),
                inventory_quantity: stock.unwrap_or(0),
                inventory_reserved: 0,
                metadata: "{}".into(),
                created: now,
                updated: now,
            },
        )
        .await?;
        db::insert_price(
            &mut tx,
            &PriceRow {
                id: price.into(),
                product: product.into(),
                pricing_model: None,
                currency: "usd".into(),
                unit_amount: amount,
                kind: "one_time".into(),
                recurring_interval: None,
                recurring_interval_count: None,
                active: true,
                nickname: None,
                created: now,
                credits_per_period: 0,
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}
