//! The built-in `test` processor: Stripe's test mode, offline, with its state in Kassa's own
//! database (tables `tp_*`), so that it survives restarts and every server sharing the
//! database sees the same processor.
//!
//! Kassa's services see it only through [`Processor`]; it behaves like Stripe wherever they can
//! observe it: the test cards, PaymentIntent statuses, manual capture, refunds, saved cards,
//! persisted idempotency keys, hosted checkout sessions, and webhook events signed like
//! Stripe's and delivered at least once ([`TestProcessor::deliver_due`]).
//!
//! Every mutating call reads what it needs (its idempotency key with the first read) and then
//! writes in ONE statement, without `BEGIN`/`COMMIT`: the objects it changed, its events and its
//! stored result, together or not at all, and only if the objects it read are unchanged (else
//! it runs again on fresh reads). See [`db`] for why and how.
//!
//! The whole processor is this crate (named for what it is, a sandbox; the configuration kind
//! stays `test`): the processor ([`TestProcessor`]), its tables' data access ([`db`]) and
//! migrations ([`migrations`]), what its hosted pages show ([`pages`]), its delivery and
//! housekeeping rounds (which Kassa's job runner schedules). It depends on `kassa-processors`
//! for the [`Processor`] trait and on `kassa-store` for the database handle; nothing below
//! depends on it. `tests/contract.rs` holds the contract suite it shares with the Stripe client.

pub mod cards;
mod checkout;
pub mod db;
mod delivery;
pub mod migrations;
pub mod objects;
pub mod pages;
mod payments;
mod tokens;
mod work;

pub use cards::CardInput;
pub use checkout::{AuthenticationResult, CheckoutPayment};
pub use delivery::DeliveryStats;
pub use tokens::TokenSource;

use async_trait::async_trait;
use db::Applied;
use kassa_processors::signature::{self, DEFAULT_TOLERANCE_SECS};
use kassa_processors::*;
use kassa_store::{Store, settings};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use work::{Work, db_failed, invalid};

/// The setting the shared webhook secret is kept under.
const WEBHOOK_SECRET_SETTING: &str = "test_processor_webhook_secret";
const IDEMPOTENCY_RETENTION_SECS: i64 = 24 * 3600;
const DELIVERED_EVENT_RETENTION_SECS: i64 = 30 * 24 * 3600;

#[derive(Clone)]
pub struct TestProcessorConfig {
    /// Where browsers reach this server: hosted checkout pages and 3-D Secure challenges
    /// live under `{public_url}/test-processor/…`.
    pub public_url: String,
    /// Signs the events (`whsec_…`); see [`TestProcessor::webhook_secret`].
    pub webhook_secret: String,
    /// Unix seconds; the server passes its settable clock.
    pub now: Arc<dyn Fn() -> i64 + Send + Sync>,
    /// The first retry of an unacknowledged event waits this long, each further one twice as
    /// long (up to [`TestProcessorConfig::max_retry_delay_ms`]).
    pub retry_base_ms: u64,
    pub max_retry_delay_ms: u64,
    /// Events one server claims per delivery round.
    pub delivery_batch: i64,
}

impl TestProcessorConfig {
    /// Retries after 1 s, 2 s, 4 s, … up to 10 minutes.
    pub fn new(
        public_url: impl Into<String>,
        webhook_secret: impl Into<String>,
        now: Arc<dyn Fn() -> i64 + Send + Sync>,
    ) -> Self {
        TestProcessorConfig {
            public_url: public_url.into().trim_end_matches('/').to_string(),
            webhook_secret: webhook_secret.into(),
            now,
            retry_base_ms: 1000,
            max_retry_delay_ms: 600_000,
            delivery_batch: 100,
        }
    }
}

/// Cheap to clone: clones share the database, the configuration and the switches.
#[derive(Clone)]
pub struct TestProcessor {
    store: Store,
    config: Arc<TestProcessorConfig>,
    switches: Arc<Switches>,
    /// The objects this process wrote last ([`work::Known`]).
    known: Arc<work::Known>,
}

/// Misbehaviours a test (or a demo) switches on to see how Kassa copes. They apply to this
/// server process.
struct Switches {
    available: AtomicBool,
    /// Like localstripe: every call runs afresh whatever its `Idempotency-Key`.
    ignore_idempotency_keys: AtomicBool,
    /// Like a processor stopped mid-call (`SIGSTOP`): calls wait until it resumes, and then
    /// run, whether or not their caller is still waiting.
    stalled: tokio::sync::watch::Sender<bool>,
}

/// A call's result as its idempotency key keeps it: successes and payment failures are
/// replayed; refused requests are not kept (as at Stripe, they did nothing).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum KeptResult<T> {
    Ok(T),
    PaymentFailed { error: PaymentError, payment_intent: Option<Box<PaymentIntent>> },
}

/// What a call commits: a result, or a payment failure (which changes the PaymentIntent and
/// records its event, so it commits too).
pub(crate) enum Committed<T> {
    Done(T),
    Declined { error: PaymentError, payment_intent: Box<PaymentIntent> },
}

impl<T> KeptResult<T> {
    fn into_result(self) -> Result<T, ProcessorError> {
        match self {
            KeptResult::Ok(v) => Ok(v),
            KeptResult::PaymentFailed { error, payment_intent } => {
                Err(ProcessorError::Payment { error, payment_intent })
            }
        }
    }
}

impl TestProcessor {
    pub fn new(store: Store, config: TestProcessorConfig) -> Self {
        let switches = Switches {
            available: AtomicBool::new(true),
            ignore_idempotency_keys: AtomicBool::new(false),
            stalled: tokio::sync::watch::Sender::new(false),
        };
        TestProcessor { store, config: Arc::new(config), switches: Arc::new(switches), known: Arc::default() }
    }

    /// The webhook signing secret all servers on this database share: created by the first
    /// one that asks, read by the others.
    pub async fn webhook_secret(store: &Store) -> Result<String, kassa_store::StoreError> {
        if let Some(secret) = settings::get(store.reader(), WEBHOOK_SECRET_SETTING).await? {
            return Ok(secret);
        }
        use rand::Rng;
        let bytes: [u8; 24] = rand::thread_rng().r#gen();
        settings::insert_if_absent(store.writer(), WEBHOOK_SECRET_SETTING, &format!("whsec_{}", hex::encode(bytes)))
            .await?;
        // Another server may have stored its secret first; everyone uses the stored one.
        settings::get(store.writer(), WEBHOOK_SECRET_SETTING)
            .await?
            .ok_or_else(|| kassa_store::StoreError::Corrupt("the webhook secret vanished".into()))
    }

    pub fn config(&self) -> &TestProcessorConfig {
        &self.config
    }

    /// The failure switch: while off, every [`Processor`] call (and every payment on a hosted
    /// page) fails with [`ProcessorError::Unavailable`] and changes nothing, as when Stripe
    /// is down. Event delivery goes on.
    pub fn set_available(&self, available: bool) {
        self.switches.available.store(available, Ordering::SeqCst);
    }

    pub fn is_available(&self) -> bool {
        self.switches.available.load(Ordering::SeqCst)
    }

    /// The localstripe switch: while on, idempotency keys are neither looked up nor stored,
    /// so a repeated call makes a second PaymentIntent (a second charge), as localstripe does
    /// — and as Stripe does once a key has expired after 24 hours.
    pub fn set_ignore_idempotency_keys(&self, ignore: bool) {
        self.switches.ignore_idempotency_keys.store(ignore, Ordering::SeqCst);
    }

    pub fn ignores_idempotency_keys(&self) -> bool {
        self.switches.ignore_idempotency_keys.load(Ordering::SeqCst)
    }

    /// The stall switch: while on, every [`Processor`] call waits (as a request to a
    /// processor that stopped answering does) and runs once it is switched off, even if its
    /// caller gave up meanwhile — the request had reached the processor.
    pub fn set_stalled(&self, stalled: bool) {
        self.switches.stalled.send_replace(stalled);
    }

    pub fn is_stalled(&self) -> bool {
        *self.switches.stalled.borrow()
    }

    /// The key a call is made under: none while keys are ignored.
    fn honored<'k>(&self, key: &'k IdempotencyKey) -> Option<&'k str> {
        (!self.ignores_idempotency_keys()).then_some(key.as_str())
    }

    /// Makes a call the way a remote processor serves a request: once sent, it completes even
    /// if the caller stops waiting for the answer (its deadline passed). Normally that is
    /// simply running it; while stalled the call waits in a task of its own for the resume.
    async fn send<T, Fut>(&self, call: impl FnOnce(TestProcessor) -> Fut) -> Result<T, ProcessorError>
    where
        T: Send + 'static,
        Fut: std::future::Future<Output = Result<T, ProcessorError>> + Send + 'static,
    {
        self.check_available()?;
        if !self.is_stalled() {
            return call(self.clone()).await;
        }
        let mut resumed = self.switches.stalled.subscribe();
        let call = call(self.clone());
        let sent = tokio::spawn(async move {
            let _ = resumed.wait_for(|stalled| !*stalled).await;
            call.await
        });
        sent.await.map_err(|e| ProcessorError::Unavailable(format!("the test processor's call failed: {e}")))?
    }

    fn check_available(&self) -> Result<(), ProcessorError> {
        if self.is_available() {
            Ok(())
        } else {
            Err(ProcessorError::Unavailable("the test processor is switched off (simulated outage)".into()))
        }
    }

    fn now(&self) -> i64 {
        (self.config.now)()
    }

    /// Milliseconds on the same clock as [`Self::now`] (which may be set ahead in tests).
    fn now_ms(&self) -> i64 {
        let real = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970");
        self.now() * 1000 + i64::from(real.subsec_millis())
    }

    /// What the processor does by itself besides delivering events: expires overdue checkout
    /// sessions, forgets idempotency keys after 24 hours (as Stripe does) and delivered
    /// events after 30 days. Bounded batches; safe on several servers at once.
    pub async fn housekeeping(&self) -> Result<usize, ProcessorError> {
        const BATCH: i64 = 1000;
        let expired = self.expire_overdue_sessions().await?;
        let now = self.now();
        db::delete_idempotency_before(&self.store, now - IDEMPOTENCY_RETENTION_SECS, BATCH).await.map_err(db_failed)?;
        db::delete_delivered_before(&self.store, now - DELIVERED_EVENT_RETENTION_SECS, BATCH)
            .await
            .map_err(db_failed)?;
        Ok(expired)
    }

    /// Every event recorded so far, oldest first, as delivered (Stripe's event JSON).
    pub async fn events(&self) -> Result<Vec<serde_json::Value>, ProcessorError> {
        let rows = db::list_events(self.store.reader()).await.map_err(db_failed)?;
        Ok(rows.iter().filter_map(|r| serde_json::from_str(&r.data).ok()).collect())
    }

    /// The stored Stripe JSON of any object (`pi_…`, `ch_…`, `cs_…`, …).
    pub async fn object(&self, id: &str) -> Result<serde_json::Value, ProcessorError> {
        let rows = db::read_with_children(self.store.reader(), id).await.map_err(db_failed)?;
        let row = rows.into_iter().find(|r| r.id == id).ok_or_else(|| ProcessorError::NotFound(id.to_string()))?;
        serde_json::from_str(&row.data).map_err(|e| ProcessorError::Unavailable(e.to_string()))
    }

    /// Starts (one attempt of) a call under an idempotency key (when given): its first load
    /// looks the key up, and a stored result answers the call (see [`Self::close`]).
    /// A first attempt may start from the objects this process wrote; a later one (an object
    /// changed under the one before) reads everything from the database.
    pub(crate) fn open(&self, key: Option<&str>, attempt: u32) -> Work {
        Work::begin(&self.store, &self.known, attempt == 1, self.now(), self.now_ms(), key)
    }

    /// Ends an attempt of a call. Answers with the key's stored result when its first load
    /// found one (the same key and `fingerprint` replay the first result, the same key with
    /// another fingerprint is refused with `idempotency_error`). Otherwise writes what the
    /// call did with its result under the key, in one statement; a refused request writes
    /// nothing (as at Stripe, it did nothing). When an object the call read changed meanwhile
    /// nothing is written and the call is to run again ([`Closed::Again`]).
    pub(crate) async fn close<T: Serialize + DeserializeOwned>(
        &self,
        work: Work,
        key: Option<&str>,
        fingerprint: &str,
        outcome: Result<Committed<T>, ProcessorError>,
    ) -> Result<Closed<T>, ProcessorError> {
        if let Some(row) = &work.replayed {
            return Ok(Closed::Answer(replay(row, fingerprint)));
        }
        let committed = match outcome {
            Ok(c) => c,
            Err(e) => {
                // A concurrent call with this key may have written its result while this one
                // read the objects it had changed: answer as it did.
                return Ok(Closed::Answer(match self.stored_result(key, fingerprint).await? {
                    Some(replayed) => replayed,
                    None => Err(e),
                }));
            }
        };
        let kept = match committed {
            Committed::Done(v) => KeptResult::Ok(v),
            Committed::Declined { error, payment_intent } => {
                KeptResult::PaymentFailed { error, payment_intent: Some(payment_intent) }
            }
        };
        let response = key.map(|_| serde_json::to_string(&kept).expect("results serialize"));
        match work.write(response.as_deref().map(|r| (fingerprint, r))).await? {
            Applied::Written => Ok(Closed::Answer(kept.into_result())),
            Applied::Conflict => Ok(Closed::Again),
            // A concurrent call with the same key wrote first: this one did nothing, and
            // answers with the first one's result.
            Applied::KeyTaken => Ok(Closed::Answer(self.stored_result(key, fingerprint).await?.unwrap_or_else(|| {
                Err(ProcessorError::Unavailable("the idempotency key's stored result vanished".into()))
            }))),
        }
    }

    async fn stored_result<T: DeserializeOwned>(
        &self,
        key: Option<&str>,
        fingerprint: &str,
    ) -> Result<Option<Result<T, ProcessorError>>, ProcessorError> {
        let Some(key) = key else { return Ok(None) };
        let row = db::get_idempotency(self.store.reader(), key).await.map_err(db_failed)?;
        Ok(row.map(|row| replay(&row, fingerprint)))
    }
}

/// How an attempt of a call ended.
pub(crate) enum Closed<T> {
    Answer(Result<T, ProcessorError>),
    /// An object it read changed before it could write: it wrote nothing and runs again.
    Again,
}

/// Attempts of a call whose objects keep changing under it before it gives up (as
/// unavailable: the caller may retry with the same key).
pub(crate) const MAX_ATTEMPTS: u32 = 25;

/// Runs a call — `$body`, which works on the [`Work`] `$w` — until it ends without meeting a
/// concurrent change (see [`TestProcessor::close`]), and evaluates to its answer.
macro_rules! call {
    ($tp:expr, $key:expr, $fingerprint:expr, |$w:ident| $body:expr) => {{
        let mut attempt = 1;
        loop {
            #[allow(unused_mut)]
            let mut $w = $tp.open($key, attempt);
            let outcome = $body;
            match $tp.close($w, $key, $fingerprint, outcome).await? {
                $crate::Closed::Answer(result) => break result,
                $crate::Closed::Again if attempt < $crate::MAX_ATTEMPTS => {
                    attempt += 1;
                    // Let the call that won get ahead, then read again.
                    tokio::time::sleep(std::time::Duration::from_millis(u64::from(attempt))).await;
                }
                $crate::Closed::Again => {
                    break Err(kassa_processors::ProcessorError::Unavailable(
                        "the test processor's objects kept changing under this call; try again".into(),
                    ));
                }
            }
        }
    }};
}
pub(crate) use call;

fn replay<T: DeserializeOwned>(row: &db::IdempotencyRow, fingerprint: &str) -> Result<T, ProcessorError> {
    if row.fingerprint != fingerprint {
        return Err(invalid(
            "idempotency_error",
            None,
            format!(
                "Keys for idempotent requests can only be used with the same parameters they were first used with. \
                 Try using a key other than '{}' if you meant to execute a different request.",
                row.key
            ),
        ));
    }
    let stored: KeptResult<T> = serde_json::from_str(&row.response)
        .map_err(|e| ProcessorError::Unavailable(format!("stored idempotent result is malformed: {e}")))?;
    stored.into_result()
}

/// What an idempotency key must be reused with: the operation and all its parameters.
fn fingerprint(operation: &str, params: &impl Serialize) -> String {
    let mut hasher = Sha256::new();
    hasher.update(operation.as_bytes());
    hasher.update(b"\n");
    hasher.update(serde_json::to_vec(params).expect("parameters serialize"));
    hex::encode(hasher.finalize())
}

#[async_trait]
impl Processor for TestProcessor {
    fn name(&self) -> &'static str {
        "test"
    }

    async fn create_customer(
        &self,
        req: &CreateCustomer,
        key: &IdempotencyKey,
    ) -> Result<ProcessorCustomer, ProcessorError> {
        let (req, key) = (req.clone(), key.clone());
        self.send(move |tp| async move {
            let (key, fp) = (tp.honored(&key), fingerprint("create_customer", &req));
            call!(tp, key, &fp, |w| Ok(Committed::Done(payments::create_customer(&mut w, &req))))
        })
        .await
    }

    async fn create_payment_intent(
        &self,
        req: &CreatePaymentIntent,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProcessorError> {
        let (req, key) = (req.clone(), key.clone());
        self.send(move |tp| async move {
            let (key, fp) = (tp.honored(&key), fingerprint("create_payment_intent", &req));
            call!(tp, key, &fp, |w| tp.create_payment_intent_in(&mut w, &req).await)
        })
        .await
    }

    async fn confirm_payment_intent(
        &self,
        id: &str,
        req: &ConfirmPaymentIntent,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProcessorError> {
        let (id, req, key) = (id.to_string(), req.clone(), key.clone());
        self.send(move |tp| async move {
            let (key, fp) = (tp.honored(&key), fingerprint("confirm_payment_intent", &(&id, &req)));
            call!(tp, key, &fp, |w| tp.confirm_payment_intent_in(&mut w, &id, &req).await)
        })
        .await
    }

    async fn retrieve_payment_intent(&self, id: &str) -> Result<PaymentIntent, ProcessorError> {
        let id = id.to_string();
        self.send(move |tp| async move {
            let rows = db::read_with_children(tp.store.reader(), &id).await.map_err(db_failed)?;
            payments::neutral_from_rows(&id, &rows)
        })
        .await
    }

    async fn list_payment_intents(
        &self,
        starting_after: Option<&str>,
        limit: u32,
    ) -> Result<PaymentIntentPage, ProcessorError> {
        let starting_after = starting_after.map(str::to_string);
        self.send(
            move |tp| async move { payments::list_payment_intents(&tp.store, starting_after.as_deref(), limit).await },
        )
        .await
    }

    async fn capture_payment_intent(
        &self,
        id: &str,
        amount: Option<i64>,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProcessorError> {
        let (id, key) = (id.to_string(), key.clone());
        self.send(move |tp| async move {
            let (key, fp) = (tp.honored(&key), fingerprint("capture_payment_intent", &(&id, amount)));
            call!(tp, key, &fp, |w| payments::capture(&mut w, &id, amount).await)
        })
        .await
    }

    async fn cancel_payment_intent(&self, id: &str, key: &IdempotencyKey) -> Result<PaymentIntent, ProcessorError> {
        let (id, key) = (id.to_string(), key.clone());
        self.send(move |tp| async move {
            let (key, fp) = (tp.honored(&key), fingerprint("cancel_payment_intent", &id));
            call!(tp, key, &fp, |w| payments::cancel(&mut w, &id).await)
        })
        .await
    }

    async fn create_refund(&self, req: &CreateRefund, key: &IdempotencyKey) -> Result<Refund, ProcessorError> {
        let (req, key) = (req.clone(), key.clone());
        self.send(move |tp| async move {
            let (key, fp) = (tp.honored(&key), fingerprint("create_refund", &req));
            call!(tp, key, &fp, |w| payments::refund(&mut w, &req).await)
        })
        .await
    }

    async fn list_payment_methods(&self, customer: &str) -> Result<Vec<PaymentMethod>, ProcessorError> {
        let customer = customer.to_string();
        self.send(move |tp| async move { payments::list_payment_methods(&tp.store, &customer).await }).await
    }

    async fn attach_payment_method(
        &self,
        payment_method: &str,
        customer: &str,
        key: &IdempotencyKey,
    ) -> Result<PaymentMethod, ProcessorError> {
        let (pm, customer, key) = (payment_method.to_string(), customer.to_string(), key.clone());
        self.send(move |tp| async move {
            let (key, fp) = (tp.honored(&key), fingerprint("attach_payment_method", &(&pm, &customer)));
            call!(tp, key, &fp, |w| payments::attach_payment_method(&mut w, &pm, &customer).await)
        })
        .await
    }

    async fn detach_payment_method(
        &self,
        payment_method: &str,
        key: &IdempotencyKey,
    ) -> Result<PaymentMethod, ProcessorError> {
        let (pm, key) = (payment_method.to_string(), key.clone());
        self.send(move |tp| async move {
            let (key, fp) = (tp.honored(&key), fingerprint("detach_payment_method", &pm));
            call!(tp, key, &fp, |w| payments::detach_payment_method(&mut w, &pm).await)
        })
        .await
    }

    async fn create_checkout_session(
        &self,
        req: &CreateCheckoutSession,
        key: &IdempotencyKey,
    ) -> Result<CheckoutSession, ProcessorError> {
        let (req, key) = (req.clone(), key.clone());
        self.send(move |tp| async move {
            let (key, fp) = (tp.honored(&key), fingerprint("create_checkout_session", &req));
            call!(tp, key, &fp, |w| tp.create_checkout_session_in(&mut w, &req).await)
        })
        .await
    }

    async fn retrieve_checkout_session(&self, id: &str) -> Result<CheckoutSession, ProcessorError> {
        let id = id.to_string();
        self.send(move |tp| async move { Ok(objects::checkout_session_neutral(&tp.checkout_session(&id).await?)) })
            .await
    }

    async fn expire_checkout_session(&self, id: &str, key: &IdempotencyKey) -> Result<CheckoutSession, ProcessorError> {
        let (id, key) = (id.to_string(), key.clone());
        self.send(move |tp| async move {
            let (key, fp) = (tp.honored(&key), fingerprint("expire_checkout_session", &id));
            call!(tp, key, &fp, |w| checkout::expire(&mut w, &id).await)
        })
        .await
    }

    fn parse_event(&self, payload: &[u8], signature: &str, now: i64) -> Result<Event, EventError> {
        let header = Some(signature).filter(|s| !s.trim().is_empty());
        signature::verify(&self.config.webhook_secret, payload, header, now, DEFAULT_TOLERANCE_SECS)?;
        parse_event_body(payload)
    }
}

/// Stripe's event JSON → [`Event`], read as the Stripe client reads it.
pub fn parse_event_body(payload: &[u8]) -> Result<Event, EventError> {
    serde_json::from_slice::<objects::Event>(payload)
        .map(objects::Event::into_neutral)
        .map_err(|e| EventError::Malformed(e.to_string()))
}
