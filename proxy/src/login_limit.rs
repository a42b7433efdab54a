//! Limits on failed password logins, per client address and per user, checked before argon2 runs.
//!
//! Argon2 is slow and memory-hungry on purpose, so it runs a couple at a time; without limits, a stream of
//! wrong passwords queues every real login behind it (300 of them once delayed a correct login by 3 s).
//! Each address and each user has a token bucket: an attempt from an address takes a token from the
//! address's bucket (given back when the password was right), and a failed one also takes one from the
//! user's. An empty bucket answers 429 `TOOMANYREQUESTS` with `Retry-After` at once. An address with
//! recent failures is a *suspect*: its attempts are also held to the user's bucket and share one argon2
//! slot among all suspects, so the other slots stay free for everyone else. A clean address is never held
//! to the user's bucket, so an attacker guessing a user's password does not lock that user out.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::Extensions;
use axum::http::request::Parts;
use moka::sync::Cache;
use regbridge::{Error, Result};
use tokio::time::Instant;

/// Failed logins an address may make at once, and how fast it earns them back: 10, then one every 6 s.
const PER_ADDRESS: Rate = Rate { burst: 10.0, per_sec: 1.0 / 6.0 };
/// Failed logins a user may see from suspect addresses: 30, then one every 2 s.
const PER_USER: Rate = Rate { burst: 30.0, per_sec: 0.5 };
/// Addresses remembered at once; the least recently seen are forgotten first.
const ADDRESSES: u64 = 100_000;
/// A bucket untouched this long is full again, so it can be forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy)]
struct Rate {
    burst: f64,
    per_sec: f64,
}

/// Tokens left, as of `at`.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: Rate) -> Self {
        Self { tokens: rate.burst, at: Instant::now() }
    }

    fn refill(&mut self, rate: Rate) {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * rate.per_sec).min(rate.burst);
        self.at = now;
    }

    /// Ok when a token is there; else how long until one is.
    fn check(&mut self, rate: Rate) -> std::result::Result<(), Duration> {
        self.refill(rate);
        if self.tokens >= 1.0 { Ok(()) } else { Err(Duration::from_secs_f64((1.0 - self.tokens) / rate.per_sec)) }
    }

    fn take(&mut self, rate: Rate) -> std::result::Result<(), Duration> {
        self.check(rate)?;
        self.tokens -= 1.0;
        Ok(())
    }

    fn give_back(&mut self, rate: Rate) {
        self.refill(rate);
        self.tokens = (self.tokens + 1.0).min(rate.burst);
    }

    /// Spends a token if there is one (a failure is recorded even when the bucket is already empty).
    fn spend(&mut self, rate: Rate) {
        self.refill(rate);
        self.tokens = (self.tokens - 1.0).max(0.0);
    }

    fn is_full(&mut self, rate: Rate) -> bool {
        self.refill(rate);
        self.tokens >= rate.burst
    }
}

type Shared = Arc<Mutex<Bucket>>;

fn lock(bucket: &Shared) -> std::sync::MutexGuard<'_, Bucket> {
    // A bucket is two numbers written together: a panic elsewhere cannot leave it half-written.
    bucket.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The failed-login buckets of addresses and users; memory is bounded by `ADDRESSES` and the users.
#[derive(Debug)]
pub struct LoginLimits {
    addresses: Cache<IpAddr, Shared>,
    users: Cache<String, Shared>,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            addresses: Cache::builder().max_capacity(ADDRESSES).time_to_idle(FORGET_AFTER).build(),
            users: Cache::builder().max_capacity(ADDRESSES).time_to_idle(FORGET_AFTER).build(),
        }
    }
}

/// One password check under way. Unless [`Attempt::succeeded`] is called, it counts as a failure.
#[derive(Debug)]
pub struct Attempt {
    address: Option<Shared>,
    user: Shared,
    suspect: bool,
    succeeded: bool,
}

impl LoginLimits {
    /// Admits a password check for `user` from `client` (`None` when the server does not know it), or
    /// answers 429 with how long to wait.
    pub fn begin(&self, client: Option<IpAddr>, user: &str) -> Result<Attempt> {
        let address = client.map(|ip| self.addresses.get_with(bucket_key(ip), || new_bucket(PER_ADDRESS)));
        let user_bucket = self.users.get_with(user.to_owned(), || new_bucket(PER_USER));
        let mut suspect = false;
        if let Some(address) = &address {
            let mut bucket = lock(address);
            suspect = !bucket.is_full(PER_ADDRESS);
            bucket.take(PER_ADDRESS).map_err(|wait| too_many("from this address", wait))?;
        }
        if suspect && let Err(wait) = lock(&user_bucket).check(PER_USER) {
            if let Some(address) = &address {
                lock(address).give_back(PER_ADDRESS);
            }
            return Err(too_many("for this user", wait));
        }
        Ok(Attempt { address, user: user_bucket, suspect, succeeded: false })
    }
}

impl Attempt {
    /// Whether the address failed recently: its check should wait for the suspects' argon2 slot.
    pub fn is_suspect(&self) -> bool {
        self.suspect
    }

    /// The password was right: the address gets its token back.
    pub fn succeeded(mut self) {
        self.succeeded = true;
        if let Some(address) = &self.address {
            lock(address).give_back(PER_ADDRESS);
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.succeeded {
            lock(&self.user).spend(PER_USER);
        }
    }
}

fn new_bucket(rate: Rate) -> Shared {
    Arc::new(Mutex::new(Bucket::full(rate)))
}

/// IPv6 clients usually hold a whole /64, so it counts as one address.
fn bucket_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

fn too_many(whom: &str, wait: Duration) -> Error {
    // Retry-After is whole seconds; rounding down would tell clients to retry into another 429.
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    Error::TooManyRequests {
        message: format!("too many failed logins {whom}; retry in {secs} s"),
        retry_after: Some(Duration::from_secs(secs)),
    }
}

/// The client's address, when the server was started with connection info (in-process routers in tests
/// are not).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl ClientAddr {
    /// The address recorded in a request's extensions.
    pub fn of(extensions: &Extensions) -> Self {
        Self(extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip()))
    }
}

impl<S: Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> std::result::Result<Self, Self::Rejection> {
        Ok(Self::of(&parts.extensions))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn an_address_is_limited_and_earns_attempts_back() {
        let limits = LoginLimits::default();
        for _ in 0..10 {
            drop(limits.begin(ip("10.0.0.1"), "alice").unwrap());
        }
        let err = limits.begin(ip("10.0.0.1"), "alice").unwrap_err();
        assert!(matches!(err, Error::TooManyRequests { retry_after: Some(d), .. } if d == Duration::from_secs(6)));
        // Another address is clean, and may try the same user: no lock-out of alice.
        let clean = limits.begin(ip("10.0.0.2"), "alice").unwrap();
        assert!(!clean.is_suspect());
        clean.succeeded();
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(limits.begin(ip("10.0.0.1"), "alice").unwrap().is_suspect());
    }

    #[tokio::test(start_paused = true)]
    async fn successes_cost_nothing() {
        let limits = LoginLimits::default();
        for _ in 0..100 {
            limits.begin(ip("10.0.0.1"), "alice").unwrap().succeeded();
        }
        assert!(!limits.begin(ip("10.0.0.1"), "alice").unwrap().is_suspect());
    }

    #[tokio::test(start_paused = true)]
    async fn suspects_are_held_to_the_users_bucket() {
        let limits = LoginLimits::default();
        // 30 failures on bob from 30 addresses (one each, so each address stays under its own limit) ...
        for i in 0..30 {
            drop(limits.begin(ip(&format!("10.0.1.{i}")), "bob").unwrap());
        }
        // ... leave bob's bucket empty for suspects, not for a clean address.
        assert!(matches!(limits.begin(ip("10.0.1.0"), "bob"), Err(Error::TooManyRequests { .. })));
        limits.begin(ip("10.0.2.1"), "bob").unwrap().succeeded();
    }

    #[test]
    fn ipv6_counts_by_64() {
        assert_eq!(bucket_key("2001:db8:1:2:3:4:5:6".parse().unwrap()), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        assert_eq!(bucket_key("::ffff:10.0.0.1".parse().unwrap()), "10.0.0.1".parse::<IpAddr>().unwrap());
    }
}
