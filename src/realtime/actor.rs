//! A stream's actor: what a client asks (subscribe, unsubscribe, watch the
//! inbox, typing, ping), replay from a position, and live delivery of
//! events, notices and inbox changes, in order per session; refusals are
//! error frames from the service's one error table.

use super::Realtime;
use super::frame::{Frame, Outbound, Peer};
use super::hub::{Backlog, CachedEvent, ConnId, Key, Pending};
use crate::domain::access::AgentScope;
use crate::domain::event::{Notice, StoredEvent};
use crate::domain::ids::{SessionId, TenantId, UserId};
use crate::domain::session::SessionStatus;
use crate::service::{Error, Subscription};
use crate::wire::stream::{
    ClientMessage, EventData, EventName, PresenceData, ReadData, ServerMessage, TypingData, close,
};
use futures_util::{Sink, SinkExt};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Replay reads this many events at a time.
const REPLAY_PAGE: u32 = 100;
/// A failed read of a session's events is retried after this long.
const RETRY_READ: Duration = Duration::from_secs(1);

pub(super) struct Sub {
    last_seq: i64,
    agent_id: Option<UserId>,
    caller: crate::domain::access::Caller,
    last_typing: Option<Instant>,
}

/// Why the connection ended.
pub(super) enum End {
    Close(u16, &'static str),
    Gone,
}

pub(super) struct Actor<O> {
    pub(super) rt: Arc<Realtime>,
    pub(super) peer: Peer,
    pub(super) scope: Option<AgentScope>,
    pub(super) id: ConnId,
    pub(super) out: O,
    pub(super) subs: HashMap<(TenantId, SessionId), Sub>,
    /// Where ended subscriptions stopped, so the inbox path does not repeat them.
    pub(super) ended: HashMap<(TenantId, SessionId), i64>,
    pub(super) inbox: bool,
    /// Where to re-mark a session whose read failed, so it is retried.
    pub(super) pending: Arc<Pending>,
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
    pub(super) async fn emit(&mut self, out: Outbound) -> Result<(), End> {
        match tokio::time::timeout(self.rt.settings.write_timeout, self.out.send(out)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::Gone),
            // The client does not read: it cannot be kept up to date.
            Err(_) => Err(End::Close(close::TOO_SLOW, "too slow")),
        }
    }

    pub(super) async fn send(&mut self, frame: ServerMessage) -> Result<(), End> {
        self.emit(Outbound::Frame(Frame::new(&frame))).await
    }

    async fn fail(&mut self, err: Error, session: Option<SessionId>) -> Result<(), End> {
        self.send(error_frame(&err, session)).await
    }

    fn target(&self, session_id: &str, tenant_id: Option<i64>) -> Result<(TenantId, SessionId), Error> {
        target(session_id, tenant_id, self.peer.home)
    }

    pub(super) async fn handle(&mut self, msg: Result<ClientMessage, String>) -> Result<(), End> {
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
    pub(super) async fn start(&mut self, t: TenantId, s: SessionId, start: Subscription) -> Result<(), End> {
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

    pub(super) async fn on_notice(&mut self, notice: &Notice) -> Result<(), End> {
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
    pub(super) async fn on_backlog(&mut self, backlog: Backlog) -> Result<(), End> {
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
    pub(super) async fn on_inbox(&mut self, key: Key, event: Arc<CachedEvent>) -> Result<(), End> {
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
