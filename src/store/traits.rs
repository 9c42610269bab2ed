//! The storage traits: one per aggregate (sessions, messages and their
//! events, read marks, presence, tickets, webhook subscriptions, webhook
//! deliveries), the notice bus, and [`Store`], which is all of them plus the
//! lifecycle of a backend. Also the values they trade in that belong to no
//! domain module ([`ClaimRequest`], [`StoreStats`], [`Ticket`]).

use super::{CommitOutcome, StoreError};
use crate::domain::access::{AgentScope, Identity};
use crate::domain::event::{Notice, ReadMark, StoredEvent};
use crate::domain::ids::{MessageId, SessionId, TenantId, UserId};
use crate::domain::message::{Appended, Message, MessageFilter, NewMessage};
use crate::domain::page::{Page, PageRequest, Scan, Unlisted};
use crate::domain::session::{InboxItem, NewSession, Session, SessionFilter};
use crate::domain::time::Timestamp;
use crate::domain::webhook::{AttemptOutcome, ClaimedDelivery, Delivery, Owner, SigningSecret, Webhook, WebhookPatch};
use async_trait::async_trait;
use std::time::Duration;
use tokio::sync::broadcast;
use uuid::Uuid;

/// Sessions of a tenant and the agent inbox across tenants. Every change
/// takes the next number of the session's sequence under the session's row
/// lock, records a session event with it and is announced on the
/// [`NoticeBus`] once committed.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Inserts a session and its `opened` event. A tenant with an OPEN
    /// session already gets [`StoreError::SessionAlreadyActive`], decided by a
    /// unique index so two racing requests cannot both win.
    async fn create_session(&self, new: &NewSession) -> Result<Session, StoreError>;

    /// The session with this id in this tenant.
    async fn get_session(&self, tenant: TenantId, id: SessionId) -> Result<Option<Session>, StoreError>;

    /// A page of the tenant's sessions matching `filter`, newest first, each
    /// with `viewer`'s unread count, read on one connection. The cursor is a
    /// session of the tenant ([`Unlisted::BadCursor`] otherwise).
    async fn page_sessions(
        &self,
        tenant: TenantId,
        viewer: UserId,
        filter: &SessionFilter,
        page: &PageRequest<SessionId>,
    ) -> Result<Result<Page<Session>, Unlisted>, StoreError>;

    /// A page of the agent inbox: OPEN sessions that are queued or assigned
    /// to `agent`, in the tenants of `scope`, newest activity first, with
    /// unread counts.
    async fn page_inbox(
        &self,
        agent: UserId,
        scope: &AgentScope,
        page: &PageRequest<(TenantId, SessionId)>,
    ) -> Result<Result<Page<InboxItem>, Unlisted>, StoreError>;

    /// Marks an OPEN session CLOSED at `at` (with a `closed` event); a CLOSED
    /// one is returned as it is. `None` if the tenant has no such session.
    async fn close_session(
        &self,
        tenant: TenantId,
        id: SessionId,
        at: Timestamp,
    ) -> Result<Option<Session>, StoreError>;

    /// Assigns an OPEN session to `agent` (with an `assigned` event). With
    /// `only_if_queued` (a claim) it fails with [`StoreError::AlreadyAssigned`]
    /// when another agent got there first. Missing or CLOSED:
    /// [`StoreError::SessionNotOpen`].
    async fn assign_session(
        &self,
        tenant: TenantId,
        id: SessionId,
        agent: UserId,
        only_if_queued: bool,
        at: Timestamp,
    ) -> Result<Session, StoreError>;
}

/// Messages and the replayable event history of a session (messages and
/// session events share one per-session sequence).
#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Appends a message to an OPEN session in one transaction: takes the next
    /// sequence number under the session's row lock, so sequence order is
    /// commit order, and records the idempotency key with it. A known key
    /// with the same body replays the original; with another body it is
    /// [`StoreError::IdempotencyKeyReused`]. A missing or CLOSED session is
    /// [`StoreError::SessionNotOpen`].
    async fn append_message(&self, new: &NewMessage) -> Result<Appended, StoreError>;

    /// One message of this session.
    async fn message(&self, tenant: TenantId, session: SessionId, id: MessageId)
    -> Result<Option<Message>, StoreError>;

    /// The sequence number of a message of this session, to resolve a cursor.
    async fn message_seq(&self, tenant: TenantId, session: SessionId, id: MessageId)
    -> Result<Option<i64>, StoreError>;

    /// A page of the session's messages matching `filter`, newest first,
    /// read on one connection: [`Unlisted::NotFound`] if the tenant has no
    /// such session, [`Unlisted::BadCursor`] if the cursor is not one of its
    /// messages.
    async fn page_messages(
        &self,
        tenant: TenantId,
        session: SessionId,
        filter: &MessageFilter,
        page: &PageRequest<MessageId>,
    ) -> Result<Result<Page<Message>, Unlisted>, StoreError>;

    /// Up to `limit` persisted events of the session after sequence `after`,
    /// in order, read in one snapshot.
    async fn events_after(
        &self,
        tenant: TenantId,
        session: SessionId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// The sequence number of a persisted event (message or session event) of this session.
    async fn event_seq(&self, tenant: TenantId, session: SessionId, id: Uuid) -> Result<Option<i64>, StoreError>;
}

/// Each participant's read position per session.
#[async_trait]
pub trait ReadMarkStore: Send + Sync {
    /// Moves `user`'s read mark forward to `message` (never backwards).
    /// Returns the mark now stored and whether it moved;
    /// [`StoreError::MessageNotFound`] if the message is not in the session.
    async fn mark_read(
        &self,
        tenant: TenantId,
        session: SessionId,
        user: UserId,
        message: MessageId,
        at: Timestamp,
    ) -> Result<(ReadMark, bool), StoreError>;
}

/// Agents' presence, shared by every node. An agent is online while it has a
/// live source (a node holding its streams, or its own `PUT`); every change
/// of an agent's state is announced on the [`NoticeBus`] by the transaction
/// that made it, so announcements keep commit order.
#[async_trait]
pub trait PresenceStore: Send + Sync {
    /// Keeps `agent` online through `source` until `expires_at`; returns
    /// whether this made the agent go online (exactly one caller sees `true`).
    async fn touch_presence(
        &self,
        agent: UserId,
        source: &str,
        scope: &AgentScope,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Removes one source; returns whether the agent went offline with it.
    async fn drop_presence(&self, agent: UserId, source: &str, now: Timestamp) -> Result<bool, StoreError>;

    /// Removes expired sources (and every source named `source`, for a node
    /// that is shutting down); returns the agents that went offline, each once.
    async fn remove_presence_sources(&self, source: Option<&str>, now: Timestamp) -> Result<Vec<UserId>, StoreError>;

    /// Whether the agent has a live source and may serve `tenant`.
    async fn agent_available(&self, agent: UserId, tenant: TenantId, now: Timestamp) -> Result<bool, StoreError>;

    /// The online agent able to serve `tenant` with the fewest OPEN sessions.
    async fn least_busy_agent(&self, tenant: TenantId, now: Timestamp) -> Result<Option<UserId>, StoreError>;
}

/// Single-use stream tickets, shared by every node (so any node can redeem one).
#[async_trait]
pub trait TicketStore: Send + Sync {
    /// Stores a ticket.
    async fn put_ticket(&self, ticket: &Ticket) -> Result<(), StoreError>;

    /// Removes and returns a ticket if it exists and has not expired (single use).
    async fn take_ticket(&self, tenant: TenantId, hash: &str, now: Timestamp) -> Result<Option<Ticket>, StoreError>;

    /// Deletes expired tickets.
    async fn purge_tickets(&self, now: Timestamp) -> Result<(), StoreError>;
}

/// Notices between nodes: through PostgreSQL `LISTEN/NOTIFY`, or in process on SQLite.
#[async_trait]
pub trait NoticeBus: Send + Sync {
    /// Sends an ephemeral notice to every node (committed events announce themselves).
    async fn publish(&self, notice: &Notice) -> Result<(), StoreError>;

    /// Every notice from now on, on this node.
    fn notices(&self) -> broadcast::Receiver<Notice>;
}

/// Webhook subscriptions. Changing one's state moves its deliveries with it
/// (see [`DeliveryStore`]).
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Stores a new subscription.
    async fn create_webhook(&self, hook: &Webhook) -> Result<(), StoreError>;

    /// The subscription with this id of this owner.
    async fn get_webhook(&self, owner: Owner, id: Uuid) -> Result<Option<Webhook>, StoreError>;

    /// Up to `limit` subscriptions of the owner strictly past the scan position, nearest first.
    async fn scan_webhooks(&self, owner: Owner, scan: Scan<Uuid>, limit: u32) -> Result<Vec<Webhook>, StoreError>;

    /// Applies `patch`; enabling resumes held deliveries (and clears a pause),
    /// disabling holds pending ones. `None` if there is no such subscription.
    async fn update_webhook(
        &self,
        owner: Owner,
        id: Uuid,
        patch: &WebhookPatch,
        now: Timestamp,
    ) -> Result<Option<Webhook>, StoreError>;

    /// Makes `secret` the signing secret; the old one keeps signing until `previous_until`.
    async fn rotate_webhook_secret(
        &self,
        owner: Owner,
        id: Uuid,
        secret: &SigningSecret,
        previous_until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<Webhook>, StoreError>;

    /// Deletes a subscription and its delivery log; returns it as it was.
    async fn delete_webhook(&self, owner: Owner, id: Uuid) -> Result<Option<Webhook>, StoreError>;
}

/// The outbox and the deliveries of webhook events. Outbox rows are written
/// by the transactions of [`SessionStore`] and [`MessageStore`] themselves
/// (so an event exists if and only if its change committed), for tenants
/// that have a subscription (or when the platform has one); the worker fans
/// them out into one delivery per matching subscription, and keeps each
/// subscription's deliveries of one session in session order.
#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// One delivery of a subscription.
    async fn get_delivery(&self, owner: Owner, webhook: Uuid, id: Uuid) -> Result<Option<Delivery>, StoreError>;

    /// Up to `limit` deliveries of a subscription strictly past the scan position, nearest first.
    async fn scan_deliveries(
        &self,
        owner: Owner,
        webhook: Uuid,
        scan: Scan<Uuid>,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// Queues the event of a delivery once more, as a new delivery `new_id`
    /// due at once (held while the subscription is not active).
    async fn redeliver(
        &self,
        owner: Owner,
        webhook: Uuid,
        id: Uuid,
        new_id: Uuid,
        now: Timestamp,
    ) -> Result<Option<Delivery>, StoreError>;

    /// Whether the worker has anything to do: outbox rows to fan out, or
    /// deliveries due at `now` (read-only, so an idle worker never writes).
    async fn webhook_work(&self, now: Timestamp) -> Result<bool, StoreError>;

    /// In one transaction: fans out a batch of outbox rows (when no other node
    /// is doing it), then claims due deliveries for this node.
    async fn dispatch_and_claim(
        &self,
        now: Timestamp,
        claim: &ClaimRequest,
    ) -> Result<Vec<ClaimedDelivery>, StoreError>;

    /// Records attempts: success resets a subscription's failure count,
    /// failure raises it and, at `pause_after`, pauses the subscription;
    /// a finished delivery lets the next one of its session go. Outcomes of
    /// claims that are no longer held (the lease ran out) are ignored. Then,
    /// in the same transaction, claims what `then_claim` allows (one commit
    /// per round of attempts instead of two).
    async fn record_attempts(
        &self,
        outcomes: &[AttemptOutcome],
        pause_after: i64,
        now: Timestamp,
        then_claim: &ClaimRequest,
    ) -> Result<Vec<ClaimedDelivery>, StoreError>;

    /// Deletes up to `limit` finished deliveries created before `before`; returns how many.
    async fn prune_deliveries(&self, before: Timestamp, limit: u32) -> Result<u64, StoreError>;
}

/// What a node can take on in one claim.
#[derive(Debug, Clone, Default)]
pub struct ClaimRequest {
    /// Outbox rows fanned out per transaction.
    pub dispatch_batch: u32,
    /// Most deliveries to claim.
    pub max: u32,
    /// Most deliveries of one subscription this node may have in flight.
    pub per_webhook: u32,
    /// Deliveries this node has in flight, per subscription.
    pub in_flight: std::collections::HashMap<Uuid, u32>,
    /// How long a claim holds before another node may take the delivery.
    pub lease: Duration,
}

/// One storage backend: every aggregate, the bus, and its lifecycle.
#[async_trait]
pub trait Store:
    SessionStore + MessageStore + ReadMarkStore + PresenceStore + TicketStore + WebhookStore + DeliveryStore + NoticeBus
{
    /// Answers when the database can serve a query.
    async fn ping(&self) -> Result<(), StoreError>;

    /// What became of a transaction whose COMMIT was sent but not answered
    /// ([`StoreError::CommitUnknown`]).
    async fn commit_outcome(&self, transaction: i64) -> Result<CommitOutcome, StoreError>;

    /// Stops background work and closes the connection pools (at shutdown).
    async fn shutdown(&self);

    /// Connection use and breaker state, now.
    fn stats(&self) -> StoreStats;
}

/// What storage is doing, for metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreStats {
    /// Open database connections (all pools).
    pub connections: u32,
    /// Of those, idle.
    pub idle: usize,
    /// Whether requests are failing fast because the database is unreachable.
    pub failing_fast: bool,
}

/// A single-use stream ticket as stored (the ticket itself is only hashed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The tenant the ticket was issued in.
    pub tenant_id: TenantId,
    /// SHA-256 of the ticket, hex.
    pub hash: String,
    /// Who it was issued to.
    pub identity: Identity,
    /// When the token it was issued against expires (Unix seconds).
    pub token_exp: i64,
    /// When the ticket stops being accepted.
    pub expires_at: Timestamp,
}
