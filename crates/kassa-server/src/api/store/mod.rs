//! The store API (`/store/*`): called by storefronts and browsers with a publishable key.

mod carts;
mod catalog;
mod credits;
mod customers;
mod orders;

use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(catalog::routes())
        .merge(credits::routes())
        .merge(customers::routes())
        .merge(carts::routes())
        .merge(orders::routes())
}
