//! The livechat API as the generator uses it: tokens, requests, tickets and
//! WebSocket subscribers.

use crate::load::{self, Progress, Req};
use anyhow::{Context, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use hyper::Method;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

/// Prefix of every livechat route.
pub const PREFIX: &str = "/api/livechat";

/// Mints HS256 tokens the way the platform's identity service would.
pub struct Tokens {
    key: jsonwebtoken::EncodingKey,
}

impl Tokens {
    /// Tokens signed with `secret`.
    pub fn new(secret: &str) -> Self {
        Self { key: jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()) }
    }

    fn mint(&self, mut claims: serde_json::Value) -> anyhow::Result<String> {
        let now = crate::seed::now_micros() / 1_000_000;
        claims["iat"] = json!(now);
        // Longer than any run, so no stream closes with 4001 mid-case.
        claims["exp"] = json!(now + 12 * 3600);
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &self.key).context("signing a token")
    }

    /// A member of one tenant.
    pub fn member(&self, sub: i64, tenant: i64) -> anyhow::Result<String> {
        self.mint(json!({ "sub": sub.to_string(), "tenants": { tenant.to_string(): ["koperasi_member"] } }))
    }
}

/// Headers every livechat route wants.
fn authed(req: Req, token: &str, tenant: i64) -> Req {
    req.header("authorization", format!("Bearer {token}")).header("x-tenant-id", tenant.to_string())
}

/// `POST /sessions/:id/messages`.
pub fn send(token: &str, tenant: i64, session: Uuid, text: &str) -> Req {
    let path = format!("{PREFIX}/sessions/{session}/messages");
    authed(Req::with_json(Method::POST, path, &json!({ "message": text })), token, tenant)
}

/// `GET /sessions/:id/messages?…`.
pub fn page(token: &str, tenant: i64, session: Uuid, query: &str) -> Req {
    authed(Req::get(format!("{PREFIX}/sessions/{session}/messages?{query}")), token, tenant)
}

/// `GET /sessions/:id`.
pub fn session(token: &str, tenant: i64, session: Uuid) -> Req {
    authed(Req::get(format!("{PREFIX}/sessions/{session}")), token, tenant)
}

/// `GET /sessions?limit=10`.
pub fn sessions(token: &str, tenant: i64) -> Req {
    authed(Req::get(format!("{PREFIX}/sessions?limit=10")), token, tenant)
}

/// `POST /realtime/tickets`.
pub fn ticket(token: &str, tenant: i64) -> Req {
    authed(Req::with_json(Method::POST, format!("{PREFIX}/realtime/tickets"), &json!({})), token, tenant)
}

/// Gets `n` tickets, `tickets[i]` for `who(i)` = (token, tenant), spread over the nodes.
pub async fn tickets(
    addrs: &[SocketAddr],
    who: impl Fn(usize) -> anyhow::Result<(String, i64)>,
    n: usize,
    progress: &Arc<Progress>,
) -> anyhow::Result<Vec<String>> {
    let reqs = (0..n).map(|i| who(i).map(|(t, tenant)| ticket(&t, tenant))).collect::<anyhow::Result<Vec<_>>>()?;
    let bodies = load::batch(addrs, 16, reqs, progress).await?;
    bodies
        .iter()
        .map(|b| b["data"]["ticket"].as_str().map(str::to_owned).ok_or_else(|| anyhow!("no ticket in {b}")))
        .collect()
}

/// A WebSocket client stream.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens `/realtime/ws` with a ticket and subscribes to one session; returns
/// once the server confirmed the subscription.
pub async fn subscribe(addr: SocketAddr, ticket: &str, session: Uuid, tenant: i64) -> anyhow::Result<Ws> {
    let fut = async {
        let stream = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        // Small buffers: 10,000 idle clients must not cost the generator gigabytes.
        let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
        let url = format!("ws://{addr}{PREFIX}/realtime/ws?ticket={ticket}");
        let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, MaybeTlsStream::Plain(stream), Some(config))
            .await
            .context("WebSocket upgrade")?;
        let sub = json!({ "type": "subscribe", "session_id": session, "tenant_id": tenant });
        ws.send(Message::text(sub.to_string())).await.context("sending subscribe")?;
        while let Some(msg) = ws.next().await {
            if let Message::Text(text) = msg.context("reading the subscription answer")? {
                let v: serde_json::Value = serde_json::from_str(&text).context("frame is not JSON")?;
                match v["type"].as_str() {
                    Some("subscribed") => return Ok(ws),
                    Some("error") => bail!("subscribe refused: {v}"),
                    _ => {}
                }
            }
        }
        bail!("the server closed the WebSocket before confirming the subscription")
    };
    tokio::time::timeout(Duration::from_secs(30), fut).await.map_err(|_| anyhow!("subscribing timed out"))?
}

/// Opens `n` subscribed WebSockets, at most `parallel` handshakes at a time;
/// `target(i)` = (node, ticket, session, tenant). Returns the streams and the
/// time each took.
pub async fn open_many(
    n: usize,
    parallel: usize,
    target: impl Fn(usize) -> (SocketAddr, String, Uuid, i64),
    progress: &Arc<Progress>,
) -> anyhow::Result<(Vec<Ws>, hdrhistogram::Histogram<u64>)> {
    let sem = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let (addr, ticket, session, tenant) = target(i);
        let sem = Arc::clone(&sem);
        let progress = Arc::clone(progress);
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.context("semaphore closed")?;
            let t0 = Instant::now();
            let ws = subscribe(addr, &ticket, session, tenant).await?;
            progress.ok.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok::<_, anyhow::Error>((ws, t0.elapsed()))
        }));
    }
    let mut out = Vec::with_capacity(n);
    let mut hist = load::histogram();
    for t in tasks {
        let (ws, took) = t.await.context("connect task panicked")??;
        load::record(&mut hist, took);
        out.push(ws);
    }
    Ok((out, hist))
}
