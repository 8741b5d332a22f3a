//! The merchant's dashboard below HTTP: its people (`users`: accounts, passwords, sessions,
//! the throttle of failed sign-ins), what a role may do (`roles`), the actions of its forms
//! (`actions`: each one the same service function the admin API calls, run once per form
//! submission and recorded as an event naming the user), and the read models of its pages
//! (`pages`).

pub mod actions;
pub mod audit;
pub mod pages;
pub mod roles;
pub mod signed_in;
pub mod users;

pub use roles::{Permission, Role};
pub use signed_in::SignedIn;
