//! One attempt at a time per key within this server: concurrent callers for the same key
//! share the attempt in flight and all get its result (Go's `singleflight`). The processor
//! customer uses it, so that the creation right after sign-up and the first payment, which
//! typically race, make one processor call and the payment waits exactly as long as it takes.

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// Attempts in flight by key; part of `AppState`, so each server (and each test server in one
/// process) has its own.
pub struct SingleFlight<T: Clone> {
    in_flight: Mutex<HashMap<String, Shared<BoxFuture<'static, T>>>>,
}

impl<T: Clone> Default for SingleFlight<T> {
    fn default() -> Self {
        SingleFlight { in_flight: Mutex::new(HashMap::new()) }
    }
}

impl<T: Clone + Send + Sync + 'static> SingleFlight<T> {
    /// Joins the attempt in flight for `key`, or starts `attempt` as the one; the entry goes
    /// when the attempt ends, so a later call tries afresh.
    pub async fn run<F>(self: &Arc<Self>, key: &str, attempt: impl FnOnce() -> F) -> T
    where
        F: Future<Output = T> + Send + 'static,
    {
        let shared = {
            let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(key.to_string())
                .or_insert_with(|| {
                    let (this, key, attempt) = (self.clone(), key.to_string(), attempt());
                    async move {
                        let result = attempt.await;
                        this.in_flight.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
                        result
                    }
                    .boxed()
                    .shared()
                })
                .clone()
        };
        shared.await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_callers_share_one_attempt_and_later_ones_start_afresh() {
        let flights = Arc::new(SingleFlight::<usize>::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let (release, wait) = tokio::sync::oneshot::channel::<()>();
        let wait = wait.shared();
        let start = |runs: Arc<AtomicUsize>, wait: futures::future::Shared<tokio::sync::oneshot::Receiver<()>>| {
            move || async move {
                let _ = wait.await;
                runs.fetch_add(1, Ordering::SeqCst)
            }
        };
        let a = tokio::spawn({
            let f = flights.clone();
            let s = start(runs.clone(), wait.clone());
            async move { f.run("k", s).await }
        });
        tokio::task::yield_now().await;
        let b = tokio::spawn({
            let f = flights.clone();
            let s = start(runs.clone(), wait.clone());
            async move { f.run("k", s).await }
        });
        tokio::task::yield_now().await;
        release.send(()).unwrap();
        assert_eq!((a.await.unwrap(), b.await.unwrap()), (0, 0));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(flights.run("k", start(runs.clone(), wait)).await, 1);
    }
}
