//! One stream connection: admitted to the hub ([`Connection`]), then run
//! as an actor ([`super::actor`]) that owns the outgoing side, so replay and
//! live delivery are one ordered sequence per session, until the client
//! leaves, the server stops, the token expires or the client falls behind.
//!
//! The transport (WebSocket or SSE) only converts frames; the logic here is
//! generic over a `Stream` of client input and a `Sink` of output.

use super::Realtime;
use super::actor::{Actor, End};
use super::frame::{Inbound, Outbound, Peer, Transport};
use super::hub::{ConnId, Delivery};
use crate::domain::access::AgentScope;
use crate::domain::time::Timestamp;
use crate::wire::stream::{ServerMessage, close};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest a new stream waits for its agent's presence to be recorded.
const PRESENCE_WAIT: Duration = Duration::from_secs(3);

/// Unregisters the connection however the actor ends (even if its task is dropped).
struct Registration {
    rt: Arc<Realtime>,
    id: ConnId,
}

impl Drop for Registration {
    fn drop(&mut self) {
        // Presence changes go through one queue, in order, so a reconnect's
        // "online" cannot be overtaken by the old stream's "offline".
        drop(self.rt.presence_changed(self.rt.hub.disconnect(self.id)));
    }
}

/// A stream admitted to this node: registered in the hub, and for an agent,
/// online before the handshake completes (so a session can be assigned to
/// it as soon as the client sees its stream open). Dropping it unregisters.
pub struct Connection {
    rt: Arc<Realtime>,
    peer: Peer,
    scope: Option<AgentScope>,
    id: ConnId,
    inlet: super::inlet::Inlet,
    registration: Registration,
}

impl Realtime {
    /// Admits a stream: registers it, and records an agent's presence now
    /// if this is its first stream on the node.
    pub async fn open(self: &Arc<Self>, peer: Peer) -> Connection {
        let scope = self.chat.agent_scope(&peer.identity);
        let agent = scope.clone().map(|s| (peer.identity.user_id, s));
        let (id, inlet, change) = self.hub.connect(agent);
        let registration = Registration { rt: self.clone(), id };
        // Applied by the presence task in order with every other change, and
        // waited for; bounded, since a stream must not wait on a stuck database.
        let applied = self.presence_changed(change);
        let _ = tokio::time::timeout(PRESENCE_WAIT, applied).await;
        Connection { rt: self.clone(), peer, scope, id, inlet, registration }
    }
}

impl Connection {
    /// Runs the stream until the client leaves, the server shuts down, the
    /// token expires or the client falls too far behind.
    pub async fn serve<I, O>(self, transport: Transport, inbound: I, out: O)
    where
        I: Stream<Item = Inbound> + Unpin + Send,
        O: Sink<Outbound> + Unpin + Send,
    {
        run(self, transport, inbound, out).await;
    }
}

async fn run<I, O>(conn: Connection, transport: Transport, mut inbound: I, out: O)
where
    I: Stream<Item = Inbound> + Unpin + Send,
    O: Sink<Outbound> + Unpin + Send,
{
    let Connection { rt, peer, scope, id, mut inlet, registration: _registration } = conn;
    let mut shutdown = rt.shutdown.clone();
    let expires_in = u64::try_from(peer.identity.expires_at - Timestamp::now().unix_seconds()).unwrap_or(0);
    let token_expiry = tokio::time::sleep(Duration::from_secs(expires_in.min(365 * 86_400)));
    tokio::pin!(token_expiry);
    let mut heartbeat = tokio::time::interval(rt.settings.ping_interval);
    heartbeat.tick().await;
    let mut last_alive = Instant::now();
    // An event stream has no way to answer pings; a dead one fails its writes instead.
    let single = matches!(transport, Transport::EventStream(..));

    let mut actor = Actor {
        rt: rt.clone(),
        peer,
        scope,
        id,
        out,
        subs: HashMap::new(),
        ended: HashMap::new(),
        inbox: false,
        pending: inlet.pending.clone(),
    };
    let end: Result<(), End> = async {
        if let Transport::EventStream(session, start) = transport {
            actor.start(actor.peer.home, session, start).await?;
        }
        loop {
            if single && actor.subs.is_empty() {
                // Ended by its session closing.
                return Err(End::Close(close::NORMAL, "session closed"));
            }
            tokio::select! {
                biased;
                () = super::stopped(&mut shutdown) => return Err(End::Close(close::GOING_AWAY, "server shutting down")),
                () = &mut token_expiry => return Err(End::Close(close::TOKEN_EXPIRED, "token expired")),
                () = inlet.lagged.wait() => {
                    rt.chat.metrics().streams_lagged.inc();
                    let frame = ServerMessage::error("lagged", "too far behind; reconnect and resume from the last event id", None);
                    actor.send(frame).await?;
                    return Err(End::Close(close::TOO_SLOW, "too slow"));
                }
                () = inlet.pending.changed() => {
                    let backlog = inlet.pending.take();
                    actor.on_backlog(backlog).await?;
                }
                input = inbound.next() => match input {
                    Some(Inbound::Message(msg)) => {
                        last_alive = Instant::now();
                        actor.handle(msg).await?;
                    }
                    Some(Inbound::Alive) => last_alive = Instant::now(),
                    None => return Err(End::Gone),
                },
                delivery = inlet.notices.recv() => match delivery {
                    Some(Delivery::Notice(notice)) => actor.on_notice(&notice).await?,
                    Some(Delivery::Inbox(inbox)) => actor.on_inbox(inbox.0, inbox.1.clone()).await?,
                    None => return Err(End::Gone),
                },
                _ = heartbeat.tick() => {
                    if !single && last_alive.elapsed() > rt.settings.idle_timeout {
                        return Err(End::Close(close::IDLE, "idle"));
                    }
                    actor.emit(Outbound::Ping).await?;
                }
            }
        }
    }
    .await;
    if let Err(End::Close(code, reason)) = end {
        let _ = tokio::time::timeout(rt.settings.write_timeout, actor.out.send(Outbound::Close(code, reason))).await;
    }
}
