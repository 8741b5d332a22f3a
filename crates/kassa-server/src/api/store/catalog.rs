//! What a storefront shows: active products with their prices, regions, shipping options.

use crate::api::auth::Storefront;
use crate::api::extract::ApiQuery;
use crate::api::pagination::{List, ListParams, ShippingListParams, to_page};
use crate::error::{ApiResult, ErrorBody};
use crate::objects::catalog::{Product, Region, ShippingOption};
use crate::services::catalog;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_products))
        .routes(routes!(get_product))
        .routes(routes!(list_regions))
        .routes(routes!(list_shipping_options))
}

/// List active products with their active prices, newest first.
#[utoipa::path(get, path = "/store/products", tag = "Store", params(ListParams), security(("publishable_key" = [])),
    responses((status = 200, body = List<Product>), (status = "4XX", body = ErrorBody)))]
async fn list_products(
    State(app): State<AppState>,
    _: Storefront,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<List<Product>>> {
    let listed = catalog::list_products(&app.store, &q.page()?, true).await?;
    Ok(Json(List::new("/store/products", listed)))
}

/// Retrieve an active product with its active prices.
#[utoipa::path(get, path = "/store/products/{id}", tag = "Store", security(("publishable_key" = [])),
    params(("id" = String, Path)), responses((status = 200, body = Product), (status = "4XX", body = ErrorBody)))]
async fn get_product(State(app): State<AppState>, _: Storefront, Path(id): Path<String>) -> ApiResult<Json<Product>> {
    Ok(Json(catalog::get_product(&app.store, &id, true, true).await?))
}

/// List regions (to pick a cart's currency and taxes).
#[utoipa::path(get, path = "/store/regions", tag = "Store", params(ListParams), security(("publishable_key" = [])),
    responses((status = 200, body = List<Region>), (status = "4XX", body = ErrorBody)))]
async fn list_regions(
    State(app): State<AppState>,
    _: Storefront,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<List<Region>>> {
    let listed = catalog::list_regions(&app.store, &q.page()?).await?;
    Ok(Json(List::new("/store/regions", listed)))
}

/// List active shipping options, optionally of one region.
#[utoipa::path(get, path = "/store/shipping-options", tag = "Store", params(ShippingListParams),
    security(("publishable_key" = [])),
    responses((status = 200, body = List<ShippingOption>), (status = "4XX", body = ErrorBody)))]
async fn list_shipping_options(
    State(app): State<AppState>,
    _: Storefront,
    ApiQuery(q): ApiQuery<ShippingListParams>,
) -> ApiResult<Json<List<ShippingOption>>> {
    let page = to_page(q.limit, &q.starting_after, &q.ending_before)?;
    let listed = catalog::list_shipping_options(&app.store, q.region.as_deref(), true, &page).await?;
    Ok(Json(List::new("/store/shipping-options", listed)))
}
