//! The use cases: each one applies the domain rules and talks to storage.
//! Every transport (both HTTP prefixes, the WebSocket, SSE) goes through
//! here; none of them reaches storage directly.
//!
//! - `sessions`: open, get, list, close.
//! - `messages`: send, page through.
//! - `assignment`: claim, transfer.
//! - `reads`: read marks.
//! - `inbox`: the agent inbox across tenants.
//! - `presence`: agents going online and offline, and its upkeep.
//! - `tickets`: single-use stream tickets.
//! - `streams`: stream admission, subscribing, replay.

mod assignment;
mod error;
mod inbox;
mod messages;
mod presence;
mod quota;
mod reads;
mod sessions;
mod streams;
mod tickets;
mod write;

pub use error::{Error, FieldErrors, Problems};
pub use inbox::{InboxItem, parse_inbox_cursor};
pub use quota::{Action, QuotaSettings, QuotaState, Quotas, WINDOW_SECS};
pub use streams::Subscription;
pub use tickets::IssuedTicket;
pub use write::{Subject, within};

use crate::domain::access::{AccessPolicy, AgentScope, Caller, Identity};
use crate::domain::ids::TenantId;
use crate::domain::page::{Direction, Page, PageLimit, PagePlan, Paged, Scan};
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};
use std::sync::Arc;
use std::time::Duration;

/// Limits a deployment may tune.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest message, in characters.
    pub max_message_chars: usize,
    /// How long an agent stays online after its last heartbeat.
    pub presence_ttl: Duration,
    /// How long a stream ticket may wait before it is used.
    pub ticket_ttl: Duration,
    /// Every request is answered within this (writes included: see `write`).
    pub request_timeout: Duration,
    /// Per-user and per-tenant allowances of sending, opening, tickets, typing.
    pub quotas: QuotaSettings,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_chars: crate::domain::message::DEFAULT_MAX_MESSAGE_CHARS,
            presence_ttl: Duration::from_secs(15),
            ticket_ttl: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            quotas: QuotaSettings::default(),
        }
    }
}

/// The livechat use cases over one storage backend; cheap to clone.
#[derive(Clone)]
pub struct Livechat(Arc<Inner>);

struct Inner {
    store: Arc<dyn Store>,
    policy: AccessPolicy,
    limits: Limits,
    metrics: Arc<Metrics>,
    quotas: Quotas,
}

/// How a list request asks for its page.
#[derive(Debug, Clone)]
pub struct PageRequest<C> {
    /// Page size.
    pub limit: PageLimit,
    /// Older or newer than the cursor.
    pub direction: Direction,
    /// The id of an item of the same list.
    pub cursor: Option<C>,
}

/// Reads one page: the main scan, then (when the answer is not already
/// known) a one-item probe past the page's far side.
async fn read_page<T, F, Fut>(
    limit: PageLimit,
    direction: Direction,
    cursor: Option<(T::Pos, String)>,
    scan: F,
) -> Result<Page<T>, Error>
where
    T: Paged,
    F: Fn(Scan<T::Pos>, u32) -> Fut,
    Fut: Future<Output = Result<Vec<T>, StoreError>>,
{
    let plan = PagePlan::new(limit, direction, cursor);
    let (main, take) = plan.main_scan();
    let items = scan(main, take).await?;
    let found = match plan.probe(&items) {
        Some(probe) => !scan(probe, 1).await?.is_empty(),
        None => false,
    };
    Ok(plan.finish(items, found))
}

fn bad_cursor() -> Error {
    Error::field("cursor", "must be the id of an item of this list")
}

impl Livechat {
    /// The use cases over `store`, admitting callers by `policy`.
    pub fn new(store: Arc<dyn Store>, policy: AccessPolicy, limits: Limits, metrics: Arc<Metrics>) -> Self {
        let quotas = Quotas::new(&limits.quotas);
        Self(Arc::new(Inner { store, policy, limits, metrics, quotas }))
    }

    /// The quotas of this node: every transport asks before an action that has one.
    pub fn quotas(&self) -> &Quotas {
        &self.0.quotas
    }

    /// The server's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.0.metrics
    }

    fn store(&self) -> &Arc<dyn Store> {
        &self.0.store
    }

    /// The configured limits.
    pub fn limits(&self) -> &Limits {
        &self.0.limits
    }

    /// Decides whether `identity` may act in `tenant`, and as what.
    pub fn admit(&self, identity: &Identity, tenant: TenantId) -> Result<Caller, Error> {
        self.0.policy.admit(identity, tenant).map_err(|_| Error::Forbidden)
    }

    /// Where `identity` works as an agent, if anywhere.
    pub fn agent_scope(&self, identity: &Identity) -> Option<AgentScope> {
        self.0.policy.agent_scope(identity)
    }

    /// Whether storage answers (readiness).
    pub async fn ready(&self) -> Result<(), Error> {
        Ok(self.store().ping().await?)
    }

    /// Stops storage's background work and closes it (at shutdown).
    pub async fn shutdown(&self) {
        self.store().shutdown().await;
    }
}

fn require_agent(caller: &Caller) -> Result<(), Error> {
    if caller.is_agent() { Ok(()) } else { Err(Error::Forbidden) }
}
