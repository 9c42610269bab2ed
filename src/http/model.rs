//! The wire shapes of the guide's TypeScript types (`ChatSession`,
//! `ChatMessage`, `APIResponse<T>`, `Meta`, `Pagination`). Optional fields
//! are omitted when absent, never `null`.

use crate::domain::message::Message;
use crate::domain::page::Page;
use crate::domain::session::Session;
use serde::{Deserialize, Serialize};
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
    /// `OPEN` or `CLOSED`.
    #[schema(pattern = "^(OPEN|CLOSED)$")]
    pub status: String,
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
            status: s.status.as_str().to_owned(),
            created_at: s.created_at.to_rfc3339(),
            updated_at: s.updated_at.to_rfc3339(),
            opened_by: s.opened_by.get(),
            closed_at: s.closed_at.map(|t| t.to_rfc3339()),
            unread_count: s.unread_count,
        }
    }
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

/// `Pagination`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Pagination {
    /// Cursor for the older page; present iff `has_next`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub next_cursor: Option<String>,
    /// Cursor for the newer page (with `direction=after`); present iff `has_prev`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub prev_cursor: Option<String>,
    /// Older matching items exist.
    pub has_next: bool,
    /// Newer matching items exist.
    pub has_prev: bool,
    /// The effective page size (after clamping).
    pub limit: u32,
}

impl<T> From<&Page<T>> for Pagination {
    fn from(p: &Page<T>) -> Self {
        Self {
            next_cursor: p.next_cursor.clone(),
            prev_cursor: p.prev_cursor.clone(),
            has_next: p.has_next,
            has_prev: p.has_prev,
            limit: p.limit,
        }
    }
}

/// `Meta`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Meta {
    /// The request id (also in the `X-Request-ID` header).
    pub request_id: String,
    /// When the response was produced.
    #[schema(format = DateTime)]
    pub timestamp: String,
    /// Only on list endpoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub pagination: Option<Pagination>,
}

/// `APIResponse<T>`: every body the server sends.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiResponse<T> {
    /// Whether the request succeeded.
    pub success: bool,
    /// A short English message on success; a snake_case code on error.
    pub message: String,
    /// The payload; `null` on error.
    #[schema(required)]
    pub data: Option<T>,
    /// Request metadata.
    pub meta: Meta,
    /// Field → messages on validation errors; otherwise `null`.
    #[schema(required)]
    pub errors: Option<std::collections::BTreeMap<String, Vec<String>>>,
}

/// `StartSessionRequest`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct StartSessionRequest {
    /// Agents only: the agent to assign; defaults to the caller.
    pub agent_id: Option<i64>,
}

/// `SendMessageRequest`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SendMessageRequest {
    /// 1 to 4,000 characters after trimming.
    pub message: String,
}

/// `APIResponse<null>`: the body of every error.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorResponse {
    /// Always `false`.
    pub success: bool,
    /// Stable snake_case code, e.g. `validation_error`, `not_found`.
    pub message: String,
    /// Always `null`.
    #[schema(value_type = Option<Object>, required)]
    pub data: Option<serde_json::Value>,
    /// Request metadata.
    pub meta: Meta,
    /// Field → messages, or `null` when no field is at fault.
    #[schema(required)]
    pub errors: Option<std::collections::BTreeMap<String, Vec<String>>>,
}
