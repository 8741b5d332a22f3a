//! Who may reach a cart, a checkout session or an order on the store API.
//!
//! Two credentials open such an object, and nothing else does:
//! - its owner, signed in (customer JWT): a customer's own objects — including the ones they
//!   owned as a guest before signing in with the same verified email, since that guest
//!   customer became them (`services::customers::signed_in`);
//! - one of its client secrets (`Kassa-Client-Secret` header or `client_secret` query
//!   parameter): the cart's opens the cart, its checkout sessions and the order paid from it;
//!   a session's opens that session. A secret opens its object whoever presents it, like
//!   Stripe's `client_secret`: it is handed only to whoever created the object.
//!
//! Everyone else — no credential, another guest with their own secret, a signed-in stranger —
//! gets the 404 of an object that does not exist, so an id reveals nothing either.
//!
//! The check uses only what the row read by the request already holds (owner and secret
//! hashes): no extra round trip on the cart and pay paths.

use kassa_domain::client_secret;
use kassa_store::customers::CustomerRow;

/// A store API caller, as far as access goes.
#[derive(Clone, Copy, Default)]
pub struct Caller<'a> {
    /// The signed-in customer (valid customer JWT).
    pub customer: Option<&'a CustomerRow>,
    /// The client secret the request presented, if any (never logged).
    pub client_secret: Option<&'a str>,
}

impl<'a> Caller<'a> {
    /// Whether the caller may reach an object owned by the customer `owner` (if any) whose
    /// client secrets hash to `secret_hashes` (absent ones are skipped).
    pub fn may_reach(&self, owner: Option<&str>, secret_hashes: &[Option<&str>]) -> bool {
        let is_owner = self.customer.is_some_and(|me| owner == Some(me.id.as_str()));
        is_owner || client_secret::verify_any(self.client_secret, secret_hashes)
    }
}
