//! Admin catalog: products, prices, pricing models, regions, shipping options.

use crate::api::IdempotencyKeyHeader;
use crate::api::auth::Admin;
use crate::api::extract::ApiQuery;
use crate::api::idempotency::Idempotent;
use crate::api::pagination::{List, ListParams, ShippingListParams, to_page};
use crate::error::{ApiResult, ErrorBody};
use crate::objects::catalog::{Price, PricingModel, Product, Region, ShippingOption};
use crate::services::catalog::{
    self, CreatePrice, CreatePricingModel, CreateProduct, CreateRegion, CreateShippingOption, UpdatePrice,
    UpdatePricingModel, UpdateProduct, UpdateRegion, UpdateShippingOption,
};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_product, list_products))
        .routes(routes!(get_product, update_product))
        .routes(routes!(create_price, list_prices))
        .routes(routes!(get_price, update_price))
        .routes(routes!(create_pricing_model, list_pricing_models))
        .routes(routes!(get_pricing_model, update_pricing_model))
        .routes(routes!(create_region, list_regions))
        .routes(routes!(get_region, update_region))
        .routes(routes!(create_shipping_option, list_shipping_options))
        .routes(routes!(get_shipping_option, update_shipping_option))
}

// ---------------------------------------------------------------- products

/// Create a product.
#[utoipa::path(post, path = "/admin/products", tag = "Products", request_body = CreateProduct,
    params(IdempotencyKeyHeader), security(("secret_key" = [])),
    responses((status = 200, body = Product), (status = "4XX", body = ErrorBody)))]
async fn create_product(
    State(app): State<AppState>,
    admin: Admin,
    req: Idempotent<CreateProduct>,
) -> ApiResult<Response> {
    let now = app.clock.now();
    let body = req.body;
    req.request
        .local(&app, &admin.idempotency_scope(), move |tx| Box::pin(catalog::create_product(tx, now, body)))
        .await
}

/// List products, newest first.
#[utoipa::path(get, path = "/admin/products", tag = "Products", params(ListParams), security(("secret_key" = [])),
    responses((status = 200, body = List<Product>), (status = "4XX", body = ErrorBody)))]
async fn list_products(
    State(app): State<AppState>,
    _: Admin,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<List<Product>>> {
    let listed = catalog::list_products(&app.store, &q.page()?, false).await?;
    Ok(Json(List::new("/admin/products", listed)))
}

/// Retrieve a product.
#[utoipa::path(get, path = "/admin/products/{id}", tag = "Products", security(("secret_key" = [])),
    params(("id" = String, Path)), responses((status = 200, body = Product), (status = "4XX", body = ErrorBody)))]
async fn get_product(State(app): State<AppState>, _: Admin, Path(id): Path<String>) -> ApiResult<Json<Product>> {
    Ok(Json(catalog::get_product(&app.store, &id, false, false).await?))
}

/// Update a product (only the fields given).
#[utoipa::path(post, path = "/admin/products/{id}", tag = "Products", request_body = UpdateProduct,
    params(("id" = String, Path), IdempotencyKeyHeader), security(("secret_key" = [])),
    responses((status = 200, body = Product), (status = "4XX", body = ErrorBody)))]
async fn update_product(
    State(app): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    req: Idempotent<UpdateProduct>,
) -> ApiResult<Response> {
    let now = app.clock.now();
    let body = req.body;
    req.request
        .local(&app, &admin.idempotency_scope(), move |tx| {
            Box::pin(async move { catalog::update_product(tx, now, &id, body).await })
        })
        .await
}

// ---------------------------------------------------------------- prices

/// Create a price (one-time, or recurring with `recurring.interval`).
#[utoipa::path(post, path = "/admin/prices", tag = "Prices", request_body = CreatePrice,
    params(IdempotencyKeyHeader), security(("secret_key" = [])),
    responses((status = 200, body = Price), (status = "4XX", body = ErrorBody)))]
async fn create_price(State(app): State<AppState>, admin: Admin, req: Idempotent<CreatePrice>) -> ApiResult<Response> {
    let now = app.clock.now();
    let body = req.body;
    let max = app.settings.checkout.max_amount;
    req.request
        .local(&app, &admin.idempotency_scope(), move |tx| Box::pin(catalog::create_price(tx, now, body, max)))
        .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct PriceListParams {
    /// Only prices of this product.
    product: Option<String>,
    /// Only prices of this pricing model.
    pricing_model: Option<String>,
    /// 1 to 100, default 10.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    starting_after: Option<String>,
    ending_before: Option<String>,
}

/// List prices, newest first.
#[utoipa::path(get, path = "/admin/prices", tag = "Prices", params(PriceListParams), security(("secret_key" = [])),
    responses((status = 200, body = List<Price>), (status = "4XX", body = ErrorBody)))]
async fn list_prices(
    State(app): State<AppState>,
    _: Admin,
    ApiQuery(q): ApiQuery<PriceListParams>,
) -> ApiResult<Json<List<Price>>> {
    let page = to_page(q.limit, &q.starting_after, &q.ending_before)?;
    let listed = catalog::list_prices(&app.store, q.product.as_deref(), q.pricing_model.as_deref(), &page).await?;
    Ok(Json(List::new("/admin/prices", listed)))
}

/// Retrieve a price.
#[utoipa::path(get, path = "/admin/prices/{id}", tag = "Prices", security(("secret_key" = [])),
    params(("id" = String, Path)), responses((status = 200, body = Price), (status = "4XX", body = ErrorBody)))]
async fn get_price(State(app): State<AppState>, _: Admin, Path(id): Path<String>) -> ApiResult<Json<Price>> {
    Ok(Json(catalog::get_price(&app.store, &id).await?))
}

/// Update a price. Amount, currency and interval are fixed once created; make a new price
/// and deactivate the old one instead.
#[utoipa::path(post, path = "/admin/prices/{id}", tag = "Prices", request_body = UpdatePrice,
    params(("id" = String, Path), IdempotencyKeyHeader), security(("secret_key" = [])),
    responses((status = 200, body = Price), (status = "4XX", body = ErrorBody)))]
async fn update_price(
    State(app): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    req: Idempotent<UpdatePrice>,
) -> ApiResult<Response> {
    let now = app.clock.now();
    let body = req.body;
    req.request
        .local(&app, &admin.idempotency_scope(), move |tx| {
            Box::pin(async move { catalog::update_price(tx, now, &id, body).await })
        })
        .await
}

// ---------------------------------------------------------------- pricing models

/// Create a pricing model. The first one becomes the default.
#[utoipa::path(post, path = "/admin/pricing-models", tag = "Pricing models", request_body = CreatePricingModel,
    params(IdempotencyKeyHeader), security(("secret_key" = [])),
    responses((status = 200, body = PricingModel), (status = "4XX", body = ErrorBody)))]
async fn create_pricing_model(
    State(app): State<AppState>,
    admin: Admin,
    req: Idempotent<CreatePricingModel>,
) -> ApiResult<Response> {
    let now = app.clock.now();
    let body = req.body;
    req.request
        .local(&app, &admin.idempotency_scope(), move |tx| Box::pin(catalog::create_pricing_model(tx, now, body)))
        .await
}

/// List pricing models.
#[utoipa::path(get, path = "/admin/pricing-models", tag = "Pricing models", params(ListParams), security(("secret_key" = [])),
    responses((status = 200, body = List<PricingModel>), (status = "4XX", body = ErrorBody)))]
async fn list_pricing_models(
    State(app): State<AppState>,
    _: Admin,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<List<PricingModel>>> {
    let listed = catalog::list_pricing_models(&app.store, &q.page()?).await?;
    Ok(Json(List::new("/admin/pricing-models", listed)))
}

/// Retrieve a pricing model.
#[utoipa::path(get, path = "/admin/pricing-models/{id}", tag = "Pricing models", security(("secret_key" = [])),
    params(("id" = String, Path)), responses((status = 200, body = PricingModel), (status = "4XX", body = ErrorBody)))]
async fn get_pricing_model(
    State(app): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<PricingModel>> {
    Ok(Json(catalog::get_pricing_model(&app.store, &id).await?))
}

/// Update a pricing model: rename, make it the default, set its free default price.
#[utoipa::path(post, path = "/admin/pricing-models/{id}", tag = "Pricing models", request_body = UpdatePricingModel,
    params(("id" = String, Path), IdempotencyKeyHeader), security(("secret_key" = [])),
    responses((status = 200, body = PricingModel), (status = "4XX", body = ErrorBody)))]
async fn update_pricing_model(
    State(app): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    req: Idempotent<UpdatePricingModel>,
) -> ApiResult<Response> {
    let now = app.clock.now();
    let body = req.body;
    req.request
        .local(&app, &admin.idempotency_scope(), move |tx| {
            Box::pin(async move { catalog::update_pricing_model(tx, now, &id, body).await })
        })
        .await
}

// ---------------------------------------------------------------- regions

/// Create a region: a currency and its taxes.
#[utoipa::path(post, path = "/admin/regions", tag = "Regions", request_body = CreateRegion,
    params(IdempotencyKeyHeader), security(("secret_key" = [])),
    responses((status = 200, body = Region), (status = "4XX", body = ErrorBody)))]
async fn create_region(
    State(app): State<AppState>,
    admin: Admin,
    req: Idempotent<CreateRegion>,
) -> ApiResult<Response> {
    let now = app.clock.now();
    let body = req.body;
    req.request.local(&app, &admin.idempotency_scope(), move |tx| Box::pin(catalog::create_region(tx, now, body))).await
}

/// List regions.
#[utoipa::path(get, path = "/admin/regions", tag = "Regions", params(ListParams), security(("secret_key" = [])),
    responses((status = 200, body = List<Region>), (status = "4XX", body = ErrorBody)))]
async fn list_regions(
    State(app): State<AppState>,
    _: Admin,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<List<Region>>> {
    let listed = catalog::list_regions(&app.store, &q.page()?).await?;
    Ok(Json(List::new("/admin/regions", listed)))
}

/// Retrieve a region.
#[utoipa::path(get, path = "/admin/regions/{id}", tag = "Regions", security(("secret_key" = [])),
    params(("id" = String, Path)), responses((status = 200, body = Region), (status = "4XX", body = ErrorBody)))]
async fn get_region(State(app): State<AppState>, _: Admin, Path(id): Path<String>) -> ApiResult<Json<Region>> {
    Ok(Json(catalog::get_region(&app.store, &id).await?))
}

/// Update a region (its currency is fixed).
#[utoipa::path(post, path = "/admin/regions/{id}", tag = "Regions", request_body = UpdateRegion,
    params(("id" = String, Path), IdempotencyKeyHeader), security(("secret_key" = [])),
    responses((status = 200, body = Region), (status = "4XX", body = ErrorBody)))]
async fn update_region(
    State(app): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    req: Idempotent<UpdateRegion>,
) -> ApiResult<Response> {
    let now = app.clock.now();
    let body = req.body;
    req.request
        .local(&app, &admin.idempotency_scope(), move |tx| {
            Box::pin(async move { catalog::update_region(tx, now, &id, body).await })
        })
        .await
}

// ---------------------------------------------------------------- shipping options

/// Create a flat-rate shipping option in a region.
#[utoipa::path(post, path = "/admin/shipping-options", tag = "Shipping options", request_body = CreateShippingOption,
    params(IdempotencyKeyHeader), security(("secret_key" = [])),
    responses((status = 200, body = ShippingOption), (status = "4XX", body = ErrorBody)))]
async fn create_shipping_option(
    State(app): State<AppState>,
    admin: Admin,
    req: Idempotent<CreateShippingOption>,
) -> ApiResult<Response> {
    let now = app.clock.now();
    let body = req.body;
    let max = app.settings.checkout.max_amount;
    req.request
        .local(&app, &admin.idempotency_scope(), move |tx| {
            Box::pin(catalog::create_shipping_option(tx, now, body, max))
        })
        .await
}

/// List shipping options.
#[utoipa::path(get, path = "/admin/shipping-options", tag = "Shipping options", params(ShippingListParams),
    security(("secret_key" = [])),
    responses((status = 200, body = List<ShippingOption>), (status = "4XX", body = ErrorBody)))]
async fn list_shipping_options(
    State(app): State<AppState>,
    _: Admin,
    ApiQuery(q): ApiQuery<ShippingListParams>,
) -> ApiResult<Json<List<ShippingOption>>> {
    let page = to_page(q.limit, &q.starting_after, &q.ending_before)?;
    let listed = catalog::list_shipping_options(&app.store, q.region.as_deref(), false, &page).await?;
    Ok(Json(List::new("/admin/shipping-options", listed)))
}

/// Retrieve a shipping option.
#[utoipa::path(get, path = "/admin/shipping-options/{id}", tag = "Shipping options", security(("secret_key" = [])),
    params(("id" = String, Path)), responses((status = 200, body = ShippingOption), (status = "4XX", body = ErrorBody)))]
async fn get_shipping_option(
    State(app): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<ShippingOption>> {
    Ok(Json(catalog::get_shipping_option(&app.store, &id).await?))
}

/// Update a shipping option.
#[utoipa::path(post, path = "/admin/shipping-options/{id}", tag = "Shipping options", request_body = UpdateShippingOption,
    params(("id" = String, Path), IdempotencyKeyHeader), security(("secret_key" = [])),
    responses((status = 200, body = ShippingOption), (status = "4XX", body = ErrorBody)))]
async fn update_shipping_option(
    State(app): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    req: Idempotent<UpdateShippingOption>,
) -> ApiResult<Response> {
    let now = app.clock.now();
    let body = req.body;
    let max = app.settings.checkout.max_amount;
    req.request
        .local(&app, &admin.idempotency_scope(), move |tx| {
            Box::pin(async move { catalog::update_shipping_option(tx, now, &id, body, max).await })
        })
        .await
}
