//! The audit trail: every dashboard action (and sign-in, sign-out) is an event
//! `dashboard.<action>` in the event log, naming the user, the object and the outcome. It is
//! read like any event (`GET /admin/events?type=dashboard.order.refund&object=ord_…`, and on
//! the object's page in the dashboard).

use crate::error::ApiResult;
use crate::services::dashboard::SignedIn;
use crate::state::AppState;
use kassa_store::events;
use serde_json::{Value, json};

/// Records `dashboard.<action>` about `object`, naming the user.
pub async fn audit(state: &AppState, user: &SignedIn, action: &str, object: &str, detail: Value) -> ApiResult<()> {
    let now = state.clock.now();
    let data = json!({
        "object": "dashboard_action",
        "action": action,
        "target": object,
        "user": {"id": user.user_id, "email": user.email, "role": user.role.as_str()},
        "detail": detail,
    });
    let mut tx = state.store.begin().await?;
    events::record(&mut tx, &format!("dashboard.{action}"), object, &data, now).await?;
    tx.commit().await?;
    Ok(())
}
