//! Wake-ups of background jobs: a request whose commit made work for a job wakes it, so the
//! work starts at once instead of at the job's next round. Other servers find the same work
//! on their next round (no LISTEN/NOTIFY: it is not a correctness mechanism here).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// The job that creates processor customers (`jobs::processor_customers`).
pub const PROCESSOR_CUSTOMERS: &str = "processor_customers";

/// One wake-up per job name, shared through the application state. Waking a job that no
/// runner serves in this process (jobs disabled) is harmless.
#[derive(Clone, Default)]
pub struct Wakers {
    notify: Arc<Mutex<HashMap<&'static str, Arc<Notify>>>>,
}

impl Wakers {
    /// Makes `job` run a round soon: at once if idle, right after its current round if busy.
    pub fn wake(&self, job: &'static str) {
        self.notify_of(job).notify_one();
    }

    /// What the runner of `job` waits on.
    pub fn notify_of(&self, job: &'static str) -> Arc<Notify> {
        self.notify.lock().unwrap_or_else(|e| e.into_inner()).entry(job).or_default().clone()
    }
}
