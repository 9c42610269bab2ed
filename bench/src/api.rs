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

/// `POST /sessions/:id/messages` with an `Idempotency-Key`, as the web UI sends every message.
pub fn send_keyed(token: &str, tenant: i64, session: Uuid, text: &str, key: &str) -> Req {
    let mut req = send(token, tenant, session, text);
    req.headers.push(("idempotency-key", key.to_owned()));
    req
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

/// Streams opened per round of tickets: tickets live 30 s, so a round
/// must be connected well within that even on a loaded machine.
const TICKET_ROUND: usize = 250;

/// Opens `n` subscribed WebSockets. `who(i)` = (token, tenant, session) of
/// stream `i`, which goes to node `i % addrs.len()`. Tickets are fetched in
/// rounds just before their streams connect (at most `parallel` handshakes
/// at a time). Returns the streams and how long each handshake and
/// subscription took.
pub async fn open_many(
    addrs: &[SocketAddr],
    n: usize,
    parallel: usize,
    who: impl Fn(usize) -> anyhow::Result<(String, i64, Uuid)>,
    progress: &Arc<Progress>,
) -> anyhow::Result<(Vec<Ws>, hdrhistogram::Histogram<u64>)> {
    if addrs.is_empty() {
        bail!("no address to connect to");
    }
    let sem = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
    let mut out = Vec::with_capacity(n);
    let mut hist = load::histogram();
    let mut first = 0;
    while first < n {
        let round: Vec<usize> = (first..n.min(first + TICKET_ROUND)).collect();
        first += round.len();
        let targets = round.iter().map(|&i| who(i)).collect::<anyhow::Result<Vec<_>>>()?;
        let reqs = targets.iter().map(|(token, tenant, _)| ticket(token, *tenant)).collect();
        let bodies = load::batch(addrs, 16, reqs, progress).await.context("getting stream tickets")?;
        let mut tasks = Vec::with_capacity(round.len());
        for ((i, (_, tenant, session)), body) in round.iter().zip(targets).zip(bodies) {
            let ticket =
                body["data"]["ticket"].as_str().map(str::to_owned).ok_or_else(|| anyhow!("no ticket in {body}"))?;
            let addr = addrs[i % addrs.len()];
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
        for t in tasks {
            let (ws, took) = t.await.context("connect task panicked")??;
            load::record(&mut hist, took);
            out.push(ws);
        }
    }
    Ok((out, hist))
}
