//! The agent inbox: queued sessions and the agent's own, across its tenants.

use super::{Error, Livechat, listed};
use crate::domain::access::AgentScope;
use crate::domain::ids::{SessionId, TenantId, UserId};
use crate::domain::page::{Page, PageRequest};
use crate::domain::session::InboxItem;

/// Parses an inbox cursor `<tenant>.<session id>`.
pub fn parse_inbox_cursor(raw: &str) -> Option<(TenantId, SessionId)> {
    let (tenant, id) = raw.split_once('.')?;
    Some((TenantId::parse(tenant).ok()?, SessionId::parse(id).ok()?))
}

impl Livechat {
    /// The agent inbox, newest activity first, with unread counts.
    pub async fn inbox(
        &self,
        agent: UserId,
        scope: &AgentScope,
        page: PageRequest<(TenantId, SessionId)>,
    ) -> Result<Page<InboxItem>, Error> {
        listed(self.store().page_inbox(agent, scope, &page).await?)
    }
}
