//! Who a dashboard request comes from, and the check of its forms' CSRF token.

use crate::error::{ApiError, ApiResult};
use crate::services::dashboard::Role;
use subtle::ConstantTimeEq;

/// A signed-in user, as a request sees them.
#[derive(Clone, Debug)]
pub struct SignedIn {
    pub user_id: String,
    pub email: String,
    pub role: Role,
    /// The CSRF token every form of this session carries.
    pub csrf_token: String,
    /// SHA-256 of the cookie's token: the session's key in the database.
    pub(super) token_hash: String,
}

impl SignedIn {
    /// Whether `presented` is this session's CSRF token (constant time).
    pub fn csrf_matches(&self, presented: Option<&str>) -> bool {
        presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(self.csrf_token.as_bytes())))
    }

    /// The 403 of a form without this session's CSRF token.
    pub fn require_csrf(&self, presented: Option<&str>) -> ApiResult<()> {
        if self.csrf_matches(presented) {
            Ok(())
        } else {
            Err(ApiError::PermissionDenied("The form's CSRF token is missing or wrong; reload the page.".into()))
        }
    }
}
