//! A customer's orders.

use crate::api::auth::Shopper;
use crate::api::extract::ApiQuery;
use crate::api::pagination::{List, ListParams};
use crate::error::{ApiResult, ErrorBody};
use crate::objects::commerce::Order;
use crate::services::orders;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_orders)).routes(routes!(get_order))
}

/// The signed-in customer's orders, newest first.
#[utoipa::path(get, path = "/store/orders", tag = "Store", params(ListParams),
    security(("publishable_key" = [], "customer_jwt" = [])),
    responses((status = 200, body = List<Order>), (status = "4XX", body = ErrorBody)))]
async fn list_orders(
    State(app): State<AppState>,
    shopper: Shopper,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<List<Order>>> {
    let me = shopper.signed_in()?;
    let listed = orders::list(&app.store, Some(&me.id), &q.page()?).await?;
    Ok(Json(List::new("/store/orders", listed)))
}

/// An order of the signed-in customer, or a guest's order with the client secret of the cart it
/// was paid from.
#[utoipa::path(get, path = "/store/orders/{id}", tag = "Store",
    params(("id" = String, Path), super::ClientSecretHeader, super::ClientSecretQuery),
    security(("publishable_key" = []), ("publishable_key" = [], "customer_jwt" = [])),
    responses((status = 200, body = Order), (status = "4XX", body = ErrorBody)))]
async fn get_order(State(app): State<AppState>, shopper: Shopper, Path(id): Path<String>) -> ApiResult<Json<Order>> {
    Ok(Json(orders::load_for_shopper(&app, shopper.caller(), &id).await?))
}
