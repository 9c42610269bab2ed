//! The stream endpoints: tickets, the WebSocket, per-session SSE, and the
//! machine-readable protocol description. They turn HTTP into the
//! transport-neutral input and output of the real-time engine
//! ([`crate::realtime`]), which does the rest.

use super::AppState;
use super::error::ApiError;
use super::extract::{AuthedIdentity, Query, SessionPath};
use super::model::ErrorResponse;
use super::params::PositiveIdText;
use super::response::Success;
use crate::realtime::{Connection, Inbound, Outbound, Peer, Transport};
use crate::wire::stream::ClientMessage;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::{SinkExt, StreamExt, future};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use tracing::Instrument;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

/// Read buffer of a WebSocket connection.
const WS_READ_BUFFER: usize = 4 * 1024;
/// Largest client message accepted (the protocol's messages are a few hundred bytes).
const WS_MAX_MESSAGE: usize = 64 * 1024;

/// The stream routes, relative to a prefix. Only the ticket is an HTTP
/// operation; the streams are described by `realtime.json` (AsyncAPI).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(create_ticket))
        .route("/realtime/ws", get(open_websocket))
        .route("/realtime.json", get(describe))
        .route("/sessions/{id}/events", get(open_event_stream))
}

/// A ticket for one stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamTicket {
    /// Pass as `?ticket=` to the WebSocket or SSE endpoint; valid once.
    pub ticket: String,
    /// When it stops being accepted (RFC 3339).
    #[schema(format = DateTime)]
    pub expires_at: String,
}

/// Issues a short-lived, single-use ticket that authorises one stream.
#[utoipa::path(post, path = "/realtime/tickets", tag = "realtime",
    params(("X-Tenant-ID" = inline(PositiveIdText), Header)),
    responses(
        (status = 201, description = "Ticket issued", body = inline(super::model::ApiResponse<StreamTicket>)),
        (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
    ), security(("bearer" = [], "tenant" = [])))]
pub async fn create_ticket(
    State(state): State<AppState>,
    AuthedIdentity { caller, identity }: AuthedIdentity,
) -> Result<Success<StreamTicket>, ApiError> {
    let caller = caller.ok_or_else(|| ApiError::field("X-Tenant-ID", "is required"))?;
    let quota = state.chat().quotas().check(crate::service::Action::Ticket, &caller)?;
    let issued = state.chat().issue_ticket(&caller, &identity).await?;
    let ticket = StreamTicket { ticket: issued.ticket, expires_at: issued.expires_at.to_rfc3339() };
    Ok(Success::created("ticket issued", ticket).quota(quota))
}

/// Query of the stream endpoints.
#[derive(Debug, Deserialize)]
pub struct StreamQuery {
    /// The single-use ticket.
    pub ticket: Option<String>,
    /// Where an event stream resumes (the `Last-Event-ID` header wins).
    pub last_event_id: Option<String>,
}

async fn redeem(state: &AppState, query: &StreamQuery) -> Result<Peer, ApiError> {
    let ticket = query.ticket.as_deref().ok_or(crate::service::Error::Unauthorized)?;
    let (home, identity) = state.chat().redeem_ticket(ticket).await?;
    Ok(Peer { identity, home })
}

/// Upgrades to the WebSocket protocol of `docs/REALTIME.md`.
pub async fn open_websocket(
    State(state): State<AppState>,
    Query(query): Query<StreamQuery>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade =
        upgrade.map_err(|rej| ApiError::field("Upgrade", format!("a WebSocket handshake is required ({rej})")))?;
    let peer = redeem(&state, &query).await?;
    // Admitted before the handshake completes: an agent is online once its client sees the stream open.
    let conn = state.realtime().open(peer).await;
    // Small buffers: an idle stream should cost a few KiB, not the library's
    // 128 KiB read buffer; client frames are small JSON messages.
    let upgrade = upgrade
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(WS_MAX_MESSAGE)
        .max_frame_size(WS_MAX_MESSAGE);
    Ok(upgrade.on_upgrade(move |socket| serve_socket(conn, socket)).into_response())
}

async fn serve_socket(conn: Connection, socket: WebSocket) {
    let (sink, stream) = socket.split();
    let inbound = stream
        .take_while(|msg| future::ready(matches!(msg, Ok(m) if !matches!(m, Message::Close(_)))))
        .filter_map(|msg| {
            future::ready(match msg {
                Ok(Message::Text(text)) => Some(Inbound::Message(ClientMessage::parse(text.as_str()))),
                Ok(Message::Binary(_)) => Some(Inbound::Message(Err("binary frames are not supported".to_owned()))),
                Ok(Message::Ping(_) | Message::Pong(_)) => Some(Inbound::Alive),
                Ok(Message::Close(_)) | Err(_) => None,
            })
        });
    let outbound = sink.with(|out: Outbound| {
        future::ready(Ok::<_, axum::Error>(match out {
            // Serialized once by the engine, shared by every stream; text by construction.
            Outbound::Frame(frame) => Message::Text(frame.json.try_into().unwrap_or_default()),
            Outbound::Ping => Message::Ping(Default::default()),
            Outbound::Close(code, reason) => Message::Close(Some(CloseFrame { code, reason: reason.into() })),
        }))
    });
    conn.serve(Transport::WebSocket, Box::pin(inbound), Box::pin(outbound)).await;
}

/// Server-Sent Events for one session, resuming after `Last-Event-ID`.
pub async fn open_event_stream(
    State(state): State<AppState>,
    SessionPath(session): SessionPath,
    Query(query): Query<StreamQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let peer = redeem(&state, &query).await?;
    let last_event_id = super::input::last_event_id(headers.get("last-event-id"), query.last_event_id.as_deref());
    // Refused up front with the envelope (the stream would only carry an error).
    let start = state.chat().subscribe(&peer.identity, peer.home, session, last_event_id).await?;
    let (tx, rx) = futures_channel::mpsc::channel::<Outbound>(state.realtime().settings().queue);
    let outbound = tx.sink_map_err(|_| ());
    let inbound = Box::pin(futures_util::stream::pending());
    let conn = state.realtime().open(peer).await;
    // The stream outlives this handler; it keeps the request's span for its logs.
    tokio::spawn(conn.serve(Transport::EventStream(session, start), inbound, outbound).in_current_span());
    let events = rx.map(|out| {
        Ok::<_, Infallible>(match out {
            Outbound::Frame(frame) => {
                let event = Event::default().event(frame.event).data(frame.text());
                match &frame.id {
                    Some(id) => event.id(id.as_ref()),
                    None => event,
                }
            }
            Outbound::Ping => Event::default().comment("ping"),
            Outbound::Close(code, reason) => {
                Event::default().event("close").data(serde_json::json!({ "code": code, "reason": reason }).to_string())
            }
        })
    });
    // The actor's own pings keep the stream alive; this only covers a stalled actor.
    let keep_alive = KeepAlive::new().interval(state.realtime().settings().ping_interval * 2);
    Ok(Sse::new(events).keep_alive(keep_alive).into_response())
}

/// The protocol's machine-readable description (AsyncAPI 3.0 with JSON Schemas).
pub async fn describe() -> impl IntoResponse {
    axum::Json(document())
}

#[derive(utoipa::OpenApi)]
#[openapi(components(schemas(
    ClientMessage,
    crate::wire::stream::ServerMessage,
    crate::wire::stream::EventName,
    crate::wire::stream::EventData,
    crate::wire::stream::TypingData,
    crate::wire::stream::PresenceData,
    crate::wire::stream::ReadData,
    crate::wire::ChatMessage,
    crate::wire::ChatSession
)))]
struct Schemas;

/// The AsyncAPI 3.0 description of both stream endpoints, with the JSON
/// Schemas generated from the types above.
pub fn document() -> serde_json::Value {
    let schemas = <Schemas as utoipa::OpenApi>::openapi().components.map(|c| c.schemas).unwrap_or_default();
    let schema_ref = |name: &str| serde_json::json!({ "$ref": format!("#/components/schemas/{name}") });
    serde_json::json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "livechat streams",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Real-time events of livechat. Get a ticket with POST /realtime/tickets (normal headers), \
                then open the WebSocket or an SSE stream with ?ticket=. Every path exists under /api/livechat and \
                /api/vendor/livechat. Close codes: 1001 server going away (reconnect and resume), 4001 token \
                expired, 4002 idle, 4008 too slow (reconnect and resume from the last event id), 1011 internal error."
        },
        "channels": {
            "websocket": {
                "address": "/api/livechat/realtime/ws?ticket={ticket}",
                "parameters": { "ticket": { "description": "single-use ticket from POST /realtime/tickets" } },
                "messages": {
                    "client": { "name": "ClientMessage", "contentType": "application/json", "payload": schema_ref("ClientMessage") },
                    "server": { "name": "ServerMessage", "contentType": "application/json", "payload": schema_ref("ServerMessage") }
                }
            },
            "session_events": {
                "address": "/api/livechat/sessions/{id}/events?ticket={ticket}",
                "description": "Server-Sent Events for one session: `event:` is the event name, `id:` is set for persisted events, `data:` is a ServerMessage. Resumes after the Last-Event-ID header (or ?last_event_id=).",
                "parameters": { "id": { "description": "session id" }, "ticket": { "description": "single-use ticket" } },
                "messages": {
                    "server": { "name": "ServerMessage", "contentType": "application/json", "payload": schema_ref("ServerMessage") }
                }
            }
        },
        "operations": {
            "send": { "action": "receive", "channel": { "$ref": "#/channels/websocket" }, "messages": [ { "$ref": "#/channels/websocket/messages/client" } ] },
            "receive": { "action": "send", "channel": { "$ref": "#/channels/websocket" }, "messages": [ { "$ref": "#/channels/websocket/messages/server" } ] },
            "stream": { "action": "send", "channel": { "$ref": "#/channels/session_events" }, "messages": [ { "$ref": "#/channels/session_events/messages/server" } ] }
        },
        "components": { "schemas": schemas }
    })
}
