//! One stream connection: an actor that owns the outgoing side, so replay
//! and live delivery are one ordered sequence per session.
//!
//! The transport (WebSocket or SSE) only converts frames; the logic here is
//! generic over a `Stream` of client input and a `Sink` of output.

use super::Realtime;
use super::hub::{Backlog, ConnId, Pending};
use super::protocol::{ClientMessage, EventData, EventName, PresenceData, ReadData, ServerMessage, TypingData, close};
use crate::domain::access::{AgentScope, Caller, Identity};
use crate::domain::event::{Notice, StoredEvent};
use crate::domain::ids::{SessionId, TenantId, UserId};
use crate::domain::session::SessionStatus;
use crate::error::AppError;
use crate::http::AppState;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Replay reads this many events at a time.
const REPLAY_PAGE: u32 = 100;
/// A failed read of a session's events is retried after this long.
const RETRY_READ: Duration = Duration::from_secs(1);

/// What arrives from the client.
#[derive(Debug)]
pub enum Inbound {
    /// A parsed message, or why it could not be parsed.
    Message(Result<ClientMessage, String>),
    /// A sign of life without content (a pong).
    Alive,
}

/// What goes to the client.
#[derive(Debug)]
pub enum Outbound {
    /// A protocol message (boxed: frames are large, pings and closes small).
    Frame(Box<ServerMessage>),
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

struct Sub {
    last_seq: i64,
    agent_id: Option<UserId>,
    caller: Caller,
    last_typing: Option<Instant>,
}

/// Why the connection ended.
enum End {
    Close(u16, &'static str),
    Gone,
}

struct Actor<O> {
    state: AppState,
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
        self.rt.presence_changed(self.rt.hub.disconnect(self.id));
    }
}

/// What kind of stream this is.
pub enum Transport {
    /// A WebSocket: many sessions, client messages, pings answered.
    WebSocket,
    /// Server-Sent Events for one session: subscribes with this message and
    /// ends when that subscription ends.
    EventStream(ClientMessage),
}

/// Runs a connection until the client leaves, the server shuts down, the
/// token expires or the client falls too far behind.
pub async fn run<I, O>(state: AppState, peer: Peer, transport: Transport, mut inbound: I, out: O)
where
    I: Stream<Item = Inbound> + Unpin + Send,
    O: Sink<Outbound> + Unpin + Send,
{
    let rt = state.realtime().clone();
    let scope = state.policy().agent_scope(&peer.identity);
    let agent = scope.clone().map(|s| (peer.identity.user_id, s));
    let (id, mut inlet, change) = rt.hub.connect(agent);
    let _registration = Registration { rt: rt.clone(), id };
    rt.presence_changed(change);

    let mut shutdown = rt.shutdown.clone();
    let expires_in = Duration::from_secs(u64::try_from(peer.identity.expires_at - now_secs()).unwrap_or(0));
    let token_expiry = tokio::time::sleep(expires_in.min(Duration::from_secs(365 * 86_400)));
    tokio::pin!(token_expiry);
    let mut heartbeat = tokio::time::interval(rt.settings.ping_interval);
    heartbeat.tick().await;
    let mut last_alive = Instant::now();
    // An event stream has no way to answer pings; a dead one fails its writes instead.
    let (idle_check, single) = match &transport {
        Transport::WebSocket => (true, false),
        Transport::EventStream(_) => (false, true),
    };

    let mut actor = Actor {
        state,
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
        if let Transport::EventStream(subscribe) = transport {
            actor.handle(Ok(subscribe)).await?;
        }
        loop {
            if single && actor.subs.is_empty() {
                // Ended by its session closing, or it never started (a retryable failure).
                return Err(if actor.ended.is_empty() {
                    End::Close(close::INTERNAL, "subscription failed; reconnect")
                } else {
                    End::Close(close::NORMAL, "session closed")
                });
            }
            tokio::select! {
                biased;
                () = super::stopped(&mut shutdown) => return Err(End::Close(close::GOING_AWAY, "server shutting down")),
                () = &mut token_expiry => return Err(End::Close(close::TOKEN_EXPIRED, "token expired")),
                () = inlet.lagged.wait() => {
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
                notice = inlet.notices.recv() => match notice {
                    Some(notice) => actor.on_notice(notice).await?,
                    None => return Err(End::Gone),
                },
                _ = heartbeat.tick() => {
                    if idle_check && last_alive.elapsed() > rt.settings.idle_timeout {
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

fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
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
        self.emit(Outbound::Frame(Box::new(frame))).await
    }

    async fn fail(&mut self, err: AppError, session: Option<SessionId>) -> Result<(), End> {
        let session_id = session.map(|s| s.to_string());
        let frame = match err {
            AppError::Forbidden => ServerMessage::error("forbidden", "not allowed in this tenant", session_id),
            AppError::NotFound => ServerMessage::error("not_found", "no such session in this tenant", session_id),
            AppError::Validation(fields) => {
                let detail =
                    fields.iter().map(|(k, v)| format!("{k}: {}", v.join(", "))).collect::<Vec<_>>().join("; ");
                ServerMessage::error("invalid_message", detail, session_id)
            }
            AppError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "stream: storage unavailable");
                ServerMessage::error("storage_unavailable", "storage unavailable; retry", session_id)
            }
            other => {
                tracing::error!(error = ?other, "stream request failed");
                ServerMessage::error("internal_error", "internal error", session_id)
            }
        };
        self.send(frame).await
    }

    fn target(&self, session_id: &str, tenant_id: Option<i64>) -> Result<(TenantId, SessionId, Caller), AppError> {
        let session = SessionId::parse(session_id).map_err(|e| AppError::field("session_id", e))?;
        let tenant = match tenant_id {
            Some(t) => TenantId::new(t).map_err(|e| AppError::field("tenant_id", e))?,
            None => self.peer.home,
        };
        let caller = self.state.policy().admit(&self.peer.identity, tenant).map_err(|_| AppError::Forbidden)?;
        Ok((tenant, session, caller))
    }

    async fn handle(&mut self, msg: Result<ClientMessage, String>) -> Result<(), End> {
        let msg = match msg {
            Ok(msg) => msg,
            Err(why) => return self.send(ServerMessage::error("invalid_message", why, None)).await,
        };
        match msg {
            ClientMessage::Subscribe { session_id, tenant_id, last_event_id } => {
                let target = self.target(&session_id, tenant_id);
                match target {
                    Ok((t, s, caller)) => {
                        let existing = self.subs.contains_key(&(t, s));
                        if let Err(err) = self.subscribe(t, s, caller, last_event_id.as_deref()).await? {
                            // A failed re-subscribe leaves the working subscription alone.
                            if !existing {
                                self.rt.hub.unsubscribe(self.id, t, s);
                                self.subs.remove(&(t, s));
                            }
                            return self.fail(err, Some(s)).await;
                        }
                        Ok(())
                    }
                    Err(err) => self.fail(err, SessionId::parse(&session_id).ok()).await,
                }
            }
            ClientMessage::Unsubscribe { session_id, tenant_id } => match self.target(&session_id, tenant_id) {
                Ok((t, s, _)) => self.end_sub(t, s, "requested").await,
                Err(err) => self.fail(err, None).await,
            },
            ClientMessage::WatchInbox => {
                if self.scope.is_none() {
                    return self.fail(AppError::Forbidden, None).await;
                }
                self.inbox = true;
                self.rt.hub.watch_inbox(self.id);
                self.send(ServerMessage::WatchingInbox).await
            }
            ClientMessage::Typing { session_id, tenant_id } => {
                let (t, s, _) = match self.target(&session_id, tenant_id) {
                    Ok(target) => target,
                    Err(err) => return self.fail(err, None).await,
                };
                let interval = self.rt.settings.typing_interval;
                let Some(sub) = self.subs.get_mut(&(t, s)) else {
                    let frame =
                        ServerMessage::error("not_subscribed", "subscribe to the session first", Some(s.to_string()));
                    return self.send(frame).await;
                };
                // Rate limit: extra typing notices within the interval are dropped.
                if sub.last_typing.is_some_and(|at| at.elapsed() < interval) {
                    return Ok(());
                }
                sub.last_typing = Some(Instant::now());
                let caller = sub.caller;
                match self.state.chat().typing(&caller, s).await {
                    Ok(()) => Ok(()),
                    Err(err) => self.fail(err, Some(s)).await,
                }
            }
            ClientMessage::Ping => self.send(ServerMessage::Pong).await,
        }
    }

    /// Registers first, then replays: anything committed meanwhile is queued
    /// as a notice and delivered after the replay, deduplicated by sequence.
    async fn subscribe(
        &mut self,
        t: TenantId,
        s: SessionId,
        caller: Caller,
        last_event_id: Option<&str>,
    ) -> Result<Result<(), AppError>, End> {
        self.rt.hub.subscribe(self.id, t, s);
        let store = self.state.chat().store().clone();
        let session = match store.get_session(t, s).await {
            Ok(Some(session)) => session,
            Ok(None) => return Ok(Err(AppError::NotFound)),
            Err(err) => return Ok(Err(err.into())),
        };
        let last_seq = match last_event_id {
            None => session.last_seq,
            Some(raw) => {
                let Ok(event) = Uuid::parse_str(raw.trim()) else {
                    return Ok(Err(AppError::field("last_event_id", "must be a UUID")));
                };
                match store.event_seq(t, s, event).await {
                    Ok(Some(seq)) => seq,
                    Ok(None) => return Ok(Err(AppError::field("last_event_id", "is not an event of this session"))),
                    Err(err) => return Ok(Err(err.into())),
                }
            }
        };
        self.ended.remove(&(t, s));
        self.subs.insert((t, s), Sub { last_seq, agent_id: session.agent_id, caller, last_typing: None });
        self.send(ServerMessage::Subscribed { session_id: s.to_string(), tenant_id: t.get() }).await?;
        self.catch_up(t, s).await?;
        // Subscribed to an already closed session with nothing left to replay.
        if session.status == SessionStatus::Closed && self.subs.contains_key(&(t, s)) {
            self.end_sub(t, s, "session_closed").await?;
        }
        Ok(Ok(()))
    }

    async fn end_sub(&mut self, t: TenantId, s: SessionId, reason: &'static str) -> Result<(), End> {
        self.rt.hub.unsubscribe(self.id, t, s);
        if let Some(sub) = self.subs.remove(&(t, s)) {
            self.ended.insert((t, s), sub.last_seq);
            self.send(ServerMessage::Unsubscribed { session_id: s.to_string(), tenant_id: t.get(), reason }).await?;
        }
        Ok(())
    }

    /// Sends every persisted event after the subscription's position, in order.
    async fn catch_up(&mut self, t: TenantId, s: SessionId) -> Result<(), End> {
        let store = self.state.chat().store().clone();
        loop {
            let Some(after) = self.subs.get(&(t, s)).map(|sub| sub.last_seq) else {
                return Ok(());
            };
            // Shutting down: stop replaying, the stream is about to close.
            if *self.rt.shutdown.borrow() {
                return Ok(());
            }
            let events = match store.events_after(t, s, after, REPLAY_PAGE).await {
                Ok(events) => events,
                Err(err) => {
                    // Retried from the same position shortly, even if nothing else happens there.
                    let pending = self.pending.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(RETRY_READ).await;
                        pending.mark((t, s), i64::MAX);
                    });
                    return self.fail(err.into(), Some(s)).await;
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

    async fn on_notice(&mut self, notice: Notice) -> Result<(), End> {
        match notice {
            Notice::Committed { t, s, q, c } => {
                let repeated = self.ended.get(&(t, s)).is_some_and(|&seen| q <= seen);
                let in_scope = self.scope.as_ref().is_some_and(|sc| sc.covers(t));
                if c && self.inbox && in_scope && !repeated && !self.subs.contains_key(&(t, s)) {
                    self.inbox_event(t, s, q).await?;
                }
                Ok(())
            }
            Notice::Typing { t, s, u } => {
                if u == self.peer.identity.user_id || !self.subs.contains_key(&(t, s)) {
                    return Ok(());
                }
                self.send(ServerMessage::Event {
                    event: EventName::Typing,
                    id: None,
                    session_id: Some(s.to_string()),
                    tenant_id: Some(t.get()),
                    data: EventData::Typing(TypingData { user_id: u.get() }),
                })
                .await
            }
            Notice::Read(mark) => {
                if !self.subs.contains_key(&(mark.tenant_id, mark.session_id)) {
                    return Ok(());
                }
                self.send(ServerMessage::Event {
                    event: EventName::Read,
                    id: None,
                    session_id: Some(mark.session_id.to_string()),
                    tenant_id: Some(mark.tenant_id.get()),
                    data: EventData::Read(ReadData::from(&mark)),
                })
                .await
            }
            // Presence and resynchronisation go through `Pending`; nothing queued carries them.
            Notice::Presence { .. } | Notice::Resync => Ok(()),
        }
    }

    /// Reads and sends what committed in subscribed sessions since their
    /// positions, then presence changes that concern this connection.
    async fn on_backlog(&mut self, backlog: Backlog) -> Result<(), End> {
        let keys: Vec<(TenantId, SessionId)> = if backlog.resync {
            self.subs.keys().copied().collect()
        } else {
            let subs = &self.subs;
            backlog
                .dirty
                .into_iter()
                .filter(|(key, q)| subs.get(key).is_some_and(|sub| *q > sub.last_seq))
                .map(|(k, _)| k)
                .collect()
        };
        for (t, s) in keys {
            self.catch_up(t, s).await?;
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
    async fn inbox_event(&mut self, t: TenantId, s: SessionId, q: i64) -> Result<(), End> {
        let store = self.state.chat().store().clone();
        match store.events_after(t, s, q - 1, 1).await {
            Ok(events) => {
                for event in events.into_iter().filter(|e| e.seq() == q && matches!(e, StoredEvent::Session(_))) {
                    self.send(ServerMessage::stored(event)).await?;
                }
                Ok(())
            }
            Err(err) => self.fail(err.into(), Some(s)).await,
        }
    }
}
