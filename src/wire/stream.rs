//! The stream protocol: what clients send and what the server sends, over
//! WebSocket (JSON text frames) and Server-Sent Events (the same JSON as `data`).
//! Documented in `docs/REALTIME.md`; the schemas here are served at
//! `…/realtime.json`.

use super::{ChatMessage, ChatSession};
use crate::domain::event::{ReadMark, StoredEvent};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A message from the client (WebSocket only).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Start receiving a session's events; with `last_event_id`, first replay
    /// every persisted event after it.
    Subscribe {
        /// The session.
        #[schema(format = Uuid)]
        session_id: String,
        /// Its tenant; defaults to the tenant the ticket was issued in.
        #[serde(default)]
        tenant_id: Option<i64>,
        /// The id of the last event the client saw (a message id or a session event id).
        #[serde(default)]
        #[schema(format = Uuid)]
        last_event_id: Option<String>,
    },
    /// Stop receiving a session's events.
    Unsubscribe {
        /// The session.
        #[schema(format = Uuid)]
        session_id: String,
        /// Its tenant; defaults to the ticket's.
        #[serde(default)]
        tenant_id: Option<i64>,
    },
    /// Agents: receive `session.updated` for every session of their tenants and `presence`.
    WatchInbox,
    /// The sender is typing in a subscribed session (rate-limited, never stored).
    Typing {
        /// The session.
        #[schema(format = Uuid)]
        session_id: String,
        /// Its tenant; defaults to the ticket's.
        #[serde(default)]
        tenant_id: Option<i64>,
    },
    /// Application-level keep-alive; answered with `pong`.
    Ping,
}

impl ClientMessage {
    /// Reads one WebSocket text frame; the error says why it is unreadable.
    pub fn parse(text: &str) -> Result<Self, String> {
        // serde also reads an internally tagged enum from an array whose first
        // item is the tag (`["ping"]`); a frame is one JSON object.
        if !super::opens_an_object(text) {
            return Err("unreadable message: a frame is one JSON object".to_owned());
        }
        serde_json::from_str(text).map_err(|e| format!("unreadable message: {e}"))
    }
}

/// Names of the events a stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub enum EventName {
    /// A message was stored (persisted; `id` is the message id).
    #[serde(rename = "message.created")]
    MessageCreated,
    /// A session was opened, assigned or closed (persisted; `id` is the event id).
    #[serde(rename = "session.updated")]
    SessionUpdated,
    /// Someone is typing (ephemeral).
    #[serde(rename = "typing")]
    Typing,
    /// An agent went online or offline (ephemeral).
    #[serde(rename = "presence")]
    Presence,
    /// A participant's read mark moved (ephemeral; the mark itself is stored).
    #[serde(rename = "read")]
    Read,
}

impl EventName {
    /// The wire name, also the SSE `event:` field.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::MessageCreated => "message.created",
            Self::SessionUpdated => "session.updated",
            Self::Typing => "typing",
            Self::Presence => "presence",
            Self::Read => "read",
        }
    }
}

/// Payload of `typing`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TypingData {
    /// Who is typing.
    pub user_id: i64,
}

/// Payload of `presence`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PresenceData {
    /// The agent.
    pub agent_id: i64,
    /// `online` or `offline`.
    #[schema(value_type = super::Presence)]
    pub status: &'static str,
}

/// Payload of `read`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReadData {
    /// The reader.
    pub user_id: i64,
    /// The last message they read.
    #[schema(format = Uuid)]
    pub message_id: String,
    /// When.
    #[schema(format = DateTime)]
    pub read_at: String,
}

impl From<&ReadMark> for ReadData {
    fn from(m: &ReadMark) -> Self {
        Self { user_id: m.user_id.get(), message_id: m.message_id.to_string(), read_at: m.at.to_rfc3339() }
    }
}

/// The payload of an event, by kind.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum EventData {
    /// For `message.created`.
    Message(ChatMessage),
    /// For `session.updated`.
    Session(ChatSession),
    /// For `typing`.
    Typing(TypingData),
    /// For `presence`.
    Presence(PresenceData),
    /// For `read`.
    Read(ReadData),
}

/// A message from the server.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Something happened.
    Event {
        /// Which event.
        event: EventName,
        /// Persisted events only: what to resume from (`last_event_id`, SSE `Last-Event-ID`).
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(format = Uuid, nullable = false)]
        id: Option<String>,
        /// The session it concerns (absent for `presence`).
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(format = Uuid, nullable = false)]
        session_id: Option<String>,
        /// The tenant of that session.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(nullable = false)]
        tenant_id: Option<i64>,
        /// The payload: a `ChatMessage`, a `ChatSession`, or the small objects above.
        data: EventData,
    },
    /// A subscription is active; replayed events (if any) follow, then live ones.
    Subscribed {
        /// The session.
        #[schema(format = Uuid)]
        session_id: String,
        /// Its tenant.
        tenant_id: i64,
    },
    /// A subscription ended.
    Unsubscribed {
        /// The session.
        #[schema(format = Uuid)]
        session_id: String,
        /// Its tenant.
        tenant_id: i64,
        /// `requested` or `session_closed`.
        #[schema(value_type = UnsubscribeReason)]
        reason: &'static str,
    },
    /// Inbox events will follow.
    WatchingInbox,
    /// Answer to `ping`.
    Pong,
    /// A request could not be served; the connection stays open unless a close follows.
    Error {
        /// The stream code of the service's error table (`service::Error::public`,
        /// docs/API.md §6), or one only streams have: `invalid_message`,
        /// `not_subscribed`, `lagged`.
        code: &'static str,
        /// Human-readable detail.
        message: String,
        /// The session concerned, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(format = Uuid, nullable = false)]
        session_id: Option<String>,
    },
}

impl ServerMessage {
    /// The frame for a persisted event.
    pub fn stored(event: StoredEvent) -> Self {
        match event {
            StoredEvent::Message(m) => Self::Event {
                event: EventName::MessageCreated,
                id: Some(m.id.to_string()),
                session_id: Some(m.session_id.to_string()),
                tenant_id: Some(m.tenant_id.get()),
                data: EventData::Message(m.into()),
            },
            StoredEvent::Session(e) => Self::Event {
                event: EventName::SessionUpdated,
                id: Some(e.id.hyphenated().to_string()),
                session_id: Some(e.session.id.to_string()),
                tenant_id: Some(e.session.tenant_id.get()),
                data: EventData::Session(e.session.into()),
            },
        }
    }

    /// An error frame.
    pub fn error(code: &'static str, message: impl Into<String>, session_id: Option<String>) -> Self {
        Self::Error { code, message: message.into(), session_id }
    }

    /// The SSE `event:` and `id:` fields for this frame.
    pub fn sse_fields(&self) -> (&'static str, Option<&str>) {
        match self {
            Self::Event { event, id, .. } => (event.as_str(), id.as_deref()),
            Self::Subscribed { .. } => ("subscribed", None),
            Self::Unsubscribed { .. } => ("unsubscribed", None),
            Self::WatchingInbox => ("watching_inbox", None),
            Self::Pong => ("pong", None),
            Self::Error { .. } => ("error", None),
        }
    }
}

/// Why a subscription ended (the schema of `unsubscribed.reason`).
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnsubscribeReason {
    /// The client sent `unsubscribe`.
    Requested,
    /// The session was closed.
    SessionClosed,
}

/// WebSocket close codes the server uses.
pub mod close {
    /// The stream's purpose ended (an event stream's session closed).
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down: reconnect (to another node) and resume.
    pub const GOING_AWAY: u16 = 1001;
    /// The ticket's token expired: get a new token and ticket.
    pub const TOKEN_EXPIRED: u16 = 4001;
    /// No frame or pong for too long.
    pub const IDLE: u16 = 4002;
    /// The client fell too far behind: reconnect and resume from the last id seen.
    pub const TOO_SLOW: u16 = 4008;
    /// The server failed.
    pub const INTERNAL: u16 = 1011;
}
