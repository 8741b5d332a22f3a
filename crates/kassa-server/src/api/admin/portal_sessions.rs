//! Billing portal sessions: a customer's short-lived link to the hosted billing portal
//! (`services::portal_sessions`, pages in `api::portal_pages`).

use crate::api::IdempotencyKeyHeader;
use crate::api::auth::Admin;
use crate::api::idempotency::Idempotent;
use crate::error::{ApiResult, ErrorBody};
use crate::services::portal_sessions::{self, BillingPortalSession, CreatePortalSessionInput};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_portal_session))
}

/// Open the billing portal for the customer: a `url` to redirect them to, good for an hour,
/// where they see their subscriptions and invoices, update their card and cancel at the
/// period end. The URL's secret is the credential; it is shown only in this answer.
#[utoipa::path(post, path = "/admin/customers/{id}/portal-sessions", tag = "Customers",
    request_body(content = CreatePortalSessionInput, description = "Optional"),
    params(("id" = String, Path), IdempotencyKeyHeader), security(("secret_key" = [])),
    responses((status = 200, body = BillingPortalSession), (status = "4XX", body = ErrorBody)))]
async fn create_portal_session(
    State(app): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    req: Idempotent<CreatePortalSessionInput>,
) -> ApiResult<Response> {
    let body = req.body;
    let work = async { portal_sessions::create(&app, &id, body).await };
    req.request.staged(&app, &admin.idempotency_scope(), work).await
}
