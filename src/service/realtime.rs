//! Assignment, presence, read marks, the agent inbox and stream tickets.

use super::{Livechat, PageRequest};
use crate::domain::access::{AgentScope, Caller, Identity};
use crate::domain::event::{Notice, ReadMark};
use crate::domain::ids::{MessageId, SessionId, TenantId, UserId};
use crate::domain::page::{Page, PagePlan, Paged};
use crate::domain::session::{InboxPosition, Session};
use crate::domain::time::Timestamp;
use crate::error::AppError;
use crate::store::Ticket;
use sha2::{Digest, Sha256};

/// Presence source name for an agent's own `PUT …/agents/me/presence`.
pub const MANUAL_SOURCE: &str = "manual";

/// A session as listed in the agent inbox; its cursor names its tenant too.
#[derive(Debug, Clone)]
pub struct InboxItem(pub Session);

impl Paged for InboxItem {
    type Pos = InboxPosition;
    fn pos(&self) -> InboxPosition {
        self.0.inbox_position()
    }
    fn cursor(&self) -> String {
        format!("{}.{}", self.0.tenant_id, self.0.id)
    }
}

/// Parses an inbox cursor `<tenant>.<session id>`.
pub fn parse_inbox_cursor(raw: &str) -> Option<(TenantId, SessionId)> {
    let (tenant, id) = raw.split_once('.')?;
    Some((TenantId::parse(tenant).ok()?, SessionId::parse(id).ok()?))
}

/// A freshly issued stream ticket.
#[derive(Debug, Clone)]
pub struct IssuedTicket {
    /// The ticket to put in the stream URL.
    pub ticket: String,
    /// When it stops being accepted.
    pub expires_at: Timestamp,
}

fn hash_ticket(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl Livechat {
    fn require_agent(caller: &Caller) -> Result<(), AppError> {
        if caller.is_agent() { Ok(()) } else { Err(AppError::Forbidden) }
    }

    /// Claims a queued session for the calling agent; of two racing claims one wins.
    pub async fn claim_session(&self, caller: &Caller, id: SessionId) -> Result<Session, AppError> {
        Self::require_agent(caller)?;
        let store = self.store.clone();
        let (tenant, agent) = (caller.tenant_id, caller.user_id);
        let claimed =
            super::detached(async move { store.assign_session(tenant, id, agent, true, Timestamp::now()).await });
        match claimed.await {
            Ok(session) => Ok(session),
            // Claiming what one already holds is harmless.
            Err(AppError::AlreadyAssigned(Some(holder))) if holder == caller.user_id => {
                self.get_session(caller, id).await
            }
            Err(err) => Err(err),
        }
    }

    /// Hands a session to another online agent.
    pub async fn transfer_session(&self, caller: &Caller, id: SessionId, to: UserId) -> Result<Session, AppError> {
        Self::require_agent(caller)?;
        let now = Timestamp::now();
        // Existence first, so an unknown session is a 404 whoever the target is.
        self.get_session(caller, id).await?;
        if !self.storage.presence.agent_available(to, caller.tenant_id, now).await? {
            return Err(AppError::AgentOffline);
        }
        let store = self.store.clone();
        let tenant = caller.tenant_id;
        super::detached(async move { store.assign_session(tenant, id, to, false, now).await }).await
    }

    /// Moves the caller's read mark forward and tells the session's subscribers.
    pub async fn mark_read(&self, caller: &Caller, id: SessionId, message: MessageId) -> Result<ReadMark, AppError> {
        self.get_session(caller, id).await?;
        let now = Timestamp::now();
        let (store, bus) = (self.store.clone(), self.storage.bus.clone());
        let (tenant, user) = (caller.tenant_id, caller.user_id);
        // The notice goes out with the write, even if the client leaves meanwhile.
        super::detached(async move {
            let (mark, moved) = store.mark_read(tenant, id, user, message, now).await?;
            if moved {
                if let Err(err) = bus.publish(&Notice::Read(mark)).await {
                    tracing::warn!(error = %err, "read notice not delivered");
                }
            }
            Ok(mark)
        })
        .await
    }

    /// The agent inbox: queued sessions and the caller's own, across its tenants.
    pub async fn inbox(
        &self,
        agent: UserId,
        scope: &AgentScope,
        page: PageRequest<(TenantId, SessionId)>,
    ) -> Result<Page<InboxItem>, AppError> {
        let bad_cursor = || AppError::field("cursor", "must be a cursor from this list");
        let cursor = match page.cursor {
            Some((tenant, id)) => {
                if !scope.covers(tenant) {
                    return Err(bad_cursor());
                }
                let s = self.store.get_session(tenant, id).await?.ok_or_else(bad_cursor)?;
                Some((s.inbox_position(), format!("{tenant}.{id}")))
            }
            None => None,
        };
        let plan = PagePlan::new(page.limit, page.direction, cursor);
        let (scan, take) = plan.main_scan();
        let items: Vec<InboxItem> =
            self.store.scan_inbox(agent, scope, scan, take).await?.into_iter().map(InboxItem).collect();
        let found = match plan.probe(&items) {
            Some(probe) => !self.store.scan_inbox(agent, scope, probe, 1).await?.is_empty(),
            None => false,
        };
        Ok(plan.finish(items, found))
    }

    /// Sets the calling agent online (for one presence period; repeat to stay) or offline.
    /// The store announces the change if there is one.
    pub async fn set_presence(
        &self,
        agent: UserId,
        scope: &AgentScope,
        online: bool,
    ) -> Result<Option<Timestamp>, AppError> {
        let now = Timestamp::now();
        if online {
            let expires = Timestamp::from_micros(now.micros().saturating_add(micros(self.limits.presence_ttl)));
            self.storage.presence.touch_presence(agent, MANUAL_SOURCE, scope, expires, now).await?;
            Ok(Some(expires))
        } else {
            self.storage.presence.drop_presence(agent, MANUAL_SOURCE, now).await?;
            Ok(None)
        }
    }

    /// Issues a single-use ticket that authorises one stream as `identity`.
    pub async fn issue_ticket(&self, caller: &Caller, identity: &Identity) -> Result<IssuedTicket, AppError> {
        let secret = hex::encode(rand::random::<[u8; 32]>());
        let ticket = format!("{}.{secret}", caller.tenant_id);
        let expires_at =
            Timestamp::from_micros(Timestamp::now().micros().saturating_add(micros(self.limits.ticket_ttl)));
        self.storage
            .presence
            .put_ticket(&Ticket {
                tenant_id: caller.tenant_id,
                hash: hash_ticket(&ticket),
                identity: identity.clone(),
                token_exp: identity.expires_at,
                expires_at,
            })
            .await?;
        Ok(IssuedTicket { ticket, expires_at })
    }

    /// Redeems a ticket (once): the identity and the tenant it was issued in.
    pub async fn redeem_ticket(&self, ticket: &str) -> Result<(TenantId, Identity), AppError> {
        let tenant = ticket.split_once('.').and_then(|(t, _)| TenantId::parse(t).ok()).ok_or(AppError::Unauthorized)?;
        let now = Timestamp::now();
        let stored = self
            .storage
            .presence
            .take_ticket(tenant, &hash_ticket(ticket), now)
            .await?
            .ok_or(AppError::Unauthorized)?;
        if stored.token_exp <= now.micros() / 1_000_000 {
            return Err(AppError::Unauthorized);
        }
        Ok((tenant, stored.identity))
    }

    /// Tells a session's subscribers that `caller` is typing.
    pub async fn typing(&self, caller: &Caller, id: SessionId) -> Result<(), AppError> {
        Ok(self.storage.bus.publish(&Notice::Typing { t: caller.tenant_id, s: id, u: caller.user_id }).await?)
    }
}

/// A duration in whole microseconds, saturating.
pub fn micros(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}
