//! What streams (WebSocket and SSE alike) ask of the service: admission to
//! a session, where its events start, the replay, typing, and the node's
//! notices.

use super::{Error, Livechat};
use crate::domain::access::{Caller, Identity};
use crate::domain::event::{Notice, StoredEvent};
use crate::domain::ids::{SessionId, TenantId, UserId};
use crate::domain::session::SessionStatus;
use tokio::sync::broadcast;
use uuid::Uuid;

/// Where a new subscription to a session starts.
#[derive(Debug, Clone, Copy)]
pub struct Subscription {
    /// The subscriber, admitted to the session's tenant.
    pub caller: Caller,
    /// Events after this sequence number are delivered (replayed first).
    pub after: i64,
    /// The session's agent when it was read.
    pub agent_id: Option<UserId>,
    /// Whether the session was already closed.
    pub closed: bool,
}

/// A client's `last_event_id` (a message or session event id) as a UUID.
pub fn parse_event_id(raw: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(raw.trim()).map_err(|_| Error::field("last_event_id", "must be a UUID"))
}

impl Livechat {
    /// Admits `identity` to a session of `tenant` and finds where its events
    /// start: after `last_event_id` (a message or session event id) if
    /// given, else after the latest event.
    pub async fn subscribe(
        &self,
        identity: &Identity,
        tenant: TenantId,
        session: SessionId,
        last_event_id: Option<&str>,
    ) -> Result<Subscription, Error> {
        let caller = self.admit(identity, tenant)?;
        let found = self.get_session(&caller, session).await?;
        let after = match last_event_id {
            None => found.last_seq,
            Some(raw) => {
                let event = parse_event_id(raw)?;
                self.store()
                    .event_seq(tenant, session, event)
                    .await?
                    .ok_or_else(|| Error::field("last_event_id", "is not an event of this session"))?
            }
        };
        Ok(Subscription { caller, after, agent_id: found.agent_id, closed: found.status == SessionStatus::Closed })
    }

    /// Up to `limit` persisted events of a session after sequence `after`, in order.
    pub async fn replay(
        &self,
        caller: &Caller,
        session: SessionId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, Error> {
        self.session_events(caller.tenant_id, session, after, limit).await
    }

    /// The same, for the node's own fan-out (which reads once for every
    /// subscriber it has admitted).
    pub async fn session_events(
        &self,
        tenant: TenantId,
        session: SessionId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, Error> {
        Ok(self.store().events_after(tenant, session, after, limit).await?)
    }

    /// The session change committed at `seq`, if that event is one (for inbox watchers).
    pub async fn session_change(
        &self,
        tenant: TenantId,
        session: SessionId,
        seq: i64,
    ) -> Result<Option<StoredEvent>, Error> {
        let events = self.store().events_after(tenant, session, seq - 1, 1).await?;
        Ok(events.into_iter().find(|e| e.seq() == seq && matches!(e, StoredEvent::Session(_))))
    }

    /// Tells a session's subscribers that `caller` is typing.
    pub async fn typing(&self, caller: &Caller, session: SessionId) -> Result<(), Error> {
        let notice = Notice::Typing { tenant: caller.tenant_id, session, user: caller.user_id };
        Ok(self.store().publish(&notice).await?)
    }

    /// Every notice reaching this node from now on (committed events,
    /// typing, read marks, presence).
    pub fn notices(&self) -> broadcast::Receiver<Notice> {
        self.store().notices()
    }
}
