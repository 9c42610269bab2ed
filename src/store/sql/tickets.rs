//! Single-use stream tickets, stored hashed so any node can redeem them.

use super::SqlStore;
use super::dialect::Dialect;
use super::query::{QueryBuilder, Record};
use super::rows::corrupt;
use crate::domain::access::Identity;
use crate::domain::ids::TenantId;
use crate::domain::time::Timestamp;
use crate::store::{StoreError, Ticket, TicketStore};
use async_trait::async_trait;

#[async_trait]
impl<DB: Dialect> TicketStore for SqlStore<DB> {
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
        self.write_run(&qb).await
    }

    async fn take_ticket(&self, tenant: TenantId, hash: &str, now: Timestamp) -> Result<Option<Ticket>, StoreError> {
        let mut qb = QueryBuilder::<DB>::new("DELETE FROM realtime_tickets WHERE tenant_id = ");
        qb.push_bind(tenant.get()).push(" AND ticket_hash = ").push_bind(hash);
        qb.push(" RETURNING identity, token_exp, expires_at");
        let Some(row) = self.write_one(&qb).await? else {
            return Ok(None);
        };
        let expires_at = Timestamp::from_micros(row.int("expires_at").map_err(StoreError::Internal)?);
        if expires_at <= now {
            return Ok(None);
        }
        let identity = row.text("identity").map_err(StoreError::Internal)?;
        let identity: Identity =
            serde_json::from_str(&identity).map_err(|_| StoreError::Internal(corrupt("identity")))?;
        Ok(Some(Ticket {
            tenant_id: tenant,
            hash: hash.to_owned(),
            identity,
            token_exp: row.int("token_exp").map_err(StoreError::Internal)?,
            expires_at,
        }))
    }

    async fn purge_tickets(&self, now: Timestamp) -> Result<(), StoreError> {
        let mut qb = QueryBuilder::<DB>::new("DELETE FROM realtime_tickets WHERE expires_at <= ");
        qb.push_bind(now.micros());
        self.write_run(&qb).await
    }
}
