//! Fail fast while the database is down.
//!
//! Without this, every request during an outage would wait the whole pool
//! acquire timeout before its 503. After one request finds the database
//! unreachable, the others fail at once for `retry_interval`; then a single
//! request probes it (the rest keep failing fast) and, if it answers, traffic
//! resumes. The node never needs a restart.

use super::{Store, StoreError};
use crate::domain::access::AgentScope;
use crate::domain::event::{ReadMark, StoredEvent};
use crate::domain::ids::{MessageId, SessionId, TenantId, UserId};
use crate::domain::message::{Appended, Message, MessageFilter, NewMessage};
use crate::domain::page::Scan;
use crate::domain::session::{InboxPosition, NewSession, Session, SessionFilter, SessionPosition};
use crate::domain::time::Timestamp;
use async_trait::async_trait;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Requests pass.
    Closed,
    /// Requests fail fast until the instant.
    Open(Instant),
    /// One request is checking whether the database is back.
    Probing,
}

/// A [`Store`] that stops sending requests to an unreachable database.
pub struct Breaker {
    inner: Arc<dyn Store>,
    state: Mutex<State>,
    retry_interval: Duration,
}

/// Puts the breaker back to "probe again now" if a probe is abandoned
/// (for example the client went away mid-request).
struct ProbeGuard<'a> {
    breaker: &'a Breaker,
    armed: bool,
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.breaker.set(State::Open(Instant::now()));
        }
    }
}

impl Breaker {
    /// Wraps a store.
    pub fn new(inner: Arc<dyn Store>, retry_interval: Duration) -> Self {
        Self { inner, state: Mutex::new(State::Closed), retry_interval }
    }

    fn set(&self, state: State) {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = state;
    }

    /// Decides whether this call may reach the database; `Ok(true)` if it is the probe.
    fn admit(&self) -> Result<bool, StoreError> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match *state {
            State::Closed => Ok(false),
            State::Open(until) if Instant::now() >= until => {
                *state = State::Probing;
                Ok(true)
            }
            State::Open(_) | State::Probing => {
                Err(StoreError::Unreachable(anyhow::anyhow!("database unreachable; failing fast until it is back")))
            }
        }
    }

    async fn call<T>(&self, fut: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        let probe = self.admit()?;
        let mut guard = ProbeGuard { breaker: self, armed: probe };
        let result = fut.await;
        guard.armed = false;
        match &result {
            Err(StoreError::Unreachable(err)) => {
                if !probe {
                    tracing::warn!(error = %err, retry_in = ?self.retry_interval, "storage unavailable; failing fast");
                }
                self.set(State::Open(Instant::now() + self.retry_interval));
            }
            _ if probe => {
                tracing::info!("storage reachable again");
                self.set(State::Closed);
            }
            _ => {}
        }
        result
    }
}

#[async_trait]
impl Store for Breaker {
    async fn ping(&self) -> Result<(), StoreError> {
        self.call(self.inner.ping()).await
    }

    async fn create_session(&self, new: &NewSession) -> Result<Session, StoreError> {
        self.call(self.inner.create_session(new)).await
    }

    async fn get_session(&self, tenant: TenantId, id: SessionId) -> Result<Option<Session>, StoreError> {
        self.call(self.inner.get_session(tenant, id)).await
    }

    async fn scan_sessions(
        &self,
        tenant: TenantId,
        viewer: UserId,
        filter: &SessionFilter,
        scan: Scan<SessionPosition>,
        limit: u32,
    ) -> Result<Vec<Session>, StoreError> {
        self.call(self.inner.scan_sessions(tenant, viewer, filter, scan, limit)).await
    }

    async fn scan_inbox(
        &self,
        agent: UserId,
        scope: &AgentScope,
        scan: Scan<InboxPosition>,
        limit: u32,
    ) -> Result<Vec<Session>, StoreError> {
        self.call(self.inner.scan_inbox(agent, scope, scan, limit)).await
    }

    async fn assign_session(
        &self,
        tenant: TenantId,
        id: SessionId,
        agent: UserId,
        only_if_queued: bool,
        at: Timestamp,
    ) -> Result<Session, StoreError> {
        self.call(self.inner.assign_session(tenant, id, agent, only_if_queued, at)).await
    }

    async fn events_after(
        &self,
        tenant: TenantId,
        session: SessionId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.call(self.inner.events_after(tenant, session, after, limit)).await
    }

    async fn event_seq(&self, tenant: TenantId, session: SessionId, id: Uuid) -> Result<Option<i64>, StoreError> {
        self.call(self.inner.event_seq(tenant, session, id)).await
    }

    async fn mark_read(
        &self,
        tenant: TenantId,
        session: SessionId,
        user: UserId,
        message: MessageId,
        at: Timestamp,
    ) -> Result<(ReadMark, bool), StoreError> {
        self.call(self.inner.mark_read(tenant, session, user, message, at)).await
    }

    async fn close_session(
        &self,
        tenant: TenantId,
        id: SessionId,
        at: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        self.call(self.inner.close_session(tenant, id, at)).await
    }

    async fn append_message(&self, new: &NewMessage) -> Result<Appended, StoreError> {
        self.call(self.inner.append_message(new)).await
    }

    async fn message_seq(
        &self,
        tenant: TenantId,
        session: SessionId,
        id: MessageId,
    ) -> Result<Option<i64>, StoreError> {
        self.call(self.inner.message_seq(tenant, session, id)).await
    }

    async fn scan_messages(
        &self,
        tenant: TenantId,
        session: SessionId,
        filter: &MessageFilter,
        scan: Scan<i64>,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        self.call(self.inner.scan_messages(tenant, session, filter, scan, limit)).await
    }

    async fn shutdown(&self) {
        self.inner.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// The breaker's state machine, driven with scripted outcomes instead of a database.
    async fn attempt(breaker: &Breaker, calls: &AtomicUsize, up: bool) -> Result<(), StoreError> {
        breaker
            .call(async {
                calls.fetch_add(1, Ordering::SeqCst);
                if up { Ok(()) } else { Err(StoreError::Unreachable(anyhow::anyhow!("down"))) }
            })
            .await
    }

    struct Nothing;

    #[async_trait]
    impl Store for Nothing {
        async fn ping(&self) -> Result<(), StoreError> {
            Ok(())
        }
        async fn create_session(&self, _: &NewSession) -> Result<Session, StoreError> {
            Err(StoreError::SessionNotOpen)
        }
        async fn get_session(&self, _: TenantId, _: SessionId) -> Result<Option<Session>, StoreError> {
            Ok(None)
        }
        async fn scan_sessions(
            &self,
            _: TenantId,
            _: UserId,
            _: &SessionFilter,
            _: Scan<SessionPosition>,
            _: u32,
        ) -> Result<Vec<Session>, StoreError> {
            Ok(Vec::new())
        }
        async fn scan_inbox(
            &self,
            _: UserId,
            _: &AgentScope,
            _: Scan<InboxPosition>,
            _: u32,
        ) -> Result<Vec<Session>, StoreError> {
            Ok(Vec::new())
        }
        async fn close_session(&self, _: TenantId, _: SessionId, _: Timestamp) -> Result<Option<Session>, StoreError> {
            Ok(None)
        }
        async fn assign_session(
            &self,
            _: TenantId,
            _: SessionId,
            _: UserId,
            _: bool,
            _: Timestamp,
        ) -> Result<Session, StoreError> {
            Err(StoreError::SessionNotOpen)
        }
        async fn append_message(&self, _: &NewMessage) -> Result<Appended, StoreError> {
            Err(StoreError::SessionNotOpen)
        }
        async fn message_seq(&self, _: TenantId, _: SessionId, _: MessageId) -> Result<Option<i64>, StoreError> {
            Ok(None)
        }
        async fn scan_messages(
            &self,
            _: TenantId,
            _: SessionId,
            _: &MessageFilter,
            _: Scan<i64>,
            _: u32,
        ) -> Result<Vec<Message>, StoreError> {
            Ok(Vec::new())
        }
        async fn events_after(
            &self,
            _: TenantId,
            _: SessionId,
            _: i64,
            _: u32,
        ) -> Result<Vec<StoredEvent>, StoreError> {
            Ok(Vec::new())
        }
        async fn event_seq(&self, _: TenantId, _: SessionId, _: Uuid) -> Result<Option<i64>, StoreError> {
            Ok(None)
        }
        async fn mark_read(
            &self,
            _: TenantId,
            _: SessionId,
            _: UserId,
            _: MessageId,
            _: Timestamp,
        ) -> Result<(ReadMark, bool), StoreError> {
            Err(StoreError::MessageNotFound)
        }
        async fn shutdown(&self) {}
    }

    #[tokio::test]
    async fn fails_fast_after_an_outage_then_recovers_with_one_probe() {
        let breaker = Breaker::new(Arc::new(Nothing), Duration::from_millis(50));
        let calls = AtomicUsize::new(0);
        assert!(attempt(&breaker, &calls, false).await.is_err());
        // Within the interval nothing reaches the database.
        assert!(attempt(&breaker, &calls, true).await.is_err());
        assert!(attempt(&breaker, &calls, true).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(attempt(&breaker, &calls, false).await.is_err(), "the probe finds it still down");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(attempt(&breaker, &calls, true).await.is_ok(), "the probe finds it back");
        assert!(attempt(&breaker, &calls, true).await.is_ok());
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_busy_database_is_not_an_outage() {
        let breaker = Breaker::new(Arc::new(Nothing), Duration::from_secs(60));
        let slow = breaker.call(async { Err::<(), _>(StoreError::Unavailable(anyhow::anyhow!("statement timeout"))) });
        assert!(matches!(slow.await, Err(StoreError::Unavailable(_))));
        let calls = AtomicUsize::new(0);
        assert!(attempt(&breaker, &calls, true).await.is_ok(), "other requests still go through");
    }

    #[tokio::test]
    async fn an_abandoned_probe_lets_the_next_request_probe() {
        let breaker = Breaker::new(Arc::new(Nothing), Duration::from_millis(10));
        let calls = AtomicUsize::new(0);
        assert!(attempt(&breaker, &calls, false).await.is_err());
        tokio::time::sleep(Duration::from_millis(20)).await;
        // A probe that never completes (the client went away) is dropped.
        let stuck = breaker.call(std::future::pending::<Result<(), StoreError>>());
        assert!(tokio::time::timeout(Duration::from_millis(10), stuck).await.is_err());
        assert!(attempt(&breaker, &calls, true).await.is_ok());
    }
}
