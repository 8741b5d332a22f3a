//! The store API (`/store/*`): called by storefronts and browsers with a publishable key.

mod carts;
mod catalog;
mod credits;
mod customers;
mod orders;
mod subscription_checkout;

use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(catalog::routes())
        .merge(credits::routes())
        .merge(customers::routes())
        .merge(carts::routes())
        .merge(orders::routes())
        // Hosted subscription checkout (issue 15, "Starting one").
        .merge(subscription_checkout::routes())
}

/// Documents the client secret that opens a guest's cart, checkout session or order.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct ClientSecretHeader {
    /// The client secret of the cart (or of the checkout session), from the answer that
    /// created it. Without it (or with a wrong one) a guest's object answers 404; a signed-in
    /// customer's own objects need only their token.
    #[param(rename = "Kassa-Client-Secret")]
    client_secret: Option<String>,
}

/// Documents the client secret as a query parameter, for links.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ClientSecretQuery {
    /// The same as the `Kassa-Client-Secret` header, for links (the header wins when both are sent).
    client_secret: Option<String>,
}
