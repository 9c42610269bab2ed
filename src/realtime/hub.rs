//! This node's registry of live streams: which connection watches what, the
//! recent events of every watched session (read once per node, serialized
//! once, shared by every subscriber), and delivery to connections through
//! bounded per-connection queues.
//!
//! Sessions live in shards, each behind its own lock, so delivering an event
//! touches one shard; a connection remembers its own subscriptions, so
//! leaving touches only those.

use super::inlet::lock;
pub use super::inlet::{Backlog, CachedEvent, ConnId, Delivery, Inlet, Key, Lagged, Pending};
use crate::domain::access::AgentScope;
use crate::domain::event::{Notice, ReadMark};
use crate::domain::ids::{TenantId, UserId};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::mpsc;

/// Session shards: enough that concurrent deliveries rarely meet.
const SHARDS: usize = 32;
/// Recent events kept per watched session; a subscriber further behind reads storage.
const RECENT: usize = 64;

struct Conn {
    tx: mpsc::Sender<Delivery>,
    lagged: Arc<Lagged>,
    pending: Arc<Pending>,
    /// Agents' scope, for presence bookkeeping and inbox routing.
    agent: Option<(UserId, AgentScope)>,
    /// Its subscriptions, so leaving touches only their shards.
    sessions: HashSet<Key>,
    inbox: bool,
}

impl Conn {
    fn deliver(&self, delivery: Delivery) {
        if self.tx.try_send(delivery).is_err() {
            self.lagged.raise();
        }
    }
}

/// A watched session on this node.
struct Room {
    /// Its subscribers (a connection's pending set is marked directly).
    subscribers: HashMap<ConnId, Arc<Pending>>,
    /// Its recent events, in order.
    recent: VecDeque<Arc<CachedEvent>>,
    /// Events up to this sequence are known (cached or older than the cache).
    through: i64,
    /// The newest sequence announced.
    wanted: i64,
    /// A read of its events is under way.
    loading: bool,
}

/// Why a subscriber cannot be served from the cache.
#[derive(Debug, PartialEq, Eq)]
pub struct Gap;

/// The node's stream registry.
pub struct Hub {
    conns: Mutex<HashMap<ConnId, Conn>>,
    shards: Box<[Mutex<HashMap<Key, Room>>]>,
    /// Live streams per agent on this node (presence is held while > 0).
    agents: Mutex<HashMap<UserId, (usize, AgentScope)>>,
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
        Self {
            conns: Mutex::default(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            agents: Mutex::default(),
            next: AtomicU64::new(1),
            queue: queue.max(1),
        }
    }

    fn shard(&self, key: &Key) -> MutexGuard<'_, HashMap<Key, Room>> {
        use std::hash::{Hash, Hasher};
        // A fixed hasher: a session must land in the same shard every time.
        let mut h = std::hash::DefaultHasher::new();
        key.hash(&mut h);
        lock(&self.shards[(h.finish() as usize) % SHARDS])
    }

    /// Registers a connection.
    pub fn connect(&self, agent: Option<(UserId, AgentScope)>) -> (ConnId, Inlet, AgentStreams) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.queue);
        let lagged = Arc::new(Lagged::default());
        let pending = Arc::new(Pending::default());
        let mut change = AgentStreams::Unchanged;
        if let Some((user, scope)) = &agent {
            let mut agents = lock(&self.agents);
            let entry = agents.entry(*user).or_insert((0, scope.clone()));
            entry.0 += 1;
            if entry.0 == 1 {
                change = AgentStreams::First(*user, scope.clone());
            }
        }
        let conn = Conn {
            tx,
            lagged: lagged.clone(),
            pending: pending.clone(),
            agent,
            sessions: HashSet::new(),
            inbox: false,
        };
        lock(&self.conns).insert(id, conn);
        (id, Inlet { notices: rx, lagged, pending }, change)
    }

    /// Forgets a connection and its subscriptions.
    pub fn disconnect(&self, id: ConnId) -> AgentStreams {
        let Some(conn) = lock(&self.conns).remove(&id) else {
            return AgentStreams::Unchanged;
        };
        for key in &conn.sessions {
            self.leave_room(id, key);
        }
        if let Some((user, _)) = conn.agent {
            let mut agents = lock(&self.agents);
            if let Some(entry) = agents.get_mut(&user) {
                entry.0 = entry.0.saturating_sub(1);
                if entry.0 == 0 {
                    agents.remove(&user);
                    return AgentStreams::Last(user);
                }
            }
        }
        AgentStreams::Unchanged
    }

    fn leave_room(&self, id: ConnId, key: &Key) {
        let mut shard = self.shard(key);
        if let Some(room) = shard.get_mut(key) {
            room.subscribers.remove(&id);
            if room.subscribers.is_empty() {
                shard.remove(key);
            }
        }
    }

    /// Starts routing a session's events to a connection, which has read
    /// them up to `seen` (where an empty cache starts).
    pub fn subscribe(&self, id: ConnId, key: Key, seen: i64) {
        let Some(pending) = lock(&self.conns).get_mut(&id).map(|c| {
            c.sessions.insert(key);
            c.pending.clone()
        }) else {
            return;
        };
        let mut shard = self.shard(&key);
        let room = shard.entry(key).or_insert_with(|| Room {
            subscribers: HashMap::new(),
            recent: VecDeque::new(),
            through: seen,
            wanted: seen,
            loading: false,
        });
        room.subscribers.insert(id, pending);
    }

    /// Stops routing a session's events to a connection.
    pub fn unsubscribe(&self, id: ConnId, key: Key) {
        if let Some(conn) = lock(&self.conns).get_mut(&id) {
            conn.sessions.remove(&key);
        }
        self.leave_room(id, &key);
    }

    /// Routes inbox notices (session changes, presence) to a connection.
    pub fn watch_inbox(&self, id: ConnId) {
        if let Some(conn) = lock(&self.conns).get_mut(&id) {
            conn.inbox = true;
        }
    }

    /// Whether the agent still has a live stream on this node.
    pub fn has_agent(&self, agent: UserId) -> bool {
        lock(&self.agents).contains_key(&agent)
    }

    /// Agents with live streams on this node, for the presence heartbeat.
    pub fn live_agents(&self) -> Vec<(UserId, AgentScope)> {
        lock(&self.agents).iter().map(|(u, (_, s))| (*u, s.clone())).collect()
    }

    /// Number of open connections.
    pub fn connections(&self) -> usize {
        lock(&self.conns).len()
    }

    /// Number of session subscriptions over all connections.
    pub fn subscriptions(&self) -> usize {
        self.shards.iter().map(|s| lock(s).values().map(|r| r.subscribers.len()).sum::<usize>()).sum()
    }

    /// A committed event at `seq`: whether this node must read the
    /// session's events now (it is watched here and no read is under way),
    /// and from which sequence.
    pub fn announce(&self, key: Key, seq: i64) -> Option<i64> {
        let mut shard = self.shard(&key);
        let room = shard.get_mut(&key)?;
        room.wanted = room.wanted.max(seq);
        if room.loading || room.wanted <= room.through {
            return None;
        }
        room.loading = true;
        Some(room.through)
    }

    /// Stores events read for a watched session and marks its subscribers.
    /// Returns where to read next if more were announced meanwhile.
    pub fn store(&self, key: Key, events: Vec<Arc<CachedEvent>>) -> Option<i64> {
        let mut shard = self.shard(&key);
        let room = shard.get_mut(&key)?;
        let before = room.through;
        for event in events {
            if event.seq > room.through {
                room.through = event.seq;
                room.recent.push_back(event);
                if room.recent.len() > RECENT {
                    room.recent.pop_front();
                }
            }
        }
        if room.through > before {
            for pending in room.subscribers.values() {
                pending.mark(key, room.through);
            }
        }
        // More announced than read: read on, unless this read found nothing
        // new (notices never run ahead of committed rows; no busy loop).
        if room.wanted > room.through && room.through > before {
            Some(room.through)
        } else {
            room.wanted = room.wanted.min(room.through).max(before);
            room.loading = false;
            None
        }
    }

    /// A read failed: release the room so the next announcement (or a retry) reads again.
    pub fn load_failed(&self, key: Key) {
        if let Some(room) = self.shard(&key).get_mut(&key) {
            room.loading = false;
        }
    }

    /// The cached events of a session after `after`, if the cache reaches back that far.
    pub fn events_after(&self, key: Key, after: i64) -> Result<Vec<Arc<CachedEvent>>, Gap> {
        let shard = self.shard(&key);
        let room = shard.get(&key).ok_or(Gap)?;
        if after >= room.through {
            return Ok(Vec::new());
        }
        match room.recent.front() {
            Some(first) if first.seq <= after + 1 => {
                Ok(room.recent.iter().filter(|e| e.seq > after).cloned().collect())
            }
            _ => Err(Gap),
        }
    }

    /// Whether any connection watches the inbox of `tenant`.
    pub fn inbox_watched(&self, tenant: TenantId) -> bool {
        lock(&self.conns).values().any(|c| c.inbox && c.agent.as_ref().is_some_and(|(_, s)| s.covers(tenant)))
    }

    /// Sends a session change to inbox watchers of its tenant.
    pub fn to_inbox(&self, key: Key, event: &Arc<CachedEvent>) {
        for conn in lock(&self.conns).values() {
            if conn.inbox && conn.agent.as_ref().is_some_and(|(_, s)| s.covers(key.0)) {
                conn.deliver(Delivery::Inbox(Arc::new((key, event.clone()))));
            }
        }
    }

    /// Delivers an ephemeral notice to every connection that should see it.
    /// Never blocks: a full queue marks that connection as lagging instead.
    pub fn dispatch(&self, notice: &Notice) {
        let subscribers = |key: Key| -> Vec<ConnId> {
            self.shard(&key).get(&key).map(|r| r.subscribers.keys().copied().collect()).unwrap_or_default()
        };
        match notice {
            Notice::Typing { tenant: t, session: s, .. }
            | Notice::Read(ReadMark { tenant_id: t, session_id: s, .. }) => {
                let ids = subscribers((*t, *s));
                let shared = Arc::new(notice.clone());
                let conns = lock(&self.conns);
                ids.iter().filter_map(|id| conns.get(id)).for_each(|c| c.deliver(Delivery::Notice(shared.clone())));
            }
            // Latest state per agent, coalesced: a burst of logins never fills a queue.
            // Only connections that can care: inbox watchers and subscribers.
            Notice::Presence { agent, online } => {
                for conn in lock(&self.conns).values().filter(|c| c.inbox || !c.sessions.is_empty()) {
                    conn.pending.presence(*agent, *online);
                }
            }
            Notice::Resync => lock(&self.conns).values().for_each(|conn| conn.pending.resync()),
            // Committed events go through `announce` / `store`.
            Notice::Committed { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::SessionId;
    use crate::realtime::frame::Frame;
    use crate::wire::stream::ServerMessage;

    fn key() -> Key {
        (TenantId::new(1).unwrap(), SessionId::generate())
    }

    fn event(seq: i64) -> Arc<CachedEvent> {
        Arc::new(CachedEvent { seq, frame: Frame::new(&ServerMessage::Pong), change: None })
    }

    #[tokio::test]
    async fn events_are_read_once_per_node_and_coalesced_per_subscriber() {
        let hub = Hub::new(8);
        let k = key();
        let (a, a_in, _) = hub.connect(None);
        let (b, b_in, _) = hub.connect(None);
        let (_c, c_in, _) = hub.connect(None);
        hub.subscribe(a, k, 0);
        hub.subscribe(b, k, 0);
        // 500 announcements while a read is under way: one read, then one more.
        assert_eq!(hub.announce(k, 1), Some(0));
        for seq in 2..=500 {
            assert_eq!(hub.announce(k, seq), None, "a read is under way");
        }
        assert_eq!(hub.store(k, (1..=100).map(event).collect()), Some(100), "more were announced");
        assert_eq!(hub.store(k, (101..=500).map(event).collect()), None);
        for inlet in [&a_in, &b_in] {
            tokio::time::timeout(std::time::Duration::from_secs(1), inlet.pending.changed()).await.unwrap();
            assert_eq!(inlet.pending.take().dirty.get(&k), Some(&500), "one entry, the newest sequence");
        }
        assert!(c_in.pending.take().dirty.is_empty(), "not subscribed, not marked");
        let recent = hub.events_after(k, 480).unwrap();
        assert_eq!(recent.iter().map(|e| e.seq).collect::<Vec<_>>(), (481..=500).collect::<Vec<_>>());
        assert!(hub.events_after(k, 10).is_err(), "older than the cache: read storage");
        assert_eq!(hub.events_after(k, 500).unwrap().len(), 0);
    }

    #[tokio::test]
    async fn unwatched_sessions_are_not_read_and_rooms_go_with_their_last_subscriber() {
        let hub = Hub::new(8);
        let k = key();
        assert_eq!(hub.announce(k, 1), None, "nobody watches it here");
        let (a, _a_in, _) = hub.connect(None);
        hub.subscribe(a, k, 3);
        assert_eq!(hub.announce(k, 3), None, "already seen");
        assert_eq!(hub.announce(k, 4), Some(3));
        hub.disconnect(a);
        assert_eq!(hub.subscriptions(), 0);
        assert!(hub.events_after(k, 0).is_err());
    }

    #[tokio::test]
    async fn a_full_queue_marks_only_that_connection_as_lagging() {
        let hub = Hub::new(2);
        let k = key();
        let u = UserId::new(3).unwrap();
        let (slow, slow_in, _) = hub.connect(None);
        let (fast, mut fast_in, _) = hub.connect(None);
        hub.subscribe(slow, k, 0);
        hub.subscribe(fast, k, 0);
        for _ in 1..=3 {
            let typing = Notice::Typing { tenant: k.0, session: k.1, user: u };
            hub.dispatch(&typing);
            // The fast one keeps up.
            assert!(matches!(fast_in.notices.try_recv().unwrap(), Delivery::Notice(n) if *n == typing));
        }
        tokio::time::timeout(std::time::Duration::from_secs(1), slow_in.lagged.wait()).await.unwrap();
        assert!(!fast_in.lagged.is_raised());
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
