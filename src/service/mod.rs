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
//! - `webhooks`: subscriptions, the delivery log, the worker's storage steps.

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
mod webhooks;
mod write;

pub use crate::domain::page::PageRequest;
pub use crate::domain::session::InboxItem;
#[cfg(test)]
pub(crate) use error::samples as error_samples;
pub use error::{Error, FieldErrors, Problems, Public};
pub use inbox::parse_inbox_cursor;
pub use quota::{Action, QuotaSettings, QuotaState, Quotas, WINDOW_SECS};
pub use streams::{Subscription, parse_event_id};
pub use tickets::{IssuedTicket, ticket_tenant};
pub use webhooks::{WebhookInput, WebhookRules, resolve_allowed};
pub use write::{Subject, within};

use crate::domain::access::{AccessPolicy, AgentScope, Caller, Identity};
use crate::domain::ids::TenantId;
use crate::domain::page::{Page, Unlisted};
use crate::metrics::Metrics;
use crate::store::Store;
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
    webhooks: WebhookRules,
}

/// Reads one page of a short list (webhooks, deliveries) through its store
/// scans: the main scan, then a one-item probe past the far side. The
/// conversation lists, on the hot path, page inside the store instead, on
/// one connection.
async fn read_page<T, F, Fut>(
    limit: crate::domain::page::PageLimit,
    direction: crate::domain::page::Direction,
    cursor: Option<(T::Pos, String)>,
    scan: F,
) -> Result<Page<T>, Error>
where
    T: crate::domain::page::Paged,
    F: Fn(crate::domain::page::Scan<T::Pos>, u32) -> Fut,
    Fut: Future<Output = Result<Vec<T>, crate::store::StoreError>>,
{
    let plan = crate::domain::page::PagePlan::new(limit, direction, cursor);
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

/// A page, or why there is none.
fn listed<T>(page: Result<Page<T>, Unlisted>) -> Result<Page<T>, Error> {
    page.map_err(|why| match why {
        Unlisted::NotFound => Error::NotFound,
        Unlisted::BadCursor => bad_cursor(),
    })
}

impl Livechat {
    /// The use cases over `store`, admitting callers by `policy`.
    pub fn new(store: Arc<dyn Store>, policy: AccessPolicy, limits: Limits, metrics: Arc<Metrics>) -> Self {
        let quotas = Quotas::new(&limits.quotas);
        Self(Arc::new(Inner { store, policy, limits, metrics, quotas, webhooks: WebhookRules::default() }))
    }

    /// The same use cases with these webhook rules (call before cloning).
    pub fn with_webhook_rules(self, webhooks: WebhookRules) -> Self {
        match Arc::try_unwrap(self.0) {
            Ok(inner) => Self(Arc::new(Inner { webhooks, ..inner })),
            Err(shared) => {
                let quotas = Quotas::new(&shared.limits.quotas);
                let inner = Inner {
                    store: shared.store.clone(),
                    policy: shared.policy.clone(),
                    limits: shared.limits.clone(),
                    metrics: shared.metrics.clone(),
                    quotas,
                    webhooks,
                };
                Self(Arc::new(inner))
            }
        }
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
