//! Who handles a session: claiming a queued one, transferring to another agent.

use super::{Error, Livechat, detached, require_agent};
use crate::domain::access::Caller;
use crate::domain::ids::{SessionId, UserId};
use crate::domain::session::Session;
use crate::domain::time::Timestamp;

impl Livechat {
    /// Claims a queued session for the calling agent; of two racing claims one wins.
    pub async fn claim_session(&self, caller: &Caller, id: SessionId) -> Result<Session, Error> {
        require_agent(caller)?;
        let store = self.store().clone();
        let (tenant, agent) = (caller.tenant_id, caller.user_id);
        match detached(async move { store.assign_session(tenant, id, agent, true, Timestamp::now()).await }).await {
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
        let store = self.store().clone();
        let tenant = caller.tenant_id;
        detached(async move { store.assign_session(tenant, id, to, false, now).await }).await
    }
}
