//! Starting a subscription from the storefront: a hosted checkout in subscription mode.

use crate::api::IdempotencyKeyHeader;
use crate::api::auth::Shopper;
use crate::api::idempotency::Idempotent;
use crate::error::{ApiResult, ErrorBody};
use crate::objects::commerce::CheckoutSession;
use crate::services::subscription_checkout::{self, CreateCheckoutInput};
use crate::state::AppState;
use axum::extract::State;
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_subscription_checkout))
}

/// Start a subscription through a hosted checkout (`mode=subscription`), for the signed-in
/// customer or a guest (`email`): `{id, url, client_secret}`; send the buyer to `url`. The
/// page says that the card is saved and charged for the subscription's future payments (how
/// much, how often) and asks for consent. Once paid, the subscription is `active` with its
/// first invoice (`subscription_create`) paid by that payment, the card the customer's
/// default; read the session (`GET /store/checkout-sessions/{id}`) for its `subscription`.
#[utoipa::path(post, path = "/store/checkout-sessions", tag = "Subscriptions", request_body = CreateCheckoutInput,
    params(IdempotencyKeyHeader), security(("publishable_key" = []), ("publishable_key" = [], "customer_jwt" = [])),
    responses((status = 200, body = CheckoutSession), (status = "4XX", body = ErrorBody)))]
async fn create_subscription_checkout(
    State(app): State<AppState>,
    shopper: Shopper,
    req: Idempotent<CreateCheckoutInput>,
) -> ApiResult<Response> {
    let scope = shopper.idempotency_scope();
    let customer = shopper.customer.clone();
    let body = req.body;
    let work = async { subscription_checkout::create(&app, customer.as_ref(), body).await };
    req.request.staged(&app, &scope, work).await
}
