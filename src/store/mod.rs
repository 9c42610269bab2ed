//! Storage: one trait, implemented once over SQL and instantiated for each
//! backend (SQLite, the embedded default, and PostgreSQL, for several nodes).
//!
//! The domain rules (validation, timestamps, pagination) live in
//! [`crate::domain`]; this layer only keeps data and the invariants the
//! database must hold under concurrency (one open session per tenant,
//! commit-ordered message sequence, unique idempotency keys).

mod breaker;
mod migrations;
mod postgres;
mod sql;
mod sqlite;

use crate::domain::access::{AgentScope, Identity};
use crate::domain::event::{Notice, ReadMark, StoredEvent};
use crate::domain::ids::{MessageId, SessionId, TenantId, UserId};
use crate::domain::message::{Appended, Message, MessageFilter, NewMessage};
use crate::domain::page::Scan;
use crate::domain::session::{InboxPosition, NewSession, Session, SessionFilter, SessionPosition};
use crate::domain::time::Timestamp;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use uuid::Uuid;

/// Conversations: sessions, messages, their events and read marks. Every
/// method is scoped by tenant (but the agent inbox, which spans the caller's
/// tenants): a row of another tenant is never read or written.
///
/// Every change a subscriber may replay (session opened / assigned / closed,
/// message created) takes the next number of the session's sequence under
/// the session's row lock and is announced on the [`Bus`] once committed.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Answers when the database can serve a query.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Inserts a session and its `opened` event. A tenant with an OPEN
    /// session already gets [`StoreError::SessionAlreadyActive`], decided by a
    /// unique index so two racing requests cannot both win.
    async fn create_session(&self, new: &NewSession) -> Result<Session, StoreError>;

    /// The session with this id in this tenant.
    async fn get_session(&self, tenant: TenantId, id: SessionId) -> Result<Option<Session>, StoreError>;

    /// Up to `limit` sessions of the tenant matching `filter`, strictly past
    /// the scan position, nearest first, each with `viewer`'s unread count.
    async fn scan_sessions(
        &self,
        tenant: TenantId,
        viewer: UserId,
        filter: &SessionFilter,
        scan: Scan<SessionPosition>,
        limit: u32,
    ) -> Result<Vec<Session>, StoreError>;

    /// The agent inbox: OPEN sessions that are queued or assigned to `agent`,
    /// in the tenants of `scope`, newest activity first, with unread counts.
    async fn scan_inbox(
        &self,
        agent: UserId,
        scope: &AgentScope,
        scan: Scan<InboxPosition>,
        limit: u32,
    ) -> Result<Vec<Session>, StoreError>;

    /// Marks an OPEN session CLOSED at `at` (with a `closed` event); a CLOSED
    /// one is returned as it is. `None` if the tenant has no such session.
    async fn close_session(
        &self,
        tenant: TenantId,
        id: SessionId,
        at: Timestamp,
    ) -> Result<Option<Session>, StoreError>;

    /// Assigns an OPEN session to `agent` (with an `assigned` event). With
    /// `only_if_queued` (a claim) it fails with [`StoreError::AlreadyAssigned`]
    /// when another agent got there first. Missing or CLOSED:
    /// [`StoreError::SessionNotOpen`].
    async fn assign_session(
        &self,
        tenant: TenantId,
        id: SessionId,
        agent: UserId,
        only_if_queued: bool,
        at: Timestamp,
    ) -> Result<Session, StoreError>;

    /// Appends a message to an OPEN session in one transaction: takes the next
    /// sequence number under the session's row lock, so sequence order is
    /// commit order, and records the idempotency key with it. A known key
    /// with the same body replays the original; with another body it is
    /// [`StoreError::IdempotencyKeyReused`]. A missing or CLOSED session is
    /// [`StoreError::SessionNotOpen`].
    async fn append_message(&self, new: &NewMessage) -> Result<Appended, StoreError>;

    /// The sequence number of a message of this session, to resolve a cursor.
    async fn message_seq(&self, tenant: TenantId, session: SessionId, id: MessageId)
    -> Result<Option<i64>, StoreError>;

    /// Up to `limit` messages of the session matching `filter`, strictly past
    /// the scan's sequence number, nearest first.
    async fn scan_messages(
        &self,
        tenant: TenantId,
        session: SessionId,
        filter: &MessageFilter,
        scan: Scan<i64>,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError>;

    /// Up to `limit` persisted events of the session after sequence `after`, in order.
    async fn events_after(
        &self,
        tenant: TenantId,
        session: SessionId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// The sequence number of a persisted event (message or session event) of this session.
    async fn event_seq(&self, tenant: TenantId, session: SessionId, id: Uuid) -> Result<Option<i64>, StoreError>;

    /// Moves `user`'s read mark forward to `message` (never backwards).
    /// Returns the mark now stored and whether it moved;
    /// [`StoreError::MessageNotFound`] if the message is not in the session.
    async fn mark_read(
        &self,
        tenant: TenantId,
        session: SessionId,
        user: UserId,
        message: MessageId,
        at: Timestamp,
    ) -> Result<(ReadMark, bool), StoreError>;

    /// Closes the connection pools (at shutdown).
    async fn shutdown(&self);
}

/// A single-use stream ticket as stored (the ticket itself is only hashed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The tenant the ticket was issued in.
    pub tenant_id: TenantId,
    /// SHA-256 of the ticket, hex.
    pub hash: String,
    /// Who it was issued to.
    pub identity: Identity,
    /// When the token it was issued against expires (Unix seconds).
    pub token_exp: i64,
    /// When the ticket stops being accepted.
    pub expires_at: Timestamp,
}

/// Presence and stream tickets: shared by every node through the database.
#[async_trait]
pub trait PresenceStore: Send + Sync + 'static {
    /// Stores a ticket.
    async fn put_ticket(&self, ticket: &Ticket) -> Result<(), StoreError>;

    /// Removes and returns a ticket if it exists and has not expired (single use).
    async fn take_ticket(&self, tenant: TenantId, hash: &str, now: Timestamp) -> Result<Option<Ticket>, StoreError>;

    /// Keeps `agent` online through `source` until `expires_at`; returns
    /// whether this made the agent go online (exactly one caller sees `true`).
    /// Every change of an agent's presence is announced on the [`Bus`] by the
    /// transaction that made it.
    async fn touch_presence(
        &self,
        agent: UserId,
        source: &str,
        scope: &AgentScope,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Removes one source; returns whether the agent went offline with it.
    async fn drop_presence(&self, agent: UserId, source: &str, now: Timestamp) -> Result<bool, StoreError>;

    /// Agents whose every source expired, marked offline now (each reported once).
    async fn expire_presence(&self, now: Timestamp) -> Result<Vec<UserId>, StoreError>;

    /// Removes every source of one node (it is shutting down), plus expired
    /// ones; returns the agents that went offline.
    async fn drop_node(&self, source: &str, now: Timestamp) -> Result<Vec<UserId>, StoreError>;

    /// Whether the agent has a live source and may serve `tenant`.
    async fn agent_available(&self, agent: UserId, tenant: TenantId, now: Timestamp) -> Result<bool, StoreError>;

    /// The online agent able to serve `tenant` with the fewest OPEN sessions.
    async fn least_busy_agent(&self, tenant: TenantId, now: Timestamp) -> Result<Option<UserId>, StoreError>;

    /// Deletes expired tickets.
    async fn purge_tickets(&self, now: Timestamp) -> Result<(), StoreError>;
}

/// Notices between nodes: through PostgreSQL `LISTEN/NOTIFY`, or in process on SQLite.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Sends an ephemeral notice to every node (committed events announce themselves).
    async fn publish(&self, notice: &Notice) -> Result<(), StoreError>;

    /// Every notice from now on, on this node.
    fn notices(&self) -> broadcast::Receiver<Notice>;
}

/// The three faces of one storage backend.
#[derive(Clone)]
pub struct Storage {
    /// Conversations (behind the fail-fast breaker).
    pub chat: Arc<dyn Store>,
    /// Presence and tickets.
    pub presence: Arc<dyn PresenceStore>,
    /// Notices.
    pub bus: Arc<dyn Bus>,
}

/// Storage outcomes the caller must tell apart.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The tenant already has this OPEN session.
    #[error("tenant already has an open session {0}")]
    SessionAlreadyActive(SessionId),
    /// No such session in the tenant, or it is CLOSED.
    #[error("session not found or not open")]
    SessionNotOpen,
    /// A claim lost: the session is already assigned to this agent.
    #[error("session already assigned")]
    AlreadyAssigned(Option<UserId>),
    /// The message is not in this session.
    #[error("message not found in this session")]
    MessageNotFound,
    /// An idempotency key came back with a different body.
    #[error("idempotency key reused with a different body")]
    IdempotencyKeyReused,
    /// The database is busy or timed out: retryable, nothing written.
    #[error("storage unavailable: {0}")]
    Unavailable(#[source] anyhow::Error),
    /// The database cannot be reached: retryable, nothing written, and
    /// other requests fail fast for a moment (see the breaker).
    #[error("storage unreachable: {0}")]
    Unreachable(#[source] anyhow::Error),
    /// Anything else: a bug or corrupted data.
    #[error("storage failure: {0}")]
    Internal(#[source] sqlx::Error),
}

/// How to reach the database, parsed from the URL and the pool settings.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `sqlite://path` or `postgres://…`.
    pub url: String,
    /// Largest number of pooled connections (readers on SQLite).
    pub max_connections: u32,
    /// How long a request waits for a connection before 503.
    pub acquire_timeout: Duration,
    /// Per-statement limit on PostgreSQL.
    pub statement_timeout: Duration,
    /// Apply pending migrations when connecting.
    pub migrate: bool,
    /// After the database is found unreachable, how long requests fail fast
    /// with 503 before one request probes it again.
    pub retry_interval: Duration,
}

/// Which backend a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite:` URLs.
    Sqlite,
    /// `postgres:` / `postgresql:` URLs.
    Postgres,
}

impl Backend {
    /// Picks the backend from the URL scheme.
    pub fn from_url(url: &str) -> Option<Self> {
        let scheme = url.split_once(':')?.0.to_ascii_lowercase();
        match scheme.as_str() {
            "sqlite" => Some(Self::Sqlite),
            "postgres" | "postgresql" => Some(Self::Postgres),
            _ => None,
        }
    }
}

/// Connects to the configured backend (running migrations if asked).
pub async fn connect(config: &StoreConfig) -> anyhow::Result<Storage> {
    fn wire<S: Store + PresenceStore + Bus>(store: Arc<S>, retry: Duration) -> Storage {
        Storage { chat: Arc::new(breaker::Breaker::new(store.clone(), retry)), presence: store.clone(), bus: store }
    }
    match Backend::from_url(&config.url) {
        Some(Backend::Sqlite) => Ok(wire(Arc::new(sqlite::connect(config).await?), config.retry_interval)),
        Some(Backend::Postgres) => Ok(wire(Arc::new(postgres::connect(config).await?), config.retry_interval)),
        None => anyhow::bail!("database URL must start with sqlite:// or postgres://"),
    }
}

/// Applies pending migrations, then disconnects.
pub async fn migrate(config: &StoreConfig) -> anyhow::Result<()> {
    let config = StoreConfig { migrate: true, ..config.clone() };
    let storage = connect(&config).await?;
    storage.chat.shutdown().await;
    Ok(())
}
