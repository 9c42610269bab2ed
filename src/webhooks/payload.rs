//! The body of a delivery: `{"type", "timestamp", "data"}`, where `data` is
//! the guide's `ChatMessage` (plus `tenant_id`) or `ChatSession`, each with
//! `seq`, the event's place in its session (commit order), so a receiver
//! can order or de-duplicate by it. Rendered from the stored rows at each
//! attempt; the rows never change, so every attempt sends the same bytes.

use crate::domain::event::StoredEvent;
use crate::domain::webhook::{EventType, OutboxEvent};
use crate::wire::{ChatMessage, ChatSession};
use serde::Serialize;

#[derive(Serialize)]
struct Body<T> {
    #[serde(rename = "type")]
    kind: &'static str,
    timestamp: String,
    data: T,
}

#[derive(Serialize)]
struct MessageData {
    #[serde(flatten)]
    message: ChatMessage,
    tenant_id: i64,
    seq: i64,
}

#[derive(Serialize)]
struct SessionData {
    #[serde(flatten)]
    session: ChatSession,
    seq: i64,
}

/// The JSON body for `event`, from the stored event it describes.
pub fn render(event: &OutboxEvent, stored: StoredEvent) -> Result<Vec<u8>, String> {
    let timestamp = event.at.to_rfc3339();
    let kind = event.kind.as_str();
    let body = match stored {
        StoredEvent::Message(m) if event.kind == EventType::MessageCreated => {
            let (tenant_id, seq) = (m.tenant_id.get(), m.seq);
            serde_json::to_vec(&Body { kind, timestamp, data: MessageData { message: m.into(), tenant_id, seq } })
        }
        StoredEvent::Session(e) if EventType::of_change(e.change) == event.kind => {
            let seq = e.seq;
            serde_json::to_vec(&Body { kind, timestamp, data: SessionData { session: e.session.into(), seq } })
        }
        _ => return Err(format!("the stored event at seq {} is not a {kind}", event.seq)),
    };
    body.map_err(|e| format!("cannot render the payload: {e}"))
}
