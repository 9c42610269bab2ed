//! What crosses between a stream's transport and its actor: who is
//! connected and how ([`Peer`], [`Transport`]), client input, and frames out, each serialised once and shared by every stream that
//! sends it (the hub caches them, the actor sends them, the transport
//! converts them to WebSocket messages or SSE events).

use crate::domain::access::Identity;
use crate::domain::ids::{SessionId, TenantId};
use crate::service::Subscription;
use crate::wire::stream::{ClientMessage, ServerMessage};
use bytes::Bytes;
use std::sync::Arc;

/// What arrives from the client.
#[derive(Debug)]
pub enum Inbound {
    /// A parsed message, or why it could not be parsed.
    Message(Result<ClientMessage, String>),
    /// A sign of life without content (a pong).
    Alive,
}

/// A server message, serialized once and shared by every stream that sends it.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The JSON text (valid UTF-8).
    pub json: Bytes,
    /// The SSE `event:` name.
    pub event: &'static str,
    /// The SSE `id:` (persisted events only).
    pub id: Option<Arc<str>>,
}

impl Frame {
    /// Serializes a message.
    pub fn new(msg: &ServerMessage) -> Self {
        let (event, id) = msg.sse_fields();
        let json = serde_json::to_vec(msg).unwrap_or_else(|err| {
            tracing::error!(error = %err, "stream frame serialisation failed");
            br#"{"type":"error","code":"internal_error","message":"internal error"}"#.to_vec()
        });
        Self { json: Bytes::from(json), event, id: id.map(Arc::from) }
    }

    /// The JSON as text.
    pub fn text(&self) -> &str {
        // Built from serde_json output only, which is UTF-8.
        std::str::from_utf8(&self.json).unwrap_or_default()
    }
}

/// What goes to the client.
#[derive(Debug)]
pub enum Outbound {
    /// A protocol message.
    Frame(Frame),
    /// A keep-alive.
    Ping,
    /// End the stream with this code and reason.
    Close(u16, &'static str),
}

/// Who is connected, as proven by the ticket.
pub struct Peer {
    /// The ticket's identity.
    pub identity: Identity,
    /// The tenant the ticket was issued in (the default for messages without `tenant_id`).
    pub home: TenantId,
}

/// What kind of stream this is.
pub enum Transport {
    /// A WebSocket: many sessions, client messages, pings answered.
    WebSocket,
    /// Server-Sent Events for one session of the peer's home tenant, already
    /// admitted: starts there and ends when that subscription ends.
    EventStream(SessionId, Subscription),
}
