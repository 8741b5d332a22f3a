//! The audit trail: every dashboard action (and sign-in, sign-out) is an event
//! `dashboard.<action>` in the event log, naming the user, the object and the outcome. It is
//! read like any event (`GET /admin/events?type=dashboard.order.refund&object=ord_…`, and on
//! the object's page in the dashboard).

use crate::error::ApiResult;
use crate::services::audit::AuditRecord;
use crate::services::dashboard::SignedIn;
use crate::state::AppState;
use serde_json::{Value, json};

/// The event `dashboard.<action>` about `object`, naming the user; a service writes it in the
/// transaction of the change ([`AuditRecord`]).
pub fn record(user: &SignedIn, action: &str, object: &str, detail: Value) -> AuditRecord {
    let data = json!({
        "object": "dashboard_action",
        "action": action,
        "target": object,
        "user": {"id": user.user_id, "email": user.email, "role": user.role.as_str()},
        "detail": detail,
    });
    AuditRecord::new(format!("dashboard.{action}"), object, data)
}

/// Records `dashboard.<action>` about `object` in a transaction of its own: for what changes
/// nothing else (a sign-in, a refused or failed action).
pub async fn audit(state: &AppState, user: &SignedIn, action: &str, object: &str, detail: Value) -> ApiResult<()> {
    commit(state, &record(user, action, object, detail)).await
}

/// Writes `record` in a transaction of its own (unless a use case wrote it already).
pub async fn commit(state: &AppState, record: &AuditRecord) -> ApiResult<()> {
    if record.written() {
        return Ok(());
    }
    let mut tx = state.store.begin().await?;
    record.write(&mut tx, state.clock.now()).await?;
    tx.commit().await?;
    Ok(())
}
