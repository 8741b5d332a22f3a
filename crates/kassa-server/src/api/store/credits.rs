//! Prepaid credits for the shopper.

use crate::api::IdempotencyKeyHeader;
use crate::api::auth::Shopper;
use crate::api::extract::ApiQuery;
use crate::api::idempotency::Idempotent;
use crate::api::pagination::ListParams;
use crate::error::{ApiResult, ErrorBody};
use crate::objects::commerce::CheckoutSession;
use crate::objects::credits::CreditBalance;
use crate::services::credits::{self, TopUpInput};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_top_up)).routes(routes!(my_credits))
}

/// Buy credits: a hosted checkout whose total is grossed up so the merchant nets the
/// credits' value after the processor's fee (`ceil((credits + fixed) / (1 − percent))`).
/// The credits are added when the payment is paid, exactly once.
#[utoipa::path(post, path = "/store/credits/sessions", tag = "Credits", request_body = TopUpInput,
    params(IdempotencyKeyHeader), security(("publishable_key" = []), ("publishable_key" = [], "customer_jwt" = [])),
    responses((status = 200, body = CheckoutSession), (status = "4XX", body = ErrorBody)))]
async fn create_top_up(
    State(app): State<AppState>,
    shopper: Shopper,
    req: Idempotent<TopUpInput>,
) -> ApiResult<Response> {
    let scope = shopper.idempotency_scope();
    let customer = shopper.customer.clone();
    let body = req.body;
    let work = async { credits::create_top_up(&app, customer.as_ref(), body).await };
    req.request.staged(&app, &scope, work).await
}

/// The signed-in customer's balance and most recent ledger entries.
#[utoipa::path(get, path = "/store/customers/me/credits", tag = "Credits", params(ListParams),
    security(("publishable_key" = [], "customer_jwt" = [])),
    responses((status = 200, body = CreditBalance), (status = "4XX", body = ErrorBody)))]
async fn my_credits(
    State(app): State<AppState>,
    shopper: Shopper,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<CreditBalance>> {
    let me = shopper.signed_in()?;
    Ok(Json(credits::balance(&app, &me.id, &q.page()?).await?))
}
