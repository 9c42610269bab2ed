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
/// ids only; receivers read rows for the details. The serialized field names
/// are one letter because every notice travels in a `pg_notify` payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum Notice {
    /// A persisted event committed at `seq` in the session.
    Committed {
        /// Tenant of the session.
        #[serde(rename = "t")]
        tenant: TenantId,
        /// The session.
        #[serde(rename = "s")]
        session: SessionId,
        /// Sequence number of the event.
        #[serde(rename = "q")]
        seq: i64,
        /// A session change (rather than a message): inbox watchers care.
        #[serde(rename = "c", default)]
        session_change: bool,
    },
    /// Someone is typing (never stored).
    Typing {
        /// Tenant of the session.
        #[serde(rename = "t")]
        tenant: TenantId,
        /// The session.
        #[serde(rename = "s")]
        session: SessionId,
        /// Who is typing.
        #[serde(rename = "u")]
        user: UserId,
    },
    /// A read mark moved.
    Read(ReadMark),
    /// An agent went online or offline.
    Presence {
        /// The agent.
        #[serde(rename = "a")]
        agent: UserId,
        /// Online now.
        #[serde(rename = "on")]
        online: bool,
    },
    /// Notices may have been lost (the listener reconnected): re-read everything.
    Resync,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_keep_their_compact_wire_form() {
        let notice = Notice::Committed {
            tenant: TenantId::new(3).unwrap(),
            session: SessionId::from_uuid(Uuid::nil()),
            seq: 9,
            session_change: true,
        };
        let json = serde_json::to_string(&notice).unwrap();
        assert_eq!(json, r#"{"k":"committed","t":3,"s":"00000000-0000-0000-0000-000000000000","q":9,"c":true}"#);
        assert_eq!(serde_json::from_str::<Notice>(&json).unwrap(), notice);
        let presence =
            serde_json::to_string(&Notice::Presence { agent: UserId::new(4).unwrap(), online: false }).unwrap();
        assert_eq!(presence, r#"{"k":"presence","a":4,"on":false}"#);
    }
}
