//! Presence of agents, shared by every node through the database.

use super::SqlStore;
use super::dialect::Dialect;
use super::query::{QueryBuilder, Record};
use super::rows::user;
use crate::domain::access::AgentScope;
use crate::domain::event::Notice;
use crate::domain::ids::{TenantId, UserId};
use crate::domain::time::Timestamp;
use crate::store::{PresenceStore, StoreError};
use async_trait::async_trait;

/// `AND <agent a may serve tenant> AND <agent a has a live source>`.
fn serving<DB: Dialect>(qb: &mut QueryBuilder<DB>, tenant: TenantId, now: Timestamp) {
    qb.push(" AND (a.scope = '*' OR a.scope LIKE ").push_bind(format!("%,{tenant},%")).push(")");
    qb.push(" AND EXISTS (SELECT 1 FROM agent_presence p WHERE p.agent_id = a.agent_id AND p.expires_at > ");
    qb.push_bind(now.micros()).push(")");
}

fn agents(rows: &[impl Record]) -> Result<Vec<UserId>, StoreError> {
    rows.iter().map(|r| user(r, "agent_id")).collect::<Result<_, _>>().map_err(StoreError::Internal)
}

fn announce(agents: &[UserId], online: bool) -> Vec<Notice> {
    agents.iter().map(|&agent| Notice::Presence { agent, online }).collect()
}

#[async_trait]
impl<DB: Dialect> PresenceStore for SqlStore<DB> {
    async fn touch_presence(
        &self,
        agent: UserId,
        source: &str,
        scope: &AgentScope,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut tx = self.db.begin().await?;
        // The agent's status row first: its lock orders this against a
        // concurrent drop on another node, which then sees our source.
        let mut qb = QueryBuilder::<DB>::new("INSERT INTO agent_status (agent_id, online, scope, changed_at) VALUES ");
        qb.push_values(vec![agent.get().into(), 0_i64.into(), scope.encode().into(), now.micros().into()]);
        qb.push(" ON CONFLICT (agent_id) DO UPDATE SET scope = excluded.scope");
        self.tx_run(&mut tx, &qb).await?;

        let mut qb = QueryBuilder::<DB>::new("INSERT INTO agent_presence (agent_id, source, expires_at) VALUES ");
        qb.push_values(vec![agent.get().into(), source.into(), expires_at.micros().into()]);
        qb.push(" ON CONFLICT (agent_id, source) DO UPDATE SET expires_at = excluded.expires_at");
        self.tx_run(&mut tx, &qb).await?;

        // Exactly one toucher flips the flag, so each change is announced once.
        let mut qb = QueryBuilder::<DB>::new("UPDATE agent_status SET online = 1, changed_at = ");
        qb.push_bind(now.micros()).push(" WHERE agent_id = ").push_bind(agent.get());
        qb.push(" AND online = 0 RETURNING agent_id");
        let flipped = agents(&self.tx_all(&mut tx, &qb).await?)?;
        self.commit_announcing(tx, &announce(&flipped, true)).await?;
        Ok(!flipped.is_empty())
    }

    async fn drop_presence(&self, agent: UserId, source: &str, now: Timestamp) -> Result<bool, StoreError> {
        let mut tx = self.db.begin().await?;
        // Lock the status row first (see touch_presence); the check below is a
        // new statement, so it sees sources other nodes committed meanwhile.
        let mut qb = QueryBuilder::<DB>::new("UPDATE agent_status SET agent_id = agent_id WHERE agent_id = ");
        qb.push_bind(agent.get());
        self.tx_run(&mut tx, &qb).await?;
        let mut qb = QueryBuilder::<DB>::new("DELETE FROM agent_presence WHERE agent_id = ");
        qb.push_bind(agent.get()).push(" AND source = ").push_bind(source);
        self.tx_run(&mut tx, &qb).await?;
        let mut qb = QueryBuilder::<DB>::new("UPDATE agent_status SET online = 0, changed_at = ");
        qb.push_bind(now.micros()).push(" WHERE agent_id = ").push_bind(agent.get());
        qb.push(" AND online = 1 AND NOT EXISTS (SELECT 1 FROM agent_presence p WHERE p.agent_id = ");
        qb.push_bind(agent.get()).push(" AND p.expires_at > ").push_bind(now.micros());
        qb.push(") RETURNING agent_id");
        let flipped = agents(&self.tx_all(&mut tx, &qb).await?)?;
        self.commit_announcing(tx, &announce(&flipped, false)).await?;
        Ok(!flipped.is_empty())
    }

    async fn remove_presence_sources(&self, source: Option<&str>, now: Timestamp) -> Result<Vec<UserId>, StoreError> {
        let mut tx = self.db.begin().await?;
        let mut qb = QueryBuilder::<DB>::new("DELETE FROM agent_presence WHERE expires_at <= ");
        qb.push_bind(now.micros());
        if let Some(source) = source {
            qb.push(" OR source = ").push_bind(source);
        }
        self.tx_run(&mut tx, &qb).await?;
        let mut qb = QueryBuilder::<DB>::new("UPDATE agent_status SET online = 0, changed_at = ");
        qb.push_bind(now.micros());
        qb.push(" WHERE online = 1 AND NOT EXISTS (SELECT 1 FROM agent_presence p");
        qb.push(" WHERE p.agent_id = agent_status.agent_id AND p.expires_at > ").push_bind(now.micros());
        qb.push(") RETURNING agent_id");
        let gone = agents(&self.tx_all(&mut tx, &qb).await?)?;
        self.commit_announcing(tx, &announce(&gone, false)).await?;
        Ok(gone)
    }

    async fn agent_available(&self, agent: UserId, tenant: TenantId, now: Timestamp) -> Result<bool, StoreError> {
        let mut qb = QueryBuilder::<DB>::new("SELECT a.agent_id FROM agent_status a WHERE a.agent_id = ");
        qb.push_bind(agent.get());
        serving(&mut qb, tenant, now);
        Ok(self.read_one(&qb).await?.is_some())
    }

    async fn least_busy_agent(&self, tenant: TenantId, now: Timestamp) -> Result<Option<UserId>, StoreError> {
        let mut qb = QueryBuilder::<DB>::new("SELECT a.agent_id FROM agent_status a WHERE a.online = 1");
        serving(&mut qb, tenant, now);
        qb.push(" ORDER BY (SELECT count(*) FROM sessions s WHERE s.agent_id = a.agent_id AND s.status = 'OPEN'),");
        qb.push(" a.agent_id LIMIT 1");
        let row = self.read_one(&qb).await?;
        Ok(agents(row.as_slice())?.first().copied())
    }
}
