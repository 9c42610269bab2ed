//! Presence and stream tickets, shared by every node through the database.

use super::{Dialect, QueryBuilder, SqlStore, classify, corrupt};
use crate::domain::access::{AgentScope, Identity};
use crate::domain::event::Notice;
use crate::domain::ids::{TenantId, UserId};
use crate::domain::time::Timestamp;
use crate::store::{PresenceStore, StoreError, Ticket};
use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Type};
use uuid::Uuid;

#[async_trait]
impl<DB> PresenceStore for SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> Uuid: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    async fn put_ticket(&self, ticket: &Ticket) -> Result<(), StoreError> {
        let identity =
            serde_json::to_string(&ticket.identity).map_err(|e| StoreError::Internal(sqlx::Error::Encode(e.into())))?;
        let mut qb = QueryBuilder::<DB>::new(
            "INSERT INTO realtime_tickets (tenant_id, ticket_hash, identity, token_exp, expires_at) VALUES ",
        );
        qb.push_values(vec![
            ticket.tenant_id.get().into(),
            ticket.hash.as_str().into(),
            identity.into(),
            ticket.token_exp.into(),
            ticket.expires_at.micros().into(),
        ]);
        qb.build().execute(&self.writer).await.map_err(classify::<DB>)?;
        Ok(())
    }

    async fn take_ticket(&self, tenant: TenantId, hash: &str, now: Timestamp) -> Result<Option<Ticket>, StoreError> {
        let mut qb = QueryBuilder::<DB>::new("DELETE FROM realtime_tickets WHERE tenant_id = ");
        qb.push_bind(tenant.get()).push(" AND ticket_hash = ").push_bind(hash);
        qb.push(" RETURNING identity, token_exp, expires_at");
        let Some(row) = qb.build().fetch_optional(&self.writer).await.map_err(classify::<DB>)? else {
            return Ok(None);
        };
        let expires_at = Timestamp::from_micros(row.try_get("expires_at").map_err(StoreError::Internal)?);
        if expires_at <= now {
            return Ok(None);
        }
        let identity: String = row.try_get("identity").map_err(StoreError::Internal)?;
        let identity: Identity =
            serde_json::from_str(&identity).map_err(|_| StoreError::Internal(corrupt("identity")))?;
        Ok(Some(Ticket {
            tenant_id: tenant,
            hash: hash.to_owned(),
            identity,
            token_exp: row.try_get("token_exp").map_err(StoreError::Internal)?,
            expires_at,
        }))
    }

    async fn touch_presence(
        &self,
        agent: UserId,
        source: &str,
        scope: &AgentScope,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await.map_err(classify::<DB>)?;
        // The agent's status row first: its lock orders this against a
        // concurrent drop on another node, which then sees our source.
        let mut qb = QueryBuilder::<DB>::new("INSERT INTO agent_status (agent_id, online, scope, changed_at) VALUES ");
        qb.push_values(vec![agent.get().into(), 0_i64.into(), scope.encode().into(), now.micros().into()]);
        qb.push(" ON CONFLICT (agent_id) DO UPDATE SET scope = excluded.scope");
        qb.build().execute(&mut *tx).await.map_err(classify::<DB>)?;

        let mut qb = QueryBuilder::<DB>::new("INSERT INTO agent_presence (agent_id, source, expires_at) VALUES ");
        qb.push_values(vec![agent.get().into(), source.into(), expires_at.micros().into()]);
        qb.push(" ON CONFLICT (agent_id, source) DO UPDATE SET expires_at = excluded.expires_at");
        qb.build().execute(&mut *tx).await.map_err(classify::<DB>)?;

        // Exactly one toucher flips the flag, so each change is announced once.
        let mut qb = QueryBuilder::<DB>::new("UPDATE agent_status SET online = 1, changed_at = ");
        qb.push_bind(now.micros()).push(" WHERE agent_id = ").push_bind(agent.get());
        qb.push(" AND online = 0 RETURNING agent_id");
        let flipped = qb.build().fetch_optional(&mut *tx).await.map_err(classify::<DB>)?.is_some();
        // Announced by the transaction that flipped it, so announcements keep commit order.
        let notices = if flipped { vec![Notice::Presence { a: agent, on: true }] } else { Vec::new() };
        self.commit_announcing(tx, &notices).await?;
        Ok(flipped)
    }

    async fn drop_presence(&self, agent: UserId, source: &str, now: Timestamp) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await.map_err(classify::<DB>)?;
        // Lock the status row first (see touch_presence); the check below is a
        // new statement, so it sees sources other nodes committed meanwhile.
        let mut qb = QueryBuilder::<DB>::new("UPDATE agent_status SET agent_id = agent_id WHERE agent_id = ");
        qb.push_bind(agent.get());
        qb.build().execute(&mut *tx).await.map_err(classify::<DB>)?;
        let mut qb = QueryBuilder::<DB>::new("DELETE FROM agent_presence WHERE agent_id = ");
        qb.push_bind(agent.get()).push(" AND source = ").push_bind(source);
        qb.build().execute(&mut *tx).await.map_err(classify::<DB>)?;
        let mut qb = QueryBuilder::<DB>::new("UPDATE agent_status SET online = 0, changed_at = ");
        qb.push_bind(now.micros()).push(" WHERE agent_id = ").push_bind(agent.get());
        qb.push(" AND online = 1 AND NOT EXISTS (SELECT 1 FROM agent_presence p WHERE p.agent_id = ");
        qb.push_bind(agent.get()).push(" AND p.expires_at > ").push_bind(now.micros());
        qb.push(") RETURNING agent_id");
        let flipped = qb.build().fetch_optional(&mut *tx).await.map_err(classify::<DB>)?.is_some();
        let notices = if flipped { vec![Notice::Presence { a: agent, on: false }] } else { Vec::new() };
        self.commit_announcing(tx, &notices).await?;
        Ok(flipped)
    }

    async fn expire_presence(&self, now: Timestamp) -> Result<Vec<UserId>, StoreError> {
        self.remove_sources(None, now).await
    }

    async fn drop_node(&self, source: &str, now: Timestamp) -> Result<Vec<UserId>, StoreError> {
        self.remove_sources(Some(source), now).await
    }

    async fn agent_available(&self, agent: UserId, tenant: TenantId, now: Timestamp) -> Result<bool, StoreError> {
        let mut qb = QueryBuilder::<DB>::new("SELECT a.agent_id FROM agent_status a WHERE a.agent_id = ");
        qb.push_bind(agent.get());
        qb.push(" AND (a.scope = '*' OR a.scope LIKE ").push_bind(format!("%,{tenant},%")).push(")");
        qb.push(" AND EXISTS (SELECT 1 FROM agent_presence p WHERE p.agent_id = a.agent_id AND p.expires_at > ");
        qb.push_bind(now.micros()).push(")");
        Ok(qb.build().fetch_optional(&self.reader).await.map_err(classify::<DB>)?.is_some())
    }

    async fn least_busy_agent(&self, tenant: TenantId, now: Timestamp) -> Result<Option<UserId>, StoreError> {
        let mut qb = QueryBuilder::<DB>::new("SELECT a.agent_id FROM agent_status a WHERE a.online = 1");
        qb.push(" AND (a.scope = '*' OR a.scope LIKE ").push_bind(format!("%,{tenant},%")).push(")");
        qb.push(" AND EXISTS (SELECT 1 FROM agent_presence p WHERE p.agent_id = a.agent_id AND p.expires_at > ");
        qb.push_bind(now.micros()).push(")");
        qb.push(" ORDER BY (SELECT count(*) FROM sessions s WHERE s.agent_id = a.agent_id AND s.status = 'OPEN'),");
        qb.push(" a.agent_id LIMIT 1");
        let row = qb.build().fetch_optional(&self.reader).await.map_err(classify::<DB>)?;
        row.map(|r| {
            let id: i64 = r.try_get("agent_id").map_err(StoreError::Internal)?;
            UserId::new(id).map_err(|_| StoreError::Internal(corrupt("agent_id")))
        })
        .transpose()
    }

    async fn purge_tickets(&self, now: Timestamp) -> Result<(), StoreError> {
        let mut qb = QueryBuilder::<DB>::new("DELETE FROM realtime_tickets WHERE expires_at <= ");
        qb.push_bind(now.micros());
        qb.build().execute(&self.writer).await.map_err(classify::<DB>)?;
        Ok(())
    }
}
