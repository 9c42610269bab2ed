//! Fail fast while the database is down.
//!
//! Without this, every request during an outage would wait the whole pool
//! acquire timeout before its 503. After one request finds the database
//! unreachable, the others fail at once for `retry_interval`; then a single
//! request probes it (the rest keep failing fast) and, if it answers, traffic
//! resumes. The node never needs a restart.
//!
//! The breaker guards the one place every storage call passes through
//! (acquiring a connection or beginning a transaction, in `sql::Db`), and
//! hears about outages from the one place errors are classified, so it
//! covers every storage trait without knowing any of them.

use super::StoreError;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Requests pass.
    Closed,
    /// Requests fail fast until the instant.
    Open(Instant),
    /// One request is checking whether the database is back.
    Probing,
}

/// Stops sending requests to an unreachable database for a while.
#[derive(Debug)]
pub struct Breaker {
    state: Mutex<State>,
    retry_interval: Duration,
}

/// Permission to reach the database. If it was granted as the probe and is
/// dropped without a verdict (the client went away mid-request), the next
/// request probes instead.
#[must_use = "report the outcome with `passed`, or drop it to let the next request probe"]
pub struct Admission<'a> {
    breaker: &'a Breaker,
    probe: bool,
}

impl Admission<'_> {
    /// The database answered: a probe closes the breaker.
    pub fn passed(mut self) {
        if std::mem::take(&mut self.probe) {
            tracing::info!("storage reachable again");
            self.breaker.set(State::Closed);
        }
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        if self.probe {
            self.breaker.set(State::Open(Instant::now()));
        }
    }
}

impl Breaker {
    /// A closed breaker that stays open `retry_interval` after each outage.
    pub fn new(retry_interval: Duration) -> Self {
        Self { state: Mutex::new(State::Closed), retry_interval }
    }

    fn set(&self, state: State) {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = state;
    }

    /// Decides whether a call may reach the database now.
    pub fn admit(&self) -> Result<Admission<'_>, StoreError> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match *state {
            State::Closed => Ok(Admission { breaker: self, probe: false }),
            State::Open(until) if Instant::now() >= until => {
                *state = State::Probing;
                Ok(Admission { breaker: self, probe: true })
            }
            State::Open(_) | State::Probing => {
                Err(StoreError::Unreachable(anyhow::anyhow!("database unreachable; failing fast until it is back")))
            }
        }
    }

    /// Whether calls are failing fast now.
    pub fn is_open(&self) -> bool {
        !matches!(*self.state.lock().unwrap_or_else(PoisonError::into_inner), State::Closed)
    }

    /// The database was found unreachable: fail fast for the retry interval.
    /// Logged once per outage, when the breaker opens; each request that
    /// fails is logged by whoever answers it.
    pub fn tripped(&self, cause: &anyhow::Error) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if *state == State::Closed {
            tracing::warn!(error = %cause, retry_in = ?self.retry_interval, "storage unreachable; failing fast");
        }
        *state = State::Open(Instant::now() + self.retry_interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// One call through the breaker, with a scripted outcome instead of a database.
    fn attempt(breaker: &Breaker, calls: &AtomicUsize, up: bool) -> Result<(), StoreError> {
        let admission = breaker.admit()?;
        calls.fetch_add(1, Ordering::SeqCst);
        if up {
            admission.passed();
            Ok(())
        } else {
            let err = anyhow::anyhow!("down");
            breaker.tripped(&err);
            drop(admission);
            Err(StoreError::Unreachable(err))
        }
    }

    #[tokio::test]
    async fn fails_fast_after_an_outage_then_recovers_with_one_probe() {
        let breaker = Breaker::new(Duration::from_millis(50));
        let calls = AtomicUsize::new(0);
        assert!(attempt(&breaker, &calls, false).is_err());
        // Within the interval nothing reaches the database.
        assert!(attempt(&breaker, &calls, true).is_err());
        assert!(attempt(&breaker, &calls, true).is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(attempt(&breaker, &calls, false).is_err(), "the probe finds it still down");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(attempt(&breaker, &calls, true).is_ok(), "the probe finds it back");
        assert!(attempt(&breaker, &calls, true).is_ok());
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn only_one_probe_at_a_time() {
        let breaker = Breaker::new(Duration::from_millis(10));
        breaker.tripped(&anyhow::anyhow!("down"));
        tokio::time::sleep(Duration::from_millis(20)).await;
        let probe = breaker.admit().expect("the first request after the interval probes");
        assert!(breaker.admit().is_err(), "others keep failing fast while it probes");
        probe.passed();
        assert!(breaker.admit().is_ok());
    }

    #[tokio::test]
    async fn an_abandoned_probe_lets_the_next_request_probe() {
        let breaker = Breaker::new(Duration::from_millis(10));
        let calls = AtomicUsize::new(0);
        assert!(attempt(&breaker, &calls, false).is_err());
        tokio::time::sleep(Duration::from_millis(20)).await;
        // A probe that never reports (the client went away) is dropped.
        drop(breaker.admit().expect("probe"));
        assert!(attempt(&breaker, &calls, true).is_ok());
    }
}
