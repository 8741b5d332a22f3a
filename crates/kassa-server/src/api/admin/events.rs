//! The event log: everything that changed, recorded in the transaction of the change.

use crate::api::auth::Admin;
use crate::api::extract::ApiQuery;
use crate::api::pagination::{List, to_page};
use crate::error::{ApiResult, ErrorBody};
use crate::objects::event::Event;
use crate::services::events;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_events)).routes(routes!(get_event))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct EventListParams {
    /// Only events of this type (`order.created`).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    kind: Option<String>,
    /// Only events about this object id.
    object: Option<String>,
    /// 1 to 100, default 10.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    starting_after: Option<String>,
    ending_before: Option<String>,
}

/// List events, newest first.
#[utoipa::path(get, path = "/admin/events", tag = "Events", params(EventListParams), security(("secret_key" = [])),
    responses((status = 200, body = List<Event>), (status = "4XX", body = ErrorBody)))]
async fn list_events(
    State(app): State<AppState>,
    _: Admin,
    ApiQuery(q): ApiQuery<EventListParams>,
) -> ApiResult<Json<List<Event>>> {
    let page = to_page(q.limit, &q.starting_after, &q.ending_before)?;
    let listed = events::list(&app.store, q.kind.as_deref(), q.object.as_deref(), &page).await?;
    Ok(Json(List::new("/admin/events", listed)))
}

/// Retrieve an event.
#[utoipa::path(get, path = "/admin/events/{id}", tag = "Events", security(("secret_key" = [])),
    params(("id" = String, Path)), responses((status = 200, body = Event), (status = "4XX", body = ErrorBody)))]
async fn get_event(State(app): State<AppState>, _: Admin, Path(id): Path<String>) -> ApiResult<Json<Event>> {
    Ok(Json(events::get(&app.store, &id).await?))
}
