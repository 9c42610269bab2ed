//! The wire shapes both transports send: the guide's `ChatSession` and
//! `ChatMessage` (HTTP bodies and stream events alike), and the stream
//! protocol in [`stream`]. Neither HTTP nor the real-time engine owns them.
//! Optional fields are omitted when absent, never `null`.

pub mod stream;

use crate::domain::message::Message;
use crate::domain::session::{self, Session};
use serde::Serialize;
use utoipa::ToSchema;

/// `ChatSession`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChatSession {
    /// UUIDv7.
    #[schema(format = Uuid)]
    pub id: String,
    /// Owning tenant.
    pub tenant_id: i64,
    /// Assigned agent; omitted while the session is queued.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub agent_id: Option<i64>,
    /// Whether it still accepts messages.
    pub status: SessionStatus,
    /// RFC 3339 UTC, microseconds.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// RFC 3339 UTC, microseconds.
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// Who opened the session (additive field).
    pub opened_by: i64,
    /// When it was closed (additive field); omitted while open.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime, nullable = false)]
    pub closed_at: Option<String>,
    /// On lists only (additive field): messages from others after the caller's read mark.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub unread_count: Option<i64>,
}

impl From<Session> for ChatSession {
    fn from(s: Session) -> Self {
        Self {
            id: s.id.to_string(),
            tenant_id: s.tenant_id.get(),
            agent_id: s.agent_id.map(|a| a.get()),
            status: s.status.into(),
            created_at: s.created_at.to_rfc3339(),
            updated_at: s.updated_at.to_rfc3339(),
            opened_by: s.opened_by.get(),
            closed_at: s.closed_at.map(|t| t.to_rfc3339()),
            unread_count: s.unread_count,
        }
    }
}

/// `ChatSession.status`, as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum SessionStatus {
    /// Accepting messages.
    Open,
    /// Closed by an agent; readable, no longer writable.
    Closed,
}

impl From<session::SessionStatus> for SessionStatus {
    fn from(status: session::SessionStatus) -> Self {
        match status {
            session::SessionStatus::Open => Self::Open,
            session::SessionStatus::Closed => Self::Closed,
        }
    }
}

/// An agent's presence, as sent and as set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    /// Takes sessions.
    Online,
    /// Does not.
    Offline,
}

/// `ChatMessage`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChatMessage {
    /// UUIDv7.
    #[schema(format = Uuid)]
    pub id: String,
    /// The session.
    #[schema(format = Uuid)]
    pub session_id: String,
    /// The author (the token's `sub`).
    pub sender_id: i64,
    /// The text, trimmed.
    pub message: String,
    /// RFC 3339 UTC, microseconds; strictly increasing within a session.
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<Message> for ChatMessage {
    fn from(m: Message) -> Self {
        Self {
            id: m.id.to_string(),
            session_id: m.session_id.to_string(),
            sender_id: m.sender_id.get(),
            message: m.message,
            created_at: m.created_at.to_rfc3339(),
        }
    }
}

/// Whether JSON text opens an object (its first byte past JSON whitespace is
/// `{`). serde reads a derived struct, and an internally tagged enum, from an
/// array too; bodies and stream frames must be objects.
pub fn opens_an_object(text: &str) -> bool {
    text.trim_start_matches([' ', '\t', '\n', '\r']).starts_with('{')
}
