//! One stream connection: an actor that owns the outgoing side, so replay
//! and live delivery are one ordered sequence per session.
//!
//! The transport (WebSocket or SSE) only converts frames; the logic here is
//! generic over a `Stream` of client input and a `Sink` of output.

use super::Realtime;
use super::frame::{Frame, Inbound, Outbound};
use super::hub::{Backlog, CachedEvent, ConnId, Delivery, Key, Pending};
use crate::domain::access::{AgentScope, Identity};
use crate::domain::event::{Notice, StoredEvent};
use crate::domain::ids::{SessionId, TenantId, UserId};
use crate::domain::session::SessionStatus;
use crate::domain::time::Timestamp;
use crate::service::{Error, Subscription};
use crate::wire::stream::{
    ClientMessage, EventData, EventName, PresenceData, ReadData, ServerMessage, TypingData, close,
};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Replay reads this many events at a time.
const REPLAY_PAGE: u32 = 100;
/// Longest a new stream waits for its agent's presence to be recorded.
const PRESENCE_WAIT: Duration = Duration::from_secs(3);
/// A failed read of a session's events is retried after this long.
const RETRY_READ: Duration = Duration::from_secs(1);

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

struct Sub {
    last_seq: i64,
    agent_id: Option<UserId>,
    caller: crate::domain::access::Caller,
    last_typing: Option<Instant>,
}

/// Why the connection ended.
enum End {
    Close(u16, &'static str),
    Gone,
}

struct Actor<O> {
    rt: Arc<Realtime>,
    peer: Peer,
    scope: Option<AgentScope>,
    id: ConnId,
    out: O,
    subs: HashMap<(TenantId, SessionId), Sub>,
    /// Where ended subscriptions stopped, so the inbox path does not repeat them.
    ended: HashMap<(TenantId, SessionId), i64>,
    inbox: bool,
    /// Where to re-mark a session whose read failed, so it is retried.
    pending: Arc<Pending>,
}

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

/// The answer to a request about a session this connection does not follow.
fn not_subscribed(session: SessionId) -> ServerMessage {
    ServerMessage::error("not_subscribed", "not subscribed to this session", Some(session.to_string()))
}

/// The error frame for a failed client request: the service's error table
/// ([`Error::public`]), logged there once if the failure is the server's.
fn error_frame(err: &Error, session: Option<SessionId>) -> ServerMessage {
    err.log("stream");
    ServerMessage::error(err.public().stream_code, err.detail(), session.map(|s| s.to_string()))
}

/// A stream admitted to this node: registered in the hub, and for an agent,
/// online before the handshake completes (so a session can be assigned to
/// it as soon as the client sees its stream open). Dropping it unregisters.
pub struct Connection {
    rt: Arc<Realtime>,
    peer: Peer,
    scope: Option<AgentScope>,
    id: ConnId,
    inlet: super::hub::Inlet,
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

/// The session a client message names, in its tenant (`home`, the
/// ticket's, by default); a 400-style error names the field at fault.
pub fn target(session_id: &str, tenant_id: Option<i64>, home: TenantId) -> Result<(TenantId, SessionId), Error> {
    let session = SessionId::parse(session_id).map_err(|e| Error::field("session_id", e))?;
    let tenant = match tenant_id {
        Some(t) => TenantId::new(t).map_err(|e| Error::field("tenant_id", e))?,
        None => home,
    };
    Ok((tenant, session))
}

impl<O: Sink<Outbound> + Unpin + Send> Actor<O> {
    async fn emit(&mut self, out: Outbound) -> Result<(), End> {
        match tokio::time::timeout(self.rt.settings.write_timeout, self.out.send(out)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::Gone),
            // The client does not read: it cannot be kept up to date.
            Err(_) => Err(End::Close(close::TOO_SLOW, "too slow")),
        }
    }

    async fn send(&mut self, frame: ServerMessage) -> Result<(), End> {
        self.emit(Outbound::Frame(Frame::new(&frame))).await
    }

    async fn fail(&mut self, err: Error, session: Option<SessionId>) -> Result<(), End> {
        self.send(error_frame(&err, session)).await
    }

    fn target(&self, session_id: &str, tenant_id: Option<i64>) -> Result<(TenantId, SessionId), Error> {
        target(session_id, tenant_id, self.peer.home)
    }

    async fn handle(&mut self, msg: Result<ClientMessage, String>) -> Result<(), End> {
        let msg = match msg {
            Ok(msg) => msg,
            Err(why) => return self.send(ServerMessage::error("invalid_message", why, None)).await,
        };
        match msg {
            ClientMessage::Subscribe { session_id, tenant_id, last_event_id } => {
                let (t, s) = match self.target(&session_id, tenant_id) {
                    Ok(target) => target,
                    Err(err) => return self.fail(err, SessionId::parse(&session_id).ok()).await,
                };
                let admitted = self.rt.chat.subscribe(&self.peer.identity, t, s, last_event_id.as_deref()).await;
                match admitted {
                    Ok(start) => self.start(t, s, start).await,
                    // A failed re-subscribe leaves the working subscription alone.
                    Err(err) => self.fail(err, Some(s)).await,
                }
            }
            ClientMessage::Unsubscribe { session_id, tenant_id } => match self.target(&session_id, tenant_id) {
                Ok((t, s)) if self.subs.contains_key(&(t, s)) => self.end_sub(t, s, "requested").await,
                Ok((_, s)) => self.send(not_subscribed(s)).await,
                Err(err) => self.fail(err, None).await,
            },
            ClientMessage::WatchInbox => {
                if self.scope.is_none() {
                    return self.fail(Error::Forbidden, None).await;
                }
                self.inbox = true;
                self.rt.hub.watch_inbox(self.id);
                self.send(ServerMessage::WatchingInbox).await
            }
            ClientMessage::Typing { session_id, tenant_id } => {
                let (t, s) = match self.target(&session_id, tenant_id) {
                    Ok(target) => target,
                    Err(err) => return self.fail(err, None).await,
                };
                let interval = self.rt.settings.typing_interval;
                let Some(sub) = self.subs.get_mut(&(t, s)) else {
                    return self.send(not_subscribed(s)).await;
                };
                // Rate limit: extra typing notices within the interval are dropped.
                if sub.last_typing.is_some_and(|at| at.elapsed() < interval) {
                    return Ok(());
                }
                sub.last_typing = Some(Instant::now());
                let caller = sub.caller;
                // Over the typing quota: dropped like the extras above (typing is ephemeral).
                if self.rt.chat.quotas().check(crate::service::Action::Typing, &caller).is_err() {
                    return Ok(());
                }
                match self.rt.chat.typing(&caller, s).await {
                    Ok(()) => Ok(()),
                    Err(err) => self.fail(err, Some(s)).await,
                }
            }
            ClientMessage::Ping => self.send(ServerMessage::Pong).await,
        }
    }

    /// Registers, then replays: anything committed after the admission read
    /// is either replayed here or announced by a notice and delivered after
    /// the replay, deduplicated by sequence.
    async fn start(&mut self, t: TenantId, s: SessionId, start: Subscription) -> Result<(), End> {
        self.rt.hub.subscribe(self.id, (t, s), start.after);
        self.ended.remove(&(t, s));
        let sub = Sub { last_seq: start.after, agent_id: start.agent_id, caller: start.caller, last_typing: None };
        self.subs.insert((t, s), sub);
        self.send(ServerMessage::Subscribed { session_id: s.to_string(), tenant_id: t.get() }).await?;
        self.catch_up(t, s).await?;
        // Subscribed to an already closed session with nothing left to replay.
        if start.closed && self.subs.contains_key(&(t, s)) {
            self.end_sub(t, s, "session_closed").await?;
        }
        Ok(())
    }

    async fn end_sub(&mut self, t: TenantId, s: SessionId, reason: &'static str) -> Result<(), End> {
        self.rt.hub.unsubscribe(self.id, (t, s));
        if let Some(sub) = self.subs.remove(&(t, s)) {
            self.ended.insert((t, s), sub.last_seq);
            self.send(ServerMessage::Unsubscribed { session_id: s.to_string(), tenant_id: t.get(), reason }).await?;
        }
        Ok(())
    }

    /// Sends every persisted event after the subscription's position, in order.
    async fn catch_up(&mut self, t: TenantId, s: SessionId) -> Result<(), End> {
        loop {
            let Some((after, caller)) = self.subs.get(&(t, s)).map(|sub| (sub.last_seq, sub.caller)) else {
                return Ok(());
            };
            // Shutting down: stop replaying, the stream is about to close.
            if *self.rt.shutdown.borrow() {
                return Ok(());
            }
            self.rt.chat.metrics().stream_reads.inc();
            let events = match self.rt.chat.replay(&caller, s, after, REPLAY_PAGE).await {
                Ok(events) => events,
                Err(err) => {
                    // Retried from the same position shortly, even if nothing else happens there.
                    let pending = self.pending.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(RETRY_READ).await;
                        pending.mark((t, s), i64::MAX);
                    });
                    return self.fail(err, Some(s)).await;
                }
            };
            let full = events.len() == REPLAY_PAGE as usize;
            for event in events {
                let seq = event.seq();
                let closed = match &event {
                    StoredEvent::Session(e) => {
                        if let Some(sub) = self.subs.get_mut(&(t, s)) {
                            sub.agent_id = e.session.agent_id;
                        }
                        e.session.status == SessionStatus::Closed
                    }
                    StoredEvent::Message(_) => false,
                };
                self.send(ServerMessage::stored(event)).await?;
                if let Some(sub) = self.subs.get_mut(&(t, s)) {
                    sub.last_seq = seq;
                }
                if closed {
                    return self.end_sub(t, s, "session_closed").await;
                }
            }
            if !full {
                return Ok(());
            }
        }
    }

    async fn on_notice(&mut self, notice: &Notice) -> Result<(), End> {
        match *notice {
            Notice::Typing { tenant: t, session: s, user } => {
                if user == self.peer.identity.user_id || !self.subs.contains_key(&(t, s)) {
                    return Ok(());
                }
                self.send(ServerMessage::Event {
                    event: EventName::Typing,
                    id: None,
                    session_id: Some(s.to_string()),
                    tenant_id: Some(t.get()),
                    data: EventData::Typing(TypingData { user_id: user.get() }),
                })
                .await
            }
            Notice::Read(ref mark) => {
                if !self.subs.contains_key(&(mark.tenant_id, mark.session_id)) {
                    return Ok(());
                }
                self.send(ServerMessage::Event {
                    event: EventName::Read,
                    id: None,
                    session_id: Some(mark.session_id.to_string()),
                    tenant_id: Some(mark.tenant_id.get()),
                    data: EventData::Read(ReadData::from(mark)),
                })
                .await
            }
            // Committed events, presence and resynchronisation go through
            // `Pending` or the inbox; nothing queued carries them.
            Notice::Committed { .. } | Notice::Presence { .. } | Notice::Resync => Ok(()),
        }
    }

    /// Reads and sends what committed in subscribed sessions since their
    /// positions, then presence changes that concern this connection.
    async fn on_backlog(&mut self, backlog: Backlog) -> Result<(), End> {
        let keys: Vec<(Key, i64)> = if backlog.resync {
            self.subs.keys().map(|k| (*k, i64::MAX)).collect()
        } else {
            let subs = &self.subs;
            backlog.dirty.into_iter().filter(|(key, q)| subs.get(key).is_some_and(|sub| *q > sub.last_seq)).collect()
        };
        for (key, through) in keys {
            if through == i64::MAX || !self.send_cached(key, through).await? {
                self.catch_up(key.0, key.1).await?;
            }
        }
        if let Some(since) = backlog.since {
            self.rt.chat.metrics().fanout_lag.observe(since.elapsed().as_secs_f64());
        }
        for (a, on) in backlog.presence {
            let concerned = self.inbox || self.subs.values().any(|sub| sub.agent_id == Some(a));
            if !concerned {
                continue;
            }
            let status = if on { "online" } else { "offline" };
            self.send(ServerMessage::Event {
                event: EventName::Presence,
                id: None,
                session_id: None,
                tenant_id: None,
                data: EventData::Presence(PresenceData { agent_id: a.get(), status }),
            })
            .await?;
        }
        Ok(())
    }

    /// A session change seen from the inbox (no subscription, no replay).
    async fn on_inbox(&mut self, key: Key, event: Arc<CachedEvent>) -> Result<(), End> {
        let repeated = self.ended.get(&key).is_some_and(|&seen| event.seq <= seen);
        let in_scope = self.scope.as_ref().is_some_and(|sc| sc.covers(key.0));
        if self.inbox && in_scope && !repeated && !self.subs.contains_key(&key) {
            self.emit(Outbound::Frame(event.frame.clone())).await?;
        }
        Ok(())
    }

    /// Sends a subscribed session's events from the node's cache, when it
    /// holds every one after the subscription's position up to `through`;
    /// `false` when storage must be read instead.
    async fn send_cached(&mut self, key: Key, through: i64) -> Result<bool, End> {
        let Some(after) = self.subs.get(&key).map(|sub| sub.last_seq) else {
            return Ok(true);
        };
        let events = match self.rt.hub.events_after(key, after) {
            Ok(events) if events.last().map_or(after, |e| e.seq) >= through => events,
            _ => return Ok(false),
        };
        for event in events {
            self.emit(Outbound::Frame(event.frame.clone())).await?;
            if let Some(sub) = self.subs.get_mut(&key) {
                sub.last_seq = event.seq;
                if let Some((agent, closed)) = event.change {
                    sub.agent_id = agent;
                    if closed {
                        return self.end_sub(key.0, key.1, "session_closed").await.map(|()| true);
                    }
                }
            }
        }
        Ok(true)
    }
}
