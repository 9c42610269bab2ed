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

use crate::domain::ids::{MessageId, SessionId, TenantId};
use crate::domain::message::{Appended, Message, MessageFilter, NewMessage};
use crate::domain::page::Scan;
use crate::domain::session::{NewSession, Session, SessionFilter, SessionPosition};
use crate::domain::time::Timestamp;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

/// Everything the server keeps. Every method is scoped by tenant: a row of
/// another tenant is never read or written.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Answers when the database can serve a query.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Inserts a session. A tenant with an OPEN session already gets
    /// [`StoreError::SessionAlreadyActive`], decided by a unique index so two
    /// racing requests cannot both win.
    async fn create_session(&self, new: &NewSession) -> Result<Session, StoreError>;

    /// The session with this id in this tenant.
    async fn get_session(
        &self,
        tenant: TenantId,
        id: SessionId,
    ) -> Result<Option<Session>, StoreError>;

    /// Up to `limit` sessions of the tenant matching `filter`, strictly past
    /// the scan position, nearest first (newest first for [`Scan::Older`]).
    async fn scan_sessions(
        &self,
        tenant: TenantId,
        filter: &SessionFilter,
        scan: Scan<SessionPosition>,
        limit: u32,
    ) -> Result<Vec<Session>, StoreError>;

    /// Marks an OPEN session CLOSED at `at`; a CLOSED one is returned as it is.
    /// `None` if the tenant has no such session.
    async fn close_session(
        &self,
        tenant: TenantId,
        id: SessionId,
        at: Timestamp,
    ) -> Result<Option<Session>, StoreError>;

    /// Appends a message to an OPEN session in one transaction: takes the next
    /// sequence number under the session's row lock, so sequence order is
    /// commit order, and records the idempotency key with it. A known key
    /// with the same body replays the original; with another body it is
    /// [`StoreError::IdempotencyKeyReused`]. A missing or CLOSED session is
    /// [`StoreError::SessionNotOpen`].
    async fn append_message(&self, new: &NewMessage) -> Result<Appended, StoreError>;

    /// The sequence number of a message of this session, to resolve a cursor.
    async fn message_seq(
        &self,
        tenant: TenantId,
        session: SessionId,
        id: MessageId,
    ) -> Result<Option<i64>, StoreError>;

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

    /// Closes the connection pools (at shutdown).
    async fn shutdown(&self);
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
    /// An idempotency key came back with a different body.
    #[error("idempotency key reused with a different body")]
    IdempotencyKeyReused,
    /// The database cannot be reached or is too busy: retryable, nothing written.
    #[error("storage unavailable: {0}")]
    Unavailable(#[source] anyhow::Error),
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
pub async fn connect(config: &StoreConfig) -> anyhow::Result<Arc<dyn Store>> {
    let inner: Arc<dyn Store> = match Backend::from_url(&config.url) {
        Some(Backend::Sqlite) => Arc::new(sqlite::connect(config).await?),
        Some(Backend::Postgres) => Arc::new(postgres::connect(config).await?),
        None => anyhow::bail!("database URL must start with sqlite:// or postgres://"),
    };
    Ok(Arc::new(breaker::Breaker::new(
        inner,
        config.retry_interval,
    )))
}

/// Applies pending migrations, then disconnects.
pub async fn migrate(config: &StoreConfig) -> anyhow::Result<()> {
    let config = StoreConfig {
        migrate: true,
        ..config.clone()
    };
    let store = connect(&config).await?;
    store.shutdown().await;
    Ok(())
}
