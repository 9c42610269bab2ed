//! Stream clients for the tests: a WebSocket client and an SSE reader, both
//! bounded in time, over real loopback connections.

use crate::helpers::{TestApp, User};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single wait for a frame may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// Gets a stream ticket over the normal API.
pub async fn ticket(app: &TestApp, user: &User, tenant: i64) -> String {
    let r = app.post("/realtime/tickets", user, tenant, None).await;
    assert_eq!(r.status, 201, "ticket: {}", r.body);
    r.data()["ticket"].as_str().unwrap().to_owned()
}

/// What a WebSocket read produced.
#[derive(Debug)]
pub enum Frame {
    /// A JSON text frame.
    Json(Value),
    /// The server closed with this code.
    Closed(u16),
    /// The connection ended without a close frame.
    Ended,
}

/// A WebSocket client speaking the livechat protocol.
pub struct Ws {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    /// Opens a stream for `user` with a fresh ticket issued in `tenant`.
    pub async fn connect(app: &TestApp, user: &User, tenant: i64) -> Self {
        let ticket = ticket(app, user, tenant).await;
        Self::connect_ticket(app.addr, app.prefix, &ticket, None).await.expect("websocket opens")
    }

    /// Opens a stream with a given ticket; `recv_buffer` shrinks the socket's
    /// receive buffer (to play a slow reader).
    pub async fn connect_ticket(
        addr: SocketAddr,
        prefix: &str,
        ticket: &str,
        recv_buffer: Option<u32>,
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let url = format!("ws://{addr}{prefix}/realtime/ws?ticket={ticket}");
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size).unwrap();
        }
        let stream = tokio::time::timeout(WAIT, socket.connect(addr)).await.expect("connect in time")?;
        let (socket, _) =
            tokio::time::timeout(WAIT, tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream)))
                .await
                .expect("handshake in time")?;
        Ok(Self { socket })
    }

    /// Sends a protocol message.
    pub async fn send(&mut self, msg: Value) {
        self.socket.send(Message::Text(msg.to_string().into())).await.expect("send");
    }

    /// Subscribes and waits for `subscribed` (replayed events follow it).
    pub async fn subscribe(&mut self, session: &str, tenant: Option<i64>, last_event_id: Option<&str>) {
        let mut msg = json!({ "type": "subscribe", "session_id": session });
        if let Some(t) = tenant {
            msg["tenant_id"] = json!(t);
        }
        if let Some(id) = last_event_id {
            msg["last_event_id"] = json!(id);
        }
        self.send(msg).await;
        let frame = self.next_json().await;
        assert_eq!(frame["type"], "subscribed", "expected subscribed, got {frame}");
    }

    /// The next frame (pings are answered by the library and skipped).
    pub async fn next(&mut self) -> Frame {
        self.next_within(WAIT).await
    }

    /// The next frame, waiting up to `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Frame {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let msg = match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Ok(msg) => msg,
                Err(_) => panic!("no frame within {wait:?}"),
            };
            match msg {
                Some(Ok(Message::Text(text))) => {
                    return Frame::Json(serde_json::from_str(text.as_str()).expect("JSON frame"));
                }
                Some(Ok(Message::Close(frame))) => return Frame::Closed(frame.map_or(1005, |f| u16::from(f.code))),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Frame::Ended,
            }
        }
    }

    /// The next JSON frame; panics on close.
    pub async fn next_json(&mut self) -> Value {
        match self.next().await {
            Frame::Json(v) => v,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// The next `event` frame with this name, skipping other frames.
    pub async fn next_event(&mut self, name: &str) -> Value {
        loop {
            let frame = self.next_json().await;
            if frame["type"] == "event" && frame["event"] == name {
                return frame;
            }
        }
    }

    /// Waits `for_` and asserts that nothing but pings arrives meanwhile.
    pub async fn expect_silence(&mut self, for_: Duration) {
        let deadline = tokio::time::Instant::now() + for_;
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(other) => panic!("expected silence, got {other:?}"),
            }
        }
    }

    /// Closes from the client side.
    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: Value,
}

/// A Server-Sent Events reader.
pub struct Sse {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl Sse {
    /// Opens `GET …/sessions/:id/events` with a fresh ticket.
    pub async fn open(app: &TestApp, user: &User, tenant: i64, session: &str, last_event_id: Option<&str>) -> Self {
        let ticket = ticket(app, user, tenant).await;
        let mut req = app.client.get(app.url(&format!("/sessions/{session}/events?ticket={ticket}")));
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        let res = tokio::time::timeout(WAIT, req.send()).await.expect("SSE opens in time").unwrap();
        assert_eq!(res.status(), 200);
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        Self { body: Box::pin(res.bytes_stream()), buffer: String::new() }
    }

    /// The next event (comments skipped).
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut event, mut id, mut data) = (String::from("message"), None, String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue;
                }
                return Some(SseEvent { event, id, data: serde_json::from_str(&data).expect("JSON data") });
            }
            match tokio::time::timeout(WAIT, self.body.next()).await.expect("SSE event in time") {
                Some(Ok(chunk)) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return None,
            }
        }
    }
}
