//! Quotas on the actions that cost the most or can flood others: sending,
//! opening sessions, stream tickets and typing, each per user and per
//! tenant (GCRA with the `governor` crate, counted on this node). Every
//! transport asks here before acting; HTTP shows the state in `RateLimit`
//! and `RateLimit-Policy` headers.

use super::Error;
use crate::domain::access::Caller;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};
use std::num::NonZeroU32;

/// An action with a quota of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Sending a message.
    Send,
    /// Opening a session.
    Open,
    /// Getting a stream ticket.
    Ticket,
    /// A typing notice.
    Typing,
}

impl Action {
    const ALL: [Self; 4] = [Self::Send, Self::Open, Self::Ticket, Self::Typing];

    fn name(self) -> &'static str {
        match self {
            Self::Send => "send",
            Self::Open => "open",
            Self::Ticket => "ticket",
            Self::Typing => "typing",
        }
    }
}

/// Per-minute allowances of one action: per user, per tenant (0: no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// For each user.
    pub per_user: u32,
    /// For all users of a tenant together.
    pub per_tenant: u32,
}

/// Every action's allowance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaSettings(Vec<(Action, Rate)>);

impl Default for QuotaSettings {
    fn default() -> Self {
        let rate = |per_user, per_tenant| Rate { per_user, per_tenant };
        Self(vec![
            (Action::Send, rate(60, 600)),
            (Action::Open, rate(10, 60)),
            (Action::Ticket, rate(30, 600)),
            (Action::Typing, rate(120, 1200)),
        ])
    }
}

impl QuotaSettings {
    /// No quotas at all.
    pub fn off() -> Self {
        Self(Vec::new())
    }

    /// Parses `send=60/600,open=10/60,ticket=30/600,typing=120/1200`
    /// (per minute, per user / per tenant; actions left out keep their
    /// default), or `off`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.eq_ignore_ascii_case("off") {
            return Ok(Self::off());
        }
        let mut settings = Self::default();
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || format!("{part:?} is not ACTION=PER_USER/PER_TENANT (per minute, e.g. send=60/600)");
            let (name, rates) = part.split_once('=').ok_or_else(bad)?;
            let action = Action::ALL.into_iter().find(|a| a.name() == name.trim()).ok_or_else(bad)?;
            let (user, tenant) = rates.split_once('/').ok_or_else(bad)?;
            let rate = Rate {
                per_user: user.trim().parse().map_err(|_| bad())?,
                per_tenant: tenant.trim().parse().map_err(|_| bad())?,
            };
            settings.0.retain(|(a, _)| *a != action);
            settings.0.push((action, rate));
        }
        Ok(settings)
    }
}

/// Where a caller stands with one quota, as the `RateLimit` headers say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaState {
    /// The policy's name, e.g. `send-user`.
    pub policy: String,
    /// Requests allowed per window.
    pub limit: u32,
    /// Requests left now.
    pub remaining: u32,
    /// Seconds until the allowance is whole again.
    pub reset_secs: u64,
}

/// The window every allowance is expressed over, in seconds.
pub const WINDOW_SECS: u64 = 60;

type Limiter = RateLimiter<i64, HashMapStateStore<i64>, DefaultClock, StateInformationMiddleware>;

struct Limit {
    action: Action,
    per_tenant: bool,
    rate: u32,
    limiter: Limiter,
}

/// This node's quota counters.
pub struct Quotas {
    limits: Vec<Limit>,
    clock: DefaultClock,
}

impl Quotas {
    /// Counters for `settings`.
    pub fn new(settings: &QuotaSettings) -> Self {
        let clock = DefaultClock::default();
        let mut limits = Vec::new();
        for &(action, rate) in &settings.0 {
            for (per_tenant, per_minute) in [(false, rate.per_user), (true, rate.per_tenant)] {
                let Some(per_minute) = NonZeroU32::new(per_minute) else { continue };
                // Bursts of ten seconds' worth: a person typing fast is not throttled, a script is.
                let burst = NonZeroU32::new(per_minute.get().div_ceil(6)).unwrap_or(NonZeroU32::MIN);
                let quota = Quota::per_minute(per_minute).allow_burst(burst);
                let limiter = RateLimiter::hashmap_with_clock(quota, clock.clone()).with_middleware();
                limits.push(Limit { action, per_tenant, rate: per_minute.get(), limiter });
            }
        }
        Self { limits, clock }
    }

    /// Counts one `action` of `caller`: the tightest state if allowed (for
    /// headers; `None` when the action has no quota), or the refusal.
    pub fn check(&self, action: Action, caller: &Caller) -> Result<Option<QuotaState>, Error> {
        let mut tightest: Option<QuotaState> = None;
        for limit in self.limits.iter().filter(|l| l.action == action) {
            let (key, scope) =
                if limit.per_tenant { (caller.tenant_id.get(), "tenant") } else { (caller.user_id.get(), "user") };
            let policy = format!("{}-{scope}", action.name());
            let per_request = WINDOW_SECS as f64 / f64::from(limit.rate);
            match limit.limiter.check_key(&key) {
                Ok(snapshot) => {
                    let remaining = snapshot.remaining_burst_capacity();
                    let used = snapshot.quota().burst_size().get().saturating_sub(remaining);
                    let state = QuotaState {
                        policy,
                        limit: limit.rate,
                        remaining,
                        reset_secs: (f64::from(used) * per_request).ceil() as u64,
                    };
                    if tightest.as_ref().is_none_or(|t| state.remaining < t.remaining) {
                        tightest = Some(state);
                    }
                }
                Err(not_until) => {
                    let wait = not_until.wait_time_from(self.clock.now());
                    let retry_after = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                    let state = QuotaState { policy, limit: limit.rate, remaining: 0, reset_secs: retry_after };
                    return Err(Error::RateLimited { retry_after, quota: Some(state) });
                }
            }
        }
        Ok(tightest)
    }

    /// Forgets callers whose allowance is whole again (keeps memory bounded).
    pub fn prune(&self) {
        for limit in &self.limits {
            limit.limiter.retain_recent();
        }
    }

    /// The `RateLimit-Policy` entries of an action's quotas.
    pub fn policies(&self, action: Action) -> Vec<(String, u32)> {
        self.limits
            .iter()
            .filter(|l| l.action == action)
            .map(|l| (format!("{}-{}", action.name(), if l.per_tenant { "tenant" } else { "user" }), l.rate))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::access::Role;
    use crate::domain::ids::{TenantId, UserId};

    fn caller(user: i64, tenant: i64) -> Caller {
        Caller {
            user_id: UserId::new(user).unwrap(),
            tenant_id: TenantId::new(tenant).unwrap(),
            role: Role::TenantUser,
        }
    }

    #[test]
    fn a_user_runs_out_before_the_tenant_and_others_in_the_tenant_are_unaffected_until_it_does() {
        let quotas = Quotas::new(&QuotaSettings::parse("send=12/24").unwrap());
        // Bursts of ten seconds' worth: 2 for the user, 4 for the tenant.
        assert_eq!(quotas.check(Action::Send, &caller(1, 7)).unwrap().unwrap().remaining, 1);
        assert!(quotas.check(Action::Send, &caller(1, 7)).is_ok());
        match quotas.check(Action::Send, &caller(1, 7)) {
            Err(Error::RateLimited { retry_after, quota: Some(q) }) => {
                assert!(retry_after >= 1);
                assert_eq!(q.policy, "send-user");
            }
            other => panic!("expected the user's quota to refuse: {other:?}"),
        }
        assert!(quotas.check(Action::Send, &caller(2, 7)).is_ok());
        assert!(quotas.check(Action::Send, &caller(3, 7)).is_ok(), "the tenant's fourth");
        match quotas.check(Action::Send, &caller(4, 7)) {
            Err(Error::RateLimited { quota: Some(q), .. }) => assert_eq!(q.policy, "send-tenant"),
            other => panic!("expected the tenant's quota to refuse: {other:?}"),
        }
        assert!(quotas.check(Action::Send, &caller(3, 8)).is_ok(), "another tenant is unaffected");
        assert_eq!(quotas.check(Action::Open, &caller(1, 7)).unwrap().map(|q| q.policy), Some("open-user".to_owned()));
    }

    #[test]
    fn settings_parse_and_off_disables_everything() {
        assert_eq!(QuotaSettings::parse("off").unwrap(), QuotaSettings::off());
        assert!(QuotaSettings::parse("send=1").is_err());
        assert!(QuotaSettings::parse("shout=1/2").is_err());
        let quotas = Quotas::new(&QuotaSettings::off());
        assert!((0..1000).all(|_| quotas.check(Action::Send, &caller(1, 1)).unwrap().is_none()));
    }
}
