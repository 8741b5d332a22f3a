//! What the sandbox's hosted pages show: the checkout page of a session, the 3-D Secure
//! challenge, and their stylesheet and script. Kassa's server serves them under
//! `/test-processor/…` (its `api/test_processor/` handlers add Kassa's authentication, error
//! objects and security headers); what a page says is the sandbox's.

pub mod assets;
pub mod views;
