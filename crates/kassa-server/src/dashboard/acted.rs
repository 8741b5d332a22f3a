//! What a page answers after one of its action forms (capture, refund, cancel a
//! subscription, adjust credits, …), the same way for every object: back to the object's page
//! with a 303 (so a reload does not post again) saying what was done, or that the form was
//! submitted before; a refused role, an unknown object or a fault as an error page; any other
//! refusal (a bad amount, a state that does not allow it) on the object's page again, with the
//! message in place.

use crate::dashboard::error_page;
use crate::error::{ApiError, ApiResult};
use crate::services::dashboard::SignedIn;
use crate::services::dashboard::actions::{Done, Submitted};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::future::Future;

/// The fields every confirmed action form sends besides its own.
#[derive(Deserialize)]
pub struct FormKey {
    #[serde(default)]
    pub idempotency_key: String,
    pub confirm: Option<String>,
}

impl FormKey {
    pub fn submitted(&self) -> Submitted<'_> {
        Submitted { key: &self.idempotency_key, confirmed: self.confirm.as_deref() == Some("yes") }
    }
}

/// The answer to `result`, an action `done` on the object whose page is `page`; `again`
/// renders that page with a refusal in place.
pub async fn answer<T, Fut>(
    user: &SignedIn,
    page: &str,
    done: &str,
    result: ApiResult<Done<T>>,
    again: impl FnOnce(ApiError) -> Fut,
) -> Response
where
    Fut: Future<Output = Response>,
{
    match result {
        Ok(Done::Now(_)) => Redirect::to(&format!("{page}?done={done}")).into_response(),
        Ok(Done::Before) => Redirect::to(&format!("{page}?done=repeat")).into_response(),
        Err(e @ (ApiError::PermissionDenied(_) | ApiError::NotFound { .. } | ApiError::Internal(_))) => {
            error_page(e, Some(user))
        }
        Err(e) => again(e).await,
    }
}
