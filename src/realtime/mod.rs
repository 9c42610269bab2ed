//! The real-time engine (docs/API.md §13, `docs/REALTIME.md`): this
//! node's registry of streams ([`hub`]) and what each connection receives
//! from it ([`inlet`]), fan-out of notices to them, the admitted connection
//! ([`conn`]) and its actor ([`actor`]), the frames it sends ([`frame`]) and
//! presence upkeep. It depends on the service layer, the wire types and its
//! own settings; it knows nothing of HTTP. The WebSocket and SSE endpoints that feed it live in `http::streams`.

pub mod actor;
pub mod conn;
pub mod frame;
pub mod hub;
pub mod inlet;
mod presence;

pub use conn::Connection;
pub use frame::{Frame, Inbound, Outbound, Peer, Transport};

use crate::domain::event::{Notice, StoredEvent};
use crate::domain::session::SessionStatus;
use crate::service::Livechat;
use crate::wire::stream::ServerMessage;
use hub::{AgentStreams, Hub};
use hub::{CachedEvent, Key};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

/// A change of agent streams and who waits for it to be recorded.
type PresenceChange = (AgentStreams, oneshot::Sender<()>);

/// Tunables of the streams.
#[derive(Debug, Clone, Copy)]
pub struct RealtimeSettings {
    /// How often the server pings an idle stream.
    pub ping_interval: Duration,
    /// A stream silent (no frame, no pong) this long is closed.
    pub idle_timeout: Duration,
    /// A write the client does not accept within this is abandoned and the stream closed.
    pub write_timeout: Duration,
    /// Notices a connection may have queued before it counts as too slow.
    pub queue: usize,
    /// Typing notices per session and connection are spaced at least this far apart.
    pub typing_interval: Duration,
}

impl Default for RealtimeSettings {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(45),
            write_timeout: Duration::from_secs(10),
            queue: 256,
            typing_interval: Duration::from_secs(1),
        }
    }
}

/// The node's real-time machinery, shared by every stream.
pub struct Realtime {
    chat: Livechat,
    hub: Hub,
    settings: RealtimeSettings,
    /// This node's presence source name.
    node: String,
    /// Becomes `true` when the server shuts down: streams close with 1001.
    shutdown: watch::Receiver<bool>,
    /// Agents' first / last streams on this node, applied in order by the
    /// presence task, which answers on the oneshot once a change is recorded.
    presence_tx: mpsc::UnboundedSender<PresenceChange>,
    presence_rx: Mutex<Option<mpsc::UnboundedReceiver<PresenceChange>>>,
}

impl Realtime {
    /// The engine for this node, and the sender that shuts its streams down.
    pub fn new(chat: Livechat, settings: RealtimeSettings) -> (Arc<Self>, watch::Sender<bool>) {
        let (tx, rx) = watch::channel(false);
        let (presence_tx, presence_rx) = mpsc::unbounded_channel();
        let rt = Self {
            chat,
            hub: Hub::new(settings.queue),
            settings,
            node: format!("node:{}", uuid::Uuid::now_v7().simple()),
            shutdown: rx,
            presence_tx,
            presence_rx: Mutex::new(Some(presence_rx)),
        };
        (Arc::new(rt), tx)
    }

    /// The tunables.
    pub fn settings(&self) -> &RealtimeSettings {
        &self.settings
    }

    /// Number of open streams on this node.
    pub fn connections(&self) -> usize {
        self.hub.connections()
    }

    /// Number of session subscriptions of those streams.
    pub fn subscriptions(&self) -> usize {
        self.hub.subscriptions()
    }

    /// Resolves once the server is shutting down.
    pub async fn stopping(&self) {
        stopped(&mut self.shutdown.clone()).await;
    }

    /// Queues a change of this node's agent streams for the presence task;
    /// the receiver resolves once it is recorded (or the task has ended).
    fn presence_changed(&self, change: AgentStreams) -> oneshot::Receiver<()> {
        let (done, applied) = oneshot::channel();
        if change != AgentStreams::Unchanged {
            // Only fails once the presence task has ended (shutdown), when it no longer matters.
            let _ = self.presence_tx.send((change, done));
        }
        applied
    }
}

/// Resolves once the shutdown flag is set. (A helper so the guard that
/// `wait_for` returns is dropped before any other await.)
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Events read per fan-out read.
const LOAD_PAGE: u32 = 200;

/// A persisted event, serialized once for every stream.
fn cached(event: StoredEvent) -> Arc<CachedEvent> {
    let seq = event.seq();
    let change = match &event {
        StoredEvent::Session(e) => Some((e.session.agent_id, e.session.status == SessionStatus::Closed)),
        StoredEvent::Message(_) => None,
    };
    Arc::new(CachedEvent { seq, frame: Frame::new(&ServerMessage::stored(event)), change })
}

/// Reads a watched session's new events into the node's cache until it has
/// every one announced. A failed read sends subscribers to storage themselves
/// (each retries on its own).
async fn load(rt: Arc<Realtime>, key: Key, mut from: i64) {
    loop {
        rt.chat.metrics().fanout_reads.inc();
        match rt.chat.session_events(key.0, key.1, from, LOAD_PAGE).await {
            Ok(events) => match rt.hub.store(key, events.into_iter().map(cached).collect()) {
                Some(next) => from = next,
                None => return,
            },
            Err(err) => {
                tracing::warn!(error = %err, "fan-out read failed; subscribers read storage themselves");
                rt.hub.load_failed(key);
                rt.hub.store(key, Vec::new());
                return;
            }
        }
    }
}

/// Sends a session change to the node's inbox watchers (one read for all).
async fn to_inbox(rt: Arc<Realtime>, key: Key, seq: i64) {
    match rt.chat.session_change(key.0, key.1, seq).await {
        Ok(Some(event)) => rt.hub.to_inbox(key, &cached(event)),
        Ok(None) => {}
        Err(err) => tracing::warn!(error = %err, "inbox change not delivered"),
    }
}

/// Starts the node's background work: fan-out of notices to local streams,
/// and presence upkeep. Both stop at shutdown.
pub fn start(rt: &Arc<Realtime>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = vec![tokio::spawn(fan_out(rt.clone(), rt.chat.notices()))];
    let changes = rt.presence_rx.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let Some(changes) = changes {
        tasks.push(tokio::spawn(presence::maintain(rt.clone(), changes)));
    }
    tasks
}

async fn fan_out(rt: Arc<Realtime>, mut notices: broadcast::Receiver<Notice>) {
    let mut shutdown = rt.shutdown.clone();
    loop {
        let notice = tokio::select! {
            n = notices.recv() => n,
            () = stopped(&mut shutdown) => return,
        };
        match notice {
            Ok(Notice::Committed { tenant, session, seq, session_change }) => {
                let key = (tenant, session);
                // Read once for every local subscriber, only where someone watches.
                if let Some(from) = rt.hub.announce(key, seq) {
                    tokio::spawn(load(rt.clone(), key, from));
                }
                if session_change && rt.hub.inbox_watched(tenant) {
                    tokio::spawn(to_inbox(rt.clone(), key, seq));
                }
            }
            Ok(notice) => rt.hub.dispatch(&notice),
            // This node fell behind its own notices: every stream re-reads.
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "notice fan-out lagged; resynchronising streams");
                rt.hub.dispatch(&Notice::Resync);
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}
