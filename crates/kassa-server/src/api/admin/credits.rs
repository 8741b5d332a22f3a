//! A customer's credits, for the merchant's backend.

use crate::api::IdempotencyKeyHeader;
use crate::api::auth::Admin;
use crate::api::extract::ApiQuery;
use crate::api::idempotency::{self, Idempotent};
use crate::api::pagination::ListParams;
use crate::error::{ApiResult, ErrorBody};
use crate::objects::credits::{CreditBalance, CreditEntry};
use crate::services::credits::{self, AdjustInput, DebitInput};
use crate::services::validate;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use kassa_domain::ids::IdKind;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_credits)).routes(routes!(debit)).routes(routes!(adjust))
}

/// The ledger source of a debit or adjustment: its idempotency key when the caller sent
/// one, so a retry can never count twice even past the key's retention; else a fresh id.
fn source(kind: &str, customer: &str, headers: &HeaderMap) -> String {
    match headers.get(idempotency::HEADER).and_then(|v| v.to_str().ok()) {
        Some(key) => format!("{kind}:{customer}:{key}"),
        None => format!("{kind}:{}", IdKind::CreditEntry.new_id()),
    }
}

/// A customer's balance and ledger entries, newest first.
#[utoipa::path(get, path = "/admin/customers/{id}/credits", tag = "Credits", params(("id" = String, Path), ListParams),
    security(("secret_key" = [])), responses((status = 200, body = CreditBalance), (status = "4XX", body = ErrorBody)))]
async fn get_credits(
    State(app): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<CreditBalance>> {
    validate::id(IdKind::Customer, "customer", &id)?;
    Ok(Json(credits::balance(&app, &id, &q.page()?).await?))
}

/// Spend credits, atomically: 409 `insufficient_credits` when the balance would go below
/// zero. Send an `Idempotency-Key` so that a retry counts once.
#[utoipa::path(post, path = "/admin/customers/{id}/credits/debit", tag = "Credits", request_body = DebitInput,
    params(("id" = String, Path), IdempotencyKeyHeader), security(("secret_key" = [])),
    responses((status = 200, body = CreditEntry), (status = 409, body = ErrorBody), (status = "4XX", body = ErrorBody)))]
async fn debit(
    State(app): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    headers: HeaderMap,
    req: Idempotent<DebitInput>,
) -> ApiResult<Response> {
    let now = app.clock.now();
    let source = source("debit", &id, &headers);
    let body = req.body;
    req.request
        .local(&app, &admin.idempotency_scope(), move |tx| {
            Box::pin(async move { credits::debit(tx, now, &id, source, body).await })
        })
        .await
}

/// Add or remove credits by hand (with a reason).
#[utoipa::path(post, path = "/admin/customers/{id}/credits/adjust", tag = "Credits", request_body = AdjustInput,
    params(("id" = String, Path), IdempotencyKeyHeader), security(("secret_key" = [])),
    responses((status = 200, body = CreditEntry), (status = "4XX", body = ErrorBody)))]
async fn adjust(
    State(app): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    headers: HeaderMap,
    req: Idempotent<AdjustInput>,
) -> ApiResult<Response> {
    let now = app.clock.now();
    let source = source("adjustment", &id, &headers);
    let body = req.body;
    req.request
        .local(&app, &admin.idempotency_scope(), move |tx| {
            Box::pin(async move { credits::adjust(tx, now, &id, source, body).await })
        })
        .await
}
