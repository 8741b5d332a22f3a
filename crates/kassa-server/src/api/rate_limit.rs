//! Rate limits (SPEC §2): a token bucket per secret key on the admin API, and per publishable
//! key and client address on the store API (a publishable key is public: one abusive client
//! must not exhaust the bucket of every shopper). Over the limit the answer is 429
//! `rate_limit_error` with `Retry-After`, counted in `kassa_rate_limited_total{api}`.
//!
//! The buckets are `governor`'s GCRA keyed limiters, in this process's memory: several Kassa
//! servers behind one load balancer each apply their own buckets, so a client may reach up to
//! N times the configured rate across N servers. The checks run in the authentication
//! extractors ([`crate::api::auth`]), after the key is known to be valid, so only API-key
//! routes are limited: `/webhooks/stripe` (signed by the processor), `/health`, `/ready`,
//! `/metrics` and the test processor's hosted pages are not.
//!
//! Failed authentications (an unknown or revoked key) are limited per client address
//! ([`FailedAuth`]): past the limit, every API-key request from that address is refused with
//! 429 before its key is even looked up, so a brute force of `sk_…` guesses learns nothing,
//! while valid keys from other addresses are untouched.

use crate::config::Settings;
use crate::error::ApiError;
use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};
use ipnet::IpNet;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often the buckets of keys that are back to full are dropped. Between sweeps the map
/// holds at most the keys seen since the last sweep plus those still refilling, so its memory
/// is bounded by the request rate, not by how many addresses or keys ever called.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// The rate limits of one server.
pub struct RateLimits {
    admin: Option<Buckets<String>>,
    store: Option<Buckets<(String, IpAddr)>>,
    failed_auth: Option<FailedAuth>,
    trusted_proxies: Vec<IpNet>,
}

impl RateLimits {
    /// The limits the settings ask for (`Settings::validate` has checked them).
    pub fn from_settings(settings: &Settings) -> anyhow::Result<RateLimits> {
        let r = &settings.rate_limits;
        let trusted_proxies = settings.trusted_proxies().map_err(anyhow::Error::msg)?;
        if !r.enabled {
            return Ok(RateLimits { admin: None, store: None, failed_auth: None, trusted_proxies });
        }
        Ok(RateLimits {
            admin: Some(Buckets::new("admin", r.admin_per_second, r.admin_burst)?),
            store: Some(Buckets::new("store", r.store_per_second, r.store_burst)?),
            failed_auth: Some(FailedAuth::new(r.failed_auth_per_minute, r.failed_auth_burst)?),
            trusted_proxies,
        })
    }

    /// Before a key is looked up: 429 when the client has used up its failed authentications.
    pub fn before_authentication(&self, parts: &Parts) -> Result<(), ApiError> {
        match &self.failed_auth {
            Some(f) => f.check(bucket_address(self.client_address(parts)), Instant::now()),
            None => Ok(()),
        }
    }

    /// After a key was refused (unknown or revoked): counts it against the client.
    pub fn authentication_failed(&self, parts: &Parts) {
        if let Some(f) = &self.failed_auth {
            f.failed(bucket_address(self.client_address(parts)), Instant::now());
        }
    }

    /// Takes a token for a request with this secret key.
    pub fn admin(&self, key_id: &str) -> Result<(), ApiError> {
        match &self.admin {
            Some(b) => b.take(&key_id.to_string(), "with this secret key"),
            None => Ok(()),
        }
    }

    /// Takes a token for a store request with this publishable key from the request's client.
    pub fn store(&self, key_id: &str, parts: &Parts) -> Result<(), ApiError> {
        match &self.store {
            Some(b) => {
                let client = bucket_address(self.client_address(parts));
                b.take(&(key_id.to_string(), client), "with this publishable key from this address")
            }
            None => Ok(()),
        }
    }

    /// The client's address: the connection's peer; behind a trusted proxy, the last address
    /// in `X-Forwarded-For` that is not a trusted proxy itself (the entries before it are
    /// whatever the client chose to send, so they are never believed).
    pub fn client_address(&self, parts: &Parts) -> IpAddr {
        // Without connection info (a router served without it) every client shares one bucket.
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| canonical(c.0.ip()))
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        if !self.trusted(peer) {
            return peer;
        }
        let hops = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect::<Vec<_>>();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else { break };
            client = ip;
            if !self.trusted(ip) {
                break;
            }
        }
        client
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }
}

/// An address as `X-Forwarded-For` lists it: `203.0.113.7`, `2001:db8::1`, or with a port
/// (`203.0.113.7:4711`, `[2001:db8::1]:4711`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip())).map(canonical)
}

/// `::ffff:203.0.113.7` is the IPv4 client it maps.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The bucket an address draws from: IPv4 addresses one by one; IPv6 by /64, the block one
/// host (or home network) is normally given, so that walking through a /64 does not give a
/// client fresh buckets.
fn bucket_address(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Failed authentications per client address: a GCRA bucket of `burst` failures refilling at
/// `per_minute`, kept by hand because it is read before a key is checked (a refused client
/// must not reach the key lookup) but drawn from only after a failure, which `governor` (its
/// checks always take a token) does not offer. Only addresses with failures have an entry.
struct FailedAuth {
    /// Time one failure takes to refill.
    interval: Duration,
    /// How far ahead of now a client's refill may run before it is refused (`burst - 1`
    /// intervals: the `burst`-th failure is still answered 401, the next request 429).
    tolerance: Duration,
    /// When each client's bucket is full again (its GCRA "theoretical arrival time").
    full_at: Mutex<HashMap<IpAddr, Instant>>,
    /// How many clients `full_at` holds: while none failed, a request takes no lock.
    clients: AtomicU64,
    /// When the entries whose bucket is full again are next dropped.
    next_sweep: Mutex<Instant>,
}

impl FailedAuth {
    fn new(per_minute: u32, burst: u32) -> anyhow::Result<Self> {
        if per_minute == 0 || burst == 0 {
            anyhow::bail!("rate_limits.failed_auth_per_minute and failed_auth_burst must be positive");
        }
        let interval = Duration::from_secs(60) / per_minute;
        Ok(FailedAuth {
            interval,
            tolerance: interval * (burst - 1),
            full_at: Mutex::new(HashMap::new()),
            clients: AtomicU64::new(0),
            next_sweep: Mutex::new(Instant::now() + SWEEP_EVERY),
        })
    }

    fn check(&self, client: IpAddr, now: Instant) -> Result<(), ApiError> {
        if self.clients.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        let full_at = self.full_at.lock().unwrap_or_else(|e| e.into_inner());
        let Some(&at) = full_at.get(&client) else { return Ok(()) };
        // Refused while the bucket is empty: until a failure's worth has refilled.
        let allowed_from = at.checked_sub(self.tolerance).unwrap_or(now);
        if now < allowed_from {
            drop(full_at);
            metrics::counter!("kassa_rate_limited_total", "api" => "failed_auth").increment(1);
            let wait = allowed_from - now;
            let retry_after = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Err(ApiError::RateLimited {
                scope: "from this address after failed authentications",
                retry_after: retry_after.max(1),
            });
        }
        Ok(())
    }

    fn failed(&self, client: IpAddr, now: Instant) {
        let mut full_at = self.full_at.lock().unwrap_or_else(|e| e.into_inner());
        let at = full_at.entry(client).or_insert(now);
        *at = (*at).max(now) + self.interval;
        self.clients.store(full_at.len() as u64, Ordering::Relaxed);
        drop(full_at);
        self.sweep_when_due(now);
    }

    /// Drops the clients whose bucket is full again (like [`Buckets::sweep_when_due`]).
    fn sweep_when_due(&self, now: Instant) {
        let mut next = self.next_sweep.lock().unwrap_or_else(|e| e.into_inner());
        if now < *next {
            return;
        }
        *next = now + SWEEP_EVERY;
        drop(next);
        let mut full_at = self.full_at.lock().unwrap_or_else(|e| e.into_inner());
        full_at.retain(|_, at| *at > now);
        self.clients.store(full_at.len() as u64, Ordering::Relaxed);
    }
}

/// One API's keyed token buckets.
struct Buckets<K: Hash + Eq + Clone> {
    api: &'static str,
    limiter: DefaultKeyedRateLimiter<K>,
    started: Instant,
    /// Milliseconds after `started` when the next sweep is due.
    next_sweep: AtomicU64,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    fn new(api: &'static str, per_second: u32, burst: u32) -> anyhow::Result<Self> {
        let rate = NonZeroU32::new(per_second).ok_or_else(|| anyhow::anyhow!("{api} rate must be positive"))?;
        let burst = NonZeroU32::new(burst).ok_or_else(|| anyhow::anyhow!("{api} burst must be positive"))?;
        let quota = Quota::per_second(rate).allow_burst(burst);
        Ok(Buckets {
            api,
            limiter: DefaultKeyedRateLimiter::dashmap(quota),
            started: Instant::now(),
            next_sweep: millis(SWEEP_EVERY).into(),
        })
    }

    fn take(&self, key: &K, scope: &'static str) -> Result<(), ApiError> {
        self.sweep_when_due();
        match self.limiter.check_key(key) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.limiter.clock().now());
                metrics::counter!("kassa_rate_limited_total", "api" => self.api).increment(1);
                // Whole seconds (the header's unit), rounded up: retrying earlier would fail.
                let retry_after = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                Err(ApiError::RateLimited { scope, retry_after: retry_after.max(1) })
            }
        }
    }

    /// Forgets buckets that are full again (indistinguishable from new ones). Done on the
    /// request path by whichever request finds it due, rather than by a background job: jobs
    /// may be switched off on API-only servers, and the limits must stay bounded there too.
    fn sweep_when_due(&self) {
        let now = millis(self.started.elapsed());
        let due = self.next_sweep.load(Ordering::Relaxed);
        if now < due {
            return;
        }
        // One request sweeps; the others go on.
        if self
            .next_sweep
            .compare_exchange(due, now + millis(SWEEP_EVERY), Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.limiter.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(peer: &str, forwarded: &[&str]) -> Parts {
        let mut req = Request::builder();
        for f in forwarded {
            req = req.header("x-forwarded-for", *f);
        }
        let (mut parts, ()) = req.body(()).unwrap().into_parts();
        parts.extensions.insert(ConnectInfo::<SocketAddr>(peer.parse().unwrap()));
        parts
    }

    fn limits(proxies: &[&str]) -> RateLimits {
        let mut s = Settings::default();
        s.server.trusted_proxies = proxies.iter().map(|p| p.to_string()).collect();
        RateLimits::from_settings(&s).unwrap()
    }

    #[test]
    fn the_client_is_the_peer_unless_the_peer_is_a_trusted_proxy() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let none = limits(&[]);
        assert_eq!(none.client_address(&parts("203.0.113.7:5000", &["198.51.100.1"])), ip("203.0.113.7"));
        let proxied = limits(&["10.0.0.0/8"]);
        assert_eq!(proxied.client_address(&parts("10.1.2.3:5000", &["198.51.100.1"])), ip("198.51.100.1"));
        // A client cannot choose its address by sending its own X-Forwarded-For: only the
        // entry the trusted proxy appended counts.
        assert_eq!(proxied.client_address(&parts("10.1.2.3:5000", &["1.2.3.4, 198.51.100.1"])), ip("198.51.100.1"));
        assert_eq!(
            proxied.client_address(&parts("10.1.2.3:5000", &["1.2.3.4", "198.51.100.1, 10.9.9.9"])),
            ip("198.51.100.1")
        );
        assert_eq!(proxied.client_address(&parts("10.1.2.3:5000", &["[2001:db8::1]:443"])), ip("2001:db8::1"));
        // An untrusted peer's header is ignored; a garbled hop stops the walk.
        assert_eq!(proxied.client_address(&parts("203.0.113.7:5000", &["1.2.3.4"])), ip("203.0.113.7"));
        assert_eq!(proxied.client_address(&parts("10.1.2.3:5000", &["nonsense"])), ip("10.1.2.3"));
        assert_eq!(proxied.client_address(&parts("[::ffff:203.0.113.7]:5000", &[])), ip("203.0.113.7"));
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_64() {
        let a = bucket_address("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = bucket_address("2001:db8:1:2:bbbb::2".parse().unwrap());
        let c = bucket_address("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        let v4: IpAddr = "203.0.113.7".parse().unwrap();
        assert_eq!(bucket_address(v4), v4);
    }

    fn make_sweep_due<K: Hash + Eq + Clone>(b: &Buckets<K>) {
        b.next_sweep.store(0, Ordering::Relaxed);
    }

    #[test]
    fn a_burst_is_allowed_then_refused_with_a_wait() {
        let b = Buckets::<String>::new("admin", 1, 3).unwrap();
        let key = "key_a".to_string();
        for _ in 0..3 {
            b.take(&key, "test").unwrap();
        }
        match b.take(&key, "test") {
            Err(ApiError::RateLimited { retry_after, .. }) => assert_eq!(retry_after, 1),
            other => panic!("expected 429, got {other:?}"),
        }
        // Another key has its own bucket.
        b.take(&"key_b".to_string(), "test").unwrap();
        assert_eq!(b.len(), 2);
        // A sweep keeps the buckets still refilling (one token a second here).
        make_sweep_due(&b);
        b.sweep_when_due();
        assert_eq!(b.len(), 2);
    }

    #[test]
    fn failed_authentications_lock_out_their_address_only_and_refill() {
        // 3 failures at once, then one a second (60 a minute).
        let f = FailedAuth::new(60, 3).unwrap();
        let (attacker, other): (IpAddr, IpAddr) = ("203.0.113.7".parse().unwrap(), "198.51.100.1".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..3 {
            f.check(attacker, t0).unwrap();
            f.failed(attacker, t0);
        }
        match f.check(attacker, t0) {
            Err(ApiError::RateLimited { retry_after, .. }) => assert_eq!(retry_after, 1),
            other => panic!("expected 429, got {other:?}"),
        }
        // Another address is not affected.
        f.check(other, t0).unwrap();
        // One failure's worth refills in a second: one more try, then refused again.
        let t1 = t0 + Duration::from_secs(1);
        f.check(attacker, t1).unwrap();
        f.failed(attacker, t1);
        assert!(f.check(attacker, t1).is_err());
        // Full again after the whole burst has refilled; the entry is then swept.
        let later = t1 + Duration::from_secs(3);
        f.check(attacker, later).unwrap();
        *f.next_sweep.lock().unwrap() = later;
        f.sweep_when_due(later);
        assert!(f.full_at.lock().unwrap().is_empty());
        assert_eq!(f.clients.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn full_buckets_are_forgotten() {
        let b = Buckets::<String>::new("store", 1000, 3).unwrap();
        for i in 0..50 {
            b.take(&format!("key_{i}"), "test").unwrap();
        }
        assert_eq!(b.len(), 50);
        // Refilled after a millisecond at 1000 a second.
        std::thread::sleep(Duration::from_millis(20));
        make_sweep_due(&b);
        b.sweep_when_due();
        assert_eq!(b.len(), 0);
    }
}
