//! What a connection receives from the hub: persisted events serialised
//! once ([`CachedEvent`]), a bounded queue of ephemeral notices
//! ([`Delivery`]), the coalesced set of subscribed sessions with news
//! ([`Pending`], taken as a [`Backlog`]) and the overflow flag ([`Lagged`]).

use super::frame::Frame;
use crate::domain::event::Notice;
use crate::domain::ids::{SessionId, TenantId, UserId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;
use tokio::sync::{Notify, mpsc};

/// A connection's id on this node.
pub type ConnId = u64;
/// A session, with its tenant.
pub type Key = (TenantId, SessionId);

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A persisted event as streams send it.
#[derive(Debug)]
pub struct CachedEvent {
    /// Its place in the session's sequence.
    pub seq: i64,
    /// The frame, serialized once.
    pub frame: Frame,
    /// For session changes: the agent after the change, and whether it closed the session.
    pub change: Option<(Option<UserId>, bool)>,
}

/// What a connection receives from the hub.
pub struct Inlet {
    /// Ephemeral and inbox notices for this connection, bounded.
    pub notices: mpsc::Receiver<Delivery>,
    /// Set (and notified) when the queue overflowed: the consumer is too slow.
    pub lagged: Arc<Lagged>,
    /// Subscribed sessions with something new, coalesced.
    pub pending: Arc<Pending>,
}

/// What goes through a connection's queue.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// An ephemeral notice (typing, read), shared by every connection it goes to.
    Notice(Arc<Notice>),
    /// A session change for inbox watchers, already serialized.
    Inbox(Arc<(Key, Arc<CachedEvent>)>),
}

/// Subscribed sessions with committed events not yet sent, one entry per
/// session however many events: a busy session or a long replay can never
/// overflow anything.
#[derive(Default)]
pub struct Pending {
    dirty: Mutex<HashMap<Key, i64>>,
    /// When the oldest mark not yet taken was made (for the fan-out lag).
    since: Mutex<Option<Instant>>,
    presence: Mutex<HashMap<UserId, bool>>,
    resync: AtomicBool,
    wake: Notify,
}

/// What a connection has to catch up on.
#[derive(Debug, Default)]
pub struct Backlog {
    /// Subscribed sessions with new events, and the newest sequence announced.
    pub dirty: HashMap<Key, i64>,
    /// When the oldest of those was announced.
    pub since: Option<Instant>,
    /// Agents whose presence changed, with the latest state.
    pub presence: HashMap<UserId, bool>,
    /// Every subscription must be re-read.
    pub resync: bool,
}

impl Pending {
    /// Marks a session as having news up to `seq` (also used to retry a failed read).
    pub fn mark(&self, key: Key, seq: i64) {
        let mut dirty = lock(&self.dirty);
        let entry = dirty.entry(key).or_insert(seq);
        *entry = (*entry).max(seq);
        drop(dirty);
        lock(&self.since).get_or_insert_with(Instant::now);
        self.wake.notify_one();
    }

    pub(super) fn resync(&self) {
        self.resync.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    pub(super) fn presence(&self, agent: UserId, online: bool) {
        lock(&self.presence).insert(agent, online);
        self.wake.notify_one();
    }

    /// Resolves when something was marked since the last [`Pending::take`].
    pub async fn changed(&self) {
        self.wake.notified().await;
    }

    /// Everything marked since the last call.
    pub fn take(&self) -> Backlog {
        Backlog {
            since: lock(&self.since).take(),
            dirty: std::mem::take(&mut *lock(&self.dirty)),
            presence: std::mem::take(&mut *lock(&self.presence)),
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
    pub(super) fn raise(&self) {
        if !self.flag.swap(true, Ordering::SeqCst) {
            self.notify.notify_one();
        }
    }

    /// Whether the connection has fallen behind.
    #[cfg(test)]
    pub(super) fn is_raised(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
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
