//! Test clocks (the test processor only): billing of a year in seconds.

use crate::api::IdempotencyKeyHeader;
use crate::api::auth::Admin;
use crate::api::idempotency::Idempotent;
use crate::error::{ApiResult, ErrorBody};
use crate::objects::billing::TestClock;
use crate::services::test_clocks::{self, AdvanceInput, CreateTestClockInput};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_clock)).routes(routes!(get_clock)).routes(routes!(advance_clock))
}

/// Create a test clock at `frozen_time`; create customers on it with `test_clock`.
#[utoipa::path(post, path = "/admin/test-clocks", tag = "Test clocks", request_body = CreateTestClockInput,
    params(IdempotencyKeyHeader), security(("secret_key" = [])),
    responses((status = 200, body = TestClock), (status = "4XX", body = ErrorBody)))]
async fn create_clock(
    State(app): State<AppState>,
    admin: Admin,
    req: Idempotent<CreateTestClockInput>,
) -> ApiResult<Response> {
    let body = req.body;
    let work = async { test_clocks::create(&app, body).await };
    req.request.staged(&app, &admin.idempotency_scope(), work).await
}

/// Retrieve a test clock.
#[utoipa::path(get, path = "/admin/test-clocks/{id}", tag = "Test clocks", security(("secret_key" = [])),
    params(("id" = String, Path)), responses((status = 200, body = TestClock), (status = "4XX", body = ErrorBody)))]
async fn get_clock(State(app): State<AppState>, _: Admin, Path(id): Path<String>) -> ApiResult<Json<TestClock>> {
    Ok(Json(test_clocks::get(&app, &id).await?))
}

/// Advance the clock: every renewal and retry falling due for its customers up to
/// `frozen_time` runs, in time order, before this answers.
#[utoipa::path(post, path = "/admin/test-clocks/{id}/advance", tag = "Test clocks", request_body = AdvanceInput,
    params(("id" = String, Path), IdempotencyKeyHeader), security(("secret_key" = [])),
    responses((status = 200, body = TestClock), (status = "4XX", body = ErrorBody)))]
async fn advance_clock(
    State(app): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    req: Idempotent<AdvanceInput>,
) -> ApiResult<Response> {
    let body = req.body;
    let work = async { test_clocks::advance(&app, &id, body).await };
    req.request.staged(&app, &admin.idempotency_scope(), work).await
}
