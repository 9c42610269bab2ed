//! This node's registry of live streams: which connection watches what, and
//! fan-out of notices to them through bounded per-connection queues.

use crate::domain::access::AgentScope;
use crate::domain::event::Notice;
use crate::domain::ids::{SessionId, TenantId, UserId};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{Notify, mpsc};

/// A connection's id on this node.
pub type ConnId = u64;

/// What a connection receives from the hub.
pub struct Inlet {
    /// Ephemeral and inbox notices for this connection, bounded.
    pub notices: mpsc::Receiver<Notice>,
    /// Set (and notified) when the queue overflowed: the consumer is too slow.
    pub lagged: Arc<Lagged>,
    /// Subscribed sessions with something new, coalesced.
    pub pending: Arc<Pending>,
}

/// Subscribed sessions with committed events not yet read, one entry per
/// session however many events: a busy session or a long replay can never
/// overflow anything.
#[derive(Default)]
pub struct Pending {
    dirty: Mutex<HashMap<(TenantId, SessionId), i64>>,
    presence: Mutex<HashMap<UserId, bool>>,
    resync: AtomicBool,
    wake: Notify,
}

/// What a connection has to catch up on.
#[derive(Debug, Default)]
pub struct Backlog {
    /// Subscribed sessions with new events, and the newest sequence announced.
    pub dirty: HashMap<(TenantId, SessionId), i64>,
    /// Agents whose presence changed, with the latest state.
    pub presence: HashMap<UserId, bool>,
    /// Every subscription must be re-read.
    pub resync: bool,
}

impl Pending {
    /// Marks a session as having news up to `seq` (also used to retry a failed read).
    pub fn mark(&self, key: (TenantId, SessionId), seq: i64) {
        let mut dirty = self.dirty.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = dirty.entry(key).or_insert(seq);
        *entry = (*entry).max(seq);
        drop(dirty);
        self.wake.notify_one();
    }

    fn resync(&self) {
        self.resync.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    fn presence(&self, agent: UserId, online: bool) {
        self.presence.lock().unwrap_or_else(PoisonError::into_inner).insert(agent, online);
        self.wake.notify_one();
    }

    /// Resolves when something was marked since the last [`Pending::take`].
    pub async fn changed(&self) {
        self.wake.notified().await;
    }

    /// Everything marked since the last call.
    pub fn take(&self) -> Backlog {
        Backlog {
            dirty: std::mem::take(&mut *self.dirty.lock().unwrap_or_else(PoisonError::into_inner)),
            presence: std::mem::take(&mut *self.presence.lock().unwrap_or_else(PoisonError::into_inner)),
            resync: self.resync.swap(false, Ordering::SeqCst),
        }
    }
}

/// The overflow flag of one connection.
#[derive(Default)]
pub struct Lagged {
    flag: AtomicBool,
    notify: Notify,
}

impl Lagged {
    fn raise(&self) {
        if !self.flag.swap(true, Ordering::SeqCst) {
            self.notify.notify_one();
        }
    }

    /// Resolves once the connection has fallen behind.
    pub async fn wait(&self) {
        loop {
            if self.flag.load(Ordering::SeqCst) {
                return;
            }
            self.notify.notified().await;
        }
    }
}

struct Conn {
    tx: mpsc::Sender<Notice>,
    lagged: Arc<Lagged>,
    pending: Arc<Pending>,
    /// Agents' scope, for presence bookkeeping.
    agent: Option<(UserId, AgentScope)>,
}

#[derive(Default)]
struct Registry {
    conns: HashMap<ConnId, Conn>,
    sessions: HashMap<(TenantId, SessionId), HashSet<ConnId>>,
    inbox: HashSet<ConnId>,
    /// Live streams per agent on this node (presence is held while > 0).
    agents: HashMap<UserId, (usize, AgentScope)>,
}

/// The node's stream registry.
pub struct Hub {
    registry: Mutex<Registry>,
    next: AtomicU64,
    queue: usize,
}

/// What changed in agent stream counts, for presence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentStreams {
    /// The agent's first stream on this node opened.
    First(UserId, AgentScope),
    /// The agent's last stream on this node closed.
    Last(UserId),
    /// Nothing to do.
    Unchanged,
}

impl Hub {
    /// A hub whose connections may queue up to `queue` notices.
    pub fn new(queue: usize) -> Self {
        Self { registry: Mutex::new(Registry::default()), next: AtomicU64::new(1), queue: queue.max(1) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a connection.
    pub fn connect(&self, agent: Option<(UserId, AgentScope)>) -> (ConnId, Inlet, AgentStreams) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.queue);
        let lagged = Arc::new(Lagged::default());
        let pending = Arc::new(Pending::default());
        let mut reg = self.lock();
        let mut change = AgentStreams::Unchanged;
        if let Some((user, scope)) = &agent {
            let entry = reg.agents.entry(*user).or_insert((0, scope.clone()));
            entry.0 += 1;
            if entry.0 == 1 {
                change = AgentStreams::First(*user, scope.clone());
            }
        }
        reg.conns.insert(id, Conn { tx, lagged: lagged.clone(), pending: pending.clone(), agent });
        (id, Inlet { notices: rx, lagged, pending }, change)
    }

    /// Forgets a connection and its subscriptions.
    pub fn disconnect(&self, id: ConnId) -> AgentStreams {
        let mut reg = self.lock();
        let Some(conn) = reg.conns.remove(&id) else {
            return AgentStreams::Unchanged;
        };
        reg.sessions.retain(|_, conns| {
            conns.remove(&id);
            !conns.is_empty()
        });
        reg.inbox.remove(&id);
        if let Some((user, _)) = conn.agent {
            if let Some(entry) = reg.agents.get_mut(&user) {
                entry.0 = entry.0.saturating_sub(1);
                if entry.0 == 0 {
                    reg.agents.remove(&user);
                    return AgentStreams::Last(user);
                }
            }
        }
        AgentStreams::Unchanged
    }

    /// Starts routing a session's notices to a connection.
    pub fn subscribe(&self, id: ConnId, tenant: TenantId, session: SessionId) {
        self.lock().sessions.entry((tenant, session)).or_default().insert(id);
    }

    /// Stops routing a session's notices to a connection.
    pub fn unsubscribe(&self, id: ConnId, tenant: TenantId, session: SessionId) {
        let mut reg = self.lock();
        if let Some(conns) = reg.sessions.get_mut(&(tenant, session)) {
            conns.remove(&id);
            if conns.is_empty() {
                reg.sessions.remove(&(tenant, session));
            }
        }
    }

    /// Routes inbox notices (session changes, presence) to a connection.
    pub fn watch_inbox(&self, id: ConnId) {
        self.lock().inbox.insert(id);
    }

    /// Whether the agent still has a live stream on this node.
    pub fn has_agent(&self, agent: UserId) -> bool {
        self.lock().agents.contains_key(&agent)
    }

    /// Agents with live streams on this node, for the presence heartbeat.
    pub fn live_agents(&self) -> Vec<(UserId, AgentScope)> {
        self.lock().agents.iter().map(|(u, (_, s))| (*u, s.clone())).collect()
    }

    /// Number of open connections.
    pub fn connections(&self) -> usize {
        self.lock().conns.len()
    }

    /// Delivers a notice to every connection that should see it. Never
    /// blocks: a full queue marks that connection as lagging instead.
    pub fn dispatch(&self, notice: &Notice) {
        let reg = self.lock();
        let deliver = |id: &ConnId| {
            if let Some(conn) = reg.conns.get(id) {
                if conn.tx.try_send(notice.clone()).is_err() {
                    conn.lagged.raise();
                }
            }
        };
        match notice {
            Notice::Committed { tenant: t, session: s, seq: q, session_change: c } => {
                let subscribers = reg.sessions.get(&(*t, *s));
                for id in subscribers.into_iter().flatten() {
                    if let Some(conn) = reg.conns.get(id) {
                        conn.pending.mark((*t, *s), *q);
                    }
                }
                // Inbox watchers not subscribed to the session get session changes as notices.
                if *c {
                    let subscribed = |id: &ConnId| subscribers.is_some_and(|set| set.contains(id));
                    reg.inbox.iter().filter(|id| !subscribed(id)).for_each(deliver);
                }
            }
            Notice::Typing { tenant: t, session: s, .. } => {
                reg.sessions.get(&(*t, *s)).into_iter().flatten().for_each(deliver)
            }
            Notice::Read(mark) => {
                reg.sessions.get(&(mark.tenant_id, mark.session_id)).into_iter().flatten().for_each(deliver);
            }
            // Latest state per agent, coalesced: a burst of logins never fills a queue.
            Notice::Presence { agent, online } => {
                reg.conns.values().for_each(|conn| conn.pending.presence(*agent, *online));
            }
            Notice::Resync => reg.conns.values().for_each(|conn| conn.pending.resync()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (TenantId, SessionId) {
        (TenantId::new(1).unwrap(), SessionId::generate())
    }

    #[tokio::test]
    async fn committed_events_reach_only_subscribers_coalesced_per_session() {
        let hub = Hub::new(8);
        let (t, s) = ids();
        let (a, a_in, _) = hub.connect(None);
        let (_b, b_in, _) = hub.connect(None);
        hub.subscribe(a, t, s);
        for q in 1..=500 {
            hub.dispatch(&Notice::Committed { tenant: t, session: s, seq: q, session_change: false });
        }
        tokio::time::timeout(std::time::Duration::from_secs(1), a_in.pending.changed()).await.unwrap();
        let backlog = a_in.pending.take();
        assert_eq!(backlog.dirty.get(&(t, s)), Some(&500), "one entry, the newest sequence");
        assert!(!backlog.resync && !a_in.lagged.flag.load(Ordering::SeqCst));
        assert!(b_in.pending.take().dirty.is_empty());
    }

    #[tokio::test]
    async fn a_full_queue_marks_only_that_connection_as_lagging() {
        let hub = Hub::new(2);
        let (t, s) = ids();
        let u = UserId::new(3).unwrap();
        let (slow, slow_in, _) = hub.connect(None);
        let (fast, mut fast_in, _) = hub.connect(None);
        hub.subscribe(slow, t, s);
        hub.subscribe(fast, t, s);
        for _ in 1..=3 {
            let typing = Notice::Typing { tenant: t, session: s, user: u };
            hub.dispatch(&typing);
            // The fast one keeps up.
            assert_eq!(fast_in.notices.try_recv().unwrap(), typing);
        }
        tokio::time::timeout(std::time::Duration::from_secs(1), slow_in.lagged.wait()).await.unwrap();
        assert!(!fast_in.lagged.flag.load(Ordering::SeqCst));
    }

    #[test]
    fn agent_stream_counts_drive_presence() {
        let hub = Hub::new(2);
        let agent = UserId::new(7).unwrap();
        let (a, _, first) = hub.connect(Some((agent, AgentScope::Platform)));
        assert_eq!(first, AgentStreams::First(agent, AgentScope::Platform));
        let (b, _, second) = hub.connect(Some((agent, AgentScope::Platform)));
        assert_eq!(second, AgentStreams::Unchanged);
        assert_eq!(hub.disconnect(a), AgentStreams::Unchanged);
        assert_eq!(hub.disconnect(b), AgentStreams::Last(agent));
        assert!(hub.live_agents().is_empty());
    }
}
