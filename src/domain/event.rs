//! What subscribers are told: persisted events (replayable, in one
//! per-session order) and ephemeral notices (typing, presence, read).

use super::ids::{MessageId, SessionId, TenantId, UserId};
use super::message::Message;
use super::session::Session;
use super::time::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a session changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionChange {
    /// Created.
    Opened,
    /// Claimed, transferred or routed to an agent.
    Assigned,
    /// Closed by an agent.
    Closed,
}

impl SessionChange {
    /// Storage spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Opened => "opened",
            Self::Assigned => "assigned",
            Self::Closed => "closed",
        }
    }

    /// Parses the storage spelling.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "opened" => Some(Self::Opened),
            "assigned" => Some(Self::Assigned),
            "closed" => Some(Self::Closed),
            _ => None,
        }
    }
}

/// A persisted change of a session, with the session as it was after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEvent {
    /// The event's own id (UUIDv7), what a client resumes from.
    pub id: Uuid,
    /// Position in the session's sequence, shared with its messages.
    pub seq: i64,
    /// What happened.
    pub change: SessionChange,
    /// The session right after the change.
    pub session: Session,
}

/// One persisted event of a session, in the order subscribers replay them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredEvent {
    /// `message.created`.
    Message(Message),
    /// `session.updated`.
    Session(SessionEvent),
}

impl StoredEvent {
    /// Position in the session's sequence.
    pub fn seq(&self) -> i64 {
        match self {
            Self::Message(m) => m.seq,
            Self::Session(e) => e.seq,
        }
    }

    /// The id a client resumes from: the message id, or the session event id.
    pub fn id(&self) -> Uuid {
        match self {
            Self::Message(m) => m.id.uuid(),
            Self::Session(e) => e.id,
        }
    }
}

/// A participant's read position in a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadMark {
    /// Tenant of the session.
    pub tenant_id: TenantId,
    /// The session.
    pub session_id: SessionId,
    /// The reader.
    pub user_id: UserId,
    /// The last message read.
    pub message_id: MessageId,
    /// Its sequence number.
    pub seq: i64,
    /// When it was marked.
    pub at: Timestamp,
}

/// What nodes tell each other (through the database or in process): small,
/// ids only; receivers read rows for the details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum Notice {
    /// A persisted event committed at `seq` in the session.
    Committed {
        /// Tenant.
        t: TenantId,
        /// Session.
        s: SessionId,
        /// Sequence number of the event.
        q: i64,
        /// A session change (rather than a message): inbox watchers care.
        #[serde(default)]
        c: bool,
    },
    /// Someone is typing (never stored).
    Typing {
        /// Tenant.
        t: TenantId,
        /// Session.
        s: SessionId,
        /// Who.
        u: UserId,
    },
    /// A read mark moved.
    Read(ReadMark),
    /// An agent went online or offline.
    Presence {
        /// The agent.
        a: UserId,
        /// Online now.
        on: bool,
    },
    /// Notices may have been lost (the listener reconnected): re-read everything.
    Resync,
}
