//! The agent inbox: queued sessions and the agent's own, across its tenants.

use super::{Error, Livechat, PageRequest, read_page};
use crate::domain::access::AgentScope;
use crate::domain::ids::{SessionId, TenantId, UserId};
use crate::domain::page::{Page, Paged};
use crate::domain::session::{InboxPosition, Session};

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

impl Livechat {
    /// The agent inbox, newest activity first, with unread counts.
    pub async fn inbox(
        &self,
        agent: UserId,
        scope: &AgentScope,
        page: PageRequest<(TenantId, SessionId)>,
    ) -> Result<Page<InboxItem>, Error> {
        let store = self.store();
        let bad_cursor = || Error::field("cursor", "must be a cursor from this list");
        let cursor = match page.cursor {
            Some((tenant, id)) => {
                if !scope.covers(tenant) {
                    return Err(bad_cursor());
                }
                let s = store.get_session(tenant, id).await?.ok_or_else(bad_cursor)?;
                Some((s.inbox_position(), format!("{tenant}.{id}")))
            }
            None => None,
        };
        read_page(page.limit, page.direction, cursor, |scan, take| async move {
            Ok(store.scan_inbox(agent, scope, scan, take).await?.into_iter().map(InboxItem).collect())
        })
        .await
    }
}
