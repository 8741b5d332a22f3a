//! The signed-in customer.

use crate::api::auth::Shopper;
use crate::error::{ApiResult, ErrorBody};
use crate::objects::customer::Customer;
use crate::state::AppState;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(me))
}

/// The customer of the bearer JWT (created on first sight).
#[utoipa::path(get, path = "/store/customers/me", tag = "Store",
    security(("publishable_key" = [], "customer_jwt" = [])),
    responses((status = 200, body = Customer), (status = "4XX", body = ErrorBody)))]
async fn me(shopper: Shopper) -> ApiResult<Json<Customer>> {
    Ok(Json(shopper.signed_in()?.clone().into()))
}
