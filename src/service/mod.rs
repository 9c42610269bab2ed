//! The use cases: each one applies the domain rules and talks to storage.
//! Both HTTP prefixes (and, later, real-time transports) go through here.

use crate::domain::access::Caller;
use crate::domain::ids::{MessageId, SessionId, UserId};
use crate::domain::message::{
    Appended, Idempotency, IdempotencyKey, Message, MessageFilter, MessageText, NewMessage, body_fingerprint,
};
use crate::domain::page::{Direction, Page, PageLimit, PagePlan, Paged};
use crate::domain::session::{self, NewSession, OpenRefused, Session, SessionFilter, SessionPosition};
use crate::domain::time::Timestamp;
use crate::error::AppError;
use crate::store::{Storage, Store};
use std::sync::Arc;
use std::time::Duration;

mod realtime;

pub use realtime::{InboxItem, IssuedTicket, micros as realtime_micros, parse_inbox_cursor};

/// Limits a deployment may tune.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest message, in characters.
    pub max_message_chars: usize,
    /// How long an agent stays online after its last heartbeat.
    pub presence_ttl: Duration,
    /// How long a stream ticket may wait before it is used.
    pub ticket_ttl: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_chars: crate::domain::message::DEFAULT_MAX_MESSAGE_CHARS,
            presence_ttl: Duration::from_secs(15),
            ticket_ttl: Duration::from_secs(30),
        }
    }
}

/// The livechat use cases over one storage backend.
#[derive(Clone)]
pub struct Livechat {
    store: Arc<dyn Store>,
    storage: Storage,
    limits: Limits,
}

/// How a list request asks for its page.
#[derive(Debug, Clone)]
pub struct PageRequest<C> {
    /// Page size.
    pub limit: PageLimit,
    /// Older or newer than the cursor.
    pub direction: Direction,
    /// The id of an item of the same list.
    pub cursor: Option<C>,
}

impl Paged for Session {
    type Pos = SessionPosition;
    fn pos(&self) -> SessionPosition {
        self.position()
    }
    fn cursor(&self) -> String {
        self.id.to_string()
    }
}

impl Paged for Message {
    type Pos = i64;
    fn pos(&self) -> i64 {
        self.seq
    }
    fn cursor(&self) -> String {
        self.id.to_string()
    }
}

/// Runs a write to completion even if the request that asked for it goes
/// away meanwhile, so its commit and its notice are never separated.
pub(crate) async fn detached<T: Send + 'static>(
    write: impl std::future::Future<Output = Result<T, crate::store::StoreError>> + Send + 'static,
) -> Result<T, AppError> {
    use tracing::Instrument;
    match tokio::spawn(write.in_current_span()).await {
        Ok(result) => result.map_err(AppError::from),
        Err(err) => Err(AppError::Internal(anyhow::anyhow!("write task failed: {err}"))),
    }
}

fn bad_cursor() -> AppError {
    AppError::field("cursor", "must be the id of an item of this list")
}

impl Livechat {
    /// Wraps a storage backend.
    pub fn new(storage: Storage, limits: Limits) -> Self {
        Self { store: storage.chat.clone(), storage, limits }
    }

    /// The conversation store, for health checks and streams.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// All of storage (presence, bus) for the real-time layer.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The configured limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Opens the tenant's session (CONTRACT section 4).
    pub async fn open_session(&self, caller: &Caller, agent_id: Option<UserId>) -> Result<Session, AppError> {
        let named = agent_id;
        let mut agent_id = session::initial_agent(caller, agent_id).map_err(|e| match e {
            OpenRefused::AgentChoiceForbidden => AppError::Forbidden,
        })?;
        let now = Timestamp::now();
        match (named, agent_id) {
            // An agent naming someone else: that agent must be online.
            (Some(named), _)
                if named != caller.user_id
                    && !self.storage.presence.agent_available(named, caller.tenant_id, now).await? =>
            {
                return Err(AppError::AgentOffline);
            }
            // A tenant user's session goes to the least busy online agent, or waits.
            (None, None) => agent_id = self.storage.presence.least_busy_agent(caller.tenant_id, now).await?,
            _ => {}
        }
        let new = NewSession {
            id: SessionId::generate(),
            tenant_id: caller.tenant_id,
            agent_id,
            opened_by: caller.user_id,
            created_at: now,
        };
        let store = self.store.clone();
        detached(async move { store.create_session(&new).await }).await
    }

    /// One session of the caller's tenant.
    pub async fn get_session(&self, caller: &Caller, id: SessionId) -> Result<Session, AppError> {
        self.store.get_session(caller.tenant_id, id).await?.ok_or(AppError::NotFound)
    }

    /// The tenant's sessions, newest first.
    pub async fn list_sessions(
        &self,
        caller: &Caller,
        filter: &SessionFilter,
        page: PageRequest<SessionId>,
    ) -> Result<Page<Session>, AppError> {
        let cursor = match page.cursor {
            Some(id) => {
                let s = self.store.get_session(caller.tenant_id, id).await?.ok_or_else(bad_cursor)?;
                Some((s.position(), id.to_string()))
            }
            None => None,
        };
        let plan = PagePlan::new(page.limit, page.direction, cursor);
        let (scan, take) = plan.main_scan();
        let items = self.store.scan_sessions(caller.tenant_id, caller.user_id, filter, scan, take).await?;
        let found = match plan.probe(&items) {
            Some(probe) => {
                !self.store.scan_sessions(caller.tenant_id, caller.user_id, filter, probe, 1).await?.is_empty()
            }
            None => false,
        };
        Ok(plan.finish(items, found))
    }

    /// Closes a session; agents only; idempotent.
    pub async fn close_session(&self, caller: &Caller, id: SessionId) -> Result<Session, AppError> {
        if !caller.is_agent() {
            return Err(AppError::Forbidden);
        }
        let store = self.store.clone();
        let tenant = caller.tenant_id;
        detached(async move { store.close_session(tenant, id, Timestamp::now()).await })
            .await?
            .ok_or(AppError::NotFound)
    }

    /// Sends a message; returns it and whether it was a replay of an earlier send.
    pub async fn send_message(
        &self,
        caller: &Caller,
        session_id: SessionId,
        raw_message: &str,
        key: Option<IdempotencyKey>,
    ) -> Result<(Message, bool), AppError> {
        let text = MessageText::parse(raw_message, self.limits.max_message_chars)
            .map_err(|e| AppError::field("message", e))?;
        let new = NewMessage {
            id: MessageId::generate(),
            tenant_id: caller.tenant_id,
            session_id,
            sender_id: caller.user_id,
            text,
            idempotency: key.map(|key| Idempotency { key, fingerprint: body_fingerprint(raw_message) }),
            now: Timestamp::now(),
        };
        let store = self.store.clone();
        match detached(async move { store.append_message(&new).await }).await? {
            Appended::Created(m) => Ok((m, false)),
            Appended::Replayed(m) => Ok((m, true)),
        }
    }

    /// A page of a session's messages, newest first.
    pub async fn list_messages(
        &self,
        caller: &Caller,
        session_id: SessionId,
        filter: &MessageFilter,
        page: PageRequest<MessageId>,
    ) -> Result<Page<Message>, AppError> {
        let tenant = caller.tenant_id;
        self.get_session(caller, session_id).await?;
        let cursor = match page.cursor {
            Some(id) => {
                let seq = self.store.message_seq(tenant, session_id, id).await?.ok_or_else(bad_cursor)?;
                Some((seq, id.to_string()))
            }
            None => None,
        };
        let plan = PagePlan::new(page.limit, page.direction, cursor);
        let (scan, take) = plan.main_scan();
        let items = self.store.scan_messages(tenant, session_id, filter, scan, take).await?;
        let found = match plan.probe(&items) {
            Some(probe) => !self.store.scan_messages(tenant, session_id, filter, probe, 1).await?.is_empty(),
            None => false,
        };
        Ok(plan.finish(items, found))
    }
}
