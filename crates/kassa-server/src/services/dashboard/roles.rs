//! Roles of dashboard users and what each may do. The one place this is decided: the pages
//! hide what a role may not do, and every action asks [`Role::allows`] again, so a forged
//! form is refused like a missing button.

use crate::error::{ApiError, ApiResult};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Everything, including API keys and users.
    Owner,
    /// Orders, customers, credits and subscriptions.
    Staff,
    /// Reads only.
    Viewer,
}

/// Something a dashboard user may be allowed to do beyond reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// Capture, refund, cancel, fulfil orders.
    ManageOrders,
    /// Adjust a customer's credits.
    AdjustCredits,
    /// Create and revoke API keys.
    ManageApiKeys,
    /// Create dashboard users.
    ManageUsers,
    /// Resend events to webhook endpoints.
    ManageWebhooks,
    /// Cancel and resume subscriptions.
    ManageSubscriptions,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Owner, Role::Staff, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Staff => "staff",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> ApiResult<Role> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| ApiError::invalid("role", "role must be owner, staff or viewer."))
    }

    pub fn allows(self, p: Permission) -> bool {
        match self {
            Role::Owner => true,
            Role::Staff => {
                matches!(p, Permission::ManageOrders | Permission::AdjustCredits | Permission::ManageSubscriptions)
            }
            Role::Viewer => false,
        }
    }

    /// `Ok` when allowed, else the 403 every refused action answers.
    pub fn require(self, p: Permission) -> ApiResult<()> {
        if self.allows(p) {
            Ok(())
        } else {
            Err(ApiError::PermissionDenied(format!("The {} role may not do this.", self.as_str())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewers_only_read_staff_cannot_manage_keys_or_users() {
        for p in
            [Permission::ManageOrders, Permission::AdjustCredits, Permission::ManageApiKeys, Permission::ManageUsers]
        {
            assert!(Role::Owner.allows(p));
            assert!(!Role::Viewer.allows(p));
        }
        assert!(Role::Staff.allows(Permission::ManageOrders));
        assert!(Role::Staff.allows(Permission::ManageSubscriptions));
        assert!(!Role::Viewer.allows(Permission::ManageSubscriptions));
        assert!(!Role::Staff.allows(Permission::ManageApiKeys));
        assert!(!Role::Staff.allows(Permission::ManageUsers));
        assert!(Role::parse("admin").is_err());
    }
}
