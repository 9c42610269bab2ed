//! Who handles a session: claiming a queued one, transferring to another agent.

use super::{Error, Livechat, Subject, require_agent};
use crate::domain::access::Caller;
use crate::domain::ids::{SessionId, UserId};
use crate::domain::session::Session;
use crate::domain::time::Timestamp;

impl Livechat {
    /// Claims a queued session for the calling agent; of two racing claims one wins.
    pub async fn claim_session(&self, caller: &Caller, id: SessionId) -> Result<Session, Error> {
        require_agent(caller)?;
        let (store, tenant, agent) = (self.store().clone(), caller.tenant_id, caller.user_id);
        let claiming = async move { store.assign_session(tenant, id, agent, true, Timestamp::now()).await };
        match self.write(Subject::new("session_id", id), claiming, || self.store().get_session(tenant, id)).await {
            Ok(session) => Ok(session),
            // Claiming what one already holds is harmless.
            Err(Error::AlreadyAssigned(Some(holder))) if holder == caller.user_id => self.get_session(caller, id).await,
            Err(err) => Err(err),
        }
    }

    /// Hands a session to another online agent.
    pub async fn transfer_session(&self, caller: &Caller, id: SessionId, to: UserId) -> Result<Session, Error> {
        require_agent(caller)?;
        let now = Timestamp::now();
        // Existence first, so an unknown session is a 404 whoever the target is.
        self.get_session(caller, id).await?;
        if !self.store().agent_available(to, caller.tenant_id, now).await? {
            return Err(Error::AgentOffline);
        }
        let (store, tenant) = (self.store().clone(), caller.tenant_id);
        let moving = async move { store.assign_session(tenant, id, to, false, now).await };
        self.write(Subject::new("session_id", id), moving, || self.store().get_session(tenant, id)).await
    }
}
