//! Agents going online and offline (docs/API.md §12.2), and its upkeep.
//! The store announces every change in the transaction that makes it.

use super::{Error, Livechat};
use crate::domain::access::AgentScope;
use crate::domain::ids::UserId;
use crate::domain::time::Timestamp;

/// Presence source name for an agent's own `PUT …/agents/me/presence`.
pub const MANUAL_SOURCE: &str = "manual";

impl Livechat {
    /// Sets the calling agent online (for one presence period; repeat to stay)
    /// or offline; returns until when `online` holds.
    pub async fn set_presence(
        &self,
        agent: UserId,
        scope: &AgentScope,
        online: bool,
    ) -> Result<Option<Timestamp>, Error> {
        if online {
            let expires = self.hold_presence(agent, MANUAL_SOURCE, scope).await?;
            Ok(Some(expires))
        } else {
            self.release_presence(agent, MANUAL_SOURCE).await?;
            Ok(None)
        }
    }

    /// Keeps `agent` online through `source` (a node holding its streams,
    /// or its own request) for one presence period; returns its end.
    pub async fn hold_presence(&self, agent: UserId, source: &str, scope: &AgentScope) -> Result<Timestamp, Error> {
        let now = Timestamp::now();
        let expires = now.plus(self.limits().presence_ttl);
        self.store().touch_presence(agent, source, scope, expires, now).await?;
        Ok(expires)
    }

    /// Stops `source` keeping `agent` online.
    pub async fn release_presence(&self, agent: UserId, source: &str) -> Result<(), Error> {
        self.store().drop_presence(agent, source, Timestamp::now()).await?;
        Ok(())
    }

    /// Periodic upkeep: agents whose every source expired (on any node,
    /// including crashed ones) go offline, and stale tickets are deleted.
    pub async fn expire(&self) -> Result<(), Error> {
        let now = Timestamp::now();
        self.store().remove_presence_sources(None, now).await?;
        self.store().purge_tickets(now).await?;
        Ok(())
    }

    /// A node leaving: every agent it held goes offline now, not at expiry.
    pub async fn release_node(&self, source: &str) -> Result<(), Error> {
        self.store().remove_presence_sources(Some(source), Timestamp::now()).await?;
        Ok(())
    }
}
