//! Opening, reading, listing and closing sessions (docs/API.md §10).

use super::{Error, Livechat, Subject, listed, require_agent};
use crate::domain::access::Caller;
use crate::domain::ids::{SessionId, UserId};
use crate::domain::page::{Page, PageRequest};
use crate::domain::session::{self, NewSession, OpenRefused, Session, SessionFilter};
use crate::domain::time::Timestamp;

impl Livechat {
    /// Opens the tenant's session: assigned to the agent the caller names,
    /// the calling agent, the least busy online agent, or queued.
    pub async fn open_session(&self, caller: &Caller, agent_id: Option<UserId>) -> Result<Session, Error> {
        let named = agent_id;
        let mut agent_id = session::initial_agent(caller, agent_id).map_err(|e| match e {
            OpenRefused::AgentChoiceForbidden => Error::Forbidden,
        })?;
        let now = Timestamp::now();
        match (named, agent_id) {
            // An agent naming someone else: that agent must be online.
            (Some(named), _)
                if named != caller.user_id && !self.store().agent_available(named, caller.tenant_id, now).await? =>
            {
                return Err(Error::AgentOffline);
            }
            // A tenant user's session goes to the least busy online agent, or waits.
            (None, None) => agent_id = self.store().least_busy_agent(caller.tenant_id, now).await?,
            _ => {}
        }
        let new = NewSession {
            id: SessionId::generate(),
            tenant_id: caller.tenant_id,
            agent_id,
            opened_by: caller.user_id,
            created_at: now,
        };
        let (store, tenant, id) = (self.store().clone(), new.tenant_id, new.id);
        self.write(Subject::new("session_id", id), async move { store.create_session(&new).await }, || {
            self.store().get_session(tenant, id)
        })
        .await
    }

    /// One session of the caller's tenant.
    pub async fn get_session(&self, caller: &Caller, id: SessionId) -> Result<Session, Error> {
        self.store().get_session(caller.tenant_id, id).await?.ok_or(Error::NotFound)
    }

    /// The tenant's sessions, newest first, with the caller's unread counts.
    pub async fn list_sessions(
        &self,
        caller: &Caller,
        filter: &SessionFilter,
        page: PageRequest<SessionId>,
    ) -> Result<Page<Session>, Error> {
        listed(self.store().page_sessions(caller.tenant_id, caller.user_id, filter, &page).await?)
    }

    /// Closes a session; agents only; idempotent.
    pub async fn close_session(&self, caller: &Caller, id: SessionId) -> Result<Session, Error> {
        require_agent(caller)?;
        let (store, tenant) = (self.store().clone(), caller.tenant_id);
        let closing = async move { store.close_session(tenant, id, Timestamp::now()).await };
        let read_back = || async move { Ok(Some(self.store().get_session(tenant, id).await?)) };
        self.write(Subject::new("session_id", id), closing, read_back).await?.ok_or(Error::NotFound)
    }
}
