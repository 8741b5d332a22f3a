use crate::api::rate_limit::RateLimits;
use crate::clock::Clock;
use crate::config::{CreditTerms, Settings};
use crate::services::identity::CustomerTokens;
use crate::services::keys::KeyCache;
use crate::single_flight::SingleFlight;
use crate::wakeups::Wakers;
use kassa_processors::Processor;
use kassa_processors::test::TestProcessor;
use kassa_store::Store;
use std::sync::Arc;

/// Everything a handler, service or job needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub processor: Arc<dyn Processor>,
    /// The same processor when it is the built-in `test` one: its hosted pages, controls and
    /// event delivery need more than the trait.
    pub test_processor: Option<Arc<TestProcessor>>,
    pub settings: Arc<Settings>,
    pub clock: Clock,
    /// Where browsers reach this server (hosted pages, redirects), without a trailing slash.
    pub public_url: Arc<str>,
    /// Verifier of customer JWTs; `None` when customer sign-in is not configured.
    pub customer_tokens: Option<Arc<CustomerTokens>>,
    /// This process's token buckets per API key (and client address on the store API).
    pub rate_limits: Arc<RateLimits>,
    /// Wakes background jobs after a commit that made work for them.
    pub jobs: Wakers,
    /// API keys this server looked up recently.
    pub api_keys: Arc<KeyCache>,
    /// Processor-customer creations in flight, by Kassa customer id (the processor's id, or
    /// the failure as text).
    pub processor_customers: Arc<SingleFlight<Result<String, String>>>,
    /// `credits.*` parsed at start.
    pub credit_terms: CreditTerms,
}
