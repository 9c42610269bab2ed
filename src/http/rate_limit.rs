//! Per-user request rate limit (429 `rate_limited` with `Retry-After`), and
//! the `RateLimit` / `RateLimit-Policy` headers of the action quotas
//! (`service::quota`).
//!
//! Counted per node: behind a balancer with N nodes a user may reach up to
//! N times the rate, which is enough to stop a runaway client.

use crate::domain::ids::UserId;
use crate::service::{Error, QuotaState, WINDOW_SECS};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};
use std::num::NonZeroU32;

type Limiter = RateLimiter<UserId, HashMapStateStore<UserId>, DefaultClock>;

/// The node's per-user limiter; disabled when the rate is zero.
pub struct RateLimit {
    limiter: Option<Limiter>,
    clock: DefaultClock,
}

impl RateLimit {
    /// `per_minute` sustained requests with bursts of `burst`; zero disables.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let clock = DefaultClock::default();
        let limiter = NonZeroU32::new(per_minute).map(|rate| {
            let quota = Quota::per_minute(rate).allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
            RateLimiter::hashmap_with_clock(quota, clock.clone())
        });
        Self { limiter, clock }
    }

    /// Counts one request of `user`, or says how long to wait.
    pub fn check(&self, user: UserId) -> Result<(), Error> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(&user).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            Error::RateLimited { retry_after: wait.as_secs() + u64::from(wait.subsec_nanos() > 0), quota: None }
        })
    }

    /// Forgets users whose allowance is full again (keeps memory bounded).
    pub fn prune(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
        }
    }
}

/// Sets `RateLimit-Policy` and `RateLimit` (the structured-field form of
/// the IETF draft) for the quota a caller is closest to exhausting.
pub fn quota_headers(headers: &mut HeaderMap, state: &QuotaState) {
    let policy = format!("\"{}\";q={};w={WINDOW_SECS}", state.policy, state.limit);
    let current = format!("\"{}\";r={};t={}", state.policy, state.remaining, state.reset_secs);
    for (name, value) in [("ratelimit-policy", policy), ("ratelimit", current)] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_are_allowed_then_limited_per_user() {
        let limit = RateLimit::new(60, 3);
        let (a, b) = (UserId::new(1).unwrap(), UserId::new(2).unwrap());
        for _ in 0..3 {
            assert!(limit.check(a).is_ok());
        }
        match limit.check(a) {
            Err(Error::RateLimited { retry_after, .. }) => assert!((1..=2).contains(&retry_after), "{retry_after}"),
            other => panic!("expected a limit, got {other:?}"),
        }
        assert!(limit.check(b).is_ok(), "other users are unaffected");
        let off = RateLimit::new(0, 0);
        assert!((0..1000).all(|_| off.check(a).is_ok()));
    }
}
