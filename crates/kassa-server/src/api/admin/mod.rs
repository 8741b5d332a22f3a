//! The admin API (`/admin/*`): server to server, with a secret key.

mod catalog;
mod credits;
mod customers;
mod events;
mod orders;
mod payment_methods;
mod portal_sessions;
mod subscriptions;
mod test_clocks;
mod webhook_endpoints;

use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
pub use webhook_endpoints::document_webhooks;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(catalog::routes())
        .merge(credits::routes())
        .merge(customers::routes())
        .merge(events::routes())
        .merge(orders::routes())
        .merge(webhook_endpoints::routes())
        .merge(payment_methods::routes())
        .merge(subscriptions::routes())
        .merge(test_clocks::routes())
        // The billing portal (issue 15).
        .merge(portal_sessions::routes())
}
